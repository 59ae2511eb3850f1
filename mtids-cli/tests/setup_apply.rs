//! `mtids setup --apply` end to end against routeros-sim over real loopback sockets: the
//! administrator applies the steps, then `mtids check` as the user setup created passes
//! every item over API-SSL with the certificate setup signed; a second apply changes
//! nothing; breaking what setup made fails exactly that item, and setup repairs it.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use clap::Parser;
use mtids_cli::check::{self, CheckArgs, Item, Status};
use mtids_cli::cli::{Cli, Command};
use mtids_cli::config::Config;
use mtids_cli::setup::{self, Applied, SetupArgs};
use routeros_proto::Command as Api;
use routeros_proto::net::{Client, ClientConfig};
use routeros_sim::{
    Policies, Router, RouterConfig, RouterOsVersion, SelfSignedCertificate, Server, ServerConfig,
    TlsIdentity, User,
};

const ADMIN_PW: &str = "admin-pw";
const IDS_PW: &str = "ids-pw";

fn setup_args(extra: &[&str]) -> SetupArgs {
    let mut argv = vec![
        "mtids",
        "setup",
        "--apply",
        "--yes",
        "--syslog",
        "127.0.0.1:5514",
        "--ipv6",
    ];
    argv.extend_from_slice(extra);
    match Cli::parse_from(argv).command {
        Command::Setup(a) => a,
        other => panic!("parsed as {other:?}"),
    }
}

fn check_args() -> CheckArgs {
    CheckArgs {
        router: None,
        log_prefix: "MTIDS_NEW".into(),
        syslog_format: None,
        syslog_protocol: None,
    }
}

/// A router with only its administrator, served on plain API and on API-SSL (which
/// starts with a certificate nobody pins, until setup assigns its own).
struct Sim {
    _router: Router,
    plain: Server,
    tls: Server,
}

impl Sim {
    /// The simulator's default version: a current 7.20.
    async fn start() -> Sim {
        Sim::start_version(RouterConfig::default().version).await
    }

    async fn start_version(version: RouterOsVersion) -> Sim {
        let router = Router::new(RouterConfig {
            version,
            ..RouterConfig::default()
        });
        router.add_user(User::new("admin", ADMIN_PW, Policies::FULL));
        let plain = Server::bind(
            router.clone(),
            ServerConfig::plain("127.0.0.1:0".parse().unwrap()),
        )
        .await
        .unwrap();
        let tls = Server::bind(
            router.clone(),
            ServerConfig::tls(
                "127.0.0.1:0".parse().unwrap(),
                TlsIdentity::SelfSigned(SelfSignedCertificate::generate(&["localhost"]).unwrap()),
            ),
        )
        .await
        .unwrap();
        Sim {
            _router: router,
            plain,
            tls,
        }
    }

    /// The mtids configuration for the plain port (setup) or API-SSL pinned to `fp`.
    fn config(&self, tls_fingerprint: Option<&str>) -> Config {
        let (port, tls) = match tls_fingerprint {
            Some(fp) => (
                self.tls.local_addr().port(),
                format!("[router.tls]\nfingerprint = \"{fp}\"\nserver_name = \"mtids-api\"\n"),
            ),
            None => (self.plain.local_addr().port(), String::new()),
        };
        Config::parse(
            &format!(
                "[[router]]\nname = \"gw\"\nhost = \"127.0.0.1\"\nport = {port}\nuser = \"mtids\"\npassword = \"{IDS_PW}\"\n{tls}"
            ),
            "test.toml",
        )
        .unwrap()
    }

    async fn admin(&self) -> Client {
        Client::connect(
            &ClientConfig::new("127.0.0.1", "admin", ADMIN_PW).port(self.plain.local_addr().port()),
        )
        .await
        .unwrap()
    }

    async fn apply(&self) -> Vec<(setup::Step, Applied)> {
        self.apply_with(&[]).await
    }

    async fn apply_with(&self, extra: &[&str]) -> Vec<(setup::Step, Applied)> {
        let config = self.config(None);
        let args = setup_args(extra);
        setup::apply_to_router(&config.routers[0], &args, &config, ADMIN_PW)
            .await
            .unwrap()
            .1
    }

