//! The application service for products: turns one command into committed events and
//! an up-to-date view, and answers queries from the view.

use domain::ProductId;
use domain::inventory::{Product, ProductCommand, ProductError};
use eventstore::{AggregateStore, EventMetadata, ExecuteError, StoredEvent};
use projections::{Cursor, Page, ProductView, ProductViews, ProjectionError};
use eventstore::{Aggregate, Feed};
use projections::latest_versions;
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

use crate::metrics;

/// The view follower's position in the event feed.
pub const VIEW_FEED: &str = "view-catch-up";

/// Why a product operation failed.
#[derive(Debug, thiserror::Error)]
pub enum ProductsError {
    /// A business rule refused the command.
    #[error(transparent)]
    Rejected(#[from] ProductError),
    /// Concurrent writers kept winning; the client may retry.
    #[error("the product kept changing concurrently")]
    Conflict,
    /// No such product.
    #[error("product not found")]
    NotFound,
    /// The database failed.
    #[error("storage failure: {0}")]
    Storage(String),
}

impl From<ExecuteError<ProductError>> for ProductsError {
    fn from(error: ExecuteError<ProductError>) -> Self {
        match error {
            ExecuteError::Rejected(e) => Self::Rejected(e),
            ExecuteError::Conflict => Self::Conflict,
            ExecuteError::Store(e) => Self::Storage(e.to_string()),
        }
    }
}

impl From<ProjectionError> for ProductsError {
    fn from(error: ProjectionError) -> Self {
        Self::Storage(error.to_string())
    }
}

/// Products: commands through the event store, queries from the view.
pub struct Products {
    store: AggregateStore<Product>,
    views: ProductViews,
}

impl Products {
    /// Products stored through `pool` (search path: the inventory schema).
    pub fn new(pool: PgPool) -> Self {
        Self { store: AggregateStore::event_sourced(pool.clone()), views: ProductViews::new(pool) }
    }

    /// Executes `command` on product `product_id` and returns the product as it then
    /// is; the view is updated before this returns.
    pub async fn execute(&self, product_id: &ProductId, command: ProductCommand, metadata: &EventMetadata) -> Result<ProductView, ProductsError> {
        self.apply(product_id, command, metadata).await?.ok_or(ProductsError::NotFound)
    }

    /// Like [`Products::execute`], for callers that need no view: a product that does
    /// not exist has none, yet records reservation requests (the saga's case).
    pub async fn apply(&self, product_id: &ProductId, command: ProductCommand, metadata: &EventMetadata) -> Result<Option<ProductView>, ProductsError> {
        let committed = telemetry::counted(Product::TYPE, metrics::command_type(&command), metrics::failure, self.store.execute(product_id.as_str(), command, metadata)).await?;
        Ok(self
            .views
            .catch_up(product_id, committed.version, &committed.events, || async {
                self.store.load_events(product_id.as_str()).await.map_err(|e| ProjectionError::EventStore(e.to_string()))
            })
            .await?)
    }

    /// Keeps the product view up to date from the commit-ordered event feed until
    /// `shutdown`; see `Orders::follow_feed` in the OMS.
    pub async fn follow_feed(&self, pool: PgPool, shutdown: CancellationToken) {
        let feed = Feed::new(pool, VIEW_FEED);
        feed.follow(1000, &shutdown, |events| async move {
            for (product_id, version) in latest_versions(&events, Product::TYPE) {
                let Ok(product_id) = ProductId::parse(product_id) else { continue };
                self.views
                    .catch_up(&product_id, version, &[], || async {
                        self.store.load_events(product_id.as_str()).await.map_err(|e| ProjectionError::EventStore(e.to_string()))
                    })
                    .await?;
            }
            Ok(())
        })
        .await;
    }

    /// The product as the view holds it.
    pub async fn get(&self, product_id: &ProductId) -> Result<ProductView, ProductsError> {
        self.views.get(product_id).await?.ok_or(ProductsError::NotFound)
    }

    /// A page of products, by id.
    pub async fn list(&self, limit: u32, cursor: Option<&Cursor>) -> Result<Page<ProductView>, ProductsError> {
        Ok(self.views.list(limit, cursor).await?)
    }

    /// Every event of the product, oldest first.
    pub async fn history(&self, product_id: &ProductId) -> Result<Vec<StoredEvent>, ProductsError> {
        let events = self.store.history(product_id.as_str()).await?;
        if events.is_empty() { Err(ProductsError::NotFound) } else { Ok(events) }
    }
}
