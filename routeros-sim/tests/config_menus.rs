//! The configuration menus over real sockets: users and groups (and logging in with what
//! was created), firewall rules in order, certificates, services, logging.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{Client, Words, admin, attr, start};
use routeros_sim::{Policies, RouterConfig, User};

fn rows(reply: &[Words]) -> Vec<&Words> {
    reply.iter().filter(|s| s[0] == "!re").collect()
}

fn trap(reply: &[Words]) -> Option<&str> {
    reply
        .iter()
        .find(|s| s[0] == "!trap")
        .and_then(|s| attr(s, "message"))
}

fn ret(reply: &[Words]) -> String {
    attr(reply.last().unwrap(), "ret").unwrap().to_owned()
}

#[tokio::test]
async fn a_user_created_through_the_api_logs_in_with_its_groups_policies() {
    let (_router, server) = start(RouterConfig::default()).await;
    let mut c = admin(&server).await;
    let group = c
        .call(&[
            "/user/group/add",
            "=name=ids",
            "=policy=api,read,!ftp",
            "=comment=mtids",
        ])
        .await;
    assert!(trap(&group).is_none(), "{group:?}");
    let printed = c
        .call(&["/user/group/print", "?name=ids", "=.proplist=name,policy"])
        .await;
    let policy = attr(rows(&printed)[0], "policy").unwrap().to_owned();
    assert!(policy.starts_with("read,api,!local,"), "{policy}");
    assert!(policy.contains("!write"), "{policy}");

    // A group that does not exist is refused; the user is created disabled.
    let bad = c
        .call(&["/user/add", "=name=bob", "=group=nope", "=password=pw"])
        .await;
    assert_eq!(trap(&bad), Some("input does not match any value of group"));
    let add = c
        .call(&[
            "/user/add",
            "=name=bob",
            "=group=ids",
            "=password=pw",
            "=disabled=yes",
        ])
        .await;
    let id = ret(&add);
    let dup = c.call(&["/user/add", "=name=bob", "=group=ids"]).await;
    assert!(trap(&dup).unwrap().contains("already exists"), "{dup:?}");

    // The password is never printed.
    let users = c.call(&["/user/print", "?name=bob"]).await;
    let bob = rows(&users)[0];
    assert_eq!(attr(bob, "group"), Some("ids"));
    assert_eq!(attr(bob, "disabled"), Some("true"));
    assert!(
        !bob.iter()
            .any(|w| w.contains("password") || w.contains("=pw")),
        "{bob:?}"
    );

    let mut b = Client::connect(server.local_addr()).await;
    let refused = b.call(&["/login", "=name=bob", "=password=pw"]).await;
    assert!(
        trap(&refused)
            .unwrap()
            .contains("invalid user name or password")
    );
    c.call(&["/user/enable", &format!("=.id={id}")]).await;
    b.login("bob", "pw").await;
    // read: yes; write: no.
    let print = b.call(&["/ip/firewall/filter/print"]).await;
    assert!(trap(&print).is_none(), "{print:?}");
    let add = b
        .call(&["/ip/firewall/filter/add", "=chain=input", "=action=drop"])
        .await;
    assert_eq!(trap(&add), Some("not enough permissions (9)"));

    // The group in use cannot go; setting its policy changes the next login.
    let rm = c.call(&["/user/group/remove", "=numbers=ids"]).await;
    assert_eq!(trap(&rm), Some("failure: group is in use"));
    c.call(&["/user/group/set", "=numbers=ids", "=policy=read"])
        .await;
    let mut b2 = Client::connect(server.local_addr()).await;
    let refused = b2.call(&["/login", "=name=bob", "=password=pw"]).await;
    assert!(trap(&refused).is_some(), "no api policy, no login");
    server.shutdown().await;
}

