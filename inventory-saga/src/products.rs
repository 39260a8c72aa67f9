//! The application service for products: turns one command into committed events and
//! an up-to-date view, and answers queries from the view.

use domain::inventory::{Product, ProductCommand, ProductError, ProductEvent};
use domain::{OrderId, ProductId};
use eventstore::Aggregate;
use eventstore::{
    AggregateError, AggregateStore, Command, CommitNotifier, Committed, EventMetadata, ExecuteError, HistoryPage,
};
use projections::{AsOf, Cursor, Page, ProductView, ProductViews, Projector};
use sqlx::PgPool;

use crate::reservations::{Held, ProductReservations};

/// A product is snapshotted every this many events: a product not in the store's cache
/// loads from its snapshot and fewer events than this, whatever its history.
pub const SNAPSHOT_EVERY: u64 = 500;

/// Why a product operation failed.
pub type ProductsError = AggregateError<Product>;

/// Units of one product shipped for one order by [`Products::ship_held`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shipment {
    /// The order.
    pub order_id: OrderId,
    /// The product.
    pub product_id: String,
    /// Units that left the warehouse.
    pub quantity: u32,
}

/// Products: commands through the event store (which keeps the view, the per-order
/// rows and the snapshots in the same transaction), queries from the view.
pub struct Products {
    store: AggregateStore<Product>,
    views: ProductViews,
    pool: PgPool,
}

impl Products {
    /// Products stored through `pool` (search path: the inventory schema).
    pub fn new(pool: PgPool) -> Self {
        Self { store: Self::store(pool.clone()), views: ProductViews::new(pool.clone()), pool }
    }

    /// The product store as this service runs it: the view kept in every commit, the
    /// orders of each product kept apart in `product_reservations`, snapshots every
    /// [`SNAPSHOT_EVERY`] events.
    pub fn store(pool: PgPool) -> AggregateStore<Product> {
        AggregateStore::new(pool)
            .with_projection(
                Projector::<ProductViews>::live().remembering(AggregateStore::<Product>::CACHED_AGGREGATES),
            )
            .with_command_names(ProductCommand::name)
            .with_keyed_state(ProductReservations)
            .with_snapshots(SNAPSHOT_EVERY)
    }

    /// Rings `notifier` after every commit, so the outbox relay publishes at once.
    pub fn notifying(mut self, notifier: CommitNotifier) -> Self {
        self.store = self.store.with_commit_notifier(notifier);
        self
    }

    /// Executes `command` on product `product_id` and returns the product as it then
    /// is (read-your-writes: the view is written in the same transaction).
    pub async fn execute(
        &self,
        product_id: &ProductId,
        command: ProductCommand,
        metadata: &EventMetadata,
    ) -> Result<ProductView, ProductsError> {
        self.execute_if(product_id, None, command, metadata).await
    }

    /// Like [`Products::execute`], only while the product is at one of `versions`
    /// when given (a client's `If-Match`); else [`ProductsError::Stale`], nothing
    /// stored.
    pub async fn execute_if(
        &self,
        product_id: &ProductId,
        versions: Option<&[u64]>,
        command: ProductCommand,
        metadata: &EventMetadata,
    ) -> Result<ProductView, ProductsError> {
        // A retry of a write already applied (its key is stored) is answered as it was
        // applied, whatever happened since, If-Match included.
        let key = metadata.idempotency_key.as_deref();
        if let Some(key) = key
            && let Some(view) = self.applied_with(product_id, key, &command).await?
        {
            return Ok(view);
        }
        let executed = self.store.execute_if(product_id.as_str(), versions, command.clone(), metadata).await;
        match (executed, key) {
            // A concurrent write with the same key committed first.
            (Err(ExecuteError::Duplicate), Some(key)) => {
                self.applied_with(product_id, key, &command).await?.ok_or(ProductsError::Conflict)
            }
            (executed, _) => {
                executed?;
                self.get(product_id).await
            }
        }
    }

    /// When a restock or adjustment with idempotency key `key` was applied to the
    /// product: the product now if it was `command` again, [`ProductsError::KeyReused`]
    /// if it was another; `None` when the key was never used on it.
    async fn applied_with(
        &self,
        product_id: &ProductId,
        key: &str,
        command: &ProductCommand,
    ) -> Result<Option<ProductView>, ProductsError> {
        let stored: Option<(serde_json::Value,)> = sqlx::query_as(
            "SELECT payload FROM events
              WHERE aggregate_type = $1 AND aggregate_id = $2 AND event_type IN ('StockRestocked', 'StockAdjusted')
                AND metadata ? 'idempotency_key' AND metadata->>'idempotency_key' = $3",
        )
        .bind(Product::TYPE)
        .bind(product_id.as_str())
        .bind(key)
        .fetch_optional(&self.pool)
        .await
        .map_err(|e| ProductsError::Storage(Box::new(e)))?;
        let Some((payload,)) = stored else { return Ok(None) };
        let applied: ProductEvent = serde_json::from_value(payload).map_err(|e| ProductsError::Storage(Box::new(e)))?;
        let same = match (command, &applied) {
            (ProductCommand::Restock { quantity }, ProductEvent::StockRestocked { quantity: applied }) => {
                quantity == applied
            }
            (
                ProductCommand::AdjustStock { quantity, reason },
                ProductEvent::StockAdjusted { quantity: applied, reason: applied_reason },
            ) => quantity == applied && reason == applied_reason,
            _ => false,
        };
        if same { self.get(product_id).await.map(Some) } else { Err(ProductsError::KeyReused) }
    }

