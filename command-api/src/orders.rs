//! The application service for orders: turns one command into committed events and
//! an up-to-date view, and answers queries from the view.

use domain::OrderId;
use domain::order::{Order, OrderCommand, OrderError};
use eventstore::{AggregateError, AggregateStore, Command, CommitNotifier, Committed, EventMetadata, HistoryPage};
use projections::{AsOf, Cursor, OrderFilter, OrderView, OrderViews, Page, Projector, View};
use sqlx::PgPool;

/// Why an order operation failed.
pub type OrdersError = AggregateError<Order>;

/// Orders: commands through the event store (which keeps the view in the same
/// transaction), queries from the view.
pub struct Orders {
    store: AggregateStore<Order>,
    views: OrderViews,
}

impl Orders {
    /// Orders stored through `pool` (search path: the OMS schema). Events stored at
    /// older versions are read through the domain's upcasters, here and wherever this
    /// store's events are used: the feed catch-up and the offline rebuild.
    pub fn new(pool: PgPool) -> Self {
        let store = AggregateStore::new(pool.clone())
            .with_upcasters(domain::order::upcasters())
            .with_projection(Projector::<OrderViews>::live().remembering(AggregateStore::<Order>::CACHED_AGGREGATES))
            .with_command_names(OrderCommand::name);
        Self { store, views: OrderViews::new(pool) }
    }

    /// Rings `notifier` after every commit, so the outbox relay publishes at once.
    pub fn notifying(mut self, notifier: CommitNotifier) -> Self {
        self.store = self.store.with_commit_notifier(notifier);
        self
    }

    /// Executes `command` on order `order_id` and returns the order as it then is,
    /// read-your-writes: the view is written in the same transaction as the events.
    pub async fn execute(
        &self,
        order_id: OrderId,
        command: OrderCommand,
        metadata: &EventMetadata,
    ) -> Result<OrderView, OrdersError> {
        self.execute_if(order_id, None, command, metadata).await
    }

    /// Like [`Orders::execute`], only while the order is at one of `versions` when
    /// given (a client's `If-Match`); else [`OrdersError::Stale`], nothing stored.
    pub async fn execute_if(
        &self,
        order_id: OrderId,
        versions: Option<&[u64]>,
        command: OrderCommand,
        metadata: &EventMetadata,
    ) -> Result<OrderView, OrdersError> {
        let committed = self.store.execute_if(&order_id.to_string(), versions, command, metadata).await?;
        self.view_after(order_id, &committed).await
    }

    /// Places an order under an id that is most likely new (generated, or derived from
    /// an `Idempotency-Key`): no read first. When the id has events after all (a retry
    /// of a keyed request), the append conflicts and the command is decided on the
    /// order as stored: the same order again, or a refusal of other content.
    pub async fn place_new(
        &self,
        order_id: OrderId,
        command: OrderCommand,
        metadata: &EventMetadata,
    ) -> Result<OrderView, OrdersError> {
        let committed = self.store.execute_new(&order_id.to_string(), command, metadata).await?;
        self.view_after(order_id, &committed).await
    }

    /// The view a commit left: folded from its events when they are the order's whole
    /// history (exactly what the projection stored), else read back.
    async fn view_after(&self, order_id: OrderId, committed: &Committed<Order>) -> Result<OrderView, OrdersError> {
        if committed.events.first().is_some_and(|first| first.sequence == 1)
            && let Some(view) = OrderView::fold(&committed.events)?
        {
            return Ok(view);
        }
        self.get(order_id).await
    }

    /// Executes `commands` in order, all committed in one transaction; a command a rule
    /// refuses gets its error and decides nothing (the outcome consumer's batches).
    pub async fn execute_all(
        &self,
        commands: &[Command<Order>],
    ) -> Result<Vec<Result<Committed<Order>, OrderError>>, OrdersError> {
        Ok(self.store.execute_all(commands).await?)
    }

    /// The order's aggregate state as its events fold now (cached: reads only newer
    /// events); a default order when it has none.
    pub async fn state(&self, order_id: OrderId) -> Result<Order, OrdersError> {
        Ok(self.store.load(&order_id.to_string()).await?.0)
    }

    /// How this service reads its events (with the upcasters of old event versions).
    pub fn events(&self) -> &eventstore::Events<Order> {
        self.store.events()
    }

    /// The order as it was at `as_of`, folded from its events (not read from the view).
    pub async fn as_of(&self, order_id: OrderId, as_of: AsOf) -> Result<OrderView, OrdersError> {
        projections::view_as_of(&self.store, &order_id.to_string(), as_of).await?.ok_or(OrdersError::NotFound)
    }

    /// The order as the view holds it.
    pub async fn get(&self, order_id: OrderId) -> Result<OrderView, OrdersError> {
        self.views.get(order_id).await?.ok_or(OrdersError::NotFound)
    }

    /// A page of orders, newest first.
    pub async fn list(
        &self,
        filter: &OrderFilter,
        limit: u32,
        cursor: Option<&Cursor>,
    ) -> Result<Page<OrderView>, OrdersError> {
        Ok(self.views.list(filter, limit, cursor).await?)
    }

    /// At most `limit` events of the order from sequence `from` on, oldest first.
    pub async fn history(&self, order_id: OrderId, from: i64, limit: i64) -> Result<HistoryPage, OrdersError> {
        self.store.history(&order_id.to_string(), from, limit).await?.ok_or(OrdersError::NotFound)
    }
}
