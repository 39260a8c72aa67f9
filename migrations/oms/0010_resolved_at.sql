-- The payment deadline runs from an order's resolution, not from its last change: the
-- order view keeps when the order last became resolved (EXECUTED or
-- PARTIALLY_EXECUTED after being neither), NULL while it is not resolved. Canceling
-- one item of a resolved order changes `updated_at` but not `resolved_at`.
--
-- Every generation's table gains the column, and the view over the active one is
-- redefined to show it. The view's fold fills it from the events; rows written before
-- this migration take their last change as their resolution (never earlier than the
-- deadline they had), until `oms rebuild` refolds them exactly. The due orders are
-- found through a partial index on the new column, which replaces the one on
-- `updated_at` (0009) on every generation's table.
DO $$
DECLARE
    generation_table text;
    old_index text;
    active integer;
BEGIN
    FOR generation_table IN
        SELECT tablename FROM pg_tables
         WHERE schemaname = current_schema() AND tablename ~ '^order_view_v[0-9]+$'
    LOOP
        EXECUTE format('ALTER TABLE %I ADD COLUMN resolved_at timestamptz', generation_table);
        EXECUTE format('UPDATE %I SET resolved_at = updated_at WHERE status IN (%L, %L)',
                       generation_table, 'EXECUTED', 'PARTIALLY_EXECUTED');
        FOR old_index IN
            SELECT indexname FROM pg_indexes
             WHERE schemaname = current_schema() AND tablename = generation_table
               AND indexdef LIKE '%(updated_at) WHERE (status = ANY (ARRAY[''EXECUTED''::text, ''PARTIALLY_EXECUTED''::text]))'
        LOOP
            EXECUTE format('DROP INDEX %I', old_index);
        END LOOP;
    END LOOP;
    SELECT active_generation INTO active FROM read_models WHERE name = 'order_view';
    EXECUTE format('CREATE OR REPLACE VIEW order_view AS SELECT * FROM %I', 'order_view_v' || active);
    EXECUTE format('CREATE INDEX IF NOT EXISTS %I ON %I (resolved_at) WHERE status IN (%L, %L)',
                   'order_view_v' || active || '_payment_due', 'order_view_v' || active,
                   'EXECUTED', 'PARTIALLY_EXECUTED');
END
$$;
