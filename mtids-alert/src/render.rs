//! Turning a [`Notification`] into text that is safe to show.
//!
//! Everything that came from outside (sources, user names inside evidence, router names,
//! detector names) goes through [`bounded`]: control and invisible formatting characters
//! become visible escapes (so a user name with a newline cannot forge a line of the
//! message, and a bidi override cannot reorder it), and each field is cut to a length
//! budget. The per-field budgets add up to less than Telegram's 4096-character limit, so
//! a message never has to be cut in the middle of markup. Markup escaping (HTML for
//! Telegram, `&<>` for Slack) is applied per span by the output format.

use std::fmt::Write as _;
use std::time::{Duration, SystemTime};

use crate::alert::{Action, Alert, Notification, Summary};

/// Telegram's limit on a message's text, in UTF-16 code units after entity parsing.
#[cfg(test)]
pub(crate) const TELEGRAM_TEXT_LIMIT: usize = 4096;

// Per-field budgets in UTF-16 code units (what Telegram counts). Sum plus the fixed text
// stays well under `TELEGRAM_TEXT_LIMIT`; `tests::worst_case_fits_telegram` checks it.
const THREAT_BUDGET: usize = 128;
const SOURCE_BUDGET: usize = 256;
const ROUTER_BUDGET: usize = 96;
const ROUTERS_SHOWN: usize = 8;
const REASON_BUDGET: usize = 512;
const EVIDENCE_BUDGET: usize = 1600;
const DETECTOR_BUDGET: usize = 128;
const TOP_SOURCES_SHOWN: usize = 5;

/// Makes outside text printable on one line and cuts it to `budget` UTF-16 code units.
pub(crate) fn bounded(text: &str, budget: usize) -> String {
    truncate_utf16(&sanitize_line(text), budget)
}

/// Replaces control characters and invisible formatting characters with visible escapes.
pub(crate) fn sanitize_line(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() || is_invisible_format(c) => {
                let _ = write!(out, "\\u{{{:x}}}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out
}

/// Zero-width, bidi-control and line/paragraph separator characters.
fn is_invisible_format(c: char) -> bool {
    matches!(
        c,
        '\u{00ad}'
            | '\u{061c}'
            | '\u{180e}'
            | '\u{200b}'..='\u{200f}'
            | '\u{2028}'..='\u{202e}'
            | '\u{2060}'..='\u{2069}'
            | '\u{feff}'
    )
}

/// Cuts `text` to at most `budget` UTF-16 code units, ending with "…" when cut.
pub(crate) fn truncate_utf16(text: &str, budget: usize) -> String {
    if utf16_len(text) <= budget {
        return text.to_owned();
    }
    let mut out = String::new();
    let mut used = 0;
    // Leave one unit for the ellipsis.
    for c in text.chars() {
        if used + c.len_utf16() > budget.saturating_sub(1) {
            break;
        }
        used += c.len_utf16();
        out.push(c);
    }
    if budget > 0 {
        out.push('…');
    }
    out
}

/// Length as Telegram counts it.
pub(crate) fn utf16_len(text: &str) -> usize {
    text.chars().map(char::len_utf16).sum()
}

/// Escapes text for Telegram's HTML parse mode.
pub(crate) fn escape_html(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            c => out.push(c),
        }
    }
    out
}

/// Escapes the three characters Slack-compatible services treat as markup in `text`.
pub(crate) fn escape_slack(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            c => out.push(c),
        }
    }
    out
}

/// RFC 3339 in UTC with whole seconds, e.g. `2026-11-21T10:21:10Z`.
pub(crate) fn rfc3339(at: SystemTime) -> String {
    humantime::format_rfc3339_seconds(at).to_string()
}

/// A duration in words people read: `1 day`, `2 days 3h`, `1h 30m`, `45s`; at most two
/// parts, sub-second parts dropped, at least `1s`.
pub fn human_duration(d: Duration) -> String {
    let secs = d.as_secs().max(1);
    let (days, h, m, s) = (secs / 86_400, secs / 3600 % 24, secs / 60 % 60, secs % 60);
    let mut parts: Vec<String> = Vec::new();
    match days {
        0 => {}
        1 => parts.push("1 day".to_owned()),
        n => parts.push(format!("{n} days")),
    }
    for (n, unit) in [(h, "h"), (m, "m"), (s, "s")] {
        if n > 0 {
            parts.push(format!("{n}{unit}"));
        }
    }
    parts.truncate(2);
    parts.join(" ")
}

