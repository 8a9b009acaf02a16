//! What the load did: every submission (a batch of alerts, or the same batch again through
//! another node) with its result, appended to `history.jsonl`, and per alert the best result it
//! got (acknowledged beats unknown beats failed).

use serde::Serialize;
use std::io::Write;
use std::path::Path;

/// What one submission came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SubmitResult {
    /// Refused before anything was stored (`RESOURCE_EXHAUSTED`, bad credentials): not accepted.
    Failed,
    /// No answer, or an answer that does not say (a timeout, a reset, `UNAVAILABLE`): it may or
    /// may not have been committed.
    Unknown,
    /// Every alert answered accepted or duplicate, after commit.
    Ok,
}

/// One submission, as written to `history.jsonl`.
#[derive(Debug, Clone, Serialize)]
pub struct Submission {
    /// The batch's number, from 1.
    pub batch: u64,
    /// The same batch again, through another node (the dedup check).
    pub resubmit: bool,
    /// The alerts' numbers, `first..=last`.
    pub first: u64,
    /// See `first`.
    pub last: u64,
    /// The node address that answered (or failed last).
    pub via: Option<String>,
    /// The result.
    pub result: SubmitResult,
    /// The error or the invalid answer, when there is one.
    pub detail: Option<String>,
    /// Milliseconds from the start of the run to the call.
    pub sent_ms: u64,
    /// How long the call took, in milliseconds.
    pub took_ms: u64,
    /// The highest outbox position among the accepted alerts.
    pub max_seq: Option<u64>,
    /// Alerts the node called invalid (a fault of the generator, not the relay).
    pub invalid: u64,
}

/// Every submission's result, counted per alert, and the log file.
#[derive(Debug)]
pub struct History {
    /// Best result per alert number (index 0 unused).
    best: Vec<Option<SubmitResult>>,
    submissions: [u64; 3],
    invalid: u64,
    max_seq: u64,
    file: Option<std::io::BufWriter<std::fs::File>>,
    write_error: Option<String>,
}

impl History {
    /// An empty history written to `path` (no file when `None`).
    pub fn create(path: Option<&Path>) -> anyhow::Result<Self> {
        let file = match path {
            Some(p) => Some(std::io::BufWriter::new(
                std::fs::File::create(p)
                    .map_err(|e| anyhow::anyhow!("create {}: {e}", p.display()))?,
            )),
            None => None,
        };
        Ok(Self {
            best: vec![None],
            submissions: [0; 3],
            invalid: 0,
            max_seq: 0,
            file,
            write_error: None,
        })
    }

    /// Records one submission.
    pub fn record(&mut self, s: &Submission) {
        if let Some(f) = &mut self.file {
            let line = serde_json::to_string(s).unwrap_or_default();
            if let Err(e) = writeln!(f, "{line}") {
                self.write_error.get_or_insert(e.to_string());
            }
        }
        self.submissions[s.result as usize] += 1;
        self.invalid += s.invalid;
        if let Some(seq) = s.max_seq {
            self.max_seq = self.max_seq.max(seq);
        }
        let last = usize::try_from(s.last).unwrap_or(usize::MAX);
        if self.best.len() <= last {
            self.best.resize(last + 1, None);
        }
        for n in s.first..=s.last {
            let slot = &mut self.best[n as usize];
            *slot = (*slot).max(Some(s.result));
        }
    }

    /// Flushes the log file; the first write error, if one happened.
    pub fn flush(&mut self) -> anyhow::Result<()> {
        if let Some(f) = &mut self.file {
            f.flush()?;
        }
        match &self.write_error {
            Some(e) => anyhow::bail!("history.jsonl: {e}"),
            None => Ok(()),
        }
    }

    /// The best result of alert `n`, if it was submitted.
    pub fn best(&self, n: u64) -> Option<SubmitResult> {
        self.best.get(usize::try_from(n).ok()?).copied().flatten()
    }

    /// The highest alert number submitted.
    pub fn last_alert(&self) -> u64 {
        self.best.len() as u64 - 1
    }

    /// Submissions by result: failed, unknown, ok.
    pub fn submissions(&self) -> [u64; 3] {
        self.submissions
    }

    /// Alerts the nodes called invalid.
    pub fn invalid(&self) -> u64 {
        self.invalid
    }

    /// The highest outbox position acknowledged.
    pub fn max_seq(&self) -> u64 {
        self.max_seq
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn sub(first: u64, last: u64, result: SubmitResult) -> Submission {
        Submission {
            batch: 1,
            resubmit: false,
            first,
            last,
            via: None,
            result,
            detail: None,
            sent_ms: 0,
            took_ms: 0,
            max_seq: (result == SubmitResult::Ok).then_some(last * 2),
            invalid: 0,
        }
    }

    #[test]
    fn an_alert_keeps_its_best_result_over_every_submission() {
        let mut h = History::create(None).unwrap();
        h.record(&sub(1, 10, SubmitResult::Unknown));
        h.record(&sub(1, 10, SubmitResult::Failed));
        h.record(&sub(5, 6, SubmitResult::Ok));
        h.record(&sub(11, 12, SubmitResult::Failed));
        assert_eq!(h.best(1), Some(SubmitResult::Unknown));
        assert_eq!(h.best(5), Some(SubmitResult::Ok));
        assert_eq!(h.best(11), Some(SubmitResult::Failed));
        assert_eq!(h.best(13), None);
        assert_eq!(h.last_alert(), 12);
        assert_eq!(h.submissions(), [2, 1, 1]);
        assert_eq!(h.max_seq(), 12);
    }

    #[test]
    fn every_submission_is_a_line_of_the_log() {
        let dir = testkit::TempDir::new("chaos-history").unwrap();
        let path = dir.path().join("history.jsonl");
        let mut h = History::create(Some(&path)).unwrap();
        h.record(&sub(1, 2, SubmitResult::Ok));
        h.record(&sub(3, 4, SubmitResult::Unknown));
        h.flush().unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[1]["result"], "unknown");
        assert_eq!(lines[0]["last"], 2);
    }
}
