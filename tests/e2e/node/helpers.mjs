// Shared helpers of the Node end-to-end suite: starting the e2e server, connecting clients and
// waiting for things with timeouts. Every wait here has a timeout, so a broken server makes a test
// fail instead of hanging.

import { spawn } from "node:child_process";
import { createWriteStream, existsSync, mkdirSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { io } from "socket.io-client";

const HERE = dirname(fileURLToPath(import.meta.url));
export const REPO_ROOT = resolve(HERE, "..", "..", "..");
export const SERVER_BIN =
  process.env.SOCKETLET_E2E_SERVER || join(REPO_ROOT, "target", "debug", "examples", "e2e_server");
export const ARTIFACTS_DIR = join(REPO_ROOT, "tests", "e2e", ".artifacts");

/** Default timeout (ms) of a single wait: an ack, an event, a connection. */
export const WAIT_MS = 5000;
/** How long the server gets to print `LISTENING <port>`. */
export const STARTUP_MS = 10000;

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

let serverCounter = 0;

/**
 * Starts the e2e server and resolves once it printed `LISTENING <port>`.
 *
 * Its stderr goes to `tests/e2e/.artifacts/node-<label>-<n>.log`. Resolves to
 * `{ port, url, proc, logPath, stop() }`; `stop()` kills the process (SIGKILL) and resolves
 * once it has exited.
 */
export function startServer({ port = 0, label = "server", args = [] } = {}) {
  if (!existsSync(SERVER_BIN)) {
    return Promise.reject(
      new Error(
        `e2e server binary not found at ${SERVER_BIN}; ` +
          "build it with `cargo build -p socketlet --example e2e_server` or set SOCKETLET_E2E_SERVER",
      ),
    );
  }
  mkdirSync(ARTIFACTS_DIR, { recursive: true });
  serverCounter += 1;
  const logPath = join(ARTIFACTS_DIR, `node-${label}-${process.pid}-${serverCounter}.log`);
  const log = createWriteStream(logPath);
  const proc = spawn(SERVER_BIN, ["--port", String(port), ...args], {
    stdio: ["ignore", "pipe", "pipe"],
    env: {
      RUST_LOG: "info,socketlet=debug,socketlet_engine=debug,e2e_server=debug",
      ...process.env,
    },
  });
  let stderrTail = "";
  proc.stderr.on("data", (chunk) => {
    log.write(chunk);
    stderrTail = (stderrTail + chunk.toString()).slice(-4000);
  });
  const exited = new Promise((r) => proc.once("exit", (code, signal) => r({ code, signal })));
  exited.then(() => log.end());

  const stop = async () => {
    if (proc.exitCode === null && proc.signalCode === null) proc.kill("SIGKILL");
    await withTimeout(exited, 5000, `server (pid ${proc.pid}) to exit`);
  };

  return new Promise((resolvePromise, reject) => {
    const rl = createInterface({ input: proc.stdout });
    let done = false;
    const fail = (msg) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      proc.kill("SIGKILL");
      // Do not let a stray grandchild holding the pipes keep this test process alive.
      proc.stdout.destroy();
      proc.stderr.destroy();
      reject(new Error(`${msg}\n--- server stderr (tail, full log: ${logPath}) ---\n${stderrTail}`));
    };
    const timer = setTimeout(
      () => fail(`server did not print "LISTENING <port>" within ${STARTUP_MS} ms`),
      STARTUP_MS,
    );
    proc.once("error", (err) => fail(`could not start ${SERVER_BIN}: ${err.message}`));
    proc.once("exit", (code, signal) =>
      fail(`server exited before listening (code ${code}, signal ${signal})`),
    );
    rl.on("line", (line) => {
      const m = /^LISTENING (\d+)\s*$/.exec(line);
      if (!m || done) return;
      done = true;
      clearTimeout(timer);
      const p = Number(m[1]);
      resolvePromise({ port: p, url: `http://127.0.0.1:${p}`, proc, logPath, stop });
    });
  });
}

/**
 * Restarts a server on a fixed port, retrying for a while if the port is not free yet.
 */
