#!/usr/bin/env bash
# socketlet's benchmark against Node socket.io, socketioxide and python-socketio.
#
#   bench/run.sh [--smoke] [--only NAME[,NAME...]] [--out DIR] [--reps N]
#
# Builds each server (release for the Rust ones), then for each repetition, each server and
# each scenario cell: starts the server fresh on a free port in 10000-30000 (open-files limit
# raised), runs the load generator (bench/, `socketlet-bench`) against it, which reads the
# server's CPU time and RSS from /proc around the measured phase, and stops the server.
# Finally writes DIR/REPORT.md and SVG plots from the JSON results in DIR/raw/.
#
#   --smoke   tiny numbers, socketlet only, debug build; asserts every scenario completes
#             (not how fast), prints "N passed, M failed" and exits non-zero on a failure.
#             Results go to bench/results/smoke unless --out is given.
#   --only    server names (socketlet, socketioxide, node, python) and/or cell names
#             (idle-ws-1k, echo-rate, ...): run only those. Other results already in DIR/raw
#             are kept, so the report can be refreshed one cell at a time.
#   --out     where the report goes (default bench/report).
#   --reps    repetitions of each cell (default 3; 1 in smoke mode).
#
# Needs: cargo, node + npm (Node peer), python3 with venv (Python peer), and for 10k
# connections an open-files limit of 65536 (root raises it; otherwise the hard limit is used).
set -euo pipefail

BENCH="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)"
ROOT="$(cd "$BENCH/.." && pwd -P)"
TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
PEERS="$BENCH/peers"
VENV="$PEERS/python/.venv"
NOFILE=65536
ALL_SERVERS=(socketlet socketioxide node python)

SMOKE=0
ONLY=""
OUT=""
REPS=""
ARGS_TEXT="bench/run.sh${*:+ $*}"
while [ $# -gt 0 ]; do
  case "$1" in
    --smoke) SMOKE=1 ;;
    --only) ONLY="${2:?--only needs a value}"; shift ;;
    --only=*) ONLY="${1#--only=}" ;;
    --out) OUT="${2:?--out needs a value}"; shift ;;
    --out=*) OUT="${1#--out=}" ;;
    --reps) REPS="${2:?--reps needs a value}"; shift ;;
    --reps=*) REPS="${1#--reps=}" ;;
    -h|--help) sed -n '2,24p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "unknown argument: $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done

# Scenario cells: name and generator arguments.
if [ "$SMOKE" = 1 ]; then
  PROFILE=debug
  REPS="${REPS:-1}"
  OUT="${OUT:-$BENCH/results/smoke}"
  SERVERS=(socketlet)
  CELLS=(
    "idle-ws|idle --transport ws --conns 20 --warmup 5 --settle-ms 200"
    "idle-polling|idle --transport polling --conns 20 --warmup 5 --settle-ms 200"
    "connect-ws|connect --kind ws --count 20"
    "connect-polling|connect --kind polling --count 50 --in-flight 8"
    "connect-upgrade|connect --kind upgrade --count 20"
    "echo-max|echo --mode max --clients 20 --messages 10"
    "echo-rate|echo --mode rate --clients 20 --rate 10 --secs 1"
    "broadcast|broadcast --clients 20 --rounds 5"
    "polling-echo|polling --clients 4 --iterations 20"
  )
  MAX_SECS=20
  BUDGET=()
else
  PROFILE=release
  REPS="${REPS:-3}"
  OUT="${OUT:-$BENCH/report}"
  SERVERS=("${ALL_SERVERS[@]}")
  CELLS=(
    "idle-ws-1k|idle --transport ws --conns 1000"
    "idle-ws-10k|idle --transport ws --conns 10000"
    "idle-polling-1k|idle --transport polling --conns 1000"
    "idle-polling-10k|idle --transport polling --conns 10000"
    "connect-ws|connect --kind ws --count 10000"
    "connect-polling|connect --kind polling --count 50000"
    "connect-upgrade|connect --kind upgrade --count 5000"
    "echo-max|echo --mode max --clients 1000 --messages 100"
    "echo-rate|echo --mode rate --clients 1000 --rate 10 --secs 8"
    "broadcast-1k|broadcast --clients 1000 --rounds 100"
    "broadcast-10k|broadcast --clients 10000 --rounds 20"
    "polling-echo|polling --clients 64 --iterations 500"
  )
  MAX_SECS=60
  # Measured phases start no new operation after this (slow servers do fewer operations).
  BUDGET=(--budget-secs 5)
fi

