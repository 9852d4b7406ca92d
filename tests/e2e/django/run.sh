#!/usr/bin/env bash
# End-to-end test of the story's application, examples/django, in headless Chromium
# (story.test.mjs says what it checks): the example started with its own run.sh (Django on
# gunicorn behind nginx, socketlet, dramatiq workers, redis-server), once with the workers pushing
# through socketlet's server API, once through python-socketio's RedisManager, and once on
# RabbitMQ when one answers at 127.0.0.1:5672 (or $SOCKETLET_RABBITMQ_URL; skipped otherwise).
#
# Installs, only when missing: what examples/django/run.sh --setup installs (its venv from
# examples/django/requirements.txt, redis-server and nginx from Debian), Chromium (Debian's
# `chromium`), node_modules (npm ci from package-lock.json). Works from any directory. The
# measured figures go to tests/e2e/.artifacts/django-story.json and are printed at the end.
# Environment:
#   SOCKETLET_BIN           the socketlet binary (default <repo>/target/debug/socketlet, built
#                           with `cargo build -p socketlet-cli`)
#   SOCKETLET_RABBITMQ_URL  default amqp://guest:guest@127.0.0.1:5672/%2f
#   PYTHON                  the Python that makes the example's venv (default python3)
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)"
ROOT="$(cd "$HERE/../../.." && pwd -P)"
# shellcheck source=scripts/lib.sh
. "$ROOT/scripts/lib.sh"
CHROMIUM=/usr/bin/chromium
# Hard limit of the test run, in seconds (each wait in it has its own, much shorter, timeout).
SUITE_LIMIT=240

e2e_binaries socketlet
bash "$ROOT/examples/django/run.sh" --setup
need_node
if [ ! -x "$CHROMIUM" ]; then
  apt_install chromium
fi
[ -x "$CHROMIUM" ] || die "no Chromium at $CHROMIUM after apt-get install chromium"
npm_ci "$HERE"

mkdir -p "$E2E_ARTIFACTS"
rm -rf "$E2E_ARTIFACTS"/django-*
if ! node_test "$HERE" story.test.mjs; then
  for f in "$E2E_ARTIFACTS"/django-*/logs/*.log; do
    [ -e "$f" ] && show_logs 15 "$f"
  done
  die "the Django example's e2e test failed (screenshots: tests/e2e/.artifacts/django-*-failure.png)"
fi
printf '\nMeasured (tests/e2e/.artifacts/django-story.json):\n'
cat "$E2E_ARTIFACTS/django-story.json"
echo "Django example e2e suite passed"
