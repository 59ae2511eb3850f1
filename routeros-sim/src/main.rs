//! `routeros-sim`: run a simulated RouterOS router that any RouterOS API client can use.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use std::sync::Arc;

use routeros_sim::{
    Clock, LoginMethod, Policies, Router, RouterConfig, RouterOsVersion, ScaledClock, Scenario,
    SelfSignedCertificate, Server, ServerConfig, SystemClock, TlsIdentity, User,
};

/// A simulated MikroTik RouterOS 7 router speaking the real API (port 8728, or API-SSL).
///
/// Prints the bound address on the first line of stdout (so scripts can pass port 0), then
/// serves until Ctrl-C.
#[derive(Debug, Parser)]
#[command(name = "routeros-sim", about, long_about = None, disable_version_flag = true)]
struct Args {
    /// Address to listen on; port 0 picks a free port.
    #[arg(long, default_value = "127.0.0.1:8728")]
    listen: SocketAddr,
    /// API user name (group full).
    #[arg(long, default_value = "admin")]
    user: String,
    /// The user's password (default: empty, like a fresh router).
    #[arg(
        long,
        default_value = "",
        env = "ROUTEROS_SIM_PASSWORD",
        hide_env_values = true
    )]
    password: String,
    /// Use the pre-6.43 MD5 challenge login instead of the plain one.
    #[arg(long)]
    legacy_login: bool,
    /// RouterOS version to emulate (default 7.20.4); 7.18 and later answer empty prints
    /// with `!empty` and have `remote-log-format`/`remote-protocol` (no `bsd-syslog`) in
    /// logging actions. Without a value: print routeros-sim's own version and exit.
    #[arg(long = "version", value_name = "ROUTEROS_VERSION", num_args = 0..=1, value_parser = parse_version)]
    version: Option<Option<RouterOsVersion>>,
    /// The api service's max-sessions.
    #[arg(long, default_value_t = 20)]
    max_sessions: usize,
    /// Serve API-SSL with this PEM certificate chain (needs --tls-key).
    #[arg(long, requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// The PEM private key for --tls-cert.
    #[arg(long, requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Serve API-SSL with a freshly generated self-signed certificate (its SHA-256
    /// fingerprint is printed on stderr for pinning).
    #[arg(long, conflicts_with = "tls_cert")]
    tls_self_signed: bool,
    /// Play a scenario into the log, connection table and CPU load: benign, port-scan,
    /// slow-scan, host-sweep, ssh-brute-force, ftp-brute-force, winbox-brute-force,
    /// api-brute-force, user-enumeration, asymmetric-flood, login-cpu-spike,
    /// ipv6-port-scan, ipv6-brute-force, mixed. Its ground truth goes to stderr.
    #[arg(long)]
    scenario: Option<String>,
    /// Seed of the scenario (the same seed replays the same events).
    #[arg(long, default_value_t = 1, requires = "scenario")]
    seed: u64,
    /// Time compression: 1 is real time, 60 plays an hour in a minute (the router's clock
    /// runs as fast).
    #[arg(long, default_value_t = 1.0, requires = "scenario", value_parser = parse_speed)]
    speed: f64,
}

fn parse_version(text: &str) -> Result<RouterOsVersion, String> {
    RouterOsVersion::parse(text)
        .ok_or_else(|| format!("`{text}` is not a RouterOS version like 7.18 or 6.49.10"))
}

fn parse_speed(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(v) if v.is_finite() && v > 0.0 => Ok(v),
        _ => Err(format!(
            "`{text}` is not a speed above 0 (1 = real time, 60 = an hour a minute)"
        )),
    }
}

/// The RouterOS version emulated when `--version` does not name one.
const DEFAULT_ROUTEROS_VERSION: &str = "7.20.4";

