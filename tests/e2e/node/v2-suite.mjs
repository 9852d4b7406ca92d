// The Node end-to-end suite for socket.io-client 2.x (Engine.IO v3 / Socket.IO protocol v4), run
// once per transport setup (see the v2-*.test.mjs files). Each setup gets its own e2e server process.
//
// The 2.x client API differs from 4.x: no `auth` (the token travels in the query string), a
// middleware refusal arrives as an `error` event (not `connect_error`), acks are a plain callback
// with no timeout (see `emitAckV2`), and the client computes `socket.id` itself from the Engine.IO
// id (`<engine id>` on `/`, `<nsp>#<engine id>` elsewhere), so it must equal the server's id.
//
// Note: in Node, the 2.x client's polling transport always runs in base64 mode (`b64=1`: its
// XMLHttpRequest shim has no `responseType`, so it counts as no XHR2), i.e. text payloads with
// `<utf-16 length>:<packet>` framing and binary as `b4<base64>`. WebSocket sends real binary frames.

import assert from "node:assert/strict";
import { after, afterEach, before, describe, it } from "node:test";
import ioV2 from "socket.io-client-v2";
import {
  BASE_CLIENT_OPTS,
  WAIT_MS,
  closeAll,
  connectWithWelcome,
  emitAck,
  normalizeBinary,
  record,
  sleep,
  startServer,
  waitFor,
} from "./helpers.mjs";

/** Backstop per test; every individual wait has its own, shorter timeout. */
const TEST_TIMEOUT_MS = 30000;

// ---------------------------------------------------------------------------------------------
// 2.x client helpers

/**
 * Creates a 2.x client socket (not connected yet: call `socket.connect()`), registered in
 * `tracker` so that `closeAll(tracker)` cleans up. Uses `forceNew` unless `opts.forceNew === false`.
 */
export function makeSocketV2(tracker, url, opts = {}) {
  const socket = ioV2(url, { forceNew: true, ...BASE_CLIENT_OPTS, ...opts, autoConnect: false });
  tracker.push(socket);
  return socket;
}

/**
 * Waits for `connect`; rejects early on `error` (a middleware refusal or an invalid namespace in
 * protocol v4), `connect_error` or `connect_timeout`.
 */
export function waitConnectV2(socket, { timeout = WAIT_MS } = {}) {
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

/** Connects a new 2.x socket and waits for its `connect` and the server's `welcome`. */
export async function connectWithWelcomeV2(tracker, url, opts = {}) {
  const socket = makeSocketV2(tracker, url, opts);
  const welcome = waitFor(socket, "welcome");
  welcome.catch(() => {}); // awaited below, possibly after a connect failure
  const connected = waitConnectV2(socket);
  socket.connect();
  await connected;
  const [payload] = await welcome;
  return { socket, welcome: payload };
}

/**
 * Emits `event` with `args` and an ack callback (2.x has no `timeout()`), and resolves to the array
 * of all the ack's arguments; rejects if no ack arrives within `timeout` ms.
 */
export function emitAckV2(socket, event, args = [], { timeout = WAIT_MS } = {}) {
  return new Promise((resolvePromise, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`no ack for "${event}" within ${timeout} ms`)),
      timeout,
    );
    socket.emit(event, ...args, (...response) => {
      clearTimeout(timer);
      resolvePromise(response);
    });
  });
}

// ---------------------------------------------------------------------------------------------
// Transport setups

/** The transport setups. `checkTransport` runs on a socket connected with `watchTransport`. */
export const V2_SETUPS = {
  polling: {
    clientOpts: { transports: ["polling"] },
    async checkTransport(socket, watch) {
      assert.equal(socket.io.engine.transport.name, "polling");
      for (let i = 0; i < 3; i += 1) {
        assert.deepEqual(await emitAckV2(socket, "echo", [i]), [i]);
        await sleep(100);
      }
      assert.equal(socket.io.engine.transport.name, "polling");
      assert.equal(watch.upgrading, 0, "polling-only client must not try to upgrade");
    },
  },
  websocket: {
    clientOpts: { transports: ["websocket"] },
    async checkTransport(socket, watch) {
      assert.equal(socket.io.engine.transport.name, "websocket");
      assert.equal(watch.upgrading, 0, "websocket-only client has nothing to upgrade");
    },
  },
  default: {
    // The client default: HTTP long-polling first, then upgrade to WebSocket.
    clientOpts: {},
    async checkTransport(socket, watch) {
      await watch.upgraded; // rejects after a timeout if the upgrade never completes
      assert.equal(socket.io.engine.transport.name, "websocket");
      assert.equal(watch.upgradedTo, "websocket");
    },
  },
};

