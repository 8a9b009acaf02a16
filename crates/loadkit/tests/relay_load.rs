//! `relay-load` as a process against small in-test nodes serving the generated `Ingest` service
//! (accepting with a shared dedup set, or refusing every call with one status).
#![allow(missing_docs)]

use std::collections::HashSet;
use std::net::SocketAddr;
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use anyhow::{Context, Result};
use relay_proto::ingest::v1 as pb;
use relay_proto::ingest::v1::alert_result::Outcome;
use relay_proto::ingest::v1::ingest_server::{Ingest, IngestServer};
use tonic::transport::Server;
use tonic::transport::server::TcpIncoming;
use tonic::{Code, Request, Response, Status};

#[derive(Default)]
struct Dedup {
    seen: Mutex<HashSet<(String, String)>>,
    seq: AtomicU64,
}

struct Node {
    dedup: Arc<Dedup>,
    refuse: Option<Code>,
}

#[tonic::async_trait]
impl Ingest for Node {
    async fn submit(
        &self,
        request: Request<pb::SubmitRequest>,
    ) -> Result<Response<pb::SubmitResponse>, Status> {
        if let Some(code) = self.refuse {
            return Err(Status::new(code, "refused by the test node"));
        }
        let mut seen = self.dedup.seen.lock().expect("lock");
        let results = request
            .into_inner()
            .alerts
            .into_iter()
            .map(|a| {
                let outcome = if seen.insert((a.source, a.alert_id)) {
                    Outcome::AcceptedSeq(self.dedup.seq.fetch_add(1, Ordering::SeqCst) + 1)
                } else {
                    Outcome::Duplicate(pb::Duplicate {})
                };
                pb::AlertResult {
                    outcome: Some(outcome),
                }
            })
            .collect();
        Ok(Response::new(pb::SubmitResponse { results }))
    }

    async fn status(
        &self,
        _: Request<pb::StatusRequest>,
    ) -> Result<Response<pb::StatusResponse>, Status> {
        Ok(Response::new(pb::StatusResponse::default()))
    }
}

async fn start_node(dedup: &Arc<Dedup>, refuse: Option<Code>) -> Result<SocketAddr> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let node = Node {
        dedup: dedup.clone(),
        refuse,
    };
    tokio::spawn(
        Server::builder()
            .add_service(IngestServer::new(node))
            .serve_with_incoming(TcpIncoming::from(listener)),
    );
    Ok(addr)
}

/// Runs relay-load with `args` plus `--json`; returns its exit code and parsed summary.
async fn relay_load(args: &[&str]) -> Result<(i32, serde_json::Value)> {
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_relay-load"))
        .args(args)
        .arg("--json")
        .stdin(Stdio::null())
        .output()
        .await?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let summary = serde_json::from_str(&stdout).with_context(|| {
        format!(
            "summary JSON; stdout:\n{stdout}\nstderr:\n{}",
            String::from_utf8_lossy(&out.stderr)
        )
    })?;
    Ok((out.status.code().context("exit code")?, summary))
}

#[tokio::test]
async fn accepted_alerts_and_resubmissions_to_the_other_node_are_counted() -> Result<()> {
    let dedup = Arc::new(Dedup::default());
    let a = start_node(&dedup, None).await?;
    let b = start_node(&dedup, None).await?;
    let endpoint = format!("{a},{b}");
    let (code, s) = relay_load(&[
        "--endpoint",
        &endpoint,
        "--rate",
        "0",
        "--count",
        "500",
        "--batch",
        "50",
        "--concurrency",
        "2",
        "--dup-share",
        "0.1",
        "--size",
        "512",
    ])
    .await?;

    assert_eq!(code, 0, "{s}");
    assert_eq!(s["submitted"], 500, "{s}");
    assert_eq!(s["accepted"], 500, "{s}");
    // 0.1 / 0.9 resubmissions per new alert, 10 batches of 50: 55 in all
    assert_eq!(s["resubmitted"], 55, "{s}");
    assert_eq!(s["duplicates"], 55, "{s}");
    assert_eq!(s["resubmitted_accepted"], 0, "{s}");
    assert_eq!(s["error_alerts"], 0, "{s}");
    // new alerts stick to the first node; resubmissions go to the other one
    assert_eq!(s["served_by"][a.to_string()], 10, "{s}");
    assert_eq!(s["served_by"][b.to_string()], 10, "{s}");
    assert!(
        s["latency_ms"]["max"].as_f64().is_some_and(|m| m > 0.0),
        "{s}"
    );
    Ok(())
}

