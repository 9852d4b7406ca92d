// The VM console of socketlet's demo page in a real browser: headless Chromium (Debian's
// /usr/bin/chromium) driven by playwright-core loads the page served by the `socketlet` binary
// (with its embedded socket.io-client 4.x bundle) and uses the page as a person would:
//
// 1. selects web-1 and db-1 and clicks Open: both rows go queued -> running -> done with full
//    green bars; the summary says both opened; the server then disconnects the client (as the
//    story's server did) and the page explains it. A screenshot of that state is saved to
//    tests/e2e/.artifacts/vm-console.png, or docs/vm-console.png (the README's) with
//    SOCKETLET_UPDATE_SCREENSHOT=1.
// 2. selects legacy-1 (image `broken-*`, which the simulated provisioner always fails) and clicks
//    Open again: the page reconnects first (a new socket), and the row fails with a red bar and
//    the provisioner's error.
//
// Two more servers, each with its own browser:
//
// 3. `--path /realtime`: the page loads the bundle from /realtime/socket.io.js, connects on that
//    path (polling, then WebSocket), and an echo works; nothing is asked of /socket.io/.
// 4. a slow simulated provisioner and `--shutdown-grace 2`: with one VM running and one queued, the
//    server gets SIGTERM. The page shows the `server_shutdown` notice (connection log and VM
//    console); once the server closed the connection, both bars are stopped with "the server shut
//    down before it finished", the summary says the server shut down, and nothing on the page
//    speaks of the deadline ("deadline passed first") or of the story ("as the original app did").
//    Screenshot: tests/e2e/.artifacts/vm-shutdown.png.
//
// Environment: SOCKETLET_BIN (default <repo>/target/debug/socketlet, built with
// `cargo build -p socketlet-cli`). On failure: tests/e2e/.artifacts/vm-console-failure.png,
// demo-path-failure.png or vm-shutdown-failure.png. Run with `node --test` (see run.sh).

import assert from "node:assert/strict";
import { mkdirSync } from "node:fs";
import { dirname, join } from "node:path";
import { after, before, describe, test } from "node:test";

import { ARTIFACTS_DIR, REPO_ROOT, startSocketlet, withTimeout } from "../lib/server.mjs";
import { launchChromium } from "./chromium.mjs";

// The README's screenshot is refreshed only on request (SOCKETLET_UPDATE_SCREENSHOT=1), so that a
// test run leaves the work tree as it found it; otherwise it goes with the other artifacts.
const README_SHOT = process.env.SOCKETLET_UPDATE_SCREENSHOT === "1"
  ? join(REPO_ROOT, "docs", "vm-console.png")
  : join(ARTIFACTS_DIR, "vm-console.png");
/** The VM console after a graceful shutdown (test 4), for people to look at. */
const SHUTDOWN_SHOT = join(ARTIFACTS_DIR, "vm-shutdown.png");
const VIEWPORT = { width: 1280, height: 900 };

/** Timeout (ms) of a single short wait (page load, element, ack). */
const WAIT_MS = 10_000;
/** Timeout (ms) of a whole round of VMs (a fraction of a second at --vm-time-scale 0.05). */
const ROUND_MS = 30_000;

/** The fast, always-succeeding simulated provisioner of the first two tests. */
const FAST_VMS = ["--vm-time-scale", "0.05", "--vm-failure-rate", "0"];

/**
 * Starts the socketlet binary on a free port with `args`; resolves to
 * `{ url, line, logPath, pid, exited, stop() }` once it printed its
 * `socketlet listening on http://127.0.0.1:<port> ...` line (`line`). `exited` resolves to
 * `{ code, signal }`; `stop()` sends SIGTERM, then SIGKILL after 3 s. The log goes to
 * tests/e2e/.artifacts/vm-console-server-<name>-<pid>-<n>.log.
 */
function startServer(name, args) {
  return startSocketlet({
    args,
    label: name,
    logPrefix: "vm-console-server",
    stopSignal: "SIGTERM",
    stopGraceMs: 3000,
  });
}

