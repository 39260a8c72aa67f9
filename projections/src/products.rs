//! The product view: what `GET /inventory/products/{id}` and the product list answer.

use domain::ProductId;
use domain::inventory::{Product, ProductEvent, StockStatus};
use eventstore::EventEnvelope;
use serde::{Deserialize, Serialize};
use sqlx::PgPool;

use crate::{Cursor, Page, ProjectionError};

/// A product as clients read it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProductView {
    /// The product's id.
    pub product_id: ProductId,
    /// Display name.
    pub name: String,
    /// Units that can be reserved.
    pub available: u64,
    /// Units held for orders.
    pub reserved: u64,
    /// At or below this many available units, stock is low.
    pub low_stock_threshold: u32,
    /// In stock, low or out.
    pub stock_status: StockStatus,
    /// How many events it has.
    pub version: u64,
}

impl ProductView {
    /// Folds one event onto the view (`None` before the product's first event).
    pub fn apply(view: Option<Self>, product_id: &ProductId, event: &ProductEvent, sequence: u64) -> Option<Self> {
        let mut view = match (view, event) {
            (_, ProductEvent::ProductAdded { name, initial_stock, low_stock_threshold }) => Self {
                product_id: product_id.clone(),
                name: name.as_str().to_owned(),
                available: (*initial_stock).into(),
                reserved: 0,
                low_stock_threshold: *low_stock_threshold,
                stock_status: StockStatus::InStock,
                version: 0,
            },
            (Some(view), _) => view,
            (None, _) => return None,
        };
        match event {
            ProductEvent::ProductAdded { .. } => {}
            ProductEvent::StockRestocked { quantity } => view.available += u64::from(quantity.get()),
            ProductEvent::StockReserved { quantity, .. } => view.move_units(u64::from(*quantity), true),
            ProductEvent::ReservationReduced { quantity, .. } => view.move_units(u64::from(quantity.get()), false),
            ProductEvent::StockReleased { quantity, .. } => view.move_units(u64::from(*quantity), false),
            ProductEvent::ReservationRejected { .. }
            | ProductEvent::LowStockReached { .. }
            | ProductEvent::OutOfStock
            | ProductEvent::BackInStock { .. } => {}
        }
        view.stock_status = StockStatus::of(view.available, view.low_stock_threshold);
        view.version = sequence;
        Some(view)
    }

    /// Folds a whole history, as a rebuild does.
    pub fn fold<'a>(product_id: &ProductId, events: impl IntoIterator<Item = &'a EventEnvelope<Product>>) -> Option<Self> {
        events
            .into_iter()
            .fold(None, |view, envelope| Self::apply(view, product_id, &envelope.payload, envelope.sequence as u64))
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
}

type ProductRow = (String, String, i64, i64, i64, String, i64);

const PRODUCT_COLUMNS: &str = "product_id, name, available, reserved, low_stock_threshold, stock_status, version";

impl ProductViews {
    /// Views stored through `pool` (whose search path is the inventory schema).
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }

    /// One product, if it is in the view.
    pub async fn get(&self, product_id: &ProductId) -> Result<Option<ProductView>, ProjectionError> {
        let row: Option<ProductRow> = sqlx::query_as(&format!("SELECT {PRODUCT_COLUMNS} FROM product_view WHERE product_id = $1"))
            .bind(product_id.as_str())
            .fetch_optional(&self.pool)
            .await?;
        row.map(from_row).transpose()
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
        let mut items = rows.into_iter().map(from_row).collect::<Result<Vec<_>, _>>()?;
        let next_cursor = if items.len() > limit as usize {
            items.truncate(limit as usize);
            items.last().map(|last| Cursor::new(last.product_id.as_str()).encode())
        } else {
            None
        };
        Ok(Page { items, next_cursor })
    }

    /// Brings the view of `product_id` up to `version`; see `OrderViews::catch_up`.
    pub async fn catch_up<F, Fut>(&self, product_id: &ProductId, version: u64, new: &[EventEnvelope<Product>], history: F) -> Result<Option<ProductView>, ProjectionError>
    where
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = Result<Vec<EventEnvelope<Product>>, ProjectionError>>,
    {
        let current = self.get(product_id).await?;
        let current_version = current.as_ref().map_or(0, |v| v.version);
        if current_version >= version {
            return Ok(current);
        }
        let view = match new.first() {
            Some(first) if first.sequence as u64 == current_version + 1 => {
                new.iter().fold(current, |view, e| ProductView::apply(view, product_id, &e.payload, e.sequence as u64))
            }
            _ => ProductView::fold(product_id, &history().await?),
        };
        if let Some(view) = &view {
            self.save(view).await?;
        }
        Ok(view)
    }

    /// Writes a view unless a newer one is stored already.
    pub async fn save(&self, view: &ProductView) -> Result<(), ProjectionError> {
        let status = serde_json::to_value(view.stock_status).map_err(|e| ProjectionError::Corrupt(e.to_string()))?;
        sqlx::query(
            "INSERT INTO product_view (product_id, name, available, reserved, low_stock_threshold, stock_status, version)
             VALUES ($1, $2, $3, $4, $5, $6, $7)
             ON CONFLICT (product_id) DO UPDATE
                SET name = EXCLUDED.name, available = EXCLUDED.available, reserved = EXCLUDED.reserved,
                    low_stock_threshold = EXCLUDED.low_stock_threshold, stock_status = EXCLUDED.stock_status,
                    version = EXCLUDED.version
              WHERE product_view.version < EXCLUDED.version",
        )
        .bind(view.product_id.as_str())
        .bind(&view.name)
        .bind(view.available as i64)
        .bind(view.reserved as i64)
        .bind(i64::from(view.low_stock_threshold))
        .bind(status.as_str())
        .bind(view.version as i64)
        .execute(&self.pool)
        .await?;
        Ok(())
    }
}

fn from_row((product_id, name, available, reserved, threshold, status, version): ProductRow) -> Result<ProductView, ProjectionError> {
    let corrupt = |what: &str, e: &dyn std::fmt::Display| ProjectionError::Corrupt(format!("product_view {product_id} {what}: {e}"));
    Ok(ProductView {
        product_id: ProductId::parse(product_id.clone()).map_err(|e| corrupt("product_id", &e))?,
        name,
        available: available as u64,
        reserved: reserved as u64,
        low_stock_threshold: u32::try_from(threshold).map_err(|e| corrupt("low_stock_threshold", &e))?,
        stock_status: serde_json::from_value(serde_json::Value::String(status)).map_err(|e| corrupt("stock_status", &e))?,
        version: version as u64,
    })
}
