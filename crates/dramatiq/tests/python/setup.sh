#!/usr/bin/env bash
# Makes (or brings up to date) the venv of socketlet-dramatiq's integration tests,
# crates/dramatiq/tests/python/.venv, from requirements.txt (real dramatiq from PyPI, pinned).
# The tests look for it there (or at $SOCKETLET_DRAMATIQ_VENV), and skip without it unless
# SOCKETLET_REQUIRE_DRAMATIQ is set (scripts/test.sh runs this script and sets that).
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)"
# shellcheck source=scripts/lib.sh
. "$HERE/../../../../scripts/lib.sh"
make_venv "${SOCKETLET_DRAMATIQ_VENV:-$HERE/.venv}" "$HERE/requirements.txt"
