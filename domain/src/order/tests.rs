//! The order's rules, given/when/then: `given` folds past events with `apply`, `when`
//! asks `decide`, and each test asserts the exact events or the exact error.

use cqrs_es::persist::SerializedEvent;
use cqrs_es::test::TestFramework;
use cqrs_es::{Aggregate, DomainEvent};
use proptest::prelude::*;

use super::*;
use crate::{ProductId, Quantity, UserId};

// ----- fixtures -------------------------------------------------------------------

fn product(id: &str) -> ProductId {
    ProductId::parse(id).unwrap()
}

fn units(n: u32) -> Quantity {
    Quantity::new(n.into()).unwrap()
}

fn alice() -> UserId {
    UserId::parse("alice").unwrap()
}

fn lines(items: &[(&str, u32)]) -> Vec<OrderLine> {
    items.iter().map(|(id, n)| OrderLine { product_id: product(id), quantity: units(*n) }).collect()
}

fn placed(items: &[(&str, u32)]) -> OrderEvent {
    OrderEvent::OrderPlaced { user_id: alice(), items: lines(items), idempotency_key: None }
}

fn placed_with_key(items: &[(&str, u32)], key: &str) -> OrderEvent {
    OrderEvent::OrderPlaced { user_id: alice(), items: lines(items), idempotency_key: Some(key.to_owned()) }
}

fn executed(id: &str, n: u32, revision: u64) -> OrderEvent {
    OrderEvent::ItemExecuted { product_id: product(id), quantity: units(n), revision }
}

fn rejected(id: &str, n: u32, revision: u64, reason: RejectionReason) -> OrderEvent {
    OrderEvent::ItemRejected { product_id: product(id), quantity: units(n), revision, reason }
}

fn items_changed(changes: &[(&str, u32, ItemStatus)]) -> OrderEvent {
    OrderEvent::OrderItemsChanged {
        items: changes
            .iter()
            .map(|(id, n, status)| ItemChange { product_id: product(id), quantity: units(*n), status: *status })
            .collect(),
    }
}

/// A status change that ships nothing (paid, delivered).
fn status_changed(status: TargetStatus) -> OrderEvent {
    OrderEvent::OrderStatusChanged { status, items: vec![] }
}

/// The order shipped, consuming the reservations of `ids`.
fn shipped_with(ids: &[&str]) -> OrderEvent {
    OrderEvent::OrderStatusChanged { status: TargetStatus::Shipped, items: ids.iter().map(|id| product(id)).collect() }
}

fn canceled(ids: &[&str]) -> OrderEvent {
    OrderEvent::OrderCanceled {
        items: ids.iter().map(|id| product(id)).collect(),
        reason: CancelReason::CanceledByCustomer,
    }
}

fn expired(ids: &[&str]) -> OrderEvent {
    OrderEvent::OrderCanceled {
        items: ids.iter().map(|id| product(id)).collect(),
        reason: CancelReason::PaymentTimeout,
    }
}

fn place(items: &[(&str, u32)]) -> OrderCommand {
    place_for(alice(), items)
}

fn place_for(user_id: UserId, items: &[(&str, u32)]) -> OrderCommand {
    OrderCommand::PlaceOrder(PlaceOrder { user_id, items: lines(items), idempotency_key: None })
}

fn place_with_key(items: &[(&str, u32)], key: &str) -> OrderCommand {
    OrderCommand::PlaceOrder(PlaceOrder {
        user_id: alice(),
        items: lines(items),
        idempotency_key: Some(key.to_owned()),
    })
}

fn update(items: Vec<ItemUpdate>, status: Option<TargetStatus>) -> OrderCommand {
    OrderCommand::UpdateOrder(UpdateOrder { items, status })
}

fn update_status(status: TargetStatus) -> OrderCommand {
    update(vec![], Some(status))
}

fn update_items(items: Vec<ItemUpdate>) -> OrderCommand {
    update(items, None)
}

fn set_quantity(id: &str, n: u32) -> ItemUpdate {
    ItemUpdate::SetQuantity { product_id: product(id), quantity: units(n) }
}

fn cancel_item(id: &str) -> ItemUpdate {
    ItemUpdate::Cancel { product_id: product(id) }
}

fn record(id: &str, revision: u64, outcome: ItemOutcome) -> OrderCommand {
    OrderCommand::RecordItemOutcome(RecordItemOutcome { product_id: product(id), revision, outcome })
}

const INSUFFICIENT: RejectionReason = RejectionReason::InsufficientStock;

/// An order of 2 mugs and 1 tea, placed as event 1: both items have revision 1.
fn mug_and_tea() -> OrderEvent {
    placed(&[("mug", 2), ("tea", 1)])
}

fn fold(events: Vec<OrderEvent>) -> Order {
    let mut order = Order::default();
    for event in events {
        order.apply(event);
    }
    order
}

struct Given(Order);

fn given(events: Vec<OrderEvent>) -> Given {
    Given(fold(events))
}

impl Given {
    fn when(&self, command: OrderCommand) -> Result<Vec<OrderEvent>, OrderError> {
        self.0.decide(command)
    }
}

fn item<'a>(order: &'a Order, id: &str) -> &'a OrderItem {
    order.items().iter().find(|item| item.product_id.as_str() == id).unwrap()
}

// Histories that reach each status of the lifecycle, for mug and tea.

fn pending() -> Vec<OrderEvent> {
    vec![mug_and_tea()]
}

fn all_executed() -> Vec<OrderEvent> {
    vec![mug_and_tea(), executed("mug", 2, 1), executed("tea", 1, 1)]
}

fn partially_executed() -> Vec<OrderEvent> {
    vec![mug_and_tea(), executed("mug", 2, 1), rejected("tea", 1, 1, INSUFFICIENT)]
}

fn all_rejected() -> Vec<OrderEvent> {
    vec![mug_and_tea(), rejected("mug", 2, 1, INSUFFICIENT), rejected("tea", 1, 1, RejectionReason::UnknownProduct)]
}

fn canceled_by_customer() -> Vec<OrderEvent> {
    vec![mug_and_tea(), executed("mug", 2, 1), canceled(&["mug", "tea"])]
}

fn paid() -> Vec<OrderEvent> {
    let mut events = all_executed();
    events.push(status_changed(TargetStatus::Paid));
    events
}

fn shipped() -> Vec<OrderEvent> {
    let mut events = paid();
    events.push(shipped_with(&["mug", "tea"]));
    events
}

fn delivered() -> Vec<OrderEvent> {
    let mut events = shipped();
    events.push(status_changed(TargetStatus::Delivered));
    events
}

// ----- placement ------------------------------------------------------------------

#[test]
fn placing_an_order_records_every_line() {
    assert_eq!(given(vec![]).when(place(&[("mug", 2), ("tea", 1)])), Ok(vec![mug_and_tea()]));
}

#[test]
fn a_placed_order_is_pending_with_every_item_pending_at_revision_one() {
    let order = fold(vec![mug_and_tea()]);
    assert!(order.is_placed());
    assert_eq!(order.version(), 1);
    assert_eq!(order.user_id(), Some(&alice()));
    assert_eq!(order.status(), OrderStatus::Pending);
    assert_eq!(
        order.items(),
        [
            OrderItem {
                product_id: product("mug"),
                quantity: units(2),
                status: ItemStatus::Pending,
                reason: None,
                revision: 1
            },
            OrderItem {
                product_id: product("tea"),
                quantity: units(1),
                status: ItemStatus::Pending,
                reason: None,
                revision: 1
            },
        ]
    );
}

