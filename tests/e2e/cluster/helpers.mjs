// Shared helpers of the cluster suite: free ports, a private redis-server, a private nginx, socketlet
// nodes (the e2e server with --redis), the Node socket.io server of node_server.mjs, Python
// emitters, and clients of both protocol generations. Everything a test starts is registered in an
// `Env`, whose `cleanup()` (called from an `after` hook) stops it whatever happened; a process-exit
// hook kills whatever is left if the test process itself is interrupted. Every wait is bounded.

import { execFile, spawn } from "node:child_process";
import {
  createWriteStream,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import net from "node:net";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { io as ioV4 } from "socket.io-client";
import ioV2 from "socket.io-client-v2";

export const HERE = dirname(fileURLToPath(import.meta.url));
export const REPO_ROOT = resolve(HERE, "..", "..", "..");
export const SERVER_BIN =
  process.env.SOCKETLET_E2E_SERVER || join(REPO_ROOT, "target", "debug", "examples", "e2e_server");
export const SOCKETLET_BIN =
  process.env.SOCKETLET_BIN || join(REPO_ROOT, "target", "debug", "socketlet");
export const ARTIFACTS_DIR =
  process.env.SOCKETLET_E2E_ARTIFACTS || join(REPO_ROOT, "tests", "e2e", ".artifacts");
/** python-socketio 5.x + redis (JSON message queue). */
export const PY5 = join(HERE, ".venv", "bin", "python");
/** python-socketio 4.5.1 + redis (pickled message queue). */
export const PY451 = join(HERE, ".venv-4.5.1", "bin", "python");
export const REDIS_SERVER = process.env.REDIS_SERVER || "redis-server";
export const REDIS_CLI = process.env.REDIS_CLI || "redis-cli";
export const NGINX = process.env.NGINX || "nginx";

/** Default timeout (ms) of one wait: an ack, an event, a connection. */
export const WAIT_MS = 5000;
/** How long a process gets to become ready. */
export const STARTUP_MS = 10000;

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// ---------------------------------------------------------------------------------------------
// Child processes

/** Every live child, so that an interrupted test process does not leave servers behind. */
const live = new Set();
function killLeftovers() {
  for (const child of live) {
    try {
      // nginx's master stops its workers on SIGTERM; the others are killed outright.
      child.proc.kill(child.stopSignal === "SIGTERM" ? "SIGTERM" : "SIGKILL");
    } catch {
      // already gone
    }
  }
}
process.on("exit", killLeftovers);
for (const sig of ["SIGINT", "SIGTERM", "SIGHUP"]) {
  process.once(sig, () => {
    killLeftovers();
    process.exit(128 + ({ SIGHUP: 1, SIGINT: 2, SIGTERM: 15 }[sig] ?? 0));
  });
}

/** Rejects with a clear message if `promise` does not settle within `ms`. */
export function withTimeout(promise, ms, what) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

let counter = 0;

/**
 * Spawns a long-running process, its stdout and stderr going to
 * `tests/e2e/.artifacts/cluster-<label>-<pid>-<n>.log`. With `ready` (a regexp), resolves once a
 * stdout line matches (to the match); with `readyPort`, once that TCP port accepts connections.
 * Resolves to `{ proc, logPath, match, alive(), log(), stop() }`.
 */
function spawnProcess(
  cmd,
  args,
  { label, env, ready, readyPort, stopSignal = "SIGKILL", cwd } = {},
) {
  mkdirSync(ARTIFACTS_DIR, { recursive: true });
  counter += 1;
  const logPath = join(ARTIFACTS_DIR, `cluster-${label}-${process.pid}-${counter}.log`);
  const log = createWriteStream(logPath);
  log.write(`$ ${cmd} ${args.join(" ")}\n`);
  const proc = spawn(cmd, args, {
    stdio: ["ignore", "pipe", "pipe"],
    env: { ...process.env, ...env },
    cwd,
  });
  const child = { proc, stopSignal };
  live.add(child);
  let tail = "";
  const keep = (chunk) => {
    log.write(chunk);
    tail = (tail + chunk.toString()).slice(-4000);
  };
  proc.stderr.on("data", keep);
  const exited = new Promise((r) => proc.once("exit", (code, signal) => r({ code, signal })));
  exited.then(() => {
    live.delete(child);
    log.end();
  });
  const alive = () => proc.exitCode === null && proc.signalCode === null;
  const handle = {
    proc,
    logPath,
    alive,
    /** The process's output so far (stdout and stderr), as written to the log. */
    log: () => readFileSync(logPath, "utf8"),
    /** Stops the process (stopSignal, then SIGKILL after 5 s) and resolves once it exited. */
    stop: async () => {
      if (alive()) proc.kill(stopSignal);
      try {
        await withTimeout(exited, 5000, `${label} (pid ${proc.pid}) to exit`);
      } catch {
        if (alive()) proc.kill("SIGKILL");
        await withTimeout(exited, 5000, `${label} (pid ${proc.pid}) to exit after SIGKILL`);
      }
    },
    exited,
  };
  return new Promise((resolvePromise, reject) => {
    let done = false;
    const fail = (msg) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      if (alive()) proc.kill("SIGKILL");
      proc.stdout.destroy();
      proc.stderr.destroy();
      reject(new Error(`${label}: ${msg}\n--- output (tail; full log: ${logPath}) ---\n${tail}`));
    };
    const succeed = (match) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      resolvePromise({ ...handle, match });
    };
    const timer = setTimeout(() => fail(`not ready within ${STARTUP_MS} ms`), STARTUP_MS);
    proc.once("error", (err) => fail(`could not start ${cmd}: ${err.message}`));
    proc.once("exit", (code, signal) =>
      fail(`exited before being ready (code ${code}, signal ${signal})`),
    );
    const rl = createInterface({ input: proc.stdout });
    rl.on("line", (line) => {
      keep(`${line}\n`);
      if (ready && !done) {
        const m = ready.exec(line);
        if (m) succeed(m);
      }
    });
    if (readyPort) {
      (async () => {
        while (!done) {
          if (await canConnect(readyPort)) return succeed(null);
          await sleep(50);
        }
      })();
    }
  });
}

