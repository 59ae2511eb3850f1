//! `/ip/firewall/address-list` and `/ipv6/firewall/address-list`.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::{Duration, SystemTime};

use super::{ChangeFeed, Record, Trap, bool_text, parse_bool, write_id};
use crate::duration::{format_duration, format_full_time, parse_duration};
use crate::sentence::{Request, TrapCategory};

/// IPv4 or IPv6: which address-list menu a table serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Family {
    /// `/ip/firewall/address-list`.
    V4,
    /// `/ipv6/firewall/address-list`.
    V6,
}

/// One address-list entry as the router keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddressListEntry {
    /// Internal id (printed as `*HEX`).
    pub id: u64,
    /// The list name.
    pub list: String,
    /// The address, normalised as the router stores it (`192.0.2.0/24`, `198.51.100.7`,
    /// `2001:db8::1/128`).
    pub address: String,
    /// The comment, as bytes (routers carry non-UTF-8 comments).
    pub comment: Option<Vec<u8>>,
    /// Whether the entry is disabled.
    pub disabled: bool,
    /// When a timed entry expires; entries with a timeout are dynamic.
    pub expires: Option<SystemTime>,
    /// When the entry was added.
    pub created: SystemTime,
}

impl AddressListEntry {
    /// Entries with a timeout are dynamic: a reboot erases them.
    pub fn dynamic(&self) -> bool {
        self.expires.is_some()
    }

    /// Time left before the entry expires, if it has a timeout.
    pub fn remaining(&self, now: SystemTime) -> Option<Duration> {
        self.expires
            .map(|at| at.duration_since(now).unwrap_or(Duration::ZERO))
    }
}

const FIELDS: &[&str] = &[
    ".id",
    "list",
    "address",
    "creation-time",
    "timeout",
    "dynamic",
    "disabled",
    "comment",
];

impl Record for AddressListEntry {
    fn fields(&self) -> &'static [&'static str] {
        FIELDS
    }

    fn write_field(&self, name: &str, now: SystemTime, out: &mut Vec<u8>) -> bool {
        match name {
            ".id" => write_id(out, self.id),
            "list" => out.extend_from_slice(self.list.as_bytes()),
            "address" => out.extend_from_slice(self.address.as_bytes()),
            "creation-time" => out.extend_from_slice(format_full_time(self.created).as_bytes()),
            "timeout" => match self.remaining(now) {
                Some(left) => out.extend_from_slice(format_duration(left).as_bytes()),
                None => return false,
            },
            "dynamic" => out.extend_from_slice(bool_text(self.dynamic())),
            "disabled" => out.extend_from_slice(bool_text(self.disabled)),
            "comment" => match &self.comment {
                Some(c) => out.extend_from_slice(c),
                None => return false,
            },
            _ => return false,
        }
        true
    }
}

/// Normalises an address as the router stores it: a host address stays bare on IPv4
/// (`/32` dropped) and gets `/128` on IPv6; a prefix is reduced to its network address.
pub fn normalize_address(text: &str, family: Family) -> Option<String> {
    let (addr, prefix) = match text.split_once('/') {
        Some((a, p)) => (a, Some(p.parse::<u8>().ok()?)),
        None => (text, None),
    };
    match family {
        Family::V4 => {
            let ip: Ipv4Addr = addr.parse().ok()?;
            match prefix {
                None | Some(32) => Some(ip.to_string()),
                Some(p) if p < 32 => {
                    let mask = if p == 0 { 0 } else { u32::MAX << (32 - p) };
                    Some(format!("{}/{p}", Ipv4Addr::from(u32::from(ip) & mask)))
                }
                Some(_) => None,
            }
        }
        Family::V6 => {
            let ip: Ipv6Addr = addr.parse().ok()?;
            let p = prefix.unwrap_or(128);
            if p > 128 {
                return None;
            }
            let mask = if p == 0 {
                0
            } else {
                u128::MAX << (128 - u32::from(p))
            };
            Some(format!("{}/{p}", Ipv6Addr::from(u128::from(ip) & mask)))
        }
    }
}

