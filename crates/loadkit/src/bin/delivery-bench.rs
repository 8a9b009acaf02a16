//! `delivery-bench`: pushes messages through the delivery engine to `siem-sink` processes and
//! prints figures.
//!
//! - `throughput` (default): N messages of `--size` bytes over one connection, as fast as the
//!   engine confirms them; prints confirmed msg/s, confirmation latency percentiles (enqueue to
//!   confirmation) and the sink's unique/duplicate/gap counts.
//! - `failover`: two sinks behind one DNS name (a dnsmasq the bench starts), a fixed rate, and
//!   `--runs` SIGKILLs of the current sink; prints time from the kill to the first message on the
//!   next address (p50, max) and lost/duplicated messages over all sinks' records.
#![allow(clippy::print_stdout, clippy::unwrap_used)]

use std::io::{BufRead, BufReader};
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use bytes::Bytes;
use clap::{Parser, ValueEnum};
use delivery::{DeliveryConfig, DeliveryEngine, Message, Protocol, TlsSettings};
use testkit::{Dnsmasq, LoopbackNet, TempDir, TestPki, cef_message};
use tokio::sync::mpsc;

#[derive(Clone, Copy, Debug, ValueEnum, PartialEq, Eq)]
enum Proto {
    Tcp,
    Tls,
    Relp,
    Udp,
}

#[derive(Clone, Copy, Debug, ValueEnum, PartialEq, Eq)]
enum Mode {
    Throughput,
    Failover,
}

#[derive(Parser, Debug)]
#[command(about = "Delivery engine benchmark against siem-sink")]
struct Args {
    /// What to measure.
    #[arg(long, value_enum, default_value_t = Mode::Throughput)]
    mode: Mode,
    /// Transport.
    #[arg(long, value_enum, default_value_t = Proto::Tcp)]
    protocol: Proto,
    /// Messages to send (throughput) or per run (failover: total over all runs).
    #[arg(long, default_value_t = 300_000)]
    count: u64,
    /// Size of each syslog message in bytes.
    #[arg(long, default_value_t = 1024)]
    size: usize,
    /// Failover: messages per second (default 2000). Throughput: if set, send at this rate
    /// instead of as fast as possible (for confirmation latency without queueing).
    #[arg(long)]
    rate: Option<u64>,
    /// Failover: number of kills.
    #[arg(long, default_value_t = 10)]
    runs: u32,
    /// `DeliveryConfig::resend_confirmed_within` in milliseconds (default: the engine's).
    #[arg(long)]
    resend_grace_ms: Option<u64>,
    /// Path of the siem-sink binary (default: next to this one).
    #[arg(long)]
    sink_bin: Option<PathBuf>,
}

fn sink_bin(args: &Args) -> Result<PathBuf> {
    if let Some(p) = &args.sink_bin {
        return Ok(p.clone());
    }
    let me = std::env::current_exe()?;
    let p = me.parent().context("exe dir")?.join("siem-sink");
    if !p.exists() {
        bail!(
            "{} not found: build it (cargo build --release -p loadkit)",
            p.display()
        );
    }
    Ok(p)
}

/// A syslog message with a CEF record, `eventId=id`, padded to `size` bytes.
fn message(id: u64, size: usize) -> Bytes {
    Bytes::from(cef_message(id, size))
}

/// A sink process; killed on drop. Its stdout lines arrive on `lines`.
struct SinkProc {
    child: Child,
    addr: SocketAddr,
    lines: std::sync::mpsc::Receiver<serde_json::Value>,
}