/** `#rrggbb` -> `rgb(r, g, b)`, as getComputedStyle reports colours. */
function rgb(hex) {
  const m = /^#([0-9a-f]{2})([0-9a-f]{2})([0-9a-f]{2})$/i.exec(hex.trim());
  assert.ok(m, `a #rrggbb colour: ${hex}`);
  return `rgb(${parseInt(m[1], 16)}, ${parseInt(m[2], 16)}, ${parseInt(m[3], 16)})`;
}

/** What a VM row shows: status, fraction, status line, bar fill width (% of track) and colour. */
function readRow(page, name) {
  return page.evaluate((name) => {
    const row = document.getElementById(`vm-${name}`);
    if (!row) return null;
    const bar = row.querySelector("[role=progressbar]");
    const fill = bar && bar.firstElementChild;
    return {
      status: row.dataset.status ?? null,
      fraction: Number(row.dataset.fraction),
      text: row.querySelector(".line")?.textContent.trim() ?? "",
      ariaNow: bar?.getAttribute("aria-valuenow") ?? null,
      widthPct: fill ? (100 * fill.getBoundingClientRect().width) / bar.getBoundingClientRect().width : 0,
      color: fill ? getComputedStyle(fill).backgroundColor : "",
      checked: row.querySelector("input[type=checkbox]")?.checked ?? null,
    };
  }, name);
}

/** Waits until every named row has `status` (bounded). */
async function waitForStatus(page, names, status, ms = ROUND_MS) {
  await page.waitForFunction(
    ({ names, status }) =>
      names.every((n) => document.getElementById(`vm-${n}`)?.dataset.status === status),
    { names, status },
    { timeout: ms, polling: 50 },
  );
}

const cssVar = (page, name) =>
  page.evaluate((name) => getComputedStyle(document.documentElement).getPropertyValue(name), name);

/** Waits (bounded) until `predicate(arg)` holds in the page. */
const waitInPage = (page, predicate, arg, ms = WAIT_MS) =>
  page.waitForFunction(predicate, arg, { timeout: ms, polling: 50 });

/**
 * Starts a server (`name`, `args`) and a headless Chromium for one suite, with `before`/`after`
 * hooks that set them up and tear them down (the browser closed, the server stopped). Returns the
 * suite's state, filled in by `before`: `{ server, page, consoleLines }`, and `step(t, body)`,
 * which runs `body` and, on failure, saves `failureShot` and the page's console and engine state
 * before rethrowing.
 */
function suiteSetup(name, args, failureShot) {
  const env = { server: null, browser: null, page: null, consoleLines: [] };

  before(async () => {
    env.server = await startServer(name, args);
    env.browser = await launchChromium({
      viewport: VIEWPORT,
      colorScheme: "light",
      reducedMotion: "reduce",
    });
    const { context } = env.browser;
    env.page = context.pages()[0] ?? (await context.newPage());
    env.page.on("console", (m) => env.consoleLines.push(`${m.type()}: ${m.text()}`));
    env.page.on("pageerror", (e) => env.consoleLines.push(`pageerror: ${e.message}`));
  });

  after(async () => {
    if (env.browser) await env.browser.close();
    if (env.server) await env.server.stop().catch(() => {});
  });

  /** Runs `body`; on failure saves a screenshot and the page's console before rethrowing. */
  async function step(t, body) {
    const { page, server, consoleLines } = env;
    try {
      await body();
    } catch (err) {
      mkdirSync(ARTIFACTS_DIR, { recursive: true });
      if (page) {
        await withTimeout(
          page.screenshot({ path: failureShot, fullPage: true }),
          WAIT_MS,
          "failure screenshot",
        ).then(
          () => t.diagnostic(`screenshot: ${failureShot}`),
          (e) => t.diagnostic(`failure screenshot failed: ${e.message}`),
        );
      }
      t.diagnostic(`page console: ${JSON.stringify(consoleLines)}`);
      if (page) {
        // A session stuck half-way through the polling -> WebSocket upgrade swallows every emit.
        const engine = await withTimeout(
          page.evaluate(() => {
            const s = window.socket;
            const tr = s && s.io.engine && s.io.engine.transport;
            return s ? { connected: s.connected, transport: tr && tr.name, state: tr && tr.readyState } : null;
          }),
          WAIT_MS,
          "engine state",
        ).catch((e) => ({ error: e.message }));
        t.diagnostic(`client engine: ${JSON.stringify(engine)}`);
        if (engine && engine.transport === "polling" && engine.state === "pausing") {
          t.diagnostic(
            "the client is stuck pausing polling for a WebSocket upgrade: the server never " +
              "released the GET that arrived after its 3probe (see the server log: upgrade timed out)",
          );
        }
      }
      if (server) t.diagnostic(`server log: ${server.logPath}`);
      throw err;
    }
  }

  return { env, step };
}

