//! The report at the end of a run: the verdict, the failover times against their targets, which
//! fault kinds happened, and what went wrong with the run itself. Written to `verdict.txt` and
//! `verdict.json` in the artifacts folder.

use crate::deliveries::Deliveries;
use crate::history::History;
use crate::schedule::FaultKind;
use crate::timing::{self, Failover, FaultRecord, Measured};
use crate::verdict::Verdict;
use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

/// Everything a run found.
#[derive(Debug)]
pub struct Report {
    seed: u64,
    verdict: Verdict,
    faults: Vec<FaultRecord>,
    measured: Vec<Measured>,
    problems: Vec<String>,
    per_receiver: Vec<u64>,
}

impl Report {
    /// Judges a run.
    pub fn new(
        seed: u64,
        history: &History,
        deliveries: &Deliveries,
        faults: Vec<FaultRecord>,
        problems: Vec<String>,
        rate: u64,
        receivers: usize,
    ) -> Self {
        let failures = faults
            .iter()
            .filter(|f| {
                f.kind.loses_leader()
                    || f.kind.loses_siem_address()
                    || f.kind == FaultKind::RestartCluster
            })
            .count() as u64;
        let verdict = Verdict::new(history, deliveries, failures, rate);
        let measured = timing::measure(&faults, &deliveries.arrivals);
        let mut per_receiver = deliveries.per_receiver.clone();
        per_receiver.resize(receivers, 0);
        Self {
            seed,
            verdict,
            faults,
            measured,
            problems,
            per_receiver,
        }
    }

    /// What violates the contract (exit code 1 when not empty).
    pub fn violations(&self) -> Vec<String> {
        let mut v = self.verdict.violations();
        v.extend(
            self.problems
                .iter()
                .filter(|p| p.contains("not healthy"))
                .cloned(),
        );
        v
    }

    /// Whether the run itself failed (a step could not be applied, a node called an alert
    /// invalid): exit code 2 when there is no violation.
    pub fn harness_failures(&self) -> Vec<String> {
        let mut out: Vec<String> = self
            .problems
            .iter()
            .filter(|p| !p.contains("not healthy"))
            .cloned()
            .collect();
        if self.verdict.invalid > 0 {
            out.push(format!(
                "{} generated alerts were called invalid by the relay",
                self.verdict.invalid
            ));
        }
        out
    }

    /// The report as lines.
    pub fn lines(&self) -> Vec<String> {
        let v = &self.verdict;
        let mut l = vec![
            format!("seed {} (replay with --seed {})", self.seed, self.seed),
            format!(
                "alerts: {} submitted, {} acknowledged, {} unknown, {} refused; {} delivered \
                 (per receiver: {:?} messages)",
                v.alerts, v.acknowledged, v.unknown, v.refused, v.delivered, self.per_receiver
            ),
            format!(
                "lost        {:>8}   (acknowledged, never delivered; must be 0)",
                v.lost
            ),
            format!(
                "unexpected  {:>8}   (delivered, never accepted; must be 0)",
                v.unexpected
            ),
            format!(
                "duplicated  {:>8}   alerts, {} extra copies (bound {}: the unconfirmed window \
                 per failure plus 200 ms of confirmed messages)",
                v.duplicated_alerts, v.extra_copies, v.duplicate_bound
            ),
            format!(
                "recovered   {:>8}   (unknown outcome, delivered)",
                v.recovered
            ),
            format!(
                "corrupted   {:>8}   (differs from what was submitted; must be 0)",
                v.corrupted
            ),
            format!(
                "fresh alert after healing: {}",
                if v.fresh_arrived {
                    "arrived"
                } else {
                    "MISSING"
                }
            ),
        ];
        let mut happened: BTreeMap<FaultKind, usize> = BTreeMap::new();
        for f in &self.faults {
            *happened.entry(f.kind).or_default() += 1;
        }
        let kinds: Vec<String> = happened.iter().map(|(k, n)| format!("{k} x{n}")).collect();
        l.push(format!("faults that happened: {}", kinds.join(", ")));
        let missing: Vec<&str> = FaultKind::ALL
            .iter()
            .filter(|k| !happened.contains_key(k))
            .map(|k| k.name())
            .collect();
        if !missing.is_empty() {
            l.push(format!(
                "fault kinds that did not happen: {}",
                missing.join(", ")
            ));
        }
        l.push("failover times:".into());
        let mut by: BTreeMap<Failover, (Vec<Duration>, Vec<u64>)> = BTreeMap::new();
        for m in &self.measured {
            let e = by.entry(m.failover).or_default();
            match m.time {
                Some(t) => e.0.push(t),
                None => e.1.push(m.step),
            }
        }
        for (f, (times, unmeasured)) in &by {
            let (p50_target, max_target) = f.targets();
            let mut line = match timing::p50_max(times) {
                Some((p50, max)) => format!(
                    "  {:<44} n={:<3} p50 {:>6} ms{}  max {:>6} ms{}",
                    f.describe(),
                    times.len(),
                    p50.as_millis(),
                    target(p50, p50_target),
                    max.as_millis(),
                    target(max, max_target)
                ),
                None => format!("  {:<44} n=0", f.describe()),
            };
            if !unmeasured.is_empty() {
                line.push_str(&format!(
                    "  (no delivery before the next fault at steps {unmeasured:?})"
                ));
            }
            l.push(line);
        }
        for p in &self.problems {
            l.push(format!("problem: {p}"));
        }
        let violations = self.violations();
        let harness = self.harness_failures();
        l.push(if !violations.is_empty() {
            format!("VERDICT: FAIL ({})", violations.join("; "))
        } else if !harness.is_empty() {
            format!("VERDICT: HARNESS FAILURE ({})", harness.join("; "))
        } else {
            "VERDICT: PASS".into()
        });
        l
    }

    /// The exit code: 0 pass, 1 violation, 2 harness failure.
    pub fn exit_code(&self) -> u8 {
        if !self.violations().is_empty() {
            1
        } else if !self.harness_failures().is_empty() {
            2
        } else {
            0
        }
    }

    /// Writes `verdict.txt`, `verdict.json` and `faults.jsonl` to `dir`.
    pub fn write(&self, dir: &Path) -> anyhow::Result<()> {
        std::fs::write(dir.join("verdict.txt"), self.lines().join("\n") + "\n")?;
        let times: Vec<serde_json::Value> = self
            .measured
            .iter()
            .map(|m| {
                serde_json::json!({
                    "step": m.step,
                    "kind": m.kind,
                    "failover": m.failover.describe(),
                    "ms": m.time.map(|t| t.as_secs_f64() * 1000.0),
                })
            })
            .collect();
        let json = serde_json::json!({
            "seed": self.seed,
            "verdict": self.verdict,
            "failovers": times,
            "problems": self.problems,
            "exit_code": self.exit_code(),
        });
        std::fs::write(
            dir.join("verdict.json"),
            serde_json::to_string_pretty(&json)?,
        )?;
        let faults: Vec<String> = self
            .faults
            .iter()
            .map(|f| serde_json::to_string(f).unwrap_or_default())
            .collect();
        std::fs::write(dir.join("faults.jsonl"), faults.join("\n") + "\n")?;
        Ok(())
    }
}

fn target(value: Duration, target: Option<Duration>) -> String {
    match target {
        Some(t) if value <= t => format!(" (<= {} ok)", t.as_millis()),
        Some(t) => format!(" (> {} MISSED)", t.as_millis()),
        None => String::new(),
    }
}
