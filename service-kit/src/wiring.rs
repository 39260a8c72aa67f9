//! Start-up and shutdown, as both services do them: connect and migrate the database,
//! bind the port (readiness covering the database, the pipeline and the broker); then
//! serve HTTP while the service's pipeline (the outbox relay, its consumer, the view
//! follower and whatever else it runs) is supervised beside it, and stop it all
//! within the shutdown grace.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::Router;
use eventstore::{CommitNotifier, Events};
use http_server::{Pipeline, Readiness, Supervisor};
use messaging::{KafkaSettings, MessageHandler, Parking, Relay, ReplaceableProducer, Route, Topics, run_consumer};
use projections::{Projector, View, ViewTable};
use sqlx::PgPool;
use sqlx::migrate::Migrator;
use tokio::net::TcpListener;
use utoipa_axum::router::OpenApiRouter;

use crate::cli::ServiceSettings;

/// The name of the outbox relay's checkpoint in the feed.
pub const RELAY_NAME: &str = "kafka-relay";

/// The name of the view follower's checkpoint in the feed.
pub const VIEW_FEED: &str = "view-catch-up";

/// A service's database, connected and migrated; what it builds its own parts on.
pub struct Foundation {
    /// The service's schema.
    pub pool: PgPool,
    /// Wakes the relay when a commit is made (in this process or another).
    pub notifier: CommitNotifier,
    settings: ServiceSettings,
    migrations: &'static Migrator,
}

impl Foundation {
    /// Connects to the database and applies `migrations` to the service's schema.
    pub async fn connect(settings: &ServiceSettings, migrations: &'static Migrator) -> anyhow::Result<Self> {
        let pool = migrations::connect_and_migrate_with(
            settings.database.url.expose(),
            &settings.database_schema,
            settings.database.max_connections,
            &settings.database_sessions.sessions(),
            migrations,
        )
        .await?;
        let notifier = CommitNotifier::new(pool.clone(), &settings.database_schema);
        Ok(Self { pool, notifier, settings: settings.clone(), migrations })
    }

    /// Binds the listener, so that the port is known (and taken) before serving
    /// starts, and puts `routes` behind the common layers and health routes. The
    /// broker need not be up.
    pub async fn bind(self, routes: OpenApiRouter) -> anyhow::Result<Service> {
        let Self { pool, notifier, settings, migrations } = self;
        let broker = Arc::new(messaging::BrokerProbe::new(&settings.kafka)?);
        let pipeline = Pipeline::new();
        let relay_feed = eventstore::Feed::new(pool.clone(), RELAY_NAME);
        let readiness = Readiness::new()
            .database(pool.clone(), migrations)
            .pipeline(pipeline.clone(), settings.lifecycle.pipeline_stall_after(), move || {
                let feed = relay_feed.clone();
                async move { feed.oldest_unhandled_age().await.map_err(|e| e.to_string()) }
            })
            .check("broker", move || {
                let broker = broker.clone();
                async move { broker.check().await }
            });
        let router = http_server::with_common_layers(routes, readiness, &settings.http);
        let address = format!("{}:{}", settings.host, settings.port);
        let listener = TcpListener::bind(&address).await.with_context(|| format!("binding {address}"))?;
        tokio::spawn(report_pool(pool.clone(), settings.database_schema.clone()));
        let tasks = Supervisor::new(&pipeline);
        let producer = Arc::new(ReplaceableProducer::new(settings.kafka.producer_config(), "service")?);
        Ok(Service { listener, router, pool, notifier, settings, pipeline, tasks, producer })
    }
}

/// How often the pool's gauges are sampled.
const POOL_SAMPLE_INTERVAL: Duration = Duration::from_secs(1);

/// Reports the connections of `pool` (the service's, in `schema`) every
/// [`POOL_SAMPLE_INTERVAL`] until it is closed: all of them in use is where requests
/// start waiting for one.
async fn report_pool(pool: PgPool, schema: String) {
    let max = pool.options().get_max_connections();
    let mut ticks = tokio::time::interval(POOL_SAMPLE_INTERVAL);
    while !pool.is_closed() {
        ticks.tick().await;
        let idle = u32::try_from(pool.num_idle()).unwrap_or(u32::MAX);
        telemetry::pipeline::record_pool(&schema, pool.size().saturating_sub(idle), idle, max);
    }
}

