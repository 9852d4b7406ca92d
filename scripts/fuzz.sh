#!/usr/bin/env bash
# Runs the project's fuzz targets (fuzz/, a cargo-fuzz project of its own workspace).
#
#   scripts/fuzz.sh [--seconds N] [target...]
#
# Each target (all of fuzz/fuzz_targets/*.rs when none is named) runs for N seconds (default 60)
# with `cargo +nightly fuzz run <target> <corpus> -- -max_total_time=N`, where <corpus> is a
# temporary copy of the committed seeds fuzz/seeds/<target>/ (so the seeds are not grown by the
# run; a target without seeds starts from nothing). Installs cargo-fuzz when missing. Needs a
# nightly toolchain (`rustup toolchain install nightly`). Builds go to fuzz/target.
#
# Exits non-zero when a target crashes (a panic, an overflow, a leak or a timeout), after
# printing where libFuzzer saved the input (fuzz/artifacts/<target>/) and how to replay it.
# Environment:
#   FUZZ_ARGS  extra libFuzzer options for every target, e.g. "-max_len=65536 -rss_limit_mb=4096"
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)"
# shellcheck source=scripts/lib.sh
. "$ROOT/scripts/lib.sh"
FUZZ_DIR="$ROOT/fuzz"

usage() {
  sed -n '2,16p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
  exit "${1:-0}"
}

SECONDS_PER_TARGET=60
TARGETS=()
while [ $# -gt 0 ]; do
  case "$1" in
    --seconds)
      [ $# -ge 2 ] || die "--seconds needs a number"
      SECONDS_PER_TARGET="$2"
      shift 2
      ;;
    --seconds=*)
      SECONDS_PER_TARGET="${1#--seconds=}"
      shift
      ;;
    -h | --help) usage 0 ;;
    -*) die "unknown option $1 (see scripts/fuzz.sh --help)" ;;
    *)
      TARGETS+=("$1")
      shift
      ;;
  esac
done
case "$SECONDS_PER_TARGET" in
  '' | *[!0-9]*) die "--seconds takes a whole number of seconds, not '$SECONDS_PER_TARGET'" ;;
esac

ALL_TARGETS=()
for f in "$FUZZ_DIR"/fuzz_targets/*.rs; do
  [ -e "$f" ] || continue
  t="$(basename "$f" .rs)"
  ALL_TARGETS+=("$t")
done
[ ${#ALL_TARGETS[@]} -gt 0 ] || die "no fuzz targets in $FUZZ_DIR/fuzz_targets"
if [ ${#TARGETS[@]} -eq 0 ]; then
  TARGETS=("${ALL_TARGETS[@]}")
fi
for t in "${TARGETS[@]}"; do
  [ -f "$FUZZ_DIR/fuzz_targets/$t.rs" ] || die "no fuzz target '$t' (have: ${ALL_TARGETS[*]})"
done

rustup toolchain list 2>/dev/null | grep -q '^nightly' ||
  die "cargo-fuzz needs a nightly toolchain: rustup toolchain install nightly"
if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "Installing cargo-fuzz"
  cargo install cargo-fuzz --locked
fi

WORK="$(mktemp -d "${TMPDIR:-/tmp}/socketlet-fuzz.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT

cd "$ROOT"
SUMMARY=()
FAILED=()
for t in "${TARGETS[@]}"; do
  printf '\n==> fuzz target %s (%s s)\n' "$t" "$SECONDS_PER_TARGET"
  corpus="$WORK/corpus/$t"
  mkdir -p "$corpus"
  if [ -d "$FUZZ_DIR/seeds/$t" ]; then
    cp -R "$FUZZ_DIR/seeds/$t/." "$corpus/"
  fi
  artifacts="$FUZZ_DIR/artifacts/$t"
  mkdir -p "$artifacts"
  marker="$WORK/$t.start"
  touch "$marker"
  log="$WORK/$t.log"
  status=0
  # shellcheck disable=SC2086 # FUZZ_ARGS is a list of options
  cargo +nightly fuzz run "$t" "$corpus" -- \
    -max_total_time="$SECONDS_PER_TARGET" -print_final_stats=1 \
    -artifact_prefix="$artifacts/" ${FUZZ_ARGS:-} 2>&1 | tee "$log" || status=$?
  runs="$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)"
  rate="$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -n 1)"
  if [ "$status" -ne 0 ]; then
    FAILED+=("$t")
    crash="$(find "$artifacts" -type f -newer "$marker" 2>/dev/null | head -n 1)"
    SUMMARY+=("$t: FAILED after ${runs:-?} executions (${rate:-?}/s)")
    printf '\nFuzz target %s failed (exit %s).\n' "$t" "$status" >&2
    if [ -n "$crash" ]; then
      printf 'The input is in %s\nReplay it: cargo +nightly fuzz run %s %s\n' \
        "$crash" "$t" "$crash" >&2
    else
      printf 'No input was saved (a build failure?); the log is above.\n' >&2
    fi
  else
    SUMMARY+=("$t: ok, ${runs:-?} executions in $SECONDS_PER_TARGET s (${rate:-?}/s)")
  fi
done

printf '\n==> summary\n'
printf '%s\n' "${SUMMARY[@]}"
if [ ${#FAILED[@]} -gt 0 ]; then
  die "fuzz targets failed: ${FAILED[*]} (inputs in fuzz/artifacts/<target>/)"
fi
