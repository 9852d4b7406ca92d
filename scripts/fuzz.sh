#!/usr/bin/env bash
# Runs the project's fuzz targets (fuzz/, a cargo-fuzz project of its own workspace).
#
#   scripts/fuzz.sh [--seconds N] [--quiet] [target...]
#
# Each target (all of fuzz/fuzz_targets/*.rs when none is named) runs for N seconds (default 60)
# with `cargo +nightly fuzz run <target> <corpus> -- -max_total_time=N`, where <corpus> is a
# temporary copy of the committed seeds fuzz/seeds/<target>/ (so the seeds are not grown by the
# run; a target without seeds starts from nothing). The targets are built first, in one cargo
# run. Installs cargo-fuzz when missing. Needs a nightly toolchain (`rustup toolchain install
# nightly`). Builds go to fuzz/target. --quiet keeps libFuzzer's output out of the terminal
# unless a target fails (then its last lines are shown).
#
# Exits non-zero when a target crashes (a panic, an overflow, a leak or a timeout), after
# printing where libFuzzer saved the input (fuzz/artifacts/<target>/) and how to replay it.
# Environment:
#   FUZZ_ARGS       extra libFuzzer options for every target, e.g. "-runs=10000000" (a run then
#                   ends at that many executions or N seconds, whichever comes first)
#   FUZZ_SANITIZER  cargo-fuzz's sanitizer (address, the default, or none: several times faster
#                   for async code, for long runs; the Rust code itself forbids `unsafe`)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)"
# shellcheck source=scripts/lib.sh
. "$ROOT/scripts/lib.sh"
FUZZ_DIR="$ROOT/fuzz"

usage() {
  sed -n '2,20p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
  exit "${1:-0}"
}

SECONDS_PER_TARGET=60
QUIET=0
TARGETS=()
while [ $# -gt 0 ]; do
  case "$1" in
    --quiet)
      QUIET=1
      shift
      ;;
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

command -v rustup >/dev/null 2>&1 && rustup toolchain list 2>/dev/null | grep -q '^nightly' ||
  die "the fuzz targets need a nightly toolchain (cargo-fuzz uses libFuzzer and sanitizers): rustup toolchain install nightly"
if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "Installing cargo-fuzz (once; cargo install --locked)"
  cargo install cargo-fuzz --locked
fi
SANITIZER=(--sanitizer "${FUZZ_SANITIZER:-address}")

WORK="$(mktemp -d "${TMPDIR:-/tmp}/socketlet-fuzz.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT

cd "$ROOT"
# One cargo run builds every target (cargo links them in parallel); `fuzz run` then finds them
# built.
build=(cargo +nightly fuzz build "${SANITIZER[@]}")
if [ ${#TARGETS[@]} -eq 1 ]; then
  build+=("${TARGETS[0]}")
fi
printf '==> building the fuzz targets (%s)\n' "${build[*]}"
"${build[@]}" || die "the fuzz targets do not build (see above)"

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
  started=$(date +%s)
  out=/dev/stdout
  if [ "$QUIET" = 1 ]; then
    out=/dev/null
  fi
  # shellcheck disable=SC2086 # FUZZ_ARGS is a list of options
  cargo +nightly fuzz run "${SANITIZER[@]}" "$t" "$corpus" -- \
    -max_total_time="$SECONDS_PER_TARGET" -print_final_stats=1 \
    -artifact_prefix="$artifacts/" ${FUZZ_ARGS:-} 2>&1 | tee "$log" >"$out" || status=$?
  elapsed=$(($(date +%s) - started))
  runs="$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)"
  rate="$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -n 1)"
  if [ "$status" -ne 0 ]; then
    FAILED+=("$t")
    crash="$(find "$artifacts" -type f -newer "$marker" 2>/dev/null | head -n 1)"
    SUMMARY+=("$t: FAILED after ${runs:-?} executions in $elapsed s (${rate:-?}/s)")
    if [ "$QUIET" = 1 ]; then
      tail -n 60 "$log" >&2
    fi
    printf '\nFuzz target %s failed (exit %s).\n' "$t" "$status" >&2
    if [ -n "$crash" ]; then
      printf 'The input is in %s\nReplay it: cargo +nightly fuzz run %s %s %s\n' \
        "$crash" "${SANITIZER[*]}" "$t" "$crash" >&2
    else
      printf 'No input was saved (a build failure?); the log is above.\n' >&2
    fi
  else
    SUMMARY+=("$t: ok, ${runs:-?} executions in $elapsed s (${rate:-?}/s)")
  fi
done

printf '\n==> summary\n'
printf '%s\n' "${SUMMARY[@]}"
if [ ${#FAILED[@]} -gt 0 ]; then
  die "fuzz targets failed: ${FAILED[*]} (inputs in fuzz/artifacts/<target>/)"
fi
