//! `mtids explain`: how each log line is read and what detection makes of it, line by line
//! (like `cscli explain`), for people writing log rules or wondering why a line was (not)
//! banned.
//!
//! Every line goes through the same parser and [`DetectionEngine`] as the daemon and
//! `mtids replay`, with the line's own time: the header and format recognised, the event
//! parsed, which detectors counted it and how far its source is from their thresholds, what
//! the guard says about the source, and the policy's decision on any finding it completed.

use std::fmt::Write as _;
use std::fs::File;
use std::io::{self, BufRead, BufReader, Write};
use std::path::PathBuf;

use mtids_detect::{
    AuthKind, AuthSource, DetectionConfig, DetectionEngine, Event, LineContext, Outcome, Timestamp,
    line_format, parse_log_line,
};

use crate::CliError;
use crate::replay::{LogTimeArgs, MAX_LINE, format_time};

/// The arguments of `mtids explain`.
#[derive(Debug, Clone, clap::Args)]
#[non_exhaustive]
pub struct ExplainArgs {
    /// The log file to explain, one line at a time (`-` or nothing: standard input).
    #[arg(value_name = "FILE")]
    pub file: Option<PathBuf>,
    /// How log times without a year, a date or an offset are completed.
    #[command(flatten)]
    pub time: LogTimeArgs,
}

/// `mtids explain` as the binary runs it: detection settings from the configuration's
/// `[detection]` table, output to stdout.
///
/// # Errors
/// A bad `--date`/`--utc-offset`, an invalid detection configuration, or a file that cannot
/// be read (exit 2 for the first two, 1 for the last).
pub fn execute(config: &DetectionConfig, args: &ExplainArgs) -> Result<(), CliError> {
    let ctx = args
        .time
        .context()
        .map_err(|e| CliError::Usage(e.to_string()))?;
    let mut engine = DetectionEngine::new(config)
        .map_err(|e| CliError::Usage(format!("detection configuration: {e}")))?;
    let stdout = io::stdout();
    let mut out = io::BufWriter::new(stdout.lock());
    let write_err = |e| CliError::io("writing the explanation", e);
    match args.file.as_deref().filter(|p| p.as_os_str() != "-") {
        None => explain(
            &mut engine,
            &ctx,
            io::stdin().lock(),
            &mut out,
            "standard input",
        ),
        Some(path) => {
            let name = path.display().to_string();
            let file = File::open(path).map_err(|e| CliError::io(format!("reading {name}"), e))?;
            explain(&mut engine, &ctx, BufReader::new(file), &mut out, &name)
        }
    }
    .and_then(|()| match out.flush() {
        Err(e) if e.kind() != io::ErrorKind::BrokenPipe => Err(write_err(e)),
        _ => Ok(()),
    })
}

