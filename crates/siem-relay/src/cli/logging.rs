//! `siem-relay logging`: the two remote-logging switches.

use clap::{ArgGroup, Args};

use super::fail::Failure;
use super::output::Ctx;
use super::settings::print_settings;
use super::values::parse_switch;

/// Examples shown by `siem-relay logging --help`.
pub const EXAMPLES: &str = "\
Examples:
  siem-relay logging --alerts on --activity-log on
  siem-relay logging --activity-log off

Only the switches given change; the command prints the resulting settings.";

/// The switches to set; at least one is required.
#[derive(Args, Debug, Clone, PartialEq, Eq)]
#[command(group(ArgGroup::new("switch").required(true).multiple(true).args(["alerts", "activity_log"])))]
pub struct LoggingArgs {
    /// Send alerts to the SIEM: `on` or `off`.
    #[arg(long, value_name = "on|off", value_parser = parse_switch)]
    pub alerts: Option<bool>,
    /// Send the activity log (every user action) to the SIEM: `on` or `off`.
    #[arg(long, value_name = "on|off", value_parser = parse_switch)]
    pub activity_log: Option<bool>,
    /// Apply only if the settings are still at this revision.
    #[arg(long, value_name = "N")]
    pub expected_revision: Option<u64>,
}

/// Runs `logging`.
pub async fn run(ctx: &Ctx, args: LoggingArgs) -> Result<(), Failure> {
    let settings = ctx
        .admin()
        .set_remote_logging(args.alerts, args.activity_log, args.expected_revision)
        .await
        .map_err(Failure::call("logging"))?;
    print_settings(ctx, &settings);
    Ok(())
}
