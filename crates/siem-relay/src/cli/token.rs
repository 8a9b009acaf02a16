//! `siem-relay token create | list | revoke`.

use clap::{Args, Subcommand};
use relay_client::{NewToken, Role, TokenInfo};
use serde_json::{Value, json};

use super::fail::Failure;
use super::output::Ctx;
use super::table::Table;
use super::values::parse_role;

/// Printed after a new token (on stderr with `--json`).
pub const SHOWN_ONCE: &str =
    "this token is shown only now and cannot be shown again: store it in a safe place";

const CREATE_EXAMPLES: &str = "\
Examples:
  siem-relay token create alice --role administrator
  siem-relay token create audit-team --role auditor

Creating a token for a name that has one replaces it. Give it to its user with
SIEM_RELAY_TOKEN=<token> or --token-file FILE.";
const LIST_EXAMPLES: &str = "Example:\n  siem-relay token list";
const REVOKE_EXAMPLES: &str = "\
Example:
  siem-relay token revoke alice

Revoking the last administrator's token is refused.";

/// `token` subcommands.
#[derive(Subcommand, Debug)]
pub enum TokenCommand {
    /// Create (or replace) a token for NAME; it is printed once (administrator).
    #[command(after_help = CREATE_EXAMPLES)]
    Create(CreateArgs),
    /// List the tokens' names and roles, never the tokens (administrator and auditor).
    #[command(after_help = LIST_EXAMPLES)]
    List,
    /// Revoke NAME's token (administrator).
    #[command(after_help = REVOKE_EXAMPLES)]
    Revoke(RevokeArgs),
}

/// `token create NAME --role ROLE`.
#[derive(Args, Debug, Clone, PartialEq, Eq)]
pub struct CreateArgs {
    /// Who the token is for: 1 to 64 letters, digits, `.`, `_` or `-`.
    pub name: String,
    /// `administrator` (everything) or `auditor` (read settings and status only).
    #[arg(long, value_parser = parse_role)]
    pub role: Role,
}

/// `token revoke NAME`.
#[derive(Args, Debug, Clone, PartialEq, Eq)]
pub struct RevokeArgs {
    /// Whose token to revoke.
    pub name: String,
}

/// Runs a `token` subcommand.
pub async fn run(ctx: &Ctx, command: TokenCommand) -> Result<(), Failure> {
    let admin = ctx.admin();
    match command {
        TokenCommand::Create(a) => {
            let created = admin
                .create_token(a.name, a.role)
                .await
                .map_err(Failure::call("token create"))?;
            ctx.emit(|| new_token_json(&created), || new_token_text(&created));
            if ctx.json() {
                eprintln!("note: {SHOWN_ONCE}");
            }
        }
        TokenCommand::List => {
            let tokens = admin.tokens().await.map_err(Failure::call("token list"))?;
            ctx.emit(|| tokens_json(&tokens), || tokens_text(&tokens));
        }
        TokenCommand::Revoke(r) => {
            admin
                .revoke_token(r.name.clone())
                .await
                .map_err(Failure::call("token revoke"))?;
            ctx.emit(
                || json!({ "revoked": r.name }),
                || format!("revoked the token of {}\n", r.name),
            );
        }
    }
    Ok(())
}

fn new_token_text(t: &NewToken) -> String {
    format!(
        "token for {} ({}):\n\n{}\n\n{SHOWN_ONCE}\n",
        t.info.name,
        t.info.role.as_str(),
        t.token
    )
}

fn new_token_json(t: &NewToken) -> Value {
    json!({ "name": t.info.name, "role": t.info.role.as_str(), "token": t.token })
}

fn tokens_text(tokens: &[TokenInfo]) -> String {
    let mut t = Table::new(&["NAME", "ROLE"]);
    for info in tokens {
        t.row(vec![info.name.clone(), info.role.as_str().into()]);
    }
    t.render()
}

fn tokens_json(tokens: &[TokenInfo]) -> Value {
    let list: Vec<Value> = tokens
        .iter()
        .map(|t| json!({ "name": t.name, "role": t.role.as_str() }))
        .collect();
    json!({ "tokens": list })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_token_is_printed_with_the_once_only_warning() {
        let t = NewToken {
            info: TokenInfo {
                name: "alice".into(),
                role: Role::Administrator,
            },
            token: "s3cr3t".into(),
        };
        let text = new_token_text(&t);
        assert!(text.contains("\ns3cr3t\n"), "{text}");
        assert!(text.ends_with(&format!("{SHOWN_ONCE}\n")), "{text}");
        assert_eq!(new_token_json(&t)["token"], "s3cr3t");
    }

    #[test]
    fn the_list_shows_names_and_roles() {
        let tokens = [
            TokenInfo {
                name: "admin".into(),
                role: Role::Administrator,
            },
            TokenInfo {
                name: "audit-team".into(),
                role: Role::SecurityAuditor,
            },
        ];
        assert_eq!(
            tokens_text(&tokens),
            "NAME        ROLE\nadmin       administrator\naudit-team  auditor\n"
        );
        assert_eq!(tokens_json(&tokens)["tokens"][1]["role"], "auditor");
    }
}
