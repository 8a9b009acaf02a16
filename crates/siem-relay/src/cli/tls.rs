//! `siem-relay tls upload | remove | enable | disable`: the certificate that verifies the SIEM,
//! and TLS towards it.

use std::path::PathBuf;

use clap::{Args, Subcommand};
use relay_client::RevisedSettings;
use serde_json::json;

use super::api::read_file;
use super::fail::Failure;
use super::output::Ctx;
use super::settings::{print_settings, settings_json};
use super::table::key_values;
use super::values::utc;

const UPLOAD_EXAMPLES: &str = "\
Example:
  siem-relay tls upload siem-ca.pem

The PEM holds the CA certificate(s) that signed the SIEM's certificate, or the SIEM's own
certificate. It replaces any certificate loaded before. Then: siem-relay tls enable";
const REMOVE_EXAMPLES: &str = "Example:\n  siem-relay tls disable && siem-relay tls remove";
const ENABLE_EXAMPLES: &str = "\
Example:
  siem-relay tls enable

Refused until a certificate is uploaded (siem-relay tls upload FILE), and over UDP.";
const DISABLE_EXAMPLES: &str = "Example:\n  siem-relay tls disable";

/// `tls` subcommands.
#[derive(Subcommand, Debug)]
pub enum TlsCommand {
    /// Upload the PEM certificate(s) that verify the SIEM; prints subject, issuer, expiry and
    /// SHA-256 fingerprint of each.
    #[command(after_help = UPLOAD_EXAMPLES)]
    Upload(UploadArgs),
    /// Remove the certificate (refused while TLS is on).
    #[command(after_help = REMOVE_EXAMPLES)]
    Remove(RevisionArg),
    /// Encrypt the connection to the SIEM (needs a certificate).
    #[command(after_help = ENABLE_EXAMPLES)]
    Enable(RevisionArg),
    /// Send to the SIEM without TLS.
    #[command(after_help = DISABLE_EXAMPLES)]
    Disable(RevisionArg),
}

/// `tls upload FILE`.
#[derive(Args, Debug, Clone, PartialEq, Eq)]
pub struct UploadArgs {
    /// The PEM file.
    #[arg(value_name = "FILE.pem")]
    pub file: PathBuf,
    #[command(flatten)]
    pub revision: RevisionArg,
}

/// The optional expected revision of a TLS change.
#[derive(Args, Debug, Clone, PartialEq, Eq)]
pub struct RevisionArg {
    /// Apply only if the settings are still at this revision.
    #[arg(long, value_name = "N")]
    pub expected_revision: Option<u64>,
}

/// Runs a `tls` subcommand.
pub async fn run(ctx: &Ctx, command: TlsCommand) -> Result<(), Failure> {
    let admin = ctx.admin();
    match command {
        TlsCommand::Upload(args) => {
            let pem = read_file(&args.file, "tls upload")?;
            let settings = admin
                .upload_certificate(pem, args.revision.expected_revision)
                .await
                .map_err(Failure::call("tls upload"))?;
            print_certificates(ctx, &settings);
        }
        TlsCommand::Remove(r) => {
            let s = admin.remove_certificate(r.expected_revision).await;
            print_settings(ctx, &s.map_err(Failure::call("tls remove"))?);
        }
        TlsCommand::Enable(r) => {
            let s = admin.set_tls(true, r.expected_revision).await;
            print_settings(ctx, &s.map_err(Failure::call("tls enable"))?);
        }
        TlsCommand::Disable(r) => {
            let s = admin.set_tls(false, r.expected_revision).await;
            print_settings(ctx, &s.map_err(Failure::call("tls disable"))?);
        }
    }
    Ok(())
}

/// After an upload: each certificate as the cluster parsed it.
fn print_certificates(ctx: &Ctx, settings: &RevisedSettings) {
    ctx.emit(
        || json!({ "uploaded": true, "settings": settings_json(settings) }),
        || certificates_text(settings),
    );
}

fn certificates_text(settings: &RevisedSettings) -> String {
    let certs = &settings.settings.tls_certificates;
    let mut text = format!(
        "uploaded {} certificate(s) (settings revision {})\n",
        certs.len(),
        settings.revision
    );
    for c in certs {
        text.push('\n');
        text.push_str(&key_values(&[
            ("subject", c.subject.clone()),
            ("issuer", c.issuer.clone()),
            ("not before", utc(c.not_before_ms)),
            ("expires", utc(c.not_after_ms)),
            ("sha256", c.sha256.clone()),
        ]));
    }
    if !settings.settings.tls_enabled {
        text.push_str("\nTLS is off: switch it on with `siem-relay tls enable`\n");
    }
    text
}
