//! The live status view: a few lines redrawn in place on a terminal, or one plain line a second
//! (`--plain`, or when standard output is not a terminal). Events (a kill, a measured failover)
//! are printed as their own lines above the live block. Rendering is pure ([`render`],
//! [`plain_line`]); [`Screen`] writes.

use crate::demo::summary::millis;
use std::io::Write;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// One node as the view shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeView {
    /// Node ID.
    pub id: u64,
    /// Whether its process runs.
    pub running: bool,
    /// Whether it answered its status call.
    pub answers: bool,
}

/// One receiver as the view shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceiverView {
    /// Its address.
    pub addr: SocketAddr,
    /// Whether it still listens.
    pub running: bool,
    /// Alert messages it got.
    pub alerts: u64,
    /// Whether the last message went to it.
    pub in_use: bool,
    /// The leader's view of the address (up or down), if the leader reports it.
    pub leader_sees_up: Option<bool>,
}

/// Everything one frame of the view shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    /// Time since the load started.
    pub elapsed: Duration,
    /// The planned length of the run.
    pub planned: Duration,
    /// What the demo does now.
    pub phase: String,
    /// The agreed leader.
    pub leader: Option<u64>,
    /// The nodes.
    pub nodes: Vec<NodeView>,
    /// The SIEM's name.
    pub siem_name: String,
    /// The receivers.
    pub receivers: Vec<ReceiverView>,
    /// Distinct alert IDs submitted.
    pub submitted: usize,
    /// Distinct alert IDs acknowledged.
    pub acknowledged: usize,
    /// Distinct alert IDs received.
    pub delivered: usize,
    /// Second submissions answered `duplicate`.
    pub duplicates_suppressed: u64,
    /// Submissions retried after a failed call.
    pub retries: u64,
    /// Measured receiver failovers.
    pub siem_failovers: Vec<Duration>,
    /// Measured leader failovers.
    pub leader_failovers: Vec<Duration>,
}

fn node_word(n: &NodeView, leader: Option<u64>) -> String {
    let role = if !n.running {
        "down"
    } else if !n.answers {
        "starting"
    } else if leader == Some(n.id) {
        "LEADER"
    } else {
        "follower"
    };
    format!("n{} {role}", n.id)
}

fn receiver_line(r: &ReceiverView) -> String {
    let state = match (r.running, r.leader_sees_up) {
        (false, _) => "killed",
        (true, Some(false)) => "down",
        (true, _) => "up",
    };
    let mark = if r.in_use { "<- in use" } else { "" };
    let line = format!(
        "             {:<15} {state:<7} {:>7} alerts  {mark}",
        r.addr.ip().to_string(),
        r.alerts
    );
    line.trim_end().to_owned()
}

fn times(ds: &[Duration]) -> String {
    if ds.is_empty() {
        return "0".to_owned();
    }
    let each: Vec<String> = ds.iter().map(|d| millis(*d)).collect();
    format!("{} ({})", ds.len(), each.join(", "))
}

/// The live block, one string per line (each within 80 columns, so that redrawing in place
/// works on a common terminal).
pub fn render(s: &Snapshot) -> Vec<String> {
    let leader = s.leader.map_or("none".to_owned(), |l| format!("n{l}"));
    let nodes: Vec<String> = s.nodes.iter().map(|n| node_word(n, s.leader)).collect();
    let mut lines = vec![
        format!(
            "siem-relay demo  {:>5.1} s of {} s  {}",
            s.elapsed.as_secs_f64(),
            s.planned.as_secs(),
            s.phase
        ),
        format!("  cluster    leader {leader}  |  {}", nodes.join("  ")),
        format!("  SIEM       {} (round-robin DNS)", s.siem_name),
    ];
    lines.extend(s.receivers.iter().map(receiver_line));
    lines.extend([
        format!(
            "  alerts     submitted {}  acknowledged {}  delivered {}",
            s.submitted, s.acknowledged, s.delivered
        ),
        format!(
            "             duplicates suppressed {}  retried calls {}",
            s.duplicates_suppressed, s.retries
        ),
        format!(
            "  failovers  SIEM {}  leader {}",
            times(&s.siem_failovers),
            times(&s.leader_failovers)
        ),
    ]);
    lines
}

/// The view as one line (for logs and CI).
pub fn plain_line(s: &Snapshot) -> String {
    let in_use = s
        .receivers
        .iter()
        .find(|r| r.in_use)
        .map_or("-".to_owned(), |r| r.addr.ip().to_string());
    format!(
        "[{:>5.1}s] {} | leader {} | SIEM in use {in_use} | submitted {} acknowledged {} delivered {} duplicates suppressed {} | failovers SIEM {} leader {}",
        s.elapsed.as_secs_f64(),
        s.phase,
        s.leader.map_or("none".to_owned(), |l| format!("n{l}")),
        s.submitted,
        s.acknowledged,
        s.delivered,
        s.duplicates_suppressed,
        s.siem_failovers.len(),
        s.leader_failovers.len()
    )
}