/// The family an address belongs in, if it is an address at all.
pub fn family_of(address: &IpAddr) -> Family {
    match address {
        IpAddr::V4(_) => Family::V4,
        IpAddr::V6(_) => Family::V6,
    }
}

/// One address-list menu: entries, the (list, address) index for duplicates, and the
/// expiry schedule.
#[derive(Debug)]
pub(crate) struct AddressListTable {
    family: Family,
    entries: BTreeMap<u64, AddressListEntry>,
    by_key: HashMap<(String, String), u64>,
    expiry: BTreeSet<(SystemTime, u64)>,
    next_id: u64,
    feed: ChangeFeed,
}

/// The settable properties of an entry, as parsed from a command.
#[derive(Debug, Default)]
struct Changes {
    list: Option<String>,
    address: Option<String>,
    /// `Some(None)` removes the timeout.
    timeout: Option<Option<Duration>>,
    comment: Option<Vec<u8>>,
    disabled: Option<bool>,
}

impl AddressListTable {
    pub(crate) fn new(family: Family) -> Self {
        Self {
            family,
            entries: BTreeMap::new(),
            by_key: HashMap::new(),
            expiry: BTreeSet::new(),
            next_id: 1,
            feed: ChangeFeed::default(),
        }
    }

    /// Drops entries whose timeout has passed.
    pub(crate) fn expire(&mut self, now: SystemTime) {
        while let Some(&(at, id)) = self.expiry.first() {
            if at > now {
                break;
            }
            self.expiry.pop_first();
            self.remove_entry(id);
        }
    }

    pub(crate) fn get(&self, id: u64) -> Option<&AddressListEntry> {
        self.entries.get(&id)
    }

    pub(crate) fn feed(&self) -> &ChangeFeed {
        &self.feed
    }

