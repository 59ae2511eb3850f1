//! The client side of the control socket (see [`crate::daemon::control`]): `mtids
//! status`, `mtids reload`, `mtids alert test`, and the requests `mtids bans` sends when
//! a daemon runs.

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::Path;
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixStream;

use crate::CliError;
use crate::config::Config;
use crate::daemon::control::{MAX_REQUEST, Request};

/// How long a request may take (a manual ban waits up to 10 s per router).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(120);

/// Options of `mtids status`.
#[derive(Debug, Clone, clap::Args)]
#[non_exhaustive]
pub struct StatusArgs {
    /// The daemon's answer as one JSON object.
    #[arg(long)]
    pub json: bool,
}

/// Options of `mtids alert`.
#[derive(Debug, Clone, clap::Args)]
#[non_exhaustive]
pub struct AlertArgs {
    /// What to do.
    #[command(subcommand)]
    pub action: AlertAction,
}

/// The `mtids alert` subcommands.
#[derive(Debug, Clone, clap::Subcommand)]
#[non_exhaustive]
pub enum AlertAction {
    /// Send one test alert to every configured destination and show each answer
    /// (through the running daemon if there is one, else directly).
    Test,
}

/// Sends one request to the daemon serving `socket`. `Ok(None)`: no daemon answers
/// there (no socket file, or nobody listening on it).
///
/// # Errors
/// The socket exists but the exchange failed, or the answer is not JSON.
pub async fn request(socket: &Path, request: &Request) -> Result<Option<Value>, CliError> {
    let stream = match UnixStream::connect(socket).await {
        Ok(s) => s,
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused
            ) =>
        {
            return Ok(None);
        }
        Err(e) => {
            return Err(CliError::io(
                format!(
                    "connecting to the daemon's control socket {}",
                    socket.display()
                ),
                e,
            ));
        }
    };
    let exchange = async {
        let (read, mut write) = stream.into_split();
        let mut line = serde_json::to_string(request).unwrap_or_default();
        line.push('\n');
        write.write_all(line.as_bytes()).await?;
        let mut answer = Vec::new();
        BufReader::new(read)
            .take(MAX_REQUEST * 16)
            .read_until(b'\n', &mut answer)
            .await?;
        Ok::<_, std::io::Error>(answer)
    };
    let answer = tokio::time::timeout(REQUEST_TIMEOUT, exchange)
        .await
        .map_err(|_| {
            CliError::Daemon(format!(
                "the daemon on {} did not answer within {}s",
                socket.display(),
                REQUEST_TIMEOUT.as_secs()
            ))
        })?
        .map_err(|e| CliError::io(format!("talking to the daemon on {}", socket.display()), e))?;
    let value: Value = serde_json::from_slice(&answer).map_err(|e| {
        CliError::Daemon(format!(
            "the daemon on {} answered something that is not JSON: {e}",
            socket.display()
        ))
    })?;
    Ok(Some(value))
}

/// A request that needs the daemon: its answer, or "not running" as an error (exit 1).
async fn ask(config: &Config, req: &Request) -> Result<Value, CliError> {
    let socket = config.control_socket();
    match request(&socket, req).await? {
        Some(answer) => Ok(answer),
        None => Err(not_running(&socket)),
    }
}

fn not_running(socket: &Path) -> CliError {
    CliError::Daemon(format!(
        "mtids is not running: no daemon answers on {} (start it with `mtids run`; \
         the socket is `[control] socket`, default the ledger path with `.sock` added)",
        socket.display()
    ))
}

/// The error of a `{"ok": false}` answer, if it is one.
pub fn refused(answer: &Value) -> Option<String> {
    (answer.get("ok") != Some(&Value::Bool(true))).then(|| {
        answer
            .get("error")
            .and_then(Value::as_str)
            .unwrap_or("the daemon refused the request")
            .to_owned()
    })
}

