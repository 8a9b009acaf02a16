//! `siem-relay demo`: the whole relay on one machine, with no configuration and no root.
//!
//! It starts a DNS responder ([`dns`]) answering one SIEM name with two or three receivers'
//! loopback addresses ([`receiver`]), three node processes of this binary ([`cluster`]) that
//! deliver to that name, and a load of sample alerts of every type ([`load`]); then it follows a
//! timeline ([`run`]): warm-up, the receiver in use killed, the leader SIGKILLed, the node
//! restarted, drain; a live view ([`view`]) all along and the figures at the end ([`summary`],
//! counted by [`tally`]). Everything it started is stopped and its work folder removed at the
//! end, on an error and on Ctrl-C; the receivers' files stay in the output folder it names.
//!
//! What it is not: a benchmark (the load is a steady 100 alerts a second) nor a test tool: it
//! uses only the public ingest API and the node binary, as a user would.

mod cluster;
mod dns;
mod load;
mod receiver;
mod run;
mod summary;
mod tally;
mod view;

use std::path::PathBuf;

pub use run::run;

/// Options of `siem-relay demo`; none is needed.
#[derive(Debug, Clone, clap::Args)]
pub struct DemoArgs {
    /// Seconds from the first alert to the end of the load (the drain follows); at least 10.
    #[arg(long, default_value_t = 60, value_parser = clap::value_parser!(u64).range(10..=3600))]
    pub duration: u64,
    /// Print one status line a second instead of redrawing the view (the default when standard
    /// output is not a terminal).
    #[arg(long)]
    pub plain: bool,
    /// Folder for what the receivers got (created; default: a new folder in the temporary
    /// folder, named at the start).
    #[arg(long)]
    pub output: Option<PathBuf>,
    /// SIEM receivers behind the round-robin name.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u8).range(2..=3))]
    pub receivers: u8,
}
