// The Node end-to-end suite, run once per client generation (socket.io-client 4.x and 2.x: the
// `V4` and `V2` adapters of helpers.mjs; `V4_MSGPACK`, 4.x with socket.io-msgpack-parser against
// the server's `--msgpack`) and transport setup (see the *.test.mjs files). Each run
// gets its own e2e server process. The tests both generations share come first, then those of one
// generation only.
//
// Note: in Node, the 2.x client's polling transport always runs in base64 mode (`b64=1`: its
// XMLHttpRequest shim has no `responseType`, so it counts as no XHR2), i.e. text payloads with
// `<utf-16 length>:<packet>` framing and binary as `b4<base64>`. WebSocket sends real binary frames.

import assert from "node:assert/strict";
import { after, afterEach, before, describe, it } from "node:test";
import {
  BASE_CLIENT_OPTS,
  CLIENTS,
  V4,
  WAIT_MS,
  closeAll,
  connectWithWelcome,
  emitWithAck,
  makeSocket,
  normalizeBinary,
  record,
  sleep,
  startServer,
  startServerOnPort,
  uniq,
  waitConnect,
  waitFor,
} from "./helpers.mjs";

/** Backstop per test; every individual wait has its own, shorter, timeout. */
const TEST_TIMEOUT_MS = 30000;