    /// `mtids check` as the created user, over API-SSL pinned to the certificate setup
    /// signed (its fingerprint read from `/certificate print`, as the docs say).
    async fn check(&self) -> Vec<Item> {
        let admin = self.admin().await;
        let cert = admin
            .call(
                Api::new("/certificate/print")
                    .proplist(["fingerprint"])
                    .word("?name=mtids-api"),
            )
            .await
            .unwrap();
        let fp = cert.rows[0].get_str("fingerprint").unwrap().into_owned();
        admin.close().await;
        check::check(&self.config(Some(&fp)), &check_args())
            .await
            .unwrap()
    }

    async fn shutdown(self) {
        self.plain.shutdown().await;
        self.tls.shutdown().await;
    }
}

fn item<'a>(items: &'a [Item], what: &str) -> &'a Item {
    items
        .iter()
        .find(|i| i.what == what)
        .unwrap_or_else(|| panic!("no item {what}: {items:?}"))
}

/// The id of the one rule under `menu` whose comment is `comment`.
async fn rule_id(admin: &Client, menu: &str, comment: &str) -> String {
    let r = admin
        .call(
            Api::new(format!("{menu}/print"))
                .proplist([".id"])
                .word(format!("?comment={comment}")),
        )
        .await
        .unwrap();
    assert_eq!(r.rows.len(), 1, "{menu} {comment}");
    r.rows[0].id().unwrap().into_owned()
}

#[tokio::test]
async fn setup_then_check_passes_every_item_and_a_second_apply_changes_nothing() {
    let sim = Sim::start().await;
    // The router already accepts established traffic: the log rules must go before it.
    let admin = sim.admin().await;
    admin
        .call(
            Api::new("/ip/firewall/filter/add")
                .attr("chain", "input")
                .attr("action", "accept")
                .attr("connection-state", "established,related"),
        )
        .await
        .unwrap();

    let first = sim.apply().await;
    for (step, outcome) in &first {
        assert_eq!(*outcome, Applied::Changed, "{} ({})", step.title, step.menu);
    }
    let menus: Vec<&str> = first.iter().map(|(s, _)| s.menu.as_str()).collect();
    for menu in [
        "/user group",
        "/user",
        "/certificate",
        "/ip service",
        "/ip firewall filter",
        "/ip firewall raw",
        "/ipv6 firewall raw",
        "/system logging action",
        "/system logging",
    ] {
        assert!(menus.contains(&menu), "no step for {menu}: {menus:?}");
    }

    let items = sim.check().await;
    let text = check::render(&items);
    for i in &items {
        assert_eq!(i.status, Status::Passed, "{}: {text}", i.what);
    }
    for what in [
        "login",
        "policies",
        "log readable",
        "log rules",
        "drop rule from blocked",
        "drop rule to blocked",
        "address list",
        "router version",
        "remote logging",
    ] {
        item(&items, what);
    }
    assert_eq!(item(&items, "router version").detail, "7.20.4 (stable)");
    assert!(
        item(&items, "remote logging")
            .detail
            .contains("remote-log-format=cef remote-protocol=tcp"),
        "{text}"
    );
    assert!(
        item(&items, "login")
            .detail
            .contains("certificate verified"),
        "{text}"
    );

    // Log rules first, then the rule that was there.
    let order = admin
        .call(Api::new("/ip/firewall/filter/print").proplist(["action"]))
        .await
        .unwrap();
    let actions: Vec<String> = order
        .rows
        .iter()
        .map(|r| r.get_str("action").unwrap().into_owned())
        .collect();
    assert_eq!(actions, ["log", "log", "accept"]);
    // The remote syslog action and its rules.
    let action = admin
        .call(Api::new("/system/logging/action/print").word("?name=mtids"))
        .await
        .unwrap();
    assert_eq!(
        action.rows[0].get_str("remote").as_deref(),
        Some("127.0.0.1")
    );
    assert_eq!(
        action.rows[0].get_str("remote-port").as_deref(),
        Some("5514")
    );
    // RouterOS 7.18+: CEF over TCP by default, and never `bsd-syslog` (removed in 7.18).
    assert_eq!(
        action.rows[0].get_str("remote-log-format").as_deref(),
        Some("cef")
    );
    assert_eq!(
        action.rows[0].get_str("remote-protocol").as_deref(),
        Some("tcp")
    );
    assert_eq!(action.rows[0].get_str("bsd-syslog"), None);
    let rules = admin
        .call(Api::new("/system/logging/print").word("?action=mtids"))
        .await
        .unwrap();
    assert_eq!(rules.rows.len(), 3);
    let v6 = admin
        .call(
            Api::new("/ipv6/firewall/raw/print")
                .word("?action=drop")
                .word("?dst-address-list=mtids-blocked"),
        )
        .await
        .unwrap();
    assert_eq!(v6.rows.len(), 1);
    // The password went to the router, never into a printed row or a step.
    let users = admin
        .call(Api::new("/user/print").word("?name=mtids"))
        .await
        .unwrap();
    assert_eq!(users.rows[0].get_str("disabled").as_deref(), Some("false"));
    assert!(!format!("{users:?}").contains(IDS_PW));
    assert!(!format!("{first:?}").contains(IDS_PW));

    let second = sim.apply().await;
    for (step, outcome) in &second {
        assert_eq!(*outcome, Applied::Present, "{} ({})", step.title, step.menu);
    }
    let again = admin
        .call(Api::new("/ip/firewall/filter/print").attr("count-only", ""))
        .await
        .unwrap();
    assert_eq!(again.ret_str().as_deref(), Some("3"));
    admin.close().await;
    sim.shutdown().await;
}

