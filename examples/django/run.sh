#!/usr/bin/env bash
# The VM console, the whole of it, with one command: Django behind nginx, socketlet for the
# browsers' Socket.IO connections, dramatiq workers opening the VMs, Redis as dramatiq's broker.
#
#   examples/django/run.sh            install what is missing, start everything, print the URL
#                                     and the demo users; ctrl-c stops everything
#   examples/django/run.sh --setup    only install (the venv, redis-server, nginx, the binary)
#
# It installs, only when missing: redis-server and nginx (Debian packages, with apt-get), the
# venv examples/django/.venv (requirements.txt, then the socketlet package from python/), and
# the socketlet binary (cargo build -p socketlet-cli, unless SOCKETLET_BIN names one).
# Everything listens on 127.0.0.1; the database, the logs and nginx's files go to DATA_DIR.
#
# Environment (all optional):
#   PORT                 nginx's port, the one to open in the browser (default 8000, or any free
#                        port when 8000 is taken; 0: any free port)
#   DATA_DIR             default examples/django/.run
#   DRAMATIQ_BROKER_URL  default: the redis-server this script starts; amqp://... for RabbitMQ
#   DRAMATIQ_QUEUE       default "default"
#   SOCKETLET_PUSH       api (default: workers call socketlet's server API) or redis (workers
#                        publish with python-socketio's RedisManager; socketlet runs with
#                        --redis --python-channel socketio)
#   WORKER_GROUPS, WORKER_PROCESSES, WORKER_THREADS   dramatiq commands, and the processes and
#                        threads of each (default 2, 2, 2); each command is restarted when it
#                        exits, as systemd or supervisord would
#   GUNICORN_WORKERS     gunicorn's sync workers (default 3)
#   VM_STEP_SECONDS      the simulated provisioner's pace (default 0.8 s per step, 4 steps)
#   SOCKETLET_BIN        the socketlet binary to run
#   PYTHON               the Python that makes the venv (default python3)
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)"
ROOT="$(cd "$HERE/../.." && pwd -P)"
# shellcheck source=scripts/lib.sh
. "$ROOT/scripts/lib.sh"
VENV="$HERE/.venv"
PY="$VENV/bin/python"

# ---- installing ------------------------------------------------------------------------------

# The path of a program, also in the sbin directories (nginx is in /usr/sbin); empty if none.
find_program() {
  local p dir
  p="$(command -v "$1" 2>/dev/null || true)"
  if [ -z "$p" ]; then
    for dir in /usr/sbin /sbin /usr/local/sbin; do
      if [ -x "$dir/$1" ]; then p="$dir/$1"; break; fi
    done
  fi
  printf '%s' "$p"
}

setup() {
  local missing=()
  [ -n "$(find_program redis-server)" ] || missing+=(redis-server)
  [ -n "$(find_program nginx)" ] || missing+=(nginx)
  if [ "${#missing[@]}" -ne 0 ]; then apt_install "${missing[@]}"; fi

  make_venv "$VENV" "$HERE/requirements.txt"
  # The socketlet package, from this repository (again whenever its sources change).
  local pkg="$ROOT/python" stamp="$VENV/.socketlet-package.sha256" hash
  hash="$(cd "$pkg" && find pyproject.toml README.md src -type f -not -name '*.pyc' | LC_ALL=C sort \
    | xargs sha256sum | sha256sum | cut -d' ' -f1)"
  if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$hash" ]; then
    echo "Installing the socketlet package from python/ into ${VENV#"$ROOT"/}"
    PIP_DISABLE_PIP_VERSION_CHECK=1 "$PY" -m pip install -q --no-deps --force-reinstall "$pkg"
    printf '%s\n' "$hash" >"$stamp"
  fi

  if [ -z "${SOCKETLET_BIN:-}" ]; then
    if [ -x "$ROOT/target/release/socketlet" ]; then
      SOCKETLET_BIN="$ROOT/target/release/socketlet"
    elif [ -x "$ROOT/target/debug/socketlet" ]; then
      SOCKETLET_BIN="$ROOT/target/debug/socketlet"
    else
      command -v cargo >/dev/null 2>&1 || die "no socketlet binary and no cargo (https://rustup.rs)"
      (cd "$ROOT" && cargo build -p socketlet-cli)
      SOCKETLET_BIN="$ROOT/target/debug/socketlet"
    fi
  fi
  [ -x "$SOCKETLET_BIN" ] || die "SOCKETLET_BIN=$SOCKETLET_BIN is not an executable"
}