/// A piece of a line, styled by the output format.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Span {
    /// Plain text.
    Text(String),
    /// Emphasised (bold in Telegram).
    Strong(String),
    /// Verbatim (monospace in Telegram): sources.
    Code(String),
}

/// A notification laid out as lines of spans, before markup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Message {
    lines: Vec<Vec<Span>>,
}

impl Message {
    /// Lays out a notification.
    pub(crate) fn from_notification(notification: &Notification) -> Self {
        match notification {
            Notification::Alert(alert) => Self::from_alert(alert),
            Notification::Summary(summary) => Self::from_summary(summary),
        }
    }

    fn from_alert(alert: &Alert) -> Self {
        let icon = match alert.action {
            Action::Blocked { .. } => "🚫",
            Action::DryRun { .. } => "🧪",
            Action::Suppressed { .. } => "🔕",
        };
        let mut lines = vec![vec![
            Span::Text(format!("{icon} ")),
            Span::Strong(bounded(alert.threat.label(), THREAT_BUDGET)),
            Span::Text(" from ".to_owned()),
            Span::Code(bounded(&alert.source, SOURCE_BUDGET)),
        ]];
        lines.push(vec![Span::Text(format!(
            "Action: {}",
            describe_action(&alert.action)
        ))]);
        lines.push(vec![Span::Text(format!(
            "Evidence: {}",
            bounded(&alert.evidence, EVIDENCE_BUDGET)
        ))]);
        let mut about = Vec::new();
        if let Some(detector) = &alert.detector {
            about.push(format!("Detector: {}", bounded(detector, DETECTOR_BUDGET)));
        }
        if let Some(severity) = alert.severity {
            about.push(format!("Severity: {}", severity.as_str()));
        }
        if !about.is_empty() {
            lines.push(vec![Span::Text(about.join(" · "))]);
        }
        let mut when = format!("Detected: {}", rfc3339(alert.detected_at));
        if let Some(enforced) = alert.enforced_at {
            match enforced.duration_since(alert.detected_at) {
                Ok(delay) => {
                    let _ = write!(when, " · enforced {:.3} s later", delay.as_secs_f64());
                }
                Err(_) => {
                    let _ = write!(when, " · enforced: {}", rfc3339(enforced));
                }
            }
        }
        lines.push(vec![Span::Text(when)]);
        Self { lines }
    }

    fn from_summary(summary: &Summary) -> Self {
        let window = if summary.window == Duration::from_secs(60) {
            "minute".to_owned()
        } else {
            human_duration(summary.window)
        };
        let headline = if summary.blocks == summary.held_back {
            format!("{} more blocks in the last {window}", summary.held_back)
        } else {
            format!(
                "{} more alerts in the last {window} ({} blocks)",
                summary.held_back, summary.blocks
            )
        };
        let mut lines = vec![vec![Span::Text("📈 ".to_owned()), Span::Strong(headline)]];
        if !summary.top_sources.is_empty() {
            let mut line = vec![Span::Text("Top sources: ".to_owned())];
            for (i, top) in summary
                .top_sources
                .iter()
                .take(TOP_SOURCES_SHOWN)
                .enumerate()
            {
                if i > 0 {
                    line.push(Span::Text(", ".to_owned()));
                }
                line.push(Span::Code(bounded(&top.source, SOURCE_BUDGET)));
                line.push(Span::Text(format!(" ({})", top.count)));
            }
            lines.push(line);
        }
        lines.push(vec![Span::Text(
            "(rate limit reached: individual alerts were held back)".to_owned(),
        )]);
        Self { lines }
    }

    /// Telegram HTML: every span escaped, only `<b>` and `<code>` tags of our own.
    pub(crate) fn to_telegram_html(&self) -> String {
        self.render(|span, out| match span {
            Span::Text(t) => out.push_str(&escape_html(t)),
            Span::Strong(t) => {
                out.push_str("<b>");
                out.push_str(&escape_html(t));
                out.push_str("</b>");
            }
            Span::Code(t) => {
                out.push_str("<code>");
                out.push_str(&escape_html(t));
                out.push_str("</code>");
            }
        })
    }

