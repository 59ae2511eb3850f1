//! A simulated MikroTik RouterOS 7 router that speaks the real API.
//!
//! `routeros-sim` lets tests, benchmarks and `mtids simulate` run against something a
//! RouterOS client cannot tell from a router, for the commands an IDS uses: address lists
//! (IPv4 and IPv6), the connection table, the log (print and follow), users and policies,
//! `/system/resource`, the router's own addresses, `/cancel` and `/quit`. It adds fault knobs
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
pub use router::{Control, LogFollow, LoginMethod, Outcome, Router, RouterConfig, Session};
pub use scenario::{AttackKind, GroundTruth, SCENARIOS, Scenario};
pub use sentence::{Request, Sentence, TrapCategory};
pub use server::{Server, ServerConfig};
pub use tls::{SelfSignedCertificate, TlsIdentity};
