#!/usr/bin/env bash
# socketlet's benchmark against Node socket.io, socketioxide and python-socketio.
#
#   bench/run.sh [--smoke] [--only NAME[,NAME...]] [--out DIR] [--reps N]
#
# Builds each server (release for the Rust ones), then for each repetition, each scenario cell
# and each server of that cell: starts the server fresh on a free port in 10000-30000 (open-files
# limit raised; a cluster is three nodes on a redis-server of its own), runs the load generator
# (bench/, `socketlet-bench`) against it, which reads the server's CPU time and RSS from /proc
# around the measured phase, and stops the server. The servers of one cell run one after the
# other, so that the figures compared are taken close in time. Finally writes DIR/REPORT.md and
# SVG plots from the JSON results in DIR/raw/.
#
#   --smoke   tiny numbers, socketlet only, debug build; asserts every scenario completes
#             (not how fast), prints "N passed, M failed" and exits non-zero on a failure.
#             Results go to bench/results/smoke unless --out is given.
#   --only    server names (socketlet, socketioxide, node, python, socketlet-cluster, ...)
#             and/or cell names (idle-ws-1k, echo-rate, cluster-all, ...): run only those.
#             Other results already in DIR/raw are kept, so the report can be refreshed one
#             cell at a time.
#   --out     where the report goes (default bench/report).
#   --reps    repetitions of each cell (default 3; 1 in smoke mode).
#
# Before each repetition it waits (up to 2 minutes) for the machine to be quiet;
# BENCH_WAIT_QUIET=0 skips that (quick checks on a busy machine).
#
# Needs: cargo, node + npm (Node peers), python3 with venv (Python peers), redis-server (the
# cluster cells), and for 10k connections an open-files limit of 65536 (root raises it;
# otherwise the hard limit is used).
set -euo pipefail

BENCH="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)"
ROOT="$(cd "$BENCH/.." && pwd -P)"
TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
PEERS="$BENCH/peers"
VENV="$PEERS/python/.venv"
VENV4="$PEERS/python4/.venv"
NOFILE=65536
# The servers of the main tables (and their order).
MAIN="socketlet,socketioxide,node,python"

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
    -h|--help) sed -n '2,30p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "unknown argument: $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done

# Scenario cells: name | servers (comma-separated; @main: the four of the main tables) |
# generator arguments. `--emitter=@python` and `--emitter=@node` stand for the emitter commands
# (they need the cell's Redis). A cell's own --budget-secs replaces the default one.
if [ "$SMOKE" = 1 ]; then
  PROFILE=debug
  REPS="${REPS:-1}"
  OUT="${OUT:-$BENCH/results/smoke}"
  CELLS=(
    "idle-ws|socketlet|idle --transport ws --conns 20 --warmup 5 --settle-ms 200"
    "idle-polling|socketlet|idle --transport polling --conns 20 --warmup 5 --settle-ms 200"
    "connect-ws|socketlet|connect --kind ws --count 20"
    "connect-polling|socketlet|connect --kind polling --count 50 --in-flight 8"
    "connect-upgrade|socketlet|connect --kind upgrade --count 20"
    "echo-max|socketlet|echo --mode max --clients 20 --messages 10"
    "echo-rate|socketlet|echo --mode rate --clients 20 --rate 10 --secs 1"
    "broadcast|socketlet|broadcast --clients 20 --rounds 5"
    "polling-echo|socketlet|polling --clients 4 --iterations 20"
    "story-idle-ws|socketlet|idle --transport ws --conns 20 --warmup 5 --settle-ms 200 --eio 3"
    "story-connect-upgrade|socketlet|connect --kind upgrade --count 20 --eio 3"
    "story-echo-max|socketlet|echo --mode max --clients 20 --messages 10 --eio 3"
    "story-broadcast|socketlet|broadcast --clients 20 --rounds 5 --eio 3"
    "metrics-echo-max|socketlet-metrics|echo --mode max --clients 20 --messages 10"
    "recovery-echo-max|socketlet-recovery|echo --mode max --clients 20 --messages 10"
    "recovery-broadcast|socketlet-recovery|broadcast --clients 20 --rounds 5"
    "recovery-sessions|socketlet,socketlet-recovery|recovery --measure sessions --conns 20 --warmup 5 --settle-ms 200 --verify 5"
    "recovery-packets|socketlet-recovery|recovery --measure packets --conns 20 --packets 50 --settle-ms 200 --verify 2"
    "cluster-all|socketlet-cluster|cluster --clients 30 --rounds 5 --to all"
    "cluster-room|socketlet-cluster-sharded|cluster --clients 30 --room-clients 10 --rounds 5 --to room --in-flight 2"
    "binary-broadcast|socketlet-binary|broadcast --clients 20 --rounds 5"
    "hook-echo-max|socketlet-binary-hook|echo --mode max --clients 10 --messages 10"
    "api-emit|socketlet-binary-api|api --clients 10 --conns 2 --emits 50"
    "alloc-slow-post|socketlet-glibc|slow-post --count 20 --declared 10000 --sent 9000 --idle-secs 0.5"
  )
  MAX_SECS=20
  BUDGET=()
