//! The configuration menus the simulator has, as [`Menu`] descriptions for the generic
//! [`ConfigTable`], and the rows a fresh RouterOS 7 has in them.

use super::config::{ConfigTable, Kind, Menu, prop};
use super::resource::RouterOsVersion;
use super::users::Policies;

const RW: &[&str] = &[
    "print", "getall", "add", "set", "remove", "enable", "disable",
];
const RW_ORDERED: &[&str] = &[
    "print", "getall", "add", "set", "remove", "enable", "disable", "move",
];

const NO: Option<&str> = Some("false");

/// `/user`.
pub(crate) static USER: Menu = Menu {
    path: "/user",
    verbs: RW,
    props: &[
        prop("name", Kind::Text, None),
        prop("group", Kind::Text, None),
        prop("address", Kind::Text, None),
        prop("last-logged-in", Kind::ReadOnly, None),
        prop("disabled", Kind::Bool, NO),
        prop("comment", Kind::Text, None),
        prop("password", Kind::Secret, None),
    ],
    required: &["name", "group"],
    unique: Some(("name", "user")),
    needs_policy: true,
    fields: &[
        ".id",
        "name",
        "group",
        "address",
        "last-logged-in",
        "disabled",
        "comment",
    ],
};

/// `/user/group`.
pub(crate) static USER_GROUP: Menu = Menu {
    path: "/user/group",
    verbs: &["print", "getall", "add", "set", "remove"],
    props: &[
        prop("name", Kind::Text, None),
        prop("policy", Kind::Policy, None),
        prop("skin", Kind::Text, Some("default")),
        prop("comment", Kind::Text, None),
    ],
    required: &["name", "policy"],
    unique: Some(("name", "group")),
    needs_policy: true,
    fields: &[".id", "name", "policy", "skin", "comment"],
};

const FILTER_ACTIONS: &[&str] = &[
    "accept",
    "drop",
    "reject",
    "log",
    "passthrough",
    "jump",
    "return",
    "tarpit",
    "fasttrack-connection",
    "add-src-to-address-list",
    "add-dst-to-address-list",
];
const RAW_ACTIONS: &[&str] = &[
    "accept",
    "drop",
    "log",
    "passthrough",
    "jump",
    "return",
    "notrack",
    "add-src-to-address-list",
    "add-dst-to-address-list",
];
const CONNECTION_STATES: &[&str] = &["established", "related", "new", "invalid", "untracked"];

/// The properties of a firewall rule; `stateful` adds `connection-state` (raw rules see
/// packets before connection tracking and have no such property).
macro_rules! firewall_menu {
    ($path:literal, $actions:expr, stateful) => {
        firewall_menu!(@menu $path, $actions,
            [prop("connection-state", Kind::ChoiceList(CONNECTION_STATES), None),],
            ["connection-state",])
    };
    ($path:literal, $actions:expr, stateless) => {
        firewall_menu!(@menu $path, $actions, [], [])
    };
    (@menu $path:literal, $actions:expr, [$($state:expr,)*], [$($state_name:literal,)*]) => {
        Menu {
            path: $path,
            verbs: RW_ORDERED,
            props: &[
                prop("chain", Kind::Text, None),
                prop("action", Kind::Choice($actions), Some("accept")),
                prop("src-address", Kind::Text, None),
                prop("dst-address", Kind::Text, None),
                prop("src-address-list", Kind::Text, None),
                prop("dst-address-list", Kind::Text, None),
                prop("protocol", Kind::Text, None),
                prop("src-port", Kind::Text, None),
                prop("dst-port", Kind::Text, None),
                prop("in-interface", Kind::Text, None),
                prop("out-interface", Kind::Text, None),
                prop("in-interface-list", Kind::Text, None),
                $($state,)*
                prop("jump-target", Kind::Text, None),
                prop("address-list", Kind::Text, None),
                prop("address-list-timeout", Kind::Text, None),
                prop("log", Kind::Bool, NO),
                prop("log-prefix", Kind::Text, Some("")),
                prop("bytes", Kind::ReadOnly, Some("0")),
                prop("packets", Kind::ReadOnly, Some("0")),
                prop("invalid", Kind::ReadOnly, NO),
                prop("dynamic", Kind::ReadOnly, NO),
                prop("disabled", Kind::Bool, NO),
                prop("comment", Kind::Text, None),
            ],
            required: &["chain"],
            unique: None,
            needs_policy: false,
            fields: &[
                ".id",
                "chain",
                "action",
                "src-address",
                "dst-address",
                "src-address-list",
                "dst-address-list",
                "protocol",
                "src-port",
                "dst-port",
                "in-interface",
                "out-interface",
                "in-interface-list",
                $($state_name,)*
                "jump-target",
                "address-list",
                "address-list-timeout",
                "log",
                "log-prefix",
                "bytes",
                "packets",
                "invalid",
                "dynamic",
                "disabled",
                "comment",
            ],
        }
    };
}

