//! Wall-clock time as milliseconds since the Unix epoch, and the timestamp format
//! the original DM printed (`2019-01-29 18:31:35.485`, UTC).

use std::time::{SystemTime, UNIX_EPOCH};

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Formats epoch milliseconds as `YYYY-MM-DD HH:MM:SS.mmm` in UTC.
pub fn format_ms(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let millis = ms.rem_euclid(1000);
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}.{millis:03}",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60
    )
}

/// Formats epoch milliseconds as AWS events do: `2026-12-01T10:00:03.250Z`.
pub fn format_iso(ms: i64) -> String {
    let s = format_ms(ms);
    format!("{}T{}Z", &s[..10], &s[11..])
}

/// Epoch milliseconds of the start of an hour, UTC; none for a date that does not
/// exist (month 13, February 30th, hour 24).
pub fn hour_start_ms(year: i64, month: u32, day: u32, hour: u32) -> Option<i64> {
    if !(1..=12).contains(&month) || day == 0 || hour > 23 {
        return None;
    }
    let leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    let month_days = [
        31,
        if leap { 29 } else { 28 },
        31,
        30,
        31,
        30,
        31,
        31,
        30,
        31,
        30,
        31,
    ];
    if day > month_days[month as usize - 1] {
        return None;
    }
    Some((days_from_civil(year, month, day) * 24 + hour as i64) * 3_600_000)
}

/// Reads the timestamps AWS events carry, in UTC: `2026-12-01T10:00:05Z`,
/// `2026-12-01T10:00:03.250Z` and `2026-12-01T10:00:03.250+0000` (CloudWatch's
/// alarm states). Other offsets than zero are refused.
pub fn parse_aws_timestamp(raw: &str) -> Option<i64> {
    let (date, time) = raw.split_once('T')?;
    let time = time
        .strip_suffix('Z')
        .or_else(|| time.strip_suffix("+0000"))
        .or_else(|| time.strip_suffix("+00:00"))?;
    let mut d = date.splitn(3, '-');
    let (y, m, day) = (
        d.next()?.parse::<i64>().ok()?,
        d.next()?.parse::<u32>().ok()?,
        d.next()?.parse::<u32>().ok()?,
    );
    let (hms, frac) = time.split_once('.').unwrap_or((time, ""));
    let mut t = hms.splitn(3, ':');
    let (h, min, s) = (
        t.next()?.parse::<u32>().ok()?,
        t.next()?.parse::<i64>().ok()?,
        t.next()?.parse::<i64>().ok()?,
    );
    if min > 59 || s > 60 || frac.len() > 9 || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let millis = if frac.is_empty() {
        0
    } else {
        format!("{frac:0<3}")[..3].parse::<i64>().ok()?
    };
    Some(hour_start_ms(y, m, day, h)? + (min * 60 + s) * 1000 + millis)
}

/// A proleptic Gregorian date to days since 1970-01-01 (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = (m as i64 + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Days since 1970-01-01 to a proleptic Gregorian date (Howard Hinnant's algorithm).
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

#[cfg(test)]
mod tests {
    use super::{format_ms, hour_start_ms, parse_aws_timestamp};

    #[test]
    fn hour_starts_round_trip_through_the_formatter() {
        for ms in [0, 1_548_784_800_000, 1_709_208_000_000, 4_102_444_800_000] {
            let s = format_ms(ms);
            let field = |r: std::ops::Range<usize>| s[r].parse::<u32>().unwrap();
            let start = hour_start_ms(field(0..4) as i64, field(5..7), field(8..10), field(11..13));
            assert_eq!(start, Some(ms - ms.rem_euclid(3_600_000)), "{s}");
        }
        assert_eq!(hour_start_ms(2024, 2, 29, 0), Some(1_709_164_800_000));
        for (y, m, d, h) in [
            (2023, 2, 29, 0),
            (2024, 13, 1, 0),
            (2024, 1, 0, 0),
            (2024, 1, 1, 24),
        ] {
            assert_eq!(hour_start_ms(y, m, d, h), None, "{y}-{m}-{d} {h}h");
        }
    }

    #[test]
    fn formats_like_the_original_dm() {
        for (ms, expected) in [
            (0, "1970-01-01 00:00:00.000"),
            (1_548_786_695_485, "2019-01-29 18:31:35.485"),
            (1_709_208_000_001, "2024-02-29 12:00:00.001"),
        ] {
            assert_eq!(format_ms(ms), expected, "{ms}");
        }
    }

    #[test]
    fn aws_timestamps_read_as_epoch_milliseconds() {
        for (raw, want) in [
            ("2019-01-29T18:31:35.485Z", Some(1_548_786_695_485)),
            ("2019-01-29T18:31:35Z", Some(1_548_786_695_000)),
            ("2019-01-29T18:31:35.485+0000", Some(1_548_786_695_485)),
            ("2019-01-29T18:31:35.4+00:00", Some(1_548_786_695_400)),
            ("2019-01-29T18:31:35.485+0100", None),
            ("2019-01-29 18:31:35Z", None),
            ("2019-02-30T00:00:00Z", None),
            ("", None),
        ] {
            assert_eq!(parse_aws_timestamp(raw), want, "{raw}");
        }
        let ms = 1_548_786_695_485;
        assert_eq!(super::format_iso(ms), "2019-01-29T18:31:35.485Z");
        assert_eq!(parse_aws_timestamp(&super::format_iso(ms)), Some(ms));
    }
}
