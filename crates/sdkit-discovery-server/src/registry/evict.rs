//! Eviction of instances whose lease ran out, restrained by self-preservation and a cap.

#[cfg(test)]
use super::InstanceKey;
use super::Registry;
use crate::clock::nanos;
use crate::config::Lease;
use crate::escape::Escaped;
use std::collections::BTreeSet;
use tracing::{info, warn};

/// What one lease check did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct EvictReport {
    /// Self-preservation was active.
    pub(crate) protected: bool,
    /// Instances evicted.
    pub(crate) evicted: usize,
}

/// Most evictions per check with `n` live instances: `n - floor(n × ratio)`, at least 1.
pub(crate) fn evict_cap(n: usize, ratio: f64) -> usize {
    let keep = (n as f64 * ratio.clamp(0.0, 1.0)).floor() as usize;
    n.saturating_sub(keep).max(1)
}

impl Registry {
    /// One lease check at time `now`: closes the guard's renew window, then evicts the
    /// stalest expired instances up to the cap, waking their pollers.
    pub(crate) fn evict(&self, now: i64, lease: &Lease) -> EvictReport {
        let mut touched = BTreeSet::new();
        let report = {
            let mut store = self.write();
            let protected = self.guard.tick(now, store.renewing_instances(), lease);
            let ttl = if protected {
                lease.protected_evict_after
            } else {
                lease.evict_after
            };
            let mut expired = store.expired(now.saturating_sub(nanos(ttl)));
            let cap = evict_cap(store.sizes().1, lease.evict_cap_ratio);
            if expired.len() > cap {
                warn!(
                    expired = expired.len(),
                    cap, "eviction capped for this check"
                );
                expired.truncate(cap);
            }
            for (_, key) in &expired {
                if store.remove(key, now) {
                    info!(
                        appid = %Escaped(&key.appid),
                        env = %Escaped(&key.env),
                        hostname = %Escaped(&key.hostname),
                        "evicted"
                    );
                    touched.insert((key.env.clone(), key.appid.clone()));
                }
            }
            EvictReport {
                protected,
                evicted: expired.len(),
            }
        };
        for (env, appid) in touched {
            self.topics.notify(&env, &appid);
        }
        report
    }

    /// Whether an instance exists (test helper).
    #[cfg(test)]
    pub(crate) fn contains(&self, key: &InstanceKey) -> bool {
        self.read()
            .fetch(
                &key.env,
                &key.appid,
                &key.zone,
                sdkit_discovery_proto::StatusFilter::ALL,
            )
            .is_some_and(|i| {
                i.instances
                    .values()
                    .flatten()
                    .any(|x| x.hostname == key.hostname)
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Limits;
    use crate::clock::wall_nanos as now_nanos;
    use sdkit_discovery_proto::args::{RegisterArgs, RenewArgs};
    use std::time::Duration;

    fn register(r: &Registry, host: &str) {
        let a = RegisterArgs {
            zone: "z".into(),
            env: "e".into(),
            appid: "a".into(),
            hostname: host.into(),
            status: 1,
            addrs: vec!["http://x:1".into()],
            ..RegisterArgs::default()
        };
        r.register(&a, false).unwrap();
    }

    fn key(host: &str) -> InstanceKey {
        InstanceKey {
            env: "e".into(),
            appid: "a".into(),
            zone: "z".into(),
            hostname: host.into(),
        }
    }

    #[test]
    fn cap_matches_reference() {
        assert_eq!(evict_cap(1, 0.85), 1);
        assert_eq!(evict_cap(6, 0.85), 1);
        assert_eq!(evict_cap(7, 0.85), 2);
        assert_eq!(evict_cap(100, 0.85), 15);
        assert_eq!(evict_cap(0, 0.85), 1);
    }

    #[test]
    fn evicts_up_to_cap_per_check() {
        let r = Registry::new("dev".into(), Limits::default());
        for h in ["h1", "h2", "h3"] {
            register(&r, h);
        }
        let lease = Lease {
            self_preservation: false,
            evict_after: Duration::from_secs(1),
            ..Lease::default()
        };
        let later = now_nanos() + 2_000_000_000;
        assert_eq!(r.evict(later, &lease).evicted, 1);
        assert_eq!(r.sizes().1, 2);
        assert_eq!(r.evict(later, &lease).evicted, 1);
        assert_eq!(r.evict(later, &lease).evicted, 1);
        assert_eq!(r.sizes(), (0, 0));
    }

    #[test]
    fn self_preservation_restrains_and_renews_release() {
        let r = Registry::new("dev".into(), Limits::default());
        register(&r, "h1");
        register(&r, "h2");
        let lease = Lease {
            evict_after: Duration::from_secs(1),
            ..Lease::default()
        };
        let later = now_nanos() + 2_000_000_000;
        // No renews during the window: protected, nothing evicted.
        let report = r.evict(later, &lease);
        assert!(report.protected);
        assert_eq!(report.evicted, 0);
        assert!(r.contains(&key("h1")));
        // Enough renews (threshold 3 for 2 instances, each renewed one worth 2): not
        // protected.
        for host in ["h1", "h2"] {
            r.renew(
                &RenewArgs {
                    zone: "z".into(),
                    env: "e".into(),
                    appid: "a".into(),
                    hostname: host.into(),
                    ..RenewArgs::default()
                },
                false,
            )
            .unwrap();
        }
        let report = r.evict(now_nanos() + 500_000_000, &lease);
        assert!(!report.protected);
        assert_eq!(report.evicted, 0, "both renewed just now");
        // Past the protected ceiling, even protection evicts.
        let lease = Lease {
            protected_evict_after: Duration::from_secs(1),
            ..lease
        };
        let report = r.evict(later, &lease);
        assert!(report.protected);
        assert_eq!(report.evicted, 1);
    }
}
