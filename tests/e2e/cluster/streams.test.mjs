// Connection state recovery and Redis Streams (`--redis-streams`, the format of Node's
// @socket.io/redis-streams-adapter 0.3), with socket.io-client 4.8:
//
// 1. One socketlet node with --redis-streams --recovery-ms: a client whose transport is killed
//    (`socket.io.engine.close()`, reconnection held back meanwhile) gets, once back, every event
//    emitted meanwhile to it, to its room and to everyone, exactly once and in order, each with
//    its offset (a stream entry id), and `socket.recovered` is true; once the recovery window
//    passed, it gets a fresh socket.
// 2. A cluster of two socketlet nodes and one Node socket.io 4.8 server with
//    @socket.io/redis-streams-adapter and connectionStateRecovery (node_server.mjs --streams):
//    broadcasts both ways (the same offset on every node), requests over pub/sub (fetchSockets,
//    broadcasts with acks, server-side emits), and clients that recover on another node than
//    the one they left: socketlet to socketlet, socketlet to Node, Node to socketlet. Clients
//    connect to explicit node URLs (a recovering client's Manager is pointed at the other node,
//    as a load balancer would send it there).

import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { Env, REDIS_CLI, ack, fetchSockets, run, sleep, until, waitConnect, waitFor } from "./helpers.mjs";

/** Time given to duplicates to show up after the expected events arrived. */
const GRACE_MS = 500;
/** Time for an event emitted on a node to reach Redis (its XADD) before a client comes back. */
const SETTLE_MS = 200;

/** Whether `v` is a recovery offset of the streams adapter: a stream entry id. */
const isOffset = (v) => typeof v === "string" && /^\d+-\d+$/.test(v);

/** Compares two stream entry ids. */
function compareIds(a, b) {
  const [am, as] = a.split("-").map(BigInt);
  const [bm, bs] = b.split("-").map(BigInt);
  return am === bm ? (as < bs ? -1 : as > bs ? 1 : 0) : am < bm ? -1 : 1;
}

/** Records every event `socket` receives, as `[name, ...args]` (offsets included), in order. */
function recordAll(socket) {
  const got = [];
  socket.onAny((...args) => got.push(args));
  return got;
}

/** The `room-message` and `broadcast` events of `got` from `from` on: `[name, msg, offset]`. */
function messages(got, from = 0) {
  return got
    .slice(from)
    .filter(([name]) => name === "room-message" || name === "broadcast")
    .map(([name, payload, ...rest]) => [
      name,
      name === "room-message" ? payload.msg : payload,
      rest[rest.length - 1],
    ]);
}

/** Kills the client's transport with reconnection held back; resolves to the client's reason. */
async function dropTransport(socket) {
  socket.io.reconnection(false);
  const gone = waitFor(socket, "disconnect");
  socket.io.engine.close();
  const [reason] = await gone;
  return reason;
}

/**
 * Lets the client reconnect, to `url` if given (another node); resolves to the server's
 * `welcome` payload once connected.
 */
async function comeBack(socket, url) {
  if (url) socket.io.uri = url;
  socket.io.reconnection(true);
  const welcome = waitFor(socket, "welcome");
  const connected = waitConnect(socket);
  socket.connect();
  await connected;
  return (await welcome)[0];
}

/** Joins `room` through `socket`. */
async function join(socket, room) {
  const [rooms] = await ack(socket, "join", [room]);
  assert.ok(rooms.includes(room), JSON.stringify(rooms));
}

/** Waits until `n` nodes subscribed to the public channel of `/`, then for their stream readers. */
async function untilNodes(redis, n) {
  await until(
    async () => {
      const { stdout } = await run(REDIS_CLI, ["-p", String(redis.port), "PUBSUB", "NUMSUB", "socket.io#/#"]);
      return Number(stdout.trim().split("\n")[1]) >= n;
    },
    { what: `${n} nodes on socket.io#/#` },
  );
  await sleep(300);
}

