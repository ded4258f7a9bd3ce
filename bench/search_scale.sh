#!/usr/bin/env bash
# How search latency grows with the population (issue 5: "near-flat: index
# lookups, never scans"). For each size in SIZES, generates that many
# patients with tools/synth (deterministic for SEED), loads them into a fresh
# vault and times the issue's three queries (bench/search_scale_bench.cc),
# then prints p50/p99 per size and the ratio of the largest size's p50 to the
# smallest's.
#
# 10,000 patients is about 3.5 million resources: minutes of load on the
# 2-core machine and several GB in $TMPDIR. It is a benchmark, never part of
# the test suite. Use a release build configured with -DPHIVAULT_BENCH=ON.
#
# Results are kept in RESULTS (one file per size); with REUSE=1 a size whose
# file exists is not run again, so the sizes can be run one at a time.
# Usage: SIZES="1000 10000" SEED=1 bench/search_scale.sh BUILD_DIR
set -euo pipefail
build=${1:?build dir}
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
synth="$build/tools/synth/phivault-synth"
bench="$build/bench/search_scale_bench"
sizes=${SIZES:-1000 10000}
seed=${SEED:-1}
results=${RESULTS:-$(mktemp -d "${TMPDIR:-/tmp}/phivault-search-scale.XXXXXX")}
mkdir -p "$results"
for exe in "$synth" "$bench"; do
  [[ -x $exe ]] || { echo "search_scale.sh: $exe not built (configure with -DPHIVAULT_BENCH=ON)" >&2; exit 1; }
done

for n in $sizes; do
  out="$results/$n.txt"
  if [[ ${REUSE:-0} == 1 && -s $out ]]; then
    echo "== $n patients: reusing $out"
    continue
  fi
  work=$(mktemp -d "${TMPDIR:-/tmp}/phivault-scale.XXXXXX")
  echo "== $n patients (seed $seed)"
  "$synth" --patients "$n" --seed "$seed" --out "$work/synth.ndjson" --samples "$root/data/samples"
  TMPDIR="$work" "$bench" "$work/synth.ndjson" | tee "$out.partial"
  mv "$out.partial" "$out"
  rm -rf "$work"
done

get() { awk -v k="$2" '$1 == "RESULT" && $2 == k { print $3 }' "$results/$1.txt"; }
read -r -a all <<<"$sizes"
echo
queries="1 2 3 4"
printf '%-10s %10s %12s' patients resources index_B/res
for q in $queries; do printf ' %9s %9s %8s' "q${q}_p50" "q${q}_p99" "q${q}_hits"; done
echo
for n in "${all[@]}"; do
  [[ -s $results/$n.txt ]] || continue
  printf '%-10s %10s %12s' "$n" "$(get "$n" resources)" "$(get "$n" index_bytes_per_resource)"
  for q in $queries; do
    printf ' %9s %9s %8s' "$(get "$n" "q${q}_p50_ms")" "$(get "$n" "q${q}_p99_ms")" "$(get "$n" "q${q}_matches")"
  done
  echo
done
small=${all[0]}
large=${all[${#all[@]}-1]}
if [[ $small != "$large" && -s $results/$small.txt && -s $results/$large.txt ]]; then
  echo
  echo "p50 growth from $small to $large patients (1.0 = flat):"
  for q in $queries; do
    a=$(get "$small" "q${q}_p50_ms")
    b=$(get "$large" "q${q}_p50_ms")
    printf '  q%d  %.3f ms -> %.3f ms  ratio %.2f  (matches per query %s -> %s)\n' "$q" "$a" "$b" \
      "$(echo "$b / $a" | bc -l)" "$(get "$small" "q${q}_matches")" "$(get "$large" "q${q}_matches")"
  done
fi
echo "results in $results"
