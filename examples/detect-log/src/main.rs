//! `detect-log`: runs mtids-detect over RouterOS log lines and prints every finding and
//! decision as one JSON object per line, then a summary line.
//!
//! ```text
//! detect-log [--config FILE] [--date YYYY-MM-DD] [--utc-offset SECS] FILE|-
//! ```
//!
//! The config is TOML with one table per detector plus `[guard]` and `[policy]` (the
//! CLI's detection section). Time comes from each line's own timestamp; `--date` supplies
//! the year (and the day, for `/log print` lines with only a time) and `--utc-offset` the
//! router's offset for headers without one. This program only embeds the crate: reading
//! files and the clock happens here, never in `mtids-detect`.

use std::collections::BTreeMap;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::process::ExitCode;

use mtids_detect::{
    Date, DetectionConfig, DetectionEngine, Finding, LineContext, Outcome, Timestamp,
    parse_log_line_bytes,
};
use serde_json::json;

/// Longest line read; longer ones are counted and skipped, so a broken file cannot make us
/// buffer without end.
const MAX_LINE: usize = 64 * 1024;

struct Args {
    config: Option<String>,
    input: String,
    ctx: LineContext,
}

const USAGE: &str =
    "usage: detect-log [--config FILE] [--date YYYY-MM-DD] [--utc-offset SECS] FILE|-";

fn parse_args() -> Result<Args, String> {
    let mut config = None;
    let mut input = None;
    let mut date = None;
    let mut offset = 0i32;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut value = |name: &str| args.next().ok_or(format!("{name} needs a value\n{USAGE}"));
        match a.as_str() {
            "--config" => config = Some(value("--config")?),
            "--date" => {
                let v = value("--date")?;
                date = Some(parse_date(&v).ok_or(format!("--date: `{v}` is not YYYY-MM-DD"))?);
            }
            "--utc-offset" => {
                let v = value("--utc-offset")?;
                offset = v
                    .parse()
                    .map_err(|_| format!("--utc-offset: `{v}` is not a number of seconds"))?;
            }
            "-h" | "--help" => return Err(USAGE.to_string()),
            _ if input.is_none() && (a == "-" || !a.starts_with('-')) => input = Some(a),
            _ => return Err(format!("unexpected argument `{a}`\n{USAGE}")),
        }
    }
    let input = input.ok_or(format!("no input given (a file, or - for stdin)\n{USAGE}"))?;
    Ok(Args {
        config,
        input,
        ctx: LineContext::new(date.unwrap_or_else(today_utc), offset),
    })
}

fn parse_date(s: &str) -> Option<Date> {
    let mut it = s.splitn(3, '-');
    let y = it.next()?.parse().ok()?;
    let m: u8 = it.next()?.parse().ok()?;
    let d: u8 = it.next()?.parse().ok()?;
    ((1..=12).contains(&m) && (1..=31).contains(&d)).then(|| Date::new(y, m, d))
}

/// Today's UTC date, for syslog lines without a year when `--date` is not given.
fn today_utc() -> Date {
    let ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
    Date::of(Timestamp::from_millis(ms))
}

fn load_config(path: Option<&str>) -> Result<DetectionConfig, String> {
    let Some(path) = path else {
        return Ok(DetectionConfig::default());
    };
    let text =
        std::fs::read_to_string(path).map_err(|e| format!("cannot read config {path}: {e}"))?;
    // An mtids configuration's `[detection]` section, or its tables alone.
    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct MtidsConfig {
        detection: DetectionConfig,
    }
    let in_mtids_form = toml::from_str::<toml::Table>(&text)
        .is_ok_and(|t| t.len() == 1 && t.contains_key("detection"));
    let config: DetectionConfig = if in_mtids_form {
        toml::from_str::<MtidsConfig>(&text).map(|c| c.detection)
    } else {
        toml::from_str(&text)
    }
    .map_err(|e| format!("config {path}: {e}"))?;
    config
        .validate()
        .map_err(|e| format!("config {path}: {e}"))?;
    Ok(config)
}

fn finding_json(f: &Finding) -> serde_json::Value {
    json!({
        "type": "finding",
        "detector": f.detector,
        "kind": f.kind,
        "severity": f.severity,
        "source": f.source,
        "time_ms": f.time.as_millis(),
        "evidence": f.evidence,
    })
}

