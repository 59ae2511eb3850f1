//! A simulated router on a loopback socket, a ledger file, and a clock the test moves.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use mtids_enforce::{Ban, BanLedger, Clock, IpPrefix, RouterOsConfig, RouterOsEnforcer};
use routeros_proto::net::{Client, ClientConfig};
use routeros_sim::{Family, Router, RouterConfig, Server, ServerConfig};

pub struct Sim {
    pub router: Router,
    pub server: Server,
}

impl Sim {
    pub async fn start() -> Sim {
        let router = Router::new(RouterConfig::default());
        let server = Server::bind(
            router.clone(),
            ServerConfig::plain("127.0.0.1:0".parse().unwrap()),
        )
        .await
        .unwrap();
        Sim { router, server }
    }

    pub fn client_config(&self, user: &str, password: &str) -> ClientConfig {
        ClientConfig::new("127.0.0.1", user, password)
            .port(self.server.local_addr().port())
            .connect_timeout(Duration::from_secs(5))
    }

    pub async fn client(&self) -> Client {
        Client::connect(&self.client_config("admin", ""))
            .await
            .unwrap()
    }

    /// The entries of `list` in both families.
    pub fn entries(&self, list: &str) -> Vec<routeros_sim::AddressListEntry> {
        let mut all = self.router.address_list(Family::V4);
        all.extend(self.router.address_list(Family::V6));
        all.retain(|e| e.list == list);
        all
    }

    pub fn entry(&self, list: &str, address: &str) -> routeros_sim::AddressListEntry {
        self.entries(list)
            .into_iter()
            .find(|e| e.address == address)
            .unwrap_or_else(|| panic!("{address} not on {list}"))
    }
}

/// A clock that starts now and moves only when told.
#[derive(Clone)]
pub struct TestClock(Arc<AtomicU64>);

impl TestClock {
    pub fn new() -> TestClock {
        let now = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap()
            .as_millis() as u64;
        TestClock(Arc::new(AtomicU64::new(now)))
    }

    pub fn now(&self) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_millis(self.0.load(Ordering::SeqCst))
    }

    pub fn advance(&self, d: Duration) {
        self.0.fetch_add(d.as_millis() as u64, Ordering::SeqCst);
    }

    pub fn clock(&self) -> Clock {
        let me = self.clone();
        Arc::new(move || me.now())
    }
}

pub fn ledger(dir: &tempfile::TempDir) -> Arc<Mutex<BanLedger>> {
    Arc::new(Mutex::new(
        BanLedger::open(dir.path().join("bans.db")).unwrap(),
    ))
}

pub fn enforcer(
    client: Client,
    ledger: &Arc<Mutex<BanLedger>>,
    clock: &TestClock,
) -> RouterOsEnforcer {
    RouterOsEnforcer::new(client, RouterOsConfig::new("gw"), ledger.clone())
        .with_clock(clock.clock())
}

pub fn ban(target: &str, secs: u64) -> Ban {
    let target: IpPrefix = target.parse().unwrap();
    Ban::new(
        target,
        Some(Duration::from_secs(secs)),
        "port_scan",
        "mtids port_scan 40 ports in 5s",
    )
}

pub fn v4(i: u32) -> String {
    let n = 0x0B00_0000 + i; // 11.0.0.0/8: outside the router's own ranges
    std::net::Ipv4Addr::from(n).to_string()
}

pub const LIST: &str = "mtids-blocked";
