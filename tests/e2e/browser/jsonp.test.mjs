// JSONP polling (Engine.IO v3) in a real browser: headless Chromium (Debian's /usr/bin/chromium)
// driven by playwright-core loads a page that uses socket.io-client 2.x with `forceJSONP: true`
// and `transports: ["polling"]`, connects to the e2e server (tests/e2e/CONTRACT.md), emits `echo`
// with an ack (unicode, characters JSONP must escape, binary) and answers a server-to-client ack.
// Every Engine.IO request is recorded: the GETs must be <script> loads and the POSTs form
// submissions (`d=...`), all with the `j=` query parameter.
//
// The page and the 2.x bundle come from a tiny HTTP server on 127.0.0.1 with its own port, so the
// Socket.IO server is another origin: it runs with `--cors-origin http://127.0.0.1:<page port>`
// (it checks the Origin header of the form POSTs). Run with `node --test` (see run.sh).

import assert from "node:assert/strict";
import { mkdirSync, readFileSync } from "node:fs";
import { createServer } from "node:http";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { after, before, describe, test } from "node:test";

import { ARTIFACTS_DIR, startE2eServer, withTimeout } from "../lib/server.mjs";
import { launchChromium } from "./chromium.mjs";

const require = createRequire(import.meta.url);
// socket.io-client 2.5.0's browser bundle (this package's dependency).
const BUNDLE = join(
  dirname(require.resolve("socket.io-client/package.json")),
  "dist",
  "socket.io.js",
);

/** Default timeout (ms) of a single wait. */
const WAIT_MS = 5000;

const PAGE = `<!doctype html>
<html>
<head>
<meta charset="utf-8">
<title>socketlet: JSONP polling</title>
<script src="/socket.io.js"></script>
<style>body { font: 14px monospace; margin: 2em; } h1 { font-size: 18px; }
  pre { white-space: pre-wrap; word-break: break-all; }</style>
</head>
<body>
<h1>socketlet e2e: socket.io-client 2.x, forceJSONP, polling only</h1>
<pre id="log"></pre>
<script>
  window.log = (line) => { document.getElementById("log").textContent += line + "\\n"; };
  log("socket.io-client " + (window.io && io.protocol !== undefined ? "protocol " + io.protocol : "missing"));
</script>
</body>
</html>
`;

/** Serves the page and the 2.x bundle; resolves to `{ origin, close() }`. */
function startPageServer() {
  const bundle = readFileSync(BUNDLE);
  const server = createServer((req, res) => {
    const path = new URL(req.url, "http://x").pathname;
    if (path === "/") {
      res.writeHead(200, { "content-type": "text/html; charset=utf-8" });
      res.end(PAGE);
    } else if (path === "/socket.io.js") {
      res.writeHead(200, { "content-type": "application/javascript; charset=utf-8" });
      res.end(bundle);
    } else if (path === "/favicon.ico") {
      res.writeHead(204);
      res.end();
    } else {
      res.writeHead(404, { "content-type": "text/plain" });
      res.end("not found");
    }
  });
  return withTimeout(
    new Promise((r) => server.listen(0, "127.0.0.1", r)),
    WAIT_MS,
    "page server listen",
  ).then(() => ({
    origin: `http://127.0.0.1:${server.address().port}`,
    close: () =>
      withTimeout(
        new Promise((r) => {
          server.close(r);
          server.closeAllConnections?.();
        }),
        WAIT_MS,
        "page server close",
      ),
  }));
}