describe("VM console in Chromium", { timeout: 120_000 }, () => {
  const { env, step } = suiteSetup(
    "console",
    FAST_VMS,
    join(ARTIFACTS_DIR, "vm-console-failure.png"),
  );
  let server;
  let page;
  let consoleLines;
  before(() => ({ server, page, consoleLines } = env));

  let firstSocketId;
  let firstRoundPassed = false;

  test("opens two VMs with live progress, then explains the server's disconnect", (t) =>
    step(t, async () => {
      await page.goto(`${server.url}/`, { timeout: WAIT_MS });
      await page.locator("#vm-list #vm-legacy-1").waitFor({ state: "visible" });
      const provisioner = await page.locator("#vm-provisioner").textContent();
      assert.match(provisioner, /Provisioner: simulated — no real VMs are opened/);
      assert.equal(await page.locator("#vm-list > li.vm").count(), 6, "the six VMs of the catalog");
      const dbSpecs = await page.locator("#vm-db-1 .specs").textContent();
      assert.match(dbSpecs, /8 vCPUs · 16 GiB · postgres-16\.qcow2/);
      assert.ok(await page.locator("#vm-open").isDisabled(), "Open needs a selection");

      firstSocketId = await page.evaluate(() => window.socket.id);
      assert.ok(firstSocketId, "connected");

      // Record every status each row shows (even ones that last a few milliseconds).
      await page.evaluate(() => {
        window.__statuses = {};
        const seen = (row) => {
          const list = (window.__statuses[row.id] ??= []);
          const s = row.dataset.status ?? "";
          if (list[list.length - 1] !== s) list.push(s);
        };
        new MutationObserver((records) => {
          for (const r of records) seen(r.target);
        }).observe(document.getElementById("vm-list"), {
          subtree: true,
          attributes: true,
          attributeFilter: ["data-status"],
        });
        window.__progress = [];
        window.socket.on("vm_progress", (p) => window.__progress.push(p));
      });

      // The existing sections still work next to the console.
      await page.locator("#echo-send").click();
      await page.waitForFunction(
        () => /^Echoed /.test(document.getElementById("echo-result").textContent),
        null,
        { timeout: WAIT_MS },
      );

      await page.locator("#vm-check-web-1").check();
      await page.locator("#vm-check-db-1").check();
      assert.equal((await page.locator("#vm-open").textContent()).trim(), "Open 2 VMs");
      await page.locator("#vm-open").click();

      await waitForStatus(page, ["web-1", "db-1"], "done");
      const green = rgb(await cssVar(page, "--ok"));
      for (const name of ["web-1", "db-1"]) {
        const row = await readRow(page, name);
        assert.equal(row.fraction, 1, `${name} fraction`);
        assert.equal(row.ariaNow, "100", `${name} aria-valuenow`);
        assert.ok(row.widthPct > 99.5, `${name} bar is full: ${row.widthPct}%`);
        assert.equal(row.color, green, `${name} bar is green`);
        assert.match(row.text, /^done\s*opened at 192\.0\.2\.\d+ · took \d/, `${name}: ${row.text}`);
      }
      // The live part: each row went queued -> running -> done, fed by progress messages.
      const statuses = await page.evaluate(() => window.__statuses);
      for (const name of ["web-1", "db-1"]) {
        const seq = statuses[`vm-${name}`] ?? [];
        t.diagnostic(`${name} statuses: ${seq.join(" -> ")}`);
        assert.deepEqual(seq.slice(-3), ["queued", "running", "done"], `${name}: ${seq}`);
      }
      const progress = await page.evaluate(() => window.__progress);
      for (const name of ["web-1", "db-1"]) {
        const messages = progress
          .filter((p) => p.vm === name && p.event === "progress")
          .map((p) => p.message);
        assert.ok(messages.includes("booting"), `${name} progress messages: ${messages}`);
      }
      // The page does not untick the VMs; the checkboxes are usable again.
      assert.equal((await readRow(page, "web-1")).checked, true);

      await page.waitForFunction(
        () => document.getElementById("vm-summary").dataset.state === "ok",
        null,
        { timeout: WAIT_MS },
      );
      const summary = await page.locator("#vm-summary").textContent();
      assert.match(summary, /2 opened, 0 failed/, summary);

      // As in the story, the server disconnects the client once it sent the results.
      const note = page.locator("#vm-disconnect");
      await note.waitFor({ state: "visible" });
      const noteText = await note.textContent();
      assert.match(
        noteText,
        /server closed the connection after sending the results, as the original app did/,
      );
      assert.match(noteText, /io server disconnect/);
      assert.equal(await page.evaluate(() => window.socket.connected), false);
      assert.match(await page.locator("#vm-hint").textContent(), /Open reconnects first/);

      // The README's screenshot: the VM console, finished, in view.
      await page.evaluate(() => {
        const card = document.getElementById("vms");
        window.scrollTo(0, card.getBoundingClientRect().top + window.scrollY - 16);
      });
      mkdirSync(dirname(README_SHOT), { recursive: true });
      await page.screenshot({ path: README_SHOT, animations: "disabled", timeout: WAIT_MS });
      t.diagnostic(`screenshot: ${README_SHOT}`);
      firstRoundPassed = true;
    }));

  test("reconnects for the next Open and shows a failed VM in red", (t) => {
    if (!firstRoundPassed) {
      t.skip("the first round failed");
      return undefined;
    }
    return step(t, async () => {
      await page.locator("#vm-check-web-1").uncheck();
      await page.locator("#vm-check-db-1").uncheck();
      await page.locator("#vm-check-legacy-1").check();
      assert.match(await page.locator("#vm-legacy-1 .specs").textContent(), /broken-centos-6\.qcow2/);
      await page.locator("#vm-open").click();

      await waitForStatus(page, ["legacy-1"], "failed");
      const row = await readRow(page, "legacy-1");
      assert.equal(row.color, rgb(await cssVar(page, "--bad")), "the bar is red");
      assert.ok(row.widthPct > 0, `the bar shows how far it got: ${row.widthPct}%`);
      assert.match(row.text, /failed\s*legacy-1: the guest did not boot \(simulated failure\)/);
      // The rows of the previous round are back to "not opened".
      for (const name of ["web-1", "db-1"]) {
        const other = await readRow(page, name);
        assert.equal(other.status, null, `${name} is not part of this round`);
        assert.equal(other.fraction, 0, `${name} bar is empty`);
      }

      await page.waitForFunction(
        () => document.getElementById("vm-summary").dataset.state === "error",
        null,
        { timeout: WAIT_MS },
      );
      assert.match(await page.locator("#vm-summary").textContent(), /0 opened, 1 failed/);

      // Reconnecting worked: the round ran on a new connection, which the server closed again.
      const log = await page.locator("#conn-events").textContent();
      assert.equal((log.match(/connected as /g) ?? []).length, 2, log);
      assert.equal((log.match(/disconnected: io server disconnect/g) ?? []).length >= 1, true, log);
      await page.locator("#vm-disconnect").waitFor({ state: "visible" });
      const secondSocketId = await page.evaluate(() => {
        const m = [...document.querySelectorAll("#conn-events li")]
          .map((li) => /connected as (\S+)/.exec(li.textContent))
          .filter(Boolean);
        return m[m.length - 1][1];
      });
      assert.notEqual(secondSocketId, firstSocketId, "a new socket");
      assert.deepEqual(consoleLines.filter((l) => l.startsWith("pageerror")), []);
    });
  });
});

