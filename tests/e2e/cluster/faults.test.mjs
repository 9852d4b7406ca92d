// Redis killed (SIGKILL, then `redis-cli shutdown nosave`) in the middle of traffic and restarted on
// the same port: no node crashes, local delivery never stops, requests across nodes fail with a
// clear error instead of hanging, and cluster delivery resumes once Redis is back. Run with
// classic pub/sub and with sharded pub/sub (whose room subscriptions must come back too).

import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { Env, ack, fetchSockets, sleep, until, waitFor } from "./helpers.mjs";

const ROOM = "traffic";
/** One broadcast every TICK_MS while the traffic runs. */
const TICK_MS = 50;
/** How long Redis stays down. */
const OUTAGE_MS = 2000;
/** Cluster delivery must be back this soon after Redis is. */
const RESUME_LIMIT_MS = 10000;
/** The nodes' request timeout (RedisConfig's default) plus a margin. */
const REQUEST_LIMIT_MS = 5000 + 1500;

const MODES = [
  { name: "classic pub/sub", args: [] },
  { name: "sharded pub/sub, dynamic", args: ["--redis-sharded", "dynamic"] },
];

for (const mode of MODES) describe(`Redis going away in the middle of traffic (${mode.name})`, { timeout: 120000 }, () => {
  const env = new Env();
  let redis;
  let nodeA;
  let nodeB;
  let clients;
  let a1;
  let a2;
  let b1;
  /** seq -> number of times received, per client. */
  const seen = new Map();
  let seq = 0;
  let traffic;

  before(async () => {
    redis = await env.redis();
    nodeA = await env.socketlet({ redisUrl: redis.url, label: "faults-nodeA", args: mode.args });
    nodeB = await env.socketlet({ redisUrl: redis.url, label: "faults-nodeB", args: mode.args });
    clients = env.clients();
    a1 = await clients.connect(nodeA.url, { name: "a1" });
    a2 = await clients.connect(nodeA.url, { name: "a2", generation: 2 });
    b1 = await clients.connect(nodeB.url, { name: "b1", transports: ["polling"] });
    for (const s of [a1, a2, b1]) {
      seen.set(s, new Map());
      s.on("room-message", (p) => {
        const n = p?.msg?.seq;
        if (typeof n === "number") seen.get(s).set(n, (seen.get(s).get(n) ?? 0) + 1);
      });
      await ack(s, "join", [ROOM]);
    }
    // a1 broadcasts to the room every TICK_MS, all along.
    traffic = setInterval(() => {
      seq += 1;
      a1.emit("to-room", ROOM, { seq });
    }, TICK_MS);
    env.defer(() => clearInterval(traffic));
  });
  after(() => env.cleanup());

  const maxSeen = (s) => Math.max(0, ...seen.get(s).keys());

  /** Waits until `s` receives a to-room broadcast sent after this call; resolves to the delay. */
  async function nextDelivery(s, limit) {
    const from = seq;
    const t0 = Date.now();
    await until(() => maxSeen(s) > from, {
      timeout: limit,
      what: `${s.name} to receive seq > ${from}`,
    });
    return Date.now() - t0;
  }

  async function outage(kind, kill, restart = () => redis.restart()) {
    // The cluster works before: b1, on the other node, gets every broadcast for a while.
    await nextDelivery(b1, 5000);
    const from = seq;
    await sleep(500);
    const upTo = seq;
    await until(() => maxSeen(b1) >= upTo, { what: `b1 to receive seq ${upTo}` });
    const gaps = [];
    for (let n = from + 1; n <= upTo; n += 1) if (!seen.get(b1).has(n)) gaps.push(n);
    assert.deepEqual(gaps, [], `b1 missed broadcasts before the ${kind} outage`);
    // The traffic goes on while Redis goes away.
    await kill();
    const killedAt = seq;
    const downAt = Date.now();

    // Local delivery goes on: a2 (same node as the sender) keeps getting the traffic.
    await nextDelivery(a2, 2000);

    // A request across nodes answers with an error within the request timeout, not a hang.
    const t0 = Date.now();
    const [answer] = await ack(a1, "fetch-sockets", [], { timeout: REQUEST_LIMIT_MS });
    const took = Date.now() - t0;
    assert.equal(
      typeof answer?.error,
      "string",
      `fetch-sockets during the outage answered ${JSON.stringify(answer)}`,
    );
    assert.ok(took < REQUEST_LIMIT_MS, `fetch-sockets took ${took} ms`);

    // Both nodes still serve: a new client connects to B, and B's own broadcasts reach it.
    const late = await clients.connect(nodeB.url, { name: `late-${kind}` });
    const [rooms] = await ack(late, "join", [`${kind}-local`]);
    assert.ok(rooms.includes(`${kind}-local`));
    const localMsg = waitFor(late, "room-message", { filter: (p) => p?.msg === "local only" });
    const [okLocal] = await ack(late, "to-room", [`${kind}-local`, "local only"]);
    assert.equal(okLocal, true);
    await localMsg;

    await sleep(Math.max(0, OUTAGE_MS - (Date.now() - downAt)));
    assert.ok(nodeA.alive() && nodeB.alive(), "no node crashed");
    await nextDelivery(a2, 2000);

    await restart();
    const upAt = Date.now();
    // Cluster delivery resumes: A -> B, and B -> A.
    const resumeAB = await nextDelivery(b1, RESUME_LIMIT_MS);
    await until(
      async () => {
        const got = waitFor(a1, "room-message", {
          timeout: 200,
          filter: (p) => p?.msg === `${kind}-back`,
        }).then(
          () => true,
          () => false,
        );
        b1.emit("to-room", ROOM, `${kind}-back`);
        return got;
      },
      { timeout: RESUME_LIMIT_MS, interval: 0, what: "B -> A delivery" },
    );
    const resumeBA = Date.now() - upAt;
    // And requests across nodes work again.
    await until(
      async () => {
        const [a] = await ack(a1, "fetch-sockets", [], { timeout: REQUEST_LIMIT_MS });
        return Array.isArray(a) && a.some((s) => s.id === late.sid);
      },
      { timeout: RESUME_LIMIT_MS, what: "fetch-sockets to work again" },
    );
    late.disconnect();
    console.log(
      `${kind}: down ${upAt - downAt} ms (seq ${killedAt}..${seq}); fetch-sockets failed in ${took} ms ` +
        `with ${JSON.stringify(answer.error)}; cluster delivery back ${resumeAB} ms (A->B), ${resumeBA} ms (B->A) after restart`,
    );
    assert.ok(nodeA.alive() && nodeB.alive(), "no node crashed");
  }

  it("Redis killed with SIGKILL, then restarted on the same port", async () => {
    await outage("sigkill", () => redis.kill());
  });

  it("Redis stopped with `redis-cli shutdown nosave`, then restarted on the same port", async () => {
    await outage("shutdown", () => redis.shutdown());
  });

  it("Redis frozen (SIGSTOP: connections open, no answers, as in a partition), then thawed", async () => {
    await outage(
      "sigstop",
      async () => redis.freeze(),
      async () => redis.thaw(),
    );
  });

  it("local delivery never stopped: the sender's neighbour got every broadcast exactly once", async () => {
    clearInterval(traffic);
    const last = seq;
    await until(() => maxSeen(a2) >= last, { what: "the last broadcast on a2" });
    await sleep(300);
    const got = seen.get(a2);
    const missing = [];
    for (let n = 1; n <= last; n += 1) if (!got.has(n)) missing.push(n);
    assert.deepEqual(missing, [], "seqs a2 missed");
    assert.deepEqual(
      [...got.values()].filter((c) => c !== 1),
      [],
      "duplicates on a2",
    );
    // b1, on the other node, got no duplicates either (it misses what was sent during the outages).
    assert.deepEqual(
      [...seen.get(b1).values()].filter((c) => c !== 1),
      [],
      "duplicates on b1",
    );
    console.log(
      `a2 (same node) got ${got.size}/${last} broadcasts; b1 (other node) got ${seen.get(b1).size}/${last}`,
    );
    const [list] = await ack(b1, "fetch-sockets");
    assert.deepEqual(list.map((s) => s.id).sort(), [a1.sid, a2.sid, b1.sid].sort());
    assert.equal((await fetchSockets(a1)).length, 3);
  });
});
