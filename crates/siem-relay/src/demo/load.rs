//! The demo's load: sample alerts of every catalogue type, submitted in batches through
//! `relay-client` to the three nodes' API addresses, every acknowledged alert ID kept. Every
//! tenth batch is submitted a second time to another node, to show the cluster-wide dedup.

use anyhow::Context;
use relay_client::{Alert, Client, ClientConfig, Endpoint, ErrorKind, Importance, Outcome};
use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// Alerts per batch.
const BATCH: usize = 10;
/// Time between batches (so 100 alerts a second).
const PERIOD: Duration = Duration::from_millis(100);
/// Every this many batches, the same batch goes to another node too.
const RESUBMIT_EVERY: u64 = 10;
/// How long one batch may go unanswered (while a leader is elected, calls fail) before the demo
/// gives up.
const BATCH_DEADLINE: Duration = Duration::from_secs(60);
/// Pause after a failed call before the same batch is submitted again.
const RETRY_PAUSE: Duration = Duration::from_millis(200);

/// The sample alerts: one per catalogue type in turn, numbered IDs unique to the run.
#[derive(Debug)]
pub struct SampleAlerts {
    prefix: String,
    made: u64,
}

impl SampleAlerts {
    /// Alerts with IDs `{prefix}-1`, `{prefix}-2`, ...
    pub fn new(prefix: impl Into<String>) -> Self {
        Self {
            prefix: prefix.into(),
            made: 0,
        }
    }

    /// The next alert.
    pub fn next_alert(&mut self, time_ms: i64) -> Alert {
        self.made += 1;
        let n = self.made;
        let types = cef::catalogue::ALERT_TYPES;
        let token = types[(n % types.len() as u64) as usize].token;
        Alert {
            source: format!("sensor-{}", 1 + n % 4),
            alert_id: format!("{}-{n}", self.prefix),
            alert_type: token.to_owned(),
            importance: [Importance::Low, Importance::Medium, Importance::High][(n % 3) as usize],
            time_ms,
            pairs: sample_pairs(token, n),
        }
    }
}

/// Plausible extension values for an alert of type `token` (each key listed for the type or a
/// standard CEF key, so every type accepts them).
pub fn sample_pairs(token: &str, n: u64) -> Vec<(String, String)> {
    let host = format!("ws-{:03}.corp.example", n % 250);
    let src = format!("10.1.{}.{}", (n / 250) % 250, n % 250);
    let mut pairs = vec![("src", src), ("shost", host)];
    let file = format!("invoice_{n}.docm");
    let hash = format!(
        "{:032x}",
        u128::from(n).wrapping_mul(0x9E37_79B9_7F4A_7C15_F39C_C060)
    );
    match token {
        "file_web" => pairs.extend([
            ("dst", "203.0.113.80".to_owned()),
            ("dpt", "443".to_owned()),
            ("fName", file),
            ("fileHash", hash),
            ("requestMethod", "GET".to_owned()),
            ("request", format!("https://files.example.net/get?id={n}")),
        ]),
        "file_mail" | "file_endpoint" => pairs.extend([
            ("fName", file),
            ("fsize", (20_000 + n % 90_000).to_string()),
            ("fileHash", hash),
            ("suser", format!("CORP\\user{:03}", n % 900)),
        ]),
        "url_web" | "url_mail" => {
            pairs.push(("request", format!("http://phish-{}.example/login", n % 7)));
        }
        "dns" => pairs.push(("dhost", format!("c2-{}.bad.example", n % 11))),
        "ids" => pairs.extend([
            ("dst", "198.51.100.9".to_owned()),
            ("msg", "ET TROJAN beacon".to_owned()),
        ]),
        "taaScanning" => pairs.push(("cs1", format!("ioa_rule_{}", n % 5))),
        _ => pairs.push(("msg", format!("sample {token} alert {n}"))),
    }
    pairs.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()
}

/// What the load did so far.
#[derive(Debug, Default, Clone)]
pub struct LoadState {
    /// Alert IDs submitted at least once.
    pub submitted: HashSet<String>,
    /// Alert IDs the cluster acknowledged (committed).
    pub acknowledged: HashSet<String>,
    /// Answers `duplicate` to the second submission of a batch.
    pub duplicates_suppressed: u64,
    /// Calls that failed and were made again.
    pub retries: u64,
    /// The last failed call.
    pub last_error: Option<String>,
    /// Why the load stopped early, if it did.
    pub failed: Option<String>,
}

/// The load's shared state.
pub type SharedLoad = Arc<Mutex<LoadState>>;

/// Locks the load's state.
pub fn lock(s: &SharedLoad) -> std::sync::MutexGuard<'_, LoadState> {
    s.lock().unwrap_or_else(|p| p.into_inner())
}

