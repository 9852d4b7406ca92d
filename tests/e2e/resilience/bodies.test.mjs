// Hostile request bodies against the `socketlet` binary: slow-loris POSTs that declare 100 KB and
// never finish, and chunked POST bodies that never end. The server's bounds (EngineConfig):
// `max_body_time` (here 2 s: --max-body-time-ms), `max_body_memory` (64 MiB across the server),
// `max_payload` (1e6 bytes per body). The server's resident memory (VmRSS) must stay within a
// bound while the bodies hang, and come back near where it was once they are over.

import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import {
  connectTcp,
  eioPath,
  pollingHandshake,
  pool,
  readResponse,
  request,
  requestHead,
  rssMiB,
  rssSampler,
  settledRss,
  sleep,
  startServer,
  withTimeout,
} from "./helpers.mjs";

/** The body deadline given to the server (--max-body-time-ms). */
const BODY_TIME_MS = 2000;
const MAX_BODY_MEMORY_MIB = 64;

const SLOW_POSTS = 1000;
/** Each declares this many bytes... */
const DECLARED = 100_000;
/** ...sends this many, and stops: 1,000 x 99 KB = 94 MiB, more than max_body_memory holds. */
const SENT = 99_000;
// Measured (debug build, 2 cores, 2026-12), over the baseline of 1,000 idle sessions:
// - while the bodies hang the RSS is up by 78-88 MiB: the 64 MiB of bodies the server holds
//   (677 of them; the other 323 are refused with 503 at the cap) and its connections;
// - every POST is answered 408 or 503 about 2.3 s after the first was sent;
// - a second burst is held and refused in the same numbers (the cap was given back), and the
//   RSS is then 107-116 MiB over the first baseline.
// The RSS does NOT return to the baseline after the deadline: glibc's malloc keeps the freed
// pages (77 MiB over after one burst; about 150 MiB over after eight, where it levels off).
// With jemalloc preloaded instead, each of four bursts peaked 83-92 MiB over the baseline and
// the RSS fell back to within 5-15 MiB of it in 10 s: the server frees what it held.
/** RSS growth allowed while the bodies hang: the 64 MiB cap plus 40 MiB. */
const SLOW_GROWTH_LIMIT_MIB = MAX_BODY_MEMORY_MIB + 40;
/** RSS allowed over the first baseline after two bursts (glibc keeps freed pages). */
const SLOW_TWO_BURSTS_LIMIT_MIB = 2.5 * MAX_BODY_MEMORY_MIB;

const ENDLESS_POSTS = 20;
const CHUNK = Buffer.alloc(64 * 1024, "x");
// Measured: each stream was answered 413 (or reset: see below) once the client had handed 4-6 MB
// to its socket (max_payload, 1 MB, read by the server; the rest in the kernel's buffers), within
// 70 ms. A first round's RSS peaked 9-13 MiB over the baseline and stayed 0.9-8.1 MiB over it
// (glibc's arenas keep pages; hyper's connections, before socketlet's own, left 0.8-2.2); a
// second round, measured from after the first, peaked 0-2 MiB over and fell back to within 0.3.
/** Bytes a stream may write before its answer: max_payload and socket buffers. */
const ENDLESS_WRITE_LIMIT = 16 << 20;
const ENDLESS_GROWTH_LIMIT_MIB = 32;
const ENDLESS_RETURN_LIMIT_MIB = 8;

/**
 * Sends the head and the first `sent` bytes of a POST to `path` declaring `declared` bytes, and
 * no more; resolves to the connection and the promise of its answer.
 */
async function slowPost(port, path, declared, sent) {
  const sock = await connectTcp(port);
  const answer = readResponse(sock);
  const head = requestHead(port, "POST", path, {
    "Content-Type": "text/plain;charset=UTF-8",
    "Content-Length": declared,
  });
  // The body is a v4 payload of one message packet; it never ends anyway.
  sock.write(Buffer.concat([Buffer.from(head), Buffer.from("4"), Buffer.alloc(sent - 1, "x")]));
  return { sock, answer };
}

/**
 * A chunked POST that writes 64 KiB chunks as fast as the connection takes them, until the
 * server answers or closes. Resolves to `{ status, written, ms }`.
 */
