#!/usr/bin/env python3
"""Writes a deterministic RouterOS log as a remote syslog server stores it (BSD syslog
header with the router's host name, ROUTEROS.md section 5): firewall lines from many
sources and a few port scanners, login failures (some brute forces), logins and noise.

Usage: gen-routeros-log.py LINES OUT_FILE
"""
import sys

MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]


def main():
    n, path = int(sys.argv[1]), sys.argv[2]
    x = 0x9E3779B97F4A7C15
    mask = (1 << 64) - 1

    def rand(k):
        nonlocal x
        x ^= (x << 13) & mask
        x ^= x >> 7
        x ^= (x << 17) & mask
        return x % k

    out = []
    for i in range(n):
        secs = i * 86400 // n
        h, m, s = secs // 3600, secs // 60 % 60, secs % 60
        head = f"{MONTHS[10]} 21 {h:02}:{m:02}:{s:02} gw.example "
        kind = rand(100)
        if kind < 80:
            scanner = rand(100) == 0
            src = f"198.51.100.{rand(20) + 1}" if scanner else f"203.0.{113 + rand(100)}.{rand(254) + 1}"
            port = rand(65000) + 1 if scanner else (443, 80, 22, 53, 8443)[rand(5)]
            sport = 1024 + rand(60000)
            body = (
                "firewall,info MTIDS_NEW input: in:ether1 out:(unknown 0), connection-state:new "
                f"src-mac 4c:5e:0c:11:22:33, proto TCP (SYN), {src}:{sport}->192.0.2.1:{port}, len 60"
            )
        elif kind < 92:
            user = ("admin", "root", "user", "test", "support")[rand(5)]
            via = ("ssh", "winbox", "api", "ftp")[rand(4)]
            body = f"system,error,critical login failure for user {user} from 198.51.100.{100 + rand(40)} via {via}"
        elif kind < 96:
            body = f"system,info,account user admin logged in from 10.0.0.{rand(250) + 2} via winbox"
        else:
            body = f"system,info dhcp-server lease {rand(255)} assigned to 4C:5E:0C:{rand(256):02X}:{rand(256):02X}:01"
        out.append(head + body + "\n")
    with open(path, "w") as f:
        f.writelines(out)


main()
