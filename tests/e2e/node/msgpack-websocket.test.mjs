// socket.io-client 4.x with socket.io-msgpack-parser against the e2e server with --msgpack:
// WebSocket only (`transports: ["websocket"]`): one binary frame per packet.
import { defineSuite } from "./suite.mjs";

defineSuite("v4-msgpack", "websocket");
