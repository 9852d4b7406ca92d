#!/usr/bin/env bash
# End-to-end suite with python-socketio 4.x (Socket.IO v4 protocol over Engine.IO v3), once per
# pinned version: 4.5.1 and 4.6.x, each in its own venv (.venv-4.5.1, .venv-4.6, made here and
# reinstalled only when its requirements file or the venv's Python changed, as scripts/test.sh
# does for tests/e2e/python). Includes test_mixed_room.py, which also drives socket.io-client 2.x
# and 4.x from tests/e2e/node/node_modules (installed with `npm ci` there when missing).
# Works from any directory. Environment:
#   SOCKETLET_E2E_SERVER  the e2e server binary (default <repo>/target/debug/examples/e2e_server,
#                         built with `cargo build -p socketlet --example e2e_server`)
#   PYTHON                the Python that makes the venvs (default python3)
# Extra arguments go to pytest (e.g. `-k rooms -x`).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)"
ROOT="$(cd "$HERE/../../.." && pwd -P)"
# shellcheck source=scripts/lib.sh
. "$ROOT/scripts/lib.sh"
NODE_DIR="$ROOT/tests/e2e/node"
ARTIFACTS="$ROOT/tests/e2e/.artifacts"
PYTHON="${PYTHON:-python3}"
VERSIONS=(4.5.1 4.6)
# Hard limit of one pytest run, in seconds (each test also has its own, much shorter, timeouts).
SUITE_LIMIT=300

: "${SOCKETLET_E2E_SERVER:=$ROOT/target/debug/examples/e2e_server}"
export SOCKETLET_E2E_SERVER




show_server_logs() {
  printf '\nServer logs (stderr of every e2e server process) are in %s\n' "$ARTIFACTS" >&2
  local f
  for f in "$ARTIFACTS"/python4-"$1"-*.log; do
    [ -e "$f" ] || continue
    printf -- '--- last lines of %s ---\n' "${f#"$ROOT"/}" >&2
    tail -n 30 "$f" >&2 || true
  done
}

[ -x "$SOCKETLET_E2E_SERVER" ] \
  || die "no e2e server at $SOCKETLET_E2E_SERVER (cargo build -p socketlet --example e2e_server)"
command -v "$PYTHON" >/dev/null 2>&1 || apt_install python3 python3-venv

# The Node clients of test_mixed_room.py.
command -v node >/dev/null 2>&1 || die "node is needed by test_mixed_room.py"
if [ ! -f "$NODE_DIR/node_modules/socket.io-client-v2/package.json" ] \
  || [ ! -f "$NODE_DIR/node_modules/socket.io-client/package.json" ]; then
  (cd "$NODE_DIR" && npm ci --no-audit --no-fund)
fi
mkdir -p "$ARTIFACTS"

failed=()
for version in "${VERSIONS[@]}"; do
  printf '\n--- python-socketio %s (tests/e2e/python4/requirements-%s.txt) ---\n' "$version" "$version"
  venv="$HERE/.venv-$version"
  req="$HERE/requirements-$version.txt"
  # (Re)create the venv when it is missing or broken (e.g. a half-made one without pip).
  if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -m pip --version >/dev/null 2>&1; then
    if ! "$PYTHON" -c 'import venv, ensurepip' >/dev/null 2>&1; then
      apt_install python3-venv
    fi
    rm -rf "$venv"
    echo "Creating $venv"
    "$PYTHON" -m venv "$venv"
  fi
  stamp="$venv/.requirements.sha256"
  # Reinstall when the requirements file or the venv's Python changed.
  hash="$(sha256sum <"$req" | cut -d' ' -f1) $("$venv/bin/python" -c 'import sys; print(sys.version.split()[0])')"
  if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$hash" ]; then
    PIP_DISABLE_PIP_VERSION_CHECK=1 "$venv/bin/python" -m pip install -r "$req"
    printf '%s\n' "$hash" >"$stamp"
  else
    echo "$venv is up to date with requirements-$version.txt"
  fi
  "$venv/bin/python" -c 'import sys, socketio, engineio; print("Python", sys.version.split()[0], "python-socketio", socketio.__version__, "python-engineio", engineio.__version__)'
  if ! (cd "$HERE" && with_limit "$venv/bin/python" -m pytest -q "$@"); then
    installed="$("$venv/bin/python" -c 'import socketio; print(socketio.__version__)')"
    show_server_logs "$installed"
    failed+=("$version")
  fi
done

if [ "${#failed[@]}" -ne 0 ]; then
  die "the python-socketio 4.x e2e suite failed with: ${failed[*]}"
fi
echo "python-socketio 4.x e2e suite passed (${VERSIONS[*]})"
