// Three socketlet nodes on one Redis behind a real nginx with sticky sessions; clients of both
// protocol generations (socket.io-client 4.x and 2.x) over polling, WebSocket and the default
// upgrade, spread over the three nodes, in one room.
//
// The sticky key. Every test client comes from 127.0.0.1, and `ip_hash` hashes the first three
// octets of an IPv4 address, so it would send all of them to one node and prove nothing. Each
// client here sends its own `X-Sticky` header and nginx balances with `hash $http_x_sticky
// consistent`: as sticky as `ip_hash` (every request of a client carries the same key, polling
// requests and the WebSocket upgrade alike), but with one key per client instead of one per
// machine. The test asks nginx which node each key lands on (the `X-Upstream` header nginx adds)
// and picks keys that put the clients on all three nodes, then checks from the nodes' side
// (`fetch-sockets`' `local` flag) that they really are there.

import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import {
  Env,
  ack,
  fetchSockets,
  normalizeBinary,
  record,
  sleep,
  transportsFor,
  until,
  waitFor,
} from "./helpers.mjs";

const ROOM = "all-nodes";
/** Time given to duplicates to show up after the expected messages arrived. */
const GRACE_MS = 500;

/** Client i goes to node i % 3: every node gets both generations and two transport setups. */
const SETUPS = [
  { generation: 4, setup: "polling" },
  { generation: 4, setup: "websocket" },
  { generation: 4, setup: "upgrade" },
  { generation: 2, setup: "websocket" },
  { generation: 2, setup: "upgrade" },
  { generation: 2, setup: "polling" },
];

