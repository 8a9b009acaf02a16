//! Calendar arithmetic and the timestamp formats of the wire: CEF `rt`, RFC 5424 and RFC 3164.
//! Pure functions on epoch milliseconds (UTC); no clock is read here.

/// How the CEF `rt` value is written (a setting of the relay).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RtFormat {
    /// `MMM dd yyyy HH:mm:ss` in UTC, e.g. `Mar 14 2024 10:15:42`.
    #[default]
    Text,
    /// Milliseconds since the Unix epoch, e.g. `1710411342000`.
    EpochMillis,
}

pub(crate) const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// A UTC instant broken into calendar fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Civil {
    pub year: i64,
    pub month: u32,
    pub day: u32,
    pub hour: u32,
    pub minute: u32,
    pub second: u32,
    pub millis: u32,
}

/// Days since 1970-01-01 to (year, month 1..=12, day 1..=31), proleptic Gregorian calendar.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// (year, month 1..=12, day 1..=31) to days since 1970-01-01.
pub(crate) fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let m = i64::from(month);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

pub(crate) fn days_in_month(year: i64, month: u32) -> u32 {
    match month {
        4 | 6 | 9 | 11 => 30,
        2 if (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 => 29,
        2 => 28,
        _ => 31,
    }
}

impl Civil {
    pub(crate) fn from_epoch_ms(ms: i64) -> Self {
        let days = ms.div_euclid(86_400_000);
        let in_day = ms.rem_euclid(86_400_000);
        let (year, month, day) = civil_from_days(days);
        let secs = (in_day / 1000) as u32;
        Self {
            year,
            month,
            day,
            hour: secs / 3600,
            minute: secs / 60 % 60,
            second: secs % 60,
            millis: (in_day % 1000) as u32,
        }
    }

    pub(crate) fn month_name(&self) -> &'static str {
        MONTHS[(self.month - 1) as usize]
    }
}

/// Appends the decimal digits of `n`.
pub(crate) fn push_u64(out: &mut Vec<u8>, mut n: u64) {
    let mut buf = [0u8; 20];
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&buf[i..]);
}

/// Appends `n` zero-padded to two digits (n < 100).
#[inline]
pub(crate) fn push_2(out: &mut Vec<u8>, n: u32) {
    out.extend_from_slice(&[b'0' + (n / 10 % 10) as u8, b'0' + (n % 10) as u8]);
}

/// Appends a year with at least four digits (a minus sign before years before 1 BC).
fn push_year(out: &mut Vec<u8>, year: i64) {
    if year < 0 {
        out.push(b'-');
    }
    let y = year.unsigned_abs();
    let digits = if y == 0 { 1 } else { y.ilog10() as usize + 1 };
    out.extend_from_slice(&b"000"[..4usize.saturating_sub(digits)]);
    push_u64(out, y);
}

/// Appends `rt` in the given format.
pub(crate) fn push_rt(out: &mut Vec<u8>, ms: i64, format: RtFormat) {
    match format {
        RtFormat::EpochMillis => {
            if ms < 0 {
                out.push(b'-');
            }
            push_u64(out, ms.unsigned_abs());
        }
        RtFormat::Text => {
            let c = Civil::from_epoch_ms(ms);
            out.extend_from_slice(c.month_name().as_bytes());
            out.push(b' ');
            push_2(out, c.day);
            out.push(b' ');
            push_year(out, c.year);
            out.push(b' ');
            push_hms(out, &c);
        }
    }
}

fn push_hms(out: &mut Vec<u8>, c: &Civil) {
    push_2(out, c.hour);
    out.push(b':');
    push_2(out, c.minute);
    out.push(b':');
    push_2(out, c.second);
}

/// The CEF `rt` value for an instant, e.g. `Mar 14 2024 10:15:42` or `1710411342000`.
pub fn format_rt(epoch_ms: i64, format: RtFormat) -> String {
    let mut out = Vec::with_capacity(24);
    push_rt(&mut out, epoch_ms, format);
    // Only ASCII digits, letters, spaces, colons and '-' are written above.
    String::from_utf8_lossy(&out).into_owned()
}