export async function startServerOnPort(port, opts = {}) {
  const deadline = Date.now() + 5000;
  for (;;) {
    try {
      return await startServer({ ...opts, port });
    } catch (err) {
      if (Date.now() > deadline || !/exited before listening/.test(err.message)) throw err;
      await sleep(100);
    }
  }
}

/** Rejects with a clear message if `promise` does not settle within `ms`. */
export function withTimeout(promise, ms, what) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
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

/** Waits for the `connect` event; rejects early (with its message) on `connect_error`. */
export function waitConnect(socket, { timeout = WAIT_MS } = {}) {
  return new Promise((resolvePromise, reject) => {
    const cleanup = () => {
      clearTimeout(timer);
      socket.off("connect", onConnect);
      socket.off("connect_error", onError);
    };
    const onConnect = () => {
      cleanup();
      resolvePromise(socket);
    };
    const onError = (err) => {
      // A middleware refusal destroys the socket; a transport error would be retried, but in these
      // tests every connect_error before the expected connect is a failure.
      cleanup();
      reject(new Error(`connect_error: ${err.message} ${JSON.stringify(err.data ?? null)}`));
    };
    const timer = setTimeout(() => {
      cleanup();
      reject(new Error(`timed out after ${timeout} ms waiting for "connect"`));
    }, timeout);
    socket.on("connect", onConnect);
    socket.on("connect_error", onError);
  });
}

/**
 * Emits `event` with `args` and an ack, and resolves to the array of ALL the ack's arguments
 * (unlike `emitWithAck`, which only keeps the first). Uses `socket.timeout(ms)`, so a missing ack
 * rejects after `timeout` ms.
 */
export function emitAck(socket, event, args = [], { timeout = WAIT_MS } = {}) {
  return new Promise((resolvePromise, reject) => {
    socket.timeout(timeout).emit(event, ...args, (err, ...response) => {
      if (err) reject(new Error(`no ack for "${event}" within ${timeout} ms: ${err.message}`));
      else resolvePromise(response);
    });
  });
}

/** Promisified emit-with-ack resolving to the FIRST ack argument (`socket.timeout().emitWithAck`). */
export async function emitWithAck(socket, event, args = [], { timeout = WAIT_MS } = {}) {
  try {
    return await socket.timeout(timeout).emitWithAck(event, ...args);
  } catch (err) {
    throw new Error(`no ack for "${event}" within ${timeout} ms: ${err.message}`);
  }
}

/** Client options shared by every test: fast reconnection, bounded connect timeout. */
export const BASE_CLIENT_OPTS = {
  reconnectionDelay: 100,
  reconnectionDelayMax: 200,
  randomizationFactor: 0,
  timeout: WAIT_MS,
};

/**
 * Creates a client socket (not connected yet: call `socket.connect()`), registered in `tracker` so
 * that `closeAll(tracker)` cleans up. Uses `forceNew` unless `opts.forceNew === false`, so that
 * tests never share the global Manager cache by accident.
 */
export function makeSocket(tracker, url, opts = {}) {
  const socket = io(url, { forceNew: true, ...BASE_CLIENT_OPTS, ...opts, autoConnect: false });
  tracker.push(socket);
  return socket;
}

/**
 * Connects a new socket and waits for both its `connect` and the server's `welcome`.
 * Resolves to `{ socket, welcome }`.
 */
export async function connectWithWelcome(tracker, url, opts = {}) {
  const socket = makeSocket(tracker, url, opts);
  const welcome = waitFor(socket, "welcome");
  const connected = waitConnect(socket);
  socket.connect();
  const [, [payload]] = await Promise.all([connected, welcome]);
  return { socket, welcome: payload };
}

/** Disconnects every socket in `tracker` and empties it. */
export function closeAll(tracker) {
  for (const socket of tracker.splice(0)) {
    socket.disconnect();
    // Also stop the Manager, which may still be reconnecting (e.g. after a refused connect).
    socket.io.disconnect();
  }
}

/** Records every `event` received by `socket`, as arrays of arguments. */
export function record(socket, event) {
  const received = [];
  socket.on(event, (...args) => received.push(args));
  return received;
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
