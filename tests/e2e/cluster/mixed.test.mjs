// A mixed cluster: one Node socket.io 4.8 server with @socket.io/redis-adapter 8.x
// (node_server.mjs) and two socketlet nodes on the same Redis, clients on each, one room. Run
// three times: classic pub/sub (createAdapter), and Redis 7 sharded pub/sub (createShardedAdapter)
// in its default "dynamic" mode (a broadcast to one room travels on that room's own channel) and
// in "dynamic-private" mode (sockets' own ids get channels too).

import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import {
  Env,
  REDIS_CLI,
  ack,
  fetchSockets,
  normalizeBinary,
  record,
  run,
  sleep,
  until,
  waitFor,
} from "./helpers.mjs";

const ROOM = "mixed";
/** Time given to duplicates to show up after the expected messages arrived. */
const GRACE_MS = 500;

// `channels`: the subscribers Redis counts (3 servers): of the namespace's sharded channel, of
// the room's, and of one socket's own id channel.
const MODES = [
  {
    name: "classic pub/sub",
    node: [],
    socketlet: [],
    channels: { namespace: 0, room: 0, socket: 0 },
  },
  {
    name: "sharded pub/sub, dynamic",
    node: ["--sharded", "dynamic"],
    socketlet: ["--redis-sharded", "dynamic"],
    channels: { namespace: 3, room: 3, socket: 0 },
  },
  {
    name: "sharded pub/sub, dynamic-private",
    node: ["--sharded", "dynamic-private"],
    socketlet: ["--redis-sharded", "dynamic-private"],
    channels: { namespace: 3, room: 3, socket: 1 },
  },
];

/** How many subscribers Redis counts on each sharded channel. */
async function shardSubscribers(redis, channels) {
  const { stdout } = await run(REDIS_CLI, ["-p", String(redis.port), "PUBSUB", "SHARDNUMSUB", ...channels]);
  const lines = stdout.trim().split("\n");
  return channels.map((c) => Number(lines[lines.indexOf(c) + 1]));
}