fn main() -> ExitCode {
    let args = Args::parse();
    if args.version == Some(None) {
        println!(
            "routeros-sim {} (emulates RouterOS {DEFAULT_ROUTEROS_VERSION} unless --version VERSION)",
            env!("CARGO_PKG_VERSION")
        );
        return ExitCode::SUCCESS;
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("routeros-sim: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("routeros-sim: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> Result<(), routeros_sim::SimError> {
    let version = args
        .version
        .flatten()
        .or_else(|| RouterOsVersion::parse(DEFAULT_ROUTEROS_VERSION))
        .unwrap_or(RouterOsVersion::new(7, 20, 4));
    let config = RouterConfig {
        version,
        login: if args.legacy_login {
            LoginMethod::LegacyChallenge
        } else {
            LoginMethod::Plain
        },
        max_sessions: args.max_sessions,
        ..RouterConfig::default()
    };
    let scenario = match &args.scenario {
        Some(name) => Some(Scenario::build(name, args.seed)?),
        None => None,
    };
    let router = if args.speed == 1.0 {
        Router::new(config)
    } else {
        Router::with_clock(
            config,
            Arc::new(ScaledClock::new(SystemClock.now(), args.speed)),
        )
    };
    router.remove_user("admin");
    router.add_user(User::new(
        args.user.clone(),
        args.password.clone(),
        Policies::FULL,
    ));
    let tls = match (args.tls_cert, args.tls_key, args.tls_self_signed) {
        (Some(cert), Some(key), _) => Some(TlsIdentity::PemFiles { cert, key }),
        (_, _, true) => {
            let cert = SelfSignedCertificate::generate(&["localhost", "127.0.0.1", "::1"])?;
            eprintln!(
                "routeros-sim: self-signed certificate sha256 {}",
                cert.sha256_fingerprint()
            );
            Some(TlsIdentity::SelfSigned(cert))
        }
        _ => None,
    };
    let server = Server::bind(
        router.clone(),
        ServerConfig {
            listen: args.listen,
            tls,
        },
    )
    .await?;
    println!("{}", server.local_addr());
    eprintln!(
        "routeros-sim: RouterOS {} listening on {} (user {}); Ctrl-C stops",
        version,
        server.local_addr(),
        args.user
    );
    if let Some(scenario) = scenario {
        for truth in &scenario.truth {
            eprintln!("routeros-sim: truth {truth}");
        }
        eprintln!(
            "routeros-sim: playing scenario {} (seed {}, {} events over {}s of router time, speed {})",
            scenario.name,
            scenario.seed,
            scenario.events.len(),
            scenario.duration().as_secs(),
            args.speed
        );
        if args.speed > 1.0 {
            // Connection-tracking entries live `speed` times shorter in real time (a
            // syn-sent entry's seconds of router time are milliseconds here): a client
            // polling at a real router's pace would miss the asymmetric flood.
            let poll_ms = (5_000.0 / args.speed).max(50.0) as u64;
            eprintln!(
                "routeros-sim: at speed {} connections live {}x shorter: poll the connection table every {poll_ms}ms or faster (mtids: input.connection_interval = \"{poll_ms}ms\")",
                args.speed, args.speed
            );
        }
        let router = router.clone();
        let speed = args.speed;
        tokio::spawn(async move {
            scenario.run(&router, speed).await;
            eprintln!("routeros-sim: scenario finished");
        });
    }
    let _ = tokio::signal::ctrl_c().await;
    server.shutdown().await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn command_line_is_well_formed() {
        Args::command().debug_assert();
        let args = Args::try_parse_from([
            "routeros-sim",
            "--listen",
            "127.0.0.1:0",
            "--version",
            "7.17",
        ])
        .unwrap();
        assert_eq!(args.version, Some(RouterOsVersion::parse("7.17")));
        let bare = Args::try_parse_from(["routeros-sim", "--version"]).unwrap();
        assert_eq!(bare.version, Some(None));
        assert!(RouterOsVersion::parse(DEFAULT_ROUTEROS_VERSION).is_some());
        assert!(Args::try_parse_from(["routeros-sim", "--version", "seven"]).is_err());
        assert!(
            Args::try_parse_from(["routeros-sim", "--scenario", "benign", "--speed", "0"]).is_err()
        );
        assert!(
            Args::try_parse_from(["routeros-sim", "--speed", "2"]).is_err(),
            "needs --scenario"
        );
        assert!(
            Args::try_parse_from(["routeros-sim", "--tls-cert", "c.pem"]).is_err(),
            "needs --tls-key"
        );
    }
}