#[test]
fn placing_an_order_without_items_is_refused() {
    assert_eq!(given(vec![]).when(place(&[])), Err(OrderError::NoItems));
}

#[test]
fn placing_more_than_a_hundred_items_is_refused() {
    let names: Vec<String> = (0..=Order::MAX_ITEMS).map(|i| format!("p-{i}")).collect();
    let items: Vec<(&str, u32)> = names.iter().map(|name| (name.as_str(), 1)).collect();

    assert_eq!(given(vec![]).when(place(&items)), Err(OrderError::TooManyItems { max: 100 }));
    assert_eq!(given(vec![]).when(place(&items[..100])).map(|events| events.len()), Ok(1));
}

#[test]
fn placing_the_same_product_twice_is_refused() {
    assert_eq!(
        given(vec![]).when(place(&[("mug", 2), ("tea", 1), ("mug", 3)])),
        Err(OrderError::DuplicateProduct { product_id: product("mug") })
    );
}

#[test]
fn retrying_an_identical_placement_decides_nothing() {
    assert_eq!(given(vec![mug_and_tea()]).when(place(&[("mug", 2), ("tea", 1)])), Ok(vec![]));
}

#[test]
fn retrying_a_placement_after_the_order_moved_on_still_decides_nothing() {
    let mut history = paid();
    history.push(canceled(&["mug", "tea"]));
    assert_eq!(given(history).when(place(&[("mug", 2), ("tea", 1)])), Ok(vec![]));
}

#[test]
fn reusing_an_order_id_for_other_content_is_refused() {
    let other_content = [
        ("another user", place_for(UserId::parse("bob").unwrap(), &[("mug", 2), ("tea", 1)])),
        ("another quantity", place(&[("mug", 3), ("tea", 1)])),
        ("another product", place(&[("mug", 2), ("cup", 1)])),
        ("fewer lines", place(&[("mug", 2)])),
        ("no lines", place(&[])),
    ];
    for (label, command) in other_content {
        assert_eq!(given(vec![mug_and_tea()]).when(command), Err(OrderError::PlacedWithOtherContent), "{label}");
    }
}

#[test]
fn placing_an_order_with_an_idempotency_key_records_the_key() {
    assert_eq!(
        given(vec![]).when(place_with_key(&[("mug", 2), ("tea", 1)], "checkout-42")),
        Ok(vec![placed_with_key(&[("mug", 2), ("tea", 1)], "checkout-42")])
    );
}

#[test]
fn the_recorded_key_changes_nothing_of_the_order_it_placed() {
    assert_eq!(fold(vec![placed_with_key(&[("mug", 2), ("tea", 1)], "checkout-42")]), fold(vec![mug_and_tea()]));
}

#[test]
fn retrying_with_its_key_a_placement_stored_before_keys_were_recorded_decides_nothing() {
    // An order placed under key k by a release that wrote OrderPlaced 1.0 (upcast: no
    // key); the client retries under k after the upgrade: same order id, same request.
    let stored_as_1_0 = mug_and_tea();
    assert_eq!(given(vec![stored_as_1_0.clone()]).when(place_with_key(&[("mug", 2), ("tea", 1)], "k")), Ok(vec![]));
    assert_eq!(
        given(vec![stored_as_1_0]).when(place_with_key(&[("mug", 3), ("tea", 1)], "k")),
        Err(OrderError::PlacedWithOtherContent)
    );
}

#[test]
fn updating_an_order_never_placed_is_not_found() {
    assert_eq!(given(vec![]).when(update_status(TargetStatus::Canceled)), Err(OrderError::NotFound));
    assert_eq!(given(vec![]).when(update_items(vec![set_quantity("mug", 1)])), Err(OrderError::NotFound));
}

// ----- lifecycle ------------------------------------------------------------------

#[derive(Debug, Clone, Copy)]
enum Expect {
    /// The order moves to the target status.
    Moves,
    /// Already there: nothing to decide.
    Stays,
    /// `TransitionNotAllowed` from the current status.
    Refused,
}

#[test]
fn every_status_transition_is_allowed_or_refused_as_the_lifecycle_says() {
    use Expect::{Moves, Refused, Stays};
    use TargetStatus::{Canceled, Delivered, Paid, Shipped};

    type History = fn() -> Vec<OrderEvent>;
    // Columns: PAID, SHIPPED, DELIVERED, CANCELED.
    let table: [(&str, History, OrderStatus, [Expect; 4]); 8] = [
        ("pending", pending, OrderStatus::Pending, [Refused, Refused, Refused, Moves]),
        ("executed", all_executed, OrderStatus::Executed, [Moves, Refused, Refused, Moves]),
        ("partially executed", partially_executed, OrderStatus::PartiallyExecuted, [Moves, Refused, Refused, Moves]),
        ("canceled by its outcomes", all_rejected, OrderStatus::Canceled, [Refused, Refused, Refused, Moves]),
        ("canceled by the customer", canceled_by_customer, OrderStatus::Canceled, [Refused, Refused, Refused, Stays]),
        ("paid", paid, OrderStatus::Paid, [Stays, Moves, Refused, Moves]),
        ("shipped", shipped, OrderStatus::Shipped, [Refused, Stays, Moves, Refused]),
        ("delivered", delivered, OrderStatus::Delivered, [Refused, Refused, Stays, Refused]),
    ];

    for (label, history, from, expectations) in table {
        let before = fold(history());
        assert_eq!(before.status(), from, "{label}: the history reaches {from}");
        for (target, expect) in [Paid, Shipped, Delivered, Canceled].into_iter().zip(expectations) {
            let to = OrderStatus::from(target);
            let decided = before.decide(update_status(target));
            let case = format!("{label} -> {to}");
            match expect {
                Moves => {
                    let event = match target {
                        Canceled => canceled(&["mug", "tea"]),
                        Shipped => shipped_with(&["mug", "tea"]),
                        Paid | Delivered => status_changed(target),
                    };
                    assert_eq!(decided, Ok(vec![event.clone()]), "{case}");
                    let mut after = before.clone();
                    after.apply(event);
                    assert_eq!(after.status(), to, "{case}: status after");
                }
                Stays => assert_eq!(decided, Ok(vec![]), "{case}"),
                Refused => assert_eq!(decided, Err(OrderError::TransitionNotAllowed { from, to }), "{case}"),
            }
        }
    }
}

#[test]
fn paying_a_pending_order_is_a_conflict() {
    assert_eq!(
        given(pending()).when(update_status(TargetStatus::Paid)),
        Err(OrderError::TransitionNotAllowed { from: OrderStatus::Pending, to: OrderStatus::Paid })
    );
}

#[test]
fn canceling_a_shipped_order_is_a_conflict() {
    assert_eq!(
        given(shipped()).when(update_status(TargetStatus::Canceled)),
        Err(OrderError::TransitionNotAllowed { from: OrderStatus::Shipped, to: OrderStatus::Canceled })
    );
}

