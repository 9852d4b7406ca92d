// The story, end to end: examples/django started with its own run.sh (Django on gunicorn behind
// nginx, socketlet, two `dramatiq` commands of two worker processes each, a redis-server), and
// people in headless Chromium (Debian's /usr/bin/chromium, driven by playwright-core):
//
// 1. an anonymous page is refused (CONNECT_ERROR "log in first" from the connect hook, a Django
//    view), and so is a logged-in page whose session is gone when it reconnects;
// 2. alice and bob log in (two browser contexts) and open VMs at the same time, over polling only
//    (the story's IE10) and then over WebSocket only, through nginx: each sees the live progress
//    and the results of their own VMs only; alice's legacy-1 (a broken image) is retried once,
//    then shown failed. Measured: login to last result, and what each VM cost (CPU of every
//    process, socketlet's packets, hook calls);
// 3. alice's connection drops mid-way (the test closes the transport): the page reconnects and,
//    socketlet running with --recovery-secs, gets its socket back with every event it missed;
//    then she reloads the page mid-way: Django renders the jobs' state from the database and the
//    new socket gets the rest (the workers send to the room user:<id>, not to a socket);
// 4. a dramatiq worker process is SIGKILLed mid-job: its dramatiq command is restarted, the other
//    jobs finish, and the killed one is shown failed once dramatiq gives up on it (WorkerLost);
// 5. the workers push with python-socketio's RedisManager(write_only=True) instead of the server
//    API (socketlet --redis --python-channel socketio);
// 6. dramatiq on RabbitMQ (the machine's, at 127.0.0.1:5672 or $SOCKETLET_RABBITMQ_URL), skipped
//    with a message when none answers.
// Each stack is stopped as a person would, with ctrl-c (SIGINT to run.sh's process group), and
// nothing of it may be left running. Figures go to tests/e2e/.artifacts/django-story.json.
//
// Environment: SOCKETLET_BIN (default <repo>/target/debug/socketlet). Run through run.sh, which
// installs the example's venv first.

import assert from "node:assert/strict";
import { execFileSync, spawn } from "node:child_process";
import { createWriteStream, existsSync, mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { chromium } from "playwright-core";

import { CHROMIUM, CHROMIUM_ARGS } from "../lib/chromium.mjs";
import { ARTIFACTS_DIR, REPO_ROOT, canConnect, sleep, withTimeout } from "../lib/server.mjs";

const EXAMPLE = join(REPO_ROOT, "examples", "django");
const RABBITMQ_URL = process.env.SOCKETLET_RABBITMQ_URL || "amqp://guest:guest@127.0.0.1:5672/%2f";
/** The simulated provisioner's pace: 4 steps of about this many seconds per VM. */
const VM_STEP_SECONDS = "0.5";
/** How long a stack may take to start (the venv is installed before the tests). */
const START_MS = 90_000;
/** How long a round of VMs may take (a few seconds when all is well). */
const ROUND_MS = 30_000;
/** A killed worker's job: the Redis broker's heartbeat timeout (5 s) plus its maintenance. */
const KILLED_MS = 45_000;
const CLK_TCK = Number(execFileSync("getconf", ["CLK_TCK"]).toString().trim()) || 100;

const USERS = {
  alice: { password: "alice-demo", vms: ["cache-1", "db-1", "legacy-1", "web-1", "web-2"] },
  bob: { password: "bob-demo", vms: ["build-1", "build-2", "ci-runner"] },
};
const TERMINAL = ["done", "failed"];
const figures = { vm_step_seconds: Number(VM_STEP_SECONDS), rounds: [] };

// ---------------------------------------------------------------------------------------------
// Processes

/** pid -> { ppid, pgrp, cpuTicks, start, comm, cmd } for every process, from /proc. */
function processTable() {
  const table = new Map();
  for (const name of readdirSync("/proc")) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const stat = readFileSync(`/proc/${name}/stat`, "utf8");
      const close = stat.lastIndexOf(")");
      const fields = stat.slice(close + 2).split(" ");
      const cmd = readFileSync(`/proc/${name}/cmdline`, "utf8").split("\0").join(" ").trim();
      table.set(Number(name), {
        state: fields[0],
        ppid: Number(fields[1]),
        pgrp: Number(fields[2]),
        cpuTicks: Number(fields[11]) + Number(fields[12]),
        start: fields[19],
        cmd,
      });
    } catch {
      // gone meanwhile
    }
  }
  return table;
}

