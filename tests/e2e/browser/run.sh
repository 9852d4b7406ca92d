#!/usr/bin/env bash
# End-to-end tests in a real browser: headless Chromium (Debian's `chromium`, installed with
# apt-get when /usr/bin/chromium is missing) driven by playwright-core. jsonp.test.mjs: JSONP
# polling (Engine.IO v3) with socket.io-client 2.5.0's browser bundle; vm-console.test.mjs: the
# `socketlet` binary's demo page (VM console, a non-default --path, a graceful shutdown). Both
# packages are pinned in package-lock.json (`npm ci` when node_modules is missing or older than the
# lockfile, as scripts/test.sh does for tests/e2e/node). Works from any directory. Saves screenshots
# to tests/e2e/.artifacts/. Environment:
#   SOCKETLET_E2E_SERVER  the e2e server binary (default <repo>/target/debug/examples/e2e_server,
#                         built with `cargo build -p socketlet --example e2e_server`)
#   SOCKETLET_BIN         the socketlet binary (default <repo>/target/debug/socketlet, built with
#                         `cargo build -p socketlet-cli`)
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)"
ROOT="$(cd "$HERE/../../.." && pwd -P)"
# shellcheck source=scripts/lib.sh
. "$ROOT/scripts/lib.sh"
ARTIFACTS="$ROOT/tests/e2e/.artifacts"
CHROMIUM=/usr/bin/chromium
# Hard limit of the test run, in seconds (each wait in it has its own, much shorter, timeout).
SUITE_LIMIT=180

: "${SOCKETLET_E2E_SERVER:=$ROOT/target/debug/examples/e2e_server}"
export SOCKETLET_E2E_SERVER
: "${SOCKETLET_BIN:=$ROOT/target/debug/socketlet}"
export SOCKETLET_BIN



[ -x "$SOCKETLET_E2E_SERVER" ] \
  || die "no e2e server at $SOCKETLET_E2E_SERVER (cargo build -p socketlet --example e2e_server)"
command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1 || apt_install nodejs npm
node_major="$(node -p 'process.versions.node.split(".")[0]')"
[ "$node_major" -ge 18 ] || die "Node.js >= 18 is needed for node --test, found $(node --version)"

if [ ! -x "$CHROMIUM" ]; then
  apt_install chromium
fi
[ -x "$CHROMIUM" ] || die "no Chromium at $CHROMIUM after apt-get install chromium"
# (Debian's /usr/bin/chromium is a shell wrapper; its --version output is informational only.)
echo "$("$CHROMIUM" --version 2>/dev/null || true)"

# npm ci (which starts from an empty node_modules) only when node_modules is missing or older than
# the lockfile. npm rewrites node_modules/.package-lock.json on every install.
stamp="$HERE/node_modules/.package-lock.json"
if [ ! -f "$stamp" ] || [ "$HERE/package-lock.json" -nt "$stamp" ] \
  || [ "$HERE/package.json" -nt "$stamp" ]; then
  (cd "$HERE" && npm ci --no-audit --no-fund)
  touch "$stamp"
else
  echo "tests/e2e/browser/node_modules is up to date with package-lock.json"
fi

mkdir -p "$ARTIFACTS"
limit=()
command -v timeout >/dev/null 2>&1 && limit=(timeout --kill-after=10 "$SUITE_LIMIT")
if ! (cd "$HERE" && ${limit[@]+"${limit[@]}"} node --test --test-concurrency=1 --test-reporter=spec jsonp.test.mjs vm-console.test.mjs); then
  for f in "$ARTIFACTS"/browser-*.log "$ARTIFACTS"/vm-console*.log; do
    [ -e "$f" ] || continue
    printf -- '--- last lines of %s ---\n' "${f#"$ROOT"/}" >&2
    tail -n 30 "$f" >&2 || true
  done
  die "the browser e2e tests failed (screenshots: tests/e2e/.artifacts/jsonp.png, *-failure.png)"
fi
