//! Parsing and printing of the CLI's values: durations (`30s`, `500ms`, `5m`, `1h`), switches
//! (`on`/`off`), roles, protocols, and times as UTC dates.

use std::time::Duration;

use relay_client::{Protocol, Role};

/// A duration: a whole number followed by `ms`, `s`, `m` or `h` (`30s`, `1500ms`, `5m`).
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .ok_or_else(|| format!("`{text}` has no unit: write e.g. `30s`, `500ms`, `5m` or `1h`"))?;
    let (number, unit) = text.split_at(split);
    let n: u64 = number
        .parse()
        .map_err(|_| format!("`{text}` does not start with a whole number"))?;
    let ms_per_unit = match unit {
        "ms" => 1,
        "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        _ => {
            return Err(format!(
                "unknown unit `{unit}` in `{text}`: use ms, s, m or h"
            ));
        }
    };
    n.checked_mul(ms_per_unit)
        .map(Duration::from_millis)
        .ok_or_else(|| format!("`{text}` is too long"))
}

/// A duration the way [`parse_duration`] reads it, in the largest unit that divides it.
pub fn format_duration(d: Duration) -> String {
    let ms = d.as_millis();
    for (unit, size) in [("h", 3_600_000), ("m", 60_000), ("s", 1_000)] {
        if ms != 0 && ms.is_multiple_of(size) {
            return format!("{}{unit}", ms / size);
        }
    }
    format!("{ms}ms")
}

/// `on` or `off` (also `true`/`false`, `yes`/`no`, `1`/`0`).
pub fn parse_switch(text: &str) -> Result<bool, String> {
    match text.to_ascii_lowercase().as_str() {
        "on" | "true" | "yes" | "1" => Ok(true),
        "off" | "false" | "no" | "0" => Ok(false),
        _ => Err(format!("`{text}` is neither `on` nor `off`")),
    }
}

/// `administrator` (or `admin`) or `auditor` (or `security-auditor`).
pub fn parse_role(text: &str) -> Result<Role, String> {
    match text.to_ascii_lowercase().as_str() {
        "administrator" | "admin" => Ok(Role::Administrator),
        "auditor" | "security-auditor" => Ok(Role::SecurityAuditor),
        _ => Err(format!(
            "`{text}` is not a role: use `administrator` or `auditor`"
        )),
    }
}

/// `tcp` or `udp`.
pub fn parse_protocol(text: &str) -> Result<Protocol, String> {
    match text.to_ascii_lowercase().as_str() {
        "tcp" => Ok(Protocol::Tcp),
        "udp" => Ok(Protocol::Udp),
        _ => Err(format!("`{text}` is not a protocol: use `tcp` or `udp`")),
    }
}

/// Milliseconds since the Unix epoch as a UTC date, `Mar 14 2024 10:15:42 UTC` (the calendar
/// arithmetic of the wire crate, which writes the same form into CEF `rt`).
pub fn utc(ms: i64) -> String {
    format!("{} UTC", cef::format_rt(ms, cef::RtFormat::Text))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_need_a_whole_number_and_a_unit() {
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("1500ms"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_duration("2h"), Ok(Duration::from_secs(7200)));
        for bad in [
            "30",
            "s",
            "1.5s",
            "30 s",
            "10d",
            "-1s",
            "99999999999999999999h",
        ] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn durations_print_in_the_largest_unit_that_divides_them() {
        for (d, text) in [
            (Duration::from_secs(30), "30s"),
            (Duration::from_secs(120), "2m"),
            (Duration::from_secs(3600), "1h"),
            (Duration::from_millis(1500), "1500ms"),
            (Duration::ZERO, "0ms"),
        ] {
            assert_eq!(format_duration(d), text);
            assert_eq!(parse_duration(text), Ok(d));
        }
    }

    #[test]
    fn switches_roles_and_protocols() {
        assert_eq!(parse_switch("on"), Ok(true));
        assert_eq!(parse_switch("OFF"), Ok(false));
        assert!(parse_switch("maybe").is_err());
        assert_eq!(parse_role("auditor"), Ok(Role::SecurityAuditor));
        assert_eq!(parse_role("administrator"), Ok(Role::Administrator));
        assert!(parse_role("root").is_err());
        assert_eq!(parse_protocol("UDP"), Ok(Protocol::Udp));
        assert!(parse_protocol("relp").is_err());
    }

    #[test]
    fn times_print_as_utc_dates() {
        assert_eq!(utc(0), "Jan 01 1970 00:00:00 UTC");
        assert_eq!(utc(1_710_411_342_000), "Mar 14 2024 10:15:42 UTC");
        assert_eq!(utc(951_782_400_000), "Feb 29 2000 00:00:00 UTC");
    }
}
