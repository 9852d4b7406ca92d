#!/usr/bin/env bash
# End-to-end suite with python-socketio 4.x (Socket.IO v4 protocol over Engine.IO v3), once per
# pinned version: 4.5.1 and 4.6.x, each in its own venv (.venv-4.5.1, .venv-4.6, made here and
# reinstalled only when its requirements file or the venv's Python changed, as scripts/test.sh
# does for tests/e2e/python). Includes test_mixed_room.py, which also drives socket.io-client 2.x
# and 4.x from tests/e2e/node/node_modules (installed with `npm ci` there when it is not up to date
# with the lockfile).
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
VERSIONS=(4.5.1 4.6)
# Hard limit of one pytest run, in seconds (each test also has its own, much shorter, timeouts).
SUITE_LIMIT=300

e2e_binaries server
# The Node clients of test_mixed_room.py.
need_node
npm_ci "$ROOT/tests/e2e/node"
mkdir -p "$E2E_ARTIFACTS"

failed=()
for version in "${VERSIONS[@]}"; do
  printf '\n--- python-socketio %s (tests/e2e/python4/requirements-%s.txt) ---\n' "$version" "$version"
  venv="$HERE/.venv-$version"
  make_venv "$venv" "$HERE/requirements-$version.txt"
  "$venv/bin/python" -c 'import sys, socketio, engineio; print("Python", sys.version.split()[0], "python-socketio", socketio.__version__, "python-engineio", engineio.__version__)'
  if ! (cd "$HERE" && with_limit "$venv/bin/python" -m pytest -q "$@"); then
    installed="$("$venv/bin/python" -c 'import socketio; print(socketio.__version__)')"
    show_logs 30 "$E2E_ARTIFACTS"/python4-"$installed"-*.log
    failed+=("$version")
  fi
done

if [ "${#failed[@]}" -ne 0 ]; then
  die "the python-socketio 4.x e2e suite failed with: ${failed[*]}"
fi
echo "python-socketio 4.x e2e suite passed (${VERSIONS[*]})"
