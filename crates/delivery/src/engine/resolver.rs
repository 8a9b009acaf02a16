//! Background DNS resolution task.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{Notify, watch};
use tokio::task::JoinHandle;
use tokio::time::sleep;
use tracing::{debug, warn};

use crate::config::DeliveryConfig;
use crate::error::DeliveryError;
use crate::resolve::{HostResolver, Resolution};
use crate::status::metric;

/// Background resolution: resolves at start, when the TTL runs out, and when asked.
pub(super) struct ResolverTask {
    pub(super) results: watch::Receiver<Option<(Instant, Result<Resolution, String>)>>,
    pub(super) now: Arc<Notify>,
    pub(super) task: JoinHandle<()>,
}

impl ResolverTask {
    pub(super) fn spawn(config: &DeliveryConfig) -> Result<Self, DeliveryError> {
        let resolver = HostResolver::new(
            &config.host,
            config.port,
            &config.nameservers,
            config.ttl_min,
            config.ttl_max,
            config.timeouts.dns,
        )?;
        let (tx, rx) = watch::channel(None);
        let now = Arc::new(Notify::new());
        let notified = now.clone();
        let retry = config.ttl_min.max(Duration::from_millis(200));
        let task = tokio::spawn(async move {
            loop {
                let result = resolver.resolve().await.map_err(|e| e.to_string());
                let wait = match &result {
                    Ok(r) => {
                        metrics::counter!(metric::RESOLUTIONS, "result" => "ok").increment(1);
                        metrics::gauge!(metric::RESOLVED_ADDRESSES).set(r.addrs.len() as f64);
                        debug!(addrs = ?r.addrs, ttl = ?r.ttl, "resolved");
                        r.ttl
                    }
                    Err(e) => {
                        metrics::counter!(metric::RESOLUTIONS, "result" => "error").increment(1);
                        warn!(error = %e, "resolution failed");
                        retry
                    }
                };
                if tx.send(Some((Instant::now(), result))).is_err() {
                    return;
                }
                if resolver.is_literal() {
                    // Nothing to refresh; only stop when the engine goes away.
                    tx.closed().await;
                    return;
                }
                tokio::select! {
                    _ = sleep(wait) => {}
                    _ = notified.notified() => {}
                    _ = tx.closed() => return,
                }
            }
        });
        Ok(Self {
            results: rx,
            now,
            task,
        })
    }
}

impl Drop for ResolverTask {
    fn drop(&mut self) {
        self.task.abort();
    }
}
