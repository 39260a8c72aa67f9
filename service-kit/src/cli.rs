//! The command line both binaries share: `serve` (the default) with the settings every
//! service has, and the operator commands. What differs between the services (their
//! names, environment prefix, defaults, the read models they rebuild) is an
//! [`Identity`], applied to the one definition here when the command line is built;
//! operator commands only one service has are its [`OwnCommands`], listed beside the
//! shared ones.

use std::fmt::Debug;
use std::io::Write;
use std::marker::PhantomData;
use std::process::ExitCode;

use clap::{Arg, ArgMatches, Args, CommandFactory, FromArgMatches, Parser, Subcommand};
use http_server::{DatabaseSessionSettings, DatabaseSettings, HttpSettings, LifecycleSettings, TelemetrySettings};
use messaging::KafkaSettings;

/// What sets one service's command line apart from the other's.
#[derive(Debug, Clone, Copy)]
pub struct Identity {
    /// The binary's name (`oms`), also the service name in telemetry.
    pub binary: &'static str,
    /// The service in a sentence (`the order management service`).
    pub title: &'static str,
    /// The first paragraph of `--help`.
    pub about: &'static str,
    /// Prefix of the service's own variables (`OMS` for `OMS_PORT`).
    pub env_prefix: &'static str,
    /// The port served by default.
    pub port: u16,
    /// The PostgreSQL schema used by default.
    pub schema: &'static str,
    /// The consumer group used by default.
    pub consumer_group: &'static str,
    /// What the consumer group is for, in `--help`.
    pub consumer_group_help: &'static str,
    /// The aggregate whose history `history` prints (`order`).
    pub aggregate: &'static str,
    /// What `rebuild --projection` accepts; the first is the default.
    pub rebuilds: &'static [&'static str],
    /// What `rebuild --help` says beyond what every rebuild does (empty for nothing).
    pub rebuild_note: &'static str,
}

/// A service's command line: its [`Identity`] `I` applied to [`Command`], with the
/// service's `serve` settings `S` and its own operator commands `X`. Parse it with
/// [`clap::Parser`].
#[derive(Debug)]
pub struct Cli<S: Args, I, X: Subcommand = NoCommands> {
    /// What to do; `serve` when omitted.
    pub command: Option<Command<S, X>>,
    /// Settings of `serve` when no subcommand is given.
    pub serve: S,
    identity: PhantomData<I>,
}

/// The [`Identity`] of a service, as a type (so that `Cli<S, I>` parses on its own).
pub trait Named {
    /// The service's identity.
    const IDENTITY: Identity;
}

/// Subcommands: the service's own operator commands `X` follow the shared ones.
#[derive(Debug, Subcommand)]
#[allow(clippy::large_enum_variant, reason = "parsed once at start-up; boxing buys nothing")]
pub enum Command<S: Args, X: Subcommand = NoCommands> {
    /// Serve the HTTP API (the default).
    Serve(S),
    /// Print one aggregate's events, oldest first, for audits.
    History {
        /// The aggregate's id.
        id: String,
        /// One JSON object per line instead of a table.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        #[allow(missing_docs)]
        store: StoreSettings,
    },
    /// Write every event to standard output as JSON lines, in commit order (an audit
    /// archive).
    Export {
        /// Only events recorded at or after this RFC 3339 time.
        #[arg(long)]
        since: Option<chrono::DateTime<chrono::Utc>>,
        #[command(flatten)]
        #[allow(missing_docs)]
        store: StoreSettings,
    },
    /// Rebuild a read model from the event store: the new table is filled beside the
    /// served one and takes over atomically (safe with the services running); an
    /// interrupted rebuild resumes.
    Rebuild {
        /// The read model.
        #[arg(long)]
        projection: String,
        /// Fold the events into a scratch table and list every row that differs from
        /// the served one, changing nothing; exits with status 1 when rows differ.
        #[arg(long)]
        verify: bool,
        #[command(flatten)]
        #[allow(missing_docs)]
        store: StoreSettings,
    },
    /// List, inspect and re-drive dead letters: consumed messages and committed events
    /// that could never be processed or published as they were, parked with their
    /// reason.
    #[command(subcommand)]
    Dlq(admin::dead_letters::DlqCommand<StoreSettings, KafkaSettings>),
    /// One of the service's own operator commands.
    #[command(flatten)]
    Own(X),
}

/// Operator commands only one service has (`inventory ship-held`), listed beside the
/// shared ones; run like them, once, against the service's schema.
pub trait OwnCommands: Subcommand + Debug {
    /// Runs the command, writing what it did to `out`; its exit status.
    fn run(self, out: &mut dyn Write) -> impl Future<Output = anyhow::Result<ExitCode>>;
}

/// A service with no operator commands of its own.
#[derive(Debug, Clone, Copy, Subcommand)]
pub enum NoCommands {}

impl OwnCommands for NoCommands {
    async fn run(self, _out: &mut dyn Write) -> anyhow::Result<ExitCode> {
        match self {}
    }
}