# --only: servers and/or cells.
if [ -n "$ONLY" ]; then
  sel_servers=()
  sel_cells=()
  IFS=',' read -r -a names <<<"$ONLY"
  for n in "${names[@]}"; do
    found=0
    for s in "${SERVERS[@]}"; do [ "$s" = "$n" ] && sel_servers+=("$s") && found=1; done
    for c in "${CELLS[@]}"; do [ "${c%%|*}" = "$n" ] && sel_cells+=("$c") && found=1; done
    [ "$found" = 1 ] || { echo "--only: no server or cell named $n" >&2; exit 2; }
  done
  [ ${#sel_servers[@]} -gt 0 ] && SERVERS=("${sel_servers[@]}")
  [ ${#sel_cells[@]} -gt 0 ] && CELLS=("${sel_cells[@]}")
fi

RAW="$OUT/raw"
LOGS="$OUT/raw/logs"
GEN="$TARGET_DIR/$PROFILE/socketlet-bench"

log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*"; }
die() { printf 'ERROR: %s\n' "$*" >&2; exit 1; }

# ---------------------------------------------------------------------------------------------
# Build.
build() {
  cd "$ROOT"
  if [ "$SMOKE" = 1 ]; then
    log "building socketlet-bench and bench_server (debug)"
    cargo build --quiet -p socketlet-bench --bin socketlet-bench -p socketlet --example bench_server
    return
  fi
  log "building socketlet-bench and bench_server (release)"
  cargo build --quiet --release -p socketlet-bench --bin socketlet-bench -p socketlet --example bench_server
  local s
  for s in "${SERVERS[@]}"; do
    case "$s" in
      socketioxide)
        log "building the socketioxide peer (release, locked)"
        cargo build --quiet --release --locked --manifest-path "$PEERS/socketioxide/Cargo.toml"
        ;;
      node)
        command -v node >/dev/null || die "node is needed for the Node peer"
        local want have=""
        want="$(sha256sum "$PEERS/node/package-lock.json" | cut -d' ' -f1)"
        [ -f "$PEERS/node/node_modules/.bench-stamp" ] && have="$(cat "$PEERS/node/node_modules/.bench-stamp")"
        if [ "$want" != "$have" ]; then
          log "installing the Node peer (npm ci)"
          (cd "$PEERS/node" && npm ci --no-audit --no-fund --loglevel=error)
          echo "$want" >"$PEERS/node/node_modules/.bench-stamp"
        fi
        ;;
      python)
        local want have=""
        want="$(sha256sum "$PEERS/python/requirements.txt" | cut -d' ' -f1)"
        [ -f "$VENV/.bench-stamp" ] && have="$(cat "$VENV/.bench-stamp")"
        if [ "$want" != "$have" ] || [ ! -x "$VENV/bin/python" ]; then
          log "creating the Python peer's venv"
          rm -rf "$VENV"
          python3 -m venv "$VENV"
          "$VENV/bin/pip" install --quiet --disable-pip-version-check -r "$PEERS/python/requirements.txt"
          echo "$want" >"$VENV/.bench-stamp"
        fi
        ;;
    esac
  done
}

version_of() {
  case "$1" in
    socketlet)
      # Dirty means changed sources: this script's own results (tracked under bench/report)
      # are rewritten by every run and do not count.
      local rev
      rev="$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)"
      if [ -n "$(git -C "$ROOT" status --porcelain --untracked-files=no -- . \
        ':(exclude)bench/report' ':(exclude)bench/results' 2>/dev/null)" ]; then
        rev="$rev-dirty"
      fi
      echo "socketlet at $rev, crates/socketlet/examples/bench_server.rs, $PROFILE build, 1 tokio worker (current_thread)"
      ;;
    socketioxide)
      local v
      v="$(awk '/^name = "socketioxide"$/{getline; gsub(/[^0-9.]/,""); print; exit}' "$PEERS/socketioxide/Cargo.lock")"
      echo "socketioxide $v (crates.io, bench/peers/socketioxide), release build, 1 tokio worker (current_thread)"
      ;;
    node)
      (cd "$PEERS/node" && node -e '
        const fs = require("node:fs");
        const v = (...dirs) => {
          for (const d of dirs) {
            try { return JSON.parse(fs.readFileSync(d + "/package.json", "utf8")).version; } catch {}
          }
          return "?";
        };
        const m = "node_modules/";
        console.log(`socket.io ${v(m + "socket.io")} (engine.io ${v(m + "engine.io")}, ws ${v(m + "engine.io/" + m + "ws", m + "ws")}), Node ${process.version}, bench/peers/node`);')
      ;;
    python)
      "$VENV/bin/python" - <<'PY'
import sys, importlib.metadata as m
v = m.version
print("python-socketio %s (python-engineio %s, aiohttp %s), Python %s, bench/peers/python"
      % (v("python-socketio"), v("python-engineio"), v("aiohttp"), sys.version.split()[0]))
PY
      ;;
  esac
}