#[test]
fn shipping_consumes_the_reservations_of_executed_items_only() {
    let mut history = partially_executed();
    history.push(status_changed(TargetStatus::Paid));
    assert_eq!(given(history).when(update_status(TargetStatus::Shipped)), Ok(vec![shipped_with(&["mug"])]));
}

#[test]
fn an_unpaid_resolved_order_is_canceled_for_payment_timeout() {
    for (label, history) in [("executed", all_executed()), ("partially executed", partially_executed())] {
        let decided = given(history.clone()).when(OrderCommand::CancelUnpaid);
        assert_eq!(decided, Ok(vec![expired(&["mug", "tea"])]), "{label}");
        let mut order = fold(history);
        order.apply(expired(&["mug", "tea"]));
        assert_eq!(order.status(), OrderStatus::Canceled, "{label}");
        // Items canceled earlier keep their reason; the rest are canceled for the timeout.
        let reasons: Vec<_> = order.items().iter().map(|item| (item.status, item.reason)).collect();
        let tea = if label == "executed" { CancelReason::PaymentTimeout } else { CancelReason::InsufficientStock };
        assert_eq!(
            reasons,
            [(ItemStatus::Canceled, Some(CancelReason::PaymentTimeout)), (ItemStatus::Canceled, Some(tea))],
            "{label}"
        );
    }
}

#[test]
fn the_payment_deadline_cancels_nothing_once_paid_or_while_pending_or_when_canceled() {
    type History = fn() -> Vec<OrderEvent>;
    let cases: [(&str, History); 6] = [
        ("pending", pending),
        ("paid", paid),
        ("shipped", shipped),
        ("delivered", delivered),
        ("canceled by the customer", canceled_by_customer),
        ("canceled by its outcomes", all_rejected),
    ];
    for (label, history) in cases {
        assert_eq!(given(history()).when(OrderCommand::CancelUnpaid), Ok(vec![]), "{label}");
    }
}

#[test]
fn paying_an_order_canceled_for_payment_timeout_is_refused_naming_the_deadline() {
    let mut history = all_executed();
    history.push(expired(&["mug", "tea"]));
    for target in [TargetStatus::Paid, TargetStatus::Shipped, TargetStatus::Delivered] {
        let refused = given(history.clone()).when(update_status(target));
        assert_eq!(refused, Err(OrderError::PaymentDeadlinePassed { to: target.into() }), "{target:?}");
    }
    assert_eq!(
        OrderError::PaymentDeadlinePassed { to: OrderStatus::Paid }.to_string(),
        "the order was canceled because it was not paid before its payment deadline: it cannot go from CANCELED to PAID"
    );
    assert_eq!(given(history).when(update_status(TargetStatus::Canceled)), Ok(vec![]), "canceling it again is a no-op");
}

#[test]
fn paying_an_order_the_customer_canceled_is_a_plain_transition_conflict() {
    let mut history = all_executed();
    history.push(canceled(&["mug", "tea"]));
    assert_eq!(
        given(history).when(update_status(TargetStatus::Paid)),
        Err(OrderError::TransitionNotAllowed { from: OrderStatus::Canceled, to: OrderStatus::Paid })
    );
}

#[test]
fn canceling_a_delivered_order_is_a_conflict() {
    assert_eq!(
        given(delivered()).when(update_status(TargetStatus::Canceled)),
        Err(OrderError::TransitionNotAllowed { from: OrderStatus::Delivered, to: OrderStatus::Canceled })
    );
}

#[test]
fn canceling_a_paid_order_cancels_it() {
    assert_eq!(given(paid()).when(update_status(TargetStatus::Canceled)), Ok(vec![canceled(&["mug", "tea"])]));
}

#[test]
fn canceling_twice_is_a_no_op() {
    assert_eq!(given(canceled_by_customer()).when(update_status(TargetStatus::Canceled)), Ok(vec![]));
}

#[test]
fn canceling_an_order_lists_every_product_for_release_even_items_already_canceled() {
    let history =
        vec![mug_and_tea(), items_changed(&[("tea", 1, ItemStatus::Canceled), ("cup", 4, ItemStatus::Pending)])];
    assert_eq!(given(history).when(update_status(TargetStatus::Canceled)), Ok(vec![canceled(&["mug", "tea", "cup"])]));
}

#[test]
fn order_canceled_cancels_every_item_and_keeps_earlier_rejection_reasons() {
    let order = fold(vec![
        placed(&[("mug", 2), ("tea", 1), ("cup", 3)]),
        executed("mug", 2, 1),
        rejected("tea", 1, 1, INSUFFICIENT),
        canceled(&["mug", "tea", "cup"]),
    ]);

    assert_eq!(order.status(), OrderStatus::Canceled);
    let states: Vec<_> =
        order.items().iter().map(|item| (item.product_id.as_str(), item.status, item.reason, item.revision)).collect();
    assert_eq!(
        states,
        [
            ("mug", ItemStatus::Canceled, Some(CancelReason::CanceledByCustomer), 4),
            ("tea", ItemStatus::Canceled, Some(CancelReason::InsufficientStock), 4),
            ("cup", ItemStatus::Canceled, Some(CancelReason::CanceledByCustomer), 4),
        ]
    );
}

// ----- derived status -------------------------------------------------------------

#[test]
fn an_open_order_takes_its_status_from_its_items() {
    use ItemStatus::{Canceled, Executed, Pending};
    let table: [(&[ItemStatus], OrderStatus); 8] = [
        (&[Pending], OrderStatus::Pending),
        (&[Executed, Pending], OrderStatus::Pending),
        (&[Canceled, Pending, Executed], OrderStatus::Pending),
        (&[Executed], OrderStatus::Executed),
        (&[Executed, Executed], OrderStatus::Executed),
        (&[Executed, Canceled], OrderStatus::PartiallyExecuted),
        (&[Canceled, Executed, Canceled], OrderStatus::PartiallyExecuted),
        (&[Canceled, Canceled], OrderStatus::Canceled),
    ];
    for (items, expected) in table {
        assert_eq!(OrderStatus::from_items(items.iter().copied()), expected, "items {items:?}");
    }
}

#[test]
fn an_order_is_pending_while_any_item_is_pending() {
    assert_eq!(fold(vec![mug_and_tea(), executed("mug", 2, 1)]).status(), OrderStatus::Pending);
    assert_eq!(fold(vec![mug_and_tea(), rejected("tea", 1, 1, INSUFFICIENT)]).status(), OrderStatus::Pending);
}

#[test]
fn an_order_with_every_item_executed_is_executed() {
    assert_eq!(fold(all_executed()).status(), OrderStatus::Executed);
}

#[test]
fn an_order_with_some_items_executed_is_partially_executed() {
    assert_eq!(fold(partially_executed()).status(), OrderStatus::PartiallyExecuted);
}

#[test]
fn an_order_with_no_item_executed_is_canceled() {
    assert_eq!(fold(all_rejected()).status(), OrderStatus::Canceled);
    let every_item_canceled_by_customer =
        vec![mug_and_tea(), items_changed(&[("mug", 2, ItemStatus::Canceled), ("tea", 1, ItemStatus::Canceled)])];
    assert_eq!(fold(every_item_canceled_by_customer).status(), OrderStatus::Canceled);
}

