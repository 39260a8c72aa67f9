//! Both services in this process, against one fresh database and the real broker.

use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use service_kit::ServeSettings as _;
use sqlx::PgPool;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::Api;

/// A running pair of services, whichever way it was started: what the invariant
/// checks need.
pub trait Deployment {
    /// Clients of both APIs, the OMS schema and the inventory schema.
    fn parts(&self) -> (&Api, &PgPool, &PgPool);

    /// Clients of both APIs.
    fn api(&self) -> &Api {
        self.parts().0
    }

    /// The OMS schema.
    fn oms_pool(&self) -> &PgPool {
        self.parts().1
    }

    /// The inventory schema.
    fn inventory_pool(&self) -> &PgPool {
        self.parts().2
    }
}

/// Any clients and pools: e.g. the instances still running after others were killed.
impl Deployment for (Api, PgPool, PgPool) {
    fn parts(&self) -> (&Api, &PgPool, &PgPool) {
        (&self.0, &self.1, &self.2)
    }
}

/// One of the two services.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Service {
    /// The order management service (`oms`).
    Oms,
    /// The inventory service (`inventory`).
    Inventory,
}

/// How to start a system.
#[derive(Debug, Clone)]
pub struct SystemOptions {
    /// Partitions of the topics.
    pub partitions: i32,
    /// Bootstrap brokers; the suite's broker ([`brokers`]) when none.
    pub brokers: Option<String>,
    /// Flags of the OMS's own, e.g. `--payment-timeout-ms=500`.
    pub oms_flags: Vec<String>,
}

impl Default for SystemOptions {
    fn default() -> Self {
        Self { partitions: 3, brokers: None, oms_flags: vec![] }
    }
}

/// A running OMS and inventory service.
pub struct System {
    /// Clients of both APIs.
    pub api: Api,
    /// The database URL both use.
    pub database_url: String,
    /// Flags both services were started with (database, Kafka, topics, groups).
    pub shared_flags: Vec<String>,
    /// Flags only the OMS instances were started with.
    pub oms_flags: Vec<String>,
    /// The OMS schema.
    pub oms_pool: PgPool,
    /// The inventory schema.
    pub inventory_pool: PgPool,
    /// The run id in this system's topic and group names.
    pub run: String,
    /// The services' Kafka settings (topic names included, `KAFKA_PRODUCER_*` applied).
    pub kafka: messaging::KafkaSettings,
    /// Consumer group of the first OMS instance.
    pub oms_group: String,
    /// Consumer group of the first inventory instance.
    pub inventory_group: String,
    stop: CancellationToken,
    services: Vec<JoinHandle<()>>,
}

/// The broker tests use: `KAFKA_BROKERS`, else the development broker's address.
pub fn brokers() -> String {
    std::env::var("KAFKA_BROKERS").unwrap_or_else(|_| "127.0.0.1:9092".to_owned())
}

impl System {
    /// Starts both services with topics and consumer groups unique to this system.
    pub async fn start(options: SystemOptions) -> anyhow::Result<Self> {
        if std::env::var_os("TEST_LOG").is_some() {
            http_server::init_logging("info,sqlx=warn", http_server::LogFormat::Text);
        }
        let database_url = migrations::testing::create_database().await?;
        let run = uuid::Uuid::new_v4().simple().to_string()[..10].to_owned();
        let shared_flags: Vec<String> = vec![
            format!("--database-url={database_url}"),
            format!("--kafka-brokers={}", options.brokers.unwrap_or_else(brokers)),
            format!("--kafka-partitions={}", options.partitions),
            format!("--topic-order-events=t{run}.oms.order-events"),
            format!("--topic-order-outcomes=t{run}.inventory.order-outcomes"),
            format!("--topic-stock-alerts=t{run}.inventory.stock-alerts"),
            "--host=127.0.0.1".to_owned(),
            "--port=0".to_owned(),
        ];
        let stop = CancellationToken::new();
        let oms_group = format!("oms-g{run}");
        let inventory_group = format!("inventory-g{run}");
        let oms_flags = options.oms_flags;
        let (oms_port, oms) = spawn_service(Service::Oms, &shared_flags, &oms_flags, &oms_group, stop.clone()).await?;
        let (inventory_port, inventory) =
            spawn_service(Service::Inventory, &shared_flags, &oms_flags, &inventory_group, stop.clone()).await?;
        let api = Api::new(format!("http://127.0.0.1:{oms_port}"), format!("http://127.0.0.1:{inventory_port}"));
        let services = vec![oms, inventory];
        let kafka = crate::broker::kafka_settings(&shared_flags)?;
        let (oms_pool, inventory_pool) = schema_pools(&database_url).await?;
        Ok(Self {
            api,
            database_url,
            shared_flags,
            oms_flags,
            oms_pool,
            inventory_pool,
            run,
            kafka,
            oms_group,
            inventory_group,
            stop,
            services,
        })
    }