/** Watches the engine of a 2.x socket whose `connect()` was just called. */
function watchTransport(socket) {
  const engine = socket.io.engine;
  assert.ok(engine, "the Manager must have created its engine on connect()");
  const watch = { upgrading: 0, upgradedTo: null, upgraded: null };
  engine.on("upgrading", () => {
    watch.upgrading += 1;
  });
  watch.upgraded = waitFor(engine, "upgrade", { timeout: WAIT_MS }).then(([transport]) => {
    watch.upgradedTo = transport.name;
  });
  watch.upgraded.catch(() => {}); // only awaited by the setup that expects an upgrade
  return watch;
}

const uniq = (() => {
  let n = 0;
  return (prefix) => `${prefix}-${process.pid}-${(n += 1)}`;
})();

/** Strings, numbers, nested structures and nulls, all JSON-safe. */
const TEXT_ARGS = [
  "plain ascii",
  "héllo wörld — ünïcödé ✓ ß",
  "日本語のテキスト، عربى, עברית",
  "emoji 😀🎉👍🏽 flag 🇫🇷 family 👨‍👩‍👧",
  'control \u001e record separator, \n newline, \t tab, "quotes", \\ backslash, \u0001, colon: 3:42',
  "",
  0,
  -1,
  42,
  3.14159,
  -2.5e-8,
  Number.MAX_SAFE_INTEGER,
  true,
  false,
  null,
  [],
  {},
  {
    nested: { deeper: { deepest: [1, "two", { three: 3 }, null, [false]] } },
    list: [[[]]],
    "ключ": "значение",
    "🔑": "🔒",
  },
  null,
];

/**
 * Defines the 2.x suite for one transport setup.
 * @param {keyof typeof V2_SETUPS} name
 */