/** The descendants of `root` (itself included) in `table`. */
function descendants(table, root) {
  const out = new Set([root]);
  let grew = true;
  while (grew) {
    grew = false;
    for (const [pid, p] of table) {
      if (!out.has(pid) && out.has(p.ppid)) {
        out.add(pid);
        grew = true;
      }
    }
  }
  return out;
}

/** What kind of process of the stack `cmd` is. */
function kindOf(cmd) {
  if (/\/socketlet( |$)/.test(cmd)) return "socketlet";
  if (cmd.includes("gunicorn")) return "django (gunicorn)";
  if (cmd.includes("bin/dramatiq")) return "dramatiq";
  if (cmd.startsWith("nginx")) return "nginx";
  if (cmd.includes("redis-server")) return "redis";
  return "other";
}

/** CPU ticks used so far by the live processes of the stack, by kind and by pid. */
function cpuOf(stack) {
  const table = processTable();
  const byPid = new Map();
  for (const pid of descendants(table, stack.pid)) {
    const p = table.get(pid);
    if (p) byPid.set(pid, { kind: kindOf(p.cmd), ticks: p.cpuTicks, start: p.start });
  }
  return byPid;
}

/** CPU milliseconds between two `cpuOf` snapshots, by kind (processes alive in both). */
function cpuDelta(before, after) {
  const out = {};
  for (const [pid, a] of after) {
    const b = before.get(pid);
    const base = b && b.start === a.start ? b.ticks : 0;
    out[a.kind] = (out[a.kind] || 0) + ((a.ticks - base) * 1000) / CLK_TCK;
  }
  return out;
}

/** socketlet's Prometheus counters (socketlet_*; labels kept in the name). */
async function metrics(stack) {
  const text = await (await fetch(`${stack.env.SOCKETLET_URL}/metrics`)).text();
  const out = {};
  for (const line of text.split("\n")) {
    const m = /^(socketlet_[^ ]+) ([0-9.e+-]+)$/.exec(line);
    if (m) out[m[1]] = Number(m[2]);
  }
  return out;
}

/**
 * Starts examples/django/run.sh in a process group of its own with `env`, and resolves once it
 * printed that the console is ready: `{ url, env (its stack.env), pid, log(), stop() }`.
 * `stop()` sends SIGINT to the group, as ctrl-c in a terminal does, and checks that every
 * process of the stack has gone.
 */
