//! tower integration: `sdkit::discover::discover` turns an instancer into a
//! `tower::discover::Discover` stream that feeds `tower::balance::p2c::Balance`
//! (power-of-two-choices over the least pending requests), wrapped in tower middleware.
//! Runnable with nothing installed.
//!
//! The instancer is a `static://` list of three addresses; the endpoint made for each is a
//! stand-in client that answers after a delay proportional to its port's last digit (5, 10 and
//! 25 ms), so p2c, which prefers the endpoint with fewer requests in flight, sends more to the
//! fast ones.
//! Any target works the same way (the first argument replaces the static list, e.g.
//! `etcd://127.0.0.1:2379/services/web`); instances that come and go become
//! `Change::Insert` / `Change::Remove` for tower, and registry errors are logged, never passed
//! to tower (which would treat them as fatal).
//!
//! ```sh
//! cargo run -p sdkit --example tower_balance
//! ```

use std::collections::BTreeMap;
use std::time::Duration;

use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use sdkit::discover::discover;
use sdkit::{BoxError, Instance, Instancer as _, Target};
use tower::balance::p2c::Balance;
use tower::load::{CompleteOnResponse, PendingRequests};
use tower::{Service, ServiceBuilder, ServiceExt, service_fn};

const DEFAULT_TARGET: &str = "static://127.0.0.1:9001,127.0.0.1:9002,127.0.0.1:9005";

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let url = std::env::args()
        .nth(1)
        .unwrap_or_else(|| DEFAULT_TARGET.to_owned());
    let target: Target = url.parse()?;
    let instancer = target.instancer()?;

    // The factory: one client per instance, wrapped so p2c can read its load.
    let changes = discover(&instancer, |instance: &Instance| {
        let client = fake_client(instance.addr().to_owned());
        Ok::<_, BoxError>(PendingRequests::new(client, CompleteOnResponse::default()))
    });

    // tower's balancer, with ordinary tower middleware around it.
    let balance: Balance<_, String> = Balance::new(changes);
    let mut service = ServiceBuilder::new()
        .timeout(Duration::from_secs(2))
        .service(balance);

    // 200 requests, 8 in flight at a time; count who answered.
    let mut answered: BTreeMap<String, usize> = BTreeMap::new();
    let mut in_flight = FuturesUnordered::new();
    let mut sent = 0;
    while sent < 200 || !in_flight.is_empty() {
        if sent < 200 && in_flight.len() < 8 {
            // `ready()` waits for the balancer to have an endpoint (discovery is asynchronous).
            let call = service.ready().await?.call(format!("request {sent}"));
            in_flight.push(call);
            sent += 1;
        } else if let Some(answer) = in_flight.next().await {
            *answered.entry(answer?).or_default() += 1;
        }
    }
    for (addr, count) in &answered {
        println!("{addr}: {count} requests");
    }
    instancer.stop();
    Ok(())
}

/// Stands in for a real client (HTTP, gRPC…): answers with its address after a delay that
/// grows with the port's last digit.
fn fake_client(
    addr: String,
) -> impl Service<String, Response = String, Error = BoxError, Future: Send> + Clone + Send + 'static
{
    let delay_ms = 5 * u64::from(addr.bytes().last().map_or(1, |b| b.saturating_sub(b'0')));
    service_fn(move |_request: String| {
        let addr = addr.clone();
        async move {
            tokio::time::sleep(Duration::from_millis(delay_ms)).await;
            Ok::<_, BoxError>(addr)
        }
    })
}
