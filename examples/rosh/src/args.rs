//! Command-line arguments.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, ValueEnum};

/// A RouterOS API shell: sends one command and prints each reply on one line.
///
/// Words are given as they go on the wire: `=name=value` attributes, `?name=value`
/// queries (with `?#|` style operators), `=.proplist=a,b`. The password is read from the
/// environment variable ROS_PASSWORD (empty if unset) and is never printed.
///
/// rosh stops at `!done`. A command that never ends by itself (`=follow=`,
/// `=follow-only=`, `/listen`) runs until Ctrl-C, then is cancelled cleanly. A trap, a
/// fatal error or a failed login prints the router's message and exits with status 1
/// (2 for a connection or usage error).
#[derive(Debug, Parser)]
#[command(
    name = "rosh",
    version,
    after_help = "Examples:\n  \
        ROS_PASSWORD=secret rosh --host 192.0.2.1 --user admin /ip/address/print\n  \
        rosh --host gw --user admin /ip/firewall/address-list/print ?list=blocked =.proplist=.id,address\n  \
        rosh --host gw --user admin --tls --fingerprint ab:cd:... /log/print =follow-only=\n  \
        rosh --host gw --user admin --json /system/resource/print"
)]
pub struct Args {
    /// The router's host name or IP address.
    #[arg(long)]
    pub host: String,

    /// The API port [default: 8728, or 8729 with --tls].
    #[arg(long)]
    pub port: Option<u16>,

    /// The user to log in as.
    #[arg(long)]
    pub user: String,

    /// Use API-SSL; the router's certificate is verified with --ca or --fingerprint.
    #[arg(long, requires = "verification")]
    pub tls: bool,

    /// PEM file with the CA that signed the router's certificate (for a self-signed
    /// certificate: the certificate itself).
    #[arg(long, value_name = "FILE", group = "verification", requires = "tls")]
    pub ca: Option<PathBuf>,

    /// Pin the router certificate's SHA-256 fingerprint (64 hex digits, `:` optional), as
    /// `/certificate print detail` shows it.
    #[arg(long, value_name = "SHA256", group = "verification", requires = "tls")]
    pub fingerprint: Option<String>,

    /// The name the router's certificate was issued for, if not the host.
    #[arg(long, value_name = "NAME", requires = "tls")]
    pub server_name: Option<String>,

    /// Print one JSON object per reply instead of `!re key=value ...`.
    #[arg(long)]
    pub json: bool,

    /// How to log in: `auto` works with every RouterOS version.
    #[arg(long, value_enum, default_value_t = LoginKind::Auto)]
    pub login: LoginKind,

    /// Seconds to wait for the connection and for each answer (0: wait forever for
    /// answers; streaming commands never time out between rows).
    #[arg(long, value_name = "SECONDS", default_value_t = 10)]
    pub timeout: u64,

    /// The command path, for example `/ip/address/print`.
    #[arg(value_name = "COMMAND")]
    pub command: String,

    /// The command's words as on the wire: `=name=value`, `?query`, `=.proplist=a,b`.
    #[arg(
        value_name = "WORD",
        trailing_var_arg = true,
        allow_hyphen_values = true
    )]
    pub words: Vec<String>,
}

/// The login method.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LoginKind {
    /// Plain first; fall back to the challenge if the router answers with one.
    Auto,
    /// `/login =name= =password=` (RouterOS 6.43 and later).
    Plain,
    /// The MD5 challenge (before 6.43).
    Legacy,
}

impl Args {
    /// The port to connect to.
    pub fn port(&self) -> u16 {
        self.port.unwrap_or(if self.tls { 8729 } else { 8728 })
    }

    /// The answer timeout, `None` for none.
    pub fn timeout(&self) -> Option<Duration> {
        (self.timeout > 0).then(|| Duration::from_secs(self.timeout))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    fn parse(args: &[&str]) -> Result<Args, clap::Error> {
        Args::try_parse_from(std::iter::once("rosh").chain(args.iter().copied()))
    }

    #[test]
    fn definition_is_consistent() {
        Args::command().debug_assert();
    }

    #[test]
    fn words_are_taken_as_on_the_wire() {
        let a = parse(&[
            "--host",
            "gw",
            "--user",
            "admin",
            "/ip/firewall/connection/print",
            "?protocol=tcp",
            "?-timeout",
            "=.proplist=a,b",
            "-x",
        ])
        .unwrap();
        assert_eq!(a.command, "/ip/firewall/connection/print");
        assert_eq!(
            a.words,
            ["?protocol=tcp", "?-timeout", "=.proplist=a,b", "-x"]
        );
        assert_eq!(a.port(), 8728);
    }

    #[test]
    fn tls_needs_exactly_one_verification() {
        assert!(parse(&["--host", "gw", "--user", "u", "--tls", "/x"]).is_err());
        assert!(parse(&["--host", "gw", "--user", "u", "--ca", "f", "/x"]).is_err());
        assert!(
            parse(&[
                "--host",
                "gw",
                "--user",
                "u",
                "--tls",
                "--ca",
                "f",
                "--fingerprint",
                "ab",
                "/x"
            ])
            .is_err()
        );
        let a = parse(&[
            "--host",
            "gw",
            "--user",
            "u",
            "--tls",
            "--fingerprint",
            "ab",
            "/x",
        ])
        .unwrap();
        assert_eq!(a.port(), 8729);
    }

    #[test]
    fn timeout_zero_means_none() {
        let a = parse(&["--host", "h", "--user", "u", "--timeout", "0", "/x"]).unwrap();
        assert_eq!(a.timeout(), None);
        let a = parse(&["--host", "h", "--user", "u", "/x"]).unwrap();
        assert_eq!(a.timeout(), Some(Duration::from_secs(10)));
    }
}
