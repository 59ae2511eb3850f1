//! The tokio client against a scripted fake router over real loopback TCP.
#![cfg(feature = "tokio")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod net_peer;

use std::time::Duration;

use net_peer::{FakeRouter, Peer};
use routeros_proto::net::{Client, ClientConfig, Error};
use routeros_proto::{Command, LoginMethod, TrapCategory};

const USER: &str = "admin";
const PASSWORD: &str = "s3cret";

fn config(router: &FakeRouter) -> ClientConfig {
    ClientConfig::new("127.0.0.1", USER, PASSWORD)
        .port(router.port())
        .connect_timeout(Duration::from_secs(5))
}

/// Answers one `print` with two rows.
async fn answer_print(peer: &mut Peer) {
    let cmd = peer.expect("/ip/address/print").await;
    peer.reply(&cmd, &["!re", "=.id=*1", "=address=192.0.2.1/24"])
        .await;
    peer.reply(&cmd, &["!re", "=.id=*2", "=address=198.51.100.1/24"])
        .await;
    peer.reply(&cmd, &["!done"]).await;
}

async fn assert_print(client: &Client) {
    let response = client
        .call(Command::new("/ip/address/print"))
        .await
        .unwrap();
    let addresses: Vec<_> = response
        .rows
        .iter()
        .map(|r| r.get_str("address").unwrap().into_owned())
        .collect();
    assert_eq!(addresses, ["192.0.2.1/24", "198.51.100.1/24"]);
    assert_eq!(response.rows[0].id().as_deref(), Some("*1"));
    assert!(!response.empty);
}

#[tokio::test]
async fn auto_login_against_a_6_43_router_is_plain() {
    let router = FakeRouter::start(|mut peer| async move {
        assert!(peer.login_plain(USER, PASSWORD).await);
        answer_print(&mut peer).await;
        peer.wait_closed().await;
    })
    .await;
    let client = Client::connect(&config(&router)).await.unwrap();
    assert_print(&client).await;
    drop(client);
    router.finish().await;
}

#[tokio::test]
async fn auto_login_against_a_pre_6_43_router_falls_back_to_the_challenge() {
    let router = FakeRouter::start(|mut peer| async move {
        // The old router ignores the plain login's arguments and answers with a challenge.
        assert!(peer.login_legacy(USER, PASSWORD).await);
        answer_print(&mut peer).await;
        peer.wait_closed().await;
    })
    .await;
    let client = Client::connect(&config(&router)).await.unwrap();
    assert_print(&client).await;
    drop(client);
    router.finish().await;
}

#[tokio::test]
async fn legacy_login_sends_a_bare_login_first() {
    let router = FakeRouter::start(|mut peer| async move {
        let first = peer.expect("/login").await;
        assert_eq!(
            first.attr("name"),
            None,
            "legacy login starts bare: {first:?}"
        );
        assert_eq!(first.attr("password"), None, "{first:?}");
        peer.reply(&first, &["!done", "=ret=93b438ec9b80057c06dd9fe67d56aa9a"])
            .await;
        let second = peer.expect("/login").await;
        let expected = net_peer::legacy_response(PASSWORD, "93b438ec9b80057c06dd9fe67d56aa9a");
        assert_eq!(second.attr("response"), Some(expected));
        peer.reply(&second, &["!done"]).await;
        peer.wait_closed().await;
    })
    .await;
    let client = Client::connect(&config(&router).login_method(LoginMethod::Legacy))
        .await
        .unwrap();
    drop(client);
    router.finish().await;
}

#[tokio::test]
async fn wrong_password_is_refused_with_the_routers_message() {
    let router = FakeRouter::start(|mut peer| async move {
        assert!(!peer.login_plain(USER, "another").await);
        peer.wait_closed().await;
    })
    .await;
    let err = Client::connect(&config(&router)).await.unwrap_err();
    match &err {
        Error::LoginRefused { message } => {
            assert_eq!(message, "invalid user name or password (6)");
        }
        other => panic!("expected LoginRefused, got {other:?}"),
    }
    assert!(err.to_string().contains("check the user name"), "{err}");
    router.finish().await;
}

