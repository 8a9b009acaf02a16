//! `siem-relay`: the relay's one command. `serve` runs a node of the cluster; `demo` runs a
//! whole cluster on loopback and shows it at work; the other subcommands (`cli/`) manage a
//! running cluster through its public gRPC API.

mod cli;
mod demo;

#[cfg(test)]
mod args_tests;

use anyhow::Context;
use clap::{Parser, Subcommand};
use node::config::{ADMIN_TOKEN_ENV, NodeConfig, SECRET_ENV};
use std::path::PathBuf;
use std::process::ExitCode;

/// mimalloc instead of glibc malloc: under ingest load glibc's malloc and free took about 40% of
/// the leader's CPU samples (`perf record`), most of it consolidating and unlinking chunks.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser, Debug)]
#[command(
    name = "siem-relay",
    version,
    about = "A clustered relay that delivers security alerts to a SIEM as CEF over syslog",
    after_help = "\
Getting started (see docs/cli.md):
  export SIEM_RELAY_ENDPOINT=10.0.0.1:7001,10.0.0.2:7001,10.0.0.3:7001
  export SIEM_RELAY_TOKEN=<an administrator token>
  siem-relay status
  siem-relay settings show

Exit codes: 0 success, 1 the call failed or was refused, 2 wrong usage."
)]
struct Cli {
    /// Log format on stderr (`serve` logs; the admin commands log only with RUST_LOG set).
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Human)]
    log_format: LogFormat,
    #[command(flatten)]
    api: cli::ApiArgs,
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
    #[command(flatten)]
    Admin(cli::AdminCommand),
    /// Show the relay at work, with no configuration: a 3-node cluster on loopback delivering
    /// sample alerts to built-in SIEM receivers behind one round-robin DNS name; a receiver and
    /// then the leader are killed and the failovers timed. Ends with a summary (exit code 0 when
    /// nothing acknowledged was lost); Ctrl-C stops it and removes what it started.
    Demo(demo::DemoArgs),
}

/// Logs on stderr; without `RUST_LOG`, `default` says what is logged (a node logs `info`, the
/// demo warnings (its screen is its output), the admin commands nothing, so that a failure is one
/// line).
fn init_logs(format: LogFormat, default: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
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

fn main() -> ExitCode {
    // Before the runtime's threads and buffers exist, so that none of them is backed by huge
    // pages (see `small_pages`).
    small_pages();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build();
    match runtime {
        Ok(rt) => rt.block_on(run()),
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Turns transparent huge pages off for this process (`prctl(PR_SET_THP_DISABLE)`). mimalloc
/// asks for them (`madvise(MADV_HUGEPAGE)`) on its arenas, so with the kernel in `madvise` mode
/// (Debian's default) a node at rest held 18 of its 19 MiB of anonymous memory in 2 MiB pages
/// (`AnonHugePages` in `/proc/<pid>/smaps_rollup`), most of them barely used: an idle 3-node
/// cluster showed 45-55 MiB RSS per node instead of ~30. Refused (an old kernel, a sandbox):
/// logged on stderr, not fatal.
fn small_pages() {
    if let Err(e) = rustix::thread::disable_transparent_huge_pages(true) {
        eprintln!(
            "warning: cannot turn transparent huge pages off ({e}); memory use may be higher"
        );
    }
}

async fn run() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Serve {
            config,
            dev,
            data_dir,
        } => {
            init_logs(cli.log_format, "info,openraft=warn");
            exit_code(serve(config, dev, data_dir).await)
        }
        Command::Admin(command) => {
            init_logs(cli.log_format, "off");
            cli::run(&cli.api, command).await
        }
        Command::Demo(args) => {
            init_logs(cli.log_format, "warn");
            exit_code(demo::run(args).await)
        }
    }
}

/// `Ok` is success; an error is printed as `main() -> anyhow::Result` prints it (its chain of
/// causes) and exits 1.
fn exit_code(result: anyhow::Result<()>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("Error: {e:?}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(config: Option<PathBuf>, dev: bool, data_dir: PathBuf) -> anyhow::Result<()> {
    let cfg = match (config, dev) {
        (Some(path), _) => NodeConfig::load(&path, std::env::var(SECRET_ENV).ok())?,
        (None, true) => NodeConfig::dev(data_dir),
        (None, false) => anyhow::bail!("give --config FILE or --dev"),
    }
    .admin_token_from_env(std::env::var(ADMIN_TOKEN_ENV).ok())?;
    node::serve::serve(cfg, shutdown_signal())
        .await
        .context("serve")
}
