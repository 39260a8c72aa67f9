//! Invariant 6: after a crash between a commit and its view update, the read model
//! catches up with the event store by itself.

use std::time::Duration;

use domain::OrderId;
use domain::order::{OrderCommand, TargetStatus, UpdateOrder};
use eventstore::{AggregateStore, EventMetadata};
use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::spawn_app;

#[tokio::test]
async fn a_view_left_behind_by_a_crash_between_commit_and_view_update_heals_by_itself() {
    let app = spawn_app().await;
    let placed = app.post_order(&json!({"userId": "alice", "orderItems": [{"productId": "mug", "quantity": 2}]})).await;
    let order = placed.data(StatusCode::CREATED).clone();
    let order_id: OrderId = order["orderId"].as_str().expect("id").parse().expect("uuid");

    // What a writer without the view leaves (another tool, or a view being rebuilt):
    // the event, no view update.
    let store = AggregateStore::<domain::order::Order>::new(app.pool.clone());
    let cancel = OrderCommand::UpdateOrder(UpdateOrder { items: vec![], status: Some(TargetStatus::Canceled) });
    store.execute(&order_id.to_string(), cancel, &EventMetadata::new("crash", "crash", "test")).await.expect("commit");

    let mut view = json!(null);
    // Up to 30 s, returning as soon as it caught up: the whole suite shares two cores.
    for _ in 0..600 {
        view = app.get_order(&order_id.to_string()).await.data(StatusCode::OK).clone();
        if view["version"] == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        (view["version"].as_u64(), view["status"].as_str()),
        (Some(2), Some("CANCELED")),
        "the view caught up: {view}"
    );
    assert_eq!(view["orderItems"][0]["status"], "CANCELED");
}
