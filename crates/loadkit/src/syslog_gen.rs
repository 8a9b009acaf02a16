//! Generated CEF-over-syslog messages for `relay-load --ingest syslog`: the same `file_web`
//! alerts as [`crate::alert_gen`], built with `cef`'s builder and encoder, as a CEF source (a
//! KATA Central Node) would send them to a syslog receiver. The `eventId` is a number, so a sink
//! can tally what arrived; `dvchost` is the run's source name, so numbers may repeat across runs
//! without a relay's dedup (`dvchost`, `eventId`) taking them for duplicates. Pure.

use cef::{AlertBuilder, BuildError, Facility, Framing, Importance, RtFormat, Severity};

use crate::alert_gen::{ALERT_TYPE, alert_pairs};

/// Largest syslog message written (what the node's listener takes by default).
pub const MAX_MESSAGE_BYTES: usize = 65_536;

/// Encodes the alert with a given number as one framed syslog message.
#[derive(Debug, Clone)]
pub struct SyslogGenerator {
    source: String,
    size: usize,
    encoder: cef::SyslogEncoder,
}

impl SyslogGenerator {
    /// A generator of messages from `source` (syslog HOSTNAME and CEF `dvchost`) with `size`
    /// bytes of extension payload, framed with `framing`.
    pub fn new(source: &str, size: usize, framing: Framing) -> Result<Self, BuildError> {
        let encoder = cef::SyslogEncoder::builder()
            .hostname(source)
            .app_name("relay-load")
            .facility(Facility::LOCAL0)
            .framing(framing)
            .max_message_bytes(MAX_MESSAGE_BYTES)
            .build()?;
        Ok(Self {
            source: source.to_owned(),
            size,
            encoder,
        })
    }

    /// Appends the framed message of alert `id` (its `eventId`), raised at `time_ms`, to `out`;
    /// returns the frame's length.
    pub fn push(&self, id: u64, time_ms: i64, out: &mut Vec<u8>) -> Result<usize, BuildError> {
        let (importance, severity) = match id % 3 {
            0 => (Importance::High, Severity::Warning),
            1 => (Importance::Medium, Severity::Notice),
            _ => (Importance::Low, Severity::Informational),
        };
        let mut b = AlertBuilder::new(ALERT_TYPE, importance)?
            .with("dvchost", self.source.clone())?
            .with("eventId", id.to_string())?
            .with_rt(time_ms, RtFormat::Text)?;
        for (k, v) in alert_pairs(id, self.size) {
            b.set(&k, v)?;
        }
        let record = b.build()?;
        let encoded = self.encoder.encode(&record, severity, time_ms, out);
        Ok(encoded.frame_len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_parse_back_with_their_number_and_source() -> Result<(), Box<dyn std::error::Error>>
    {
        for framing in [Framing::OctetCounting, Framing::Lf] {
            let g = SyslogGenerator::new("load-run-1", 1024, framing)?;
            let mut out = Vec::new();
            let first = g.push(7, 1_700_000_000_000, &mut out)?;
            g.push(8, 1_700_000_000_000, &mut out)?;
            let mut at = 0;
            for want in [7, 8] {
                let (msg, used) = cef::decode_frame(&out[at..], framing, MAX_MESSAGE_BYTES)?
                    .ok_or("a whole frame")?;
                let (syslog, record) = cef::parse_frame(msg)?;
                assert_eq!(syslog.hostname, Some("load-run-1"));
                assert_eq!(record.get("eventId"), Some(want.to_string().as_str()));
                assert_eq!(record.get("dvchost"), Some("load-run-1"));
                assert!(msg.len() > 1024, "{}", msg.len());
                at += used;
            }
            assert_eq!(at, out.len());
            assert!(first < out.len());
        }
        Ok(())
    }
}
