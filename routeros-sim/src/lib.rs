//! A simulated MikroTik RouterOS 7 router that speaks the real API.
//!
//! `routeros-sim` lets tests, benchmarks and `mtids simulate` run against something a
//! RouterOS client cannot tell from a router, for the commands an IDS uses: address lists
//! (IPv4 and IPv6), the connection table, the log (print and follow), users and policies,
//! `/system/resource`, the router's own addresses, `/cancel` and `/quit`, and the
//! configuration menus a set-up tool uses (`/user`, `/user/group`, firewall `filter` and
//! `raw` for IPv4 and IPv6, `/certificate`, `/ip/service`, `/system/logging`), kept in one
//! generic ordered table model. It adds fault knobs
//! (latency, dropped connections, stalls, `!fatal`, reboots) and seeded attack scenarios
//! labelled with their ground truth.
//!
//! The model is a plain synchronous core: [`Router::execute`] takes a parsed [`Request`]
//! and returns reply [`Sentence`]s, so it is testable without sockets.
//!
//! ```
//! use routeros_sim::{Outcome, Request, Router, RouterConfig, Session, Service};
//!
//! let router = Router::new(RouterConfig::default());
//! let mut session = Session::new("127.0.0.1".parse().unwrap(), Service::Api);
//! let login = Request::new("/login").attr("name", "admin").attr("password", "");
//! assert!(matches!(router.execute(&mut session, &login), Outcome::Reply(_)));
//!
//! let add = Request::new("/ip/firewall/address-list/add")
//!     .attr("list", "blocked")
//!     .attr("address", "198.51.100.7")
//!     .attr("timeout", "1d");
//! let Outcome::Reply(reply) = router.execute(&mut session, &add) else { unreachable!() };
//! assert_eq!(reply[0].get("ret"), Some(&b"*1"[..]));
//! assert!(router.is_listed("blocked", "198.51.100.7"));
//! ```
//!
//! Served over TCP (or TLS with [`ServerConfig::tls`]) for any RouterOS client, with the
//! handle still in the test's hands:
//!
//! ```
//! use routeros_sim::{FirewallLogLine, Router, RouterConfig, Server, ServerConfig};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), routeros_sim::SimError> {
//! let router = Router::new(RouterConfig::default());
//! let server = Server::bind(router.clone(), ServerConfig::plain("127.0.0.1:0".parse().unwrap())).await?;
//! println!("a RouterOS API on {}", server.local_addr());
//! router.log_firewall(&FirewallLogLine::tcp_syn(
//!     Some("SCAN"),
//!     "198.51.100.7:40000".parse().unwrap(),
//!     "192.0.2.1:22".parse().unwrap(),
//! ));
//! router.set_cpu_load(95);
//! server.shutdown().await;
//! # Ok(())
//! # }
//! ```
//!
//! Layout: [`model`] holds the tables, [`query`] the query stack, [`logline`] the log
//! formats, [`scenario`] the seeded traffic, [`server`] the sockets; [`Router`] ties the
//! model together and answers commands.

pub mod clock;
pub mod duration;
mod error;
pub mod logline;
pub mod model;
pub mod query;
mod router;
pub mod scenario;
pub mod sentence;
pub mod server;
mod tls;

pub use clock::{Clock, ManualClock, ScaledClock, SystemClock};
pub use error::SimError;
pub use logline::{FirewallLogLine, FirewallProto, Nat, Service};
pub use model::address_list::{AddressListEntry, Family};
pub use model::connection::{Connection, PortStyle, Protocol};
pub use model::log::LogEntry;
pub use model::resource::{OwnAddress, RouterOsVersion};
pub use model::users::{Policies, Policy, User, challenge_response};
pub use router::{
    Control, Follow, LoginMethod, Outcome, RemoteLogStats, Router, RouterConfig, SentCount, Session,
};
pub use scenario::{AttackKind, GroundTruth, SCENARIOS, Scenario};
pub use sentence::{Request, Sentence, TrapCategory};
pub use server::{Server, ServerConfig};
pub use tls::{SelfSignedCertificate, TlsIdentity};
