//! A budget of units counted in total and per client address (connections, parked polls).
//!
//! One address cannot take more than its share, and all addresses together cannot take more
//! than the total; a refusal names the limit that was hit.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError};

/// The budget.
#[derive(Debug)]
pub(crate) struct Budget {
    what: &'static str,
    max_total: usize,
    max_per_addr: usize,
    used: Mutex<Used>,
}

#[derive(Debug, Default)]
struct Used {
    total: usize,
    by_addr: HashMap<IpAddr, usize>,
}

/// Units held until dropped.
#[derive(Debug)]
pub(crate) struct Permit {
    budget: Arc<Budget>,
    addr: IpAddr,
    units: usize,
}

/// Why units were refused; the text names the limit.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum Refused {
    /// Every address together is at the total.
    #[error("too many {what} (limit {max})")]
    Total {
        /// What is counted.
        what: &'static str,
        /// The limit.
        max: usize,
    },
    /// This address is at its share.
    #[error("too many {what} from one client address (limit {max})")]
    PerAddr {
        /// What is counted.
        what: &'static str,
        /// The limit.
        max: usize,
    },
}

impl Budget {
    pub(crate) fn new(what: &'static str, max_total: usize, max_per_addr: usize) -> Budget {
        Budget {
            what,
            max_total,
            max_per_addr,
            used: Mutex::new(Used::default()),
        }
    }

    /// Takes `units` for `addr`, or says which limit refuses them.
    pub(crate) fn acquire(self: &Arc<Self>, addr: IpAddr, units: usize) -> Result<Permit, Refused> {
        let mut used = self.used.lock().unwrap_or_else(PoisonError::into_inner);
        let mine = used.by_addr.get(&addr).copied().unwrap_or(0);
        if mine.saturating_add(units) > self.max_per_addr {
            return Err(Refused::PerAddr {
                what: self.what,
                max: self.max_per_addr,
            });
        }
        if used.total.saturating_add(units) > self.max_total {
            return Err(Refused::Total {
                what: self.what,
                max: self.max_total,
            });
        }
        used.total += units;
        *used.by_addr.entry(addr).or_default() += units;
        Ok(Permit {
            budget: Arc::clone(self),
            addr,
            units,
        })
    }

    /// Units in use in total.
    pub(crate) fn in_use(&self) -> usize {
        self.used
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .total
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        let mut used = self
            .budget
            .used
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        used.total -= self.units;
        if let Some(n) = used.by_addr.get_mut(&self.addr) {
            *n -= self.units;
            if *n == 0 {
                used.by_addr.remove(&self.addr);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_address_and_total_bounds() {
        let b = Arc::new(Budget::new("things", 10, 6));
        let (a, c) = ("10.0.0.1".parse().unwrap(), "10.0.0.2".parse().unwrap());
        let p1 = b.acquire(a, 6).unwrap();
        assert_eq!(
            b.acquire(a, 1).unwrap_err(),
            Refused::PerAddr {
                what: "things",
                max: 6
            }
        );
        let p2 = b.acquire(c, 4).unwrap();
        assert!(matches!(b.acquire(c, 1), Err(Refused::Total { .. })));
        assert!(
            b.acquire(c, 1)
                .unwrap_err()
                .to_string()
                .contains("limit 10")
        );
        drop(p1);
        assert_eq!(b.in_use(), 4);
        let _p3 = b.acquire(a, 6).unwrap();
        drop(p2);
        assert_eq!(b.in_use(), 6);
        assert_eq!(
            b.used.lock().unwrap().by_addr.len(),
            1,
            "empty addresses are dropped"
        );
    }
}
