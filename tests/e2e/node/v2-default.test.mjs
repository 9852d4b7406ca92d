// socket.io-client 2.x (Engine.IO v3 / Socket.IO protocol v4) against the e2e server:
// the client default, HTTP long-polling then the upgrade to WebSocket, which must happen.
import { defineSuite } from "./suite.mjs";

defineSuite("v2", "default");
