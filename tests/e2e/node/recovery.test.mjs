// Connection state recovery on one node with the in-memory adapter (e2e server --recovery-ms),
// with socket.io-client 4.8: a client whose transport is killed gets, once back within the
// window, every event emitted meanwhile to it, to its room and to everyone, exactly once and in
// order, each with its offset, `socket.recovered` true and its id and rooms kept; after the
// window, a fresh socket. A socket.io-client 2.x client in the same room (protocol v4, no
// recovery) gets the same events without offsets. (With Redis Streams, across nodes:
// tests/e2e/cluster/streams.test.mjs.)

import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import {
  V2,
  V4,
  closeAll,
  connectWithWelcome,
  emitAck,
  sleep,
  startServer,
  until,
  waitConnect,
  waitFor,
} from "./helpers.mjs";

const RECOVERY_MS = 1500;
/** Time given to duplicates to show up after the expected events arrived. */
const GRACE_MS = 300;

/** The `room-message` and `broadcast` events `socket` receives, as `[name, msg, ...rest]`. */
function recordMessages(socket) {
  const got = [];
  socket.on("room-message", (payload, ...rest) => got.push(["room-message", payload.msg, ...rest]));
  socket.on("broadcast", (payload, ...rest) => got.push(["broadcast", payload, ...rest]));
  return got;
}

/** Kills the client's transport with reconnection held back (the server sees its connection
 * close without a DISCONNECT packet, a reason to keep the session). */
async function dropTransport(socket) {
  socket.io.reconnection(false);
  const gone = waitFor(socket, "disconnect");
  socket.io.engine.close();
  await gone;
}

/** Lets the client reconnect; resolves to the server's `welcome` once connected. */
async function comeBack(socket) {
  socket.io.reconnection(true);
  const welcome = waitFor(socket, "welcome");
  const connected = waitConnect(socket);
  socket.connect();
  await connected;
  return (await welcome)[0];
}

describe("connection state recovery, in memory (socket.io-client 4.8)", { timeout: 60000 }, () => {
  let server;
  const tracker = [];

  before(async () => {
    server = await startServer({ label: "recovery", args: ["--recovery-ms", String(RECOVERY_MS)] });
  });
  after(() => {
    closeAll(tracker);
    server?.stop();
  });

  for (const transport of ["websocket", "polling"]) {
    it(`a client back within the window gets what it missed, once, in order (${transport})`, async () => {
      const room = `room-${transport}`;
      const { socket: subject } = await connectWithWelcome(tracker, server.url, { transports: [transport] });
      const { socket: other } = await connectWithWelcome(tracker, server.url, { transports: ["websocket"] });
      const { socket: old } = await connectWithWelcome(tracker, server.url, { transports: ["websocket"] }, V2);
      for (const s of [subject, old]) await emitAck(s, "join", [room]);
      const got = recordMessages(subject);
      const oldGot = recordMessages(old);
      await emitAck(other, "to-room", [room, "first"]);
      await until(() => got.length === 1, { what: "the first event" });
      // The offset is the last argument of every event a v5 client may recover from.
      assert.equal(got[0].length, 3, JSON.stringify(got));
      assert.equal(typeof got[0][2], "string");
      const sid = subject.id;

      await dropTransport(subject);
      const mark = got.length;
      await emitAck(other, "to-room", [sid, "to-it"]);
      await emitAck(other, "to-room", [room, "to-its-room"]);
      other.emit("broadcast", "to-everyone");
      await emitAck(other, "to-room", ["elsewhere", "not-for-it"]);
      await sleep(100);

      const welcome = await comeBack(subject);
      assert.equal(subject.recovered, true);
      assert.equal(subject.id, sid);
      assert.equal(welcome.recovered, true);
      await sleep(GRACE_MS);
      const missed = got.slice(mark);
      assert.deepEqual(
        missed.map(([name, msg]) => [name, msg]),
        [
          ["room-message", "to-it"],
          ["room-message", "to-its-room"],
          ["broadcast", "to-everyone"],
        ],
      );
      assert.equal(new Set(missed.map((m) => m[2])).size, 3, "each with an offset of its own");
      // Still in its room, live.
      await emitAck(other, "to-room", [room, "live"]);
      await until(() => got.length === mark + 4, { what: "the live event" });
      await sleep(GRACE_MS);
      assert.equal(got.length, mark + 4, JSON.stringify(got.slice(mark)));

      // The 2.x client saw the room's events and the broadcast, with no offset.
      assert.deepEqual(oldGot, [
        ["room-message", "first"],
        ["room-message", "to-its-room"],
        ["broadcast", "to-everyone"],
        ["room-message", "live"],
      ]);
      closeAll(tracker);
    });
  }

  it("a client back after the window gets a fresh socket, and nothing it missed", async () => {
    const { socket: subject } = await connectWithWelcome(tracker, server.url, { transports: ["websocket"] }, V4);
    const { socket: other } = await connectWithWelcome(tracker, server.url, { transports: ["websocket"] });
    await emitAck(subject, "join", ["late"]);
    const got = recordMessages(subject);
    await emitAck(other, "to-room", ["late", "first"]);
    await until(() => got.length === 1, { what: "the first event" });
    const sid = subject.id;
    await dropTransport(subject);
    await emitAck(other, "to-room", ["late", "missed"]);
    await sleep(RECOVERY_MS + 300);

    const welcome = await comeBack(subject);
    assert.equal(subject.recovered, false);
    assert.notEqual(subject.id, sid);
    assert.equal(welcome.recovered, undefined);
    await emitAck(other, "to-room", ["late", "after"]);
    await sleep(GRACE_MS);
    assert.deepEqual(got.slice(1), [], "nothing missed, and not in its old room");
    closeAll(tracker);
  });
});
