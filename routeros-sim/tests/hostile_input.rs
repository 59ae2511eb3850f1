//! Nothing a peer sends may panic the router: arbitrary sentences through the core, and
//! arbitrary bytes through a real socket.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use proptest::prelude::*;
use routeros_sim::{Outcome, Request, Router, RouterConfig, Service, Session};

const COMMANDS: &[&str] = &[
    "/login",
    "/ip/firewall/address-list/add",
    "/ip/firewall/address-list/print",
    "/ip/firewall/address-list/set",
    "/ip/firewall/address-list/remove",
    "/ipv6/firewall/address-list/add",
    "/ip/firewall/connection/print",
    "/ip/firewall/connection/remove",
    "/log/print",
    "/log/info",
    "/system/resource/print",
    "/cancel",
    "/nonsense",
];

fn word() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..24),
        "[=?.][a-z.#!&|<>-]{0,8}(=[ -~é]{0,16})?".prop_map(String::into_bytes),
        prop_oneof![
            Just("=list=bl"),
            Just("=address=198.51.100.7"),
            Just("=address=2001:db8::/33"),
            Just("=timeout=1d00:00:00"),
            Just("=timeout=é1:00:00"),
            Just("=.id=*1,*zz,"),
            Just("=count-only="),
            Just("=follow-only="),
            Just("?#0.1|&!."),
            Just("?<orig-bytes=9"),
            Just("=name=admin"),
            Just("=password="),
        ]
        .prop_map(|s| s.as_bytes().to_vec()),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn arbitrary_sentences_never_panic_the_core(
        command in proptest::sample::select(COMMANDS),
        words in proptest::collection::vec(word(), 0..8),
    ) {
        let router = Router::new(RouterConfig::default());
        let mut session = Session::new("127.0.0.1".parse().unwrap(), Service::Api);
        let login = Request::new("/login").attr("name", "admin").attr("password", "");
        router.execute(&mut session, &login);
        let mut sentence = vec![command.as_bytes().to_vec()];
        sentence.extend(words);
        let request = Request::from_words(&sentence).unwrap();
        match router.execute(&mut session, &request) {
            Outcome::Reply(replies) => {
                let last = replies.last().expect("every reply ends with a sentence");
                prop_assert_eq!(last.reply_word(), b"!done");
            }
            Outcome::Follow { follow, .. } => {
                let mut follow = follow;
                router.log("script,info", "x");
                let _ = router.poll_follow(&mut follow);
            }
            Outcome::Cancel { .. } | Outcome::Close(_) => {}
            _ => {}
        }
    }
}

#[tokio::test]
async fn random_bytes_on_a_socket_end_in_fatal_or_close_and_the_server_lives_on() {
    let (_router, server) = common::start(RouterConfig::default()).await;
    let mut seed = 0x5eed_u64;
    for _ in 0..20 {
        let mut c = common::Client::connect(server.local_addr()).await;
        let junk: Vec<u8> = (0..512)
            .map(|_| {
                seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
                (seed >> 56) as u8
            })
            .collect();
        c.send_raw(&junk).await;
        drop(c);
    }
    // The server still serves.
    let mut c = common::admin(&server).await;
    let reply = c.call(&["/system/identity/print"]).await;
    assert_eq!(reply.last().unwrap()[0], "!done");
}
