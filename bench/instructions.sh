#!/usr/bin/env bash
# Userland instructions per operation of socketlet's bench server, counted by valgrind's
# callgrind: repeatable to a fraction of a per cent, where CPU time on this machine moves by
# 10-35 % between runs. For small differences (issue 24: metrics must cost under 2 %).
#
#   bench/instructions.sh [--variant "ARGS"]... [--socketioxide] [--clients N] [--echos N] [--rounds N]
#
# For each variant (bench_server arguments; default: "" and "--metrics") it runs the server
# under callgrind twice per scenario, a short and a long run of the same shape, and divides
# the difference of their instruction counts by the difference of their operations: the
# start-up and the connections cancel out. Scenarios: echo with ack (N clients x echos),
# broadcast (N clients x rounds; per delivery), and long-polling echo (16 clients, per HTTP
# request; the generator counts the requests). Kernel work (most of the CPU per operation) is
# not counted, so a relative difference here bounds the relative difference of the whole.
# Needs valgrind; builds the release generator and bench_server. Takes 3-6 minutes.
# BENCH_SERVER=<path> counts another build of bench_server instead (an older commit's, built
# with its own CARGO_TARGET_DIR), against the same generator: a before/after comparison.
# --socketioxide adds a row for the harness's socketioxide peer (bench/peers/socketioxide, built
# from its lockfile into its own target directory; axum, one worker), counted the same way:
# where CPU time puts the two within the noise, this says how much userland work each does.
set -euo pipefail

BENCH="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)"
ROOT="$(cd "$BENCH/.." && pwd -P)"
TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
GEN="$TARGET_DIR/release/socketlet-bench"
SERVER="${BENCH_SERVER:-$TARGET_DIR/release/examples/bench_server}"
VARIANTS=()
CLIENTS=100
ECHOS=100
ROUNDS=50
PEER=0
while [ $# -gt 0 ]; do
  case "$1" in
    --variant) VARIANTS+=("${2?--variant needs a value}"); shift ;;
    --clients) CLIENTS="${2:?}"; shift ;;
    --echos) ECHOS="${2:?}"; shift ;;
    --rounds) ROUNDS="${2:?}"; shift ;;
    --socketioxide) PEER=1 ;;
    -h|--help) sed -n '2,20p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "unknown argument: $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done
[ ${#VARIANTS[@]} -gt 0 ] || VARIANTS=("" "--metrics")
command -v valgrind >/dev/null || { echo "valgrind is needed (apt-get install valgrind)" >&2; exit 1; }
(cd "$ROOT" && cargo build --quiet --release -p socketlet-bench --bin socketlet-bench -p socketlet --example bench_server)
SIOXIDE="$BENCH/peers/socketioxide/target/release/socketioxide-bench-server"
if [ "$PEER" = 1 ]; then
  cargo build --quiet --release --locked --manifest-path "$BENCH/peers/socketioxide/Cargo.toml" \
    --target-dir "$BENCH/peers/socketioxide/target"
fi
# The row of the peer among the variants (not a set of bench_server arguments).
PEER_ROW="@socketioxide"

WORK="$(mktemp -d)"
SERVER_PID=""
cleanup() {
  [ -n "$SERVER_PID" ] && kill -KILL "$SERVER_PID" 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

# Instructions of one server run under callgrind while the generator runs `args...`.
# The variant is the server's arguments, or $PEER_ROW for the peer.
count() { # variant args...
  local variant="$1" port i server="$SERVER"
  shift
  if [ "$variant" = "$PEER_ROW" ]; then
    server="$SIOXIDE"
    variant=""
  fi
  port=$((10000 + RANDOM % 20001))
  read -r -a extra <<<"$variant"
  valgrind --tool=callgrind --callgrind-out-file="$WORK/out" \
    "$server" --port "$port" ${extra[@]+"${extra[@]}"} >"$WORK/server.log" 2>&1 &
  SERVER_PID=$!
  for i in $(seq 1 300); do
    grep -q '^LISTENING' "$WORK/server.log" 2>/dev/null && break
    sleep 0.1
  done
  grep -q '^LISTENING' "$WORK/server.log" || { cat "$WORK/server.log" >&2; exit 1; }
  timeout 600 "$GEN" "$@" --addr "127.0.0.1:$port" --op-timeout 60 --max-secs 500 >"$WORK/gen.log" 2>&1 ||
    { cat "$WORK/gen.log" >&2; exit 1; }
  kill -TERM "$SERVER_PID"
  wait "$SERVER_PID" 2>/dev/null || true
  SERVER_PID=""
  awk '/^(summary|totals):/ {print $2; exit}' "$WORK/out"
}

# The requests the generator's last run counted.
requests() {
  awk '{ for (i = 1; i <= NF; i++) if ($i ~ /^count=/) { sub(/^count=/, "", $i); printf "%d", $i } }' "$WORK/gen.log"
}

printf '| server arguments | instructions per echo with ack | instructions per broadcast delivery | instructions per polling request |\n| --- | --- | --- | --- |\n'
[ "$PEER" = 0 ] || VARIANTS+=("$PEER_ROW")
for v in "${VARIANTS[@]}"; do
  a=$(count "$v" echo --mode max --clients "$CLIENTS" --messages 10)
  b=$(count "$v" echo --mode max --clients "$CLIENTS" --messages $((10 + ECHOS)))
  per_echo=$(( (b - a) / (CLIENTS * ECHOS) ))
  # The sender gets its own copy: every round is CLIENTS deliveries.
  c=$(count "$v" broadcast --clients "$CLIENTS" --rounds 10 --pause-ms 0)
  d=$(count "$v" broadcast --clients "$CLIENTS" --rounds $((10 + ROUNDS)) --pause-ms 0)
  per_delivery=$(( (d - c) / (CLIENTS * ROUNDS) ))
  e=$(count "$v" polling --clients 16 --iterations 20)
  re=$(requests)
  f=$(count "$v" polling --clients 16 --iterations $((20 + ECHOS * 5)))
  rf=$(requests)
  per_request=$(( (f - e) / (rf - re) ))
  label="\`${v:-(none)}\`"
  [ "$v" = "$PEER_ROW" ] && label="socketioxide (the peer, not bench_server)"
  printf '| %s | %s | %s | %s |\n' "$label" "$per_echo" "$per_delivery" "$per_request"
done
