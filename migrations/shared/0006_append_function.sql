-- Appends events, and optionally writes the read-model rows of the new aggregates
-- they create, in one statement: a command creating an aggregate (placing an order)
-- commits in one round trip instead of five (BEGIN, append, read the model's
-- generations, write the row, COMMIT).
--
-- `view_rows` are rows of `model`, as JSON objects keyed by column name, written into every
-- live table of the model (the active generation's, and the one a rebuild is
-- building). The generations are read by a statement of their own, after the append:
-- in a volatile function each statement takes a new snapshot, so a rebuild that
-- registered a generation after this transaction got its id has it below its horizon
-- and covers it from the feed (see projections::rebuild). Only rows of aggregates
-- whose first event is among `events` may be passed: they cannot have a row yet.
CREATE FUNCTION append_events(
    aggregate_type text,
    aggregate_ids  text[],
    sequences      bigint[],
    event_types    text[],
    event_versions text[],
    payloads       jsonb[],
    metadata       jsonb[],
    model          text  DEFAULT NULL,
    view_rows      jsonb DEFAULT NULL
) RETURNS void LANGUAGE plpgsql AS
$$
DECLARE
    live_table text;
BEGIN
    INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata)
    SELECT append_events.aggregate_type, new.aggregate_id, new.sequence, new.event_type, new.event_version, new.payload, new.metadata
      FROM unnest(aggregate_ids, sequences, event_types, event_versions, payloads, metadata)
           WITH ORDINALITY AS new (aggregate_id, sequence, event_type, event_version, payload, metadata, n)
     ORDER BY new.n;
    IF model IS NULL THEN
        RETURN;
    END IF;
    FOR live_table IN
        SELECT format('%s_v%s', r.name, g.generation)
          FROM read_models r, unnest(ARRAY[r.active_generation, r.building_generation]) AS g (generation)
         WHERE r.name = append_events.model AND g.generation IS NOT NULL
    LOOP
        EXECUTE format('INSERT INTO %I SELECT * FROM jsonb_populate_recordset(NULL::%I, $1)', live_table, live_table) USING view_rows;
    END LOOP;
END;
$$;
