//! The async shell: one task that resolves, picks an address from the pool, connects, writes
//! messages in order, tracks confirmations, and on failure resends the unconfirmed suffix on the
//! next address.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use tracing::info;

use crate::config::{DeliveryConfig, Protocol};
use crate::error::DeliveryError;
use crate::status::EngineStatus;

mod connection;
mod resolver;
mod runner;
mod window;

use resolver::ResolverTask;
use runner::{HandleLinks, Runner};

/// One already-encoded syslog message and its sequence number. Sequence numbers must increase
/// from one message to the next; the engine confirms them in that order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// Sequence number (the outbox position).
    pub seq: u64,
    /// The syslog message, without framing.
    pub bytes: Bytes,
}

/// What is left when the engine stops.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShutdownReport {
    /// Highest sequence number confirmed with every earlier one.
    pub confirmed_up_to: Option<u64>,
    /// Messages the engine held that were not confirmed (they must be delivered again by the
    /// caller, from `confirmed_up_to + 1`).
    pub unconfirmed: usize,
}

pub(crate) enum Control {
    Reconfigure(Box<DeliveryConfig>, oneshot::Sender<()>),
    Shutdown(Instant, oneshot::Sender<ShutdownReport>),
}

/// The delivery engine: a bounded input queue, a confirmation watermark and a status snapshot
/// around one background task.
#[derive(Debug)]
pub struct DeliveryEngine {
    input: mpsc::Sender<Message>,
    control: mpsc::Sender<Control>,
    confirmed: watch::Receiver<Option<u64>>,
    status: Arc<Mutex<EngineStatus>>,
    task: Option<JoinHandle<()>>,
}

impl Drop for DeliveryEngine {
    /// Dropping the engine without [`DeliveryEngine::shutdown`] stops it at once; whatever is
    /// unconfirmed stays unconfirmed (the watermark says where to resume).
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

impl DeliveryEngine {
    /// Validates `config` and starts the engine on the current tokio runtime.
    pub fn start(config: DeliveryConfig) -> Result<Self, DeliveryError> {
        config.validate()?;
        let tls = build_tls(&config)?;
        let (input_tx, input_rx) = mpsc::channel(config.queue_capacity);
        let (control_tx, control_rx) = mpsc::channel(4);
        let (confirmed_tx, confirmed_rx) = watch::channel(None);
        let status = Arc::new(Mutex::new(EngineStatus::default()));
        let seed = config.seed.unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(1)
        });
        info!(seed, host = %config.host, port = config.port, protocol = ?config.protocol, "delivery engine starting");
        let resolver_handle = ResolverTask::spawn(&config)?;
        let links = HandleLinks {
            input: input_rx,
            control: control_rx,
            confirmed: confirmed_tx,
            status: status.clone(),
        };
        let runner = Runner::new(config, tls, resolver_handle, seed, links);
        let task = tokio::spawn(runner.run());
        Ok(Self {
            input: input_tx,
            control: control_tx,
            confirmed: confirmed_rx,
            status,
            task: Some(task),
        })
    }

    /// Queues a message, waiting while the queue is full.
    pub async fn send(&self, message: Message) -> Result<(), DeliveryError> {
        self.input
            .send(message)
            .await
            .map_err(|_| DeliveryError::Stopped)
    }

    /// A clone of the input queue's sender, for producers on other tasks.
    pub fn sender(&self) -> mpsc::Sender<Message> {
        self.input.clone()
    }

    /// The confirmation watermark: the highest sequence number confirmed with all earlier ones.
    pub fn confirmed(&self) -> watch::Receiver<Option<u64>> {
        self.confirmed.clone()
    }

    /// A snapshot of the engine's state.
    pub fn status(&self) -> EngineStatus {
        let mut s = self
            .status
            .lock()
            .map(|s| s.clone())
            .unwrap_or_else(|p| p.into_inner().clone());
        s.queued = self.input.max_capacity() - self.input.capacity();
        s
    }

    /// Applies a new configuration: new resolver and address pool, new connection; unconfirmed
    /// messages are kept and resent in order on the new connection.
    pub async fn reconfigure(&self, config: DeliveryConfig) -> Result<(), DeliveryError> {
        config.validate()?;
        build_tls(&config)?;
        let (tx, rx) = oneshot::channel();
        self.control
            .send(Control::Reconfigure(Box::new(config), tx))
            .await
            .map_err(|_| DeliveryError::Stopped)?;
        rx.await.map_err(|_| DeliveryError::Stopped)
    }

    /// Stops taking messages, tries to deliver and confirm what is queued until `drain_for` has
    /// passed, closes the connection and reports what is left unconfirmed.
    pub async fn shutdown(mut self, drain_for: Duration) -> ShutdownReport {
        let (tx, rx) = oneshot::channel();
        let fallback = ShutdownReport {
            confirmed_up_to: *self.confirmed.borrow(),
            unconfirmed: self.status().unconfirmed,
        };
        if self
            .control
            .send(Control::Shutdown(Instant::now() + drain_for, tx))
            .await
            .is_err()
        {
            return fallback;
        }
        let report = rx.await.unwrap_or(fallback);
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
        report
    }
}

pub(crate) type TlsParts = Option<(
    Arc<rustls::ClientConfig>,
    rustls_pki_types::ServerName<'static>,
)>;

pub(crate) fn build_tls(config: &DeliveryConfig) -> Result<TlsParts, DeliveryError> {
    match (&config.tls, config.protocol) {
        (Some(tls), Protocol::Tls) => Ok(Some(crate::tls::client_config(tls, &config.host)?)),
        _ => Ok(None),
    }
}
