-- The products holding units for an order, found from the order alone: a shipment that
-- names no products (`OrderStatusChanged` 1.0, written before shipments named them) and
-- the operator's `inventory ship-held` ship whatever the order still holds. Without
-- this index each such lookup would read the whole table, which keeps a row for every
-- (product, order) ever served. `order_id` never changes once a row is written, so
-- the rows' updates stay as cheap as they were (heap-only where the page has room).
CREATE INDEX product_reservations_by_order ON product_reservations (order_id);
