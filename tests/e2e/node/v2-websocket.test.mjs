// socket.io-client 2.x (Engine.IO v3 / Socket.IO protocol v4) against the e2e server:
// WebSocket only (`transports: ["websocket"]`).
import { defineV2Suite } from "./v2-suite.mjs";

defineV2Suite("websocket");
