//! `siem-relay whoami`: the token's owner and role.

use serde_json::json;

use super::fail::Failure;
use super::output::Ctx;
use super::table::key_values;

/// Examples shown by `siem-relay whoami --help`.
pub const EXAMPLES: &str = "\
Example:
  SIEM_RELAY_TOKEN=... siem-relay whoami";

/// Runs `whoami`.
pub async fn run(ctx: &Ctx) -> Result<(), Failure> {
    let me = ctx
        .admin()
        .whoami()
        .await
        .map_err(Failure::call("whoami"))?;
    ctx.emit(
        || json!({ "name": me.info.name, "role": me.info.role.as_str(), "node_id": me.node_id }),
        || {
            key_values(&[
                ("name", me.info.name.clone()),
                ("role", me.info.role.as_str().to_string()),
                ("answered by node", me.node_id.to_string()),
            ])
        },
    );
    Ok(())
}
