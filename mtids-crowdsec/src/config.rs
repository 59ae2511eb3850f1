//! The `[crowdsec]` section of mtids' configuration.

use std::path::{Path, PathBuf};
use std::time::Duration;

use reqwest::Url;
use serde::{Deserialize, Deserializer};

use crate::Secret;
use crate::error::CrowdsecError;

/// Default `max_pulled_bans`: enough for CrowdSec's community blocklist, small enough that a
/// flood of decisions cannot take the process's memory.
pub const DEFAULT_MAX_PULLED_BANS: usize = 50_000;

/// The `[crowdsec]` section, as written (secrets are named, not contained).
///
/// ```toml
/// [crowdsec]
/// url = "http://127.0.0.1:8080"
/// bouncer_key_file = "/etc/mtids/crowdsec-bouncer.key"   # or bouncer_key_env = "VAR"
/// machine_id = "mtids-edge-1"
/// machine_password_env = "MTIDS_CROWDSEC_PASSWORD"       # or machine_password_file
/// pull_interval = "2s"
/// origins = ["crowdsec", "cscli"]                         # empty: every origin
/// scenarios = ["ssh"]                                     # empty: every scenario
/// max_pulled_bans = 50000
/// # push = true  (default: on when machine credentials are given)
/// ```
///
/// The key and the password are read by [`CrowdsecConfig::resolve`] through functions the
/// caller passes (the CLI owns the environment and the file system).
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct CrowdsecConfig {
    /// The LAPI's base URL, e.g. `http://127.0.0.1:8080` (http or https).
    pub url: String,
    /// Environment variable holding the bouncer API key (`cscli bouncers add NAME`).
    #[serde(default)]
    pub bouncer_key_env: Option<String>,
    /// File whose first line is the bouncer API key (surrounding whitespace is ignored).
    #[serde(default)]
    pub bouncer_key_file: Option<PathBuf>,
    /// The watcher's machine name (`cscli machines add NAME --password ...`).
    #[serde(default)]
    pub machine_id: Option<String>,
    /// Environment variable holding the machine password.
    #[serde(default)]
    pub machine_password_env: Option<String>,
    /// File whose first line is the machine password.
    #[serde(default)]
    pub machine_password_file: Option<PathBuf>,
    /// How often the bouncer asks for new and deleted decisions (`"2s"`, `"500ms"`).
    #[serde(
        default = "default_pull_interval",
        deserialize_with = "duration_str::deserialize"
    )]
    pub pull_interval: Duration,
    /// Push mtids' own bans as alerts; default: on when machine credentials are given.
    #[serde(default)]
    pub push: Option<bool>,
    /// Pull only decisions of these origins (`crowdsec`, `cscli`, `CAPI`, `lists`, ...).
    #[serde(default)]
    pub origins: Vec<String>,
    /// Pull only decisions whose scenario contains one of these words.
    #[serde(default)]
    pub scenarios: Vec<String>,
    /// At most this many pulled bans are held at once; the rest are counted and logged.
    #[serde(default = "default_max_pulled_bans")]
    pub max_pulled_bans: usize,
    /// Apply pulled bans on the routers of this group only (the integrator's router
    /// groups; this crate does not check the name). `None`: every router.
    #[serde(default)]
    pub group: Option<String>,
}

fn default_pull_interval() -> Duration {
    Duration::from_secs(2)
}

fn default_max_pulled_bans() -> usize {
    DEFAULT_MAX_PULLED_BANS
}

