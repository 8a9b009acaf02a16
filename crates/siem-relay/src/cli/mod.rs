//! The admin commands of `siem-relay`: one file per command group, each with its clap arguments
//! and its run function. They reach the cluster only through its public gRPC API with
//! `relay-client` (no cluster internals), print a table or one JSON document (`--json`), and fail
//! with one line on stderr and an exit code (`fail.rs`). The guide is `docs/cli.md`.

mod api;
mod fail;
mod logging;
mod members;
mod output;
mod settings;
mod status;
mod table;
mod test_alert;
mod tls;
mod token;
mod values;
mod whoami;

use std::process::ExitCode;

use clap::Subcommand;

pub use api::ApiArgs;
use fail::Failure;
use output::Ctx;

/// The commands that talk to a running cluster.
#[derive(Subcommand, Debug)]
pub enum AdminCommand {
    /// Show a node's status: leader, term, outbox, delivery and the SIEM addresses in use.
    #[command(after_help = status::EXAMPLES)]
    Status(status::StatusArgs),
    /// Show or change the SIEM settings (host, port, protocol, host ID, heartbeat, ...).
    #[command(subcommand)]
    Settings(settings::SettingsCommand),
    /// Switch remote logging of alerts and of the activity log on or off.
    #[command(after_help = logging::EXAMPLES)]
    Logging(logging::LoggingArgs),
    /// Manage the TLS certificate that verifies the SIEM, and TLS towards it.
    #[command(subcommand)]
    Tls(tls::TlsCommand),
    /// List, add or remove the cluster's nodes.
    #[command(subcommand)]
    Members(members::MembersCommand),
    /// Send one test alert through the whole path to the SIEM.
    #[command(after_help = test_alert::EXAMPLES)]
    TestAlert(test_alert::TestAlertArgs),
    /// Create, list or revoke API tokens.
    #[command(subcommand)]
    Token(token::TokenCommand),
    /// Show who the token belongs to, its role, and which node answered.
    #[command(after_help = whoami::EXAMPLES)]
    Whoami,
}

/// Runs `command` against the cluster `api` describes; prints the result or one error line.
pub async fn run(api: &ApiArgs, command: AdminCommand) -> ExitCode {
    let result = match api.client() {
        Ok(client) => dispatch(&Ctx::new(client, api.json), command).await,
        Err(failure) => Err(failure),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            eprintln!("{}", failure.line());
            failure.exit_code()
        }
    }
}

async fn dispatch(ctx: &Ctx, command: AdminCommand) -> Result<(), Failure> {
    match command {
        AdminCommand::Status(args) => status::run(ctx, args).await,
        AdminCommand::Settings(c) => settings::run(ctx, c).await,
        AdminCommand::Logging(args) => logging::run(ctx, args).await,
        AdminCommand::Tls(c) => tls::run(ctx, c).await,
        AdminCommand::Members(c) => members::run(ctx, c).await,
        AdminCommand::TestAlert(args) => test_alert::run(ctx, args).await,
        AdminCommand::Token(c) => token::run(ctx, c).await,
        AdminCommand::Whoami => whoami::run(ctx).await,
    }
}
