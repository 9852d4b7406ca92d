// The Node socket.io peer of socketlet's benchmark. Event contract (identical on every server):
//   namespace "/" only;
//   "echo": acks its arguments back;
//   "broadcast" (with an ack): emits "broadcast" with the given arguments to every socket of "/"
//   (the sender included), then acks `true`.
// Usage: node server.js --port PORT   (prints "LISTENING PORT" once it accepts connections)
"use strict";

const http = require("node:http");
const { Server } = require("socket.io");

function parsePort(argv) {
  const i = argv.indexOf("--port");
  const port = i >= 0 ? Number(argv[i + 1]) : 0;
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    throw new Error(`bad --port: ${argv[i + 1]}`);
  }
  return port;
}

const port = parsePort(process.argv.slice(2));
const httpServer = http.createServer();
// Defaults otherwise: both transports, the `ws` WebSocket engine, no per-message deflate.
const io = new Server(httpServer);

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
});

httpServer.listen({ port, host: "127.0.0.1", backlog: 4096 }, () => {
  process.stdout.write(`LISTENING ${httpServer.address().port}\n`);
});

process.on("SIGTERM", () => process.exit(0));
