// A Socket.IO client of one generation, driven over stdin/stdout by test_mixed_room.py.
//
//   node room_client.mjs <v2|v4> <url> <transports: polling|websocket|default>
//
// Uses tests/e2e/node/node_modules: `socket.io-client` (4.x, Engine.IO v4) or
// `socket.io-client-v2` (2.5.0, Engine.IO v3). Prints one JSON object per line on stdout:
//   {"type":"open","transport":...}                   Engine.IO session open
//   {"type":"upgrade","transport":"websocket"}          upgrade done
//   {"type":"connect","id":...,"transport":...}       once connected to "/"
//   {"type":"event","name":...,"args":[...]}            for every event the server emits
//   {"type":"ack","seq":N,"args":[...]}                 the ack of command N
//   {"type":"error","message":...}                      connection errors
// and reads one JSON command per line on stdin:
//   {"seq":N,"emit":"<event>","args":[...]}             emits with an ack
//   {"exit":true}                                       disconnects and exits
// Binary travels as {"$bytes":"<hex>"} both ways (normalizeBinary of ../../lib/client.mjs). The
// process exits by itself after LIFETIME_MS, when stdin closes, or on "exit".

import { createRequire } from "node:module";
import { dirname, join, resolve } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { normalizeBinary as toJson } from "../../lib/client.mjs";

const LIFETIME_MS = 60_000;
const HERE = dirname(fileURLToPath(import.meta.url));
const NODE_DIR = resolve(HERE, "..", "..", "node");
const require = createRequire(join(NODE_DIR, "package.json"));

const [generation, url, setup] = process.argv.slice(2);
const pkg = { v2: "socket.io-client-v2", v4: "socket.io-client" }[generation];
if (!pkg || !url || !setup) {
  console.error("usage: node room_client.mjs <v2|v4> <url> <polling|websocket|default>");
  process.exit(2);
}
const io = require(pkg);
const connectFn = typeof io === "function" ? io : io.io;

const out = (obj) => process.stdout.write(JSON.stringify(obj) + "\n");

function fromJson(value) {
  if (Array.isArray(value)) return value.map(fromJson);
  if (value && typeof value === "object") {
    if (typeof value.$bytes === "string" && Object.keys(value).length === 1) {
      return Buffer.from(value.$bytes, "hex");
    }
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, fromJson(v)]));
  }
  return value;
}

const opts = { reconnection: false, timeout: 5000, forceNew: true };
if (setup !== "default") opts.transports = [setup];
const socket = connectFn(url, opts);
const engine = () => socket.io.engine; // the Engine.IO socket (both generations)

// The Engine.IO session opens (the manager's "open", both generations), then the upgrade (if
// any) can complete before or after the Socket.IO "connect".
socket.io.on("open", () => {
  out({ type: "open", transport: engine().transport.name });
  engine().on("upgrade", (t) => out({ type: "upgrade", transport: t.name }));
});
socket.on("connect", () =>
  out({ type: "connect", id: socket.id, transport: engine().transport.name }),
);
socket.on("connect_error", (err) => out({ type: "error", message: String(err && err.message) }));
socket.on("error", (err) => out({ type: "error", message: String(err && (err.message || err)) }));
socket.on("disconnect", (reason) => out({ type: "disconnect", reason }));
// Every event from the server (socket.io-client 2.x has no onAny: patch its dispatcher).
if (typeof socket.onAny === "function") {
  socket.onAny((name, ...args) => out({ type: "event", name, args: toJson(args) }));
} else {
  const onevent = socket.onevent;
  socket.onevent = function (packet) {
    const [name, ...args] = packet.data || [];
    out({ type: "event", name, args: toJson(args) });
    return onevent.call(this, packet);
  };
}

let done = false;
function finish(code) {
  if (done) return;
  done = true;
  socket.close();
  // Let stdout drain, then go.
  setTimeout(() => process.exit(code), 100).unref();
}
setTimeout(() => {
  out({ type: "error", message: `lifetime of ${LIFETIME_MS} ms over` });
  finish(3);
}, LIFETIME_MS).unref();

const rl = createInterface({ input: process.stdin });
rl.on("line", (line) => {
  if (!line.trim()) return;
  const cmd = JSON.parse(line);
  if (cmd.exit) return finish(0);
  socket.emit(cmd.emit, ...fromJson(cmd.args || []), (...args) =>
    out({ type: "ack", seq: cmd.seq, args: toJson(args) }),
  );
});
rl.on("close", () => finish(0));
// Keeps the process alive while waiting for commands (the timers above are unref'd).
const keepAlive = setInterval(() => {}, 1000);
process.on("exit", () => clearInterval(keepAlive));
