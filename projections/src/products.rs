//! The product view: what `GET /inventory/products/{id}` and the product list answer.

use domain::ProductId;
use domain::inventory::{Product, ProductEvent, StockStatus};
use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use eventstore::EventEnvelope;
use serde::{Deserialize, Serialize};
use sqlx::{PgConnection, PgPool};

use crate::coalesce::CoalescedReads;
use crate::model::ViewTable;
use crate::view::View;
use crate::{Cursor, Page, ProjectionError};

/// A product as clients read it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "openapi", schema(as = Product, example = json!({
    "productId": "mug", "name": "Mug", "available": 100, "reserved": 0,
    "onHand": 100, "shipped": 0, "lowStockThreshold": 10, "stockStatus": "IN_STOCK", "version": 1
})))]
pub struct ProductView {
    /// The product's id.
    #[cfg_attr(feature = "openapi", schema(value_type = String, example = "mug"))]
    pub product_id: ProductId,
    /// Display name.
    #[cfg_attr(feature = "openapi", schema(example = "Mug"))]
    pub name: String,
    /// Units that can be reserved.
    pub available: u64,
    /// Units held for orders.
    pub reserved: u64,
    /// Units in the warehouse: available plus reserved.
    pub on_hand: u64,
    /// Units that left with shipped orders.
    pub shipped: u64,
    /// At or below this many available units, stock is low.
    pub low_stock_threshold: u32,
    /// In stock, low or out.
    pub stock_status: StockStatus,
    /// How many events it has.
    #[cfg_attr(feature = "openapi", schema(minimum = 1))]
    pub version: u64,
}

impl ProductView {
    /// Folds one event onto the view (`None` before the product's first event).
    pub fn fold_event(view: Option<Self>, product_id: &ProductId, event: &ProductEvent, sequence: u64) -> Option<Self> {
        let mut view = match (view, event) {
            (_, ProductEvent::ProductAdded { name, initial_stock, low_stock_threshold }) => Self {
                product_id: product_id.clone(),
                name: name.as_str().to_owned(),
                available: (*initial_stock).into(),
                reserved: 0,
                on_hand: 0,
                shipped: 0,
                low_stock_threshold: *low_stock_threshold,
                stock_status: StockStatus::InStock,
                version: 0,
            },
            (Some(view), _) => view,
            (None, _) => return None,
        };
        match event {
            ProductEvent::ProductAdded { .. } => {}
            ProductEvent::ProductRenamed { name } => view.name = name.as_str().to_owned(),
            ProductEvent::LowStockThresholdChanged { low_stock_threshold } => {
                view.low_stock_threshold = *low_stock_threshold;
            }
            ProductEvent::StockRestocked { quantity } => view.available += u64::from(quantity.get()),
            ProductEvent::StockAdjusted { quantity, .. } => {
                view.available = view.available.saturating_add_signed(quantity.get().into());
            }
            ProductEvent::StockReserved { quantity, .. } => view.move_units(u64::from(*quantity), true),
            ProductEvent::ReservationReduced { quantity, .. } => view.move_units(u64::from(quantity.get()), false),
            ProductEvent::StockReleased { quantity, .. } => view.move_units(u64::from(*quantity), false),
            ProductEvent::StockShipped { quantity, .. } => {
                view.reserved = view.reserved.saturating_sub(u64::from(quantity.get()));
                view.shipped += u64::from(quantity.get());
            }
            ProductEvent::ReservationRejected { .. }
            | ProductEvent::LowStockReached { .. }
            | ProductEvent::OutOfStock
            | ProductEvent::BackInStock { .. } => {}
        }
        view.on_hand = view.available + view.reserved;
        view.stock_status = StockStatus::of(view.available, view.low_stock_threshold);
        view.version = sequence;
        Some(view)
    }

    /// Moves units between available and reserved. The aggregate guarantees they are
    /// there; saturating keeps a corrupted history from panicking the service.
    fn move_units(&mut self, units: u64, reserve: bool) {
        if reserve {
            self.available = self.available.saturating_sub(units);
            self.reserved += units;
        } else {
            self.reserved = self.reserved.saturating_sub(units);
            self.available += units;
        }
    }
}

/// The product view table.
#[derive(Debug, Clone)]
pub struct ProductViews {
    pool: PgPool,
    reads: Arc<CoalescedReads<ProductViews>>,
}

type ProductRow = (String, String, i64, i64, i64, i64, String, i64);

const PRODUCT_COLUMNS: &str =
    "product_id, name, available, reserved, shipped, low_stock_threshold, stock_status, version";

impl ProductViews {
    /// Views stored through `pool` (whose search path is the inventory schema).
    pub fn new(pool: PgPool) -> Self {
        Self { reads: Arc::new(CoalescedReads::new(pool.clone())), pool }
    }

    /// One product, if it is in the view (read with the reads that arrive meanwhile:
    /// see [`CoalescedReads`]).
    pub async fn get(&self, product_id: &ProductId) -> Result<Option<ProductView>, ProjectionError> {
        self.reads.get(product_id.as_str().to_owned()).await
    }