else
  PROFILE=release
  REPS="${REPS:-3}"
  OUT="${OUT:-$BENCH/report}"
  CELLS=(
    # The main tables (issue 5), every peer.
    "idle-ws-1k|@main|idle --transport ws --conns 1000"
    "idle-ws-10k|@main|idle --transport ws --conns 10000"
    "idle-polling-1k|@main|idle --transport polling --conns 1000"
    "idle-polling-10k|@main|idle --transport polling --conns 10000"
    "connect-ws|@main|connect --kind ws --count 10000"
    "connect-polling|@main|connect --kind polling --count 50000"
    "connect-upgrade|@main|connect --kind upgrade --count 5000"
    # socketioxide's other documented setups run in this cell too (see version.txt).
    "echo-max|@main,socketioxide-hyper,socketioxide-current-thread|echo --mode max --clients 1000 --messages 100"
    "echo-rate|@main|echo --mode rate --clients 1000 --rate 10 --secs 8"
    "broadcast-1k|@main|broadcast --clients 1000 --rounds 100"
    "broadcast-10k|@main|broadcast --clients 10000 --rounds 20 --pause-ms 250"
    "polling-echo|@main|polling --clients 64 --iterations 500"
    # Issue 25: the last delivery of a broadcast to 10k over many rounds (p50, p99).
    "broadcast-10k-tail|socketlet,socketioxide,node|broadcast --clients 10000 --rounds 60 --pause-ms 250 --budget-secs 35"
    # Issue 25: the story's stack (python-socketio 4.5.1 on eventlet under gunicorn), Engine.IO v3.
    "story-idle-ws-1k|socketlet,python4|idle --transport ws --conns 1000 --eio 3"
    "story-connect-ws|socketlet,python4|connect --kind ws --count 1000 --eio 3"
    "story-connect-upgrade|socketlet,python4|connect --kind upgrade --count 1000 --eio 3"
    "story-echo-max|socketlet,python4|echo --mode max --clients 1000 --messages 100 --eio 3"
    "story-broadcast-1k|socketlet,python4|broadcast --clients 1000 --rounds 50 --eio 3"
    # Issue 25: the binary users run (all cores), and two workers each.
    "cores-echo-max|socketlet-binary,socketlet,socketlet-2w,socketioxide-2w|echo --mode max --clients 1000 --messages 100"
    "cores-broadcast-1k|socketlet-binary,socketlet,socketlet-2w,socketioxide-2w|broadcast --clients 1000 --rounds 100"
    "cores-broadcast-10k|socketlet-binary,socketlet,socketlet-2w,socketioxide-2w|broadcast --clients 10000 --rounds 20"
    # Issue 25: three nodes on one Redis.
    "cluster-all|socketlet-cluster,socketlet-cluster-sharded,socketioxide-cluster,node-cluster|cluster --clients 999 --to all --rounds 1000 --in-flight 1"
    "cluster-room|socketlet-cluster,socketlet-cluster-sharded,socketioxide-cluster,node-cluster|cluster --clients 999 --to room --room-clients 300 --rounds 3000 --in-flight 1"
    "cluster-all-pipelined|socketlet-cluster,socketlet-cluster-sharded,socketioxide-cluster,node-cluster|cluster --clients 999 --to all --rounds 1000 --in-flight 4"
    "cluster-emit-node|socketlet-cluster,node-cluster|cluster --clients 999 --to room --rounds 1000 --in-flight 1 --emitter=@node"
    "cluster-emit-python|socketlet-cluster|cluster --clients 999 --to room --rounds 1000 --in-flight 1 --emitter=@python"
    # Issue 24: what socketlet-ops' metrics cost.
    "metrics-echo-max|socketlet,socketlet-metrics|echo --mode max --clients 1000 --messages 100"
    "metrics-broadcast-1k|socketlet,socketlet-metrics|broadcast --clients 1000 --rounds 100"
    "metrics-broadcast-10k|socketlet,socketlet-metrics|broadcast --clients 10000 --rounds 20"
    # Issue 23: what connection state recovery costs (bench_server --recovery-secs 120, Node's
    # defaults otherwise; RecoveryConfig keeps at most 10,000 packets, 64 MiB, 100,000 sessions).
    "recovery-echo-max|socketlet,socketlet-recovery|echo --mode max --clients 1000 --messages 100"
    "recovery-broadcast-1k|socketlet,socketlet-recovery|broadcast --clients 1000 --rounds 100"
    "recovery-sessions-1k|socketlet,socketlet-recovery|recovery --measure sessions --conns 1000 --cycles 2"
    "recovery-sessions-10k|socketlet,socketlet-recovery|recovery --measure sessions --conns 10000 --cycles 2"
    # 100 kept sessions: the memory 1000 dropped connections give back to the allocator would
    # take in a good part of the packets (0.2 KiB of RSS per packet instead of 0.55).
    "recovery-packets|socketlet,socketlet-recovery|recovery --measure packets --conns 100 --packets 8000 --payload 100 --verify 2"
    "recovery-packets-bound|socketlet,socketlet-recovery|recovery --measure packets --conns 100 --packets 40000 --payload 100 --verify 2"
    # Issue 21: the gateway's hook round trip and server API.
    "hook-echo-max|socketlet-binary,socketlet-binary-hook|echo --mode max --clients 1000 --messages 50"
    "hook-echo-rate|socketlet-binary,socketlet-binary-hook|echo --mode rate --clients 200 --rate 10 --secs 8"
    "api-emit-100|socketlet-binary-api|api --clients 100 --conns 8 --emits 20000"
    "api-emit-1k|socketlet-binary-api|api --clients 1000 --conns 8 --emits 2000"
    # The allocator: glibc's malloc or mimalloc in the binary.
    "alloc-idle-ws-10k|socketlet-glibc,socketlet-mimalloc|idle --transport ws --conns 10000"
    "alloc-echo-max|socketlet-glibc,socketlet-mimalloc|echo --mode max --clients 1000 --messages 100"
    "alloc-broadcast-1k|socketlet-glibc,socketlet-mimalloc|broadcast --clients 1000 --rounds 100"
    "alloc-slow-post|socketlet-glibc,socketlet-mimalloc|slow-post --count 1000 --idle-secs 10"
  )
  MAX_SECS=60
  # Measured phases start no new operation after this (slow servers do fewer operations).
  BUDGET=(--budget-secs 5)
