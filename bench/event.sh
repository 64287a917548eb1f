#!/usr/bin/env bash
# $event under 8 concurrent coordinators: each takes its own cases through the pathway, one event
# at a time with all its effects (enrol: 2 Consents, 15 ServiceRequests and 15 Tasks; waive;
# falls-assessment; exercise-started; decide-treatment; treatment-started; withdraw on some).
# Prints the latency (p50, p99, max) of each event and overall, and the events per second.
# Starts its own PostgreSQL (durable, as in production) and its own server.
# Usage: bench/event.sh   Env: FLS_SERVER_BIN (default build/fls-server), COORDINATORS (8),
#        CASES per coordinator (12)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
BIN=${FLS_SERVER_BIN:-$ROOT/build/fls-server}
COORDINATORS=${COORDINATORS:-8}
CASES=${CASES:-12}
. "$ROOT/bench/lib.sh"
bench_start_pg ev 58000 21000
FLS_AUTH_DIR="$TMP/auth" FLS_DEV_TOKEN_FILE="$TMP/auth/dev-token" FLS_DATABASE_URL="postgresql://postgres@127.0.0.1:$PGPORT/bench" FLS_PORT=$PORT FLS_TIMER_INTERVAL_S=0 "$BIN" >"$TMP/server.log" 2>&1 &
SERVER=$!
for _ in $(seq 600); do curl -sf "http://127.0.0.1:$PORT/readyz" >/dev/null && break; sleep 0.1; done
export FLS_TOKEN=$(cat "$TMP/auth/dev-token")  # an administrator's bearer token (docs/security.md)
AUTH=(-H "Authorization: Bearer $FLS_TOKEN")
curl -sf "http://127.0.0.1:$PORT/readyz" >/dev/null || { tail "$TMP/server.log" >&2; echo "the server is not ready" >&2; exit 1; }
echo "machine: $(nproc) cores; server: $BIN; PostgreSQL durable; $COORDINATORS coordinators x $CASES cases"
python3 "$ROOT/bench/event_load.py" "http://127.0.0.1:$PORT" "$COORDINATORS" "$CASES"