// What the page does, in the browser: connect with JSONP, take the welcome, echo with an ack,
// answer the server's `question`, disconnect. Binary is handed back as arrays of byte values.
async function inPage({ url, waitMs }) {
  const timeout = (promise, what) => {
    let timer;
    return Promise.race([
      promise.finally(() => clearTimeout(timer)),
      new Promise((_, reject) => {
        timer = setTimeout(() => reject(new Error(`${what}: nothing within ${waitMs} ms`)), waitMs);
      }),
    ]);
  };
  const plain = async (value) => {
    if (value instanceof ArrayBuffer) return { bytes: Array.from(new Uint8Array(value)) };
    if (ArrayBuffer.isView(value)) {
      return {
        bytes: Array.from(new Uint8Array(value.buffer, value.byteOffset, value.byteLength)),
      };
    }
    if (typeof Blob !== "undefined" && value instanceof Blob) {
      return { bytes: Array.from(new Uint8Array(await value.arrayBuffer())) };
    }
    if (Array.isArray(value)) return Promise.all(value.map(plain));
    if (value && typeof value === "object") {
      const out = {};
      for (const [k, v] of Object.entries(value)) out[k] = await plain(v);
      return out;
    }
    return value;
  };

  const socket = io(url, {
    forceJSONP: true,
    transports: ["polling"],
    reconnection: false,
    timeout: waitMs,
  });
  window.socket = socket;
  const questions = [];
  socket.on("question", (q, ack) => {
    questions.push(q);
    ack(`answer to ${q}`);
  });
  const welcome = await timeout(
    new Promise((resolveWelcome, reject) => {
      socket.once("welcome", resolveWelcome);
      socket.once("connect_error", (e) => reject(new Error(`connect_error: ${e && e.message}`)));
      socket.once("error", (e) => reject(new Error(`error: ${e && (e.message || e)}`)));
    }),
    "welcome",
  );
  log(`connected: id ${socket.id}, transport ${socket.io.engine.transport.name}`);
  log(`welcome: ${JSON.stringify(welcome)}`);

  const call = (event, ...args) =>
    timeout(new Promise((r) => socket.emit(event, ...args, (...ack) => r(ack))), `ack of ${event}`);
  const args = [
    "héllo wörld ✓ 日本語 😀🎉👍🏽 🇫🇷",
    'JSONP must escape: "quotes" \\ backslash \n newline \r cr \u2028 ls \u2029 ps </script> ___eio[0]("x");',
    "12:34 colons 5:x",
    0,
    -1.5,
    2 ** 53 - 1,
    true,
    null,
    { nested: { deeper: [1, "two", { three: 3 }, null, [[[]]]] }, ключ: "значение" },
  ];
  const echoed = await call("echo", ...args);
  log(`echo: ${JSON.stringify(echoed)}`);
  const binArgs = [
    "binary ✓",
    new Uint8Array([0, 1, 254, 255]).buffer,
    { nested: [new Uint8Array([7]).buffer] },
  ];
  const echoedBinary = await call("echo", ...binArgs);
  log(`binary echo: ${JSON.stringify(await plain(echoedBinary))}`);
  const asked = await call("ask-client", "what is 6×7? 🤔");
  log(`ask-client: ${JSON.stringify(asked)}`);
  const transport = socket.io.engine.transport.name;
  const id = socket.id;
  socket.close();
  log("closed");
  return {
    id,
    transport,
    welcome,
    args,
    echoed,
    echoedBinary: await plain(echoedBinary),
    asked,
    questions,
  };
}

/**
 * Opens a page of the browser context with recorders: `requests` (every request to the
 * Engine.IO endpoint, iframes included: the JSONP form target), `websockets`, `consoleLines`.
 */
async function openPage(context) {
  const rec = { requests: [], websockets: [], consoleLines: [] };
  const page = await context.newPage();
  page.on("request", (req) => {
    const u = new URL(req.url());
    if (u.pathname.startsWith("/socket.io/")) {
      rec.requests.push({ req, method: req.method(), url: u, type: req.resourceType() });
    }
  });
  page.on("websocket", (ws) => rec.websockets.push(ws.url()));
  page.on("console", (m) => rec.consoleLines.push(`${m.type()}: ${m.text()}`));
  page.on("pageerror", (e) => rec.consoleLines.push(`pageerror: ${e.message}`));
  return { page, ...rec };
}

