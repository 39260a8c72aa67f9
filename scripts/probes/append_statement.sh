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
source scripts/lib/services.sh
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
# The same with the model's key: each row replaces a stored one of its key if older.
sed 's/, 1)));$/, 1)), '"'order_id'"');/' "$work/append_view.sql" >"$work/append_view_keyed.sql"

# An update of an order (its items changed), both ways a command commits one: in a
# transaction that reads the model's generations and the row first (six statements),
# and in one statement with the row folded beforehand (the instance remembers the
# order's row). Each call takes another of 1,000 orders, and the next sequence.
items='[{"productId":"mug","quantity":3,"status":"PENDING","reason":null}]'
psql "$url" -q -v ON_ERROR_STOP=1 <<SQL >/dev/null
INSERT INTO order_view_v1 SELECT gen_random_uuid(), 'user-42', 'PENDING', '$items'::jsonb, now(), now(), 1, NULL
  FROM generate_series(1, 1000);
CREATE TABLE probe_orders AS SELECT row_number() OVER () AS n, order_id FROM order_view_v1;
CREATE SEQUENCE probe_sequences START 2;
SQL
changed="ARRAY['{\"OrderItemsChanged\":{\"items\":[{\"productId\":\"mug\",\"quantity\":3,\"status\":\"PENDING\"}]}}'::jsonb]"
pick="\\set n random(1, 1000)
SELECT order_id AS id, nextval('probe_sequences') AS seq FROM probe_orders WHERE n = :n \\gset"
cat >"$work/update_transaction.sql" <<SQL
$pick
BEGIN;
SELECT append_events('Order', ARRAY[:id], ARRAY[:seq::bigint], ARRAY['OrderItemsChanged'], ARRAY['1.0'], $changed, $metadata);
SELECT active_generation, building_generation, horizon::text FROM read_models WHERE name = 'order_view';
SELECT order_id, user_id, status, items, created_at, updated_at, version, resolved_at FROM order_view_v1 WHERE order_id = ANY(ARRAY[:id::uuid]);
INSERT INTO order_view_v1 (order_id, user_id, status, items, created_at, updated_at, version, resolved_at)
  SELECT * FROM unnest(ARRAY[:id::uuid], ARRAY['user-42'], ARRAY['PENDING'], ARRAY['$items'::jsonb], ARRAY[now()], ARRAY[now()], ARRAY[:seq::bigint], ARRAY[NULL::timestamptz])
  ON CONFLICT (order_id) DO UPDATE SET user_id = EXCLUDED.user_id, status = EXCLUDED.status, items = EXCLUDED.items,
    created_at = EXCLUDED.created_at, updated_at = EXCLUDED.updated_at, version = EXCLUDED.version, resolved_at = EXCLUDED.resolved_at
  WHERE order_view_v1.version < EXCLUDED.version;
COMMIT;
SQL
cat >"$work/update_statement.sql" <<SQL
$pick
SELECT append_events('Order', ARRAY[:id], ARRAY[:seq::bigint], ARRAY['OrderItemsChanged'], ARRAY['1.0'], $changed, $metadata,
  'order_view', jsonb_build_array(jsonb_build_object('order_id', :id::uuid, 'user_id', 'user-42', 'status', 'PENDING',
    'items', '$items'::jsonb, 'created_at', now(), 'updated_at', now(), 'version', :seq::bigint, 'resolved_at', NULL)), 'order_id');
SQL

# pgbench reads ":name" as a variable, also inside the JSON literals: a space after
# each key keeps them literal.
sed -i 's/":/": /g' "$work"/*.sql

postgres_cpu() { cpu_seconds | awk '$1 == "postgres" {print $2}'; }

for pace in "" "-R 100"; do
  if [[ -n $pace ]]; then echo "paced at 100/s:"; else echo "back to back:"; fi
  for statement in insert append append_view append_view_keyed update_transaction update_statement; do
    before=$(postgres_cpu)
    # shellcheck disable=SC2086
    read -r tps p50 _ < <(pgbench_latency pgbench "$url" "$work/$statement.sql" -M prepared $pace)
    cpu=$(awk -v a="$before" -v b="$(postgres_cpu)" -v n="$tps" 'BEGIN {printf "%.0f", (b - a) * 1e6 / (n * 10)}')
    echo "  $statement: p50 $p50 ms ($tps tps), PostgreSQL CPU $cpu us per call"
  done
done
