# Shell helpers shared by scripts/test.sh and the suites' run.sh files. Source it; it defines
# functions, and LIB_ROOT and E2E_ARTIFACTS (below).

# Prints an error and exits.
die() {
  printf '\nERROR: %s\n' "$*" >&2
  exit 1
}

# Installs Debian packages (apt-get update first), as root or through sudo.
apt_install() {
  command -v apt-get >/dev/null 2>&1 || die "apt-get not found; please install: $*"
  local sudo=()
  if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null 2>&1 || die "need root or sudo to apt-get install: $*"
    sudo=(sudo)
  fi
  echo "Installing Debian packages: $*"
  ${sudo[@]+"${sudo[@]}"} env DEBIAN_FRONTEND=noninteractive apt-get update
  ${sudo[@]+"${sudo[@]}"} env DEBIAN_FRONTEND=noninteractive \
    apt-get install -y --no-install-recommends "$@"
}

# Runs a command under a hard time limit of $SUITE_LIMIT seconds (default 300) when coreutils'
# timeout is there.
with_limit() {
  if command -v timeout >/dev/null 2>&1; then
    timeout --kill-after=10 "${SUITE_LIMIT:-300}" "$@"
  else
    "$@"
  fi
}

# ---------------------------------------------------------------------------------------------
# The end-to-end suites (tests/e2e): what their run.sh files and test.sh need before running them.

# The repository (this file is <repo>/scripts/lib.sh) and the e2e suites' logs.
LIB_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)"
E2E_ARTIFACTS="${SOCKETLET_E2E_ARTIFACTS:-$LIB_ROOT/tests/e2e/.artifacts}"

# Exports SOCKETLET_E2E_SERVER and SOCKETLET_BIN (defaults: the debug builds under
# <repo>/target), and dies when one of those named in the arguments ("server": the e2e server,
# "socketlet": the binary) is not there.
e2e_binaries() {
  : "${SOCKETLET_E2E_SERVER:=$LIB_ROOT/target/debug/examples/e2e_server}"
  : "${SOCKETLET_BIN:=$LIB_ROOT/target/debug/socketlet}"
  export SOCKETLET_E2E_SERVER SOCKETLET_BIN
  local b
  for b in "$@"; do
    case "$b" in
      server) [ -x "$SOCKETLET_E2E_SERVER" ] \
        || die "no e2e server at $SOCKETLET_E2E_SERVER (cargo build -p socketlet --example e2e_server)" ;;
      socketlet) [ -x "$SOCKETLET_BIN" ] \
        || die "no socketlet binary at $SOCKETLET_BIN (cargo build -p socketlet-cli)" ;;
      *) die "e2e_binaries: unknown binary $b" ;;
    esac
  done
}

# Node.js >= 18 (for node --test) and npm; Debian's packages when missing.
need_node() {
  if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
    apt_install nodejs npm
  fi
  local major
  major="$(node -p 'process.versions.node.split(".")[0]')"
  [ "$major" -ge 18 ] || die "Node.js >= 18 is needed for node --test, found $(node --version)"
}

# npm_ci <dir>: `npm ci` in <dir> (which starts from an empty node_modules), only when its
# node_modules was not installed from the current package.json and package-lock.json with this
# Node version.
npm_ci() {
  local dir="$1" stamp hash
  stamp="$dir/node_modules/.package-lock.sha256"
  hash="$(cat "$dir/package.json" "$dir/package-lock.json" | sha256sum | cut -d' ' -f1) $(node --version)"
  if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$hash" ]; then
    (cd "$dir" && npm ci --no-audit --no-fund)
    printf '%s\n' "$hash" >"$stamp"
  else
    echo "${dir#"$LIB_ROOT"/}/node_modules is up to date with package-lock.json"
  fi
}

# make_venv <dir> <requirements file>: (re)creates the venv <dir> with $PYTHON (default python3)
# when it is missing or broken (e.g. a half-made one without pip), and reinstalls the
# requirements when the file or the venv's Python changed.
make_venv() {
  local venv="$1" req="$2" python="${PYTHON:-python3}"
  command -v "$python" >/dev/null 2>&1 || apt_install python3 python3-venv
  if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -m pip --version >/dev/null 2>&1; then
    # Debian ships venv without ensurepip unless python3-venv is installed.
    if ! "$python" -c 'import venv, ensurepip' >/dev/null 2>&1; then
      apt_install python3-venv
    fi
    rm -rf "$venv"
    echo "Creating $venv"
    "$python" -m venv "$venv"
  fi
  local stamp="$venv/.requirements.sha256" hash
  hash="$(sha256sum <"$req" | cut -d' ' -f1) $("$venv/bin/python" -c 'import sys; print(sys.version.split()[0])')"
  if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$hash" ]; then
    PIP_DISABLE_PIP_VERSION_CHECK=1 "$venv/bin/python" -m pip install -r "$req"
    printf '%s\n' "$hash" >"$stamp"
  else
    echo "${venv#"$LIB_ROOT"/} is up to date with $(basename "$req")"
  fi
}

# node_test <dir> <test file>...: `node --test` in <dir>, one test file at a time (the flag exists
# from Node 20.10 on), under with_limit.
node_test() {
  local dir="$1" flags=(--test --test-reporter=spec)
  shift
  if grep -q -- '--test-concurrency' <<<"$(node --help)"; then
    flags+=(--test-concurrency=1)
  fi
  (cd "$dir" && with_limit node "${flags[@]}" "$@")
}

# node_suite <name> <lines> <dir> <test file>...: an e2e suite of node:test files in <dir>
# (node_test) whose processes log to $E2E_ARTIFACTS/<name>-*.log: those are cleared first, and
# their last <lines> lines shown if the suite fails, which is then fatal.
node_suite() {
  local name="$1" lines="$2" dir="$3"
  shift 3
  mkdir -p "$E2E_ARTIFACTS"
  rm -f "$E2E_ARTIFACTS/$name"-*.log
  if ! node_test "$dir" "$@"; then
    show_logs "$lines" "$E2E_ARTIFACTS/$name"-*.log
    die "the $name e2e suite failed"
  fi
  echo "$name e2e suite passed"
}

# show_logs <lines> <file>...: after a failure, the last <lines> lines of each log file that
# exists (callers pass globs of $E2E_ARTIFACTS), on stderr.
show_logs() {
  local lines="$1" f
  shift
  printf '\nThe logs of the processes the tests started are in %s\n' "$E2E_ARTIFACTS" >&2
  for f in "$@"; do
    [ -e "$f" ] || continue
    printf -- '--- last lines of %s ---\n' "${f#"$LIB_ROOT"/}" >&2
    tail -n "$lines" "$f" >&2 || true
  done
}
