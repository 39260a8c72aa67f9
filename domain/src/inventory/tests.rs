//! The product's rules, given/when/then: `given` folds past events with `apply`, `when`
//! asks `decide`, and each test asserts the exact events or the exact error.

use crate::order::RejectionReason;
use std::collections::BTreeMap;

use cqrs_es::test::TestFramework;
use cqrs_es::{Aggregate, DomainEvent};
use proptest::prelude::*;
use uuid::Uuid;

use super::command::InvalidProductName;
use super::*;
use crate::{OrderId, Quantity};

// ----- fixtures -------------------------------------------------------------------

fn order(n: u128) -> OrderId {
    OrderId::from(Uuid::from_u128(n))
}

fn units(n: u32) -> Quantity {
    Quantity::new(n.into()).unwrap()
}

fn mug() -> ProductName {
    ProductName::parse("Mug").unwrap()
}

fn added(initial_stock: u32, low_stock_threshold: u32) -> ProductEvent {
    ProductEvent::ProductAdded { name: mug(), initial_stock, low_stock_threshold }
}

fn restocked(n: u32) -> ProductEvent {
    ProductEvent::StockRestocked { quantity: units(n) }
}

fn reserved(order_id: OrderId, quantity: u32, for_order: u32, revision: u64) -> ProductEvent {
    ProductEvent::StockReserved { order_id, quantity, reserved_for_order: units(for_order), revision }
}

fn reduced(order_id: OrderId, quantity: u32, for_order: u32, revision: u64) -> ProductEvent {
    ProductEvent::ReservationReduced {
        order_id,
        quantity: units(quantity),
        reserved_for_order: units(for_order),
        revision,
    }
}

fn rejected(order_id: OrderId, requested: u32, available: u64, revision: u64) -> ProductEvent {
    ProductEvent::ReservationRejected {
        order_id,
        requested: units(requested),
        available,
        revision,
        reason: RejectionReason::InsufficientStock,
    }
}

fn released(order_id: OrderId, quantity: u32, revision: u64) -> ProductEvent {
    ProductEvent::StockReleased { order_id, quantity, revision }
}

fn shipped(order_id: OrderId, quantity: u32, revision: u64) -> ProductEvent {
    ProductEvent::StockShipped { order_id, quantity: units(quantity), revision }
}

fn ship(order_id: OrderId, revision: u64) -> ProductCommand {
    ProductCommand::ShipStock { order_id, revision }
}

fn add(initial_stock: u32, low_stock_threshold: u32) -> ProductCommand {
    ProductCommand::AddProduct(AddProduct { name: mug(), initial_stock, low_stock_threshold })
}

fn restock(n: u32) -> ProductCommand {
    ProductCommand::Restock { quantity: units(n) }
}

fn reserve(order_id: OrderId, n: u32, revision: u64) -> ProductCommand {
    ProductCommand::ReserveStock { order_id, quantity: units(n), revision }
}

fn release(order_id: OrderId, revision: u64) -> ProductCommand {
    ProductCommand::ReleaseStock { order_id, revision }
}

fn fold(events: Vec<ProductEvent>) -> Product {
    let mut product = Product::default();
    for event in events {
        product.apply(event);
    }
    product
}

struct Given(Product);

fn given(events: Vec<ProductEvent>) -> Given {
    Given(fold(events))
}

impl Given {
    fn when(&self, command: ProductCommand) -> Result<Vec<ProductEvent>, ProductError> {
        self.0.decide(command)
    }
}

/// Ten mugs, low at 2 or fewer.
fn ten_mugs() -> ProductEvent {
    added(10, 2)
}

// ----- adding and restocking ------------------------------------------------------

#[test]
fn adding_a_product_records_its_name_stock_and_threshold() {
    assert_eq!(given(vec![]).when(add(10, 2)), Ok(vec![ten_mugs()]));

    let product = fold(vec![ten_mugs()]);
    assert!(product.exists());
    assert_eq!(product.name(), Some(&mug()));
    assert_eq!((product.received(), product.reserved(), product.available()), (10, 0, 10));
    assert_eq!(product.low_stock_threshold(), 2);
    assert_eq!(product.stock_status(), StockStatus::InStock);
    assert_eq!(product.version(), 1);
}

// ----- changing what describes a product ------------------------------------------

fn update(name: Option<&str>, low_stock_threshold: Option<u32>) -> ProductCommand {
    ProductCommand::UpdateProduct(UpdateProduct {
        name: name.map(|n| ProductName::parse(n).unwrap()),
        low_stock_threshold,
    })
}

#[test]
fn an_update_records_only_what_changes() {
    let renamed = ProductEvent::ProductRenamed { name: ProductName::parse("Big mug").unwrap() };
    assert_eq!(given(vec![ten_mugs()]).when(update(Some("Big mug"), None)), Ok(vec![renamed.clone()]));
    assert_eq!(given(vec![ten_mugs()]).when(update(Some("Mug"), Some(2))), Ok(vec![]), "nothing changes");
    let changed = ProductEvent::LowStockThresholdChanged { low_stock_threshold: 3 };
    assert_eq!(given(vec![ten_mugs()]).when(update(Some("Mug"), Some(3))), Ok(vec![changed.clone()]));

    let product = fold(vec![ten_mugs(), renamed, changed]);
    assert_eq!(product.name().map(ProductName::as_str), Some("Big mug"));
    assert_eq!(product.low_stock_threshold(), 3);
    assert_eq!(product.available(), 10, "stock untouched");
    assert_eq!(given(vec![]).when(update(Some("Mug"), None)), Err(ProductError::NotFound));
}

