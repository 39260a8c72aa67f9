-- The product read model, rebuilt from the product events alone.
CREATE TABLE product_view
(
    product_id          text   PRIMARY KEY,
    name                text   NOT NULL,
    available           bigint NOT NULL CHECK (available >= 0),
    reserved            bigint NOT NULL CHECK (reserved >= 0),
    low_stock_threshold bigint NOT NULL CHECK (low_stock_threshold >= 0),
    stock_status        text   NOT NULL,
    version             bigint NOT NULL CHECK (version > 0)
);