#[tokio::test]
async fn concurrent_calls_from_several_tasks_share_one_connection() {
    let router = FakeRouter::start(|mut peer| async move {
        assert!(peer.login_plain(USER, PASSWORD).await);
        let mut commands = Vec::new();
        for _ in 0..3 {
            commands.push(peer.recv().await.unwrap());
        }
        let tags: std::collections::HashSet<_> = commands.iter().map(|c| c.tag()).collect();
        assert_eq!(tags.len(), 3, "each command has its own tag: {commands:?}");
        // Answer in reverse order, interleaving rows of different tags.
        for cmd in commands.iter().rev() {
            let path = cmd.path();
            peer.reply(cmd, &["!re", &format!("=path={path}")]).await;
        }
        for cmd in &commands {
            let who = cmd.attr("who").unwrap();
            peer.reply(cmd, &["!re", &format!("=who={who}")]).await;
            peer.reply(cmd, &["!done", &format!("=ret={who}")]).await;
        }
        peer.wait_closed().await;
    })
    .await;
    let client = Client::connect(&config(&router)).await.unwrap();
    let mut tasks = Vec::new();
    for who in ["a", "b", "c"] {
        let client = client.clone();
        tasks.push(tokio::spawn(async move {
            let path = format!("/test/{who}/print");
            let response = client
                .call(Command::new(&path).attr("who", who))
                .await
                .unwrap();
            assert_eq!(response.rows.len(), 2);
            assert_eq!(
                response.rows[0].get_str("path").as_deref(),
                Some(path.as_str())
            );
            assert_eq!(response.rows[1].get_str("who").as_deref(), Some(who));
            assert_eq!(response.ret_str().as_deref(), Some(who));
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    drop(client);
    router.finish().await;
}

#[tokio::test]
async fn dropping_a_stream_cancels_its_command_and_the_connection_goes_on() {
    let router = FakeRouter::start(|mut peer| async move {
        assert!(peer.login_plain(USER, PASSWORD).await);
        let follow = peer.expect("/log/print").await;
        assert!(follow.has("=follow-only="), "{follow:?}");
        let tag = follow.tag().unwrap();
        peer.reply(&follow, &["!re", "=message=one"]).await;
        peer.reply(&follow, &["!re", "=message=two"]).await;
        let cancel = peer.expect("/cancel").await;
        assert_eq!(cancel.attr("tag"), Some(tag), "{cancel:?}");
        // A late row, then what a router answers to a cancel.
        peer.reply(&follow, &["!re", "=message=late"]).await;
        peer.reply(&follow, &["!trap", "=category=2", "=message=interrupted"])
            .await;
        peer.reply(&follow, &["!done"]).await;
        peer.reply(&cancel, &["!done"]).await;
        answer_print(&mut peer).await;
        peer.wait_closed().await;
    })
    .await;
    let client = Client::connect(&config(&router)).await.unwrap();
    let mut log = client.stream(Command::new("/log/print").follow_only());
    for expected in ["one", "two"] {
        let row = log.next().await.unwrap().unwrap();
        assert_eq!(row.get_str("message").as_deref(), Some(expected));
    }
    assert!(!log.is_finished());
    drop(log);
    // The late replies of the cancelled command do not leak into this one.
    assert_print(&client).await;
    drop(client);
    router.finish().await;
}

#[tokio::test]
async fn empty_then_done_is_an_empty_response() {
    let router = FakeRouter::start(|mut peer| async move {
        assert!(peer.login_plain(USER, PASSWORD).await);
        let cmd = peer.expect("/ip/firewall/address-list/print").await;
        assert!(cmd.has("?list=blocked"), "{cmd:?}");
        peer.reply(&cmd, &["!empty"]).await;
        peer.reply(&cmd, &["!done"]).await;
        peer.wait_closed().await;
    })
    .await;
    let client = Client::connect(&config(&router)).await.unwrap();
    let response = client
        .call(Command::new("/ip/firewall/address-list/print").word("?list=blocked"))
        .await
        .unwrap();
    assert!(response.empty);
    assert!(response.rows.is_empty());
    drop(client);
    router.finish().await;
}

#[tokio::test]
async fn a_trap_fails_only_its_command() {
    let router = FakeRouter::start(|mut peer| async move {
        assert!(peer.login_plain(USER, PASSWORD).await);
        let add = peer.expect("/ip/firewall/address-list/add").await;
        peer.reply(
            &add,
            &[
                "!trap",
                "=category=1",
                "=message=failure: already have such entry",
            ],
        )
        .await;
        peer.reply(&add, &["!done"]).await;
        answer_print(&mut peer).await;
        peer.wait_closed().await;
    })
    .await;
    let client = Client::connect(&config(&router)).await.unwrap();
    let err = client
        .call(
            Command::new("/ip/firewall/address-list/add")
                .attr("list", "blocked")
                .attr("address", "198.51.100.7"),
        )
        .await
        .unwrap_err();
    match &err {
        Error::Trap { command, trap } => {
            assert_eq!(command, "/ip/firewall/address-list/add");
            assert_eq!(trap.message, "failure: already have such entry");
            assert_eq!(trap.category, Some(TrapCategory::ArgumentValue));
        }
        other => panic!("expected a trap, got {other:?}"),
    }
    assert_print(&client).await;
    drop(client);
    router.finish().await;
}

#[tokio::test]
async fn a_peer_closing_mid_sentence_is_a_clear_error() {
    let router = FakeRouter::start(|mut peer| async move {
        assert!(peer.login_plain(USER, PASSWORD).await);
        let cmd = peer.expect("/ip/address/print").await;
        peer.reply(&cmd, &["!re", "=.id=*1"]).await;
        // `!re`, `=address=192.0.2.1/24`, then the connection drops: no terminator.
        peer.send_raw(b"\x03!re\x17=address=192.0.2.1/24").await;
        peer.close().await;
    })
    .await;
    let client = Client::connect(&config(&router)).await.unwrap();
    let err = client
        .call(Command::new("/ip/address/print"))
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::Closed { mid_sentence: true }),
        "expected Closed mid-sentence, got {err:?}"
    );
    assert!(
        err.to_string().contains("in the middle of a reply"),
        "{err}"
    );
    // The handle knows, and later commands get the same reason.
    let again = client
        .call(Command::new("/ip/address/print"))
        .await
        .unwrap_err();
    assert!(
        matches!(again, Error::Closed { mid_sentence: true }),
        "{again:?}"
    );
    assert!(client.is_closed());
    router.finish().await;
}

#[tokio::test]
async fn a_silent_peer_times_the_command_out() {
    let router = FakeRouter::start(|mut peer| async move {
        assert!(peer.login_plain(USER, PASSWORD).await);
        let cmd = peer.expect("/system/resource/print").await;
        // Never answered: the client gives up and cancels it.
        let cancel = peer.expect("/cancel").await;
        assert_eq!(cancel.attr("tag"), cmd.tag());
        peer.wait_closed().await;
    })
    .await;
    let client =
        Client::connect(&config(&router).command_timeout(Some(Duration::from_millis(300))))
            .await
            .unwrap();
    let started = tokio::time::Instant::now();
    let err = client
        .call(Command::new("/system/resource/print"))
        .await
        .unwrap_err();
    match &err {
        Error::Timeout { command, after } => {
            assert_eq!(command, "/system/resource/print");
            assert_eq!(*after, Duration::from_millis(300));
        }
        other => panic!("expected a timeout, got {other:?}"),
    }
    assert!(started.elapsed() >= Duration::from_millis(300));
    drop(client);
    router.finish().await;
}

#[tokio::test]
async fn a_peer_that_never_answers_the_login_hits_the_connect_timeout() {
    let router = FakeRouter::start(|mut peer| async move {
        peer.expect("/login").await;
        peer.wait_closed().await;
    })
    .await;
    let err = Client::connect(&config(&router).connect_timeout(Duration::from_millis(300)))
        .await
        .unwrap_err();
    match &err {
        Error::ConnectTimeout { after, hint, .. } => {
            assert_eq!(*after, Duration::from_millis(300));
            assert!(hint.contains("login"), "{hint}");
        }
        other => panic!("expected ConnectTimeout, got {other:?}"),
    }
    router.finish().await;
}

#[tokio::test]
async fn fatal_ends_every_command_with_the_routers_reason() {
    let router = FakeRouter::start(|mut peer| async move {
        assert!(peer.login_plain(USER, PASSWORD).await);
        peer.expect("/log/print").await;
        peer.expect("/ip/address/print").await;
        peer.send(&["!fatal", "session terminated on request"])
            .await;
        peer.close().await;
    })
    .await;
    let client = Client::connect(&config(&router)).await.unwrap();
    let mut log = client.stream(Command::new("/log/print").follow_only());
    let call = {
        let client = client.clone();
        tokio::spawn(async move { client.call(Command::new("/ip/address/print")).await })
    };
    let from_stream = log.next().await.unwrap().unwrap_err();
    let from_call = call.await.unwrap().unwrap_err();
    for err in [from_stream, from_call] {
        match &err {
            Error::Fatal { reason } => assert_eq!(reason, "session terminated on request"),
            other => panic!("expected Fatal, got {other:?}"),
        }
    }
    assert!(log.next().await.is_none());
    router.finish().await;
}

/// `count` rows for the command `to` in one write: more than one socket read of the client
/// (64 KiB), so that what is sent after them waits in the socket while the client is not
/// reading.
fn many_rows(to: &net_peer::Sent, count: usize) -> Vec<u8> {
    let tag = format!(".tag={}", to.tag().unwrap());
    let padding = "x".repeat(100);
    let mut wire = Vec::new();
    for i in 0..count {
        let message = format!("=message={i} {padding}");
        routeros_proto::codec::encode_sentence(["!re", message.as_str(), tag.as_str()], &mut wire)
            .unwrap();
    }
    wire
}

fn message_number(row: &routeros_proto::Reply) -> usize {
    let message = row.get_str("message").unwrap();
    message.split(' ').next().unwrap().parse().unwrap()
}

#[tokio::test]
async fn a_full_stream_pauses_reading_instead_of_failing() {
    const ROWS: usize = 2_000;
    let router = FakeRouter::start(|mut peer| async move {
        assert!(peer.login_plain(USER, PASSWORD).await);
        let follow = peer.expect("/log/print").await;
        let resource = peer.expect("/system/resource/print").await;
        peer.send_raw(&many_rows(&follow, ROWS)).await;
        peer.reply(&resource, &["!re", "=cpu-load=3"]).await;
        peer.reply(&resource, &["!done"]).await;
        // Nothing was cancelled while the reader was slow: the next command is the
        // `/cancel` of dropping the follow at the end.
        let next = peer.expect("/cancel").await;
        assert_eq!(next.attr("tag"), follow.tag());
        peer.wait_closed().await;
    })
    .await;
    let client = Client::connect(&config(&router).stream_buffer(2))
        .await
        .unwrap();
    let mut log = client.stream(Command::new("/log/print").follow_only());
    let resource = {
        let client = client.clone();
        tokio::spawn(async move { client.call(Command::new("/system/resource/print")).await })
    };
    // Not reading for a while: the buffer fills up to its bound and stays there, and the
    // answer queued behind the rows in the socket cannot be read yet.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(log.buffered(), 2);
    assert!(!resource.is_finished());
    for i in 0..ROWS {
        let row = log.next().await.unwrap().unwrap();
        assert_eq!(message_number(&row), i);
        assert!(log.buffered() <= 2, "{}", log.buffered());
    }
    // Once the slow reader read on, the other command got its answer too.
    let resource = tokio::time::timeout(Duration::from_secs(5), resource)
        .await
        .expect("the other command is answered")
        .unwrap()
        .unwrap();
    assert_eq!(resource.rows[0].get_str("cpu-load").as_deref(), Some("3"));
    drop((log, client));
    router.finish().await;
}

#[tokio::test]
async fn a_stream_nobody_reads_is_failed_after_the_stall_timeout_and_others_go_on() {
    let router = FakeRouter::start(|mut peer| async move {
        assert!(peer.login_plain(USER, PASSWORD).await);
        let follow = peer.expect("/log/print").await;
        let resource = peer.expect("/system/resource/print").await;
        peer.send_raw(&many_rows(&follow, 2_000)).await;
        peer.reply(&resource, &["!re", "=cpu-load=3"]).await;
        peer.reply(&resource, &["!done"]).await;
        let cancel = peer.expect("/cancel").await;
        assert_eq!(cancel.attr("tag"), follow.tag());
        peer.reply(&follow, &["!trap", "=category=2", "=message=interrupted"])
            .await;
        peer.reply(&follow, &["!done"]).await;
        peer.reply(&cancel, &["!done"]).await;
        peer.wait_closed().await;
    })
    .await;
    let stall = Duration::from_millis(300);
    let client = Client::connect(
        &config(&router)
            .stream_buffer(4)
            .stream_stall_timeout(Some(stall)),
    )
    .await
    .unwrap();
    let started = tokio::time::Instant::now();
    let mut log = client.stream(Command::new("/log/print").follow_only());
    // Queued behind the unread rows in the socket: answered once the stuck stream is
    // failed and the client reads again.
    let resource = client
        .call(Command::new("/system/resource/print"))
        .await
        .unwrap();
    assert!(started.elapsed() >= stall, "{:?}", started.elapsed());
    assert_eq!(resource.rows[0].get_str("cpu-load").as_deref(), Some("3"));
    // What was buffered is still there, then the reason.
    for i in 0..4 {
        let row = log.next().await.unwrap().unwrap();
        assert_eq!(message_number(&row), i);
    }
    let err = log.next().await.unwrap().unwrap_err();
    match &err {
        Error::StreamStalled {
            waiting: 4, after, ..
        } => assert_eq!(*after, stall),
        other => panic!("expected StreamStalled, got {other:?}"),
    }
    assert!(err.to_string().contains("stream_stall_timeout"), "{err}");
    assert!(log.next().await.is_none());
    drop((log, client));
    router.finish().await;
}

#[tokio::test]
async fn a_slow_reader_that_keeps_reading_never_hits_the_stall_timeout() {
    let router = FakeRouter::start(|mut peer| async move {
        assert!(peer.login_plain(USER, PASSWORD).await);
        let print = peer.expect("/log/print").await;
        peer.send_raw(&many_rows(&print, 20)).await;
        peer.reply(&print, &["!done"]).await;
        peer.wait_closed().await;
    })
    .await;
    let stall = Duration::from_millis(200);
    let client = Client::connect(
        &config(&router)
            .stream_buffer(2)
            .stream_stall_timeout(Some(stall)),
    )
    .await
    .unwrap();
    let started = tokio::time::Instant::now();
    let mut log = client.stream(Command::new("/log/print"));
    let mut read = 0;
    while let Some(row) = log.next().await {
        assert_eq!(message_number(&row.unwrap()), read);
        read += 1;
        // One row per 50 ms: the whole read takes far longer than the stall timeout.
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(read, 20);
    assert!(started.elapsed() > 3 * stall, "{:?}", started.elapsed());
    drop((log, client));
    router.finish().await;
}

#[tokio::test]
async fn close_sends_quit_and_later_commands_fail() {
    let router = FakeRouter::start(|mut peer| async move {
        assert!(peer.login_plain(USER, PASSWORD).await);
        peer.expect("/quit").await;
        peer.send(&["!fatal", "session terminated on request"])
            .await;
        peer.wait_closed().await;
    })
    .await;
    let client = Client::connect(&config(&router)).await.unwrap();
    client.close().await;
    assert!(client.is_closed());
    let err = client
        .call(Command::new("/ip/address/print"))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Disconnected), "{err:?}");
    router.finish().await;
}

#[tokio::test]
async fn a_closed_port_is_a_connect_error_naming_the_address() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    let config = ClientConfig::new("127.0.0.1", USER, PASSWORD).port(port);
    let err = Client::connect(&config).await.unwrap_err();
    assert!(matches!(err, Error::Connect { .. }), "{err:?}");
    assert!(
        err.to_string().contains(&format!("127.0.0.1:{port}")),
        "{err}"
    );
}

