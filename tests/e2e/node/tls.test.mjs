// socket.io-client 4.x against the socketlet binary over TLS (--tls-cert, --tls-key): HTTPS
// long-polling, WSS, and the upgrade between them, with a certificate made for the test by
// openssl and trusted through the client's `ca` option (no `rejectUnauthorized: false`).

import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { io } from "socket.io-client";
import { connectSocket, emitAck, newSocket } from "../lib/client.mjs";
import { startSocketlet } from "../lib/server.mjs";

describe("TLS: the official client over https and wss", () => {
  let dir;
  let server;
  let ca;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), "socketlet-tls-"));
    const cert = join(dir, "cert.pem");
    const key = join(dir, "key.pem");
    execFileSync("openssl", [
      "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
      "-days", "1", "-subj", "/CN=localhost", "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost",
      "-keyout", key, "-out", cert,
    ], { stdio: "ignore" });
    ca = readFileSync(cert);
    server = await startSocketlet({ args: ["--tls-cert", cert, "--tls-key", key], label: "tls", logPrefix: "node" });
    assert.match(server.url, /^https:\/\//);
  });

  after(() => {
    server?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  for (const [name, transports] of [["polling", ["polling"]], ["websocket", ["websocket"]], ["upgrade", undefined]]) {
    test(`${name}: connects and echoes`, async () => {
      const socket = newSocket(io, server.url, { ca, ...(transports ? { transports } : {}) });
      try {
        await connectSocket(socket, { welcome: false });
        if (!transports) {
          await new Promise((resolve) =>
            socket.io.engine.transport.name === "websocket" ? resolve() : socket.io.engine.once("upgrade", resolve),
          );
        }
        const [answer] = await emitAck(socket, "echo", [{ over: name }]);
        assert.deepEqual(answer, { over: name });
        assert.equal(socket.io.engine.transport.name, transports ? transports[0] : "websocket");
      } finally {
        socket.close();
      }
    });
  }

  test("a client that does not trust the certificate cannot connect", async () => {
    const socket = newSocket(io, server.url, { transports: ["websocket"], reconnection: false });
    try {
      const error = await new Promise((resolve) => {
        socket.once("connect_error", resolve);
        socket.connect();
      });
      assert.ok(error instanceof Error);
      assert.equal(socket.connected, false);
    } finally {
      socket.close();
    }
  });
});