impl Drop for SinkProc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_sink(
    bin: &Path,
    proto: Proto,
    listen: SocketAddr,
    dir: &Path,
    record: Option<&Path>,
) -> Result<SinkProc> {
    let mut cmd = Command::new(bin);
    let flag = match proto {
        Proto::Tcp => "--tcp",
        Proto::Tls => "--tls",
        Proto::Relp => "--relp",
        Proto::Udp => "--udp",
    };
    cmd.arg(flag)
        .arg(listen.to_string())
        .arg("--every-ms")
        .arg("100");
    if proto == Proto::Tls {
        cmd.arg("--cert")
            .arg(dir.join("cert.pem"))
            .arg("--key")
            .arg(dir.join("key.pem"));
    }
    if let Some(r) = record {
        cmd.arg("--record").arg(r);
    }
    let mut child = cmd
        .stdout(Stdio::piped())
        .spawn()
        .context("spawn siem-sink")?;
    let stdout = child.stdout.take().context("sink stdout")?;
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { return };
            if let Ok(v) = serde_json::from_str::<serde_json::Value>(&line)
                && tx.send(v).is_err()
            {
                return;
            }
        }
    });
    let first = rx
        .recv_timeout(Duration::from_secs(10))
        .context("sink did not start")?;
    let key = flag.trim_start_matches("--");
    let addr: SocketAddr = first["listening"][key]
        .as_str()
        .context("sink address")?
        .parse()?;
    Ok(SinkProc {
        child,
        addr,
        lines: rx,
    })
}

/// Writes the sinks' certificate and key for `siem.test` into `dir`; returns the CA to trust.
fn write_certs(dir: &Path) -> Result<String> {
    let pki = TestPki::new("siem.test")?;
    std::fs::write(dir.join("cert.pem"), &pki.server_cert_pem)?;
    std::fs::write(dir.join("key.pem"), &pki.server_key_pem)?;
    Ok(pki.ca_pem)
}