describe("three socketlet nodes behind nginx with sticky sessions", { timeout: 120000 }, () => {
  const env = new Env();
  let redis;
  let nodes;
  let nginx;
  let clients;
  /** `{ name, generation, setup, node, key, socket }` for each client of SETUPS. */
  const members = [];
  const nodeOfAddr = new Map();

  before(async () => {
    redis = await env.redis();
    nodes = await Promise.all(
      [0, 1, 2].map((i) => env.socketlet({ redisUrl: redis.url, label: `nginx-node${i}` })),
    );
    nodes.forEach((n, i) => nodeOfAddr.set(`127.0.0.1:${n.port}`, i));
    nginx = await env.nginx({ upstreams: nodes.map((n) => n.port) });
    clients = env.clients();
  });
  after(() => env.cleanup());

  /** The node (0, 1, 2) nginx sends a sticky key to, from the X-Upstream header. */
  async function nodeOfKey(key, base = nginx.url) {
    const res = await fetch(`${base}/socket.io/?probe=1`, {
      headers: { "X-Sticky": key },
      signal: AbortSignal.timeout(5000),
    });
    await res.arrayBuffer();
    const upstream = res.headers.get("x-upstream");
    assert.ok(nodeOfAddr.has(upstream), `unexpected X-Upstream ${upstream}`);
    return nodeOfAddr.get(upstream);
  }

  it("nginx routes each sticky key to one node, and the keys cover all three nodes", async () => {
    const byNode = [[], [], []];
    for (let k = 0; k < 300 && byNode.some((l) => l.length < 2); k += 1) {
      const key = `client-${k}`;
      const node = await nodeOfKey(key);
      // Sticky: the same key lands on the same node every time.
      assert.equal(await nodeOfKey(key), node, `key ${key} moved`);
      byNode[node].push(key);
    }
    assert.ok(
      byNode.every((l) => l.length >= 2),
      `keys per node: ${byNode.map((l) => l.length)}`,
    );
    SETUPS.forEach((s, i) => {
      const node = i % 3;
      const key = byNode[node].shift();
      members.push({
        ...s,
        node,
        key,
        name: `v${s.generation === 4 ? "4" : "2"}-${s.setup}@node${node}`,
      });
    });
  });

  it("connects clients of both generations over polling, WebSocket and upgrade through nginx", async () => {
    assert.equal(members.length, SETUPS.length);
    await Promise.all(
      members.map(async (m) => {
        m.socket = await clients.connect(nginx.url, {
          generation: m.generation,
          name: m.name,
          extraHeaders: { "X-Sticky": m.key },
          ...transportsFor(m.setup),
        });
        m.socket.on("ping-ack", (_msg, cb) => cb(m.name));
        m.roomMessages = record(m.socket, "room-message");
        m.pinged = record(m.socket, "nodes-pinged");
        m.disconnects = record(m.socket, "disconnect");
      }),
    );
    for (const m of members) {
      const transport = () => m.socket.io.engine.transport.name;
      if (m.setup === "upgrade") {
        await until(() => transport() === "websocket", { what: `${m.name} to upgrade` });
      } else {
        // Polling stays polling, WebSocket is WebSocket from the start.
        assert.equal(transport(), m.setup, m.name);
      }
    }
  });

  it("every client is on the node its sticky key chose: fetch-sockets' `local` flag, from each node", async () => {
    const sids = members.map((m) => m.socket.sid).sort();
    for (const m of members) {
      const list = await fetchSockets(m.socket);
      assert.deepEqual(
        list.map((s) => s.id).sort(),
        sids,
        `${m.name} sees every socket of the cluster`,
      );
      const local = list
        .filter((s) => s.local)
        .map((s) => s.id)
        .sort();
      const expected = members
        .filter((o) => o.node === m.node)
        .map((o) => o.socket.sid)
        .sort();
      assert.deepEqual(local, expected, `the sockets local to ${m.name}'s node`);
    }
    assert.equal(new Set(members.map((m) => m.node)).size, 3, "clients on three nodes");
  });

  it("all join one room, and fetch-sockets lists every member with its rooms from any node", async () => {
    for (const m of members) {
      const [rooms] = await ack(m.socket, "join", [ROOM]);
      assert.deepEqual(rooms, [ROOM, m.socket.sid].sort(), m.name);
    }
    for (const m of members) {
      const list = await fetchSockets(m.socket);
      assert.equal(list.length, members.length);
      for (const s of list)
        assert.ok(s.rooms.includes(ROOM), `${s.id} is in ${ROOM} seen from ${m.name}`);
    }
  });

  it("a to-room broadcast (with binary) from each node reaches every member exactly once", async () => {
    const senders = [0, 1, 2].map((node) => members.find((m) => m.node === node));
    for (const [seq, sender] of senders.entries()) {
      const [ok] = await ack(sender.socket, "to-room", [
        ROOM,
        { seq, bin: Buffer.from([seq, 0xff, 0x00]) },
      ]);
      assert.equal(ok, true);
    }
    await until(() => members.every((m) => m.roomMessages.length >= senders.length), {
      what: "every member to get every broadcast",
    });
    await sleep(GRACE_MS);
    for (const m of members) {
      const got = m.roomMessages
        .map(([p]) => normalizeBinary(p))
        .sort((a, b) => a.msg.seq - b.msg.seq);
      assert.deepEqual(
        got,
        senders.map((s, seq) => ({
          room: ROOM,
          from: s.socket.sid,
          msg: { seq, bin: { $bytes: Buffer.from([seq, 0xff, 0x00]).toString("hex") } },
        })),
        `${m.name} got each broadcast exactly once`,
      );
    }
  });

  it("collect-acks from any node gathers the answers of the members on all nodes", async () => {
    const names = members.map((m) => m.name).sort();
    for (const node of [0, 1, 2]) {
      const asker = members.find((m) => m.node === node);
      const [answers] = await ack(asker.socket, "collect-acks", [ROOM], { timeout: 8000 });
      assert.deepEqual([...answers].sort(), names, `collect-acks from node ${node}`);
    }
  });

  it("server-side-emit reaches exactly the other nodes, not the sender's", async () => {
    // Each node that gets `ping-nodes` calls `io.emit("nodes-pinged", ...)`, which is itself a
    // cluster-wide broadcast: every client gets one `nodes-pinged` per node that received the
    // server-side emit, i.e. two (nodes 1 and 2). Three would mean the sender's own node got it.
    const sender = members.find((m) => m.node === 0);
    const [ok] = await ack(sender.socket, "server-side-emit", ["hello", 42]);
    assert.equal(ok, true);
    await until(() => members.every((m) => m.pinged.length >= 2), {
      what: "two nodes-pinged everywhere",
    });
    await sleep(GRACE_MS);
    for (const m of members)
      assert.deepEqual(
        m.pinged,
        [
          ["hello", 42],
          ["hello", 42],
        ],
        m.name,
      );
  });

  it("remote-disconnect disconnects a client on another node, of either generation", async () => {
    const pairs = [
      // a 4.x polling client on node 0 disconnects the 2.x polling client on node 2
      [members[0], members[5]],
      // a 2.x WebSocket client on node 0 disconnects the 4.x WebSocket client on node 1
      [members[3], members[1]],
    ];
    for (const [by, target] of pairs) {
      assert.notEqual(by.node, target.node);
      const gone = waitFor(target.socket, "disconnect");
      const [ok] = await ack(by.socket, "remote-disconnect", [target.socket.sid]);
      assert.equal(ok, true);
      const [reason] = await gone;
      assert.equal(reason, "io server disconnect", target.name);
    }
    const remaining = members.filter((m) => !pairs.some(([, t]) => t === m));
    const sids = remaining.map((m) => m.socket.sid).sort();
    for (const m of remaining) {
      assert.deepEqual((await fetchSockets(m.socket)).map((s) => s.id).sort(), sids, m.name);
    }
    // The others are untouched; the disconnected ones stay disconnected.
    await sleep(GRACE_MS);
    for (const m of remaining) assert.deepEqual(m.disconnects, [], m.name);
    for (const [, t] of pairs) assert.equal(t.socket.connected, false, t.name);
  });

  it("control: without stickiness (round robin) polling breaks, while WebSocket-only still works", async () => {
    // Round robin sends the handshake and the next request to different nodes: "Session ID unknown".
    await assert.rejects(
      clients.connect(nginx.roundRobinUrl, {
        transports: ["polling"],
        reconnection: false,
        timeout: 3000,
      }),
      /connect_error|timed out/,
    );
    assert.match(
      nginx.accessLog(),
      /sid=[^ ]* HTTP\/1\.1" 400 /,
      "a polling request of the session got 400",
    );
    // One WebSocket connection is one request: it needs no stickiness.
    const ws = await clients.connect(nginx.roundRobinUrl, { transports: ["websocket"] });
    const [rooms] = await ack(ws, "join", [ROOM]);
    assert.ok(rooms.includes(ROOM));
  });
});