    /// A page of products, by id.
    pub async fn list(&self, limit: u32, cursor: Option<&Cursor>) -> Result<Page<ProductView>, ProjectionError> {
        let rows: Vec<ProductRow> = sqlx::query_as(&format!(
            "SELECT {PRODUCT_COLUMNS} FROM product_view
              WHERE ($1::text IS NULL OR product_id > $1)
              ORDER BY product_id
              LIMIT $2"
        ))
        .bind(cursor.map(Cursor::position))
        .bind(i64::from(limit) + 1)
        .fetch_all(&self.pool)
        .await?;
        let items = rows.into_iter().map(from_row).collect::<Result<Vec<_>, _>>()?;
        Ok(Page::of(items, limit, |last| last.product_id.as_str().to_owned()))
    }
}

#[async_trait]
impl ViewTable for ProductViews {
    type View = ProductView;
    const MODEL: &'static str = "product_view";
    const KEY: &'static str = "product_id";

    async fn get_many(
        connection: &mut PgConnection,
        table: &str,
        product_ids: &[&str],
    ) -> Result<HashMap<String, ProductView>, ProjectionError> {
        let rows: Vec<ProductRow> =
            sqlx::query_as(&format!("SELECT {PRODUCT_COLUMNS} FROM {table} WHERE product_id = ANY($1)"))
                .bind(product_ids)
                .fetch_all(&mut *connection)
                .await?;
        rows.into_iter().map(|row| from_row(row).map(|view| (view.product_id.as_str().to_owned(), view))).collect()
    }

    fn to_row(view: &ProductView) -> serde_json::Value {
        serde_json::json!({
            "product_id": view.product_id,
            "name": view.name,
            "available": view.available,
            "reserved": view.reserved,
            "shipped": view.shipped,
            "low_stock_threshold": view.low_stock_threshold,
            "stock_status": view.stock_status,
            "version": view.version,
        })
    }

    async fn save_all(
        connection: &mut PgConnection,
        table: &str,
        views: &[ProductView],
    ) -> Result<(), ProjectionError> {
        if views.is_empty() {
            return Ok(());
        }
        sqlx::query(&format!(
            "INSERT INTO {table} (product_id, name, available, reserved, shipped, low_stock_threshold, stock_status, version)
             SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[], $4::bigint[], $5::bigint[], $6::bigint[],
                                  $7::text[], $8::bigint[])
             ON CONFLICT (product_id) DO UPDATE
                SET name = EXCLUDED.name, available = EXCLUDED.available, reserved = EXCLUDED.reserved,
                    shipped = EXCLUDED.shipped, low_stock_threshold = EXCLUDED.low_stock_threshold, stock_status = EXCLUDED.stock_status,
                    version = EXCLUDED.version
              WHERE {table}.version < EXCLUDED.version"
        ))
        .bind(views.iter().map(|v| v.product_id.as_str()).collect::<Vec<_>>())
        .bind(views.iter().map(|v| v.name.as_str()).collect::<Vec<_>>())
        .bind(views.iter().map(|v| v.available as i64).collect::<Vec<_>>())
        .bind(views.iter().map(|v| v.reserved as i64).collect::<Vec<_>>())
        .bind(views.iter().map(|v| v.shipped as i64).collect::<Vec<_>>())
        .bind(views.iter().map(|v| i64::from(v.low_stock_threshold)).collect::<Vec<_>>())
        .bind(views.iter().map(|v| v.stock_status.as_str()).collect::<Vec<_>>())
        .bind(views.iter().map(|v| v.version as i64).collect::<Vec<_>>())
        .execute(&mut *connection)
        .await?;
        Ok(())
    }
}

impl View for ProductView {
    type Aggregate = Product;

    fn version(&self) -> u64 {
        self.version
    }

    fn apply(view: Option<Self>, envelope: &EventEnvelope<Product>) -> Result<Option<Self>, ProjectionError> {
        let product_id = ProductId::parse(envelope.aggregate_id.clone())
            .map_err(|e| ProjectionError::Corrupt(format!("product event of '{}': {e}", envelope.aggregate_id)))?;
        Ok(Self::fold_event(view, &product_id, &envelope.payload, envelope.sequence as u64))
    }
}

fn from_row(
    (product_id, name, available, reserved, shipped, threshold, status, version): ProductRow,
) -> Result<ProductView, ProjectionError> {
    let corrupt = |what: &str, e: &dyn std::fmt::Display| {
        ProjectionError::Corrupt(format!("product_view {product_id} {what}: {e}"))
    };
    Ok(ProductView {
        product_id: ProductId::parse(product_id.clone()).map_err(|e| corrupt("product_id", &e))?,
        name,
        available: available as u64,
        reserved: reserved as u64,
        on_hand: (available + reserved) as u64,
        shipped: shipped as u64,
        low_stock_threshold: u32::try_from(threshold).map_err(|e| corrupt("low_stock_threshold", &e))?,
        stock_status: serde_json::from_value(serde_json::Value::String(status))
            .map_err(|e| corrupt("stock_status", &e))?,
        version: version as u64,
    })
}
