// Emitting from outside the cluster: python-socketio's message queue (`RedisManager(url,
// write_only=True)`: JSON from python-socketio 5.x, pickles from 4.5.1, and pickles that try to run
// code), and Node's @socket.io/redis-emitter.

import assert from "node:assert/strict";
import { existsSync, mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { Emitter } from "@socket.io/redis-emitter";
import { createClient } from "redis";
import {
  Env,
  PY451,
  PY5,
  ack,
  fetchSockets,
  normalizeBinary,
  python,
  record,
  sleep,
  until,
  waitFor,
} from "./helpers.mjs";

/** Time given to unwanted deliveries to show up. */
const GRACE_MS = 500;

const hex = (...bytes) => Buffer.from(bytes).toString("hex");

/** Records these events on a socket: `{ [event]: [[args...], ...] }`. */
function recordAll(socket, events) {
  return Object.fromEntries(events.map((e) => [e, record(socket, e)]));
}

/** The rooms of `sid` as `fetch-sockets` through `via` sees them. */
async function roomsOf(via, sid) {
  const s = (await fetchSockets(via)).find((x) => x.id === sid);
  return s ? [...s.rooms].sort() : null;
}

/** Counts the lines of a log that match `re`. */
const countLines = (text, re) => text.split("\n").filter((l) => re.test(l)).length;

describe(
  "python-socketio's message queue (RedisManager, write_only=True)",
  { timeout: 120000 },
  () => {
    const env = new Env();
    let redis;
    /** Reads pickles (--accept-pickle). */
    let nodeA;
    /** Does not (the default). */
    let nodeB;
    let a1;
    let b1;
    let b2;
    let got;
    let markerDir;
    let controlDir;
    const EVENTS = [
      "py-event",
      "py-direct",
      "py-bin",
      "py-room2",
      "old-event",
      "old-args",
      "after-evil",
      "evil",
    ];

    before(async () => {
      redis = await env.redis();
      nodeA = await env.socketlet({
        redisUrl: redis.url,
        label: "py-nodeA",
        args: ["--python-channel", "socketio", "--accept-pickle"],
      });
      nodeB = await env.socketlet({
        redisUrl: redis.url,
        label: "py-nodeB",
        args: ["--python-channel", "socketio"],
      });
      const clients = env.clients();
      a1 = await clients.connect(nodeA.url, { name: "a1" });
      b1 = await clients.connect(nodeB.url, { name: "b1", generation: 2 });
      b2 = await clients.connect(nodeB.url, { name: "b2" });
      got = new Map([a1, b1, b2].map((s) => [s, recordAll(s, EVENTS)]));
      for (const s of [a1, b1]) await ack(s, "join", ["py-room"]);
      markerDir = mkdtempSync(join(tmpdir(), "socketlet-pickle-marker-"));
      controlDir = mkdtempSync(join(tmpdir(), "socketlet-pickle-control-"));
      env.defer(() => rmSync(markerDir, { recursive: true, force: true }));
      env.defer(() => rmSync(controlDir, { recursive: true, force: true }));
    });
    after(() => env.cleanup());

    const py5 = (ops) => python(PY5, "json_emitter.py", [redis.url, JSON.stringify(ops)]);
    const py451 = (ops, protocol) =>
      python(PY451, "pickle_emitter.py", [
        redis.url,
        JSON.stringify(ops),
        ...(protocol === undefined ? [] : [String(protocol)]),
      ]);
    const received = (socket, event) => got.get(socket)[event].map((args) => normalizeBinary(args));

    it("5.x JSON: emit to a room reaches its members on both nodes exactly once", async () => {
      await py5([["emit", "py-event", { n: 1, text: "héllo" }, { room: "py-room" }]]);
      await until(() => received(a1, "py-event").length && received(b1, "py-event").length, {
        what: "py-event on a1 and b1",
      });
      await sleep(GRACE_MS);
      for (const s of [a1, b1])
        assert.deepEqual(received(s, "py-event"), [[{ n: 1, text: "héllo" }]], s.name);
      assert.deepEqual(received(b2, "py-event"), []);
    });

    it("5.x JSON: emit to one client's sid (to=) reaches only that client", async () => {
      await py5([["emit", "py-direct", "just you", { to: b2.sid }]]);
      await until(() => received(b2, "py-direct").length, { what: "py-direct on b2" });
      await sleep(GRACE_MS);
      assert.deepEqual(received(b2, "py-direct"), [["just you"]]);
      for (const s of [a1, b1]) assert.deepEqual(received(s, "py-direct"), [], s.name);
    });

    it("5.x JSON: several arguments with binary, and skip_sid", async () => {
      const data = {
        $tuple: ["text", { buf: { $bytes: hex(0, 1, 0xff) }, list: [{ $bytes: hex(7) }] }],
      };
      await py5([["emit", "py-bin", data, { room: "py-room", skip_sid: a1.sid }]]);
      await until(() => received(b1, "py-bin").length, { what: "py-bin on b1" });
      await sleep(GRACE_MS);
      assert.deepEqual(received(b1, "py-bin"), [
        ["text", { buf: { $bytes: hex(0, 1, 0xff) }, list: [{ $bytes: hex(7) }] }],
      ]);
      assert.deepEqual(received(a1, "py-bin"), [], "a1 was skipped");
    });

    it("5.x JSON: enter_room and leave_room act on a client of another node", async () => {
      await py5([["enter_room", b2.sid, "/", "py-room2"]]);
      await until(async () => (await roomsOf(a1, b2.sid))?.includes("py-room2"), {
        what: "b2 in py-room2, seen from node A",
      });
      await py5([["emit", "py-room2", "in", { room: "py-room2" }]]);
      await until(() => received(b2, "py-room2").length, { what: "py-room2 on b2" });
      await py5([["leave_room", b2.sid, "/", "py-room2"]]);
      await until(async () => !(await roomsOf(a1, b2.sid)).includes("py-room2"), {
        what: "b2 out of py-room2, seen from node A",
      });
      await py5([["emit", "py-room2", "out", { room: "py-room2" }]]);
      await sleep(GRACE_MS);
      assert.deepEqual(received(b2, "py-room2"), [["in"]]);
    });

    it("5.x JSON: close_room empties a room on every node", async () => {
      await ack(a1, "join", ["to-close"]);
      await ack(b1, "join", ["to-close"]);
      await py5([["close_room", "to-close", "/"]]);
      await until(
        async () => {
          const list = await fetchSockets(b2);
          return list.every((s) => !s.rooms.includes("to-close"));
        },
        { what: "to-close to be empty" },
      );
    });

    it("4.5.1 pickles are delivered by a node with --accept-pickle, ignored and logged by one without", async () => {
      for (const s of [a1, b1]) await ack(s, "join", ["old-room"]);
      const mark = countLines(nodeB.log(), /ignored a pickled python-socketio message/);
      await py451([
        [
          "emit",
          "old-event",
          { text: "héllo", buf: { $bytes: hex(0, 1, 2) }, n: 1.5 },
          { room: "old-room" },
        ],
        ["emit", "old-args", { $tuple: ["a", 1, null, [true]] }, { room: a1.sid }],
      ]);
      await until(() => received(a1, "old-event").length && received(a1, "old-args").length, {
        what: "old-event and old-args on a1",
      });
      await until(
        () => countLines(nodeB.log(), /ignored a pickled python-socketio message/) >= mark + 2,
        {
          what: "node B to log the two ignored pickles",
        },
      );
      await sleep(GRACE_MS);
      assert.deepEqual(received(a1, "old-event"), [
        [{ text: "héllo", buf: { $bytes: hex(0, 1, 2) }, n: 1.5 }],
      ]);
      assert.deepEqual(received(a1, "old-args"), [["a", 1, null, [true]]]);
      assert.deepEqual(received(b1, "old-event"), [], "node B does not read pickles");
    });

    it("4.5.1 pickles of protocol 0 (Python 2's default) are delivered too", async () => {
      await py451(
        [
          [
            "emit",
            "old-args",
            { $tuple: ["protocol 0", "h\u00e9 \\u0041 \u{1F600}", 2, 0.5, { k: [null, false] }] },
            { room: a1.sid },
          ],
        ],
        0,
      );
      await until(() => received(a1, "old-args").length >= 2, {
        what: "the protocol 0 old-args on a1",
      });
      assert.deepEqual(received(a1, "old-args")[1], [
        "protocol 0",
        "h\u00e9 \\u0041 \u{1F600}",
        2,
        0.5,
        { k: [null, false] },
      ]);
    });

    it("a pickle that tries to run code is refused and logged, and runs nothing", async () => {
      // Refused as code, not merely as an unknown opcode.
      const REFUSED =
        /refused a pickled python-socketio message: refused a pickle that would build objects or call code/;
      const before = countLines(nodeA.log(), REFUSED);
      const { stdout } = await python(PY5, "evil_pickle.py", [redis.url, markerDir, controlDir]);
      const { published, names } = JSON.parse(stdout.trim().split("\n").pop());
      // The control: unpickled by Python itself, every payload ran its command.
      assert.deepEqual(readdirSync(controlDir).sort(), [...names].sort());
      await until(() => countLines(nodeA.log(), REFUSED) >= before + published, {
        what: `node A to log ${published} refusals`,
      });
      // A good pickle published after the attacks still arrives: node A went on serving.
      await py451([["emit", "after-evil", "still here", { room: a1.sid }]]);
      await until(() => received(a1, "after-evil").length, { what: "after-evil on a1" });
      await sleep(GRACE_MS);
      assert.deepEqual(readdirSync(markerDir), [], "no command ran");
      for (const name of names) assert.equal(existsSync(join(markerDir, name)), false);
      assert.deepEqual(received(a1, "evil"), []);
      assert.ok(nodeA.alive() && nodeB.alive());
      // eslint-disable-next-line no-control-regex
      const refusals = nodeA
        .log()
        .replace(/\x1b\[[0-9;]*m/g, "")
        .split("\n")
        .filter((l) => REFUSED.test(l));
      console.log(`node A logged, e.g.: ${refusals[0]}`);
    });

    it("5.x JSON: disconnect acts on a client of another node", async () => {
      const gone = waitFor(b2, "disconnect");
      await py5([["disconnect", b2.sid, "/"]]);
      const [reason] = await gone;
      assert.equal(reason, "io server disconnect");
      assert.equal(await roomsOf(a1, b2.sid), null);
    });
  },
);

describe("Node's @socket.io/redis-emitter", { timeout: 60000 }, () => {
  const env = new Env();
  let emitter;
  let a1;
  let b1;
  let b2;

  before(async () => {
    const redis = await env.redis();
    const nodeA = await env.socketlet({ redisUrl: redis.url, label: "emitter-nodeA" });
    const nodeB = await env.socketlet({ redisUrl: redis.url, label: "emitter-nodeB" });
    const clients = env.clients();
    a1 = await clients.connect(nodeA.url, { name: "a1" });
    b1 = await clients.connect(nodeB.url, { name: "b1", generation: 2 });
    b2 = await clients.connect(nodeB.url, { name: "b2" });
    for (const s of [a1, b1]) await ack(s, "join", ["emitter-room"]);
    const redisClient = createClient({ url: redis.url });
    redisClient.on("error", () => {});
    await redisClient.connect();
    env.defer(() => redisClient.disconnect());
    emitter = new Emitter(redisClient);
  });
  after(() => env.cleanup());

  it("emits to a room (with binary), reaching its members on both nodes exactly once", async () => {
    const got = new Map([a1, b1, b2].map((s) => [s, record(s, "from-emitter")]));
    emitter.to("emitter-room").emit("from-emitter", { buf: Buffer.from([1, 2, 3]) }, "second");
    await until(() => got.get(a1).length && got.get(b1).length, {
      what: "from-emitter on a1 and b1",
    });
    await sleep(GRACE_MS);
    for (const s of [a1, b1]) {
      assert.deepEqual(
        normalizeBinary(got.get(s)),
        [[{ buf: { $bytes: hex(1, 2, 3) } }, "second"]],
        s.name,
      );
    }
    assert.deepEqual(got.get(b2), []);
  });

  it("socketsJoin and disconnectSockets act on clients of the nodes", async () => {
    emitter.in(b2.sid).socketsJoin("joined-by-emitter");
    await until(async () => (await roomsOf(a1, b2.sid))?.includes("joined-by-emitter"), {
      what: "b2 in joined-by-emitter",
    });
    const got = record(b2, "to-joined");
    emitter.to("joined-by-emitter").emit("to-joined", 1);
    await until(() => got.length, { what: "to-joined on b2" });
    const gone = waitFor(b1, "disconnect");
    emitter.in(b1.sid).disconnectSockets();
    const [reason] = await gone;
    assert.equal(reason, "io server disconnect");
  });
});
