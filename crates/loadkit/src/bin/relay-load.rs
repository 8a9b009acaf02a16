//! `relay-load`: submits generated `file_web` alerts to a running siem-relay cluster through
//! `relay-client` and prints, once a second and at the end, accepted alerts per second,
//! duplicates, invalid alerts, errors by kind and submit-to-answer latency.
//!
//! New alerts come at `--rate` (open loop, batches spaced evenly) or flat out (`--rate 0`, as
//! fast as `--concurrency` calls in flight are answered), for `--seconds` or `--count`. With
//! `--dup-share`, part of each answered batch is submitted again to a different node than the one
//! that answered it, and must come back `duplicate`. Alert IDs are `<prefix>-<counter>`, the
//! prefix unique per run unless `--id-prefix` is given.
//!
//! `--ingest syslog` sends the same alerts as CEF over syslog (TCP octet-counted or LF, or UDP)
//! to the syslog listeners given as `--endpoint`, `--concurrency` connections at once; event IDs
//! are numbers from `--first-id`, `dvchost` is the run's source. Syslog has no acknowledgement:
//! it prints what was sent, and what counts is what the SIEM received (see
//! `loadkit::syslog_load`).
//!
//! `--acked FILE` (gRPC) appends the ID of every alert the cluster acknowledged (accepted, or
//! duplicate on its first submission) to FILE, one per line. `--status` prints each endpoint's
//! status as a JSON line and exits.
//!
//! Exit status: 0 when every alert was answered (syslog: written), 1 when any alert's call ended
//! in an error after the client's retries (syslog: a batch was given up), 2 when the run could
//! not start.
#![allow(clippy::print_stdout)]

use std::io::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::pin::pin;
use std::process::ExitCode;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::Parser;
use loadkit::alert_gen::{AlertGenerator, run_prefix};
use loadkit::load_plan::{DuplicatePicker, Rate};
use loadkit::load_tally::LoadTally;
use loadkit::syslog_load::{self, NOT_ACKNOWLEDGED, SyslogLoad, Transport};
use relay_client::{Alert, Client, ClientConfig, Endpoint, Outcome, RetryPolicy, TlsOptions};
use tokio::sync::{mpsc, watch};

/// mimalloc, as the relay uses: with glibc's malloc the generator's allocations took a large part
/// of relay-load's CPU, which it shares with the cluster it measures.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Largest batch the ingest API takes.
const MAX_BATCH: usize = 4_096;

