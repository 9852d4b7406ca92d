// socket.io-client 4.x against the e2e server: WebSocket only (`transports: ["websocket"]`).
import { defineSuite } from "./suite.mjs";

defineSuite("v4", "websocket");
