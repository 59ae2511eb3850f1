//! Go's `time.Duration` text, as the LAPI writes it (`3h59m59.54s`, `-1m2s`, `500ms`).
//!
//! The grammar is Go's `time.ParseDuration` (<https://pkg.go.dev/time#ParseDuration>): an
//! optional sign, then one or more decimal numbers, each with an optional fraction and a
//! unit (`ns`, `us`, `µs`, `μs`, `ms`, `s`, `m`, `h`); `0` alone is zero. The magnitude is
//! at most 2^63 ns (`2562047h47m16.854775807s` is Go's largest duration). The LAPI writes
//! durations with `Duration.String()` (`Until.Sub(now).String()` in
//! `pkg/apiserver/controllers/v1/decisions.go`, crowdsec v1.4.6), which is negative for a
//! deleted decision.

use std::fmt;
use std::time::Duration;

/// A parsed Go duration: a sign and a magnitude.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GoDuration {
    /// Whether the text had a leading `-` (and a non-zero magnitude).
    pub negative: bool,
    /// The absolute value.
    pub magnitude: Duration,
}

impl GoDuration {
    /// The time left, if the duration is positive; `None` for zero or negative.
    pub fn remaining(&self) -> Option<Duration> {
        (!self.negative && !self.magnitude.is_zero()).then_some(self.magnitude)
    }
}

/// Why a text is not a Go duration.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid Go duration {text:?}: {reason}")]
pub struct GoDurationError {
    /// The text (at most 64 characters of it).
    pub text: String,
    /// What is wrong with it.
    pub reason: &'static str,
}

/// Largest magnitude Go accepts: 2^63 ns (Go allows it only negative; we allow both).
const MAX_NANOS: u128 = 1 << 63;

/// Parses a Go duration string.
///
/// ```
/// use std::time::Duration;
/// use mtids_crowdsec::parse_go_duration;
/// let d = parse_go_duration("3h59m59.54s").unwrap();
/// assert_eq!(d.remaining(), Some(Duration::from_millis(14_399_540)));
/// assert!(parse_go_duration("-1m2s").unwrap().negative);
/// ```
pub fn parse_go_duration(text: &str) -> Result<GoDuration, GoDurationError> {
    let err = |reason| GoDurationError {
        text: text.chars().take(64).collect(),
        reason,
    };
    let (negative, mut rest) = match text.as_bytes().first() {
        Some(b'-') => (true, &text[1..]),
        Some(b'+') => (false, &text[1..]),
        _ => (false, text),
    };
    if rest == "0" {
        return Ok(GoDuration {
            negative: false,
            magnitude: Duration::ZERO,
        });
    }
    if rest.is_empty() {
        return Err(err("empty"));
    }
    let mut total: u128 = 0;
    while !rest.is_empty() {
        // Integer part.
        let int_len = rest.bytes().take_while(u8::is_ascii_digit).count();
        let (int_text, after) = rest.split_at(int_len);
        rest = after;
        // Fraction.
        let mut frac_text = "";
        if let Some(after_dot) = rest.strip_prefix('.') {
            let frac_len = after_dot.bytes().take_while(u8::is_ascii_digit).count();
            (frac_text, rest) = after_dot.split_at(frac_len);
        }
        if int_text.is_empty() && frac_text.is_empty() {
            return Err(err("expected a number"));
        }
        let unit_len = rest
            .char_indices()
            .find(|&(_, c)| c == '.' || c.is_ascii_digit())
            .map_or(rest.len(), |(i, _)| i);
        let (unit, after) = rest.split_at(unit_len);
        rest = after;
        let unit_nanos: u128 = match unit {
            "ns" => 1,
            "us" | "µs" | "μs" => 1_000,
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60_000_000_000,
            "h" => 3_600_000_000_000,
            "" => return Err(err("missing unit")),
            _ => return Err(err("unknown unit")),
        };
        let mut int: u128 = 0;
        for digit in int_text.bytes() {
            int = int
                .checked_mul(10)
                .and_then(|v| v.checked_add(u128::from(digit - b'0')))
                .filter(|&v| v <= MAX_NANOS)
                .ok_or_else(|| err("out of range"))?;
        }
        let mut value = int
            .checked_mul(unit_nanos)
            .filter(|&v| v <= MAX_NANOS)
            .ok_or_else(|| err("out of range"))?;
        // Fraction digits beyond nanosecond precision of the unit are dropped, as Go does.
        let mut scale = unit_nanos;
        for digit in frac_text.bytes() {
            if scale < 10 {
                break;
            }
            scale /= 10;
            value += u128::from(digit - b'0') * scale;
        }
        total = total
            .checked_add(value)
            .filter(|&v| v <= MAX_NANOS)
            .ok_or_else(|| err("out of range"))?;
    }
    let secs = u64::try_from(total / 1_000_000_000).map_err(|_| err("out of range"))?;
    // Always below 10^9, so the conversion cannot fail.
    let nanos = u32::try_from(total % 1_000_000_000).map_err(|_| err("out of range"))?;
    let magnitude = Duration::new(secs, nanos);
    Ok(GoDuration {
        negative: negative && !magnitude.is_zero(),
        magnitude,
    })
}

