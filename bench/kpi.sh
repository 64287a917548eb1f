#!/usr/bin/env bash
# The quality indicators at scale: CASES cases (1,000,000) over 200 sites in 10 regions and 5
# years, written straight into the FLS tables by SQL (the cases, their event logs, DXA items,
# contacts and fractures, with the mix of a working FLS), then each Measure's $evaluate-measure and
# the dashboard's data call timed, overall, for a region and for a site, cold (the first call
# after PostgreSQL restarted, its buffers empty) and warm (the best of 3 calls after).
# Starts its own PostgreSQL (durable) and server. Prints a table; with APPEND=1 appends it to
# docs/performance.md with the machine and the command.
# Usage: bench/kpi.sh   Env: FLS_SERVER_BIN (build/fls-server), CASES (1000000), APPEND,
#        HOLD=1 (generate, then keep PostgreSQL and the server running for profiling)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
BIN=${FLS_SERVER_BIN:-$ROOT/build/fls-server}
CASES=${CASES:-1000000}
. "$ROOT/bench/lib.sh"
bench_start_pg kpi 59000 22000
PSQL=("$PGBIN/psql" -h 127.0.0.1 -p "$PGPORT" -U postgres -d bench -v ON_ERROR_STOP=1 -qAt)
start_server() {
  FLS_AUTH_DIR="$TMP/auth" FLS_DEV_TOKEN_FILE="$TMP/auth/dev-token" FLS_DATABASE_URL="postgresql://postgres@127.0.0.1:$PGPORT/bench" \
    FLS_PORT=$PORT FLS_TIMER_INTERVAL_S=0 "$BIN" >>"$TMP/server.log" 2>&1 &
  SERVER=$!
  for _ in $(seq 600); do curl -sf "http://127.0.0.1:$PORT/readyz" >/dev/null && break; sleep 0.1; done
  curl -sf "http://127.0.0.1:$PORT/readyz" >/dev/null || { tail "$TMP/server.log" >&2; echo "the server is not ready" >&2; exit 1; }
  TOKEN=$(cat "$TMP/auth/dev-token")
}
start_server
BASE="http://127.0.0.1:$PORT"
AUTH=(-H "Authorization: Bearer $TOKEN")
CB=http://fls-server.org/fhir

t0=$(date +%s)
for r in $(seq 1 10); do
  curl -sf "${AUTH[@]}" -X PUT -H 'Content-Type: application/fhir+json' "$BASE/Organization/region-$r" \
    -d "{\"resourceType\":\"Organization\",\"id\":\"region-$r\",\"name\":\"Region $r\"}" >/dev/null
done
for s in $(seq 1 200); do
  r=$(((s - 1) % 10 + 1))
  curl -sf "${AUTH[@]}" -X PUT -H 'Content-Type: application/fhir+json' "$BASE/Organization/site-$s" \
    -d "{\"resourceType\":\"Organization\",\"id\":\"site-$s\",\"name\":\"Site $s\",\"partOf\":{\"reference\":\"Organization/region-$r\"},\"extension\":[{\"url\":\"$CB/StructureDefinition/fls-expected-caseload\",\"valueInteger\":1100}]}" >/dev/null
done

# The cases: index fractures spread over the 5 years before last month, 200 sites; 20% hip, 15%
# vertebra, the rest other sites; 85% enrolled (day 5-125), 8% excluded (a quarter of them not a
# fragility fracture), 60% treatment decided, 45% started, contacts at 4 and 12 months for half,
# a DXA item for 70% (resulted for 75% of those), a refracture for 6%.
# (Row triggers off while generating: the per-case facts are computed once at the end, set-based,
# as a bulk import would.)
"${PSQL[@]}" <<SQL
SET session_replication_role = replica;
SELECT setseed(0.42);
CREATE TEMP TABLE g AS
SELECT i, 'bench-' || i AS ep, 'site-' || (1 + i % 200) AS site,
       (current_date - 30 - (random() * 1826)::int) AS day, random() AS r1, random() AS r2, random() AS r3, random() AS r4
FROM generate_series(1, $CASES) i;
INSERT INTO fls_case (episode_id, patient_id, site_org, open, stage, index_site, index_day, high_energy, source, opened_at,
                      phone, referring_physician, decided_drug, current_drug)