fn outcome_json(o: &Outcome) -> serde_json::Value {
    match o {
        Outcome::Ban(d) => json!({
            "type": "decision",
            "detector": d.finding.detector,
            "kind": d.finding.kind,
            "source": d.finding.source,
            "target": d.target,
            "duration_secs": d.duration.as_secs(),
            "offence": d.offence,
            "reason": d.reason,
            "expires_ms": d.expires.as_millis(),
        }),
        Outcome::Suppressed(s) => json!({
            "type": "suppressed",
            "detector": s.finding.detector,
            "kind": s.finding.kind,
            "source": s.finding.source,
            "why": s.reason.to_string(),
            "suppression": s.reason,
        }),
    }
}

#[derive(Default)]
struct Counts {
    lines: u64,
    kinds: BTreeMap<&'static str, u64>,
    too_long: u64,
    no_timestamp: u64,
    findings: u64,
    decisions: u64,
    suppressed: u64,
}

fn run(args: &Args, input: &mut dyn BufRead, out: &mut dyn Write) -> Result<Counts, String> {
    let config = load_config(args.config.as_deref())?;
    let mut engine = DetectionEngine::new(&config).map_err(|e| e.to_string())?;
    let mut counts = Counts::default();
    let mut outcomes = Vec::new();
    let mut buf = Vec::new();
    let mut scratch = String::new();
    let mut now = Timestamp::ZERO;
    let write_err = |e: io::Error| format!("cannot write output: {e}");
    loop {
        buf.clear();
        let n = (&mut *input)
            .take(MAX_LINE as u64 + 1)
            .read_until(b'\n', &mut buf)
            .map_err(|e| format!("cannot read {}: {e}", args.input))?;
        if n == 0 {
            break;
        }
        if buf.last() != Some(&b'\n') && buf.len() > MAX_LINE {
            // Skip the rest of the over-long line.
            counts.too_long += 1;
            let mut rest = Vec::new();
            input
                .read_until(b'\n', &mut rest)
                .map_err(|e| format!("cannot read {}: {e}", args.input))?;
            continue;
        }
        counts.lines += 1;
        let line = parse_log_line_bytes(&buf, &args.ctx, &mut scratch);
        *counts.kinds.entry(line.event.kind()).or_insert(0) += 1;
        match line.timestamp {
            // Lines may go back a little (syslog relays): time never runs backwards here.
            Some(t) => now = now.max(t),
            None => counts.no_timestamp += 1,
        }
        engine.expire_due(now, &mut outcomes);
        engine.observe(now, &line.event, &mut outcomes);
        for o in outcomes.drain(..) {
            counts.findings += 1;
            writeln!(out, "{}", finding_json(o.finding())).map_err(write_err)?;
            match o {
                Outcome::Ban(_) => counts.decisions += 1,
                Outcome::Suppressed(_) => counts.suppressed += 1,
            }
            writeln!(out, "{}", outcome_json(&o)).map_err(write_err)?;
        }
    }
    let unrecognized = counts.kinds.remove("unrecognized").unwrap_or(0);
    writeln!(
        out,
        "{}",
        json!({
            "type": "summary",
            "lines": counts.lines,
            "parsed": counts.kinds,
            "unrecognized": unrecognized,
            "too_long": counts.too_long,
            "without_timestamp": counts.no_timestamp,
            "findings": counts.findings,
            "decisions": counts.decisions,
            "suppressed": counts.suppressed,
        })
    )
    .map_err(write_err)?;
    Ok(counts)
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    let stdout = io::stdout();
    let mut out = io::BufWriter::new(stdout.lock());
    let result = if args.input == "-" {
        run(&args, &mut io::stdin().lock(), &mut out)
    } else {
        match std::fs::File::open(&args.input) {
            Ok(f) => run(&args, &mut BufReader::new(f), &mut out),
            Err(e) => Err(format!("cannot open {}: {e}", args.input)),
        }
    };
    let flushed = out.flush();
    match (result, flushed) {
        (Ok(_), Ok(())) => ExitCode::SUCCESS,
        (Err(e), _) => {
            eprintln!("detect-log: {e}");
            ExitCode::FAILURE
        }
        (Ok(_), Err(e)) => {
            eprintln!("detect-log: cannot write output: {e}");
            ExitCode::FAILURE
        }
    }
}
