// socket.io-client 2.x (Engine.IO v3 / Socket.IO protocol v4) against the e2e server:
// HTTP long-polling only (`transports: ["polling"]`); the transport must stay polling.
import { defineV2Suite } from "./v2-suite.mjs";

defineV2Suite("polling");