async function startStack(label, env = {}) {
  mkdirSync(ARTIFACTS_DIR, { recursive: true });
  const dataDir = join(ARTIFACTS_DIR, `django-${label}`);
  rmSync(dataDir, { recursive: true, force: true });
  const logPath = join(ARTIFACTS_DIR, `django-${label}-run.log`);
  const logFile = createWriteStream(logPath);
  const proc = spawn("bash", [join(EXAMPLE, "run.sh")], {
    detached: true,
    stdio: ["ignore", "pipe", "pipe"],
    env: { ...process.env, PORT: "0", DATA_DIR: dataDir, VM_STEP_SECONDS, ...env },
  });
  let output = "";
  const keep = (chunk) => {
    logFile.write(chunk);
    output += chunk.toString();
  };
  proc.stdout.on("data", keep);
  proc.stderr.on("data", keep);
  const exited = new Promise((r) => proc.once("exit", (code, signal) => r({ code, signal })));
  const killGroup = (sig) => {
    try {
      process.kill(-proc.pid, sig);
    } catch {
      // the group is empty
    }
  };
  // If this test process is interrupted, take the stack down with it (redis-server runs in a
  // session of its own: it is found as run.sh's child).
  const onExit = () => {
    for (const pid of descendants(processTable(), proc.pid)) {
      try {
        process.kill(pid, "SIGKILL");
      } catch {
        // gone
      }
    }
    killGroup("SIGKILL");
  };
  process.once("exit", onExit);

  const started = Date.now();
  try {
    await withTimeout(
      new Promise((resolve, reject) => {
        const check = () => {
          if (/The VM console is ready at/.test(output)) resolve();
        };
        proc.stdout.on("data", check);
        exited.then(({ code, signal }) =>
          reject(new Error(`run.sh exited (code ${code}, signal ${signal}) before it was ready`)),
        );
      }),
      START_MS,
      `examples/django/run.sh (${label}) to be ready`,
    );
  } catch (err) {
    onExit();
    process.removeListener("exit", onExit);
    throw new Error(`${err.message}\n--- ${logPath} (tail) ---\n${output.slice(-3000)}`);
  }
  const stackEnv = Object.fromEntries(
    readFileSync(join(dataDir, "stack.env"), "utf8")
      .trim()
      .split("\n")
      .map((l) => l.split(/=(.*)/s).slice(0, 2)),
  );
  const stack = {
    label,
    url: stackEnv.URL,
    env: stackEnv,
    pid: proc.pid,
    dataDir,
    startMs: Date.now() - started,
    log: () => output,
    logOf: (name) => readFileSync(join(dataDir, "logs", `${name}.log`), "utf8"),
    async stop() {
      const table = processTable();
      const members = [...descendants(table, proc.pid)].map((pid) => [pid, table.get(pid)?.start]);
      const t0 = Date.now();
      killGroup("SIGINT");
      let result;
      try {
        result = await withTimeout(exited, 40_000, `run.sh (${label}) to stop after ctrl-c`);
      } finally {
        process.removeListener("exit", onExit);
      }
      const stopMs = Date.now() - t0;
      // Nothing of the stack left: no process of its group, none of the processes it had.
      await sleep(200);
      const now = processTable();
      const left = members.filter(([pid, start]) => now.get(pid)?.start === start && now.get(pid)?.state !== "Z");
      const inGroup = [...now].filter(([, p]) => p.pgrp === proc.pid && p.state !== "Z");
      if (left.length || inGroup.length) {
        for (const [pid] of [...left, ...inGroup]) {
          try {
            process.kill(pid, "SIGKILL");
          } catch {
            // gone
          }
        }
      }
      assert.deepEqual(
        [...left, ...inGroup].map(([pid]) => `${pid} ${now.get(pid)?.cmd}`),
        [],
        "processes left behind after ctrl-c",
      );
      assert.match(output, /Stopped\. Logs:/, "run.sh says it stopped everything");
      logFile.end();
      return { ...result, stopMs, processes: members.length };
    },
  };
  return stack;
}

// ---------------------------------------------------------------------------------------------
// The browser

let browser;

/** A new browser context (its own cookies: one person) with a page that logs its console. */
async function newPerson(name) {
  const context = await browser.newContext({ viewport: { width: 1100, height: 800 } });
  context.setDefaultTimeout(10_000);
  const page = await context.newPage();
  const consoleLines = [];
  page.on("console", (m) => consoleLines.push(`${m.type()}: ${m.text()}`));
  page.on("pageerror", (e) => consoleLines.push(`pageerror: ${e.message}`));
  return { name, context, page, consoleLines };
}

/** Logs `person` in as `user` on the login page, landing on the VM page with `query`. */
async function logIn(stack, person, user, query = "") {
  const { page } = person;
  const next = encodeURIComponent(`/${query}`);
  await page.goto(`${stack.url}/accounts/login/?next=${next}`);
  await page.fill("#id_username", user);
  await page.fill("#id_password", USERS[user].password);
  await Promise.all([page.waitForURL(`${stack.url}/${query}`), page.click("#login")]);
  await page.waitForSelector("#connection[data-state=connected]");
}

/** Ticks the boxes of `vms` and clicks Open. */
async function open(person, vms) {
  for (const vm of vms) await person.page.check(`#vm-${vm} input[type=checkbox]`);
  await person.page.click("#open");
}

/** Until one of the person's VMs is a quarter done: the workers are under way. */
async function underWay(person) {
  await person.page.waitForFunction(
    () => window.vmConsole.stats.events.some((e) => e.fraction >= 0.25 && e.state === "running"),
    null,
    { timeout: ROUND_MS, polling: 20 },
  );
}

