#!/usr/bin/env bash
# The project's test command (CI runs it through .ci/run). Works from any directory and can be
# re-run at will. Steps, in order:
#   1. cargo test --workspace --all-features
#   2. static checks: cargo fmt --all --check, cargo clippy --workspace --all-targets
#      --all-features -D warnings (every member: the workspace's default member alone is the CLI),
#      and the sans-I/O crates must not depend on tokio, hyper, tungstenite or tokio-tungstenite
#   3. cargo build -p socketlet --example e2e_server -p socketlet-cli (the e2e server, the binary)
#   4. end-to-end suite with the official Node client (socket.io-client), tests/e2e/node
#   5. end-to-end suite with the official Python client (python-socketio 5.x), tests/e2e/python
#   6. python-socketio 4.5.1 and 4.6.1 (Engine.IO v3) and a mixed-generation room, tests/e2e/python4
#   7. headless Chromium: JSONP polling with socket.io-client 2.x, and the VM console, tests/e2e/browser
#   8. Redis clusters: nginx, Node's redis-adapter and emitter, python-socketio's queue, faults, tests/e2e/cluster
#   9. the benchmark harness in smoke mode (tiny numbers, socketlet only: the scenarios complete), bench/
# Environment:
#   SOCKETLET_SKIP_E2E=1  skip steps 4 to 9 (quick local runs; never set in CI)
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



# On an e2e failure, shows where the server logs are and their last lines.
show_server_logs() {
  printf '\nServer logs (stderr of every e2e server process) are in %s\n' "$ARTIFACTS" >&2
  local f
  for f in "$ARTIFACTS"/"$1"-*.log; do
    [ -e "$f" ] || continue
    printf -- '--- last lines of %s ---\n' "${f#"$ROOT"/}" >&2
    tail -n 30 "$f" >&2 || true
  done
}

command -v cargo >/dev/null 2>&1 || die "cargo not found (install Rust: https://rustup.rs)"

# ---------------------------------------------------------------------------------------------
step "1/9 cargo test --workspace --all-features"
# The Redis crate's own tests start a redis-server of their own (Debian's package when missing);
# in this run they must not skip for want of one.
command -v redis-server >/dev/null 2>&1 || apt_install redis-server
export SOCKETLET_REQUIRE_REDIS=1
cargo test --workspace --all-features

# ---------------------------------------------------------------------------------------------
step "2/9 static checks: rustfmt, clippy on every member, sans-I/O crates without tokio/hyper/tungstenite"
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
step "3/9 cargo build -p socketlet --example e2e_server -p socketlet-cli --bin socketlet"
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
  step "4/9 to 9/9 e2e suites SKIPPED (SOCKETLET_SKIP_E2E=1)"
  CURRENT_STEP=""
  exit 0
fi

rm -rf "$ARTIFACTS"
mkdir -p "$ARTIFACTS"

# ---------------------------------------------------------------------------------------------
step "4/9 e2e: official Node client (socket.io-client), tests/e2e/node"
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  apt_install nodejs npm
fi
node_major="$(node -p 'process.versions.node.split(".")[0]')"
[ "$node_major" -ge 18 ] || die "Node.js >= 18 is needed for node --test, found $(node --version)"
echo "node $(node --version), npm $(npm --version)"

# npm ci (which starts from an empty node_modules) only when node_modules is missing or older than
# the lockfile. npm rewrites node_modules/.package-lock.json on every install.
stamp="$NODE_DIR/node_modules/.package-lock.json"
if [ ! -f "$stamp" ] || [ "$NODE_DIR/package-lock.json" -nt "$stamp" ] \
  || [ "$NODE_DIR/package.json" -nt "$stamp" ]; then
  (cd "$NODE_DIR" && npm ci --no-audit --no-fund)
  touch "$stamp"
else
  echo "node_modules is up to date with package-lock.json"
fi

node_test_flags=(--test --test-reporter=spec)
# One test file (transport setup) at a time; the flag exists from Node 20.10 on.
node_help="$(node --help)"
if grep -q -- '--test-concurrency' <<<"$node_help"; then
  node_test_flags+=(--test-concurrency=1)
fi
node_test_files=()
for f in "$NODE_DIR"/*.test.mjs; do node_test_files+=("$(basename "$f")"); done
if ! (cd "$NODE_DIR" && with_limit node "${node_test_flags[@]}" "${node_test_files[@]}"); then
  show_server_logs node
  die "the Node e2e suite failed"
fi

# ---------------------------------------------------------------------------------------------
step "5/9 e2e: official Python client (python-socketio), tests/e2e/python"
if ! command -v python3 >/dev/null 2>&1; then
  apt_install python3 python3-venv
fi
# (Re)create the venv when it is missing or broken (e.g. a half-made one without pip).
if [ ! -x "$VENV/bin/python" ] || ! "$VENV/bin/python" -m pip --version >/dev/null 2>&1; then
  # Debian ships venv without ensurepip unless python3-venv is installed.
  if ! python3 -c 'import venv, ensurepip' >/dev/null 2>&1; then
    apt_install python3-venv
  fi
  rm -rf "$VENV"
  echo "Creating $VENV"
  python3 -m venv "$VENV"
fi
req_stamp="$VENV/.requirements.sha256"
# Reinstall when requirements.txt or the venv's Python changed.
req_hash="$(sha256sum <"$PY_DIR/requirements.txt" | cut -d' ' -f1) $("$VENV/bin/python" -c 'import sys; print(sys.version.split()[0])')"
if [ ! -f "$req_stamp" ] || [ "$(cat "$req_stamp")" != "$req_hash" ]; then
  PIP_DISABLE_PIP_VERSION_CHECK=1 "$VENV/bin/python" -m pip install -r "$PY_DIR/requirements.txt"
  printf '%s\n' "$req_hash" >"$req_stamp"
else
  echo "venv is up to date with requirements.txt"
fi
"$VENV/bin/python" --version
if ! (cd "$PY_DIR" && with_limit "$VENV/bin/python" -m pytest -q); then
  show_server_logs python
  die "the Python e2e suite failed"
fi

# ---------------------------------------------------------------------------------------------
step "6/9 e2e: python-socketio 4.5.1 and 4.6.1 (Engine.IO v3), mixed room, tests/e2e/python4"
bash "$E2E_DIR/python4/run.sh" || die "the python-socketio 4.x e2e suite failed"

# ---------------------------------------------------------------------------------------------
step "7/9 e2e: headless Chromium (JSONP polling, VM console), tests/e2e/browser"
bash "$E2E_DIR/browser/run.sh" || die "the browser e2e tests failed"

# ---------------------------------------------------------------------------------------------
step "8/9 e2e: Redis clusters (nginx, Node redis-adapter and emitter, python-socketio queue), tests/e2e/cluster"
bash "$E2E_DIR/cluster/run.sh" || die "the cluster e2e suite failed"

# ---------------------------------------------------------------------------------------------
step "9/9 benchmark harness, smoke mode (bench/run.sh --smoke)"
bash "$ROOT/bench/run.sh" --smoke || die "the benchmark smoke run failed"

CURRENT_STEP=""
printf '\nAll tests passed.\n'
