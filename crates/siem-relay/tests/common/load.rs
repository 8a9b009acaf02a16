//! Steady load through `relay-client`: batches of alerts submitted to every node in turn, each
//! batch retried with the same IDs until it is acknowledged (an indeterminate batch is safe to
//! resubmit: dedup), the acknowledged IDs recorded.

use super::{Cluster, WAIT};
use relay_client::{Alert, Client, ClientConfig, Endpoint, Importance, Outcome};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::task::JoinHandle;

/// Alerts in one batch.
const BATCH: usize = 20;
/// Pause between batches: a steady stream that leaves CPU to the nodes.
const PACE: Duration = Duration::from_millis(20);

/// A running load task.
pub struct Load {
    acked: Arc<Mutex<Vec<String>>>,
    stop: Arc<AtomicBool>,
    task: JoinHandle<Result<(), String>>,
}

impl Load {
    /// Starts submitting to the nodes `ids` of `cluster`, in turn; each node's client falls back
    /// to the other nodes of the list when its own stops answering.
    pub fn start(cluster: &Cluster, ids: &[u64]) -> Self {
        let clients: Vec<Client> = (0..ids.len())
            .map(|first| {
                let order: Vec<String> = ids
                    .iter()
                    .cycle()
                    .skip(first)
                    .take(ids.len())
                    .map(|id| cluster.nodes[id].api.to_string())
                    .collect();
                let endpoint = Endpoint::parse(&order.join(",")).unwrap();
                Client::new(ClientConfig::new(endpoint)).unwrap()
            })
            .collect();
        let acked = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let task = tokio::spawn(run(clients, Arc::clone(&acked), Arc::clone(&stop)));
        Self { acked, stop, task }
    }

    /// How many alerts were acknowledged so far.
    pub fn acknowledged(&self) -> usize {
        self.acked.lock().unwrap().len()
    }

    /// Waits until at least `count` alerts are acknowledged.
    pub async fn await_acknowledged(&self, cluster: &Cluster, count: usize) {
        super::admin::until(cluster, &format!("{count} acknowledged alerts"), || async {
            (self.acknowledged() >= count || self.task.is_finished()).then_some(())
        })
        .await;
        assert!(!self.task.is_finished(), "the load stopped early");
    }

    /// Stops after the batch in flight; the acknowledged IDs (fails if a batch was refused or
    /// never acknowledged).
    pub async fn stop(self, cluster: &Cluster) -> Vec<String> {
        self.stop.store(true, Ordering::Relaxed);
        if let Err(e) = self.task.await.unwrap() {
            panic!("load: {e}\n{}", cluster.logs());
        }
        Arc::try_unwrap(self.acked).unwrap().into_inner().unwrap()
    }
}

async fn run(
    clients: Vec<Client>,
    acked: Arc<Mutex<Vec<String>>>,
    stop: Arc<AtomicBool>,
) -> Result<(), String> {
    let mut pace = tokio::time::interval(PACE);
    for n in 0usize.. {
        if stop.load(Ordering::Relaxed) {
            break;
        }
        pace.tick().await;
        let ids: Vec<String> = (0..BATCH).map(|j| format!("load-{n}-{j}")).collect();
        submit_until_acknowledged(&clients[n % clients.len()], &ids).await?;
        acked.lock().unwrap().extend(ids);
    }
    Ok(())
}

/// Submits the batch `ids`, again with the same IDs while the outcome is unknown, until `WAIT`.
async fn submit_until_acknowledged(client: &Client, ids: &[String]) -> Result<(), String> {
    let deadline = Instant::now() + WAIT;
    loop {
        let batch = ids.iter().map(|id| alert(id)).collect();
        match client.submit(batch).await {
            Ok(outcomes) => {
                for (id, o) in ids.iter().zip(&outcomes) {
                    if !matches!(o, Outcome::Accepted { .. } | Outcome::Duplicate) {
                        return Err(format!("{id}: {o:?}"));
                    }
                }
                return Ok(());
            }
            Err(e) if Instant::now() >= deadline => return Err(format!("{}: {e}", ids[0])),
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}

fn alert(id: &str) -> Alert {
    Alert {
        source: "load".into(),
        alert_id: id.into(),
        alert_type: "dns".into(),
        importance: Importance::Medium,
        time_ms: 1_710_411_342_000,
        pairs: vec![("destinationDnsDomain".into(), "example.net".into())],
    }
}
