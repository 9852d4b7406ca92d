// Shared helpers of the cluster suite: a private redis-server, a private nginx, socketlet nodes (the
// e2e server with --redis), the Node socket.io server of node_server.mjs, Python emitters, and
// clients of both protocol generations. Everything a test starts is registered in an `Env`, whose
// `cleanup()` (called from an `after` hook) stops it whatever happened. Processes are started with
// ../lib/server.mjs (whose process-exit hook kills whatever is left if the test process itself is
// interrupted; their logs are tests/e2e/.artifacts/cluster-*.log), clients are waited for with
// ../lib/client.mjs. Every wait is bounded.

import { execFile } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { io as ioV4 } from "socket.io-client";
import ioV2 from "socket.io-client-v2";
import { WAIT_MS, connectSocket, emitAck, newSocket } from "../lib/client.mjs";
import {
  canConnect,
  freePort,
  retryStart,
  sleep,
  spawnProcess,
  startE2eServer,
  startSocketlet,
  withTimeout,
} from "../lib/server.mjs";

export {
  normalizeBinary,
  record,
  until,
  waitConnect,
  waitFor,
} from "../lib/client.mjs";
export { freePort, sleep } from "../lib/server.mjs";

export const HERE = dirname(fileURLToPath(import.meta.url));
/** python-socketio 5.x + redis (JSON message queue). */
export const PY5 = join(HERE, ".venv", "bin", "python");
/** python-socketio 4.5.1 + redis (pickled message queue). */
export const PY451 = join(HERE, ".venv-4.5.1", "bin", "python");
export const REDIS_SERVER = process.env.REDIS_SERVER || "redis-server";
export const REDIS_CLI = process.env.REDIS_CLI || "redis-cli";
export const NGINX = process.env.NGINX || "nginx";

/** The logs of everything the cluster tests start: tests/e2e/.artifacts/cluster-<label>-…log. */
const LOG_PREFIX = "cluster";

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
    // The port may still be held for a moment by the previous instance.
    const start = () =>
      retryStart(() =>
        spawnProcess(
          REDIS_SERVER,
          ["--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
          { logPrefix: LOG_PREFIX, label: `redis-${port}`, ready: /Ready to accept connections/ },
        ),
      );
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
        logPrefix: LOG_PREFIX,
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
    const handle = await startE2eServer({
      args: [...(redisUrl ? ["--redis", redisUrl] : []), ...args],
      label,
      logPrefix: LOG_PREFIX,
      rustLog: "info,socketlet_redis=debug",
      env,
    });
    this.defer(() => handle.stop());
    return handle;
  }

  /**
   * Starts the `socketlet` binary (SOCKETLET_BIN, default target/debug/socketlet) on a free port of
   * 127.0.0.1 with `args`.
   */
  async binary({ args = [], label = "binary" }) {
    const handle = await startSocketlet({ args, label, logPrefix: LOG_PREFIX });
    this.defer(() => handle.stop());
    return handle;
  }

  /** Starts node_server.mjs: Node's socket.io 4.8 with @socket.io/redis-adapter. */
  async nodeServer({ redisUrl, label = "node-server", args = [] }) {
    const handle = await spawnProcess(
      process.execPath,
      [join(HERE, "node_server.mjs"), "--redis", redisUrl, ...args],
      { logPrefix: LOG_PREFIX, label, ready: /^LISTENING (\d+)\s*$/, cwd: HERE },
    );
    this.defer(() => handle.stop());
    const port = Number(handle.match[1]);
    return { ...handle, port, url: `http://127.0.0.1:${port}` };
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
    const socket = newSocket(generation === 2 ? ioV2 : ioV4, url, opts);
    this.sockets.push(socket);
    socket.generation = generation;
    socket.name = name;
    const welcome = await connectSocket(socket, { timeout, welcome: wantWelcome });
    socket.sid = welcome ? welcome.sid : socket.id;
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

/**
 * Emits `event` with `args` and an ack (works with both generations), resolving to the array of
 * the ack's arguments; rejects after `timeout` ms without an ack.
 */
export function ack(socket, event, args = [], opts = {}) {
  return emitAck(socket, event, args, { who: socket.name ?? socket.sid, ...opts });
}

/** `fetch-sockets` through `socket`; throws on an `{error}` answer. */
export async function fetchSockets(socket, opts) {
  const [list] = await ack(socket, "fetch-sockets", [], opts);
  if (!Array.isArray(list)) throw new Error(`fetch-sockets answered ${JSON.stringify(list)}`);
  return list;
}