fi

servers_of() { # cell entry -> its servers, one a line
  local list="${1#*|}"
  list="${list%%|*}"
  list="${list//@main/$MAIN}"
  tr ',' '\n' <<<"$list"
}

# --only: servers and/or cells.
if [ -n "$ONLY" ]; then
  sel_servers=()
  sel_cells=()
  IFS=',' read -r -a names <<<"$ONLY"
  for n in "${names[@]}"; do
    found=0
    for c in "${CELLS[@]}"; do
      [ "${c%%|*}" = "$n" ] && sel_cells+=("$c") && found=1
      servers_of "$c" | grep -qx -- "$n" && found=1
    done
    for c in "${CELLS[@]}"; do servers_of "$c" | grep -qx -- "$n" && { sel_servers+=("$n"); break; }; done
    [ "$found" = 1 ] || { echo "--only: no server or cell named $n" >&2; exit 2; }
  done
  [ ${#sel_cells[@]} -gt 0 ] && CELLS=("${sel_cells[@]}")
  ONLY_SERVERS=" ${sel_servers[*]-} "
else
  ONLY_SERVERS="  "
fi

# The servers each cell runs, after --only; and all of them.
cell_servers() {
  local s
  for s in $(servers_of "$1"); do
    if [ "$ONLY_SERVERS" = "  " ] || [[ "$ONLY_SERVERS" == *" $s "* ]]; then echo "$s"; fi
  done
}
SERVERS=()
for c in "${CELLS[@]}"; do
  for s in $(cell_servers "$c"); do
    [[ " ${SERVERS[*]-} " == *" $s "* ]] || SERVERS+=("$s")
  done
done
[ ${#SERVERS[@]} -gt 0 ] || { echo "no server to run" >&2; exit 2; }
uses() { [[ " ${SERVERS[*]} " == *" $1 "* ]]; }
# Whether a cell that runs uses an emitter of that kind.
uses_emitter() { local c; for c in "${CELLS[@]}"; do [[ "$c" == *"--emitter=@$1"* ]] && [ -n "$(cell_servers "$c")" ] && return 0; done; return 1; }
uses_prefix() { local s; for s in "${SERVERS[@]}"; do [[ "$s" == "$1"* ]] && return 0; done; return 1; }

RAW="$OUT/raw"
LOGS="$OUT/raw/logs"
GEN="$TARGET_DIR/$PROFILE/socketlet-bench"
BENCH_SERVER="$TARGET_DIR/$PROFILE/examples/bench_server"
BINARY="$TARGET_DIR/$PROFILE/socketlet"
# The binary built with each allocator (copies, so that both exist at once).
BINS="$TARGET_DIR/$PROFILE/bench-bin"
SIOX="$PEERS/socketioxide/target/release/socketioxide-bench-server"

log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*"; }
die() { printf 'ERROR: %s\n' "$*" >&2; exit 1; }

# ---------------------------------------------------------------------------------------------
# Build.
venv() { # dir requirements
  local dir="$1" req="$2" want have=""
  want="$(sha256sum "$req" | cut -d' ' -f1)"
  [ -f "$dir/.bench-stamp" ] && have="$(cat "$dir/.bench-stamp")"
  if [ "$want" != "$have" ] || [ ! -x "$dir/bin/python" ]; then
    log "creating the venv $dir"
    rm -rf "$dir"
    python3 -m venv "$dir"
    "$dir/bin/pip" install --quiet --disable-pip-version-check -r "$req"
    echo "$want" >"$dir/.bench-stamp"
  fi
}

build() {
  cd "$ROOT"
  local profile_flag=()
  [ "$SMOKE" = 1 ] || profile_flag=(--release)
  log "building socketlet-bench and bench_server ($PROFILE)"
  cargo build --quiet ${profile_flag[@]+"${profile_flag[@]}"} -p socketlet-bench --bin socketlet-bench \
    -p socketlet --example bench_server
  if uses_prefix socketlet-binary || uses socketlet-glibc || uses socketlet-mimalloc; then
    mkdir -p "$BINS"
    # The allocator that is not the default first (a copy), then the default build, last, so
    # that $BINARY is the binary as users build it. Smoke mode builds the default only.
    local default other=""
    default="$(binary_alloc_name)"
    if [ "$SMOKE" = 0 ]; then
      if [ "$default" = mimalloc ]; then other=glibc; else other=mimalloc; fi
      log "building the socketlet binary ($PROFILE, allocator: $other)"
      if [ "$other" = mimalloc ]; then
        cargo build --quiet --release -p socketlet-cli --bin socketlet --features mimalloc
      else
        cargo build --quiet --release -p socketlet-cli --bin socketlet --no-default-features
      fi
      cp "$BINARY" "$BINS/socketlet-$other"
    fi
    log "building the socketlet binary ($PROFILE, allocator: $default, the default)"
    cargo build --quiet ${profile_flag[@]+"${profile_flag[@]}"} -p socketlet-cli --bin socketlet
    cp "$BINARY" "$BINS/socketlet-$default"
    # Smoke mode has one build: both names are it.
    if [ "$SMOKE" = 1 ]; then cp "$BINARY" "$BINS/socketlet-glibc"; cp "$BINARY" "$BINS/socketlet-mimalloc"; fi
  fi
  if uses_prefix socketioxide; then
    log "building the socketioxide peer (release, locked)"
    cargo build --quiet --release --locked --manifest-path "$PEERS/socketioxide/Cargo.toml"
  fi
  if uses_prefix node || uses_emitter node; then
    command -v node >/dev/null || die "node is needed for the Node peer"
    local want have=""
    want="$(sha256sum "$PEERS/node/package-lock.json" | cut -d' ' -f1)"
    [ -f "$PEERS/node/node_modules/.bench-stamp" ] && have="$(cat "$PEERS/node/node_modules/.bench-stamp")"
    if [ "$want" != "$have" ]; then
      log "installing the Node peer (npm ci)"
      (cd "$PEERS/node" && npm ci --no-audit --no-fund --loglevel=error)
      echo "$want" >"$PEERS/node/node_modules/.bench-stamp"
    fi
  fi
  if uses python || uses_emitter python; then venv "$VENV" "$PEERS/python/requirements.txt"; fi
  if uses python4; then venv "$VENV4" "$PEERS/python4/requirements.txt"; fi
}

bench_server_version() {
  # Dirty means changed sources: this script's own results (tracked under bench/report) are
  # rewritten by every run and do not count.
  local rev
  rev="$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)"
  if [ -n "$(git -C "$ROOT" status --porcelain --untracked-files=no -- . \
    ':(exclude)bench/report' ':(exclude)bench/results' 2>/dev/null)" ]; then
    rev="$rev-dirty"
  fi
  echo "socketlet at $rev"
}

siox_version() {
  awk '/^name = "socketioxide"$/{getline; gsub(/[^0-9.]/,""); print; exit}' "$PEERS/socketioxide/Cargo.lock"
}

redis_version() { redis-server --version 2>/dev/null | sed -n 's/.*v=\([0-9.]*\).*/\1/p'; }

node_version() {
  (cd "$PEERS/node" && node -e '
    const fs = require("node:fs");
    const v = (...dirs) => {
      for (const d of dirs) {
        try { return JSON.parse(fs.readFileSync(d + "/package.json", "utf8")).version; } catch {}
      }
      return "?";
    };
    const m = "node_modules/";
    const extra = process.argv[1] === "cluster"
      ? `, @socket.io/redis-adapter ${v(m + "@socket.io/redis-adapter")} on redis (node-redis) ${v(m + "redis")}, emitter @socket.io/redis-emitter ${v(m + "@socket.io/redis-emitter")}`
      : "";
    console.log(`socket.io ${v(m + "socket.io")} (engine.io ${v(m + "engine.io")}, ws ${v(m + "engine.io/" + m + "ws", m + "ws")})${extra}, Node ${process.version}, bench/peers/node`);' "$1")
}

binary_alloc_name() { # the allocator of the binary's default build: glibc or mimalloc
  if grep -A6 '^\[features\]' "$ROOT/crates/cli/Cargo.toml" | grep -q '^default *=.*mimalloc'; then
    echo mimalloc
  else
    echo glibc
  fi
}
binary_alloc() { [ "$(binary_alloc_name)" = mimalloc ] && echo mimalloc || echo "glibc malloc"; }

version_of() {
  local bs; bs="$(bench_server_version)"
  local cores; cores="$(nproc)"
  case "$1" in
    socketlet) echo "$bs, crates/socketlet/examples/bench_server.rs, $PROFILE build, 1 tokio worker (current_thread)" ;;
    socketlet-metrics) echo "$bs, bench_server --metrics (socketlet-ops' Prometheus Metrics observing everything, not scraped), $PROFILE build, 1 tokio worker (current_thread)" ;;
    socketlet-recovery) echo "$bs, bench_server --recovery-secs 120 (connection state recovery on: sessions kept 2 min, middlewares skipped, at most 10,000 packets / 64 MiB / 100,000 sessions per namespace: RecoveryConfig's defaults), $PROFILE build, 1 tokio worker (current_thread)" ;;
    socketlet-2w) echo "$bs, bench_server --workers 2 (multi-thread runtime, 2 workers), $PROFILE build" ;;
    socketlet-binary) echo "$bs, the socketlet binary (crates/cli), $PROFILE build, default settings (--addr only: the demo's events, info logs to a file, a multi-thread runtime with one worker per core: $cores), allocator: $(binary_alloc); broadcasts are its demo's chat to a room every client joined" ;;
    socketlet-binary-hook) echo "$bs, the socketlet binary as socketlet-binary, with --hook-event to \`socketlet-bench hook-backend\` on loopback (hyper, one thread; answers {\"result\":{\"ack\":args}}): every event goes to the backend (aux CPU = the backend's)" ;;
    socketlet-binary-api) echo "$bs, the socketlet binary as socketlet-binary, with --api-key (the server API under /api/ on the main listener)" ;;
    socketlet-glibc) echo "$bs, the socketlet binary built without the mimalloc feature (glibc malloc), $PROFILE build, default settings but --max-body-time-ms 2000" ;;
    socketlet-mimalloc) echo "$bs, the socketlet binary built with --features mimalloc, $PROFILE build, default settings but --max-body-time-ms 2000" ;;
    socketlet-cluster) echo "3 nodes of $bs bench_server --redis (classic pub/sub, and --python-channel socketio), 1 worker each, on one redis-server $(redis_version) (aux CPU = Redis)" ;;
    socketlet-cluster-sharded) echo "3 nodes of $bs bench_server --redis --redis-sharded dynamic (Redis 7 sharded pub/sub, Node's default mode), 1 worker each, on one redis-server $(redis_version) (aux CPU = Redis)" ;;
    socketioxide) echo "socketioxide $(siox_version) (crates.io, bench/peers/socketioxide), release build, served as its README shows: axum 0.8 Router with SocketIo::new_layer() and axum::serve (TCP_NODELAY through ListenerExt::tap_io, as axum documents it), a multi-thread tokio runtime with 1 worker (its two documented setups cost the same within the noise: see socketioxide-hyper in the echo cell)" ;;
    socketioxide-hyper) echo "socketioxide $(siox_version) served as its hyper-echo example does (its own accept loop around hyper's http1 with upgrades), a multi-thread runtime with 1 worker" ;;
    socketioxide-current-thread) echo "socketioxide $(siox_version), the hyper accept loop on a current-thread runtime (this harness's setup until issue 25)" ;;
    socketioxide-2w) echo "socketioxide $(siox_version), axum as socketioxide, a multi-thread runtime with 2 workers" ;;
    socketioxide-cluster) echo "3 nodes of socketioxide $(siox_version) with socketioxide-redis $(awk '/^name = "socketioxide-redis"$/{getline; gsub(/[^0-9.]/,""); print; exit}' "$PEERS/socketioxide/Cargo.lock") (its README's setup: RedisAdapterCtr::new_with_redis, redis-rs, RESP3), axum, 1 worker each, on one redis-server $(redis_version) (aux CPU = Redis)" ;;
    node) node_version plain ;;
    node-cluster) echo "3 nodes of $(node_version cluster) on one redis-server $(redis_version) (aux CPU = Redis)" ;;
    python)
      "$VENV/bin/python" - <<'PY'
