//! The descriptor limit a fleet needs: one socket per router, plus the listeners, the
//! ledger and some room. The default soft limit (1,024, also under systemd without
//! `LimitNOFILE`) stops a daemon at about 1,000 routers with `Too many open files`.

/// Descriptors kept for everything but the router connections: syslog and metrics
/// listeners and their clients, the ledger and its journal, alert HTTP connections, logs.
const OTHER_DESCRIPTORS: u64 = 512;

/// What raising the limit came to, for the start-up log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DescriptorLimit {
    /// The soft limit already allowed `needed`.
    Enough { soft: u64 },
    /// The soft limit was raised from `from` to `to`.
    Raised { from: u64, to: u64 },
    /// The hard limit is below what is needed: raised as far as it goes.
    HardLimitTooLow { soft: u64, hard: u64, needed: u64 },
}

/// The descriptors `routers` routers need.
pub(crate) fn needed(routers: usize) -> u64 {
    (routers as u64).saturating_add(OTHER_DESCRIPTORS)
}

/// What to set the soft limit to, from the current `soft` and `hard` limits (`None`:
/// unlimited) and what is `needed`.
fn plan(soft: Option<u64>, hard: Option<u64>, needed: u64) -> (Option<u64>, DescriptorLimit) {
    let soft_n = soft.unwrap_or(u64::MAX);
    if soft_n >= needed {
        return (None, DescriptorLimit::Enough { soft: soft_n });
    }
    match hard {
        Some(hard) if hard < needed => {
            let to = (hard > soft_n).then_some(hard);
            (
                to,
                DescriptorLimit::HardLimitTooLow {
                    soft: to.unwrap_or(soft_n),
                    hard,
                    needed,
                },
            )
        }
        _ => (
            Some(needed),
            DescriptorLimit::Raised {
                from: soft_n,
                to: needed,
            },
        ),
    }
}

/// Raises the soft descriptor limit (`RLIMIT_NOFILE`) to what `routers` routers need,
/// within the hard limit, and says so; warns when the hard limit is too low.
pub(crate) fn raise_descriptor_limit(routers: usize) {
    let needed = needed(routers);
    #[cfg(unix)]
    {
        use rustix::process::{Resource, getrlimit, setrlimit};
        let now = getrlimit(Resource::Nofile);
        let (set, outcome) = plan(now.current, now.maximum, needed);
        if let Some(to) = set {
            let new = rustix::process::Rlimit {
                current: Some(to),
                maximum: now.maximum,
            };
            if let Err(e) = setrlimit(Resource::Nofile, new) {
                tracing::warn!(
                    needed,
                    "cannot raise the open-file limit to {to}: {e}; routers past the limit \
                     will fail to connect with `Too many open files` (set LimitNOFILE)"
                );
                return;
            }
        }
        match outcome {
            DescriptorLimit::Enough { soft } => {
                tracing::debug!(soft, needed, "open-file limit is enough")
            }
            DescriptorLimit::Raised { from, to } => {
                tracing::info!(
                    from,
                    to,
                    routers,
                    "raised the open-file limit for the fleet"
                )
            }
            DescriptorLimit::HardLimitTooLow { soft, hard, needed } => tracing::warn!(
                soft,
                hard,
                needed,
                routers,
                "the open-file hard limit is too low for this many routers: routers past \
                 it will fail to connect with `Too many open files`; raise it (systemd: \
                 LimitNOFILE=65536, shell: ulimit -Hn)"
            ),
        }
    }
    #[cfg(not(unix))]
    let _ = (needed, plan);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_soft_limit_is_raised_to_what_the_fleet_needs_within_the_hard_limit() {
        let need = needed(5000);
        assert_eq!(need, 5512);
        assert_eq!(
            plan(Some(1024), Some(524_288), need),
            (
                Some(need),
                DescriptorLimit::Raised {
                    from: 1024,
                    to: need
                }
            )
        );
        assert_eq!(
            plan(Some(1024), None, need).1,
            DescriptorLimit::Raised {
                from: 1024,
                to: need
            }
        );
        assert_eq!(
            plan(Some(65_536), Some(65_536), need),
            (None, DescriptorLimit::Enough { soft: 65_536 })
        );
        assert_eq!(
            plan(None, None, need),
            (None, DescriptorLimit::Enough { soft: u64::MAX })
        );
        // Hard limit too low: as far as it goes, and a warning.
        assert_eq!(
            plan(Some(1024), Some(4096), need),
            (
                Some(4096),
                DescriptorLimit::HardLimitTooLow {
                    soft: 4096,
                    hard: 4096,
                    needed: need
                }
            )
        );
        assert_eq!(
            plan(Some(4096), Some(4096), need),
            (
                None,
                DescriptorLimit::HardLimitTooLow {
                    soft: 4096,
                    hard: 4096,
                    needed: need
                }
            )
        );
    }

    #[cfg(unix)]
    #[test]
    fn raising_leaves_a_soft_limit_that_holds_the_fleet() {
        raise_descriptor_limit(2000);
        let now = rustix::process::getrlimit(rustix::process::Resource::Nofile);
        let hard = now.maximum.unwrap_or(u64::MAX);
        let soft = now.current.unwrap_or(u64::MAX);
        assert!(soft >= needed(2000).min(hard), "soft {soft}, hard {hard}");
    }
}
