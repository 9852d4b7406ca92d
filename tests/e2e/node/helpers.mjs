// Shared helpers of the Node end-to-end suite: the e2e server (../lib/server.mjs), the client
// helpers every JavaScript suite uses (../lib/client.mjs), and one adapter per client generation,
// which says how socket.io-client 4.x and 2.x do what the shared tests of suite.mjs need.

import { io as ioV4 } from "socket.io-client";
import ioV2 from "socket.io-client-v2";
import msgpackParser from "socket.io-msgpack-parser";
import { WAIT_MS, connectSocket, emitAck, newSocket } from "../lib/client.mjs";
import { retryStart, startE2eServer } from "../lib/server.mjs";

export * from "../lib/client.mjs";
export { sleep } from "../lib/server.mjs";

/**
 * Starts the e2e server and resolves once it printed `LISTENING <port>`, to
 * `{ port, url, proc, logPath, stop(), … }` (see startE2eServer). Its output goes to
 * `tests/e2e/.artifacts/node-<label>-<pid>-<n>.log`; `stop()` kills it (SIGKILL).
 */
export function startServer({ port = 0, label = "server", args = [] } = {}) {
  return startE2eServer({ port, label, args, logPrefix: "node" });
}

/** Restarts a server on a fixed port, retrying for a while if the port is not free yet. */
export function startServerOnPort(port, opts = {}) {
  return retryStart(() => startServer({ ...opts, port }));
}

// ---------------------------------------------------------------------------------------------
// The client generations

/**
 * socket.io-client 4.x (Engine.IO v4, Socket.IO protocol v5).
 *
 * The members, the same for both adapters: `io` (the client's `io()`), `protocol` (the welcome's),
 * `credentials(c)` (the client options that hand the connect middleware `c`, e.g. a token),
 * `welcomeAuth(c)` (the welcome's `auth` for them), `refusalEvent` and `refusal(arg)` (how a
 * refused connect arrives, as `{ message, data? }`), `emitAck(socket, event, args, opts)` (resolves
 * to all the ack's arguments), `bytes(...)` (a binary value the client sends as binary),
 * `engineIds` (whether the client computes socket ids from the Engine.IO id), `hasActive` (whether
 * sockets have `active`), `forgetManager(url)` (drops the cached Manager of `io()` without
 * forceNew).
 */
export const V4 = {
  generation: 4,
  title: "socket.io-client 4.x",
  io: ioV4,
  protocol: 5,
  credentials: (c) => ({ auth: c }),
  welcomeAuth: (c = {}) => c,
  refusalEvent: "connect_error",
  refusal: (err) => ({ message: err.message, data: err.data }),
  /** Uses `socket.timeout(ms)`, so a missing ack rejects after `timeout` ms. */
  emitAck(socket, event, args = [], { timeout = WAIT_MS } = {}) {
    return new Promise((resolvePromise, reject) => {
      socket.timeout(timeout).emit(event, ...args, (err, ...response) => {
        if (err) reject(new Error(`no ack for "${event}" within ${timeout} ms: ${err.message}`));
        else resolvePromise(response);
      });
    });
  },
  bytes: (...b) => Uint8Array.of(...b),
  engineIds: false,
  hasActive: true,
  // 4.x does not export its Manager cache; no other test of a 4.x process uses it.
  forgetManager() {},
};

/**
 * socket.io-client 2.x (Engine.IO v3, Socket.IO protocol v4): no `auth` (the token travels in the
 * query string), a middleware refusal arrives as an `error` event with only the message, acks are
 * a plain callback with no timeout, and the client computes `socket.id` itself from the Engine.IO
 * id (`<engine id>` on `/`, `<nsp>#<engine id>` elsewhere), so it must equal the server's id.
 * Its binary detection (has-binary2) knows Buffers and ArrayBuffers, not other typed arrays.
 */
export const V2 = {
  generation: 2,
  title: "socket.io-client 2.x",
  io: ioV2,
  protocol: 4,
  credentials: (c) => ({ query: c }),
  welcomeAuth: () => ({}),
  refusalEvent: "error",
  refusal: (message) => ({ message }),
  /** A callback and a timer (2.x has no `timeout()`). */
  emitAck,
  bytes: (...b) => Buffer.from(b),
  engineIds: true,
  hasActive: false,
  forgetManager(url) {
    const u = new URL(url);
    delete ioV2.managers[`http://${u.hostname}:${u.port}`];
  },
};

/**
 * socket.io-client 4.x with the msgpack parser (socket.io-msgpack-parser 3.x: each packet one
 * msgpack map in a binary frame, binary data inline), against the e2e server started with
 * `--msgpack` (`serverArgs`): the parser is not negotiated, both sides are configured.
 */
export const V4_MSGPACK = {
  ...V4,
  title: "socket.io-client 4.x with socket.io-msgpack-parser",
  io: (url, opts) => ioV4(url, { ...opts, parser: msgpackParser }),
  serverArgs: ["--msgpack"],
  /**
   * The values of `args` this client can send intact: notepack.io (the parser's msgpack) writes
   * an integral number of 2^64 or more as a uint64 modulo 2^64 (1e21 arrives as
   * 3875820019684212736, at any server), so those are left out.
   */
  sendable: (args) => args.filter((a) => !(Number.isInteger(a) && Math.abs(a) >= 2 ** 64)),
};

export const CLIENTS = { v4: V4, v2: V2, "v4-msgpack": V4_MSGPACK };

/**
 * Creates a client socket of `client` (V4 by default; not connected yet: call `socket.connect()`),
 * registered in `tracker` so that `closeAll(tracker)` cleans up. Uses `forceNew` unless
 * `opts.forceNew === false`.
 */
export function makeSocket(tracker, url, opts = {}, client = V4) {
  const socket = newSocket(client.io, url, opts);
  tracker.push(socket);
  return socket;
}

/**
 * Connects a new socket of `client` (V4 by default) and waits for both its `connect` and the
 * server's `welcome`. Resolves to `{ socket, welcome }`.
 */
export async function connectWithWelcome(tracker, url, opts = {}, client = V4) {
  const socket = makeSocket(tracker, url, opts, client);
  return { socket, welcome: await connectSocket(socket) };
}

/** Disconnects every socket in `tracker` and empties it. */
export function closeAll(tracker) {
  for (const socket of tracker.splice(0)) {
    socket.disconnect();
    // Also stop the Manager, which may still be reconnecting (e.g. after a refused connect).
    socket.io.disconnect();
  }
}

/** Promisified emit-with-ack of 4.x resolving to the FIRST ack argument (`socket.timeout().emitWithAck`). */
export async function emitWithAck(socket, event, args = [], { timeout = WAIT_MS } = {}) {
  try {
    return await socket.timeout(timeout).emitWithAck(event, ...args);
  } catch (err) {
    throw new Error(`no ack for "${event}" within ${timeout} ms: ${err.message}`);
  }
}
