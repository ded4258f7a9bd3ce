#!/usr/bin/env bash
# Loopback server benchmark. In one run it:
#   1. creates a vault and imports the sample patients plus generated
#      Observations up to TOTAL resources (import rate, resources/s);
#   2. serves it and measures with wrk: GET /fhir/Patient/{id} at 64 and 256
#      connections, durable POST /fhir/Observation at 32 connections;
#   3. measures nginx serving the same Patient JSON bytes as a static file,
#      as the ceiling for reads;
#   4. measures the same GET served with auditing switched off
#      (build/bench/unaudited_server, benchmark builds only) on the same data,
#      alternating with `phivault serve` (the vault lock allows one at a time);
#   5. reads the server's RSS while it serves TOTAL resources.
# It also reports the machine's idle CPU share during the 64-connection GETs:
# a server that waits on its audit syncs leaves the CPUs idle.
# Each wrk measurement is repeated ROUNDS times; mean and stdev are reported.
# AUDIT_DELAY_US sets the server's --audit-commit-delay-us (default 2000).
# wrk opens every connection from 127.0.0.1, so the per-address cap is lifted.
# Usage: bench/server_bench.sh BUILD_DIR [OUT_JSON]
set -euo pipefail
build=${1:?build dir}
out_json=${2:-$build/server_bench.json}
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
bin="$build/src/cli/phivault"
unaudited_bin="$build/bench/unaudited_server"
total=${TOTAL:-100000}
duration=${DURATION:-10}
rounds=${ROUNDS:-3}
port=${PORT:-18080}
nginx_port=${NGINX_PORT:-18081}
unaudited_port=${UNAUDITED_PORT:-18082}