/** Whether 127.0.0.1:`port` accepts a TCP connection. */
export function canConnect(port) {
  return new Promise((r) => {
    const s = net.connect({ host: "127.0.0.1", port });
    s.setTimeout(500);
    s.once("connect", () => {
      s.destroy();
      r(true);
    });
    s.once("error", () => r(false));
    s.once("timeout", () => {
      s.destroy();
      r(false);
    });
  });
}

/** A TCP port that was free on 127.0.0.1 a moment ago. */
export function freePort() {
  return new Promise((resolvePromise, reject) => {
    const srv = net.createServer();
    srv.once("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const { port } = srv.address();
      srv.close(() => resolvePromise(port));
    });
  });
}

// ---------------------------------------------------------------------------------------------
// The environment of one test file

/** Everything one test file started; `cleanup()` stops it all, in reverse order. */
export class Env {
  constructor() {
    this.cleanups = [];
  }

  /** Registers `fn` to run at cleanup. */
  defer(fn) {
    this.cleanups.push(fn);
  }

  async cleanup() {
    const errors = [];
    for (const fn of this.cleanups.splice(0).reverse()) {
      try {
        await fn();
      } catch (err) {
        errors.push(err);
      }
    }
    if (errors.length)
      throw new AggregateError(
        errors,
        `cleanup failed: ${errors.map((e) => e.message).join("; ")}`,
      );
  }

