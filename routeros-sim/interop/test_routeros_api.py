"""Interop test: the Python routeros-api client (socialwifi, from PyPI) against routeros-sim.

Usage: test_routeros_api.py HOST:PORT PASSWORD

A second independent client: it tags every command, sends empty values as `=name` without
a second `=`, and parses replies with its own regular expressions. Prints one line per
check and a closing "N passed, N failed" line; exits non-zero on any failure.
"""

import sys

import routeros_api
from routeros_api.exceptions import RouterOsApiCommunicationError

from checks import run_checks

ADDR, PASSWORD = sys.argv[1], sys.argv[2]
LIST = "mtids-interop-ra"


def pool(password=PASSWORD):
    host, _, port = ADDR.rpartition(":")
    return routeros_api.RouterOsApiPool(host, username="admin", password=password, port=int(port), plaintext_login=True)


def check_login_and_refusal():
    p = pool()
    api = p.get_api()
    assert api.get_resource("/system/identity").get()[0]["name"] == "MikroTik"
    p.disconnect()
    try:
        pool("wrong").get_api()
    except RouterOsApiCommunicationError as e:
        assert e.original_message == b"invalid user name or password (6)", e.original_message
    else:
        raise AssertionError("a wrong password logged in")


def check_address_list_round_trip():
    p = pool()
    al = p.get_api().get_resource("/ip/firewall/address-list")
    al.add(list=LIST, address="198.51.100.21", timeout="1d", comment="routeros-api")
    al.add(list=LIST, address="198.51.100.22")
    try:
        al.add(list=LIST, address="198.51.100.22")
    except RouterOsApiCommunicationError as e:
        assert e.original_message == b"failure: already have such entry", e.original_message
    else:
        raise AssertionError("a duplicate add did not trap")
    rows = al.get(list=LIST)
    assert sorted(r["address"] for r in rows) == ["198.51.100.21", "198.51.100.22"], rows
    first = next(r for r in rows if r["address"] == "198.51.100.21")
    assert first["dynamic"] == "true" and first["comment"] == "routeros-api", first
    for r in rows:
        al.remove(id=r["id"])
    assert al.get(list=LIST) == [], "an empty print (!empty on 7.18) is no rows"
    p.disconnect()


def check_connection_table_and_resource():
    p = pool()
    api = p.get_api()
    count = api.get_resource("/ip/firewall/connection").call("print", {"count-only": ""})
    assert count.done_message["ret"] == "0", count.done_message
    resource = api.get_resource("/system/resource").get()[0]
    assert resource["version"].startswith("7.18"), resource
    p.disconnect()


CHECKS = [check_login_and_refusal, check_address_list_round_trip, check_connection_table_and_resource]


if __name__ == "__main__":
    sys.exit(run_checks(CHECKS))