describe("connection state recovery on one socketlet node (--redis-streams)", { timeout: 60000 }, () => {
  const env = new Env();
  const RECOVERY_MS = 2000;
  let node;
  let clients;

  before(async () => {
    const redis = await env.redis();
    node = await env.socketlet({
      redisUrl: redis.url,
      label: "streams-single",
      args: ["--redis-streams", "--recovery-ms", String(RECOVERY_MS)],
    });
    await untilNodes(redis, 1);
    clients = env.clients();
  });
  after(() => env.cleanup());

  for (const transport of ["websocket", "polling"]) {
    it(`a client back within the window gets everything it missed, once (${transport})`, async () => {
      const room = `r-${transport}`;
      const subject = await clients.connect(node.url, { transports: [transport], name: "subject" });
      const other = await clients.connect(node.url, { transports: ["websocket"], name: "other" });
      await join(subject, room);
      const got = recordAll(subject);
      // One event first: the client keeps its offset.
      await ack(other, "to-room", [room, "first"]);
      await until(() => messages(got).length === 1, { what: "the first event" });
      assert.ok(isOffset(messages(got)[0][2]), JSON.stringify(got));
      const sid = subject.id;

      await dropTransport(subject);
      const mark = got.length;
      await ack(other, "to-room", [sid, "to-it"]);
      await ack(other, "to-room", [room, "to-its-room"]);
      other.emit("broadcast", "to-everyone");
      await ack(other, "to-room", ["elsewhere", "not-for-it"]);
      await sleep(SETTLE_MS);

      const welcome = await comeBack(subject);
      assert.equal(subject.recovered, true);
      assert.equal(subject.id, sid);
      assert.equal(welcome.recovered, true);
      await sleep(GRACE_MS);
      const missed = messages(got, mark);
      assert.deepEqual(
        missed.map(([name, msg]) => [name, msg]),
        [
          ["room-message", "to-it"],
          ["room-message", "to-its-room"],
          ["broadcast", "to-everyone"],
        ],
      );
      const offsets = missed.map(([, , offset]) => offset);
      assert.ok(offsets.every(isOffset), JSON.stringify(offsets));
      assert.deepEqual([...offsets].sort(compareIds), offsets, "in stream order");
      // It is in its room again, live.
      await ack(other, "to-room", [room, "live"]);
      await until(() => messages(got, mark).length === 4, { what: "the live event" });
      await sleep(GRACE_MS);
      assert.deepEqual(messages(got, mark).slice(3).map(([, msg]) => msg), ["live"]);
    });
  }

  it("a client back after the window gets a fresh socket, and nothing it missed", async () => {
    const room = "r-late";
    const subject = await clients.connect(node.url, { transports: ["websocket"], name: "late" });
    const other = await clients.connect(node.url, { transports: ["websocket"], name: "other-late" });
    await join(subject, room);
    const got = recordAll(subject);
    await ack(other, "to-room", [room, "first"]);
    await until(() => messages(got).length === 1, { what: "the first event" });
    const sid = subject.id;
    await dropTransport(subject);
    const mark = got.length;
    await ack(other, "to-room", [room, "missed"]);
    await sleep(RECOVERY_MS + 500);

    const welcome = await comeBack(subject);
    assert.equal(subject.recovered, false);
    assert.notEqual(subject.id, sid);
    assert.equal(welcome.recovered, undefined);
    await sleep(GRACE_MS);
    assert.deepEqual(messages(got, mark), []);
    // A fresh socket: not in its old room.
    await ack(other, "to-room", [room, "after"]);
    await sleep(GRACE_MS);
    assert.deepEqual(messages(got, mark), []);
  });
});