/// `/ip/firewall/filter`.
pub(crate) static IP_FIREWALL_FILTER: Menu =
    firewall_menu!("/ip/firewall/filter", FILTER_ACTIONS, stateful);
/// `/ip/firewall/raw`.
pub(crate) static IP_FIREWALL_RAW: Menu =
    firewall_menu!("/ip/firewall/raw", RAW_ACTIONS, stateless);
/// `/ipv6/firewall/filter`.
pub(crate) static IPV6_FIREWALL_FILTER: Menu =
    firewall_menu!("/ipv6/firewall/filter", FILTER_ACTIONS, stateful);
/// `/ipv6/firewall/raw`.
pub(crate) static IPV6_FIREWALL_RAW: Menu =
    firewall_menu!("/ipv6/firewall/raw", RAW_ACTIONS, stateless);

/// `/certificate`. `sign` is answered by the router (it makes a real certificate).
pub(crate) static CERTIFICATE: Menu = Menu {
    path: "/certificate",
    verbs: &["print", "getall", "add", "set", "remove", "sign"],
    props: &[
        prop("name", Kind::Text, None),
        prop("common-name", Kind::Text, None),
        prop("subject-alt-name", Kind::Text, None),
        prop(
            "key-size",
            Kind::Choice(&[
                "1024",
                "1536",
                "2048",
                "4096",
                "8192",
                "prime256v1",
                "secp384r1",
                "secp521r1",
            ]),
            Some("2048"),
        ),
        prop("days-valid", Kind::Number(1, 36_500), Some("365")),
        prop("key-usage", Kind::Text, None),
        prop("trusted", Kind::Bool, NO),
        prop("private-key", Kind::ReadOnly, NO),
        prop("ca", Kind::ReadOnly, NO),
        prop("issued", Kind::ReadOnly, NO),
        prop("fingerprint", Kind::ReadOnly, None),
        prop("invalid-before", Kind::ReadOnly, None),
        prop("invalid-after", Kind::ReadOnly, None),
    ],
    required: &["name", "common-name"],
    unique: Some(("name", "certificate")),
    needs_policy: false,
    fields: &[
        ".id",
        "name",
        "common-name",
        "subject-alt-name",
        "key-size",
        "days-valid",
        "key-usage",
        "trusted",
        "private-key",
        "ca",
        "issued",
        "fingerprint",
        "invalid-before",
        "invalid-after",
    ],
};

/// `/ip/service`: fixed rows, only `set`, `enable` and `disable` change them.
pub(crate) static IP_SERVICE: Menu = Menu {
    path: "/ip/service",
    verbs: &["print", "getall", "set", "enable", "disable"],
    props: &[
        prop("name", Kind::ReadOnly, None),
        prop("port", Kind::Number(1, 65_535), None),
        prop("address", Kind::Text, None),
        prop("certificate", Kind::Text, None),
        prop(
            "tls-version",
            Kind::Choice(&["any", "only-1.2", "only-1.3"]),
            None,
        ),
        prop("vrf", Kind::Text, None),
        prop("max-sessions", Kind::Number(1, 1_000), None),
        prop("invalid", Kind::ReadOnly, None),
        prop("disabled", Kind::Bool, None),
    ],
    required: &[],
    unique: Some(("name", "service")),
    needs_policy: false,
    fields: &[
        ".id",
        "name",
        "port",
        "address",
        "certificate",
        "tls-version",
        "vrf",
        "max-sessions",
        "invalid",
        "disabled",
    ],
};

const FACILITIES: &[&str] = &[
    "kern", "user", "mail", "daemon", "auth", "syslog", "lpr", "news", "uucp", "cron", "authpriv",
    "ftp", "local0", "local1", "local2", "local3", "local4", "local5", "local6", "local7",
];
const SEVERITIES: &[&str] = &[
    "auto",
    "emergency",
    "alert",
    "critical",
    "error",
    "warning",
    "notice",
    "info",
    "debug",
];

