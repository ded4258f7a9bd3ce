#!/usr/bin/env bash
# Synthetic population load: generates PATIENTS patients from the Synthea
# samples with tools/synth (deterministic for SEED) and imports them into a
# fresh vault, reporting generation and import rates and the vault's size.
# PATIENTS=10000 gives about 3.5 million resources and takes a while on the
# 2-core machine (minutes, and several GB of disk in $TMPDIR); it is a
# benchmark, never part of the test suite.
# Usage: PATIENTS=10000 SEED=1 bench/synth_load.sh BUILD_DIR
set -euo pipefail
build=${1:?build dir}
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
bin="$build/src/cli/phivault"
synth="$build/tools/synth/phivault-synth"
patients=${PATIENTS:-10000}
seed=${SEED:-1}

work=$(mktemp -d "${TMPDIR:-/tmp}/phivault-synth.XXXXXX")
trap 'rm -rf "$work"' EXIT

start=$(date +%s.%N)
"$synth" --patients "$patients" --seed "$seed" --out "$work/synth.ndjson" --samples "$root/data/samples"
gen_s=$(echo "$(date +%s.%N) - $start" | bc)
lines=$(wc -l < "$work/synth.ndjson")
bytes=$(stat -c %s "$work/synth.ndjson")

"$bin" keys generate --out "$work/key" >/dev/null
"$bin" init --data "$work/vault" --key-file "$work/key" >/dev/null
start=$(date +%s.%N)
import_out=$("$bin" import --data "$work/vault" --key-file "$work/key" "$work/synth.ndjson" 2>&1)
import_s=$(echo "$(date +%s.%N) - $start" | bc)
echo "$import_out" | tail -3
vault_bytes=$(du -sb "$work/vault" | cut -f1)

printf '%-32s %s\n' "patients" "$patients"
printf '%-32s %s\n' "resources" "$lines"
printf '%-32s %.0f (%.1f s, %.0f MB)\n' "generate (resources/s)" "$(echo "$lines / $gen_s" | bc -l)" "$gen_s" \
  "$(echo "$bytes / 1048576" | bc -l)"
printf '%-32s %.0f (%.1f s)\n' "import (resources/s, wall)" "$(echo "$lines / $import_s" | bc -l)" "$import_s"
printf '%-32s %.0f MB (%.0f bytes/resource)\n' "vault size" "$(echo "$vault_bytes / 1048576" | bc -l)" \
  "$(echo "$vault_bytes / $lines" | bc -l)"
