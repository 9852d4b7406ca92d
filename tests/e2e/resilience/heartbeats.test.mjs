// Ping and pong floods against the `socketlet` binary, over WebSocket and long-polling:
// - Engine.IO v4: the server pings; a client PING is a protocol error that closes the session.
// - Engine.IO v3: the client pings; the server answers each PING with a data-less PONG, which
//   counts against the outbox bound (max_buffered_packets, 4096): a client that pings and never
//   reads is closed when it is full.
// - WebSocket ping frames are answered by pong frames, kept within 16 KiB for a client that does
//   not read (the connection ends past it); pong frames and unsolicited Engine.IO PONGs cost
//   nothing but the reading.
// The server's RSS must stay within a few MiB of where it was, and it must go on serving.

import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import {
  OP_PING,
  OP_PONG,
  OP_TEXT,
  SioClient,
  eioPath,
  frame,
  pollingHandshake,
  request,
  rssMiB,
  rssSampler,
  settledRss,
  sleep,
  startServer,
  until,
  withTimeout,
} from "./helpers.mjs";

// Measured (debug build, 2 cores, 2026-12): see each test; a v4 client's PING flood is closed in
// 6-10 ms. The RSS bounds are a few times the growth measured; the time bounds leave seconds of
// margin.

/** `count` copies of `bytes`, as one buffer. */
const repeat = (bytes, count) => Buffer.concat(Array.from({ length: count }, () => bytes));

/** A client that answers echos, to show the server still serves; its round trip in ms. */
async function echoWorks(port) {
  const c = await SioClient.connect(port);
  try {
    return await c.echoMs("still there?");
  } finally {
    c.close();
  }
}