import sys, importlib.metadata as m
v = m.version
print("python-socketio %s (python-engineio %s, aiohttp %s), Python %s, bench/peers/python"
      % (v("python-socketio"), v("python-engineio"), v("aiohttp"), sys.version.split()[0]))
PY
      ;;
    python4)
      "$VENV4/bin/python" - <<'PY'
import sys, importlib.metadata as m
v = m.version
print("the story's stack: python-socketio %s (python-engineio %s) under gunicorn %s with 1 eventlet "
      "worker (eventlet %s, worker_connections 20000), Python %s, bench/peers/python4; Engine.IO v3"
      % (v("python-socketio"), v("python-engineio"), v("gunicorn"), v("eventlet"), sys.version.split()[0]))
PY
      ;;
  esac
}

# ---------------------------------------------------------------------------------------------
# Servers.
raise_nofile() {
  ulimit -n "$NOFILE" 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
}

USED_PORTS=" "
free_port() {
  local p i
  for i in $(seq 1 200); do
    p=$((10000 + RANDOM % 20001))
    [[ "$USED_PORTS" == *" $p "* ]] && continue
    if command -v ss >/dev/null && [ -n "$(ss -Htan "sport = :$p" 2>/dev/null)" ]; then
      continue
    fi
    USED_PORTS="$USED_PORTS$p "
    echo "$p"
    return
  done
  die "no free port in 10000-30000"
}