fn engine_config(host: &str, port: u16, proto: Proto, cert_pem: &str) -> DeliveryConfig {
    let protocol = match proto {
        Proto::Tcp => Protocol::Tcp,
        Proto::Tls => Protocol::Tls,
        Proto::Relp => Protocol::Relp,
        Proto::Udp => Protocol::Udp,
    };
    let mut c = DeliveryConfig::new(host, port, protocol);
    if proto == Proto::Tls {
        c.tls = Some(TlsSettings {
            trusted_pem: cert_pem.to_string(),
            client_cert_pem: None,
            client_key_pem: None,
            server_name: Some("siem.test".into()),
        });
    }
    c.seed = Some(1);
    c
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

fn fmt_d(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}

async fn throughput(args: &Args) -> Result<()> {
    let dir = TempDir::new("bench")?;
    let cert = write_certs(dir.path())?;
    let bin = sink_bin(args)?;
    let sink = start_sink(
        &bin,
        args.protocol,
        "127.0.0.1:0".parse()?,
        dir.path(),
        None,
    )?;
    let n = args.count;
    print!("generating {n} messages of {} bytes... ", args.size);
    let msgs: Vec<Bytes> = (1..=n).map(|id| message(id, args.size)).collect();
    println!("done");
    let engine = DeliveryEngine::start(engine_config(
        "127.0.0.1",
        sink.addr.port(),
        args.protocol,
        &cert,
    ))?;
    let mut confirmed = engine.confirmed();
    let watcher = tokio::spawn(async move {
        let mut points: Vec<(u64, Instant)> = Vec::with_capacity(1 << 16);
        loop {
            if confirmed.changed().await.is_err() {
                break;
            }
            let c = *confirmed.borrow_and_update();
            if let Some(c) = c {
                points.push((c, Instant::now()));
                if c >= n {
                    break;
                }
            }
        }
        points
    });
    let tx = engine.sender();
    let start = Instant::now();
    let pace = args.rate;
    let producer = tokio::spawn(async move {
        let mut sent_at = Vec::with_capacity(msgs.len());
        let t0 = Instant::now();
        for (i, bytes) in msgs.into_iter().enumerate() {
            if let Some(rate) = pace {
                // Open-loop pacing: message i is due at t0 + i / rate.
                let due = t0 + Duration::from_secs_f64(i as f64 / rate.max(1) as f64);
                tokio::time::sleep_until(due.into()).await;
            }
            if tx
                .send(Message {
                    seq: i as u64 + 1,
                    bytes,
                })
                .await
                .is_err()
            {
                break;
            }
            sent_at.push(Instant::now());
        }
        sent_at
    });
    let sent_at = producer.await?;
    let points = tokio::time::timeout(Duration::from_secs(300), watcher).await??;
    let end = points.last().map(|p| p.1).context("nothing confirmed")?;
    let elapsed = end.duration_since(start);
    let mut lat = Vec::with_capacity(sent_at.len());
    let mut j = 0;
    for (i, t) in sent_at.iter().enumerate() {
        let seq = i as u64 + 1;
        while j < points.len() && points[j].0 < seq {
            j += 1;
        }
        if let Some((_, c)) = points.get(j) {
            lat.push(c.saturating_duration_since(*t));
        }
    }
    lat.sort();
    let st = engine.status();
    engine.shutdown(Duration::from_secs(5)).await;
    // The sink's count, once it has everything (UDP may lose datagrams in the kernel).
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut stats = serde_json::Value::Null;
    while Instant::now() < deadline {
        if let Ok(v) = sink.lines.recv_timeout(Duration::from_millis(200))
            && v.get("stats").is_some()
        {
            stats = v["stats"].clone();
            if stats["unique"].as_u64() == Some(n) {
                break;
            }
        }
    }
    let load = match args.rate {
        Some(r) => format!("paced at {r} msg/s"),
        None => "full load".to_string(),
    };
    println!(
        "delivery-bench throughput protocol={:?} count={n} size={} ({load}): {:.0} msg/s confirmed ({:.1} MB/s, {:.3} s)",
        args.protocol,
        args.size,
        n as f64 / elapsed.as_secs_f64(),
        (n as f64 * args.size as f64) / elapsed.as_secs_f64() / 1e6,
        elapsed.as_secs_f64()
    );
    println!(
        "  confirmation latency (enqueue -> confirmed, {load}): p50 {} p90 {} p99 {} max {}",
        fmt_d(percentile(&lat, 0.5)),
        fmt_d(percentile(&lat, 0.9)),
        fmt_d(percentile(&lat, 0.99)),
        fmt_d(percentile(&lat, 1.0))
    );
    println!(
        "  engine: sent {} confirmed {} resent {} failovers {}; sink: unique {} duplicates {} gaps {} unparsable {}",
        st.sent,
        st.confirmed,
        st.resent,
        st.failovers,
        stats["unique"],
        stats["duplicates"],
        stats["gaps"],
        stats["unparsable"]
    );
    Ok(())
}

async fn failover(args: &Args) -> Result<()> {
    let dir = TempDir::new("bench")?;
    let cert = write_certs(dir.path())?;
    let bin = sink_bin(args)?;
    let net = LoopbackNet::random();
    let ips = [net.ip(1), net.ip(2)];
    let rec = |i: usize, round: u32| dir.path().join(format!("ids-{i}-{round}.txt"));
    let first = start_sink(
        &bin,
        args.protocol,
        SocketAddr::new(ips[0], 0),
        dir.path(),
        Some(&rec(0, 0)),
    )?;
    let port = first.addr.port();
    let second = start_sink(
        &bin,
        args.protocol,
        SocketAddr::new(ips[1], port),
        dir.path(),
        Some(&rec(1, 0)),
    )?;
    let mut sinks = vec![first, second];
    let mut generation = [0u32; 2];
    let records: Vec<(&str, IpAddr)> = ips.iter().map(|ip| ("bench.test", *ip)).collect();
    let dns = Dnsmasq::start(net.ip(53), &records, 60)?;
    let mut config = engine_config("bench.test", port, args.protocol, &cert);
    config.nameservers = vec![dns.addr];
    if let Some(ms) = args.resend_grace_ms {
        config.resend_confirmed_within = Duration::from_millis(ms);
    }
    let engine = DeliveryEngine::start(config)?;
    let n = args.count;
    let (done_tx, mut done_rx) = mpsc::channel::<()>(1);
    let tx = engine.sender();
    let rate = args.rate.unwrap_or(2000).max(1);
    let size = args.size;
    let producer = tokio::spawn(async move {
        let per_tick = rate.div_ceil(1000);
        let mut tick = tokio::time::interval(Duration::from_micros(1_000_000 * per_tick / rate));
        let mut id = 0;
        while id < n {
            tick.tick().await;
            for _ in 0..per_tick {
                id += 1;
                if id > n
                    || tx
                        .send(Message {
                            seq: id,
                            bytes: message(id, size),
                        })
                        .await
                        .is_err()
                {
                    break;
                }
            }
        }
        drop(done_tx);
    });
    let mut times = Vec::new();
    let run_every = Duration::from_secs_f64(n as f64 / rate as f64 / (args.runs as f64 + 1.0));
    let mut confirmed = engine.confirmed();
    for run in 0..args.runs {
        tokio::time::sleep(run_every).await;
        let Some(victim) = engine.status().current else {
            bail!("no current address before run {run}: {:?}", engine.status());
        };
        let i = ips
            .iter()
            .position(|ip| *ip == victim.ip())
            .context("victim")?;
        let before = engine.status().failovers;
        let killed = Instant::now();
        drop(sinks.remove(i)); // SIGKILL
        let deadline = killed + Duration::from_secs(10);
        loop {
            let st = engine.status();
            if st.failovers > before
                && st
                    .last_failover
                    .as_ref()
                    .is_some_and(|f| f.resumed_at > killed)
            {
                let f = st.last_failover.unwrap();
                times.push(f.resumed_at.duration_since(killed));
                println!(
                    "  run {run}: killed {victim}, first message on {} after {} (detected after {}, resent {})",
                    f.to,
                    fmt_d(f.resumed_at.duration_since(killed)),
                    fmt_d(f.detected_at.saturating_duration_since(killed)),
                    f.resent
                );
                break;
            }
            if Instant::now() > deadline {
                bail!("no failover within 10 s: {st:?}");
            }
            tokio::time::sleep(Duration::from_micros(200)).await;
        }
        // Bring the killed address back for the next run.
        generation[i] += 1;
        let again = start_sink(
            &bin,
            args.protocol,
            victim,
            dir.path(),
            Some(&rec(i, generation[i])),
        )?;
        sinks.insert(i.min(sinks.len()), again);
    }
    let _ = done_rx.recv().await;
    producer.await?;
    tokio::time::timeout(
        Duration::from_secs(60),
        confirmed.wait_for(|c| *c == Some(n)),
    )
    .await??;
    let st = engine.status();
    engine.shutdown(Duration::from_secs(5)).await;
    // Let the live sinks record what they have received before stopping them.
    let count = |dir: &Path| -> Result<Vec<u32>> {
        let mut seen = vec![0u32; n as usize + 1];
        for entry in std::fs::read_dir(dir)? {
            let p = entry?.path();
            if p.file_name()
                .is_some_and(|f| f.to_string_lossy().starts_with("ids-"))
            {
                for line in std::fs::read_to_string(&p)?.lines() {
                    if let Ok(id) = line.parse::<usize>()
                        && id <= n as usize
                    {
                        seen[id] += 1;
                    }
                }
            }
        }
        Ok(seen)
    };
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut seen = count(dir.path())?;
    while seen[1..].contains(&0) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
        seen = count(dir.path())?;
    }
    drop(sinks);
    let lost_ids: Vec<usize> = (1..=n as usize).filter(|i| seen[*i] == 0).collect();
    if !lost_ids.is_empty() {
        println!(
            "  lost ids (first 20): {:?}",
            &lost_ids[..lost_ids.len().min(20)]
        );
    }
    let lost = lost_ids.len();
    let dups: u32 = seen[1..].iter().map(|c| c.saturating_sub(1)).sum();
    times.sort();
    println!(
        "delivery-bench failover protocol={:?} rate={rate}/s runs={} count={n}: first message on the next address p50 {} max {}; lost {lost} duplicates {dups} (engine resent {}, failovers {})",
        args.protocol,
        times.len(),
        fmt_d(percentile(&times, 0.5)),
        fmt_d(percentile(&times, 1.0)),
        st.resent,
        st.failovers
    );
    Ok(())
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<()> {
    let args = Args::parse();
    match args.mode {
        Mode::Throughput => throughput(&args).await,
        Mode::Failover => failover(&args).await,
    }
}
