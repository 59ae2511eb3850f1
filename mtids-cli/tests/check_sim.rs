//! `mtids check` against routeros-sim over real loopback sockets (plain API and API-SSL).
//!
//! On a router that has not been set up: login, the certificate, reading the log and the
//! address list pass; the missing log and drop rules fail with the `mtids setup` fix; a
//! group with more policies than mtids needs is flagged. (After `mtids setup --apply`
//! every item passes: `setup_apply.rs`.)

#![allow(clippy::unwrap_used, clippy::expect_used)]

use mtids_cli::check::{self, CheckArgs, Item, Status};
use mtids_cli::config::Config;
use routeros_sim::{
    Policies, Policy, Router, RouterConfig, SelfSignedCertificate, Server, ServerConfig,
    TlsIdentity, User,
};

fn args() -> CheckArgs {
    CheckArgs {
        router: None,
        log_prefix: "MTIDS_NEW".into(),
        syslog_format: None,
        syslog_protocol: None,
    }
}

fn item<'a>(items: &'a [Item], what: &str) -> &'a Item {
    items
        .iter()
        .find(|i| i.what == what)
        .unwrap_or_else(|| panic!("no item {what}: {items:?}"))
}

async fn sim(users: &[(&str, &str, Policies)]) -> (Router, Server) {
    let router = Router::new(RouterConfig::default());
    for (name, pw, p) in users {
        router.add_user(User::new(*name, *pw, *p));
    }
    router
        .add_address_list_entry("mtids-blocked", "198.51.100.7", None, Some("test"))
        .unwrap();
    let server = Server::bind(
        router.clone(),
        ServerConfig::plain("127.0.0.1:0".parse().unwrap()),
    )
    .await
    .unwrap();
    (router, server)
}

fn config(port: u16, user: &str, password: &str, tls: &str) -> Config {
    Config::parse(
        &format!(
            "[[router]]\nname = \"gw\"\nhost = \"127.0.0.1\"\nport = {port}\nuser = \"{user}\"\npassword = \"{password}\"\n{tls}"
        ),
        "test.toml",
    )
    .unwrap()
}

/// Exactly what mtids needs.
fn minimal() -> Policies {
    Policies::default()
        .with(Policy::Api)
        .with(Policy::Read)
        .with(Policy::Write)
}

#[tokio::test]
async fn on_a_router_not_yet_set_up_the_missing_rules_fail_with_their_fixes() {
    let (_router, server) = sim(&[("ids", "pw", minimal())]).await;
    let cfg = config(server.local_addr().port(), "ids", "pw", "");
    let items = check::check(&cfg, &args()).await.unwrap();
    let text = check::render(&items);
    assert_eq!(item(&items, "login").status, Status::Passed, "{text}");
    assert_eq!(
        item(&items, "log readable").status,
        Status::Passed,
        "{text}"
    );
    let list = item(&items, "address list");
    assert_eq!(list.status, Status::Passed, "{text}");
    assert!(list.detail.contains("1 entries"), "{text}");
    let policies = item(&items, "policies");
    assert_eq!(policies.status, Status::Passed, "{text}");
    assert!(policies.fix.is_none());
    // A fresh router has none of the rules mtids relies on.
    for what in [
        "log rules",
        "drop rule from blocked",
        "drop rule to blocked",
    ] {
        let i = item(&items, what);
        assert_eq!(i.status, Status::Failed, "{what}: {text}");
        assert!(i.fix.as_deref().unwrap().contains("mtids setup"), "{text}");
    }
    // Plain API: flagged, with the API-SSL fix.
    assert_eq!(item(&items, "API-SSL").status, Status::Unknown, "{text}");
    server.shutdown().await;
}

#[tokio::test]
async fn a_user_with_too_many_policies_is_flagged() {
    // The `write` policies the simulator enforces include reboot and test; full has all.
    for (policies, extra) in [
        (Policies::WRITE, "reboot,test"),
        (Policies::FULL, "policy"),
        (minimal().with(Policy::Sensitive), "sensitive"),
    ] {
        let (_router, server) = sim(&[("ids", "pw", policies)]).await;
        let cfg = config(server.local_addr().port(), "ids", "pw", "");
        let items = check::check(&cfg, &args()).await.unwrap();
        let text = check::render(&items);
        let i = item(&items, "policies");
        assert_eq!(i.status, Status::Failed, "{text}");
        assert!(i.detail.contains("also grants"), "{text}");
        assert!(i.detail.contains(extra), "{extra}: {text}");
        assert!(
            i.fix.as_deref().unwrap().contains("policy=api,read,write"),
            "{text}"
        );
        server.shutdown().await;
    }
}

#[tokio::test]
async fn a_wrong_password_and_a_missing_read_policy_fail_with_fixes() {
    let no_read = Policies::WRITE.without(Policy::Read);
    let (_router, server) = sim(&[("ids", "pw", no_read)]).await;
    let port = server.local_addr().port();

    let items = check::check(&config(port, "ids", "wrong", ""), &args())
        .await
        .unwrap();
    let login = item(&items, "login");
    assert_eq!(login.status, Status::Failed);
    assert!(
        login.detail.contains("invalid user name or password"),
        "{login:?}"
    );
    assert!(login.fix.is_some());

    let items = check::check(&config(port, "ids", "pw", ""), &args())
        .await
        .unwrap();
    let log = item(&items, "log readable");
    assert_eq!(log.status, Status::Failed, "{}", check::render(&items));
    assert!(log.detail.contains("not enough permissions"), "{log:?}");
    assert!(log.fix.as_deref().unwrap().contains("api,read,write"));
    server.shutdown().await;
}