#[test]
fn a_threshold_change_announces_the_level_it_implies() {
    let raised = ProductEvent::LowStockThresholdChanged { low_stock_threshold: 10 };
    assert_eq!(
        given(vec![ten_mugs()]).when(update(None, Some(10))),
        Ok(vec![raised.clone(), ProductEvent::LowStockReached { available: 10 }]),
        "10 available at a threshold of 10 is low"
    );
    let lowered = ProductEvent::LowStockThresholdChanged { low_stock_threshold: 1 };
    assert_eq!(
        given(vec![ten_mugs(), raised.clone(), ProductEvent::LowStockReached { available: 10 }])
            .when(update(None, Some(1))),
        Ok(vec![lowered]),
        "back above the threshold: no alert, as when a restock lifts it"
    );
    assert_eq!(fold(vec![ten_mugs(), raised]).stock_status(), StockStatus::LowStock);
}

// ----- adjustments ---------------------------------------------------------------------

fn adjust(n: i64, reason: AdjustmentReason) -> ProductCommand {
    ProductCommand::AdjustStock { quantity: UnitChange::new(n).unwrap(), reason }
}

fn adjusted(n: i64, reason: AdjustmentReason) -> ProductEvent {
    ProductEvent::StockAdjusted { quantity: UnitChange::new(n).unwrap(), reason }
}

#[test]
fn an_adjustment_corrects_the_units_on_hand_but_never_takes_reserved_ones() {
    let history = vec![ten_mugs(), reserved(order(1), 4, 4, 1)];
    assert_eq!(
        given(history.clone()).when(adjust(-3, AdjustmentReason::Damaged)),
        Ok(vec![adjusted(-3, AdjustmentReason::Damaged)])
    );
    assert_eq!(
        given(history.clone()).when(adjust(-7, AdjustmentReason::Lost)),
        Err(ProductError::NotEnoughAvailable { asked: 7, available: 6 }),
        "6 available: the 4 reserved are promised"
    );
    let product = fold(
        [history.clone(), vec![adjusted(-3, AdjustmentReason::Damaged), adjusted(5, AdjustmentReason::Found)]].concat(),
    );
    assert_eq!((product.on_hand(), product.reserved(), product.available()), (12, 4, 8));
    assert_eq!(product.received(), 10, "received counts deliveries only");
    assert_eq!(
        given(history).when(adjust(-6, AdjustmentReason::CountCorrection)),
        Ok(vec![adjusted(-6, AdjustmentReason::CountCorrection), ProductEvent::OutOfStock]),
        "the alert the new level implies follows"
    );
    assert_eq!(given(vec![]).when(adjust(1, AdjustmentReason::Found)), Err(ProductError::NotFound));
}

#[test]
fn a_unit_change_is_signed_non_zero_and_bounded() {
    for bad in [0, 1_000_001, -1_000_001, i64::MAX] {
        assert_eq!(UnitChange::new(bad), Err(InvalidUnitChange { got: bad }), "{bad}");
    }
    assert_eq!(UnitChange::new(-1_000_000).map(UnitChange::get), Ok(-1_000_000));
    assert!(serde_json::from_str::<UnitChange>("0").is_err());
}

#[test]
fn adding_a_product_twice_is_refused() {
    assert_eq!(given(vec![ten_mugs()]).when(add(5, 1)), Err(ProductError::AlreadyExists));
}

#[test]
fn restocking_adds_units() {
    assert_eq!(given(vec![ten_mugs()]).when(restock(5)), Ok(vec![restocked(5)]));

    let product = fold(vec![ten_mugs(), reserved(order(1), 4, 4, 1), restocked(5)]);
    assert_eq!((product.received(), product.reserved(), product.available()), (15, 4, 11));
}

#[test]
fn restocking_a_product_never_added_is_not_found() {
    assert_eq!(given(vec![]).when(restock(5)), Err(ProductError::NotFound));
}

#[test]
fn reserving_a_product_never_added_is_rejected_as_unknown_and_remembered() {
    let unknown = ProductEvent::ReservationRejected {
        order_id: order(1),
        requested: units(2),
        available: 0,
        revision: 1,
        reason: RejectionReason::UnknownProduct,
    };
    assert_eq!(
        given(vec![]).when(reserve(order(1), 2, 1)),
        Ok(vec![unknown.clone()]),
        "no alert for an unknown product"
    );
    // Added later, a redelivery of the same request still decides nothing: the item
    // was already rejected and must not hold stock.
    assert_eq!(given(vec![unknown.clone(), added(10, 0)]).when(reserve(order(1), 2, 1)), Ok(vec![]));
    assert_eq!(given(vec![unknown]).when(release(order(1), 2)), Ok(vec![released(order(1), 0, 2)]));
    assert!(!fold(vec![]).exists());
}

// ----- reservations ---------------------------------------------------------------

#[test]
fn reserving_within_stock_reserves_the_units() {
    assert_eq!(given(vec![ten_mugs()]).when(reserve(order(1), 3, 1)), Ok(vec![reserved(order(1), 3, 3, 1)]));

    let product = fold(vec![ten_mugs(), reserved(order(1), 3, 3, 1)]);
    assert_eq!((product.reserved(), product.available()), (3, 7));
    assert_eq!(product.reservation(&order(1)), Reservation { quantity: 3, revision: 1 });
    assert_eq!(product.reservation(&order(2)), Reservation::default());
}

#[test]
fn reserving_exactly_what_is_available_is_allowed() {
    let history = vec![ten_mugs(), reserved(order(1), 4, 4, 1)];
    assert_eq!(
        given(history).when(reserve(order(2), 6, 1)),
        Ok(vec![reserved(order(2), 6, 6, 1), ProductEvent::OutOfStock])
    );
}