#[test]
fn changing_an_item_of_an_executed_order_makes_it_pending_again() {
    let order = fold(vec![
        mug_and_tea(),
        executed("mug", 2, 1),
        executed("tea", 1, 1),
        items_changed(&[("mug", 5, ItemStatus::Pending)]),
    ]);
    assert_eq!(order.status(), OrderStatus::Pending);
}

// ----- item changes ---------------------------------------------------------------

#[test]
fn changing_a_quantity_puts_the_item_back_to_pending() {
    assert_eq!(
        given(all_executed()).when(update_items(vec![set_quantity("mug", 5)])),
        Ok(vec![items_changed(&[("mug", 5, ItemStatus::Pending)])])
    );
}

#[test]
fn a_changed_item_gets_the_revision_of_the_change() {
    let mut history = all_executed();
    history.push(items_changed(&[("mug", 5, ItemStatus::Pending)]));
    let order = fold(history);

    assert_eq!(
        item(&order, "mug"),
        &OrderItem {
            product_id: product("mug"),
            quantity: units(5),
            status: ItemStatus::Pending,
            reason: None,
            revision: 4
        }
    );
    assert_eq!(item(&order, "tea").revision, 1, "an unchanged item keeps its revision");
}

#[test]
fn setting_the_same_quantity_again_is_a_no_op() {
    assert_eq!(given(all_executed()).when(update_items(vec![set_quantity("mug", 2)])), Ok(vec![]));
    assert_eq!(given(pending()).when(update_items(vec![set_quantity("tea", 1)])), Ok(vec![]));
}

#[test]
fn asking_again_for_a_rejected_item_puts_it_back_to_pending() {
    assert_eq!(
        given(partially_executed()).when(update_items(vec![set_quantity("tea", 1)])),
        Ok(vec![items_changed(&[("tea", 1, ItemStatus::Pending)])])
    );
}

#[test]
fn adding_an_item_appends_it_pending() {
    assert_eq!(
        given(all_executed()).when(update_items(vec![set_quantity("cup", 3)])),
        Ok(vec![items_changed(&[("cup", 3, ItemStatus::Pending)])])
    );

    let mut history = all_executed();
    history.push(items_changed(&[("cup", 3, ItemStatus::Pending)]));
    let order = fold(history);
    let products: Vec<_> = order.items().iter().map(|item| item.product_id.as_str()).collect();
    assert_eq!(products, ["mug", "tea", "cup"]);
    assert_eq!(item(&order, "cup").revision, 4);
    assert_eq!(order.status(), OrderStatus::Pending);
}

#[test]
fn adding_an_item_beyond_a_hundred_is_refused() {
    let names: Vec<String> = (0..Order::MAX_ITEMS).map(|i| format!("p-{i}")).collect();
    let items: Vec<(&str, u32)> = names.iter().map(|name| (name.as_str(), 1)).collect();
    let full = given(vec![placed(&items)]);

    assert_eq!(full.when(update_items(vec![set_quantity("one-more", 1)])), Err(OrderError::TooManyItems { max: 100 }));
    assert_eq!(
        full.when(update_items(vec![set_quantity("p-0", 2)])),
        Ok(vec![items_changed(&[("p-0", 2, ItemStatus::Pending)])]),
        "a full order can still change the quantity of its items"
    );
}

#[test]
fn canceling_an_item_cancels_it_for_the_customer() {
    assert_eq!(
        given(all_executed()).when(update_items(vec![cancel_item("tea")])),
        Ok(vec![items_changed(&[("tea", 1, ItemStatus::Canceled)])])
    );

    let mut history = all_executed();
    history.push(items_changed(&[("tea", 1, ItemStatus::Canceled)]));
    let order = fold(history);
    assert_eq!(item(&order, "tea").reason, Some(CancelReason::CanceledByCustomer));
    assert_eq!(order.status(), OrderStatus::PartiallyExecuted);
}

#[test]
fn canceling_an_item_already_canceled_is_a_no_op() {
    assert_eq!(given(partially_executed()).when(update_items(vec![cancel_item("tea")])), Ok(vec![]));
}

#[test]
fn canceling_an_unknown_item_is_refused() {
    assert_eq!(
        given(pending()).when(update_items(vec![cancel_item("cup")])),
        Err(OrderError::ItemNotInOrder { product_id: product("cup") })
    );
}

#[test]
fn the_same_product_twice_in_one_update_is_refused() {
    assert_eq!(
        given(pending()).when(update_items(vec![set_quantity("mug", 3), cancel_item("mug")])),
        Err(OrderError::DuplicateProduct { product_id: product("mug") })
    );
}

#[test]
fn an_update_that_asks_for_nothing_is_refused() {
    assert_eq!(given(pending()).when(update(vec![], None)), Err(OrderError::NothingToUpdate));
}

#[test]
fn items_are_locked_once_the_order_is_paid_or_canceled_by_the_customer() {
    let table: [(&str, Vec<OrderEvent>, OrderStatus); 4] = [
        ("paid", paid(), OrderStatus::Paid),
        ("shipped", shipped(), OrderStatus::Shipped),
        ("delivered", delivered(), OrderStatus::Delivered),
        ("canceled", canceled_by_customer(), OrderStatus::Canceled),
    ];
    for (label, history, status) in table {
        let order = given(history);
        // Real changes only: a no-op change on a locked order is answered as a no-op.
        let tea_change = if label == "canceled" { set_quantity("tea", 3) } else { cancel_item("tea") };
        for change in [set_quantity("mug", 5), set_quantity("cup", 1), tea_change] {
            assert_eq!(
                order.when(update_items(vec![change.clone()])),
                Err(OrderError::ItemsLocked { status }),
                "{label}: {change:?}"
            );
        }
    }
}

/// DESIGN.md does not say whether an order canceled because no item could be served may
/// still change its items; the code allows it (the customer may ask for less).
#[test]
fn items_of_an_order_canceled_by_its_outcomes_can_still_change() {
    assert_eq!(
        given(all_rejected()).when(update_items(vec![set_quantity("mug", 1)])),
        Ok(vec![items_changed(&[("mug", 1, ItemStatus::Pending)])])
    );
}

#[test]
fn items_and_status_in_one_update_both_apply_when_allowed() {
    // Tea is still pending: canceling it leaves the order partially executed, so it can be paid.
    let history = vec![mug_and_tea(), executed("mug", 2, 1)];
    assert_eq!(
        given(history).when(update(vec![cancel_item("tea")], Some(TargetStatus::Paid))),
        Ok(vec![items_changed(&[("tea", 1, ItemStatus::Canceled)]), status_changed(TargetStatus::Paid)])
    );
}

#[test]
fn items_and_status_in_one_update_are_refused_together() {
    // Changing the mug makes it pending again, so the order cannot be paid: nothing at all.
    assert_eq!(
        given(all_executed()).when(update(vec![set_quantity("mug", 5)], Some(TargetStatus::Paid))),
        Err(OrderError::TransitionNotAllowed { from: OrderStatus::Pending, to: OrderStatus::Paid })
    );
}

