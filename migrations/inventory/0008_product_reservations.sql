-- What each product holds per order, kept beside the product events instead of in the
-- product loaded in memory (one entry per order ever served would make loading a
-- product cost more with every order). Written by the store in the transaction that
-- appends the product events changing it; a batch reads the rows of the orders it
-- decides about. Derived data: each row is what folding the product's events gives
-- for that order (`Product::apply`), and `product_reservations_folded()` computes it.
CREATE TABLE product_reservations
(
    product_id         text   NOT NULL,
    order_id           uuid   NOT NULL,
    -- Units held (0 after a rejection or release) and the revision last decided.
    quantity           bigint NOT NULL CHECK (quantity >= 0),
    revision           bigint NOT NULL CHECK (revision >= 0),
    -- The sequence of the product event that announced the outcome of the order's
    -- last decided reservation request; NULL once a release decided it.
    announced_sequence bigint CHECK (announced_sequence > 0),
    PRIMARY KEY (product_id, order_id)
);

-- Snapshots of aggregates, written by the store in the transaction of the events they
-- fold (so never ahead of the stream), one per aggregate, replaced only by a newer one.
-- A cache: a state that no longer decodes is ignored, and deleting rows is always safe.
-- (The `snapshots` table of migration 0001 is postgres-es's and stays unused.)
CREATE TABLE aggregate_snapshots
(
    aggregate_type text        NOT NULL,
    aggregate_id   text        NOT NULL,
    version        bigint      NOT NULL CHECK (version > 0),
    -- The keyed state left out of `state` (e.g. 'product_reservations'), '' for none.
    without_state  text        NOT NULL DEFAULT '',
    state          jsonb       NOT NULL,
    taken_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (aggregate_type, aggregate_id)
);

-- The rows of `product_reservations` as the product events fold, mirroring
-- `Product::apply` per (product, order):
--   quantity: `reservedForOrder` of the last reservation or reduction, 0 after a
--     release; a rejection keeps what the order held;
--   revision: that of the last of these events;
--   announced_sequence: the last reservation, reduction or rejection, kept by the
--     releases after it only while they carry its revision (a rejection completed by
--     a release of what the order held before); otherwise none.
-- Used to fill the table from histories written before it existed, and by the
-- operator's rebuild and verification.
CREATE FUNCTION product_reservations_folded()
    RETURNS TABLE (product_id text, order_id uuid, quantity bigint, revision bigint, announced_sequence bigint)
    LANGUAGE sql STABLE AS
$$
WITH decided AS (
    SELECT e.aggregate_id AS product_id,
           (e.payload -> e.event_type ->> 'orderId')::uuid AS order_id,
           e.sequence,
           e.event_type,
           (e.payload -> e.event_type ->> 'revision')::bigint AS revision,
           CASE e.event_type
               WHEN 'StockReserved' THEN (e.payload -> e.event_type ->> 'reservedForOrder')::bigint
               WHEN 'ReservationReduced' THEN (e.payload -> e.event_type ->> 'reservedForOrder')::bigint
               WHEN 'StockReleased' THEN 0
           END AS quantity
      FROM events e
     WHERE e.aggregate_type = 'Product'
       AND e.event_type IN ('StockReserved', 'ReservationReduced', 'ReservationRejected', 'StockReleased')
),
announcing AS (
    SELECT d.*,
           max(d.sequence) FILTER (WHERE d.event_type <> 'StockReleased') OVER (PARTITION BY d.product_id, d.order_id) AS announcer,
           first_value(d.revision) OVER (PARTITION BY d.product_id, d.order_id ORDER BY d.event_type <> 'StockReleased' DESC, d.sequence DESC) AS announcer_revision
      FROM decided d
)
SELECT a.product_id,
       a.order_id,
       coalesce((array_agg(a.quantity ORDER BY a.sequence DESC) FILTER (WHERE a.quantity IS NOT NULL))[1], 0),
       (array_agg(a.revision ORDER BY a.sequence DESC))[1],
       CASE WHEN coalesce(bool_and(a.revision = a.announcer_revision) FILTER (WHERE a.sequence > a.announcer), true) THEN max(a.announcer) END
  FROM announcing a
 GROUP BY a.product_id, a.order_id
$$;

-- Histories written before this migration: their rows, from their events (which stay
-- as they are).
INSERT INTO product_reservations (product_id, order_id, quantity, revision, announced_sequence)
SELECT * FROM product_reservations_folded();