#[test]
fn reserving_more_than_is_available_is_rejected() {
    let history = vec![ten_mugs(), reserved(order(1), 4, 4, 1)];
    assert_eq!(given(history).when(reserve(order(2), 7, 1)), Ok(vec![rejected(order(2), 7, 6, 1)]));
}

#[test]
fn a_rejected_reservation_releases_what_the_order_held_before() {
    let history = vec![ten_mugs(), reserved(order(1), 4, 4, 1), reserved(order(2), 3, 3, 1)];
    assert_eq!(
        given(history.clone()).when(reserve(order(1), 8, 2)),
        Ok(vec![rejected(order(1), 8, 3, 2), released(order(1), 4, 2)])
    );

    let mut after = history;
    after.extend([rejected(order(1), 8, 3, 2), released(order(1), 4, 2)]);
    let product = fold(after);
    assert_eq!(product.reservation(&order(1)), Reservation { quantity: 0, revision: 2 });
    assert_eq!((product.reserved(), product.available()), (3, 7));
}

#[test]
fn a_rejected_reservation_is_remembered_so_its_redelivery_decides_nothing() {
    let history = vec![added(2, 0), rejected(order(1), 5, 2, 1)];
    assert_eq!(fold(history.clone()).reservation(&order(1)), Reservation { quantity: 0, revision: 1 });
    assert_eq!(given(history).when(reserve(order(1), 5, 1)), Ok(vec![]));
}

#[test]
fn reserving_the_same_revision_twice_decides_nothing() {
    let history = vec![ten_mugs(), reserved(order(1), 3, 3, 1)];
    assert_eq!(given(history).when(reserve(order(1), 3, 1)), Ok(vec![]));
}

#[test]
fn a_reservation_with_an_older_revision_decides_nothing() {
    let history = vec![ten_mugs(), reserved(order(1), 3, 3, 1), reserved(order(1), 2, 5, 4)];
    for (quantity, revision) in [(3, 1), (9, 2), (1, 3)] {
        assert_eq!(
            given(history.clone()).when(reserve(order(1), quantity, revision)),
            Ok(vec![]),
            "revision {revision}"
        );
    }
}

#[test]
fn asking_for_more_reserves_only_the_difference() {
    let history = vec![ten_mugs(), reserved(order(1), 3, 3, 1)];
    assert_eq!(given(history).when(reserve(order(1), 5, 2)), Ok(vec![reserved(order(1), 2, 5, 2)]));

    let product = fold(vec![ten_mugs(), reserved(order(1), 3, 3, 1), reserved(order(1), 2, 5, 2)]);
    assert_eq!(product.reservation(&order(1)), Reservation { quantity: 5, revision: 2 });
    assert_eq!(product.reserved(), 5);
}

#[test]
fn growing_a_reservation_counts_what_the_order_already_holds() {
    // 6 available plus the 4 the order holds make the 10 it asks for.
    let history = vec![ten_mugs(), reserved(order(1), 4, 4, 1)];
    assert_eq!(
        given(history).when(reserve(order(1), 10, 2)),
        Ok(vec![reserved(order(1), 6, 10, 2), ProductEvent::OutOfStock])
    );
}

#[test]
fn asking_for_less_releases_the_difference() {
    let history = vec![ten_mugs(), reserved(order(1), 5, 5, 1)];
    assert_eq!(given(history).when(reserve(order(1), 2, 2)), Ok(vec![reduced(order(1), 3, 2, 2)]));

    let product = fold(vec![ten_mugs(), reserved(order(1), 5, 5, 1), reduced(order(1), 3, 2, 2)]);
    assert_eq!(product.reservation(&order(1)), Reservation { quantity: 2, revision: 2 });
    assert_eq!((product.reserved(), product.available()), (2, 8));
}

#[test]
fn asking_again_for_the_same_quantity_under_a_new_revision_records_the_revision() {
    let history = vec![ten_mugs(), reserved(order(1), 5, 5, 1)];
    assert_eq!(given(history.clone()).when(reserve(order(1), 5, 3)), Ok(vec![reserved(order(1), 0, 5, 3)]));

    let mut after = history;
    after.push(reserved(order(1), 0, 5, 3));
    let product = fold(after);
    assert_eq!(product.reservation(&order(1)), Reservation { quantity: 5, revision: 3 });
    assert_eq!(product.reserved(), 5);
}

#[test]
fn reservations_of_different_orders_are_independent() {
    let history = vec![ten_mugs(), reserved(order(1), 3, 3, 7)];
    assert_eq!(given(history).when(reserve(order(2), 3, 1)), Ok(vec![reserved(order(2), 3, 3, 1)]));
}

// ----- releases -------------------------------------------------------------------

#[test]
fn releasing_frees_everything_the_order_holds() {
    let history = vec![ten_mugs(), reserved(order(1), 3, 3, 1), reserved(order(2), 4, 4, 1)];
    assert_eq!(given(history.clone()).when(release(order(1), 2)), Ok(vec![released(order(1), 3, 2)]));

    let mut after = history;
    after.push(released(order(1), 3, 2));
    let product = fold(after);
    assert_eq!(product.reservation(&order(1)), Reservation { quantity: 0, revision: 2 });
    assert_eq!((product.reserved(), product.available()), (4, 6));
}

#[test]
fn shipping_moves_what_the_order_holds_out_of_reserved_and_on_hand() {
    let product = fold(vec![ten_mugs(), reserved(order(1), 3, 3, 1), reserved(order(2), 2, 2, 1)]);
    let decided = product.decide(ship(order(1), 4)).unwrap();
    assert_eq!(decided, vec![shipped(order(1), 3, 4)]);
    let after =
        fold(vec![ten_mugs(), reserved(order(1), 3, 3, 1), reserved(order(2), 2, 2, 1), shipped(order(1), 3, 4)]);
    assert_eq!((after.on_hand(), after.reserved(), after.available(), after.shipped()), (7, 2, 5, 3));
    assert_eq!(after.reservation(&order(1)), Reservation { quantity: 0, revision: 4 });
    assert_eq!(after.announcement(&order(1)), None, "nothing left to announce for a shipped order");
}

