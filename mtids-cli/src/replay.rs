//! `mtids replay FILE...`: offline detection over log files, like `fail2ban-regex`.
//!
//! Every line goes through the same parser and [`DetectionEngine`] as the daemon, with
//! time taken from the lines' own timestamps, so a replay of yesterday's syslog shows
//! what `mtids run` would have banned. The output lists each finding and what the policy
//! made of it (a ban, or why not), then how many lines matched and how many did not, per
//! kind. No router is needed.
//!
//! Speed: files are read in chunks of about 1 MiB of whole lines; every core parses
//! chunks (lines found with `memchr`, parsed without allocating), and each parsed chunk
//! then waits for its turn to go through detection in input order, so the output is the
//! same as with one thread (`--threads 1`). At most about three chunks per thread are in
//! memory. Nothing is written per line (only per finding). See `benches/replay.rs` and
//! `scripts/bench-replay-vs-fail2ban.sh`.

use std::fmt::Write as _;
use std::fs::File;
use std::io::{self, IsTerminal, Read, Write};
use std::path::PathBuf;
use std::sync::{Condvar, Mutex, PoisonError, mpsc};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use mtids_detect::{
    Date, DetectionConfig, DetectionEngine, Event, LineContext, Outcome, Suppression, Timestamp,
    parse_log_line,
};
use serde_json::json;

use crate::CliError;

/// Size of one read: large enough that the per-read cost vanishes, small enough to stay
/// in cache.
const CHUNK: usize = 1 << 20;

/// Longest line accepted; longer ones are counted as `too_long` and skipped, so a broken
/// file cannot make the replay buffer without end.
pub const MAX_LINE: usize = 64 * 1024;

/// Files at least this large get a progress bar (when stderr is a terminal).
const PROGRESS_MIN_BYTES: u64 = 16 << 20;

/// Errors of `mtids replay`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReplayError {
    /// An input file could not be opened or read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file (`-` for stdin).
        path: String,
        /// What the operating system said.
        #[source]
        source: io::Error,
    },
    /// The output could not be written (a closed pipe, a full disk).
    #[error("cannot write the replay output: {0}")]
    Write(#[source] io::Error),
    /// The detection configuration could not be read or is invalid.
    #[error("detection configuration {path}: {reason}")]
    Config {
        /// The file.
        path: String,
        /// What is wrong, naming the key.
        reason: String,
    },
    /// A command-line value is malformed.
    #[error("{option}: {reason}")]
    Argument {
        /// The option (`--date`, `--utc-offset`).
        option: &'static str,
        /// What was expected.
        reason: String,
    },
}

/// How log lines' times are completed, for `replay` and `explain`: syslog headers carry
/// no year, `/log print` lines of today only a time, and most headers no offset.
#[derive(Debug, Clone, Default, clap::Args)]
#[non_exhaustive]
pub struct LogTimeArgs {
    /// The date the logs were written (YYYY-MM-DD): its year completes syslog headers
    /// without one, and the date completes `/log print` lines with only a time.
    /// Default: today (UTC).
    #[arg(long, value_name = "YYYY-MM-DD")]
    pub date: Option<String>,
    /// The router's offset from UTC for headers without one (`+01:00`, `-0530`, `Z`, or
    /// seconds east of UTC).
    #[arg(
        long,
        value_name = "OFFSET",
        default_value = "Z",
        allow_hyphen_values = true
    )]
    pub utc_offset: String,
}

impl LogTimeArgs {
    /// The date (default today, UTC) and offset (default UTC) given.
    pub fn new(date: Option<&str>, utc_offset: &str) -> Self {
        LogTimeArgs {
            date: date.map(str::to_owned),
            utc_offset: utc_offset.to_owned(),
        }
    }

    /// The context that completes the lines' times.
    ///
    /// # Errors
    /// A malformed `--date` or `--utc-offset`.
    pub fn context(&self) -> Result<LineContext, ReplayError> {
        let date = match &self.date {
            Some(d) => parse_date(d)?,
            None => today_utc(),
        };
        Ok(LineContext::new(date, parse_utc_offset(&self.utc_offset)?))
    }
}

/// The arguments of `mtids replay`.
#[derive(Debug, Clone, clap::Args)]
pub struct ReplayArgs {
    /// Log files to replay, in order (`-` reads standard input). Any header RouterOS or
    /// rsyslog writes is accepted: BSD syslog, RFC 3339, `/log print`.
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<PathBuf>,
    /// Print one JSON object per finding and a summary object, instead of a table.
    #[arg(long)]
    pub json: bool,
    /// How log times without a year, a date or an offset are completed.
    #[command(flatten)]
    pub time: LogTimeArgs,
    /// Also print up to N lines that matched no known message (to see what is missed).
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub show_unmatched: usize,
    /// Never show a progress bar.
    #[arg(long)]
    pub no_progress: bool,
    /// Threads that parse lines (detection runs in input order whatever the number, so
    /// the output is the same). Default: one per core.
    #[arg(long, value_name = "N")]
    pub threads: Option<usize>,
}

/// How findings are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputFormat {
    /// A fixed-width table and a text summary.
    Table,
    /// One JSON object per line.
    Json,
}