  /**
   * Starts a private redis-server on 127.0.0.1 (a free port, or `port`), without persistence.
   * The handle can `kill()` it (SIGKILL), `shutdown()` it (`redis-cli shutdown nosave`) and
   * `restart()` it on the same port.
   */
  async redis({ port } = {}) {
    port ??= await freePort();
    const start = async () => {
      // The port may still be held for a moment by the previous instance.
      const deadline = Date.now() + 5000;
      for (;;) {
        try {
          return await spawnProcess(
            REDIS_SERVER,
            ["--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
            { label: `redis-${port}`, ready: /Ready to accept connections/ },
          );
        } catch (err) {
          if (Date.now() > deadline || !/exited before being ready/.test(err.message)) throw err;
          await sleep(100);
        }
      }
    };
    const handle = { port, url: `redis://127.0.0.1:${port}`, current: await start() };
    handle.kill = async () => {
      handle.current.proc.kill("SIGKILL");
      await withTimeout(handle.current.exited, 5000, "redis-server to die");
    };
    handle.shutdown = async () => {
      await run(REDIS_CLI, ["-p", String(port), "shutdown", "nosave"], {
        timeout: 5000,
        allowFail: true,
      });
      await withTimeout(handle.current.exited, 5000, "redis-server to shut down");
    };
    /** Freezes redis-server (SIGSTOP): connections stay open, nothing answers (a partition). */
    handle.freeze = () => handle.current.proc.kill("SIGSTOP");
    handle.thaw = () => handle.current.proc.kill("SIGCONT");
    handle.restart = async () => {
      if (handle.current.alive()) await handle.kill();
      handle.current = await start();
    };
    this.defer(async () => {
      handle.thaw();
      await handle.current.stop();
    });
    return handle;
  }

  /**
   * Starts a private nginx (`nginx -c <conf> -p <tmpdir>`, `daemon off`, everything it writes in
   * the temp dir) in front of `upstreams` (ports on 127.0.0.1). `balance` is the load-balancing
   * directive of the sticky upstream (default: a consistent hash of the X-Sticky header). Also
   * serves a round-robin (not sticky) upstream on `roundRobinPort`, as a control.
   * Every response carries `X-Upstream: <the node's address>`.
   */
  async nginx({ upstreams, balance = "hash $http_x_sticky consistent;", readTimeout = "60s" }) {
    const port = await freePort();
    const roundRobinPort = await freePort();
    const http = testHttpBlock({ port, roundRobinPort, upstreams, balance, readTimeout });
    const handle = await this.nginxWith(http, [port, roundRobinPort]);
    return {
      ...handle,
      port,
      url: `http://127.0.0.1:${port}`,
      roundRobinUrl: `http://127.0.0.1:${roundRobinPort}`,
    };
  }

  /**
   * Starts a private nginx with `http` as the contents of its `http {}` block (after the
   * harness's own log and temp paths), and waits until every port of `ports` accepts connections.
   */
  async nginxWith(http, ports) {
    const dir = mkdtempSync(join(tmpdir(), "socketlet-nginx-"));
    this.defer(() => rmSync(dir, { recursive: true, force: true }));
    const conf = harnessConfig(dir, http);
    const confPath = join(dir, "nginx.conf");
    writeFileSync(confPath, conf);
    const handle = await spawnProcess(
      NGINX,
      ["-c", confPath, "-p", dir, "-e", join(dir, "error.log")],
      {
        label: `nginx-${ports[0]}`,
        readyPort: ports[0],
        stopSignal: "SIGTERM",
      },
    );
    this.defer(() => handle.stop());
    // All listeners are opened together; wait for the others too.
    const deadline = Date.now() + 5000;
    for (const p of ports.slice(1)) {
      while (!(await canConnect(p))) {
        if (Date.now() > deadline) throw new Error(`nginx did not open port ${p}`);
        await sleep(50);
      }
    }
    return {
      ...handle,
      dir,
      conf,
      errorLog: () => readFileSync(join(dir, "error.log"), "utf8"),
      accessLog: () => readFileSync(join(dir, "access.log"), "utf8"),
    };
  }

  /** Starts a socketlet node (the e2e server) on a free port, in the cluster of `redisUrl`. */
  async socketlet({ redisUrl, args = [], label = "socketlet", env = {} }) {
    if (!existsSync(SERVER_BIN)) {
      throw new Error(
        `e2e server binary not found at ${SERVER_BIN}; build it with ` +
          "`cargo build -p socketlet --example e2e_server` or set SOCKETLET_E2E_SERVER",
      );
    }
    const all = ["--port", "0", ...(redisUrl ? ["--redis", redisUrl] : []), ...args];
    const handle = await spawnProcess(SERVER_BIN, all, {
      label,
      ready: /^LISTENING (\d+)\s*$/,
      env: { RUST_LOG: process.env.RUST_LOG || "info,socketlet_redis=debug", ...env },
    });
    this.defer(() => handle.stop());
    const port = Number(handle.match[1]);
    return { ...handle, port, url: `http://127.0.0.1:${port}`, label };
  }

  /**
   * Starts the `socketlet` binary (SOCKETLET_BIN, default target/debug/socketlet) on a free port of
   * 127.0.0.1 with `args`.
   */
  async binary({ args = [], label = "binary" }) {
    if (!existsSync(SOCKETLET_BIN)) {
      throw new Error(
        `socketlet binary not found at ${SOCKETLET_BIN}; build it with ` +
          "`cargo build -p socketlet-cli` or set SOCKETLET_BIN",
      );
    }
    const handle = await spawnProcess(SOCKETLET_BIN, ["--addr", "127.0.0.1:0", ...args], {
      label,
      ready: /^socketlet listening on http:\/\/127\.0\.0\.1:(\d+)/,
      env: { RUST_LOG: process.env.RUST_LOG || "info" },
    });
    this.defer(() => handle.stop());
    const port = Number(handle.match[1]);
    return { ...handle, port, url: `http://127.0.0.1:${port}`, label };
  }

  /** Starts node_server.mjs: Node's socket.io 4.8 with @socket.io/redis-adapter. */
  async nodeServer({ redisUrl, label = "node-server", args = [] }) {
    const handle = await spawnProcess(
      process.execPath,
      [join(HERE, "node_server.mjs"), "--redis", redisUrl, ...args],
      {
        label,
        ready: /^LISTENING (\d+)\s*$/,
        cwd: HERE,
      },
    );
    this.defer(() => handle.stop());
    const port = Number(handle.match[1]);
    return { ...handle, port, url: `http://127.0.0.1:${port}`, label };
  }

  /** A tracker of client sockets, all closed at cleanup. */
  clients() {
    const c = new Clients();
    this.defer(() => c.closeAll());
    return c;
  }
}

/** The whole nginx.conf: the harness's process settings, paths in `dir`, and `http` inside `http {}`. */
function harnessConfig(dir, http) {
  // As root, nginx would run its workers as `nobody`, who cannot write in the temp dir.
  const user = typeof process.getuid === "function" && process.getuid() === 0 ? "user root;\n" : "";
  return `# Written by tests/e2e/cluster/helpers.mjs for one test; everything nginx writes stays in ${dir}.
${user}daemon off;
worker_processes 1;
pid ${dir}/nginx.pid;
error_log ${dir}/error.log info;

events {
    worker_connections 4096;
}

http {
    access_log ${dir}/access.log;
    client_body_temp_path ${dir}/client_body;
    proxy_temp_path ${dir}/proxy;
    fastcgi_temp_path ${dir}/fastcgi;
    uwsgi_temp_path ${dir}/uwsgi;
    scgi_temp_path ${dir}/scgi;

${http}
}
`;
}

/** The `http {}` contents of the tests' own nginx: a sticky upstream and a round-robin control. */
function testHttpBlock({ port, roundRobinPort, upstreams, balance, readTimeout }) {
  const servers = upstreams.map((p) => `        server 127.0.0.1:${p};`).join("\n");
  const location = (upstream) => `
        location /socket.io/ {
            proxy_pass http://${upstream};
            # WebSocket: HTTP/1.1 to the node, and the upgrade headers passed on.
            proxy_http_version 1.1;
            proxy_set_header Upgrade $http_upgrade;
            proxy_set_header Connection $connection_upgrade;
            proxy_set_header Host $http_host;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto $scheme;
            # Longer than pingInterval + pingTimeout (25 s + 20 s by default).
            proxy_read_timeout ${readTimeout};
            proxy_send_timeout ${readTimeout};
            # Long-polling responses go to the client as soon as they come.
            proxy_buffering off;
            # Which node answered (lets the tests check where a client landed).
            add_header X-Upstream $upstream_addr always;
        }`;
  return `    # "Connection: upgrade" only for WebSocket handshakes.
    map $http_upgrade $connection_upgrade {
        default upgrade;
        ''      close;
    }

    upstream socketlet {
        ${balance}
${servers}
    }

    # The control: no stickiness at all.
    upstream socketlet_round_robin {
${servers}
    }

    server {
        listen 127.0.0.1:${port};
${location("socketlet")}
    }

    server {
        listen 127.0.0.1:${roundRobinPort};
${location("socketlet_round_robin")}
    }`;
}

// ---------------------------------------------------------------------------------------------
// One-shot commands (redis-cli, Python emitters)

/**
 * Runs a command to completion (killed after `timeout` ms); resolves to `{ code, stdout, stderr }`,
 * or rejects on a non-zero exit unless `allowFail`.
 */
export function run(cmd, args, { timeout = 20000, allowFail = false, env } = {}) {
  return new Promise((resolvePromise, reject) => {
    execFile(
      cmd,
      args,
      {
        timeout,
        killSignal: "SIGKILL",
        env: { ...process.env, ...env },
        maxBuffer: 16 * 1024 * 1024,
      },
      (err, stdout, stderr) => {
        const code = err ? (typeof err.code === "number" ? err.code : -1) : 0;
        if (err && !allowFail) {
          reject(
            new Error(
              `${cmd} ${args.join(" ")} failed (${err.message})\n--- stdout ---\n${stdout}\n--- stderr ---\n${stderr}`,
            ),
          );
        } else {
          resolvePromise({ code, stdout, stderr });
        }
      },
    );
  });
}

/** Runs one of the Python scripts of py/ with `python`. */
export function python(pythonBin, script, args, opts) {
  if (!existsSync(pythonBin)) {
    return Promise.reject(
      new Error(`no Python at ${pythonBin}; run tests/e2e/cluster/run.sh (it makes the venvs)`),
    );
  }
  return run(pythonBin, [join(HERE, "py", script), ...args], opts);
}

// ---------------------------------------------------------------------------------------------
// Clients

/** Client options shared by every test: fast reconnection, bounded connect timeout. */
export const BASE_CLIENT_OPTS = {
  reconnectionDelay: 100,
  reconnectionDelayMax: 200,
  randomizationFactor: 0,
  timeout: WAIT_MS,
};

/** Transport options for a setup name: "polling", "websocket" or "upgrade" (the default). */
export function transportsFor(setup) {
  if (setup === "polling") return { transports: ["polling"] };
  if (setup === "websocket") return { transports: ["websocket"] };
  return {};
}

/** The client sockets of a test, of either generation. */
export class Clients {
  constructor() {
    this.sockets = [];
  }