#[tokio::test]
async fn breaking_a_rule_fails_that_item_with_its_fix_and_setup_repairs_it() {
    let sim = Sim::start().await;
    sim.apply().await;
    let admin = sim.admin().await;

    // A disabled drop rule.
    let drop = rule_id(
        &admin,
        "/ip/firewall/raw",
        "mtids: drop prerouting from mtids-blocked",
    )
    .await;
    admin
        .call(Api::new("/ip/firewall/raw/disable").id(&drop))
        .await
        .unwrap();
    let items = sim.check().await;
    let text = check::render(&items);
    let from = item(&items, "drop rule from blocked");
    assert_eq!(from.status, Status::Failed, "{text}");
    assert!(
        from.fix.as_deref().unwrap().contains("mtids setup"),
        "{text}"
    );
    assert_eq!(
        item(&items, "drop rule to blocked").status,
        Status::Passed,
        "{text}"
    );
    assert_eq!(item(&items, "log rules").status, Status::Passed, "{text}");

    // A removed drop rule.
    let to = rule_id(
        &admin,
        "/ip/firewall/raw",
        "mtids: drop prerouting to mtids-blocked",
    )
    .await;
    admin
        .call(Api::new("/ip/firewall/raw/remove").id(&to))
        .await
        .unwrap();
    let items = sim.check().await;
    assert_eq!(item(&items, "drop rule to blocked").status, Status::Failed);

    // The input log rule disabled, the forward one still there.
    let log = rule_id(&admin, "/ip/firewall/filter", "mtids: log new input").await;
    admin
        .call(Api::new("/ip/firewall/filter/disable").id(&log))
        .await
        .unwrap();
    let items = sim.check().await;
    let text = check::render(&items);
    let rules = item(&items, "log rules");
    assert_eq!(rules.status, Status::Failed, "{text}");
    assert!(
        rules.fix.as_deref().unwrap().contains("--log-prefix"),
        "{text}"
    );
    assert!(text.contains("fix: mtids setup"), "{text}");

    // Setup puts back what mtids relies on, and check passes again.
    let repaired = sim.apply().await;
    let changed: Vec<&str> = repaired
        .iter()
        .filter(|(_, o)| *o == Applied::Changed)
        .map(|(s, _)| s.title.as_str())
        .collect();
    assert_eq!(changed.len(), 3, "{changed:?}");
    let items = sim.check().await;
    let text = check::render(&items);
    assert!(items.iter().all(|i| i.status == Status::Passed), "{text}");
    admin.close().await;
    sim.shutdown().await;
}