/// Settings of one replay.
#[derive(Debug, Clone)]
pub struct ReplayOptions {
    /// Completes headers without a year, date or offset.
    pub context: LineContext,
    /// Table or JSON.
    pub format: OutputFormat,
    /// How many unmatched lines to keep and print.
    pub show_unmatched: usize,
    /// Show a progress bar for large files when stderr is a terminal.
    pub progress: bool,
}

impl Default for ReplayOptions {
    fn default() -> Self {
        Self {
            context: LineContext::default(),
            format: OutputFormat::Table,
            show_unmatched: 0,
            progress: false,
        }
    }
}

/// The kinds of line counted, in the order they are printed.
const KINDS: [&str; 5] = ["firewall", "auth", "connection", "resource", "unrecognized"];

fn kind_index(event: &Event<'_>) -> usize {
    match event {
        Event::Firewall(_) => 0,
        Event::Auth(_) => 1,
        Event::Connection(_) => 2,
        Event::Resource(_) => 3,
        _ => 4,
    }
}

/// Lines read from one input.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct FileSummary {
    /// The file (`-` for stdin).
    pub path: String,
    /// Lines read from it (blank and too long ones included).
    pub lines: u64,
    /// Bytes read from it.
    pub bytes: u64,
}

/// What a replay saw, in total.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct ReplaySummary {
    /// Every line read (blank and too long ones included).
    pub lines: u64,
    /// Lines that matched a known message shape.
    pub matched: u64,
    /// Lines that matched none (`unrecognized`), not counting blank lines.
    pub unmatched: u64,
    /// Lines per kind: `firewall`, `auth`, `connection`, `resource`, `unrecognized`.
    pub kinds: Vec<(String, u64)>,
    /// Empty lines (skipped).
    pub blank: u64,
    /// Lines longer than [`MAX_LINE`] (skipped).
    pub too_long: u64,
    /// Lines whose header had no timestamp of a known form (the previous time was used).
    pub without_timestamp: u64,
    /// Findings reported by the detectors.
    pub findings: u64,
    /// Findings that became bans.
    pub bans: u64,
    /// Findings that did not (guarded, already banned, ...).
    pub suppressed: u64,
    /// Earliest line timestamp, in ms since the UNIX epoch.
    pub first_ms: Option<u64>,
    /// Latest line timestamp, in ms since the UNIX epoch.
    pub last_ms: Option<u64>,
    /// Per input.
    pub files: Vec<FileSummary>,
    /// The first unmatched lines (up to `show_unmatched`).
    pub unmatched_samples: Vec<String>,
}

/// A replay in progress: one detection engine fed by one input after another.
///
/// Inputs are cut into chunks of whole lines; with more than one thread the chunks are
/// parsed in parallel and each parsed chunk then goes through detection in input order
/// (only detection needs order), so the output is the same as with one thread.
pub struct Replay {
    detect: Detect,
    threads: usize,
    chunk_bytes: usize,
}

/// The ordered part of a replay: detection, counting, output of findings.
struct Detect {
    engine: DetectionEngine,
    options: ReplayOptions,
    kind_counts: [u64; KINDS.len()],
    summary: ReplaySummary,
    outcomes: Vec<Outcome>,
    now: Timestamp,
    header_written: bool,
}

impl std::fmt::Debug for Replay {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Replay")
            .field("options", &self.detect.options)
            .field("summary", &self.detect.summary)
            .field("threads", &self.threads)
            .finish_non_exhaustive()
    }
}

/// Chunks handed to the parsing threads: 1 MiB of whole lines (about 5,000 RouterOS
/// lines), so the per-chunk hand-over costs nothing next to parsing it.
const CHUNK_BYTES: usize = CHUNK;

/// The number of threads `mtids replay` parses with by default: one per core.
pub fn default_threads() -> usize {
    std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
}

/// One parsed line of a chunk, borrowing the chunk.
struct ParsedLine<'c> {
    timestamp: Option<Timestamp>,
    event: Event<'c>,
    /// The line as read (without its `\r`), for `--show-unmatched`.
    raw: &'c [u8],
}

/// A chunk after parsing: its lines in order and what was skipped.
struct ParsedChunk<'c> {
    lines: Vec<ParsedLine<'c>>,
    counts: ChunkCounts,
}

/// The lines of a chunk, skipped ones included, and how many were skipped.
#[derive(Clone, Copy, Default)]
struct ChunkCounts {
    line_count: u64,
    blank: u64,
    too_long: u64,
}

impl std::ops::AddAssign for ChunkCounts {
    fn add_assign(&mut self, other: ChunkCounts) {
        self.line_count += other.line_count;
        self.blank += other.blank;
        self.too_long += other.too_long;
    }
}

/// Empties `v` and hands back its allocation for items of another lifetime (the standard
/// library collects in place when the element layouts match), so a worker reuses one
/// vector for every chunk it parses.
fn recycle<'b>(mut v: Vec<ParsedLine<'_>>) -> Vec<ParsedLine<'b>> {
    v.clear();
    v.into_iter().map(|_| unreachable_line()).collect()
}

