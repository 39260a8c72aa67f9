//! Both services in this process, against one fresh database and the real broker.

use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use sqlx::PgPool;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::Api;

/// How to start a system.
#[derive(Debug, Clone)]
pub struct SystemOptions {
    /// Partitions of the topics.
    pub partitions: i32,
}

impl Default for SystemOptions {
    fn default() -> Self {
        Self { partitions: 3 }
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
    /// The OMS schema.
    pub oms_pool: PgPool,
    /// The inventory schema.
    pub inventory_pool: PgPool,
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
            format!("--kafka-brokers={}", brokers()),
            format!("--kafka-partitions={}", options.partitions),
            format!("--topic-order-events=t{run}.oms.order-events"),
            format!("--topic-order-outcomes=t{run}.inventory.order-outcomes"),
            format!("--topic-stock-alerts=t{run}.inventory.stock-alerts"),
            "--host=127.0.0.1".to_owned(),
            "--port=0".to_owned(),
        ];
        let stop = CancellationToken::new();

        let oms_cli = command_api::Cli::try_parse_from(std::iter::once("oms".to_owned()).chain(shared_flags.iter().cloned()))?;
        let mut oms_settings = oms_cli.serve;
        oms_settings.consumer_group = format!("oms-g{run}");
        oms_settings.kafka = oms_settings.kafka.with_env_properties(std::env::vars());
        let oms = command_api::Application::build(&oms_settings).await.context("starting the OMS")?;

        let inventory_cli = inventory_saga::Cli::try_parse_from(std::iter::once("inventory".to_owned()).chain(shared_flags.iter().cloned()))?;
        let mut inventory_settings = inventory_cli.serve;
        inventory_settings.consumer_group = format!("inventory-g{run}");
        inventory_settings.kafka = inventory_settings.kafka.with_env_properties(std::env::vars());
        let inventory = inventory_saga::Application::build(&inventory_settings).await.context("starting the inventory service")?;

        let api = Api::new(format!("http://127.0.0.1:{}", oms.port()), format!("http://127.0.0.1:{}", inventory.port()));
        let services = vec![
            tokio::spawn({
                let stop = stop.clone();
                async move {
                    let _ = oms.run_until(async move { stop.cancelled().await }).await;
                }
            }),
            tokio::spawn({
                let stop = stop.clone();
                async move {
                    let _ = inventory.run_until(async move { stop.cancelled().await }).await;
                }
            }),
        ];
        let oms_pool = migrations::connect_and_migrate(&database_url, "oms", 4, &migrations::OMS).await?;
        let inventory_pool = migrations::connect_and_migrate(&database_url, "inventory", 4, &migrations::INVENTORY).await?;
        Ok(Self { api, database_url, shared_flags, oms_pool, inventory_pool, stop, services })
    }

    /// Stops both services gracefully.
    pub async fn stop(self) {
        self.stop.cancel();
        for service in self.services {
            let _ = tokio::time::timeout(Duration::from_secs(20), service).await;
        }
    }
}