work=$(mktemp -d /tmp/phivault-bench.XXXXXX)
server_pid=""; nginx_started=""
cleanup() {
  [[ -n "$server_pid" ]] && kill "$server_pid" 2>/dev/null && wait "$server_pid" 2>/dev/null || true
  [[ -n "$nginx_started" ]] && nginx -c "$work/nginx.conf" -s stop 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

"$bin" keys generate --out "$work/key" >/dev/null
"$bin" init --data "$work/vault" --key-file "$work/key" >/dev/null

# Sample files plus generated Observations for the patients of the NDJSON set.
samples=("$root"/data/samples/synthea-10/*.000.ndjson "$root"/data/samples/synthea-bundles/patient-*.json)
have=$(cat "$root"/data/samples/synthea-10/*.000.ndjson | wc -l)
have=$((have + 3322))
extra=$((total > have ? total - have : 0))
grep -o '"id":"[^"]*"' "$root/data/samples/synthea-10/Patient.000.ndjson" | cut -d'"' -f4 > "$work/patients.txt"
awk -v n="$extra" 'NR==FNR { p[c++]=$0; next } END {
  for (i = 0; i < n; i++) {
    printf "{\"resourceType\":\"Observation\",\"id\":\"bench-%d\",\"status\":\"final\",\"category\":[{\"coding\":[{\"system\":\"http://terminology.hl7.org/CodeSystem/observation-category\",\"code\":\"vital-signs\"}]}],\"code\":{\"coding\":[{\"system\":\"http://loinc.org\",\"code\":\"8867-4\",\"display\":\"Heart rate\"}]},\"subject\":{\"reference\":\"Patient/%s\"},\"effectiveDateTime\":\"2024-01-01T00:00:00Z\",\"valueQuantity\":{\"value\":%d,\"unit\":\"/min\",\"system\":\"http://unitsofmeasure.org\",\"code\":\"/min\"}}\n", i, p[i % c], 60 + i % 40
  }
}' "$work/patients.txt" /dev/null > "$work/extra.ndjson"

import_out=$("$bin" import --data "$work/vault" --key-file "$work/key" "${samples[@]}" "$work/extra.ndjson" 2>&1)
import_rate=$(echo "$import_out" | sed -n 's/.*(\([0-9]*\) resources\/s).*/\1/p' | tail -1)
loaded=$(echo "$import_out" | sed -n 's/.*: \([0-9]*\) loaded.*/\1/p' | tail -1)

start_audited() {
  "$bin" serve --data "$work/vault" --key-file "$work/key" --listen "127.0.0.1:$port" --log-level warn \
    ${AUDIT_DELAY_US:+--audit-commit-delay-us "$AUDIT_DELAY_US"} --max-connections-per-address 0 \
    >> "$work/server.log" 2>&1 &
  server_pid=$!
  for _ in $(seq 100); do curl -sf "http://127.0.0.1:$port/readyz" >/dev/null && break; sleep 0.1; done
}
start_unaudited() {
  "$unaudited_bin" "$work/vault" "$work/key" "$unaudited_port" "http://127.0.0.1:$port" >> "$work/server.log" 2>&1 &
  server_pid=$!
  for _ in $(seq 100); do curl -sf "http://127.0.0.1:$unaudited_port/healthz" >/dev/null && break; sleep 0.1; done
}
stop_server() { kill "$server_pid"; wait "$server_pid" 2>/dev/null || true; server_pid=""; }
start_audited

patient=$(head -1 "$work/patients.txt")
token=$("$bin" token issue --data "$work/vault" --key-file "$work/key" --listen "127.0.0.1:$port" \
  --sub bench --role system --scope 'system/*.cruds' --lifetime-minutes 120)
auth=(-H "Authorization: Bearer $token")
curl -sf "${auth[@]}" "http://127.0.0.1:$port/fhir/Patient/$patient" > "$work/patient.json"
mkdir -p "$work/www"
cp "$work/patient.json" "$work/www/patient.json"
cat > "$work/nginx.conf" <<NGINX
worker_processes 2;
pid $work/nginx.pid;
error_log $work/nginx-error.log;
events { worker_connections 1024; }
http {
  access_log off;
  default_type application/fhir+json;
  client_body_temp_path $work/nginx-tmp;
  server { listen 127.0.0.1:$nginx_port; root $work/www; }
}
NGINX
nginx -c "$work/nginx.conf" && nginx_started=1

cat > "$work/post.lua" <<LUA
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/fhir+json"
wrk.headers["Authorization"] = "Bearer $token"
wrk.body = '{"resourceType":"Observation","status":"final","code":{"text":"bench"},"subject":{"reference":"Patient/$patient"},"valueQuantity":{"value":72,"unit":"/min"}}'
LUA

# wrk_run URL CONNECTIONS [SCRIPT] -> "rps p50_ms p99_ms"; requests carry the token
wrk_run() {
  local url=$1 conns=$2 script=${3:-}
  local args=(-t2 -c"$conns" -d"${duration}s" --latency -H "Authorization: Bearer $token")
  [[ -n "$script" ]] && args+=(-s "$script")
  local o
  o=$(wrk "${args[@]}" "$url")
  local rps p50 p99
  rps=$(echo "$o" | awk '/Requests\/sec/ {print $2}')
  p50=$(echo "$o" | awk '$1=="50%" {print $2}')
  p99=$(echo "$o" | awk '$1=="99%" {print $2}')
  echo "$rps $(to_ms "$p50") $(to_ms "$p99")"
}
# All-CPU counters "idle total" from /proc/stat, and the idle share (%) between two readings.
cpu_counters() { awk '/^cpu / {print $5+$6, $2+$3+$4+$5+$6+$7+$8+$9}' /proc/stat; }
idle_pct() { awk -v i0="$1" -v t0="$2" -v i1="$3" -v t1="$4" 'BEGIN { printf "%.1f", (t1 > t0 ? 100*(i1-i0)/(t1-t0) : 0) }'; }
to_ms() { awk -v v="$1" 'BEGIN { if (v ~ /us$/) { sub(/us/,"",v); print v/1000 } else if (v ~ /ms$/) { sub(/ms/,"",v); print v } else { sub(/s/,"",v); print v*1000 } }'; }
stats() { awk '{ s+=$1; ss+=$1*$1; n++ } END { m=s/n; v=ss/n-m*m; if (v<0) v=0; printf "%.1f %.1f\n", m, sqrt(v) }'; }

reads=(); nginx_r=(); posts=(); p50s=(); p99s=(); wp50s=(); wp99s=()
reads256=(); un64=(); un256=(); idle_a=(); idle_u=()
for r in $(seq "$rounds"); do
  read -r i0 t0 < <(cpu_counters)
  read -r a b c < <(wrk_run "http://127.0.0.1:$port/fhir/Patient/$patient" 64); reads+=("$a"); p50s+=("$b"); p99s+=("$c")
  read -r i1 t1 < <(cpu_counters); idle_a+=("$(idle_pct "$i0" "$t0" "$i1" "$t1")")
  read -r a _ _ < <(wrk_run "http://127.0.0.1:$port/fhir/Patient/$patient" 256); reads256+=("$a")
  read -r a _ _ < <(wrk_run "http://127.0.0.1:$nginx_port/patient.json" 64); nginx_r+=("$a")
  read -r a b c < <(wrk_run "http://127.0.0.1:$port/fhir/Observation" 32 "$work/post.lua"); posts+=("$a"); wp50s+=("$b"); wp99s+=("$c")
  rss_kb=$(awk '/VmRSS/ {print $2}' "/proc/$server_pid/status")
  hwm_kb=$(awk '/VmHWM/ {print $2}' "/proc/$server_pid/status")
  if [[ -x "$unaudited_bin" ]]; then
    stop_server; start_unaudited
    read -r i0 t0 < <(cpu_counters)
    read -r a _ _ < <(wrk_run "http://127.0.0.1:$unaudited_port/fhir/Patient/$patient" 64); un64+=("$a")
    read -r i1 t1 < <(cpu_counters); idle_u+=("$(idle_pct "$i0" "$t0" "$i1" "$t1")")
    read -r a _ _ < <(wrk_run "http://127.0.0.1:$unaudited_port/fhir/Patient/$patient" 256); un256+=("$a")
    stop_server; start_audited
  fi
done

read -r read_mean read_sd < <(printf '%s\n' "${reads[@]}" | stats)
read -r nginx_mean nginx_sd < <(printf '%s\n' "${nginx_r[@]}" | stats)
read -r post_mean post_sd < <(printf '%s\n' "${posts[@]}" | stats)
read -r p50_mean _ < <(printf '%s\n' "${p50s[@]}" | stats)
read -r p99_mean _ < <(printf '%s\n' "${p99s[@]}" | stats)
read -r wp50_mean _ < <(printf '%s\n' "${wp50s[@]}" | stats)
read -r wp99_mean _ < <(printf '%s\n' "${wp99s[@]}" | stats)
ratio=$(awk -v a="$read_mean" -v b="$nginx_mean" 'BEGIN { printf "%.2f", a/b }')
read -r r256_mean r256_sd < <(printf '%s\n' "${reads256[@]}" | stats)
read -r idle_a_mean _ < <(printf '%s\n' "${idle_a[@]}" | stats)
if (( ${#un64[@]} > 0 )); then
  read -r un64_mean un64_sd < <(printf '%s\n' "${un64[@]}" | stats)
  read -r un256_mean un256_sd < <(printf '%s\n' "${un256[@]}" | stats)
  read -r idle_u_mean _ < <(printf '%s\n' "${idle_u[@]}" | stats)
else
  un64_mean=0; un64_sd=0; un256_mean=0; un256_sd=0; idle_u_mean=0
fi
audit64=$(awk -v a="$read_mean" -v b="$un64_mean" 'BEGIN { printf "%.2f", (b > 0 ? a/b : 0) }')
audit256=$(awk -v a="$r256_mean" -v b="$un256_mean" 'BEGIN { printf "%.2f", (b > 0 ? a/b : 0) }')

cat > "$out_json" <<JSON
{
  "resources_stored": ${loaded:-0},
  "import_resources_per_s": ${import_rate:-0},
  "read_patient_rps": {"mean": $read_mean, "stdev": $read_sd, "p50_ms": $p50_mean, "p99_ms": $p99_mean, "connections": 64},
  "read_patient_rps_256_connections": {"mean": $r256_mean, "stdev": $r256_sd},
  "unaudited_read_rps": {"c64": {"mean": $un64_mean, "stdev": $un64_sd}, "c256": {"mean": $un256_mean, "stdev": $un256_sd}},
  "audited_vs_unaudited_ratio": {"c64": $audit64, "c256": $audit256},
  "idle_cpu_pct_c64": {"audited": $idle_a_mean, "unaudited": $idle_u_mean},
  "nginx_same_bytes_rps": {"mean": $nginx_mean, "stdev": $nginx_sd},
  "read_vs_nginx_ratio": $ratio,
  "durable_create_observation_rps": {"mean": $post_mean, "stdev": $post_sd, "p50_ms": $wp50_mean, "p99_ms": $wp99_mean, "connections": 32},
  "server_rss_mb": $((rss_kb / 1024)),
  "server_peak_rss_mb": $((hwm_kb / 1024)),
  "rounds": $rounds, "seconds_per_round": $duration
}
JSON
cat "$out_json"
printf '\n%-40s %12s %10s\n' "measure" "value" "target"
printf '%-40s %12s %10s\n' "resources stored" "${loaded:-0}" "100000"
printf '%-40s %12s %10s\n' "import (resources/s)" "${import_rate:-0}" ">=20000"
printf '%-40s %12s %10s\n' "GET Patient (req/s, 64 conns)" "$read_mean±$read_sd" ""
printf '%-40s %12s %10s\n' "nginx same bytes (req/s)" "$nginx_mean±$nginx_sd" ""
printf '%-40s %12s %10s\n' "read / nginx" "$ratio" ">=0.5"
printf '%-40s %12s %10s\n' "GET Patient (req/s, 256 conns)" "$r256_mean±$r256_sd" ""
printf '%-40s %12s %10s\n' "unaudited GET, 64 / 256 conns" "$un64_mean / $un256_mean" ""
printf '%-40s %12s %10s\n' "audited / unaudited, 64 / 256 conns" "$audit64 / $audit256" ">=0.8"
printf '%-40s %12s %10s\n' "idle CPU % at 64 conns, audited / unaud." "$idle_a_mean / $idle_u_mean" ""
printf '%-40s %12s %10s\n' "GET p50 / p99 (ms)" "$p50_mean / $p99_mean" ""
printf '%-40s %12s %10s\n' "durable POST (req/s, 32 conns)" "$post_mean±$post_sd" ">=5000"
printf '%-40s %12s %10s\n' "POST p50 / p99 (ms)" "$wp50_mean / $wp99_mean" ""
printf '%-40s %12s %10s\n' "server RSS (MB)" "$((rss_kb / 1024)) (peak $((hwm_kb / 1024)))" "<300"