/// The properties every `/system/logging/action` has, whatever the version.
macro_rules! logging_action_menu {
    ([$($prop:expr,)*], [$($field:literal,)*]) => {
        Menu {
            path: "/system/logging/action",
            verbs: &["print", "getall", "add", "set", "remove"],
            props: &[
                prop("name", Kind::Text, None),
                prop(
                    "target",
                    Kind::Choice(&["memory", "disk", "echo", "remote", "email"]),
                    None,
                ),
                prop("memory-lines", Kind::Number(1, 65_535), None),
                prop("disk-file-name", Kind::Text, None),
                prop("remember", Kind::Bool, None),
                prop("remote", Kind::Text, None),
                prop("remote-port", Kind::Number(1, 65_535), None),
                prop("src-address", Kind::Text, None),
                prop("syslog-facility", Kind::Choice(FACILITIES), None),
                prop("syslog-severity", Kind::Choice(SEVERITIES), None),
                prop("syslog-time-format", Kind::Choice(&["bsd-syslog", "iso8601"]), None),
                $($prop,)*
                prop("default", Kind::ReadOnly, NO),
            ],
            required: &["name", "target"],
            unique: Some(("name", "action")),
            needs_policy: false,
            fields: &[
                ".id",
                "name",
                "target",
                "memory-lines",
                "disk-file-name",
                "remember",
                "remote",
                "remote-port",
                "src-address",
                "syslog-facility",
                "syslog-severity",
                "syslog-time-format",
                $($field,)*
                "default",
            ],
        }
    };
}

/// The 7.18+ remote logging properties (ROUTEROS.md section 5; field list and defaults as
/// in ansible `community.routeros` `plugins/module_utils/_api_data.py`, path
/// `system logging action`, whose `versioned_fields` gate `remote-log-format`,
/// `remote-protocol` and `cef-event-delimiter` at `>= 7.18` and `bsd-syslog` at `< 7.18`).
/// `tls` and `check-certificate` are in MikroTik's current manual (ROUTEROS.md section 5).
macro_rules! modern_logging_action_menu {
    ([$($prop:expr,)*], [$($field:literal,)*]) => {
        logging_action_menu!(
            [
                prop("remote-protocol", Kind::Choice(&["udp", "tcp", "tls"]), None),
                prop("remote-log-format", Kind::Choice(&["default", "syslog", "cef"]), None),
                prop("cef-event-delimiter", Kind::Text, None),
                prop("check-certificate", Kind::Bool, None),
                $($prop,)*
            ],
            [
                "remote-protocol",
                "remote-log-format",
                "cef-event-delimiter",
                "check-certificate",
                $($field,)*
            ]
        )
    };
}

/// `/system/logging/action` before 7.18: remote actions have `bsd-syslog`, UDP only.
pub(crate) static LOGGING_ACTION_LEGACY: Menu =
    logging_action_menu!([prop("bsd-syslog", Kind::Bool, None),], ["bsd-syslog",]);

/// `/system/logging/action` from 7.18: `remote-protocol`, `remote-log-format`; no
/// `bsd-syslog` any more (setting it is an unknown parameter).
pub(crate) static LOGGING_ACTION: Menu = modern_logging_action_menu!([], []);

/// `/system/logging/action` from 7.19.6, which adds `vrf` (ansible `_api_data.py` gates it
/// at `>= 7.19.6`).
pub(crate) static LOGGING_ACTION_VRF: Menu =
    modern_logging_action_menu!([prop("vrf", Kind::Text, None),], ["vrf",]);

/// `/system/logging`: which topics go to which action.
pub(crate) static LOGGING: Menu = Menu {
    path: "/system/logging",
    verbs: &[
        "print", "getall", "add", "set", "remove", "enable", "disable",
    ],
    props: &[
        prop("topics", Kind::Text, None),
        prop("prefix", Kind::Text, Some("")),
        prop("action", Kind::Text, None),
        prop("invalid", Kind::ReadOnly, NO),
        prop("default", Kind::ReadOnly, NO),
        prop("disabled", Kind::Bool, NO),
    ],
    required: &["topics", "action"],
    unique: None,
    needs_policy: false,
    fields: &[
        ".id", "topics", "prefix", "action", "invalid", "default", "disabled",
    ],
};

/// The `/system/logging/action` menu of RouterOS `version`.
pub(crate) fn logging_action(version: RouterOsVersion) -> &'static Menu {
    if version < RouterOsVersion::REMOTE_LOG_FORMAT {
        &LOGGING_ACTION_LEGACY
    } else if version < RouterOsVersion::LOGGING_VRF {
        &LOGGING_ACTION
    } else {
        &LOGGING_ACTION_VRF
    }
}

/// Every configuration menu of RouterOS `version`.
pub(crate) fn all(version: RouterOsVersion) -> [&'static Menu; 10] {
    [
        &USER,
        &USER_GROUP,
        &IP_FIREWALL_FILTER,
        &IP_FIREWALL_RAW,
        &IPV6_FIREWALL_FILTER,
        &IPV6_FIREWALL_RAW,
        &CERTIFICATE,
        &IP_SERVICE,
        logging_action(version),
        &LOGGING,
    ]
}