    /// Plain text, no markup at all (the webhook JSON `text` field).
    pub(crate) fn to_plain(&self) -> String {
        self.render(|span, out| match span {
            Span::Text(t) | Span::Strong(t) | Span::Code(t) => out.push_str(t),
        })
    }

    /// Slack-compatible text (sent with `mrkdwn: false`): only `&<>` are special.
    pub(crate) fn to_slack(&self) -> String {
        self.render(|span, out| match span {
            Span::Text(t) | Span::Strong(t) | Span::Code(t) => out.push_str(&escape_slack(t)),
        })
    }

    fn render(&self, mut span: impl FnMut(&Span, &mut String)) -> String {
        let mut out = String::new();
        for (i, line) in self.lines.iter().enumerate() {
            if i > 0 {
                out.push('\n');
            }
            for s in line {
                span(s, &mut out);
            }
        }
        out
    }
}

fn describe_action(action: &Action) -> String {
    match action {
        Action::Blocked { duration, routers } => {
            format!(
                "blocked {}{}",
                describe_duration(*duration),
                on_routers(routers)
            )
        }
        Action::DryRun { duration, routers } => format!(
            "dry run, would block {}{}",
            describe_duration(*duration),
            on_routers(routers)
        ),
        Action::Suppressed { reason } => {
            format!("not blocked: {}", bounded(reason, REASON_BUDGET))
        }
    }
}

fn describe_duration(duration: Option<Duration>) -> String {
    match duration {
        Some(d) => format!("for {}", human_duration(d)),
        None => "until removed".to_owned(),
    }
}