#[allow(clippy::unreachable)] // the iterator is empty: this is never called
fn unreachable_line<'b>() -> ParsedLine<'b> {
    unreachable!("recycle() maps an empty vector")
}

/// Parses every line of `data` into a vector (for a worker thread, which detects later).
fn parse_chunk<'c>(
    data: &'c [u8],
    ctx: &LineContext,
    lossy: &'c mut Vec<String>,
    spare: Vec<ParsedLine<'_>>,
) -> ParsedChunk<'c> {
    let mut lines = recycle(spare);
    let counts = parse_lines(data, ctx, lossy, |line| {
        lines.push(line);
        Ok::<(), std::convert::Infallible>(())
    });
    let counts = match counts {
        Ok(c) => c,
        Err(never) => match never {},
    };
    ParsedChunk { lines, counts }
}

/// Parses every line of `data` (whole lines; the last may lack its newline) and hands
/// each to `sink`, in order, until it fails. Blank and too long lines are only counted.
///
/// Lines that are not UTF-8 are parsed from a lossy copy kept in `lossy`, which must
/// outlive the result; `lossy` is cleared first.
fn parse_lines<'c, E>(
    data: &'c [u8],
    ctx: &LineContext,
    lossy: &'c mut Vec<String>,
    mut sink: impl FnMut(ParsedLine<'c>) -> Result<(), E>,
) -> Result<ChunkCounts, E> {
    lossy.clear();
    let mut counts = ChunkCounts::default();
    // Logs are almost always valid UTF-8: check the whole chunk once (one SIMD pass)
    // instead of every line twice; only a chunk with a bad byte takes the per-line path.
    if let Ok(text) = std::str::from_utf8(data) {
        for line in split_lines_str(text) {
            counts.line_count += 1;
            if line.len() > MAX_LINE {
                counts.too_long += 1;
                continue;
            }
            let line = line.strip_suffix('\r').unwrap_or(line);
            if let Some(parsed) = parse_one(&mut counts, line, line.as_bytes(), ctx) {
                sink(parsed)?;
            }
        }
        return Ok(counts);
    }
    // First pass: the lossy copies, so that the second can borrow them all.
    for line in split_lines(data) {
        if line.len() <= MAX_LINE && std::str::from_utf8(line).is_err() {
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            lossy.push(String::from_utf8_lossy(line).into_owned());
        }
    }
    let lossy: &'c [String] = lossy;
    let mut lossy_next = lossy.iter();
    for line in split_lines(data) {
        counts.line_count += 1;
        if line.len() > MAX_LINE {
            counts.too_long += 1;
            continue;
        }
        let utf8 = std::str::from_utf8(line).ok();
        let raw = line.strip_suffix(b"\r").unwrap_or(line);
        let text: &'c str = match utf8 {
            Some(t) => t.strip_suffix('\r').unwrap_or(t),
            None => lossy_next.next().map_or("", String::as_str),
        };
        if let Some(parsed) = parse_one(&mut counts, text, raw, ctx) {
            sink(parsed)?;
        }
    }
    Ok(counts)
}

/// Parses one line (`text`, without its `\r`; `raw` as read), or counts it as blank.
fn parse_one<'c>(
    counts: &mut ChunkCounts,
    text: &'c str,
    raw: &'c [u8],
    ctx: &LineContext,
) -> Option<ParsedLine<'c>> {
    if raw.iter().all(|&b| b == b' ' || b == b'\t') {
        counts.blank += 1;
        return None;
    }
    let parsed = parse_log_line(text, ctx);
    Some(ParsedLine {
        timestamp: parsed.timestamp,
        event: parsed.event,
        raw,
    })
}

/// [`split_lines`] over text known to be UTF-8 (`\n` is never inside a character).
fn split_lines_str(text: &str) -> impl Iterator<Item = &str> {
    let base = text.as_ptr() as usize;
    split_lines(text.as_bytes()).map(move |line| {
        let start = (line.as_ptr() as usize).saturating_sub(base);
        text.get(start..start + line.len()).unwrap_or_default()
    })
}

/// The lines of `data`, split at `\n`; a last line without one is included.
fn split_lines(data: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut rest = data;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        match memchr::memchr(b'\n', rest) {
            Some(pos) => {
                let line = rest.get(..pos).unwrap_or_default();
                rest = rest.get(pos + 1..).unwrap_or_default();
                Some(line)
            }
            None => Some(std::mem::take(&mut rest)),
        }
    })
}