/** Waits until every row of `vms` is done or failed. */
async function waitFinished(person, vms, ms = ROUND_MS) {
  await person.page.waitForFunction(
    ({ vms, terminal }) => vms.every((vm) => terminal.includes(document.getElementById(`vm-${vm}`).dataset.status)),
    { vms, terminal: TERMINAL },
    { timeout: ms, polling: 50 },
  );
}

/** What the page shows and saw: rows, stats, transport. */
function readPage(person) {
  return person.page.evaluate(() => ({
    rows: Object.fromEntries(
      [...document.querySelectorAll("#vms tbody tr")].map((r) => [
        r.dataset.vm,
        {
          status: r.dataset.status,
          job: r.dataset.job,
          fraction: Number(r.dataset.fraction),
          line: r.querySelector(".line").textContent,
          bar: r.querySelector("[role=progressbar]").getAttribute("aria-valuenow"),
        },
      ]),
    ),
    stats: window.vmConsole.stats,
    transport: window.socket.io.engine && window.socket.io.engine.transport.name,
    socketId: window.socket.id,
    connection: document.getElementById("connection").textContent,
    summary: document.getElementById("summary").textContent,
  }));
}

/**
 * Runs `body`; on failure saves a screenshot and the console of each person, then rethrows.
 * Closes the people's browser contexts in any case.
 */
async function recorded(t, stack, people, body) {
  try {
    await body();
  } catch (err) {
    mkdirSync(ARTIFACTS_DIR, { recursive: true });
    for (const p of people) {
      const shot = join(ARTIFACTS_DIR, `django-${stack.label}-${p.name}-failure.png`);
      await withTimeout(p.page.screenshot({ path: shot, fullPage: true }), 10_000, "screenshot").then(
        () => t.diagnostic(`screenshot: ${shot}`),
        () => {},
      );
      t.diagnostic(`${p.name}'s console: ${JSON.stringify(p.consoleLines.slice(-20))}`);
      const state = await withTimeout(readPage(p), 5000, "page state").catch((e) => ({ error: e.message }));
      t.diagnostic(`${p.name}'s page: ${JSON.stringify(state).slice(0, 3000)}`);
    }
    t.diagnostic(`logs: ${join(stack.dataDir, "logs")}`);
    throw err;
  } finally {
    // Their pages go: a user's open tabs all get that user's events, and would count in the next
    // test's figures.
    for (const p of people) await withTimeout(p.context.close(), 10_000, "context close").catch(() => {});
  }
}

/**
 * One person's round checked: their rows ended as `expected` ({vm: "done" | "failed"}), every
 * VM done was seen climbing through its progress steps, and nothing of anybody else's came.
 */
function checkRound(user, state, expected) {
  const own = new Set(USERS[user].vms);
  assert.equal(state.stats.foreign, 0, `${user} got events for VMs that are not theirs`);
  for (const e of state.stats.events) assert.ok(own.has(e.vm), `${user} got an event of ${e.vm}`);
  for (const [vm, want] of Object.entries(expected)) {
    const row = state.rows[vm];
    assert.equal(row.status, want, `${user}'s ${vm}: ${row.line}`);
    const events = state.stats.events.filter((e) => e.id === row.job);
    assert.ok(events.some((e) => e.event === "vm_response"), `${user}'s ${vm}: no vm_response`);
    if (want === "done") {
      const fractions = events.filter((e) => e.event === "vm_progress").map((e) => e.fraction);
      for (const f of [0.25, 0.5, 0.75, 1]) assert.ok(fractions.includes(f), `${vm} progress ${f}: ${fractions}`);
      assert.deepEqual(fractions, [...fractions].sort((a, b) => a - b), `${vm}: progress in order`);
      assert.equal(row.bar, "100");
      assert.match(row.line, /^open at 10\.0\./);
    }
  }
}

// ---------------------------------------------------------------------------------------------

before(async () => {
  assert.ok(existsSync(CHROMIUM), `no Chromium at ${CHROMIUM} (apt-get install chromium)`);
  browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, timeout: 30_000, args: CHROMIUM_ARGS });
});

after(async () => {
  if (browser) await withTimeout(browser.close(), 10_000, "browser close").catch(() => {});
  writeFileSync(join(ARTIFACTS_DIR, "django-story.json"), `${JSON.stringify(figures, null, 2)}\n`);
});

