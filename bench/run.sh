#!/usr/bin/env bash
# Throughput of the FLS server on this machine: creates, reads, searches and Synthea transaction
# Bundles, with wrk on loopback. Starts its own durable PostgreSQL (fsync on, as in production)
# and its own server; prints one line per measurement. Usage: bench/run.sh [seconds per run]
# Needs: a build (./deploy/fls build) and wrk (apt-get install wrk).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
SECS=${1:-10}
command -v wrk >/dev/null || { echo "wrk is missing: apt-get install wrk" >&2; exit 1; }
PGBIN=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
TMP=$(mktemp -d /tmp/fls-bench.XXXXXX)
chmod 755 "$TMP"
PGPORT=$((56000 + RANDOM % 1000))
PORT=$((19000 + RANDOM % 1000))
as_pg() { if [[ $(id -u) == 0 ]]; then runuser -u postgres -- "$@"; else "$@"; fi; }
mkdir -p "$TMP/pg" "$TMP/sock"
[[ $(id -u) == 0 ]] && chown postgres "$TMP/pg" "$TMP/sock"
as_pg "$PGBIN/initdb" -D "$TMP/pg" -U postgres --auth=trust -E UTF8 --locale=C.UTF-8 >/dev/null
as_pg "$PGBIN/pg_ctl" -D "$TMP/pg" -l "$TMP/pg/log" -w -o "-c listen_addresses=127.0.0.1 -p $PGPORT -k $TMP/sock" start >/dev/null
cleanup() {
  [[ -n ${SERVER:-} ]] && kill "$SERVER" 2>/dev/null && wait "$SERVER" 2>/dev/null
  as_pg "$PGBIN/pg_ctl" -D "$TMP/pg" -m immediate -w stop >/dev/null 2>&1 || true
  rm -rf "$TMP"
}
trap cleanup EXIT
"$PGBIN/psql" -h 127.0.0.1 -p "$PGPORT" -U postgres -qc 'CREATE DATABASE bench'
FLS_DATABASE_URL="postgresql://postgres@127.0.0.1:$PGPORT/bench" FLS_PORT=$PORT "$ROOT/build/fls-server" >"$TMP/server.log" 2>&1 &
SERVER=$!
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$PORT/readyz" >/dev/null && break; sleep 0.1; done
B="http://127.0.0.1:$PORT"
echo "machine: $(nproc) cores; server threads: default; PostgreSQL durable (fsync on); wrk -t2 -d${SECS}s"
measure() { # NAME ARGS...
  local name=$1
  shift
  local out
  out=$(wrk -t2 -d"${SECS}s" --latency "$@")
  printf '%-34s %10s req/s   p50 %8s   p99 %8s   errors %s\n' "$name" \
    "$(awk '/Requests\/sec/ {print $2}' <<<"$out")" \
    "$(awk '$1=="50%" {print $2}' <<<"$out")" "$(awk '$1=="99%" {print $2}' <<<"$out")" \
    "$(grep -Eo 'Non-2xx or 3xx responses: [0-9]+' <<<"$out" | awk '{print $NF}' || true)"
}
measure "create Patient, c=8" -c8 -s bench/post_patient.lua "$B"
measure "create Patient, c=32" -c32 -s bench/post_patient.lua "$B"
# Statistics as autovacuum would have them in steady state (a bulk load outruns it).
"$PGBIN/psql" -h 127.0.0.1 -p "$PGPORT" -U postgres -qc 'ANALYZE' bench
ID=$(curl -s "$B/Patient?_count=1" | grep -o '"id": "[^"]*"' | head -1 | cut -d'"' -f4)
measure "read Patient, c=8" -c8 "$B/Patient/$ID"
measure "read Patient, c=32" -c32 "$B/Patient/$ID"
measure "search Patient by identifier, c=8" -c8 "$B/Patient?identifier=urn:oid:1.2.250.1.213.1.4.8%7Cbench-1-1"
measure "search Patient by name, c=8" -c8 "$B/Patient?name=helene&_count=10&_total=none"
PATIENTS=$(curl -s "$B/Patient?_summary=count" | grep -o '"total":[0-9]*' | cut -d: -f2)
echo "patients in the database: $PATIENTS"
# Synthea transaction Bundles, one client, with case finding on every Condition.
SHARED=${FLS_SHARED_DIR:-$ROOT/../shared}
START=$(date +%s.%N)
ENTRIES=0
for f in "$SHARED"/testdata/synthea-r4-transaction/*.json; do
  code=$(curl -s -o /dev/null -w '%{http_code}' -X POST "$B/" -H 'Content-Type: application/fhir+json' --data-binary @"$f")
  [[ $code == 200 ]] || echo "  $f: $code"
  ENTRIES=$((ENTRIES + $(grep -o '"request"' "$f" | wc -l)))
done
END=$(date +%s.%N)
awk -v e="$ENTRIES" -v s="$START" -v t="$END" 'BEGIN { printf "%-34s %10.0f entries/s (%d entries in %.1f s)\n", "Synthea transactions, 1 client", e/(t-s), e, t-s }'