/// Cuts `input` into chunks of whole lines of about `chunk_bytes` and passes each to
/// `emit`. Lines that do not end within [`MAX_LINE`] bytes are counted in `file` and
/// dropped here, so a chunk never holds much more than `chunk_bytes` + [`MAX_LINE`]
/// bytes; returns how many. `take` hands out an empty buffer to fill (a recycled one
/// when it can).
fn read_chunks(
    input: &mut dyn Read,
    chunk_bytes: usize,
    file: &mut FileSummary,
    progress: Option<&ProgressBar>,
    read_err: &dyn Fn(io::Error) -> ReplayError,
    take: &mut dyn FnMut() -> Vec<u8>,
    emit: &mut dyn FnMut(Vec<u8>) -> Result<(), ReplayError>,
) -> Result<u64, ReplayError> {
    let mut too_long = 0;
    let read_size = chunk_bytes.clamp(4096, CHUNK);
    let mut buf = take();
    // buf[..end] holds whole lines not yet emitted and the start of the next; while
    // `skipping`, the rest of a too long line is being dropped and buf[..end] are whole lines.
    let (mut end, mut skipping) = (0usize, false);
    loop {
        // Buffers come back at the length of the chunk they held: grow only when short, so
        // the bytes about to be overwritten by the read are not zeroed first each time.
        if buf.len() < end + read_size {
            buf.resize(end + read_size, 0);
        }
        let n = match input.read(buf.get_mut(end..).unwrap_or_default()) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(read_err(e)),
        };
        if n == 0 {
            // The last line may lack its newline.
            if end > 0 {
                buf.truncate(end);
                emit(buf)?;
            }
            return Ok(too_long);
        }
        file.bytes += n as u64;
        if let Some(bar) = progress {
            bar.inc(n as u64);
        }
        let fresh = end;
        end += n;
        if skipping {
            match memchr::memchr(b'\n', buf.get(fresh..end).unwrap_or_default()) {
                None => {
                    end = fresh;
                    continue;
                }
                Some(pos) => {
                    // The end of a too long line, counted when it was dropped.
                    buf.copy_within(fresh + pos + 1..end, fresh);
                    end -= pos + 1;
                    skipping = false;
                }
            }
        }
        let last_newline = memchr::memrchr(b'\n', buf.get(fresh..end).unwrap_or_default())
            .map(|pos| fresh + pos)
            .or_else(|| {
                // No newline in the new bytes: the last one is before them, if any.
                memchr::memrchr(b'\n', buf.get(..fresh).unwrap_or_default())
            });
        let tail_start = last_newline.map_or(0, |pos| pos + 1);
        if end >= chunk_bytes && tail_start > 0 {
            let mut next = take();
            let tail = end - tail_start;
            if next.len() < tail {
                next.resize(tail, 0);
            }
            if let (Some(to), Some(from)) = (next.get_mut(..tail), buf.get(tail_start..end)) {
                to.copy_from_slice(from);
            }
            buf.truncate(tail_start);
            end = tail;
            emit(std::mem::replace(&mut buf, next))?;
            if end > MAX_LINE {
                too_long += 1;
                file.lines += 1;
                skipping = true;
                end = 0;
            }
        } else if end - tail_start > MAX_LINE {
            // A line that has not ended within MAX_LINE bytes: count it once, drop it.
            too_long += 1;
            file.lines += 1;
            skipping = true;
            end = tail_start;
        }
    }
}

/// Locks `m`; a thread that panicked holding it leaves counts, nothing inconsistent.
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The state shared by the parsing threads: whose turn it is to detect, and the output
/// of the chunks detected so far, for the calling thread to write.
struct Turn<'d> {
    next: u64,
    detect: &'d mut Detect,
    output: Vec<u8>,
    counts: ChunkCounts,
    error: Option<ReplayError>,
}

impl Replay {
    /// A replay with detection set up from `config`, parsing on [`default_threads`] threads.
    pub fn new(config: &DetectionConfig, options: ReplayOptions) -> Result<Replay, ReplayError> {
        let engine = DetectionEngine::new(config).map_err(|e| ReplayError::Config {
            path: "(detection)".to_owned(),
            reason: e.to_string(),
        })?;
        Ok(Replay {
            detect: Detect {
                engine,
                options,
                kind_counts: [0; KINDS.len()],
                summary: ReplaySummary::default(),
                outcomes: Vec::new(),
                now: Timestamp::ZERO,
                header_written: false,
            },
            threads: default_threads(),
            chunk_bytes: CHUNK_BYTES,
        })
    }

    /// Parses on `threads` threads (1: in the calling thread only). The output does not
    /// depend on it.
    #[must_use]
    pub fn with_threads(mut self, threads: usize) -> Replay {
        self.threads = threads.max(1);
        self
    }

    /// Hands the parsing threads chunks of about `bytes` bytes (default 1 MiB). Memory is
    /// bounded by about three chunks per thread. The output does not depend on it.
    #[must_use]
    pub fn with_chunk_bytes(mut self, bytes: usize) -> Replay {
        self.chunk_bytes = bytes.max(1);
        self
    }

    /// Reads `input` to its end, line by line, printing findings to `out` as they come.
    ///
    /// `name` is how the input is named in the summary and in errors; `size` (when known)
    /// sizes the progress bar.
    pub fn feed(
        &mut self,
        name: &str,
        mut input: impl Read,
        size: Option<u64>,
        out: &mut dyn Write,
    ) -> Result<(), ReplayError> {
        let progress = self.progress_bar(name, size);
        let read_err = |source| ReplayError::Read {
            path: name.to_owned(),
            source,
        };
        let mut file = FileSummary {
            path: name.to_owned(),
            lines: 0,
            bytes: 0,
        };
        let mut too_long = 0;
        let result = if self.threads <= 1 {
            self.feed_here(
                &mut input,
                &mut file,
                &mut too_long,
                progress.as_ref(),
                &read_err,
                out,
            )
        } else {
            self.feed_parallel(
                &mut input,
                &mut file,
                &mut too_long,
                progress.as_ref(),
                &read_err,
                out,
            )
        };
        if let Some(bar) = progress {
            bar.finish_and_clear();
        }
        self.detect.summary.too_long += too_long;
        self.detect.summary.lines += file.lines;
        self.detect.summary.files.push(file);
        result
    }