#[tokio::test]
async fn a_drop_above_the_log_rule_fails_it_and_a_drop_of_invalid_does_not() {
    let sim = Sim::start().await;
    sim.apply().await;
    let admin = sim.admin().await;
    let log = rule_id(&admin, "/ip/firewall/filter", "mtids: log new input").await;
    let add_above = |state: Option<&'static str>, comment: &'static str| {
        let mut add = Api::new("/ip/firewall/filter/add")
            .attr("chain", "input")
            .attr("action", "drop")
            .attr("comment", comment)
            .attr("place-before", &log);
        if let Some(state) = state {
            add = add.attr("connection-state", state);
        }
        add
    };

    // Dropping invalid packets first is the usual set-up, and harmless.
    admin
        .call(add_above(Some("invalid"), "drop invalid"))
        .await
        .unwrap();
    let items = sim.check().await;
    let text = check::render(&items);
    assert_eq!(item(&items, "log rules").status, Status::Passed, "{text}");

    // A drop of everything from the WAN above it silences the log rule.
    admin
        .call(add_above(None, "drop all not from LAN"))
        .await
        .unwrap();
    let items = sim.check().await;
    let text = check::render(&items);
    let rules = item(&items, "log rules");
    assert_eq!(rules.status, Status::Failed, "{text}");
    assert!(
        rules
            .detail
            .contains("(drop all not from LAN) comes before the log rule"),
        "{text}"
    );
    assert!(
        rules
            .fix
            .as_deref()
            .unwrap()
            .contains("move [find chain=input log-prefix=\"MTIDS_NEW\"] destination=0"),
        "{text}"
    );
    admin.close().await;
    sim.shutdown().await;
}

/// The binary: `mtids setup --apply --yes` with the administrator's password in
/// `MTIDS_SETUP_PASSWORD`, twice; the second run reports every step present.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_applies_then_reports_everything_present() {
    let sim = Sim::start().await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("mtids.toml");
    std::fs::write(
        &path,
        format!(
            "[[router]]\nname = \"gw\"\nhost = \"127.0.0.1\"\nport = {}\nuser = \"mtids\"\npassword_env = \"SETUP_TEST_IDS_PW\"\n",
            sim.plain.local_addr().port()
        ),
    )
    .unwrap();
    let run = move |path: std::path::PathBuf| {
        tokio::task::spawn_blocking(move || {
            std::process::Command::new(env!("CARGO_BIN_EXE_mtids"))
                .env_remove("MTIDS_CONFIG")
                .current_dir(env!("CARGO_TARGET_TMPDIR"))
                .arg("--config")
                .arg(&path)
                .args([
                    "setup",
                    "--apply",
                    "--yes",
                    "--router",
                    "gw",
                    "--syslog",
                    "127.0.0.1:5514",
                    "--ipv6",
                ])
                .env("MTIDS_SETUP_PASSWORD", ADMIN_PW)
                .env("SETUP_TEST_IDS_PW", IDS_PW)
                .output()
                .unwrap()
        })
    };
    let out = run(path.clone()).await.unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.lines().count() >= 8, "{stdout}");
    assert!(stdout.lines().all(|l| l.starts_with("applied")), "{stdout}");
    assert!(!stdout.contains(IDS_PW) && !stderr.contains(IDS_PW));
    assert!(!stdout.contains(ADMIN_PW) && !stderr.contains(ADMIN_PW));

    assert!(
        stdout.contains("RouterOS 7.18+ form (remote-log-format=cef remote-protocol=tcp"),
        "{stdout}"
    );

    let out = run(path.clone()).await.unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{stdout}");
    assert!(stdout.lines().all(|l| l.starts_with("present")), "{stdout}");

    // `mtids check` as the user setup made: nothing fails, remote logging in 7.18+ form.
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_mtids"))
            .env_remove("MTIDS_CONFIG")
            .current_dir(env!("CARGO_TARGET_TMPDIR"))
            .arg("--config")
            .arg(&path)
            .args([
                "check",
                "--syslog-format",
                "cef",
                "--syslog-protocol",
                "tcp",
            ])
            .env("SETUP_TEST_IDS_PW", IDS_PW)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{stdout}");
    assert!(!stdout.contains("FAIL"), "{stdout}");
    assert!(
        stdout.contains("PASS  [gw] router version           7.20.4 (stable)"),
        "{stdout}"
    );
    assert!(
        stdout.contains("PASS  [gw] remote logging           to 127.0.0.1:5514, remote-log-format=cef remote-protocol=tcp"),
        "{stdout}"
    );
    sim.shutdown().await;
}