describe("demo page on a non-default --path in Chromium", { timeout: 60_000 }, () => {
  const PATH = "/realtime";
  const { env, step } = suiteSetup(
    "path",
    ["--path", PATH, ...FAST_VMS],
    join(ARTIFACTS_DIR, "demo-path-failure.png"),
  );

  test("loads the bundle from the configured path, connects there and echoes", (t) =>
    step(t, async () => {
      const { server, page } = env;
      assert.match(server.line, /\(Socket\.IO at \/realtime,/, server.line);
      const requests = [];
      page.on("request", (r) => requests.push(new URL(r.url()).pathname));

      await page.goto(`${server.url}/`, { timeout: WAIT_MS });
      // Connected, with the transport shown; the client upgrades to WebSocket on the same path.
      await waitInPage(page, () => document.getElementById("status").dataset.state === "connected");
      assert.equal((await page.locator("#state").textContent()).trim(), "connected");
      assert.match(await page.locator("#transport").textContent(), /^(polling|websocket)$/);
      assert.notEqual(await page.locator("#sid").textContent(), "—");
      await waitInPage(page, () => document.getElementById("transport").textContent === "websocket");
      assert.ok(await page.locator("#bundle-missing").isHidden(), "the bundle loaded");
      assert.equal(await page.evaluate(() => window.socket.io.engine.opts.path), "/realtime/");

      await page.locator("#echo-input").fill("hello, /realtime");
      await page.locator("#echo-send").click();
      await waitInPage(page, () => /^Echoed /.test(document.getElementById("echo-result").textContent));
      assert.match(await page.locator("#echo-result").textContent(), /^Echoed "hello, \/realtime" in /);

      // The page names the path it uses, and asked nothing of the default one.
      assert.match(await page.locator("header").textContent(), /\/realtime\/socket\.io\.js/);
      assert.match(await page.locator("#conn-events").textContent(), /\(path \/realtime\)/);
      assert.ok(requests.includes("/realtime/socket.io.js"), JSON.stringify(requests));
      assert.ok(requests.some((p) => p === "/realtime/"), `Engine.IO requests: ${JSON.stringify(requests)}`);
      assert.deepEqual(requests.filter((p) => p.startsWith("/socket.io")), []);
      // The VM console works over it too.
      await page.locator("#vm-list #vm-web-1").waitFor({ state: "visible" });
      assert.deepEqual(env.consoleLines.filter((l) => l.startsWith("pageerror")), []);
    }));
});

describe("VM console during a graceful shutdown in Chromium", { timeout: 90_000 }, () => {
  const GRACE_S = 2;
  // At --vm-time-scale 3 a VM takes 12 s or more; one at a time, so web-2 waits in the queue.
  const { env, step } = suiteSetup(
    "shutdown",
    [
      "--vm-time-scale", "3",
      "--vm-failure-rate", "0",
      "--vm-concurrency", "1",
      "--shutdown-grace", String(GRACE_S),
    ],
    join(ARTIFACTS_DIR, "vm-shutdown-failure.png"),
  );

  test("shows server_shutdown, then stops the bars with the shutdown's wording", (t) =>
    step(t, async () => {
      const { server, page } = env;
      await page.goto(`${server.url}/`, { timeout: WAIT_MS });
      await page.locator("#vm-list #vm-web-2").waitFor({ state: "visible" });
      await waitInPage(page, () => window.socket && window.socket.connected);

      // Record every text the shutdown notice shows and what the socket receives, in order.
      await page.evaluate(() => {
        window.__notices = [];
        const notice = document.getElementById("vm-shutdown");
        const seen = () => {
          if (!notice.hidden) window.__notices.push(notice.textContent);
        };
        new MutationObserver(seen).observe(notice, {
          subtree: true, childList: true, characterData: true, attributes: true,
        });
        window.__events = [];
        window.socket.onAny((event, ...args) => {
          if (event !== "vm_progress") window.__events.push([event, args[0]]);
        });
        window.socket.on("disconnect", (reason) => {
          window.__events.push(["disconnect", reason]);
          window.__disconnectedAt = performance.now();
        });
        window.socket.on("server_shutdown", () => {
          window.__shutdownAt = performance.now();
        });
      });

      await page.locator("#vm-check-web-1").check();
      await page.locator("#vm-check-web-2").check();
      await page.locator("#vm-open").click();
      // web-1 is under way (its bar has moved), web-2 waits for the only slot.
      await waitInPage(page, () => {
        const row = (n) => document.getElementById(`vm-${n}`).dataset;
        return row("web-1").status === "running" && Number(row("web-1").fraction) > 0 &&
          row("web-2").status === "queued";
      }, null, ROUND_MS);
      const before = await readRow(page, "web-1");

      process.kill(server.pid, "SIGTERM");
      const signalled = Date.now();

      // The notice, in the VM console and in the connection log.
      await waitInPage(page, () => window.__notices.length > 0);
      const notices = await page.evaluate(() => window.__notices);
      assert.equal(
        notices[0],
        `The server is shutting down: running VMs get ${GRACE_S} s to finish, then it closes the connection.`,
      );
      await waitInPage(page, () => /server shutting down/.test(document.getElementById("conn-events").textContent));
      assert.match(
        await page.locator("#conn-events").textContent(),
        new RegExp(`server shutting down: running jobs get ${GRACE_S} s to finish`),
      );

      // The server keeps the connection for the grace period, then closes it and exits.
      await waitInPage(page, () => window.__disconnectedAt !== undefined, null, GRACE_S * 1000 + WAIT_MS);
      const exit = await withTimeout(server.exited, WAIT_MS, "socketlet exit after SIGTERM");
      t.diagnostic(`server exited ${JSON.stringify(exit)} ${Date.now() - signalled} ms after SIGTERM`);
      assert.deepEqual(exit, { code: 0, signal: null }, "a clean exit");
      const events = await page.evaluate(() => window.__events);
      t.diagnostic(`events: ${JSON.stringify(events)}`);
      const grace = await page.evaluate(() => window.__disconnectedAt - window.__shutdownAt);
      assert.ok(grace >= GRACE_S * 1000 - 300, `the connection ended ${grace} ms after the notice`);

      // The bars stopped where they were, with the shutdown's wording.
      await waitInPage(page, () => document.getElementById("vm-summary").dataset.state !== "working");
      const warn = rgb(await cssVar(page, "--warn"));
      const web1 = await readRow(page, "web-1");
      assert.equal(web1.status, "stopped", JSON.stringify(web1));
      assert.match(web1.text, /^stopped\s*the server shut down before it finished$/, web1.text);
      assert.ok(web1.fraction >= before.fraction && web1.fraction < 1, `web-1 kept its progress: ${web1.fraction}`);
      assert.ok(web1.widthPct > 0, `web-1's bar shows how far it got: ${web1.widthPct}%`);
      assert.equal(web1.color, warn, "web-1's bar is amber");
      const web2 = await readRow(page, "web-2");
      assert.equal(web2.status, "stopped", JSON.stringify(web2));
      assert.match(web2.text, /^stopped\s*the server shut down before it finished \(it never got a free slot\)$/);
      assert.equal(
        await page.locator('#vm-list [data-status="running"], #vm-list [data-status="queued"]').count(),
        0,
        "no bar is left going",
      );

      const summary = await page.locator("#vm-summary").textContent();
      assert.match(summary, /server shut down/i, summary);
      assert.match(summary, /0 opened, 0 failed, 2 not finished/, summary);
      assert.equal(await page.locator("#vm-summary").getAttribute("data-state"), "error");
      const notice = await page.locator("#vm-shutdown").textContent();
      assert.match(notice, new RegExp(`^The server shut down: it gave running VMs up to ${GRACE_S} s to finish, then the connection ended \\(reason `), notice);
      assert.ok(await page.locator("#vm-disconnect").isHidden(), "no story note");
      assert.match(await page.locator("#conn-events").textContent(), /disconnected: [a-z ]+ \(the server shut down\)/);

      const text = await page.evaluate(() => document.body.innerText);
      for (const wrong of [/deadline passed first/i, /as the original app did/i, /connection lost/i, /at the deadline/i]) {
        assert.doesNotMatch(text, wrong);
      }
      assert.deepEqual(env.consoleLines.filter((l) => l.startsWith("pageerror")), []);

      await page.evaluate(() => {
        const card = document.getElementById("vms");
        window.scrollTo(0, card.getBoundingClientRect().top + window.scrollY - 16);
      });
      await page.screenshot({ path: SHUTDOWN_SHOT, animations: "disabled", timeout: WAIT_MS });
      t.diagnostic(`screenshot: ${SHUTDOWN_SHOT}`);
    }));
});