    /// One thread: each line is parsed, then detected, in the calling thread.
    fn feed_here(
        &mut self,
        input: &mut dyn Read,
        file: &mut FileSummary,
        too_long: &mut u64,
        progress: Option<&ProgressBar>,
        read_err: &dyn Fn(io::Error) -> ReplayError,
        out: &mut dyn Write,
    ) -> Result<(), ReplayError> {
        let detect = &mut self.detect;
        let ctx = detect.options.context;
        let spare_buffer: std::cell::Cell<Option<Vec<u8>>> = std::cell::Cell::new(None);
        let mut lossy = Vec::new();
        let mut counts = ChunkCounts::default();
        *too_long += read_chunks(
            input,
            self.chunk_bytes,
            file,
            progress,
            read_err,
            &mut || spare_buffer.take().unwrap_or_default(),
            &mut |data| {
                // Each line goes to detection as it is parsed: nothing is collected.
                let result = parse_lines(&data, &ctx, &mut lossy, |line| detect.line(&line, out));
                spare_buffer.set(Some(data));
                counts += result?;
                Ok(())
            },
        )?;
        file.lines += counts.line_count;
        *too_long += counts.too_long;
        detect.summary.blank += counts.blank;
        Ok(())
    }

    /// Several threads: the calling thread reads chunks and writes findings; the workers
    /// parse a chunk each, then wait for their turn to detect it.
    fn feed_parallel(
        &mut self,
        input: &mut dyn Read,
        file: &mut FileSummary,
        too_long: &mut u64,
        progress: Option<&ProgressBar>,
        read_err: &dyn Fn(io::Error) -> ReplayError,
        out: &mut dyn Write,
    ) -> Result<(), ReplayError> {
        let threads = self.threads;
        let chunk_bytes = self.chunk_bytes;
        let ctx = self.detect.options.context;
        let turn = Mutex::new(Turn {
            next: 0,
            detect: &mut self.detect,
            output: Vec::new(),
            counts: ChunkCounts::default(),
            error: None,
        });
        let turn_changed = Condvar::new();
        // At most `threads` chunks wait to be parsed: with one being parsed per worker and
        // the one being read, memory stays at about 2 x threads + 1 chunks.
        let (chunks, queue) = mpsc::sync_channel::<(u64, Vec<u8>)>(threads);
        let queue = Mutex::new(queue);
        let (give_back, recycled) = mpsc::channel::<Vec<u8>>();

        let read_result = std::thread::scope(|scope| {
            for _ in 0..threads {
                let (turn, turn_changed, queue, ctx) = (&turn, &turn_changed, &queue, &ctx);
                let give_back = give_back.clone();
                scope.spawn(move || {
                    let mut spare_lines: Vec<ParsedLine<'static>> = Vec::new();
                    let mut lossy = Vec::new();
                    loop {
                        let next = lock(queue).recv();
                        let Ok((seq, data)) = next else { break };
                        let chunk =
                            parse_chunk(&data, ctx, &mut lossy, std::mem::take(&mut spare_lines));
                        {
                            let mut guard = lock(turn);
                            while guard.next != seq {
                                guard = turn_changed
                                    .wait(guard)
                                    .unwrap_or_else(PoisonError::into_inner);
                            }
                            let t = &mut *guard;
                            t.counts += chunk.counts;
                            if t.error.is_none()
                                && let Err(e) = t.detect.chunk(&chunk.lines, &mut t.output)
                            {
                                t.error = Some(e);
                            }
                            t.next += 1;
                        }
                        turn_changed.notify_all();
                        spare_lines = recycle(chunk.lines);
                        let _ = give_back.send(data);
                    }
                });
            }
            drop(give_back);
            let mut seq = 0u64;
            let result = read_chunks(
                input,
                chunk_bytes,
                file,
                progress,
                read_err,
                &mut || recycled.try_recv().unwrap_or_default(),
                &mut |data| {
                    // A send fails only when every worker is gone (they panicked).
                    chunks.send((seq, data)).map_err(|_| {
                        ReplayError::Write(io::Error::other("a parser thread stopped"))
                    })?;
                    seq += 1;
                    let output = std::mem::take(&mut lock(&turn).output);
                    out.write_all(&output).map_err(ReplayError::Write)
                },
            );
            drop(chunks);
            result.map(|n| *too_long += n)
        });
        let t = turn.into_inner().unwrap_or_else(PoisonError::into_inner);
        out.write_all(&t.output).map_err(ReplayError::Write)?;
        file.lines += t.counts.line_count;
        *too_long += t.counts.too_long;
        t.detect.summary.blank += t.counts.blank;
        if let Some(e) = t.error {
            return Err(e);
        }
        read_result
    }