/// RouterOS 7.17: the pre-7.18 menu, so setup writes `bsd-syslog=yes`, and check verifies
/// that form.
#[tokio::test]
async fn on_7_17_setup_uses_bsd_syslog_and_check_passes() {
    let sim = Sim::start_version(RouterOsVersion::new(7, 17, 2)).await;
    let first = sim.apply().await;
    for (step, outcome) in &first {
        assert_eq!(*outcome, Applied::Changed, "{} ({})", step.title, step.menu);
    }
    let admin = sim.admin().await;
    let action = admin
        .call(Api::new("/system/logging/action/print").word("?name=mtids"))
        .await
        .unwrap();
    assert_eq!(
        action.rows[0].get_str("bsd-syslog").as_deref(),
        Some("true")
    );
    assert_eq!(action.rows[0].get_str("remote-log-format"), None);
    let items = sim.check().await;
    let text = check::render(&items);
    for i in &items {
        assert_eq!(i.status, Status::Passed, "{}: {text}", i.what);
    }
    assert!(
        item(&items, "remote logging")
            .detail
            .contains("bsd-syslog=true"),
        "{text}"
    );
    // CEF and TCP do not exist there: refused before anything is sent.
    let config = sim.config(None);
    let err = setup::apply_to_router(
        &config.routers[0],
        &setup_args(&["--syslog-format", "cef"]),
        &config,
        ADMIN_PW,
    )
    .await
    .unwrap_err()
    .to_string();
    assert!(err.contains("--syslog-format cef"), "{err}");
    admin.close().await;
    sim.shutdown().await;
}

/// A 7.18+ router refuses `bsd-syslog` the way it refuses any property its menu lacks;
/// setup reports the step with the router's words (what the old setup ran into).
#[tokio::test]
async fn a_7_20_router_rejects_bsd_syslog_with_its_error() {
    let sim = Sim::start().await;
    let config = sim.config(None);
    let legacy = setup::steps_for(
        &setup_args(&[]),
        &config,
        setup::RouterVersion::parse("7.17").unwrap(),
    )
    .unwrap();
    let admin = sim.admin().await;
    let results = setup::apply(&admin, &legacy, None).await;
    let (_, outcome) = results
        .iter()
        .find(|(s, _)| s.menu == "/system logging action")
        .unwrap();
    match outcome {
        Applied::Failed(why) => assert!(why.contains("unknown parameter bsd-syslog"), "{why}"),
        other => panic!("bsd-syslog accepted on 7.20: {other:?}"),
    }
    admin.close().await;
    sim.shutdown().await;
}

/// UDP with `syslog`, then a second run with CEF over TLS changes the action in place;
/// check flags a format other than the one asked for.
#[tokio::test]
async fn changing_the_syslog_form_sets_the_action_and_check_verifies_it() {
    let sim = Sim::start().await;
    sim.apply_with(&["--syslog-format", "syslog"]).await;
    let admin = sim.admin().await;
    let printed =
        |r: &routeros_proto::net::Response, k: &str| r.rows[0].get_str(k).map(|v| v.into_owned());
    let action = admin
        .call(Api::new("/system/logging/action/print").word("?name=mtids"))
        .await
        .unwrap();
    assert_eq!(
        printed(&action, "remote-log-format").as_deref(),
        Some("syslog")
    );
    assert_eq!(printed(&action, "remote-protocol").as_deref(), Some("udp"));

    let second = sim
        .apply_with(&["--syslog-format", "cef", "--syslog-protocol", "tls"])
        .await;
    let (_, outcome) = second
        .iter()
        .find(|(s, _)| s.menu == "/system logging action")
        .unwrap();
    assert_eq!(*outcome, Applied::Changed);
    let action = admin
        .call(Api::new("/system/logging/action/print").word("?name=mtids"))
        .await
        .unwrap();
    assert_eq!(
        printed(&action, "remote-log-format").as_deref(),
        Some("cef")
    );
    assert_eq!(printed(&action, "remote-protocol").as_deref(), Some("tls"));

    // Asked for syslog over UDP, the router has CEF over TLS: that item fails.
    let mut args = check_args();
    args.syslog_format = Some(setup::SyslogFormat::Syslog);
    let cert = admin
        .call(
            Api::new("/certificate/print")
                .proplist(["fingerprint"])
                .word("?name=mtids-api"),
        )
        .await
        .unwrap();
    let fp = cert.rows[0].get_str("fingerprint").unwrap().into_owned();
    let items = check::check(&sim.config(Some(&fp)), &args).await.unwrap();
    let logging = item(&items, "remote logging");
    assert_eq!(logging.status, Status::Failed, "{logging:?}");
    assert!(
        logging.detail.contains("remote-log-format=cef, not syslog"),
        "{logging:?}"
    );
    assert!(
        logging
            .fix
            .as_deref()
            .unwrap()
            .contains("--syslog-format syslog")
    );
    admin.close().await;
    sim.shutdown().await;
}

