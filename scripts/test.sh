#!/usr/bin/env bash
# The project's test command (CI runs it through .ci/run). Works from any directory and can be
# re-run at will. Steps, in order:
#   1. cargo test --workspace --all-features (with the venv of real dramatiq workers that
#      socketlet-dramatiq's and the binary's dramatiq tests run: crates/dramatiq/tests/python)
#   2. static checks: cargo fmt --all --check, cargo clippy --workspace --all-targets
#      --all-features -D warnings (every member: the workspace's default member alone is the CLI),
#      and the sans-I/O crates must not depend on tokio, hyper, tungstenite or tokio-tungstenite
#   3. the fuzz targets of fuzz/ (cargo-fuzz, nightly toolchain required), a short run of each:
#      scripts/fuzz.sh --quiet --seconds 5 (a crash fails it; the input goes to fuzz/artifacts/)
#   4. cargo build -p socketlet --example e2e_server -p socketlet-cli (the e2e server, the binary)
#   5. end-to-end suite with the official Node client (socket.io-client), tests/e2e/node
#   6. end-to-end suite with the official Python client (python-socketio 5.x), tests/e2e/python
#   7. python-socketio 4.5.1 and 4.6.1 (Engine.IO v3) and a mixed-generation room, tests/e2e/python4
#   8. headless Chromium: JSONP polling with socket.io-client 2.x, the VM console, and the official
#      Admin UI against socketlet nodes on Redis, tests/e2e/browser
#   9. Redis clusters: nginx, Node's redis-adapter and emitter, python-socketio's queue, faults, tests/e2e/cluster
#  10. the gateway (server API and backend hooks): the socketlet Python package's tests (python/),
#      a Starlette backend with socket.io-client 4.x and python-socketio 5.x, one node and two on
#      Redis, and schemathesis against /api/openapi.json, tests/e2e/gateway
#  11. the story's application, examples/django (Django behind nginx, socketlet, dramatiq
#      workers on Redis and RabbitMQ), started by its run.sh and driven in headless Chromium,
#      tests/e2e/django
#  12. resilience: hostile raw clients against the binary (slow-loris and endless bodies, ping and
#      pong floods, non-readers in a busy room, abandoned sessions and upgrades, a job flood),
#      memory and latency within stated bounds, tests/e2e/resilience
#  13. the benchmark harness in smoke mode (tiny numbers, socketlet only: the scenarios complete), bench/
# Environment:
#   SOCKETLET_SKIP_E2E=1  skip steps 5 to 13 (quick local runs; never set in CI)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)"
# shellcheck source=scripts/lib.sh
. "$ROOT/scripts/lib.sh"
cd "$ROOT"

E2E_DIR="$ROOT/tests/e2e"
NODE_DIR="$E2E_DIR/node"
PY_DIR="$E2E_DIR/python"
VENV="$PY_DIR/.venv"
ARTIFACTS="$E2E_DIR/.artifacts"
# Hard limit of each e2e suite, in seconds (each test also has its own, much shorter, timeouts).
SUITE_LIMIT=300
# Seconds each fuzz target runs in the short run (step 3).
FUZZ_SECONDS=5

SANS_IO_CRATES=(socketlet-engineio-proto socketlet-socketio-proto)
FORBIDDEN_DEPS='tokio|hyper|tungstenite|tokio-tungstenite'

CURRENT_STEP=""
step() {
  CURRENT_STEP="$1"
  printf '\n==> %s\n' "$1"
}
on_exit() {
  local rc=$?
  if [ "$rc" -ne 0 ] && [ -n "$CURRENT_STEP" ]; then
    printf '\nFAILED (exit %s) during: %s\n' "$rc" "$CURRENT_STEP" >&2
  fi
}
trap on_exit EXIT


command -v cargo >/dev/null 2>&1 || die "cargo not found (install Rust: https://rustup.rs)"

# ---------------------------------------------------------------------------------------------
step "1/13 cargo test --workspace --all-features"
# The Redis crate's own tests start a redis-server of their own (Debian's package when missing);
# in this run they must not skip for want of one.
command -v redis-server >/dev/null 2>&1 || apt_install redis-server
export SOCKETLET_REQUIRE_REDIS=1
# socketlet-dramatiq's tests, and the binary's dramatiq console test, run the real `dramatiq`
# command (pinned, from PyPI) from this venv, on redis-servers of their own (and the machine's
# RabbitMQ at 127.0.0.1:5672 when there is one); in this run they must not skip for want of it.
bash "$ROOT/crates/dramatiq/tests/python/setup.sh"
export SOCKETLET_REQUIRE_DRAMATIQ=1
cargo test --workspace --all-features

# ---------------------------------------------------------------------------------------------
step "2/13 static checks: rustfmt, clippy on every member, sans-I/O crates without tokio/hyper/tungstenite"
cargo fmt --all --check
cargo clippy --workspace --all-targets --all-features -- -D warnings
for crate in "${SANS_IO_CRATES[@]}"; do
  # --all-features: an optional (feature-gated) dependency counts too.
  tree="$(cargo tree -p "$crate" -e normal --prefix none --all-features)"
  offending="$(grep -E "^($FORBIDDEN_DEPS) v" <<<"$tree" | sed 's/ (\*)$//' | sort -u || true)"
  if [ -n "$offending" ]; then
    printf '%s\n' "$offending" >&2
    die "$crate must stay sans-I/O, but depends on the crates above (see: cargo tree -p $crate -e normal -i <crate>)"
  fi
  echo "ok: $crate has no I/O runtime dependency"