/** The transport setups. `checkTransport` runs on a socket connected with `watchTransport`. */
export const SETUPS = {
  polling: {
    clientOpts: { transports: ["polling"] },
    async checkTransport(client, socket, watch) {
      assert.equal(socket.io.engine.transport.name, "polling");
      // Give a would-be upgrade a chance to happen, with traffic going both ways meanwhile.
      for (let i = 0; i < 3; i += 1) {
        assert.deepEqual(await client.emitAck(socket, "echo", [i]), [i]);
        await sleep(100);
      }
      assert.equal(socket.io.engine.transport.name, "polling");
      assert.equal(watch.upgrading, 0, "polling-only client must not try to upgrade");
    },
  },
  websocket: {
    clientOpts: { transports: ["websocket"] },
    async checkTransport(client, socket, watch) {
      assert.equal(socket.io.engine.transport.name, "websocket");
      assert.equal(watch.upgrading, 0, "websocket-only client has nothing to upgrade");
    },
  },
  default: {
    // The client default: HTTP long-polling first, then upgrade to WebSocket.
    clientOpts: {},
    async checkTransport(client, socket, watch) {
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

/**
 * Defines the suite of one client generation for one transport setup.
 * @param {keyof typeof CLIENTS} generation "v4" or "v2"
 * @param {keyof typeof SETUPS} name
 */
export function defineSuite(generation, name) {
  const client = CLIENTS[generation];
  const setup = SETUPS[name];
  const clientOpts = setup.clientOpts;
  const label = client === V4 ? name : `${generation}-${name}`;
  const test = (title, fn) => it(title, { timeout: TEST_TIMEOUT_MS }, fn);
  const emitAck = client.emitAck;
  const textArgs = client.sendable ? client.sendable(TEXT_ARGS) : TEXT_ARGS;

  describe(`${client.title}, transport setup "${name}"`, () => {
    let server;
    const sockets = [];
    const connect = (opts = {}, path = "") =>
      connectWithWelcome(sockets, server.url + path, { ...clientOpts, ...opts }, client);
    const newSocket = (opts = {}, path = "") =>
      makeSocket(sockets, server.url + path, { ...clientOpts, ...opts }, client);

    before(async () => {
      server = await startServer({ label, args: client.serverArgs ?? [] });
    });
    after(async () => {
      closeAll(sockets);
      await server?.stop();
    });
    afterEach(() => closeAll(sockets));

    // -------------------------------------------------------------------------------------------
    // Both generations

    test(`connects; welcome has the socket's id, the auth and protocol ${client.protocol}; transport as configured`, async () => {
      const credentials = { token: "let-me-in", user: "zoë 🐙", n: 1 };
      const socket = newSocket(client.credentials(credentials));
      const welcome = waitFor(socket, "welcome");
      const connected = waitConnect(socket);
      socket.connect();
      const watch = watchTransport(socket);
      const [, [payload]] = await Promise.all([connected, welcome]);

      assert.equal(socket.connected, true);
      assert.equal(typeof socket.id, "string");
      if (client.engineIds) {
        assert.equal(socket.id, socket.io.engine.id, "on / the socket id is the Engine.IO id");
      }
      assert.deepEqual(payload, {
        sid: socket.id,
        auth: client.welcomeAuth(credentials),
        protocol: client.protocol,
      });
      await setup.checkTransport(client, socket, watch);
      // The connection still works on the final transport.
      assert.deepEqual(await emitAck(socket, "echo", ["after transport check"]), [
        "after transport check",
      ]);
    });

    test("a refused connect (token reject) gets unauthorized, and is final", async () => {
      const socket = newSocket(client.credentials({ token: "reject" }));
      const connects = record(socket, "connect");
      const welcomes = record(socket, "welcome");
      const errored = waitFor(socket, client.refusalEvent);
      socket.connect();
      const attempts = record(socket.io, "reconnect_attempt");
      const [err] = await errored;
      // Protocol v4 refusals carry the message only.
      const data = client.protocol === 5 ? { data: { code: "E_TOKEN" } } : {};
      assert.deepEqual(client.refusal(err), { message: "unauthorized", ...data });
      assert.equal(socket.connected, false);
      // A middleware refusal is final: no connect and no reconnection loop.
      await sleep(300);
      if (client.hasActive) assert.equal(socket.active, false);
      assert.equal(connects.length, 0);
      assert.equal(welcomes.length, 0);
      assert.equal(attempts.length, 0);
    });

    test("an unknown namespace is refused with Invalid namespace", async () => {
      const socket = newSocket({}, "/no-such-namespace");
      const connects = record(socket, "connect");
      const errored = waitFor(socket, client.refusalEvent);
      socket.connect();
      const [err] = await errored;
      assert.equal(client.refusal(err).message, "Invalid namespace");
      assert.equal(socket.connected, false);
      assert.equal(connects.length, 0);
    });

    test("echo with ack returns exactly the same args (unicode, emoji, numbers, nested, null, none)", async () => {
      const { socket } = await connect();
      assert.deepEqual(await emitAck(socket, "echo", textArgs), textArgs);
      assert.deepEqual(await emitAck(socket, "echo", []), []);
    });

    test("echo without ack emits echo back with the same args", async () => {
      const { socket } = await connect();
      const echoed = waitFor(socket, "echo");
      socket.emit("echo", ...textArgs);
      assert.deepEqual(await echoed, textArgs);
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

    test("binary from the client comes back intact (nested in args, with and without ack)", async () => {
      const { socket } = await connect();
      const big = Buffer.alloc(100_000);
      for (let i = 0; i < big.length; i += 1) big[i] = (i * 31) & 0xff;
      const args = [
        Buffer.from([0x00, 0x01, 0xfe, 0xff]),
        "between binaries 😀",
        {
          a: client.bytes(1, 2, 3),
          nested: [{ deep: Buffer.from("héllo 😀", "utf8") }, 7, Buffer.alloc(0), null],
          text: "no binary here",
        },
        [big],
        client.bytes(0xff),
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

    test("collect-acks gathers the acks of every socket in the room (two clients)", async () => {
      const [{ socket: a }, { socket: b }, { socket: c }] = await Promise.all([
        connect(),
        connect(),
        connect(),
      ]);
      const room = uniq("acks");
      const pings = [];
      for (const [who, s] of [["a", a], ["b", b], ["c", c]]) {
        s.on("ping-ack", (p, ack) => {
          pings.push([who, p]);
          ack(`${who}:${p}`);
        });
      }
      await emitAck(a, "join", [room]);
      await emitAck(b, "join", [room]);
      const [answers] = await emitAck(c, "collect-acks", [room], { timeout: 8000 });
      assert.deepEqual(answers, ["a:ping", "b:ping"]);
      assert.deepEqual(pings.sort(), [["a", "ping"], ["b", "ping"]]);
    });

    test("/ and /admin share one engine connection (multiplexing)", async () => {
      // `io()` without forceNew: the second call reuses the cached Manager of the first one. No
      // other test uses the Manager cache; the entry is removed at the end (where the client lets).
      const opts = { ...BASE_CLIENT_OPTS, ...clientOpts, autoConnect: false };
      const credentials = { token: "mux" };
      const root = client.io(server.url, { ...opts, ...client.credentials(credentials) });
      // 2.x: the query of a non-root namespace travels in its CONNECT packet (`0/admin?role=...,`).
      const admin = client.io(`${server.url}/admin`, { ...opts, query: { role: "admin 🛡" } });
      sockets.push(root, admin);
      try {
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

        assert.notEqual(root.id, admin.id);
        if (client.engineIds) {
          const engineId = manager.engine.id;
          assert.equal(root.id, engineId);
          assert.equal(admin.id, `/admin#${engineId}`);
        }
        assert.deepEqual(rootWelcome, {
          sid: root.id,
          auth: client.welcomeAuth(credentials),
          protocol: client.protocol,
        });
        assert.deepEqual(adminWelcome, { nsp: "/admin", sid: admin.id });
        assert.equal(opens, 1, "exactly one engine connection must have been opened");
        assert.equal(root.io.engine, admin.io.engine);

        // Both namespaces work over that one connection, interleaved.
        const adminEcho = waitFor(admin, "echo");
        const rootEchoes = record(root, "echo");
        const [r, ad] = await Promise.all([
          emitAck(root, "echo", ["to root"]),
          emitAck(admin, "echo", ["to admin ✓", { n: 1 }, Buffer.from([9, 8])]),
        ]);
        assert.deepEqual(r, ["to root"]);
        assert.deepEqual(normalizeBinary(ad), ["to admin ✓", { n: 1 }, { $bytes: "0908" }]);
        admin.emit("echo", "admin no ack", 2);
        assert.deepEqual(await adminEcho, ["admin no ack", 2]);
        assert.deepEqual(rootEchoes, [], "an /admin echo must not reach /");
        assert.equal(opens, 1);

        // Leaving one namespace keeps the other connected.
        admin.disconnect();
        assert.deepEqual(await emitAck(root, "echo", ["still here"]), ["still here"]);
        assert.equal(root.connected, true);
      } finally {
        closeAll(sockets);
        client.forgetManager(server.url);
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
      if (client.hasActive) assert.equal(socket.active, false);
    });

    test("drop-transport: transport close, then the client reconnects", async () => {
      const credentials = { token: "drop" };
      const { socket, welcome: first } = await connect(client.credentials(credentials));
      // From a settled transport: a close in the middle of an upgrade is another subject (the
      // client pauses polling for the upgrade, and if the probe then closes it stays paused
      // until its heartbeat gives up, whichever server it talks to).
      if (!clientOpts.transports && socket.io.engine.transport.name !== "websocket") {
        await waitFor(socket.io.engine, "upgrade", { timeout: WAIT_MS });
      }
      const disconnected = waitFor(socket, "disconnect");
      const reconnectedMgr = waitFor(socket.io, "reconnect", { timeout: 10000 });
      const reconnected = waitFor(socket, "connect", { timeout: 10000 });
      const welcomed = waitFor(socket, "welcome", { timeout: 10000 });
      for (const p of [reconnectedMgr, reconnected, welcomed]) p.catch(() => {});
      socket.emit("drop-transport");
      const [reason] = await disconnected;
      assert.equal(reason, "transport close");
      await reconnectedMgr;
      await reconnected;
      const [welcome] = await welcomed;
      assert.deepEqual(welcome, {
        sid: socket.id,
        auth: client.welcomeAuth(credentials),
        protocol: client.protocol,
      });
      assert.notEqual(welcome.sid, first.sid, "a new connection gets a new id");
      assert.deepEqual(await emitAck(socket, "echo", ["after reconnect"]), ["after reconnect"]);
    });

    // -------------------------------------------------------------------------------------------
    // socket.io-client 4.x only

    if (client.generation === 4) {
      test("welcome has auth {} when the client sends no auth (as in Node)", async () => {
        const { socket, welcome } = await connect();
        assert.deepEqual(welcome, { sid: socket.id, auth: {}, protocol: 5 });
      });

      test("echo with ack and no args acks with no args", async () => {
        const { socket } = await connect();
        assert.deepEqual(await emitAck(socket, "echo", []), []);
      });

      test("echo with ack via emitWithAck (first ack arg)", async () => {
        const { socket } = await connect();
        assert.deepEqual(await emitWithAck(socket, "echo", [{ a: "ä" }, 2]), { a: "ä" });
      });

      test("/admin: echo without ack is echoed back", async () => {
        const { socket } = await connect({}, "/admin");
        const echoed = waitFor(socket, "echo");
        socket.emit("echo", "admin ✓", 2);
        assert.deepEqual(await echoed, ["admin ✓", 2]);
      });

      test("server process killed and restarted on the same port: the client reconnects", async () => {
        let first;
        let second;
        try {
          const args = client.serverArgs ?? [];
          first = await startServer({ label: `${label}-restart-a`, args });
          const auth = { token: "restart" };
          const { socket } = await connectWithWelcome(
            sockets,
            first.url,
            { ...clientOpts, auth },
            client,
          );
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

          second = await startServerOnPort(first.port, { label: `${label}-restart-b`, args });
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
    }

    // -------------------------------------------------------------------------------------------
    // socket.io-client 2.x only

    if (client.generation === 2) {
      test("the query may also be given as a string", async () => {
        const socket = newSocket({ query: "token=reject&x=1" });
        const errored = waitFor(socket, "error");
        socket.connect();
        assert.deepEqual(await errored, ["unauthorized"]);
        const { socket: ok, welcome } = await connect({ query: "token=fine&x=1" });
        assert.deepEqual(welcome, { sid: ok.id, auth: {}, protocol: 4 });
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
        const acked = await emitAck(socket, "echo", ["marker"]);
        assert.deepEqual(acked, ["marker"]);
        const deadline = Date.now() + WAIT_MS;
        while (received.length < sent.length && Date.now() < deadline) await sleep(20);
        assert.deepEqual(received, sent);
      });

      test("binary with forceBase64 (b64) comes back intact", async () => {
        const { socket } = await connect({ forceBase64: true });
        const args = [Buffer.from([0, 1, 2, 0xfe, 0xff]), { n: [Buffer.from("ü😀", "utf8")] }, "t"];
        const acked = await emitAck(socket, "echo", args);
        assert.deepEqual(normalizeBinary(acked), normalizeBinary(args));
        const response = await emitAck(socket, "binary-please", []);
        assert.deepEqual(normalizeBinary(response), [
          { buf: { $bytes: "010203" }, nested: [{ $bytes: "ff" }] },
        ]);
      });

      test("heartbeat: the client pings (Engine.IO v3), the server pongs, the connection survives", async () => {
        const fast = await startServer({
          label: `${label}-heartbeat`,
          args: ["--ping-interval", "250", "--ping-timeout", "1000"],
        });
        try {
          const { socket } = await connectWithWelcome(sockets, fast.url, clientOpts, client);
          const pongs = record(socket, "pong");
          const disconnects = record(socket, "disconnect");
          await sleep(1500);
          assert.ok(pongs.length >= 3, `expected several pongs in 1.5 s, got ${pongs.length}`);
          assert.deepEqual(disconnects, []);
          assert.equal(socket.connected, true);
          assert.deepEqual(await emitAck(socket, "echo", ["alive"]), ["alive"]);
        } finally {
          closeAll(sockets);
          await fast.stop();
        }
      });

      test("a 2.x and a 4.x client in one room: to-room reaches both, broadcast crosses versions", async () => {
        const [{ socket: v2, welcome: w2 }, { socket: v4, welcome: w4 }] = await Promise.all([
          connect(),
          connectWithWelcome(sockets, server.url, { ...clientOpts }, V4),
        ]);
        assert.equal(w2.protocol, 4);
        assert.equal(w4.protocol, 5);
        const room = uniq("mixed");
        assert.deepEqual(await emitAck(v2, "join", [room]), [[v2.id, room].sort()]);
        assert.deepEqual(await V4.emitAck(v4, "join", [room]), [[v4.id, room].sort()]);

        const msg = { text: "from 2.x 🐢", n: [1, null] };
        const at2 = waitFor(v2, "room-message", { filter: (m) => m?.msg?.text === msg.text });
        const at4 = waitFor(v4, "room-message", { filter: (m) => m?.msg?.text === msg.text });
        assert.deepEqual(await emitAck(v2, "to-room", [room, msg]), [true]);
        const expected = { room, from: v2.id, msg };
        assert.deepEqual((await at2)[0], expected);
        assert.deepEqual((await at4)[0], expected);

        const msg4 = { text: "from 4.x 🚀" };
        const at4b = waitFor(v4, "room-message", { filter: (m) => m?.msg === "from 4.x" });
        const at2b = waitFor(v2, "room-message", { filter: (m) => m?.msg === "from 4.x" });
        assert.deepEqual(await V4.emitAck(v4, "to-room", [room, "from 4.x"]), [true]);
        const expected4 = { room, from: v4.id, msg: "from 4.x" };
        assert.deepEqual((await at4b)[0], expected4);
        assert.deepEqual((await at2b)[0], expected4);

        const got4 = record(v4, "broadcast");
        const bcast = waitFor(v2, "broadcast", { filter: (m) => m?.text === msg4.text });
        v4.emit("broadcast", msg4);
        assert.deepEqual(await bcast, [msg4]);
        assert.deepEqual(await V4.emitAck(v4, "echo", ["marker"]), ["marker"]);
        assert.deepEqual(got4, [], "the 4.x sender must not get its own broadcast");
      });
    }
  });
}