export function defineV2Suite(name) {
  const setup = V2_SETUPS[name];
  const clientOpts = setup.clientOpts;
  const test = (title, fn) => it(title, { timeout: TEST_TIMEOUT_MS }, fn);

  describe(`socket.io-client 2.x, transport setup "${name}"`, () => {
    let server;
    const sockets = [];
    const connect = (opts = {}, path = "") =>
      connectWithWelcomeV2(sockets, server.url + path, { ...clientOpts, ...opts });

    before(async () => {
      server = await startServer({ label: `v2-${name}` });
    });
    after(async () => {
      closeAll(sockets);
      await server?.stop();
    });
    afterEach(() => closeAll(sockets));

    test("connects; welcome has protocol 4, auth {} and the client's id; transport as configured", async () => {
      const socket = makeSocketV2(sockets, server.url, {
        ...clientOpts,
        query: { token: "let-me-in", user: "zoë 🐙" },
      });
      const welcome = waitFor(socket, "welcome");
      const connected = waitConnectV2(socket);
      socket.connect();
      const watch = watchTransport(socket);
      const [, [payload]] = await Promise.all([connected, welcome]);

      assert.equal(socket.connected, true);
      assert.equal(typeof socket.id, "string");
      assert.equal(socket.id, socket.io.engine.id, "on / the socket id is the Engine.IO id");
      assert.deepEqual(payload, { sid: socket.id, auth: {}, protocol: 4 });
      await setup.checkTransport(socket, watch);
      assert.deepEqual(await emitAckV2(socket, "echo", ["after transport check"]), [
        "after transport check",
      ]);
    });

    test("a refused connect (query token=reject) gets an error event \"unauthorized\"", async () => {
      const socket = makeSocketV2(sockets, server.url, {
        ...clientOpts,
        query: { token: "reject" },
      });
      const connects = record(socket, "connect");
      const welcomes = record(socket, "welcome");
      const errored = waitFor(socket, "error");
      socket.connect();
      const attempts = record(socket.io, "reconnect_attempt");
      const [err] = await errored;
      assert.equal(err, "unauthorized");
      assert.equal(socket.connected, false);
      // As with Node's socket.io 2.x: the refusal is final, no connect and no reconnection loop.
      await sleep(300);
      assert.equal(connects.length, 0);
      assert.equal(welcomes.length, 0);
      assert.equal(attempts.length, 0);
    });

    test("the query may also be given as a string", async () => {
      const socket = makeSocketV2(sockets, server.url, { ...clientOpts, query: "token=reject&x=1" });
      const errored = waitFor(socket, "error");
      socket.connect();
      assert.deepEqual(await errored, ["unauthorized"]);
      const { socket: ok, welcome } = await connect({ query: "token=fine&x=1" });
      assert.deepEqual(welcome, { sid: ok.id, auth: {}, protocol: 4 });
    });

    test("an unknown namespace gets an error event \"Invalid namespace\"", async () => {
      const socket = makeSocketV2(sockets, `${server.url}/no-such-namespace`, clientOpts);
      const connects = record(socket, "connect");
      const errored = waitFor(socket, "error");
      socket.connect();
      assert.deepEqual(await errored, ["Invalid namespace"]);
      assert.equal(socket.connected, false);
      assert.equal(connects.length, 0);
    });

    test("echo with ack returns exactly the same args (unicode, emoji, numbers, nested, null)", async () => {
      const { socket } = await connect();
      assert.deepEqual(await emitAckV2(socket, "echo", TEXT_ARGS), TEXT_ARGS);
      assert.deepEqual(await emitAckV2(socket, "echo", []), []);
    });

    test("echo without ack emits echo back with the same args", async () => {
      const { socket } = await connect();
      const echoed = waitFor(socket, "echo");
      socket.emit("echo", ...TEXT_ARGS);
      assert.deepEqual(await echoed, TEXT_ARGS);
    });

    test("a burst of emits (several packets per payload) is echoed complete and in order", async () => {
      const { socket } = await connect();
      const received = record(socket, "echo");
      const sent = [];
      for (let i = 0; i < 30; i += 1) {
        const args = [i, `${i}: 😀 ${"é".repeat(i)} 3:x`, { i, s: "👨‍👩‍👧".repeat(i % 4) }];
        sent.push(args);
        socket.emit("echo", ...args);
      }
      const acked = await emitAckV2(socket, "echo", ["marker"]);
      assert.deepEqual(acked, ["marker"]);
      const deadline = Date.now() + WAIT_MS;
      while (received.length < sent.length && Date.now() < deadline) await sleep(20);
      assert.deepEqual(received, sent);
    });

    test("server-to-client ack: ask-client gets the client's answer", async () => {
      const { socket } = await connect();
      const questions = [];
      socket.on("question", (question, ack) => {
        questions.push(question);
        ack(`answer to ${question}`, "ignored second arg");
      });
      const [reply] = await emitAckV2(socket, "ask-client", ["what is 6×7? 🤔"]);
      assert.deepEqual(questions, ["what is 6×7? 🤔"]);
      assert.deepEqual(reply, { answer: "answer to what is 6×7? 🤔" });
    });

    test("binary from the client comes back intact (Buffers nested in args, with and without ack)", async () => {
      const { socket } = await connect();
      const big = Buffer.alloc(100_000);
      for (let i = 0; i < big.length; i += 1) big[i] = (i * 31) & 0xff;
      const args = [
        Buffer.from([0x00, 0x01, 0xfe, 0xff]),
        "between binaries 😀",
        {
          a: Buffer.from([1, 2, 3]),
          nested: [{ deep: Buffer.from("héllo 😀", "utf8") }, 7, null],
          text: "no binary here",
        },
        [big],
        Buffer.from([0xff]),
      ];
      const acked = await emitAckV2(socket, "echo", args, { timeout: 10000 });
      assert.deepEqual(normalizeBinary(acked), normalizeBinary(args));

      const echoed = waitFor(socket, "echo");
      const small = ["bin", Buffer.from([1, 2, 3]), { x: [Buffer.from([4, 5])] }];
      socket.emit("echo", ...small);
      assert.deepEqual(normalizeBinary(await echoed), normalizeBinary(small));
    });

    test("binary with forceBase64 (b64) comes back intact", async () => {
      const { socket } = await connect({ forceBase64: true });
      const args = [Buffer.from([0, 1, 2, 0xfe, 0xff]), { n: [Buffer.from("ü😀", "utf8")] }, "t"];
      const acked = await emitAckV2(socket, "echo", args);
      assert.deepEqual(normalizeBinary(acked), normalizeBinary(args));
      const response = await emitAckV2(socket, "binary-please", []);
      assert.deepEqual(normalizeBinary(response), [
        { buf: { $bytes: "010203" }, nested: [{ $bytes: "ff" }] },
      ]);
    });

    test("binary-please acks with binary attachments", async () => {
      const { socket } = await connect();
      const response = await emitAckV2(socket, "binary-please", []);
      assert.deepEqual(normalizeBinary(response), [
        { buf: { $bytes: "010203" }, nested: [{ $bytes: "ff" }] },
      ]);
    });

    test("rooms: join, to-room reaches members only, leave stops it", async () => {
      const [{ socket: a }, { socket: b }, { socket: c }] = await Promise.all([
        connect(),
        connect(),
        connect(),
      ]);
      const room = uniq("room");
      const roomB = uniq("only-b");
      const roomC = uniq("only-c");
      const gotA = record(a, "room-message");
      const gotB = record(b, "room-message");
      const gotC = record(c, "room-message");

      assert.deepEqual(await emitAckV2(a, "join", [room]), [[a.id, room].sort()]);
      assert.deepEqual(await emitAckV2(b, "join", [room]), [[b.id, room].sort()]);
      assert.deepEqual(await emitAckV2(b, "join", [roomB]), [[b.id, room, roomB].sort()]);
      assert.deepEqual(await emitAckV2(c, "join", [roomC]), [[c.id, roomC].sort()]);

      // A member sends: every member gets it, the sender included.
      const atA = waitFor(a, "room-message", { filter: (m) => m.msg === "hello 1" });
      const atB = waitFor(b, "room-message", { filter: (m) => m.msg === "hello 1" });
      assert.deepEqual(await emitAckV2(a, "to-room", [room, "hello 1"]), [true]);
      const expected1 = { room, from: a.id, msg: "hello 1" };
      assert.deepEqual((await atA)[0], expected1);
      assert.deepEqual((await atB)[0], expected1);

      // Non-member C got nothing: a later message to a room of C's arrives first.
      const markerC = waitFor(c, "room-message");
      assert.deepEqual(await emitAckV2(a, "to-room", [roomC, "marker c"]), [true]);
      assert.deepEqual((await markerC)[0], { room: roomC, from: a.id, msg: "marker c" });
      assert.deepEqual(gotC, [[{ room: roomC, from: a.id, msg: "marker c" }]]);

      // A non-member can send to a room; it does not receive the message itself.
      const fromC = waitFor(a, "room-message", { filter: (m) => m.msg === "from outside" });
      assert.deepEqual(await emitAckV2(c, "to-room", [room, "from outside"]), [true]);
      assert.deepEqual((await fromC)[0], { room, from: c.id, msg: "from outside" });

      // B leaves: it no longer gets the room's messages.
      assert.deepEqual(await emitAckV2(b, "leave", [room]), [[b.id, roomB].sort()]);
      const countB = gotB.length;
      const atA2 = waitFor(a, "room-message", { filter: (m) => m.msg === "hello 2" });
      assert.deepEqual(await emitAckV2(a, "to-room", [room, "hello 2"]), [true]);
      await atA2;
      const markerB = waitFor(b, "room-message", { filter: (m) => m.msg === "marker b" });
      assert.deepEqual(await emitAckV2(a, "to-room", [roomB, "marker b"]), [true]);
      await markerB;
      assert.deepEqual(gotB.slice(countB), [[{ room: roomB, from: a.id, msg: "marker b" }]]);
      await sleep(100);
      assert.equal(gotC.length, 1, "C must only have received its marker");
      assert.ok(gotA.every(([m]) => m.room === room), "A only gets messages of its room");
    });

    test("broadcast reaches every other socket of / but not the sender", async () => {
      const [{ socket: a }, { socket: b }, { socket: c }, { socket: admin }] = await Promise.all([
        connect(),
        connect(),
        connect(),
        connect({}, "/admin"),
      ]);
      const msg = { text: uniq("broadcast 📣") };
      const gotA = record(a, "broadcast");
      const gotAdmin = record(admin, "broadcast");
      const atB = waitFor(b, "broadcast", { filter: (m) => m?.text === msg.text });
      const atC = waitFor(c, "broadcast", { filter: (m) => m?.text === msg.text });
      a.emit("broadcast", msg);
      assert.deepEqual(await atB, [msg]);
      assert.deepEqual(await atC, [msg]);
      // Anything sent to A after its broadcast arrives after the broadcast would have.
      const echoed = waitFor(a, "echo");
      a.emit("echo", "after broadcast");
      await echoed;
      assert.deepEqual(gotA, [], "the sender must not get its own broadcast");
      assert.deepEqual(await emitAckV2(admin, "echo", ["admin marker"]), ["admin marker"]);
      assert.deepEqual(gotAdmin, [], "sockets of /admin must not get a broadcast to /");
    });

    test("collect-acks gathers the acks of every socket in the room (two clients)", async () => {
      const [{ socket: a }, { socket: b }, { socket: c }] = await Promise.all([
        connect(),
        connect(),
        connect(),
      ]);
      const room = uniq("acks");
      const pings = [];
      for (const [label, s] of [["a", a], ["b", b], ["c", c]]) {
        s.on("ping-ack", (p, ack) => {
          pings.push([label, p]);
          ack(`${label}:${p}`);
        });
      }
      await emitAckV2(a, "join", [room]);
      await emitAckV2(b, "join", [room]);
      const [answers] = await emitAckV2(c, "collect-acks", [room], { timeout: 8000 });
      assert.deepEqual(answers, ["a:ping", "b:ping"]);
      assert.deepEqual(pings.sort(), [["a", "ping"], ["b", "ping"]]);
    });

    test("/ and /admin share one engine connection (multiplexing)", async () => {
      // `io()` without forceNew: the second call reuses the cached Manager of the first one. No
      // other test uses the Manager cache; the entry is removed at the end.
      const opts = { ...BASE_CLIENT_OPTS, ...clientOpts, autoConnect: false };
      const root = ioV2(server.url, opts);
      // The query of a non-root namespace travels in its CONNECT packet (`0/admin?role=...,`).
      const admin = ioV2(`${server.url}/admin`, { ...opts, query: { role: "admin 🛡" } });
      sockets.push(root, admin);
      try {
        assert.equal(root.io, admin.io, "both sockets must share one Manager");
        const manager = root.io;
        let opens = 0;
        manager.on("open", () => {
          opens += 1;
        });
        const waits = [
          waitConnectV2(root),
          waitConnectV2(admin),
          waitFor(root, "welcome"),
          waitFor(admin, "welcome"),
        ];
        root.connect();
        admin.connect();
        const [, , [rootWelcome], [adminWelcome]] = await Promise.all(waits);

        const engineId = manager.engine.id;
        assert.equal(root.id, engineId);
        assert.equal(admin.id, `/admin#${engineId}`);
        assert.deepEqual(rootWelcome, { sid: root.id, auth: {}, protocol: 4 });
        assert.deepEqual(adminWelcome, { nsp: "/admin", sid: admin.id });
        assert.equal(opens, 1, "exactly one engine connection must have been opened");

        // Both namespaces work over that one connection, interleaved.
        const adminEcho = waitFor(admin, "echo");
        const rootEchoes = record(root, "echo");
        const [r, ad] = await Promise.all([
          emitAckV2(root, "echo", ["to root"]),
          emitAckV2(admin, "echo", ["to admin ✓", { n: 1 }, Buffer.from([9, 8])]),
        ]);
        assert.deepEqual(r, ["to root"]);
        assert.deepEqual(normalizeBinary(ad), ["to admin ✓", { n: 1 }, { $bytes: "0908" }]);
        admin.emit("echo", "admin no ack", 2);
        assert.deepEqual(await adminEcho, ["admin no ack", 2]);
        assert.deepEqual(rootEchoes, [], "an /admin echo must not reach /");
        assert.equal(opens, 1);

        // Leaving one namespace keeps the other connected.
        admin.disconnect();
        assert.deepEqual(await emitAckV2(root, "echo", ["still here"]), ["still here"]);
        assert.equal(root.connected, true);
      } finally {
        closeAll(sockets);
        const url = new URL(server.url);
        delete ioV2.managers[`http://${url.hostname}:${url.port}`];
      }
    });

    test("disconnect-me: server-initiated disconnect, no reconnection", async () => {
      const { socket } = await connect();
      const connects = record(socket, "connect");
      const attempts = record(socket.io, "reconnect_attempt");
      const disconnected = waitFor(socket, "disconnect");
      socket.emit("disconnect-me");
      const [reason] = await disconnected;
      assert.equal(reason, "io server disconnect");
      await sleep(1000);
      assert.equal(connects.length, 0, "must not reconnect after a server-initiated disconnect");
      assert.equal(attempts.length, 0, "must not even try to reconnect");
      assert.equal(socket.connected, false);
    });

    test("drop-transport: transport close, then the client reconnects", async () => {
      const { socket, welcome: first } = await connect({ query: { token: "drop" } });
      const disconnected = waitFor(socket, "disconnect");
      const reconnectedMgr = waitFor(socket, "reconnect", { timeout: 10000 });
      const reconnected = waitFor(socket, "connect", { timeout: 10000 });
      const welcomed = waitFor(socket, "welcome", { timeout: 10000 });
      for (const p of [reconnectedMgr, reconnected, welcomed]) p.catch(() => {});
      socket.emit("drop-transport");
      const [reason] = await disconnected;
      assert.equal(reason, "transport close");
      await reconnectedMgr;
      await reconnected;
      const [welcome] = await welcomed;
      assert.deepEqual(welcome, { sid: socket.id, auth: {}, protocol: 4 });
      assert.notEqual(welcome.sid, first.sid, "a new connection gets a new id");
      assert.deepEqual(await emitAckV2(socket, "echo", ["after reconnect"]), ["after reconnect"]);
    });

    test("heartbeat: the client pings (Engine.IO v3), the server pongs, the connection survives", async () => {
      const fast = await startServer({
        label: `v2-${name}-heartbeat`,
        args: ["--ping-interval", "250", "--ping-timeout", "1000"],
      });
      try {
        const { socket } = await connectWithWelcomeV2(sockets, fast.url, clientOpts);
        const pongs = record(socket, "pong");
        const disconnects = record(socket, "disconnect");
        await sleep(1500);
        assert.ok(pongs.length >= 3, `expected several pongs in 1.5 s, got ${pongs.length}`);
        assert.deepEqual(disconnects, []);
        assert.equal(socket.connected, true);
        assert.deepEqual(await emitAckV2(socket, "echo", ["alive"]), ["alive"]);
      } finally {
        closeAll(sockets);
        await fast.stop();
      }
    });

    test("a 2.x and a 4.x client in one room: to-room reaches both, broadcast crosses versions", async () => {
      const [{ socket: v2, welcome: w2 }, { socket: v4, welcome: w4 }] = await Promise.all([
        connect(),
        connectWithWelcome(sockets, server.url, { ...clientOpts }),
      ]);
      assert.equal(w2.protocol, 4);
      assert.equal(w4.protocol, 5);
      const room = uniq("mixed");
      assert.deepEqual(await emitAckV2(v2, "join", [room]), [[v2.id, room].sort()]);
      assert.deepEqual(await emitAck(v4, "join", [room]), [[v4.id, room].sort()]);

      const msg = { text: "from 2.x 🐢", n: [1, null] };
      const at2 = waitFor(v2, "room-message", { filter: (m) => m?.msg?.text === msg.text });
      const at4 = waitFor(v4, "room-message", { filter: (m) => m?.msg?.text === msg.text });
      assert.deepEqual(await emitAckV2(v2, "to-room", [room, msg]), [true]);
      const expected = { room, from: v2.id, msg };
      assert.deepEqual((await at2)[0], expected);
      assert.deepEqual((await at4)[0], expected);

      const msg4 = { text: "from 4.x 🚀" };
      const at4b = waitFor(v4, "room-message", { filter: (m) => m?.msg === "from 4.x" });
      const at2b = waitFor(v2, "room-message", { filter: (m) => m?.msg === "from 4.x" });
      assert.deepEqual(await emitAck(v4, "to-room", [room, "from 4.x"]), [true]);
      const expected4 = { room, from: v4.id, msg: "from 4.x" };
      assert.deepEqual((await at4b)[0], expected4);
      assert.deepEqual((await at2b)[0], expected4);

      const got4 = record(v4, "broadcast");
      const bcast = waitFor(v2, "broadcast", { filter: (m) => m?.text === msg4.text });
      v4.emit("broadcast", msg4);
      assert.deepEqual(await bcast, [msg4]);
      assert.deepEqual(await emitAck(v4, "echo", ["marker"]), ["marker"]);
      assert.deepEqual(got4, [], "the 4.x sender must not get its own broadcast");
    });
  });
}