impl CrowdsecConfig {
    /// A configuration for `url` with every other key at its default (no credentials).
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            bouncer_key_env: None,
            bouncer_key_file: None,
            machine_id: None,
            machine_password_env: None,
            machine_password_file: None,
            pull_interval: default_pull_interval(),
            push: None,
            origins: Vec::new(),
            scenarios: Vec::new(),
            max_pulled_bans: DEFAULT_MAX_PULLED_BANS,
            group: None,
        }
    }

    /// Checks the keys and reads the secrets they name.
    ///
    /// `env` looks up an environment variable, `read_file` reads a file; both are the
    /// caller's so that this crate does no I/O of its own. Errors name the key.
    pub fn resolve(
        &self,
        env: impl Fn(&str) -> Option<String>,
        read_file: impl Fn(&Path) -> std::io::Result<String>,
    ) -> Result<ResolvedConfig, CrowdsecError> {
        let url = parse_url(&self.url)?;
        if self.pull_interval < Duration::from_millis(100) {
            return Err(invalid(
                "pull_interval",
                "must be at least 100ms".to_owned(),
            ));
        }
        if self.max_pulled_bans == 0 {
            return Err(invalid(
                "max_pulled_bans",
                "must be at least 1 (leave out the bouncer key to pull nothing)".to_owned(),
            ));
        }
        for (field, words) in [("origins", &self.origins), ("scenarios", &self.scenarios)] {
            if let Some(bad) = words
                .iter()
                .find(|w| w.is_empty() || w.contains(',') || w.chars().any(char::is_control))
            {
                return Err(invalid(
                    field,
                    format!(
                        "{bad:?} is not a usable filter word (empty, comma or control character)"
                    ),
                ));
            }
        }
        let bouncer_key = read_secret(
            ("bouncer_key_env", self.bouncer_key_env.as_deref()),
            ("bouncer_key_file", self.bouncer_key_file.as_deref()),
            &env,
            &read_file,
        )?;
        let password = read_secret(
            ("machine_password_env", self.machine_password_env.as_deref()),
            (
                "machine_password_file",
                self.machine_password_file.as_deref(),
            ),
            &env,
            &read_file,
        )?;
        let machine = match (&self.machine_id, password) {
            (Some(id), Some(password)) => {
                if id.is_empty() || id.len() > 255 || id.chars().any(char::is_control) {
                    return Err(invalid("machine_id", "must be a non-empty name".to_owned()));
                }
                Some(MachineCredentials {
                    machine_id: id.clone(),
                    password,
                })
            }
            (None, None) => None,
            (Some(_), None) => {
                return Err(invalid(
                    "machine_id",
                    "needs machine_password_env or machine_password_file".to_owned(),
                ));
            }
            (None, Some(_)) => {
                return Err(invalid(
                    "machine_id",
                    "missing: a machine password is given but no machine_id".to_owned(),
                ));
            }
        };
        let push = match (self.push, &machine) {
            (Some(true), None) => {
                return Err(invalid(
                    "push",
                    "needs machine_id and machine_password_env or machine_password_file".to_owned(),
                ));
            }
            (Some(push), _) => push,
            (None, machine) => machine.is_some(),
        };
        if bouncer_key.is_none() && !push {
            return Err(invalid(
                "bouncer_key_env",
                "neither a bouncer key (to pull) nor machine credentials (to push): nothing to do"
                    .to_owned(),
            ));
        }
        Ok(ResolvedConfig {
            url,
            bouncer_key,
            machine,
            push,
            pull_interval: self.pull_interval,
            filters: StreamFilters {
                origins: self.origins.clone(),
                scenarios_containing: self.scenarios.clone(),
            },
            max_pulled_bans: self.max_pulled_bans,
        })
    }
}

/// A checked configuration with its secrets read.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct ResolvedConfig {
    /// The LAPI's base URL.
    pub url: Url,
    /// The bouncer key; `None`: do not pull.
    pub bouncer_key: Option<Secret>,
    /// The watcher's login; `None`: cannot push.
    pub machine: Option<MachineCredentials>,
    /// Whether to push mtids' own bans.
    pub push: bool,
    /// Time between two pulls.
    pub pull_interval: Duration,
    /// What to ask the stream for.
    pub filters: StreamFilters,
    /// Cap on pulled bans held at once.
    pub max_pulled_bans: usize,
}

/// A watcher's login.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct MachineCredentials {
    /// The machine name.
    pub machine_id: String,
    /// Its password.
    pub password: Secret,
}

impl MachineCredentials {
    /// A login for `machine_id`.
    pub fn new(machine_id: impl Into<String>, password: impl Into<Secret>) -> Self {
        Self {
            machine_id: machine_id.into(),
            password: password.into(),
        }
    }
}

