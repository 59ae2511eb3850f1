//! Configuration menus (`/user`, `/ip/firewall/filter`, `/certificate`, ...) as one
//! generic model: a [`ConfigTable`] is an ordered list of rows keyed by `.id`, whose
//! properties a static [`Menu`] describes. What a menu needs beyond that (a user's group
//! must exist, `sign` makes a certificate) lives with the [`Router`](crate::Router).
//!
//! Rows keep only the properties that are set, as RouterOS prints only those (a filter rule
//! without `src-address-list` has no such property in its `!re`); defaults are filled in
//! when a row is added.

use std::time::SystemTime;

use crate::model::users::Policies;
use crate::model::{Record, Trap, parse_bool, parse_id, requested_items, write_id};
use crate::sentence::{Request, TrapCategory};

/// What a property accepts, and how its value is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// Any bytes.
    Text,
    /// `yes`/`no`/`true`/`false`, stored as `true`/`false`.
    Bool,
    /// A decimal number in a range.
    Number(u64, u64),
    /// One of these words.
    Choice(&'static [&'static str]),
    /// A comma list of these words (`connection-state=established,related`).
    ChoiceList(&'static [&'static str]),
    /// A `policy` list, stored as RouterOS prints it (granted first, then `!denied`).
    Policy,
    /// Accepted and stored, never printed (a password).
    Secret,
    /// Printed, never set by a client (`fingerprint`, `bytes`).
    ReadOnly,
}

/// One property of a menu.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Prop {
    pub name: &'static str,
    pub kind: Kind,
    /// Filled in by `add` when not given.
    pub default: Option<&'static str>,
}

/// A shorthand for the menu tables.
pub(crate) const fn prop(name: &'static str, kind: Kind, default: Option<&'static str>) -> Prop {
    Prop {
        name,
        kind,
        default,
    }
}

/// A configuration menu: its API path, verbs, properties and rules.
#[derive(Debug)]
pub(crate) struct Menu {
    /// The API path, `/ip/firewall/filter`.
    pub path: &'static str,
    /// The verbs it answers; `print` and `getall` read, the others write.
    pub verbs: &'static [&'static str],
    /// The properties, in print order (`.id` comes first, secrets are never printed).
    pub props: &'static [Prop],
    /// Properties `add` needs.
    pub required: &'static [&'static str],
    /// A property whose value must be unique (`name`), and what an item is called in the
    /// duplicate trap (`user`).
    pub unique: Option<(&'static str, &'static str)>,
    /// Whether changing it needs the `policy` policy as well as `write` (user management).
    pub needs_policy: bool,
    /// Every property name in print order, `.id` first (what [`Record::fields`] returns).
    pub fields: &'static [&'static str],
}

impl Menu {
    pub(crate) fn prop(&self, name: &str) -> Option<&'static Prop> {
        self.props.iter().find(|p| p.name == name)
    }
}

/// One row: its id, whether RouterOS made it (a default action, a fixed service), and the
/// properties that are set, in no particular order.
#[derive(Debug, Clone)]
pub(crate) struct ConfigRow {
    pub id: u64,
    pub builtin: bool,
    values: Vec<(&'static str, Vec<u8>)>,
    menu: &'static Menu,
}

impl ConfigRow {
    /// The value of `name`, if set.
    pub(crate) fn get(&self, name: &str) -> Option<&[u8]> {
        self.values
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_slice())
    }

    /// The value of `name` as text (lossy), empty when unset.
    pub(crate) fn text(&self, name: &str) -> String {
        String::from_utf8_lossy(self.get(name).unwrap_or_default()).into_owned()
    }

    /// Whether `name` is set to `true`.
    pub(crate) fn is(&self, name: &str) -> bool {
        self.get(name) == Some(b"true")
    }

    /// Sets `name` (a property of the menu) without validation: for the router's own
    /// changes (`sign`, read-only counters).
    pub(crate) fn put(&mut self, name: &str, value: impl Into<Vec<u8>>) {
        let Some(prop) = self.menu.prop(name) else {
            return;
        };
        let value = value.into();
        match self.values.iter_mut().find(|(n, _)| *n == name) {
            Some(slot) => slot.1 = value,
            None => self.values.push((prop.name, value)),
        }
    }
}