fn text(v: &Value) -> String {
    match v {
        Value::Null => "-".to_owned(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// The status answer as a table.
pub fn render_status(s: &Value, out: &mut String) {
    let _ = writeln!(
        out,
        "mtids running (pid {}, up {}){}",
        text(&s["pid"]),
        humantime::format_duration(Duration::from_secs(s["uptime_secs"].as_u64().unwrap_or(0))),
        if s["dry_run"] == Value::Bool(true) {
            ", DRY RUN: nothing is changed on the routers"
        } else {
            ""
        }
    );
    let _ = writeln!(out, "\nROUTERS");
    let _ = writeln!(
        out,
        "  {:<16} {:<10} {:<21} {:<10} {:<21} {:<8} {:<6} LAST ERROR",
        "NAME", "STATE", "SINCE", "RECONNECTS", "LAST EVENT", "LAG", "BANS"
    );
    for r in s["routers"].as_array().into_iter().flatten() {
        let state = if r["connected"] == Value::Bool(true) {
            "connected"
        } else if r["connections"].as_u64().unwrap_or(0) == 0 {
            "never"
        } else {
            "DOWN"
        };
        let lag = r["lag_ms"]
            .as_u64()
            .map_or("-".to_owned(), |ms| format!("{:.1}s", ms as f64 / 1000.0));
        let _ = writeln!(
            out,
            "  {:<16} {:<10} {:<21} {:<10} {:<21} {:<8} {:<6} {}",
            text(&r["name"]),
            state,
            text(&r["since"]),
            text(&r["reconnects"]),
            text(&r["last_event"]),
            lag,
            text(&r["bans_applied"]),
            text(&r["last_error"])
        );
    }
    let c = &s["counters"];
    let _ = writeln!(
        out,
        "\nCOUNTERS\n  events {}  findings {}  bans {}  applied {}  failed {}  restored {}",
        text(&c["events"]),
        text(&c["findings"]),
        text(&c["bans"]),
        text(&c["blocks_applied"]),
        text(&c["blocks_failed"]),
        text(&c["blocks_restored"])
    );
    match s["active_bans"].as_u64() {
        Some(n) => {
            let _ = writeln!(
                out,
                "\nACTIVE BANS\n  {n} ban(s) on {} address(es)",
                text(&s["active_addresses"])
            );
        }
        None => {
            let _ = writeln!(out, "\nACTIVE BANS\n  - (dry run: no ledger)");
        }
    }
    let _ = writeln!(out, "\nALERTS (queue {})", text(&s["alert_queue"]));
    let destinations = s["alerts"].as_array().cloned().unwrap_or_default();
    if destinations.is_empty() {
        let _ = writeln!(out, "  no destination configured");
    }
    for d in &destinations {
        let _ = writeln!(
            out,
            "  {:<16} queue {}  sent {}  failed {}  dropped {}{}",
            text(&d["name"]),
            text(&d["pending"]),
            text(&d["sent"]),
            text(&d["failed"]),
            text(&d["dropped"]),
            if d["hung"] == Value::Bool(true) {
                "  HUNG"
            } else {
                ""
            }
        );
    }
    let l = &s["ledger"];
    if l.is_null() {
        let _ = writeln!(out, "\nLEDGER\n  none (dry run)");
    } else {
        let state = if l["failing_since"].is_null() {
            "ok".to_owned()
        } else {
            format!(
                "FAILING since {}: {}",
                text(&l["failing_since"]),
                text(&l["last_error"])
            )
        };
        let _ = writeln!(
            out,
            "\nLEDGER {}\n  {state}  backlog {}  write errors {}  dropped {}",
            text(&l["path"]),
            text(&l["backlog"]),
            text(&l["errors_total"]),
            text(&l["dropped"])
        );
    }
}

fn print(out: &str) {
    let _ = std::io::stdout().lock().write_all(out.as_bytes());
}

/// `mtids status`.
///
/// # Errors
/// No daemon runs (exit 1), or it could not be asked.
pub async fn status(config: &Config, args: &StatusArgs) -> Result<(), CliError> {
    let answer = ask(config, &Request::Status).await?;
    if let Some(e) = refused(&answer) {
        return Err(CliError::Daemon(format!("status: {e}")));
    }
    let mut out = String::new();
    if args.json {
        let _ = writeln!(out, "{answer}");
    } else {
        render_status(&answer, &mut out);
    }
    print(&out);
    Ok(())
}

/// `mtids reload`: the running daemon re-reads its configuration.
///
/// # Errors
/// No daemon runs, or the new configuration was refused (the daemon keeps the old one).
pub async fn reload(config: &Config) -> Result<(), CliError> {
    let answer = ask(config, &Request::Reload).await?;
    if let Some(e) = refused(&answer) {
        return Err(CliError::Daemon(format!("reload refused: {e}")));
    }
    let mut out = String::new();
    let list = |v: &Value| -> String {
        let items: Vec<String> = v.as_array().into_iter().flatten().map(text).collect();
        if items.is_empty() {
            "nothing".to_owned()
        } else {
            items.join(", ")
        }
    };
    let _ = writeln!(out, "reloaded; applied now: {}", list(&answer["applied"]));
    for note in answer["notes"].as_array().into_iter().flatten() {
        let _ = writeln!(out, "  {}", text(note));
    }
    let restart = list(&answer["restart_needed"]);
    if restart != "nothing" {
        let _ = writeln!(
            out,
            "changed but only applied after a restart (`systemctl restart mtids`): {restart}"
        );
    }
    print(&out);
    Ok(())
}

/// `mtids alert test`.
///
/// # Errors
/// A destination failed (each result is printed first).
pub async fn alert(config: &Config, args: &AlertArgs) -> Result<(), CliError> {
    match args.action {
        AlertAction::Test => {}
    }
    let socket = config.control_socket();
    let (results, via) = match request(&socket, &Request::AlertTest).await? {
        Some(answer) => {
            if let Some(e) = refused(&answer) {
                return Err(CliError::Daemon(format!("alert test: {e}")));
            }
            (
                answer["results"].as_array().cloned().unwrap_or_default(),
                "through the running daemon",
            )
        }
        None => (
            crate::daemon::control::alert_test(&config.alert).await,
            "directly (no daemon running)",
        ),
    };
    let mut out = String::new();
    let _ = writeln!(out, "test alert sent {via}:");
    if results.is_empty() {
        let _ = writeln!(out, "  no alert destination configured ([alert] section)");
    }
    let mut failed = 0;
    for r in &results {
        let ok = r["ok"] == Value::Bool(true);
        if !ok {
            failed += 1;
        }
        let _ = writeln!(
            out,
            "  {:<16} {}  {}",
            text(&r["destination"]),
            if ok { "OK    " } else { "FAILED" },
            text(&r["detail"])
        );
    }
    print(&out);
    if failed > 0 {
        return Err(CliError::Daemon(format!(
            "alert test: {failed} destination(s) failed; see above"
        )));
    }
    Ok(())
}