/// Appends an RFC 5424 timestamp with milliseconds in UTC: `2024-03-14T10:15:43.120Z`.
pub(crate) fn push_rfc5424(out: &mut Vec<u8>, ms: i64) {
    let c = Civil::from_epoch_ms(ms);
    push_year(out, c.year);
    out.push(b'-');
    push_2(out, c.month);
    out.push(b'-');
    push_2(out, c.day);
    out.push(b'T');
    push_hms(out, &c);
    out.push(b'.');
    out.extend_from_slice(&[
        b'0' + (c.millis / 100) as u8,
        b'0' + (c.millis / 10 % 10) as u8,
        b'0' + (c.millis % 10) as u8,
    ]);
    out.push(b'Z');
}

/// Appends an RFC 3164 timestamp in UTC: `Mar 14 10:15:43`, the day padded with a space.
pub(crate) fn push_rfc3164(out: &mut Vec<u8>, ms: i64) {
    let c = Civil::from_epoch_ms(ms);
    out.extend_from_slice(c.month_name().as_bytes());
    out.push(b' ');
    if c.day < 10 {
        out.extend_from_slice(&[b' ', b'0' + c.day as u8]);
    } else {
        push_2(out, c.day);
    }
    out.push(b' ');
    push_hms(out, &c);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(f: impl Fn(&mut Vec<u8>)) -> String {
        let mut v = Vec::new();
        f(&mut v);
        String::from_utf8(v).unwrap()
    }

    // 2024-03-14T10:15:42Z
    const T: i64 = 1_710_411_342_000;

    #[test]
    fn rt_text_matches_the_contract() {
        assert_eq!(format_rt(T, RtFormat::Text), "Mar 14 2024 10:15:42");
        assert_eq!(format_rt(0, RtFormat::Text), "Jan 01 1970 00:00:00");
        assert_eq!(format_rt(T, RtFormat::EpochMillis), "1710411342000");
    }

    #[test]
    fn rfc5424_and_rfc3164_timestamps() {
        assert_eq!(s(|o| push_rfc5424(o, T + 1120)), "2024-03-14T10:15:43.120Z");
        assert_eq!(s(|o| push_rfc5424(o, 5)), "1970-01-01T00:00:00.005Z");
        assert_eq!(s(|o| push_rfc3164(o, T)), "Mar 14 10:15:42");
        // 2024-03-04: the day is padded with a space in RFC 3164 and a zero in `rt`.
        let t = T - 10 * 86_400_000;
        assert_eq!(s(|o| push_rfc3164(o, t)), "Mar  4 10:15:42");
        assert_eq!(format_rt(t, RtFormat::Text), "Mar 04 2024 10:15:42");
    }

    #[test]
    fn leap_days_and_year_ends() {
        let feb29 = days_from_civil(2024, 2, 29) * 86_400_000;
        assert_eq!(format_rt(feb29, RtFormat::Text), "Feb 29 2024 00:00:00");
        let last = days_from_civil(2023, 12, 31) * 86_400_000 + 86_399_999;
        assert_eq!(s(|o| push_rfc5424(o, last)), "2023-12-31T23:59:59.999Z");
        assert_eq!(days_in_month(2000, 2), 29);
        assert_eq!(days_in_month(1900, 2), 28);
    }

    #[test]
    fn civil_and_days_round_trip_over_a_wide_range() {
        for days in (-800_000..800_000).step_by(97) {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days);
            assert!(d >= 1 && d <= days_in_month(y, m));
        }
    }

    #[test]
    fn small_and_negative_years_keep_four_digits() {
        let year_5 = days_from_civil(5, 1, 1) * 86_400_000;
        assert_eq!(format_rt(year_5, RtFormat::Text), "Jan 01 0005 00:00:00");
        let year_0 = days_from_civil(0, 1, 1) * 86_400_000;
        assert_eq!(format_rt(year_0, RtFormat::Text), "Jan 01 0000 00:00:00");
        assert_eq!(format_rt(-1, RtFormat::EpochMillis), "-1");
    }
}
