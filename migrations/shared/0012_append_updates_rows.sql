-- `append_events` (0006) also writes the rows of aggregates that have one already, so
-- that a command updating an aggregate whose row its service remembers (an order's
-- outcome, its payment) commits in one statement too, not in six.
--
-- Given `view_key`, the model's primary-key column, each row replaces the stored row
-- of its key when it is newer (a higher `version`, a column every model has), in
-- every live table: the active generation's and the one a rebuild is building, which
-- may not have the row yet. Rows are written in the order given: callers sort them by
-- key, the order every writer of a model locks its rows in. Without `view_key` the
-- rows are inserted, as before: callers pass none when every row is of a new aggregate
-- (a placement; an insert costs less), as does an instance of an older release during a
-- rolling upgrade.
DROP FUNCTION append_events(text, text[], bigint[], text[], text[], jsonb[], jsonb[], text, jsonb);

CREATE FUNCTION append_events(
    aggregate_type text,
    aggregate_ids  text[],
    sequences      bigint[],
    event_types    text[],
    event_versions text[],
    payloads       jsonb[],
    metadata       jsonb[],
    model          text  DEFAULT NULL,
    view_rows      jsonb DEFAULT NULL,
    view_key       text  DEFAULT NULL
) RETURNS void LANGUAGE plpgsql AS
$$
DECLARE
    live_table text;
    newer_replaces text := '';
BEGIN
    INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata)
    SELECT append_events.aggregate_type, new.aggregate_id, new.sequence, new.event_type, new.event_version, new.payload, new.metadata
      FROM unnest(aggregate_ids, sequences, event_types, event_versions, payloads, metadata)
           WITH ORDINALITY AS new (aggregate_id, sequence, event_type, event_version, payload, metadata, n)
     ORDER BY new.n;
    IF model IS NULL OR coalesce(jsonb_array_length(view_rows), 0) = 0 THEN
        RETURN;
    END IF;
    IF view_key IS NOT NULL THEN
        -- Every column the rows carry (they all carry the same ones).
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
