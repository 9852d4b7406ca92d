// The official Socket.IO Admin UI (@socket.io/admin-ui 0.5.1's page, embedded in the `socketlet`
// binary) against a cluster of socketlet binaries, in headless Chromium (Debian's
// /usr/bin/chromium) driven by playwright-core.
//
// The test starts its own redis-server on a free port of 127.0.0.1 and three `socketlet --redis`
// nodes on it, each with --admin-ui and a login (a bcrypt hash of "changeit"): node-a and node-b,
// and node-c with --admin-readonly. socket.io-client 4.x clients (Node) connect to node-a and
// node-b and join a room. Then:
//
// 1. A page opens node-a's /admin-ui/, the person types the server URL and the credentials: the
//    UI lists the sockets of both nodes (node-b's come through Redis), and both servers. One of
//    node-b's clients is disconnected with its row's button: the client sees the server's
//    disconnect, and its row goes. The page is reloaded: the UI comes back with its session id,
//    without the login form, and node-b lets a client in with that session id (the sessions live
//    in Redis, under Node's keys). Every request the page makes goes to 127.0.0.1 (anything else is
//    blocked and fails the test).
// 2. A wrong password: the UI says "Invalid credentials"; a raw client gets Node's
//    "invalid credentials" CONNECT_ERROR.
// 3. node-c, read-only: the UI shows the sockets without disconnect buttons, and a `_disconnect`
//    sent by a raw admin client changes nothing.
//
// Environment: SOCKETLET_BIN (default <repo>/target/debug/socketlet), REDIS_SERVER (default
// redis-server). Screenshots: tests/e2e/.artifacts/admin-ui.png (the sockets, after the
// disconnect), admin-ui-servers.png; on failure, admin-ui-failure.png.

import assert from "node:assert/strict";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { io } from "socket.io-client-v4";

import { ARTIFACTS_DIR, freePort, sleep, spawnProcess, startSocketlet, withTimeout } from "../lib/server.mjs";
import { launchChromium } from "./chromium.mjs";

const REDIS_SERVER = process.env.REDIS_SERVER || "redis-server";
/** bcryptjs' hashSync("changeit", 8). */
const HASH = "$2a$08$l1DGDe7TUX4aO234ptYqnOyaR.SwKnLDl7UGWOYUkEHJxBtRds9HW";
const PASSWORD = "changeit";
/** Timeout (ms) of one wait (a page, an element, a connection). */
const WAIT_MS = 15_000;
const VIEWPORT = { width: 1400, height: 900 };

/** The names of the requests the pages made to anything but this machine (must stay empty). */
const outside = [];

/** A page whose requests may only go to 127.0.0.1. */
async function newPage(context) {
  await context.route("**/*", (route) => {
    const url = new URL(route.request().url());
    if (url.hostname === "127.0.0.1" || url.hostname === "localhost") return route.continue();
    outside.push(url.href);
    return route.abort();
  });
  const page = await context.newPage();
  page.setDefaultTimeout(WAIT_MS);
  return page;
}

/**
 * Connects a socket.io-client 4.x client to `url` (WebSocket only); resolves once connected.
 * `listen(socket)` is called first (events that come with the CONNECT are dispatched at once).
 */
function connect(url, opts = {}, listen = () => {}) {
  const socket = io(url, { transports: ["websocket"], reconnection: false, forceNew: true, ...opts });
  listen(socket);
  return withTimeout(
    new Promise((resolve, reject) => {
      socket.once("connect", () => resolve(socket));
      socket.once("connect_error", (err) => {
        socket.close();
        reject(err);
      });
    }),
    WAIT_MS,
    `a connection to ${url}`,
  );
}

/** The login form: server URL, username, password, Connect. */
async function logIn(page, serverUrl, password = PASSWORD) {
  await page.getByLabel("Server URL").fill(serverUrl);
  await page.getByLabel("Username").fill("admin");
  await page.getByLabel("Password", { exact: true }).fill(password);
  await page.getByRole("button", { name: "Connect" }).click();
}

