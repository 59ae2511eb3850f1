//! The header in front of a log line read from a file or syslog: an optional `<PRI>`, a
//! timestamp in one of the forms of ROUTEROS.md §3, and an optional host name.

use crate::time::Timestamp;

/// A calendar date (proleptic Gregorian).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Date {
    /// The year, e.g. 2025.
    pub year: i32,
    /// The month, 1 to 12.
    pub month: u8,
    /// The day of the month, 1 to 31.
    pub day: u8,
}

impl Date {
    /// The date `year-month-day`.
    pub const fn new(year: i32, month: u8, day: u8) -> Date {
        Date { year, month, day }
    }

    /// The UTC calendar date of `t` (Howard Hinnant's `civil_from_days`, the inverse of
    /// the day count the header parser uses): `today` and `year` of a [`LineContext`]
    /// from the caller's clock.
    pub fn of(t: Timestamp) -> Date {
        let days = i64::try_from(t.as_millis() / 86_400_000).unwrap_or(0);
        let z = days + 719_468;
        let era = z.div_euclid(146_097);
        let doe = z.rem_euclid(146_097);
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let day = doy - (153 * mp + 2) / 5 + 1;
        let month = if mp < 10 { mp + 3 } else { mp - 9 };
        let year = yoe + era * 400 + i64::from(month <= 2);
        Date::new(
            i32::try_from(year).unwrap_or(i32::MAX),
            u8::try_from(month).unwrap_or(1),
            u8::try_from(day).unwrap_or(1),
        )
    }
}

/// What a log line's header may leave out, supplied by the caller (the crate reads no clock).
///
/// BSD syslog lines (`Feb 15 11:25:46`) and `/log print` lines of this year (`feb/15
/// 11:25:46`) have no year: they take `year`. `/log print` lines of today (`06:23:51`) have
/// no date: they take `today`. Every header without a UTC offset is the router's local
/// time: `utc_offset_secs` (seconds east of UTC, e.g. 3600 for UTC+01:00) converts it to
/// UTC. RFC 3339 headers carry their own offset and ignore it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LineContext {
    /// The year for dates written without one.
    pub year: i32,
    /// The date for lines that carry only a time of day.
    pub today: Date,
    /// The router's offset from UTC in seconds (east positive).
    pub utc_offset_secs: i32,
}

impl LineContext {
    /// A context for lines written on `today` (and its year) at `utc_offset_secs` east of UTC.
    pub const fn new(today: Date, utc_offset_secs: i32) -> LineContext {
        LineContext {
            year: today.year,
            today,
            utc_offset_secs,
        }
    }
}

impl Default for LineContext {
    /// 1970-01-01 in UTC: the origin of [`Timestamp`].
    fn default() -> Self {
        LineContext::new(Date::new(1970, 1, 1), 0)
    }
}

/// `<PRI>` (one to three digits) removed, if present.
pub(super) fn strip_pri(s: &str) -> &str {
    let b = s.as_bytes();
    if b.first() != Some(&b'<') {
        return s;
    }
    let digits = b
        .iter()
        .skip(1)
        .take(4)
        .take_while(|c| c.is_ascii_digit())
        .count();
    if (1..=3).contains(&digits) && b.get(digits + 1) == Some(&b'>') {
        s.get(digits + 2..).unwrap_or(s)
    } else {
        s
    }
}