#[tokio::test]
async fn the_password_never_shows_in_debug() {
    let config = ClientConfig::new("gw", USER, PASSWORD);
    let shown = format!("{config:?}");
    assert!(!shown.contains(PASSWORD), "{shown}");
    assert!(shown.contains("<hidden>"), "{shown}");
}

#[tokio::test]
async fn a_per_call_timeout_overrides_the_default() {
    let router = FakeRouter::start(|mut peer| async move {
        assert!(peer.login_plain(USER, PASSWORD).await);
        let slow = peer.expect("/ip/firewall/address-list/print").await;
        peer.expect("/cancel").await;
        // The connection goes on after a timeout.
        peer.reply(&slow, &["!done"]).await;
        answer_print(&mut peer).await;
        peer.wait_closed().await;
    })
    .await;
    // The default (60 s) would make this test hang; the call's own 200 ms does not.
    let client = Client::connect(&config(&router)).await.unwrap();
    let err = client
        .call_with_timeout(
            Command::new("/ip/firewall/address-list/print"),
            Some(Duration::from_millis(200)),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::Timeout { after, .. } if after == Duration::from_millis(200)),
        "{err:?}"
    );
    assert_print(&client).await;
    drop(client);
    router.finish().await;
}

#[tokio::test]
async fn an_unknown_reply_word_fails_its_command_only() {
    let router = FakeRouter::start(|mut peer| async move {
        assert!(peer.login_plain(USER, PASSWORD).await);
        let cmd = peer.expect("/system/resource/print").await;
        peer.reply(&cmd, &["!surprise", "=cpu-load=3"]).await;
        peer.reply(&cmd, &["!done"]).await;
        answer_print(&mut peer).await;
        peer.wait_closed().await;
    })
    .await;
    let client = Client::connect(&config(&router)).await.unwrap();
    let err = client
        .call(Command::new("/system/resource/print"))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::MalformedReply { .. }), "{err:?}");
    assert!(err.to_string().contains("!surprise"), "{err}");
    assert_print(&client).await;
    drop(client);
    router.finish().await;
}