#[test]
fn shipping_twice_or_an_order_that_holds_nothing_decides_nothing() {
    let history = vec![ten_mugs(), reserved(order(1), 3, 3, 1), shipped(order(1), 3, 4)];
    assert_eq!(given(history.clone()).when(ship(order(1), 4)), Ok(vec![]), "the same shipment again");
    assert_eq!(given(history).when(reserve(order(1), 3, 2)), Ok(vec![]), "a request older than the shipment");
    assert_eq!(given(vec![ten_mugs(), rejected(order(2), 20, 10, 1)]).when(ship(order(2), 3)), Ok(vec![]));
    assert_eq!(given(vec![ten_mugs()]).when(ship(order(3), 3)), Ok(vec![]), "never asked");
}

#[test]
fn releasing_twice_decides_nothing() {
    let history = vec![ten_mugs(), reserved(order(1), 3, 3, 1), released(order(1), 3, 2)];
    assert_eq!(given(history.clone()).when(release(order(1), 2)), Ok(vec![]));
    assert_eq!(
        given(history).when(release(order(1), 5)),
        Ok(vec![released(order(1), 0, 5)]),
        "a newer release finds nothing to free and is recorded with 0 units"
    );
}

#[test]
fn a_release_older_than_the_last_reservation_decides_nothing() {
    let history = vec![ten_mugs(), reserved(order(1), 3, 3, 1), reserved(order(1), 2, 5, 4)];
    for revision in [1, 3, 4] {
        assert_eq!(given(history.clone()).when(release(order(1), revision)), Ok(vec![]), "revision {revision}");
    }
}

#[test]
fn a_reservation_older_than_a_release_decides_nothing() {
    let history = vec![ten_mugs(), reserved(order(1), 3, 3, 1), released(order(1), 3, 4)];
    assert_eq!(given(history).when(reserve(order(1), 3, 2)), Ok(vec![]));
}

#[test]
fn releasing_for_an_order_that_holds_nothing_records_the_request_with_zero_units() {
    assert_eq!(given(vec![ten_mugs()]).when(release(order(1), 1)), Ok(vec![released(order(1), 0, 1)]));
    let after_rejection = vec![added(2, 0), rejected(order(1), 5, 2, 1)];
    assert_eq!(given(after_rejection).when(release(order(1), 2)), Ok(vec![released(order(1), 0, 2)]));
    let product = fold(vec![ten_mugs(), released(order(1), 0, 1)]);
    assert_eq!((product.reserved(), product.available()), (0, 10), "an empty release moves no units");
}

/// The order's item was requested (revision 1) while the product did not exist yet: the
/// saga got `NotFound` and the item was rejected. The product is then added, the order
/// canceled (revision 2, nothing held, nothing decided), and the first order event
/// redelivered. The reservation for the canceled order goes through and nothing will
/// ever release it, so `reserved` stops matching the executed items of live orders
/// (DESIGN.md invariant 1). So a release that finds nothing held still records its
/// revision.
#[test]
fn a_reservation_older_than_a_release_that_found_nothing_decides_nothing() {
    let release_events = given(vec![ten_mugs()]).when(release(order(1), 2)).unwrap();
    assert_eq!(release_events, vec![released(order(1), 0, 2)]);
    let mut history = vec![ten_mugs()];
    history.extend(release_events);
    assert_eq!(given(history).when(reserve(order(1), 3, 1)), Ok(vec![]));
}

// ----- stock alerts ---------------------------------------------------------------

#[test]
fn crossing_into_low_stock_raises_low_stock_reached() {
    assert_eq!(
        given(vec![ten_mugs()]).when(reserve(order(1), 8, 1)),
        Ok(vec![reserved(order(1), 8, 8, 1), ProductEvent::LowStockReached { available: 2 }])
    );
}

#[test]
fn staying_low_raises_no_further_alert() {
    let low = vec![ten_mugs(), reserved(order(1), 8, 8, 1)];
    assert_eq!(given(low.clone()).when(reserve(order(2), 1, 1)), Ok(vec![reserved(order(2), 1, 1, 1)]));
    assert_eq!(given(low).when(reserve(order(1), 7, 2)), Ok(vec![reduced(order(1), 1, 7, 2)]));
}

#[test]
fn reaching_zero_raises_out_of_stock() {
    assert_eq!(
        given(vec![ten_mugs()]).when(reserve(order(1), 10, 1)),
        Ok(vec![reserved(order(1), 10, 10, 1), ProductEvent::OutOfStock]),
        "from in stock straight to none: only out of stock"
    );
    let low = vec![ten_mugs(), reserved(order(1), 8, 8, 1)];
    assert_eq!(
        given(low).when(reserve(order(2), 2, 1)),
        Ok(vec![reserved(order(2), 2, 2, 1), ProductEvent::OutOfStock])
    );
}

#[test]
fn restocking_from_zero_announces_back_in_stock() {
    let empty = vec![ten_mugs(), reserved(order(1), 10, 10, 1)];
    assert_eq!(
        given(empty.clone()).when(restock(5)),
        Ok(vec![restocked(5), ProductEvent::BackInStock { available: 5 }])
    );
    assert_eq!(
        given(empty).when(restock(1)),
        Ok(vec![restocked(1), ProductEvent::BackInStock { available: 1 }]),
        "back, even if only to low stock"
    );
}

