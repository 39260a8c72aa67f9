-- Positions of readers of the commit-ordered event feed (the outbox relay, and
-- projections that catch up by themselves). A reader resumes after its position.
CREATE TABLE feed_checkpoints
(
    name            text        PRIMARY KEY,
    transaction_id  xid8        NOT NULL,
    global_position bigint      NOT NULL,
    updated_at      timestamptz NOT NULL DEFAULT now()
);

-- Wakes feed readers as soon as events commit (NOTIFY is delivered at commit); they
-- also poll, so a lost notification only delays.
CREATE FUNCTION notify_events_appended() RETURNS trigger LANGUAGE plpgsql AS
$$
BEGIN
    PERFORM pg_notify('events_appended', TG_TABLE_SCHEMA);
    RETURN NULL;
END;
$$;

CREATE TRIGGER events_appended
    AFTER INSERT ON events
    FOR EACH STATEMENT EXECUTE FUNCTION notify_events_appended();