    pub(crate) fn entries(&self) -> impl Iterator<Item = &AddressListEntry> {
        self.entries.values()
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    fn parse_changes(&self, request: &Request, for_add: bool) -> Result<Changes, Trap> {
        let mut c = Changes::default();
        for (name, value) in &request.attributes {
            match name.as_str() {
                "list" => {
                    if value.is_empty() {
                        return Err(Trap::bad_value("list"));
                    }
                    c.list = Some(String::from_utf8_lossy(value).into_owned());
                }
                "address" => {
                    let text = String::from_utf8_lossy(value);
                    c.address = Some(
                        normalize_address(text.trim(), self.family)
                            .ok_or_else(|| Trap::bad_value("address"))?,
                    );
                }
                "timeout" => {
                    let text = String::from_utf8_lossy(value);
                    c.timeout = Some(match text.trim() {
                        "" | "none" if !for_add => None,
                        t => {
                            let d = parse_duration(t).ok_or_else(|| Trap::bad_value("timeout"))?;
                            if d.is_zero() { None } else { Some(d) }
                        }
                    });
                }
                "comment" => c.comment = Some(value.clone()),
                "disabled" => c.disabled = Some(parse_bool("disabled", value)?),
                ".id" | "numbers" | ".proplist" if !for_add => {}
                other => {
                    return Err(Trap::new(
                        Some(TrapCategory::ArgumentValue),
                        format!("unknown parameter {other}"),
                    ));
                }
            }
        }
        Ok(c)
    }

    /// `add`: returns the new id, or the duplicate trap.
    pub(crate) fn add(&mut self, request: &Request, now: SystemTime) -> Result<u64, Trap> {
        let c = self.parse_changes(request, true)?;
        let (Some(list), Some(address)) = (c.list, c.address) else {
            let missing = if request.get("list").is_none() {
                "list"
            } else {
                "address"
            };
            return Err(Trap::new(
                Some(TrapCategory::ArgumentValue),
                format!("missing value(s) of argument(s) {missing}"),
            ));
        };
        let timeout = c.timeout.flatten();
        self.insert(
            list,
            address,
            timeout,
            c.comment.filter(|v| !v.is_empty()),
            c.disabled.unwrap_or(false),
            now,
        )
    }

    /// Adds an entry (from a command or from the handle).
    pub(crate) fn insert(
        &mut self,
        list: String,
        address: String,
        timeout: Option<Duration>,
        comment: Option<Vec<u8>>,
        disabled: bool,
        now: SystemTime,
    ) -> Result<u64, Trap> {
        let key = (list, address);
        if self.by_key.contains_key(&key) {
            return Err(Trap::new(None, "failure: already have such entry"));
        }
        let id = self.next_id;
        self.next_id += 1;
        let expires = timeout.map(|t| now + t);
        if let Some(at) = expires {
            self.expiry.insert((at, id));
        }
        let (list, address) = key.clone();
        self.by_key.insert(key, id);
        self.feed.record(id);
        self.entries.insert(
            id,
            AddressListEntry {
                id,
                list,
                address,
                comment,
                disabled,
                expires,
                created: now,
            },
        );
        Ok(id)
    }

    /// `set` on the entries named by `.id`.
    pub(crate) fn set(
        &mut self,
        ids: &[u64],
        request: &Request,
        now: SystemTime,
    ) -> Result<(), Trap> {
        let c = self.parse_changes(request, false)?;
        if ids.iter().any(|id| !self.entries.contains_key(id)) {
            return Err(Trap::no_such_item());
        }
        for &id in ids {
            let Some(old) = self.entries.get(&id).cloned() else {
                continue;
            };
            let list = c.list.clone().unwrap_or_else(|| old.list.clone());
            let address = c.address.clone().unwrap_or_else(|| old.address.clone());
            let new_key = (list.clone(), address.clone());
            if new_key != (old.list.clone(), old.address.clone())
                && self.by_key.contains_key(&new_key)
            {
                return Err(Trap::new(None, "failure: already have such entry"));
            }
            self.by_key.remove(&(old.list.clone(), old.address.clone()));
            self.by_key.insert(new_key, id);
            let mut entry = old;
            entry.list = list;
            entry.address = address;
            if let Some(comment) = &c.comment {
                entry.comment = (!comment.is_empty()).then(|| comment.clone());
            }
            if let Some(disabled) = c.disabled {
                entry.disabled = disabled;
            }
            if let Some(timeout) = c.timeout {
                if let Some(at) = entry.expires {
                    self.expiry.remove(&(at, id));
                }
                entry.expires = timeout.map(|t| now + t);
                if let Some(at) = entry.expires {
                    self.expiry.insert((at, id));
                }
            }
            self.entries.insert(id, entry);
            self.feed.record(id);
        }
        Ok(())
    }

    /// `remove`: all named ids must exist, else nothing is removed.
    pub(crate) fn remove(&mut self, ids: &[u64]) -> Result<(), Trap> {
        if ids.iter().any(|id| !self.entries.contains_key(id)) {
            return Err(Trap::no_such_item());
        }
        for &id in ids {
            self.remove_entry(id);
        }
        Ok(())
    }

    fn remove_entry(&mut self, id: u64) -> Option<AddressListEntry> {
        let entry = self.entries.remove(&id)?;
        self.feed.record(id);
        self.by_key
            .remove(&(entry.list.clone(), entry.address.clone()));
        if let Some(at) = entry.expires {
            self.expiry.remove(&(at, id));
        }
        Some(entry)
    }

    /// A reboot erases every dynamic entry.
    pub(crate) fn erase_dynamic(&mut self) {
        let dynamic: Vec<u64> = self
            .entries
            .values()
            .filter(|e| e.dynamic())
            .map(|e| e.id)
            .collect();
        for id in dynamic {
            self.remove_entry(id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t0() -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_739_232_150)
    }

    #[test]
    fn normalises_like_a_router() {
        assert_eq!(
            normalize_address("192.0.2.7/32", Family::V4).as_deref(),
            Some("192.0.2.7")
        );
        assert_eq!(
            normalize_address("192.0.2.7/24", Family::V4).as_deref(),
            Some("192.0.2.0/24")
        );
        assert_eq!(
            normalize_address("2001:db8::1", Family::V6).as_deref(),
            Some("2001:db8::1/128")
        );
        assert_eq!(
            normalize_address("2001:db8::1/64", Family::V6).as_deref(),
            Some("2001:db8::/64")
        );
        assert_eq!(normalize_address("2001:db8::1", Family::V4), None);
        assert_eq!(normalize_address("192.0.2.1/33", Family::V4), None);
        assert_eq!(normalize_address("example", Family::V4), None);
    }

    #[test]
    fn duplicates_are_refused_and_timeouts_expire() {
        let mut t = AddressListTable::new(Family::V4);
        let add = Request::new("add")
            .attr("list", "bl")
            .attr("address", "198.51.100.7")
            .attr("timeout", "10s");
        let id = t.add(&add, t0()).unwrap();
        assert_eq!(
            t.add(&add, t0()).unwrap_err().message,
            "failure: already have such entry"
        );
        assert!(t.entries().next().unwrap().dynamic());
        t.expire(t0() + Duration::from_secs(9));
        assert_eq!(t.len(), 1);
        t.expire(t0() + Duration::from_secs(10));
        assert_eq!(t.len(), 0);
        assert_eq!(t.remove(&[id]).unwrap_err(), Trap::no_such_item());
        // Once expired, the same entry can be added again.
        t.add(&add, t0() + Duration::from_secs(11)).unwrap();
    }

    #[test]
    fn set_changes_timeout_and_comment_and_erase_dynamic_keeps_static() {
        let mut t = AddressListTable::new(Family::V4);
        let a = t
            .add(
                &Request::new("add")
                    .attr("list", "bl")
                    .attr("address", "198.51.100.7"),
                t0(),
            )
            .unwrap();
        let b = t
            .add(
                &Request::new("add")
                    .attr("list", "bl")
                    .attr("address", "198.51.100.8")
                    .attr("timeout", "1d"),
                t0(),
            )
            .unwrap();
        t.set(
            &[a],
            &Request::new("set")
                .attr(".id", "*1")
                .attr("comment", "x")
                .attr("timeout", "1h"),
            t0(),
        )
        .unwrap();
        let ea = t.entries.get(&a).unwrap();
        assert_eq!(ea.comment.as_deref(), Some(&b"x"[..]));
        assert_eq!(ea.remaining(t0()), Some(Duration::from_secs(3_600)));
        t.set(&[a], &Request::new("set").attr("timeout", ""), t0())
            .unwrap();
        assert!(!t.entries.get(&a).unwrap().dynamic());
        t.erase_dynamic();
        assert!(t.entries.contains_key(&a));
        assert!(!t.entries.contains_key(&b));
        assert!(
            t.set(&[99], &Request::new("set").attr("comment", "y"), t0())
                .is_err()
        );
    }

    #[test]
    fn unknown_and_missing_arguments_are_trapped() {
        let mut t = AddressListTable::new(Family::V4);
        let e = t
            .add(&Request::new("add").attr("list", "bl"), t0())
            .unwrap_err();
        assert!(e.message.contains("address"), "{e:?}");
        let e = t.add(
            &Request::new("add")
                .attr("list", "bl")
                .attr("address", "1.2.3.4")
                .attr("bogus", "1"),
            t0(),
        );
        assert!(e.unwrap_err().message.contains("bogus"));
        let e = t.add(
            &Request::new("add")
                .attr("list", "bl")
                .attr("address", "1.2.3.4")
                .attr("timeout", "soon"),
            t0(),
        );
        assert!(e.unwrap_err().message.contains("timeout"));
    }
}