describe("the story on Redis: dramatiq's Redis broker, workers push through socketlet's API", { timeout: 240_000 }, () => {
  let stack;
  const people = [];
  before(async () => {
    stack = await startStack("redis");
    figures.stack_start_ms = stack.startMs;
  });
  after(async () => {
    for (const p of people) await p.context.close().catch(() => {});
    if (stack) {
      const stopped = await stack.stop();
      figures.stack_stop_ms = stopped.stopMs;
      figures.stack_processes = stopped.processes;
    }
  });

  test("an anonymous page is refused, and so is a page whose session has ended", async (t) => {
    const anon = await newPerson("anonymous");
    const bob = await newPerson("bob");
    people.push(anon, bob);
    await recorded(t, stack, [anon, bob], async () => {
      // No session cookie: the connect hook (a Django view) refuses, with its reason.
      await anon.page.goto(`${stack.url}/accounts/login/`);
      await anon.page.addScriptTag({ url: "/socket.io/socket.io.js" });
      const refusal = await anon.page.evaluate(
        () =>
          new Promise((resolve) => {
            const s = io({ reconnection: false });
            s.on("connect", () => resolve({ connected: true }));
            s.on("connect_error", (e) => resolve({ message: e.message, data: e.data, active: s.active }));
          }),
      );
      assert.deepEqual(refusal, { message: "log in first", data: { login: "/accounts/login/" }, active: false });
      // The VM page itself needs a login (Django's login_required).
      await anon.page.goto(`${stack.url}/`);
      assert.match(anon.page.url(), /\/accounts\/login\/\?next=\/$/);

      // bob logs in, then his session ends (logged out elsewhere): the reconnection is refused,
      // and the page says so instead of retrying for ever.
      await logIn(stack, bob, "bob");
      await bob.context.clearCookies();
      await bob.page.evaluate(() => window.socket.io.engine.close());
      await bob.page.waitForSelector("#connection[data-state=refused]");
      const state = await readPage(bob);
      assert.match(state.connection, /^Refused: log in first/);
      assert.equal(state.stats.refused, "log in first");
    });
  });

  for (const transport of ["polling", "websocket"]) {
    test(`alice and bob open VMs at once, through nginx over ${transport} only: each sees their own`, async (t) => {
      const alice = await newPerson("alice");
      const bob = await newPerson("bob");
      people.push(alice, bob);
      const aliceVms = ["web-1", "web-2", "db-1", "legacy-1"];
      const bobVms = ["build-1", "build-2", "ci-runner"];
      await recorded(t, stack, [alice, bob], async () => {
        const cpuStart = cpuOf(stack);
        const t0 = Date.now();
        const query = `?transports=${transport}`;
        await Promise.all([logIn(stack, alice, "alice", query), logIn(stack, bob, "bob", query)]);
        const loggedIn = Date.now();
        // The cost of the VMs themselves: from the click on Open to the last result.
        const m0 = await metrics(stack);
        const cpu0 = cpuOf(stack);
        await Promise.all([open(alice, aliceVms), open(bob, bobVms)]);
        await Promise.all([waitFinished(alice, aliceVms), waitFinished(bob, bobVms)]);
        const cpu1 = cpuOf(stack);
        const m1 = await metrics(stack);

        const a = await readPage(alice);
        const b = await readPage(bob);
        checkRound("alice", a, { "web-1": "done", "web-2": "done", "db-1": "done", "legacy-1": "failed" });
        checkRound("bob", b, { "build-1": "done", "build-2": "done", "ci-runner": "done" });
        // alice's broken image: retried once, then reported failed when dramatiq gave up.
        const legacy = a.stats.events.filter((e) => e.vm === "legacy-1");
        assert.ok(legacy.some((e) => e.state === "retrying"), JSON.stringify(legacy));
        assert.match(a.rows["legacy-1"].line, /^failed: ProvisioningError: broken-centos-6 did not boot$/);
        assert.equal(a.summary, "3 of 4 open, 1 failed");
        assert.equal(b.summary, "3 of 3 open");
        // The transport asked for, all the way (no upgrade away from polling).
        assert.equal(a.transport, transport);
        assert.equal(b.transport, transport);
        for (const s of [a, b]) assert.equal(s.stats.connects, 1);

        // Figures: login to last result, and the cost of each VM.
        const vms = aliceVms.length + bobVms.length;
        const lastResult = Math.max(a.stats.lastResultAt, b.stats.lastResultAt);
        const d = (k) => (m1[k] ?? 0) - (m0[k] ?? 0);
        const cpu = cpuDelta(cpu0, cpu1);
        const perVm = (ms) => Math.round((10 * ms) / vms) / 10;
        const round = {
          transport,
          vms,
          login_to_last_result_ms: lastResult - t0,
          login_ms: loggedIn - t0,
          open_to_last_result_ms: lastResult - loggedIn,
          cpu_ms_per_vm: Object.fromEntries(Object.entries(cpu).map(([k, v]) => [k, perVm(v)])),
          cpu_ms_of_the_two_logins: Object.fromEntries(
            Object.entries(cpuDelta(cpuStart, cpu0)).map(([k, v]) => [k, Math.round(v)]),
          ),
          socketlet_broadcasts_per_vm: d("socketlet_broadcasts_total") / vms,
          socketlet_broadcast_deliveries_per_vm: d("socketlet_broadcast_deliveries_total") / vms,
          socketlet_packets_sent_per_vm: d("socketlet_packets_sent_total") / vms,
          socketlet_packets_received_per_vm: d("socketlet_packets_received_total") / vms,
          socketlet_bytes_sent_per_vm: Math.round(d("socketlet_sent_bytes_total") / vms),
          progress_events_per_vm: (a.stats.progress + b.stats.progress) / vms,
          event_hook_calls: d('socketlet_hook_requests_total{hook="event",outcome="ok"}'),
          connect_hook_calls: d('socketlet_hook_requests_total{hook="connect",outcome="ok"}'),
        };
        figures.rounds.push(round);
        t.diagnostic(JSON.stringify(round));
        // One event hook call per Open; the connect hooks came before (one per page).
        assert.equal(round.event_hook_calls, 2);
        assert.equal(round.connect_hook_calls, 0);
      });
    });
  }

  test("alice's connection drops mid-way: the same socket comes back with what it missed", async (t) => {
    const alice = await newPerson("alice");
    people.push(alice);
    const vms = ["web-1", "db-1", "cache-1"];
    await recorded(t, stack, [alice], async () => {
      await logIn(stack, alice, "alice");
      const first = (await readPage(alice)).socketId;
      await open(alice, vms);
      // Once the workers are under way, the transport goes (a network blip, a proxy restart).
      await underWay(alice);
      const dropped = Date.now();
      await alice.page.evaluate(() => window.socket.io.engine.close());
      await alice.page.waitForFunction(() => window.vmConsole.stats.connects === 2, null, { timeout: 10_000, polling: 20 });
      const back = Date.now();
      await waitFinished(alice, vms);
      const state = await readPage(alice);
      // socketlet --recovery-secs: the socket is the same, in its rooms, and what was sent to
      // it meanwhile arrived after the reconnection: every progress step of every VM.
      checkRound("alice", state, { "web-1": "done", "db-1": "done", "cache-1": "done" });
      assert.equal(state.socketId, first, "the same socket after the reconnection");
      assert.equal(state.stats.recovered, 1);
      const afterwards = state.stats.events.filter((e) => e.connects === 2);
      assert.ok(afterwards.some((e) => e.event === "vm_response"), JSON.stringify(state.stats.events));
      // The recovered socket is whole: its events still reach the event hook.
      await open(alice, ["web-2"]);
      await waitFinished(alice, ["web-2"]);
      assert.equal((await readPage(alice)).rows["web-2"].status, "done");
      figures.reconnect = { reconnected_after_ms: back - dropped, events_after_reconnect: afterwards.length };
      t.diagnostic(JSON.stringify(figures.reconnect));
    });
  });

  test("alice reloads the page mid-way: the new socket gets the rest through her room", async (t) => {
    const alice = await newPerson("alice");
    people.push(alice);
    const vms = ["web-2", "db-1", "cache-1"];
    await recorded(t, stack, [alice], async () => {
      await logIn(stack, alice, "alice");
      const first = (await readPage(alice)).socketId;
      await open(alice, vms);
      await underWay(alice);
      await alice.page.reload();
      await alice.page.waitForSelector("#connection[data-state=connected]");
      // Django rendered the jobs' state from the database: nothing starts from zero again.
      const reloaded = await readPage(alice);
      assert.notEqual(reloaded.socketId, first, "a new socket");
      for (const vm of vms) assert.notEqual(reloaded.rows[vm].status, "idle", `${vm} after the reload`);
      const pending = vms.filter((vm) => !TERMINAL.includes(reloaded.rows[vm].status));
      assert.ok(pending.length >= 1, "something was still opening at the reload");
      await waitFinished(alice, vms);
      const state = await readPage(alice);
      for (const vm of vms) assert.equal(state.rows[vm].status, "done", `${vm}: ${state.rows[vm].line}`);
      // The workers sent to the room user:<id>, which the new socket joined on connecting.
      for (const vm of pending) {
        assert.ok(
          state.stats.events.some((e) => e.vm === vm && e.event === "vm_response"),
          `${vm}'s result reached the new socket`,
        );
      }
    });
  });

  test("a dramatiq worker killed mid-job: the others finish, the killed job is shown failed", async (t) => {
    const alice = await newPerson("alice");
    people.push(alice);
    const vms = ["web-1", "web-2", "db-1", "cache-1"];
    await recorded(t, stack, [alice], async () => {
      await logIn(stack, alice, "alice");
      await open(alice, vms);
      // A job that has just started on some worker process: that process dies.
      const victim = await alice.page.waitForFunction(
        () => window.vmConsole.stats.events.find((e) => e.state === "running" && e.fraction === 0.25)?.worker,
        null,
        { timeout: ROUND_MS, polling: 10 },
      );
      const worker = await victim.jsonValue();
      const pid = Number(worker.split(":").pop());
      assert.ok(kindOf(processTable().get(pid)?.cmd ?? "") === "dramatiq", `${worker} is a dramatiq worker`);
      process.kill(pid, "SIGKILL");
      const killed = Date.now();
      // The jobs that were running on it then: dramatiq will not open them twice.
      const before = await readPage(alice);
      const lost = vms.filter((vm) => {
        const last = before.stats.events.filter((e) => e.vm === vm).at(-1);
        return last && last.worker === worker && last.state === "running";
      });
      assert.ok(lost.length >= 1);

      await waitFinished(alice, vms, KILLED_MS);
      const finished = Date.now();
      const state = await readPage(alice);
      const expected = Object.fromEntries(vms.map((vm) => [vm, lost.includes(vm) ? "failed" : "done"]));
      checkRound("alice", state, expected);
      for (const vm of lost) {
        assert.match(
          state.rows[vm].line,
          new RegExp(`^failed: WorkerLost: the worker opening ${vm} \\(${worker}\\) stopped before it finished`),
        );
      }
      // The dramatiq command of the killed process stopped its other workers (gracefully) and
      // was started again by run.sh.
      const groups = [stack.logOf("dramatiq-1"), stack.logOf("dramatiq-2")].join("\n");
      assert.match(groups, new RegExp(`Worker with PID ${pid} exited unexpectedly`));
      assert.match(groups, /run\.sh: dramatiq-\d exited \(code \d+\); starting it again/);
      figures.killed_worker = {
        jobs_lost: lost.length,
        jobs_finished_elsewhere: vms.length - lost.length,
        kill_to_all_reported_ms: finished - killed,
      };
      t.diagnostic(JSON.stringify(figures.killed_worker));
    });
  });
});

