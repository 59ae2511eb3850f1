//! Where the simulated router's time comes from.
//!
//! The router model never reads the system clock itself: it asks a [`Clock`]. Tests use a
//! [`ManualClock`] they advance by hand, time-compressed scenarios a [`ScaledClock`], and the
//! server a [`SystemClock`].

use std::fmt;
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime};

/// A source of wall-clock time for the router (log timestamps, timeouts, uptime).
pub trait Clock: Send + Sync + fmt::Debug {
    /// The current time.
    fn now(&self) -> SystemTime;
}

/// The real system clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    #[allow(clippy::disallowed_methods)] // the one place that reads the real clock
    fn now(&self) -> SystemTime {
        SystemTime::now()
    }
}

/// A clock that only moves when told to: deterministic tests and instant scenarios.
#[derive(Debug)]
pub struct ManualClock {
    now: Mutex<SystemTime>,
}

impl ManualClock {
    /// A clock standing still at `start`.
    pub fn new(start: SystemTime) -> Self {
        Self {
            now: Mutex::new(start),
        }
    }

    /// Moves the clock forward by `by`.
    pub fn advance(&self, by: Duration) {
        let mut now = self.now.lock().unwrap_or_else(|e| e.into_inner());
        *now += by;
    }

    /// Sets the clock to `to` (may go backwards, like a router whose NTP corrected it).
    pub fn set(&self, to: SystemTime) {
        *self.now.lock().unwrap_or_else(|e| e.into_inner()) = to;
    }
}

impl Clock for ManualClock {
    fn now(&self) -> SystemTime {
        *self.now.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A clock that runs `factor` times faster than real time from a given start: a
/// time-compressed scenario shows an hour of router time in a minute with `factor = 60`.
#[derive(Debug)]
pub struct ScaledClock {
    start: SystemTime,
    real_start: Instant,
    factor: f64,
}

impl ScaledClock {
    /// Starts at `start` now and runs `factor` times as fast as real time (a factor that
    /// is not finite or not positive is taken as 1).
    #[allow(clippy::disallowed_methods)] // anchors virtual time to the real monotonic clock
    pub fn new(start: SystemTime, factor: f64) -> Self {
        let factor = if factor.is_finite() && factor > 0.0 {
            factor
        } else {
            1.0
        };
        Self {
            start,
            real_start: Instant::now(),
            factor,
        }
    }

    /// How many times faster than real time this clock runs.
    pub fn factor(&self) -> f64 {
        self.factor
    }
}

impl Clock for ScaledClock {
    fn now(&self) -> SystemTime {
        let real = self.real_start.elapsed();
        self.start + real.mul_f64(self.factor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manual_clock_moves_only_when_told() {
        let start = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000);
        let clock = ManualClock::new(start);
        assert_eq!(clock.now(), start);
        clock.advance(Duration::from_secs(5));
        assert_eq!(clock.now(), start + Duration::from_secs(5));
    }

    #[test]
    fn scaled_clock_rejects_nonsense_factor() {
        let clock = ScaledClock::new(SystemTime::UNIX_EPOCH, f64::NAN);
        assert_eq!(clock.factor(), 1.0);
        assert!(clock.now() >= SystemTime::UNIX_EPOCH);
    }
}
