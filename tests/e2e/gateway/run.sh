#!/usr/bin/env bash
# End-to-end suite of socketlet's gateway (the server API and the backend hooks), with real parts:
# the `socketlet` binary, an example backend written with Starlette on uvicorn (backend.py) that
# uses the socketlet Python package of python/, socket.io-client 4.x and python-socketio 5.x, and
# a private redis-server for two-node clusters. In order:
#   1. python/'s own tests (pytest, its venv python/.venv from python/requirements-test.txt):
#      signatures, answers, socketlet.Client against the binary, socketlet.django with Django's
#      test client
#   2. gateway.test.mjs, cluster.test.mjs   socket.io-client 4.x (node --test)
#   3. test_gateway.py, test_cluster.py     python-socketio 5.x (pytest)
#      test_schemathesis.py                 schemathesis against the binary's /api/openapi.json
# Every test starts its own nodes, backend and redis-server on free ports of 127.0.0.1 (never the
# machine's Redis on 6379) and stops them.
#
# Installs, only when missing: redis-server (Debian package); node_modules (npm ci, again whenever
# package-lock.json or the Node version changes); the venvs python/.venv and .venv (requirements
# files, again whenever they or the venv's Python change); the socketlet package into .venv from
# python/ (again whenever its sources change).
# Works from any directory. Environment:
#   SOCKETLET_BIN   the socketlet binary (default <repo>/target/debug/socketlet, built with
#                   `cargo build -p socketlet-cli`)
#   PYTHON          the Python that makes the venvs (default python3)
#   SCHEMATHESIS_MAX_EXAMPLES, SCHEMATHESIS_SEED  see test_schemathesis.py
# Extra arguments go to the suite's pytest (step 3), e.g. `-k cluster -x`.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)"
ROOT="$(cd "$HERE/../../.." && pwd -P)"
# shellcheck source=scripts/lib.sh
. "$ROOT/scripts/lib.sh"
PKG="$ROOT/python"
# Hard limit of each test run below, in seconds (each test also has its own, much shorter, timeouts).
SUITE_LIMIT=300

e2e_binaries socketlet
if ! command -v redis-server >/dev/null 2>&1; then
  apt_install redis-server
fi
echo "$(redis-server --version | cut -d' ' -f1-3)"
need_node
npm_ci "$HERE"
mkdir -p "$E2E_ARTIFACTS"
rm -f "$E2E_ARTIFACTS"/gateway-*

# ---- 1. the Python package's own tests --------------------------------------------------------
printf '\n--- python/: the socketlet package (python/requirements-test.txt) ---\n'
make_venv "$PKG/.venv" "$PKG/requirements-test.txt"
if ! (cd "$PKG" && with_limit "$PKG/.venv/bin/python" -m pytest -q); then
  die "the tests of the socketlet Python package (python/tests) failed"
fi

# ---- the suite's venv, and the package installed into it from python/ --------------------------
make_venv "$HERE/.venv" "$HERE/requirements.txt"
stamp="$HERE/.venv/.socketlet-package.sha256"
hash="$(cd "$PKG" && find pyproject.toml README.md src -type f -not -name '*.pyc' | LC_ALL=C sort \
  | xargs sha256sum | sha256sum | cut -d' ' -f1)"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$hash" ]; then
  echo "Installing the socketlet package from python/ into ${HERE#"$ROOT"/}/.venv"
  PIP_DISABLE_PIP_VERSION_CHECK=1 "$HERE/.venv/bin/python" -m pip install -q --no-deps \
    --force-reinstall "$PKG"
  printf '%s\n' "$hash" >"$stamp"
else
  echo "the socketlet package in ${HERE#"$ROOT"/}/.venv is up to date with python/"
fi
"$HERE/.venv/bin/python" -c 'import sys; from importlib.metadata import version as v; print("Python", sys.version.split()[0], "socketlet", v("socketlet"), "starlette", v("starlette"), "uvicorn", v("uvicorn"), "python-socketio", v("python-socketio"), "schemathesis", v("schemathesis"))'

# ---- 2. socket.io-client 4.x ---------------------------------------------------------------------
printf '\n--- socket.io-client 4.x (node --test) ---\n'
if ! node_test "$HERE" gateway.test.mjs cluster.test.mjs; then
  show_logs 20 "$E2E_ARTIFACTS"/gateway-node-*.log
  die "the gateway e2e suite failed (socket.io-client)"
fi

# ---- 3. python-socketio 5.x, schemathesis --------------------------------------------------------
printf '\n--- python-socketio 5.x and schemathesis (pytest) ---\n'
if ! (cd "$HERE" && with_limit "$HERE/.venv/bin/python" -m pytest -q "$@"); then
  show_logs 20 "$E2E_ARTIFACTS"/gateway-py-*.log
  die "the gateway e2e suite failed (python-socketio, schemathesis)"
fi
echo "gateway e2e suite passed"