#[test]
fn releasing_from_zero_announces_back_in_stock() {
    let empty = vec![ten_mugs(), reserved(order(1), 10, 10, 1)];
    assert_eq!(
        given(empty.clone()).when(release(order(1), 2)),
        Ok(vec![released(order(1), 10, 2), ProductEvent::BackInStock { available: 10 }])
    );
    assert_eq!(
        given(empty).when(reserve(order(1), 12, 2)),
        Ok(vec![rejected(order(1), 12, 0, 2), released(order(1), 10, 2), ProductEvent::BackInStock { available: 10 }]),
        "a rejection that frees the order's units"
    );
}

#[test]
fn restocking_out_of_low_stock_raises_no_alert() {
    let low = vec![ten_mugs(), reserved(order(1), 8, 8, 1)];
    assert_eq!(given(low).when(restock(20)), Ok(vec![restocked(20)]));
}

#[test]
fn a_rejected_reservation_on_an_empty_product_raises_no_new_alert() {
    let empty = vec![added(0, 2), ProductEvent::OutOfStock];
    assert_eq!(given(empty).when(reserve(order(1), 1, 1)), Ok(vec![rejected(order(1), 1, 0, 1)]));
}

#[test]
fn a_product_added_with_no_stock_announces_out_of_stock() {
    assert_eq!(given(vec![]).when(add(0, 2)), Ok(vec![added(0, 2), ProductEvent::OutOfStock]));
}

#[test]
fn a_product_added_with_low_stock_announces_low_stock() {
    assert_eq!(given(vec![]).when(add(2, 2)), Ok(vec![added(2, 2), ProductEvent::LowStockReached { available: 2 }]));
    assert_eq!(given(vec![]).when(add(3, 2)), Ok(vec![added(3, 2)]));
}

#[test]
fn a_product_with_a_zero_threshold_is_never_low() {
    assert_eq!(given(vec![added(2, 0)]).when(reserve(order(1), 1, 1)), Ok(vec![reserved(order(1), 1, 1, 1)]));
}

#[test]
fn stock_status_follows_what_is_available() {
    let table = [
        (0, 2, StockStatus::OutOfStock),
        (1, 2, StockStatus::LowStock),
        (2, 2, StockStatus::LowStock),
        (3, 2, StockStatus::InStock),
        (1, 0, StockStatus::InStock),
    ];
    for (available, threshold, expected) in table {
        assert_eq!(StockStatus::of(available, threshold), expected, "{available} available, low at {threshold}");
    }
}

// ----- handle writes what decide returned -----------------------------------------

#[test]
fn handle_records_exactly_what_decide_returned() {
    TestFramework::<Product>::with(())
        .given(vec![ten_mugs()])
        .when(reserve(order(1), 8, 1))
        .then_expect_events(vec![reserved(order(1), 8, 8, 1), ProductEvent::LowStockReached { available: 2 }]);
    TestFramework::<Product>::with(())
        .given(vec![ten_mugs()])
        .when(add(1, 1))
        .then_expect_error(ProductError::AlreadyExists);
}

// ----- names ----------------------------------------------------------------------

#[test]
fn product_names_must_be_visible_text_of_at_most_200_characters() {
    assert!(ProductName::parse("Mug, blue — 330 ml").is_ok());
    assert!(ProductName::parse("é".repeat(200)).is_ok());
    for bad in [String::new(), "   ".to_owned(), "tab\there".to_owned(), "x".repeat(201)] {
        assert_eq!(ProductName::parse(bad.clone()), Err(InvalidProductName), "{bad:?}");
    }
    assert!(serde_json::from_str::<ProductName>("\" \"").is_err());
}

// ----- wire form ------------------------------------------------------------------

/// One of each event; the `match` makes a new variant a compile error here until it
/// has a round-trip sample.
fn one_of_each_event() -> Vec<ProductEvent> {
    let events = vec![
        ten_mugs(),
        ProductEvent::ProductRenamed { name: ProductName::parse("Big mug").unwrap() },
        ProductEvent::LowStockThresholdChanged { low_stock_threshold: 4 },
        restocked(5),
        ProductEvent::StockAdjusted { quantity: UnitChange::new(-2).unwrap(), reason: AdjustmentReason::Damaged },
        reserved(order(1), 3, 5, 2),
        reduced(order(1), 2, 3, 3),
        rejected(order(2), 9, 4, 1),
        released(order(1), 3, 4),
        shipped(order(3), 2, 6),
        ProductEvent::LowStockReached { available: 2 },
        ProductEvent::OutOfStock,
        ProductEvent::BackInStock { available: 5 },
    ];
    for event in &events {
        match event {
            ProductEvent::ProductAdded { .. }
            | ProductEvent::ProductRenamed { .. }
            | ProductEvent::LowStockThresholdChanged { .. }
            | ProductEvent::StockRestocked { .. }
            | ProductEvent::StockAdjusted { .. }
            | ProductEvent::StockReserved { .. }
            | ProductEvent::ReservationReduced { .. }
            | ProductEvent::ReservationRejected { .. }
            | ProductEvent::StockReleased { .. }
            | ProductEvent::StockShipped { .. }
            | ProductEvent::LowStockReached { .. }
            | ProductEvent::OutOfStock
            | ProductEvent::BackInStock { .. } => {}
        }
    }
    events
}

#[test]
fn every_product_event_survives_a_json_round_trip() {
    let events = one_of_each_event();
    let types: std::collections::BTreeSet<String> = events.iter().map(DomainEvent::event_type).collect();
    assert_eq!(types.len(), events.len(), "one sample per variant");

    for event in events {
        let json = serde_json::to_value(&event).unwrap();
        let back: ProductEvent = serde_json::from_value(json.clone()).unwrap();
        assert_eq!(back, event, "{json}");
        assert_eq!(event.event_version(), "1.0");
    }
}

