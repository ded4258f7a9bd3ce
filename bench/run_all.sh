#!/usr/bin/env bash
# Runs every micro benchmark (3 repetitions, aggregates only, so variance is
# visible) and then the loopback server benchmark.
set -euo pipefail
build=${1:?build dir}
here=$(cd "$(dirname "$0")" && pwd)
for b in "$build"/bench/*_bench; do
  echo "== $(basename "$b")"
  "$b" --benchmark_repetitions=3 --benchmark_report_aggregates_only=true \
       --benchmark_out="$build/$(basename "$b").json" --benchmark_out_format=json
done
echo "== server"
bash "$here/server_bench.sh" "$build" "$build/server_bench.json"
