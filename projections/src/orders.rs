//! The order view: what `GET /oms/orders/{id}` and the order list answer.

use chrono::{DateTime, Utc};
use domain::order::{CancelReason, ItemStatus, Order, OrderEvent, OrderStatus, TargetStatus};
use domain::{OrderId, ProductId, Quantity, UserId};
use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use eventstore::{EventEnvelope, EventMetadata};
use serde::{Deserialize, Serialize};
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use crate::coalesce::CoalescedReads;
use crate::model::ViewTable;
use crate::view::View;
use crate::{Cursor, InvalidCursor, Page, ProjectionError};

/// An order as clients read it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "openapi", schema(as = Order, example = json!({
    "orderId": "6f1c2a9e-3b4d-4e5f-8a6b-7c8d9e0f1a2b", "userId": "u-1", "status": "PENDING",
    "orderItems": [{"productId": "mug", "quantity": 2, "status": "PENDING", "reason": null}],
    "createdAt": "2026-12-01T17:00:00Z", "updatedAt": "2026-12-01T17:00:00Z", "version": 1
})))]
pub struct OrderView {
    /// The order's id (a UUID).
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = "uuid"))]
    pub order_id: OrderId,
    /// Who placed it.
    #[cfg_attr(feature = "openapi", schema(value_type = String, example = "u-1"))]
    pub user_id: UserId,
    /// Where it stands. An `EXECUTED` or `PARTIALLY_EXECUTED` order awaits payment:
    /// unless `PAID` within the payment deadline after it resolved (the OMS's
    /// `ORDER_PAYMENT_TIMEOUT_MS`, 30 minutes unless configured; 0 turns it off), the
    /// OMS cancels it, its items `CANCELED` with reason `PAYMENT_TIMEOUT`.
    pub status: OrderStatus,
    /// Its items, in the order first requested.
    pub order_items: Vec<OrderItemView>,
    /// When it was placed.
    #[serde(serialize_with = "rfc3339")]
    pub created_at: DateTime<Utc>,
    /// When it last changed.
    #[serde(serialize_with = "rfc3339")]
    pub updated_at: DateTime<Utc>,
    /// How many events it has.
    #[cfg_attr(feature = "openapi", schema(minimum = 1))]
    pub version: u64,
    /// When it last became resolved (`EXECUTED` or `PARTIALLY_EXECUTED` after being
    /// neither), while it still is; `None` otherwise. The payment deadline runs from
    /// here: an item canceled after the resolution changes `updated_at`, not this.
    /// Kept in the view for the deadline's pass, not shown to clients.
    #[serde(skip)]
    pub resolved_at: Option<DateTime<Utc>>,
}

/// One item of an order as clients read it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "openapi", schema(as = OrderItem))]
pub struct OrderItemView {
    /// The product.
    #[cfg_attr(feature = "openapi", schema(value_type = String, example = "mug"))]
    pub product_id: ProductId,
    /// Units ordered.
    #[cfg_attr(feature = "openapi", schema(value_type = u32, minimum = 1, maximum = 1_000_000, example = 2))]
    pub quantity: Quantity,
    /// Where the reservation stands.
    pub status: ItemStatus,
    /// Why it is canceled, when it is.
    pub reason: Option<CancelReason>,
}

