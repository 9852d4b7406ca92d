// socket.io-client 4.x with socket.io-msgpack-parser against the e2e server with --msgpack:
// HTTP long-polling only (`transports: ["polling"]`): binary msgpack packets as `b<base64>` in text payloads.
import { defineSuite } from "./suite.mjs";

defineSuite("v4-msgpack", "polling");
