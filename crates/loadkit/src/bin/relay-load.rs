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
//! Exit status: 0 when every alert was answered, 1 when any alert's call ended in an error after
//! the client's retries, 2 when the run could not start.
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
use relay_client::{Alert, Client, ClientConfig, Endpoint, Outcome, RetryPolicy, TlsOptions};
use tokio::sync::{mpsc, watch};

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
    #[arg(long, env = "RELAY_ENDPOINT")]
    endpoint: String,
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
    /// Alerts per submit call (1..=4096).
    #[arg(long, default_value_t = 100)]
    batch: usize,
    /// Submit calls in flight at once.
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
    /// Source (sensor name) of the alerts.
    #[arg(long, default_value = "relay-load")]
    source: String,
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
    let seconds = match (args.seconds, args.count) {
        (None, None) => Some(10.0),
        (s, _) => s,
    };
    let stop_at =
        seconds.map(|s| tokio::time::Instant::from_std(start + Duration::from_secs_f64(s)));
    let until_stop = async {
        match stop_at {
            Some(t) => tokio::time::sleep_until(t).await,
            None => std::future::pending().await,
        }
    };
    let mut until_stop = pin!(until_stop);
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
) {
    loop {
        let job = jobs.lock().await.recv().await;
        let Some(Job { alerts, resubmit }) = job else {
            return;
        };
        let again: Vec<Alert> = alerts[..resubmit].to_vec();
        let n = alerts.len();
        let t = Instant::now();
        let first = client.submit_served(alerts).await;
        let took = t.elapsed();
        let served = match first {
            Ok(served) => {
                lock(&tally).answered(&served, false, took);
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
    let client = Client::new(client_config(&args)?)?;
    let duplicates = DuplicatePicker::new(args.dup_share).map_err(anyhow::Error::msg)?;
    let prefix = args.id_prefix.clone().unwrap_or_else(run_prefix);
    let generator = AlertGenerator::new(prefix.clone(), args.source.clone(), args.size);
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
        .map(|_| tokio::spawn(work(client.clone(), job_rx.clone(), tally.clone())))
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
