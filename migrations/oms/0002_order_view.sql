-- The order read model. Every column comes from the order's events only, so the
-- table can be dropped and rebuilt from the event store.
CREATE TABLE order_view
(
    order_id   uuid        PRIMARY KEY,
    user_id    text        NOT NULL,
    status     text        NOT NULL,
    items      jsonb       NOT NULL,
    created_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL,
    version    bigint      NOT NULL CHECK (version > 0)
);

-- Lists are newest first, paged by (created_at, order_id).
CREATE INDEX order_view_newest ON order_view (created_at DESC, order_id DESC);
CREATE INDEX order_view_by_user ON order_view (user_id, created_at DESC, order_id DESC);
CREATE INDEX order_view_by_status ON order_view (status, created_at DESC, order_id DESC);
