// socket.io-client 2.x (Engine.IO v3 / Socket.IO protocol v4) against the e2e server:
// HTTP long-polling only (`transports: ["polling"]`); the transport must stay polling.
import { defineSuite } from "./suite.mjs";

defineSuite("v2", "polling");