impl Record for ConfigRow {
    fn fields(&self) -> &'static [&'static str] {
        self.menu.fields
    }

    fn write_field(&self, name: &str, _now: SystemTime, out: &mut Vec<u8>) -> bool {
        if name == ".id" {
            write_id(out, self.id);
            return true;
        }
        if self.menu.prop(name).is_some_and(|p| p.kind == Kind::Secret) {
            return false;
        }
        match self.get(name) {
            Some(v) => {
                out.extend_from_slice(v);
                true
            }
            None => false,
        }
    }
}

/// The rows of one menu, in order.
#[derive(Debug)]
pub(crate) struct ConfigTable {
    menu: &'static Menu,
    rows: Vec<ConfigRow>,
    next_id: u64,
}

impl Menu {
    /// Attributes that are about the command, not the item (`place-before` only where
    /// rules are ordered).
    fn is_command_attr(&self, name: &str) -> bool {
        matches!(name, ".id" | "numbers" | ".proplist")
            || (name == "place-before" && self.verbs.contains(&"move"))
    }
}

impl ConfigTable {
    /// An empty table for `menu`.
    pub(crate) fn new(menu: &'static Menu) -> Self {
        Self {
            menu,
            rows: Vec::new(),
            next_id: 1,
        }
    }

    /// The menu this table follows.
    pub(crate) fn menu(&self) -> &'static Menu {
        self.menu
    }

    /// The rows in order.
    pub(crate) fn rows(&self) -> &[ConfigRow] {
        &self.rows
    }

    /// The row with `id`.
    pub(crate) fn row_mut(&mut self, id: u64) -> Option<&mut ConfigRow> {
        self.rows.iter_mut().find(|r| r.id == id)
    }

    /// The first row whose `prop` is `value`.
    pub(crate) fn find(&self, prop: &str, value: &[u8]) -> Option<&ConfigRow> {
        self.rows.iter().find(|r| r.get(prop) == Some(value))
    }

    /// Adds a row the router itself made (defaults, fixed items), unchecked.
    pub(crate) fn add_builtin(&mut self, values: &[(&str, &str)]) -> u64 {
        let id = self.push(Vec::new(), true, None);
        if let Some(row) = self.row_mut(id) {
            for (k, v) in values {
                row.put(k, *v);
            }
        }
        id
    }

    fn push(
        &mut self,
        values: Vec<(&'static str, Vec<u8>)>,
        builtin: bool,
        before: Option<usize>,
    ) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        let row = ConfigRow {
            id,
            builtin,
            values,
            menu: self.menu,
        };
        match before {
            Some(i) => self.rows.insert(i, row),
            None => self.rows.push(row),
        }
        id
    }

    /// Checks and normalises the item attributes of `request`.
    fn parse(&self, request: &Request) -> Result<Vec<(&'static str, Vec<u8>)>, Trap> {
        let mut out: Vec<(&'static str, Vec<u8>)> = Vec::new();
        for (name, value) in &request.attributes {
            if self.menu.is_command_attr(name) {
                continue;
            }
            let prop = self
                .menu
                .prop(name)
                .filter(|p| p.kind != Kind::ReadOnly)
                .ok_or_else(|| {
                    Trap::new(
                        Some(TrapCategory::ArgumentValue),
                        format!("unknown parameter {name}"),
                    )
                })?;
            let value = normalize(prop, value)?;
            out.retain(|(n, _)| *n != prop.name);
            out.push((prop.name, value));
        }
        Ok(out)
    }

    fn check_unique(&self, values: &[(&'static str, Vec<u8>)], except: &[u64]) -> Result<(), Trap> {
        let Some((key, what)) = self.menu.unique else {
            return Ok(());
        };
        for (name, value) in values {
            if *name == key
                && self
                    .rows
                    .iter()
                    .any(|r| !except.contains(&r.id) && r.get(key) == Some(value.as_slice()))
            {
                return Err(Trap::new(
                    None,
                    format!("failure: {what} with the same {key} already exists"),
                ));
            }
        }
        Ok(())
    }

    fn position(&self, id: u64) -> Result<usize, Trap> {
        self.rows
            .iter()
            .position(|r| r.id == id)
            .ok_or_else(Trap::no_such_item)
    }

    /// `add`: checks, fills defaults, honours `place-before`; returns the new id.
    pub(crate) fn add(&mut self, request: &Request) -> Result<u64, Trap> {
        let mut values = self.parse(request)?;
        for required in self.menu.required {
            if !values.iter().any(|(n, _)| n == required) {
                return Err(Trap::new(
                    Some(TrapCategory::ArgumentValue),
                    format!("missing value(s) of argument(s) {required}"),
                ));
            }
        }
        self.check_unique(&values, &[])?;
        for prop in self.menu.props {
            if let Some(default) = prop.default {
                if !values.iter().any(|(n, _)| *n == prop.name) {
                    values.push((prop.name, default.as_bytes().to_vec()));
                }
            }
        }
        let before = match request.get("place-before") {
            Some(target) => Some(self.position(self.resolve(target)?)?),
            None => None,
        };
        Ok(self.push(values, false, before))
    }

    /// The ids named by `.id` or `numbers`: `*1A` ids, or values of the unique property
    /// (`numbers=api-ssl`), comma separated.
    pub(crate) fn requested(&self, request: &Request) -> Result<Vec<u64>, Trap> {
        requested_items(request)?
            .map(|part| self.resolve(part))
            .collect()
    }

    fn resolve(&self, item: &[u8]) -> Result<u64, Trap> {
        let by_id = parse_id(item)
            .filter(|_| item.starts_with(b"*"))
            .filter(|id| self.rows.iter().any(|r| r.id == *id));
        let by_name = || {
            let (key, _) = self.menu.unique?;
            self.find(key, item).map(|r| r.id)
        };
        by_id.or_else(by_name).ok_or_else(Trap::no_such_item)
    }

    /// `set`: changes the given properties of every named row (an empty value unsets a
    /// text property, as `comment=` does on a router).
    pub(crate) fn set(&mut self, ids: &[u64], request: &Request) -> Result<(), Trap> {
        let values = self.parse(request)?;
        for id in ids {
            self.position(*id)?;
        }
        self.check_unique(&values, ids)?;
        if ids.len() > 1
            && values
                .iter()
                .any(|(n, _)| Some(*n) == self.menu.unique.map(|u| u.0))
        {
            return Err(Trap::new(
                None,
                "failure: cannot give several items one name",
            ));
        }
        for id in ids {
            if let Some(row) = self.row_mut(*id) {
                for (name, value) in &values {
                    row.put(name, value.clone());
                }
            }
        }
        Ok(())
    }

    /// `remove`: every named row, or none when one is missing or built in.
    pub(crate) fn remove(&mut self, ids: &[u64]) -> Result<(), Trap> {
        for id in ids {
            let i = self.position(*id)?;
            if self.rows.get(i).is_some_and(|r| r.builtin) {
                return Err(Trap::new(None, "failure: can not remove default item"));
            }
        }
        self.rows.retain(|r| !ids.contains(&r.id));
        Ok(())
    }

    /// `move`: the named rows go before `destination` (to the end without one), in the
    /// order given.
    pub(crate) fn move_rows(&mut self, ids: &[u64], request: &Request) -> Result<(), Trap> {
        let destination = match request.get("destination") {
            Some(d) => Some(self.resolve(d)?),
            None => None,
        };
        for id in ids {
            self.position(*id)?;
        }
        let mut moved = Vec::new();
        for id in ids {
            if let Ok(i) = self.position(*id) {
                moved.push(self.rows.remove(i));
            }
        }
        let at = match destination {
            Some(d) => self
                .rows
                .iter()
                .position(|r| r.id == d)
                .unwrap_or(self.rows.len()),
            None => self.rows.len(),
        };
        for (k, row) in moved.into_iter().enumerate() {
            self.rows.insert(at + k, row);
        }
        Ok(())
    }
}

/// Checks one value against its property and returns what is stored.
fn normalize(prop: &Prop, value: &[u8]) -> Result<Vec<u8>, Trap> {
    let bad = || Trap::bad_value(prop.name);
    let text = || std::str::from_utf8(value).map_err(|_| bad());
    Ok(match prop.kind {
        Kind::Text | Kind::Secret | Kind::ReadOnly => value.to_vec(),
        Kind::Bool => {
            let v = parse_bool(prop.name, value)?;
            crate::model::bool_text(v).to_vec()
        }
        Kind::Number(min, max) => {
            let n: u64 = text()?.parse().map_err(|_| bad())?;
            if n < min || n > max {
                return Err(bad());
            }
            n.to_string().into_bytes()
        }
        Kind::Choice(words) => {
            if !words.contains(&text()?) {
                return Err(bad());
            }
            value.to_vec()
        }
        Kind::ChoiceList(words) => {
            let t = text()?;
            if t.split(',').any(|w| !words.contains(&w)) {
                return Err(bad());
            }
            value.to_vec()
        }
        Kind::Policy => Policies::parse(text()?)
            .map_err(|word| {
                Trap::new(
                    Some(TrapCategory::ArgumentValue),
                    format!("invalid value for argument policy: {word}"),
                )
            })?
            .to_string()
            .into_bytes(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::menus;

    #[test]
    fn every_menu_prints_its_properties_and_never_a_secret() {
        let versions = [(7, 17, 2), (7, 18, 0), (7, 20, 4)]
            .map(|(a, b, c)| crate::model::resource::RouterOsVersion::new(a, b, c));
        for menu in versions.into_iter().flat_map(menus::all) {
            assert_eq!(menu.fields.first(), Some(&".id"), "{}", menu.path);
            for p in menu.props {
                let printed = menu.fields.contains(&p.name);
                assert_eq!(printed, p.kind != Kind::Secret, "{} {}", menu.path, p.name);
            }
            assert_eq!(
                menu.fields.len(),
                menu.props.iter().filter(|p| p.kind != Kind::Secret).count() + 1,
                "{}",
                menu.path
            );
            for r in menu.required {
                assert!(menu.prop(r).is_some(), "{} {r}", menu.path);
            }
        }
    }

    #[test]
    fn add_set_move_remove_keep_order_and_check_values() {
        let mut t = ConfigTable::new(&menus::IP_FIREWALL_FILTER);
        let add = |chain: &str| {
            Request::new("add")
                .attr("chain", chain)
                .attr("action", "drop")
        };
        let a = t.add(&add("input")).unwrap();
        let b = t.add(&add("forward")).unwrap();
        let c = t
            .add(&add("input").attr("place-before", format!("*{a:X}")))
            .unwrap();
        let order: Vec<u64> = t.rows().iter().map(|r| r.id).collect();
        assert_eq!(order, vec![c, a, b]);
        assert_eq!(t.rows()[0].text("log"), "false");
        assert_eq!(t.rows()[0].text("disabled"), "false");

        assert!(t.add(&Request::new("add").attr("action", "drop")).is_err());
        let err = t.add(&add("input").attr("bogus", "1")).unwrap_err();
        assert_eq!(err.message, "unknown parameter bogus");
        assert!(t.add(&add("input").attr("action", "explode")).is_err());
        assert!(
            t.add(&add("input").attr("connection-state", "new,weird"))
                .is_err()
        );
        assert!(t.add(&add("input").attr("bytes", "5")).is_err());
        let mut users = ConfigTable::new(&menus::USER);
        let err = users
            .add(
                &Request::new("add")
                    .attr("name", "x")
                    .attr("group", "full")
                    .attr("place-before", "*1"),
            )
            .unwrap_err();
        assert_eq!(
            err.message, "unknown parameter place-before",
            "users are not ordered"
        );

        t.set(&[a], &Request::new("set").attr("disabled", "yes"))
            .unwrap();
        assert!(t.rows()[1].is("disabled"));
        t.move_rows(
            &[b],
            &Request::new("move").attr("destination", format!("*{c:X}")),
        )
        .unwrap();
        let order: Vec<u64> = t.rows().iter().map(|r| r.id).collect();
        assert_eq!(order, vec![b, c, a]);
        t.remove(&[c]).unwrap();
        assert_eq!(t.remove(&[c]).unwrap_err(), Trap::no_such_item());
        assert_eq!(t.rows().len(), 2);
    }

    #[test]
    fn names_are_unique_and_usable_as_ids() {
        let mut t = ConfigTable::new(&menus::USER_GROUP);
        t.add(
            &Request::new("add")
                .attr("name", "ids")
                .attr("policy", "api,read"),
        )
        .unwrap();
        let dup = t
            .add(
                &Request::new("add")
                    .attr("name", "ids")
                    .attr("policy", "api"),
            )
            .unwrap_err();
        assert!(dup.message.contains("already exists"), "{dup:?}");
        let ids = t
            .requested(&Request::new("set").attr("numbers", "ids"))
            .unwrap();
        assert_eq!(ids.len(), 1);
        assert!(t.rows()[0].text("policy").starts_with("read,api,!local"));
        assert!(
            t.add(&Request::new("add").attr("name", "x").attr("policy", "sudo"))
                .is_err()
        );
    }
}
