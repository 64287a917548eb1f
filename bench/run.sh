#!/usr/bin/env bash
# Throughput of the FLS server on this machine: creates, reads, searches and Synthea transaction
# Bundles, with wrk on loopback. Starts its own durable PostgreSQL (fsync on, as in production)
# and its own server; prints one line per measurement. Usage: bench/run.sh [seconds per run]
# Needs: a build (./deploy/fls build) and wrk (apt-get install wrk).
# FLS_BENCH_SERVER=path runs another server binary (say, an older build) against the same steps.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
SECS=${1:-10}
command -v wrk >/dev/null || { echo "wrk is missing: apt-get install wrk" >&2; exit 1; }
. "$ROOT/bench/lib.sh"
bench_start_pg run 56000 19000
BIN=${FLS_BENCH_SERVER:-$ROOT/build/fls-server}
FLS_HOME=$ROOT FLS_AUTH_DIR="$TMP/auth" FLS_DEV_TOKEN_FILE="$TMP/auth/dev-token" FLS_DATABASE_URL="postgresql://postgres@127.0.0.1:$PGPORT/bench" FLS_PORT=$PORT "$BIN" >"$TMP/server.log" 2>&1 &
SERVER=$!
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$PORT/readyz" >/dev/null && break; sleep 0.1; done
export FLS_TOKEN=$(cat "$TMP/auth/dev-token")  # an administrator's bearer token (docs/security.md)
AUTH=(-H "Authorization: Bearer $FLS_TOKEN")
B="http://127.0.0.1:$PORT"
echo "machine: $(nproc) cores; server threads: default; PostgreSQL durable (fsync on); wrk -t2 -d${SECS}s"
measure() { # NAME ARGS...
  local name=$1
  shift
  local out
  out=$(wrk -t2 -d"${SECS}s" --latency "${AUTH[@]}" "$@")
  printf '%-34s %10s req/s   p50 %8s   p99 %8s   errors %s\n' "$name" \
    "$(awk '/Requests\/sec/ {print $2}' <<<"$out")" \
    "$(awk '$1=="50%" {print $2}' <<<"$out")" "$(awk '$1=="99%" {print $2}' <<<"$out")" \
    "$(grep -Eo 'Non-2xx or 3xx responses: [0-9]+' <<<"$out" | awk '{print $NF}' || true)"
}
measure "liveness probe /healthz, c=32" -c32 "$B/healthz"
measure "create Patient, c=8" -c8 -s bench/post_patient.lua "$B"
measure "create Patient, c=32" -c32 -s bench/post_patient.lua "$B"
# Statistics as autovacuum would have them in steady state (a bulk load outruns it).
"$PGBIN/psql" -h 127.0.0.1 -p "$PGPORT" -U postgres -qc 'ANALYZE' bench
ID=$(curl -s "${AUTH[@]}" "$B/Patient?_count=1" | grep -o '"id": "[^"]*"' | head -1 | cut -d'"' -f4)
measure "read Patient, c=8" -c8 "$B/Patient/$ID"
measure "read Patient, c=32" -c32 "$B/Patient/$ID"
measure "search Patient by identifier, c=8" -c8 "$B/Patient?identifier=urn:oid:1.2.250.1.213.1.4.8%7Cbench-1-1"
measure "search Patient by name, c=8" -c8 "$B/Patient?name=helene&_count=10&_total=none"
PATIENTS=$(curl -s "${AUTH[@]}" "$B/Patient?_summary=count" | grep -o '"total":[0-9]*' | cut -d: -f2)
echo "patients in the database: $PATIENTS"
# Synthea transaction Bundles, one client, with case finding on every Condition.
SHARED=${FLS_SHARED_DIR:-$ROOT/../shared}
START=$(date +%s.%N)
ENTRIES=0
for f in "$SHARED"/testdata/synthea-r4-transaction/*.json; do
  code=$(curl -s -o /dev/null -w '%{http_code}' -X POST "${AUTH[@]}" "$B/" -H 'Content-Type: application/fhir+json' --data-binary @"$f")
  [[ $code == 200 ]] || echo "  $f: $code"
  ENTRIES=$((ENTRIES + $(grep -o '"request"' "$f" | wc -l)))
done
END=$(date +%s.%N)
awk -v e="$ENTRIES" -v s="$START" -v t="$END" 'BEGIN { printf "%-34s %10.0f entries/s (%d entries in %.1f s)\n", "Synthea transactions, 1 client", e/(t-s), e, t-s }'
# Liveness under load: /healthz sampled every 50 ms while 10 clients push the biggest Synthea
# Bundle at once (every worker busy with parsing, validation, case finding and the database).
BIG=$(ls -S "$SHARED"/testdata/synthea-r4-transaction/*.json | head -1)
PIDS=()
for i in $(seq 10); do
  curl -s -o /dev/null -X POST "${AUTH[@]}" "$B/" -H 'Content-Type: application/fhir+json' --data-binary @"$BIG" &
  PIDS+=($!)
done
: >"$TMP/probe.txt"
while kill -0 "${PIDS[0]}" 2>/dev/null || kill -0 "${PIDS[-1]}" 2>/dev/null; do
  curl -s -o /dev/null -w '%{http_code} %{time_total}\n' --max-time 60 "${AUTH[@]}" "$B/healthz" >>"$TMP/probe.txt"
  sleep 0.05
done
wait "${PIDS[@]}" 2>/dev/null || true
sort -k2 -n "$TMP/probe.txt" | awk '{ t[NR] = $2 * 1000; if ($1 != 200) bad++ }
  function at(q,  i) { i = int(NR * q); if (i < 1) i = 1; return t[i] }
  END {
    if (NR == 0) { print "liveness under load: no sample"; exit }
    printf "%-34s %10d samples   p50 %6.2fms   p99 %6.2fms   max %6.2fms   non-200 %d\n", "/healthz during 10 big Bundles", NR, at(0.5), at(0.99), t[NR], bad + 0
  }'
