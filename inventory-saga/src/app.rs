//! Wiring: connect and migrate the database, build the router, bind; then serve HTTP
//! while the outbox relay and the reservation saga run beside it.

use std::sync::Arc;

use anyhow::Context;
use axum::Router;
use eventstore::CommitNotifier;
use http_server::{Pipeline, Supervisor};
use messaging::{KafkaSettings, Relay, run_consumer};
use sqlx::PgPool;
use tokio::net::TcpListener;

use crate::Settings;
use crate::products::Products;
use crate::publishing::ProductEventsRoute;
use crate::saga::ReservationSaga;

/// The name of the relay's checkpoint in the feed.
pub const RELAY_NAME: &str = "kafka-relay";

/// The consumer's task name: in readiness answers and on `pipeline_stalled{task}`.
const SAGA_CONSUMER: &str = "saga consumer";

/// The inventory service, bound to its port and ready to serve.
pub struct Application {
    listener: TcpListener,
    router: Router,
    pool: PgPool,
    notifier: CommitNotifier,
    products: Arc<Products>,
    kafka: KafkaSettings,
    consumer_group: String,
    pipeline: Pipeline,
    shutdown_grace: std::time::Duration,
}

impl Application {
    /// Connects to the database (applying migrations) and binds the listener, so the
    /// port is known (and taken) before serving starts. The broker need not be up.
    pub async fn build(settings: &Settings) -> anyhow::Result<Self> {
        let pool = migrations::connect_and_migrate_with(
            settings.database.url.expose(),
            &settings.database_schema,
            settings.database.max_connections,
            &settings.database_sessions.sessions(),
            &migrations::INVENTORY,
        )
        .await?;
        let notifier = CommitNotifier::new(pool.clone(), &settings.database_schema);
        let products = Arc::new(Products::new(pool.clone()).notifying(notifier.clone()));
        let broker = Arc::new(messaging::BrokerProbe::new(&settings.kafka)?);
        let pipeline = Pipeline::new();
        let relay_feed = eventstore::Feed::new(pool.clone(), RELAY_NAME);
        let readiness = http_server::Readiness::new()
            .database(pool.clone(), &migrations::INVENTORY)
            .pipeline(pipeline.clone(), settings.lifecycle.pipeline_stall_after(), move || {
                let feed = relay_feed.clone();
                async move { feed.oldest_unhandled_age().await.map_err(|e| e.to_string()) }
            })
            .check("broker", move || {
                let broker = broker.clone();
                async move { broker.check().await }
            });
        let router = http_server::with_common_layers(crate::http::routes(products.clone()), readiness, &settings.http);
        let address = format!("{}:{}", settings.host, settings.port);
        let listener = TcpListener::bind(&address).await.with_context(|| format!("binding {address}"))?;
        Ok(Self {
            listener,
            router,
            pool,
            notifier,
            products,
            kafka: settings.kafka.clone(),
            consumer_group: settings.consumer_group.clone(),
            pipeline,
            shutdown_grace: settings.lifecycle.shutdown_grace(),
        })
    }

    /// The port actually bound.
    pub fn port(&self) -> u16 {
        self.listener.local_addr().map(|a| a.port()).unwrap_or_default()
    }

    /// Serves until `shutdown` completes while the relay, the saga's consumer and the
    /// view follower run supervised beside it (restarted when one ends or panics);
    /// then, within the shutdown grace, stops accepting, finishes requests in flight,
    /// and stops the saga (committing what it processed), the relay (flushing) and the
    /// follower.
    pub async fn run_until(self, shutdown: impl Future<Output = ()> + Send + 'static) -> anyhow::Result<()> {
        let mut tasks = Supervisor::new(&self.pipeline);
        tasks.spawn("relay", {
            let (pool, kafka, notifier) = (self.pool.clone(), self.kafka.clone(), self.notifier.clone());
            move |stop| {
                let route = ProductEventsRoute {
                    outcomes_topic: kafka.topics.order_outcomes.clone(),
                    alerts_topic: kafka.topics.stock_alerts.clone(),
                };
                let relay = Relay::new(pool.clone(), RELAY_NAME, &kafka, route);
                let notifier = notifier.clone();
                async move {
                    relay?.woken_by(notifier).run(stop).await;
                    Ok(())
                }
            }
        });
        tasks.spawn(SAGA_CONSUMER, {
            let stuck: messaging::StuckReport = Arc::new(self.pipeline.stuck_reporter(SAGA_CONSUMER));
            let (kafka, pool, group, handler) = (
                self.kafka.clone(),
                self.pool.clone(),
                self.consumer_group.clone(),
                Arc::new(ReservationSaga::new(self.products.clone()).reannouncing(
                    crate::reannounce::Reannouncer::new(self.pool.clone(), self.products.clone(), &self.kafka)?,
                )),
            );
            move |stop| {
                let (kafka, pool, group, handler) = (kafka.clone(), pool.clone(), group.clone(), handler.clone());
                let stuck = stuck.clone();
                async move { run_consumer(&kafka, pool, &group, &[&kafka.topics.order_events], handler, stuck, stop).await }
            }
        });
        tasks.spawn("view follower", {
            let (pool, products) = (self.pool.clone(), self.products.clone());
            move |stop| {
                let (pool, products) = (pool.clone(), products.clone());
                async move {
                    products.follow_feed(pool, stop).await;
                    Ok(())
                }
            }
        });
        tracing::info!(port = self.port(), "inventory service listening");
        http_server::serve_supervised(self.listener, self.router, shutdown, tasks, self.shutdown_grace)
            .await
            .context("serving HTTP")
    }
}
