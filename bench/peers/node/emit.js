// The Node emitter of socketlet's benchmark (the cluster cells' emitter path): publishes through
// @socket.io/redis-emitter, as a process that is not a Socket.IO server would.
// Usage: node emit.js --redis URL [--to room|all]
// Prints "READY" once connected; then, for each line of its standard input (a round number),
// emits "broadcast" with that number to the room "bench" (or to every socket of "/"). Ends at
// the end of its input.
"use strict";

const readline = require("node:readline");
const { createClient } = require("redis");
const { Emitter } = require("@socket.io/redis-emitter");

function option(argv, name) {
  const i = argv.indexOf(name);
  return i >= 0 ? argv[i + 1] : undefined;
}

async function main() {
  const argv = process.argv.slice(2);
  const url = option(argv, "--redis");
  if (!url) {
    throw new Error("--redis URL is needed");
  }
  const toRoom = (option(argv, "--to") ?? "room") === "room";
  const client = createClient({ url });
  await client.connect();
  const emitter = new Emitter(client);
  process.stdout.write("READY\n");
  const lines = readline.createInterface({ input: process.stdin });
  for await (const line of lines) {
    const round = Number(line.trim());
    if (!Number.isInteger(round)) {
      continue;
    }
    (toRoom ? emitter.to("bench") : emitter).emit("broadcast", round);
  }
  await client.quit();
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
