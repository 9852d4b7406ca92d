// Headless Chromium for the browser tests: Debian's /usr/bin/chromium (or SOCKETLET_CHROMIUM),
// driven by playwright-core, in a persistent context whose profile is a temporary directory.

import assert from "node:assert/strict";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { chromium } from "playwright-core";
import { CHROMIUM, CHROMIUM_ARGS } from "../lib/chromium.mjs";
import { withTimeout } from "../lib/server.mjs";

/** The context's default timeout (ms) of its actions, and the time the browser gets to close. */
const BROWSER_WAIT_MS = 10_000;

/**
 * Launches headless Chromium with a fresh profile; `options` go to playwright's
 * `launchPersistentContext` (e.g. `viewport`). Resolves to `{ context, close() }`: `close()`
 * closes the browser (bounded, errors ignored) and removes the profile.
 */
export async function launchChromium(options = {}) {
  assert.ok(existsSync(CHROMIUM), `no Chromium at ${CHROMIUM} (apt-get install chromium)`);
  const userDataDir = mkdtempSync(join(tmpdir(), "socketlet-chromium-"));
  const removeProfile = () => rmSync(userDataDir, { recursive: true, force: true });
  let context;
  try {
    context = await chromium.launchPersistentContext(userDataDir, {
      executablePath: CHROMIUM,
      headless: true,
      timeout: 30_000,
      args: CHROMIUM_ARGS,
      ...options,
    });
  } catch (err) {
    removeProfile();
    throw err;
  }
  context.setDefaultTimeout(BROWSER_WAIT_MS);
  return {
    context,
    close: async () => {
      await withTimeout(context.close(), BROWSER_WAIT_MS, "browser close").catch(() => {});
      removeProfile();
    },
  };
}
