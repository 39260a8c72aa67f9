//! What the two services do alike, written once: their command line and settings,
//! start-up and shutdown, and the operator commands. Each service keeps only what is
//! its own: its routes and DTOs, its domain wiring, its consumers, and an
//! [`Identity`] (names, environment prefix, defaults).
//!
//! # Layout
//! - [`cli`]: the command line: `serve` with the settings every service has
//!   ([`ServiceSettings`]), and the operator commands, given a service's
//!   [`Identity`].
//! - [`wiring`]: connect and migrate, bind with readiness, run the relay, the
//!   consumer and the view follower supervised beside HTTP, shut down in the grace.
//! - [`operations`]: `history`, `export`, `rebuild`, `dlq` over the service's schema,
//!   and the service's [`OwnCommands`].
//! - [`main`] (or [`main_with`] for a service with commands of its own): a binary's
//!   whole `main`, given its [`Application`].
//! - `testing` (feature `test-support`): a service under test on its own database
//!   and port, and the requests and envelope checks of the API suites.
//!
//! Sits above `http-server`, `messaging`, `eventstore`, `projections`, `admin` and `allocator`;
//! must not depend on either service crate.

pub mod cli;
pub mod operations;
#[cfg(feature = "test-support")]
pub mod testing;
pub mod wiring;

use std::fmt::Debug;
use std::process::ExitCode;

use clap::Parser;

pub use cli::{Cli, Command, Identity, Named, NoCommands, OwnCommands, ServiceSettings, StoreSettings};
pub use operations::Operated;
pub use wiring::{Foundation, Service};

/// A service's `serve` settings: its own, with the shared ones inside.
pub trait ServeSettings: clap::Args + Debug + Send + 'static {
    /// The settings every service has (to read or to change).
    fn service(&mut self) -> &mut ServiceSettings;
}

/// The shared settings alone, for a service with none of its own.
impl ServeSettings for ServiceSettings {
    fn service(&mut self) -> &mut ServiceSettings {
        self
    }
}

/// A service as a program: built from its settings (database connected, port bound),
/// then run until a shutdown signal.
pub trait Application: Sized + Send + 'static {
    /// Its `serve` settings.
    type Settings: ServeSettings + Clone;

    /// Connects to the database (applying migrations) and binds the listener, so the
    /// port is known (and taken) before serving starts. The broker need not be up.
    fn build(settings: &Self::Settings) -> impl Future<Output = anyhow::Result<Self>>;

    /// The port actually bound.
    fn port(&self) -> u16;

    /// Serves until `shutdown` completes, the service's pipeline supervised beside
    /// HTTP; then stops within the shutdown grace (see [`Service::serve`]).
    fn run_until(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> impl Future<Output = anyhow::Result<()>> + Send;
}

/// A binary's `main`: parses the command line of service `I`; `serve` starts telemetry
/// and runs application `A` until a shutdown signal (and its grace) ends it, then
/// exits; any other command is an operator command. `serve` has freed memory returned
/// to the kernel at once, before it allocates much (see
/// [`allocator::return_freed_memory_at_once`]), so the runtime starts here.
pub fn main<A: Application, I: Named + Operated>() -> anyhow::Result<ExitCode> {
    main_with::<A, I, NoCommands>()
}

/// [`main`] for a service with operator commands of its own, `X`.
pub fn main_with<A: Application, I: Named + Operated, X: OwnCommands>() -> anyhow::Result<ExitCode> {
    let command = Cli::<A::Settings, I, X>::parse().into_command();
    let memory_returned = matches!(command, Command::Serve(_)).then(allocator::return_freed_memory_at_once);
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(run::<A, I, X>(command, memory_returned))
}

async fn run<A: Application, I: Named + Operated, X: OwnCommands>(
    command: Command<A::Settings, X>,
    memory_returned: Option<std::io::Result<()>>,
) -> anyhow::Result<ExitCode> {
    let identity = I::IDENTITY;
    match command {
        Command::Serve(mut settings) => {
            let shared = settings.service();
            shared.kafka = shared.kafka.clone().with_env_properties(std::env::vars());
            let telemetry = telemetry::init(&settings.service().telemetry, identity.binary)?;
            if let Some(Err(error)) = memory_returned {
                tracing::warn!(%error, "could not turn transparent huge pages off: memory freed after a burst may stay resident");
            }
            tracing::info!(?settings, "starting {}", identity.title);
            let shutdown = http_server::shutdown_signal_within(settings.service().lifecycle.shutdown_grace());
            A::build(&settings).await?.run_until(shutdown).await?;
            drop(telemetry);
            // Exit now rather than wait, while the runtime drops them, for tasks given
            // up at the end of the grace (a Kafka client closing towards a broker that
            // is down can block for minutes).
            std::process::exit(0)
        }
        operation => operations::run::<I, A::Settings, X>(operation).await,
    }
}
