//! A client for CrowdSec's Local API (LAPI), so that mtids can be a CrowdSec bouncer and
//! watcher.
//!
//! - [`Bouncer`]: pulls ban decisions with a bouncer API key (`GET /v1/decisions/stream`,
//!   a snapshot then deltas) and turns them into typed, validated [`Ban`]s: scope `Ip` is
//!   one address, scope `Range` a CIDR prefix ([`mtids_detect::IpPrefix`]); the remaining
//!   time comes from the decision's Go duration ([`parse_go_duration`]). Other types and
//!   scopes and invalid values are skipped and counted ([`SkippedDecisions`]), never a
//!   panic; a malformed answer is an error for that pull only. A cap (`max_pulled_bans`)
//!   bounds what is held.
//! - [`Watcher`]: pushes mtids' own bans as alerts with one decision each (`POST
//!   /v1/alerts`, origin `mtids`, scenario `mtids/<detector>`, the evidence as events),
//!   with JWT login and renewal, retries with backoff and a bounded queue.
//!   [`Watcher::submit`] never waits.
//! - [`CrowdsecConfig`]: the `[crowdsec]` section of mtids' configuration.
//!
//! # Loops between instances
//!
//! Several mtids instances can share one LAPI: each pushes what it detected and pulls
//! what the others (and CrowdSec) decided. Bans with origin `mtids` come back to the
//! instance that pushed them too. Give the [`Watcher`]'s [`OwnBans`] to the [`Bouncer`]:
//! a pulled ban whose origin is `mtids` and whose target this process submitted is then
//! marked [`Ban::pushed_by_us`], and the integrator skips it (it already holds that ban).
//! Pulled bans are never submitted to the watcher, so nothing pulled is pushed again.
//! After a restart the in-memory record is empty: the integrator's ledger tells its own bans.
//!
//! The crate depends on no other mtids crate but `mtids-detect` (for `IpPrefix`) and
//! `mtids-http`, the HTTP client policy it shares with mtids-alert ([`Secret`], rustls with
//! the ring provider and no redirects; no OpenSSL). It reads no files and no environment itself: [`CrowdsecConfig::resolve`]
//! takes the functions to do so.
//!
//! Tested against Debian's `crowdsec` 1.4.6 on loopback (`tests/lapi.sh`, `tests/lapi.rs`).
//!
//! # Example
//!
//! ```no_run
//! use std::time::{Duration, SystemTime};
//! use mtids_crowdsec::{
//!     BanReport, Bouncer, CrowdsecConfig, Evidence, OwnBans, Watcher, WatcherConfig,
//! };
//!
//! # async fn run() -> Result<(), mtids_crowdsec::CrowdsecError> {
//! let config: CrowdsecConfig = toml::from_str(r#"
//!     url = "http://127.0.0.1:8080"
//!     bouncer_key_env = "CROWDSEC_BOUNCER_KEY"
//!     machine_id = "mtids-edge-1"
//!     machine_password_file = "/etc/mtids/crowdsec-machine.password"
//! "#).expect("valid TOML");
//! let config = config.resolve(|name| std::env::var(name).ok(), |path| std::fs::read_to_string(path))?;
//!
//! let own = OwnBans::new();
//! let watcher = Watcher::from_config(&config, WatcherConfig::default(), own.clone())?;
//! let mut bouncer = Bouncer::from_config(&config, own)?.expect("a bouncer key is configured");
//!
//! // Push one of mtids' bans: returns at once.
//! if let Some(watcher) = &watcher {
//!     let now = SystemTime::now();
//!     watcher.submit(
//!         BanReport::new("198.51.100.7".parse().expect("an address"), Duration::from_secs(3600),
//!             "brute_force", "12 failed logins for admin via ssh", now)
//!         .with_event(Evidence::new(now, vec![("user".into(), "admin".into())])),
//!     );
//! }
//!
//! // Pull: the snapshot first, then the changes every pull_interval.
//! loop {
//!     let update = bouncer.pull().await?;
//!     for ban in update.deleted { println!("unban {}", ban.target); }
//!     for ban in update.new.iter().filter(|b| !b.pushed_by_us) {
//!         println!("ban {} for {:?} ({}, {})", ban.target, ban.remaining, ban.origin, ban.scenario);
//!     }
//!     tokio::time::sleep(config.pull_interval).await;
//! }
//! # }
//! ```

mod bouncer;
mod config;
mod decision;
mod error;
mod go_duration;
mod http;
mod own;
mod watcher;

pub use bouncer::{Bouncer, MAX_STREAM_BODY};
pub use config::{
    CrowdsecConfig, DEFAULT_MAX_PULLED_BANS, MachineCredentials, ResolvedConfig, StreamFilters,
};
pub use decision::{Ban, BanScope, MTIDS_ORIGIN, SkippedDecisions, StreamUpdate};
pub use error::CrowdsecError;
pub use go_duration::{GoDuration, GoDurationError, format_go_duration, parse_go_duration};
pub use mtids_http::Secret;
pub use own::OwnBans;
pub use watcher::{BanReport, Evidence, Submitted, Watcher, WatcherConfig, WatcherStats};

/// The URL type of [`ResolvedConfig::url`] and the constructors (reqwest's).
pub use reqwest::Url;
