//! Timestamps in the forms Docker prints them, without a calendar dependency:
//! RFC 3339 in UTC with nanoseconds, either fixed at nine digits (logrus) or with
//! trailing zeros trimmed (Go's `RFC3339Nano`: inspect output, json-file log lines).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// `2026-11-27T20:37:19.165023981Z`: always nine fractional digits.
pub fn rfc3339_fixed(t: SystemTime) -> String {
    let (secs, nanos) = split(t);
    format!("{}.{nanos:09}Z", date_time(secs))
}

/// `2026-11-27T20:37:19.165Z`, `2026-11-27T20:37:19Z`: Go's `RFC3339Nano`.
pub fn rfc3339_nano(t: SystemTime) -> String {
    let (secs, nanos) = split(t);
    if nanos == 0 {
        return format!("{}Z", date_time(secs));
    }
    let frac = format!("{nanos:09}");
    format!("{}.{}Z", date_time(secs), frac.trim_end_matches('0'))
}

/// Go's zero time, which Docker prints for a container that never started.
pub const ZERO_TIME: &str = "0001-01-01T00:00:00Z";

/// Nanoseconds since the epoch → `SystemTime` (negative values clamp to the epoch).
pub fn from_nanos(n: i64) -> SystemTime {
    UNIX_EPOCH + Duration::from_nanos(n.max(0) as u64)
}

/// Nanoseconds since the epoch.
pub fn to_nanos(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0)
}

fn split(t: SystemTime) -> (i64, u32) {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => (d.as_secs() as i64, d.subsec_nanos()),
        Err(_) => (0, 0),
    }
}

fn date_time(secs: i64) -> String {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Days since 1970-01-01 → (year, month, day), proleptic Gregorian (Howard Hinnant).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let m = m as i64;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Parses the timestamps Docker's API accepts for `since`/`until`: Unix seconds with
/// an optional fraction (`1795811894`, `1795811894.000000001`) or RFC 3339
/// (`2026-11-27T20:37:19Z`, with fraction or numeric offset). Returns nanoseconds.
pub fn parse_timestamp(s: &str) -> Option<i64> {
    let s = s.trim();
    if s.is_empty() {
        return None;
    }
    if s.bytes()
        .all(|b| b.is_ascii_digit() || b == b'.' || b == b'-')
        && !s[1..].contains('-')
    {
        let (secs, frac) = match s.split_once('.') {
            Some((a, b)) => (a, b),
            None => (s, ""),
        };
        let secs: i64 = secs.parse().ok()?;
        if frac.len() > 9 || !frac.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let nanos: i64 = if frac.is_empty() {
            0
        } else {
            format!("{frac:0<9}").parse().ok()?
        };
        return Some(secs * 1_000_000_000 + nanos);
    }
    parse_rfc3339(s)
}

fn parse_rfc3339(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() < 20
        || b[4] != b'-'
        || b[7] != b'-'
        || !(b[10] == b'T' || b[10] == b't' || b[10] == b' ')
    {
        return None;
    }
    let num = |r: std::ops::Range<usize>| s.get(r)?.parse::<i64>().ok();
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (h, mi, se) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || se > 60 {
        return None;
    }
    let mut rest = &s[19..];
    let mut nanos = 0i64;
    if let Some(r) = rest.strip_prefix('.') {
        let end = r.find(|c: char| !c.is_ascii_digit()).unwrap_or(r.len());
        let frac = &r[..end];
        if frac.is_empty() || frac.len() > 9 {
            return None;
        }
        nanos = format!("{frac:0<9}").parse().ok()?;
        rest = &r[end..];
    }
    let offset = match rest {
        "Z" | "z" => 0,
        r if r.len() == 6 && (r.starts_with('+') || r.starts_with('-')) => {
            let oh: i64 = r[1..3].parse().ok()?;
            let om: i64 = r[4..6].parse().ok()?;
            let o = oh * 3600 + om * 60;
            if r.starts_with('-') { -o } else { o }
        }
        _ => return None,
    };
    let days = days_from_civil(y, mo as u32, d as u32);
    let secs = days * 86_400 + h * 3600 + mi * 60 + se - offset;
    Some(secs * 1_000_000_000 + nanos)
}

/// Go's `time.ParseDuration`, in nanoseconds.
pub fn parse_go_duration(s: &str) -> Option<i64> {
    let (neg, mut rest) = match s.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, s.strip_prefix('+').unwrap_or(s)),
    };
    if rest == "0" {
        return Some(0);
    }
    if rest.is_empty() {
        return None;
    }
    let mut total: f64 = 0.0;
    while !rest.is_empty() {
        let end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        if end == 0 {
            return None;
        }
        let n: f64 = rest[..end].parse().ok()?;
        rest = &rest[end..];
        let uend = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let unit = match &rest[..uend] {
            "ns" => 1.0,
            "us" | "µs" | "μs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            _ => return None,
        };
        total += n * unit;
        rest = &rest[uend..];
    }
    let v = total as i64;
    Some(if neg { -v } else { v })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_like_go() {
        let t = UNIX_EPOCH + Duration::new(1_795_811_894, 165_023_981);
        assert_eq!(rfc3339_fixed(t), "2026-11-27T20:38:14.165023981Z");
        assert_eq!(rfc3339_nano(t), "2026-11-27T20:38:14.165023981Z");
        let t = UNIX_EPOCH + Duration::new(1_795_811_894, 100_000_000);
        assert_eq!(rfc3339_nano(t), "2026-11-27T20:38:14.1Z");
        assert_eq!(rfc3339_fixed(t), "2026-11-27T20:38:14.100000000Z");
        assert_eq!(rfc3339_nano(UNIX_EPOCH), "1970-01-01T00:00:00Z");
    }

    #[test]
    fn parses_api_timestamps() {
        assert_eq!(
            parse_timestamp("1795811894"),
            Some(1_795_811_894_000_000_000)
        );
        assert_eq!(
            parse_timestamp("1795811894.5"),
            Some(1_795_811_894_500_000_000)
        );
        assert_eq!(
            parse_timestamp("2026-11-27T20:38:14.165023981Z"),
            Some(1_795_811_894_165_023_981)
        );
        assert_eq!(
            parse_timestamp("2026-11-27T21:38:14+01:00"),
            Some(1_795_811_894_000_000_000)
        );
        assert_eq!(parse_timestamp("yesterday"), None);
        assert_eq!(parse_timestamp("1.2.3"), None);
    }

    #[test]
    fn calendar_round_trips() {
        for days in [-1000, 0, 59, 60, 365, 11_000, 20_000, 100_000] {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days);
        }
    }
}
