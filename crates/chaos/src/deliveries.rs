//! What the SIEM receivers got, read back from their messages files (`<arrival ns> <connection
//! opened ns> <message>` per line, written by loadkit's sink) and checked message by message
//! against the alert that was submitted: the alerts are generated from their number, so each
//! copy is compared with a fresh rebuild of its alert (type, severity, `eventId`, every
//! extension pair) and with the cluster's `host_id` (`dvchost`).

use loadkit::sink::unescape_message;
use std::collections::HashMap;
use std::path::Path;

/// One message as a receiver got it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Arrival {
    /// Index of the receiver.
    pub receiver: usize,
    /// Wall-clock nanoseconds when it was read.
    pub at_ns: u128,
    /// Wall-clock nanoseconds when its connection was accepted.
    pub opened_ns: u128,
    /// The alert number, for one of this run's alerts.
    pub alert: Option<u64>,
}

/// Everything the receivers got.
#[derive(Debug, Default)]
pub struct Deliveries {
    /// Copies per alert number.
    pub copies: HashMap<u64, u32>,
    /// Every message, in arrival order.
    pub arrivals: Vec<Arrival>,
    /// Copies that differ from the submitted alert: (`eventId` or line, what differs).
    pub corrupted: Vec<(String, String)>,
    /// Alert messages whose `eventId` is not one of this run's alerts.
    pub foreign: Vec<String>,
    /// Whether the fresh alert sent after the faults arrived.
    pub fresh_arrived: bool,
    /// Messages without an `eventId` (heartbeats) and activity-log records.
    pub other: u64,
    /// Messages per receiver.
    pub per_receiver: Vec<u64>,
}

/// What a run's alerts look like, to check a copy against.
#[derive(Debug, Clone)]
pub struct Expected {
    /// The alert ID prefix: IDs are `{prefix}-{n}`.
    pub prefix: String,
    /// The cluster's `host_id` setting, which every message carries as `dvchost`.
    pub host_id: String,
    /// The ID of the fresh alert sent at the end.
    pub fresh_id: String,
}

/// What one message is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    /// A copy of alert `n`, identical to what was submitted.
    Alert(u64),
    /// The fresh alert.
    Fresh,
    /// A copy of alert `n` that differs: what differs.
    Corrupted(String, String),
    /// An alert this run never made.
    Foreign(String),
    /// A heartbeat or an activity-log record.
    Other,
}

impl Expected {
    /// Classifies one received message.
    pub fn classify(&self, msg: &[u8]) -> Kind {
        let Ok((_, record)) = cef::parse_frame(msg) else {
            return Kind::Corrupted(
                String::from_utf8_lossy(&msg[..msg.len().min(120)]).into_owned(),
                "not a CEF syslog message".into(),
            );
        };
        let Some(id) = record.get("eventId") else {
            return Kind::Other;
        };
        if id == self.fresh_id {
            return Kind::Fresh;
        }
        let number = id
            .strip_prefix(&self.prefix)
            .and_then(|rest| rest.strip_prefix('-'))
            .and_then(|n| n.parse::<u64>().ok());
        let Some(n) = number else {
            return if id.starts_with("act-") {
                Kind::Other
            } else {
                Kind::Foreign(id.to_owned())
            };
        };
        match self.differences(n, &record) {
            None => Kind::Alert(n),
            Some(why) => Kind::Corrupted(id.to_owned(), why),
        }
    }

    /// What differs between the copy and alert `n` as submitted, if anything.
    fn differences(&self, n: u64, record: &cef::Record) -> Option<String> {
        if record.type_token() != loadkit::alert_gen::ALERT_TYPE {
            return Some(format!("type {}", record.type_token()));
        }
        // the generator's importance: n % 3 = 0 high, 1 medium, 2 low
        let severity = ["High", "Medium", "Low"][(n % 3) as usize];
        if record.severity() != severity {
            return Some(format!(
                "severity {}, submitted {severity}",
                record.severity()
            ));
        }
        if record.get("dvchost") != Some(self.host_id.as_str()) {
            return Some(format!("dvchost {:?}", record.get("dvchost")));
        }
        for (key, value) in loadkit::alert_gen::alert_pairs(n, 0) {
            if record.get(&key) != Some(value.as_str()) {
                return Some(format!("{key}={:?}, submitted {value:?}", record.get(&key)));
            }
        }
        None
    }

    /// Reads every receiver's messages file from its offset (what it held before the run; a
    /// missing file: nothing received).
    pub fn read(&self, files: &[impl AsRef<Path>], offsets: &[u64]) -> anyhow::Result<Deliveries> {
        let mut d = Deliveries {
            per_receiver: vec![0; files.len()],
            ..Deliveries::default()
        };
        for (receiver, path) in files.iter().enumerate() {
            let path = path.as_ref();
            let bytes = match std::fs::read(path) {
                Ok(b) => b,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => anyhow::bail!("read {}: {e}", path.display()),
            };
            let from = offsets
                .get(receiver)
                .and_then(|o| usize::try_from(*o).ok())
                .unwrap_or(0)
                .min(bytes.len());
            for line in bytes[from..]
                .split(|b| *b == b'\n')
                .filter(|l| !l.is_empty())
            {
                self.take_line(&mut d, receiver, line);
            }
        }
        d.arrivals.sort_by_key(|a| (a.at_ns, a.receiver));
        Ok(d)
    }