    /// Executes `commands` in order, all committed in one transaction; a command a rule
    /// refuses gets its error and decides nothing (the saga's batches). A product that
    /// does not exist yet still records reservation requests.
    pub async fn execute_all(
        &self,
        commands: &[Command<Product>],
    ) -> Result<Vec<Result<Committed<Product>, ProductError>>, ProductsError> {
        Ok(self.store.execute_all(commands).await?)
    }

    /// The product's aggregate state as its events fold now (cached: reads only newer
    /// events), without its orders (see [`Products::announcement`]); a default product
    /// when it has none.
    pub async fn state(&self, product_id: &str) -> Result<Product, ProductsError> {
        Ok(self.store.load(product_id).await?.0)
    }

    /// The sequence of the product event that announced the outcome of `order_id`'s
    /// last decided reservation request, if its last decision was one.
    pub async fn announcement(&self, product_id: &str, order_id: OrderId) -> Result<Option<u64>, ProductsError> {
        crate::reservations::announcement(&self.pool, product_id, order_id)
            .await
            .map_err(|e| ProductsError::Storage(Box::new(e)))
    }

    /// What each of `orders` holds, on every product holding units for it, by order
    /// then product (see [`crate::reservations::held`]).
    pub async fn held(&self, orders: &[OrderId]) -> Result<Vec<Held>, ProductsError> {
        crate::reservations::held(&self.pool, orders).await.map_err(|e| ProductsError::Storage(Box::new(e)))
    }

    /// Ships whatever each of `orders` still holds, on every product holding units for
    /// it, all in one transaction: for orders shipped without naming their products
    /// (`OrderStatusChanged` 1.0) before this service shipped such orders itself. Each
    /// product is asked `ShipStock` under the revision after the last it decided for
    /// the order; an order that holds nothing is left as it is, so running this again
    /// ships nothing more. Returns what left, by order then product.
    pub async fn ship_held(
        &self,
        orders: &[OrderId],
        metadata: &EventMetadata,
    ) -> Result<Vec<Shipment>, ProductsError> {
        let commands: Vec<Command<Product>> = self
            .held(orders)
            .await?
            .into_iter()
            .map(|held| Command {
                command: ProductCommand::ShipStock {
                    order_id: OrderId::from(held.order_id),
                    revision: u64::try_from(held.revision).unwrap_or_default() + 1,
                },
                aggregate_id: held.product_id,
                metadata: metadata.clone(),
            })
            .collect();
        if commands.is_empty() {
            return Ok(vec![]);
        }
        let mut shipments = Vec::with_capacity(commands.len());
        for (result, command) in self.execute_all(&commands).await?.into_iter().zip(&commands) {
            for event in result.map_err(ProductsError::Rejected)?.events {
                if let ProductEvent::StockShipped { order_id, quantity, .. } = event.payload {
                    let product_id = command.aggregate_id.clone();
                    shipments.push(Shipment { order_id, product_id, quantity: quantity.get() });
                }
            }
        }
        Ok(shipments)
    }

    /// How this service reads its events (with the upcasters of old event versions).
    pub fn events(&self) -> &eventstore::Events<Product> {
        self.store.events()
    }

    /// The product as it was at `as_of`, folded from its events (not read from the view).
    pub async fn as_of(&self, product_id: &ProductId, as_of: AsOf) -> Result<ProductView, ProductsError> {
        projections::view_as_of(&self.store, product_id.as_str(), as_of).await?.ok_or(ProductsError::NotFound)
    }

    /// The product as the view holds it.
    pub async fn get(&self, product_id: &ProductId) -> Result<ProductView, ProductsError> {
        self.views.get(product_id).await?.ok_or(ProductsError::NotFound)
    }

    /// A page of products, by id.
    pub async fn list(&self, limit: u32, cursor: Option<&Cursor>) -> Result<Page<ProductView>, ProductsError> {
        Ok(self.views.list(limit, cursor).await?)
    }

    /// At most `limit` events of the product from sequence `from` on, oldest first.
    pub async fn history(&self, product_id: &ProductId, from: i64, limit: i64) -> Result<HistoryPage, ProductsError> {
        self.store.history(product_id.as_str(), from, limit).await?.ok_or(ProductsError::NotFound)
    }
}
