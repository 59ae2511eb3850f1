//! A deterministic, labelled RouterOS log: benign traffic with scanners, a host sweeper
//! and password guessers mixed in. Shared by the scenario tests and the `detect` bench.
#![allow(dead_code)]

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr};

/// The log and who the attackers in it are.
pub struct MixedLog {
    /// One log line per entry, BSD syslog as the router sends it.
    pub lines: Vec<String>,
    /// Sources that scan more than 15 ports of the router.
    pub scanners: BTreeSet<IpAddr>,
    /// Sources that probe one port across many hosts.
    pub sweepers: BTreeSet<IpAddr>,
    /// Sources that fail more than 10 logins a minute.
    pub brute_forcers: BTreeSet<IpAddr>,
    /// Lines of a kind no parser knows (DHCP, interface, script messages).
    pub unrecognized: usize,
}

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        // xorshift64*: deterministic, good enough to shuffle a log.
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// `Nov 21 10:00:01` for `ms` milliseconds after 2026-11-21 00:00:00 (one day at most).
fn header(ms: u64) -> String {
    let secs = ms / 1000;
    let (h, m, s) = ((secs / 3600) % 24, (secs / 60) % 60, secs % 60);
    format!("<134>{} 21 {h:02}:{m:02}:{s:02} gw.example", MONTHS[10])
}

fn public(i: u64) -> IpAddr {
    // 11.0.0.0 and up: public, never in a private or shared range.
    IpAddr::V4(Ipv4Addr::from(
        0x0b00_0000u32 + (i as u32).wrapping_mul(7919) % 0x5000_0000,
    ))
}

const ROUTER: &str = "192.0.2.1";
const SERVICES: [u16; 5] = [22, 443, 80, 8291, 53];
const USERS: [&str; 6] = ["alice", "bob", "carol", "dave", "erin", "frank"];

/// About `n` lines starting at 10:00:00, one every `step_ms` on average.
pub fn mixed_log(n: usize, seed: u64) -> MixedLog {
    let mut rng = Rng(seed | 1);
    let mut out = MixedLog {
        lines: Vec::with_capacity(n + 64),
        scanners: BTreeSet::new(),
        sweepers: BTreeSet::new(),
        brute_forcers: BTreeSet::new(),
        unrecognized: 0,
    };
    let mut t: u64 = 10 * 3600 * 1000;
    let mut next_attack = 0usize;
    let mut attack_no = 0u64;
    while out.lines.len() < n {
        t += rng.below(3);
        let mut line = header(t);
        // Every 2000 lines an attack burst starts: scanner, brute forcer, sweeper in turn.
        if out.lines.len() >= next_attack {
            next_attack += 2000;
            attack_no += 1;
            let attacker = public(1_000_000 + attack_no);
            match attack_no % 3 {
                0 => {
                    out.scanners.insert(attacker);
                    for k in 0..40u16 {
                        t += 20;
                        out.lines.push(format!(
                            "{} firewall,info SCAN input: in:ether1 out:(unknown 0), connection-state:new src-mac 00:0c:42:aa:bb:cc, proto TCP (SYN), {attacker}:{}->{ROUTER}:{}, len 60",
                            header(t),
                            40_000 + k,
                            1 + k * 37
                        ));
                    }
                }
                1 => {
                    out.brute_forcers.insert(attacker);
                    for k in 0..12u64 {
                        t += 400;
                        out.lines.push(format!(
                            "{} system,error,critical login failure for user admin from {attacker} via ssh",
                            header(t + k)
                        ));
                    }
                }
                _ => {
                    out.sweepers.insert(attacker);
                    for k in 0..30u32 {
                        t += 50;
                        out.lines.push(format!(
                            "{} firewall,info SCAN forward: in:ether1 out:bridge, connection-state:new proto TCP (SYN), {attacker}:{}->203.0.113.{}:3389, len 60",
                            header(t),
                            50_000 + k,
                            10 + k
                        ));
                    }
                }
            }
            continue;
        }
        let r = rng.below(100);
        let who = rng.below(3000);
        let src = public(who);
        if r < 55 {
            // A benign client reaching one of the two services it uses.
            let port = SERVICES[((who + rng.below(2)) % 5) as usize];
            let _ = write!(
                line,
                " firewall,info SCAN input: in:ether1 out:(unknown 0), connection-state:new src-mac 00:0c:42:aa:bb:cc, proto TCP (SYN), {src}:{}->{ROUTER}:{port}, len 60",
                30_000 + rng.below(30_000)
            );
        } else if r < 65 {
            let lan = rng.below(40) + 10;
            let site = rng.below(12);
            let _ = write!(
                line,
                " firewall,info forward: in:bridge out:ether1, connection-state:new src-mac 00:0c:42:11:22:{lan:02x}, proto TCP (SYN), 192.168.88.{lan}:{p}->93.184.216.{site}:443, NAT (192.168.88.{lan}:{p}->{ROUTER}:{p})->93.184.216.{site}:443, len 60",
                p = 40_000 + rng.below(20_000)
            );
        } else if r < 70 {
            let _ = write!(
                line,
                " firewall,info input: in:ether1 out:(unknown 0), proto UDP, {src}:{}->{ROUTER}:53, len 72",
                1024 + rng.below(60_000)
            );
        } else if r < 73 {
            let _ = write!(
                line,
                " firewall,info input: in:ether1 out:(unknown 0), proto ICMP (type 8, code 0), {src}->{ROUTER}, len 84"
            );
        } else if r < 76 {
            // Somebody mistypes a password now and then.
            let user = USERS[(who % 6) as usize];
            let _ = write!(
                line,
                " system,error,critical login failure for user {user} from {src} via winbox"
            );
        } else if r < 80 {
            let user = USERS[(who % 6) as usize];
            let verb = if rng.below(2) == 0 {
                "logged in"
            } else {
                "logged out"
            };
            let _ = write!(
                line,
                " system,info,account user {user} {verb} from {src} via winbox"
            );
        } else {
            out.unrecognized += 1;
            let msg = match rng.below(4) {
                0 => "dhcp,info defconf assigned 192.168.88.23 for 00:0C:42:11:22:33 phone",
                1 => "interface,info ether2 link up (speed 1G, full duplex)",
                2 => "system,info device changed by admin",
                _ => "script,info backup finished",
            };
            let _ = write!(line, " {msg}");
        }
        out.lines.push(line);
    }
    out
}