#[tokio::test]
async fn managing_users_needs_the_policy_policy() {
    let (router, server) = start(RouterConfig::default()).await;
    router.add_user(User::new("ops", "o", Policies::WRITE));
    let mut c = Client::connect(server.local_addr()).await;
    c.login("ops", "o").await;
    let add = c.call(&["/user/group/add", "=name=x", "=policy=api"]).await;
    assert_eq!(trap(&add), Some("not enough permissions (9)"));
    let print = c.call(&["/user/print", "=.proplist=name,group"]).await;
    let names: Vec<&str> = rows(&print)
        .iter()
        .filter_map(|r| attr(r, "name"))
        .collect();
    assert!(
        names.contains(&"ops") && names.contains(&"admin"),
        "{names:?}"
    );
    // The group made for a user added by the test holds exactly its policies.
    let groups = c.call(&["/user/group/print", "?name=ops"]).await;
    let policy = attr(rows(&groups)[0], "policy").unwrap();
    assert!(
        policy.starts_with("reboot,read,write,test,api,!"),
        "{policy}"
    );
    server.shutdown().await;
}

#[tokio::test]
async fn firewall_rules_keep_their_order_and_answer_queries() {
    let (_router, server) = start(RouterConfig::default()).await;
    let mut c = admin(&server).await;
    let f = "/ip/firewall/filter";
    let first = ret(&c
        .call(&[
            &format!("{f}/add"),
            "=chain=input",
            "=action=accept",
            "=connection-state=established,related",
        ])
        .await);
    let drop = ret(&c
        .call(&[
            &format!("{f}/add"),
            "=chain=input",
            "=action=drop",
            "=src-address-list=blocked",
            "=comment=drop blocked",
        ])
        .await);
    let log = ret(&c
        .call(&[
            &format!("{f}/add"),
            "=chain=input",
            "=action=log",
            "=in-interface=ether1",
            "=connection-state=new",
            "=log-prefix=NEW",
            &format!("=place-before={first}"),
        ])
        .await);
    let all = c
        .call(&[&format!("{f}/print"), "=.proplist=.id,action"])
        .await;
    let order: Vec<&str> = rows(&all).iter().filter_map(|r| attr(r, ".id")).collect();
    assert_eq!(order, vec![log.as_str(), first.as_str(), drop.as_str()]);
    // Unset properties are absent; defaults are printed.
    let full = c
        .call(&[&format!("{f}/print"), &format!("?.id={drop}")])
        .await;
    let row = rows(&full)[0];
    assert_eq!(attr(row, "log"), Some("false"));
    assert_eq!(attr(row, "disabled"), Some("false"));
    assert_eq!(attr(row, "comment"), Some("drop blocked"));
    assert_eq!(attr(row, "dst-address-list"), None);

    let q = c
        .call(&[
            &format!("{f}/print"),
            "?action=drop",
            "?src-address-list=blocked",
            "?disabled=false",
            "=.proplist=.id",
        ])
        .await;
    assert_eq!(rows(&q).len(), 1);
    c.call(&[&format!("{f}/disable"), &format!("=.id={drop}")])
        .await;
    let q = c
        .call(&[&format!("{f}/print"), "?action=drop", "?disabled=false"])
        .await;
    assert!(rows(&q).is_empty());
    assert_eq!(q[0][0], "!empty");

    // Raw rules have no connection tracking; unknown values and names are trapped.
    let raw = c
        .call(&[
            "/ip/firewall/raw/add",
            "=chain=prerouting",
            "=action=drop",
            "=connection-state=new",
        ])
        .await;
    assert_eq!(trap(&raw), Some("unknown parameter connection-state"));
    let bad = c
        .call(&[
            "/ipv6/firewall/filter/add",
            "=chain=input",
            "=action=explode",
        ])
        .await;
    assert_eq!(trap(&bad), Some("invalid value for argument action"));
    let v6 = c
        .call(&[
            "/ipv6/firewall/raw/add",
            "=chain=prerouting",
            "=action=drop",
            "=dst-address-list=blocked6",
        ])
        .await;
    assert!(trap(&v6).is_none(), "{v6:?}");
    let v4raw = c.call(&["/ip/firewall/raw/print"]).await;
    assert!(rows(&v4raw).is_empty(), "the twins are separate tables");

    c.call(&[
        &format!("{f}/move"),
        &format!("=numbers={drop}"),
        &format!("=destination={log}"),
    ])
    .await;
    c.call(&[&format!("{f}/remove"), &format!("=.id={first}")])
        .await;
    let all = c.call(&[&format!("{f}/print"), "=.proplist=.id"]).await;
    let order: Vec<&str> = rows(&all).iter().filter_map(|r| attr(r, ".id")).collect();
    assert_eq!(order, vec![drop.as_str(), log.as_str()]);
    server.shutdown().await;
}

