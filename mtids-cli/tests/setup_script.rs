//! `mtids setup`: the printed script's content, and `--apply` against routeros-sim over a
//! real socket.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use clap::Parser;
use mtids_cli::cli::{Cli, Command};
use mtids_cli::config::Config;
use mtids_cli::setup::{self, Applied, SetupArgs, StepKind};
use routeros_proto::net::{Client, ClientConfig};
use routeros_sim::{Policies, Policy, Router, RouterConfig, Server, ServerConfig, User};

fn args(extra: &[&str]) -> SetupArgs {
    let mut argv = vec!["mtids", "setup"];
    argv.extend_from_slice(extra);
    match Cli::parse_from(argv).command {
        Command::Setup(a) => a,
        other => panic!("parsed as {other:?}"),
    }
}

fn config() -> Config {
    Config::parse(
        "[[router]]\nname = \"gw\"\nhost = \"127.0.0.1\"\nuser = \"ids\"\n[enforcement]\naddress_list = \"blocked4\"\naddress_list_v6 = \"blocked6\"\n",
        "test.toml",
    )
    .unwrap()
}

#[test]
fn script_guards_every_add_and_covers_what_the_seeds_click_through() {
    let steps = setup::steps(
        &args(&[
            "--wan",
            "pppoe-out1",
            "--syslog",
            "192.0.2.50:5514",
            "--ipv6",
        ]),
        &config(),
    )
    .unwrap();
    let script = setup::render_script(&steps);
    // Every add is guarded so a second run adds nothing.
    for line in script
        .lines()
        .filter(|l| l.contains(" add ") && !l.starts_with('#'))
    {
        assert!(
            line.starts_with(":if ([:len [find where "),
            "unguarded add: {line}"
        );
    }
    for needle in [
        "/user group\n:if ([:len [find where name=\"mtids\"]] = 0) do={ add name=mtids policy=api,read,write",
        "add name=ids group=mtids password=CHANGE-ME disabled=yes",
        "sign mtids-api",
        "set [find where name=\"api-ssl\"] certificate=mtids-api tls-version=only-1.2",
        "chain=input in-interface=pppoe-out1 connection-state=new action=log log-prefix=MTIDS_NEW",
        "chain=forward in-interface=pppoe-out1 connection-state=new action=log",
        "/ip firewall raw\n:if",
        "chain=prerouting src-address-list=blocked4 action=drop",
        "chain=prerouting dst-address-list=blocked4 action=drop",
        "/ipv6 firewall raw",
        "dst-address-list=blocked6 action=drop",
        // RouterOS 7.18+ (the default): CEF over TCP, never bsd-syslog (removed in 7.18).
        "target=remote remote=192.0.2.50 remote-port=5514 remote-log-format=cef remote-protocol=tcp }",
        "else={ set [find where name=\"mtids\"] target=remote",
        "add action=mtids topics=firewall",
    ] {
        assert!(script.contains(needle), "missing {needle:?} in\n{script}");
    }
    assert!(!script.contains("bsd-syslog="), "{script}");
}

#[test]
fn router_version_and_syslog_flags_choose_the_logging_form() {
    let script = |extra: &[&str]| {
        let mut argv = vec!["--syslog", "192.0.2.50"];
        argv.extend_from_slice(extra);
        setup::steps(&args(&argv), &config()).map(|s| setup::render_script(&s))
    };
    let old = script(&["--router-version", "7.17.2"]).unwrap();
    assert!(
        old.contains("remote=192.0.2.50 remote-port=5514 bsd-syslog=yes"),
        "{old}"
    );
    assert!(!old.contains("remote-log-format="), "{old}");
    let udp = script(&["--syslog-format", "default"]).unwrap();
    assert!(
        udp.contains("remote-log-format=default remote-protocol=udp"),
        "{udp}"
    );
    let tls = script(&["--syslog-protocol", "tls", "--router-version", "7.20.4"]).unwrap();
    assert!(
        tls.contains("remote-log-format=cef remote-protocol=tls"),
        "{tls}"
    );
    // No delimiter, no stream; no CEF or TCP before 7.18; a version must parse.
    for (bad, flag) in [
        (
            vec!["--syslog-format", "syslog", "--syslog-protocol", "tcp"],
            "--syslog-protocol tcp",
        ),
        (
            vec!["--router-version", "7.16", "--syslog-format", "cef"],
            "--syslog-format cef",
        ),
        (
            vec!["--router-version", "7.16", "--syslog-protocol", "tcp"],
            "--syslog-protocol",
        ),
        (vec!["--router-version", "seven"], "--router-version"),
    ] {
        let err = script(&bad).unwrap_err().to_string();
        assert!(err.contains(flag), "{bad:?}: {err}");
    }
}

