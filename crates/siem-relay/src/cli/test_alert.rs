//! `siem-relay test-alert`: one alert through Raft, dedup and delivery to the SIEM.

use clap::Args;
use serde_json::json;

use super::fail::Failure;
use super::output::Ctx;
use super::table::key_values;

/// Examples shown by `siem-relay test-alert --help`.
pub const EXAMPLES: &str = "\
Examples:
  siem-relay test-alert
  siem-relay test-alert --type url_web

Look for the printed alert ID (CEF `eventId`) at the SIEM.";

/// `test-alert [--type TYPE]`.
#[derive(Args, Debug, Clone, PartialEq, Eq)]
pub struct TestAlertArgs {
    /// The alert type of the catalogue (`file_web`, `url_web`, `dns`, ...); the cluster's
    /// default is `file_web`.
    #[arg(long = "type", value_name = "TYPE")]
    pub alert_type: Option<String>,
}

/// Runs `test-alert`.
pub async fn run(ctx: &Ctx, args: TestAlertArgs) -> Result<(), Failure> {
    let sent = ctx
        .admin()
        .send_test_alert(args.alert_type)
        .await
        .map_err(Failure::call("test-alert"))?;
    ctx.emit(
        || json!({ "alert_id": sent.alert_id, "seq": sent.seq, "source": sent.source }),
        || {
            key_values(&[
                ("alert id", sent.alert_id.clone()),
                ("source", sent.source.clone()),
                ("outbox seq", sent.seq.to_string()),
            ])
        },
    );
    Ok(())
}