#[tokio::test]
async fn a_signed_certificate_goes_on_api_ssl() {
    let (_router, server) = start(RouterConfig::default()).await;
    let mut c = admin(&server).await;
    let id = ret(&c
        .call(&[
            "/certificate/add",
            "=name=mtids-api",
            "=common-name=mtids-api",
            "=days-valid=3650",
        ])
        .await);
    let before = c.call(&["/certificate/print", "?name=mtids-api"]).await;
    assert_eq!(attr(rows(&before)[0], "fingerprint"), None);
    c.call(&["/certificate/sign", &format!("=.id={id}")]).await;
    let after = c.call(&["/certificate/print", "?name=mtids-api"]).await;
    let fp = attr(rows(&after)[0], "fingerprint").unwrap();
    assert_eq!(fp.len(), 64);
    assert!(fp.bytes().all(|b| b.is_ascii_hexdigit()));
    assert_eq!(attr(rows(&after)[0], "private-key"), Some("true"));
    let before = attr(rows(&after)[0], "invalid-before").unwrap();
    let until = attr(rows(&after)[0], "invalid-after").unwrap();
    let year = |t: &str| t[..4].parse::<i32>().unwrap();
    // 3650 days: ten years less the leap days.
    assert!(
        (9..=10).contains(&(year(until) - year(before))) && until > before,
        "{before} .. {until}"
    );
    let again = c.call(&["/certificate/sign", &format!("=.id={id}")]).await;
    assert!(trap(&again).is_some());

    let services = c.call(&["/ip/service/print", "=.proplist=name,port"]).await;
    let names: Vec<&str> = rows(&services)
        .iter()
        .filter_map(|r| attr(r, "name"))
        .collect();
    assert!(
        names.contains(&"api") && names.contains(&"api-ssl"),
        "{names:?}"
    );
    let add = c.call(&["/ip/service/add", "=name=x"]).await;
    assert_eq!(trap(&add), Some("no such command"));
    let wrong = c
        .call(&["/ip/service/set", "=numbers=api-ssl", "=certificate=nope"])
        .await;
    assert_eq!(
        trap(&wrong),
        Some("input does not match any value of certificate")
    );
    let set = c
        .call(&[
            "/ip/service/set",
            "=numbers=api-ssl",
            "=certificate=mtids-api",
            "=tls-version=only-1.2",
        ])
        .await;
    assert!(trap(&set).is_none(), "{set:?}");
    let ssl = c.call(&["/ip/service/print", "?name=api-ssl"]).await;
    let row = rows(&ssl)[0];
    assert_eq!(attr(row, "certificate"), Some("mtids-api"));
    assert_eq!(attr(row, "tls-version"), Some("only-1.2"));
    assert_eq!(attr(row, "port"), Some("8729"));
    server.shutdown().await;
}

#[tokio::test]
async fn a_remote_syslog_action_and_its_rules() {
    let (_router, server) = start(RouterConfig::default()).await;
    let mut c = admin(&server).await;
    let actions = c
        .call(&["/system/logging/action/print", "=.proplist=name"])
        .await;
    let names: Vec<&str> = rows(&actions)
        .iter()
        .filter_map(|r| attr(r, "name"))
        .collect();
    assert_eq!(names, vec!["memory", "disk", "echo", "remote"]);
    let rm = c
        .call(&["/system/logging/action/remove", "=numbers=memory"])
        .await;
    assert!(trap(&rm).is_some(), "default actions stay");

    let add = c
        .call(&[
            "/system/logging/action/add",
            "=name=mtids",
            "=target=remote",
            "=remote=127.0.0.1",
            "=remote-log-format=syslog",
            "=syslog-facility=local0",
        ])
        .await;
    assert!(trap(&add).is_none(), "{add:?}");
    let row = c
        .call(&["/system/logging/action/print", "?name=mtids"])
        .await;
    let row = rows(&row)[0];
    assert_eq!(attr(row, "remote-port"), Some("514"));
    assert_eq!(attr(row, "remote-log-format"), Some("syslog"));
    assert_eq!(attr(row, "remote-protocol"), Some("udp"));
    assert_eq!(attr(row, "syslog-facility"), Some("local0"));
    assert_eq!(attr(row, "bsd-syslog"), None);

    let bad = c
        .call(&["/system/logging/add", "=topics=firewall", "=action=nowhere"])
        .await;
    assert_eq!(trap(&bad), Some("input does not match any value of action"));
    let ok = c
        .call(&[
            "/system/logging/add",
            "=topics=firewall",
            "=action=mtids",
            "=prefix=gw",
        ])
        .await;
    assert!(trap(&ok).is_none(), "{ok:?}");
    let rules = c
        .call(&[
            "/system/logging/print",
            "?action=mtids",
            "=.proplist=topics,prefix",
        ])
        .await;
    assert_eq!(attr(rows(&rules)[0], "topics"), Some("firewall"));
    assert_eq!(attr(rows(&rules)[0], "prefix"), Some("gw"));
    server.shutdown().await;
}