/// A timestamp at the start of `s` and what follows it, or `None` when `s` does not start
/// with one of the known forms. The inner `Option` is `None` when the form matched but
/// the date or time is impossible (month 13, 25:00:00, before 1970).
pub(super) fn parse_timestamp<'a>(
    s: &'a str,
    ctx: &LineContext,
) -> Option<(Option<Timestamp>, &'a str)> {
    let b = s.as_bytes();
    let at = |i: usize| b.get(i).copied().unwrap_or(0);
    let (when, end) = if at(4) == b'-' && at(7) == b'-' && matches!(at(10), b'T' | b't' | b' ') {
        // `2023-03-18T20:35:05.734637+01:00` (RFC 3339) or `2025-02-11 00:02:30` (RouterOS 7).
        let date = ymd(digits(b, 0, 4), digits(b, 5, 2), digits(b, 8, 2));
        let secs = time_of_day(b, 11);
        if at(10) == b' ' {
            (local(date, secs, 0, ctx), 19)
        } else {
            let (millis, offset, end) = fraction_and_offset(b, 19)?;
            // Without an offset it is the router's local time, like the other forms.
            let offset = offset.unwrap_or(i64::from(ctx.utc_offset_secs));
            let utc = date
                .zip(secs)
                .and_then(|(d, t)| epoch_millis(d, t, millis, offset));
            (utc, end)
        }
    } else if at(3) == b'/' {
        let month = month_number(b);
        let day = digits(b, 4, 2);
        if at(6) == b'/' {
            // `oct/07/2007 06:23:51`
            if at(11) != b' ' {
                return None;
            }
            let date = ymd(digits(b, 7, 4), month, day);
            (local(date, time_of_day(b, 12), 0, ctx), 20)
        } else if at(6) == b' ' {
            // `feb/11 00:02:30`: this year.
            let date = ymd(Some(i64::from(ctx.year)), month, day);
            (local(date, time_of_day(b, 7), 0, ctx), 15)
        } else {
            return None;
        }
    } else if at(3) == b' ' {
        // BSD syslog: `Feb 15 11:25:46`, `Mar  2 09:09:46` (space-padded), `Mar 2 09:09:46`.
        let month = month_number(b);
        month?;
        let (day, time_at) = match (at(4), at(5), at(6)) {
            (b' ', _, b' ') => (digits(b, 5, 1), 7),
            (_, b' ', _) => (digits(b, 4, 1), 6),
            (_, _, b' ') => (digits(b, 4, 2), 7),
            _ => return None,
        };
        let date = ymd(Some(i64::from(ctx.year)), month, day);
        (local(date, time_of_day(b, time_at), 0, ctx), time_at + 8)
    } else if at(2) == b':' && at(5) == b':' {
        // `06:23:51`: today.
        let t = ctx.today;
        let date = ymd(
            Some(i64::from(t.year)),
            Some(i64::from(t.month)),
            Some(i64::from(t.day)),
        );
        (local(date, time_of_day(b, 0), 0, ctx), 8)
    } else {
        return None;
    };
    // RouterOS 7.18 added milliseconds to log times (ROUTEROS.md §3): `00:02:30.123`.
    // RFC 3339 times consumed their fraction above.
    let (when, end) = match b.get(end) {
        Some(b'.') if !matches!(at(10), b'T' | b't') => {
            let (millis, offset, end) = fraction_and_offset(b, end)?;
            if offset.is_some() {
                return None;
            }
            let millis = u64::try_from(millis).ok()?;
            let when = when.map(|t| Timestamp::from_millis(t.as_millis().saturating_add(millis)));
            (when, end)
        }
        _ => (when, end),
    };
    // The header ends at a space (or the end of the line).
    match b.get(end) {
        None | Some(b' ') => Some((when, s.get(end..)?)),
        _ => None,
    }
}

/// Local date and time to UTC with the context's offset.
fn local(
    date: Option<i64>,
    secs: Option<i64>,
    millis: i64,
    ctx: &LineContext,
) -> Option<Timestamp> {
    epoch_millis(date?, secs?, millis, i64::from(ctx.utc_offset_secs))
}

/// Checked: a caller's context may hold any year, and nothing may overflow on it.
fn epoch_millis(days: i64, secs: i64, millis: i64, offset_secs: i64) -> Option<Timestamp> {
    let total = days
        .checked_mul(86_400)?
        .checked_add(secs - offset_secs)?
        .checked_mul(1000)?
        .checked_add(millis)?;
    u64::try_from(total).ok().map(Timestamp::from_millis)
}

/// `n` ASCII digits at `at`.
fn digits(b: &[u8], at: usize, n: usize) -> Option<i64> {
    let part = b.get(at..at.checked_add(n)?)?;
    let mut value = 0i64;
    for &c in part {
        let d = c.wrapping_sub(b'0');
        if d > 9 {
            return None;
        }
        value = value * 10 + i64::from(d);
    }
    Some(value)
}

/// `HH:MM:SS` at `at`, as seconds of the day (a leap second 60 is accepted).
fn time_of_day(b: &[u8], at: usize) -> Option<i64> {
    if b.get(at + 2) != Some(&b':') || b.get(at + 5) != Some(&b':') {
        return None;
    }
    let (h, m, s) = (
        digits(b, at, 2)?,
        digits(b, at + 3, 2)?,
        digits(b, at + 6, 2)?,
    );
    (h < 24 && m < 60 && s <= 60).then_some(h * 3600 + m * 60 + s)
}