fn on_routers(routers: &[String]) -> String {
    if routers.is_empty() {
        return String::new();
    }
    let shown: Vec<String> = routers
        .iter()
        .take(ROUTERS_SHOWN)
        .map(|r| bounded(r, ROUTER_BUDGET))
        .collect();
    let mut text = format!(" on {}", shown.join(", "));
    if routers.len() > ROUTERS_SHOWN {
        let _ = write!(text, " and {} more", routers.len() - ROUTERS_SHOWN);
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alert::{Severity, SourceCount, Threat};
    use proptest::prelude::*;

    fn alert_with(source: &str, evidence: &str) -> Alert {
        Alert::new(
            Threat::LoginBruteForce,
            source,
            Action::Blocked {
                duration: Some(Duration::from_secs(5400)),
                routers: vec!["core-1".into(), "edge".into()],
            },
            evidence,
            SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000),
        )
    }

    /// Text as Telegram shows it: tags removed, entities decoded.
    fn visible(html: &str) -> String {
        let mut out = String::new();
        let mut rest = html;
        while let Some(c) = rest.chars().next() {
            if c == '<' {
                let end = rest.find('>').expect("unterminated tag");
                rest = &rest[end + 1..];
            } else if c == '&' {
                let end = rest.find(';').expect("unterminated entity");
                out.push(match &rest[..=end] {
                    "&amp;" => '&',
                    "&lt;" => '<',
                    "&gt;" => '>',
                    "&quot;" => '"',
                    other => panic!("unknown entity {other}"),
                });
                rest = &rest[end + 1..];
            } else {
                out.push(c);
                rest = &rest[c.len_utf8()..];
            }
        }
        out
    }

    /// Every tag in the output is one of ours.
    fn only_our_tags(html: &str) -> bool {
        let mut rest = html;
        while let Some(start) = rest.find('<') {
            let end = match rest[start..].find('>') {
                Some(e) => start + e,
                None => return false,
            };
            if !matches!(&rest[start..=end], "<b>" | "</b>" | "<code>" | "</code>") {
                return false;
            }
            rest = &rest[end + 1..];
        }
        true
    }

    #[test]
    fn attacker_markup_is_escaped_and_newlines_cannot_forge_lines() {
        let evil = "adm<b>in</b> & _*[]()~`> \n🚫 Action: none\r\u{202e}";
        let alert = alert_with("10.0.0.1<i>", &format!("12 failed logins for {evil}"));
        let html = Message::from_notification(&alert.into()).to_telegram_html();
        assert!(
            html.contains(
                "adm&lt;b&gt;in&lt;/b&gt; &amp; _*[]()~`&gt; \\n🚫 Action: none\\r\\u{202e}"
            ),
            "{html}"
        );
        assert!(html.contains("<code>10.0.0.1&lt;i&gt;</code>"), "{html}");
        assert!(only_our_tags(&html), "{html}");
        // Exactly our own lines: header, action, evidence, time.
        assert_eq!(html.lines().count(), 4, "{html}");
        assert!(
            html.contains("Action: blocked for 1h 30m on core-1, edge"),
            "{html}"
        );
        assert!(html.contains("Detected: 2023-11-14T22:13:20Z"), "{html}");
    }

    #[test]
    fn optional_fields_and_enforcement_delay_are_shown() {
        let alert = alert_with("10.0.0.1", "x")
            .with_detector("brute-force")
            .with_severity(Severity::High)
            .with_enforced_at(SystemTime::UNIX_EPOCH + Duration::from_millis(1_700_000_000_250));
        let plain = Message::from_notification(&alert.into()).to_plain();
        assert!(
            plain.contains("Detector: brute-force · Severity: high"),
            "{plain}"
        );
        assert!(plain.contains("enforced 0.250 s later"), "{plain}");
    }

    #[test]
    fn summary_names_the_count_and_top_sources() {
        let summary = Summary {
            held_back: 37,
            blocks: 37,
            window: Duration::from_secs(60),
            top_sources: vec![
                SourceCount {
                    source: "203.0.113.7".into(),
                    count: 12,
                },
                SourceCount {
                    source: "198.51.100.<b>".into(),
                    count: 3,
                },
            ],
        };
        let html = Message::from_notification(&summary.into()).to_telegram_html();
        assert!(
            html.contains("<b>37 more blocks in the last minute</b>"),
            "{html}"
        );
        assert!(
            html.contains(
                "Top sources: <code>203.0.113.7</code> (12), <code>198.51.100.&lt;b&gt;</code> (3)"
            ),
            "{html}"
        );
    }

    #[test]
    fn worst_case_fits_telegram() {
        let huge = "𝕏&<\n".repeat(10_000);
        let mut alert = Alert::new(
            Threat::Other(huge.clone()),
            huge.clone(),
            Action::Blocked {
                duration: None,
                routers: vec![huge.clone(); 50],
            },
            huge.clone(),
            SystemTime::UNIX_EPOCH,
        )
        .with_detector(huge.clone())
        .with_severity(Severity::Critical)
        .with_enforced_at(SystemTime::UNIX_EPOCH);
        let html = Message::from_notification(&alert.clone().into()).to_telegram_html();
        assert!(utf16_len(&visible(&html)) <= TELEGRAM_TEXT_LIMIT);
        assert!(html.contains("and 42 more"));
        alert.action = Action::Suppressed {
            reason: huge.clone(),
        };
        let html = Message::from_notification(&alert.into()).to_telegram_html();
        assert!(utf16_len(&visible(&html)) <= TELEGRAM_TEXT_LIMIT);
        let summary = Summary {
            held_back: u64::MAX,
            blocks: 1,
            window: Duration::from_secs(3600),
            top_sources: vec![
                SourceCount {
                    source: huge,
                    count: u64::MAX
                };
                20
            ],
        };
        let html = Message::from_notification(&summary.into()).to_telegram_html();
        assert!(utf16_len(&visible(&html)) <= TELEGRAM_TEXT_LIMIT);
    }

    #[test]
    fn truncation_respects_utf16_units_and_char_boundaries() {
        assert_eq!(truncate_utf16("abc", 3), "abc");
        assert_eq!(truncate_utf16("abcd", 3), "ab…");
        // '𝕏' is two UTF-16 units: never split.
        assert_eq!(truncate_utf16("𝕏𝕏𝕏", 4), "𝕏…");
        assert_eq!(truncate_utf16("abc", 0), "");
    }

    proptest! {
        #[test]
        fn any_outside_text_renders_safely(source in ".{0,300}", evidence in ".{0,3000}", router in ".{0,200}") {
            let mut alert = alert_with(&source, &evidence);
            alert.action = Action::DryRun { duration: Some(Duration::from_secs(60)), routers: vec![router; 3] };
            let html = Message::from_notification(&alert.into()).to_telegram_html();
            prop_assert!(only_our_tags(&html));
            prop_assert!(utf16_len(&visible(&html)) <= TELEGRAM_TEXT_LIMIT);
            // Outside text never adds a line.
            prop_assert_eq!(html.lines().count(), 4);
        }
    }
}