# ---------------------------------------------------------------------------------------------
# Servers.
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
PORT=""
start_server() { # name logfile
  local name="$1" logfile="$2" cmd
  PORT="$(free_port)"
  case "$name" in
    socketlet) cmd=("$TARGET_DIR/$PROFILE/examples/bench_server" --port "$PORT") ;;
    socketioxide) cmd=("$PEERS/socketioxide/target/release/socketioxide-bench-server" --port "$PORT") ;;
    node) cmd=(node "$PEERS/node/server.js" --port "$PORT") ;;
    python) cmd=("$VENV/bin/python" "$PEERS/python/server.py" --port "$PORT") ;;
    *) die "unknown server $name" ;;
  esac
  # The subshell raises its open-files limit and becomes the server (exec): $! is its pid.
  ( raise_nofile; exec "${cmd[@]}" ) >"$logfile" 2>&1 &
  SERVER_PID=$!
  local i
  for i in $(seq 1 200); do
    grep -q '^LISTENING' "$logfile" 2>/dev/null && return 0
    kill -0 "$SERVER_PID" 2>/dev/null || { cat "$logfile" >&2; die "$name exited at start"; }
    sleep 0.1
  done
  cat "$logfile" >&2
  die "$name did not print LISTENING within 20 s"
}

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

# Waits (up to 2 minutes) until other processes use less than a third of the machine.
wait_quiet() {
  local i busy
  for i in $(seq 1 24); do
    busy="$(awk 'NR==1{print $2+$3+$4+$7+$8+$9, $5+$6}' /proc/stat)"
    sleep 1
    busy="$(awk -v a="$busy" 'NR==1{split(a,o," "); b=$2+$3+$4+$7+$8+$9-o[1]; i=$5+$6-o[2]; print int(100*b/(b+i+0.0001))}' /proc/stat)"
    [ "$busy" -lt 33 ] && return 0
    [ "$i" = 1 ] && log "the machine is busy ($busy %); waiting for it to calm down"
    sleep 4
  done
  log "still busy ($busy %); going on (the report flags noisy runs)"
}

# ---------------------------------------------------------------------------------------------
build
[ -x "$GEN" ] || die "missing $GEN"
mkdir -p "$RAW" "$LOGS"
if [ -z "$ONLY" ]; then
  rm -rf "${RAW:?}"/*
  mkdir -p "$LOGS"
fi
rm -f "$OUT"/*.svg
for s in "${SERVERS[@]}"; do
  mkdir -p "$RAW/$s"
  version_of "$s" >"$RAW/$s/version.txt"
  for c in "${CELLS[@]}"; do rm -f "$RAW/$s/${c%%|*}"-*.json; done
done

PASSED=0
FAILED=0
FAILURES=()
START=$(date +%s)
raise_nofile
log "results in $RAW; ${#SERVERS[@]} server(s), ${#CELLS[@]} cell(s), $REPS repetition(s)"
for rep in $(seq 1 "$REPS"); do
  [ "$SMOKE" = 1 ] || wait_quiet
  for s in "${SERVERS[@]}"; do
    for c in "${CELLS[@]}"; do
      cell="${c%%|*}"
      read -r -a gen_args <<<"${c#*|}"
      logfile="$LOGS/$s-$cell-$rep.log"
      start_server "$s" "$logfile"
      sleep 0.3
      rc=0
      timeout $((MAX_SECS + 90)) "$GEN" "${gen_args[@]}" \
        --addr "127.0.0.1:$PORT" --pid "$SERVER_PID" --server "$s" --cell "$cell" \
        --max-secs "$MAX_SECS" ${BUDGET[@]+"${BUDGET[@]}"} --out "$RAW/$s/$cell-$rep.json" || rc=$?
      if ! kill -0 "$SERVER_PID" 2>/dev/null; then
        log "$s exited during $cell (see $logfile)"
        [ "$rc" = 0 ] && rc=1
      fi
      stop_server
      [ -s "$logfile" ] && grep -v '^LISTENING' "$logfile" | grep -q . || rm -f "$logfile"
      if [ "$rc" = 0 ]; then
        PASSED=$((PASSED + 1))
      else
        FAILED=$((FAILED + 1))
        FAILURES+=("$s $cell (run $rep, exit $rc)")
        [ -f "$RAW/$s/$cell-$rep.json" ] || printf '{"scenario":"%s","cell":"%s","server":"%s","ok":false,"errors":["the generator exited with %s and wrote no result"],"params":{},"metrics":{}}\n' \
          "${gen_args[0]}" "$cell" "$s" "$rc" >"$RAW/$s/$cell-$rep.json"
      fi
    done
  done
done

log "writing the report"
if "$GEN" report --raw "$RAW" --out "$OUT" --mode "$([ "$SMOKE" = 1 ] && echo smoke || echo full)" \
  --date "$(date -u '+%Y-%m-%d %H:%M UTC')" --command "$ARGS_TEXT"; then
  PASSED=$((PASSED + 1))
else
  FAILED=$((FAILED + 1))
  FAILURES+=("report")
fi
log "done in $(( $(date +%s) - START )) s: $OUT/REPORT.md"
for f in ${FAILURES[@]+"${FAILURES[@]}"}; do echo "FAILED: $f"; done
echo "$PASSED passed, $FAILED failed"
[ "$FAILED" = 0 ]