describe(
  "a cluster on Redis Streams: two socketlet nodes and Node's @socket.io/redis-streams-adapter",
  { timeout: 90000 },
  () => {
    const env = new Env();
    let redis;
    let nodes;
    let clients;
    const ROOM = "everyone-here";
    /** One client per node, in ROOM: `{ name, node, socket, got }`. */
    const members = [];

    before(async () => {
      redis = await env.redis();
      const args = ["--redis-streams", "--recovery-ms", "10000"];
      const s1 = await env.socketlet({ redisUrl: redis.url, label: "streams-s1", args });
      const s2 = await env.socketlet({ redisUrl: redis.url, label: "streams-s2", args });
      const node = await env.nodeServer({
        redisUrl: redis.url,
        label: "streams-node",
        args: ["--streams", "--recovery-ms", "10000"],
      });
      nodes = { s1, s2, node };
      await untilNodes(redis, 3);
      clients = env.clients();
      for (const name of ["s1", "s2", "node"]) {
        const socket = await clients.connect(nodes[name].url, { transports: ["websocket"], name });
        socket.on("ping-ack", (_ping, callback) => callback(`pong-${name}`));
        await join(socket, ROOM);
        members.push({ name, node: name, socket, got: recordAll(socket) });
      }
    });
    after(() => env.cleanup());

    it("broadcasts reach every node both ways, once, with the same offset everywhere", async () => {
      const marks = members.map((m) => m.got.length);
      for (const m of members) await ack(m.socket, "to-room", [ROOM, `from-${m.name}`]);
      for (const m of members) m.socket.emit("broadcast", `all-from-${m.name}`);
      await until(
        () => members.every((m, i) => messages(m.got, marks[i]).length === 3 + 2),
        { what: "every message on every client" },
      );
      await sleep(GRACE_MS);
      const offsetOf = new Map();
      members.forEach((m, i) => {
        const got = messages(m.got, marks[i]);
        const texts = got.map(([, msg]) => msg).sort();
        const expected = [
          ...members.map((o) => `from-${o.name}`),
          ...members.filter((o) => o !== m).map((o) => `all-from-${o.name}`),
        ].sort();
        assert.deepEqual(texts, expected, `${m.name} got ${JSON.stringify(got)}`);
        for (const [, msg, offset] of got) {
          assert.ok(isOffset(offset), `${m.name}: ${msg} came with ${offset}`);
          // The sender's node delivers with XADD's id, the others with the id they read.
          if (offsetOf.has(msg)) assert.equal(offset, offsetOf.get(msg), msg);
          else offsetOf.set(msg, offset);
        }
      });
    });

    it("requests cross nodes over pub/sub: fetch-sockets, broadcasts with acks, server-side emits", async () => {
      for (const m of members) {
        const list = await fetchSockets(m.socket);
        const ids = list.map((s) => s.id).sort();
        for (const o of members) assert.ok(ids.includes(o.socket.id), `${m.name} sees ${o.name}`);
        const mine = list.find((s) => s.id === m.socket.id);
        assert.equal(mine.local, true, `${m.name} is local to its node`);
        const theirs = list.filter((s) => members.some((o) => o !== m && o.socket.id === s.id));
        assert.ok(theirs.every((s) => s.local === false), JSON.stringify(list));
      }
      for (const m of members) {
        const [answers] = await ack(m.socket, "collect-acks", [ROOM]);
        assert.deepEqual(answers, ["pong-node", "pong-s1", "pong-s2"], `asked on ${m.name}`);
      }
      const pinged = members.map((m) => {
        const got = [];
        m.socket.on("nodes-pinged", (...args) => got.push(args));
        return got;
      });
      await ack(members[0].socket, "server-side-emit", ["hello"]);
      // Each client gets one copy per other node (s2 and the Node server).
      await until(() => pinged.every((p) => p.length >= 2), { what: "nodes-pinged twice each" });
      await sleep(GRACE_MS);
      for (const p of pinged) {
        assert.equal(p.length, 2, JSON.stringify(p));
        assert.ok(p.every((args) => args[0] === "hello"), JSON.stringify(p));
      }
    });

    for (const [from, to, third] of [
      ["s1", "s2", "node"],
      ["s1", "node", "s2"],
      ["node", "s2", "s1"],
    ]) {
      it(`a client that left ${from} recovers on ${to}, with what ${third} and ${to} sent meanwhile`, async () => {
        const room = `room-${from}-${to}`;
        const subject = await clients.connect(nodes[from].url, {
          transports: ["websocket"],
          name: `subject-${from}`,
        });
        await join(subject, room);
        const got = recordAll(subject);
        const onThird = members.find((m) => m.name === third).socket;
        const onTo = members.find((m) => m.name === to).socket;
        await ack(onThird, "to-room", [room, "first"]);
        await until(() => messages(got).length === 1, { what: "the first event" });
        const sid = subject.id;

        await dropTransport(subject);
        const mark = got.length;
        await ack(onThird, "to-room", [room, "room-from-third"]);
        await ack(onTo, "to-room", [sid, "own-from-to"]);
        await ack(onThird, "to-room", [ROOM + "-not-its", "not-for-it"]);
        await sleep(SETTLE_MS);

        const welcome = await comeBack(subject, nodes[to].url);
        assert.equal(subject.recovered, true, `recovered on ${to}`);
        assert.equal(subject.id, sid);
        assert.equal(welcome.recovered, true);
        await sleep(GRACE_MS);
        const missed = messages(got, mark);
        // Two nodes wrote to the stream: between them, the order is the stream's (an ack comes
        // before the emitting node's XADD is done), which the replay follows.
        assert.deepEqual(
          missed.map(([, msg]) => msg).sort(),
          ["own-from-to", "room-from-third"],
          JSON.stringify(missed),
        );
        assert.ok(missed.every(([, , offset]) => isOffset(offset)), JSON.stringify(missed));
        const offsets = missed.map(([, , offset]) => offset);
        assert.deepEqual([...offsets].sort(compareIds), offsets, "in stream order");
        // It is served by `to` now, in its room.
        const list = await fetchSockets(onTo);
        assert.equal(list.find((s) => s.id === sid)?.local, true, JSON.stringify(list));
        await ack(onThird, "to-room", [room, "live"]);
        await until(() => messages(got, mark).length === 3, { what: "the live event" });
        await sleep(GRACE_MS);
        assert.deepEqual(messages(got, mark).map(([, msg]) => msg).slice(2), ["live"]);
        subject.disconnect();
      });
    }
  },
);
