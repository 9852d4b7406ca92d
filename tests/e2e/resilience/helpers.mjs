// Shared helpers of the resilience suite: the `socketlet` binary started through ../lib/server.mjs
// (its log in tests/e2e/.artifacts/resilience-*.log), its resident memory read from /proc, and the
// hostile clients, written here on Node's `net` module alone: raw HTTP/1.1 requests (whose bodies
// can be sent slowly, partly, or forever), a raw WebSocket client (RFC 6455 frames, which can
// stop reading or send any frame), and a small Socket.IO v5 / v4 layer on it. Every wait is
// bounded.

import { randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import net from "node:net";
import { performance } from "node:perf_hooks";
import { sleep, startSocketlet, withTimeout } from "../lib/server.mjs";

export { sleep, withTimeout } from "../lib/server.mjs";

/** The logs of the servers of this suite: tests/e2e/.artifacts/resilience-<label>-…log. */
const LOG_PREFIX = "resilience";

/**
 * Starts the `socketlet` binary on a free port of 127.0.0.1 with `args`, logging warnings only
 * (thousands of clients would otherwise log a line each). Resolves to the handle of
 * ../lib/server.mjs (`pid`, `port`, `stop()`, `log()`...).
 */
export function startServer(label, args = []) {
  return startSocketlet({ label, logPrefix: LOG_PREFIX, args, rustLog: "warn" });
}

// ---------------------------------------------------------------------------------------------
// Memory

/** The resident memory of process `pid`, in MiB (VmRSS of /proc/<pid>/status). */
export function rssMiB(pid) {
  const status = readFileSync(`/proc/${pid}/status`, "utf8");
  const m = /^VmRSS:\s+(\d+)\s+kB/m.exec(status);
  if (!m) throw new Error(`no VmRSS in /proc/${pid}/status`);
  return Number(m[1]) / 1024;
}

/**
 * Waits at least `minMs` (at most `maxMs`) until the RSS of `pid` moves by less than 0.25 MiB
 * over 300 ms; returns it in MiB.
 */
export async function settledRss(pid, { minMs = 500, maxMs = 3000 } = {}) {
  const start = Date.now();
  let last = rssMiB(pid);
  for (;;) {
    await sleep(300);
    const now = rssMiB(pid);
    const elapsed = Date.now() - start;
    if ((elapsed >= minMs && Math.abs(now - last) < 0.25) || elapsed >= maxMs) return now;
    last = now;
  }
}

/**
 * Samples the RSS of `pid` every `everyMs` until `stop()` is called; `max()` is the highest
 * sample so far (in MiB).
 */
export function rssSampler(pid, everyMs = 50) {
  let max = 0;
  const take = () => {
    try {
      max = Math.max(max, rssMiB(pid));
    } catch {
      // the process is gone; the test sees that elsewhere
    }
  };
  take();
  const timer = setInterval(take, everyMs);
  return {
    max: () => (take(), max),
    stop: () => clearInterval(timer),
  };
}

/** Polls `fn` every `everyMs` until it returns a truthy value (returned), for at most `ms`. */
export async function until(fn, ms, what, everyMs = 50) {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await sleep(everyMs);
  }
}

/** The `q` quantile (0..1, nearest rank) of `values`. */
export function quantile(values, q) {
  if (values.length === 0) return NaN;
  const sorted = Float64Array.from(values).sort();
  const rank = Math.min(sorted.length, Math.max(1, Math.ceil(q * sorted.length)));
  return sorted[rank - 1];
}

/** Runs `fn(i)` for i in 0..n-1, at most `concurrency` at once; resolves to the results. */
export async function pool(n, concurrency, fn) {
  const out = new Array(n);
  let next = 0;
  const worker = async () => {
    while (next < n) {
      const i = next++;
      out[i] = await fn(i);
    }
  };
  await Promise.all(Array.from({ length: Math.min(n, concurrency) }, worker));
  return out;
}

// ---------------------------------------------------------------------------------------------
// TCP and HTTP/1.1

/** A TCP connection to 127.0.0.1:`port`, Nagle off. */
export function connectTcp(port) {
  return new Promise((resolve, reject) => {
    const sock = net.connect({ host: "127.0.0.1", port });
    sock.setNoDelay(true);
    sock.once("connect", () => {
      sock.off("error", reject);
      resolve(sock);
    });
    sock.once("error", reject);
  });
}

