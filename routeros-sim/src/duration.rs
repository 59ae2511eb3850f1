//! RouterOS durations (`1d`, `1h30m`, `00:10:00`, `1w2d3h4m5s`) and timestamps as the API
//! prints them.

use std::time::{Duration, SystemTime};

/// Parses a duration the way RouterOS accepts it in `timeout=`: plain seconds (`600`),
/// unit sequences (`1w2d3h4m5s`, `500ms`), clock form (`00:10:00`), or both (`1d00:00:00`,
/// `1d 00:00:00`). Returns `None` when the text is not a duration.
pub fn parse_duration(text: &str) -> Option<Duration> {
    let text = text.trim();
    if text.is_empty() {
        return None;
    }
    if text.bytes().all(|b| b.is_ascii_digit()) {
        return text.parse::<u64>().ok().map(Duration::from_secs);
    }
    let mut total = Duration::ZERO;
    let mut rest = text;
    // A trailing clock part `HH:MM:SS` may follow units (`1d00:00:00`).
    if let Some(colon) = rest.find(':') {
        // The clock part starts after the last non-digit (which may be any character).
        let start = rest[..colon]
            .char_indices()
            .rev()
            .find(|(_, c)| !c.is_ascii_digit())
            .map_or(0, |(i, c)| i + c.len_utf8());
        let clock = &rest[start..];
        let mut parts = clock.split(':');
        let (h, m, s) = (parts.next()?, parts.next()?, parts.next()?);
        if parts.next().is_some() {
            return None;
        }
        let (secs, frac) = match s.split_once('.') {
            Some((s, f)) => (s, Some(f)),
            None => (s, None),
        };
        let h: u64 = h.parse().ok()?;
        let m: u64 = m.parse().ok()?;
        let secs: u64 = secs.parse().ok()?;
        if m >= 60 || secs >= 60 {
            return None;
        }
        total += Duration::from_secs(h.checked_mul(3600)?.checked_add(m * 60 + secs)?);
        if let Some(frac) = frac {
            if frac.is_empty() || frac.len() > 9 || !frac.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            let nanos: u32 = format!("{frac:0<9}").parse().ok()?;
            total += Duration::from_nanos(u64::from(nanos));
        }
        rest = rest[..start].trim_end();
    }
    let bytes = rest.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let start = i;
        while i < bytes.len() && bytes[i].is_ascii_digit() {
            i += 1;
        }
        if start == i {
            return None;
        }
        let n: u64 = rest[start..i].parse().ok()?;
        let unit_start = i;
        while i < bytes.len() && bytes[i].is_ascii_alphabetic() {
            i += 1;
        }
        let unit = match &rest[unit_start..i] {
            "w" => Duration::from_secs(n.checked_mul(7 * 86_400)?),
            "d" => Duration::from_secs(n.checked_mul(86_400)?),
            "h" => Duration::from_secs(n.checked_mul(3_600)?),
            "m" => Duration::from_secs(n.checked_mul(60)?),
            "s" => Duration::from_secs(n),
            "ms" => Duration::from_millis(n),
            "us" => Duration::from_micros(n),
            _ => return None,
        };
        total = total.checked_add(unit)?;
    }
    Some(total)
}

/// Formats a duration as the RouterOS API prints it: `1w2d3h4m5s`, `0s` for zero, and
/// milliseconds only below one second (`250ms`).
pub fn format_duration(d: Duration) -> String {
    let mut out = Vec::with_capacity(16);
    write_duration(&mut out, d);
    String::from_utf8_lossy(&out).into_owned()
}

/// [`format_duration`] appended in place.
pub(crate) fn write_duration(out: &mut Vec<u8>, d: Duration) {
    let mut secs = d.as_secs();
    if secs == 0 {
        let ms = d.subsec_millis();
        if ms == 0 {
            out.extend_from_slice(b"0s");
        } else {
            crate::model::write_num(out, ms);
            out.extend_from_slice(b"ms");
        }
        return;
    }
    for (unit, size) in [
        (b'w', 7 * 86_400),
        (b'd', 86_400),
        (b'h', 3_600),
        (b'm', 60),
    ] {
        if secs >= size {
            crate::model::write_num(out, secs / size);
            out.push(unit);
            secs %= size;
        }
    }
    if secs > 0 {
        crate::model::write_num(out, secs);
        out.push(b's');
    }
}

