// socket.io-client 4.x against the e2e server: The client default: long-polling first, then the upgrade to WebSocket.
import { defineSuite } from "./suite.mjs";

defineSuite("v4", "default");