impl OrderView {
    /// Folds one event onto the view (`None` before the order's first event). Uses
    /// nothing but the event, its sequence and the time it carries.
    pub fn fold_event(
        view: Option<Self>,
        order_id: OrderId,
        event: &OrderEvent,
        sequence: u64,
        occurred_at: DateTime<Utc>,
    ) -> Option<Self> {
        if let OrderEvent::OrderPlaced { user_id, items, .. } = event {
            return Some(Self {
                order_id,
                user_id: user_id.clone(),
                status: OrderStatus::Pending,
                order_items: items
                    .iter()
                    .map(|line| OrderItemView {
                        product_id: line.product_id.clone(),
                        quantity: line.quantity,
                        status: ItemStatus::Pending,
                        reason: None,
                    })
                    .collect(),
                created_at: occurred_at,
                updated_at: occurred_at,
                version: sequence,
                resolved_at: None,
            });
        }
        let mut view = view?;
        let was_resolved = view.status.awaits_payment();
        match event {
            OrderEvent::OrderPlaced { .. } => unreachable!("handled above"),
            OrderEvent::OrderItemsChanged { items } => {
                for change in items {
                    let item = OrderItemView {
                        product_id: change.product_id.clone(),
                        quantity: change.quantity,
                        status: change.status,
                        reason: (change.status == ItemStatus::Canceled).then_some(CancelReason::CanceledByCustomer),
                    };
                    match view.item_mut(&change.product_id) {
                        Some(existing) => *existing = item,
                        None => view.order_items.push(item),
                    }
                }
                view.derive_status();
            }
            OrderEvent::ItemExecuted { product_id, .. } => {
                if let Some(item) = view.item_mut(product_id) {
                    item.status = ItemStatus::Executed;
                    item.reason = None;
                }
                view.derive_status();
            }
            OrderEvent::ItemRejected { product_id, reason, .. } => {
                if let Some(item) = view.item_mut(product_id) {
                    item.status = ItemStatus::Canceled;
                    item.reason = Some((*reason).into());
                }
                view.derive_status();
            }
            OrderEvent::OrderStatusChanged { status, .. } => view.status = (*status).into(),
            OrderEvent::OrderCanceled { reason, .. } => {
                view.status = OrderStatus::Canceled;
                for item in &mut view.order_items {
                    if item.status != ItemStatus::Canceled {
                        item.status = ItemStatus::Canceled;
                        item.reason = Some(*reason);
                    }
                }
            }
        }
        view.version = sequence;
        view.updated_at = occurred_at;
        // Resolved by this event, still resolved (an item canceled, the rest kept), or
        // no longer (paid, canceled, an item pending again: a later resolution is new).
        view.resolved_at = match (was_resolved, view.status.awaits_payment()) {
            (false, true) => Some(occurred_at),
            (true, true) => view.resolved_at,
            (_, false) => None,
        };
        Some(view)
    }

    fn item_mut(&mut self, product_id: &ProductId) -> Option<&mut OrderItemView> {
        self.order_items.iter_mut().find(|item| &item.product_id == product_id)
    }

    /// Item events only arrive while the order is open (the aggregate ignores them
    /// after payment or cancellation), so the status follows the items.
    fn derive_status(&mut self) {
        if !matches!(self.status, OrderStatus::Paid | OrderStatus::Shipped | OrderStatus::Delivered) {
            self.status = OrderStatus::from_items(self.order_items.iter().map(|item| item.status));
        }
    }
}

impl View for OrderView {
    type Aggregate = Order;

    fn version(&self) -> u64 {
        self.version
    }

    fn apply(view: Option<Self>, envelope: &EventEnvelope<Order>) -> Result<Option<Self>, ProjectionError> {
        let order_id: OrderId = envelope.aggregate_id.parse().map_err(|_| {
            ProjectionError::Corrupt(format!("order event of '{}': not an order id", envelope.aggregate_id))
        })?;
        Ok(Self::fold_event(view, order_id, &envelope.payload, envelope.sequence as u64, occurred_at(envelope)?))
    }
}

fn occurred_at<A: cqrs_es::Aggregate>(envelope: &EventEnvelope<A>) -> Result<DateTime<Utc>, ProjectionError> {
    EventMetadata::occurred_at_in(&envelope.metadata)
        .map_err(|e| ProjectionError::Corrupt(format!("event {} of {}: {e}", envelope.sequence, envelope.aggregate_id)))
}

// `TargetStatus` is how the lifecycle events name statuses; the view shows them as
// order statuses. Kept here so a new target status fails to compile in one place.
const _: fn(TargetStatus) -> OrderStatus = OrderStatus::from;

/// Filters of the order list.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OrderFilter {
    /// Only this customer's orders.
    pub user_id: Option<UserId>,
    /// Only orders in this status.
    pub status: Option<OrderStatus>,
}