/**
 * Reads one HTTP response from `sock`: resolves to `{ status, headers, body }` once it is whole
 * (Content-Length), or to `{ status: null, closed: true }` when the connection ends (or fails)
 * first. Bytes that come before the response is whole are kept; nothing is read after it.
 */
export function readResponse(sock) {
  return new Promise((resolve) => {
    let buf = Buffer.alloc(0);
    let head = null;
    const done = (v) => {
      sock.off("data", onData);
      sock.off("close", onClose);
      sock.off("error", onClose);
      resolve(v);
    };
    const onData = (chunk) => {
      buf = Buffer.concat([buf, chunk]);
      if (!head) {
        const end = buf.indexOf("\r\n\r\n");
        if (end < 0) return;
        const lines = buf.subarray(0, end).toString("latin1").split("\r\n");
        const status = Number(lines[0].split(" ")[1]);
        const headers = {};
        for (const l of lines.slice(1)) {
          const i = l.indexOf(":");
          if (i > 0) headers[l.slice(0, i).trim().toLowerCase()] = l.slice(i + 1).trim();
        }
        head = { status, headers, length: Number(headers["content-length"] ?? 0) };
        buf = buf.subarray(end + 4);
      }
      if (buf.length >= head.length) {
        done({ status: head.status, headers: head.headers, body: buf.subarray(0, head.length).toString() });
      }
    };
    const onClose = () => done({ status: null, closed: true });
    sock.on("data", onData);
    sock.once("close", onClose);
    sock.once("error", onClose);
  });
}

/** The head of a request to the server on `port`. */
export function requestHead(port, method, path, headers = {}) {
  const lines = [`${method} ${path} HTTP/1.1`, `Host: 127.0.0.1:${port}`];
  for (const [k, v] of Object.entries(headers)) lines.push(`${k}: ${v}`);
  return `${lines.join("\r\n")}\r\n\r\n`;
}

/** One request on a connection of its own (closed after it); resolves to the response. */
export async function request(port, method, path, { headers = {}, body = "" } = {}) {
  const sock = await connectTcp(port);
  try {
    const h = { ...headers, "Content-Length": Buffer.byteLength(body), Connection: "close" };
    const answer = readResponse(sock);
    sock.write(requestHead(port, method, path, h) + body);
    return await withTimeout(answer, 10000, `${method} ${path}`);
  } finally {
    sock.destroy();
  }
}

/** The Engine.IO path with the query. */
export const eioPath = (eio, query) => `/socket.io/?EIO=${eio}&${query}`;

/** The Engine.IO polling handshake (one GET); resolves to the session id. */
export async function pollingHandshake(port, eio = 4) {
  const res = await request(port, "GET", eioPath(eio, "transport=polling"));
  if (res.status !== 200) throw new Error(`handshake answered ${res.status}: ${res.body}`);
  // v4: `0{...}`; v3: `<length>:0{...}`.
  const m = /0(\{.*?"sid":"([^"]+)".*\})/.exec(res.body);
  if (!m) throw new Error(`no OPEN packet in ${res.body.slice(0, 200)}`);
  return m[2];
}

// ---------------------------------------------------------------------------------------------
// WebSocket (RFC 6455), client side

export const OP_TEXT = 0x1;
export const OP_BINARY = 0x2;
export const OP_CLOSE = 0x8;
export const OP_PING = 0x9;
export const OP_PONG = 0xa;

/**
 * One client frame, masked with the all-zero key (legal, and the payload then needs no
 * masking: floods of thousands of frames are built with one copy).
 */
export function frame(opcode, payload = "") {
  const data = Buffer.isBuffer(payload) ? payload : Buffer.from(payload);
  const n = data.length;
  let head;
  if (n < 126) {
    head = Buffer.from([0x80 | opcode, 0x80 | n, 0, 0, 0, 0]);
  } else if (n < 65536) {
    head = Buffer.from([0x80 | opcode, 0x80 | 126, n >> 8, n & 0xff, 0, 0, 0, 0]);
  } else {
    head = Buffer.alloc(14);
    head[0] = 0x80 | opcode;
    head[1] = 0x80 | 127;
    head.writeBigUInt64BE(BigInt(n), 2);
  }
  return Buffer.concat([head, data]);
}

