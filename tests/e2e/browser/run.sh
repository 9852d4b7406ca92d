#!/usr/bin/env bash
# End-to-end tests in a real browser: headless Chromium (Debian's `chromium`, installed with
# apt-get when /usr/bin/chromium is missing) driven by playwright-core. jsonp.test.mjs: JSONP
# polling (Engine.IO v3) with socket.io-client 2.5.0's browser bundle; vm-console.test.mjs: the
# `socketlet` binary's demo page (VM console, a non-default --path, a graceful shutdown);
# admin-ui.test.mjs: the official Socket.IO Admin UI served by the binary, against three
# `socketlet --redis --admin-ui` nodes on a redis-server of its own (Debian's redis-server,
# installed when missing). The packages are pinned in package-lock.json (`npm ci` when
# node_modules is not up to date with the lockfile, as for every suite). Works from any
# directory. Saves screenshots to tests/e2e/.artifacts/. Environment:
#   SOCKETLET_E2E_SERVER  the e2e server binary (default <repo>/target/debug/examples/e2e_server,
#                         built with `cargo build -p socketlet --example e2e_server`)
#   SOCKETLET_BIN         the socketlet binary (default <repo>/target/debug/socketlet, built with
#                         `cargo build -p socketlet-cli`; for admin-ui.test.mjs, with the Admin UI
#                         embedded: see crates/cli/build.rs)
#   REDIS_SERVER          the redis-server program (default: the one on PATH)
# Arguments: test files to run (default: all of them).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)"
ROOT="$(cd "$HERE/../../.." && pwd -P)"
# shellcheck source=scripts/lib.sh
. "$ROOT/scripts/lib.sh"
CHROMIUM=/usr/bin/chromium
# Hard limit of the test run, in seconds (each wait in it has its own, much shorter, timeout).
SUITE_LIMIT=300
TEST_FILES=(jsonp.test.mjs vm-console.test.mjs admin-ui.test.mjs)

e2e_binaries server socketlet
need_node
if [ ! -x "$CHROMIUM" ]; then
  apt_install chromium
fi
[ -x "$CHROMIUM" ] || die "no Chromium at $CHROMIUM after apt-get install chromium"
if ! command -v redis-server >/dev/null 2>&1 && [ -z "${REDIS_SERVER:-}" ]; then
  apt_install redis-server
fi
# (Debian's /usr/bin/chromium is a shell wrapper; its --version output is informational only.)
echo "$("$CHROMIUM" --version 2>/dev/null || true)"
npm_ci "$HERE"

mkdir -p "$E2E_ARTIFACTS"
if [ "$#" -gt 0 ]; then
  TEST_FILES=("$@")
fi
if ! node_test "$HERE" "${TEST_FILES[@]}"; then
  show_logs 30 "$E2E_ARTIFACTS"/browser-*.log "$E2E_ARTIFACTS"/vm-console*.log
  die "the browser e2e tests failed (screenshots: tests/e2e/.artifacts/jsonp.png, *-failure.png)"
fi
