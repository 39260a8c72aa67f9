-- Re-requests of stuck items: the OMS asks the inventory service again for items
-- still PENDING some time after their request, republishing the order event that
-- made them pending. One row per order asked again, for its backoff; the row is
-- deleted once the order is no longer pending. Claiming a row (an upsert conditioned
-- on `next_at`) is what makes one instance, of several, ask for a given order at a time.
CREATE TABLE order_rerequests
(
    order_id      uuid        PRIMARY KEY,
    -- The order's version when it was last asked for: progress since (a newer
    -- version) starts the backoff again.
    order_version bigint      NOT NULL,
    attempts      integer     NOT NULL CHECK (attempts > 0),
    last_at       timestamptz NOT NULL,
    next_at       timestamptz NOT NULL
);

-- Finding pending orders reads only pending ones, however many orders the view
-- holds. A partial index on the active generation's table of the order view; a
-- rebuild copies the active table's indexes to the next generation.
DO $$
DECLARE
    active integer;
BEGIN
    SELECT active_generation INTO active FROM read_models WHERE name = 'order_view';
    EXECUTE format('CREATE INDEX IF NOT EXISTS %I ON %I (updated_at) WHERE status = %L',
                   'order_view_v' || active || '_pending', 'order_view_v' || active, 'PENDING');
END
$$;
