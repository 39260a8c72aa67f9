-- Read models are served through a view named after the model, over the table of its
-- active generation (`<model>_v<generation>`). A rebuild fills the next generation's
-- table beside it while the active one serves, then moves the view over in one
-- transaction (blue/green); the previous table stays until the next rebuild.
ALTER TABLE order_view RENAME TO order_view_v1;
CREATE VIEW order_view AS SELECT * FROM order_view_v1;

CREATE TABLE read_models
(
    name                text    PRIMARY KEY,
    active_generation   integer NOT NULL CHECK (active_generation > 0),
    -- The generation being built, if any: writers keep both tables meanwhile.
    building_generation integer CHECK (building_generation > active_generation),
    -- Transactions below this id may have written the active table only; the
    -- rebuild covers them from the event feed before it takes over.
    horizon             xid8,
    switched_at         timestamptz NOT NULL DEFAULT now()
);

INSERT INTO read_models (name, active_generation) VALUES ('order_view', 1);