/// A positive duration as Go text the LAPI parses (`1h2m3s`, `1.5s`): whole hours, minutes,
/// and seconds with up to nine fraction digits.
pub fn format_go_duration(duration: Duration) -> String {
    struct Text(Duration);
    impl fmt::Display for Text {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            let secs = self.0.as_secs();
            let nanos = self.0.subsec_nanos();
            let (h, m, s) = (secs / 3600, secs / 60 % 60, secs % 60);
            if h > 0 {
                write!(f, "{h}h")?;
            }
            if h > 0 || m > 0 {
                write!(f, "{m}m")?;
            }
            if nanos == 0 {
                write!(f, "{s}s")
            } else {
                let frac = format!("{nanos:09}");
                write!(f, "{s}.{}s", frac.trim_end_matches('0'))
            }
        }
    }
    Text(duration).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pos(text: &str) -> Duration {
        let d = parse_go_duration(text).unwrap();
        assert!(!d.negative, "{text}");
        d.magnitude
    }

    #[test]
    fn lapi_examples() {
        assert_eq!(pos("3h59m59.54s"), Duration::from_millis(14_399_540));
        assert_eq!(pos("1h"), Duration::from_secs(3600));
        assert_eq!(pos("500ms"), Duration::from_millis(500));
        assert_eq!(pos("59m59.12596725s"), Duration::new(3599, 125_967_250));
        let neg = parse_go_duration("-1m2s").unwrap();
        assert!(neg.negative);
        assert_eq!(neg.magnitude, Duration::from_secs(62));
        assert_eq!(neg.remaining(), None);
        let neg = parse_go_duration("-11.416624ms").unwrap();
        assert!(neg.negative);
        assert_eq!(neg.magnitude, Duration::from_nanos(11_416_624));
    }

    #[test]
    fn go_extremes() {
        let max = pos("2562047h47m16.854775807s");
        assert_eq!(max.as_nanos(), i64::MAX as u128);
        assert_eq!(pos("2562047h47m16.854775808s").as_nanos(), 1 << 63);
        assert!(parse_go_duration("2562047h47m16.854775809s").is_err());
        assert!(parse_go_duration("9999999999999999999999h").is_err());
        assert!(parse_go_duration("3000000h").is_err());
    }

    #[test]
    fn go_grammar() {
        assert_eq!(pos("0"), Duration::ZERO);
        assert!(!parse_go_duration("-0").unwrap().negative);
        assert_eq!(pos("+5s"), Duration::from_secs(5));
        assert_eq!(pos("1.5h"), Duration::from_secs(5400));
        assert_eq!(pos(".5s"), Duration::from_millis(500));
        assert_eq!(pos("5.s"), Duration::from_secs(5));
        assert_eq!(pos("1us"), Duration::from_micros(1));
        assert_eq!(pos("1µs"), Duration::from_micros(1));
        assert_eq!(pos("1μs"), Duration::from_micros(1));
        assert_eq!(pos("7ns"), Duration::from_nanos(7));
        assert_eq!(pos("1h1m1s1ms1us1ns"), Duration::new(3661, 1_001_001));
        // Fraction digits past nanoseconds are dropped.
        assert_eq!(pos("1.0000000009s"), Duration::from_secs(1));
        assert_eq!(pos("0.1ns"), Duration::ZERO);
    }

    #[test]
    fn rejects_what_go_rejects() {
        for bad in [
            "", "-", "+", "1", "s", ".s", "1x", "1.2.3s", "1h-2m", " 1s", "1s ", "1 s", "ms",
            "--1s", "1hh",
        ] {
            let e = parse_go_duration(bad).unwrap_err();
            assert!(e.to_string().contains("invalid Go duration"), "{bad}: {e}");
        }
    }

    #[test]
    fn formats_what_it_parses() {
        for d in [
            Duration::from_secs(1),
            Duration::from_secs(3600),
            Duration::from_secs(3661),
            Duration::from_millis(1500),
            Duration::new(86_400 * 7, 5),
            Duration::from_secs(59 * 60),
        ] {
            let text = format_go_duration(d);
            assert_eq!(pos(&text), d, "{text}");
        }
        assert_eq!(format_go_duration(Duration::from_secs(3600)), "1h0m0s");
        assert_eq!(format_go_duration(Duration::from_millis(1500)), "1.5s");
    }
}
