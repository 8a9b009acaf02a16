//! The engine records its metrics through the `metrics` facade: a small recording backend
//! (global to this test binary) checks sent/confirmed/resent counters, failovers, per-address
//! state, resolutions and latency histograms during a failover between two real rsyslog.
#![allow(clippy::unwrap_used, clippy::print_stdout, missing_docs)]

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Result, ensure};
use bytes::Bytes;
use delivery::status::metric;
use delivery::{DeliveryConfig, DeliveryEngine, Message, Protocol};
use metrics::{Counter, Gauge, Histogram, Key, KeyName, Metadata, Recorder, SharedString, Unit};
use testkit::*;

type Store = Arc<Mutex<HashMap<String, f64>>>;

/// One value per metric name and label set: counters sum, gauges hold, histograms count samples.
struct Cell {
    key: String,
    store: Store,
}

impl metrics::CounterFn for Cell {
    fn increment(&self, v: u64) {
        *self
            .store
            .lock()
            .unwrap()
            .entry(self.key.clone())
            .or_default() += v as f64;
    }
    fn absolute(&self, v: u64) {
        self.store
            .lock()
            .unwrap()
            .insert(self.key.clone(), v as f64);
    }
}

impl metrics::GaugeFn for Cell {
    fn increment(&self, v: f64) {
        *self
            .store
            .lock()
            .unwrap()
            .entry(self.key.clone())
            .or_default() += v;
    }
    fn decrement(&self, v: f64) {
        *self
            .store
            .lock()
            .unwrap()
            .entry(self.key.clone())
            .or_default() -= v;
    }
    fn set(&self, v: f64) {
        self.store.lock().unwrap().insert(self.key.clone(), v);
    }
}

impl metrics::HistogramFn for Cell {
    fn record(&self, _v: f64) {
        *self
            .store
            .lock()
            .unwrap()
            .entry(self.key.clone())
            .or_default() += 1.0;
    }
}

struct TestRecorder(Store);

impl TestRecorder {
    fn cell(&self, key: &Key) -> Arc<Cell> {
        let mut name = key.name().to_string();
        for l in key.labels() {
            name.push_str(&format!("{{{}={}}}", l.key(), l.value()));
        }
        Arc::new(Cell {
            key: name,
            store: self.0.clone(),
        })
    }
}

impl Recorder for TestRecorder {
    fn describe_counter(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_gauge(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_histogram(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn register_counter(&self, key: &Key, _: &Metadata<'_>) -> Counter {
        Counter::from_arc(self.cell(key))
    }
    fn register_gauge(&self, key: &Key, _: &Metadata<'_>) -> Gauge {
        Gauge::from_arc(self.cell(key))
    }
    fn register_histogram(&self, key: &Key, _: &Metadata<'_>) -> Histogram {
        Histogram::from_arc(self.cell(key))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_report_sends_confirmations_failover_and_address_state() -> Result<()> {
    let store: Store = Arc::default();
    metrics::set_global_recorder(TestRecorder(store.clone()))
        .map_err(|_| anyhow::anyhow!("recorder already set"))?;
    let get = |k: &str| store.lock().unwrap().get(k).copied().unwrap_or(0.0);

    let net = LoopbackNet::random();
    let ips = [net.ip(71), net.ip(72)];
    let port = free_port(ips[0]);
    let mut a = Rsyslog::start(Receiver::Tcp, SocketAddr::new(ips[0], port))?;
    let b = Rsyslog::start(Receiver::Tcp, SocketAddr::new(ips[1], port))?;
    let records: Vec<(&str, IpAddr)> = ips.iter().map(|ip| ("siem.test", *ip)).collect();
    let dns = Dnsmasq::start(net.ip(53), &records, 60)?;
    let mut config = DeliveryConfig::new("siem.test", port, Protocol::Tcp);
    config.nameservers = vec![dns.addr];
    let engine = DeliveryEngine::start(config)?;
    let send = |seq: u64| {
        let engine = &engine;
        async move {
            engine
                .send(Message {
                    seq,
                    bytes: Bytes::from(cef_message(seq, 300)),
                })
                .await?;
            let mut rx = engine.confirmed();
            tokio::time::timeout(Duration::from_secs(15), rx.wait_for(|c| *c == Some(seq)))
                .await??;
            anyhow::Ok(())
        }
    };
    for seq in 1..=10 {
        send(seq).await?;
    }
    let first = engine.status().current.unwrap();
    ensure!(first == a.addr || first == b.addr);
    if first == a.addr {
        a.kill();
    } else {
        drop(b);
    }
    for seq in 11..=20 {
        send(seq).await?;
    }
    let status = engine.status();
    ensure!(status.current != Some(first), "{status:?}");
    let snapshot = store.lock().unwrap().clone();
    println!("{snapshot:#?}");
    ensure!(get(metric::CONFIRMED) >= 20.0);
    ensure!(get(&format!("{}{{protocol=tcp}}", metric::SENT)) >= 20.0);
    ensure!(get(metric::FAILOVERS) == 1.0);
    ensure!(get(&format!("{}{{address={first}}}", metric::ADDRESS_UP)) == 0.0);
    ensure!(get(&format!("{}{{address={first}}}", metric::ADDRESS_FAILURES)) >= 1.0);
    let now_current = status.current.unwrap();
    ensure!(get(&format!("{}{{address={now_current}}}", metric::ADDRESS_UP)) == 1.0);
    ensure!(get(&format!("{}{{result=ok}}", metric::RESOLUTIONS)) >= 1.0);
    ensure!(get(metric::RESOLVED_ADDRESSES) == 2.0);
    ensure!(
        get(metric::CONFIRM_LATENCY) >= 20.0,
        "one latency sample per confirmation"
    );
    ensure!(get(metric::FAILOVER_SECONDS) == 1.0);
    ensure!(get(metric::BYTES) > 20.0 * 300.0);
    engine.shutdown(Duration::from_secs(2)).await;
    Ok(())
}