describe("the nginx balancing that production would use", { timeout: 60000 }, () => {
  const env = new Env();
  let nodes;
  let clients;
  const nodeOfAddr = new Map();

  before(async () => {
    const redis = await env.redis();
    nodes = await Promise.all(
      [0, 1, 2].map((i) => env.socketlet({ redisUrl: redis.url, label: `lb-node${i}` })),
    );
    nodes.forEach((n, i) => nodeOfAddr.set(`127.0.0.1:${n.port}`, i));
    clients = env.clients();
  });
  after(() => env.cleanup());

  /** A polling handshake through `url`, then the CONNECT packet with the `io` cookie a browser would send. */
  async function handshakeThenPost(url) {
    const hs = await fetch(`${url}/socket.io/?EIO=4&transport=polling`, {
      signal: AbortSignal.timeout(5000),
    });
    const { sid } = JSON.parse((await hs.text()).slice(1));
    const post = await fetch(`${url}/socket.io/?EIO=4&transport=polling&sid=${sid}`, {
      method: "POST",
      body: "40",
      headers: { cookie: `io=${sid}`, "content-type": "text/plain;charset=UTF-8" },
      signal: AbortSignal.timeout(5000),
    });
    return {
      first: hs.headers.get("x-upstream"),
      second: post.headers.get("x-upstream"),
      status: post.status,
      body: await post.text(),
    };
  }

  it("ip_hash keeps polling sessions sticky (here: every client of 127.0.0.1 on one node)", async () => {
    const lb = await env.nginx({ upstreams: nodes.map((n) => n.port), balance: "ip_hash;" });
    const results = [];
    for (let i = 0; i < 6; i += 1) results.push(await handshakeThenPost(lb.url));
    for (const r of results) {
      assert.equal(r.status, 200, JSON.stringify(r));
      assert.equal(r.first, r.second);
    }
    // ip_hash hashes the first three octets of an IPv4 address: one node for all of 127.0.0.0/24.
    assert.equal(new Set(results.map((r) => r.first)).size, 1);
    for (const generation of [4, 2]) {
      const s = await clients.connect(lb.url, { generation, transports: ["polling"] });
      const [rooms] = await ack(s, "join", ["ip-hash"]);
      assert.deepEqual(rooms, ["ip-hash", s.sid].sort());
    }
  });

  it("hash $cookie_io is NOT sticky: the handshake has no cookie yet, so it lands anywhere", async () => {
    const lb = await env.nginx({
      upstreams: nodes.map((n) => n.port),
      balance: "hash $cookie_io consistent;",
    });
    const results = [];
    for (let i = 0; i < 12; i += 1) results.push(await handshakeThenPost(lb.url));
    const broken = results.filter((r) => r.status === 400);
    // Each session has about a 2 in 3 chance of breaking; all 12 surviving is a 1-in-500,000 event.
    assert.ok(broken.length > 0, JSON.stringify(results));
    for (const r of broken) {
      assert.notEqual(r.first, r.second);
      assert.match(r.body, /Session ID unknown/);
    }
  });
});