for (const mode of MODES) describe(
  `a mixed cluster (${mode.name}): Node socket.io + @socket.io/redis-adapter and two socketlet nodes`,
  { timeout: 90000 },
  () => {
    const env = new Env();
    let nodeServer;
    let members;
    let redis;

    before(async () => {
      redis = await env.redis();
      nodeServer = await env.nodeServer({ redisUrl: redis.url, args: mode.node });
      const s1 = await env.socketlet({
        redisUrl: redis.url,
        label: "mixed-socketlet1",
        args: mode.socketlet,
      });
      const s2 = await env.socketlet({
        redisUrl: redis.url,
        label: "mixed-socketlet2",
        args: mode.socketlet,
      });
      const clients = env.clients();
      const spec = [
        { server: nodeServer, where: "node", generation: 4, opts: {} },
        { server: nodeServer, where: "node", generation: 2, opts: { transports: ["websocket"] } },
        { server: s1, where: "socketlet1", generation: 4, opts: { transports: ["polling"] } },
        { server: s1, where: "socketlet1", generation: 2, opts: {} },
        { server: s2, where: "socketlet2", generation: 4, opts: { transports: ["websocket"] } },
      ];
      members = await Promise.all(
        spec.map(async ({ server, where, generation, opts }, i) => {
          const name = `${where}-v${generation}-${i}`;
          const socket = await clients.connect(server.url, { generation, name, ...opts });
          socket.on("ping-ack", (_msg, cb) => cb(name));
          return {
            name,
            where,
            socket,
            messages: record(socket, "room-message"),
            pinged: record(socket, "nodes-pinged"),
          };
        }),
      );
      for (const m of members) {
        const [rooms] = await ack(m.socket, "join", [ROOM]);
        assert.ok(rooms.includes(ROOM), m.name);
      }
    });
    after(() => env.cleanup());

    /** Sends a to-room from `sender` and checks every member gets it exactly once. */
    async function broadcastFrom(sender, msg) {
      for (const m of members) m.messages.length = 0;
      const [ok] = await ack(sender.socket, "to-room", [ROOM, msg]);
      assert.equal(ok, true);
      await until(() => members.every((m) => m.messages.length >= 1), {
        what: `every member to get ${sender.name}'s broadcast`,
      });
      await sleep(GRACE_MS);
      for (const m of members) {
        assert.deepEqual(
          normalizeBinary(m.messages),
          [[normalizeBinary({ room: ROOM, from: sender.socket.sid, msg })]],
          `${m.name} got ${sender.name}'s broadcast exactly once`,
        );
      }
    }

    it("every server subscribes to the channels of the mode", async () => {
      const socketletMember = members[2].socket.sid;
      const channels = ["socket.io#/#", `socket.io#/#${ROOM}#`, `socket.io#/#${socketletMember}#`];
      const { namespace, room, socket } = mode.channels;
      await until(
        async () =>
          JSON.stringify(await shardSubscribers(redis, channels)) ===
          JSON.stringify([namespace, room, socket]),
        { what: `sharded subscribers ${[namespace, room, socket]} on ${channels}` },
      );
    });

    it("Node server -> socketlet clients (and Node's own), with binary", async () => {
      await broadcastFrom(members[0], {
        from: "node",
        bin: Buffer.from([0xde, 0xad, 0xbe, 0xef]),
        nested: [Buffer.from([0])],
      });
    });

    it("socketlet -> Node clients (and the other socketlet node's), with binary", async () => {
      await broadcastFrom(members[2], { from: "socketlet1", bin: Buffer.from([1, 2, 3]) });
      await broadcastFrom(members[4], { from: "socketlet2", text: "plain, no binary" });
    });

    it("a broadcast to one socket's id reaches it on its node, both ways", async () => {
      for (const [sender, target] of [
        [members[0], members[2]],
        [members[4], members[1]],
      ]) {
        for (const m of members) m.messages.length = 0;
        const msg = `${sender.name} to ${target.name}`;
        const [ok] = await ack(sender.socket, "to-room", [target.socket.sid, msg]);
        assert.equal(ok, true);
        await until(() => target.messages.length >= 1, { what: `${target.name} to get it` });
        await sleep(GRACE_MS);
        for (const m of members) {
          const expected =
            m === target ? [[{ room: target.socket.sid, from: sender.socket.sid, msg }]] : [];
          assert.deepEqual(m.messages, expected, `${m.name} (sent to ${target.name})`);
        }
      }
    });

    it("fetchSockets() from the Node server sees the socketlet sockets with their rooms", async () => {
      const list = await fetchSockets(members[0].socket);
      assert.deepEqual(list.map((s) => s.id).sort(), members.map((m) => m.socket.sid).sort());
      for (const s of list) {
        const m = members.find((x) => x.socket.sid === s.id);
        assert.equal(s.local, m.where === "node", `${m.name} local to the Node server`);
        assert.deepEqual([...s.rooms].sort(), [ROOM, s.id].sort(), m.name);
      }
    });

    it("fetch-sockets from a socketlet node sees the Node server's sockets with their rooms", async () => {
      const list = await fetchSockets(members[4].socket);
      assert.deepEqual(list.map((s) => s.id).sort(), members.map((m) => m.socket.sid).sort());
      for (const s of list) {
        const m = members.find((x) => x.socket.sid === s.id);
        assert.equal(s.local, m.where === "socketlet2", `${m.name} local to socketlet2`);
        assert.deepEqual([...s.rooms].sort(), [ROOM, s.id].sort(), m.name);
      }
    });

    it("broadcast with acks both ways (collect-acks from Node and from socketlet)", async () => {
      const names = members.map((m) => m.name).sort();
      for (const asker of [members[0], members[3]]) {
        const [answers] = await ack(asker.socket, "collect-acks", [ROOM], { timeout: 8000 });
        assert.deepEqual([...answers].sort(), names, `collect-acks from ${asker.name}`);
      }
    });

    it("server-side emit both ways", async () => {
      // From Node: both socketlet nodes get ping-nodes and each io.emit()s nodes-pinged cluster-wide.
      const [ok1] = await ack(members[0].socket, "server-side-emit", ["from-node"]);
      assert.equal(ok1, true);
      await until(() => members.every((m) => m.pinged.length >= 2), {
        what: "two nodes-pinged everywhere",
      });
      // From socketlet1: the Node server and socketlet2 get it.
      const [ok2] = await ack(members[2].socket, "server-side-emit", ["from-socketlet"]);
      assert.equal(ok2, true);
      await until(() => members.every((m) => m.pinged.length >= 4), {
        what: "two more nodes-pinged everywhere",
      });
      await sleep(GRACE_MS);
      for (const m of members) {
        assert.deepEqual(
          m.pinged.map((a) => a[0]).sort(),
          ["from-node", "from-node", "from-socketlet", "from-socketlet"],
          m.name,
        );
      }
    });

    it("remote disconnect both ways", async () => {
      // The Node server disconnects a socketlet client, then a socketlet node a Node client.
      for (const [by, target] of [
        [members[0], members[3]],
        [members[4], members[1]],
      ]) {
        const gone = waitFor(target.socket, "disconnect");
        const [ok] = await ack(by.socket, "remote-disconnect", [target.socket.sid]);
        assert.equal(ok, true);
        const [reason] = await gone;
        assert.equal(reason, "io server disconnect", target.name);
      }
      const left = [members[0], members[2], members[4]].map((m) => m.socket.sid).sort();
      assert.deepEqual((await fetchSockets(members[0].socket)).map((s) => s.id).sort(), left);
      assert.deepEqual((await fetchSockets(members[2].socket)).map((s) => s.id).sort(), left);
      assert.ok(nodeServer.alive());
      // The socketlet node let go of the channel of the socket it disconnected.
      const gone = `socket.io#/#${members[3].socket.sid}#`;
      await until(async () => (await shardSubscribers(redis, [gone]))[0] === 0, {
        what: `no subscriber left on ${gone}`,
      });
    });
  },
);