/// `.frac` (any number of digits, kept to milliseconds) then `Z`, `±HH:MM`, `±HHMM` or
/// nothing, at `at`; returns milliseconds, the offset in seconds east if written, and
/// where the header ends.
fn fraction_and_offset(b: &[u8], mut at: usize) -> Option<(i64, Option<i64>, usize)> {
    let mut millis = 0;
    if b.get(at) == Some(&b'.') {
        at += 1;
        let start = at;
        while b.get(at).is_some_and(u8::is_ascii_digit) {
            if at - start < 3 {
                millis = millis * 10 + i64::from(b.get(at).copied().unwrap_or(b'0') - b'0');
            }
            at += 1;
        }
        match at - start {
            0 => return None,
            1 => millis *= 100,
            2 => millis *= 10,
            _ => {}
        }
    }
    let sign = match b.get(at) {
        Some(b'Z' | b'z') => return Some((millis, Some(0), at + 1)),
        Some(b'+') => 1,
        Some(b'-') => -1,
        _ => return Some((millis, None, at)),
    };
    let hours = digits(b, at + 1, 2)?;
    let (minutes, end) = match b.get(at + 3) {
        Some(b':') => (digits(b, at + 4, 2)?, at + 6),
        _ => (digits(b, at + 3, 2)?, at + 5),
    };
    if hours > 23 || minutes > 59 {
        return None;
    }
    Some((millis, Some(sign * (hours * 3600 + minutes * 60)), end))
}

/// `jan` ... `dec` (any case) at the start of `b`.
fn month_number(b: &[u8]) -> Option<i64> {
    const MONTHS: [&[u8; 3]; 12] = [
        b"jan", b"feb", b"mar", b"apr", b"may", b"jun", b"jul", b"aug", b"sep", b"oct", b"nov",
        b"dec",
    ];
    let name = b.get(..3)?;
    let lower = [
        name.first()?.to_ascii_lowercase(),
        name.get(1)?.to_ascii_lowercase(),
        name.get(2)?.to_ascii_lowercase(),
    ];
    let i = MONTHS.iter().position(|m| **m == lower)?;
    i64::try_from(i + 1).ok()
}

/// Days since 1970-01-01 of a valid date (Howard Hinnant's `days_from_civil`).
fn ymd(year: Option<i64>, month: Option<i64>, day: Option<i64>) -> Option<i64> {
    let (y, m, d) = (year?, month?, day?);
    if !(1..=12).contains(&m) || d < 1 || d > days_in_month(y, m) {
        return None;
    }
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    Some(era * 146_097 + doe - 719_468)
}

