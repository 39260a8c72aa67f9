//! Which commits take one statement and which a transaction, as operators count them
//! (`event_store_commits_total{path}`). A test binary of its own: the counter belongs
//! to the process, and no other test may commit beside it.

mod support;

use eventstore::AggregateStore;
use projections::{OrderViews, Projector};
use support::{place, pool, remembering, resize};

/// The counts of commits of orders, in one statement and in a transaction.
fn commits() -> (u64, u64) {
    telemetry::commits_by_path("Order")
}

#[tokio::test]
async fn placements_and_updates_of_remembered_orders_commit_in_one_statement_the_rest_in_a_transaction() {
    telemetry::prometheus();
    let pool = pool("oms", &migrations::OMS).await;
    let (here, there) = (remembering(&pool), remembering(&pool));
    let forgetful = AggregateStore::new(pool.clone()).with_projection(Projector::<OrderViews>::live());
    let orders = place(&here, 2).await;
    assert_eq!(commits(), (1, 0), "both placements in one statement");

    let steps = [
        (&here, 0, (2, 0), "an update of an order this instance committed"),
        (&there, 0, (2, 1), "an order the other instance does not remember"),
        (&there, 0, (3, 1), "which it remembers once it has read and changed it"),
        (&here, 0, (3, 2), "an order the other instance moved on since this one's commit"),
        (&here, 0, (4, 2), "remembered again"),
        (&forgetful, 1, (4, 3), "a projection that remembers nothing"),
    ];
    for (step, (store, order, expected, what)) in steps.into_iter().enumerate() {
        let result = store.execute_all(&[resize(&orders[order], &format!("step-{step}"), 1)]).await.expect("committed");
        assert!(result[0].is_ok(), "{result:?}");
        assert_eq!(commits(), expected, "step {step}: {what}");
    }
}