setup
if [ "${1:-}" = "--setup" ]; then
  echo "examples/django: everything is installed"
  exit 0
fi
[ "$#" -eq 0 ] || die "usage: $0 [--setup]"

# ---- settings --------------------------------------------------------------------------------
DATA_DIR="${DATA_DIR:-$HERE/.run}"
mkdir -p "$DATA_DIR/logs" "$DATA_DIR/nginx" "$DATA_DIR/redis"
DATA_DIR="$(cd "$DATA_DIR" && pwd -P)"
LOGS="$DATA_DIR/logs"

free_port() {
  "$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

if [ -z "${PORT:-}" ]; then
  PORT=8000
  if port_open "$PORT"; then PORT="$(free_port)"; fi
elif [ "$PORT" = 0 ]; then
  PORT="$(free_port)"
elif port_open "$PORT"; then
  die "port $PORT is taken (PORT=0 picks a free one)"
fi
REDIS_PORT="$(free_port)"
SOCKETLET_PORT="$(free_port)"
DJANGO_PORT="$(free_port)"
new_secret() { "$PY" -c 'import secrets; print(secrets.token_urlsafe(48))'; }

export DJANGO_SETTINGS_MODULE=vmconsole.settings
export DJANGO_DATA_DIR="$DATA_DIR"
export DJANGO_SECRET_KEY="${DJANGO_SECRET_KEY:-$(new_secret)}"
export PUBLIC_URL="http://127.0.0.1:$PORT"
# socketlet reads these two from the environment too (the same names).
export SOCKETLET_API_KEY="${SOCKETLET_API_KEY:-$(new_secret)}"
export SOCKETLET_HOOK_SECRET="${SOCKETLET_HOOK_SECRET:-$(new_secret)}"
export SOCKETLET_API_URL="http://127.0.0.1:$SOCKETLET_PORT"
export SOCKETLET_PUSH="${SOCKETLET_PUSH:-api}"
export SOCKETIO_REDIS_URL="redis://127.0.0.1:$REDIS_PORT/0"
export DRAMATIQ_BROKER_URL="${DRAMATIQ_BROKER_URL:-redis://127.0.0.1:$REDIS_PORT/0}"
export DRAMATIQ_QUEUE="${DRAMATIQ_QUEUE:-default}"
export VM_STEP_SECONDS="${VM_STEP_SECONDS:-0.8}"
WORKER_GROUPS="${WORKER_GROUPS:-2}"
WORKER_PROCESSES="${WORKER_PROCESSES:-2}"
WORKER_THREADS="${WORKER_THREADS:-2}"
# A worker process takes as many messages as it has threads (dramatiq's default is twice as
# many): a VM starts on whichever thread is free.
export dramatiq_queue_prefetch="$WORKER_THREADS"
GUNICORN_WORKERS="${GUNICORN_WORKERS:-3}"

# ---- running ---------------------------------------------------------------------------------
NAMES=()
PIDS=()
STOPPING=0

# start <name> <command...>: in the background, its output in $LOGS/<name>.log.
start() {
  local name="$1"
  shift
  "$@" >"$LOGS/$name.log" 2>&1 </dev/null &
  NAMES+=("$name")
  PIDS+=("$!")
}

# supervise <name> <command...>: like start, but the command is started again when it exits
# (a dramatiq command exits when one of its worker processes dies). Each run of the command is a
# process group of its own (its pid in $DATA_DIR/<name>.pgid), stopped whole.
supervise() {
  local name="$1"
  shift
  (
    child=""
    stop=0
    # On TERM, stop the command and this loop. The waiting is done below, not in the trap: bash
    # does not reap children while it runs a trap.
    trap 'stop=1; [ -n "$child" ] && kill -TERM -- "-$child" 2>/dev/null' TERM INT
    while [ "$stop" = 0 ]; do
      setsid "$@" </dev/null &
      child=$!
      echo "$child" >"$DATA_DIR/$name.pgid"
      rc=0
      wait "$child" || rc=$?
      if [ "$stop" = 1 ]; then
        # A signal cut the wait short: poll until the command's group has gone.
        while kill -0 -- "-$child" 2>/dev/null; do sleep 0.1; done
        break
      fi
      echo "run.sh: $name exited (code $rc); starting it again in 1 s"
      sleep 1 &
      pause=$!
      wait "$pause" || true
      kill "$pause" 2>/dev/null || true
    done
  ) >>"$LOGS/$name.log" 2>&1 &
  NAMES+=("$name")
  PIDS+=("$!")
}

# kill_tree <pid>: SIGKILL to a process and all its descendants.
kill_tree() {
  local child
  for child in $(pgrep -P "$1" 2>/dev/null || true); do kill_tree "$child"; done
  kill -KILL "$1" 2>/dev/null || true
}


# stop_all: SIGTERM to everything (Redis last: the workers put back their unstarted messages on
# the way out), then SIGKILL whatever is still there after a while.
stop_all() {
  [ "$STOPPING" = 1 ] && return
  STOPPING=1
  echo
  echo "Stopping everything..."
  local i pid deadline phase
  for phase in others redis; do
    for i in "${!NAMES[@]}"; do
      if [ "$phase" = redis ] && [ "${NAMES[$i]}" = redis ]; then
        kill -TERM "${PIDS[$i]}" 2>/dev/null || true
      elif [ "$phase" = others ] && [ "${NAMES[$i]}" != redis ]; then
        kill -TERM "${PIDS[$i]}" 2>/dev/null || true
      fi
    done
    deadline=$((SECONDS + 10))
    for i in "${!NAMES[@]}"; do
      if [ "$phase" = redis ] && [ "${NAMES[$i]}" != redis ]; then continue; fi
      if [ "$phase" = others ] && [ "${NAMES[$i]}" = redis ]; then continue; fi
      pid="${PIDS[$i]}"
      while kill -0 "$pid" 2>/dev/null && [ "$SECONDS" -lt "$deadline" ]; do sleep 0.1; done
      if kill -0 "$pid" 2>/dev/null; then
        echo "  ${NAMES[$i]} (pid $pid) did not stop: killing it"
        kill_tree "$pid"
      fi
    done
  done
  # A dramatiq command (with its worker processes) that outlived its supervisor.
  local f pgid
  for f in "$DATA_DIR"/dramatiq-*.pgid; do
    [ -e "$f" ] || continue
    pgid="$(cat "$f")"
    rm -f "$f"
    if kill -0 -- "-$pgid" 2>/dev/null; then
      echo "  the dramatiq command of process group $pgid did not stop: killing it"
      kill -KILL -- "-$pgid" 2>/dev/null || true
    fi
  done
  echo "Stopped. Logs: $LOGS"
}
# ctrl-c and SIGTERM only say "stop": the stopping is done outside the trap (bash does not reap
# children while it runs a trap, so waiting for them there can hang).
STOP_SIGNAL=""
trap 'STOP_SIGNAL=INT' INT
trap 'STOP_SIGNAL=TERM' TERM
trap 'stop_all' EXIT
stop_requested() {
  [ -n "$STOP_SIGNAL" ] || return 1
  stop_all
  [ "$STOP_SIGNAL" = INT ] && exit 130
  exit 143
}

# wait_until <what> <seconds> <command...>: runs the check until it succeeds; fails when the
# time is up or a process that was started has exited.
wait_until() {
  local what="$1" limit="$2" deadline i
  shift 2
  deadline=$((SECONDS + limit))
  until "$@"; do
    stop_requested || true
    for i in "${!NAMES[@]}"; do
      if ! kill -0 "${PIDS[$i]}" 2>/dev/null; then
        tail -n 20 "$LOGS/${NAMES[$i]}.log" >&2 || true
        die "${NAMES[$i]} exited while waiting for $what (log: $LOGS/${NAMES[$i]}.log)"
      fi
    done
    [ "$SECONDS" -lt "$deadline" ] || die "$what not ready within $limit s (logs: $LOGS)"
    sleep 0.1
  done
}
workers_ready() {
  local n log
  for ((n = 1; n <= WORKER_GROUPS; n++)); do
    log="$LOGS/dramatiq-$n.log"
    [ "$(grep -c 'Worker process is ready for action' "$log" 2>/dev/null || true)" -ge "$WORKER_PROCESSES" ] || return 1
  done
}
page_ok() {
  "$PY" - "$PUBLIC_URL/accounts/login/" <<'EOF' >/dev/null 2>&1
import sys, urllib.request
with urllib.request.urlopen(sys.argv[1], timeout=2) as r:
    sys.exit(0 if r.status == 200 else 1)
EOF
}

cd "$HERE"
echo "Preparing the database and the static files in $DATA_DIR"
"$PY" manage.py prepare_demo

# In a session of its own, so that ctrl-c (SIGINT to the terminal's process group) leaves it to
# stop_all, which stops it last.
start redis setsid "$(find_program redis-server)" --bind 127.0.0.1 --port "$REDIS_PORT" --save "" \
  --appendonly no --dir "$DATA_DIR/redis"
wait_until "redis-server" 10 port_open "$REDIS_PORT"

socketlet_args=(
  --addr "127.0.0.1:$SOCKETLET_PORT"
  --hook-connect "http://127.0.0.1:$DJANGO_PORT/socketlet/connect"
  --hook-event "http://127.0.0.1:$DJANGO_PORT/socketlet/event"
  --hook-events open_vms
  --hook-forward-cookie
  --recovery-secs 120
  --metrics
)
if [ "$SOCKETLET_PUSH" = redis ]; then
  socketlet_args+=(--redis "$SOCKETIO_REDIS_URL" --python-channel socketio)
fi
if [ "$SOCKETLET_PUSH" = redis ]; then
  # The workers publish on Redis: socketlet's server API is not needed, so it is off.
  start socketlet env -u SOCKETLET_API_KEY "$SOCKETLET_BIN" "${socketlet_args[@]}"
else
  start socketlet "$SOCKETLET_BIN" "${socketlet_args[@]}"
fi

start gunicorn "$VENV/bin/gunicorn" --workers "$GUNICORN_WORKERS" \
  --bind "127.0.0.1:$DJANGO_PORT" --access-logfile - vmconsole.wsgi

for ((n = 1; n <= WORKER_GROUPS; n++)); do
  supervise "dramatiq-$n" "$VENV/bin/dramatiq" vmconsole.worker \
    --processes "$WORKER_PROCESSES" --threads "$WORKER_THREADS" --worker-shutdown-timeout 5000
done

sed -e "s|@DATA_DIR@|$DATA_DIR|g" -e "s|@STATIC_ROOT@|$DATA_DIR/static|g" \
  -e "s|@DJANGO_ADDR@|127.0.0.1:$DJANGO_PORT|g" -e "s|@SOCKETLET_ADDR@|127.0.0.1:$SOCKETLET_PORT|g" \
  -e "s|@NGINX_ADDR@|127.0.0.1:$PORT|g" "$HERE/nginx.conf" >"$DATA_DIR/nginx.conf"
start nginx "$(find_program nginx)" -c "$DATA_DIR/nginx.conf" -p "$DATA_DIR/nginx" \
  -e "$LOGS/nginx-error.log"

wait_until "socketlet" 10 port_open "$SOCKETLET_PORT"
wait_until "gunicorn" 20 port_open "$DJANGO_PORT"
wait_until "nginx" 10 port_open "$PORT"
wait_until "the Django pages through nginx" 30 page_ok
wait_until "the dramatiq workers" 60 workers_ready

# For scripts (the tests): where everything is.
{
  echo "URL=$PUBLIC_URL"
  echo "SOCKETLET_URL=$SOCKETLET_API_URL"
  echo "DJANGO_URL=http://127.0.0.1:$DJANGO_PORT"
  echo "REDIS_URL=redis://127.0.0.1:$REDIS_PORT/0"
  for i in "${!NAMES[@]}"; do echo "PID_${NAMES[$i]//-/_}=${PIDS[$i]}"; done
} >"$DATA_DIR/stack.env"

cat <<EOF

The VM console is ready at $PUBLIC_URL/
  log in as alice (password alice-demo) or bob (password bob-demo), in two browsers to see
  each user get their own VMs' progress only.
  nginx :$PORT -> Django (gunicorn, $GUNICORN_WORKERS workers) :$DJANGO_PORT on /, socketlet :$SOCKETLET_PORT on /socket.io/
  dramatiq: $WORKER_GROUPS x $WORKER_PROCESSES processes x $WORKER_THREADS threads, broker $(sed -E 's#(://[^:/@]*:)[^@]*@#\1***@#' <<<"$DRAMATIQ_BROKER_URL")
  workers reach the browsers through: $SOCKETLET_PUSH
  logs: $LOGS
Press ctrl-c to stop everything.
EOF

# Until ctrl-c, or until a process the rest needs has gone.
while :; do
  for i in "${!NAMES[@]}"; do
    case "${NAMES[$i]}" in dramatiq-*) continue ;; esac # restarted by supervise
    if ! kill -0 "${PIDS[$i]}" 2>/dev/null; then
      echo "run.sh: ${NAMES[$i]} exited; its log ($LOGS/${NAMES[$i]}.log) ends with:" >&2
      tail -n 20 "$LOGS/${NAMES[$i]}.log" >&2 || true
      exit 1
    fi
  done
  sleep 1 &
  pause=$!
  wait "$pause" || true # a signal ends it at once
  kill "$pause" 2>/dev/null || true
  stop_requested || true
done
