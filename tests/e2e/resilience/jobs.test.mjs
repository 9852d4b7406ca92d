// A job flood against the VM console of the `socketlet` binary (crates/cli/src/vm.rs): `open_vms`
// with an ack. Its bounds, the binary's defaults: a client has at most 16 VMs queued or opening
// (--vm-max-per-client), at most 64 VMs wait for one of the 4 slots (--vm-max-queued,
// --vm-concurrency) across all clients; a request past a bound is refused whole, in its ack.
// The VMs are slowed down 100 times (--vm-time-scale 100: minutes each), so none ends during
// the test and the queue only fills.

import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { SioClient, connectMany, rssMiB, settledRss, sleep, startServer } from "./helpers.mjs";

const MAX_PER_CLIENT = 16;
const MAX_QUEUED = 64;

/** `n` VMs of the catalogue's first image, named `<prefix>-<i>`. */
const vms = (prefix, n) =>
  Array.from({ length: n }, (_, i) => ({ name: `${prefix}-${i}`, vcpus: 1, memory_mb: 512, image: "debian-12.qcow2" }));

/** The acks of `open_vms` requests: how many VMs were accepted, and the refusals' messages. */
function tally(acks) {
  let accepted = 0;
  const refusals = {};
  for (const [ack] of acks) {
    if (Array.isArray(ack?.jobs)) accepted += ack.jobs.length;
    else {
      const kind = String(ack?.error).split(":")[0];
      refusals[kind] = (refusals[kind] ?? 0) + 1;
    }
  }
  return { accepted, refusals };
}

describe("a flood of VM jobs", { timeout: 60000 }, () => {
  let server;
  let base;

  before(async () => {
    server = await startServer("jobs", ["--vm-time-scale", "100"]);
    const c = await SioClient.connect(server.port);
    await c.echoMs();
    c.close();
    base = await settledRss(server.pid);
  });
  after(async () => {
    await server?.stop();
  });

  // Measured (debug build, 2 cores, 2026-12): 16 accepted, 184 refused, all acks in 25-150 ms.
  it(`one client sends 200 open_vms of one VM at once: ${MAX_PER_CLIENT} are accepted, the rest refused in their ack`, async () => {
    const c = await SioClient.connect(server.port);
    const t = Date.now();
    const acks = await Promise.all(Array.from({ length: 200 }, (_, i) => c.emitAck("open_vms", vms(`one-${i}`, 1))));
    const { accepted, refusals } = tally(acks);
    console.log(`one client, 200 requests: ${accepted} VMs accepted, refusals ${JSON.stringify(refusals)}, in ${Date.now() - t} ms`);
    assert.equal(accepted, MAX_PER_CLIENT);
    assert.deepEqual(refusals, { "too many VMs at once": 200 - MAX_PER_CLIENT });
    // A request for more than a client may have is refused whole.
    const c2 = await SioClient.connect(server.port);
    const [whole] = await c2.emitAck("open_vms", vms("whole", MAX_PER_CLIENT + 1));
    assert.match(String(whole.error), /1 to 16 VMs/);
    c2.close();
    // Leaving cancels the client's queued VMs (the 4 opening go on, holding the slots).
    c.close();
    await sleep(300);
  });

  // Measured: 4 of the 10 requests accepted (64 VMs queued), 6 refused "busy"; then 1,000
  // requests from 50 clients refused in 50-400 ms while an echo took 0.5-30 ms; RSS +1-3 MiB.
  it(`10 clients ask for 16 VMs each, then 50 more send 1,000 requests: no more than ${MAX_QUEUED} VMs wait, the rest are refused, the server keeps answering`, async () => {
    const clients = await connectMany(server.port, 10);
    const first = tally(
      await Promise.all(clients.map((c, i) => c.emitAck("open_vms", vms(`many-${i}`, MAX_PER_CLIENT)))),
    );
    console.log(`10 clients x 16 VMs: ${first.accepted} VMs accepted, refusals ${JSON.stringify(first.refusals)}`);
    // The slots are held by the first test's VMs: everything accepted waits.
    assert.ok(first.accepted <= MAX_QUEUED, `${first.accepted} VMs accepted`);
    assert.ok(first.accepted >= MAX_QUEUED - MAX_PER_CLIENT + 1, `only ${first.accepted} VMs accepted`);
    assert.deepEqual(Object.keys(first.refusals), ["the server is busy"]);

    const storm = await connectMany(server.port, 50);
    const probe = await SioClient.connect(server.port);
    const t = Date.now();
    const [acks, echo] = await Promise.all([
      Promise.all(storm.flatMap((c, i) => Array.from({ length: 20 }, (_, j) => c.emitAck("open_vms", vms(`storm-${i}-${j}`, 1))))),
      sleep(20).then(() => probe.echoMs()),
    ]);
    const second = tally(acks);
    const grown = rssMiB(server.pid) - base;
    console.log(
      `storm of 1,000 requests: ${second.accepted} accepted, refusals ${JSON.stringify(second.refusals)} in ${Date.now() - t} ms, ` +
        `echo meanwhile ${echo.toFixed(1)} ms, RSS +${grown.toFixed(1)} MiB`,
    );
    assert.equal(first.accepted + second.accepted <= MAX_QUEUED, true, `${second.accepted} more accepted`);
    assert.equal(second.accepted + (second.refusals["the server is busy"] ?? 0), 1000, JSON.stringify(second.refusals));
    assert.ok(echo < 2000, `an echo took ${echo.toFixed(0)} ms during the storm`);
    assert.ok(grown < 16, `RSS grew by ${grown.toFixed(1)} MiB`);

    // The clients whose VMs wait leave: their VMs are cancelled, and the queue takes requests again.
    for (const c of [...clients, ...storm]) c.close();
    await sleep(500);
    const late = await SioClient.connect(server.port);
    const [ack] = await late.emitAck("open_vms", vms("late", MAX_PER_CLIENT));
    assert.equal(ack?.jobs?.length, MAX_PER_CLIENT, `after the others left: ${JSON.stringify(ack)}`);
    late.close();
    probe.close();
  });
});