# What the running server is: its processes (measured), the auxiliary ones (measured apart),
# every process to stop, the address of each node, the cell's Redis.
SERVER_PIDS=()
AUX_PIDS=()
ALL_PIDS=()
NODES=()
PORT=""
REDIS_URL=""

# Starts `cmd...` in the background with the open-files limit raised, logging to `logfile`;
# waits for `ready` (a regular expression) in the log. Sets STARTED_PID.
STARTED_PID=""
spawn() { # logfile ready cmd...
  local logfile="$1" ready="$2"
  shift 2
  # The subshell raises its open-files limit and becomes the process (exec): $! is its pid.
  ( raise_nofile; exec "$@" ) >"$logfile" 2>&1 &
  STARTED_PID=$!
  ALL_PIDS+=("$STARTED_PID")
  local i
  for i in $(seq 1 200); do
    grep -Eq "$ready" "$logfile" 2>/dev/null && return 0
    kill -0 "$STARTED_PID" 2>/dev/null || { cat "$logfile" >&2; die "$1 exited at start: $*"; }
    sleep 0.1
  done
  cat "$logfile" >&2
  die "not ready within 20 s: $*"
}

start_redis() { # logfile
  local port
  port="$(free_port)"
  spawn "$1" "Ready to accept connections" redis-server --port "$port" --bind 127.0.0.1 \
    --save "" --appendonly no --protected-mode yes --daemonize no
  AUX_PIDS+=("$STARTED_PID")
  REDIS_URL="redis://127.0.0.1:$port"
}

