//! The cluster core of siem-relay: Raft-replicated SIEM settings, cluster-wide dedup and the
//! durable outbox.
//!
//! What it is: the openraft type configuration ([`types`]), a durable redb store ([`store`]), a
//! pure deterministic state machine ([`state`]), the authenticated gRPC Raft transport
//! ([`network`]) with optional mutual TLS ([`tls`]), timing configuration ([`config`]), the
//! leader router that forwards client requests, and the [`node::ClusterNode`] handle that the node daemon uses (`submit_alerts`, `update_settings`,
//! `read_settings`, membership).
//!
//! What it is not: it knows nothing of sockets to the SIEM, CEF or delivery; the node joins this
//! crate and the delivery engine.

pub mod codec;
pub mod config;
pub mod error;
mod membership;
pub mod messages;
pub mod network;
pub mod node;
mod router;
pub mod settings;
mod stage;
pub mod state;
pub mod store;
pub mod tls;
pub mod types;

pub use error::{ClusterError, to_status};

#[cfg(test)]
pub(crate) mod test_support {
    /// A self-signed test certificate in PEM.
    pub fn test_certificate_pem() -> String {
        let key = rcgen::generate_simple_self_signed(vec!["siem.example.net".to_owned()]).unwrap();
        key.cert.pem()
    }

    /// A random generator for a randomised test: seeded from `CLUSTER_TEST_SEED` if set, else at
    /// random; the seed is printed with the test's name so a failure can be replayed.
    pub fn seeded_rng(test: &str) -> (u64, rand::rngs::StdRng) {
        use rand::SeedableRng;
        let seed: u64 = std::env::var("CLUSTER_TEST_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(rand::random);
        println!("{test} seed={seed}");
        (seed, rand::rngs::StdRng::seed_from_u64(seed))
    }
}
