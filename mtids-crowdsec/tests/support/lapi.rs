//! The test LAPI that `mtids-crowdsec/tests/lapi.sh` starts, shared by mtids-crowdsec's
//! tests (`tests/lapi.rs`) and the end-to-end tests (`tests/tests/crowdsec.rs`), which
//! include this file by path.
//!
//! Tests find the LAPI through the file the script writes
//! (`/var/lib/mtids-test-lapi/lapi.env`, or the path in `MTIDS_TEST_LAPI_ENV`) and fail,
//! not skip, when it is missing. Tests that stop the LAPI or measure take [`LAPI_UP`] for
//! writing ([`lapi_alone`]); the others for reading ([`lapi_up`]).

// Each includer uses a part of it.
#![allow(dead_code)]

use std::collections::HashMap;
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, SystemTime};

use tokio::sync::RwLock;

/// Held for reading by tests that need the LAPI up, for writing by those that stop it.
pub static LAPI_UP: RwLock<()> = RwLock::const_new(());

pub const HOW_TO_START: &str = "no CrowdSec LAPI for the CrowdSec tests: run \
     `bash mtids-crowdsec/tests/lapi.sh` as root (it installs Debian's crowdsec and starts \
     its LAPI on 127.0.0.1:18980, offline); .ci/run does this before the tests";

pub struct Lapi {
    /// `http://HOST:PORT`.
    pub url: String,
    pub cscli_config: String,
}

impl Lapi {
    /// `HOST:PORT` of the LAPI.
    pub fn addr(&self) -> &str {
        self.url.trim_start_matches("http://").trim_end_matches('/')
    }
}

pub fn lapi() -> &'static Lapi {
    static LAPI: OnceLock<Lapi> = OnceLock::new();
    LAPI.get_or_init(|| {
        let path = std::env::var("MTIDS_TEST_LAPI_ENV")
            .unwrap_or_else(|_| "/var/lib/mtids-test-lapi/lapi.env".to_owned());
        let text = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("{HOW_TO_START} (cannot read {path}: {e})"));
        let vars: HashMap<&str, &str> = text.lines().filter_map(|l| l.split_once('=')).collect();
        let get = |k: &str| {
            vars.get(k)
                .unwrap_or_else(|| panic!("{HOW_TO_START} ({path} has no {k})"))
                .to_string()
        };
        Lapi {
            url: get("MTIDS_TEST_LAPI_URL"),
            cscli_config: get("MTIDS_TEST_LAPI_CSCLI_CONFIG"),
        }
    })
}

async fn answering<G>(guard: G) -> G {
    let addr = lapi().addr();
    if tokio::net::TcpStream::connect(addr).await.is_err() {
        panic!("{HOW_TO_START} (nothing answers on {addr})");
    }
    guard
}

/// Waits for the tests that stop the LAPI to end and checks that it answers.
pub async fn lapi_up() -> tokio::sync::RwLockReadGuard<'static, ()> {
    answering(LAPI_UP.read().await).await
}

/// Like [`lapi_up`], but alone: for the outage tests, and for measurements (a bulk import
/// loads the 2-core machine enough to slow every other test).
pub async fn lapi_alone() -> tokio::sync::RwLockWriteGuard<'static, ()> {
    answering(LAPI_UP.write().await).await
}

/// Runs `lapi.sh <action>` (`start`, `stop`).
pub fn lapi_script(action: &str) {
    let script = if env!("CARGO_PKG_NAME") == "mtids-crowdsec" {
        concat!(env!("CARGO_MANIFEST_DIR"), "/tests/lapi.sh")
    } else {
        concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../mtids-crowdsec/tests/lapi.sh"
        )
    };
    let status = Command::new("bash")
        .arg(script)
        .arg(action)
        .status()
        .unwrap();
    assert!(status.success(), "lapi.sh {action} failed");
}

/// Starts the LAPI again when dropped, so a failing outage test does not leave it stopped.
pub struct StartOnDrop;

impl Drop for StartOnDrop {
    fn drop(&mut self) {
        lapi_script("start");
    }
}

/// Runs cscli, one at a time: `cscli bouncers add` and `machines add` write the SQLite
/// file directly, beside the LAPI, and SQLite takes one writer at a time. A write that
/// still meets "database is locked" is tried again.
pub fn cscli(args: &[&str]) -> String {
    static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _turn = ONE_AT_A_TIME
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let mut attempt = 0;
    loop {
        attempt += 1;
        let out = Command::new("cscli")
            .arg("-c")
            .arg(&lapi().cscli_config)
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("{HOW_TO_START} (cannot run cscli: {e})"));
        let stderr = String::from_utf8_lossy(&out.stderr);
        if !out.status.success() && stderr.contains("database is locked") && attempt < 10 {
            std::thread::sleep(Duration::from_millis(300));
            continue;
        }
        assert!(out.status.success(), "cscli {args:?} failed: {stderr}");
        return String::from_utf8(out.stdout).unwrap();
    }
}

/// A name no earlier run used.
pub fn unique(prefix: &str) -> String {
    let nanos = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("{prefix}-{}-{nanos}", std::process::id())
}
