//! `relay-chaos`: the chaos script. In local mode it starts a 3-node cluster of `siem-relay`
//! processes on loopback with SIEM receivers behind one DNS name, drives load through the
//! ingest API, injects faults from a seeded schedule (leader killed, frozen and cut off, a
//! follower killed, a receiver killed and black-holed, slow Raft links, the whole cluster
//! restarted, a node added and removed), heals everything, drains, sends one fresh alert, and
//! prints the verdict (lost, unexpected, duplicated, recovered, corrupted) and the failover
//! times. Exit code 0 pass, 1 violation, 2 harness failure. See docs/chaos.md.

mod compose;
mod deliveries;
mod deployment;
mod history;
mod load;
mod local;
mod report;
mod run;
mod schedule;
mod timing;
mod verdict;

use clap::Parser;
use schedule::FaultKind;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

#[derive(Parser, Debug)]
#[command(
    name = "relay-chaos",
    about = "Drive load through a local siem-relay cluster while injecting faults; check what the SIEM got",
    after_help = "\
Examples:
  relay-chaos local --duration 600                 # the full run, every fault kind
  relay-chaos local --duration 120 --seed 42       # a short run, replayable
  relay-chaos local --faults kill-leader,kill-receiver --duration 60
  deploy/up.sh && relay-chaos compose --duration 600   # against deploy/compose.yaml (root)

Exit codes: 0 pass, 1 violation (lost, unexpected, corrupted, too many duplicates, the fresh alert
missing, the cluster not healthy again), 2 harness failure."
)]
struct Cli {
    #[command(subcommand)]
    mode: Mode,
}

#[derive(clap::Subcommand, Debug)]
enum Mode {
    /// Node processes, receivers and a DNS server on loopback (root for the iptables faults).
    Local {
        #[command(flatten)]
        common: CommonArgs,
        /// SIEM receivers behind the name.
        #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u64).range(2..=8))]
        receivers: u64,
        /// Folder holding `siem-relay` and `siem-sink` (default: this program's folder).
        #[arg(long)]
        bin_dir: Option<PathBuf>,
        /// Keep the nodes' data folders in the artifacts.
        #[arg(long)]
        keep_data: bool,
    },
    /// The Docker Compose deployment of deploy/, already up (deploy/up.sh); needs root.
    Compose {
        #[command(flatten)]
        common: CommonArgs,
        /// The deploy/ folder (its .env names the project and holds the secrets).
        #[arg(long, default_value = "deploy")]
        deploy_dir: PathBuf,
    },
}

#[derive(clap::Args, Debug)]
struct CommonArgs {
    /// Seconds during which faults are started (drain and checks follow).
    #[arg(long, default_value_t = 600)]
    duration: u64,
    /// Seed of the fault schedule (default: random, printed).
    #[arg(long)]
    seed: Option<u64>,
    /// Fault kinds, comma-separated (default: all).
    #[arg(long, value_delimiter = ',')]
    faults: Vec<FaultKind>,
    /// Alerts a second.
    #[arg(long, default_value_t = 200, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    rate: u32,
    /// Alerts per batch.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=1000))]
    batch: u64,
    /// Share of batches submitted again through another node, in percent.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u32).range(0..=100))]
    resubmit_percent: u32,
    /// Folder for the artifacts (default: chaos-<seed>-<time> in the temporary folder).
    #[arg(long)]
    artifacts: Option<PathBuf>,
}

#[allow(clippy::print_stdout)]
fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("relay-chaos: cannot start the runtime: {e}");
            return ExitCode::from(2);
        }
    };
    let (common, target) = match cli.mode {
        Mode::Local {
            common,
            receivers,
            bin_dir,
            keep_data,
        } => {
            let bins = match local::Binaries::find(bin_dir.as_deref()) {
                Ok(b) => b,
                Err(e) => {
                    eprintln!("relay-chaos: {e:#}");
                    return ExitCode::from(2);
                }
            };
            let target = run::Target::Local {
                bins,
                receivers: usize::try_from(receivers).unwrap_or(2),
                keep_data,
            };
            (common, target)
        }
        Mode::Compose { common, deploy_dir } => (common, run::Target::Compose { deploy_dir }),
    };
    let seed = common.seed.unwrap_or_else(testkit::random_u64);
    let cfg = run::RunConfig {
        duration: Duration::from_secs(common.duration),
        seed,
        kinds: if common.faults.is_empty() {
            FaultKind::ALL.to_vec()
        } else {
            common.faults.clone()
        },
        rate: common.rate,
        batch: usize::try_from(common.batch).unwrap_or(10),
        resubmit_percent: common.resubmit_percent,
        artifacts: common.artifacts.clone().unwrap_or_else(|| {
            std::env::temp_dir().join(format!("chaos-{seed}-{}", load::unix_ms() / 1000))
        }),
        target,
    };
    let outcome = runtime.block_on(async {
        tokio::select! {
            r = run::run(cfg) => r,
            _ = tokio::signal::ctrl_c() => Err(anyhow::anyhow!("interrupted: stopped everything it started")),
        }
    });
    match outcome {
        Ok(report) => {
            for line in report.lines() {
                println!("{line}");
            }
            ExitCode::from(report.exit_code())
        }
        Err(e) => {
            eprintln!("relay-chaos: harness failure (seed {seed}): {e:#}");
            ExitCode::from(2)
        }
    }
}