/// Query filters of the decision stream (sent as `origins=` and `scenarios_containing=`;
/// the scopes are always `ip,range`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct StreamFilters {
    /// Only these origins; empty: all.
    pub origins: Vec<String>,
    /// Only scenarios containing one of these words; empty: all.
    pub scenarios_containing: Vec<String>,
}

impl StreamFilters {
    /// Filters with these origins and scenario words.
    pub fn new(origins: Vec<String>, scenarios_containing: Vec<String>) -> Self {
        Self {
            origins,
            scenarios_containing,
        }
    }
}

fn invalid(field: &'static str, reason: String) -> CrowdsecError {
    CrowdsecError::InvalidConfig { field, reason }
}

/// Parses and checks the LAPI URL; the error never repeats it (it may hold credentials).
pub(crate) fn parse_url(text: &str) -> Result<Url, CrowdsecError> {
    let url = Url::parse(text).map_err(|e| invalid("url", format!("not a valid URL ({e})")))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(invalid(
            "url",
            format!("scheme must be http or https, not {:?}", url.scheme()),
        ));
    }
    if url.host().is_none() {
        return Err(invalid("url", "the URL has no host".to_owned()));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(invalid(
            "url",
            "give the LAPI's base URL, without query or fragment".to_owned(),
        ));
    }
    Ok(url)
}

