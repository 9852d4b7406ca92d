// What every headless Chromium of the e2e suites is started with (no dependencies: the suites
// that drive it import playwright-core from their own node_modules).

/** Debian's Chromium, or `SOCKETLET_CHROMIUM`. */
export const CHROMIUM = process.env.SOCKETLET_CHROMIUM || "/usr/bin/chromium";

/** Its flags: no sandbox (containers), no GPU, nothing that talks to the network on its own. */
export const CHROMIUM_ARGS = [
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
];