/// The order view table.
#[derive(Debug, Clone)]
pub struct OrderViews {
    pool: PgPool,
    reads: Arc<CoalescedReads<OrderViews>>,
}

/// A row as read; `items` is decoded straight from the column's JSON (no
/// intermediate `serde_json::Value`, which cost allocations per item on every read).
type OrderRow = (
    Uuid,
    String,
    String,
    sqlx::types::Json<Vec<OrderItemView>>,
    DateTime<Utc>,
    DateTime<Utc>,
    i64,
    Option<DateTime<Utc>>,
);

const ORDER_COLUMNS: &str = "order_id, user_id, status, items, created_at, updated_at, version, resolved_at";

impl OrderViews {
    /// Views stored through `pool` (whose search path is the OMS schema).
    pub fn new(pool: PgPool) -> Self {
        Self { reads: Arc::new(CoalescedReads::new(pool.clone())), pool }
    }

    /// One order, if it is in the view (read with the reads that arrive meanwhile: see
    /// [`CoalescedReads`]).
    pub async fn get(&self, order_id: OrderId) -> Result<Option<OrderView>, ProjectionError> {
        self.reads.get(order_id.to_string()).await
    }

    /// How many statements have served [`OrderViews::get`] so far.
    pub fn statements_read(&self) -> u64 {
        self.reads.statements()
    }

    /// A page of orders, newest first.
    pub async fn list(
        &self,
        filter: &OrderFilter,
        limit: u32,
        cursor: Option<&Cursor>,
    ) -> Result<Page<OrderView>, ProjectionError> {
        let after = cursor.map(decode_position).transpose().map_err(|_| ProjectionError::Corrupt("cursor".into()))?;
        let rows: Vec<OrderRow> = sqlx::query_as(&format!(
            "SELECT {ORDER_COLUMNS} FROM order_view
              WHERE ($1::text IS NULL OR user_id = $1)
                AND ($2::text IS NULL OR status = $2)
                AND ($3::timestamptz IS NULL OR (created_at, order_id) < ($3, $4))
              ORDER BY created_at DESC, order_id DESC
              LIMIT $5"
        ))
        .bind(filter.user_id.as_ref().map(UserId::as_str))
        .bind(filter.status.map(OrderStatus::as_str))
        .bind(after.map(|(at, _)| at))
        .bind(after.map(|(_, id)| id))
        .bind(i64::from(limit) + 1)
        .fetch_all(&self.pool)
        .await?;
        let items = rows.into_iter().map(from_row).collect::<Result<Vec<_>, _>>()?;
        Ok(Page::of(items, limit, |last| format!("{}|{}", last.created_at.timestamp_micros(), last.order_id)))
    }

    /// Checks a client's cursor before use, so a bad one is the client's error.
    pub fn parse_cursor(text: &str) -> Result<Cursor, InvalidCursor> {
        let cursor = Cursor::decode(text)?;
        decode_position(&cursor)?;
        Ok(cursor)
    }
}

#[async_trait]
impl ViewTable for OrderViews {
    type View = OrderView;
    const MODEL: &'static str = "order_view";
    const KEY: &'static str = "order_id";

    async fn get_many(
        connection: &mut PgConnection,
        table: &str,
        order_ids: &[&str],
    ) -> Result<HashMap<String, OrderView>, ProjectionError> {
        let ids: Vec<Uuid> = order_ids.iter().filter_map(|id| Uuid::parse_str(id).ok()).collect();
        let rows: Vec<OrderRow> =
            sqlx::query_as(&format!("SELECT {ORDER_COLUMNS} FROM {table} WHERE order_id = ANY($1)"))
                .bind(&ids)
                .fetch_all(&mut *connection)
                .await?;
        rows.into_iter().map(|row| from_row(row).map(|view| (view.order_id.to_string(), view))).collect()
    }

    fn to_row(view: &OrderView) -> serde_json::Value {
        serde_json::json!({
            "order_id": view.order_id,
            "user_id": view.user_id,
            "status": view.status,
            "items": view.order_items,
            "created_at": view.created_at,
            "updated_at": view.updated_at,
            "version": view.version,
            "resolved_at": view.resolved_at,
        })
    }