#[test]
fn a_status_is_judged_after_the_item_changes_of_the_same_update() {
    assert_eq!(
        given(all_executed()).when(update(vec![set_quantity("cup", 1)], Some(TargetStatus::Canceled))),
        Ok(vec![items_changed(&[("cup", 1, ItemStatus::Pending)]), canceled(&["mug", "tea", "cup"])])
    );
}

#[test]
fn an_item_change_refused_refuses_the_status_too() {
    assert_eq!(
        given(all_executed()).when(update(vec![cancel_item("cup")], Some(TargetStatus::Paid))),
        Err(OrderError::ItemNotInOrder { product_id: product("cup") })
    );
}

/// A client retrying a `PUT` that succeeded gets a 409, because the items part now meets
/// a locked order. Nothing is recorded twice, but HTTP promises that a PUT can be
/// repeated; DESIGN.md only promises idempotency for POST and Kafka messages.
#[test]
fn retrying_an_update_that_paid_the_order_decides_nothing() {
    let command = update(vec![set_quantity("mug", 2)], Some(TargetStatus::Paid));
    let decided = given(all_executed()).when(command.clone());
    assert_eq!(decided, Ok(vec![status_changed(TargetStatus::Paid)]));

    let mut history = all_executed();
    history.extend(decided.unwrap());
    assert_eq!(given(history).when(command), Ok(vec![]));
}

// ----- outcomes from the inventory service ----------------------------------------

#[test]
fn an_executed_outcome_executes_the_item() {
    assert_eq!(given(pending()).when(record("mug", 1, ItemOutcome::Executed)), Ok(vec![executed("mug", 2, 1)]));

    let order = fold(vec![mug_and_tea(), executed("mug", 2, 1)]);
    assert_eq!(item(&order, "mug").status, ItemStatus::Executed);
    assert_eq!(item(&order, "mug").reason, None);
}

#[test]
fn a_rejected_outcome_cancels_the_item_with_its_reason() {
    for (reason, cancel_reason) in [
        (RejectionReason::InsufficientStock, CancelReason::InsufficientStock),
        (RejectionReason::UnknownProduct, CancelReason::UnknownProduct),
    ] {
        assert_eq!(
            given(pending()).when(record("tea", 1, ItemOutcome::Rejected(reason))),
            Ok(vec![rejected("tea", 1, 1, reason)])
        );
        let order = fold(vec![mug_and_tea(), rejected("tea", 1, 1, reason)]);
        assert_eq!(item(&order, "tea").status, ItemStatus::Canceled);
        assert_eq!(item(&order, "tea").reason, Some(cancel_reason));
    }
}

#[test]
fn a_redelivered_outcome_decides_nothing() {
    let history = vec![mug_and_tea(), executed("mug", 2, 1)];
    assert_eq!(given(history.clone()).when(record("mug", 1, ItemOutcome::Executed)), Ok(vec![]));
    assert_eq!(given(history).when(record("mug", 1, ItemOutcome::Rejected(INSUFFICIENT))), Ok(vec![]));
}

#[test]
fn an_outcome_for_a_superseded_revision_decides_nothing() {
    let history = vec![mug_and_tea(), items_changed(&[("mug", 5, ItemStatus::Pending)])];
    assert_eq!(given(history.clone()).when(record("mug", 1, ItemOutcome::Executed)), Ok(vec![]));
    assert_eq!(
        given(history).when(record("mug", 2, ItemOutcome::Executed)),
        Ok(vec![executed("mug", 5, 2)]),
        "the outcome for the current revision carries the current quantity"
    );
}

#[test]
fn an_outcome_after_the_order_was_canceled_decides_nothing() {
    let history = vec![mug_and_tea(), canceled(&["mug", "tea"])];
    for revision in [1, 2] {
        assert_eq!(
            given(history.clone()).when(record("mug", revision, ItemOutcome::Executed)),
            Ok(vec![]),
            "revision {revision}"
        );
    }
}

#[test]
fn an_outcome_for_an_item_canceled_by_the_customer_decides_nothing() {
    let history = vec![mug_and_tea(), items_changed(&[("tea", 1, ItemStatus::Canceled)])];
    assert_eq!(given(history).when(record("tea", 2, ItemOutcome::Executed)), Ok(vec![]));
}

#[test]
fn an_outcome_for_an_unknown_order_is_not_found() {
    assert_eq!(given(vec![]).when(record("mug", 1, ItemOutcome::Executed)), Err(OrderError::NotFound));
}

#[test]
fn an_outcome_for_a_product_not_in_the_order_is_refused() {
    assert_eq!(
        given(pending()).when(record("cup", 1, ItemOutcome::Executed)),
        Err(OrderError::ItemNotInOrder { product_id: product("cup") })
    );
}

// ----- handle writes what decide returned -----------------------------------------

#[test]
fn handle_records_exactly_what_decide_returned() {
    TestFramework::<Order>::with(())
        .given(pending())
        .when(record("mug", 1, ItemOutcome::Executed))
        .then_expect_events(vec![executed("mug", 2, 1)]);
    TestFramework::<Order>::with(())
        .given(shipped())
        .when(update_status(TargetStatus::Canceled))
        .then_expect_error(OrderError::TransitionNotAllowed { from: OrderStatus::Shipped, to: OrderStatus::Canceled });
    TestFramework::<Order>::with(())
        .given(all_executed())
        .when(update(vec![cancel_item("tea")], Some(TargetStatus::Paid)))
        .then_expect_events(vec![
            items_changed(&[("tea", 1, ItemStatus::Canceled)]),
            status_changed(TargetStatus::Paid),
        ]);
}

// ----- wire form ------------------------------------------------------------------

/// One of each event; the `match` makes a new variant a compile error here until it
/// has a round-trip sample.
fn one_of_each_event() -> Vec<OrderEvent> {
    let events = vec![
        mug_and_tea(),
        items_changed(&[("mug", 5, ItemStatus::Pending), ("tea", 1, ItemStatus::Canceled)]),
        executed("mug", 5, 2),
        rejected("tea", 1, 1, RejectionReason::UnknownProduct),
        status_changed(TargetStatus::Paid),
        canceled(&["mug", "tea"]),
    ];
    for event in &events {
        match event {
            OrderEvent::OrderPlaced { .. }
            | OrderEvent::OrderItemsChanged { .. }
            | OrderEvent::ItemExecuted { .. }
            | OrderEvent::ItemRejected { .. }
            | OrderEvent::OrderStatusChanged { .. }
            | OrderEvent::OrderCanceled { .. } => {}
        }
    }
    events
}

#[test]
fn every_order_event_survives_a_json_round_trip() {
    let events = one_of_each_event();
    let types: std::collections::BTreeSet<String> = events.iter().map(DomainEvent::event_type).collect();
    assert_eq!(types.len(), events.len(), "one sample per variant");

    for event in events {
        let json = serde_json::to_value(&event).unwrap();
        let back: OrderEvent = serde_json::from_value(json.clone()).unwrap();
        assert_eq!(back, event, "{json}");
    }
    let with_key = placed_with_key(&[("mug", 2)], "checkout-42");
    assert_eq!(serde_json::from_value::<OrderEvent>(serde_json::to_value(&with_key).unwrap()).unwrap(), with_key);
    for target in [TargetStatus::Shipped, TargetStatus::Delivered, TargetStatus::Canceled] {
        let event = status_changed(target);
        assert_eq!(serde_json::from_str::<OrderEvent>(&serde_json::to_string(&event).unwrap()).unwrap(), event);
    }
}