#[tokio::test]
async fn empty_without_done_still_ends_the_command() {
    // One RouterOS release sent `!empty` and no `!done`.
    let router = FakeRouter::start(|mut peer| async move {
        assert!(peer.login_plain(USER, PASSWORD).await);
        let cmd = peer.expect("/ip/firewall/address-list/print").await;
        peer.reply(&cmd, &["!empty"]).await;
        peer.wait_closed().await;
    })
    .await;
    let mut protocol = routeros_proto::Config::default();
    protocol.empty_done_timeout = Duration::from_millis(200);
    let client = Client::connect(&config(&router).protocol(protocol))
        .await
        .unwrap();
    let response = client
        .call(Command::new("/ip/firewall/address-list/print"))
        .await
        .unwrap();
    assert!(response.empty && response.rows.is_empty());
    drop(client);
    router.finish().await;
}

#[tokio::test]
async fn commands_beyond_max_in_flight_wait_for_room_instead_of_failing() {
    let router = FakeRouter::start(|mut peer| async move {
        assert!(peer.login_plain(USER, PASSWORD).await);
        let first = peer.recv().await.unwrap();
        let second = peer.recv().await.unwrap();
        // Two are out; the third waits on the client side.
        let early = tokio::time::timeout(Duration::from_millis(200), peer.recv()).await;
        assert!(early.is_err(), "a third command was sent early: {early:?}");
        peer.reply(&first, &["!done"]).await;
        let third = peer.recv().await.unwrap();
        peer.reply(&second, &["!done"]).await;
        peer.reply(&third, &["!done"]).await;
        peer.wait_closed().await;
    })
    .await;
    let mut protocol = routeros_proto::Config::default();
    protocol.max_in_flight = 2;
    let client = Client::connect(&config(&router).protocol(protocol))
        .await
        .unwrap();
    let calls: Vec<_> = (0..3)
        .map(|i| {
            let client = client.clone();
            tokio::spawn(async move {
                client
                    .call(Command::new("/ip/firewall/address-list/add").attr("n", i.to_string()))
                    .await
            })
        })
        .collect();
    for call in calls {
        call.await.unwrap().unwrap();
    }
    drop(client);
    router.finish().await;
}

