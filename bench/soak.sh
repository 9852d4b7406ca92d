#!/usr/bin/env bash
# socketlet's soak: many clients for a long time, with echos and broadcasts (not part of the test
# command; about 12 minutes at the default size).
#
#   bench/soak.sh [--clients N] [--secs S] [--echo-rate R] [--broadcast-ms B]
#                 [--sample-secs N] [--warmup-secs W] [--max-drift-pct P] [--out DIR]
#
# Builds the release load generator and crates/socketlet/examples/bench_server.rs, starts the
# server on a free port in 10000-30000 with the open-files limit raised, and runs the generator's
# `soak` scenario against it: N WebSocket clients (default 10,000) connected for S seconds
# (default 600), each sending R echos with ack a second (default 1), plus one client
# broadcasting to all of them every B ms (default 1000). Every N seconds (default 10) it records
# the server's RSS and CPU, the window's echo latency p50/p99, broadcasts, deliveries and errors.
# The run fails on any error (connection lost, ack or delivery missing) or an RSS drift above P %
# (default 5) from the end of the warm-up (default 60 s) to the end.
#
# Writes DIR/soak/soak.json (the result with every window), DIR/soak/server.log (if the server
# said anything), DIR/soak/rss.svg and DIR/soak/latency.svg, and DIR/SOAK.md. DIR defaults to
# bench/report. A shorter run: bench/soak.sh --clients 1000 --secs 60 --warmup-secs 20 --sample-secs 5
#
# Needs: cargo, and an open-files limit above the client count (10,000 clients: 10,001
# connections on each side; the limit is raised to the hard limit, or 65536 where allowed).
set -euo pipefail

BENCH="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)"
ROOT="$(cd "$BENCH/.." && pwd -P)"
TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
NOFILE=65536

CLIENTS=10000
SECS=600
ECHO_RATE=1
BROADCAST_MS=1000
SAMPLE_SECS=10
WARMUP_SECS=60
MAX_DRIFT=5
OUT="$BENCH/report"
ARGS_TEXT="bench/soak.sh${*:+ $*}"
while [ $# -gt 0 ]; do
  case "$1" in
    --clients) CLIENTS="${2:?}"; shift ;;
    --secs) SECS="${2:?}"; shift ;;
    --echo-rate) ECHO_RATE="${2:?}"; shift ;;
    --broadcast-ms) BROADCAST_MS="${2:?}"; shift ;;
    --sample-secs) SAMPLE_SECS="${2:?}"; shift ;;
    --warmup-secs) WARMUP_SECS="${2:?}"; shift ;;
    --max-drift-pct) MAX_DRIFT="${2:?}"; shift ;;
    --out) OUT="${2:?}"; shift ;;
    -h|--help) sed -n '2,23p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "unknown argument: $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done

GEN="$TARGET_DIR/release/socketlet-bench"
SERVER="$TARGET_DIR/release/examples/bench_server"
RAW="$OUT/soak"

log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*"; }
die() { printf 'ERROR: %s\n' "$*" >&2; exit 1; }

raise_nofile() {
  ulimit -n "$NOFILE" 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
}

free_port() {
  local p i
  for i in $(seq 1 200); do
    p=$((10000 + RANDOM % 20001))
    if command -v ss >/dev/null; then
      [ -z "$(ss -Htan "sport = :$p" 2>/dev/null)" ] && { echo "$p"; return; }
    else
      echo "$p"; return
    fi
  done
  die "no free port in 10000-30000"
}

SERVER_PID=""
stop_server() {
  [ -n "$SERVER_PID" ] || return 0
  kill -TERM "$SERVER_PID" 2>/dev/null || true
  local i
  for i in $(seq 1 50); do
    kill -0 "$SERVER_PID" 2>/dev/null || break
    sleep 0.1
  done
  kill -KILL "$SERVER_PID" 2>/dev/null || true
  wait "$SERVER_PID" 2>/dev/null || true
  SERVER_PID=""
}
trap stop_server EXIT
trap 'exit 130' INT TERM

cd "$ROOT"
log "building socketlet-bench and bench_server (release)"
cargo build --quiet --release -p socketlet-bench --bin socketlet-bench -p socketlet --example bench_server
[ -x "$GEN" ] && [ -x "$SERVER" ] || die "missing $GEN or $SERVER"

raise_nofile
need=$((CLIENTS + 200))
[ "$(ulimit -n)" = unlimited ] || [ "$(ulimit -n)" -ge "$need" ] \
  || die "the open-files limit is $(ulimit -n); $CLIENTS clients need $need (ulimit -n)"

rev="$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)"
if [ -n "$(git -C "$ROOT" status --porcelain --untracked-files=no -- . ':(exclude)bench/report' ':(exclude)bench/results' 2>/dev/null)" ]; then
  rev="$rev-dirty"
fi
VERSION="socketlet at $rev, crates/socketlet/examples/bench_server.rs, release build, 1 tokio worker (current_thread)"

mkdir -p "$RAW"
rm -f "$RAW/soak.json" "$RAW/server.log" "$RAW/rss.svg" "$RAW/latency.svg"
PORT="$(free_port)"
( raise_nofile; exec "$SERVER" --port "$PORT" --log warn ) >"$RAW/server.log" 2>&1 &
SERVER_PID=$!
for _ in $(seq 1 200); do
  grep -q '^LISTENING' "$RAW/server.log" 2>/dev/null && break
  kill -0 "$SERVER_PID" 2>/dev/null || { cat "$RAW/server.log" >&2; die "bench_server exited at start"; }
  sleep 0.1
done
grep -q '^LISTENING' "$RAW/server.log" || die "bench_server did not print LISTENING within 20 s"
log "bench_server (pid $SERVER_PID) on 127.0.0.1:$PORT; $CLIENTS clients for $SECS s"

START=$(date +%s)
DATE="$(date -u '+%Y-%m-%d %H:%M UTC')"
rc=0
# --max-secs: time to connect, the traffic, and the last acks.
timeout $((SECS + 900)) "$GEN" soak --addr "127.0.0.1:$PORT" --pid "$SERVER_PID" --server socketlet --cell soak \
  --clients "$CLIENTS" --secs "$SECS" --echo-rate "$ECHO_RATE" --broadcast-ms "$BROADCAST_MS" \
  --sample-secs "$SAMPLE_SECS" --warmup-secs "$WARMUP_SECS" --max-drift-pct "$MAX_DRIFT" \
  --max-secs $((SECS + 600)) --out "$RAW/soak.json" || rc=$?
kill -0 "$SERVER_PID" 2>/dev/null || { log "bench_server exited during the soak (see $RAW/server.log)"; [ "$rc" = 0 ] && rc=1; }
stop_server
grep -v '^LISTENING' "$RAW/server.log" | grep -q . || rm -f "$RAW/server.log"

[ -s "$RAW/soak.json" ] || die "the generator wrote no result (exit $rc)"
"$GEN" soak-report --result "$RAW/soak.json" --out "$OUT" --server-version "$VERSION" \
  --date "$DATE" --command "$ARGS_TEXT"
log "done in $(( $(date +%s) - START )) s: $OUT/SOAK.md"
[ "$rc" = 0 ] || { echo "the soak FAILED (exit $rc): see $OUT/SOAK.md"; exit "$rc"; }
echo "the soak passed"
