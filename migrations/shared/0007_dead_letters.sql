-- Dead letters: what could never be processed or published as it is, parked with its
-- reason so that the flow goes on. Operators list, inspect and re-drive them (`dlq`).
--
-- source 'consumer': a consumed Kafka message (also copied to `<topic>.dlq`); origin is
--   `topic/partition/offset`, key, payload and headers are the message's bytes.
-- source 'relay': a committed event the relay could not publish (too large for the
--   broker, refused by it, or not decodable); origin is the event id, `topic` the topic
--   it was meant for, and the event itself stays in `events` (payload is NULL).
CREATE TABLE dead_letters
(
    id          bigserial   PRIMARY KEY,
    source      text        NOT NULL CHECK (source IN ('consumer', 'relay')),
    origin      text        NOT NULL,
    topic       text        NOT NULL,
    reason      text        NOT NULL,
    event_id    uuid,
    message_key bytea,
    payload     bytea,
    -- [{"key": text, "value": base64 text or null}], in the message's order
    headers     jsonb       NOT NULL DEFAULT '[]',
    parked_at   timestamptz NOT NULL DEFAULT now(),
    replays     integer     NOT NULL DEFAULT 0,
    replayed_at timestamptz,
    -- Parking is idempotent: a message parked again after a crash (its offset not yet
    -- committed) is the same row. Offsets alone are not enough, since a broker that
    -- restarted empty numbers its messages from 0 again.
    payload_md5 text        GENERATED ALWAYS AS (md5(coalesce(payload, '\x'::bytea))) STORED,
    UNIQUE (source, origin, topic, payload_md5)
);

CREATE INDEX dead_letters_pending ON dead_letters (parked_at) WHERE replayed_at IS NULL;