fn read_secret(
    (env_key, env_name): (&'static str, Option<&str>),
    (file_key, file_path): (&'static str, Option<&Path>),
    env: &impl Fn(&str) -> Option<String>,
    read_file: &impl Fn(&Path) -> std::io::Result<String>,
) -> Result<Option<Secret>, CrowdsecError> {
    let value = match (env_name, file_path) {
        (Some(_), Some(_)) => {
            return Err(invalid(
                env_key,
                format!("give either {env_key} or {file_key}, not both"),
            ));
        }
        (None, None) => return Ok(None),
        (Some(name), None) => {
            let value = env(name).ok_or_else(|| {
                invalid(env_key, format!("environment variable {name} is not set"))
            })?;
            (env_key, value)
        }
        (None, Some(path)) => {
            let value = read_file(path)
                .map_err(|e| invalid(file_key, format!("cannot read {}: {e}", path.display())))?;
            (file_key, value)
        }
    };
    // The first line, as for the routers' `password_file` (a trailing newline is common).
    let (key, text) = value;
    let text = text.lines().next().unwrap_or_default().trim();
    if text.is_empty() {
        return Err(invalid(key, "the secret it names is empty".to_owned()));
    }
    // It goes into an HTTP header or a JSON body: no line breaks or control characters.
    if text.chars().any(char::is_control) {
        return Err(invalid(
            key,
            "the secret it names contains control characters".to_owned(),
        ));
    }
    Ok(Some(Secret::new(text)))
}

/// Durations written as `"2s"`, `"500ms"`, `"1m"`, like the rest of mtids' configuration.
mod duration_str {
    use super::*;

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let text = String::deserialize(d)?;
        humantime::parse_duration(&text).map_err(|e| {
            serde::de::Error::custom(format!(
                "invalid duration {text:?} ({e}); write it like \"500ms\", \"2s\" or \"1m\""
            ))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> CrowdsecConfig {
        toml::from_str(text).unwrap()
    }

    fn env(name: &str) -> Option<String> {
        match name {
            "KEY" => Some("bouncer-key-123\n".to_owned()),
            "PASS" => Some("pw".to_owned()),
            "EMPTY" => Some("  ".to_owned()),
            _ => None,
        }
    }

    fn no_files(path: &Path) -> std::io::Result<String> {
        match path.to_str() {
            Some("/k") => Ok("file-key\n# a comment line\n".to_owned()),
            _ => Err(std::io::Error::from(std::io::ErrorKind::NotFound)),
        }
    }

    fn field_of(e: CrowdsecError) -> &'static str {
        match e {
            CrowdsecError::InvalidConfig { field, .. } => field,
            other => panic!("{other}"),
        }
    }

    #[test]
    fn every_key_parses_and_defaults_apply() {
        let c = parse(
            r#"
            url = "http://127.0.0.1:8080"
            bouncer_key_env = "KEY"
            machine_id = "m1"
            machine_password_env = "PASS"
            pull_interval = "500ms"
            push = false
            origins = ["cscli", "crowdsec"]
            scenarios = ["ssh"]
            max_pulled_bans = 10
            "#,
        );
        assert_eq!(c.pull_interval, Duration::from_millis(500));
        let r = c.resolve(env, no_files).unwrap();
        assert_eq!(r.bouncer_key.unwrap().expose(), "bouncer-key-123");
        assert!(!r.push);
        assert_eq!(r.filters.origins, ["cscli", "crowdsec"]);
        assert_eq!(r.max_pulled_bans, 10);

        let c = parse(
            r#"url = "http://lapi:8080/"
            bouncer_key_file = "/k""#,
        );
        assert_eq!(c.pull_interval, Duration::from_secs(2));
        assert_eq!(c.max_pulled_bans, DEFAULT_MAX_PULLED_BANS);
        let r = c.resolve(env, no_files).unwrap();
        assert_eq!(r.bouncer_key.unwrap().expose(), "file-key");
        assert!(!r.push, "no machine credentials: no push");
    }

    #[test]
    fn push_defaults_on_with_machine_credentials() {
        let c = parse(
            r#"url = "http://127.0.0.1:8080"
            machine_id = "m1"
            machine_password_env = "PASS""#,
        );
        let r = c.resolve(env, no_files).unwrap();
        assert!(r.push);
        assert_eq!(r.machine.unwrap().machine_id, "m1");
    }

    #[test]
    fn unknown_keys_are_named() {
        let e = toml::from_str::<CrowdsecConfig>(
            r#"url = "http://x"
            bouncer_key = "inline""#,
        )
        .unwrap_err();
        assert!(e.to_string().contains("bouncer_key"), "{e}");
    }

    #[test]
    fn errors_name_the_key() {
        let base = r#"url = "http://127.0.0.1:8080"
"#;
        let cases = [
            (
                "bouncer_key_env = \"KEY\"\nbouncer_key_file = \"/k\"",
                "bouncer_key_env",
            ),
            ("bouncer_key_env = \"MISSING\"", "bouncer_key_env"),
            ("bouncer_key_env = \"EMPTY\"", "bouncer_key_env"),
            ("bouncer_key_file = \"/nope\"", "bouncer_key_file"),
            ("machine_id = \"m\"", "machine_id"),
            ("machine_password_env = \"PASS\"", "machine_id"),
            ("bouncer_key_env = \"KEY\"\npush = true", "push"),
            (
                "bouncer_key_env = \"KEY\"\nmax_pulled_bans = 0",
                "max_pulled_bans",
            ),
            (
                "bouncer_key_env = \"KEY\"\npull_interval = \"1ms\"",
                "pull_interval",
            ),
            ("bouncer_key_env = \"KEY\"\norigins = [\"a,b\"]", "origins"),
            ("", "bouncer_key_env"),
        ];
        for (extra, field) in cases {
            let c = parse(&format!("{base}{extra}"));
            assert_eq!(
                field_of(c.resolve(env, no_files).unwrap_err()),
                field,
                "{extra}"
            );
        }
        for url in ["ftp://x", "not a url", "http://x/?a=b"] {
            let mut c = CrowdsecConfig::new(url);
            c.bouncer_key_env = Some("KEY".into());
            assert_eq!(field_of(c.resolve(env, no_files).unwrap_err()), "url");
        }
        let e =
            toml::from_str::<CrowdsecConfig>("url = \"http://x\"\npull_interval = \"2 parsecs\"")
                .unwrap_err();
        assert!(e.to_string().contains("pull_interval"), "{e}");
    }

    #[test]
    fn debug_never_shows_secrets() {
        let mut c = CrowdsecConfig::new("http://127.0.0.1:8080");
        c.bouncer_key_env = Some("KEY".into());
        c.machine_id = Some("m1".into());
        c.machine_password_env = Some("PASS".into());
        let r = c.resolve(
            |n| Some(format!("{n}-topsecret")),
            |_| Err(std::io::Error::from(std::io::ErrorKind::NotFound)),
        );
        let printed = format!("{r:?}");
        assert!(!printed.contains("topsecret"), "{printed}");
        assert!(printed.contains("m1"), "{printed}");
    }
}
