"""Interop test: the Python librouteros client (from PyPI) against routeros-sim.

Usage: test_librouteros.py HOST:PORT PASSWORD [LEGACY_HOST:PORT]

librouteros is the judge: where it and the simulator disagree, the simulator is wrong.
Prints one line per check and a closing "N passed, N failed" line; exits non-zero on any
failure.
"""

import sys
import time

from librouteros import connect
from librouteros.exceptions import TrapError
from librouteros.login import token
from librouteros.query import Key, Or

from checks import run_checks

ADDR, PASSWORD = sys.argv[1], sys.argv[2]
LEGACY = sys.argv[3] if len(sys.argv) > 3 else None
LIST = "mtids-interop"


def split(addr):
    host, _, port = addr.rpartition(":")
    return host.strip("[]"), int(port)


def api(addr=ADDR, password=PASSWORD, **kwargs):
    host, port = split(addr)
    return connect(host, "admin", password, port=port, timeout=10, **kwargs)


def address_list(conn):
    return conn.path("ip", "firewall", "address-list")


def check_login_and_wrong_password():
    conn = api()
    rows = tuple(conn("/system/identity/print"))
    assert rows[0]["name"] == "MikroTik", rows
    conn.close()
    try:
        api(password="definitely-wrong")
    except TrapError as e:
        assert e.message == "invalid user name or password (6)", e.message
    else:
        raise AssertionError("a wrong password logged in")


def check_add_print_query_remove():
    conn = api()
    al = address_list(conn)
    first = al.add(list=LIST, address="198.51.100.7", timeout="1d", comment="interop")
    second = al.add(list=LIST, address="203.0.113.0/24")
    other = al.add(list="other", address="198.51.100.9")
    assert first.startswith("*") and second.startswith("*"), (first, second)

    rows = tuple(al.select(Key(".id"), Key("address"), Key("dynamic")).where(Key("list") == LIST))
    assert [r["address"] for r in rows] == ["198.51.100.7", "203.0.113.0/24"], rows
    assert rows[0][".id"] == first
    # librouteros turns "true"/"false" into booleans.
    assert rows[0]["dynamic"] is True and rows[1]["dynamic"] is False, rows

    either = tuple(al.select(Key("address")).where(Or(Key("list") == LIST, Key("list") == "other")))
    assert len(either) == 3, either
    not_ours = tuple(al.select(Key("address")).where(Key("list") != LIST))
    assert [r["address"] for r in not_ours] == ["198.51.100.9"], not_ours
    within = tuple(al.select(Key("address")).where(Key("address").In("198.51.100.7", "198.51.100.9")))
    assert len(within) == 2, within

    al.update(**{".id": first, "comment": "updated", "timeout": "1h"})
    row = next(r for r in al if r[".id"] == first)
    assert row["comment"] == "updated", row

    al.remove(first, second, other)
    assert tuple(al.select(Key("address")).where(Key("list") == LIST)) == ()
    try:
        al.remove(first)
    except TrapError as e:
        assert e.message == "no such item", e.message
    else:
        raise AssertionError("removing a removed entry did not trap")
    conn.close()


def check_duplicate_trap():
    conn = api()
    al = address_list(conn)
    entry = al.add(list=LIST, address="198.51.100.77")
    try:
        al.add(list=LIST, address="198.51.100.77")
    except TrapError as e:
        assert e.message == "failure: already have such entry", e.message
    else:
        raise AssertionError("a duplicate add did not trap")
    # The connection is still usable after the trap.
    al.remove(entry)
    conn.close()


def check_ipv6_list():
    conn = api()
    al6 = conn.path("ipv6", "firewall", "address-list")
    entry = al6.add(list=LIST, address="2001:db8::7")
    rows = tuple(al6.select(Key("address")).where(Key(".id") == entry))
    assert rows == ({"address": "2001:db8::7/128"},), rows
    al6.remove(entry)
    conn.close()


def check_empty_result():
    conn = api()
    # Through the high-level API an empty print is simply no rows.
    assert tuple(address_list(conn).select(Key("address")).where(Key("list") == "nothing-here")) == ()
    # On the wire, RouterOS 7.18+ says !empty before !done.
    conn.protocol.writeSentence("/ip/firewall/address-list/print", "?list=nothing-here")
    assert conn.readSentence() == ("!empty", {}), "expected !empty"
    assert conn.readSentence() == ("!done", {}), "expected !done after !empty"
    conn.close()


