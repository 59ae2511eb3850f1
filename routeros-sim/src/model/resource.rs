//! `/system/resource` and the router's own addresses (`/ip/address`, `/ipv6/address`).

use std::time::{Duration, SystemTime};

use super::address_list::{Family, normalize_address};
use super::{Record, bool_text, write_id};
use crate::duration::format_duration;

/// A RouterOS version number such as `7.18` or `7.18.2`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct RouterOsVersion {
    /// Major version (6, 7).
    pub major: u16,
    /// Minor version.
    pub minor: u16,
    /// Patch level (0 when absent).
    pub patch: u16,
}

impl RouterOsVersion {
    /// 7.18: `/system/logging/action` gets `remote-log-format` and `remote-protocol` and
    /// loses `bsd-syslog` (ROUTEROS.md section 5; ansible `community.routeros`
    /// `_api_data.py`, `system logging action`).
    pub const REMOTE_LOG_FORMAT: Self = Self::new(7, 18, 0);
    /// 7.19.6: logging actions get `vrf` (ansible `_api_data.py`, `system logging action`).
    pub const LOGGING_VRF: Self = Self::new(7, 19, 6);

    /// The version `major.minor.patch`.
    pub const fn new(major: u16, minor: u16, patch: u16) -> Self {
        Self {
            major,
            minor,
            patch,
        }
    }

    /// Whether this version's logging actions have `remote-log-format` and
    /// `remote-protocol` instead of `bsd-syslog` (7.18 and later).
    pub fn has_remote_log_format(self) -> bool {
        self >= Self::REMOTE_LOG_FORMAT
    }

    /// Parses `7.18`, `7.18.2` or `7.18.2 (stable)`.
    pub fn parse(text: &str) -> Option<Self> {
        let number = text.split_whitespace().next()?;
        let mut parts = number.split('.');
        let major = parts.next()?.parse().ok()?;
        let minor = parts.next().map_or(Some(0), |p| p.parse().ok())?;
        let patch = parts.next().map_or(Some(0), |p| p.parse().ok())?;
        if parts.next().is_some() {
            return None;
        }
        Some(Self {
            major,
            minor,
            patch,
        })
    }

    /// Whether this version answers an empty print with `!empty` (7.18 and later).
    pub fn sends_empty(self) -> bool {
        self >= Self {
            major: 7,
            minor: 18,
            patch: 0,
        }
    }
}

impl std::fmt::Display for RouterOsVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.patch == 0 {
            write!(f, "{}.{}", self.major, self.minor)
        } else {
            write!(f, "{}.{}.{}", self.major, self.minor, self.patch)
        }
    }
}

/// What `/system/resource/print` shows.
#[derive(Debug, Clone)]
pub(crate) struct Resource {
    pub version: RouterOsVersion,
    pub board_name: String,
    pub cpu_load: u8,
    pub boot_time: SystemTime,
}

pub(crate) struct ResourceRow<'a> {
    pub resource: &'a Resource,
    pub uptime: Duration,
}

const RESOURCE_FIELDS: &[&str] = &[
    "uptime",
    "version",
    "build-time",
    "factory-software",
    "free-memory",
    "total-memory",
    "cpu",
    "cpu-count",
    "cpu-frequency",
    "cpu-load",
    "free-hdd-space",
    "total-hdd-space",
    "architecture-name",
    "board-name",
    "platform",
];

impl Record for ResourceRow<'_> {
    fn fields(&self) -> &'static [&'static str] {
        RESOURCE_FIELDS
    }

    fn write_field(&self, name: &str, _now: SystemTime, out: &mut Vec<u8>) -> bool {
        let r = self.resource;
        let text: &str = match name {
            "uptime" => &format_duration(Duration::from_secs(self.uptime.as_secs())),
            "version" => &format!("{} (stable)", r.version),
            "build-time" => "2025-02-24 13:36:11",
            "factory-software" => "7.4.1",
            "free-memory" => "805306368",
            "total-memory" => "1073741824",
            "cpu" => "ARM64",
            "cpu-count" => "4",
            "cpu-frequency" => "1400",
            "cpu-load" => &r.cpu_load.to_string(),
            "free-hdd-space" => "929890304",
            "total-hdd-space" => "1073741824",
            "architecture-name" => "arm64",
            "board-name" => &r.board_name,
            "platform" => "MikroTik",
            _ => return false,
        };
        out.extend_from_slice(text.as_bytes());
        true
    }
}

/// One of the router's own addresses: never block these.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnAddress {
    /// Internal id.
    pub id: u64,
    /// `ip/prefix`, e.g. `192.0.2.1/24`.
    pub address: String,
    /// Interface name, e.g. `ether1`.
    pub interface: String,
}

const ADDRESS_FIELDS: &[&str] = &[
    ".id",
    "address",
    "network",
    "interface",
    "actual-interface",
    "invalid",
    "dynamic",
    "disabled",
];

impl Record for OwnAddress {
    fn fields(&self) -> &'static [&'static str] {
        ADDRESS_FIELDS
    }

    fn write_field(&self, name: &str, _now: SystemTime, out: &mut Vec<u8>) -> bool {
        match name {
            ".id" => write_id(out, self.id),
            "address" => out.extend_from_slice(self.address.as_bytes()),
            "network" => {
                let family = if self.address.contains(':') {
                    Family::V6
                } else {
                    Family::V4
                };
                let Some(net) = normalize_address(&self.address, family) else {
                    return false;
                };
                out.extend_from_slice(net.split('/').next().unwrap_or(&net).as_bytes());
            }
            "interface" | "actual-interface" => out.extend_from_slice(self.interface.as_bytes()),
            "invalid" | "dynamic" | "disabled" => out.extend_from_slice(bool_text(false)),
            _ => return false,
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_parse_and_compare() {
        let v = RouterOsVersion::parse("7.18.2 (stable)").unwrap();
        assert_eq!((v.major, v.minor, v.patch), (7, 18, 2));
        assert!(v.sends_empty());
        assert!(!RouterOsVersion::parse("7.17").unwrap().sends_empty());
        assert!(RouterOsVersion::parse("7.18").unwrap().sends_empty());
        assert!(!RouterOsVersion::parse("6.49.10").unwrap().sends_empty());
        assert_eq!(RouterOsVersion::parse("seven"), None);
        assert_eq!(RouterOsVersion::parse("7.18").unwrap().to_string(), "7.18");
    }

    #[test]
    fn own_address_prints_network() {
        let a = OwnAddress {
            id: 1,
            address: "192.0.2.1/24".into(),
            interface: "ether1".into(),
        };
        assert_eq!(
            a.field("network", SystemTime::UNIX_EPOCH).unwrap().as_ref(),
            b"192.0.2.0"
        );
    }
}
