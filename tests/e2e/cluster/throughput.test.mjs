// A measurement, not a timed assertion: the broadcast throughput (deliveries per second, end to
// end) of a three-node cluster against one node. CLIENTS WebSocket clients (socket.io-client 4.x)
// join one room, spread evenly over the nodes; one more client, not in the room, on the first node,
// sends BROADCASTS `to-room` broadcasts as fast as the server takes them; the clock runs from the
// first send to the last delivery. Only the completeness is asserted: every client gets every
// broadcast exactly once. The three-node cluster runs twice: classic pub/sub, and sharded pub/sub
// ("dynamic": the room's broadcasts travel on the room's own channel). Everything (nodes, Redis,
// clients) shares this machine's cores, and the e2e server is a debug build, so the figures
// compare setups, they do not size production.
//
// Environment: CLUSTER_BENCH_CLIENTS (default 300), CLUSTER_BENCH_BROADCASTS (default 200).

import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { describe, it } from "node:test";
import { Env, ack, sleep, until } from "./helpers.mjs";

const CLIENTS = Number(process.env.CLUSTER_BENCH_CLIENTS || 300);
const BROADCASTS = Number(process.env.CLUSTER_BENCH_BROADCASTS || 200);
const ROOM = "bench";
/** Connections and joins in flight at once. */
const BATCH = 50;
/** The room's broadcasts in flight at once (each acked by the sender's node). */
const WINDOW = 20;
const PAYLOAD = { text: "x".repeat(64), n: 0 };
/** Rounds per setup; the median is reported. */
const ROUNDS = 5;

/** CPU time (user + system, ms) a process used so far, from /proc (null where there is none). */
const TICKS = (() => {
  try {
    return Number(execFileSync("getconf", ["CLK_TCK"]).toString().trim()) || 100;
  } catch {
    return 100;
  }
})();
function cpuMs(pid) {
  const path = `/proc/${pid}/stat`;
  if (!existsSync(path)) return null;
  // Fields after the command name (which is in parentheses): utime and stime are the 12th and 13th.
  const fields = readFileSync(path, "utf8").split(") ")[1].split(" ");
  return ((Number(fields[11]) + Number(fields[12])) * 1000) / TICKS;
}
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

async function inBatches(items, fn) {
  const out = [];
  for (let i = 0; i < items.length; i += BATCH)
    out.push(...(await Promise.all(items.slice(i, i + BATCH).map(fn))));
  return out;
}

/** Runs one setup; resolves to its figures. */
async function measure({ label, nodeCount, redis: withRedis, args = [] }) {
  const env = new Env();
  try {
    const redis = withRedis ? await env.redis() : null;
    const nodes = [];
    for (let i = 0; i < nodeCount; i += 1) {
      nodes.push(
        await env.socketlet({
          redisUrl: redis?.url,
          label: `bench-${label}-${i}`,
          env: { RUST_LOG: "warn" },
          args,
        }),
      );
    }
    const clients = env.clients();
    const counts = new Array(CLIENTS).fill(0);
    let total = 0;
    let lastAt = 0;
    const t0Connect = Date.now();
    await inBatches([...counts.keys()], async (i) => {
      const s = await clients.connect(nodes[i % nodeCount].url, {
        transports: ["websocket"],
        timeout: 20000,
      });
      s.on("room-message", () => {
        counts[i] += 1;
        total += 1;
        lastAt = performance.now();
      });
      await ack(s, "join", [ROOM], { timeout: 20000 });
    });
    const connectMs = Date.now() - t0Connect;
    const sender = await clients.connect(nodes[0].url, { transports: ["websocket"] });

    const expected = CLIENTS * BROADCASTS;
    const serverPids = [
      ...nodes.map((n) => n.proc.pid),
      ...(redis ? [redis.current.proc.pid] : []),
    ];
    const rounds = [];
    for (let round = 0; round < ROUNDS; round += 1) {
      counts.fill(0);
      total = 0;
      const cpu0 = serverPids.map(cpuMs);
      const t0 = performance.now();
      let next = 0;
      const lane = async () => {
        while (next < BROADCASTS) {
          next += 1;
          await ack(sender, "to-room", [ROOM, { ...PAYLOAD, n: next }], { timeout: 60000 });
        }
      };
      await Promise.all(Array.from({ length: WINDOW }, lane));
      await until(() => total >= expected, {
        timeout: 120000,
        interval: 10,
        what: `${expected} deliveries`,
      });
      const seconds = (lastAt - t0) / 1000;
      const cpu = serverPids
        .map(cpuMs)
        .reduce((sum, c, i) => sum + (c ?? NaN) - (cpu0[i] ?? NaN), 0);
      await sleep(300);
      assert.equal(total, expected, "no duplicates");
      assert.deepEqual(
        counts.filter((c) => c !== BROADCASTS),
        [],
        "every client got every broadcast exactly once",
      );
      rounds.push({
        seconds,
        perSecond: expected / seconds,
        cpuPerThousand: (cpu / expected) * 1000,
      });
    }
    return {
      label,
      nodeCount,
      connectMs,
      rounds,
      perSecond: median(rounds.map((r) => r.perSecond)),
      cpuPerThousand: median(rounds.map((r) => r.cpuPerThousand)),
    };
  } finally {
    await env.cleanup();
  }
}

describe(
  `broadcast throughput: ${CLIENTS} clients, ${BROADCASTS} broadcasts (a measurement)`,
  { timeout: 300000 },
  () => {
    const results = [];
    const setups = [
      { label: "1 node, no Redis", nodeCount: 1, redis: false },
      { label: "1 node on Redis", nodeCount: 1, redis: true },
      { label: "3 nodes on Redis", nodeCount: 3, redis: true },
      {
        label: "3 nodes, sharded",
        nodeCount: 3,
        redis: true,
        args: ["--redis-sharded", "dynamic"],
      },
    ];
    for (const setup of setups) {
      it(`${setup.label}: every delivery arrives`, async () => {
        const r = await measure(setup);
        results.push(r);
        console.log(
          `${r.label}: ${CLIENTS * BROADCASTS} deliveries per round, ${r.rounds
            .map((x) => `${x.seconds.toFixed(2)} s = ${Math.round(x.perSecond)}/s`)
            .join(", ")}; connecting and joining ${CLIENTS} clients took ${r.connectMs} ms`,
        );
      });
    }
    it("summary", () => {
      assert.equal(results.length, setups.length);
      const base = results.find((r) => r.label === "1 node on Redis");
      console.log(`${CLIENTS} clients x ${BROADCASTS} broadcasts, median of ${ROUNDS} rounds:`);
      for (const r of results) {
        console.log(
          `  ${r.label.padEnd(18)} ${Math.round(r.perSecond).toString().padStart(8)} deliveries/s ` +
            `(x${(r.perSecond / base.perSecond).toFixed(2)} of 1 node on Redis); ` +
            `server CPU (nodes + Redis) ${r.cpuPerThousand.toFixed(1)} ms per 1000 deliveries`,
        );
      }
    });
  },
);
