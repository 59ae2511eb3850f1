//! The configuration menus on the [`Router`]: users and groups (which decide who may log
//! in and with which policies), firewall rules, certificates, services and logging, all
//! kept in generic [`ConfigTable`]s. This file holds what ties the tables to each other
//! and to the rest of the router: a user's group must exist, a logging rule's action must
//! exist, `sign` makes a real certificate.

use std::net::IpAddr;
use std::time::{Duration, SystemTime};

use super::{Router, State};
use crate::duration::{civil, format_full_time};
use crate::model::config::{ConfigRow, ConfigTable, Menu};
use crate::model::menus;
use crate::model::resource::RouterOsVersion;
use crate::model::users::{Policies, User};
use crate::model::{self, PrintOptions, Trap};
use crate::sentence::{Request, Sentence, TrapCategory};

/// The configuration menu at `path` on RouterOS `version`, if the simulator has it.
pub(super) fn menu(path: &str, version: RouterOsVersion) -> Option<&'static Menu> {
    menus::all(version).into_iter().find(|m| m.path == path)
}

/// Whether `ip` is in `prefix` (`192.0.2.0/24`, `2001:db8::/32`, or one address).
fn within(ip: IpAddr, prefix: &str) -> bool {
    let (net, len) = prefix.split_once('/').unwrap_or((prefix, ""));
    let Ok(net) = net.parse::<IpAddr>() else {
        return false;
    };
    let (ip, net, bits) = match (ip, net) {
        (IpAddr::V4(a), IpAddr::V4(b)) => (u128::from(u32::from(a)), u128::from(u32::from(b)), 32),
        (IpAddr::V6(a), IpAddr::V6(b)) => (u128::from(a), u128::from(b), 128),
        (IpAddr::V6(a), IpAddr::V4(b)) => match a.to_ipv4_mapped() {
            Some(a) => (u128::from(u32::from(a)), u128::from(u32::from(b)), 32),
            None => return false,
        },
        _ => return false,
    };
    let len: u32 = if len.is_empty() {
        bits
    } else {
        match len.parse() {
            Ok(l) if l <= bits => l,
            _ => return false,
        }
    };
    let shift = bits - len;
    shift >= bits || ip >> shift == net >> shift
}

/// A reference to an item of another menu that does not exist.
fn no_match(what: &str) -> Trap {
    Trap::new(
        Some(TrapCategory::ArgumentValue),
        format!("input does not match any value of {what}"),
    )
}

impl State {
    pub(super) fn menu_table(&mut self, path: &str) -> Option<&mut ConfigTable> {
        self.menus.iter_mut().find(|t| t.menu().path == path)
    }

    pub(super) fn menu_rows(&self, path: &str) -> &[ConfigRow] {
        self.menus
            .iter()
            .find(|t| t.menu().path == path)
            .map(ConfigTable::rows)
            .unwrap_or_default()
    }

    fn has_row(&self, path: &str, prop: &str, value: &[u8]) -> bool {
        self.menu_rows(path)
            .iter()
            .any(|r| r.get(prop) == Some(value))
    }

    /// The policies user `name` logs in with from `peer`, if `password` is right, the
    /// user enabled, `peer` within its `address` (when set) and its group present.
    pub(super) fn check_login(
        &self,
        name: &str,
        peer: IpAddr,
        password: impl Fn(&[u8]) -> bool,
    ) -> Option<Policies> {
        let user = self
            .menu_rows(menus::USER.path)
            .iter()
            .find(|u| u.get("name") == Some(name.as_bytes()))?;
        if user.is("disabled") || !password(user.get("password").unwrap_or_default()) {
            return None;
        }
        let allowed = user.text("address");
        if !allowed.is_empty() && !allowed.split(',').any(|p| within(peer, p.trim())) {
            return None;
        }
        let group = user.get("group")?;
        let group = self
            .menu_rows(menus::USER_GROUP.path)
            .iter()
            .find(|g| g.get("name") == Some(group))?;
        Policies::parse(&group.text("policy")).ok()
    }

    /// Adds or replaces a user. Its group is one with exactly its policies (`full` for
    /// every policy), or a new group named after the user.
    pub(super) fn put_user(&mut self, user: &User) {
        let policy = user.policies.to_string();
        let group = self
            .menu_rows(menus::USER_GROUP.path)
            .iter()
            .find(|g| g.text("policy") == policy)
            .map(|g| g.text("name"));
        let group = match group {
            Some(g) => g,
            None => {
                if let Some(groups) = self.menu_table(menus::USER_GROUP.path) {
                    match groups.find("name", user.name.as_bytes()).map(|g| g.id) {
                        Some(id) => {
                            let _ = groups.set(&[id], &Request::new("set").attr("policy", policy));
                        }
                        None => {
                            let _ = groups.add(
                                &Request::new("add")
                                    .attr("name", user.name.as_str())
                                    .attr("policy", policy),
                            );
                        }
                    }
                }
                user.name.clone()
            }
        };
        self.remove_user(&user.name);
        if let Some(users) = self.menu_table(menus::USER.path) {
            let _ = users.add(
                &Request::new("add")
                    .attr("name", user.name.as_str())
                    .attr("group", group)
                    .attr("password", user.password().to_vec()),
            );
        }
    }

