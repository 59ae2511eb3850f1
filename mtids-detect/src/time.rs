//! The crate's notion of time: a point passed in by the caller, never read from a clock.

use std::fmt;
use std::ops::{Add, Sub};
use std::time::Duration;

/// A point in time, in milliseconds since an origin the caller chooses.
///
/// Detection never reads a clock: every call that depends on time takes a `Timestamp`.
/// For wall-clock sources (log lines, replays) the origin is the UNIX epoch in UTC; a live
/// daemon may use any fixed origin, because detectors only ever compare and subtract
/// timestamps. Arithmetic saturates instead of overflowing, so hostile timestamps cannot
/// panic a detector.
#[derive(
    Clone,
    Copy,
    Debug,
    Default,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    serde::Serialize,
    serde::Deserialize,
)]
#[serde(transparent)]
pub struct Timestamp(u64);

impl Timestamp {
    /// The origin itself.
    pub const ZERO: Timestamp = Timestamp(0);

    /// A timestamp `millis` milliseconds after the origin.
    pub const fn from_millis(millis: u64) -> Self {
        Timestamp(millis)
    }

    /// A timestamp `secs` seconds after the origin (saturating).
    pub const fn from_secs(secs: u64) -> Self {
        Timestamp(secs.saturating_mul(1000))
    }

    /// Milliseconds since the origin.
    pub const fn as_millis(self) -> u64 {
        self.0
    }

    /// How long after `earlier` this is; zero when `earlier` is later.
    pub fn saturating_duration_since(self, earlier: Timestamp) -> Duration {
        Duration::from_millis(self.0.saturating_sub(earlier.0))
    }

    /// This point moved forward by `d` (saturating at the end of time).
    pub fn saturating_add(self, d: Duration) -> Timestamp {
        Timestamp(self.0.saturating_add(duration_millis(d)))
    }

    /// This point moved back by `d` (saturating at the origin).
    pub fn saturating_sub(self, d: Duration) -> Timestamp {
        Timestamp(self.0.saturating_sub(duration_millis(d)))
    }
}

fn duration_millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

impl Add<Duration> for Timestamp {
    type Output = Timestamp;
    fn add(self, d: Duration) -> Timestamp {
        self.saturating_add(d)
    }
}

impl Sub<Duration> for Timestamp {
    type Output = Timestamp;
    fn sub(self, d: Duration) -> Timestamp {
        self.saturating_sub(d)
    }
}

impl Sub<Timestamp> for Timestamp {
    type Output = Duration;
    fn sub(self, earlier: Timestamp) -> Duration {
        self.saturating_duration_since(earlier)
    }
}

/// A UTC date and time people read: `2026-12-07 03:12:00 UTC` (milliseconds only when
/// not zero: `2026-12-07 03:12:00.449 UTC`).
impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let date = crate::parse::Date::of(*self);
        let of_day = self.0 % 86_400_000;
        let (h, m, s, ms) = (
            of_day / 3_600_000,
            of_day / 60_000 % 60,
            of_day / 1000 % 60,
            of_day % 1000,
        );
        write!(
            f,
            "{:04}-{:02}-{:02} {h:02}:{m:02}:{s:02}",
            date.year, date.month, date.day
        )?;
        if ms != 0 {
            write!(f, ".{ms:03}")?;
        }
        f.write_str(" UTC")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arithmetic_saturates_instead_of_panicking() {
        let t = Timestamp::from_millis(1_500);
        assert_eq!(t - Duration::from_secs(10), Timestamp::ZERO);
        assert_eq!(
            Timestamp::from_millis(u64::MAX) + Duration::from_secs(1),
            Timestamp::from_millis(u64::MAX)
        );
        assert_eq!(Timestamp::ZERO - t, Duration::ZERO);
        assert_eq!(t - Timestamp::from_secs(1), Duration::from_millis(500));
        assert_eq!(t.to_string(), "1970-01-01 00:00:01.500 UTC");
        assert_eq!(
            Timestamp::from_secs(1_796_605_920).to_string(),
            "2026-12-07 01:12:00 UTC"
        );
    }
}
