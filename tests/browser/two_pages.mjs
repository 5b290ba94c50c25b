// Two people in one room, in a real browser (Debian's chromium, headless, driven by
// playwright-core; no browser download). Usage:
//   node two_pages.mjs BASE_URL ROOM_SLUG USERNAME PASSWORD SCREENSHOT_DIR
// Page A logs in and posts; page B (anonymous) must show the message live. Then page B's
// socket is cut: it must reconnect by itself and catch up (?after=) on what it missed.
// Exits non-zero, saying why, on any failure; writes screenshots of both pages.
import { launchChromium } from "./chromium.mjs";

const [base, room, username, password, shots] = process.argv.slice(2);
const TIMEOUT = 15000;

const browser = await launchChromium();
try {
  const context = await browser.newContext();
  const pageA = await context.newPage();
  const pageB = await (await browser.newContext()).newPage(); // separate storage: anonymous
  const errors = [];
  for (const page of [pageA, pageB]) page.on("pageerror", (error) => errors.push(String(error)));

  for (const page of [pageA, pageB]) {
    await page.goto(`${base}/#${room}`);
    await page.locator("#connection.live").waitFor({ timeout: TIMEOUT });
  }

  await pageA.fill("#login-username", username);
  await pageA.fill("#login-password", password);
  await pageA.click("#login-form button[type=submit]");
  await pageA.locator("#session:not([hidden])").waitFor({ timeout: TIMEOUT });

  const live = `live from A ${Date.now()}`;
  await pageA.fill("#message-body", live);
  await pageA.click("#message-form button[type=submit]");
  await pageB.locator("#messages li .body", { hasText: live }).waitFor({ timeout: TIMEOUT });

  // B drops off the network: offline (so reconnects fail for now), and its socket is cut
  // (4000: not a code the page treats as final). A posts while B is away; once back
  // online, B must reconnect by itself and fetch what it missed with ?after=.
  await pageB.context().setOffline(true);
  await pageB.evaluate(() => state.socket.close(4000, "test: network drop"));
  await pageB.locator("#connection:not(.live)").waitFor({ timeout: TIMEOUT });
  const missed = `posted while B was away ${Date.now()}`;
  await pageA.fill("#message-body", missed);
  await pageA.click("#message-form button[type=submit]");
  await pageA.locator("#messages li .body", { hasText: missed }).waitFor({ timeout: TIMEOUT });
  await pageB.context().setOffline(false);
  await pageB.locator("#messages li .body", { hasText: missed }).waitFor({ timeout: 45000 });

  const countB = await pageB.locator("#messages li .body", { hasText: live }).count();
  if (countB !== 1) throw new Error(`page B shows the live message ${countB} times`);
  if (errors.length) throw new Error(`page errors: ${errors.join("; ")}`);

  await pageA.screenshot({ path: `${shots}/page-a.png` });
  await pageB.screenshot({ path: `${shots}/page-b.png` });
  console.log("ok: live delivery and reconnect catch-up in a real browser");
} finally {
  await browser.close();
}
