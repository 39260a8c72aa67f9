-- Fulfilment: a shipped order's reserved units leave the warehouse (`StockShipped`).

-- The product view counts the units shipped (units on hand are available plus
-- reserved, so they need no column). Every generation's table gains the column, and
-- the view over the active one is redefined to show it. Rows written before this
-- migration shipped nothing.
DO $$
DECLARE
    generation_table text;
    active integer;
BEGIN
    FOR generation_table IN
        SELECT tablename FROM pg_tables
         WHERE schemaname = current_schema() AND tablename ~ '^product_view_v[0-9]+$'
    LOOP
        EXECUTE format('ALTER TABLE %I ADD COLUMN shipped bigint NOT NULL DEFAULT 0 CHECK (shipped >= 0)',
                       generation_table);
    END LOOP;
    SELECT active_generation INTO active FROM read_models WHERE name = 'product_view';
    EXECUTE format('CREATE OR REPLACE VIEW product_view AS SELECT * FROM %I', 'product_view_v' || active);
END
$$;

-- `product_reservations` as the events fold, now with shipments: like a release, a
-- shipment leaves the order holding nothing at its revision, and announces nothing
-- (it is never the outcome of a reservation request).
CREATE OR REPLACE FUNCTION product_reservations_folded()
    RETURNS TABLE (product_id text, order_id uuid, quantity bigint, revision bigint, announced_sequence bigint)
    LANGUAGE sql STABLE AS
$$
WITH decided AS (
    SELECT e.aggregate_id AS product_id,
           (e.payload -> e.event_type ->> 'orderId')::uuid AS order_id,
           e.sequence,
           e.event_type,
           e.event_type IN ('StockReleased', 'StockShipped') AS ends_hold,
           (e.payload -> e.event_type ->> 'revision')::bigint AS revision,
           CASE e.event_type
               WHEN 'StockReserved' THEN (e.payload -> e.event_type ->> 'reservedForOrder')::bigint
               WHEN 'ReservationReduced' THEN (e.payload -> e.event_type ->> 'reservedForOrder')::bigint
               WHEN 'StockReleased' THEN 0
               WHEN 'StockShipped' THEN 0
           END AS quantity
      FROM events e
     WHERE e.aggregate_type = 'Product'
       AND e.event_type IN ('StockReserved', 'ReservationReduced', 'ReservationRejected', 'StockReleased', 'StockShipped')
),
announcing AS (
    SELECT d.*,
           max(d.sequence) FILTER (WHERE NOT d.ends_hold) OVER (PARTITION BY d.product_id, d.order_id) AS announcer,
           first_value(d.revision) OVER (PARTITION BY d.product_id, d.order_id ORDER BY NOT d.ends_hold DESC, d.sequence DESC) AS announcer_revision
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