SELECT ep, 'bench-patient-' || i, site, true,
       CASE WHEN r1 < 0.08 THEN 'excluded' WHEN r2 < 0.45 THEN 'follow-up' WHEN r2 < 0.6 THEN 'treatment-decision' ELSE 'investigating' END,
       CASE WHEN r3 < 0.20 THEN 'hip' WHEN r3 < 0.35 THEN 'vertebra' WHEN r3 < 0.60 THEN 'distal-radius' WHEN r3 < 0.75 THEN 'proximal-humerus'
            WHEN r3 < 0.85 THEN 'pelvis' ELSE 'ankle' END,
       day, false, 'data', (day + (r4 * 20)::int)::timestamptz,
       CASE WHEN r4 < 0.9 THEN '+33 6 00 00 00 00' END, CASE WHEN r4 < 0.85 THEN 'Practitioner/p' END,
       CASE WHEN r2 < 0.6 THEN 'M05BA04' END, CASE WHEN r2 < 0.45 THEN 'M05BA04' END
FROM g;
INSERT INTO fls_case_fracture (condition_id, episode_id, role, site, grio, fracture_day)
SELECT 'bench-c-' || i, ep, 'index-fracture', CASE WHEN r3 < 0.20 THEN 'hip' WHEN r3 < 0.35 THEN 'vertebra' ELSE 'distal-radius' END,
       'severe', day FROM g;
INSERT INTO fls_case_fracture (condition_id, episode_id, role, site, grio, fracture_day)
SELECT 'bench-r-' || i, ep, 'refracture', 'hip', 'severe', day + 100 + (r4 * 400)::int FROM g WHERE r4 < 0.06;
INSERT INTO fls_case_event (episode_id, at, from_stage, to_stage, event, reason, source, actor)
SELECT ep, (day + 5 + (r4 * 120)::int)::timestamptz, 'identified', 'investigating', 'enrol', NULL, 'user', 'bench' FROM g WHERE r1 >= 0.15;
INSERT INTO fls_case_event (episode_id, at, from_stage, to_stage, event, reason, source, actor)
SELECT ep, (day + 3 + (r4 * 60)::int)::timestamptz, 'identified', 'excluded', 'exclude',
       CASE WHEN r1 < 0.02 THEN 'not-fragility' ELSE 'declined' END, 'user', 'bench' FROM g WHERE r1 < 0.08;
INSERT INTO fls_case_event (episode_id, at, from_stage, to_stage, event, reason, source, actor)
SELECT ep, (day + 40 + (r4 * 100)::int)::timestamptz, 'investigating', 'falls-assessed', 'falls-assessment', NULL, 'user', 'bench'
FROM g WHERE r1 >= 0.15 AND r3 < 0.7;
INSERT INTO fls_case_event (episode_id, at, from_stage, to_stage, event, reason, source, actor)
SELECT ep, (day + 60 + (r4 * 80)::int)::timestamptz, 'treatment-decision', 'treatment-decided', 'decide-treatment', NULL, 'user', 'bench'
FROM g WHERE r1 >= 0.15 AND r2 < 0.6;
INSERT INTO fls_case_event (episode_id, at, from_stage, to_stage, event, reason, source, actor)
SELECT ep, (day + 70 + (r4 * 90)::int)::timestamptz, 'treatment-decided', 'follow-up', 'treatment-started', NULL, 'data', 'bench'
FROM g WHERE r1 >= 0.15 AND r2 < 0.45;
INSERT INTO fls_case_item (episode_id, item, service_request_id, task_id, required, status, result_day)
SELECT ep, 'dxa', 'bench-sr-' || i, 'bench-t-' || i, true, CASE WHEN r4 < 0.75 THEN 'resulted' ELSE 'ordered' END,
       CASE WHEN r4 < 0.75 THEN day + 20 + (r3 * 100)::int END FROM g WHERE r1 >= 0.15 AND r2 < 0.7;
INSERT INTO fls_contact (episode_id, occurred, occurred_day, direction, reached, adherent, communication_id)
SELECT ep, (day + 120)::timestamptz, day + 120, 'outbound', r4 < 0.8, CASE WHEN r4 < 0.8 THEN r3 < 0.7 END, 'bench-k1-' || i
FROM g WHERE r1 >= 0.15 AND r2 < 0.45;
INSERT INTO fls_contact (episode_id, occurred, occurred_day, direction, reached, adherent, communication_id)
SELECT ep, (day + 360)::timestamptz, day + 360, 'outbound', r4 < 0.7, CASE WHEN r4 < 0.7 THEN r3 < 0.6 END, 'bench-k2-' || i
FROM g WHERE r1 >= 0.15 AND r2 < 0.45 AND day + 360 < current_date;
SET session_replication_role = origin;
ANALYZE;
TRUNCATE fls_case_kpi;
INSERT INTO fls_case_kpi SELECT * FROM fls_case_kpi_full;
TRUNCATE fls_fracture_kpi;
INSERT INTO fls_fracture_kpi SELECT * FROM fls_fracture_kpi_full;
-- What autovacuum does in steady state: the statistics, and the visibility map that lets the
-- fracture goal read its index alone (a table just filled has none).
VACUUM (ANALYZE) fls_case_kpi, fls_fracture_kpi;
ANALYZE;
SQL
echo "generated $CASES cases in $(($(date +%s) - t0)) s: $("${PSQL[@]}" -c "SELECT pg_size_pretty(pg_database_size('bench'))")"
if [[ ${HOLD:-} == 1 ]]; then  # for profiling: keep both running until interrupted
  echo "holding: PostgreSQL on 127.0.0.1:$PGPORT (database bench), the server on $BASE, token in $TMP/auth/dev-token"
  while sleep 3600; do :; done