#[derive(Parser, Debug)]
#[command(
    name = "relay-load",
    about = "Submits generated alerts to a siem-relay cluster and reports accepted/s, duplicates, errors and latency"
)]
struct Args {
    /// Where the nodes are: a round-robin DNS name with port (`relay.example:7001`) or a
    /// comma-separated list of `host:port`.
    /// With `--ingest syslog`: the syslog listeners, a comma-separated list of `host:port`.
    #[arg(long, env = "RELAY_ENDPOINT")]
    endpoint: String,
    /// How alerts enter the cluster: `grpc` (the ingest API) or `syslog` (CEF over syslog to
    /// the nodes' syslog listeners, or to any syslog receiver).
    #[arg(long, value_enum, default_value = "grpc")]
    ingest: Ingest,
    /// Syslog mode: `tcp` or `udp`.
    #[arg(long, value_enum, default_value = "tcp")]
    transport: TransportArg,
    /// Syslog mode over TCP: `octet-counting` (RFC 6587) or `lf`.
    #[arg(long, value_enum, default_value = "octet-counting")]
    framing: FramingArg,
    /// Syslog mode: the `eventId` of the first alert (numbers, one per new alert).
    #[arg(long, default_value_t = 1)]
    first_id: u64,
    /// gRPC: append the ID of every acknowledged alert to this file, one per line.
    #[arg(long)]
    acked: Option<PathBuf>,
    /// Print each endpoint's status (node, leader, term) as a JSON line and exit.
    #[arg(long)]
    status: bool,
    /// DNS server (`ip:port`) for the endpoint's names, instead of the system configuration.
    #[arg(long)]
    nameserver: Option<SocketAddr>,
    /// New alerts per second (`5000/s`), or `0` for as fast as the cluster answers.
    #[arg(long, default_value = "1000/s")]
    rate: Rate,
    /// Stop generating after this many seconds (10 when neither this nor --count is given).
    #[arg(long)]
    seconds: Option<f64>,
    /// Stop after this many new alerts.
    #[arg(long)]
    count: Option<u64>,
    /// Alerts per submit call (1..=4096); syslog mode: messages per write.
    #[arg(long, default_value_t = 100)]
    batch: usize,
    /// Submit calls in flight at once; syslog mode: connections (spread over the endpoints).
    #[arg(long, default_value_t = 4)]
    concurrency: usize,
    /// Bytes of extension payload (keys and values) per alert.
    #[arg(long, default_value_t = 1024)]
    size: usize,
    /// Share of all submitted alerts that are resubmissions to a different node (0.0..=0.5).
    #[arg(long, default_value_t = 0.0)]
    dup_share: f64,
    /// Alert ID prefix (default `load-<unix ms, hex>-<pid>`, unique per run).
    #[arg(long)]
    id_prefix: Option<String>,
    /// Source (sensor name) of the alerts (default `relay-load`; syslog mode: the ID prefix,
    /// which is the syslog HOSTNAME and CEF `dvchost`).
    #[arg(long)]
    source: Option<String>,
    /// Timeout of one attempt on one node, in milliseconds.
    #[arg(long, default_value_t = 5_000)]
    call_timeout_ms: u64,
    /// Overall deadline of one call over all its attempts, in milliseconds.
    #[arg(long, default_value_t = 15_000)]
    deadline_ms: u64,
    /// Most attempts of one call.
    #[arg(long, default_value_t = 6)]
    max_attempts: u32,
    /// CA certificate (PEM) of the nodes: TLS; plain HTTP/2 without it.
    #[arg(long)]
    ca_file: Option<PathBuf>,
    /// Name to verify in the nodes' certificates (default: the host of the endpoint entry).
    #[arg(long)]
    server_name: Option<String>,
    /// File holding a bearer token, sent as `authorization: Bearer <token>`.
    #[arg(long)]
    token_file: Option<PathBuf>,
    /// Write the final summary as JSON to stdout (progress lines go to stderr).
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Ingest {
    Grpc,
    Syslog,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum TransportArg {
    Tcp,
    Udp,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum FramingArg {
    OctetCounting,
    Lf,
}

/// One submit call to make: new alerts, and how many of them to resubmit elsewhere once answered.
struct Job {
    alerts: Vec<Alert>,
    resubmit: usize,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn client_config(args: &Args) -> Result<ClientConfig> {
    let mut config = ClientConfig::new(Endpoint::parse(&args.endpoint)?);
    config.nameserver = args.nameserver;
    config.retry = RetryPolicy {
        call_timeout: Duration::from_millis(args.call_timeout_ms),
        deadline: Duration::from_millis(args.deadline_ms),
        max_attempts: args.max_attempts,
        ..RetryPolicy::default()
    };
    if let Some(path) = &args.ca_file {
        let ca_pem = std::fs::read_to_string(path)
            .with_context(|| format!("read CA file {}", path.display()))?;
        config.tls = Some(TlsOptions {
            ca_pem,
            server_name: args.server_name.clone(),
        });
    }
    if let Some(path) = &args.token_file {
        let token = std::fs::read_to_string(path)
            .with_context(|| format!("read token file {}", path.display()))?;
        config.bearer_token = Some(token.trim().to_string());
    }
    Ok(config)
}

fn check(args: &Args) -> Result<()> {
    if !(1..=MAX_BATCH).contains(&args.batch) {
        bail!("--batch must be in 1..={MAX_BATCH}");
    }
    if args.concurrency == 0 {
        bail!("--concurrency must be at least 1");
    }
    if args.seconds.is_some_and(|s| !(s > 0.0 && s.is_finite())) {
        bail!("--seconds must be positive");
    }
    if args.count == Some(0) {
        bail!("--count must be at least 1");
    }
    Ok(())
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Makes batches at the rate until the count, the time limit or Ctrl-C; returns the alerts made.
async fn dispatch(
    args: &Args,
    mut generator: AlertGenerator,
    mut duplicates: DuplicatePicker,
    jobs: mpsc::Sender<Job>,
    start: Instant,
) -> u64 {
    let stop_at = loadkit::load_plan::stop_at(start, args.seconds, args.count);
    let mut until_stop = pin!(tokio::time::sleep_until(stop_at.into()));
    let mut interrupted = pin!(tokio::signal::ctrl_c());
    let mut index = 0u64;
    loop {
        let left = args.count.map_or(u64::MAX, |c| c - generator.generated());
        if left == 0 {
            break;
        }
        let due = tokio::time::Instant::from_std(start + args.rate.due(index, args.batch));
        tokio::select! {
            biased;
            _ = &mut interrupted => break,
            _ = &mut until_stop => break,
            _ = tokio::time::sleep_until(due) => {}
        }
        let n = args.batch.min(usize::try_from(left).unwrap_or(usize::MAX));
        let job = Job {
            alerts: generator.batch(n, now_ms()),
            resubmit: duplicates.take(n),
        };
        tokio::select! {
            biased;
            _ = &mut interrupted => break,
            _ = &mut until_stop => break,
            sent = jobs.send(job) => if sent.is_err() { break },
        }
        index += 1;
    }
    generator.generated()
}

/// Takes jobs until the queue closes: submits, then resubmits part of the batch elsewhere.
async fn work(
    client: Client,
    jobs: Arc<tokio::sync::Mutex<mpsc::Receiver<Job>>>,
    tally: Arc<Mutex<LoadTally>>,
    acked: Option<Arc<Mutex<std::io::BufWriter<std::fs::File>>>>,
) {
    loop {
        let job = jobs.lock().await.recv().await;
        let Some(Job { alerts, resubmit }) = job else {
            return;
        };
        let again: Vec<Alert> = alerts[..resubmit].to_vec();
        let ids: Vec<String> = match &acked {
            Some(_) => alerts.iter().map(|a| a.alert_id.clone()).collect(),
            None => Vec::new(),
        };
        let n = alerts.len();
        let t = Instant::now();
        let first = client.submit_served(alerts).await;
        let took = t.elapsed();
        let served = match first {
            Ok(served) => {
                lock(&tally).answered(&served, false, took);
                if let Some(file) = &acked {
                    write_acked(file, &ids, &served.value);
                }
                served
            }
            Err(e) => {
                lock(&tally).failed(n, false, &e, took);
                continue;
            }
        };
        // Alerts that were stored (or already known): the invalid ones would only be refused again.
        let again: Vec<Alert> = again
            .into_iter()
            .zip(&served.value)
            .filter(|(_, o)| !matches!(o, Outcome::Invalid { .. }))
            .map(|(a, _)| a)
            .collect();
        if again.is_empty() {
            continue;
        }
        let n = again.len();
        let t = Instant::now();
        match client.submit_elsewhere(again, served.addr).await {
            Ok(s) => lock(&tally).answered(&s, true, t.elapsed()),
            Err(e) => lock(&tally).failed(n, true, &e, t.elapsed()),
        }
    }
}

/// Appends the IDs of the acknowledged alerts (accepted, or duplicate: stored by an earlier
/// attempt of the same call) to the `--acked` file.
fn write_acked(
    file: &Mutex<std::io::BufWriter<std::fs::File>>,
    ids: &[String],
    outcomes: &[Outcome],
) {
    let mut f = lock(file);
    for (id, o) in ids.iter().zip(outcomes) {
        if matches!(o, Outcome::Accepted { .. } | Outcome::Duplicate) {
            let _ = writeln!(f, "{id}");
        }
    }
}

/// Prints a progress line every second until `done`; returns the tally of the printed periods.
async fn report(
    tally: Arc<Mutex<LoadTally>>,
    start: Instant,
    to_stderr: bool,
    mut done: watch::Receiver<bool>,
) -> LoadTally {
    let mut total = LoadTally::default();
    let second = Duration::from_secs(1);
    let mut tick = tokio::time::interval_at(tokio::time::Instant::from_std(start + second), second);
    let mut last = start;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = done.wait_for(|d| *d) => return total,
        }
        let period = std::mem::take(&mut *lock(&tally));
        let now = Instant::now();
        let line = period.progress_line(now - start, now - last);
        last = now;
        total.merge(&period);
        emit(&line, to_stderr);
    }
}

fn emit(line: &str, to_stderr: bool) {
    if to_stderr {
        eprintln!("{line}");
    } else {
        println!("{line}");
        let _ = std::io::stdout().flush();
    }
}

async fn run(args: Args) -> Result<ExitCode> {
    check(&args)?;
    if args.status {
        return print_status(&args).await;
    }
    if args.ingest == Ingest::Syslog {
        return run_syslog(args).await;
    }
    let client = Client::new(client_config(&args)?)?;
    let duplicates = DuplicatePicker::new(args.dup_share).map_err(anyhow::Error::msg)?;
    let prefix = args.id_prefix.clone().unwrap_or_else(run_prefix);
    let source = args.source.clone().unwrap_or_else(|| "relay-load".into());
    let generator = AlertGenerator::new(prefix.clone(), source, args.size);
    let acked = match &args.acked {
        Some(p) => Some(Arc::new(Mutex::new(std::io::BufWriter::new(
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(p)
                .with_context(|| format!("--acked: open {}", p.display()))?,
        )))),
        None => None,
    };
    let rate = match args.rate.0 {
        Some(r) => format!("{r}/s"),
        None => "flat out".to_string(),
    };
    emit(
        &format!(
            "relay-load: endpoint {} rate {rate} batch {} concurrency {} size {} dup-share {} ids {prefix}-N",
            args.endpoint, args.batch, args.concurrency, args.size, args.dup_share
        ),
        args.json,
    );

    let tally = Arc::new(Mutex::new(LoadTally::default()));
    let (job_tx, job_rx) = mpsc::channel::<Job>(args.concurrency);
    let job_rx = Arc::new(tokio::sync::Mutex::new(job_rx));
    let workers: Vec<_> = (0..args.concurrency)
        .map(|_| {
            tokio::spawn(work(
                client.clone(),
                job_rx.clone(),
                tally.clone(),
                acked.clone(),
            ))
        })
        .collect();
    let start = Instant::now();
    let (done_tx, done_rx) = watch::channel(false);
    let reporter = tokio::spawn(report(tally.clone(), start, args.json, done_rx));

    dispatch(&args, generator, duplicates, job_tx, start).await;
    for w in workers {
        w.await.context("worker")?;
    }
    let elapsed = start.elapsed();
    let _ = done_tx.send(true);
    let mut total = reporter.await.context("reporter")?;
    total.merge(&lock(&tally));

    if let Some(file) = &acked {
        lock(file).flush().context("--acked: write")?;
    }
    let summary = total.summary(elapsed);
    if args.json {
        println!("{}", serde_json::to_string_pretty(&summary)?);
    } else {
        println!("{}", summary.to_text());
    }
    Ok(if summary.error_alerts == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// `--status`: one JSON line per endpoint entry with that node's view.
async fn print_status(args: &Args) -> Result<ExitCode> {
    let mut all_answered = true;
    for entry in args
        .endpoint
        .split(',')
        .map(str::trim)
        .filter(|e| !e.is_empty())
    {
        let mut config = client_config(args)?;
        config.endpoint = Endpoint::parse(entry)?;
        config.retry.max_attempts = 1;
        let line = match Client::new(config)?.status().await {
            Ok(s) => serde_json::json!({
                "endpoint": entry,
                "node_id": s.node_id,
                "leader_id": s.leader_id,
                "term": s.term,
                "last_applied": s.last_applied,
                "delivered_up_to": s.delivered_up_to,
                "outbox_records": s.outbox_records,
            }),
            Err(e) => {
                all_answered = false;
                serde_json::json!({ "endpoint": entry, "error": e.to_string() })
            }
        };
        println!("{line}");
    }
    Ok(if all_answered {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// `--ingest syslog`.
async fn run_syslog(args: Args) -> Result<ExitCode> {
    if args.nameserver.is_some() || args.ca_file.is_some() || args.token_file.is_some() {
        bail!("--nameserver, --ca-file and --token-file apply to --ingest grpc only");
    }
    if args.acked.is_some() {
        bail!("--acked applies to --ingest grpc only (syslog has no acknowledgement)");
    }
    let mut targets = Vec::new();
    for entry in args
        .endpoint
        .split(',')
        .map(str::trim)
        .filter(|e| !e.is_empty())
    {
        let found: Vec<SocketAddr> = tokio::net::lookup_host(entry)
            .await
            .with_context(|| format!("--endpoint: `{entry}`: expected host:port"))?
            .collect();
        if found.is_empty() {
            bail!("--endpoint: `{entry}` has no address");
        }
        targets.extend(found);
    }
    let source = args
        .source
        .clone()
        .or(args.id_prefix.clone())
        .unwrap_or_else(run_prefix);
    let load = SyslogLoad {
        targets,
        transport: match args.transport {
            TransportArg::Tcp => Transport::Tcp,
            TransportArg::Udp => Transport::Udp,
        },
        framing: match args.framing {
            FramingArg::OctetCounting => cef::Framing::OctetCounting,
            FramingArg::Lf => cef::Framing::Lf,
        },
        rate: args.rate,
        seconds: args.seconds,
        count: args.count,
        batch: args.batch,
        connections: args.concurrency,
        size: args.size,
        dup_share: args.dup_share,
        source,
        first_id: args.first_id,
    };
    let rate = match args.rate.0 {
        Some(r) => format!("{r}/s"),
        None => "flat out".to_string(),
    };
    emit(
        &format!(
            "relay-load: syslog {:?} to {:?} rate {rate} batch {} connections {} size {} dup-share {} dvchost {} eventId from {}",
            load.transport,
            load.targets,
            args.batch,
            args.concurrency,
            args.size,
            args.dup_share,
            load.source,
            load.first_id
        ),
        args.json,
    );
    emit(&format!("relay-load: {NOT_ACKNOWLEDGED}"), args.json);
    let json = args.json;
    let summary = syslog_load::run(load, move |line| emit(line, json)).await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&summary)?);
    } else {
        println!("{}", summary.to_text());
    }
    Ok(if summary.given_up == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("relay-load: cannot start the runtime: {e}");
            return ExitCode::from(2);
        }
    };
    match runtime.block_on(run(args)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("relay-load: {e:#}");
            ExitCode::from(2)
        }
    }
}
