//! `siem-relay`: the relay's one command. `serve` runs a node of the cluster; `demo` runs a
//! whole cluster on loopback and shows it at work.

use anyhow::Context;
use clap::{Parser, Subcommand};
use node::config::{ADMIN_TOKEN_ENV, NodeConfig, SECRET_ENV};
use std::path::PathBuf;

mod demo;

/// mimalloc instead of glibc malloc: under ingest load glibc's malloc and free took about 40% of
/// the leader's CPU samples (`perf record`), most of it consolidating and unlinking chunks.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser, Debug)]
#[command(
    name = "siem-relay",
    version,
    about = "A clustered relay that delivers security alerts to a SIEM as CEF over syslog"
)]
struct Cli {
    /// Log format.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Human)]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum LogFormat {
    Human,
    Json,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run one node of the cluster (until SIGTERM or Ctrl-C).
    Serve {
        /// The node's TOML configuration (see docs/node.md).
        #[arg(long, required_unless_present = "dev", conflicts_with = "dev")]
        config: Option<PathBuf>,
        /// Run a single-node cluster on loopback with built-in defaults: API on 127.0.0.1:7001,
        /// metrics on 127.0.0.1:9100, SIEM at 127.0.0.1:5514 over TCP.
        #[arg(long)]
        dev: bool,
        /// Data folder of the --dev node.
        #[arg(long, default_value = "siem-relay-dev", requires = "dev")]
        data_dir: PathBuf,
    },
    /// Show the relay at work, with no configuration: a 3-node cluster on loopback delivering
    /// sample alerts to built-in SIEM receivers behind one round-robin DNS name; a receiver and
    /// then the leader are killed and the failovers timed. Ends with a summary (exit code 0 when
    /// nothing acknowledged was lost); Ctrl-C stops it and removes what it started.
    Demo(demo::DemoArgs),
}

fn init_logs(format: LogFormat, default_filter: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_filter));
    let builder = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_env_filter(filter);
    match format {
        LogFormat::Human => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

async fn shutdown_signal() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                tracing::warn!(error = %e, "no SIGTERM handler; only Ctrl-C stops the node");
                std::future::pending::<()>().await;
            }
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term => {}
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    // the demo's own screen is its output; its nodes log to files
    let default_filter = match cli.command {
        Command::Demo(_) => "warn",
        _ => "info,openraft=warn",
    };
    init_logs(cli.log_format, default_filter);
    match cli.command {
        Command::Serve {
            config,
            dev,
            data_dir,
        } => {
            let cfg = match (config, dev) {
                (Some(path), _) => NodeConfig::load(&path, std::env::var(SECRET_ENV).ok())?,
                (None, true) => NodeConfig::dev(data_dir),
                (None, false) => anyhow::bail!("give --config FILE or --dev"),
            }
            .admin_token_from_env(std::env::var(ADMIN_TOKEN_ENV).ok())?;
            node::serve::serve(cfg, shutdown_signal())
                .await
                .context("serve")?;
        }
        Command::Demo(args) => demo::run(args).await?,
    }
    Ok(())
}
