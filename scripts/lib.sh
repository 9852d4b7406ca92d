# Shell helpers shared by scripts/test.sh and the suites' run.sh files. Source it; it defines
# functions only.

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
