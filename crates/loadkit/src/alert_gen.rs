//! Generated `file_web` alerts for `relay-load`: realistic extension keys, values derived from a
//! counter (deterministic), unique alert IDs per run (`prefix-counter`) and a payload padded to a
//! given size. Pure.

use relay_client::{Alert, Importance};

/// Alert type of every generated alert.
pub const ALERT_TYPE: &str = "file_web";

/// Makes alerts with IDs `{prefix}-1`, `{prefix}-2`, ...
#[derive(Debug, Clone)]
pub struct AlertGenerator {
    prefix: String,
    source: String,
    size: usize,
    generated: u64,
}

impl AlertGenerator {
    /// A generator for `source`, with IDs starting with `prefix`, and extension payloads of
    /// `size` bytes (or the natural size of the values, if that is larger).
    pub fn new(prefix: impl Into<String>, source: impl Into<String>, size: usize) -> Self {
        Self {
            prefix: prefix.into(),
            source: source.into(),
            size,
            generated: 0,
        }
    }

    /// Alerts generated so far.
    pub fn generated(&self) -> u64 {
        self.generated
    }

    /// The next alert, raised at `time_ms`.
    pub fn next_alert(&mut self, time_ms: i64) -> Alert {
        self.generated += 1;
        let n = self.generated;
        let importance = match n % 3 {
            0 => Importance::High,
            1 => Importance::Medium,
            _ => Importance::Low,
        };
        Alert {
            source: self.source.clone(),
            alert_id: format!("{}-{n}", self.prefix),
            alert_type: ALERT_TYPE.to_string(),
            importance,
            time_ms,
            pairs: alert_pairs(n, self.size),
        }
    }

    /// The next `count` alerts.
    pub fn batch(&mut self, count: usize, time_ms: i64) -> Vec<Alert> {
        (0..count).map(|_| self.next_alert(time_ms)).collect()
    }
}

/// A run-unique ID prefix: `load-<unix ms, hex>-<pid>`.
pub fn run_prefix() -> String {
    let ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or(0);
    format!("load-{ms:x}-{}", std::process::id())
}

/// Size of the extension as `key=value` pairs joined by single spaces (before CEF escaping).
pub fn payload_len(pairs: &[(String, String)]) -> usize {
    let sum: usize = pairs.iter().map(|(k, v)| k.len() + 1 + v.len()).sum();
    sum + pairs.len().saturating_sub(1)
}

/// SplitMix64 of `n`: stable pseudo-random bits for values.
fn mix(n: u64) -> u64 {
    let mut z = n.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

fn hex(seed: u64, chars: usize) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = Vec::with_capacity(chars + 16);
    let mut i: u64 = 0;
    while s.len() < chars {
        // 16 lower-case digits, most significant first (what `{:016x}` writes, without its cost:
        // the generator's formatting was most of relay-load's CPU time).
        let v = mix(seed ^ (i << 56));
        s.extend(
            (0..16)
                .rev()
                .map(|d| DIGITS[((v >> (d * 4)) & 15) as usize]),
        );
        i += 1;
    }
    s.truncate(chars);
    String::from_utf8(s).unwrap_or_default()
}

/// The extension of alert `n` (every key allowed for `file_web`), padded (in the `request` URL's
/// query) to `size` bytes.
pub fn alert_pairs(n: u64, size: usize) -> Vec<(String, String)> {
    let h = mix(n);
    let file = format!("invoice_{n}.docm");
    let kv = |k: &str, v: String| (k.to_string(), v);
    let mut pairs = vec![
        kv(
            "src",
            format!("10.{}.{}.{}", (n >> 16) & 255, (n >> 8) & 255, n & 255),
        ),
        kv("spt", (49_152 + h % 16_384).to_string()),
        kv("dst", format!("203.0.113.{}", 1 + h % 254)),
        kv("dpt", if h & 1 == 0 { "443" } else { "80" }.to_string()),
        kv("shost", format!("ws-{:04}.corp.example", h % 5_000)),
        kv("suser", format!("CORP\\user{:03}", h % 900)),
        kv("fName", file.clone()),
        kv("fsize", (20_000 + (h >> 8) % 5_000_000).to_string()),
        kv("fileType", "docm".to_string()),
        kv("fileHash", hex(h, 32)),
        kv("KasperskyLabKATAfileSHA256", hex(!h, 64)),
        kv("app", "HTTP".to_string()),
        kv("requestMethod", "GET".to_string()),
        kv(
            "requestClientApplication",
            "Mozilla/5.0 (Windows NT 10.0; Win64; x64)".to_string(),
        ),
        kv(
            "request",
            format!("http://dl-{}.files.example/download/{file}?sid=", h % 97),
        ),
    ];
    let missing = size.saturating_sub(payload_len(&pairs));
    if let Some((_, request)) = pairs.last_mut() {
        let pad = hex(h.rotate_left(17), missing);
        request.push_str(&pad);
    }
    pairs
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_digits_are_the_formatted_ones() {
        let formatted: String = (0..3_u64)
            .map(|i| format!("{:016x}", mix(42 ^ (i << 56))))
            .collect();
        assert_eq!(hex(42, 40), formatted[..40]);
        assert_eq!(hex(7, 0), "");
    }

    #[test]
    fn ids_are_unique_and_numbered_from_one() {
        let mut g = AlertGenerator::new("run", "sensor", 0);
        let batch = g.batch(3, 0);
        let ids: Vec<&str> = batch.iter().map(|a| a.alert_id.as_str()).collect();
        assert_eq!(ids, ["run-1", "run-2", "run-3"]);
        assert_eq!(g.next_alert(0).alert_id, "run-4");
        assert_eq!(g.generated(), 4);
        assert_ne!(run_prefix(), "");
    }

    #[test]
    fn the_payload_has_the_asked_size_when_it_can() {
        let mut g = AlertGenerator::new("p", "s", 1024);
        for _ in 0..50 {
            assert_eq!(payload_len(&g.next_alert(0).pairs), 1024);
        }
        let mut big = AlertGenerator::new("p", "s", 32 * 1024);
        assert_eq!(payload_len(&big.next_alert(0).pairs), 32 * 1024);
        // smaller than the natural values: the values stay whole
        let mut small = AlertGenerator::new("p", "s", 10);
        assert!(payload_len(&small.next_alert(0).pairs) > 300);
    }

    #[test]
    fn every_key_is_allowed_for_the_type_by_the_catalogue() -> Result<(), cef::BuildError> {
        let alert = AlertGenerator::new("p", "s", 2048).next_alert(1_700_000_000_000);
        let mut b = cef::AlertBuilder::new(&alert.alert_type, cef::Importance::High)?;
        for (k, v) in &alert.pairs {
            b.set(k, v.clone())?;
        }
        b.set("eventId", alert.alert_id)?;
        b.build()?;
        Ok(())
    }
}
