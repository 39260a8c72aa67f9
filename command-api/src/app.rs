//! Wiring: connect and migrate the database, build the router, bind; then serve HTTP
//! while the outbox relay and the outcome consumer run beside it.

use std::sync::Arc;

use anyhow::Context;
use axum::Router;
use messaging::topics::ensure_topics_patiently;
use messaging::{KafkaSettings, Relay, run_consumer};
use rdkafka::producer::FutureProducer;
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
        let orders = Arc::new(Orders::new(pool.clone()));
        let router = http_server::with_common_layers(crate::http::routes(orders.clone()), pool.clone(), &settings.http);
        let address = format!("{}:{}", settings.host, settings.port);
        let listener = TcpListener::bind(&address).await.with_context(|| format!("binding {address}"))?;
        Ok(Self { listener, router, pool, orders, kafka: settings.kafka.clone(), consumer_group: settings.consumer_group.clone() })
    }

    /// The port actually bound.
    pub fn port(&self) -> u16 {
        self.listener.local_addr().map(|a| a.port()).unwrap_or_default()
    }

    /// Serves until `shutdown` completes: stops accepting, finishes requests in flight,
    /// then stops the consumer (committing what it processed) and the relay (flushing).
    pub async fn run_until(self, shutdown: impl Future<Output = ()> + Send + 'static) -> anyhow::Result<()> {
        let background = CancellationToken::new();
        let producer: FutureProducer = self.kafka.producer_config().create().context("creating the Kafka producer")?;
        let topics = self.kafka.topics.clone();
        let relay = tokio::spawn({
            let (kafka, token, pool) = (self.kafka.clone(), background.clone(), self.pool.clone());
            async move {
                if ensure_topics_patiently(&kafka, &[&topics.order_events], &token).await {
                    Relay::new(pool, RELAY_NAME, producer, OrderEventsRoute { topic: topics.order_events.clone() }).run(token).await;
                }
            }
        });
        let consumer = tokio::spawn({
            let (kafka, token, group) = (self.kafka.clone(), background.clone(), self.consumer_group.clone());
            let handler = Arc::new(OutcomeHandler::new(self.orders.clone()));
            async move {
                let outcomes = kafka.topics.order_outcomes.clone();
                if ensure_topics_patiently(&kafka, &[&outcomes], &token).await {
                    if let Err(error) = run_consumer(&kafka, &group, &[&outcomes], handler, token).await {
                        tracing::error!(error = format!("{error:#}"), "outcome consumer failed");
                    }
                }
            }
        });
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