# The command of one node of server `name` on `port`.
node_cmd() { # name port
  local name="$1" port="$2"
  case "$name" in
    socketlet) echo "$BENCH_SERVER --port $port" ;;
    socketlet-metrics) echo "$BENCH_SERVER --port $port --metrics" ;;
    socketlet-recovery) echo "$BENCH_SERVER --port $port --recovery-secs 120" ;;
    socketlet-2w) echo "$BENCH_SERVER --port $port --workers 2" ;;
    socketlet-cluster) echo "$BENCH_SERVER --port $port --redis $REDIS_URL --python-channel socketio" ;;
    socketlet-cluster-sharded) echo "$BENCH_SERVER --port $port --redis $REDIS_URL --redis-sharded dynamic" ;;
    socketioxide) echo "$SIOX --port $port" ;;
    socketioxide-hyper) echo "$SIOX --port $port --setup hyper" ;;
    socketioxide-current-thread) echo "$SIOX --port $port --setup hyper --current-thread" ;;
    socketioxide-2w) echo "$SIOX --port $port --workers 2" ;;
    socketioxide-cluster) echo "$SIOX --port $port --redis $REDIS_URL?protocol=resp3" ;;
    node) echo "node $PEERS/node/server.js --port $port" ;;
    node-cluster) echo "node $PEERS/node/server.js --port $port --redis $REDIS_URL" ;;
    python) echo "$VENV/bin/python $PEERS/python/server.py --port $port" ;;
    socketlet-binary|socketlet-binary-api) echo "$BINARY --addr 127.0.0.1:$port" ;;
    socketlet-glibc|socketlet-mimalloc) echo "$BINS/$name --addr 127.0.0.1:$port --max-body-time-ms 2000" ;;
    *) die "unknown server $name" ;;
  esac
}