    /// Removes user `name`; returns whether it existed.
    pub(super) fn remove_user(&mut self, name: &str) -> bool {
        let Some(users) = self.menu_table(menus::USER.path) else {
            return false;
        };
        match users.find("name", name.as_bytes()).map(|u| u.id) {
            Some(id) => users.remove(&[id]).is_ok(),
            None => false,
        }
    }

    /// `max-sessions` of the `api` and `api-ssl` services (from the router's settings).
    pub(super) fn set_service_limits(&mut self, max_sessions: usize) {
        if let Some(services) = self.menu_table(menus::IP_SERVICE.path) {
            for name in ["api", "api-ssl"] {
                if let Some(id) = services.find("name", name.as_bytes()).map(|r| r.id) {
                    if let Some(row) = services.row_mut(id) {
                        row.put("max-sessions", max_sessions.to_string());
                    }
                }
            }
        }
    }

    /// How many sessions service `name` takes, or `None` when it is disabled.
    pub(super) fn service_limit(&self, name: &str) -> Option<usize> {
        let row = self
            .menu_rows(menus::IP_SERVICE.path)
            .iter()
            .find(|r| r.get("name") == Some(name.as_bytes()))?;
        if row.is("disabled") {
            return None;
        }
        row.text("max-sessions").parse().ok()
    }

    /// The references a change to `menu` makes must point at existing items.
    fn check_references(&self, menu: &Menu, request: &Request) -> Result<(), Trap> {
        let refs: &[(&str, &str, &str)] = match menu.path {
            "/user" => &[("group", "/user/group", "group")],
            "/system/logging" => &[("action", "/system/logging/action", "action")],
            "/ip/service" => &[("certificate", "/certificate", "certificate")],
            _ => &[],
        };
        for (prop, target, what) in refs {
            if let Some(value) = request.get(prop) {
                let none = *prop == "certificate" && value == b"none";
                if !none && !self.has_row(target, "name", value) {
                    return Err(no_match(what));
                }
            }
        }
        Ok(())
    }

    /// A group that a user still has cannot go.
    fn check_removable(&self, menu: &Menu, ids: &[u64]) -> Result<(), Trap> {
        if menu.path != menus::USER_GROUP.path {
            return Ok(());
        }
        for group in self
            .menu_rows(menu.path)
            .iter()
            .filter(|g| ids.contains(&g.id))
        {
            let name = group.get("name").unwrap_or_default();
            if self.has_row(menus::USER.path, "group", name) {
                return Err(Trap::new(None, "failure: group is in use"));
            }
        }
        Ok(())
    }
}

impl Router {
    /// Answers a command on a configuration menu (the verb is one the menu has, the
    /// policies were checked).
    pub(super) fn config_command(
        &self,
        menu: &'static Menu,
        verb: &str,
        request: &Request,
        now: SystemTime,
    ) -> Result<Vec<Sentence>, Trap> {
        let mut guard = self.state();
        let s = &mut *guard;
        let empty_reply = s.config.sends_empty();
        if matches!(verb, "print" | "getall") {
            let opts = PrintOptions {
                request,
                empty_reply,
                now,
            };
            return model::print(s.menu_rows(menu.path).iter(), &opts);
        }
        if matches!(verb, "add" | "set") {
            s.check_references(menu, request)?;
        }
        let table = s
            .menu_table(menu.path)
            .ok_or_else(|| Trap::new(Some(TrapCategory::MissingItem), "no such command"))?;
        match verb {
            "add" => {
                let mut request = request.clone();
                if menu.path == menus::LOGGING_ACTION.path
                    && request.get("target") == Some(b"remote")
                {
                    for (k, v) in menus::remote_action_defaults(menu) {
                        if !request.has(k) {
                            request = request.attr(k, v);
                        }
                    }
                }
                let id = table.add(&request)?;
                Ok(vec![Sentence::done_ret(model::format_id(id))])
            }
            "set" => {
                let ids = table.requested(request)?;
                table.set(&ids, request)?;
                Ok(vec![Sentence::done()])
            }
            "enable" | "disable" => {
                let ids = table.requested(request)?;
                let value = if verb == "disable" { "yes" } else { "no" };
                table.set(&ids, &Request::new("set").attr("disabled", value))?;
                Ok(vec![Sentence::done()])
            }
            "move" => {
                let ids = table.requested(request)?;
                table.move_rows(&ids, request)?;
                Ok(vec![Sentence::done()])
            }
            "remove" => {
                let ids = table.requested(request)?;
                s.check_removable(menu, &ids)?;
                s.menu_table(menu.path)
                    .ok_or_else(Trap::no_such_item)?
                    .remove(&ids)?;
                Ok(vec![Sentence::done()])
            }
            "sign" => {
                let ids = table.requested(request)?;
                let mut keys = Vec::new();
                for id in ids {
                    let row = table.row_mut(id).ok_or_else(Trap::no_such_item)?;
                    keys.push(sign(row, now)?);
                }
                s.signed.extend(keys);
                Ok(vec![Sentence::done()])
            }
            _ => Err(Trap::new(
                Some(TrapCategory::MissingItem),
                "no such command",
            )),
        }
    }
}

