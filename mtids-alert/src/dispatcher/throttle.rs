//! Dedupe, rate limit and aggregation: a pure state machine, time passed in.
//!
//! Windows are fixed: one starts with the first alert after the previous one ended.
//! In a window the first `max_per_window` alerts go out; the rest are held back and
//! counted, and when the window ends they go out as one [`Summary`]. So a window produces
//! at most `max_per_window + 1` messages, whatever the attack does.

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::time::Duration;

use tokio::time::Instant;

use crate::alert::{Alert, SourceCount, Summary};

/// Keys remembered for dedupe; past this, stale keys are pruned, and if none are stale new
/// keys are not remembered (dedupe fails open: the rate limit still bounds messages).
const MAX_REMEMBERED: usize = 16_384;
/// Distinct sources counted per summary; others only add to the totals.
const MAX_COUNTED_SOURCES: usize = 4_096;
/// Sources named in a summary.
const TOP_SOURCES: usize = 5;

/// The throttle's settings.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    /// Alerts delivered per window; 0 means no limit.
    pub(crate) max_per_window: u32,
    /// The rate-limit window.
    pub(crate) window: Duration,
    /// Same source and threat within this time is a duplicate; zero turns dedupe off.
    pub(crate) dedupe_window: Duration,
}

/// What to do with an alert.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Send it now.
    Deliver,
    /// Same source and threat seen recently: drop it.
    Duplicate,
    /// Over the rate limit: counted into the next summary.
    HeldBack,
}

#[derive(Debug, Default)]
struct HeldBack {
    count: u64,
    blocks: u64,
    per_source: HashMap<String, u64>,
}

/// Dedupe + rate limit + aggregation state.
#[derive(Debug)]
pub(crate) struct Throttle {
    limits: Limits,
    window_start: Option<Instant>,
    sent_in_window: u32,
    held: HeldBack,
    /// Keyed by a keyed (per-process random) hash of threat and source: no allocation per
    /// alert, and an attacker cannot craft collisions. A collision between two honest
    /// keys (odds about 2^-64 per pair) would only hide one duplicate-looking alert.
    last_seen: HashMap<u64, Instant>,
    hasher: RandomState,
    pruned_at: Option<Instant>,
}

impl Throttle {
    pub(crate) fn new(limits: Limits) -> Self {
        Self {
            limits,
            window_start: None,
            sent_in_window: 0,
            held: HeldBack::default(),
            last_seen: HashMap::new(),
            hasher: RandomState::new(),
            pruned_at: None,
        }
    }

    /// Decides about one alert. Call [`Throttle::poll_summary`] first so an ended window
    /// is closed before a new one starts.
    pub(crate) fn admit(&mut self, now: Instant, alert: &Alert) -> Verdict {
        if self.is_duplicate(now, alert) {
            return Verdict::Duplicate;
        }
        if self.limits.max_per_window == 0 {
            return Verdict::Deliver;
        }
        if self.window_start.is_none() {
            self.window_start = Some(now);
            self.sent_in_window = 0;
        }
        if self.sent_in_window < self.limits.max_per_window {
            self.sent_in_window += 1;
            return Verdict::Deliver;
        }
        self.held.count += 1;
        if alert.action.is_block() {
            self.held.blocks += 1;
        }
        let sources = &mut self.held.per_source;
        if let Some(n) = sources.get_mut(&alert.source) {
            *n += 1;
        } else if sources.len() < MAX_COUNTED_SOURCES {
            sources.insert(alert.source.clone(), 1);
        }
        Verdict::HeldBack
    }

    fn is_duplicate(&mut self, now: Instant, alert: &Alert) -> bool {
        let window = self.limits.dedupe_window;
        if window.is_zero() {
            return false;
        }
        let key = self.hasher.hash_one((&alert.threat, &alert.source));
        if let Some(seen) = self.last_seen.get(&key) {
            if now.saturating_duration_since(*seen) < window {
                return true;
            }
        }
        // Full: prune stale keys, but at most once per 1/16 of the window, so a flood of
        // new sources does not scan the whole map on every alert.
        if self.last_seen.len() >= MAX_REMEMBERED
            && self
                .pruned_at
                .is_none_or(|at| now.saturating_duration_since(at) >= window / 16)
        {
            self.last_seen
                .retain(|_, seen| now.saturating_duration_since(*seen) < window);
            self.pruned_at = Some(now);
        }
        if self.last_seen.len() < MAX_REMEMBERED || self.last_seen.contains_key(&key) {
            // Not refreshed by duplicates: a long attack is re-reported once per window.
            self.last_seen.insert(key, now);
        }
        false
    }

