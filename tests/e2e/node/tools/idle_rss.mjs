// Measures the resident memory a socketlet server spends on idle connections.
//
//   node tools/idle_rss.mjs <server binary> [clients=1000] [transport=websocket] [args...]
//
// Starts the server on a free port, reads its VmRSS, connects N official socket.io-client 4.x
// clients (all to `/`), waits for them to settle, reads VmRSS again, prints the delta per client,
// then closes everything. Bounded: N is capped at 5000 and the run stops after 120 s.
import { spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import { io } from "socket.io-client";

const [bin, nArg = "1000", transport = "websocket", ...extra] = process.argv.slice(2);
if (!bin) {
  console.error("usage: idle_rss.mjs <server binary> [clients] [websocket|polling] [server args...]");
  process.exit(2);
}
const n = Math.min(parseInt(nArg, 10) || 1000, 5000);
const guard = setTimeout(() => { console.error("gave up after 120 s"); process.exit(1); }, 120_000);

const rssKiB = (pid) => {
  const m = readFileSync(`/proc/${pid}/status`, "utf8").match(/VmRSS:\s+(\d+) kB/);
  return m ? Number(m[1]) : NaN;
};
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

const server = spawn(bin, ["--addr", "127.0.0.1:0", ...extra].filter(Boolean), { stdio: ["ignore", "pipe", "pipe"] });
const port = await new Promise((resolve, reject) => {
  let buf = "";
  const onData = (d) => {
    buf += d;
    const m = buf.match(/LISTENING (\d+)|listening on http:\/\/127\.0\.0\.1:(\d+)/);
    if (m) resolve(Number(m[1] || m[2]));
  };
  server.stdout.on("data", onData);
  server.stderr.on("data", onData);
  server.on("exit", (c) => reject(new Error(`server exited ${c}`)));
});
await sleep(300);
const before = rssKiB(server.pid);
const clients = [];
let connected = 0;
for (let i = 0; i < n; i++) {
  const s = io(`http://127.0.0.1:${port}`, { transports: [transport], reconnection: false, forceNew: true });
  s.on("connect", () => connected++);
  clients.push(s);
  if (i % 100 === 99) await sleep(50);
}
while (connected < n) await sleep(50);
await sleep(2000);
const after = rssKiB(server.pid);
console.log(JSON.stringify({
  clients: n, transport, rss_before_kib: before, rss_after_kib: after,
  per_client_kib: Number(((after - before) / n).toFixed(2)),
}));
for (const s of clients) s.close();
server.kill("SIGTERM");
clearTimeout(guard);
setTimeout(() => process.exit(0), 200);
