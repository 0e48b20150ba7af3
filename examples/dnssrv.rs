//! The DNS SRV backend: an instancer (there is no registrar: DNS is read-only here) built from
//! one `dnssrv://` target. Needs a DNS server that answers the SRV name.
//!
//! It waits for the first answer, prints the instances (one per target address, weight from
//! the SRV record, best priority only by default), follows the next refreshes for a few
//! seconds, and exits.
//!
//! ```sh
//! # a throw-away dnsmasq on 127.0.0.1:5353 (no root needed) serving two SRV records:
//! dnsmasq --keep-in-foreground --port=5353 --listen-address=127.0.0.1 --bind-interfaces \
//!   --no-resolv --no-hosts --local=/example.com/ --local-ttl=2 \
//!   --srv-host=_http._tcp.web.example.com,a.example.com,8080,0,10 \
//!   --srv-host=_http._tcp.web.example.com,b.example.com,8081,0,20 \
//!   --host-record=a.example.com,127.0.0.2 --host-record=b.example.com,127.0.0.3 &
//! cargo run -p sdkit --example dnssrv
//! # another name or server (or set SDKIT_TARGET); without `nameserver` the system resolver is used:
//! cargo run -p sdkit --example dnssrv -- 'dnssrv://_grpc._tcp.api.service.consul?nameserver=127.0.0.1:8600&priority=all'
//! ```
//!
//! The target comes from the first argument, else `SDKIT_TARGET`, else
//! `dnssrv://_http._tcp.web.example.com?nameserver=127.0.0.1:5353`. Refreshes follow the
//! answer's TTL, clamped to `min_refresh`..`max_refresh` (1 s..60 s by default). With no server
//! answering, the instancer publishes an error snapshot (after `timeout` × `attempts`, 4 s by
//! default) and keeps retrying with backoff. Logs: `RUST_LOG=sdkit_dnssrv=debug`.

#[path = "common/mod.rs"]
mod common;

use std::time::Duration;

use sdkit::{BoxError, Instancer as _, Snapshot};
use tokio::time::{Instant, timeout_at};

const DEFAULT_TARGET: &str = "dnssrv://_http._tcp.web.example.com?nameserver=127.0.0.1:5353";

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    common::init_logs();
    let target = common::target_from_args(DEFAULT_TARGET)?;
    println!("target: {target}");

    let instancer = target.instancer()?;
    let mut updates = instancer.subscribe();

    // The first snapshot: instances, or an error if the lookup failed. Every wait takes a
    // deadline (`Subscription::ready(timeout)` is the one-liner when only the first matters).
    let first = tokio::time::timeout(Duration::from_secs(10), updates.next())
        .await
        .map_err(|_| "no answer within 10 s")?
        .ok_or("the instancer stopped")?;
    print_snapshot(&first);
    if first.is_empty() && first.error().is_some() {
        instancer.stop();
        return Err(format!("no answer from the DNS server for {target}").into());
    }

    // Follow changes for 5 s: only snapshots that differ from the last one arrive.
    let until = Instant::now() + Duration::from_secs(5);
    while let Ok(Some(snapshot)) = timeout_at(until, updates.next()).await {
        print_snapshot(&snapshot);
    }
    instancer.stop();
    Ok(())
}

fn print_snapshot(snapshot: &Snapshot) {
    if let Some(error) = snapshot.error() {
        println!("lookup failing (last good set kept): {error}");
    }
    println!("{} instance(s)", snapshot.len());
    for i in snapshot.instances() {
        println!(
            "  {} at {} (weight {}, meta {:?})",
            i.id(),
            i.addr(),
            i.weight(),
            i.metadata()
        );
    }
}
