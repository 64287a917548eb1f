# Sourced by the benchmarks: a durable throwaway PostgreSQL (fsync on, as in production) with a
# database `bench`, in TMP; `cleanup` stops it and the server (SERVER) and removes TMP.
# Sets PGBIN, TMP, PGPORT, PORT. Usage: bench_start_pg NAME PG_PORT_BASE HTTP_PORT_BASE
bench_start_pg() {
  PGBIN=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
  TMP=$(mktemp -d "/tmp/fls-bench-$1.XXXXXX")
  chmod 755 "$TMP"
  PGPORT=$(($2 + RANDOM % 1000))
  PORT=$(($3 + RANDOM % 1000))
  mkdir -p "$TMP/pg" "$TMP/sock"
  [[ $(id -u) == 0 ]] && chown postgres "$TMP/pg" "$TMP/sock"
  as_pg "$PGBIN/initdb" -D "$TMP/pg" -U postgres --auth=trust -E UTF8 --locale=C.UTF-8 >/dev/null
  as_pg "$PGBIN/pg_ctl" -D "$TMP/pg" -l "$TMP/pg/log" -w -o "-c listen_addresses=127.0.0.1 -p $PGPORT -k $TMP/sock" start >/dev/null
  trap 'rc=$?; cleanup; exit $rc' EXIT
  "$PGBIN/psql" -h 127.0.0.1 -p "$PGPORT" -U postgres -qc 'CREATE DATABASE bench'
}
as_pg() { if [[ $(id -u) == 0 ]]; then runuser -u postgres -- "$@"; else "$@"; fi; }
cleanup() {
  [[ -n ${SERVER:-} ]] && kill "$SERVER" 2>/dev/null && wait "$SERVER" 2>/dev/null
  as_pg "$PGBIN/pg_ctl" -D "$TMP/pg" -m immediate -w stop >/dev/null 2>&1 || true
  rm -rf "$TMP"
}
