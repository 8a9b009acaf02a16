//! The protobuf `AlertResult` to [`Outcome`].

use relay_proto::ingest::v1 as pb;
use relay_proto::ingest::v1::alert_result::Outcome as PbOutcome;

use crate::types::Outcome;

/// The outcome of a result; `None` when the node left the `oneof` unset.
pub(crate) fn outcome(r: pb::AlertResult) -> Option<Outcome> {
    Some(match r.outcome? {
        PbOutcome::AcceptedSeq(seq) => Outcome::Accepted { seq },
        PbOutcome::Duplicate(pb::Duplicate {}) => Outcome::Duplicate,
        PbOutcome::Invalid(reason) => Outcome::Invalid { reason },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn result(o: Option<PbOutcome>) -> pb::AlertResult {
        pb::AlertResult { outcome: o }
    }

    #[test]
    fn each_outcome_converts_and_an_empty_one_is_refused() {
        assert_eq!(
            outcome(result(Some(PbOutcome::AcceptedSeq(7)))),
            Some(Outcome::Accepted { seq: 7 })
        );
        assert_eq!(
            outcome(result(Some(PbOutcome::Duplicate(pb::Duplicate {})))),
            Some(Outcome::Duplicate)
        );
        assert_eq!(
            outcome(result(Some(PbOutcome::Invalid("alert_id: empty".into())))),
            Some(Outcome::Invalid {
                reason: "alert_id: empty".into()
            })
        );
        assert_eq!(outcome(result(None)), None);
    }
}