async function endlessPost(port, path) {
  const sock = await connectTcp(port);
  const start = Date.now();
  let written = 0;
  let over = false;
  const answer = readResponse(sock).then((r) => {
    over = true;
    return r;
  });
  sock.on("error", () => {});
  sock.write(
    requestHead(port, "POST", path, {
      "Content-Type": "text/plain;charset=UTF-8",
      "Transfer-Encoding": "chunked",
    }),
  );
  const chunk = Buffer.concat([Buffer.from(`${CHUNK.length.toString(16)}\r\n`), CHUNK, Buffer.from("\r\n")]);
  while (!over && !sock.destroyed && Date.now() - start < 10000) {
    written += CHUNK.length;
    if (!sock.write(chunk)) {
      await Promise.race([new Promise((r) => sock.once("drain", r)), answer, sleep(200)]);
    }
  }
  const r = await withTimeout(answer, 5000, "the answer to an endless body");
  sock.destroy();
  return { status: r.status, written, ms: Date.now() - start };
}

describe("endless request bodies", { timeout: 60000 }, () => {
  let server;

  before(async () => {
    server = await startServer("endless", ["--max-body-time-ms", String(BODY_TIME_MS)]);
  });
  after(async () => {
    await server?.stop();
  });

  it(`${ENDLESS_POSTS} endless chunked bodies: each is cut off with 413 past max_payload, RSS grows by less than ${ENDLESS_GROWTH_LIMIT_MIB} MiB and returns within ${ENDLESS_RETURN_LIMIT_MIB} MiB`, async () => {
    // A first round, unmeasured: glibc keeps pages the bodies' blocks were freed from in its
    // arenas, and how many varies from run to run (0.9-8.1 MiB after one round in 12 runs on
    // an AMD EPYC: 8 of this build, 4 of the one before). The baseline is taken after it, as
    // the abandoned-sessions suite does, so that the limit below measures what the server
    // still holds.
    // Its peak is checked against the same growth limit.
    const warm = await pool(ENDLESS_POSTS, 20, () => pollingHandshake(server.port));
    const cold = await settledRss(server.pid);
    const coldSampler = rssSampler(server.pid);
    await Promise.all(
      warm.map((sid) => endlessPost(server.port, eioPath(4, `transport=polling&sid=${sid}`))),
    );
    coldSampler.stop();
    const coldPeak = coldSampler.max() - cold;
    const sids = await pool(ENDLESS_POSTS, 20, () => pollingHandshake(server.port));
    const base = await settledRss(server.pid, { minMs: 1000, maxMs: 5000 });
    const sampler = rssSampler(server.pid);
    const results = await Promise.all(
      sids.map((sid) => endlessPost(server.port, eioPath(4, `transport=polling&sid=${sid}`))),
    );
    sampler.stop();
    const peak = sampler.max() - base;
    const back = (await settledRss(server.pid, { minMs: 1000, maxMs: 5000 })) - base;
    const most = Math.max(...results.map((r) => r.written));
    console.log(
      `endless bodies: statuses ${[...new Set(results.map((r) => r.status))]}, at most ${(most / 1e6).toFixed(2)} MB written ` +
        `in ${Math.max(...results.map((r) => r.ms))} ms, RSS peak +${peak.toFixed(1)} MiB (first round +${coldPeak.toFixed(1)}), ` +
        `after ${back.toFixed(1)} MiB`,
    );
    // 413, or a reset: the server answered and closed with the rest of the body unread, and
    // the client's kernel dropped the answer on the reset before the client read it.
    for (const r of results) assert.ok(r.status === 413 || r.status === null, JSON.stringify(r));
    assert.ok(results.some((r) => r.status === 413), "no 413 at all");
    assert.ok(Math.max(...results.map((r) => r.ms)) < 5000, "a stream was not cut off within 5 s");
    assert.ok(most < ENDLESS_WRITE_LIMIT, `a stream wrote ${most} bytes before its answer`);
    assert.ok(coldPeak < ENDLESS_GROWTH_LIMIT_MIB, `RSS grew by ${coldPeak.toFixed(1)} MiB`);
    assert.ok(peak < ENDLESS_GROWTH_LIMIT_MIB, `RSS grew by ${peak.toFixed(1)} MiB`);
    assert.ok(back < ENDLESS_RETURN_LIMIT_MIB, `RSS stayed ${back.toFixed(1)} MiB above the baseline`);
  });

  it("endless chunked bodies to paths that are not Socket.IO's and to unknown sessions end at once", async () => {
    const base = rssMiB(server.pid);
    const results = await Promise.all([
      ...Array.from({ length: 5 }, () => endlessPost(server.port, "/")),
      ...Array.from({ length: 5 }, () => endlessPost(server.port, eioPath(4, "transport=polling&sid=nope"))),
      ...Array.from({ length: 5 }, () => endlessPost(server.port, eioPath(4, "transport=polling"))),
    ]);
    const most = Math.max(...results.map((r) => r.written));
    console.log(
      `endless bodies elsewhere: statuses ${results.map((r) => r.status)}, at most ${(most / 1e6).toFixed(2)} MB written, ` +
        `RSS ${(rssMiB(server.pid) - base).toFixed(1)} MiB over`,
    );
    // An answer (4xx), or a reset (see above), within 2 s each.
    for (const r of results) {
      assert.ok(r.status === null || (r.status >= 400 && r.status < 500), JSON.stringify(r));
      assert.ok(r.ms < 2000, JSON.stringify(r));
    }
    assert.ok(most < ENDLESS_WRITE_LIMIT, `a stream wrote ${most} bytes before its answer`);
    // The server is still serving.
    const res = await request(server.port, "GET", eioPath(4, "transport=polling"));
    assert.equal(res.status, 200);
  });
});

