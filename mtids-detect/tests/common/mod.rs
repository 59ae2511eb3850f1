//! Event builders shared by the detector tests.
#![allow(dead_code)]

pub mod mixed_log;

use std::borrow::Cow;
use std::net::IpAddr;

use mtids_detect::{
    Auth, AuthKind, AuthSource, ConnectionSample, Endpoint, Event, FirewallLog, Protocol,
    ResourceSample, TcpFlags,
};

pub fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// A logged TCP SYN from `src` to `dst:port` on the input chain.
pub fn syn(src: IpAddr, dst: IpAddr, port: u16) -> Event<'static> {
    Event::Firewall(FirewallLog {
        prefix: Some(Cow::Borrowed("SCAN")),
        chain: Cow::Borrowed("input"),
        in_interface: Some(Cow::Borrowed("ether1")),
        out_interface: None,
        connection_state: Some(Cow::Borrowed("new")),
        src_mac: None,
        protocol: Protocol::Tcp,
        tcp_flags: TcpFlags::SYN,
        icmp: None,
        src: Endpoint::new(src, 40_000),
        dst: Endpoint::new(dst, port),
        nat: None,
        length: Some(60),
    })
}

/// A login event.
pub fn auth(kind: AuthKind, source: AuthSource, user: &str, service: &str) -> Event<'static> {
    Event::Auth(Auth {
        kind,
        user: Cow::Owned(user.to_string()),
        source,
        service: Some(Cow::Owned(service.to_string())),
    })
}

pub fn failure(src: IpAddr, user: &str, service: &str) -> Event<'static> {
    auth(AuthKind::Failure, AuthSource::Ip(src), user, service)
}

pub fn login(src: IpAddr, user: &str) -> Event<'static> {
    auth(AuthKind::Success, AuthSource::Ip(src), user, "winbox")
}

pub fn cpu(load: u8) -> Event<'static> {
    Event::Resource(ResourceSample {
        cpu_load: load,
        uptime: None,
    })
}

/// A connection-table row.
#[allow(clippy::too_many_arguments)]
pub fn conn(
    id: &str,
    protocol: Protocol,
    src: IpAddr,
    dst: IpAddr,
    dst_port: u16,
    orig: u64,
    repl: u64,
) -> Event<'static> {
    Event::Connection(ConnectionSample {
        id: Some(Cow::Owned(id.to_string())),
        protocol,
        src: Endpoint::new(src, 50_000),
        dst: Endpoint::new(dst, dst_port),
        orig_packets: orig,
        repl_packets: repl,
        orig_bytes: None,
        repl_bytes: None,
        tcp_state: Some(Cow::Borrowed("syn-sent")),
        seen_reply: Some(false),
        assured: Some(false),
    })
}
