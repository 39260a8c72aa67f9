//! What the projection tests share: test databases, and orders placed and changed
//! as the OMS does.
#![allow(dead_code, reason = "each test binary uses a part")]

use domain::order::{ItemUpdate, Order, OrderCommand, OrderLine, PlaceOrder, UpdateOrder};
use domain::{OrderId, ProductId, Quantity, UserId};
use eventstore::{AggregateStore, Command, EventMetadata};
use projections::{OrderViews, Projector};
use sqlx::PgPool;

/// A fresh database migrated as `schema` by `migrator`.
pub async fn pool(schema: &str, migrator: &sqlx::migrate::Migrator) -> PgPool {
    let url = migrations::testing::create_database().await.expect("a test database");
    migrations::connect_and_migrate(&url, schema, 4, migrator).await.expect("migrated")
}

/// What the tests' events carry.
pub fn metadata() -> EventMetadata {
    EventMetadata::new("projection-test", "projection-test", "test")
}

/// Placements of `count` new orders, of two items each.
pub fn placements(count: usize) -> Vec<Command<Order>> {
    (0..count)
        .map(|i| Command {
            aggregate_id: OrderId::generate().to_string(),
            command: OrderCommand::PlaceOrder(PlaceOrder {
                user_id: UserId::parse(format!("u-{i}")).expect("user id"),
                items: vec![
                    OrderLine {
                        product_id: ProductId::parse("mug").expect("id"),
                        quantity: Quantity::new(1 + i as i64).expect("quantity"),
                    },
                    OrderLine {
                        product_id: ProductId::parse("tea").expect("id"),
                        quantity: Quantity::new(2).expect("quantity"),
                    },
                ],
                idempotency_key: None,
            }),
            metadata: metadata(),
        })
        .collect()
}

/// A store as the OMS runs it: its projection remembers the rows it commits.
pub fn remembering(pool: &PgPool) -> AggregateStore<Order> {
    AggregateStore::new(pool.clone()).with_projection(Projector::<OrderViews>::live().remembering(100))
}

/// Sets the quantity of `product` in order `order_id` (adding the item if the order
/// lacks it).
pub fn resize(order_id: &str, product: &str, quantity: i64) -> Command<Order> {
    Command {
        aggregate_id: order_id.to_owned(),
        command: OrderCommand::UpdateOrder(UpdateOrder {
            items: vec![ItemUpdate::SetQuantity {
                product_id: ProductId::parse(product).expect("id"),
                quantity: Quantity::new(quantity).expect("quantity"),
            }],
            status: None,
        }),
        metadata: metadata(),
    }
}

/// Places `count` orders through `store`; their ids.
pub async fn place(store: &AggregateStore<Order>, count: usize) -> Vec<String> {
    let placed = placements(count);
    store.execute_all(&placed).await.expect("placed");
    placed.into_iter().map(|c| c.aggregate_id).collect()
}
