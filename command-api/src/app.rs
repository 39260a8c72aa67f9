//! Wiring: connect and migrate the database, build the router, bind; then serve HTTP
//! while the outbox relay and the outcome consumer run beside it.

use std::sync::Arc;

use anyhow::Context;
use axum::Router;
use eventstore::CommitNotifier;
use messaging::{KafkaSettings, Relay, spawn_consumer};
use sqlx::PgPool;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::Settings;
use crate::orders::Orders;
use crate::outcomes::OutcomeHandler;
use crate::publishing::OrderEventsRoute;

/// The name of the relay's checkpoint in the feed.
pub const RELAY_NAME: &str = "kafka-relay";

/// The OMS, bound to its port and ready to serve.
pub struct Application {
    listener: TcpListener,
    router: Router,
    pool: PgPool,
    notifier: CommitNotifier,
    orders: Arc<Orders>,
    kafka: KafkaSettings,
    consumer_group: String,
}

impl Application {
    /// Connects to the database (applying migrations) and binds the listener, so the
    /// port is known (and taken) before serving starts. The broker need not be up.
    pub async fn build(settings: &Settings) -> anyhow::Result<Self> {
        let pool = migrations::connect_and_migrate(
            settings.database.url.expose(),
            &settings.database_schema,
            settings.database.max_connections,
            &migrations::OMS,
        )
        .await?;
        let notifier = CommitNotifier::new(pool.clone(), &settings.database_schema);
        let orders = Arc::new(Orders::new(pool.clone()).notifying(notifier.clone()));
        let broker = Arc::new(messaging::BrokerProbe::new(&settings.kafka)?);
        let readiness = http_server::Readiness::new()
            .database(pool.clone(), &migrations::OMS)
            .check("broker", move || {
                let broker = broker.clone();
                async move { broker.check().await }
            });
        let router = http_server::with_common_layers(crate::http::routes(orders.clone()), readiness, &settings.http);
        let address = format!("{}:{}", settings.host, settings.port);
        let listener = TcpListener::bind(&address).await.with_context(|| format!("binding {address}"))?;
        Ok(Self { listener, router, pool, notifier, orders, kafka: settings.kafka.clone(), consumer_group: settings.consumer_group.clone() })
    }

    /// The port actually bound.
    pub fn port(&self) -> u16 {
        self.listener.local_addr().map(|a| a.port()).unwrap_or_default()
    }

    /// Serves until `shutdown` completes: stops accepting, finishes requests in flight,
    /// then stops the consumer (committing what it processed) and the relay (flushing).
    pub async fn run_until(self, shutdown: impl Future<Output = ()> + Send + 'static) -> anyhow::Result<()> {
        let background = CancellationToken::new();
        let relay = tokio::spawn(Relay::new(self.pool.clone(), RELAY_NAME, &self.kafka, OrderEventsRoute { topic: self.kafka.topics.order_events.clone() })?.woken_by(self.notifier.clone()).run(background.clone()));
        let consumer = spawn_consumer(
            self.kafka.clone(),
            self.consumer_group.clone(),
            self.kafka.topics.order_outcomes.clone(),
            Arc::new(OutcomeHandler::new(self.orders.clone())),
            background.clone(),
        );
        let views = tokio::spawn({
            let (token, pool, orders) = (background.clone(), self.pool.clone(), self.orders.clone());
            async move { orders.follow_feed(pool, token).await }
        });
        tracing::info!(port = self.port(), "order management service listening");
        let served = http_server::serve(self.listener, self.router, shutdown).await;
        background.cancel();
        let _ = tokio::join!(relay, consumer, views);
        served.context("serving HTTP")
    }
}
