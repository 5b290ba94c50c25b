// The fan-out scenario's receivers (bench/sockets.py starts them): node
// bench/receivers.mjs URL COUNT SUBPROTOCOL. Opens COUNT sockets, 200 at a time, and
// prints one JSON line {"opened": n, "error": "..."} once they are open (or the first
// batch fails). Then records every frame's "body" and when it arrived (wall clock, ms),
// and when its standard input closes, closes the sockets and prints {"got": [[body, ms], ...]} and exits.
// Node's ws, not Python: the receivers share the cores with the servers they measure, and
// a Node client parses a frame for about half the CPU of a Python one.
import { createRequire } from "node:module";
import { performance } from "node:perf_hooks";

const require = createRequire(import.meta.url);
const WebSocket = require("ws");

const [url, count, subprotocol] = [process.argv[2], Number(process.argv[3]), process.argv[4]];
const BATCH = 200;
const sockets = [];
const got = [];

function open() {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, [subprotocol], { perMessageDeflate: false, handshakeTimeout: 30000 });
    ws.once("open", () => resolve(ws));
    ws.once("error", reject);
    ws.on("message", (data) => {
      const at = performance.timeOrigin + performance.now();
      got.push([JSON.parse(data.toString()).body, at]);
    });
  });
}

let error = "";
while (sockets.length < count && !error) {
  const size = Math.min(BATCH, count - sockets.length);
  const results = await Promise.allSettled(Array.from({ length: size }, open));
  for (const result of results) {
    if (result.status === "fulfilled") sockets.push(result.value);
    else error ||= String(result.reason);
  }
}
process.stdout.write(JSON.stringify({ opened: sockets.length, error }) + "\n");

process.stdin.resume();
process.stdin.on("end", () => {
  const closed = sockets.map((ws) => new Promise((resolve) => ws.once("close", resolve)));
  for (const ws of sockets) ws.close(1000);
  const report = () => process.stdout.write(JSON.stringify({ got }) + "\n", () => process.exit(0));
  Promise.race([Promise.all(closed), new Promise((resolve) => setTimeout(resolve, 10000))]).then(report);
});