#[test]
fn the_stored_event_type_is_the_json_tag() {
    for event in one_of_each_event() {
        let json = serde_json::to_value(&event).unwrap();
        let tag = match &json {
            serde_json::Value::String(unit) => unit.clone(),
            serde_json::Value::Object(fields) => {
                assert_eq!(fields.len(), 1, "{json}");
                fields.keys().next().unwrap().clone()
            }
            other => panic!("unexpected form {other}"),
        };
        assert_eq!(tag, event.event_type(), "{json}");
    }
}

#[test]
fn product_events_keep_their_wire_form() {
    let pinned = [
        (ten_mugs(), r#"{"ProductAdded":{"name":"Mug","initialStock":10,"lowStockThreshold":2}}"#),
        (
            reserved(order(1), 3, 5, 2),
            r#"{"StockReserved":{"orderId":"00000000-0000-0000-0000-000000000001","quantity":3,"reservedForOrder":5,"revision":2}}"#,
        ),
        (
            rejected(order(2), 9, 4, 1),
            r#"{"ReservationRejected":{"orderId":"00000000-0000-0000-0000-000000000002","requested":9,"available":4,"revision":1,"reason":"INSUFFICIENT_STOCK"}}"#,
        ),
        (
            shipped(order(3), 2, 6),
            r#"{"StockShipped":{"orderId":"00000000-0000-0000-0000-000000000003","quantity":2,"revision":6}}"#,
        ),
        (ProductEvent::OutOfStock, r#""OutOfStock""#),
        (ProductEvent::BackInStock { available: 5 }, r#"{"BackInStock":{"available":5}}"#),
    ];
    for (event, wire) in pinned {
        assert_eq!(serde_json::to_string(&event).unwrap(), wire);
        assert_eq!(serde_json::from_str::<ProductEvent>(wire).unwrap(), event, "{wire}");
    }
    let statuses = [StockStatus::InStock, StockStatus::LowStock, StockStatus::OutOfStock];
    assert_eq!(serde_json::to_string(&statuses).unwrap(), r#"["IN_STOCK","LOW_STOCK","OUT_OF_STOCK"]"#);
    for status in statuses {
        assert_eq!(serde_json::to_value(status).unwrap(), status.as_str(), "as_str is the wire name");
    }
}

#[test]
fn a_stored_event_with_an_invalid_value_does_not_deserialize() {
    for bad in [
        r#"{"ProductAdded":{"name":" ","initialStock":10,"lowStockThreshold":2}}"#,
        r#"{"StockRestocked":{"quantity":0}}"#,
        r#"{"StockReleased":{"orderId":"not-a-uuid","quantity":1,"revision":1}}"#,
    ] {
        assert!(serde_json::from_str::<ProductEvent>(bad).is_err(), "{bad}");
    }
}

#[test]
fn a_product_snapshot_survives_a_json_round_trip() {
    let product =
        fold(vec![ten_mugs(), reserved(order(1), 3, 3, 1), reserved(order(2), 2, 2, 4), released(order(1), 3, 5)]);
    let back: Product = serde_json::from_str(&serde_json::to_string(&product).unwrap()).unwrap();
    assert_eq!(back, product);
}

// ----- properties -----------------------------------------------------------------

const ORDERS: u128 = 4;

#[derive(Debug, Clone)]
enum Step {
    Add {
        stock: u32,
        threshold: u32,
    },
    Restock(u32),
    Adjust(i64),
    /// `revision_step` moves the order's revision: negative or zero replays an old one.
    Reserve {
        order: u128,
        quantity: u32,
        revision_step: i8,
    },
    Release {
        order: u128,
        revision_step: i8,
    },
    Ship {
        order: u128,
        revision_step: i8,
    },
}

fn a_revision_step() -> impl Strategy<Value = i8> {
    prop_oneof![1 => Just(-1), 1 => Just(0), 4 => Just(1), 2 => Just(2)]
}

fn a_step() -> impl Strategy<Value = Step> {
    prop_oneof![
        1 => (0u32..20, 0u32..6).prop_map(|(stock, threshold)| Step::Add { stock, threshold }),
        2 => (1u32..15).prop_map(Step::Restock),
        2 => prop_oneof![-12i64..0, 1i64..8].prop_map(Step::Adjust),
        6 => (0..ORDERS, 1u32..12, a_revision_step())
            .prop_map(|(order, quantity, revision_step)| Step::Reserve { order, quantity, revision_step }),
        2 => (0..ORDERS, a_revision_step()).prop_map(|(order, revision_step)| Step::Release { order, revision_step }),
        1 => (0..ORDERS, a_revision_step()).prop_map(|(order, revision_step)| Step::Ship { order, revision_step }),
    ]
}

/// Steps that start with adding the product, so most of them exercise stock.
fn a_history() -> impl Strategy<Value = Vec<Step>> {
    ((0u32..20, 0u32..6), prop::collection::vec(a_step(), 0..40)).prop_map(|((stock, threshold), mut steps)| {
        steps.insert(0, Step::Add { stock, threshold });
        steps
    })
}

/// The last revision each order sent, as an upstream order service would number them.
#[derive(Default)]
struct Revisions(BTreeMap<u128, u64>);

impl Revisions {
    fn next(&mut self, order: u128, step: i8) -> u64 {
        let last = self.0.entry(order).or_insert(0);
        let revision = last.saturating_add_signed(step.into()).max(1);
        *last = (*last).max(revision);
        revision
    }
}

impl Step {
    fn command(&self, revisions: &mut Revisions) -> ProductCommand {
        match *self {
            Self::Add { stock, threshold } => add(stock, threshold),
            Self::Restock(n) => restock(n),
            Self::Adjust(n) => ProductCommand::AdjustStock {
                quantity: UnitChange::new(n).unwrap(),
                reason: if n < 0 { AdjustmentReason::Damaged } else { AdjustmentReason::Found },
            },
            Self::Reserve { order: n, quantity, revision_step } => {
                reserve(order(n), quantity, revisions.next(n, revision_step))
            }
            Self::Release { order: n, revision_step } => release(order(n), revisions.next(n, revision_step)),
            Self::Ship { order: n, revision_step } => ship(order(n), revisions.next(n, revision_step)),
        }
    }
}

fn decide_and_apply(product: &mut Product, command: ProductCommand) -> Vec<ProductEvent> {
    let events = product.decide(command).unwrap_or_default();
    for event in &events {
        product.apply(event.clone());
    }
    events
}

fn play(history: &[Step]) -> (Product, Revisions) {
    let mut product = Product::default();
    let mut revisions = Revisions::default();
    for step in history {
        decide_and_apply(&mut product, step.command(&mut revisions));
    }
    (product, revisions)
}

proptest! {
    #[test]
    fn stock_is_never_oversold_and_reserved_is_the_sum_of_reservations(history in a_history()) {
        let mut product = Product::default();
        let mut revisions = Revisions::default();
        let mut received_in_all = 0u64;
        let mut adjusted_in_all = 0i64;
        let mut shipped_in_all = 0u64;

        for step in &history {
            let command = step.command(&mut revisions);
            let before = product.clone();
            let events = decide_and_apply(&mut product, command.clone());

            prop_assert!(product.reserved() <= product.on_hand(), "oversold after {:?}: {:?}", command, events);
            prop_assert_eq!(product.available() + product.reserved(), product.on_hand());
            let sum: u64 = (0..ORDERS).map(|n| u64::from(product.reservation(&order(n)).quantity)).sum();
            prop_assert_eq!(product.reserved(), sum);

            for event in &events {
                match event {
                    ProductEvent::ProductAdded { initial_stock, .. } => received_in_all = (*initial_stock).into(),
                    ProductEvent::StockRestocked { quantity } => received_in_all += u64::from(quantity.get()),
                    ProductEvent::StockAdjusted { quantity, .. } => adjusted_in_all += i64::from(quantity.get()),
                    ProductEvent::StockShipped { quantity, .. } => shipped_in_all += u64::from(quantity.get()),
                    _ => {}
                }
            }
            prop_assert_eq!(product.received(), received_in_all);
            prop_assert_eq!(product.shipped(), shipped_in_all);
            prop_assert_eq!(product.on_hand() as i64, received_in_all as i64 + adjusted_in_all - shipped_in_all as i64);

            if let ProductCommand::ReserveStock { order_id, quantity, revision } = command {
                let held = before.reservation(&order_id);
                let after = product.reservation(&order_id);
                if before.exists() && held.revision < revision {
                    // A newer request is answered all or nothing, counting what the order held.
                    let fits = u64::from(quantity.get()) <= u64::from(held.quantity) + before.available();
                    let expected = if fits { quantity.get() } else { 0 };
                    prop_assert_eq!(after, Reservation { quantity: expected, revision });
                } else {
                    prop_assert!(events.is_empty(), "a replayed reservation decided {:?}", events);
                }
            }
            if let ProductCommand::ReleaseStock { order_id, revision } = command {
                let held = before.reservation(&order_id);
                if held.revision >= revision {
                    prop_assert!(events.is_empty(), "a stale release decided {:?}", events);
                } else {
                    prop_assert_eq!(product.reservation(&order_id), Reservation { quantity: 0, revision });
                }
            }
            if let ProductCommand::ShipStock { order_id, revision } = command {
                // What the order held leaves reserved and on hand; available stays.
                let held = before.reservation(&order_id);
                if held.revision >= revision || held.quantity == 0 {
                    prop_assert!(events.is_empty(), "a stale or empty shipment decided {:?}", events);
                } else {
                    prop_assert_eq!(product.reservation(&order_id), Reservation { quantity: 0, revision });
                    prop_assert_eq!(product.shipped(), before.shipped() + u64::from(held.quantity));
                    prop_assert_eq!(product.available(), before.available());
                }
            }

            // Alerts tell the truth about the stock after the decision.
            let was = if before.exists() { before.stock_status() } else { StockStatus::InStock };
            let now = product.stock_status();
            let alerts: Vec<&ProductEvent> = events
                .iter()
                .filter(|event| matches!(event, ProductEvent::LowStockReached { .. } | ProductEvent::OutOfStock | ProductEvent::BackInStock { .. }))
                .collect();
            prop_assert!(alerts.len() <= 1, "several alerts {:?}", alerts);
            if let Some(alert) = alerts.first() {
                prop_assert_eq!(Some(*alert), events.last(), "the alert comes last");
                match alert {
                    ProductEvent::OutOfStock => prop_assert!(was != StockStatus::OutOfStock && now == StockStatus::OutOfStock),
                    ProductEvent::LowStockReached { available } => {
                        prop_assert!(was == StockStatus::InStock && now == StockStatus::LowStock);
                        prop_assert_eq!(*available, product.available());
                    }
                    ProductEvent::BackInStock { available } => {
                        prop_assert!(was == StockStatus::OutOfStock && now != StockStatus::OutOfStock);
                        prop_assert_eq!(*available, product.available());
                    }
                    _ => unreachable!(),
                }
            } else if !events.is_empty() {
                let crossed = (was != now && now == StockStatus::OutOfStock)
                    || (was == StockStatus::OutOfStock && now != StockStatus::OutOfStock)
                    || (was == StockStatus::InStock && now == StockStatus::LowStock);
                prop_assert!(!crossed, "{:?} -> {:?} without an alert: {:?}", was, now, events);
            }
        }
    }

    #[test]
    fn reserving_twice_is_reserving_once(
        history in a_history(),
        order_index in 0..ORDERS,
        quantity in 1u32..12,
        revision_step in a_revision_step(),
    ) {
        let (mut product, mut revisions) = play(&history);
        let command = reserve(order(order_index), quantity, revisions.next(order_index, revision_step));

        let first = decide_and_apply(&mut product, command.clone());
        let state = product.clone();
        let second = product.decide(command);
        prop_assert_eq!(second, Ok(vec![]), "first time: {:?}", first);
        prop_assert_eq!(product, state);
    }

    #[test]
    fn releasing_twice_is_releasing_once(
        history in a_history(),
        order_index in 0..ORDERS,
        revision_step in a_revision_step(),
    ) {
        let (mut product, mut revisions) = play(&history);
        let command = release(order(order_index), revisions.next(order_index, revision_step));

        let first = decide_and_apply(&mut product, command.clone());
        prop_assert_eq!(product.decide(command), Ok(vec![]), "first time: {:?}", first);
    }

    #[test]
    fn shipping_twice_is_shipping_once(
        history in a_history(),
        order_index in 0..ORDERS,
        revision_step in a_revision_step(),
    ) {
        let (mut product, mut revisions) = play(&history);
        let command = ship(order(order_index), revisions.next(order_index, revision_step));

        let first = decide_and_apply(&mut product, command.clone());
        prop_assert_eq!(product.decide(command), Ok(vec![]), "first time: {:?}", first);
    }
}

proptest! {
    /// What a store that keeps the orders apart does: the product in memory holds no
    /// order; before each decision the command's order is put back from the entries
    /// kept apart, and after it the entries of the orders its events changed are kept.
    #[test]
    fn a_product_holding_only_the_orders_it_is_asked_about_decides_and_folds_like_the_full_fold(history in a_history()) {
        let mut full = Product::default();
        let mut bounded = Product::default();
        let mut kept_apart: BTreeMap<OrderId, OrderEntry> = BTreeMap::new();
        let mut revisions = Revisions::default();
        for step in &history {
            let command = step.command(&mut revisions);
            bounded.forget_orders();
            if let Some(order_id) = command.order_id() {
                bounded.remember_order(order_id, kept_apart.get(&order_id).copied().unwrap_or_default());
            }
            let expected = decide_and_apply(&mut full, command.clone());
            let decided = decide_and_apply(&mut bounded, command.clone());
            prop_assert_eq!(&decided, &expected, "{:?}", command);
            prop_assert!(bounded.orders_held() <= 1, "holds {} orders", bounded.orders_held());
            for order_id in decided.iter().filter_map(ProductEvent::order_id) {
                kept_apart.insert(order_id, bounded.order_entry(&order_id));
            }
            prop_assert_eq!(
                (bounded.version(), bounded.received(), bounded.reserved(), bounded.shipped()),
                (full.version(), full.received(), full.reserved(), full.shipped())
            );
        }
        for n in 0..ORDERS {
            prop_assert_eq!(kept_apart.get(&order(n)).copied().unwrap_or_default(), full.order_entry(&order(n)), "order {}", n);
        }
        bounded.forget_orders();
        full.forget_orders();
        prop_assert_eq!(bounded, full, "the same product once the orders are left out");
    }
}

#[test]
fn forgetting_the_orders_keeps_the_stock_and_remembering_one_puts_back_exactly_its_entry() {
    let full =
        fold(vec![ten_mugs(), reserved(order(1), 3, 3, 1), rejected(order(2), 20, 7, 1), released(order(3), 0, 2)]);
    let mut bounded = full.clone();
    bounded.forget_orders();
    assert_eq!((bounded.orders_held(), bounded.version(), bounded.available(), bounded.reserved()), (0, 4, 7, 3));
    assert_eq!(bounded.order_entry(&order(1)), OrderEntry::default(), "forgotten");
    for n in 1..=4 {
        bounded.remember_order(order(n), full.order_entry(&order(n)));
        assert_eq!(bounded.order_entry(&order(n)), full.order_entry(&order(n)), "order {n}");
    }
    assert_eq!(bounded, full);
    assert_eq!(
        full.order_entry(&order(3)),
        OrderEntry { reservation: Reservation { quantity: 0, revision: 2 }, announcement: None }
    );
}

// ----- announcements (for re-announcing a decided outcome) ----------------------------

#[test]
fn the_event_that_announced_an_orders_outcome_is_remembered_until_a_release_decides_it() {
    // Sequences: 1 added, 2 reserved for order 1, 3 rejected for order 2.
    let history = vec![ten_mugs(), reserved(order(1), 3, 3, 1), rejected(order(2), 20, 7, 1)];
    let product = fold(history.clone());
    assert_eq!(
        (product.announcement(&order(1)), product.announcement(&order(2)), product.announcement(&order(3))),
        (Some(2), Some(3), None)
    );

    // A bigger request rejected, with what the order held released in the same decision:
    // the rejection (sequence 4) is the announcement.
    let mut rejected_later = history.clone();
    rejected_later.extend([rejected(order(1), 9, 7, 2), released(order(1), 3, 2)]);
    assert_eq!(fold(rejected_later).announcement(&order(1)), Some(4));

    // A cancellation's release announces nothing: there is no outcome to repeat.
    let mut canceled = history.clone();
    canceled.push(released(order(1), 3, 2));
    assert_eq!(fold(canceled).announcement(&order(1)), None);

    let mut reduced_later = history;
    reduced_later.push(reduced(order(1), 1, 2, 2));
    assert_eq!(fold(reduced_later).announcement(&order(1)), Some(4));
}
