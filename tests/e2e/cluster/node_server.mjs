// A Node socket.io 4.8 server with @socket.io/redis-adapter 8.x (node-redis 4.x clients, as the
// adapter's documentation shows), for the mixed-cluster test. It implements the events of
// tests/e2e/CONTRACT.md that the test uses, with the same names and answers as the socketlet e2e
// server: welcome, join, to-room, broadcast, fetch-sockets (with the `local` flag), collect-acks,
// remote-disconnect, server-side-emit (and `ping-nodes` from other nodes -> `nodes-pinged`).
//
// Usage: node node_server.mjs --redis redis://127.0.0.1:PORT [--port N] [--sharded MODE]
//        [--streams] [--recovery-ms MS]
// With --sharded, the adapter is createShardedAdapter (Redis 7 sharded pub/sub) with that
// subscriptionMode (static, dynamic, dynamic-private). With --streams, it is
// @socket.io/redis-streams-adapter 0.3 (createAdapter(client), its defaults). With --recovery-ms,
// connectionStateRecovery is on with that maxDisconnectionDuration, and the welcome of a
// recovered socket carries `"recovered": true` (as the socketlet e2e server's).
// Prints `LISTENING <port>` once it accepts connections; listens on 127.0.0.1 only.

import { createServer } from "node:http";
import { parseArgs } from "node:util";
import { createAdapter, createShardedAdapter } from "@socket.io/redis-adapter";
import { createAdapter as createStreamsAdapter } from "@socket.io/redis-streams-adapter";
import { createClient } from "redis";
import { Server } from "socket.io";

const { values } = parseArgs({
  options: {
    redis: { type: "string" },
    port: { type: "string", default: "0" },
    sharded: { type: "string" },
    streams: { type: "boolean", default: false },
    "recovery-ms": { type: "string" },
  },
});
if (!values.redis) {
  console.error("usage: node node_server.mjs --redis redis://127.0.0.1:PORT [--port N]");
  process.exit(2);
}

const pubClient = createClient({ url: values.redis });
const subClient = pubClient.duplicate();
for (const c of [pubClient, subClient])
  c.on("error", (err) => console.error(`redis: ${err.message}`));
await Promise.all([pubClient.connect(), subClient.connect()]);

const httpServer = createServer();
// allowEIO3: socket.io-client 2.x clients too, as the socketlet nodes take them.
const io = new Server(httpServer, {
  adapter: values.streams
    ? createStreamsAdapter(pubClient)
    : values.sharded
      ? createShardedAdapter(pubClient, subClient, { subscriptionMode: values.sharded })
      : createAdapter(pubClient, subClient, { requestsTimeout: 3000 }),
  allowEIO3: true,
  ...(values["recovery-ms"]
    ? { connectionStateRecovery: { maxDisconnectionDuration: Number(values["recovery-ms"]) } }
    : {}),
});
const root = io.of("/");

/** Sorts like the socketlet e2e server: by the JSON text of the key, byte order. */
const byJson = (key) => (a, b) => {
  const x = JSON.stringify(key(a));
  const y = JSON.stringify(key(b));
  return x < y ? -1 : x > y ? 1 : 0;
};

root.on("connection", (socket) => {
  const welcome = { sid: socket.id, auth: socket.handshake.auth ?? null, protocol: 5 };
  if (socket.recovered) welcome.recovered = true;
  socket.emit("welcome", welcome);

  socket.on("join", (room, ack) => {
    socket.join(room);
    ack?.([...socket.rooms].sort());
  });

  socket.on("to-room", (room, msg, ack) => {
    io.to(room).emit("room-message", { room, from: socket.id, msg });
    ack?.(true);
  });

  socket.on("broadcast", (...args) => socket.broadcast.emit("broadcast", ...args));

  socket.on("fetch-sockets", async (ack) => {
    try {
      const sockets = await io.fetchSockets();
      const list = sockets
        .map((s) => ({ id: s.id, rooms: [...s.rooms], local: root.sockets.has(s.id) }))
        .sort(byJson((s) => s.id));
      ack?.(list);
    } catch (err) {
      ack?.({ error: String(err?.message ?? err) });
    }
  });

  socket.on("collect-acks", async (room, ack) => {
    try {
      const answers = await io.to(room).timeout(2000).emitWithAck("ping-ack", "ping");
      ack?.(answers.sort(byJson((a) => a)));
    } catch (err) {
      ack?.({ error: String(err?.message ?? err) });
    }
  });

  socket.on("remote-disconnect", (id, ack) => {
    io.in(id).disconnectSockets(false);
    ack?.(true);
  });

  socket.on("server-side-emit", (...args) => {
    const ack = typeof args[args.length - 1] === "function" ? args.pop() : undefined;
    io.serverSideEmit("ping-nodes", ...args);
    ack?.(true);
  });
});

io.on("ping-nodes", (...args) => {
  io.emit("nodes-pinged", ...args);
});

httpServer.listen(Number(values.port), "127.0.0.1", () => {
  console.log(`LISTENING ${httpServer.address().port}`);
});

const stop = () => {
  io.close();
  process.exit(0);
};
process.on("SIGTERM", stop);
process.on("SIGINT", stop);