#[test]
fn the_stored_event_type_is_the_json_tag() {
    for event in one_of_each_event() {
        let json = serde_json::to_value(&event).unwrap();
        let tags: Vec<&String> = json.as_object().unwrap().keys().collect();
        assert_eq!(tags, [&event.event_type()], "{json}");
    }
}

#[test]
fn order_events_keep_their_wire_form() {
    let pinned = [
        (
            mug_and_tea(),
            r#"{"OrderPlaced":{"userId":"alice","items":[{"productId":"mug","quantity":2},{"productId":"tea","quantity":1}],"idempotencyKey":null}}"#,
        ),
        (
            placed_with_key(&[("mug", 2)], "checkout-42"),
            r#"{"OrderPlaced":{"userId":"alice","items":[{"productId":"mug","quantity":2}],"idempotencyKey":"checkout-42"}}"#,
        ),
        (
            items_changed(&[("mug", 5, ItemStatus::Pending), ("tea", 1, ItemStatus::Canceled)]),
            r#"{"OrderItemsChanged":{"items":[{"productId":"mug","quantity":5,"status":"PENDING"},{"productId":"tea","quantity":1,"status":"CANCELED"}]}}"#,
        ),
        (executed("mug", 2, 1), r#"{"ItemExecuted":{"productId":"mug","quantity":2,"revision":1}}"#),
        (
            rejected("tea", 1, 3, INSUFFICIENT),
            r#"{"ItemRejected":{"productId":"tea","quantity":1,"revision":3,"reason":"INSUFFICIENT_STOCK"}}"#,
        ),
        (status_changed(TargetStatus::Paid), r#"{"OrderStatusChanged":{"status":"PAID","items":[]}}"#),
        (shipped_with(&["mug"]), r#"{"OrderStatusChanged":{"status":"SHIPPED","items":["mug"]}}"#),
        (canceled(&["mug", "tea"]), r#"{"OrderCanceled":{"items":["mug","tea"],"reason":"CANCELED_BY_CUSTOMER"}}"#),
        (expired(&["mug"]), r#"{"OrderCanceled":{"items":["mug"],"reason":"PAYMENT_TIMEOUT"}}"#),
    ];
    for (event, wire) in pinned {
        assert_eq!(serde_json::to_string(&event).unwrap(), wire);
        assert_eq!(serde_json::from_str::<OrderEvent>(wire).unwrap(), event, "{wire}");
    }
}

#[test]
fn a_stored_event_with_an_invalid_value_does_not_deserialize() {
    for bad in [
        r#"{"OrderPlaced":{"userId":"alice","items":[{"productId":"mug","quantity":0}],"idempotencyKey":null}}"#,
        r#"{"OrderPlaced":{"userId":"alice","items":[{"productId":"a b","quantity":1}],"idempotencyKey":null}}"#,
        r#"{"OrderPlaced":{"userId":"alice","items":[{"productId":"mug","quantity":1}],"idempotencyKey":42}}"#,
        r#"{"OrderStatusChanged":{"status":"PENDING","items":[]}}"#,
        r#"{"OrderStatusChanged":{"status":"PAID"}}"#,
        r#"{"OrderCanceled":{"items":["mug"]}}"#,
        r#"{"OrderCanceled":{"items":["mug"],"reason":"INSUFFICIENT_STOCK_OR_WORSE"}}"#,
        r#"{"ItemRejected":{"productId":"tea","quantity":1,"revision":3,"reason":"CANCELED_BY_CUSTOMER"}}"#,
    ] {
        assert!(serde_json::from_str::<OrderEvent>(bad).is_err(), "{bad}");
    }
}

// ----- versions -------------------------------------------------------------------

/// What a release before OrderPlaced 2.0 stored: no `idempotencyKey`.
const ORDER_PLACED_1_0: &str =
    r#"{"OrderPlaced":{"userId":"alice","items":[{"productId":"mug","quantity":2},{"productId":"tea","quantity":1}]}}"#;

fn stored(event_type: &str, event_version: &str, payload: &str) -> SerializedEvent {
    let payload = serde_json::from_str(payload).unwrap();
    SerializedEvent::new(
        "o-1".into(),
        1,
        "Order".into(),
        event_type.into(),
        event_version.into(),
        payload,
        serde_json::json!({}),
    )
}

/// As the event store reads: every upcaster that applies, in order.
fn upcast(event: SerializedEvent) -> SerializedEvent {
    upcasters().iter().fold(event, |event, upcaster| {
        if upcaster.can_upcast(&event.event_type, &event.event_version) { upcaster.upcast(event) } else { event }
    })
}

#[test]
fn each_event_type_is_at_its_own_version() {
    let versions: Vec<(String, String)> =
        one_of_each_event().iter().map(|e| (e.event_type(), e.event_version())).collect();
    let expected = [
        ("OrderPlaced", "2.0"),
        ("OrderItemsChanged", "1.0"),
        ("ItemExecuted", "1.0"),
        ("ItemRejected", "1.0"),
        ("OrderStatusChanged", "2.0"),
        ("OrderCanceled", "2.0"),
    ];
    assert_eq!(versions, expected.map(|(t, v)| (t.to_owned(), v.to_owned())));
}

#[test]
fn a_stored_order_placed_1_0_decodes_after_upcasting_with_no_key() {
    let upcast = upcast(stored("OrderPlaced", "1.0", ORDER_PLACED_1_0));
    assert_eq!(upcast.event_version, "2.0.0", "the upcaster names the version it produced");
    assert_eq!(
        upcast.payload,
        serde_json::json!({"OrderPlaced": {"userId": "alice", "items": [{"productId": "mug", "quantity": 2}, {"productId": "tea", "quantity": 1}], "idempotencyKey": null}}),
        "1.0 becomes the 2.0 form, the key unknown"
    );
    assert_eq!(serde_json::from_value::<OrderEvent>(upcast.payload).unwrap(), mug_and_tea());
}

#[test]
fn a_stored_order_placed_1_0_does_not_decode_without_its_upcaster() {
    // The 2.0 form requires the field: a reader that forgot the upcasters fails loudly
    // instead of reading 1.0 as if it were 2.0.
    let error = serde_json::from_str::<OrderEvent>(ORDER_PLACED_1_0).unwrap_err();
    assert!(error.to_string().contains("idempotencyKey"), "{error}");
}

#[test]
fn events_at_their_current_version_are_not_upcast() {
    for event in one_of_each_event().into_iter().chain([placed_with_key(&[("mug", 1)], "k")]) {
        let payload = serde_json::to_value(&event).unwrap();
        for upcaster in upcasters() {
            assert!(!upcaster.can_upcast(&event.event_type(), &event.event_version()), "{payload}");
        }
        let serialized = SerializedEvent::new(
            "o-1".into(),
            1,
            "Order".into(),
            event.event_type(),
            event.event_version(),
            payload.clone(),
            serde_json::json!({}),
        );
        assert_eq!(upcast(serialized).payload, payload);
    }
}

#[test]
fn the_upcaster_leaves_a_1_0_payload_it_cannot_read_to_decoding() {
    for odd in [r#"{"OrderPlaced":"not fields"}"#, r#"{"OrderCanceled":{"items":[]}}"#, r#"[1,2]"#] {
        let upcast = upcast(stored("OrderPlaced", "1.0", odd));
        assert_eq!(upcast.payload, serde_json::from_str::<serde_json::Value>(odd).unwrap(), "{odd}");
    }
}

#[test]
fn a_received_order_placed_reads_the_same_at_1_0_and_at_2_0() {
    let fields_1_0 = serde_json::json!({"userId": "alice", "items": [{"productId": "mug", "quantity": 2}, {"productId": "tea", "quantity": 1}]});
    let mut fields_2_0 = fields_1_0.clone();
    fields_2_0["idempotencyKey"] = serde_json::json!(null);
    assert_eq!(decode_event("OrderPlaced", "1.0", fields_1_0), Ok(mug_and_tea()));
    assert_eq!(decode_event("OrderPlaced", "2.0", fields_2_0), Ok(mug_and_tea()));
    let with_key = serde_json::json!({"userId": "alice", "items": [{"productId": "mug", "quantity": 2}], "idempotencyKey": "checkout-42"});
    assert_eq!(decode_event("OrderPlaced", "2.0", with_key), Ok(placed_with_key(&[("mug", 2)], "checkout-42")));
    assert_eq!(decode_event("OrderCanceled", "1.0", serde_json::json!({"items": ["mug"]})), Ok(canceled(&["mug"])));
}

#[test]
fn stored_status_changes_and_cancellations_1_0_read_as_2_0() {
    // Before 2.0 shipping consumed no reservation, and only customers canceled.
    let cases = [
        ("OrderStatusChanged", r#"{"OrderStatusChanged":{"status":"SHIPPED"}}"#, shipped_with(&[])),
        ("OrderStatusChanged", r#"{"OrderStatusChanged":{"status":"PAID"}}"#, status_changed(TargetStatus::Paid)),
        ("OrderCanceled", r#"{"OrderCanceled":{"items":["mug","tea"]}}"#, canceled(&["mug", "tea"])),
    ];
    for (event_type, payload, expected) in cases {
        let upcast = upcast(stored(event_type, "1.0", payload));
        assert_eq!(upcast.event_version, "2.0.0", "{payload}");
        assert_eq!(serde_json::from_value::<OrderEvent>(upcast.payload).unwrap(), expected, "{payload}");
    }
    assert_eq!(
        decode_event("OrderStatusChanged", "1.0", serde_json::json!({"status": "SHIPPED"})),
        Ok(shipped_with(&[]))
    );
    assert_eq!(
        decode_event("OrderCanceled", "2.0", serde_json::json!({"items": ["mug"], "reason": "PAYMENT_TIMEOUT"})),
        Ok(expired(&["mug"]))
    );
}

#[test]
fn a_received_event_of_a_version_this_code_does_not_know_is_refused() {
    let placed_2_0 =
        serde_json::json!({"userId": "alice", "items": [{"productId": "mug", "quantity": 2}], "idempotencyKey": null});
    let cases = [
        ("a newer OrderPlaced, even with fields that fit", "OrderPlaced", "3.0", placed_2_0.clone()),
        ("OrderPlaced 2.1", "OrderPlaced", "2.1", placed_2_0),
        ("a version OrderItemsChanged does not have", "OrderItemsChanged", "2.0", serde_json::json!({"items": []})),
        (
            "not a version",
            "OrderCanceled",
            "latest",
            serde_json::json!({"items": ["mug"], "reason": "CANCELED_BY_CUSTOMER"}),
        ),
        (
            "a newer OrderCanceled",
            "OrderCanceled",
            "3.0",
            serde_json::json!({"items": [], "reason": "PAYMENT_TIMEOUT"}),
        ),
    ];
    for (label, event_type, event_version, fields) in cases {
        assert_eq!(
            decode_event(event_type, event_version, fields),
            Err(UnreadableEvent::UnsupportedVersion {
                event_type: event_type.into(),
                event_version: event_version.into()
            }),
            "{label}"
        );
    }
}

#[test]
fn a_received_event_that_does_not_fit_its_type_is_malformed_and_says_so() {
    let cases = [
        ("an unknown type", "OrderTeleported", "1.0", serde_json::json!({"to": "mars"})),
        (
            "a 1.0 placement with a zero quantity",
            "OrderPlaced",
            "1.0",
            serde_json::json!({"userId": "alice", "items": [{"productId": "mug", "quantity": 0}]}),
        ),
        (
            "a 2.0 placement without its key",
            "OrderPlaced",
            "2.0",
            serde_json::json!({"userId": "alice", "items": [{"productId": "mug", "quantity": 1}]}),
        ),
        ("a newer placement with other fields", "OrderPlaced", "3.0", serde_json::json!({"customer": "alice"})),
    ];
    for (label, event_type, event_version, fields) in cases {
        let error = decode_event(event_type, event_version, fields).unwrap_err();
        assert!(matches!(error, UnreadableEvent::Malformed { .. }), "[{label}] {error:?}");
        let message = error.to_string();
        assert!(
            message.contains(event_type) && message.contains(event_version),
            "[{label}] the message names type and version: {message}"
        );
    }
}

#[test]
fn statuses_cross_the_wire_under_their_display_names() {
    for status in [
        OrderStatus::Pending,
        OrderStatus::Executed,
        OrderStatus::PartiallyExecuted,
        OrderStatus::Canceled,
        OrderStatus::Paid,
        OrderStatus::Shipped,
        OrderStatus::Delivered,
    ] {
        assert_eq!(serde_json::to_string(&status).unwrap(), format!("\"{status}\""));
        assert_eq!(serde_json::from_str::<OrderStatus>(&format!("\"{status}\"")).unwrap(), status);
    }
    let items = [ItemStatus::Pending, ItemStatus::Executed, ItemStatus::Canceled];
    assert_eq!(serde_json::to_string(&items).unwrap(), r#"["PENDING","EXECUTED","CANCELED"]"#);
    let reasons = [CancelReason::InsufficientStock, CancelReason::UnknownProduct, CancelReason::CanceledByCustomer];
    assert_eq!(
        serde_json::to_string(&reasons).unwrap(),
        r#"["INSUFFICIENT_STOCK","UNKNOWN_PRODUCT","CANCELED_BY_CUSTOMER"]"#
    );
}

#[test]
fn an_order_snapshot_survives_a_json_round_trip() {
    let mut history = partially_executed();
    history.push(items_changed(&[("cup", 3, ItemStatus::Pending)]));
    let order = fold(history);
    let back: Order = serde_json::from_str(&serde_json::to_string(&order).unwrap()).unwrap();
    assert_eq!(back, order);
}

// ----- properties -----------------------------------------------------------------

const PRODUCTS: [&str; 4] = ["p-0", "p-1", "p-2", "p-3"];

#[derive(Debug, Clone)]
enum Step {
    /// Item changes (a quantity, or `None` to cancel) and/or a status, as a client's PUT.
    Update { items: Vec<(usize, Option<u32>)>, status: Option<TargetStatus> },
    /// An outcome for one of the order's items (by position), for its current revision
    /// or a stale one.
    Outcome { item: usize, stale: bool, outcome: ItemOutcome },
    /// The payment deadline passed.
    Expire,
}

fn a_target_status() -> impl Strategy<Value = TargetStatus> {
    prop_oneof![
        3 => Just(TargetStatus::Paid),
        2 => Just(TargetStatus::Shipped),
        2 => Just(TargetStatus::Delivered),
        1 => Just(TargetStatus::Canceled),
    ]
}

fn an_outcome() -> impl Strategy<Value = ItemOutcome> {
    prop_oneof![
        3 => Just(ItemOutcome::Executed),
        1 => Just(ItemOutcome::Rejected(RejectionReason::InsufficientStock)),
        1 => Just(ItemOutcome::Rejected(RejectionReason::UnknownProduct)),
    ]
}

fn a_step() -> impl Strategy<Value = Step> {
    let item_changes = (
        prop::collection::vec((0..PRODUCTS.len(), prop::option::weighted(0.8, 1u32..5)), 0..3),
        prop::option::weighted(0.2, a_target_status()),
    )
        .prop_map(|(items, status)| Step::Update { items, status });
    let status = a_target_status().prop_map(|status| Step::Update { items: vec![], status: Some(status) });
    let outcome = (0..PRODUCTS.len(), prop::bool::weighted(0.2), an_outcome())
        .prop_map(|(item, stale, outcome)| Step::Outcome { item, stale, outcome });
    prop_oneof![1 => item_changes, 2 => status, 4 => outcome, 1 => Just(Step::Expire)]
}

fn a_placement() -> impl Strategy<Value = Vec<(usize, u32)>> {
    (
        prop::sample::subsequence((0..PRODUCTS.len()).collect::<Vec<_>>(), 1..=PRODUCTS.len()),
        prop::collection::vec(1u32..5, PRODUCTS.len()),
    )
        .prop_map(|(products, quantities)| products.into_iter().zip(quantities).collect())
}

impl Step {
    fn command(&self, order: &Order) -> OrderCommand {
        match self {
            Self::Update { items, status } => update(
                items
                    .iter()
                    .map(|(index, quantity)| match quantity {
                        Some(n) => set_quantity(PRODUCTS[*index], *n),
                        None => cancel_item(PRODUCTS[*index]),
                    })
                    .collect(),
                *status,
            ),
            Self::Outcome { item: index, stale, outcome } => {
                let item = &order.items()[index % order.items().len()];
                let revision = if *stale { item.revision - 1 } else { item.revision };
                record(item.product_id.as_str(), revision, *outcome)
            }
            Self::Expire => OrderCommand::CancelUnpaid,
        }
    }
}

/// Checks that `event` was allowed from `before` by the lifecycle, independently of how
/// `decide` reached it.
fn assert_event_allowed(before: &Order, event: &OrderEvent, left_open: bool) {
    let from = before.status();
    match event {
        OrderEvent::OrderPlaced { .. } => panic!("placed twice"),
        OrderEvent::OrderItemsChanged { .. } => assert!(!left_open, "items changed after {from}"),
        OrderEvent::ItemExecuted { product_id, revision, .. }
        | OrderEvent::ItemRejected { product_id, revision, .. } => {
            assert!(!left_open, "outcome recorded after {from}");
            let item = before.items().iter().find(|item| &item.product_id == product_id).unwrap();
            assert_eq!(item.status, ItemStatus::Pending, "outcome for a resolved item");
            assert_eq!(item.revision, *revision, "outcome for another revision");
        }
        OrderEvent::OrderStatusChanged { status, items } => {
            let executed: Vec<_> = before
                .items()
                .iter()
                .filter(|item| item.status == ItemStatus::Executed)
                .map(|item| &item.product_id)
                .collect();
            let ships = if *status == TargetStatus::Shipped { executed } else { vec![] };
            assert_eq!(items.iter().collect::<Vec<_>>(), ships, "{status:?} ships the executed items only");
            let allowed = match status {
                TargetStatus::Paid => {
                    !left_open && matches!(from, OrderStatus::Executed | OrderStatus::PartiallyExecuted)
                }
                TargetStatus::Shipped => from == OrderStatus::Paid,
                TargetStatus::Delivered => from == OrderStatus::Shipped,
                TargetStatus::Canceled => false,
            };
            assert!(allowed, "{from} -> {status:?}");
        }
        OrderEvent::OrderCanceled { items, reason } => {
            assert!(!matches!(from, OrderStatus::Shipped | OrderStatus::Delivered), "canceled after {from}");
            match reason {
                CancelReason::CanceledByCustomer => {}
                CancelReason::PaymentTimeout => assert!(
                    !left_open && matches!(from, OrderStatus::Executed | OrderStatus::PartiallyExecuted),
                    "payment timeout from {from}"
                ),
                CancelReason::InsufficientStock | CancelReason::UnknownProduct => {
                    panic!("order canceled for {reason:?}")
                }
            }
            assert!(!(left_open && from == OrderStatus::Canceled), "canceled twice");
            let all: Vec<_> = before.items().iter().map(|item| &item.product_id).collect();
            assert_eq!(items.iter().collect::<Vec<_>>(), all, "cancellation lists every product");
        }
    }
}

proptest! {
    #[test]
    fn any_sequence_of_commands_keeps_the_status_consistent_with_the_items(
        placement in a_placement(),
        steps in prop::collection::vec(a_step(), 0..60),
    ) {
        let items: Vec<(&str, u32)> = placement.iter().map(|(index, n)| (PRODUCTS[*index], *n)).collect();
        let mut order = Order::default();
        for event in order.decide(place(&items)).unwrap() {
            order.apply(event);
        }
        // Whether the order left the open stage (paid or canceled by the customer), as
        // told by the events themselves.
        let mut left_open = false;

        for step in steps {
            let command = step.command(&order);
            let Ok(events) = order.decide(command.clone()) else { continue };
            for event in &events {
                assert_event_allowed(&order, event, left_open);
                left_open |= matches!(event, OrderEvent::OrderStatusChanged { .. } | OrderEvent::OrderCanceled { .. });
                order.apply(event.clone());
            }

            if left_open {
                prop_assert!(matches!(
                    order.status(),
                    OrderStatus::Paid | OrderStatus::Shipped | OrderStatus::Delivered | OrderStatus::Canceled
                ));
                if order.status() == OrderStatus::Canceled {
                    prop_assert!(order.items().iter().all(|item| item.status == ItemStatus::Canceled));
                }
            } else {
                prop_assert_eq!(order.status(), OrderStatus::from_items(order.items().iter().map(|item| item.status)));
            }
            prop_assert!(order.items().iter().all(|item| item.revision <= order.version()));
            prop_assert!(order.items().iter().all(|item| (item.status == ItemStatus::Canceled) == item.reason.is_some()));

            // Whatever was decided, deciding it again records nothing more.
            let again = order.decide(command.clone());
            prop_assert!(again.as_ref().map_or(true, Vec::is_empty), "{:?} decided {:?} the second time", command, again);
        }
    }
}
