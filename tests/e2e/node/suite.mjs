// The Node end-to-end suite, run once per transport setup of socket.io-client 4.x (see the
// *.test.mjs files). Each setup gets its own e2e server process.

import assert from "node:assert/strict";
import { after, afterEach, before, describe, it } from "node:test";
import { io } from "socket.io-client";
import {
  BASE_CLIENT_OPTS,
  WAIT_MS,
  closeAll,
  connectWithWelcome,
  emitAck,
  emitWithAck,
  makeSocket,
  normalizeBinary,
  record,
  sleep,
  startServer,
  startServerOnPort,
  waitConnect,
  waitFor,
} from "./helpers.mjs";

/** Backstop per test; every individual wait has its own, shorter timeout. */
const TEST_TIMEOUT_MS = 30000;

/** The transport setups. `checkTransport` runs on a socket connected with `watchTransport`. */
export const SETUPS = {
  polling: {
    clientOpts: { transports: ["polling"] },
    async checkTransport(socket, watch) {
      assert.equal(socket.io.engine.transport.name, "polling");
      // Give a would-be upgrade a chance to happen, with traffic going both ways meanwhile.
      for (let i = 0; i < 3; i += 1) {
        assert.deepEqual(await emitAck(socket, "echo", [i]), [i]);
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

/** Watches the engine of a socket whose `connect()` was just called. */
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

/**
 * Defines the suite for one transport setup.
 * @param {keyof typeof SETUPS} name
 */
export function defineSuite(name) {
  const setup = SETUPS[name];
  const clientOpts = setup.clientOpts;
  const test = (title, fn) => it(title, { timeout: TEST_TIMEOUT_MS }, fn);

  describe(`socket.io-client 4.x, transport setup "${name}"`, () => {
    let server;
    const sockets = [];
    const connect = (opts = {}, path = "") =>
      connectWithWelcome(sockets, server.url + path, { ...clientOpts, ...opts });

    before(async () => {
      server = await startServer({ label: name });
    });
    after(async () => {
      closeAll(sockets);
      await server?.stop();
    });
    afterEach(() => closeAll(sockets));

    test("connects with auth; welcome echoes the auth and protocol 5; transport as configured", async () => {
      const auth = { token: "let-me-in", user: "zoë 🐙", n: 1 };
      const socket = makeSocket(sockets, server.url, { ...clientOpts, auth });
      const welcome = waitFor(socket, "welcome");
      const connected = waitConnect(socket);
      socket.connect();
      const watch = watchTransport(socket);
      const [, [payload]] = await Promise.all([connected, welcome]);

      assert.equal(socket.connected, true);
      assert.equal(typeof socket.id, "string");
      assert.deepEqual(payload, { sid: socket.id, auth, protocol: 5 });
      await setup.checkTransport(socket, watch);
      // The connection still works on the final transport.
      assert.deepEqual(await emitAck(socket, "echo", ["after transport check"]), [
        "after transport check",
      ]);
    });

    test("welcome has auth {} when the client sends no auth (as in Node)", async () => {
      const { socket, welcome } = await connect();
      assert.deepEqual(welcome, { sid: socket.id, auth: {}, protocol: 5 });
    });

    test("a refused connect gets connect_error unauthorized with data E_TOKEN", async () => {
      const socket = makeSocket(sockets, server.url, { ...clientOpts, auth: { token: "reject" } });
      const connects = record(socket, "connect");
      const errored = waitFor(socket, "connect_error");
      socket.connect();
      const [err] = await errored;
      assert.equal(err.message, "unauthorized");
      assert.deepEqual(err.data, { code: "E_TOKEN" });
      assert.equal(socket.connected, false);
      // A middleware refusal is final: the socket does not retry by itself.
      await sleep(300);
      assert.equal(socket.active, false);
      assert.equal(connects.length, 0);
    });

    test("an unknown namespace gets connect_error Invalid namespace", async () => {
      const socket = makeSocket(sockets, `${server.url}/no-such-namespace`, clientOpts);
      const errored = waitFor(socket, "connect_error");
      socket.connect();
      const [err] = await errored;
      assert.equal(err.message, "Invalid namespace");
      assert.equal(socket.connected, false);
    });

    test("echo with ack returns exactly the same args", async () => {
      const { socket } = await connect();
      const args = [
        "plain ascii",
        "héllo wörld — ünïcödé ✓ ß",
        "日本語のテキスト، عربى, עברית",
        "emoji 😀🎉👍🏽 flag 🇫🇷 family 👨‍👩‍👧",
        'control \u001e record separator, \n newline, \t tab, "quotes", \\ backslash, \u0001',
        "",
        0,
        -1,
        42,
        3.14159,
        -2.5e-8,
        1e21,
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
      assert.deepEqual(await emitAck(socket, "echo", args), args);
    });

    test("echo with ack and no args acks with no args", async () => {
      const { socket } = await connect();
      assert.deepEqual(await emitAck(socket, "echo", []), []);
    });

    test("echo with ack via emitWithAck (first ack arg)", async () => {
      const { socket } = await connect();
      assert.deepEqual(await emitWithAck(socket, "echo", [{ a: "ä" }, 2]), { a: "ä" });
    });

    test("echo without ack emits echo back with the same args", async () => {
      const { socket } = await connect();
      const args = ["no ack 🚀", 7, { deep: [null, { x: "y" }] }];
      const echoed = waitFor(socket, "echo");
      socket.emit("echo", ...args);
      assert.deepEqual(await echoed, args);
    });

    test("server-to-client ack: ask-client gets the client's answer", async () => {
      const { socket } = await connect();
      const questions = [];
      socket.on("question", (question, ack) => {
        questions.push(question);
        ack(`answer to ${question}`, "ignored second arg");
      });
      const [reply] = await emitAck(socket, "ask-client", ["what is 6×7? 🤔"]);
      assert.deepEqual(questions, ["what is 6×7? 🤔"]);
      assert.deepEqual(reply, { answer: "answer to what is 6×7? 🤔" });
    });

    test("binary payloads from the client come back intact (echo with ack and without)", async () => {
      const { socket } = await connect();
      const big = Buffer.alloc(100_000);
      for (let i = 0; i < big.length; i += 1) big[i] = (i * 31) & 0xff;
      const args = [
        Buffer.from([0x00, 0x01, 0xfe, 0xff]),
        "between binaries",
        {
          a: Uint8Array.of(1, 2, 3),
          nested: [{ deep: Buffer.from("héllo 😀", "utf8") }, 7, Buffer.alloc(0)],
          text: "no binary here",
        },
        [big],
        Uint8Array.of(0xff),
      ];
      const acked = await emitAck(socket, "echo", args, { timeout: 10000 });
      assert.deepEqual(normalizeBinary(acked), normalizeBinary(args));

      const echoed = waitFor(socket, "echo");
      const small = ["bin", Buffer.from([1, 2, 3]), { x: [Buffer.from([4, 5])] }];
      socket.emit("echo", ...small);
      assert.deepEqual(normalizeBinary(await echoed), normalizeBinary(small));
    });

    test("binary-please acks with binary attachments", async () => {
      const { socket } = await connect();
      const response = await emitAck(socket, "binary-please", []);
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

      assert.deepEqual(await emitAck(a, "join", [room]), [[a.id, room].sort()]);
      assert.deepEqual(await emitAck(b, "join", [room]), [[b.id, room].sort()]);
      assert.deepEqual(await emitAck(b, "join", [roomB]), [[b.id, room, roomB].sort()]);
      assert.deepEqual(await emitAck(c, "join", [roomC]), [[c.id, roomC].sort()]);

      // A member sends: every member gets it, the sender included.
      const atA = waitFor(a, "room-message", { filter: (m) => m.msg === "hello 1" });
      const atB = waitFor(b, "room-message", { filter: (m) => m.msg === "hello 1" });
      assert.deepEqual(await emitAck(a, "to-room", [room, "hello 1"]), [true]);
      const expected1 = { room, from: a.id, msg: "hello 1" };
      assert.deepEqual((await atA)[0], expected1);
      assert.deepEqual((await atB)[0], expected1);

      // Non-member C got nothing: a later message to a room of C's arrives first.
      const markerC = waitFor(c, "room-message");
      assert.deepEqual(await emitAck(a, "to-room", [roomC, "marker c"]), [true]);
      assert.deepEqual((await markerC)[0], { room: roomC, from: a.id, msg: "marker c" });
      assert.deepEqual(gotC, [[{ room: roomC, from: a.id, msg: "marker c" }]]);

      // A non-member can send to a room; it does not receive the message itself.
      const fromC = waitFor(a, "room-message", { filter: (m) => m.msg === "from outside" });
      assert.deepEqual(await emitAck(c, "to-room", [room, "from outside"]), [true]);
      assert.deepEqual((await fromC)[0], { room, from: c.id, msg: "from outside" });

      // B leaves: it no longer gets the room's messages.
      assert.deepEqual(await emitAck(b, "leave", [room]), [[b.id, roomB].sort()]);
      const countB = gotB.length;
      const atA2 = waitFor(a, "room-message", { filter: (m) => m.msg === "hello 2" });
      assert.deepEqual(await emitAck(a, "to-room", [room, "hello 2"]), [true]);
      await atA2;
      const markerB = waitFor(b, "room-message", { filter: (m) => m.msg === "marker b" });
      assert.deepEqual(await emitAck(a, "to-room", [roomB, "marker b"]), [true]);
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
      assert.deepEqual(await emitAck(admin, "echo", ["admin marker"]), ["admin marker"]);
      assert.deepEqual(gotAdmin, [], "sockets of /admin must not get a broadcast to /");
    });

    test("collect-acks gathers the acks of every socket in the room", async () => {
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
      await emitAck(a, "join", [room]);
      await emitAck(b, "join", [room]);
      const [answers] = await emitAck(c, "collect-acks", [room], { timeout: 8000 });
      assert.deepEqual(answers, ["a:ping", "b:ping"]);
      assert.deepEqual(pings.sort(), [["a", "ping"], ["b", "ping"]]);
    });

    test("two namespaces share one engine connection (multiplexing)", async () => {
      // `io()` without forceNew: the second call reuses the Manager of the first one. No other test
      // of this process uses the Manager cache (they all pass forceNew).
      const opts = { ...BASE_CLIENT_OPTS, ...clientOpts, autoConnect: false };
      const root = io(server.url, { ...opts, auth: { token: "mux" } });
      const admin = io(`${server.url}/admin`, opts);
      sockets.push(root, admin);
      assert.equal(root.io, admin.io, "both sockets must share one Manager");
      const manager = root.io;
      let opens = 0;
      manager.on("open", () => {
        opens += 1;
      });
      const waits = [
        waitConnect(root),
        waitConnect(admin),
        waitFor(root, "welcome"),
        waitFor(admin, "welcome"),
      ];
      root.connect();
      admin.connect();
      const [, , [rootWelcome], [adminWelcome]] = await Promise.all(waits);

      assert.deepEqual(rootWelcome, { sid: root.id, auth: { token: "mux" }, protocol: 5 });
      assert.deepEqual(adminWelcome, { nsp: "/admin", sid: admin.id });
      assert.notEqual(root.id, admin.id);
      assert.equal(opens, 1, "exactly one engine connection must have been opened");
      assert.equal(root.io.engine, admin.io.engine);

      // Both namespaces work over that one connection, interleaved.
      const [r, ad] = await Promise.all([
        emitAck(root, "echo", ["to root"]),
        emitAck(admin, "echo", ["to admin", { n: 1 }]),
      ]);
      assert.deepEqual(r, ["to root"]);
      assert.deepEqual(ad, ["to admin", { n: 1 }]);
      assert.equal(opens, 1);

      // Leaving one namespace keeps the other connected.
      admin.disconnect();
      assert.deepEqual(await emitAck(root, "echo", ["still here"]), ["still here"]);
    });

    test("/admin: echo without ack is echoed back", async () => {
      const { socket } = await connect({}, "/admin");
      const echoed = waitFor(socket, "echo");
      socket.emit("echo", "admin ✓", 2);
      assert.deepEqual(await echoed, ["admin ✓", 2]);
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
      assert.equal(socket.active, false);
    });

    test("drop-transport: transport close, then the client reconnects", async () => {
      const auth = { token: "drop" };
      const { socket } = await connect({ auth });
      const disconnected = waitFor(socket, "disconnect");
      const reconnected = waitFor(socket, "connect", { timeout: 10000 });
      const welcomed = waitFor(socket, "welcome", { timeout: 10000 });
      reconnected.catch(() => {});
      welcomed.catch(() => {});
      socket.emit("drop-transport");
      const [reason] = await disconnected;
      assert.equal(reason, "transport close");
      await reconnected;
      const [welcome] = await welcomed;
      assert.deepEqual(welcome, { sid: socket.id, auth, protocol: 5 });
      assert.deepEqual(await emitAck(socket, "echo", ["after reconnect"]), ["after reconnect"]);
    });

    test("server process killed and restarted on the same port: the client reconnects", async () => {
      let first;
      let second;
      try {
        first = await startServer({ label: `${name}-restart-a` });
        const auth = { token: "restart" };
        const { socket } = await connectWithWelcome(sockets, first.url, { ...clientOpts, auth });
        assert.deepEqual(await emitAck(socket, "echo", ["before"]), ["before"]);

        const disconnected = waitFor(socket, "disconnect");
        const reconnected = waitFor(socket, "connect", { timeout: 15000 });
        const welcomed = waitFor(socket, "welcome", { timeout: 15000 });
        reconnected.catch(() => {});
        welcomed.catch(() => {});
        await first.stop();
        const [reason] = await disconnected;
        assert.ok(
          ["transport close", "transport error", "ping timeout"].includes(reason),
          `unexpected disconnect reason ${reason}`,
        );
        // While the server is down, reconnection attempts fail; let a few of them happen.
        await sleep(300);
        assert.equal(socket.connected, false);

        second = await startServerOnPort(first.port, { label: `${name}-restart-b` });
        await reconnected;
        const [welcome] = await welcomed;
        assert.deepEqual(welcome, { sid: socket.id, auth, protocol: 5 });
        assert.deepEqual(await emitAck(socket, "echo", ["after restart"]), ["after restart"]);
      } finally {
        closeAll(sockets);
        await first?.stop();
        await second?.stop();
      }
    });
  });
}
