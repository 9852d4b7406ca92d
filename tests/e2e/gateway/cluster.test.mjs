// The gateway across two socketlet nodes on a private redis-server, with socket.io-client 4.x: the
// backend calls node A's API only; clients are on both nodes.

import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { Gateway, emitAck, normalizeBinary, uid, waitFor } from "./helpers.mjs";

const A = 0;
const B = 1;

describe("gateway: two nodes on Redis and a Starlette backend", { timeout: 60000 }, () => {
  let g;
  before(async () => {
    g = await Gateway.start({ nodes: 2, redis: true });
  });
  after(() => g?.cleanup());

  it("an emit through node A's API reaches a client on node B", async () => {
    const user = uid("bea");
    const onB = await g.connect(B, user);
    const news = waitFor(onB, "news");
    const { status, body } = await g.api(A, "emit", {
      rooms: [`user:${user}`],
      event: "news",
      args: [{ n: 1 }, { _placeholder: true, num: 0 }],
      binary: ["AAE="],
    });
    assert.deepEqual([status, body], [200, {}]);
    assert.deepEqual(normalizeBinary(await news), [{ n: 1 }, { $bytes: "0001" }]);
  });

  it("fetch_sockets through node A lists the sockets of node B, with the hook's user and data", async () => {
    const user = uid("cyd");
    const onB = await g.connect(B, user);
    const onA = await g.connect(A, user, { transports: ["polling"] });
    const { status, body } = await g.api(A, "fetch_sockets", { rooms: [`user:${user}`] });
    assert.equal(status, 200);
    const byId = Object.fromEntries(body.map((s) => [s.id, s]));
    assert.deepEqual(Object.keys(byId).sort(), [onA.id, onB.id].sort());
    assert.equal(byId[onB.id].user, user);
    // socket.io-client starts on polling (and upgrades later): the connect hook saw polling.
    assert.deepEqual(byId[onB.id].data, { transport: "polling", protocol: 5 });
    assert.deepEqual(byId[onB.id].rooms.sort(), [onB.id, `user:${user}`].sort());
  });

  it("an event on node B makes the backend emit through node A to a user on both nodes", async () => {
    const sender = uid("dee");
    const target = uid("eve");
    const s = await g.connect(B, sender);
    const tabs = [await g.connect(A, target), await g.connect(B, target)];
    const got = tabs.map((t) => waitFor(t, "notification"));
    assert.deepEqual(await emitAck(s, "notify", [{ to: target, text: "across" }]), [{ sockets: 2 }]);
    for (const p of got) assert.deepEqual(await p, [{ from: sender, text: "across" }]);
  });

  it("a disconnect through node A calls node B's disconnect hook", async () => {
    const user = uid("hob");
    const onB = await g.connect(B, user);
    const sid = onB.id;
    const gone = waitFor(onB, "disconnect");
    const { status } = await g.api(A, "disconnect_sockets", { rooms: [`user:${user}`] });
    assert.equal(status, 200);
    assert.equal((await gone)[0], "io server disconnect");
    const deadline = Date.now() + 5000;
    let mine = [];
    while (Date.now() < deadline) {
      mine = (await g.recorded("disconnects")).filter((d) => d.sid === sid);
      if (mine.length) break;
      await new Promise((r) => setTimeout(r, 50));
    }
    assert.deepEqual(mine, [{ sid, nsp: "/", user, reason: "server namespace disconnect" }]);
  });
});
