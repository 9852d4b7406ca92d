// socket.io-client 4.x against the e2e server: HTTP long-polling only (`transports: ["polling"]`); the transport must stay polling.
import { defineSuite } from "./suite.mjs";

defineSuite("v4", "polling");
