//! `inventory`: the inventory service.

use clap::Parser;
use inventory_saga::{Application, Cli, Command, operations};

// Events are JSON: decoding and folding them allocates a lot, and mimalloc is much
// faster at that than the system allocator (see docs/benchmarks.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> anyhow::Result<std::process::ExitCode> {
    let cli = Cli::parse();
    match cli.command.unwrap_or(Command::Serve(cli.serve)) {
        Command::Serve(mut settings) => {
            settings.kafka = settings.kafka.with_env_properties(std::env::vars());
            let telemetry = telemetry::init(&settings.telemetry, "inventory")?;
            tracing::info!(?settings, "starting the inventory service");
            let app = Application::build(&settings).await?;
            app.run_until(http_server::shutdown_signal_within(settings.lifecycle.shutdown_grace())).await?;
            drop(telemetry);
            // Exit now rather than wait, while the runtime drops them, for tasks given
            // up at the end of the grace (a Kafka client closing towards a broker
            // that is down can block for minutes).
            std::process::exit(0)
        }
        operation => operations::run(operation).await,
    }
}
