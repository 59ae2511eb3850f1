//! The built-in detectors, one per file, and the bounded per-source state they share.

mod asymmetric;
mod brute_force;
mod login_cpu;
mod port_scan;
pub(crate) mod table;

pub use asymmetric::{
    ASYMMETRIC_CONNECTION, AsymmetricConnectionConfig, AsymmetricConnectionDetector, BlockSide,
};
pub use brute_force::{BRUTE_FORCE, BruteForceConfig, BruteForceDetector};
pub use login_cpu::{LOGIN_CPU_SPIKE, LoginCpuSpikeConfig, LoginCpuSpikeDetector};
pub use port_scan::{PORT_SCAN, PortScanConfig, PortScanDetector};

/// A stable 32-bit fingerprint of a text (FNV-1a), for counting distinct user names and
/// services without keeping the text. Collisions can only make a count lower.
pub(crate) fn text_fingerprint(text: &str) -> u32 {
    let mut h: u32 = 0x811c_9dc5;
    for b in text.bytes() {
        h ^= u32::from(b);
        h = h.wrapping_mul(0x0100_0193);
    }
    h
}