/// Where the view goes.
pub struct Screen {
    live: bool,
    drawn: usize,
    last_plain: Option<Instant>,
}

/// How often the plain view prints a line.
const PLAIN_EVERY: Duration = Duration::from_secs(1);

impl Screen {
    /// Redraws in place when `live` (a terminal), else prints plain lines.
    pub fn new(live: bool) -> Self {
        Self {
            live,
            drawn: 0,
            last_plain: None,
        }
    }

    /// Shows `s`: the block redrawn, or a plain line at most once a second.
    pub fn show(&mut self, s: &Snapshot) {
        let mut out = std::io::stdout().lock();
        if self.live {
            let lines = render(s);
            let _ = write!(out, "{}", self.erase());
            for l in &lines {
                let _ = writeln!(out, "{l}");
            }
            self.drawn = lines.len();
        } else if self.last_plain.is_none_or(|t| t.elapsed() >= PLAIN_EVERY) {
            let _ = writeln!(out, "{}", plain_line(s));
            self.last_plain = Some(Instant::now());
        }
        let _ = out.flush();
    }

    /// Prints `text` as its own line (above the live block, which the next [`Screen::show`]
    /// draws again).
    pub fn event(&mut self, text: &str) {
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{}>> {text}", self.erase());
        self.drawn = 0;
        let _ = out.flush();
    }

    /// Prints `lines` as they are, after the live block.
    pub fn print(&mut self, lines: &[String]) {
        let mut out = std::io::stdout().lock();
        self.drawn = 0;
        for l in lines {
            let _ = writeln!(out, "{l}");
        }
        let _ = out.flush();
    }

    /// The escape sequence that moves the cursor to the top of the block and clears below.
    fn erase(&self) -> String {
        if self.live && self.drawn > 0 {
            format!("\x1b[{}A\x1b[J", self.drawn)
        } else {
            String::new()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snapshot() -> Snapshot {
        Snapshot {
            elapsed: Duration::from_millis(12_300),
            planned: Duration::from_secs(60),
            phase: "warm-up".into(),
            leader: Some(2),
            nodes: (1..=3)
                .map(|id| NodeView {
                    id,
                    running: id != 3,
                    answers: true,
                })
                .collect(),
            siem_name: "siem.demo.internal".into(),
            receivers: vec![
                ReceiverView {
                    addr: "127.0.0.1:5514"
                        .parse()
                        .unwrap_or(SocketAddr::from(([0; 4], 0))),
                    running: false,
                    alerts: 5,
                    in_use: false,
                    leader_sees_up: Some(false),
                },
                ReceiverView {
                    addr: "127.0.0.2:5514"
                        .parse()
                        .unwrap_or(SocketAddr::from(([0; 4], 0))),
                    running: true,
                    alerts: 7,
                    in_use: true,
                    leader_sees_up: Some(true),
                },
            ],
            submitted: 120,
            acknowledged: 110,
            delivered: 100,
            duplicates_suppressed: 10,
            retries: 1,
            siem_failovers: vec![Duration::from_millis(4)],
            leader_failovers: vec![],
        }
    }

    #[test]
    fn the_block_names_the_leader_the_address_in_use_and_the_failovers() {
        let lines = render(&snapshot());
        let text = lines.join("\n");
        assert!(
            text.contains("leader n2  |  n1 follower  n2 LEADER  n3 down"),
            "{text}"
        );
        assert!(
            text.contains("127.0.0.1       killed        5 alerts"),
            "{text}"
        );
        assert!(
            text.contains("127.0.0.2       up            7 alerts  <- in use"),
            "{text}"
        );
        assert!(text.contains("duplicates suppressed 10"), "{text}");
        assert!(text.contains("SIEM 1 (4.0 ms)  leader 0"), "{text}");
        assert!(lines.iter().all(|l| l.chars().count() <= 80), "{text}");
    }

    #[test]
    fn the_plain_line_has_the_same_figures() {
        let line = plain_line(&snapshot());
        assert!(line.contains("leader n2 | SIEM in use 127.0.0.2"), "{line}");
        assert!(
            line.contains("delivered 100 duplicates suppressed 10"),
            "{line}"
        );
        assert!(line.contains("failovers SIEM 1 leader 0"), "{line}");
    }
}
