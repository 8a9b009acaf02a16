//! `cluster-node`: runs one cluster node as a process (for the real-process tests and the
//! benchmark). Besides the Raft port it serves the harness's control channel
//! (`cluster_harness::control_server`, no authentication) on a loopback port of its own. Prints
//! `READY <raft addr> <control addr>` on stdout once both listen; logs go to stderr. The cluster
//! secret comes from the `CLUSTER_SECRET` environment variable. With `--tls-ca`, `--tls-cert`
//! and `--tls-key` (all three or none) the Raft transport runs over mutual TLS. With
//! `--log-store raft-log` the Raft log is kept by `cluster_harness::RaftLogStore` (the `raft-log`
//! crate, in `<data dir>/raft-log/`) instead of the cluster's own log store, to compare the two.

use anyhow::Context;
use clap::Parser;
use cluster::config::TimingConfig;
use cluster::network::ClusterSecret;
use cluster::node::{ClusterNode, NodeConfig};
use cluster::tls::{TlsFiles, TransportTls};
use cluster_harness::control_server::serve_control;
use cluster_harness::{LogStoreKind, RaftLogStore};
use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Parser, Debug)]
#[command(about = "Run one siem-relay cluster-core node")]
struct Args {
    /// Node ID (never reused in a cluster).
    #[arg(long)]
    id: u64,
    /// Raft gRPC listen address.
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: SocketAddr,
    /// Control channel listen address (loopback only: the channel has no authentication).
    #[arg(long, default_value = "127.0.0.1:0")]
    control_listen: SocketAddr,
    /// Data folder.
    #[arg(long)]
    data_dir: PathBuf,
    /// Cluster secret (at least 16 characters).
    #[arg(long, env = "CLUSTER_SECRET", hide_env_values = true)]
    secret: String,
    /// Heartbeat interval in ms.
    #[arg(long, default_value_t = TimingConfig::default().heartbeat_ms)]
    heartbeat_ms: u64,
    /// Election timeout lower bound in ms.
    #[arg(long, default_value_t = TimingConfig::default().election_timeout_min_ms)]
    election_min_ms: u64,
    /// Election timeout upper bound in ms.
    #[arg(long, default_value_t = TimingConfig::default().election_timeout_max_ms)]
    election_max_ms: u64,
    /// Snapshot after this many entries.
    #[arg(long, default_value_t = TimingConfig::default().snapshot_every_entries)]
    snapshot_every: u64,
    /// Entries kept in the log after a snapshot.
    #[arg(long, default_value_t = TimingConfig::default().keep_entries_after_snapshot)]
    keep_entries: u64,
    /// Most entries in one append-entries call.
    #[arg(long, default_value_t = TimingConfig::default().max_entries_per_append)]
    max_append_entries: u64,
    /// Client request deadline in ms.
    #[arg(long, default_value_t = 10_000)]
    client_timeout_ms: u64,
    /// Log store of the Raft log: the cluster's own, or one on the `raft-log` crate.
    #[arg(long, value_enum, default_value_t = LogStoreKind::Ours)]
    log_store: LogStoreKind,
    /// With `--log-store raft-log`: how long (µs) its flush thread waits for more writes after
    /// the first before it writes and syncs them (the crate's default, 1 ms, when not given).
    #[arg(long)]
    raft_log_flush_wait_us: Option<u64>,
    /// PEM file of the cluster CA certificate (mutual TLS; with --tls-cert and --tls-key).
    #[arg(long)]
    tls_ca: Option<PathBuf>,
    /// PEM file of this node's certificate (mutual TLS; with --tls-ca and --tls-key).
    #[arg(long)]
    tls_cert: Option<PathBuf>,
    /// PEM file of this node's private key (mutual TLS; with --tls-ca and --tls-cert).
    #[arg(long)]
    tls_key: Option<PathBuf>,
}

/// The TLS files if all three flags are given, `None` if none is, an error naming the missing
/// flags otherwise.
fn tls_files(args: &Args) -> anyhow::Result<Option<TlsFiles>> {
    match (&args.tls_ca, &args.tls_cert, &args.tls_key) {
        (None, None, None) => Ok(None),
        (Some(ca), Some(cert), Some(key)) => Ok(Some(TlsFiles {
            ca_cert: ca.clone(),
            cert: cert.clone(),
            key: key.clone(),
        })),
        (ca, cert, key) => {
            let missing: Vec<&str> = [
                (ca.is_none(), "--tls-ca"),
                (cert.is_none(), "--tls-cert"),
                (key.is_none(), "--tls-key"),
            ]
            .into_iter()
            .filter_map(|(m, flag)| m.then_some(flag))
            .collect();
            anyhow::bail!(
                "missing {}: --tls-ca, --tls-cert and --tls-key go together",
                missing.join(" and ")
            )
        }
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .init();
    let args = Args::parse();
    let tls = match tls_files(&args)? {
        Some(files) => Some(TransportTls::from_files(&files)?),
        None => None,
    };
    let timing = TimingConfig {
        heartbeat_ms: args.heartbeat_ms,
        election_timeout_min_ms: args.election_min_ms,
        election_timeout_max_ms: args.election_max_ms,
        snapshot_every_entries: args.snapshot_every,
        keep_entries_after_snapshot: args.keep_entries,
        purge_batch_entries: args.keep_entries.clamp(1, 64),
        max_entries_per_append: args.max_append_entries,
        ..TimingConfig::default()
    };
    let cfg = NodeConfig {
        id: args.id,
        listen: args.listen,
        data_dir: args.data_dir,
        secret: ClusterSecret::new(&args.secret)?,
        timing,
        cluster_name: "siem-relay".into(),
        client_timeout: Duration::from_millis(args.client_timeout_ms),
        tls,
    };
    let control = control_listener(args.control_listen).await?;
    let node = match args.log_store {
        LogStoreKind::Ours => ClusterNode::start(cfg).await,
        LogStoreKind::RaftLog => {
            let wait = args.raft_log_flush_wait_us.map(Duration::from_micros);
            let log = RaftLogStore::open(&cfg.data_dir.join("raft-log"), wait)
                .context("open the raft-log store")?;
            ClusterNode::start_with_log_store(cfg, log, |network| network).await
        }
    }
    .context("start node")?;
    let control_addr = control.local_addr().context("control listener address")?;
    let (stop_control, control_stopped) = tokio::sync::oneshot::channel::<()>();
    let control_server = serve_control(node.client().clone(), control, async {
        let _ = control_stopped.await;
    });
    {
        let mut out = std::io::stdout().lock();
        writeln!(out, "READY {} {control_addr}", node.local_addr())?;
        out.flush()?;
    }
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    let _ = stop_control.send(());
    control_server.await?.context("control server")?;
    node.shutdown().await?;
    Ok(())
}

/// Binds the control channel's listener; refuses an address other than loopback, since the
/// channel has no authentication.
async fn control_listener(addr: SocketAddr) -> anyhow::Result<tokio::net::TcpListener> {
    if !addr.ip().is_loopback() {
        anyhow::bail!(
            "--control-listen {addr}: the control channel has no authentication, so it listens on loopback only"
        );
    }
    tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("--control-listen {addr}: bind"))
}