  /**
   * Connects a client (`generation` 4 for socket.io-client 4.x, 2 for 2.x) and waits for its
   * `connect` and the server's `welcome` (unless `welcome: false`: servers without one). Resolves
   * to the socket, with `sid` (from `welcome`, or the client's id), `name` and `generation` set.
   */
  async connect(
    url,
    { generation = 4, name, timeout = WAIT_MS, welcome: wantWelcome = true, ...opts } = {},
  ) {
    const make = generation === 2 ? ioV2 : ioV4;
    const socket = make(url, { forceNew: true, ...BASE_CLIENT_OPTS, ...opts, autoConnect: false });
    this.sockets.push(socket);
    socket.generation = generation;
    socket.name = name;
    const welcome = wantWelcome ? waitFor(socket, "welcome", { timeout }) : null;
    welcome?.catch(() => {});
    const connected = waitConnect(socket, { timeout });
    socket.connect();
    await connected;
    socket.sid = wantWelcome ? (await welcome)[0].sid : socket.id;
    return socket;
  }

  /** Disconnects every socket and stops their Managers. */
  closeAll() {
    for (const socket of this.sockets.splice(0)) {
      try {
        socket.disconnect();
        socket.io.reconnection(false);
        if (socket.io.engine) socket.io.engine.close();
      } catch {
        // already closed
      }
    }
  }
}

/** Waits for `connect`; rejects early on `connect_error` (4.x), `error` or `connect_error` (2.x). */
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
    for (const ev of ["error", "connect_error", "connect_timeout"]) {
      handlers[ev] = (err) => {
        cleanup();
        reject(new Error(`${ev} before connect: ${err?.message ?? JSON.stringify(err ?? null)}`));
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
 * Waits for `event` on `emitter` and resolves to the array of its arguments. `filter(...args)`
 * can skip events that do not match.
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
 * Emits `event` with `args` and an ack (works with both generations), resolving to the array of
 * the ack's arguments; rejects after `timeout` ms without an ack.
 */
export function ack(socket, event, args = [], { timeout = WAIT_MS } = {}) {
  return new Promise((resolvePromise, reject) => {
    const timer = setTimeout(
      () =>
        reject(
          new Error(`no ack for "${event}" from ${socket.name ?? socket.sid} within ${timeout} ms`),
        ),
      timeout,
    );
    socket.emit(event, ...args, (...response) => {
      clearTimeout(timer);
      resolvePromise(response);
    });
  });
}

/** Records every `event` received by `socket`, as arrays of arguments. */
export function record(socket, event) {
  const received = [];
  socket.on(event, (...args) => received.push(args));
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
  if (ArrayBuffer.isView(value))
    return Buffer.from(value.buffer, value.byteOffset, value.byteLength);
  throw new TypeError(`not binary: ${Object.prototype.toString.call(value)}`);
}

export const isBinary = (v) => v instanceof ArrayBuffer || ArrayBuffer.isView(v);

/** Replaces every binary value of a structure by `{ $bytes: <hex> }`, for deepStrictEqual. */
export function normalizeBinary(value) {
  if (isBinary(value)) return { $bytes: toBuffer(value).toString("hex") };
  if (Array.isArray(value)) return value.map(normalizeBinary);
  if (value && typeof value === "object") {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, normalizeBinary(v)]));
  }
  return value;
}

/** `fetch-sockets` through `socket`; throws on an `{error}` answer. */
export async function fetchSockets(socket, opts) {
  const [list] = await ack(socket, "fetch-sockets", [], opts);
  if (!Array.isArray(list)) throw new Error(`fetch-sockets answered ${JSON.stringify(list)}`);
  return list;
}