    /// When the current window ends with alerts held back, the summary is due then.
    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        if self.held.count == 0 {
            return None;
        }
        self.window_start.map(|start| start + self.limits.window)
    }

    /// Closes the window if it has ended, returning the summary of what it held back.
    pub(crate) fn poll_summary(&mut self, now: Instant) -> Option<Summary> {
        let start = self.window_start?;
        if now < start + self.limits.window {
            return None;
        }
        self.window_start = None;
        self.sent_in_window = 0;
        self.take_summary()
    }

    /// The summary of what is held back so far, now (on flush); the window goes on.
    pub(crate) fn take_summary(&mut self) -> Option<Summary> {
        if self.held.count == 0 {
            return None;
        }
        let held = std::mem::take(&mut self.held);
        let mut top: Vec<SourceCount> = held
            .per_source
            .into_iter()
            .map(|(source, count)| SourceCount { source, count })
            .collect();
        top.sort_unstable_by(|a, b| b.count.cmp(&a.count).then_with(|| a.source.cmp(&b.source)));
        top.truncate(TOP_SOURCES);
        Some(Summary {
            held_back: held.count,
            blocks: held.blocks,
            window: self.limits.window,
            top_sources: top,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alert::{Action, Threat};
    use std::time::SystemTime;

    const MINUTE: Duration = Duration::from_secs(60);

    fn limits(max: u32, dedupe: Duration) -> Limits {
        Limits {
            max_per_window: max,
            window: MINUTE,
            dedupe_window: dedupe,
        }
    }

    fn alert(source: &str, threat: Threat) -> Alert {
        Alert::new(
            threat,
            source,
            Action::Blocked {
                duration: None,
                routers: vec![],
            },
            "e",
            SystemTime::UNIX_EPOCH,
        )
    }

    #[test]
    fn over_the_limit_is_held_back_and_summarised_at_window_end() {
        let mut t = Throttle::new(limits(3, Duration::ZERO));
        let t0 = Instant::now();
        let verdicts: Vec<Verdict> = (0..10)
            .map(|i| t.admit(t0, &alert(&format!("10.0.0.{}", i % 4), Threat::PortScan)))
            .collect();
        assert_eq!(
            verdicts.iter().filter(|v| **v == Verdict::Deliver).count(),
            3
        );
        assert_eq!(t.next_deadline(), Some(t0 + MINUTE));
        assert_eq!(t.poll_summary(t0 + Duration::from_secs(59)), None);
        let s = t.poll_summary(t0 + MINUTE).unwrap();
        assert_eq!((s.held_back, s.blocks), (7, 7));
        // i = 3..10 → sources .3 .0 .1 .2 .3 .0 .1: .0, .1 and .3 twice, .2 once.
        let top: Vec<(&str, u64)> = s
            .top_sources
            .iter()
            .map(|s| (s.source.as_str(), s.count))
            .collect();
        assert_eq!(
            top,
            [
                ("10.0.0.0", 2),
                ("10.0.0.1", 2),
                ("10.0.0.3", 2),
                ("10.0.0.2", 1)
            ]
        );
        // A new window delivers again.
        assert_eq!(
            t.admit(t0 + MINUTE, &alert("x", Threat::PortScan)),
            Verdict::Deliver
        );
        assert_eq!(t.next_deadline(), None);
    }

    #[test]
    fn duplicates_within_the_window_are_dropped_then_reported_again() {
        let mut t = Throttle::new(limits(0, Duration::from_secs(300)));
        let t0 = Instant::now();
        let a = alert("10.0.0.1", Threat::LoginBruteForce);
        assert_eq!(t.admit(t0, &a), Verdict::Deliver);
        assert_eq!(
            t.admit(t0 + Duration::from_secs(299), &a),
            Verdict::Duplicate
        );
        // Another threat from the same source is news.
        assert_eq!(
            t.admit(t0, &alert("10.0.0.1", Threat::PortScan)),
            Verdict::Deliver
        );
        assert_eq!(t.admit(t0 + Duration::from_secs(300), &a), Verdict::Deliver);
    }

    #[test]
    fn memory_stays_bounded_under_many_sources() {
        let mut t = Throttle::new(limits(1, Duration::from_secs(300)));
        let t0 = Instant::now();
        for i in 0..(MAX_REMEMBERED + 10_000) {
            t.admit(t0, &alert(&i.to_string(), Threat::PortScan));
        }
        assert!(t.last_seen.len() <= MAX_REMEMBERED);
        // Once the window has passed, stale keys make room again.
        let later = t0 + Duration::from_secs(300);
        assert_eq!(
            t.admit(later, &alert("new", Threat::PortScan)),
            Verdict::HeldBack
        );
        assert_eq!(t.last_seen.len(), 1);
        assert_eq!(
            t.admit(later, &alert("new", Threat::PortScan)),
            Verdict::Duplicate
        );
        assert!(t.held.per_source.len() <= MAX_COUNTED_SOURCES);
        let s = t.take_summary().unwrap();
        assert_eq!(s.held_back, (MAX_REMEMBERED + 10_000) as u64);
        assert_eq!(s.top_sources.len(), TOP_SOURCES);
    }
}
