// Starting the servers the end-to-end suites talk to, shared by every JavaScript suite of tests/e2e
// (node, cluster, browser, python4/node_clients): each is its own npm package, so this module
// uses Node's standard library only and is imported by relative path.
//
// `spawnProcess` starts a long-running process whose stdout and stderr go to a log file in
// tests/e2e/.artifacts/ and resolves once it is ready (a stdout line matched, or a TCP port
// accepts connections); `startE2eServer` and `startSocketlet` start the two binaries of the
// project that way (see tests/e2e/CONTRACT.md). Every wait is bounded, and a process-exit hook
// kills whatever is still running if the test process itself is interrupted.

import { spawn } from "node:child_process";
import { createWriteStream, existsSync, mkdirSync, readFileSync } from "node:fs";
import net from "node:net";
import { dirname, join, resolve } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";

/** tests/e2e */
export const E2E_DIR = resolve(dirname(fileURLToPath(import.meta.url)), "..");
export const REPO_ROOT = resolve(E2E_DIR, "..", "..");
/** The e2e server (crates/socketlet/examples/e2e_server.rs). */
export const E2E_SERVER_BIN =
  process.env.SOCKETLET_E2E_SERVER || join(REPO_ROOT, "target", "debug", "examples", "e2e_server");
/** The `socketlet` binary (crates/cli). */
export const SOCKETLET_BIN =
  process.env.SOCKETLET_BIN || join(REPO_ROOT, "target", "debug", "socketlet");
export const ARTIFACTS_DIR = process.env.SOCKETLET_E2E_ARTIFACTS || join(E2E_DIR, ".artifacts");

/** How long a process gets to become ready. */
export const STARTUP_MS = 10000;
/** The e2e server's log filter, unless RUST_LOG is set. */
const E2E_RUST_LOG = "info,socketlet=debug,socketlet_engine=debug,e2e_server=debug";

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Rejects with a clear message if `promise` does not settle within `ms`. */
export function withTimeout(promise, ms, what) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

// ---------------------------------------------------------------------------------------------
// Child processes

/** Every live child, so that an interrupted test process does not leave servers behind. */
const live = new Set();
let hooked = false;
function killLeftovers() {
  for (const child of live) {
    try {
      // A process stopped with SIGTERM (nginx's master stops its workers on it) gets SIGTERM; the
      // others are killed outright.
      child.proc.kill(child.stopSignal === "SIGTERM" ? "SIGTERM" : "SIGKILL");
    } catch {
      // already gone
    }
  }
}
function hookExit() {
  if (hooked) return;
  hooked = true;
  process.on("exit", killLeftovers);
  for (const sig of ["SIGINT", "SIGTERM", "SIGHUP"]) {
    process.once(sig, () => {
      killLeftovers();
      process.exit(128 + ({ SIGHUP: 1, SIGINT: 2, SIGTERM: 15 }[sig] ?? 0));
    });
  }
}

/** The message of a process that exited before it was ready (see `retryStart`). */
const EXITED_EARLY = "exited before being ready";
let counter = 0;

/**
 * Spawns a long-running process, its stdout and stderr going to
 * `tests/e2e/.artifacts/<logPrefix>-<label>-<pid>-<n>.log`. With `ready` (a regexp), resolves
 * once a stdout line matches it; with `readyPort`, once that TCP port of 127.0.0.1 accepts
 * connections; rejects (the process killed, the tail of its output in the message) when it exits
 * or errs first, or after `startupMs`. `env` is added to the environment.
 *
 * Resolves to `{ proc, pid, label, logPath, match, line, exited, alive(), log(), stop() }`: `match`
 * and `line` are the `ready` match and its line, `exited` resolves to `{ code, signal }`, `log()`
 * reads the output so far, and `stop()` sends `stopSignal` (then SIGKILL after `stopGraceMs`) and
 * resolves once the process exited.
 */