/// A TLS handshake trusting only `cert`: whether it succeeded.
async fn handshake_trusting(
    addr: std::net::SocketAddr,
    cert: &routeros_sim::SelfSignedCertificate,
) -> bool {
    use std::sync::Arc;
    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert.cert_der().clone()).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    connector.connect(name, stream).await.is_ok()
}

#[tokio::test]
async fn api_ssl_serves_the_certificate_assigned_in_ip_service() {
    let (_router, server, started_with) = common::start_tls(RouterConfig::default()).await;
    let addr = server.local_addr();
    assert!(handshake_trusting(addr, &started_with).await);
    let mut c = Client::connect_tls(addr, &started_with).await;
    c.login("admin", "secret").await;
    c.call(&["/certificate/add", "=name=api", "=common-name=localhost"])
        .await;
    c.call(&["/certificate/sign", "=numbers=api"]).await;
    // Signed but not assigned: nothing changes.
    assert!(handshake_trusting(addr, &started_with).await);
    let set = c
        .call(&["/ip/service/set", "=numbers=api-ssl", "=certificate=api"])
        .await;
    assert!(trap(&set).is_none(), "{set:?}");
    // Now the router presents the certificate it signed, not the one it started with.
    assert!(!handshake_trusting(addr, &started_with).await);
    server.shutdown().await;
}

#[tokio::test]
async fn a_user_with_an_address_logs_in_only_from_there() {
    let (_router, server) = start(RouterConfig::default()).await;
    let mut c = admin(&server).await;
    c.call(&[
        "/user/add",
        "=name=far",
        "=group=full",
        "=password=pw",
        "=address=192.0.2.50/32",
    ])
    .await;
    c.call(&[
        "/user/add",
        "=name=near",
        "=group=full",
        "=password=pw",
        "=address=192.0.2.0/24,127.0.0.0/8",
    ])
    .await;
    let mut far = Client::connect(server.local_addr()).await;
    let refused = far.call(&["/login", "=name=far", "=password=pw"]).await;
    assert_eq!(trap(&refused), Some("invalid user name or password (6)"));
    let mut near = Client::connect(server.local_addr()).await;
    near.login("near", "pw").await;
    server.shutdown().await;
}

#[tokio::test]
async fn ip_service_limits_and_disables_the_api() {
    let (router, server) = start(RouterConfig::default()).await;
    let mut c = admin(&server).await;
    let api = c.call(&["/ip/service/print", "?name=api"]).await;
    assert_eq!(attr(rows(&api)[0], "max-sessions"), Some("20"));
    c.call(&["/ip/service/set", "=numbers=api", "=max-sessions=2"])
        .await;
    let _second = admin(&server).await;
    let mut third = Client::connect(server.local_addr()).await;
    third
        .send(&["/login", "=name=admin", "=password=secret"])
        .await;
    assert_eq!(third.recv().await, None, "over max-sessions: closed");
    assert_eq!(router.session_count(), 2);

    // Disabled: new connections are closed, the open session goes on.
    c.call(&["/ip/service/disable", "=numbers=api"]).await;
    let mut refused = Client::connect(server.local_addr()).await;
    refused
        .send(&["/login", "=name=admin", "=password=secret"])
        .await;
    assert_eq!(refused.recv().await, None, "api disabled: closed");
    let still = c.call(&["/system/identity/print"]).await;
    assert_eq!(still.last().unwrap()[0], "!done");
    server.shutdown().await;
}
