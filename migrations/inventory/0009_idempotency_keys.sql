-- A restock or an adjustment sent with an Idempotency-Key is applied once per product:
-- the key travels in the event's metadata, and this index refuses a second such event
-- with the same key on the same product (the second writer is then answered with the
-- first write's outcome). Partial: only these events carry a key.
CREATE UNIQUE INDEX events_idempotency_key
    ON events (aggregate_id, (metadata->>'idempotency_key'))
 WHERE aggregate_type = 'Product'
   AND event_type IN ('StockRestocked', 'StockAdjusted')
   AND metadata ? 'idempotency_key';