/// `--wan WAN`: the interface list of the default configuration, matched with
/// `in-interface-list`.
#[tokio::test]
async fn wan_list_makes_in_interface_list_rules() {
    let sim = Sim::start().await;
    sim.apply_with(&["--wan", "WAN"]).await;
    let admin = sim.admin().await;
    let rules = admin
        .call(
            Api::new("/ip/firewall/filter/print")
                .word("?action=log")
                .proplist(["chain", "in-interface", "in-interface-list"]),
        )
        .await
        .unwrap();
    assert_eq!(rules.rows.len(), 2);
    for r in &rules.rows {
        assert_eq!(r.get_str("in-interface-list").as_deref(), Some("WAN"));
        assert_eq!(r.get_str("in-interface"), None);
    }
    admin.close().await;
    sim.shutdown().await;
}

/// `setup --apply` as docs/router-setup.md says (no `--ipv6`), then `check`: nothing
/// fails; the IPv6 drop-rule items say IPv6 is not set up (issue 13).
#[tokio::test]
async fn setup_without_ipv6_then_check_fails_nothing() {
    let sim = Sim::start().await;
    let config = sim.config(None);
    let args = match Cli::parse_from(["mtids", "setup", "--apply", "--yes"]).command {
        Command::Setup(a) => a,
        other => panic!("parsed as {other:?}"),
    };
    setup::apply_to_router(&config.routers[0], &args, &config, ADMIN_PW)
        .await
        .unwrap();
    let items = sim.check().await;
    let text = check::render(&items);
    for i in &items {
        assert_ne!(i.status, Status::Failed, "{}: {text}", i.what);
    }
    for what in ["IPv6 drop rule from blocked", "IPv6 drop rule to blocked"] {
        let i = item(&items, what);
        assert_eq!(i.status, Status::Unknown, "{text}");
        assert!(i.fix.as_deref().unwrap().contains("--ipv6"), "{text}");
    }
    sim.shutdown().await;
}

/// Over the plain API after `setup --apply`: the API-SSL item does not repeat steps that
/// are done; it prints the certificate's fingerprint to pin (issue 13).
#[tokio::test]
async fn the_api_ssl_item_prints_the_fingerprint_to_pin() {
    let sim = Sim::start().await;
    sim.apply().await;
    let admin = sim.admin().await;
    let cert = admin
        .call(
            Api::new("/certificate/print")
                .proplist(["fingerprint"])
                .word("?name=mtids-api"),
        )
        .await
        .unwrap();
    let fp = cert.rows[0].get_str("fingerprint").unwrap().into_owned();
    admin.close().await;
    let items = check::check(&sim.config(None), &check_args())
        .await
        .unwrap();
    let text = check::render(&items);
    let ssl = item(&items, "API-SSL");
    assert_eq!(ssl.status, Status::Unknown, "{text}");
    assert!(
        ssl.detail.contains("ready with certificate `mtids-api`"),
        "{text}"
    );
    let fix = ssl.fix.as_deref().unwrap();
    assert!(fix.contains(&format!("fingerprint = \"{fp}\"")), "{text}");
    assert!(!fix.contains("mtids setup"), "{text}");
    sim.shutdown().await;
}
