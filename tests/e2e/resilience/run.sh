#!/usr/bin/env bash
# End-to-end resilience suite: the `socketlet` binary against hostile clients written with Node's
# standard library alone (raw HTTP/1.1 and WebSocket over `net`: no npm package, no socket.io
# client), its resident memory read from /proc/<pid>/status. Each test states its bounds, with
# what was measured, in its file:
#   bodies.test.mjs      slow-loris POSTs (1,000 x 100 KB that never finish; --max-body-time-ms
#                        2000) and endless chunked bodies: memory under a bound, 408/503/413
#   heartbeats.test.mjs  ping and pong floods (Engine.IO v4 and v3, WebSocket ping/pong frames,
#                        v3 polling): sessions closed where they must be, memory flat
#   room.test.mjs        clients that never read in a busy room: disconnected at the outbox
#                        bound, the readers' p99 within a factor of the idle baseline
#   abandoned.test.mjs   polling sessions and upgrades abandoned half-way (short heartbeats): gone
#                        at the timeouts, memory back to its baseline
#   jobs.test.mjs        a flood of VM jobs (open_vms): refused beyond the bounds, in the ack
# Every test starts its own server on a free port of 127.0.0.1 and stops it; the logs are
# tests/e2e/.artifacts/resilience-*.log. The whole suite takes about a minute.
#
# Works from any directory. Environment:
#   SOCKETLET_BIN  the socketlet binary (default <repo>/target/debug/socketlet, built with
#                  `cargo build -p socketlet-cli`)
# Arguments: test files to run (default: all of them).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)"
ROOT="$(cd "$HERE/../../.." && pwd -P)"
# shellcheck source=scripts/lib.sh
. "$ROOT/scripts/lib.sh"
TEST_FILES=(bodies.test.mjs heartbeats.test.mjs room.test.mjs abandoned.test.mjs jobs.test.mjs)
# Hard limit of the whole run, in seconds (each test also has its own, much shorter, timeouts).
SUITE_LIMIT=300

e2e_binaries socketlet
need_node
# Thousands of connections at once, on both ends (the servers inherit the limit).
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
[ "$(ulimit -n)" = unlimited ] || [ "$(ulimit -n)" -ge 4096 ] \
  || die "the open-files limit is $(ulimit -n); this suite needs 4096 (ulimit -n 4096)"

if [ "$#" -gt 0 ]; then
  TEST_FILES=("$@")
fi
# One test file at a time: they measure the server's memory and latency.
node_suite resilience 20 "$HERE" "${TEST_FILES[@]}"