    async fn save_all(connection: &mut PgConnection, table: &str, views: &[OrderView]) -> Result<(), ProjectionError> {
        if views.is_empty() {
            return Ok(());
        }
        let items = views
            .iter()
            .map(|view| serde_json::to_value(&view.order_items))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| ProjectionError::Corrupt(e.to_string()))?;
        sqlx::query(&format!(
            "INSERT INTO {table} (order_id, user_id, status, items, created_at, updated_at, version, resolved_at)
             SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[], $4::jsonb[], $5::timestamptz[], $6::timestamptz[], $7::bigint[], $8::timestamptz[])
             ON CONFLICT (order_id) DO UPDATE
                SET user_id = EXCLUDED.user_id, status = EXCLUDED.status, items = EXCLUDED.items,
                    created_at = EXCLUDED.created_at, updated_at = EXCLUDED.updated_at, version = EXCLUDED.version,
                    resolved_at = EXCLUDED.resolved_at
              WHERE {table}.version < EXCLUDED.version"
        ))
        .bind(views.iter().map(|v| v.order_id.as_uuid()).collect::<Vec<_>>())
        .bind(views.iter().map(|v| v.user_id.as_str()).collect::<Vec<_>>())
        .bind(views.iter().map(|v| v.status.as_str()).collect::<Vec<_>>())
        .bind(items)
        .bind(views.iter().map(|v| v.created_at).collect::<Vec<_>>())
        .bind(views.iter().map(|v| v.updated_at).collect::<Vec<_>>())
        .bind(views.iter().map(|v| v.version as i64).collect::<Vec<_>>())
        .bind(views.iter().map(|v| v.resolved_at).collect::<Vec<_>>())
        .execute(&mut *connection)
        .await?;
        Ok(())
    }
}

fn decode_position(cursor: &Cursor) -> Result<(DateTime<Utc>, Uuid), InvalidCursor> {
    let (micros, id) = cursor.position().split_once('|').ok_or(InvalidCursor)?;
    // Only times PostgreSQL can hold and we could have written: a forged far-off
    // time would otherwise fail in the database, as if it were our fault.
    let at = micros
        .parse::<i64>()
        .ok()
        .filter(|m| (0..=253_402_300_799_000_000).contains(m))
        .and_then(DateTime::from_timestamp_micros)
        .ok_or(InvalidCursor)?;
    let id = Uuid::parse_str(id).map_err(|_| InvalidCursor)?;
    Ok((at, id))
}

fn from_row(
    (order_id, user_id, status, items, created_at, updated_at, version, resolved_at): OrderRow,
) -> Result<OrderView, ProjectionError> {
    let corrupt =
        |what: &str, e: &dyn std::fmt::Display| ProjectionError::Corrupt(format!("order_view {order_id} {what}: {e}"));
    Ok(OrderView {
        order_id: order_id.into(),
        user_id: UserId::parse(user_id).map_err(|e| corrupt("user_id", &e))?,
        status: serde_json::from_value(serde_json::Value::String(status)).map_err(|e| corrupt("status", &e))?,
        order_items: items.0,
        created_at,
        updated_at,
        version: version as u64,
        resolved_at,
    })
}