/**
 * A WebSocket client on a raw TCP connection. `onMessage = (opcode, payload) => ...` hears every
 * frame the server sends (text and binary payloads as Buffers; fragments joined). `pause()` stops reading
 * from the socket (the kernel buffers fill, then the server's own), `resume()` starts again.
 * `closed` resolves when the TCP connection ends, however it ends.
 */
export class RawWs {
  /** Opens `path` on the server at `port`. */
  static async open(port, path) {
    const sock = await connectTcp(port);
    const key = randomBytes(16).toString("base64");
    const head = requestHead(port, "GET", path, {
      Upgrade: "websocket",
      Connection: "Upgrade",
      "Sec-WebSocket-Key": key,
      "Sec-WebSocket-Version": "13",
    });
    const rest = await withTimeout(
      new Promise((resolve, reject) => {
        let buf = Buffer.alloc(0);
        const onData = (chunk) => {
          buf = Buffer.concat([buf, chunk]);
          const end = buf.indexOf("\r\n\r\n");
          if (end < 0) return;
          // Nothing is lost until the RawWs listens (a stream with no listener drops data).
          sock.pause();
          sock.off("data", onData);
          sock.off("close", onClose);
          const status = buf.subarray(0, end).toString("latin1").split(" ")[1];
          if (status !== "101") {
            sock.destroy();
            reject(new Error(`WebSocket handshake answered ${status}: ${buf.toString().slice(0, 300)}`));
          } else {
            resolve(buf.subarray(end + 4));
          }
        };
        const onClose = () => reject(new Error("closed during the WebSocket handshake"));
        sock.on("data", onData);
        sock.once("close", onClose);
        sock.write(head);
      }),
      10000,
      `the WebSocket handshake of ${path}`,
    );
    return new RawWs(sock, rest);
  }

  constructor(sock, rest) {
    this.sock = sock;
    this.buf = Buffer.alloc(0);
    this.fragments = null;
    /** Frames that came before anyone listened (the first ones may come with the handshake). */
    this.early = [];
    this.handler = null;
    this.gotClose = false;
    this.closed = new Promise((resolve) => sock.once("close", resolve));
    sock.on("error", () => {});
    sock.on("data", (chunk) => this.feed(chunk));
    if (rest.length) this.feed(rest);
    sock.resume();
  }

  /** Sets who hears the frames; those that came before are handed to it first. */
  set onMessage(fn) {
    this.handler = fn;
    for (const [opcode, payload] of this.early.splice(0)) fn(opcode, payload);
  }

  deliver(opcode, payload) {
    if (this.handler) this.handler(opcode, payload);
    else this.early.push([opcode, payload]);
  }

  feed(chunk) {
    this.buf = this.buf.length ? Buffer.concat([this.buf, chunk]) : chunk;
    for (;;) {
      const b = this.buf;
      if (b.length < 2) return;
      let len = b[1] & 0x7f;
      let at = 2;
      if (len === 126) {
        if (b.length < 4) return;
        len = b.readUInt16BE(2);
        at = 4;
      } else if (len === 127) {
        if (b.length < 10) return;
        len = Number(b.readBigUInt64BE(2));
        at = 10;
      }
      if (b.length < at + len) return;
      const fin = (b[0] & 0x80) !== 0;
      const opcode = b[0] & 0x0f;
      const payload = b.subarray(at, at + len);
      this.buf = b.subarray(at + len);
      if (opcode === 0x0 || (!fin && opcode < 0x8)) {
        this.fragments = this.fragments ?? { opcode, parts: [] };
        this.fragments.parts.push(payload);
        if (!fin) continue;
        const { opcode: op, parts } = this.fragments;
        this.fragments = null;
        this.deliver(op, Buffer.concat(parts));
      } else {
        if (opcode === OP_CLOSE) this.gotClose = true;
        this.deliver(opcode, payload);
      }
    }
  }

  /** Writes bytes (frames already encoded); resolves once the kernel took them. */
  write(bytes) {
    return new Promise((resolve) => {
      if (this.sock.destroyed) return resolve(false);
      if (this.sock.write(bytes)) return resolve(true);
      const done = () => {
        this.sock.off("drain", done);
        this.sock.off("close", done);
        resolve(!this.sock.destroyed);
      };
      this.sock.once("drain", done);
      this.sock.once("close", done);
    });
  }

  sendText(text) {
    return this.write(frame(OP_TEXT, text));
  }

  pause() {
    this.sock.pause();
  }

  resume() {
    this.sock.resume();
  }