/// Where the operator commands find the service's data.
#[derive(Debug, Clone, Args)]
pub struct StoreSettings {
    /// PostgreSQL schema of the service's event store and views.
    #[arg(long)]
    pub database_schema: String,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub database: DatabaseSettings,
}

/// The settings every running service has; a service flattens them into its own.
#[derive(Debug, Clone, Args)]
pub struct ServiceSettings {
    /// Interface to listen on.
    #[arg(long, default_value = "0.0.0.0")]
    pub host: String,
    /// Port to listen on; 0 picks a free one.
    #[arg(long)]
    pub port: u16,
    /// PostgreSQL schema holding the service's event store and views (created if
    /// missing).
    #[arg(long)]
    pub database_schema: String,
    #[command(flatten)]
    #[expect(missing_docs, reason = "clap shows a flattened group's own docs; a comment here would be ignored")]
    pub database: DatabaseSettings,
    #[command(flatten)]
    #[expect(missing_docs, reason = "clap shows a flattened group's own docs; a comment here would be ignored")]
    pub database_sessions: DatabaseSessionSettings,
    #[command(flatten)]
    #[expect(missing_docs, reason = "clap shows a flattened group's own docs; a comment here would be ignored")]
    pub lifecycle: LifecycleSettings,
    /// The consumer group.
    #[arg(long)]
    pub consumer_group: String,
    #[command(flatten)]
    #[expect(missing_docs, reason = "clap shows a flattened group's own docs; a comment here would be ignored")]
    pub kafka: KafkaSettings,
    #[command(flatten)]
    #[expect(missing_docs, reason = "clap shows a flattened group's own docs; a comment here would be ignored")]
    pub http: HttpSettings,
    #[command(flatten)]
    #[expect(missing_docs, reason = "clap shows a flattened group's own docs; a comment here would be ignored")]
    pub telemetry: TelemetrySettings,
}

// The command line as derived, before an identity is applied (a plain comment: clap
// would show a doc comment as the binary's description).
#[derive(Debug, Parser)]
#[command(version, args_conflicts_with_subcommands = true)]
struct Generic<S: Args, X: Subcommand> {
    #[command(subcommand)]
    command: Option<Command<S, X>>,
    #[command(flatten)]
    serve: S,
}

impl Identity {
    /// `command` (the derived one, subcommands included) with this service's names,
    /// variables and defaults.
    fn apply(&self, command: clap::Command) -> clap::Command {
        let prefixed = |name: &str| format!("{}_{name}", self.env_prefix);
        let command = command.mut_args(|arg| match arg.get_id().as_str() {
            "host" => arg.env(prefixed("HOST")),
            // Derived as required (no default there); clap refuses a required
            // argument with a default.
            "port" => arg.env(prefixed("PORT")).required(false).default_value(self.port.to_string()),
            "database_schema" => arg.env(prefixed("DATABASE_SCHEMA")).required(false).default_value(self.schema),
            "consumer_group" => arg
                .env(prefixed("CONSUMER_GROUP"))
                .required(false)
                .default_value(self.consumer_group)
                .help(self.consumer_group_help),
            _ => arg,
        });
        let command = match command.get_name() {
            "history" => command
                .about(format!("Print one {}'s events, oldest first, for audits.", self.aggregate))
                .mut_arg("id", |arg: Arg| {
                    arg.value_name(format!("{}_ID", self.aggregate.to_uppercase()))
                        .help(format!("The {}'s id.", self.aggregate))
                }),
            "rebuild" => {
                let about = command.get_about().map(ToString::to_string).unwrap_or_default();
                // clap drops a summary's final period; the note follows as a sentence.
                let about = if self.rebuild_note.is_empty() {
                    about
                } else {
                    format!("{about}. {}", self.rebuild_note.trim_end_matches('.'))
                };
                command.about(about).mut_arg("projection", |arg: Arg| {
                    arg.value_parser(self.rebuilds.to_vec())
                        .required(false)
                        .default_value(self.rebuilds.first().copied())
                })
            }
            _ => command,
        };
        command.mut_subcommands(|sub| self.apply(sub))
    }
}

impl<S: Args, I: Named, X: Subcommand> CommandFactory for Cli<S, I, X> {
    fn command() -> clap::Command {
        let identity = I::IDENTITY;
        // `--help`'s first paragraph; `--help` in full shows all of it.
        let summary = identity.about.split("\n\n").next().unwrap_or(identity.about);
        identity
            .apply(Generic::<S, X>::command())
            .name(identity.binary)
            .bin_name(identity.binary)
            .about(summary)
            .long_about(identity.about)
    }

    fn command_for_update() -> clap::Command {
        I::IDENTITY.apply(Generic::<S, X>::command_for_update())
    }
}

impl<S: Args, I: Named, X: Subcommand> FromArgMatches for Cli<S, I, X> {
    fn from_arg_matches(matches: &ArgMatches) -> Result<Self, clap::Error> {
        let Generic { command, serve } = Generic::<S, X>::from_arg_matches(matches)?;
        Ok(Self { command, serve, identity: PhantomData })
    }

    fn update_from_arg_matches(&mut self, matches: &ArgMatches) -> Result<(), clap::Error> {
        *self = Self::from_arg_matches(matches)?;
        Ok(())
    }
}