    fn take_line(&self, d: &mut Deliveries, receiver: usize, line: &[u8]) {
        d.per_receiver[receiver] += 1;
        let mut parts = line.splitn(3, |b| *b == b' ');
        let mut time = || {
            std::str::from_utf8(parts.next()?)
                .ok()?
                .parse::<u128>()
                .ok()
        };
        let (Some(at_ns), Some(opened_ns)) = (time(), time()) else {
            d.corrupted.push((
                String::from_utf8_lossy(&line[..line.len().min(120)]).into_owned(),
                "unreadable line in the messages file".into(),
            ));
            return;
        };
        let msg = unescape_message(parts.next().unwrap_or_default());
        let mut alert = None;
        match self.classify(&msg) {
            Kind::Alert(n) => {
                *d.copies.entry(n).or_default() += 1;
                alert = Some(n);
            }
            Kind::Fresh => d.fresh_arrived = true,
            Kind::Corrupted(id, why) => d.corrupted.push((id, why)),
            Kind::Foreign(id) => d.foreign.push(id),
            Kind::Other => d.other += 1,
        }
        d.arrivals.push(Arrival {
            receiver,
            at_ns,
            opened_ns,
            alert,
        });
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn expected() -> Expected {
        Expected {
            prefix: "chaos-1".into(),
            host_id: "relay-1".into(),
            fresh_id: "chaos-1-fresh".into(),
        }
    }

    /// A syslog message holding alert `n` as the relay would deliver it, with `edit` applied to
    /// its pairs.
    fn message(id: &str, n: u64, edit: impl Fn(&mut Vec<(String, String)>)) -> Vec<u8> {
        let mut pairs = loadkit::alert_gen::alert_pairs(n, 0);
        edit(&mut pairs);
        let importance = [
            cef::Importance::High,
            cef::Importance::Medium,
            cef::Importance::Low,
        ];
        let mut b = cef::AlertBuilder::new("file_web", importance[(n % 3) as usize]).unwrap();
        for (k, v) in &pairs {
            b.set(k, v.clone()).unwrap();
        }
        b.set("eventId", id).unwrap();
        b.set("dvchost", "relay-1").unwrap();
        let cef = b.build().unwrap().to_cef_string();
        format!("<134>1 2026-11-30T00:00:00Z relay siem-relay - - - {cef}").into_bytes()
    }

    #[test]
    fn a_faithful_copy_is_its_alert_and_any_changed_value_is_corruption() {
        let e = expected();
        assert_eq!(e.classify(&message("chaos-1-7", 7, |_| ())), Kind::Alert(7));
        let changed = message("chaos-1-7", 7, |p| p[0].1.push('9'));
        assert!(
            matches!(e.classify(&changed), Kind::Corrupted(id, why) if id == "chaos-1-7" && why.starts_with("src=")),
        );
        // the right values under the wrong number
        assert!(matches!(
            e.classify(&message("chaos-1-8", 7, |_| ())),
            Kind::Corrupted(..)
        ));
        assert!(matches!(e.classify(b"garbage"), Kind::Corrupted(..)));
    }

    #[test]
    fn other_runs_alerts_are_foreign_and_the_fresh_alert_is_known() {
        let e = expected();
        assert_eq!(
            e.classify(&message("chaos-2-7", 7, |_| ())),
            Kind::Foreign("chaos-2-7".into())
        );
        assert_eq!(
            e.classify(&message("chaos-1-fresh", 1, |_| ())),
            Kind::Fresh
        );
        let heartbeat = b"<134>1 2026-11-30T00:00:00Z relay siem-relay - - - CEF:0|AO Kaspersky Lab|KATA|7.1|heartbeat|Heartbeat|1|dvchost=relay";
        assert_eq!(e.classify(heartbeat), Kind::Other);
    }

    #[test]
    fn files_are_read_into_copies_and_arrivals_in_time_order() {
        let dir = testkit::TempDir::new("chaos-deliveries").unwrap();
        let line = |at: u128, id: &str, n: u64| {
            let mut l = format!("{at} 5 ").into_bytes();
            l.extend(message(id, n, |_| ()));
            l.push(b'\n');
            l
        };
        let a = dir.path().join("a");
        let b = dir.path().join("b");
        std::fs::write(
            &a,
            [line(30, "chaos-1-1", 1), line(10, "chaos-1-2", 2)].concat(),
        )
        .unwrap();
        std::fs::write(
            &b,
            [line(20, "chaos-1-1", 1), line(40, "chaos-1-fresh", 1)].concat(),
        )
        .unwrap();
        let missing = dir.path().join("never-started");
        let d = expected().read(&[a, b, missing], &[]).unwrap();
        assert_eq!(d.copies[&1], 2);
        assert_eq!(d.copies[&2], 1);
        assert!(d.fresh_arrived);
        assert_eq!(d.per_receiver, vec![2, 2, 0]);
        let order: Vec<(u128, usize)> = d.arrivals.iter().map(|a| (a.at_ns, a.receiver)).collect();
        assert_eq!(order, vec![(10, 0), (20, 1), (30, 0), (40, 1)]);
        assert_eq!(d.arrivals[3].alert, None);
    }

    #[test]
    fn what_a_file_held_before_the_run_is_skipped() {
        let dir = testkit::TempDir::new("chaos-offsets").unwrap();
        let mut first = b"1 1 ".to_vec();
        first.extend(message("chaos-0-1", 1, |_| ()));
        first.push(b'\n');
        let mut second = b"2 2 ".to_vec();
        second.extend(message("chaos-1-2", 2, |_| ()));
        second.push(b'\n');
        let path = dir.path().join("m");
        std::fs::write(&path, [first.clone(), second].concat()).unwrap();
        let d = expected().read(&[&path], &[first.len() as u64]).unwrap();
        assert!(d.foreign.is_empty(), "{:?}", d.foreign);
        assert_eq!(d.copies.get(&2), Some(&1));
    }
}
