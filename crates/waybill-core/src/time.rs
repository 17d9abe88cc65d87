//! ISO-8601 timestamps without a clock: formatting and parsing `Millis`.
//!
//! Artifactory writes times as `2024-05-01T10:00:00.000Z`; AQL accepts dates
//! such as `2024-05-01` or full timestamps with an offset.

use crate::bundle::Millis;

/// Days from 1970-01-01 to a civil date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let mp = (m as i64 + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = if z >= 0 { z } else { z - 146_096 } / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// `millis` moved back by whole calendar months, keeping the time of day
/// and clamping the day to the target month's length (31 March less one
/// month is 28 or 29 February). Saturates at the epoch.
pub fn months_before(millis: Millis, months: u64) -> Millis {
    let secs = (millis / 1000) as i64;
    let (y, m, d) = civil_from_days(secs.div_euclid(86_400));
    let total = y * 12 + (m as i64 - 1) - months.min(i64::MAX as u64 / 2) as i64;
    // Before the epoch: saturate here, before day arithmetic can overflow.
    if total < 1970 * 12 {
        return 0;
    }
    let (ty, tm) = (total.div_euclid(12), total.rem_euclid(12) as u32 + 1);
    let month_len =
        days_from_civil(ty + i64::from(tm == 12), tm % 12 + 1, 1) - days_from_civil(ty, tm, 1);
    let td = d.min(month_len as u32);
    let days = days_from_civil(ty, tm, td);
    let back = days * 86_400_000 + (millis % 86_400_000) as i64;
    u64::try_from(back).unwrap_or(0)
}

/// `2024-05-01T10:00:00.000Z`.
pub fn format_iso(millis: Millis) -> String {
    let secs = (millis / 1000) as i64;
    let (y, m, d) = civil_from_days(secs.div_euclid(86_400));
    let rem = secs.rem_euclid(86_400);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        millis % 1000
    )
}

/// RFC 7231 date for HTTP headers: `Sun, 06 Nov 1994 08:49:37 GMT`.
pub fn format_http_date(millis: Millis) -> String {
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let secs = (millis / 1000) as i64;
    let days = secs.div_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    let rem = secs.rem_euclid(86_400);
    format!(
        "{}, {d:02} {} {y:04} {:02}:{:02}:{:02} GMT",
        DAYS[days.rem_euclid(7) as usize],
        MONTHS[(m - 1) as usize],
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Parses `YYYY-MM-DD`, optionally followed by `THH:MM[:SS[.fff]]` and `Z` or
/// `±HH:MM`. Times without an offset are UTC.
pub fn parse_iso(s: &str) -> Option<Millis> {
    let b = s.as_bytes();
    let num = |from: usize, len: usize| -> Option<u32> {
        let part = s.get(from..from + len)?;
        part.bytes()
            .all(|c| c.is_ascii_digit())
            .then(|| part.parse().ok())?
    };
    if b.len() < 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let (y, mo, d) = (num(0, 4)?, num(5, 2)?, num(8, 2)?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) {
        return None;
    }
    let mut millis: i64 = days_from_civil(y as i64, mo, d) * 86_400_000;
    let mut i = 10;
    if i < b.len() {
        if b[i] != b'T' && b[i] != b' ' {
            return None;
        }
        let (h, mi) = (num(i + 1, 2)?, num(i + 4, 2)?);
        if b.get(i + 3) != Some(&b':') || h > 23 || mi > 59 {
            return None;
        }
        millis += (h as i64 * 3600 + mi as i64 * 60) * 1000;
        i += 6;
        if b.get(i) == Some(&b':') {
            let sec = num(i + 1, 2)?;
            if sec > 60 {
                return None;
            }
            millis += sec as i64 * 1000;
            i += 3;
            if b.get(i) == Some(&b'.') {
                let start = i + 1;
                let mut end = start;
                while end < b.len() && b[end].is_ascii_digit() {
                    end += 1;
                }
                if end == start {
                    return None;
                }
                let frac = &s[start..end.min(start + 3)];
                millis += frac.parse::<i64>().ok()? * 10i64.pow(3 - frac.len() as u32);
                i = end;
            }
        }
        match b.get(i) {
            None => {}
            Some(b'Z') if i + 1 == b.len() => {}
            Some(sign @ (b'+' | b'-')) if b.len() == i + 6 && b[i + 3] == b':' => {
                let offset = (num(i + 1, 2)? as i64 * 60 + num(i + 4, 2)? as i64) * 60_000;
                millis -= if *sign == b'+' { offset } else { -offset };
            }
            _ => return None,
        }
    }
    u64::try_from(millis).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn months_before_saturates_at_the_epoch_without_overflow() {
        let now = 1_764_547_200_000; // 2025-12-01
        for months in [670_871_503 * 12, u64::MAX, i64::MAX as u64, 56 * 12 + 1] {
            assert_eq!(months_before(now, months), 0, "{months}");
        }
        assert!(months_before(now, 55 * 12) > 0);
    }

    #[test]
    fn round_trips_and_known_values() {
        assert_eq!(format_iso(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(format_iso(1_700_000_000_123), "2023-11-14T22:13:20.123Z");
        assert_eq!(
            parse_iso("2023-11-14T22:13:20.123Z"),
            Some(1_700_000_000_123)
        );
        assert_eq!(parse_iso("2023-11-14"), Some(1_699_920_000_000));
        assert_eq!(
            parse_iso("2023-11-14T23:13:20+01:00"),
            Some(1_700_000_000_000)
        );
        assert_eq!(
            parse_iso("2024-02-29T00:00:00Z").map(format_iso).as_deref(),
            Some("2024-02-29T00:00:00.000Z")
        );
        for bad in [
            "",
            "2023",
            "2023-13-01",
            "2023-11-14T25:00",
            "2023-11-14Tx",
            "2023-11-14T22:13:20Zjunk",
            "1969-12-31",
        ] {
            assert_eq!(parse_iso(bad), None, "{bad}");
        }
        assert_eq!(
            format_http_date(784_111_777_000),
            "Sun, 06 Nov 1994 08:49:37 GMT"
        );
        assert_eq!(format_http_date(0), "Thu, 01 Jan 1970 00:00:00 GMT");
        for ms in [0u64, 86_399_999, 951_782_400_000, 4_102_444_800_000] {
            assert_eq!(parse_iso(&format_iso(ms)), Some(ms));
        }
    }
}