  /** Whether the TCP connection has ended. */
  get ended() {
    return this.sock.destroyed || this.sock.readyState === "closed";
  }

  destroy() {
    this.sock.destroy();
  }
}

// ---------------------------------------------------------------------------------------------
// Socket.IO (v5 over Engine.IO v4, or v4 over Engine.IO v3) on a RawWs, namespace `/` only

/**
 * A Socket.IO client over a raw WebSocket. Answers the server's PINGs (v4) unless paused;
 * `on(event, fn)` hears events (`fn(args)`); `emitAck(event, ...args)` resolves to the ack's
 * arguments. `ws` is the RawWs underneath.
 */
export class SioClient {
  /** Connects to `/` (Engine.IO `eio` 4 or 3); resolves once CONNECT is answered. */
  static async connect(port, { eio = 4 } = {}) {
    const ws = await RawWs.open(port, eioPath(eio, "transport=websocket"));
    const client = new SioClient(ws, eio);
    await withTimeout(client.connected, 10000, "the Socket.IO CONNECT answer");
    return client;
  }

  constructor(ws, eio) {
    this.ws = ws;
    this.eio = eio;
    this.nextId = 1;
    this.acks = new Map();
    this.handlers = new Map();
    let connected;
    this.connected = new Promise((resolve, reject) => {
      connected = { resolve, reject };
    });
    ws.closed.then(() => {
      connected.reject(new Error("closed before CONNECT was answered"));
      for (const { reject } of this.acks.values()) reject(new Error("connection closed"));
      this.acks.clear();
    });
    ws.onMessage = (opcode, payload) => {
      if (opcode !== OP_TEXT) return;
      const text = payload.toString();
      if (text === "2") {
        ws.sendText("3");
      } else if (text.startsWith("0")) {
        // Engine.IO OPEN: join `/` (v5 needs the CONNECT; a v4 server connects `/` itself).
        if (eio === 4) ws.sendText("40");
      } else if (text.startsWith("40")) {
        connected.resolve();
      } else if (text.startsWith("42")) {
        const m = /^42(\d*)(\[.*)$/s.exec(text);
        if (!m) return;
        const [event, ...args] = JSON.parse(m[2]);
        const fn = this.handlers.get(event);
        if (fn) fn(args, m[1] === "" ? null : Number(m[1]));
      } else if (text.startsWith("43")) {
        const m = /^43(\d+)(\[.*)$/s.exec(text);
        if (!m) return;
        const pending = this.acks.get(Number(m[1]));
        if (pending) {
          this.acks.delete(Number(m[1]));
          pending.resolve(JSON.parse(m[2]));
        }
      }
    };
  }

  on(event, fn) {
    this.handlers.set(event, fn);
  }

  emit(event, ...args) {
    return this.ws.sendText(`42${JSON.stringify([event, ...args])}`);
  }

  emitAck(event, ...args) {
    const id = this.nextId++;
    const answer = new Promise((resolve, reject) => this.acks.set(id, { resolve, reject }));
    this.ws.sendText(`42${id}${JSON.stringify([event, ...args])}`);
    return withTimeout(answer, 10000, `the ack of ${event}`);
  }

  /** The round trip of one `echo` with ack, in milliseconds. */
  async echoMs(payload = "ping") {
    const t = performance.now();
    await this.emitAck("echo", payload);
    return performance.now() - t;
  }

  close() {
    this.ws.destroy();
  }
}

/** Connects `n` Socket.IO clients, `concurrency` at a time. */
export function connectMany(port, n, { eio = 4, concurrency = 50 } = {}) {
  return pool(n, concurrency, () => SioClient.connect(port, { eio }));
}

/** The number of sockets of `/` the server API (`--api-key KEY`) lists, in `rooms` if given. */
export async function countSockets(port, key, rooms = []) {
  const res = await request(port, "POST", "/api/fetch_sockets", {
    headers: { Authorization: `Bearer ${key}`, "Content-Type": "application/json" },
    body: JSON.stringify({ rooms }),
  });
  if (res.status !== 200) throw new Error(`fetch_sockets answered ${res.status}: ${res.body}`);
  const answer = JSON.parse(res.body);
  const list = Array.isArray(answer) ? answer : answer.sockets;
  if (!Array.isArray(list)) throw new Error(`fetch_sockets: unexpected answer ${res.body.slice(0, 200)}`);
  return list.length;
}
