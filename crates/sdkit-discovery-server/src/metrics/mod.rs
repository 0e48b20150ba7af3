//! Prometheus metrics of the registry: the exposition text of the request counters (kept in
//! `requests`, below the shared state), the process's own figures (`process`), and the
//! separate listener serving `/metrics` (`listener`).
//!
//! Every label value comes from a fixed list (`requests`): the route is one of the API's
//! paths (or `ui`, `other`), the HTTP code and the envelope status are mapped onto the codes
//! the server writes (anything else is `other`). No string a client sent reaches a label.

mod listener;
mod process;

use crate::shared::Shared;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};

/// The Prometheus text exposition (format 0.0.4) of `shared` and the process.
pub(crate) fn render(shared: &Shared) -> String {
    let mut out = String::with_capacity(4096);
    let s = &shared.stats;
    let (apps, instances) = shared.registry.sizes();
    let load = |a: &AtomicU64| a.load(Ordering::Relaxed);

    header(
        &mut out,
        "sdkit_discovery_requests_total",
        "counter",
        "Requests answered, by route, HTTP code and discovery envelope status.",
    );
    for (route, code, status, n) in shared.requests.series() {
        let _ = writeln!(
            out,
            "sdkit_discovery_requests_total{{route=\"{route}\",code=\"{code}\",status=\"{status}\"}} {n}"
        );
    }
    let gauges: [(&str, &str, u64); 7] = [
        (
            "sdkit_discovery_apps",
            "Registered (appid, env) pairs.",
            apps as u64,
        ),
        (
            "sdkit_discovery_instances",
            "Registered instances, the server's own included.",
            instances as u64,
        ),
        (
            "sdkit_discovery_parked_polls",
            "Long polls currently parked.",
            s.parked.load(Ordering::Relaxed) as u64,
        ),
        (
            "sdkit_discovery_self_preservation",
            "1 while the last lease check was restrained by self-preservation.",
            u64::from(shared.registry.is_protected()),
        ),
        (
            "sdkit_discovery_protect_mode",
            "1 while protect mode is on (reads answer -500).",
            u64::from(shared.is_protected()),
        ),
        (
            "sdkit_discovery_connections",
            "Open client connections on the API listener.",
            shared.connections.in_use() as u64,
        ),
        (
            "sdkit_discovery_answer_cache_bytes",
            "Bytes held by the table of long-poll answers shared between pollers.",
            shared.answers.bytes() as u64,
        ),
    ];
    for (name, help, value) in gauges {
        metric(&mut out, name, "gauge", help, value);
    }
    let counters: [(&str, &str, u64); 3] = [
        (
            "sdkit_discovery_evictions_total",
            "Instances evicted because their lease expired.",
            load(&s.evicted),
        ),
        (
            "sdkit_discovery_lease_checks_total",
            "Lease checks run.",
            load(&s.lease_checks),
        ),
        (
            "sdkit_discovery_refused_connections_total",
            "Connections refused by a connection limit.",
            load(&s.refused_connections),
        ),
    ];
    for (name, help, value) in counters {
        metric(&mut out, name, "counter", help, value);
    }
    process::render(&mut out);
    out
}

/// `# HELP` and `# TYPE` lines.
fn header(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

/// One metric without labels.
fn metric(out: &mut String, name: &str, kind: &str, help: &str, value: impl std::fmt::Display) {
    header(out, name, kind, help);
    let _ = writeln!(out, "{name} {value}");
}