start_server() { # name logfile
  local name="$1" logfile="$2" i port cmd
  SERVER_PIDS=()
  AUX_PIDS=()
  ALL_PIDS=()
  NODES=()
  REDIS_URL=""
  USED_PORTS=" "
  case "$name" in
    *-cluster|*-cluster-sharded)
      start_redis "${logfile%.log}-redis.log"
      for i in 1 2 3; do
        port="$(free_port)"
        read -r -a cmd <<<"$(node_cmd "$name" "$port")"
        spawn "${logfile%.log}-node$i.log" '^LISTENING' "${cmd[@]}"
        SERVER_PIDS+=("$STARTED_PID")
        NODES+=("127.0.0.1:$port")
      done
      ;;
    python4)
      port="$(free_port)"
      spawn "$logfile" '^LISTENING' env -C "$PEERS/python4" "$VENV4/bin/gunicorn" \
        -c gunicorn.conf.py --bind "127.0.0.1:$port" server:app
      # The master and its worker.
      SERVER_PIDS+=("$STARTED_PID")
      for i in $(seq 1 50); do
        [ -n "$(pgrep -P "$STARTED_PID" || true)" ] && break
        sleep 0.1
      done
      for i in $(pgrep -P "$STARTED_PID" || true); do SERVER_PIDS+=("$i"); ALL_PIDS+=("$i"); done
      NODES+=("127.0.0.1:$port")
      ;;
    socketlet-binary-hook)
      port="$(free_port)"
      spawn "${logfile%.log}-backend.log" '^LISTENING' "$GEN" hook-backend --port "$port"
      AUX_PIDS+=("$STARTED_PID")
      local backend="http://127.0.0.1:$port/event"
      port="$(free_port)"
      spawn "$logfile" '^socketlet listening' "$BINARY" --addr "127.0.0.1:$port" --hook-event "$backend"
      SERVER_PIDS+=("$STARTED_PID")
      NODES+=("127.0.0.1:$port")
      ;;
    socketlet-binary-api)
      port="$(free_port)"
      spawn "$logfile" '^socketlet listening' "$BINARY" --addr "127.0.0.1:$port" --api-key bench-key
      SERVER_PIDS+=("$STARTED_PID")
      NODES+=("127.0.0.1:$port")
      ;;
    socketlet-binary|socketlet-glibc|socketlet-mimalloc)
      port="$(free_port)"
      read -r -a cmd <<<"$(node_cmd "$name" "$port")"
      spawn "$logfile" '^socketlet listening' "${cmd[@]}"
      SERVER_PIDS+=("$STARTED_PID")
      NODES+=("127.0.0.1:$port")
      ;;
    *)
      port="$(free_port)"
      read -r -a cmd <<<"$(node_cmd "$name" "$port")"
      spawn "$logfile" '^LISTENING' "${cmd[@]}"
      SERVER_PIDS+=("$STARTED_PID")
      NODES+=("127.0.0.1:$port")
      ;;
  esac
  PORT="${NODES[0]##*:}"
}

servers_alive() {
  local p
  for p in "${SERVER_PIDS[@]}"; do kill -0 "$p" 2>/dev/null || return 1; done
}

