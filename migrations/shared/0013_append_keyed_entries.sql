-- `append_events` (0012) also writes an aggregate's keyed entries (a product's rows
-- per order, `product_reservations`), so that a command changing them (the saga's
-- reservation) commits in one statement instead of a transaction of six, and in a
-- transaction one statement fewer.
--
-- `entry_rows` are rows of `entries_table`, as JSON objects keyed by column name,
-- each replacing the stored row of its `entry_key` (the table's primary-key columns).
-- They hold what the events being appended leave for their keys, so they are written
-- after the events: a conflicting append (another writer was first) writes none.
-- Callers sort them by key, the order every writer locks them in.
DROP FUNCTION append_events(text, text[], bigint[], text[], text[], jsonb[], jsonb[], text, jsonb, text);

CREATE FUNCTION append_events(
    aggregate_type text,
    aggregate_ids  text[],
    sequences      bigint[],
    event_types    text[],
    event_versions text[],
    payloads       jsonb[],
    metadata       jsonb[],
    model          text   DEFAULT NULL,
    view_rows      jsonb  DEFAULT NULL,
    view_key       text   DEFAULT NULL,
    entries_table  text   DEFAULT NULL,
    entry_rows     jsonb  DEFAULT NULL,
    entry_key      text[] DEFAULT NULL
) RETURNS void LANGUAGE plpgsql AS
$$
DECLARE
    live_table text;
    newer_replaces text := '';
    entries_replace text;
BEGIN
    INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata)
    SELECT append_events.aggregate_type, new.aggregate_id, new.sequence, new.event_type, new.event_version, new.payload, new.metadata
      FROM unnest(aggregate_ids, sequences, event_types, event_versions, payloads, metadata)
           WITH ORDINALITY AS new (aggregate_id, sequence, event_type, event_version, payload, metadata, n)
     ORDER BY new.n;
    IF entries_table IS NOT NULL AND coalesce(jsonb_array_length(entry_rows), 0) > 0 THEN
        -- Every column the rows carry but the key's (they all carry the same ones).
        SELECT format('INSERT INTO %I SELECT * FROM jsonb_populate_recordset(NULL::%I, $1) ON CONFLICT (%s) DO UPDATE SET %s',
                      entries_table, entries_table,
                      (SELECT string_agg(format('%I', k), ', ') FROM unnest(entry_key) AS k),
                      string_agg(format('%I = EXCLUDED.%I', c, c), ', '))
          INTO entries_replace
          FROM jsonb_object_keys(entry_rows -> 0) AS c
         WHERE c <> ALL (entry_key);
        EXECUTE entries_replace USING entry_rows;
    END IF;
    IF model IS NULL OR coalesce(jsonb_array_length(view_rows), 0) = 0 THEN
        RETURN;
    END IF;
    IF view_key IS NOT NULL THEN
        SELECT format(' ON CONFLICT (%I) DO UPDATE SET %s WHERE stored.version < EXCLUDED.version',
                      view_key, string_agg(format('%I = EXCLUDED.%I', c, c), ', '))
          INTO newer_replaces
          FROM jsonb_object_keys(view_rows -> 0) AS c;
    END IF;
    -- Read by a statement of its own, after the append: see 0006.
    FOR live_table IN
        SELECT format('%s_v%s', r.name, g.generation)
          FROM read_models r, unnest(ARRAY[r.active_generation, r.building_generation]) AS g (generation)
         WHERE r.name = append_events.model AND g.generation IS NOT NULL
    LOOP
        EXECUTE format('INSERT INTO %I AS stored SELECT * FROM jsonb_populate_recordset(NULL::%I, $1)', live_table, live_table)
                || newer_replaces
          USING view_rows;
    END LOOP;
END;
$$;
