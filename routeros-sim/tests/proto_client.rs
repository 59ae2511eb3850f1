//! routeros-proto's own client state machine, driven over a real socket, against the
//! simulator: two crates written to the same spec must agree.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use routeros_proto::{Command, Config, Connection, Event, LoginMethod, Query, Tag};
use routeros_sim::{LoginMethod as SimLogin, RouterConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

fn now() -> Instant {
    tokio::time::Instant::now().into_std()
}

struct Driver {
    conn: Connection,
    stream: TcpStream,
}

impl Driver {
    async fn connect(addr: std::net::SocketAddr) -> Driver {
        Driver {
            conn: Connection::new(Config::default()),
            stream: TcpStream::connect(addr).await.unwrap(),
        }
    }

    async fn flush(&mut self) {
        while let Some(bytes) = self.conn.poll_transmit() {
            self.stream.write_all(&bytes).await.unwrap();
        }
    }

    async fn next_event(&mut self) -> Event {
        let mut buf = vec![0u8; 64 << 10];
        loop {
            self.flush().await;
            if let Some(event) = self.conn.poll_event() {
                return event;
            }
            let n = tokio::time::timeout(Duration::from_secs(5), self.stream.read(&mut buf))
                .await
                .expect("the simulator went silent")
                .unwrap();
            if n == 0 {
                self.conn.handle_eof(now());
            } else {
                self.conn.handle_input(now(), &buf[..n]);
            }
        }
    }

    async fn login(&mut self, password: &str, method: LoginMethod) -> Event {
        self.conn.login(now(), "admin", password, method).unwrap();
        loop {
            match self.next_event().await {
                e @ (Event::LoggedIn | Event::LoginFailed(_)) => return e,
                Event::Warning(w) => panic!("warning during login: {w:?}"),
                _ => {}
            }
        }
    }

    /// Events for `tag` up to its last one (Done, Cancelled or TimedOut).
    async fn finish(&mut self, tag: Tag) -> Vec<Event> {
        let mut out = Vec::new();
        loop {
            let e = self.next_event().await;
            if let Event::Warning(w) = &e {
                panic!("the client warned: {w:?}");
            }
            let last = matches!(&e, Event::Done { tag: t, .. } | Event::Cancelled { tag: t } | Event::TimedOut { tag: t } if *t == tag);
            out.push(e);
            if last {
                return out;
            }
        }
    }
}

#[tokio::test]
async fn plain_and_auto_login_and_the_refusal() {
    let (_r, server) = common::start(RouterConfig::default()).await;
    let mut d = Driver::connect(server.local_addr()).await;
    assert!(matches!(
        d.login("nope", LoginMethod::Plain).await,
        Event::LoginFailed(_)
    ));
    assert_eq!(d.login("secret", LoginMethod::Auto).await, Event::LoggedIn);

    // Auto against a pre-6.43 router falls back to the challenge.
    let legacy = RouterConfig {
        login: SimLogin::LegacyChallenge,
        ..RouterConfig::default()
    };
    let (_r, server) = common::start(legacy).await;
    let mut d = Driver::connect(server.local_addr()).await;
    assert_eq!(d.login("secret", LoginMethod::Auto).await, Event::LoggedIn);
    let mut d = Driver::connect(server.local_addr()).await;
    assert_eq!(
        d.login("secret", LoginMethod::Legacy).await,
        Event::LoggedIn
    );
}

#[tokio::test]
async fn pipelined_adds_duplicate_trap_empty_and_queries() {
    let (_r, server) = common::start(RouterConfig::default()).await;
    let mut d = Driver::connect(server.local_addr()).await;
    assert_eq!(d.login("secret", LoginMethod::Plain).await, Event::LoggedIn);
    let add = |a: &str| {
        Command::new("/ip/firewall/address-list/add")
            .attr("list", "bl")
            .attr("address", a)
            .attr("timeout", "1d")
    };
    let tags: Vec<Tag> = (1..=50)
        .map(|i| d.conn.send(now(), add(&format!("198.51.100.{i}"))).unwrap())
        .collect();
    let dup = d.conn.send(now(), add("198.51.100.1")).unwrap();
    for tag in tags {
        let events = d.finish(tag).await;
        match events.last().unwrap() {
            Event::Done { ret: Some(ret), .. } => assert!(ret.starts_with(b"*")),
            other => panic!("{other:?}"),
        }
    }
    let events = d.finish(dup).await;
    let trap = events.iter().find_map(|e| match e {
        Event::Trap { trap, .. } => Some(trap.message.clone()),
        _ => None,
    });
    assert_eq!(trap.as_deref(), Some("failure: already have such entry"));

    let q = Query::new()
        .eq("address", "198.51.100.7")
        .eq("address", "198.51.100.9")
        .or();
    let print = Command::new("/ip/firewall/address-list/print")
        .proplist(["address"])
        .query(q);
    let tag = d.conn.send(now(), print).unwrap();
    let rows = d
        .finish(tag)
        .await
        .into_iter()
        .filter(|e| matches!(e, Event::Row { .. }))
        .count();
    assert_eq!(rows, 2);

    let empty =
        Command::new("/ip/firewall/address-list/print").query(Query::new().eq("list", "none"));
    let tag = d.conn.send(now(), empty).unwrap();
    let events = d.finish(tag).await;
    assert!(matches!(events[0], Event::Empty { .. }), "{events:?}");
    assert!(matches!(events[1], Event::Done { .. }), "{events:?}");
}

#[tokio::test]
async fn follow_the_log_then_cancel() {
    let (router, server) = common::start(RouterConfig::default()).await;
    let mut d = Driver::connect(server.local_addr()).await;
    assert_eq!(d.login("secret", LoginMethod::Plain).await, Event::LoggedIn);
    let follow = Command::new("/log/print")
        .follow_only()
        .query(Query::new().eq("topics", "firewall,info"));
    let tag = d.conn.send(now(), follow).unwrap();
    // Once a later command is answered, the follow is running (one connection's commands
    // are taken in order).
    let sync = d
        .conn
        .send(now(), Command::new("/system/identity/print"))
        .unwrap();
    d.finish(sync).await;
    router.log(
        "firewall,info",
        "drop input: in:ether1 out:(unknown 0), proto UDP, 198.51.100.7:1->192.0.2.1:53, len 76",
    );
    match d.next_event().await {
        Event::Row { tag: t, reply } => {
            assert_eq!(t, tag);
            assert!(reply.get_str("message").unwrap().contains("198.51.100.7"));
        }
        other => panic!("{other:?}"),
    }
    d.conn.cancel(now(), tag).unwrap();
    let events = d.finish(tag).await;
    assert!(
        matches!(events.last(), Some(Event::Cancelled { .. })),
        "{events:?}"
    );
}

#[tokio::test]
async fn the_client_survives_an_empty_without_done() {
    let (router, server) = common::start(RouterConfig::default()).await;
    let mut config = Config::default();
    config.empty_done_timeout = Duration::from_millis(200);
    let mut d = Driver {
        conn: Connection::new(config),
        stream: TcpStream::connect(server.local_addr()).await.unwrap(),
    };
    assert_eq!(d.login("secret", LoginMethod::Plain).await, Event::LoggedIn);
    router.set_omit_done_after_empty(true);
    let tag = d
        .conn
        .send(now(), Command::new("/ip/firewall/connection/print"))
        .unwrap();
    d.flush().await;
    assert!(matches!(d.next_event().await, Event::Empty { .. }));
    // No `!done` comes: the client's own timeout finishes the command.
    tokio::time::sleep(Duration::from_millis(250)).await;
    d.conn.handle_timeout(now());
    let events = d.finish(tag).await;
    assert!(
        matches!(events.last(), Some(Event::Done { .. })),
        "{events:?}"
    );
}