describe("slow-loris request bodies", { timeout: 60000 }, () => {
  let server;

  before(async () => {
    server = await startServer("slow-loris", ["--max-body-time-ms", String(BODY_TIME_MS)]);
  });
  after(async () => {
    await server?.stop();
  });

  /** One burst of slow POSTs, each on a session of its own; what it saw. */
  async function slowBurst(base) {
    const sids = await pool(SLOW_POSTS, 50, () => pollingHandshake(server.port));
    const sessions = await settledRss(server.pid);
    const sampler = rssSampler(server.pid);
    const started = Date.now();
    const posts = await pool(SLOW_POSTS, 100, (i) =>
      slowPost(server.port, eioPath(4, `transport=polling&sid=${sids[i]}`), DECLARED, SENT),
    );
    const answers = await withTimeout(
      Promise.all(posts.map((p) => p.answer)),
      BODY_TIME_MS + 10000,
      "every slow POST to be answered",
    );
    const answeredMs = Date.now() - started;
    sampler.stop();
    for (const p of posts) p.sock.destroy();
    const statuses = {};
    for (const a of answers) statuses[a.status ?? "closed"] = (statuses[a.status ?? "closed"] ?? 0) + 1;
    const after = await settledRss(server.pid, { minMs: 1000, maxMs: 5000 });
    const r = {
      sessions: sessions - base,
      peak: sampler.max() - sessions,
      answeredMs,
      statuses,
      after: after - base,
    };
    console.log(
      `slow POSTs: sessions +${r.sessions.toFixed(1)} MiB, bodies +${r.peak.toFixed(1)} MiB at the peak, ` +
        `answers ${JSON.stringify(statuses)} within ${answeredMs} ms, then ${r.after.toFixed(1)} MiB over the baseline`,
    );
    return r;
  }

  it(`${SLOW_POSTS} POSTs declaring 100 KB that stop after 99 KB: RSS grows by less than ${SLOW_GROWTH_LIMIT_MIB} MiB, all are answered 408 or 503 at the deadline, a second burst finds the cap given back`, async () => {
    const base = await settledRss(server.pid);
    const first = await slowBurst(base);
    assert.ok(first.peak < SLOW_GROWTH_LIMIT_MIB, `RSS grew by ${first.peak.toFixed(1)} MiB`);
    const answered = (r) => (r.statuses[408] ?? 0) + (r.statuses[503] ?? 0);
    assert.equal(answered(first), SLOW_POSTS, JSON.stringify(first.statuses));
    assert.ok(first.statuses[503] > 0, "the server-wide body memory cap was never reached");
    assert.ok(first.statuses[408] > 0, "no body was held until its deadline");
    assert.ok(first.answeredMs < BODY_TIME_MS + 5000, `answered after ${first.answeredMs} ms`);

    const second = await slowBurst(base);
    assert.equal(answered(second), SLOW_POSTS, JSON.stringify(second.statuses));
    assert.ok(second.peak < SLOW_GROWTH_LIMIT_MIB, `RSS grew by ${second.peak.toFixed(1)} MiB`);
    // The bodies of the first burst were given back to the cap: as many are held again.
    assert.ok(
      Math.abs(second.statuses[408] - first.statuses[408]) <= SLOW_POSTS / 20,
      `408s: ${first.statuses[408]} then ${second.statuses[408]}`,
    );
    assert.ok(
      second.after < SLOW_TWO_BURSTS_LIMIT_MIB,
      `RSS is ${second.after.toFixed(1)} MiB over the baseline after two bursts`,
    );
  });

});