/// A time as chrono writes it (RFC 3339, UTC as `Z`, as many fraction digits as it
/// has), formatted into one string first: chrono's own `Serialize` writes through
/// `collect_str`, one escaped fragment per piece of the date, which cost a `GET` of an
/// order about 5% of its instructions (callgrind).
fn rfc3339<S: serde::Serializer>(time: &DateTime<Utc>, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(&time.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true))
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;
    use domain::order::{ItemChange, OrderLine, RejectionReason};

    use super::*;

    fn product(id: &str) -> ProductId {
        ProductId::parse(id).unwrap()
    }

    fn units(n: u32) -> Quantity {
        Quantity::new(n.into()).unwrap()
    }

    fn change(id: &str, n: u32, status: ItemStatus) -> OrderEvent {
        OrderEvent::OrderItemsChanged {
            items: vec![ItemChange { product_id: product(id), quantity: units(n), status }],
        }
    }

    fn executed(id: &str, n: u32, revision: u64) -> OrderEvent {
        OrderEvent::ItemExecuted { product_id: product(id), quantity: units(n), revision }
    }

    /// `(status, resolved_at)` after each event, the n-th event at minute n.
    fn resolutions(events: &[OrderEvent]) -> Vec<(OrderStatus, Option<u32>)> {
        let base = Utc.with_ymd_and_hms(2026, 12, 1, 17, 0, 0).unwrap();
        let minute = |n: u32| base + chrono::Duration::minutes(n.into());
        let order_id = OrderId::generate();
        let mut view = None;
        let mut seen = Vec::new();
        for (n, event) in (1..).zip(events) {
            view = OrderView::fold_event(view, order_id, event, n.into(), minute(n));
            let folded = view.as_ref().unwrap();
            let at = folded.resolved_at.map(|at| ((at - base).num_minutes()) as u32);
            seen.push((folded.status, at));
        }
        seen
    }

    #[test]
    fn the_view_keeps_when_the_order_last_became_resolved() {
        let placed = OrderEvent::OrderPlaced {
            user_id: UserId::parse("alice").unwrap(),
            items: ["mug", "tea", "cup"]
                .iter()
                .map(|id| OrderLine { product_id: product(id), quantity: units(1) })
                .collect(),
            idempotency_key: None,
        };
        let events = [
            placed,
            executed("mug", 1, 1),
            executed("tea", 1, 1),
            // The last pending item canceled by the customer: this resolves the order.
            change("cup", 1, ItemStatus::Canceled),
            // An item canceled after the resolution does not move it.
            change("tea", 1, ItemStatus::Canceled),
            // A quantity change makes an item pending: no longer resolved...
            change("mug", 2, ItemStatus::Pending),
            // ...until it resolves anew, from then on.
            executed("mug", 2, 6),
            OrderEvent::OrderStatusChanged { status: TargetStatus::Paid, items: vec![] },
        ];
        assert_eq!(
            resolutions(&events),
            [
                (OrderStatus::Pending, None),
                (OrderStatus::Pending, None),
                (OrderStatus::Pending, None),
                (OrderStatus::PartiallyExecuted, Some(4)),
                (OrderStatus::PartiallyExecuted, Some(4)),
                (OrderStatus::Pending, None),
                (OrderStatus::PartiallyExecuted, Some(7)),
                (OrderStatus::Paid, None),
            ]
        );
    }

    #[test]
    fn an_order_that_resolves_with_nothing_reserved_or_is_canceled_awaits_no_payment() {
        let placed = OrderEvent::OrderPlaced {
            user_id: UserId::parse("alice").unwrap(),
            items: vec![OrderLine { product_id: product("mug"), quantity: units(1) }],
            idempotency_key: None,
        };
        let rejected = OrderEvent::ItemRejected {
            product_id: product("mug"),
            quantity: units(1),
            revision: 1,
            reason: RejectionReason::InsufficientStock,
        };
        assert_eq!(resolutions(&[placed.clone(), rejected])[1], (OrderStatus::Canceled, None));
        let canceled = OrderEvent::OrderCanceled { items: vec![product("mug")], reason: CancelReason::PaymentTimeout };
        assert_eq!(
            resolutions(&[placed, executed("mug", 1, 1), canceled])[1..],
            [(OrderStatus::Executed, Some(2)), (OrderStatus::Canceled, None)]
        );
    }

    #[test]
    fn times_are_written_exactly_as_chronos_own_serialize_writes_them() {
        let base = Utc.with_ymd_and_hms(2026, 12, 6, 7, 48, 0).unwrap();
        for nanos in [0, 1_000, 123_456_000, 123_456_789, 500_000_000, 999_999_999] {
            let time = base + chrono::Duration::nanoseconds(nanos);
            let ours = rfc3339(&time, serde_json::value::Serializer).unwrap();
            assert_eq!(ours, serde_json::to_value(time).unwrap(), "{nanos} ns");
        }
    }
}