done

# ---------------------------------------------------------------------------------------------
step "3/13 fuzz targets, short run (scripts/fuzz.sh --quiet --seconds $FUZZ_SECONDS, every target)"
# Every target of fuzz/ for a few seconds, on a copy of its seeds; a crash (a panic, a failed
# check, an overflow, a timeout) fails the step. cargo-fuzz builds with the nightly toolchain:
# without it this fails, it does not skip. scripts/fuzz.sh installs cargo-fuzz when missing.
{ command -v rustup >/dev/null 2>&1 && rustup toolchain list | grep -q '^nightly'; } ||
  die "the fuzz step needs the nightly toolchain (cargo-fuzz): rustup toolchain install nightly"
bash "$ROOT/scripts/fuzz.sh" --quiet --seconds "$FUZZ_SECONDS" ||
  die "a fuzz target failed (above: its input in fuzz/artifacts/<target>/ and how to replay it)"

# ---------------------------------------------------------------------------------------------
step "4/13 cargo build -p socketlet --example e2e_server -p socketlet-cli --bin socketlet"
cargo build -p socketlet --example e2e_server -p socketlet-cli --bin socketlet
TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
case "$TARGET_DIR" in /*) ;; *) TARGET_DIR="$ROOT/$TARGET_DIR" ;; esac
SOCKETLET_E2E_SERVER="$TARGET_DIR/debug/examples/e2e_server"
[ -x "$SOCKETLET_E2E_SERVER" ] || die "built, but no executable at $SOCKETLET_E2E_SERVER"
export SOCKETLET_E2E_SERVER
echo "SOCKETLET_E2E_SERVER=$SOCKETLET_E2E_SERVER"
SOCKETLET_BIN="$TARGET_DIR/debug/socketlet"
[ -x "$SOCKETLET_BIN" ] || die "built, but no executable at $SOCKETLET_BIN"
export SOCKETLET_BIN
echo "SOCKETLET_BIN=$SOCKETLET_BIN"

if [ "${SOCKETLET_SKIP_E2E:-}" = 1 ]; then
  step "5/13 to 13/13 e2e suites SKIPPED (SOCKETLET_SKIP_E2E=1)"
  CURRENT_STEP=""
  exit 0
fi

rm -rf "$ARTIFACTS"
mkdir -p "$ARTIFACTS"

# ---------------------------------------------------------------------------------------------
step "5/13 e2e: official Node client (socket.io-client), tests/e2e/node"
need_node
echo "node $(node --version), npm $(npm --version)"
# tls.test.mjs makes its certificate with openssl.
command -v openssl >/dev/null 2>&1 || apt_install openssl
npm_ci "$NODE_DIR"
node_test_files=()
for f in "$NODE_DIR"/*.test.mjs; do node_test_files+=("$(basename "$f")"); done
# One test file (client generation and transport setup) at a time.
if ! node_test "$NODE_DIR" "${node_test_files[@]}"; then
  show_logs 30 "$ARTIFACTS"/node-*.log
  die "the Node e2e suite failed"
fi

# ---------------------------------------------------------------------------------------------
step "6/13 e2e: official Python client (python-socketio), tests/e2e/python"
make_venv "$VENV" "$PY_DIR/requirements.txt"
"$VENV/bin/python" --version
if ! (cd "$PY_DIR" && with_limit "$VENV/bin/python" -m pytest -q); then
  show_logs 30 "$ARTIFACTS"/python-*.log
  die "the Python e2e suite failed"
fi

# ---------------------------------------------------------------------------------------------
step "7/13 e2e: python-socketio 4.5.1 and 4.6.1 (Engine.IO v3), mixed room, tests/e2e/python4"
bash "$E2E_DIR/python4/run.sh" || die "the python-socketio 4.x e2e suite failed"

# ---------------------------------------------------------------------------------------------
step "8/13 e2e: headless Chromium (JSONP polling, VM console, Admin UI), tests/e2e/browser"
bash "$E2E_DIR/browser/run.sh" || die "the browser e2e tests failed"

# ---------------------------------------------------------------------------------------------
step "9/13 e2e: Redis clusters (nginx, Node redis-adapter and emitter, python-socketio queue), tests/e2e/cluster"
bash "$E2E_DIR/cluster/run.sh" || die "the cluster e2e suite failed"

# ---------------------------------------------------------------------------------------------
step "10/13 e2e: the gateway (python/ package, Starlette backend, Node and Python clients, Redis, schemathesis), tests/e2e/gateway"
bash "$E2E_DIR/gateway/run.sh" || die "the gateway e2e suite failed"

# ---------------------------------------------------------------------------------------------
step "11/13 e2e: the Django example (examples/django/run.sh: Django, nginx, dramatiq, Chromium), tests/e2e/django"
bash "$E2E_DIR/django/run.sh" || die "the Django example's e2e suite failed"

# ---------------------------------------------------------------------------------------------
step "12/13 e2e: resilience (slow bodies, floods, non-readers, abandoned sessions, job flood), tests/e2e/resilience"
bash "$E2E_DIR/resilience/run.sh" || die "the resilience e2e suite failed"

# ---------------------------------------------------------------------------------------------
step "13/13 benchmark harness, smoke mode (bench/run.sh --smoke)"
bash "$ROOT/bench/run.sh" --smoke || die "the benchmark smoke run failed"

CURRENT_STEP=""
printf '\nAll tests passed.\n'
