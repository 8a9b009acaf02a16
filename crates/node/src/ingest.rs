//! The gRPC ingest service: checks each alert against the catalogue, submits the valid ones to
//! the cluster as one batch (forwarded to the leader by the cluster core) and answers per alert
//! once the batch is committed and applied.

use crate::encode::check_alert;
use crate::payload::{AlertPayload, Importance};
use crate::status::StatusSource;
use cluster::node::ClusterClient;
use cluster::state::outbox::{Record, RecordKind};
use cluster::state::{MAX_BATCH_BYTES, MAX_BATCH_RECORDS, MAX_KEY_PART_BYTES, SubmitOutcome};
use relay_proto::ingest::v1 as pb;
use relay_proto::ingest::v1::ingest_server::Ingest;
use std::time::Instant;

/// Keys the relay sets itself; a submitted alert may not carry them.
const RELAY_KEYS: [&str; 3] = ["dvchost", "eventId", "rt"];

/// The ingest service of one node.
#[derive(Clone)]
pub struct IngestService {
    cluster: ClusterClient,
    status: StatusSource,
}

impl IngestService {
    /// A service submitting to `cluster`; `status` answers `Status`.
    pub fn new(cluster: ClusterClient, status: StatusSource) -> Self {
        Self { cluster, status }
    }
}

/// An alert refused by [`to_record`]: its ID and what is wrong (naming the field or key).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidAlert {
    /// The alert's ID as submitted.
    pub alert_id: String,
    /// What is wrong, naming the field or key.
    pub reason: String,
}

/// Checks one alert and turns it into an outbox record, or says what is wrong (naming the field
/// or key). Takes the alert by value: its strings move into the record, none is copied.
pub fn to_record(alert: pb::Alert) -> Result<Record, InvalidAlert> {
    match check(&alert) {
        Ok(importance) => {
            let pb::Alert {
                alert_id,
                r#type,
                time_ms,
                pairs,
                source,
                ..
            } = alert;
            let payload = AlertPayload {
                type_token: r#type,
                importance,
                time_ms,
                pairs: pairs.into_iter().map(|p| (p.key, p.value)).collect(),
            };
            // The same build the leader runs at delivery: what passes here encodes there.
            let checked = check_alert(&payload, &alert_id)
                .map_err(|e| e.to_string())
                .and_then(|_| payload.encode().map_err(|e| e.to_string()));
            match checked {
                Ok(payload) => Ok(Record {
                    kind: RecordKind::Alert,
                    source,
                    alert_id,
                    payload,
                    // Set by the service, which reads the clock.
                    received_at_ms: 0,
                }),
                Err(reason) => Err(InvalidAlert { alert_id, reason }),
            }
        }
        Err(reason) => Err(InvalidAlert {
            alert_id: alert.alert_id,
            reason,
        }),
    }
}

/// The checks of one alert's fields made before its catalogue build; returns its importance.
fn check(alert: &pb::Alert) -> Result<Importance, String> {
    let part = |name: &str, v: &str| {
        if v.is_empty() || v.len() > MAX_KEY_PART_BYTES {
            Err(format!("`{name}` must be 1..={MAX_KEY_PART_BYTES} bytes"))
        } else {
            Ok(())
        }
    };
    part("alert_id", &alert.alert_id)?;
    part("source", &alert.source)?;
    let importance = match pb::Importance::try_from(alert.importance) {
        Ok(pb::Importance::Low) => Importance::Low,
        Ok(pb::Importance::Medium) => Importance::Medium,
        Ok(pb::Importance::High) => Importance::High,
        _ => return Err("`importance` must be LOW, MEDIUM or HIGH".into()),
    };
    if let Some(p) = alert
        .pairs
        .iter()
        .find(|p| RELAY_KEYS.contains(&p.key.as_str()))
    {
        return Err(format!(
            "key `{}` is set by the relay (dvchost from the settings, eventId from alert_id, rt from time_ms)",
            p.key
        ));
    }
    Ok(importance)
}

fn outcome(o: SubmitOutcome) -> pb::alert_result::Outcome {
    match o {
        SubmitOutcome::Accepted { seq } => pb::alert_result::Outcome::AcceptedSeq(seq),
        SubmitOutcome::Duplicate => pb::alert_result::Outcome::Duplicate(pb::Duplicate {}),
    }
}

