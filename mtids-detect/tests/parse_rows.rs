//! Connection-table and resource rows from the API, as `(name, value)` pairs.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::borrow::Cow;
use std::time::Duration;

use mtids_detect::{
    ConnectionSample, Endpoint, Protocol, ResourceSample, RowError, parse_connection_row,
    parse_resource_row,
};

fn ep(ip: &str, port: u16) -> Endpoint {
    Endpoint::new(ip.parse().unwrap(), port)
}

#[test]
fn full_row_with_ports_in_the_address_fields() {
    let row = [
        (".id", "*1A2B"),
        ("protocol", "tcp"),
        ("src-address", "198.51.100.7:40384"),
        ("dst-address", "192.0.2.1:443"),
        ("reply-src-address", "192.0.2.1:443"),
        ("tcp-state", "syn-received"),
        ("timeout", "4s"),
        ("orig-packets", "7"),
        ("orig-bytes", "420"),
        ("repl-packets", "1"),
        ("repl-bytes", "60"),
        ("seen-reply", "true"),
        ("assured", "false"),
        ("connection-type", ""),
    ];
    assert_eq!(
        parse_connection_row(row),
        Ok(ConnectionSample {
            id: Some(Cow::Borrowed("*1A2B")),
            protocol: Protocol::Tcp,
            src: ep("198.51.100.7", 40384),
            dst: ep("192.0.2.1", 443),
            orig_packets: 7,
            repl_packets: 1,
            orig_bytes: Some(420),
            repl_bytes: Some(60),
            tcp_state: Some(Cow::Borrowed("syn-received")),
            seen_reply: Some(true),
            assured: Some(false),
        })
    );
}

#[test]
fn separate_port_fields_and_ipv6() {
    let row = [
        ("protocol", "udp"),
        ("src-address", "2001:db8::7"),
        ("src-port", "5353"),
        ("dst-address", "2001:db8::1"),
        ("dst-port", "53"),
        ("orig-packets", "4"),
        ("repl-packets", "0"),
    ];
    let c = parse_connection_row(row).unwrap();
    assert_eq!(c.protocol, Protocol::Udp);
    assert_eq!(c.src, ep("2001:db8::7", 5353));
    assert_eq!(c.dst, ep("2001:db8::1", 53));
    assert_eq!((c.orig_bytes, c.tcp_state, c.id), (None, None, None));

    let row = [
        ("protocol", "tcp"),
        ("src-address", "[2001:db8::7]:40000"),
        ("dst-address", "[2001:db8::1]:8443"),
        ("orig-packets", "4"),
        ("repl-packets", "0"),
    ];
    let c = parse_connection_row(row).unwrap();
    assert_eq!(c.src, ep("2001:db8::7", 40000));
    assert_eq!(c.dst, ep("2001:db8::1", 8443));
}

#[test]
fn icmp_rows_have_no_ports() {
    let row = [
        ("protocol", "icmp"),
        ("src-address", "198.51.100.7"),
        ("dst-address", "192.0.2.1"),
        ("orig-packets", "3"),
        ("repl-packets", "3"),
    ];
    let c = parse_connection_row(row).unwrap();
    assert_eq!(c.src, Endpoint::ip("198.51.100.7".parse().unwrap()));
    assert_eq!(c.dst.port, None);
}

#[test]
fn errors_name_the_field() {
    let base = [
        ("protocol", "tcp"),
        ("src-address", "198.51.100.7:1"),
        ("dst-address", "192.0.2.1:443"),
        ("orig-packets", "4"),
        ("repl-packets", "0"),
    ];
    for skip in 0..base.len() {
        let row = base
            .iter()
            .enumerate()
            .filter(|(i, _)| *i != skip)
            .map(|(_, f)| *f);
        let field = base[skip].0;
        assert_eq!(parse_connection_row(row), Err(RowError::Missing { field }));
    }
    let mut bad = base;
    bad[1] = ("src-address", "198.51.100.7:70000");
    let err = parse_connection_row(bad).unwrap_err();
    assert_eq!(
        err,
        RowError::Invalid {
            field: "src-address",
            value: "198.51.100.7:70000".into()
        }
    );
    assert_eq!(
        err.to_string(),
        "row has an invalid `src-address`: \"198.51.100.7:70000\""
    );
    let mut bad = base;
    bad[4] = ("repl-packets", "-1");
    assert!(matches!(
        parse_connection_row(bad),
        Err(RowError::Invalid {
            field: "repl-packets",
            ..
        })
    ));
    assert_eq!(
        RowError::Missing {
            field: "repl-packets"
        }
        .to_string(),
        "row has no `repl-packets` (add it to the .proplist)"
    );
}

#[test]
fn resource_rows() {
    let row = [
        ("cpu-load", "12"),
        ("uptime", "1w2d3h4m5s"),
        ("version", "7.16 (stable)"),
    ];
    assert_eq!(
        parse_resource_row(row),
        Ok(ResourceSample {
            cpu_load: 12,
            uptime: Some(Duration::from_secs(788_645))
        })
    );
    assert_eq!(
        parse_resource_row([("cpu-load", "100")]),
        Ok(ResourceSample {
            cpu_load: 100,
            uptime: None
        })
    );
    assert_eq!(
        parse_resource_row([("uptime", "5s")]),
        Err(RowError::Missing { field: "cpu-load" })
    );
    assert_eq!(
        parse_resource_row([("cpu-load", "101")]),
        Err(RowError::Invalid {
            field: "cpu-load",
            value: "101".into()
        })
    );
    assert!(matches!(
        parse_resource_row([("cpu-load", "5"), ("uptime", "forever")]),
        Err(RowError::Invalid {
            field: "uptime",
            ..
        })
    ));
}