export function spawnProcess(
  cmd,
  args,
  {
    logPrefix,
    label,
    env,
    cwd,
    ready,
    readyPort,
    stopSignal = "SIGKILL",
    stopGraceMs = 5000,
    startupMs = STARTUP_MS,
  } = {},
) {
  hookExit();
  mkdirSync(ARTIFACTS_DIR, { recursive: true });
  counter += 1;
  const logPath = join(ARTIFACTS_DIR, `${logPrefix}-${label}-${process.pid}-${counter}.log`);
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
    pid: proc.pid,
    label,
    logPath,
    alive,
    exited,
    /** The process's output so far (stdout and stderr), as written to the log. */
    log: () => readFileSync(logPath, "utf8"),
    stop: async () => {
      if (alive()) proc.kill(stopSignal);
      try {
        await withTimeout(exited, stopGraceMs, `${label} (pid ${proc.pid}) to exit`);
      } catch {
        if (alive()) proc.kill("SIGKILL");
        await withTimeout(exited, 5000, `${label} (pid ${proc.pid}) to exit after SIGKILL`);
      }
    },
  };
  return new Promise((resolvePromise, reject) => {
    let done = false;
    const fail = (msg) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      if (alive()) proc.kill("SIGKILL");
      // Do not let a stray grandchild holding the pipes keep this test process alive.
      proc.stdout.destroy();
      proc.stderr.destroy();
      reject(new Error(`${label}: ${msg}\n--- output (tail; full log: ${logPath}) ---\n${tail}`));
    };
    const succeed = (match, line) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      resolvePromise({ ...handle, match, line });
    };
    const timer = setTimeout(() => fail(`not ready within ${startupMs} ms`), startupMs);
    proc.once("error", (err) => fail(`could not start ${cmd}: ${err.message}`));
    proc.once("exit", (code, signal) => fail(`${EXITED_EARLY} (code ${code}, signal ${signal})`));
    createInterface({ input: proc.stdout }).on("line", (line) => {
      keep(`${line}\n`);
      if (ready && !done) {
        const m = ready.exec(line);
        if (m) succeed(m, line);
      }
    });
    if (readyPort) {
      (async () => {
        while (!done) {
          if (await canConnect(readyPort)) return succeed(null, null);
          await sleep(50);
        }
      })();
    }
  });
}

/**
 * Calls `start()` again for up to `ms` while it fails because the process exited before being
 * ready: a server restarted on a fixed port may find it still held for a moment.
 */
export async function retryStart(start, { ms = 5000 } = {}) {
  const deadline = Date.now() + ms;
  for (;;) {
    try {
      return await start();
    } catch (err) {
      if (Date.now() > deadline || !err.message.includes(EXITED_EARLY)) throw err;
      await sleep(100);
    }
  }
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

/** Throws a clear error when the binary `bin` (`what`, built by `build`, or set `envVar`) is missing. */
function needBinary(bin, what, build, envVar) {
  if (!existsSync(bin)) {
    throw new Error(`${what} not found at ${bin}; build it with \`${build}\` or set ${envVar}`);
  }
}

// ---------------------------------------------------------------------------------------------
// The project's servers

/**
 * Starts the e2e server (`--port <port>`, default 0: a free one, then `args`) and resolves once it
 * printed `LISTENING <port>`, to the handle of `spawnProcess` with `port` and `url`. `rustLog` is
 * its RUST_LOG unless the environment sets one; the log file is `<logPrefix>-<label>-…`.
 */
export async function startE2eServer({
  port = 0,
  args = [],
  label = "server",
  logPrefix = "e2e",
  rustLog = E2E_RUST_LOG,
  env = {},
} = {}) {
  needBinary(
    E2E_SERVER_BIN,
    "e2e server binary",
    "cargo build -p socketlet --example e2e_server",
    "SOCKETLET_E2E_SERVER",
  );
  const handle = await spawnProcess(E2E_SERVER_BIN, ["--port", String(port), ...args], {
    logPrefix,
    label,
    ready: /^LISTENING (\d+)\s*$/,
    env: { RUST_LOG: process.env.RUST_LOG || rustLog, ...env },
  });
  const p = Number(handle.match[1]);
  return { ...handle, port: p, url: `http://127.0.0.1:${p}` };
}

/**
 * Starts the `socketlet` binary on a free port of 127.0.0.1 (`--addr 127.0.0.1:0`, then `args`)
 * and resolves once it printed `socketlet listening on http(s)://127.0.0.1:<port> …` (`line`), to the
 * handle of `spawnProcess` with `port` and `url`. Other options go to `spawnProcess`.
 */
export async function startSocketlet({
  args = [],
  label = "binary",
  logPrefix = "socketlet",
  rustLog = "info",
  env = {},
  ...opts
} = {}) {
  needBinary(SOCKETLET_BIN, "socketlet binary", "cargo build -p socketlet-cli", "SOCKETLET_BIN");
  const handle = await spawnProcess(SOCKETLET_BIN, ["--addr", "127.0.0.1:0", ...args], {
    ...opts,
    logPrefix,
    label,
    ready: /^socketlet listening on (https?):\/\/127\.0\.0\.1:(\d+)/,
    env: { RUST_LOG: process.env.RUST_LOG || rustLog, ...env },
  });
  const p = Number(handle.match[2]);
  return { ...handle, port: p, url: `${handle.match[1]}://127.0.0.1:${p}` };
}