fn days_in_month(y: i64, m: i64) -> i64 {
    match m {
        2 if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_of_timestamps() {
        let d = |secs: u64| Date::of(Timestamp::from_millis(secs * 1000));
        assert_eq!(d(0), Date::new(1970, 1, 1));
        assert_eq!(d(951_782_400), Date::new(2000, 2, 29));
        assert_eq!(d(1_795_219_200), Date::new(2026, 11, 21));
        assert_eq!(d(20_413 * 86_400), Date::new(2025, 11, 21));
        // The inverse of the parser's day count, at every day of four centuries.
        for days in (-1000..146_097 + 1000).step_by(7) {
            let Some(days) = u64::try_from(days).ok() else {
                continue;
            };
            let date = d(days * 86_400);
            let back = ymd(
                Some(i64::from(date.year)),
                Some(i64::from(date.month)),
                Some(i64::from(date.day)),
            );
            assert_eq!(back, i64::try_from(days).ok(), "{date:?}");
        }
    }

    fn ts(s: &str, ctx: &LineContext) -> Option<u64> {
        parse_timestamp(s, ctx)
            .and_then(|(t, _)| t)
            .map(Timestamp::as_millis)
    }

    #[test]
    fn civil_dates_count_days_from_the_epoch() {
        assert_eq!(ymd(Some(1970), Some(1), Some(1)), Some(0));
        assert_eq!(ymd(Some(2000), Some(3), Some(1)), Some(11_017));
        assert_eq!(ymd(Some(2024), Some(2), Some(29)), Some(19_782));
        assert_eq!(ymd(Some(2023), Some(2), Some(29)), None);
        assert_eq!(ymd(Some(2023), Some(13), Some(1)), None);
    }

    #[test]
    fn every_header_form_gives_utc_milliseconds() {
        let ctx = LineContext::new(Date::new(2025, 2, 11), 3600);
        // 2023-03-18T19:35:05.734Z
        assert_eq!(
            ts("2023-03-18T20:35:05.734637+01:00 x", &ctx),
            Some(1_679_168_105_734)
        );
        assert_eq!(ts("2023-03-18T19:35:05Z x", &ctx), Some(1_679_168_105_000));
        assert_eq!(ts("2023-03-18T20:35:05 x", &ctx), Some(1_679_168_105_000));
        assert_eq!(
            ts("2023-03-18T20:35:05.7+0100 x", &ctx),
            Some(1_679_168_105_700)
        );
        // Local times are an hour ahead of UTC in this context.
        assert_eq!(ts("2025-02-11 00:02:30 x", &ctx), Some(1_739_228_550_000));
        assert_eq!(ts("feb/11/2025 00:02:30 x", &ctx), Some(1_739_228_550_000));
        assert_eq!(ts("feb/11 00:02:30 x", &ctx), Some(1_739_228_550_000));
        assert_eq!(ts("Feb 11 00:02:30 x", &ctx), Some(1_739_228_550_000));
        assert_eq!(ts("00:02:30 x", &ctx), Some(1_739_228_550_000));
        assert_eq!(ts("Feb  1 00:02:30 x", &ctx), Some(1_738_364_550_000));
        assert_eq!(ts("Feb 1 00:02:30 x", &ctx), Some(1_738_364_550_000));
        assert_eq!(ts("oct/07/2007 06:23:51", &ctx), Some(1_191_734_631_000));
        // RouterOS 7.18+ writes milliseconds in every /log print form.
        assert_eq!(
            ts("2025-02-11 00:02:30.123 x", &ctx),
            Some(1_739_228_550_123)
        );
        assert_eq!(ts("00:02:30.5 x", &ctx), Some(1_739_228_550_500));
        assert_eq!(ts("Feb 11 00:02:30.042 x", &ctx), Some(1_739_228_550_042));
        assert_eq!(parse_timestamp("00:02:30.+0100 x", &ctx), None);
        assert_eq!(parse_timestamp("00:02:30.1+0100 x", &ctx), None);
    }

    #[test]
    fn impossible_dates_are_recognised_but_have_no_time() {
        let ctx = LineContext::default();
        assert_eq!(
            parse_timestamp("Feb 30 00:02:30 x", &ctx),
            Some((None, " x"))
        );
        assert_eq!(
            parse_timestamp("25:00:00 x", &ctx).map(|(t, _)| t),
            Some(None)
        );
        // Before the epoch once the offset is applied.
        let east = LineContext::new(Date::new(1970, 1, 1), 7200);
        assert_eq!(
            parse_timestamp("00:00:01 x", &east).map(|(t, _)| t),
            Some(None)
        );
    }

    #[test]
    fn extreme_context_years_do_not_overflow() {
        for year in [i32::MIN, -1, 0, 10_000, i32::MAX] {
            let ctx = LineContext::new(Date::new(year, 12, 31), i32::MIN);
            let ts = parse_timestamp("Dec 31 23:59:59 x", &ctx).and_then(|(t, _)| t);
            assert!(year > 0 || ts.is_none(), "{year}: {ts:?}");
            let _ = parse_timestamp("23:59:59 x", &ctx);
            let ctx = LineContext::new(Date::new(year, 12, 31), i32::MAX);
            let _ = parse_timestamp("dec/31 23:59:59 x", &ctx);
        }
    }

    #[test]
    fn other_text_is_not_a_header() {
        let ctx = LineContext::default();
        for s in [
            "firewall,info input: in:ether1",
            "Foo 15 11:25:46 x",
            "2023-03-18T20:35:05+1 x",
            "oct/07/2007x06:23:51",
            "06:23:51x",
            "",
        ] {
            assert_eq!(parse_timestamp(s, &ctx), None, "{s:?}");
        }
    }

    #[test]
    fn pri_is_stripped_only_when_well_formed() {
        assert_eq!(strip_pri("<30>Feb"), "Feb");
        assert_eq!(strip_pri("<1>x"), "x");
        assert_eq!(strip_pri("<1234>x"), "<1234>x");
        assert_eq!(strip_pri("<198.51.100.7>: user"), "<198.51.100.7>: user");
        assert_eq!(strip_pri("<>x"), "<>x");
    }
}
