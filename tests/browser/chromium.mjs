// Debian's chromium, headless, driven by playwright-core (no browser download): CHROMIUM
// or /usr/bin/chromium. Root in a container-less CI: no sandbox; no background traffic to
// the outside world.
import { chromium } from "playwright-core";

export function launchChromium() {
  return chromium.launch({
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    args: [
      "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
      "--disable-background-networking", "--disable-component-update", "--disable-sync",
    ],
  });
}