describe("ping and pong floods", { timeout: 90000 }, () => {
  let server;
  let base;

  before(async () => {
    server = await startServer("heartbeats");
    // Warm the server up (its first connections allocate what later ones reuse).
    await echoWorks(server.port);
    base = await settledRss(server.pid);
  });
  after(async () => {
    await server?.stop();
  });

  /** The RSS now, over the baseline of the suite, in MiB. */
  const growth = () => rssMiB(server.pid) - base;

  it("Engine.IO v4: a flood of client PINGs ends the session at the first one", async () => {
    const c = await SioClient.connect(server.port);
    const t = Date.now();
    await c.ws.write(repeat(frame(OP_TEXT, "2"), 10_000));
    await withTimeout(c.ws.closed, 3000, "the server to close a v4 client that pings");
    console.log(`v4 WebSocket PING flood: closed after ${Date.now() - t} ms`);
    // Over polling too: the POST holding the PING is refused and the session is gone.
    const sid = await pollingHandshake(server.port, 4);
    const path = eioPath(4, `transport=polling&sid=${sid}`);
    // The POST itself is answered (its packets before the PING were taken), the session is not.
    const post = await request(server.port, "POST", path, { body: "2" });
    assert.ok([200, 400].includes(post.status), `POST of a PING answered ${post.status} ${post.body}`);
    const get = await request(server.port, "GET", path);
    assert.equal(get.status, 400, `the session lives on: GET answered ${get.status} ${get.body}`);
    assert.ok((await echoWorks(server.port)) < 1000);
  });

  // Measured: 50,000 PINGs in one write were all answered in 0.36-0.53 s, RSS +0.1 MiB.
  it("Engine.IO v3: 50,000 PINGs from a client that reads are all answered; RSS grows by less than 8 MiB", async () => {
    const N = 50_000;
    const c = await SioClient.connect(server.port, { eio: 3 });
    let pongs = 0;
    c.ws.onMessage = (opcode, payload) => {
      if (opcode === OP_TEXT && payload.length === 1 && payload[0] === 0x33) pongs += 1;
    };
    const sampler = rssSampler(server.pid);
    const t = Date.now();
    await c.ws.write(repeat(frame(OP_TEXT, "2"), N));
    await until(() => pongs >= N, 20000, `${N} PONGs (got ${pongs})`);
    sampler.stop();
    const peak = sampler.max() - base;
    console.log(`v3 PING flood, reading: ${N} PONGs in ${Date.now() - t} ms, RSS peak +${peak.toFixed(1)} MiB`);
    assert.ok(!c.ws.ended, "the client was closed");
    assert.ok(peak < 8, `RSS grew by ${peak.toFixed(1)} MiB`);
    c.close();
  });

  // A client that never reads first makes the server fill the kernel's socket buffers (6 MB or
  // more on loopback: two million PONGs of 3 bytes) with the acks of big echos, then pings.
  // Measured: the session was closed for its full outbox 0.53-0.56 s after the first echo (23-31
  // thousand PINGs sent by then), the connection ended as soon as the client read again; RSS
  // +7.8 MiB (the acks queued: the echos are 100 KB each).
  it("Engine.IO v3: a client that pings and never reads is closed when its outbox is full; RSS grows by less than 32 MiB", async () => {
    const c = await SioClient.connect(server.port, { eio: 3 });
    c.ws.pause();
    const closings = () => server.log().split("outbox full of control packets").length - 1;
    const before = closings();
    const sampler = rssSampler(server.pid);
    const t = Date.now();
    const big = "x".repeat(100_000);
    c.ws.write(
      Buffer.concat(Array.from({ length: 120 }, (_, i) => frame(OP_TEXT, `42${i}${JSON.stringify(["echo", big])}`))),
    );
    const batch = repeat(frame(OP_TEXT, "2"), 1000);
    let sent = 0;
    while (closings() === before && !c.ws.ended && Date.now() - t < 15000) {
      if (!(await c.ws.write(batch))) break;
      sent += 1000;
      await sleep(5);
    }
    const closedMs = Date.now() - t;
    // Read (and drop) what the server had sent: the connection must then end.
    c.ws.onMessage = () => {};
    c.ws.resume();
    await withTimeout(c.ws.closed, 10000, "the connection to end");
    sampler.stop();
    const peak = sampler.max() - base;
    console.log(
      `v3 PING flood, not reading: outbox full after ${sent} PINGs, ${closedMs} ms; connection ended at ${Date.now() - t} ms, ` +
        `RSS peak +${peak.toFixed(1)} MiB`,
    );
    assert.equal(closings(), before + 1, "the client was not closed for its full outbox");
    assert.ok(closedMs < 15000, "the client was not closed within 15 s");
    assert.ok(peak < 32, `RSS grew by ${peak.toFixed(1)} MiB`);
  });

  // Measured: ended after 62-66 thousand ping frames (the pongs fill the kernel's buffers, then
  // the 16 KiB the server keeps for control frames), in 0.1-0.4 s, RSS +0.3-0.6 MiB.
  it("WebSocket ping frames from a client that never reads: the connection ends; RSS grows by less than 8 MiB", async () => {
    const c = await SioClient.connect(server.port);
    c.ws.pause();
    const batch = repeat(frame(OP_PING, Buffer.alloc(125, "p")), 1000);
    const sampler = rssSampler(server.pid);
    const t = Date.now();
    let sent = 0;
    while (!c.ws.ended && Date.now() - t < 10000) {
      if (!(await c.ws.write(batch))) break;
      sent += 1000;
    }
    await withTimeout(c.ws.closed, 10000, "the connection to end");
    sampler.stop();
    const peak = sampler.max() - base;
    console.log(
      `WebSocket ping frames, not reading: ended after ${sent} pings, ${Date.now() - t} ms, RSS peak +${peak.toFixed(1)} MiB`,
    );
    assert.ok(Date.now() - t < 10000, "the connection did not end within 10 s");
    assert.ok(peak < 8, `RSS grew by ${peak.toFixed(1)} MiB`);
  });

  // Measured: 100,000 of each read in 0.25-0.56 s (the echo behind them answered with the
  // last), RSS +0.3-0.6 MiB.
  it("100,000 unsolicited Engine.IO PONGs and 100,000 WebSocket pong frames are ignored; the client stays, RSS grows by less than 8 MiB", async () => {
    const N = 100_000;
    const c = await SioClient.connect(server.port);
    const sampler = rssSampler(server.pid);
    const t = Date.now();
    for (let i = 0; i < N / 10_000; i++) {
      await c.ws.write(repeat(frame(OP_TEXT, "3"), 10_000));
      await c.ws.write(repeat(frame(OP_PONG, "x"), 10_000));
    }
    // Behind the flood, in order: the echo is answered once the server has read it all.
    const echo = await c.echoMs("after the pongs");
    sampler.stop();
    const peak = sampler.max() - base;
    console.log(
      `pong floods: ${N} PONGs and ${N} pong frames read in ${Date.now() - t} ms, echo behind them ${echo.toFixed(0)} ms, ` +
        `RSS peak +${peak.toFixed(1)} MiB`,
    );
    assert.ok(!c.ws.ended, "the client was closed");
    assert.ok(peak < 8, `RSS grew by ${peak.toFixed(1)} MiB`);
    assert.ok((await c.echoMs()) < 1000, "the echo after the flood is slow");
    c.close();
  });

  // Measured: the 5th POST (5,000 PONGs for 4096 places) closes the session, the 6th is refused
  // (400). RSS +0.5-0.7 MiB.
  it("Engine.IO v3 over polling: POSTs of 1,000 PINGs and no GET close the session past 4096 queued packets", async () => {
    const sid = await pollingHandshake(server.port, 3);
    const path = eioPath(3, `transport=polling&sid=${sid}`);
    const body = "1:2".repeat(1000);
    const statuses = [];
    for (let i = 0; i < 8; i++) {
      const res = await request(server.port, "POST", path, {
        headers: { "Content-Type": "text/plain;charset=UTF-8" },
        body,
      });
      statuses.push(res.status);
      if (res.status !== 200) break;
    }
    console.log(`v3 polling PING flood: POST statuses ${statuses}, RSS +${growth().toFixed(1)} MiB`);
    assert.equal(statuses.at(-1), 400, `statuses ${statuses}`);
    assert.ok(statuses.length <= 6, `statuses ${statuses}`);
    const get = await request(server.port, "GET", path);
    assert.equal(get.status, 400, `the session lives on: GET answered ${get.status}`);
  });

  it("the server still serves, and its RSS is within 16 MiB of the baseline", async () => {
    await sleep(500);
    const echo = await echoWorks(server.port);
    const now = await settledRss(server.pid);
    console.log(`after the floods: echo ${echo.toFixed(1)} ms, RSS ${(now - base).toFixed(1)} MiB over the baseline`);
    assert.ok(echo < 1000);
    assert.ok(now - base < 16, `RSS ${(now - base).toFixed(1)} MiB over the baseline`);
  });
});
