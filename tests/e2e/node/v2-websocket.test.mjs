// socket.io-client 2.x (Engine.IO v3 / Socket.IO protocol v4) against the e2e server:
// WebSocket only (`transports: ["websocket"]`).
import { defineSuite } from "./suite.mjs";

defineSuite("v2", "websocket");
