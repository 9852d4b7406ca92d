// Shared helpers of the gateway suite's Node tests: socketlet nodes (the real binary) whose hooks
// call the example backend (backend.py, Starlette on uvicorn, run with the suite's venv), a private
// redis-server for clusters, socket.io-client 4.x sockets, and calls to the server API with fetch.
// Processes are started with ../lib/server.mjs (their logs: tests/e2e/.artifacts/gateway-node-*.log);
// `Gateway.cleanup()` (called from an `after` hook) stops everything. Every wait is bounded.

import { existsSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { io } from "socket.io-client";
import { WAIT_MS, newSocket, waitConnect } from "../lib/client.mjs";
import { freePort, spawnProcess, startSocketlet } from "../lib/server.mjs";

export { emitAck, normalizeBinary, record, until, waitFor } from "../lib/client.mjs";
export { sleep } from "../lib/server.mjs";

export const HERE = dirname(fileURLToPath(import.meta.url));
/** The suite's venv (run.sh makes it): uvicorn, Starlette and the socketlet package. */
export const PYTHON = join(HERE, ".venv", "bin", "python");
export const REDIS_SERVER = process.env.REDIS_SERVER || "redis-server";
export const API_KEY = "gateway-suite-key";
export const HOOK_SECRET = "gateway-suite-secret";
const LOG_PREFIX = "gateway-node";

/** Nodes with hooks to one backend, which calls node 0's API. */
export class Gateway {
  constructor() {
    this.stops = [];
    this.sockets = [];
  }

  /** Starts `nodes` socketlet nodes (on a private Redis when `redis`) and the backend. */
  static async start({ nodes = 1, redis = false } = {}) {
    if (!existsSync(PYTHON)) {
      throw new Error(`no Python at ${PYTHON}; run tests/e2e/gateway/run.sh (it makes the venv)`);
    }
    const g = new Gateway();
    try {
      const backendPort = await freePort();
      g.backendUrl = `http://127.0.0.1:${backendPort}`;
      const args = [
        "--api-key",
        API_KEY,
        "--hook-secret",
        HOOK_SECRET,
        "--hook-connect",
        `${g.backendUrl}/socketlet/connect`,
        "--hook-event",
        `${g.backendUrl}/socketlet/event`,
        "--hook-disconnect",
        `${g.backendUrl}/socketlet/disconnect`,
      ];
      if (redis) {
        const port = await freePort();
        const server = await spawnProcess(
          REDIS_SERVER,
          ["--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
          { logPrefix: LOG_PREFIX, label: `redis-${port}`, ready: /Ready to accept connections/ },
        );
        g.stops.push(() => server.stop());
        args.push("--redis", `redis://127.0.0.1:${port}`);
      }
      g.nodes = [];
      for (let i = 0; i < nodes; i += 1) {
        const node = await startSocketlet({ args, label: `node${i}`, logPrefix: LOG_PREFIX });
        g.stops.push(() => node.stop());
        g.nodes.push(node);
      }
      const backend = await spawnProcess(
        PYTHON,
        [
          join(HERE, "backend.py"),
          "--port",
          String(backendPort),
          "--secret",
          HOOK_SECRET,
          "--api-url",
          g.nodes[0].url,
          "--api-key",
          API_KEY,
        ],
        { logPrefix: LOG_PREFIX, label: "backend", ready: /^BACKEND LISTENING (\d+)/ },
      );
      g.stops.push(() => backend.stop());
      return g;
    } catch (err) {
      await g.cleanup();
      throw err;
    }
  }

  /** A socket.io-client 4.x socket of node `i` with `auth` (not connected yet). */
  socket(i, { auth, ...opts } = {}) {
    const socket = newSocket(io, this.nodes[i].url, { reconnection: false, auth, ...opts });
    this.sockets.push(socket);
    return socket;
  }

  /** A connected socket of node `i` for the user whose token is `token-<user>`. */
  async connect(i, user, opts = {}) {
    const socket = this.socket(i, { auth: { token: `token-${user}` }, ...opts });
    const connected = waitConnect(socket);
    socket.connect();
    await connected;
    return socket;
  }

  /** Calls the server API of node `i`: resolves to `{ status, body }`. */
  async api(i, method, body) {
    const res = await fetch(`${this.nodes[i].url}/api/${method}`, {
      method: "POST",
      headers: { authorization: `Bearer ${API_KEY}`, "content-type": "application/json" },
      body: JSON.stringify(body),
      signal: AbortSignal.timeout(WAIT_MS),
    });
    return { status: res.status, body: await res.json() };
  }

  /** What the backend's hooks recorded: "connects" or "disconnects". */
  async recorded(kind) {
    const res = await fetch(`${this.backendUrl}/test/${kind}`, {
      signal: AbortSignal.timeout(WAIT_MS),
    });
    return res.json();
  }

  async cleanup() {
    for (const s of this.sockets.splice(0)) {
      try {
        s.disconnect();
      } catch {
        // already closed
      }
    }
    const errors = [];
    for (const stop of this.stops.splice(0).reverse()) {
      try {
        await stop();
      } catch (err) {
        errors.push(err);
      }
    }
    if (errors.length) throw errors[0];
  }
}

/** A user id no other test of this run uses (backend ids: lowercase letters and digits). */
export const uid = (() => {
  let n = 0;
  return (name) => `${name}${process.pid}x${(n += 1)}`;
})();

/** Waits for `connect_error` on `socket` (after `connect()`), resolving to the error. */
export function refusal(socket, { timeout = WAIT_MS } = {}) {
  return new Promise((resolvePromise, reject) => {
    const timer = setTimeout(() => reject(new Error("no connect_error")), timeout);
    socket.once("connect", () => {
      clearTimeout(timer);
      reject(new Error("connected, and a refusal was expected"));
    });
    socket.once("connect_error", (err) => {
      clearTimeout(timer);
      resolvePromise(err);
    });
    socket.connect();
  });
}