impl<S: Args, I: Named, X: Subcommand> Parser for Cli<S, I, X> {}

impl<S: Args, I, X: Subcommand> Cli<S, I, X> {
    /// What to run: the subcommand, or `serve` with the top-level settings.
    pub fn into_command(self) -> Command<S, X> {
        self.command.unwrap_or(Command::Serve(self.serve))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Shop;

    impl Named for Shop {
        const IDENTITY: Identity = Identity {
            binary: "shop",
            title: "the shop",
            about: "A shop.",
            env_prefix: "SHOP",
            port: 8123,
            schema: "shop",
            consumer_group: "shop-group",
            consumer_group_help: "The shop's group.",
            aggregate: "basket",
            rebuilds: &["basket_view", "basket_lines"],
            rebuild_note: "`basket_lines` too.",
        };
    }

    #[derive(Debug, Clone, Args)]
    struct ShopSettings {
        #[command(flatten)]
        service: ServiceSettings,
    }

    type ShopCli = Cli<ShopSettings, Shop>;

    #[test]
    fn the_identity_names_variables_and_sets_defaults() {
        let cli = ShopCli::try_parse_from(["shop"]).expect("defaults parse");
        let Command::Serve(settings) = cli.into_command() else { panic!("serve is the default") };
        assert_eq!(settings.service.port, 8123);
        assert_eq!(settings.service.database_schema, "shop");
        assert_eq!(settings.service.consumer_group, "shop-group");
        let help = ShopCli::command().render_long_help().to_string();
        for variable in ["SHOP_HOST", "SHOP_PORT", "SHOP_DATABASE_SCHEMA", "SHOP_CONSUMER_GROUP"] {
            assert!(help.contains(&format!("[env: {variable}")), "{variable} in:\n{help}");
        }
        assert!(help.starts_with("A shop."), "{help}");
    }

    #[test]
    fn operator_commands_take_the_identity_too() {
        let cli = ShopCli::try_parse_from(["shop", "history", "b-1", "--database-url", "postgres://h/db"])
            .expect("history parses");
        match cli.into_command() {
            Command::History { id, store, .. } => {
                assert_eq!(id, "b-1");
                assert_eq!(store.database_schema, "shop");
            }
            other => panic!("history expected: {other:?}"),
        }
        let cli = ShopCli::try_parse_from(["shop", "rebuild", "--database-url", "postgres://h/db"]).expect("parses");
        assert!(matches!(cli.into_command(), Command::Rebuild { projection, .. } if projection == "basket_view"));
        let refused = ShopCli::try_parse_from(["shop", "rebuild", "--projection", "order_view"]);
        assert!(refused.is_err(), "only the service's read models");
        let mut command = ShopCli::command();
        let history = command.find_subcommand_mut("history").expect("history").render_long_help().to_string();
        assert!(history.contains("basket's events") && history.contains("<BASKET_ID>"), "{history}");
        let dlq = command.find_subcommand_mut("dlq").expect("dlq");
        let list = dlq.find_subcommand_mut("list").expect("list").render_long_help().to_string();
        assert!(list.contains("[env: SHOP_DATABASE_SCHEMA"), "{list}");
    }

    /// The shop's own operator command.
    #[derive(Debug, Subcommand)]
    enum ShopCommands {
        /// Count a basket's lines again.
        Recount {
            /// The basket.
            basket: String,
            #[command(flatten)]
            store: StoreSettings,
        },
    }

    impl OwnCommands for ShopCommands {
        async fn run(self, out: &mut dyn Write) -> anyhow::Result<ExitCode> {
            let Self::Recount { basket, .. } = self;
            writeln!(out, "recounted {basket}")?;
            Ok(ExitCode::SUCCESS)
        }
    }

    #[test]
    fn a_services_own_commands_are_listed_beside_the_shared_ones_and_take_its_identity() {
        type OwnCli = Cli<ShopSettings, Shop, ShopCommands>;
        let cli = OwnCli::try_parse_from(["shop", "recount", "b-1", "--database-url", "postgres://h/db"])
            .expect("recount parses");
        match cli.into_command() {
            Command::Own(ShopCommands::Recount { basket, store }) => {
                assert_eq!(basket, "b-1");
                assert_eq!(store.database_schema, "shop", "the identity's schema by default");
            }
            other => panic!("recount expected: {other:?}"),
        }
        let cli = OwnCli::try_parse_from(["shop", "history", "b-1", "--database-url", "postgres://h/db"])
            .expect("the shared commands stay");
        assert!(matches!(cli.into_command(), Command::History { .. }));
        let mut command = OwnCli::command();
        let help = command.render_long_help().to_string();
        assert!(help.contains("recount") && help.contains("Count a basket's lines again"), "{help}");
        let recount = command.find_subcommand_mut("recount").expect("recount").render_long_help().to_string();
        assert!(recount.contains("[env: SHOP_DATABASE_SCHEMA"), "{recount}");
        assert!(ShopCli::try_parse_from(["shop", "recount", "b-1"]).is_err(), "only the service that has it");
    }
}