#[tokio::test]
async fn fatal_during_login_is_reported_as_the_connect_error() {
    // What a router at `max-sessions` may do.
    let router = FakeRouter::start(|mut peer| async move {
        peer.expect("/login").await;
        peer.send(&["!fatal", "too many commands before login"])
            .await;
        peer.close().await;
    })
    .await;
    let err = Client::connect(&config(&router)).await.unwrap_err();
    match &err {
        Error::Fatal { reason } => assert_eq!(reason, "too many commands before login"),
        other => panic!("expected Fatal, got {other:?}"),
    }
    router.finish().await;
}

#[tokio::test]
async fn a_peer_closing_between_replies_is_closed_not_mid_sentence() {
    let router = FakeRouter::start(|mut peer| async move {
        assert!(peer.login_plain(USER, PASSWORD).await);
        let cmd = peer.expect("/ip/address/print").await;
        peer.reply(&cmd, &["!re", "=.id=*1"]).await;
        peer.close().await;
    })
    .await;
    let client = Client::connect(&config(&router)).await.unwrap();
    let mut rows = client.stream(Command::new("/ip/address/print"));
    assert_eq!(
        rows.next().await.unwrap().unwrap().id().as_deref(),
        Some("*1")
    );
    let err = rows.next().await.unwrap().unwrap_err();
    assert!(
        matches!(
            err,
            Error::Closed {
                mid_sentence: false
            }
        ),
        "{err:?}"
    );
    assert!(rows.next().await.is_none());
    assert!(rows.is_finished());
    router.finish().await;
}