/// A service bound to its port: add its pipeline's tasks, then [`Service::serve`].
pub struct Service {
    listener: TcpListener,
    router: Router,
    pool: PgPool,
    notifier: CommitNotifier,
    settings: ServiceSettings,
    pipeline: Pipeline,
    tasks: Supervisor,
    /// The one Kafka producer of the service, shared by its relay, its consumer's
    /// dead letters and whatever else it publishes: each producer is a client with
    /// threads and broker connections of its own, and librdkafka's polling thread of
    /// each spends about 1% of a core idle (rust-rdkafka ends every 100 ms poll in a
    /// busy wait shorter than a millisecond).
    producer: Arc<ReplaceableProducer>,
}

impl Service {
    /// The port actually bound.
    pub fn port(&self) -> u16 {
        self.listener.local_addr().map(|a| a.port()).unwrap_or_default()
    }

    /// The service's schema.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// The Kafka settings.
    pub fn kafka(&self) -> &KafkaSettings {
        &self.settings.kafka
    }

    /// The service's Kafka producer, for whatever else it publishes.
    pub fn producer(&self) -> Arc<ReplaceableProducer> {
        self.producer.clone()
    }

    /// Runs the outbox relay: every committed event, in commit order, through the
    /// route `route` makes, woken by each commit.
    pub fn relay<R: Route>(&mut self, route: impl Fn(&KafkaSettings) -> R + Send + 'static) {
        let (pool, kafka, notifier) = (self.pool.clone(), self.settings.kafka.clone(), self.notifier.clone());
        let producer = self.producer.clone();
        let stuck: messaging::StuckReport = Arc::new(self.pipeline.stuck_reporter("relay"));
        self.tasks.spawn("relay", move |stop| {
            let relay = Relay::new(pool.clone(), RELAY_NAME, producer.clone(), &kafka, route(&kafka));
            let (notifier, stuck) = (notifier.clone(), stuck.clone());
            async move {
                relay.woken_by(notifier).reporting_stuck_to(stuck).run(stop).await;
                Ok(())
            }
        });
    }

    /// Runs the service's consumer, named `name` (in readiness answers and on
    /// `pipeline_stalled{task}`), in the service's consumer group on the topic
    /// `topic` picks, handing its messages to `handler`.
    pub fn consumer<H: MessageHandler>(&mut self, name: &'static str, topic: fn(&Topics) -> &str, handler: Arc<H>) {
        let stuck: messaging::StuckReport = Arc::new(self.pipeline.stuck_reporter(name));
        let parking = Parking { pool: self.pool.clone(), producer: self.producer.clone() };
        let (kafka, group) = (self.settings.kafka.clone(), self.settings.consumer_group.clone());
        self.tasks.spawn(name, move |stop| {
            let (kafka, parking, group, handler, stuck) =
                (kafka.clone(), parking.clone(), group.clone(), handler.clone(), stuck.clone());
            async move { run_consumer(&kafka, parking, &group, &[topic(&kafka.topics)], handler, stuck, stop).await }
        });
    }

    /// Keeps the read model `T` up to date from the feed: whatever was committed
    /// without it (by another tool, or while it was being rebuilt) is caught up here.
    pub fn view_follower<T: ViewTable>(&mut self, events: Events<<T::View as View>::Aggregate>) {
        let pool = self.pool.clone();
        self.tasks.spawn("view follower", move |stop| {
            let (pool, events) = (pool.clone(), events.clone());
            async move {
                projections::catch_up::follow_feed(pool, VIEW_FEED, events, Projector::<T>::live(), stop).await;
                Ok(())
            }
        });
    }

    /// Runs one more task of the service's under supervision (see [`Supervisor::spawn`]).
    pub fn task<F, Fut>(&mut self, name: &'static str, make: F)
    where
        F: FnMut(tokio_util::sync::CancellationToken) -> Fut + Send + 'static,
        Fut: Future<Output = anyhow::Result<()>> + Send + 'static,
    {
        self.tasks.spawn(name, make);
    }

    /// Serves until `shutdown` completes while the tasks run supervised beside it
    /// (restarted when one ends or panics); then, within the shutdown grace, stops
    /// accepting, finishes requests in flight and stops the tasks (a consumer commits
    /// what it processed, the relay flushes).
    pub async fn serve(self, title: &str, shutdown: impl Future<Output = ()> + Send + 'static) -> anyhow::Result<()> {
        tracing::info!(port = self.port(), "{title} listening");
        let grace: Duration = self.settings.lifecycle.shutdown_grace();
        let limits = self.settings.http.connection_limits();
        http_server::serve_supervised(self.listener, self.router, limits, shutdown, self.tasks, grace)
            .await
            .context("serving HTTP")
    }
}