stop_server() {
  local p i
  for p in ${ALL_PIDS[@]+"${ALL_PIDS[@]}"}; do kill -TERM "$p" 2>/dev/null || true; done
  for i in $(seq 1 50); do
    local alive=0
    for p in ${ALL_PIDS[@]+"${ALL_PIDS[@]}"}; do kill -0 "$p" 2>/dev/null && alive=1; done
    [ "$alive" = 0 ] && break
    sleep 0.1
  done
  for p in ${ALL_PIDS[@]+"${ALL_PIDS[@]}"}; do
    kill -KILL "$p" 2>/dev/null || true
    wait "$p" 2>/dev/null || true
  done
  ALL_PIDS=()
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

# The generator's arguments for cell arguments `args...` against the running server.
GEN_ARGS=()
gen_args_for() { # server args...
  local server="$1"
  shift
  GEN_ARGS=()
  local a has_budget=0
  for a in "$@"; do
    case "$a" in
      --emitter=@node) GEN_ARGS+=(--emitter "node $PEERS/node/emit.js --redis $REDIS_URL --to room") ;;
      --emitter=@python) GEN_ARGS+=(--emitter "$VENV/bin/python $PEERS/python/emit.py --redis $REDIS_URL --to room") ;;
      --budget-secs) has_budget=1; GEN_ARGS+=("$a") ;;
      *) GEN_ARGS+=("$a") ;;
    esac
  done
  [ "$has_budget" = 1 ] || GEN_ARGS+=(${BUDGET[@]+"${BUDGET[@]}"})
  # The binary's demo has no `broadcast` event: its broadcasts are chats to a room.
  if [ "$1" = broadcast ] && [[ "$server" == socketlet-binary* || "$server" == socketlet-glibc || "$server" == socketlet-mimalloc ]]; then
    GEN_ARGS+=(--contract binary)
  fi
  if [ "${#NODES[@]}" -gt 1 ]; then
    GEN_ARGS+=(--nodes "$(IFS=,; echo "${NODES[*]}")")
  fi
  for a in "${SERVER_PIDS[@]}"; do GEN_ARGS+=(--pid "$a"); done
  for a in ${AUX_PIDS[@]+"${AUX_PIDS[@]}"}; do GEN_ARGS+=(--aux-pid "$a"); done
}

# ---------------------------------------------------------------------------------------------
build
[ -x "$GEN" ] || die "missing $GEN"
HAVE_REDIS=1
command -v redis-server >/dev/null || HAVE_REDIS=0
mkdir -p "$RAW" "$LOGS"
if [ -z "$ONLY" ]; then
  rm -rf "${RAW:?}"/*
  mkdir -p "$LOGS"
fi
rm -f "$OUT"/*.svg
for c in "${CELLS[@]}"; do
  for s in $(cell_servers "$c"); do
    mkdir -p "$RAW/$s"
    rm -f "$RAW/$s/${c%%|*}"-*.json
  done
done
# The report records the machine of the latest runs (raw/machine.tsv) when it is first written.
rm -f "$RAW/machine.tsv"
for s in "${SERVERS[@]}"; do version_of "$s" >"$RAW/$s/version.txt"; done

PASSED=0
FAILED=0
SKIPPED=0
FAILURES=()
START=$(date +%s)
raise_nofile
log "results in $RAW; ${#SERVERS[@]} server(s), ${#CELLS[@]} cell(s), $REPS repetition(s)"
for rep in $(seq 1 "$REPS"); do
  [ "$SMOKE" = 1 ] || [ "${BENCH_WAIT_QUIET:-1}" = 0 ] || wait_quiet
  for c in "${CELLS[@]}"; do
    cell="${c%%|*}"
    read -r -a cell_args <<<"${c##*|}"
    for s in $(cell_servers "$c"); do
      if [[ "$s" == *-cluster* ]] && [ "$HAVE_REDIS" = 0 ]; then
        log "skipping $s $cell: no redis-server"
        SKIPPED=$((SKIPPED + 1))
        continue
      fi
      logfile="$LOGS/$s-$cell-$rep.log"
      start_server "$s" "$logfile"
      sleep 0.3
      gen_args_for "$s" "${cell_args[@]}"
      rc=0
      timeout $((MAX_SECS + 90)) "$GEN" "${GEN_ARGS[@]}" \
        --addr "127.0.0.1:$PORT" --server "$s" --cell "$cell" \
        --max-secs "$MAX_SECS" --out "$RAW/$s/$cell-$rep.json" || rc=$?
      if ! servers_alive; then
        log "$s exited during $cell (see $logfile)"
        [ "$rc" = 0 ] && rc=1
      fi
      stop_server
      [ "$rc" = 0 ] && rm -f "${logfile%.log}-redis.log"
      for f in "${logfile%.log}"*.log; do
        [ -s "$f" ] && grep -Ev '^LISTENING|^socketlet listening|Ready to accept|^\s*$' "$f" | grep -q . || rm -f "$f"
      done
      if [ "$rc" = 0 ]; then
        PASSED=$((PASSED + 1))
      else
        FAILED=$((FAILED + 1))
        FAILURES+=("$s $cell (run $rep, exit $rc)")
        [ -f "$RAW/$s/$cell-$rep.json" ] || printf '{"scenario":"%s","cell":"%s","server":"%s","ok":false,"errors":["the generator exited with %s and wrote no result"],"params":{},"metrics":{}}\n' \
          "${cell_args[0]}" "$cell" "$s" "$rc" >"$RAW/$s/$cell-$rep.json"
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
if [ "$SKIPPED" -gt 0 ]; then
  echo "$PASSED passed, $FAILED failed, $SKIPPED skipped"
else
  echo "$PASSED passed, $FAILED failed"
fi
[ "$FAILED" = 0 ]