    fn progress_bar(&self, name: &str, size: Option<u64>) -> Option<ProgressBar> {
        let size = size.filter(|&s| s >= PROGRESS_MIN_BYTES)?;
        if !self.detect.options.progress || !io::stderr().is_terminal() {
            return None;
        }
        let bar = ProgressBar::with_draw_target(Some(size), ProgressDrawTarget::stderr());
        if let Ok(style) = ProgressStyle::with_template(
            "{msg} [{bar:40}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
        ) {
            bar.set_style(style.progress_chars("=> "));
        }
        bar.set_message(name.to_owned());
        Some(bar)
    }

    /// Ends the replay: writes the summary to `out` and returns it.
    pub fn finish(self, out: &mut dyn Write) -> Result<ReplaySummary, ReplayError> {
        self.detect.finish(out)
    }
}

impl Detect {
    /// Detection over one parsed chunk, in order.
    fn chunk(&mut self, lines: &[ParsedLine<'_>], out: &mut dyn Write) -> Result<(), ReplayError> {
        for line in lines {
            self.line(line, out)?;
        }
        Ok(())
    }

    fn line(&mut self, line: &ParsedLine<'_>, out: &mut dyn Write) -> Result<(), ReplayError> {
        let kind = kind_index(&line.event);
        if let Some(c) = self.kind_counts.get_mut(kind) {
            *c += 1;
        }
        if matches!(line.event, Event::Unrecognized)
            && self.summary.unmatched_samples.len() < self.options.show_unmatched
        {
            self.summary
                .unmatched_samples
                .push(String::from_utf8_lossy(line.raw).into_owned());
        }
        match line.timestamp {
            // Lines may go back a little (syslog relays): time never runs backwards here.
            Some(t) => {
                self.now = self.now.max(t);
                let ms = t.as_millis();
                self.summary.first_ms = Some(self.summary.first_ms.map_or(ms, |f| f.min(ms)));
                self.summary.last_ms = Some(self.summary.last_ms.map_or(ms, |l| l.max(ms)));
            }
            None => self.summary.without_timestamp += 1,
        }
        self.engine.expire_due(self.now, &mut self.outcomes);
        self.engine
            .observe(self.now, &line.event, &mut self.outcomes);
        if !self.outcomes.is_empty() {
            self.write_outcomes(out)?;
        }
        Ok(())
    }

    fn write_outcomes(&mut self, out: &mut dyn Write) -> Result<(), ReplayError> {
        let outcomes = std::mem::take(&mut self.outcomes);
        for outcome in &outcomes {
            self.summary.findings += 1;
            match outcome {
                Outcome::Ban(_) => self.summary.bans += 1,
                Outcome::Suppressed(_) => self.summary.suppressed += 1,
            }
            match self.options.format {
                OutputFormat::Json => {
                    serde_json::to_writer(&mut *out, &outcome_json(outcome))
                        .map_err(|e| ReplayError::Write(e.into()))?;
                    out.write_all(b"\n").map_err(ReplayError::Write)?;
                }
                OutputFormat::Table => {
                    if !self.header_written {
                        self.header_written = true;
                        writeln!(
                            out,
                            "{:<20}  {:<22}  {:<20}  {:<24}  DETAIL",
                            "TIME", "DETECTOR", "SOURCE", "OUTCOME"
                        )
                        .map_err(ReplayError::Write)?;
                    }
                    out.write_all(outcome_row(outcome).as_bytes())
                        .map_err(ReplayError::Write)?;
                }
            }
        }
        self.outcomes = outcomes;
        self.outcomes.clear();
        Ok(())
    }

    /// Ends the replay: writes the summary to `out` and returns it.
    pub fn finish(mut self, out: &mut dyn Write) -> Result<ReplaySummary, ReplayError> {
        self.summary.kinds = KINDS
            .iter()
            .zip(self.kind_counts)
            .map(|(k, n)| ((*k).to_owned(), n))
            .collect();
        let unmatched = self.kind_counts.get(4).copied().unwrap_or(0);
        self.summary.unmatched = unmatched;
        self.summary.matched = self.kind_counts.iter().sum::<u64>() - unmatched;
        let text = match self.options.format {
            OutputFormat::Json => {
                let mut v = serde_json::to_value(&self.summary)
                    .map_err(|e| ReplayError::Write(e.into()))?;
                if let Some(map) = v.as_object_mut() {
                    map.insert("type".to_owned(), json!("summary"));
                    map.insert(
                        "kinds".to_owned(),
                        json!(
                            self.summary
                                .kinds
                                .iter()
                                .map(|(k, n)| (k.clone(), json!(n)))
                                .collect::<serde_json::Map<_, _>>()
                        ),
                    );
                }
                format!("{v}\n")
            }
            OutputFormat::Table => summary_text(&self.summary, self.header_written),
        };
        out.write_all(text.as_bytes()).map_err(ReplayError::Write)?;
        out.flush().map_err(ReplayError::Write)?;
        Ok(self.summary)
    }
}

/// An RFC 3339 UTC time (seconds) for a line timestamp in ms since the UNIX epoch.
pub fn format_time(ms: u64) -> String {
    let t = UNIX_EPOCH + Duration::from_millis(ms);
    humantime::format_rfc3339_seconds(t).to_string()
}

fn outcome_json(outcome: &Outcome) -> serde_json::Value {
    let finding = outcome.finding();
    let mut v = json!({
        "type": "finding",
        "time": format_time(finding.time.as_millis()),
        "detector": finding.detector,
        "kind": finding.kind,
        "severity": finding.severity,
        "source": finding.source,
        "evidence": finding.evidence,
    });
    let extra = match outcome {
        Outcome::Ban(d) => json!({
            "outcome": "ban",
            "target": d.target.to_string(),
            "duration_secs": d.duration.as_secs(),
            "offence": d.offence,
            "reason": d.reason,
            "expires": format_time(d.expires.as_millis()),
        }),
        Outcome::Suppressed(s) => json!({
            "outcome": "suppressed",
            "why": why_not(&s.reason),
        }),
    };
    if let (Some(map), serde_json::Value::Object(extra)) = (v.as_object_mut(), extra) {
        map.extend(extra);
    }
    v
}

/// Why a finding was not banned, with times as dates rather than epoch milliseconds.
pub(crate) fn why_not(reason: &Suppression) -> String {
    match reason {
        Suppression::AlreadyBanned { until } => {
            format!("already banned until {}", format_time(until.as_millis()))
        }
        other => other.to_string(),
    }
}

fn outcome_row(outcome: &Outcome) -> String {
    let finding = outcome.finding();
    let (what, detail) = match outcome {
        Outcome::Ban(d) => (
            format!(
                "ban {} {}",
                d.target,
                humantime::format_duration(d.duration)
            ),
            d.reason.clone(),
        ),
        Outcome::Suppressed(s) => ("not banned".to_owned(), why_not(&s.reason)),
    };
    let mut row = String::with_capacity(128);
    let _ = writeln!(
        row,
        "{:<20}  {:<22}  {:<20}  {:<24}  {}",
        format_time(finding.time.as_millis()),
        finding.kind.as_str(),
        finding.source.to_string(),
        what,
        detail
    );
    row
}

fn summary_text(s: &ReplaySummary, had_findings: bool) -> String {
    let mut t = String::new();
    if !had_findings {
        t.push_str("No findings.\n");
    }
    let _ = writeln!(
        t,
        "\nLines: {} lines, {} matched, {} missed",
        s.lines, s.matched, s.unmatched
    );
    for (kind, n) in &s.kinds {
        let _ = writeln!(t, "  {kind:<14} {n:>12}");
    }
    for (label, n) in [
        ("blank", s.blank),
        ("too long", s.too_long),
        ("no timestamp", s.without_timestamp),
    ] {
        if n > 0 {
            let _ = writeln!(t, "  {label:<14} {n:>12}");
        }
    }
    if s.files.len() > 1 {
        t.push_str("Files:\n");
        for f in &s.files {
            let _ = writeln!(t, "  {:>12} lines  {}", f.lines, f.path);
        }
    }
    if let (Some(a), Some(b)) = (s.first_ms, s.last_ms) {
        let _ = writeln!(t, "Time span: {} .. {}", format_time(a), format_time(b));
    }
    let _ = writeln!(
        t,
        "Findings: {} ({} bans, {} not banned)",
        s.findings, s.bans, s.suppressed
    );
    if !s.unmatched_samples.is_empty() {
        t.push_str("Missed lines:\n");
        for line in &s.unmatched_samples {
            let _ = writeln!(t, "  | {line}");
        }
    }
    t
}

/// Parses `YYYY-MM-DD`.
pub fn parse_date(s: &str) -> Result<Date, ReplayError> {
    let bad = || ReplayError::Argument {
        option: "--date",
        reason: format!("`{s}` is not a date of the form YYYY-MM-DD"),
    };
    let mut it = s.splitn(3, '-');
    let y: i32 = it.next().and_then(|v| v.parse().ok()).ok_or_else(bad)?;
    let m: u8 = it.next().and_then(|v| v.parse().ok()).ok_or_else(bad)?;
    let d: u8 = it.next().and_then(|v| v.parse().ok()).ok_or_else(bad)?;
    if !(1970..=9999).contains(&y) || !(1..=12).contains(&m) || !(1..=31).contains(&d) {
        return Err(bad());
    }
    Ok(Date::new(y, m, d))
}

/// Parses a UTC offset: `Z`, `+01:00`, `-0530`, `+2`, or seconds east of UTC (`3600`).
pub fn parse_utc_offset(s: &str) -> Result<i32, ReplayError> {
    let bad = || ReplayError::Argument {
        option: "--utc-offset",
        reason: format!("`{s}` is not an offset such as Z, +01:00, -0530 or 3600 (seconds)"),
    };
    let s = s.trim();
    if s.eq_ignore_ascii_case("z") || s.is_empty() {
        return Ok(0);
    }
    let (sign, rest) = match s.as_bytes().first() {
        Some(b'+') => (1, s.get(1..).unwrap_or_default()),
        Some(b'-') => (-1, s.get(1..).unwrap_or_default()),
        _ => {
            let secs: i32 = s.parse().map_err(|_| bad())?;
            return (secs.abs() <= 86_400).then_some(secs).ok_or_else(bad);
        }
    };
    let digits: String = rest.chars().filter(|c| *c != ':').collect();
    if digits.is_empty() || digits.len() > 4 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    let (h, m) = if digits.len() <= 2 {
        (digits.parse::<i32>().map_err(|_| bad())?, 0)
    } else {
        let (h, m) = digits.split_at(digits.len() - 2);
        (
            h.parse::<i32>().map_err(|_| bad())?,
            m.parse::<i32>().map_err(|_| bad())?,
        )
    };
    if h > 18 || m > 59 {
        return Err(bad());
    }
    Ok(sign * (h * 3600 + m * 60))
}

/// Today's UTC date (the default for `--date`).
pub fn today_utc() -> Date {
    let ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
    Date::of(Timestamp::from_millis(ms))
}

/// `mtids replay` as the binary runs it: detection settings from the configuration's
/// `[detection]` table, output to stdout.
pub fn execute(config: &DetectionConfig, args: &ReplayArgs) -> Result<(), CliError> {
    let stdout = io::stdout();
    let mut out = io::BufWriter::with_capacity(64 * 1024, stdout.lock());
    run(config, args, &mut out)
        .map(|_| ())
        .map_err(|e| match e {
            ReplayError::Read { path, source } => CliError::Io {
                context: format!("reading {path}"),
                source,
            },
            ReplayError::Write(source) => CliError::Io {
                context: "writing the replay output".to_owned(),
                source,
            },
            other => CliError::Usage(other.to_string()),
        })
}

/// Runs `mtids replay` with `args` and the detection settings `config`, writing to `out`;
/// returns the summary.
///
/// Files that cannot be read are reported on stderr and skipped (the others are still
/// replayed); the first such error is returned after the summary is written.
pub fn run(
    config: &DetectionConfig,
    args: &ReplayArgs,
    out: &mut dyn Write,
) -> Result<ReplaySummary, ReplayError> {
    let options = ReplayOptions {
        context: args.time.context()?,
        format: if args.json {
            OutputFormat::Json
        } else {
            OutputFormat::Table
        },
        show_unmatched: args.show_unmatched,
        progress: !args.no_progress,
    };
    // When no input can be opened at all, say so once, before any report (no empty report
    // followed by errors); with some readable, those are replayed and the others reported.
    if args.files.iter().all(|p| p.as_os_str() != "-") {
        let mut first_failure = None;
        let mut readable = false;
        for path in &args.files {
            match File::open(path) {
                Ok(_) => readable = true,
                Err(source) => {
                    first_failure.get_or_insert(ReplayError::Read {
                        path: path.display().to_string(),
                        source,
                    });
                }
            }
        }
        if let (false, Some(e)) = (readable, first_failure) {
            return Err(e);
        }
    }
    let mut replay =
        Replay::new(config, options)?.with_threads(args.threads.unwrap_or_else(default_threads));
    let started = Instant::now();
    let mut first_error = None;
    for path in &args.files {
        let result = if path.as_os_str() == "-" {
            replay.feed("-", io::stdin().lock(), None, out)
        } else {
            let name = path.display().to_string();
            match File::open(path) {
                Ok(f) => {
                    let size = f.metadata().ok().map(|m| m.len());
                    replay.feed(&name, f, size, out)
                }
                Err(source) => Err(ReplayError::Read { path: name, source }),
            }
        };
        match result {
            Ok(()) => {}
            Err(e @ ReplayError::Read { .. }) => {
                eprintln!("mtids replay: {e}");
                first_error.get_or_insert(e);
            }
            Err(e) => return Err(e),
        }
    }
    let summary = replay.finish(out)?;
    let secs = started.elapsed().as_secs_f64();
    if !args.json && secs > 0.0 {
        eprintln!(
            "replayed {} lines in {:.3} s ({:.0} lines/s)",
            summary.lines,
            secs,
            summary.lines as f64 / secs
        );
    }
    match first_error {
        Some(e) => Err(e),
        None => Ok(summary),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets() {
        assert_eq!(parse_utc_offset("Z").unwrap(), 0);
        assert_eq!(parse_utc_offset("+01:00").unwrap(), 3600);
        assert_eq!(parse_utc_offset("-0530").unwrap(), -(5 * 3600 + 30 * 60));
        assert_eq!(parse_utc_offset("+2").unwrap(), 7200);
        assert_eq!(parse_utc_offset("3600").unwrap(), 3600);
        assert!(parse_utc_offset("+25:00").is_err());
        assert!(parse_utc_offset("east").is_err());
    }

    #[test]
    fn dates() {
        assert_eq!(parse_date("2026-11-21").unwrap(), Date::new(2026, 11, 21));
        assert!(parse_date("2026-13-01").is_err());
        assert!(parse_date("21.11.2026").is_err());
    }

    #[test]
    fn time_format() {
        assert_eq!(format_time(1_000), "1970-01-01T00:00:01Z");
    }
}