/// A calendar date and time of day in UTC.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct CivilTime {
    pub year: i64,
    pub month: u32,
    pub day: u32,
    pub hour: u32,
    pub minute: u32,
    pub second: u32,
}

/// Converts a time to its UTC calendar date (times before 1970 are taken as 1970).
pub(crate) fn civil(t: SystemTime) -> CivilTime {
    let secs = t
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let days = i64::try_from(secs / 86_400).unwrap_or(0);
    let rem = secs % 86_400;
    // Howard Hinnant's days-to-civil algorithm.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    CivilTime {
        year,
        month: u32::try_from(month).unwrap_or(1),
        day: u32::try_from(day).unwrap_or(1),
        hour: (rem / 3_600) as u32,
        minute: (rem % 3_600 / 60) as u32,
        second: (rem % 60) as u32,
    }
}

/// A log or creation time as RouterOS 7 prints it: `HH:MM:SS` for today, otherwise
/// `YYYY-MM-DD HH:MM:SS`.
pub(crate) fn format_router_time(t: SystemTime, now: SystemTime) -> String {
    let c = civil(t);
    let today = civil(now);
    if (c.year, c.month, c.day) == (today.year, today.month, today.day) {
        format!("{:02}:{:02}:{:02}", c.hour, c.minute, c.second)
    } else {
        format_full_time(t)
    }
}

/// `YYYY-MM-DD HH:MM:SS` in UTC.
pub(crate) fn format_full_time(t: SystemTime) -> String {
    let c = civil(t);
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02}",
        c.year, c.month, c.day, c.hour, c.minute, c.second
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_forms_routeros_accepts() {
        assert_eq!(parse_duration("600"), Some(Duration::from_secs(600)));
        assert_eq!(parse_duration("1d"), Some(Duration::from_secs(86_400)));
        assert_eq!(parse_duration("1h30m"), Some(Duration::from_secs(5_400)));
        assert_eq!(
            parse_duration("1w2d3h4m5s"),
            Some(Duration::from_secs(788_645))
        );
        assert_eq!(parse_duration("00:10:00"), Some(Duration::from_secs(600)));
        assert_eq!(
            parse_duration("1d00:00:01"),
            Some(Duration::from_secs(86_401))
        );
        assert_eq!(
            parse_duration("1d 00:00:01"),
            Some(Duration::from_secs(86_401))
        );
        assert_eq!(parse_duration("500ms"), Some(Duration::from_millis(500)));
        assert_eq!(
            parse_duration("00:00:01.5"),
            Some(Duration::from_millis(1_500))
        );
    }

    #[test]
    fn rejects_what_is_not_a_duration() {
        for bad in [
            "é00:00:00",
            "1dé",
            "00:00:0é",
            "",
            "x",
            "1y",
            "10:70:00",
            "1:2",
            "d",
            "1d2",
            "99999999999999999999w",
        ] {
            assert_eq!(parse_duration(bad), None, "{bad}");
        }
    }

    #[test]
    fn formats_like_the_api() {
        assert_eq!(format_duration(Duration::ZERO), "0s");
        assert_eq!(format_duration(Duration::from_millis(250)), "250ms");
        assert_eq!(format_duration(Duration::from_secs(86_399)), "23h59m59s");
        assert_eq!(format_duration(Duration::from_secs(788_645)), "1w2d3h4m5s");
        assert_eq!(format_duration(Duration::from_secs(3_600)), "1h");
    }

    #[test]
    fn civil_dates_match_known_days() {
        // 2025-02-11 00:02:30 UTC
        let t = SystemTime::UNIX_EPOCH + Duration::from_secs(1_739_232_150);
        assert_eq!(format_full_time(t), "2025-02-11 00:02:30");
        assert_eq!(
            format_router_time(t, t + Duration::from_secs(60)),
            "00:02:30"
        );
        assert_eq!(
            format_router_time(t, t + Duration::from_secs(86_400)),
            "2025-02-11 00:02:30"
        );
        let leap = SystemTime::UNIX_EPOCH + Duration::from_secs(951_782_400); // 2000-02-29
        assert_eq!(format_full_time(leap), "2000-02-29 00:00:00");
    }
}