    /// Starts one more instance of `service` in this process, on the same database and
    /// topics, consuming as consumer group `group`; returns its base URL. A new group
    /// reads its topic from the beginning. Stopped with the system.
    pub async fn start_instance(&mut self, service: Service, group: &str) -> anyhow::Result<String> {
        let (port, handle) =
            spawn_service(service, &self.shared_flags, &self.oms_flags, group, self.stop.clone()).await?;
        self.services.push(handle);
        Ok(format!("http://127.0.0.1:{port}"))
    }

    /// Stops every service instance gracefully.
    pub async fn stop(self) {
        self.stop.cancel();
        for service in self.services {
            let _ = tokio::time::timeout(Duration::from_secs(20), service).await;
        }
    }
}

impl Deployment for System {
    fn parts(&self) -> (&Api, &PgPool, &PgPool) {
        (&self.api, &self.oms_pool, &self.inventory_pool)
    }
}

/// Pools of the test's own on the OMS and the inventory schema of `database_url`
/// (migrated, as the services migrate them).
pub async fn schema_pools(database_url: &str) -> anyhow::Result<(PgPool, PgPool)> {
    let oms = migrations::connect_and_migrate(database_url, "oms", 4, &migrations::OMS).await?;
    let inventory = migrations::connect_and_migrate(database_url, "inventory", 4, &migrations::INVENTORY).await?;
    Ok((oms, inventory))
}

/// Builds `service` from `shared` flags (and, for the OMS, `oms_flags` after them) with
/// consumer group `group` and serves it until `stop`; returns its port.
async fn spawn_service(
    service: Service,
    shared: &[String],
    oms_flags: &[String],
    group: &str,
    stop: CancellationToken,
) -> anyhow::Result<(u16, JoinHandle<()>)> {
    match service {
        Service::Oms => {
            let flags = [shared, oms_flags].concat();
            start_app::<command_api::Application, command_api::Oms>(&flags, group, stop).await
        }
        Service::Inventory => {
            start_app::<inventory_saga::Application, inventory_saga::Inventory>(shared, group, stop).await
        }
    }
}

/// Starts application `A` (named `I`) with `flags` in consumer group `group`, until
/// `stop`.
async fn start_app<A, I>(
    flags: &[String],
    group: &str,
    stop: CancellationToken,
) -> anyhow::Result<(u16, JoinHandle<()>)>
where
    A: service_kit::Application,
    I: service_kit::Named,
{
    let binary = I::IDENTITY.binary;
    let cli = service_kit::Cli::<A::Settings, I>::try_parse_from(
        std::iter::once(binary.to_owned()).chain(flags.iter().cloned()),
    )?;
    let mut settings = cli.serve;
    let service = settings.service();
    service.consumer_group = group.to_owned();
    service.kafka = service.kafka.clone().with_env_properties(std::env::vars());
    let app = A::build(&settings).await.with_context(|| format!("starting {}", I::IDENTITY.title))?;
    let port = app.port();
    Ok((
        port,
        tokio::spawn(async move {
            let _ = app.run_until(async move { stop.cancelled().await }).await;
        }),
    ))
}
