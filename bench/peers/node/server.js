// The Node socket.io peer of socketlet's benchmark. Event contract (identical on every server):
//   namespace "/" only;
//   "echo": acks its arguments back;
//   "broadcast" (with an ack): emits "broadcast" with the given arguments to every socket of "/"
//   (the sender included), then acks `true`;
//   "join" (with an ack): the socket joins the room "bench", then acks `true`;
//   "broadcast_room" (with an ack): emits "broadcast" with the given arguments to the room
//   "bench", then acks `true`.
// Usage: node server.js --port PORT [--redis URL]   (prints "LISTENING PORT" once it accepts
// connections). With --redis it joins a cluster through @socket.io/redis-adapter (its README's
// setup: node-redis clients, createAdapter).
"use strict";

const http = require("node:http");
const { Server } = require("socket.io");

const ROOM = "bench";

function option(argv, name) {
  const i = argv.indexOf(name);
  return i >= 0 ? argv[i + 1] : undefined;
}

function parsePort(argv) {
  const value = option(argv, "--port");
  const port = value === undefined ? 0 : Number(value);
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    throw new Error(`bad --port: ${value}`);
  }
  return port;
}

async function main() {
  const argv = process.argv.slice(2);
  const port = parsePort(argv);
  const redisUrl = option(argv, "--redis");
  const httpServer = http.createServer();
  // Defaults otherwise: both transports, the `ws` WebSocket engine, no per-message deflate.
  const io = new Server(httpServer);
  if (redisUrl) {
    const { createClient } = require("redis");
    const { createAdapter } = require("@socket.io/redis-adapter");
    const pubClient = createClient({ url: redisUrl });
    const subClient = pubClient.duplicate();
    await Promise.all([pubClient.connect(), subClient.connect()]);
    io.adapter(createAdapter(pubClient, subClient));
  }

  io.on("connection", (socket) => {
    socket.on("echo", (...args) => {
      const ack = args.pop();
      if (typeof ack === "function") {
        ack(...args);
      }
    });
    socket.on("broadcast", (...args) => {
      const ack = typeof args[args.length - 1] === "function" ? args.pop() : null;
      io.emit("broadcast", ...args);
      if (ack) {
        ack(true);
      }
    });
    socket.on("join", (...args) => {
      const ack = typeof args[args.length - 1] === "function" ? args.pop() : null;
      socket.join(ROOM);
      if (ack) {
        ack(true);
      }
    });
    socket.on("broadcast_room", (...args) => {
      const ack = typeof args[args.length - 1] === "function" ? args.pop() : null;
      io.to(ROOM).emit("broadcast", ...args);
      if (ack) {
        ack(true);
      }
    });
  });

  httpServer.listen({ port, host: "127.0.0.1", backlog: 4096 }, () => {
    process.stdout.write(`LISTENING ${httpServer.address().port}\n`);
  });
}

process.on("SIGTERM", () => process.exit(0));
main().catch((e) => {
  console.error(e);
  process.exit(1);
});
