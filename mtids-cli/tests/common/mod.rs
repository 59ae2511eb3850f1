//! Running the real `mtids run` binary in tests: started with JSON logs on stderr, whose
//! lines arrive on a channel, and killed if the test ends before it stopped it.

#![allow(dead_code, clippy::unwrap_used)]

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;

/// Kills the daemon if the test fails before it stopped it.
pub struct Daemon(pub Child);

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `mtids --config CONFIG run` in `dir`; its stderr lines arrive on the receiver.
pub fn start(config: &Path, dir: &Path) -> (Daemon, mpsc::Receiver<String>) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_mtids"))
        .arg("--config")
        .arg(config)
        .arg("run")
        .env_remove("MTIDS_CONFIG")
        .env_remove("RUST_LOG")
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    (Daemon(child), rx)
}

/// A JSON log line's `message` and the whole object.
pub fn message(line: &str) -> Option<(String, serde_json::Value)> {
    let v: serde_json::Value = serde_json::from_str(line).ok()?;
    Some((v.get("message")?.as_str()?.to_owned(), v))
}