fn explain(
    engine: &mut DetectionEngine,
    ctx: &LineContext,
    mut input: impl BufRead,
    out: &mut impl Write,
    name: &str,
) -> Result<(), CliError> {
    let mut buf = Vec::new();
    let mut number = 0u64;
    let mut now = Timestamp::ZERO;
    let mut outcomes = Vec::new();
    loop {
        buf.clear();
        // Bounded: a line longer than MAX_LINE is cut there (and said so).
        let n = io::Read::take(&mut input, MAX_LINE as u64 + 1)
            .read_until(b'\n', &mut buf)
            .map_err(|e| CliError::io(format!("reading {name}"), e))?;
        if n == 0 {
            break;
        }
        let cut = buf.len() > MAX_LINE && buf.last() != Some(&b'\n');
        if cut {
            // Skip the rest of the long line.
            let mut sink = Vec::new();
            input
                .read_until(b'\n', &mut sink)
                .map_err(|e| CliError::io(format!("reading {name}"), e))?;
        }
        number += 1;
        let text = String::from_utf8_lossy(&buf);
        let line = text.trim_end_matches(['\n', '\r']);
        if line.trim().is_empty() {
            continue;
        }
        let mut report = String::new();
        let _ = writeln!(report, "line {number}: {line}");
        if cut {
            let _ = writeln!(report, "  note:    longer than {MAX_LINE} bytes: cut there");
        }
        let parsed = parse_log_line(line, ctx);
        let _ = writeln!(report, "  format:  {}", line_format(line));
        let time = match parsed.timestamp {
            Some(t) => {
                now = now.max(t);
                format_time(t.as_millis())
            }
            None => format!("none (taken as {})", format_time(now.as_millis())),
        };
        let _ = writeln!(
            report,
            "  header:  time {time}, host {}, topics {}",
            parsed.host.unwrap_or("-"),
            if parsed.topics.is_empty() {
                "-"
            } else {
                parsed.topics
            }
        );
        let _ = writeln!(report, "  event:   {}", describe_event(&parsed.event));
        engine.expire_due(now, &mut outcomes);
        outcomes.clear();
        engine.observe(now, &parsed.event, &mut outcomes);
        let progress = engine.detectors().progress(&parsed.event);
        if progress.is_empty() {
            let _ = writeln!(report, "  counted: by no detector");
        }
        for p in &progress {
            let _ = writeln!(
                report,
                "  counted: {} {}/{} {} in {}",
                p.detector,
                p.count,
                p.threshold,
                p.measure,
                mtids_alert::human_duration(p.window)
            );
        }
        if let Some(ip) = event_source(&parsed.event) {
            let guard = engine.policy().guard();
            match guard.check(ip) {
                Some(reason) => {
                    let _ = writeln!(report, "  guard:   {ip} is never banned ({reason})");
                }
                None => {
                    let target = engine.policy().target_for(ip);
                    let _ = writeln!(report, "  guard:   {ip} may be banned (as {target})");
                }
            }
        }
        if outcomes.is_empty() && !progress.is_empty() {
            let _ = writeln!(report, "  policy:  no finding yet");
        }
        for outcome in &outcomes {
            let f = outcome.finding();
            let what = match outcome {
                Outcome::Ban(d) => format!(
                    "ban {} for {}: {}",
                    d.target,
                    mtids_alert::human_duration(d.duration),
                    d.reason
                ),
                Outcome::Suppressed(s) => {
                    format!("not banned: {}", crate::replay::why_not(&s.reason))
                }
            };
            let _ = writeln!(
                report,
                "  policy:  finding {} from {} ({} {}/{}) -> {what}",
                f.kind.as_str(),
                f.source,
                f.detector,
                f.evidence.count,
                f.evidence.threshold
            );
        }
        report.push('\n');
        match out.write_all(report.as_bytes()) {
            Ok(()) => {}
            // `mtids explain ... | head`: the reader has what it wanted.
            Err(e) if e.kind() == io::ErrorKind::BrokenPipe => return Ok(()),
            Err(e) => return Err(CliError::io("writing the explanation", e)),
        }
    }
    if number == 0 {
        eprintln!("mtids explain: {name} had no lines");
    }
    Ok(())
}

/// The address a ban for this event would target, if it names one.
fn event_source(event: &Event<'_>) -> Option<std::net::IpAddr> {
    match event {
        Event::Firewall(row) => Some(row.src.ip),
        Event::Auth(auth) => match auth.source {
            AuthSource::Ip(ip) => Some(ip),
            _ => None,
        },
        Event::TunnelConnect(t) => Some(t.source),
        _ => None,
    }
}

/// One line saying what the parser made of the message.
fn describe_event(event: &Event<'_>) -> String {
    match event {
        Event::Firewall(row) => {
            let mut s = format!(
                "firewall: {} {} -> {}, chain {}",
                row.protocol, row.src, row.dst, row.chain
            );
            if let Some(prefix) = row.prefix.as_deref().filter(|p| !p.trim().is_empty()) {
                let _ = write!(s, ", prefix {:?}", prefix.trim());
            }
            if let Some(state) = &row.connection_state {
                let _ = write!(s, ", state {state}");
            }
            s
        }
        Event::Auth(auth) => {
            let kind = match auth.kind {
                AuthKind::Failure => "login failure",
                AuthKind::Success => "login",
                AuthKind::Logout => "logout",
            };
            format!(
                "auth: {kind} for user {:?} from {} via {}",
                auth.user,
                auth.source,
                auth.service.as_deref().unwrap_or("-")
            )
        }
        Event::TunnelConnect(t) => format!(
            "tunnel connect: {} from {} (its login result comes on a later line)",
            t.service, t.source
        ),
        Event::TunnelFailure(t) => format!(
            "tunnel failure: user {:?} on {} via {} (address from the session's connect line)",
            t.user, t.session, t.service
        ),
        Event::Connection(c) => format!("connection: {} {} -> {}", c.protocol, c.src, c.dst),
        Event::Resource(r) => format!("resource: cpu {}%", r.cpu_load),
        _ => {
            "unrecognised: no known message (not counted; `replay --show-unmatched` lists such lines)"
                .to_owned()
        }
    }
}
