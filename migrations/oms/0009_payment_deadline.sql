-- The payment deadline: an order resolved (EXECUTED or PARTIALLY_EXECUTED) and not
-- paid within the deadline after its last change is canceled by the OMS. Orders
-- awaiting payment are found through a partial index of the order view (those only),
-- so a pass costs the same however many orders the view holds. On the active
-- generation's table; a rebuild copies the active table's indexes to the next one.
DO $$
DECLARE
    active integer;
BEGIN
    SELECT active_generation INTO active FROM read_models WHERE name = 'order_view';
    EXECUTE format('CREATE INDEX IF NOT EXISTS %I ON %I (updated_at) WHERE status IN (%L, %L)',
                   'order_view_v' || active || '_awaiting_payment', 'order_view_v' || active,
                   'EXECUTED', 'PARTIALLY_EXECUTED');
END
$$;