/** Polls `check` until it holds, for at most WAIT_MS. */
async function until(check, what) {
  const deadline = Date.now() + WAIT_MS;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(100);
  }
}

/** The login form's first field. */
const loginForm = (page) => page.getByLabel("Server URL");

/** Goes to a page of the UI (hash routing: no reload). */
async function show(page, route) {
  await page.evaluate((route) => {
    window.location.hash = route;
  }, route);
}

/** The row of the sockets table that shows `id`. */
const row = (page, id) => page.locator("tbody tr", { hasText: id });

describe("the Socket.IO Admin UI against two socketlet nodes on Redis", { timeout: 150_000 }, () => {
  const cleanups = [];
  let redisUrl;
  const nodes = {};
  const clients = {};

  before(async () => {
    const port = await freePort();
    const redis = await spawnProcess(
      REDIS_SERVER,
      ["--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
      { logPrefix: "browser-admin-ui", label: `redis-${port}`, ready: /Ready to accept connections/ },
    );
    cleanups.push(() => redis.stop());
    redisUrl = `redis://127.0.0.1:${port}`;
    const login = ["--admin-username", "admin", "--admin-password-hash", HASH];
    for (const [name, extra] of [
      ["node-a", []],
      ["node-b", []],
      ["node-c", ["--admin-readonly"]],
    ]) {
      const node = await startSocketlet({
        args: ["--redis", redisUrl, "--admin-ui", ...login, "--admin-server-id", name, ...extra],
        label: name,
        logPrefix: "browser-admin-ui",
        stopSignal: "SIGTERM",
        stopGraceMs: 3000,
        env: { SOCKETLET_SHUTDOWN_GRACE: "0" },
      });
      cleanups.push(() => node.stop());
      nodes[name] = node;
    }
    const page = await fetch(`${nodes["node-a"].url}/admin-ui/`);
    assert.equal(
      page.status,
      200,
      "the binary was built without the Admin UI: npm ci --prefix crates/cli/admin-ui, then rebuild",
    );
    for (const [name, node] of [
      ["a1", "node-a"],
      ["a2", "node-a"],
      ["b1", "node-b"],
      ["b2", "node-b"],
    ]) {
      const socket = await connect(nodes[node].url);
      cleanups.push(() => socket.close());
      // The binary's demo: `join` (room) acks the rooms.
      const rooms = await withTimeout(socket.emitWithAck("join", "lobby"), WAIT_MS, "join");
      assert.ok(rooms.includes("lobby"));
      clients[name] = socket;
    }
  });

  after(async () => {
    for (const fn of cleanups.reverse()) {
      try {
        await fn();
      } catch {
        // already gone
      }
    }
  });

  test("logs in, sees the sockets and servers of both nodes, disconnects a client of the other node", async () => {
    const browser = await launchChromium({ viewport: VIEWPORT });
    const page = await newPage(browser.context);
    try {
      const a = nodes["node-a"];
      await page.goto(`${a.url}/admin-ui/`);
      await logIn(page, a.url);
      await loginForm(page).waitFor({ state: "hidden" });

      await show(page, "#/sockets/");
      // The four clients of `/`, two on each node, each once.
      for (const socket of Object.values(clients)) {
        await row(page, socket.id).waitFor();
        assert.equal(await row(page, socket.id).count(), 1, socket.id);
      }

      await show(page, "#/servers/");
      for (const name of ["node-a", "node-b", "node-c"]) {
        await page.locator("tbody tr", { hasText: name }).waitFor();
      }
      await page.screenshot({ path: join(ARTIFACTS_DIR, "admin-ui-servers.png") });

      // Disconnect b1 (on node-b) from node-a's UI.
      await show(page, "#/sockets/");
      const b1 = clients.b1;
      const id = b1.id;
      const gone = withTimeout(
        new Promise((resolve) => b1.once("disconnect", resolve)),
        WAIT_MS,
        "b1's disconnect",
      );
      // (The click reaches the row too, which opens the socket's page, as in the UI.)
      await row(page, id).locator("button").click();
      assert.equal(await gone, "io server disconnect");
      await show(page, "#/sockets/");
      await until(async () => (await row(page, id).count()) === 0, "b1's row to go");
      await row(page, clients.b2.id).waitFor();
      assert.ok(clients.b2.connected && clients.a1.connected && clients.a2.connected);
      await page.screenshot({ path: join(ARTIFACTS_DIR, "admin-ui.png"), fullPage: true });

      // A reload: the UI reconnects with the session id it was given, no login form.
      const session = await page.evaluate(() => window.localStorage.getItem("session_id"));
      assert.match(session ?? "", /^[0-9a-f]{16}$/, "the UI kept its session id");
      await page.reload();
      await show(page, "#/sockets/");
      await row(page, clients.b2.id).waitFor();
      assert.equal(await loginForm(page).isVisible(), false, "no login form");
      assert.deepEqual(outside, [], "the page asked for nothing outside this machine");
      // The session lives in Redis: the other node knows it too.
      const other = await connect(`${nodes["node-b"].url}/admin`, { auth: { sessionId: session } });
      other.close();
    } catch (err) {
      await page.screenshot({ path: join(ARTIFACTS_DIR, "admin-ui-failure.png") }).catch(() => {});
      throw err;
    } finally {
      await browser.close();
    }
  });

  test("a wrong password is refused", async () => {
    const browser = await launchChromium({ viewport: VIEWPORT });
    const page = await newPage(browser.context);
    try {
      const a = nodes["node-a"];
      await page.goto(`${a.url}/admin-ui/`);
      await logIn(page, a.url, "not the password");
      await page.getByText("Invalid credentials").waitFor();
      assert.ok(await loginForm(page).isVisible(), "the login form stays");
    } catch (err) {
      await page.screenshot({ path: join(ARTIFACTS_DIR, "admin-ui-failure.png") }).catch(() => {});
      throw err;
    } finally {
      await browser.close();
    }
    await assert.rejects(
      connect(`${nodes["node-a"].url}/admin`, { auth: { username: "admin", password: "nope" } }),
      (err) => err.message === "invalid credentials",
    );
  });

  test("read-only: no disconnect button, and a raw _disconnect changes nothing", async () => {
    const c = nodes["node-c"];
    let gotConfig;
    const admin = await connect(
      `${c.url}/admin`,
      { auth: { username: "admin", password: PASSWORD } },
      (socket) => {
        gotConfig = new Promise((resolve) => socket.once("config", resolve));
      },
    );
    try {
      const config = await withTimeout(gotConfig, WAIT_MS, "config");
      assert.deepEqual(config.supportedFeatures, ["AGGREGATED_EVENTS", "ALL_EVENTS"]);
      const a2 = clients.a2;
      let disconnected = false;
      a2.once("disconnect", () => {
        disconnected = true;
      });
      admin.emit("_disconnect", "/", false, a2.id);
      admin.emit("_disconnect", "/", true);
      await sleep(1500);
      assert.equal(disconnected, false);
      assert.ok(a2.connected);
    } finally {
      admin.close();
    }

    const browser = await launchChromium({ viewport: VIEWPORT });
    const page = await newPage(browser.context);
    try {
      await page.goto(`${c.url}/admin-ui/`);
      await logIn(page, c.url);
      await loginForm(page).waitFor({ state: "hidden" });
      await show(page, "#/sockets/");
      await row(page, clients.a2.id).waitFor();
      assert.equal(await row(page, clients.a2.id).locator("button").count(), 0, "no disconnect button");
      assert.deepEqual(outside, []);
    } catch (err) {
      await page.screenshot({ path: join(ARTIFACTS_DIR, "admin-ui-failure.png") }).catch(() => {});
      throw err;
    } finally {
      await browser.close();
    }
  });
});
