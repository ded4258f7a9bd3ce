#!/usr/bin/env bash
# Runs every fuzzer listed in BUILD/fuzzers.txt for SECONDS each, starting
# from its seed corpus (fuzz/corpus/<name without _fuzzer>). New inputs go to
# a scratch corpus so the committed seeds stay small. Any crash fails the run
# and leaves the reproducer in BUILD/fuzz-artifacts/.
set -euo pipefail
build=${1:?build dir}
seconds=${2:-60}
here=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$build/fuzz-artifacts"
status=0
while read -r name; do
  [[ -n "$name" ]] || continue
  seeds="$here/corpus/${name%_fuzzer}"
  scratch="$build/fuzz-corpus/$name"
  mkdir -p "$scratch"
  args=("$scratch")
  [[ -d "$seeds" ]] && args+=("$seeds")
  echo "fuzz: $name for ${seconds}s"
  if ! "$build/fuzz/$name" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
      -artifact_prefix="$build/fuzz-artifacts/$name-" -print_final_stats=0 "${args[@]}" \
      > "$build/fuzz-artifacts/$name.log" 2>&1; then
    echo "fuzz: $name FAILED; see $build/fuzz-artifacts/$name.log"
    tail -40 "$build/fuzz-artifacts/$name.log"
    status=1
  else
    grep -E "^#[0-9]+.*DONE" "$build/fuzz-artifacts/$name.log" | tail -1 || true
  fi
done < "$build/fuzzers.txt"
exit $status