/// The tables of a fresh RouterOS `version`: default groups, services, logging actions
/// and rules (user `admin` is added by the router).
pub(crate) fn defaults(version: RouterOsVersion) -> Vec<ConfigTable> {
    all(version)
        .into_iter()
        .map(|menu| {
            let mut t = ConfigTable::new(menu);
            for row in default_rows(menu) {
                t.add_builtin(
                    &row.iter()
                        .map(|(k, v)| (*k, v.as_str()))
                        .collect::<Vec<_>>(),
                );
            }
            t
        })
        .collect()
}

fn default_rows(menu: &'static Menu) -> Vec<Vec<(&'static str, String)>> {
    let row = |pairs: &[(&'static str, &str)]| -> Vec<(&'static str, String)> {
        pairs.iter().map(|(k, v)| (*k, (*v).to_owned())).collect()
    };
    match menu.path {
        "/user/group" => {
            let read = Policies::FULL
                .without(super::users::Policy::Ftp)
                .without(super::users::Policy::Write)
                .without(super::users::Policy::Policy);
            let write = read.with(super::users::Policy::Write);
            [("read", read), ("write", write), ("full", Policies::FULL)]
                .into_iter()
                .map(|(name, p)| {
                    vec![
                        ("name", name.to_owned()),
                        ("policy", p.to_string()),
                        ("skin", "default".to_owned()),
                    ]
                })
                .collect()
        }
        "/ip/service" => [
            ("telnet", "23"),
            ("ftp", "21"),
            ("www", "80"),
            ("ssh", "22"),
            ("www-ssl", "443"),
            ("api", "8728"),
            ("winbox", "8291"),
            ("api-ssl", "8729"),
        ]
        .into_iter()
        .map(|(name, port)| {
            row(&[
                ("name", name),
                ("port", port),
                ("address", ""),
                ("certificate", "none"),
                ("tls-version", "any"),
                ("vrf", "main"),
                ("max-sessions", "20"),
                ("invalid", "false"),
                ("disabled", "false"),
            ])
        })
        .collect(),
        "/system/logging/action" => vec![
            row(&[
                ("name", "memory"),
                ("target", "memory"),
                ("memory-lines", "1000"),
                ("default", "true"),
            ]),
            row(&[
                ("name", "disk"),
                ("target", "disk"),
                ("disk-file-name", "log"),
                ("default", "true"),
            ]),
            row(&[
                ("name", "echo"),
                ("target", "echo"),
                ("remember", "true"),
                ("default", "true"),
            ]),
            {
                let mut remote = row(&[
                    ("name", "remote"),
                    ("target", "remote"),
                    ("remote", "0.0.0.0"),
                ]);
                remote.extend(remote_action_defaults(menu).map(|(k, v)| (k, v.to_owned())));
                remote.push(("default", "true".to_owned()));
                remote
            },
        ],
        "/system/logging" => [
            ("info", "memory"),
            ("error", "memory"),
            ("warning", "memory"),
            ("critical", "echo"),
        ]
        .into_iter()
        .map(|(topics, action)| {
            row(&[
                ("topics", topics),
                ("prefix", ""),
                ("action", action),
                ("invalid", "false"),
                ("default", "true"),
                ("disabled", "false"),
            ])
        })
        .collect(),
        _ => Vec::new(),
    }
}

/// Properties a new remote logging action gets when not given, as on a router: defaults
/// from ansible `community.routeros` `_api_data.py` (`system logging action`) and
/// ROUTEROS.md section 5. Only those the menu of the router's version has are used.
const REMOTE_ACTION_DEFAULTS: &[(&str, &str)] = &[
    ("remote-port", "514"),
    ("src-address", "0.0.0.0"),
    ("syslog-facility", "daemon"),
    ("syslog-severity", "auto"),
    ("syslog-time-format", "bsd-syslog"),
    ("bsd-syslog", "false"),
    ("remote-protocol", "udp"),
    ("remote-log-format", "default"),
    ("cef-event-delimiter", "\r\n"),
    ("check-certificate", "false"),
    ("vrf", "main"),
];

/// The remote action defaults `menu` (a `/system/logging/action` of some version) has.
pub(crate) fn remote_action_defaults(
    menu: &'static Menu,
) -> impl Iterator<Item = (&'static str, &'static str)> {
    REMOTE_ACTION_DEFAULTS
        .iter()
        .copied()
        .filter(move |(k, _)| menu.prop(k).is_some())
}