#[tokio::test]
async fn api_ssl_with_a_pinned_fingerprint_passes_and_a_wrong_pin_fails() {
    let cert = SelfSignedCertificate::generate(&["localhost"]).unwrap();
    let router = Router::new(RouterConfig::default());
    router.add_user(User::new("ids", "pw", Policies::WRITE));
    let server = Server::bind(
        router,
        ServerConfig::tls(
            "127.0.0.1:0".parse().unwrap(),
            TlsIdentity::SelfSigned(cert.clone()),
        ),
    )
    .await
    .unwrap();
    let port = server.local_addr().port();
    let good = cert.sha256_fingerprint();
    let tls = format!("[router.tls]\nfingerprint = \"{good}\"\nserver_name = \"localhost\"\n");
    let items = check::check(&config(port, "ids", "pw", &tls), &args())
        .await
        .unwrap();
    let login = item(&items, "login");
    assert_eq!(login.status, Status::Passed, "{login:?}");
    assert!(login.detail.contains("certificate verified"));
    assert!(!items.iter().any(|i| i.what == "API-SSL"));

    let bad = format!("[router.tls]\nfingerprint = \"{}\"\n", "ab".repeat(32));
    let items = check::check(&config(port, "ids", "pw", &bad), &args())
        .await
        .unwrap();
    assert_eq!(item(&items, "login").status, Status::Failed);
    server.shutdown().await;
}

#[tokio::test]
async fn the_ipv6_items_use_the_ipv6_list_name() {
    let (router, server) = sim(&[("ids", "pw", Policies::WRITE)]).await;
    router
        .add_address_list_entry("bl6", "2001:db8:bad::7", None, None)
        .unwrap();
    router
        .add_address_list_entry("bl6", "2001:db8:bad::8", None, None)
        .unwrap();
    let port = server.local_addr().port();
    let cfg = Config::parse(
        &format!(
            "[[router]]\nname = \"gw\"\nhost = \"127.0.0.1\"\nport = {port}\nuser = \"ids\"\npassword = \"pw\"\n\
             [enforcement]\naddress_list_v6 = \"bl6\"\n"
        ),
        "test.toml",
    )
    .unwrap();
    let items = check::check(&cfg, &args()).await.unwrap();
    let text = check::render(&items);
    let v4 = item(&items, "address list");
    assert!(
        v4.detail.contains("`mtids-blocked` readable, 1 entries"),
        "{text}"
    );
    let v6 = item(&items, "IPv6 address list");
    assert_eq!(v6.status, Status::Passed, "{text}");
    assert!(v6.detail.contains("`bl6` readable, 2 entries"), "{text}");
    // No IPv6 drop rule at all: IPv6 is not set up (`mtids setup` without `--ipv6`), which
    // is said but does not fail `check` (issue 13: setup and check agree on the default).
    for what in ["IPv6 drop rule from blocked", "IPv6 drop rule to blocked"] {
        let i = item(&items, what);
        assert_eq!(i.status, Status::Unknown, "{what}: {text}");
        assert!(i.detail.contains("IPv6 not set up"), "{text}");
        assert!(i.fix.as_deref().unwrap().contains("--ipv6"), "{text}");
    }
    server.shutdown().await;
}

/// mtids listens for syslog: a router without the `mtids` logging action fails that item;
/// one that sends CEF over TCP while mtids listens on UDP only fails it too; the router's
/// version is read either way.
#[tokio::test]
async fn remote_logging_is_checked_when_mtids_listens_for_syslog() {
    let (router, server) = sim(&[("ids", "pw", minimal())]).await;
    let port = server.local_addr().port();
    let cfg = config(
        port,
        "ids",
        "pw",
        "[input]\nsyslog_udp = \"127.0.0.1:5514\"\n",
    );
    let items = check::check(&cfg, &args()).await.unwrap();
    let text = check::render(&items);
    assert_eq!(item(&items, "router version").detail, "7.20.4 (stable)");
    let logging = item(&items, "remote logging");
    assert_eq!(logging.status, Status::Failed, "{text}");
    assert!(
        logging.detail.contains("no logging action `mtids`"),
        "{text}"
    );
    assert!(
        logging
            .fix
            .as_deref()
            .unwrap()
            .contains("mtids setup --syslog IP:PORT --router-version 7.20.4"),
        "{text}"
    );

    // CEF over TCP, as setup writes by default, but mtids only has a UDP listener; and
    // no rule sends anything to the action.
    router.add_user(User::new("admin", "admin-pw", Policies::FULL));
    let admin = routeros_proto::net::Client::connect(
        &routeros_proto::net::ClientConfig::new("127.0.0.1", "admin", "admin-pw").port(port),
    )
    .await
    .unwrap();
    admin
        .call(
            routeros_proto::Command::new("/system/logging/action/add")
                .attr("name", "mtids")
                .attr("target", "remote")
                .attr("remote", "127.0.0.1")
                .attr("remote-port", "5514")
                .attr("remote-log-format", "cef")
                .attr("remote-protocol", "tcp"),
        )
        .await
        .unwrap();
    admin.close().await;
    let items = check::check(&cfg, &args()).await.unwrap();
    let logging = item(&items, "remote logging");
    assert_eq!(logging.status, Status::Failed, "{logging:?}");
    assert!(
        logging
            .detail
            .contains("sends over tcp but mtids has no input.syslog_tcp"),
        "{logging:?}"
    );
    assert!(
        logging
            .detail
            .contains("no enabled /system logging rule sends firewall,account,critical"),
        "{logging:?}"
    );
    server.shutdown().await;
}
