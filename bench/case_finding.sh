#!/usr/bin/env bash
# Case finding under one big push: for each N given, one patient and one transaction Bundle of N
# fracture Conditions (ICD-10 S72.0, hip, all on one day: one case listing them all). Prints the
# answer's status, the wall-clock time, what the database grew by and how many EpisodeOfCare
# versions the case took. With CLIENTS=k, k such transactions (k patients) are sent at once.
# Starts its own PostgreSQL (durable, as in production) and its own server.
# Usage: bench/case_finding.sh [N...]   (default: 250 500 1000 3000)
# Env: FLS_SERVER_BIN (default build/fls-server), CLIENTS (default 1), MAX_SECONDS per push (1800),
#      CODE (default S72.0; a code off the list, e.g. S73.0, measures the push without case finding)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
BIN=${FLS_SERVER_BIN:-$ROOT/build/fls-server}
CLIENTS=${CLIENTS:-1}
MAX_SECONDS=${MAX_SECONDS:-1800}
CODE=${CODE:-S72.0}
SIZES=("$@")
((${#SIZES[@]})) || SIZES=(250 500 1000 3000)
. "$ROOT/bench/lib.sh"
bench_start_pg cf 57000 20000
psql_() { "$PGBIN/psql" -X -At -h 127.0.0.1 -p "$PGPORT" -U postgres -d bench -c "$1"; }
FLS_AUTH_DIR="$TMP/auth" FLS_DEV_TOKEN_FILE="$TMP/auth/dev-token" FLS_DATABASE_URL="postgresql://postgres@127.0.0.1:$PGPORT/bench" FLS_PORT=$PORT "$BIN" >"$TMP/server.log" 2>&1 &
SERVER=$!
for _ in $(seq 600); do curl -sf "http://127.0.0.1:$PORT/readyz" >/dev/null && break; sleep 0.1; done
export FLS_TOKEN=$(cat "$TMP/auth/dev-token")  # an administrator's bearer token (docs/security.md)
AUTH=(-H "Authorization: Bearer $FLS_TOKEN")
curl -sf "http://127.0.0.1:$PORT/readyz" >/dev/null || { tail "$TMP/server.log" >&2; echo "the server is not ready" >&2; exit 1; }
B="http://127.0.0.1:$PORT"
echo "machine: $(nproc) cores; server: $BIN; PostgreSQL durable; code $CODE; $CLIENTS concurrent transaction(s) per size"
today=$(date -u -d '3 days ago' +%Y-%m-%d)

push() { # N FILE-PREFIX -> writes FILE-PREFIX.{patient,status,body}
  local n=$1 out=$2 pid
  pid=$(curl -s -X POST "${AUTH[@]}" "$B/Patient" -H 'Content-Type: application/fhir+json' \
    --data-binary '{"resourceType":"Patient","birthDate":"1940-01-01","gender":"female"}' |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')
  echo "$pid" >"$out.patient"
  python3 - "$n" "$pid" "$today" "$CODE" >"$out.json" <<'EOF'
import json, sys
n, pid, day, code = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
entries = [{"resource": {"resourceType": "Condition", "subject": {"reference": "Patient/" + pid},
            "clinicalStatus": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-clinical", "code": "active"}]},
            "verificationStatus": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-ver-status", "code": "confirmed"}]},
            "code": {"coding": [{"system": "http://hl7.org/fhir/sid/icd-10", "code": code}]},
            "onsetDateTime": day},
            "request": {"method": "POST", "url": "Condition"}} for _ in range(n)]
print(json.dumps({"resourceType": "Bundle", "type": "transaction", "entry": entries}))
EOF
  curl -s -o "$out.body" -w '%{http_code}' --max-time "$MAX_SECONDS" -X POST "${AUTH[@]}" "$B/" \
    -H 'Content-Type: application/fhir+json' --data-binary @"$out.json" >"$out.status" || echo "timeout" >"$out.status"
}

for n in "${SIZES[@]}"; do
  before=$(psql_ "SELECT pg_database_size('bench')")
  eoc_before=$(psql_ "SELECT count(*) FROM resource_version WHERE res_type = 'EpisodeOfCare'")
  start=$(date +%s.%N)
  pids=()
  for ((c = 0; c < CLIENTS; c++)); do
    push "$n" "$TMP/push-$n-$c" &
    pids+=($!)
  done
  wait "${pids[@]}"  # not the server, which is a background job too
  end=$(date +%s.%N)
  after=$(psql_ "SELECT pg_database_size('bench')")
  eoc_after=$(psql_ "SELECT count(*) FROM resource_version WHERE res_type = 'EpisodeOfCare'")
  statuses=$(for f in "$TMP"/push-"$n"-*.status; do cat "$f"; echo; done | sort | uniq -c | awk '{printf "%s x %s ", $2, $1}')
  pid=$(cat "$TMP/push-$n-0.patient")
  diag=$(psql_ "SELECT coalesce(max(jsonb_array_length(v.content->'diagnosis')), 0) FROM resource r JOIN resource_version v ON v.res_type = r.res_type AND v.res_id = r.res_id AND v.version_id = r.version_id WHERE r.res_type = 'EpisodeOfCare' AND v.content->'patient'->>'reference' = 'Patient/$pid'")
  awk -v n="$n" -v s="$start" -v t="$end" -v st="$statuses" -v g="$((after - before))" \
    -v e="$((eoc_after - eoc_before))" -v d="$diag" -v c="$CLIENTS" \
    'BEGIN { printf "%5d fractures x %d: %8.1f s   status %s  database +%6.1f MB   EpisodeOfCare versions %d   diagnoses on the case %d\n", n, c, t-s, st, g/1048576, e, d }'
done