describe("python-socketio's RedisManager(write_only=True) instead of the server API", { timeout: 120_000 }, () => {
  let stack;
  let bob;
  before(async () => {
    stack = await startStack("redis-manager", { SOCKETLET_PUSH: "redis" });
  });
  after(async () => {
    if (bob) await bob.context.close().catch(() => {});
    if (stack) await stack.stop();
  });

  test("bob's VMs over WebSocket, progress and results published by the workers on Redis", async (t) => {
    bob = await newPerson("bob");
    const vms = ["build-1", "build-2", "ci-runner"];
    await recorded(t, stack, [bob], async () => {
      assert.match(stack.log(), /workers reach the browsers through: redis/);
      await logIn(stack, bob, "bob", "?transports=websocket");
      await open(bob, vms);
      await waitFinished(bob, vms);
      const state = await readPage(bob);
      checkRound("bob", state, { "build-1": "done", "build-2": "done", "ci-runner": "done" });
      // Nothing went through the server API, which this socketlet does not even serve: the
      // workers published on its Redis.
      const api = await fetch(`${stack.env.SOCKETLET_URL}/api/openapi.json`);
      assert.equal(api.status, 404);
    });
  });
});

/** Whether RabbitMQ answers at the host and port of RABBITMQ_URL. */
async function rabbitmqReachable() {
  const m = /@([^:/]+):(\d+)/.exec(RABBITMQ_URL) || /:\/\/([^:/]+):(\d+)/.exec(RABBITMQ_URL);
  if (!m || !["127.0.0.1", "localhost"].includes(m[1])) return false;
  return canConnect(Number(m[2]));
}

