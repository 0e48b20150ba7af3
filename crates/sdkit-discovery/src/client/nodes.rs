//! The node list: seeds, discovered nodes, and which one is in use (rotation on failure and
//! periodically).

use std::time::Duration;

use tokio::time::Instant;
use tracing::info;

/// The node list: seeds, discovered nodes, and which one is in use.
#[derive(Debug)]
pub(crate) struct Nodes {
    seeds: Vec<String>,
    pub(super) discovered: Vec<String>,
    index: usize,
    /// Consecutive failures; once every discovered node failed, the seeds join the rotation.
    failures: usize,
    last_rotation: Instant,
}

impl Nodes {
    pub(super) fn new(seeds: Vec<String>) -> Nodes {
        Nodes {
            seeds,
            discovered: Vec::new(),
            index: 0,
            failures: 0,
            last_rotation: Instant::now(),
        }
    }

    /// The nodes in rotation.
    pub(crate) fn candidates(&self) -> Vec<String> {
        if self.discovered.is_empty() {
            return self.seeds.clone();
        }
        let mut list = self.discovered.clone();
        if self.failures >= self.discovered.len() {
            for seed in &self.seeds {
                if !list.contains(seed) {
                    list.push(seed.clone());
                }
            }
        }
        list
    }

    /// The node in use.
    pub(crate) fn current(&self) -> String {
        let list = self.candidates();
        // Never empty: validation guarantees a seed.
        list.get(self.index % list.len().max(1))
            .cloned()
            .unwrap_or_default()
    }

    /// Points the index at `node` when it is in rotation.
    pub(super) fn keep(&mut self, node: &str) {
        if let Some(pos) = self.candidates().iter().position(|n| n == node) {
            self.index = pos;
        }
    }

    /// The node for the next loop step, rotating when the interval elapsed.
    pub(super) fn pick(&mut self, interval: Duration) -> String {
        if !interval.is_zero() && self.last_rotation.elapsed() >= interval {
            self.last_rotation = Instant::now();
            if self.candidates().len() > 1 {
                self.index = self.index.wrapping_add(1);
                info!(node = %self.current(), "rotating to the next discovery node");
            }
        }
        self.current()
    }

    /// `node` failed: move past it (unless somebody already did).
    pub(crate) fn failed(&mut self, node: &str) {
        if self.current() != node {
            return;
        }
        self.failures = self.failures.saturating_add(1);
        let list = self.candidates();
        let pos = list.iter().position(|n| n == node).unwrap_or(self.index);
        self.index = pos.wrapping_add(1) % list.len().max(1);
    }

    /// `node` answered.
    pub(crate) fn succeeded(&mut self, node: &str) {
        if self.failures > 0
            && (self.discovered.is_empty() || self.discovered.iter().any(|n| n == node))
        {
            self.failures = 0;
            self.keep(node);
        }
    }

    /// Replaces the discovered list; returns whether it changed. The node in use stays in use
    /// when it is still listed.
    pub(super) fn set_discovered(&mut self, nodes: Vec<String>) -> bool {
        if nodes == self.discovered {
            return false;
        }
        let current = self.current();
        self.discovered = nodes;
        if self.discovered.contains(&current) {
            self.failures = 0;
        }
        self.index = 0;
        self.keep(&current);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nodes(seeds: &[&str]) -> Nodes {
        Nodes::new(seeds.iter().map(|s| s.to_string()).collect())
    }

    #[test]
    fn failure_rotates_once_per_failure() {
        let mut n = nodes(&["a:1", "b:1"]);
        assert_eq!(n.current(), "a:1");
        n.failed("a:1");
        assert_eq!(n.current(), "b:1");
        // A second report of the same failure (registrar and loop) does not skip a node.
        n.failed("a:1");
        assert_eq!(n.current(), "b:1");
    }

    #[test]
    fn discovered_nodes_replace_seeds_and_fall_back() {
        let mut n = nodes(&["seed:1"]);
        assert!(n.set_discovered(vec!["x:1".into(), "y:1".into()]));
        assert_eq!(n.candidates(), ["x:1", "y:1"]);
        // A node that disappeared is dropped.
        assert!(n.set_discovered(vec!["y:1".into()]));
        assert_eq!(n.current(), "y:1");
        // Every discovered node failed: the seeds join.
        n.failed("y:1");
        assert_eq!(n.current(), "seed:1");
        n.succeeded("seed:1");
        assert_eq!(n.current(), "seed:1", "a working seed stays in use");
        assert!(n.set_discovered(vec!["seed:1".into()]));
        n.succeeded("seed:1");
        assert_eq!(n.candidates(), ["seed:1"]);
    }

    #[test]
    fn periodic_rotation() {
        let mut n = nodes(&["a:1", "b:1"]);
        assert_eq!(n.pick(Duration::from_secs(3600)), "a:1");
        assert_eq!(n.pick(Duration::ZERO), "a:1");
        n.last_rotation = Instant::now() - Duration::from_secs(10);
        assert_eq!(n.pick(Duration::from_secs(5)), "b:1");
    }
}