#[test]
fn wan_accepts_an_interface_list() {
    for (wan, want) in [
        (
            "WAN",
            "chain=input in-interface-list=WAN connection-state=new",
        ),
        (
            "list:uplinks",
            "chain=input in-interface-list=uplinks connection-state=new",
        ),
        (
            "ether1",
            "chain=input in-interface=ether1 connection-state=new",
        ),
    ] {
        let steps = setup::steps(&args(&["--wan", wan]), &config()).unwrap();
        let script = setup::render_script(&steps);
        assert!(script.contains(want), "{wan}: {script}");
    }
    assert!(setup::steps(&args(&["--wan", "list:a b"]), &config()).is_err());
}

/// The binary without `--apply` says which RouterOS version its script is for.
#[test]
fn the_printed_script_names_its_router_version() {
    let run = |extra: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_mtids"))
            .env_remove("MTIDS_CONFIG")
            .current_dir(env!("CARGO_TARGET_TMPDIR"))
            .args(["setup", "--syslog", "192.0.2.50"])
            .args(extra)
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        String::from_utf8(out.stdout).unwrap()
    };
    let current = run(&[]);
    assert!(
        current.starts_with("# Written for RouterOS 7.18 and later"),
        "{current}"
    );
    assert!(current.contains("remote-log-format=cef"), "{current}");
    let old = run(&["--router-version", "7.15.3"]);
    assert!(
        old.starts_with("# Written for RouterOS 7.15.3 (--router-version)."),
        "{old}"
    );
    assert!(old.contains("bsd-syslog=yes"), "{old}");
}

#[test]
fn filter_mode_drops_both_directions_and_hostile_names_are_refused() {
    let steps = setup::steps(&args(&["--drop-in", "filter"]), &config()).unwrap();
    let script = setup::render_script(&steps);
    assert!(script.contains("chain=input src-address-list=blocked4 action=drop"));
    assert!(script.contains("chain=forward src-address-list=blocked4 action=drop"));
    assert!(script.contains("chain=forward dst-address-list=blocked4 action=drop"));
    assert!(!script.contains("/ipv6"), "IPv6 only on request");
    let err = setup::steps(
        &args(&["--wan", "ether1\"; /system reset-configuration"]),
        &config(),
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("--wan"), "{err}");
    let err = setup::steps(&args(&["--syslog", "logs.example.com"]), &config())
        .unwrap_err()
        .to_string();
    assert!(err.contains("--syslog"), "{err}");
}

/// An administrator without the `policy` policy may change the firewall but not users:
/// `--apply` must report the user steps as failed with the router's words, apply the
/// others, and keep the connection usable.
#[tokio::test]
async fn apply_reports_each_refused_step_and_goes_on() {
    let router = Router::new(RouterConfig::default());
    router.add_user(User::new(
        "admin",
        "pw",
        Policies::FULL.without(Policy::Policy),
    ));
    let server = Server::bind(router, ServerConfig::plain("127.0.0.1:0".parse().unwrap()))
        .await
        .unwrap();
    let addr = server.local_addr();
    let client = Client::connect(&ClientConfig::new("127.0.0.1", "admin", "pw").port(addr.port()))
        .await
        .unwrap();
    let steps = setup::steps(&args(&[]), &config()).unwrap();
    let results = setup::apply(&client, &steps, None).await;
    assert_eq!(results.len(), steps.len());
    for (step, outcome) in &results {
        if step.menu.starts_with("/user") {
            match outcome {
                Applied::Failed(why) => {
                    assert!(
                        why.contains("not enough permissions"),
                        "{}: {why}",
                        step.menu
                    )
                }
                other => panic!("{} unexpectedly {other:?}", step.menu),
            }
        } else {
            assert_eq!(*outcome, Applied::Changed, "{}", step.menu);
        }
    }
    assert!(results.iter().any(|(s, _)| s.kind == StepKind::Set));
    // The connection survived every refusal.
    let r = client
        .call(routeros_proto::Command::new("/system/identity/print"))
        .await
        .unwrap();
    assert_eq!(r.rows.len(), 1);
    client.close().await;
    server.shutdown().await;
}