const reachable = await rabbitmqReachable();

test("the README's nginx block for Django is the example's", () => {
  // Every directive of the README's `location /socket.io/` (in "Coming from Django") is in the
  // nginx.conf that run.sh runs, so the migration guide shows what the suite tests.
  const readme = readFileSync(join(REPO_ROOT, "README.md"), "utf8");
  const block = [...readme.matchAll(/```nginx\n([\s\S]*?)```/g)]
    .map((m) => m[1])
    .find((b) => b.includes("location /socket.io/") && b.includes("location / {"));
  assert.ok(block, "the README has the nginx block of the Django example");
  const directives = (text, location) => {
    const body = text.slice(text.indexOf(`location ${location} {`));
    return body
      .slice(body.indexOf("{") + 1, body.indexOf("}"))
      .split("\n")
      .map((l) => l.replace(/#.*/, "").trim())
      .filter((l) => l && !l.startsWith("proxy_pass"));
  };
  const conf = readFileSync(join(EXAMPLE, "nginx.conf"), "utf8");
  for (const location of ["/socket.io/", "/"]) {
    const have = directives(conf, location);
    for (const d of directives(block, location)) assert.ok(have.includes(d), `nginx.conf's ${location} has ${d}`);
  }
});

describe("dramatiq's RabbitMQ broker", { timeout: 120_000 }, () => {
  const queue = `socketlet_django_${process.pid}_${Date.now() % 100000}`;
  let stack;
  let alice;
  before(async () => {
    if (reachable) stack = await startStack("rabbitmq", { DRAMATIQ_BROKER_URL: RABBITMQ_URL, DRAMATIQ_QUEUE: queue });
  });
  after(async () => {
    if (alice) await alice.context.close().catch(() => {});
    if (stack) await stack.stop();
    if (reachable) {
      // The queues dramatiq declared (durable) go: this is the machine's RabbitMQ.
      execFileSync(join(EXAMPLE, ".venv", "bin", "python"), [
        "-c",
        "import sys, pika\n" +
          "c = pika.BlockingConnection(pika.URLParameters(sys.argv[1])); ch = c.channel()\n" +
          "for q in sys.argv[2:]: ch.queue_delete(q)\n" +
          "c.close()",
        RABBITMQ_URL,
        queue,
        `${queue}.DQ`,
        `${queue}.XQ`,
      ]);
    }
  });

  test("alice's VMs through RabbitMQ, a retry on its delay queue included", { skip: !reachable && `SKIPPED: no RabbitMQ at ${RABBITMQ_URL} (set SOCKETLET_RABBITMQ_URL)` }, async (t) => {
    alice = await newPerson("alice");
    const vms = ["web-1", "legacy-1"];
    await recorded(t, stack, [alice], async () => {
      assert.match(stack.log(), /broker amqp:\/\/guest:\*\*\*@/, "the password is not printed");
      await logIn(stack, alice, "alice");
      await open(alice, vms);
      await waitFinished(alice, vms);
      const state = await readPage(alice);
      checkRound("alice", state, { "web-1": "done", "legacy-1": "failed" });
      assert.ok(state.stats.events.some((e) => e.vm === "legacy-1" && e.state === "retrying"));
    });
  });
});