def check_follow_log():
    follower = api()
    writer = api()
    follower.protocol.writeSentence("/log/print", "=follow-only=", "?topics=script,info")
    time.sleep(0.2)
    for i in range(3):
        tuple(writer("/log/info", message=f"interop message {i}"))
    seen = []
    while len(seen) < 3:
        word, row = follower.readSentence()
        assert word == "!re", (word, row)
        assert row["topics"] == "script,info", row
        seen.append(row["message"])
    assert seen == [f"interop message {i}" for i in range(3)], seen
    # /cancel without a tag stops the follow: interrupted trap, its !done, the cancel's !done.
    follower.protocol.writeSentence("/cancel")
    replies = [follower.readSentence() for _ in range(3)]
    assert replies[0] == ("!trap", {"category": 2, "message": "interrupted"}), replies
    assert replies[1] == ("!done", {}) and replies[2] == ("!done", {}), replies
    # The follower connection is still usable.
    assert tuple(follower("/system/identity/print"))[0]["name"] == "MikroTik"
    follower.close()
    writer.close()


def check_resource():
    conn = api()
    rows = tuple(conn.path("system", "resource").select(Key("cpu-load"), Key("version"), Key("uptime")))
    assert len(rows) == 1 and isinstance(rows[0]["cpu-load"], int), rows
    assert rows[0]["version"].startswith("7.18"), rows
    conn.close()


def check_legacy_login():
    if LEGACY is None:
        raise AssertionError("no legacy-login simulator address given")
    conn = api(addr=LEGACY, login_method=token)
    assert tuple(conn("/system/identity/print"))[0]["name"] == "MikroTik"
    conn.close()
    try:
        api(addr=LEGACY, password="wrong", login_method=token)
    except TrapError as e:
        assert e.message == "invalid user name or password (6)", e.message
    else:
        raise AssertionError("a wrong legacy password logged in")


def check_firewall_rules_in_order():
    conn = api()
    f = conn.path("ip", "firewall", "filter")
    accept = f.add(chain="input", action="accept", **{"connection-state": "established,related"})
    log = f.add(chain="input", action="log", **{"log-prefix": "NEW", "place-before": accept})
    rows = tuple(f.select(Key(".id"), Key("action"), Key("disabled")))
    assert [r[".id"] for r in rows] == [log, accept], rows
    assert rows[0]["disabled"] is False, rows
    f.update(**{".id": log, "disabled": True})
    enabled_logs = tuple(f.select(Key(".id")).where(Key("action") == "log", Key("disabled") == False))  # noqa: E712
    assert enabled_logs == (), enabled_logs
    try:
        f.add(chain="input", action="explode")
    except TrapError as e:
        assert e.message == "invalid value for argument action", e.message
    else:
        raise AssertionError("an unknown action was accepted")
    f.remove(log, accept)
    assert tuple(f) == ()
    conn.close()


def check_user_from_a_group_logs_in():
    conn = api()
    groups = conn.path("user", "group")
    users = conn.path("user")
    groups.add(name="interop", policy="api,read")
    group = next(r for r in groups if r["name"] == "interop")
    assert group["policy"].startswith("read,api,!"), group
    uid = users.add(name="interop", group="interop", password="pw-interop")
    row = next(r for r in users if r["name"] == "interop")
    assert "password" not in row and row["group"] == "interop", row
    host, port = split(ADDR)
    reader = connect(host, "interop", "pw-interop", port=port, timeout=10)
    assert tuple(reader("/system/identity/print"))[0]["name"] == "MikroTik"
    try:
        tuple(reader.path("ip", "firewall", "raw").add(chain="prerouting", action="drop"))
    except TrapError as e:
        assert e.message == "not enough permissions (9)", e.message
    else:
        raise AssertionError("a read-only user wrote a rule")
    reader.close()
    users.remove(uid)
    conn.close()


CHECKS = [
    check_login_and_wrong_password,
    check_add_print_query_remove,
    check_duplicate_trap,
    check_ipv6_list,
    check_empty_result,
    check_follow_log,
    check_resource,
    check_legacy_login,
    check_firewall_rules_in_order,
    check_user_from_a_group_logs_in,
]


if __name__ == "__main__":
    sys.exit(run_checks(CHECKS))