describe("JSONP polling in Chromium", { timeout: 120_000 }, () => {
  let page0;
  let server;
  let browser;
  let context;

  before(async () => {
    page0 = await startPageServer();
    // Its log: tests/e2e/.artifacts/browser-jsonp-*.log.
    server = await startE2eServer({
      args: ["--cors-origin", page0.origin, "--allow-jsonp"],
      label: "jsonp",
      logPrefix: "browser",
    });
    browser = await launchChromium();
    context = browser.context;
  });

  after(async () => {
    if (browser) await browser.close();
    if (server) await server.stop().catch(() => {});
    if (page0) await page0.close().catch(() => {});
  });

  test("socket.io-client 2.x connects, echoes with acks and answers an ack", async (t) => {
    const { page, requests, websockets, consoleLines } = await openPage(context);
    t.after(() => page.close().catch(() => {}));

    await page.goto(`${page0.origin}/`, { timeout: WAIT_MS * 2 });
    assert.equal(await page.evaluate(() => typeof window.io), "function", "the 2.x bundle loaded");

    let result;
    try {
      result = await withTimeout(
        page.evaluate(inPage, { url: server.url, waitMs: WAIT_MS }),
        WAIT_MS * 6,
        "the page's run",
      );
    } finally {
      mkdirSync(ARTIFACTS_DIR, { recursive: true });
      await withTimeout(
        page.screenshot({ path: join(ARTIFACTS_DIR, "jsonp.png"), fullPage: true }),
        WAIT_MS * 2,
        "screenshot",
      ).catch((e) => t.diagnostic(`screenshot failed: ${e.message}`));
      t.diagnostic(`page console: ${JSON.stringify(consoleLines)}`);
      t.diagnostic(`server log: ${server.logPath}`);
    }

    // What the page got.
    assert.equal(result.transport, "polling");
    assert.deepEqual(result.welcome, { sid: result.id, auth: {}, protocol: 4 });
    assert.deepEqual(result.echoed, result.args);
    assert.deepEqual(result.echoedBinary, [
      "binary ✓",
      { bytes: [0, 1, 254, 255] },
      { nested: [{ bytes: [7] }] },
    ]);
    assert.deepEqual(result.asked, [{ answer: "answer to what is 6×7? 🤔" }]);
    assert.deepEqual(result.questions, ["what is 6×7? 🤔"]);

    // How it got there: JSONP only, i.e. <script> GETs and form POSTs, each with `j=`.
    const summary = requests.map((r) => `${r.method} ${r.type} ${r.url.search}`);
    t.diagnostic(`Engine.IO requests:\n${summary.join("\n")}`);
    assert.deepEqual(websockets, [], "no WebSocket");
    const gets = requests.filter((r) => r.method === "GET");
    const posts = requests.filter((r) => r.method === "POST");
    assert.ok(gets.length >= 2, `handshake and polls are GETs: ${summary}`);
    assert.ok(posts.length >= 3, `echo, binary echo, ack, close are POSTed: ${summary}`);
    assert.equal(gets.length + posts.length, requests.length, summary.join("\n"));
    let sid = null;
    for (const r of requests) {
      const q = r.url.searchParams;
      assert.equal(q.get("EIO"), "3", r.url.href);
      assert.equal(q.get("transport"), "polling", r.url.href);
      assert.match(q.get("j") ?? "", /^\d+$/, `JSONP index in ${r.url.href}`);
      // No binary frames in JSONP: the client asks for base64 packets.
      assert.equal(q.get("b64"), "1", r.url.href);
      if (q.get("sid")) sid = sid ?? q.get("sid");
    }
    assert.equal(sid, result.id, "the session is the socket's (namespace /, Socket.IO v4)");

    for (const r of gets) {
      assert.equal(r.type, "script", `JSONP GET is a <script>: ${r.url.href}`);
      const resp = await r.req.response();
      assert.ok(resp, `response of ${r.url.href}`);
      assert.equal(resp.status(), 200, r.url.href);
      const body = await resp.text();
      const j = r.url.searchParams.get("j");
      assert.ok(
        body.startsWith(`___eio[${j}]("`) && body.endsWith('");'),
        `JSONP body of ${r.url.href}: ${body.slice(0, 120)}`,
      );
      assert.match(resp.headers()["content-type"] ?? "", /javascript/, r.url.href);
    }
    for (const r of posts) {
      assert.equal(r.type, "document", `JSONP POST is a form submission: ${r.url.href}`);
      const headers = await r.req.allHeaders();
      assert.match(
        headers["content-type"] ?? "",
        /^application\/x-www-form-urlencoded/,
        r.url.href,
      );
      assert.equal(headers.origin, page0.origin, "cross-origin form POST carries Origin");
      assert.ok((r.req.postData() ?? "").startsWith("d="), `form field d: ${r.req.postData()}`);
      const resp = await r.req.response();
      assert.ok(resp, `response of ${r.url.href}`);
      assert.equal(resp.status(), 200, r.url.href);
    }
    // One transport, one JSONP callback slot (`___eio[j]`): every request has the same `j`.
    assert.equal(
      new Set(requests.map((r) => r.url.searchParams.get("j"))).size,
      1,
      summary.join("\n"),
    );
  });

  test("form POSTs from an origin the server does not accept are refused", async (t) => {
    // The same page from http://localhost:<port>: another origin than the accepted
    // http://127.0.0.1:<port>. The <script> GETs carry no Origin (the handshake works, the welcome
    // arrives on a GET); the form POSTs do, and the server refuses them.
    const otherOrigin = page0.origin.replace("127.0.0.1", "localhost");
    const { page, requests, consoleLines } = await openPage(context);
    t.after(() => page.close().catch(() => {}));
    await page.goto(`${otherOrigin}/`, { timeout: WAIT_MS * 2 });
    const result = await withTimeout(
      page.evaluate(
        async ({ url, waitMs }) => {
          const socket = io(url, {
            forceJSONP: true,
            transports: ["polling"],
            reconnection: false,
          });
          const welcome = await new Promise((resolveWelcome, reject) => {
            socket.once("welcome", resolveWelcome);
            setTimeout(() => reject(new Error("no welcome")), waitMs);
          });
          log(`welcome: ${JSON.stringify(welcome)}`);
          const acked = await new Promise((resolveAck) => {
            socket.emit("echo", "refused?", () => resolveAck(true));
            setTimeout(() => resolveAck(false), 2000);
          });
          log(`echo acked: ${acked}`);
          socket.close();
          return { welcome, acked };
        },
        { url: server.url, waitMs: WAIT_MS },
      ),
      WAIT_MS * 3,
      "the page's run",
    );
    t.diagnostic(`page console: ${JSON.stringify(consoleLines)}`);
    assert.equal(result.welcome.protocol, 4);
    assert.equal(result.acked, false, "the echo was POSTed from a refused origin: no ack");
    const posts = requests.filter((r) => r.method === "POST");
    assert.ok(posts.length >= 1, "the echo was POSTed");
    for (const r of posts) {
      assert.equal((await r.req.allHeaders()).origin, otherOrigin);
      const resp = await r.req.response();
      assert.ok(resp, `response of ${r.url.href}`);
      assert.equal(resp.status(), 400, `refused origin: ${r.url.href}`);
    }
  });
});
