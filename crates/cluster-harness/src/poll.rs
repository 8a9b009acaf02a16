//! Waiting on the state of other processes, which send no change notification: [`poll_until`]
//! and [`agreed_leader`].

use crate::remote::RemoteNode;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// Polls `f` until it returns `Some`, at most until `timeout`; between polls it waits `every`.
/// Used against status APIs of other processes, where no change notification exists.
pub async fn poll_until<T, F, Fut>(timeout: Duration, every: Duration, mut f: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f().await {
            return Some(v);
        }
        if Instant::now() >= deadline {
            return None;
        }
        tokio::time::sleep(every).await;
    }
}

/// Waits until every node in `among` reports the same leader, which is itself in `among` and is
/// not `not`; returns it, or `None` at `timeout`.
pub async fn agreed_leader(
    remotes: &BTreeMap<u64, RemoteNode>,
    among: &[u64],
    not: Option<u64>,
    timeout: Duration,
    every: Duration,
) -> Option<u64> {
    poll_until(timeout, every, || async {
        let mut seen = Vec::new();
        for id in among {
            seen.push(remotes.get(id)?.status().await.ok()?.leader);
        }
        let l = (*seen.first()?)?;
        (seen.iter().all(|x| *x == Some(l)) && Some(l) != not && among.contains(&l)).then_some(l)
    })
    .await
}