#[tonic::async_trait]
impl Ingest for IngestService {
    async fn submit(
        &self,
        request: tonic::Request<pb::SubmitRequest>,
    ) -> Result<tonic::Response<pb::SubmitResponse>, tonic::Status> {
        let started = Instant::now();
        let received_at_ms = crate::observe::wall_clock_ms();
        let alerts = request.into_inner().alerts;
        if alerts.len() > MAX_BATCH_RECORDS {
            return Err(tonic::Status::invalid_argument(format!(
                "`alerts`: {} alerts, at most {MAX_BATCH_RECORDS} per call",
                alerts.len()
            )));
        }
        let mut results: Vec<Option<pb::alert_result::Outcome>> = Vec::with_capacity(alerts.len());
        let mut records = Vec::with_capacity(alerts.len());
        for (i, a) in alerts.into_iter().enumerate() {
            match to_record(a) {
                Ok(mut r) => {
                    r.received_at_ms = received_at_ms;
                    records.push(r);
                    results.push(None);
                }
                Err(InvalidAlert { alert_id, reason }) => results.push(Some(
                    pb::alert_result::Outcome::Invalid(format!("alert {i} ({alert_id}): {reason}")),
                )),
            }
        }
        let invalid = results.iter().filter(|r| r.is_some()).count() as u64;
        metrics::counter!("relay_ingest_invalid_total").increment(invalid);
        let bytes: usize = records.iter().map(|r| r.payload.len()).sum();
        if bytes > MAX_BATCH_BYTES {
            return Err(tonic::Status::invalid_argument(format!(
                "`alerts`: {bytes} bytes of alert content, at most {MAX_BATCH_BYTES} per call"
            )));
        }
        let mut outcomes = if records.is_empty() {
            Vec::new()
        } else {
            self.cluster
                .submit_alerts(records)
                .await
                .map_err(|e| cluster::to_status(&e))?
        }
        .into_iter();
        let results = results
            .into_iter()
            .map(|r| pb::AlertResult {
                outcome: r.or_else(|| outcomes.next().map(outcome)),
            })
            .collect();
        metrics::histogram!("relay_ingest_seconds").record(started.elapsed().as_secs_f64());
        Ok(tonic::Response::new(pb::SubmitResponse { results }))
    }

    async fn status(
        &self,
        _request: tonic::Request<pb::StatusRequest>,
    ) -> Result<tonic::Response<pb::StatusResponse>, tonic::Status> {
        Ok(tonic::Response::new(self.status.read()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alert(pairs: &[(&str, &str)]) -> pb::Alert {
        pb::Alert {
            alert_id: "a-1".into(),
            r#type: "url_web".into(),
            importance: pb::Importance::High as i32,
            time_ms: 1_710_411_342_000,
            pairs: pairs
                .iter()
                .map(|(k, v)| pb::Pair {
                    key: (*k).into(),
                    value: (*v).into(),
                })
                .collect(),
            source: "sensor-1".into(),
        }
    }

    #[test]
    fn a_valid_alert_becomes_an_alert_record_with_its_values() {
        let r = to_record(alert(&[("request", "http://x.test/"), ("cs1", "v")])).unwrap();
        assert_eq!(r.kind, RecordKind::Alert);
        assert_eq!(
            (r.source.as_str(), r.alert_id.as_str()),
            ("sensor-1", "a-1")
        );
        let p = AlertPayload::decode(&r.payload).unwrap();
        assert_eq!(p.type_token, "url_web");
        assert_eq!(p.pairs.len(), 2);
    }

    #[test]
    fn refusals_name_the_field_or_key() {
        let reason = |a: pb::Alert| to_record(a).unwrap_err().reason;
        let e = reason(alert(&[("foo", "x")]));
        assert!(e.contains("`foo`"), "{e}");
        let e = reason(alert(&[("rt", "x")]));
        assert!(e.contains("`rt`"), "{e}");
        let mut a = alert(&[]);
        a.r#type = "nosuch".into();
        assert!(reason(a).contains("nosuch"));
        let mut a = alert(&[]);
        a.importance = 0;
        assert!(reason(a).contains("`importance`"));
        let mut a = alert(&[]);
        a.alert_id.clear();
        assert!(reason(a).contains("`alert_id`"));
    }

    #[test]
    fn a_refusal_keeps_the_alert_id() {
        let e = to_record(alert(&[("foo", "x")])).unwrap_err();
        assert_eq!(e.alert_id, "a-1");
    }
}