fi

YEAR_END=$(date -d "-31 days" +%F)
YEAR_START=$(date -d "-395 days" +%F)
FIVE_START=$(date -d "-1857 days" +%F)
MEASURES=$(curl -sf "${AUTH[@]}" "$BASE/Measure?_count=100" | python3 -c 'import json,sys; print(" ".join(sorted(e["resource"]["id"] for e in json.load(sys.stdin)["entry"])))')

# One timed call: seconds.
timed() { curl -s -o /dev/null -w '%{http_code} %{time_total}' "${AUTH[@]}" "$BASE$1"; }
# cold (after a PostgreSQL restart) and the best of 3 warm calls: "cold warm"
cold_warm() {
  as_pg "$PGBIN/pg_ctl" -D "$TMP/pg" -m fast -w restart >/dev/null
  # the server notices the restart and reconnects (a request may be 503 meanwhile)
  for _ in $(seq 200); do curl -sf "${AUTH[@]}" "$BASE/Organization/site-1" >/dev/null && break; sleep 0.1; done
  local c w best=999 code
  read -r code c < <(timed "$1")
  [[ $code == 200 ]] || { echo "$1 answered $code" >&2; exit 1; }
  for _ in 1 2 3; do read -r code w < <(timed "$1"); best=$(python3 -c "print(min($best, $w))"); done
  printf '%s %s' "$c" "$best"
}

{
  echo
  echo "## $(date +%F), quality indicators over $CASES cases, 200 sites, 5 years (\`bench/kpi.sh\`)"
  echo
  echo "Machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo); PostgreSQL $("$PGBIN/postgres" --version | awk '{print $3}') durable, default settings; the server and PostgreSQL on the same machine. Command: \`CASES=$CASES bench/kpi.sh\`. Seconds per call, cold (the first after PostgreSQL restarted) / warm (best of 3)."
  echo
  echo "| call | overall, last year | region-1 (20 sites), last year | site-1, 5 years |"
  echo "| --- | --- | --- | --- |"
  for m in $MEASURES; do
    extra=""
    [[ $m == ctf-* ]] && extra="&baselineStart=$FIVE_START&baselineEnd=$(date -d "$YEAR_START -1 day" +%F)"
    a=$(cold_warm "/Measure/$m/\$evaluate-measure?periodStart=$YEAR_START&periodEnd=$YEAR_END$extra")
    b=$(cold_warm "/Measure/$m/\$evaluate-measure?periodStart=$YEAR_START&periodEnd=$YEAR_END&subject=Organization/region-1$extra")
    c=$(cold_warm "/Measure/$m/\$evaluate-measure?periodStart=$FIVE_START&periodEnd=$YEAR_END&subject=Organization/site-1$extra")
    echo "| \`$m\` | ${a/ / \/ } | ${b/ / \/ } | ${c/ / \/ } |"
  done
  base="&baselineStart=$FIVE_START&baselineEnd=$(date -d "$YEAR_START -1 day" +%F)"
  a=$(cold_warm "/\$fls-dashboard?periodStart=$YEAR_START&periodEnd=$YEAR_END$base")
  b=$(cold_warm "/\$fls-dashboard?periodStart=$YEAR_START&periodEnd=$YEAR_END&subject=Organization/region-1$base")
  c=$(cold_warm "/\$fls-dashboard?periodStart=$FIVE_START&periodEnd=$YEAR_END&subject=Organization/site-1$base")
  echo "| \`\$fls-dashboard\` | ${a/ / \/ } | ${b/ / \/ } | ${c/ / \/ } |"
  a=$(cold_warm "/\$fls-projection?periodStart=$YEAR_START&periodEnd=$YEAR_END")
  b=$(cold_warm "/\$fls-projection?periodStart=$YEAR_START&periodEnd=$YEAR_END&subject=Organization/region-1")
  c=$(cold_warm "/\$fls-projection?periodStart=$FIVE_START&periodEnd=$YEAR_END&subject=Organization/site-1")
  echo "| \`\$fls-projection\` | ${a/ / \/ } | ${b/ / \/ } | ${c/ / \/ } |"
} | tee "$TMP/table.md"
if [[ ${APPEND:-} == 1 ]]; then cat "$TMP/table.md" >>"$ROOT/docs/performance.md"; fi