/// The key material of a signed certificate (what API-SSL serves).
#[derive(Clone)]
pub(crate) struct SignedKey {
    /// The `/certificate` row.
    pub certificate: u64,
    /// The certificate, DER.
    pub cert_der: Vec<u8>,
    /// Its private key, PKCS#8 DER.
    pub key_der: Vec<u8>,
}

impl std::fmt::Debug for SignedKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SignedKey")
            .field("certificate", &self.certificate)
            .finish_non_exhaustive()
    }
}

impl Router {
    /// The certificate and key `api-ssl` serves: the signed certificate named in
    /// `/ip/service`, if any.
    pub(crate) fn api_ssl_key(&self) -> Option<SignedKey> {
        let s = self.state();
        let service = s
            .menu_rows(menus::IP_SERVICE.path)
            .iter()
            .find(|r| r.get("name") == Some(b"api-ssl"))?;
        let name = service.get("certificate")?;
        let cert = s
            .menu_rows(menus::CERTIFICATE.path)
            .iter()
            .find(|r| r.get("name") == Some(name))?;
        s.signed.iter().find(|k| k.certificate == cert.id).cloned()
    }
}

/// Self-signs a certificate: a real key and certificate for its `common-name`, valid
/// from today for `days-valid` days, whose SHA-256 becomes `fingerprint`.
fn sign(row: &mut ConfigRow, now: SystemTime) -> Result<SignedKey, Trap> {
    if row.get("fingerprint").is_some() {
        return Err(Trap::new(None, "failure: certificate is already issued"));
    }
    let common_name = row.text("common-name");
    let fail = |e: rcgen::Error| {
        Trap::new(
            Some(TrapCategory::General),
            format!("failure: cannot sign: {e}"),
        )
    };
    let mut params = rcgen::CertificateParams::new(vec![common_name.clone()]).map_err(fail)?;
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, common_name);
    let days: u64 = row.text("days-valid").parse().unwrap_or(365);
    let until = now + Duration::from_secs(days.saturating_mul(86_400));
    let date = |t: SystemTime| {
        let c = civil(t);
        rcgen::date_time_ymd(
            i32::try_from(c.year).unwrap_or(9999),
            u8::try_from(c.month).unwrap_or(1),
            u8::try_from(c.day).unwrap_or(1),
        )
    };
    params.not_before = date(now);
    params.not_after = date(until);
    let key = rcgen::KeyPair::generate().map_err(fail)?;
    let cert = params.self_signed(&key).map_err(fail)?;
    let digest = ring::digest::digest(&ring::digest::SHA256, cert.der().as_ref());
    let fingerprint: String = digest.as_ref().iter().map(|b| format!("{b:02x}")).collect();
    row.put("fingerprint", fingerprint);
    row.put("private-key", "true");
    row.put("trusted", "true");
    row.put("invalid-before", format_full_time(now));
    row.put("invalid-after", format_full_time(until));
    Ok(SignedKey {
        certificate: row.id,
        cert_der: cert.der().to_vec(),
        key_der: key.serialize_der(),
    })
}

#[cfg(test)]
mod tests {
    use super::within;

    #[test]
    fn addresses_within_prefixes() {
        let ip = |s: &str| s.parse().unwrap();
        assert!(within(ip("192.0.2.50"), "192.0.2.0/24"));
        assert!(within(ip("192.0.2.50"), "192.0.2.50"));
        assert!(!within(ip("192.0.2.51"), "192.0.2.50/32"));
        assert!(within(ip("10.1.2.3"), "0.0.0.0/0"));
        assert!(!within(ip("198.51.100.1"), "192.0.2.0/24"));
        assert!(within(ip("2001:db8::5"), "2001:db8::/64"));
        assert!(!within(ip("2001:db8::5"), "192.0.2.0/24"));
        assert!(within(ip("::ffff:192.0.2.9"), "192.0.2.0/24"));
        assert!(!within(ip("192.0.2.9"), "192.0.2.0/33"));
        assert!(!within(ip("192.0.2.9"), "nonsense"));
    }
}
