//! `siem-sink`: a fast counting SIEM receiver. Prints one JSON line with its bound addresses,
//! then a JSON stats line every `--every-ms`, until SIGTERM or SIGINT (then a final stats line).
//! With `--connections`, also one JSON line per connection event (`{"connection": {"event":
//! "opened" | "first_alert" | "closed", "conn": N, "at_ns": ...}}`, see `loadkit::sink::ConnEvent`).
#![allow(clippy::print_stdout)]

use std::io::Write;
use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Result;
use clap::Parser;
use loadkit::sink::{Sink, SinkConfig};

#[derive(Parser, Debug)]
#[command(about = "Counting SIEM sink: TCP, UDP, TLS, RELP; parses CEF, tallies eventId")]
struct Args {
    /// TCP listen address (port 0: any).
    #[arg(long)]
    tcp: Option<SocketAddr>,
    /// UDP listen address.
    #[arg(long)]
    udp: Option<SocketAddr>,
    /// TLS listen address (needs --cert and --key).
    #[arg(long)]
    tls: Option<SocketAddr>,
    /// PEM certificate chain for TLS.
    #[arg(long)]
    cert: Option<std::path::PathBuf>,
    /// PEM private key for TLS.
    #[arg(long)]
    key: Option<std::path::PathBuf>,
    /// RELP listen address.
    #[arg(long)]
    relp: Option<SocketAddr>,
    /// LF framing on TCP/TLS instead of octet counting.
    #[arg(long)]
    lf: bool,
    /// Append received event ids to this file (survives SIGKILL).
    #[arg(long)]
    record: Option<std::path::PathBuf>,
    /// Append every TCP/TLS message to this file, one line each: `<arrival ns> <connection
    /// opened ns> <message>` (survives SIGKILL).
    #[arg(long)]
    messages: Option<std::path::PathBuf>,
    /// Print a JSON line when a TCP or TLS connection opens, reads its first alert and closes,
    /// with wall-clock nanoseconds.
    #[arg(long)]
    connections: bool,
    /// Stats interval in milliseconds.
    #[arg(long, default_value_t = 1000)]
    every_ms: u64,
}

#[tokio::main(flavor = "multi_thread", worker_threads = 1)]
async fn main() -> Result<()> {
    let args = Args::parse();
    let tls = match (args.tls, &args.cert, &args.key) {
        (Some(a), Some(c), Some(k)) => {
            Some((a, std::fs::read_to_string(c)?, std::fs::read_to_string(k)?))
        }
        (Some(_), _, _) => anyhow::bail!("--tls needs --cert and --key"),
        _ => None,
    };
    let (events_tx, mut events) = tokio::sync::mpsc::unbounded_channel();
    let sink = Sink::start(SinkConfig {
        tcp: args.tcp,
        udp: args.udp,
        tls,
        relp: args.relp,
        record: args.record,
        messages: args.messages,
        framing: if args.lf {
            cef::Framing::Lf
        } else {
            cef::Framing::OctetCounting
        },
        events: args.connections.then_some(events_tx),
    })
    .await?;
    let mut out = std::io::stdout();
    writeln!(out, "{}", serde_json::json!({ "listening": sink.addrs }))?;
    out.flush()?;
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    let mut tick = tokio::time::interval(Duration::from_millis(args.every_ms.max(1)));
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            Some(event) = events.recv() => {
                writeln!(out, "{}", serde_json::json!({ "connection": event }))?;
                out.flush()?;
                continue;
            }
            _ = term.recv() => break,
            _ = tokio::signal::ctrl_c() => break,
        }
        writeln!(out, "{}", serde_json::json!({ "stats": sink.snapshot() }))?;
        out.flush()?;
    }
    writeln!(
        out,
        "{}",
        serde_json::json!({ "stats": sink.snapshot(), "final": true })
    )?;
    Ok(())
}
