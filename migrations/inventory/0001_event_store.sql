-- The inventory event store. postgres-es writes the first seven columns; the others are
-- filled by defaults, so the library need not know them:
--   event_id        a stable id for consumers' deduplication and audits;
--   recorded_at     when the transaction that wrote it began (commit-time order);
--   global_position an insertion counter, for a total order within a transaction;
--   transaction_id  the writing transaction, so a feed can read in commit order
--                   without skipping rows of transactions still in flight.
CREATE TABLE events
(
    aggregate_type  text        NOT NULL,
    aggregate_id    text        NOT NULL,
    sequence        bigint      NOT NULL CHECK (sequence > 0),
    event_type      text        NOT NULL,
    event_version   text        NOT NULL,
    payload         jsonb       NOT NULL,
    metadata        jsonb       NOT NULL,
    event_id        uuid        NOT NULL DEFAULT gen_random_uuid() UNIQUE,
    recorded_at     timestamptz NOT NULL DEFAULT now(),
    global_position bigint      GENERATED ALWAYS AS IDENTITY UNIQUE,
    transaction_id  xid8        NOT NULL DEFAULT pg_current_xact_id(),
    PRIMARY KEY (aggregate_type, aggregate_id, sequence)
);

CREATE INDEX events_in_commit_order ON events (transaction_id, global_position);

-- Used by postgres-es when an aggregate is stored with snapshots.
CREATE TABLE snapshots
(
    aggregate_type   text   NOT NULL,
    aggregate_id     text   NOT NULL,
    last_sequence    bigint NOT NULL CHECK (last_sequence >= 0),
    current_snapshot bigint NOT NULL CHECK (current_snapshot >= 0),
    payload          jsonb  NOT NULL,
    PRIMARY KEY (aggregate_type, aggregate_id, last_sequence)
);
