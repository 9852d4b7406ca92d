// socket.io-client 4.x with socket.io-msgpack-parser against the e2e server with --msgpack:
// the client default: long-polling first, then the upgrade to WebSocket.
import { defineSuite } from "./suite.mjs";

defineSuite("v4-msgpack", "default");
