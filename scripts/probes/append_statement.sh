#!/usr/bin/env bash
# What PostgreSQL alone costs a placement: pgbench at one client, 10 s each, of a
# one-row INSERT (issue 15's reference), of the `append_events` call a POST sends with
# the OrderPlaced event only, and with the order view's row as well (what a POST
# commits); back to back, then paced at 100/s (pgbench -R). Prints each one's p50.
# A scratch database migrated with the OMS's SQL (own and shared, in version order)
# is created on PG_SERVER_URL (default postgres://postgres@127.0.0.1:5432) and dropped.
#
#   scripts/probes/append_statement.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
source scripts/lib/pgbench.sh
server=${PG_SERVER_URL:-postgres://postgres@127.0.0.1:5432}
database="append_probe_$(date +%s)"
work=$(mktemp -d)
trap 'psql "$server/postgres" -qc "DROP DATABASE IF EXISTS $database WITH (FORCE)" >/dev/null; rm -rf "$work"' EXIT
psql "$server/postgres" -qc "CREATE DATABASE $database"
url="$server/$database"
# In version order across both folders, as the OMS's migrator merges them.
for file in $(printf '%s\n' migrations/oms/*.sql migrations/shared/*.sql | awk -F/ '{print $3, $0}' | sort | cut -d' ' -f2); do
  psql "$url" -q -v ON_ERROR_STOP=1 -f "$file" >/dev/null
done
psql "$url" -qc "$PGBENCH_INSERT_TABLE"

event="ARRAY['{\"OrderPlaced\":{\"userId\":\"user-42\",\"items\":[{\"productId\":\"mug\",\"quantity\":2},{\"productId\":\"tea\",\"quantity\":1}],\"idempotencyKey\":null}}'::jsonb]"
metadata="ARRAY['{\"correlation_id\":\"c0a8e0f2-1b7e-4c59-9f4e-0e0f6c1d2a3b\",\"causation_id\":null,\"actor\":\"oms-api\"}'::jsonb]"
echo "$PGBENCH_INSERT" >"$work/insert.sql"
echo "SELECT append_events('Order', ARRAY[gen_random_uuid()::text], ARRAY[1::bigint], ARRAY['OrderPlaced'], ARRAY['2.0'], $event, $metadata);" >"$work/append.sql"
cat >"$work/append_view.sql" <<SQL
SELECT append_events('Order', ARRAY[gen_random_uuid()::text], ARRAY[1::bigint], ARRAY['OrderPlaced'], ARRAY['2.0'], $event, $metadata,
  'order_view', jsonb_build_array(jsonb_build_object('order_id', gen_random_uuid(), 'user_id', 'user-42', 'status', 'PENDING',
    'items', '[{"productId":"mug","quantity":2,"status":"PENDING"},{"productId":"tea","quantity":1,"status":"PENDING"}]'::jsonb,
    'created_at', now(), 'updated_at', now(), 'version', 1)));
SQL

for pace in "" "-R 100"; do
  if [[ -n $pace ]]; then echo "paced at 100/s:"; else echo "back to back:"; fi
  for statement in insert append append_view; do
    # shellcheck disable=SC2086
    read -r tps p50 _ < <(pgbench_latency pgbench "$url" "$work/$statement.sql" $pace)
    echo "  $statement: p50 $p50 ms ($tps tps)"
  done
done
