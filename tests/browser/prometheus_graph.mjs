// Prometheus's graph page for a running stack's monitoring profile, showing the stack's
// request rate and open sockets, as a PNG (scripts/screenshot-prometheus runs this; the
// picture is in docs/operations.md). First it sends the stack bounded traffic through
// nginx, so the graphs have something to show. Usage:
//   node prometheus_graph.mjs STACK_URL PROMETHEUS_URL OUT.png
// Headless chromium: chromium.mjs.
import WebSocket from "ws";
import { launchChromium } from "./chromium.mjs";

const [stack, prometheus, out] = process.argv.slice(2);
// Three phases of 40 s: requests per second (under nginx's 20 r/s per address) and
// sockets held open. At most 1,120 requests and 30 sockets in all.
const PHASES = [
  { seconds: 40, rate: 5, sockets: 10 },
  { seconds: 40, rate: 15, sockets: 30 },
  { seconds: 40, rate: 8, sockets: 15 },
];
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

const sockets = [];
let failed = 0;
for (const phase of PHASES) {
  while (sockets.length < phase.sockets) {
    const socket = new WebSocket(`${stack.replace(/^http/, "ws")}/ws/chat/`);
    socket.on("error", () => failed++);
    sockets.push(socket);
  }
  while (sockets.length > phase.sockets) sockets.pop().close();
  for (let sent = 0; sent < phase.seconds * phase.rate; sent++) {
    const response = await fetch(`${stack}/api/hello/`);
    if (response.status !== 200) failed++;
    await sleep(1000 / phase.rate);
  }
}
// One more scrape (every 15 s) sees the last phase.
await sleep(20000);
for (const socket of sockets) socket.close();
if (failed) console.error(`${failed} requests or sockets failed`);

const panels = {
  "sum(rate(app_http_requests_total[1m]))": "requests per second, every replica",
  "sum by (instance) (app_websocket_connections)": "open sockets per replica",
};
const query = Object.keys(panels)
  .map((expr, i) => `g${i}.expr=${encodeURIComponent(expr)}&g${i}.tab=0&g${i}.range_input=5m`)
  .join("&");

const browser = await launchChromium();
try {
  const page = await browser.newPage({ viewport: { width: 1400, height: 1100 } });
  await page.goto(`${prometheus}/graph?${query}`, { waitUntil: "networkidle" });
  // Debian's Prometheus (the offline stand-in) ships only the classic UI.
  if (await page.getByText("does not include the modern React web UI").count()) {
    await page.goto(`${prometheus}/classic/graph?${query}`, { waitUntil: "networkidle" });
  }
  await sleep(3000); // the graphs draw after their queries answer
  await page.screenshot({ path: out, fullPage: true });
  console.log(out);
} finally {
  await browser.close();
}
