#!/usr/bin/env bash
# End-to-end suite of socketlet clusters on Redis (issue 6), with Node's built-in test runner:
#   nginx.test.mjs       three socketlet nodes behind nginx with sticky sessions, clients of both
#                        protocol generations over polling, WebSocket and upgrade
#   mixed.test.mjs       a Node socket.io 4.8 server with @socket.io/redis-adapter 8.x and two
#                        socketlet nodes in one cluster
#   emitters.test.mjs    python-socketio's RedisManager(write_only=True): 5.x JSON, 4.5.1 pickles,
#                        pickles that try to run code; Node's @socket.io/redis-emitter
#   faults.test.mjs      Redis killed, shut down and frozen in the middle of traffic, then back
#   throughput.test.mjs  a measurement: broadcast throughput of three nodes against one
#   binary.test.mjs      the socketlet binary, three nodes with --redis, behind the nginx block of
#                        README.md (read from the file)
#   streams.test.mjs     --redis-streams with connection state recovery: one node, then two
#                        socketlet nodes and a Node server with @socket.io/redis-streams-adapter;
#                        clients recover on another node than the one they left
# Every test starts its own redis-server, nginx and nodes on free ports of 127.0.0.1 (never the
# machine's Redis on 6379) and stops them in `after` hooks.
#
# Installs, only when missing: redis-server and nginx (Debian packages, after apt-get update);
# node_modules (npm ci, again whenever package-lock.json or the Node version changes); the venvs
# .venv (requirements.txt: python-socketio 5.x + redis) and .venv-4.5.1 (requirements-4.5.1.txt),
# again whenever their requirements file or the venv's Python changes.
# Works from any directory. Environment:
#   SOCKETLET_E2E_SERVER  the e2e server binary (default <repo>/target/debug/examples/e2e_server,
#                         built with `cargo build -p socketlet --example e2e_server`)
#   SOCKETLET_BIN         the socketlet binary (default <repo>/target/debug/socketlet, built with
#                         `cargo build -p socketlet-cli`)
#   PYTHON                the Python that makes the venvs (default python3)
#   CLUSTER_BENCH_CLIENTS, CLUSTER_BENCH_BROADCASTS  the size of the measurement (300, 200)
# Arguments: test files to run (default: all of them).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)"
ROOT="$(cd "$HERE/../../.." && pwd -P)"
# shellcheck source=scripts/lib.sh
. "$ROOT/scripts/lib.sh"
TEST_FILES=(nginx.test.mjs mixed.test.mjs emitters.test.mjs faults.test.mjs throughput.test.mjs binary.test.mjs streams.test.mjs)
# Hard limit of the whole run, in seconds (each test also has its own, much shorter, timeouts).
SUITE_LIMIT=300

# The path of a program, also looking in the sbin directories (nginx lives in /usr/sbin, which
# is not on every user's PATH); empty when there is none.
find_program() {
  local p
  p="$(command -v "$1" 2>/dev/null || true)"
  if [ -z "$p" ]; then
    for dir in /usr/sbin /sbin /usr/local/sbin; do
      if [ -x "$dir/$1" ]; then
        p="$dir/$1"
        break
      fi
    done
  fi
  printf '%s' "$p"
}

e2e_binaries server socketlet

# ---- redis-server and nginx (Debian packages), only when missing ----------------------------
missing=()
[ -n "$(find_program redis-server)" ] && [ -n "$(find_program redis-cli)" ] || missing+=(redis-server)
[ -n "$(find_program nginx)" ] || missing+=(nginx)
if [ "${#missing[@]}" -ne 0 ]; then
  apt_install "${missing[@]}"
fi
REDIS_SERVER="$(find_program redis-server)"
NGINX="$(find_program nginx)"
REDIS_CLI="$(find_program redis-cli)"
[ -n "$REDIS_SERVER" ] && [ -n "$REDIS_CLI" ] || die "redis-server/redis-cli not found after installing redis-server"
[ -n "$NGINX" ] || die "nginx not found after installing nginx"
export REDIS_SERVER REDIS_CLI NGINX
echo "$("$REDIS_SERVER" --version | cut -d' ' -f1-3), $("$NGINX" -v 2>&1)"

# ---- Node and node_modules, the Python venvs -------------------------------------------------
need_node
npm_ci "$HERE"
make_venv "$HERE/.venv" "$HERE/requirements.txt"
make_venv "$HERE/.venv-4.5.1" "$HERE/requirements-4.5.1.txt"
for venv in "$HERE/.venv" "$HERE/.venv-4.5.1"; do
  "$venv/bin/python" -c 'import sys; from importlib.metadata import version as v; print("Python", sys.version.split()[0], "python-socketio", v("python-socketio"), "redis", v("redis"))'
done

# ---- the tests -------------------------------------------------------------------------------
if [ "$#" -gt 0 ]; then
  TEST_FILES=("$@")
fi
# One test file at a time (they measure and kill things).
node_suite cluster 15 "$HERE" "${TEST_FILES[@]}"