#[tokio::test]
async fn alerts_that_end_in_errors_make_the_exit_status_non_zero() -> Result<()> {
    let dedup = Arc::new(Dedup::default());
    let full = start_node(&dedup, Some(Code::ResourceExhausted)).await?;
    let (code, s) = relay_load(&[
        "--endpoint",
        &full.to_string(),
        "--rate",
        "0",
        "--count",
        "120",
        "--batch",
        "50",
    ])
    .await?;

    assert_eq!(code, 1, "{s}");
    assert_eq!(s["accepted"], 0, "{s}");
    assert_eq!(s["error_alerts"], 120, "{s}");
    assert_eq!(s["errors"]["overloaded"], 120, "{s}");
    assert_eq!(s["calls"], 3, "{s}");
    let sample = s["error_samples"][0].as_str().unwrap_or_default();
    assert!(sample.starts_with(&format!("{full} is overloaded")), "{s}");
    Ok(())
}

#[tokio::test]
async fn a_paced_run_stops_at_its_time_limit() -> Result<()> {
    let dedup = Arc::new(Dedup::default());
    let a = start_node(&dedup, None).await?;
    let (code, s) = relay_load(&[
        "--endpoint",
        &a.to_string(),
        "--rate",
        "400/s",
        "--seconds",
        "0.5",
        "--batch",
        "20",
    ])
    .await?;

    assert_eq!(code, 0, "{s}");
    // batches are due every 50 ms; the one due at 500 ms is not sent
    let accepted = s["accepted"].as_u64().unwrap_or_default();
    assert!(accepted > 0 && accepted <= 200, "{s}");
    assert_eq!(accepted % 20, 0, "{s}");
    Ok(())
}

/// Runs relay-load in syslog mode against a sink; returns the summary and what the sink got.
async fn syslog_run(
    framing: cef::Framing,
    extra: &[&str],
    count: u64,
) -> Result<(i32, serde_json::Value, loadkit::tally::TallySnapshot)> {
    use loadkit::sink::{Sink, SinkConfig};
    let lo: SocketAddr = "127.0.0.1:0".parse()?;
    let udp = framing == cef::Framing::Datagram;
    let sink = Sink::start(SinkConfig {
        tcp: (!udp).then_some(lo),
        udp: udp.then_some(lo),
        framing,
        ..SinkConfig::default()
    })
    .await?;
    let addr = sink.addrs.tcp.or(sink.addrs.udp).context("bound")?;
    let endpoint = addr.to_string();
    let count_text = count.to_string();
    let mut args = vec![
        "--ingest",
        "syslog",
        "--endpoint",
        &endpoint,
        "--count",
        &count_text,
        "--batch",
        "30",
        "--concurrency",
        "2",
        "--first-id",
        "1001",
    ];
    args.extend_from_slice(extra);
    let (code, summary) = relay_load(&args).await?;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while sink.snapshot().unique < count && std::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    Ok((code, summary, sink.snapshot()))
}

#[tokio::test]
async fn syslog_mode_sends_numbered_cef_over_tcp_with_either_framing() -> Result<()> {
    for (framing, name) in [
        (cef::Framing::OctetCounting, "octet-counting"),
        (cef::Framing::Lf, "lf"),
    ] {
        let (code, s, got) = syslog_run(framing, &["--framing", name, "--rate", "0"], 300).await?;
        assert_eq!(code, 0, "{s}");
        assert_eq!(s["mode"], "syslog", "{s}");
        assert_eq!(s["framing"], name, "{s}");
        assert_eq!(s["sent"], 300, "{s}");
        assert_eq!(
            (s["first_id"].clone(), s["last_id"].clone()),
            (1001.into(), 1300.into())
        );
        assert!(
            s["note"]
                .as_str()
                .unwrap_or_default()
                .contains("no per-message acknowledgement"),
            "{s}"
        );
        assert_eq!(got.unique, 300, "{got:?}");
        assert_eq!(got.max_id, 1300, "{got:?}");
        assert_eq!(got.unparsable + got.duplicates, 0, "{got:?}");
    }
    Ok(())
}

#[tokio::test]
async fn syslog_mode_over_udp_sends_one_datagram_per_message_and_counts_copies() -> Result<()> {
    let (code, s, got) = syslog_run(
        cef::Framing::Datagram,
        &[
            "--transport",
            "udp",
            "--rate",
            "2000/s",
            "--dup-share",
            "0.5",
        ],
        120,
    )
    .await?;
    assert_eq!(code, 0, "{s}");
    assert_eq!(s["framing"], "datagram", "{s}");
    assert_eq!(s["sent"], 120, "{s}");
    // one target: the copies go to the same one
    assert_eq!(s["duplicates_sent"], 120, "{s}");
    assert_eq!(got.unique, 120, "{got:?}");
    Ok(())
}

#[tokio::test]
async fn syslog_mode_refuses_grpc_only_options_naming_them() -> Result<()> {
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_relay-load"))
        .args([
            "--ingest",
            "syslog",
            "--endpoint",
            "127.0.0.1:9",
            "--acked",
            "/dev/null",
        ])
        .stdin(Stdio::null())
        .output()
        .await?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("--acked applies to --ingest grpc only"),
        "{stderr}"
    );
    Ok(())
}