/// The running load.
pub struct Load {
    state: SharedLoad,
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl Load {
    /// Starts submitting to the nodes at `api`.
    pub fn start(api: &[SocketAddr], prefix: String) -> anyhow::Result<Self> {
        let spec = api
            .iter()
            .map(SocketAddr::to_string)
            .collect::<Vec<_>>()
            .join(",");
        let client = Client::new(ClientConfig::new(Endpoint::parse(&spec)?))
            .context("the demo's ingest client")?;
        let state = SharedLoad::default();
        let (stop, stopped) = watch::channel(false);
        let task = tokio::spawn(submit_loop(client, state.clone(), stopped, prefix));
        Ok(Self { state, stop, task })
    }

    /// The shared state.
    pub fn state(&self) -> &SharedLoad {
        &self.state
    }

    /// Stops after the batch in flight is answered; the final state.
    pub async fn finish(mut self) -> LoadState {
        let _ = self.stop.send(true);
        let _ = (&mut self.task).await;
        lock(&self.state).clone()
    }
}

impl Drop for Load {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn submit_loop(
    client: Client,
    state: SharedLoad,
    mut stopped: watch::Receiver<bool>,
    prefix: String,
) {
    let mut samples = SampleAlerts::new(prefix);
    let mut tick = tokio::time::interval(PERIOD);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    for batch_no in 1.. {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stopped.changed() => {}
        }
        if *stopped.borrow() {
            return;
        }
        let now_ms = unix_ms();
        let batch: Vec<Alert> = (0..BATCH).map(|_| samples.next_alert(now_ms)).collect();
        let again = batch_no % RESUBMIT_EVERY == 0;
        if let Err(e) = submit_batch(&client, &state, batch, again).await {
            lock(&state).failed = Some(format!("{e:#}"));
            return;
        }
    }
}

/// Submits `batch` until the cluster answers for it; with `again`, submits it a second time to
/// another node and counts the duplicates the cluster suppressed.
async fn submit_batch(
    client: &Client,
    state: &SharedLoad,
    batch: Vec<Alert>,
    again: bool,
) -> anyhow::Result<()> {
    lock(state)
        .submitted
        .extend(batch.iter().map(|a| a.alert_id.clone()));
    let (outcomes, served_by) = submit_until_answered(client, state, &batch, None).await?;
    acknowledge(state, &batch, &outcomes)?;
    if again {
        let (second, _) = submit_until_answered(client, state, &batch, Some(served_by)).await?;
        acknowledge(state, &batch, &second)?;
        let suppressed = second
            .iter()
            .filter(|o| matches!(o, Outcome::Duplicate))
            .count();
        lock(state).duplicates_suppressed += suppressed as u64;
    }
    Ok(())
}

/// Records the accepted (or already accepted) alerts; an invalid sample is a bug of the demo.
fn acknowledge(state: &SharedLoad, batch: &[Alert], outcomes: &[Outcome]) -> anyhow::Result<()> {
    anyhow::ensure!(
        outcomes.len() == batch.len(),
        "{} results for {} alerts",
        outcomes.len(),
        batch.len()
    );
    let mut s = lock(state);
    for (alert, outcome) in batch.iter().zip(outcomes) {
        match outcome {
            Outcome::Accepted { .. } | Outcome::Duplicate => {
                s.acknowledged.insert(alert.alert_id.clone());
            }
            Outcome::Invalid { reason } => anyhow::bail!(
                "sample alert {} ({}) refused: {reason}",
                alert.alert_id,
                alert.alert_type
            ),
        }
    }
    Ok(())
}

/// One batch, again and again while the outcome is unknown (safe: dedup by alert ID); `avoid`
/// sends it to another node than that one. The outcomes and the node that answered.
async fn submit_until_answered(
    client: &Client,
    state: &SharedLoad,
    batch: &[Alert],
    avoid: Option<SocketAddr>,
) -> anyhow::Result<(Vec<Outcome>, SocketAddr)> {
    let deadline = Instant::now() + BATCH_DEADLINE;
    loop {
        let answer = match avoid {
            Some(addr) => client.submit_elsewhere(batch.to_vec(), addr).await,
            None => client.submit_served(batch.to_vec()).await,
        };
        let e = match answer {
            Ok(served) => return Ok((served.value, served.addr)),
            Err(e) => e,
        };
        let unknown = matches!(
            e.kind(),
            ErrorKind::Unavailable
                | ErrorKind::Overloaded
                | ErrorKind::Rejected
                | ErrorKind::BadResponse
        );
        if !unknown || Instant::now() > deadline {
            return Err(e).context("submit a batch");
        }
        {
            let mut s = lock(state);
            s.retries += 1;
            s.last_error = Some(e.to_string());
        }
        tokio::time::sleep(RETRY_PAUSE).await;
    }
}

fn unix_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use std::collections::BTreeSet;

    #[test]
    fn the_samples_cover_every_catalogue_type_and_each_builds() {
        let mut samples = SampleAlerts::new("t");
        let mut types = BTreeSet::new();
        for _ in 0..cef::catalogue::ALERT_TYPES.len() {
            let a = samples.next_alert(1_710_411_342_000);
            let mut b = cef::AlertBuilder::new(&a.alert_type, cef::Importance::High)
                .unwrap()
                .with("eventId", &a.alert_id)
                .unwrap();
            for (k, v) in &a.pairs {
                b.set(k, v.as_str())
                    .unwrap_or_else(|e| panic!("{}: {e}", a.alert_type));
            }
            let messages = b.build_messages().unwrap();
            assert_eq!(messages.len(), 1, "{}", a.alert_type);
            types.insert(a.alert_type);
        }
        let all: BTreeSet<String> = cef::catalogue::ALERT_TYPES
            .iter()
            .map(|t| t.token.to_owned())
            .collect();
        assert_eq!(types, all);
    }

    #[test]
    fn ids_are_unique() {
        let mut samples = SampleAlerts::new("run");
        let ids: HashSet<String> = (0..100).map(|_| samples.next_alert(0).alert_id).collect();
        assert_eq!(ids.len(), 100);
    }
}
