// Helpers for Socket.IO client sockets of either generation (socket.io-client 4.x and 2.x), shared
// by the JavaScript suites of tests/e2e. No npm dependency: the client libraries stay in each
// suite's own node_modules, and the sockets come in as arguments. Every wait has a timeout, so a
// broken server makes a test fail instead of hanging.

import { sleep } from "./server.mjs";

/** Default timeout (ms) of a single wait: an ack, an event, a connection. */
export const WAIT_MS = 5000;

/** Client options shared by every test: fast reconnection, bounded connect timeout. */
export const BASE_CLIENT_OPTS = {
  reconnectionDelay: 100,
  reconnectionDelayMax: 200,
  randomizationFactor: 0,
  timeout: WAIT_MS,
};

/** A name no other test (or run) uses: `<prefix>-<pid>-<n>`. */
export const uniq = (() => {
  let n = 0;
  return (prefix) => `${prefix}-${process.pid}-${(n += 1)}`;
})();

/**
 * Creates a socket with `io` (the `io()` of either generation), not connected yet (call
 * `socket.connect()` or `connectSocket`). Uses `forceNew` unless `opts.forceNew === false`, so
 * that tests never share the client's global Manager cache by accident.
 */
export function newSocket(io, url, opts = {}) {
  return io(url, { forceNew: true, ...BASE_CLIENT_OPTS, ...opts, autoConnect: false });
}

/**
 * Connects `socket` and waits for its `connect` and, unless `welcome` is false (servers without
 * one), the server's `welcome`; resolves to the welcome's payload (or null).
 */
export async function connectSocket(socket, { timeout = WAIT_MS, welcome = true } = {}) {
  const welcomed = welcome ? waitFor(socket, "welcome", { timeout }) : null;
  welcomed?.catch(() => {}); // awaited below, possibly after a connect failure
  const connected = waitConnect(socket, { timeout });
  socket.connect();
  await connected;
  return welcomed ? (await welcomed)[0] : null;
}

/**
 * Waits for `event` on `emitter` (a socket, a Manager or an Engine) and resolves to the array of
 * its arguments. `filter(...args)` can skip events that do not match.
 */
export function waitFor(emitter, event, { timeout = WAIT_MS, filter } = {}) {
  return new Promise((resolvePromise, reject) => {
    const handler = (...args) => {
      if (filter && !filter(...args)) return;
      clearTimeout(timer);
      emitter.off(event, handler);
      resolvePromise(args);
    };
    const timer = setTimeout(() => {
      emitter.off(event, handler);
      reject(new Error(`timed out after ${timeout} ms waiting for event "${event}"`));
    }, timeout);
    emitter.on(event, handler);
  });
}

/**
 * Waits for `connect`; rejects early on `connect_error` (4.x: a middleware refusal, an invalid
 * namespace), `error` (2.x: the same, in protocol v4) or `connect_timeout` (2.x). In these tests
 * every such event before the expected connect is a failure.
 */
export function waitConnect(socket, { timeout = WAIT_MS } = {}) {
  return new Promise((resolvePromise, reject) => {
    const handlers = {};
    const cleanup = () => {
      clearTimeout(timer);
      for (const [ev, h] of Object.entries(handlers)) socket.off(ev, h);
    };
    handlers.connect = () => {
      cleanup();
      resolvePromise(socket);
    };
    for (const ev of ["connect_error", "error", "connect_timeout"]) {
      handlers[ev] = (err) => {
        cleanup();
        const data = err?.data === undefined ? "" : ` ${JSON.stringify(err.data)}`;
        reject(new Error(`${ev} before connect: ${err?.message ?? JSON.stringify(err ?? null)}${data}`));
      };
    }
    const timer = setTimeout(() => {
      cleanup();
      reject(new Error(`timed out after ${timeout} ms waiting for "connect"`));
    }, timeout);
    for (const [ev, h] of Object.entries(handlers)) socket.on(ev, h);
  });
}

/**
 * Emits `event` with `args` and an ack callback (both generations; 2.x has no `timeout()`), and
 * resolves to the array of ALL the ack's arguments; rejects if no ack arrives within `timeout` ms.
 * `who` names the socket in that error.
 */
export function emitAck(socket, event, args = [], { timeout = WAIT_MS, who } = {}) {
  return new Promise((resolvePromise, reject) => {
    const from = who === undefined ? "" : ` from ${who}`;
    const timer = setTimeout(
      () => reject(new Error(`no ack for "${event}"${from} within ${timeout} ms`)),
      timeout,
    );
    socket.emit(event, ...args, (...response) => {
      clearTimeout(timer);
      resolvePromise(response);
    });
  });
}

/** Records every `event` received by `emitter`, as arrays of arguments. */
export function record(emitter, event) {
  const received = [];
  emitter.on(event, (...args) => received.push(args));
  return received;
}

/** Polls `predicate` every `interval` ms until it is true; rejects after `timeout` ms. */
export async function until(
  predicate,
  { timeout = WAIT_MS, interval = 20, what = "a condition" } = {},
) {
  const deadline = Date.now() + timeout;
  for (;;) {
    if (await predicate()) return;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeout} ms waiting for ${what}`);
    await sleep(interval);
  }
}

/** Copies any binary value (Buffer, typed array, ArrayBuffer) into a Buffer. */
export function toBuffer(value) {
  if (value instanceof ArrayBuffer) return Buffer.from(value);
  if (ArrayBuffer.isView(value)) return Buffer.from(value.buffer, value.byteOffset, value.byteLength);
  throw new TypeError(`not binary: ${Object.prototype.toString.call(value)}`);
}

export const isBinary = (v) => v instanceof ArrayBuffer || ArrayBuffer.isView(v);

/**
 * Replaces every binary value of a (nested) structure by `{ $bytes: <hex> }` so that structures can
 * be compared with deepStrictEqual whatever binary class the client decoded them to.
 */
export function normalizeBinary(value) {
  if (isBinary(value)) return { $bytes: toBuffer(value).toString("hex") };
  if (Array.isArray(value)) return value.map(normalizeBinary);
  if (value && typeof value === "object") {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, normalizeBinary(v)]));
  }
  return value;
}
