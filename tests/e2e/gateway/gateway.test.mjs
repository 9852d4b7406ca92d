// The gateway with socket.io-client 4.x: one socketlet node whose hooks call the example backend
// (backend.py: Starlette on uvicorn with the socketlet Python package), which calls back through
// the server API.

import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import {
  Gateway,
  emitAck,
  normalizeBinary,
  record,
  refusal,
  sleep,
  uid,
  until,
  waitFor,
} from "./helpers.mjs";

describe("gateway: one node and a Starlette backend", { timeout: 60000 }, () => {
  let g;
  before(async () => {
    g = await Gateway.start();
  });
  after(() => g?.cleanup());

  for (const transports of [["websocket"], ["polling"]]) {
    it(`the backend accepts a valid token (${transports[0]})`, async () => {
      const user = uid("alice");
      const s = await g.connect(0, user, { transports });
      const [me] = await emitAck(s, "whoami");
      assert.deepEqual(me, {
        user,
        sid: s.id,
        nsp: "/",
        data: { transport: transports[0], protocol: 5 },
      });
      const seen = (await g.recorded("connects")).find((c) => c.sid === s.id);
      assert.deepEqual(seen.auth, { token: `token-${user}` });
      assert.equal(seen.headers.cookie, undefined);
      const { status, body } = await g.api(0, "fetch_sockets", { rooms: [`user:${user}`] });
      assert.equal(status, 200);
      assert.deepEqual(
        body.map((x) => [x.id, x.user]),
        [[s.id, user]],
      );
    });
  }

  it("the backend refuses other tokens, with its message and data", async () => {
    for (const auth of [{ token: "nope" }, {}, undefined]) {
      const s = g.socket(0, { auth });
      const err = await refusal(s);
      assert.equal(err.message, "invalid token", JSON.stringify(auth));
      assert.deepEqual(err.data, { code: "E_TOKEN" });
      assert.equal(s.connected, false);
    }
  });

  it("events are answered by the backend's ack, binary included", async () => {
    const s = await g.connect(0, uid("bob"));
    const ack = await emitAck(s, "echo", ["text", { n: 1 }, Buffer.from([0, 255, 7])]);
    assert.deepEqual(normalizeBinary(ack), ["text", { n: 1 }, { $bytes: "00ff07" }]);
    assert.deepEqual(await emitAck(s, "nope", [1]), [{ error: { message: "unknown event: nope" } }]);
  });

  it("the backend emits through the API to a user's room", async () => {
    const sender = uid("carol");
    const target = uid("dan");
    const s = await g.connect(0, sender);
    const tabs = [
      await g.connect(0, target),
      await g.connect(0, target, { transports: ["polling"] }),
    ];
    const bystander = await g.connect(0, uid("erin"));
    const got = [...tabs, s, bystander].map((x) => record(x, "notification"));
    assert.deepEqual(await emitAck(s, "notify", [{ to: target, text: "hello" }]), [{ sockets: 2 }]);
    await until(() => got[0].length === 1 && got[1].length === 1, { what: "both tabs" });
    assert.deepEqual(got[0], [[{ from: sender, text: "hello" }]]);
    assert.deepEqual(got[1], [[{ from: sender, text: "hello" }]]);
    await sleep(300);
    assert.equal(got[2].length + got[3].length, 0, "only the target's room");
  });

  it("the disconnect hook records each socket once, with the reason", async () => {
    const user = uid("ivy");
    const a = await g.connect(0, user);
    const b = await g.connect(0, user);
    const ids = [a.id, b.id];
    a.disconnect();
    const gone = waitFor(b, "disconnect");
    assert.deepEqual(await emitAck(b, "bye"), ["bye"]);
    assert.equal((await gone)[0], "io server disconnect");
    let mine = [];
    await until(
      async () => {
        mine = (await g.recorded("disconnects")).filter((d) => d.user === user);
        return mine.length === 2;
      },
      { what: "two disconnect hooks" },
    );
    const byId = Object.fromEntries(mine.map((d) => [d.sid, d]));
    assert.deepEqual(byId[ids[0]], {
      sid: ids[0],
      nsp: "/",
      user,
      reason: "client namespace disconnect",
    });
    assert.equal(byId[ids[1]].reason, "server namespace disconnect");
  });

  it("the API refuses a wrong key and bad bodies", async () => {
    const res = await fetch(`${g.nodes[0].url}/api/rooms`, {
      method: "POST",
      headers: { authorization: "Bearer wrong" },
      body: "{}",
    });
    assert.equal(res.status, 401);
    assert.equal((await res.json()).error.code, "unauthorized");
    for (const bad of [{ event: "connect" }, { event: "x", args: [{ _placeholder: true, num: 0 }] }, {}]) {
      const { status, body } = await g.api(0, "emit", bad);
      assert.equal(status, 400, JSON.stringify(bad));
      assert.equal(body.error.code, "bad_request");
    }
  });
});
