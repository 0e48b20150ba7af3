//! `sdkit demo`: the whole pipeline on the embedded registry, in one process.
//!
//! 1. starts the discovery server on a free port;
//! 2. starts three HTTP backends that register themselves;
//! 3. builds instancer → endpointer → balancer (`--lb`, round-robin by default) → retry and
//!    sends traffic: the spread;
//! 4. kills one backend while traffic continues: its calls fail over to the live backends
//!    through retry (zero failed requests); the client skips it after its first refused
//!    connection (probing it in the background), and outlier detection ejects it once its
//!    failures (refused probes included) reach 5 in a row (`--no-outlier` turns that off),
//!    until its registration is cancelled and it leaves the set;
//! 5. starts a fourth backend and shows it join;
//! 6. shuts everything down (deregister, stop the watch, stop the server).
//!
//! Exit 0 when every step held (no failed request at all), 1 otherwise.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use super::http::{self, Backend};
use super::output::{Style, println_flush};
use super::traffic::{self, Plan, Stats};
use super::{CommandError, EXIT_OK, parse_target, shutdown_signal};
use sdkit::http::Endpoint as HttpEndpoint;
use sdkit::lb::outlier::{OutlierConfig, OutlierDetector, OutlierEvent};
use sdkit::{CancellationToken, EndpointSet, Instance, Registrar, Target};
use sdkit_discovery_server::Server;
use tokio::net::TcpListener;

/// Longest wait for the crashed backend's ejection.
const EJECTION_WAIT: Duration = Duration::from_secs(10);

const EXAMPLES: &str = "\
Examples:
  sdkit demo
  sdkit demo --requests 1000 --concurrency 8
  NO_COLOR=1 sdkit demo > demo.txt";

/// The service name the backends register under.
const APPID: &str = "demo.hello";
/// Longest wait for any step (registration, the watch catching up, traffic progress).
const STEP: Duration = Duration::from_secs(10);

/// Options of `sdkit demo`.
#[derive(Debug, clap::Args)]
#[command(after_help = EXAMPLES)]
pub struct Args {
    /// Requests per traffic phase.
    #[arg(long, default_value_t = 300, value_parser = clap::value_parser!(u64).range(30..=1_000_000))]
    requests: u64,
    /// Requests in flight at once.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=256))]
    concurrency: u16,
    /// Balancer: round_robin, random, weighted_round_robin, weighted_random, p2c,
    /// p2c_peak_ewma, zone_aware, subset, maglev, ring_hash, or a JSON config.
    #[arg(long, default_value = "round_robin", value_parser = super::traffic::parse_lb)]
    lb: sdkit::lb::BalancerConfig,
    /// Turn off outlier ejection (on by default: the crashed backend is ejected once it has
    /// failed 5 times in a row, refused reconnects included).
    #[arg(long)]
    no_outlier: bool,
}

/// A backend with its registration.
struct Running {
    backend: Backend,
    registrar: Box<dyn Registrar>,
}

/// Runs the demo; SIGINT/SIGTERM stops it early (exit 1).
pub async fn run(args: Args) -> Result<u8, CommandError> {
    let signal = shutdown_signal()?;
    tokio::select! {
        result = demo(args) => result,
        name = signal => Err(CommandError(format!("{name}: demo interrupted"))),
    }
}

struct Printer {
    style: Style,
    started: Instant,
}

impl Printer {
    fn step(&self, text: &str) -> Result<(), CommandError> {
        let at = format!("[{:5.2}s]", self.started.elapsed().as_secs_f64());
        println_flush(&format!("{} {text}", self.style.dim(&at)))
    }

    fn heading(&self, text: &str) -> Result<(), CommandError> {
        println_flush("")?;
        self.step(&self.style.bold(&self.style.cyan(text)))
    }
}

async fn demo(args: Args) -> Result<u8, CommandError> {
    let style = Style::detect();
    let out = Printer {
        style,
        started: Instant::now(),
    };
    out.heading(&format!(
        "sdkit demo: discovery registry → 3 backends → endpointer → {}{} → retry",
        args.lb.policy(),
        if args.no_outlier {
            ""
        } else {
            " + outlier ejection"
        }
    ))?;

    // 1. The registry.
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|e| CommandError::with("cannot listen on 127.0.0.1", e))?;
    let registry_addr = listener
        .local_addr()
        .map_err(|e| CommandError::with("listener address", e))?;
    let server = Server::builder()
        .env("dev")
        .zone("local")
        .build()
        .map_err(|e| CommandError::with("discovery server", e))?;
    let server_stop = CancellationToken::new();
    let server_task = tokio::spawn({
        let stop = server_stop.clone();
        async move {
            server
                .serve_with_shutdown(listener, stop.cancelled_owned())
                .await
        }
    });
    let url = format!(
        "discovery://{registry_addr}/{APPID}?env=dev&zone=local&scheme=http&self_discovery=false"
    );
    let target = parse_target(&url)?;
    out.step(&format!(
        "discovery registry listening on {}",
        style.bold(&registry_addr.to_string())
    ))?;

    // 2. Three backends.
    let mut backends: BTreeMap<String, Running> = BTreeMap::new();
    for name in ["backend-1", "backend-2", "backend-3"] {
        let running = start_backend(&target, name).await?;
        out.step(&format!(
            "{} {name} on {} and registered it as {APPID}",
            style.green("started"),
            running.backend.addr()
        ))?;
        backends.insert(name.to_owned(), running);
    }
    let names: Arc<Mutex<BTreeMap<String, String>>> = Arc::new(Mutex::new(
        backends
            .values()
            .map(|r| (r.backend.addr().to_string(), r.backend.name().to_owned()))
            .collect(),
    ));

    // 3. The pipeline.
    let instancer = target
        .instancer()
        .map_err(|e| CommandError(e.to_string()))?;
    let client = http::client(3, Duration::from_secs(1), &args.lb)?;
    let set = http::register(&client, APPID, &target, instancer)?;
    let ejections: Arc<Mutex<Vec<String>>> = Arc::default();
    let ejected_any = Arc::new(tokio::sync::Notify::new());
    let outlier = (!args.no_outlier).then(|| {
        let (ejections, ejected_any) = (ejections.clone(), ejected_any.clone());
        OutlierDetector::spawn_with(&set, OutlierConfig::default(), move |event| {
            if let OutlierEvent::Ejected { id, .. } = event {
                ejections
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .push(id.to_string());
                ejected_any.notify_one();
            }
        })
    });
    let seen = wait_for_set(&set, |addrs| addrs.len() == 3).await?;
    let plan = Plan {
        service: APPID.into(),
        path: "/hello".into(),
        requests: Some(args.requests),
        concurrency: args.concurrency.into(),
        key: None,
    };
    let show = |addrs: &[String]| {
        let names = names.lock().unwrap_or_else(PoisonError::into_inner);
        addrs
            .iter()
            .map(|a| match names.get(a) {
                Some(name) => format!("{name} {a}"),
                None => a.clone(),
            })
            .collect::<Vec<_>>()
            .join(", ")
    };
    let label = |names: &Arc<Mutex<BTreeMap<String, String>>>| {
        let names = names.lock().unwrap_or_else(PoisonError::into_inner).clone();
        move |addr: &str| names.get(addr).cloned()
    };
    out.step(&format!(
        "watch on {APPID}: {} instances ({})",
        seen.len(),
        show(&seen)
    ))?;
    let mut failed_total = 0;

    out.heading(&format!(
        "1. spread: {} requests, concurrency {}, {}, up to 3 attempts",
        args.requests,
        args.concurrency,
        args.lb.policy()
    ))?;
    let stats = phase();
    traffic::run(
        client.clone(),
        plan.clone(),
        stats.clone(),
        CancellationToken::new(),
    )
    .await;
    failed_total += stats.failed();
    println_flush(&stats.report(style, &label(&names)))?;

    // 4. A crash while traffic flows.
    out.heading("2. crash: backend-2 dies while traffic continues")?;
    let stats = phase();
    let stop = CancellationToken::new();
    let load = tokio::spawn(traffic::run(
        client.clone(),
        Plan {
            requests: None,
            ..plan.clone()
        },
        stats.clone(),
        stop.clone(),
    ));
    let third = args.requests / 3;
    wait_progress(&stats, third).await?;
    out.step(&format!(
        "{} requests in, all 3 backends serving",
        stats.completed()
    ))?;
    let victim = backends
        .get_mut("backend-2")
        .ok_or_else(|| CommandError("backend-2 missing".to_owned()))?;
    victim.backend.kill().await;
    out.step(&format!(
        "{} backend-2 ({}): listener and connections closed",
        style.red("killed"),
        victim.backend.addr()
    ))?;
    let before = stats.completed();
    wait_progress(&stats, before + third).await?;
    let victim_failures = stats
        .per_instance()
        .get(&victim.backend.addr().to_string())
        .map_or(0, |p| p.failed_attempts);
    out.step(&format!(
        "{} more requests: {} attempts hit dead backend-2 and were retried on the next instance; {} failed",
        stats.completed() - before,
        victim_failures,
        stats.failed()
    ))?;
    let victim_ejected = || {
        ejections
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            // Instance identities are the backend's (`backend-2@host:port` for discovery).
            .any(|id| id.starts_with("backend-2"))
    };
    // The client stops sending to a refused instance after its first failed attempts and
    // probes it in the background; refused probes count as failures too, so the ejection may
    // follow the traffic by a few probe intervals.
    let ejected = outlier.is_some()
        && tokio::time::timeout(EJECTION_WAIT, async {
            while !victim_ejected() {
                ejected_any.notified().await;
            }
        })
        .await
        .is_ok();
    if outlier.is_some() {
        out.step(&if ejected {
            format!(
                "{} backend-2 after {victim_failures} failed attempts and its refused reconnects: no attempt reaches it while it is ejected (--no-outlier: no ejection)",
                style.yellow("outlier detection ejected")
            )
        } else {
            format!(
                "{} backend-2 not ejected yet",
                style.red("outlier detection:")
            )
        })?;
    }
    victim
        .registrar
        .deregister()
        .await
        .map_err(|e| CommandError::with("deregistering backend-2", e))?;
    out.step(&format!(
        "{} backend-2's registration (its supervisor would; else its lease lapses)",
        style.yellow("cancelled")
    ))?;
    let dead = victim.backend.addr().to_string();
    let seen = wait_for_set(&set, |addrs| addrs.len() == 2 && !addrs.contains(&dead)).await?;
    out.step(&format!(
        "watch: {} instances ({})",
        seen.len(),
        show(&seen)
    ))?;
    let before = stats.completed();
    wait_progress(&stats, before + third).await?;
    stop.cancel();
    load.await
        .map_err(|e| CommandError::with("traffic task", e))?;
    failed_total += stats.failed();
    println_flush(&stats.report(style, &label(&names)))?;
    if let Some(running) = backends.remove("backend-2") {
        drop(running);
    }

    // 5. A new backend joins.
    out.heading("3. join: backend-4 starts and registers")?;
    let running = start_backend(&target, "backend-4").await?;
    let joined = running.backend.addr().to_string();
    names
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .insert(joined.clone(), "backend-4".to_owned());
    out.step(&format!(
        "{} backend-4 on {joined} and registered it",
        style.green("started")
    ))?;
    backends.insert("backend-4".to_owned(), running);
    let seen = wait_for_set(&set, |addrs| addrs.len() == 3 && addrs.contains(&joined)).await?;
    out.step(&format!(
        "watch: {} instances ({})",
        seen.len(),
        show(&seen)
    ))?;
    let stats = phase();
    traffic::run(
        client.clone(),
        plan,
        stats.clone(),
        CancellationToken::new(),
    )
    .await;
    failed_total += stats.failed();
    println_flush(&stats.report(style, &label(&names)))?;
    let joined_served = stats.per_instance().get(&joined).map_or(0, |p| p.served);

    // 6. Shutdown.
    out.heading("4. shutdown")?;
    for (name, running) in &backends {
        running
            .registrar
            .deregister()
            .await
            .map_err(|e| CommandError::with(format!("deregistering {name}"), e))?;
    }
    out.step(&format!("deregistered {} backends", backends.len()))?;
    drop(outlier);
    client.remove_service(APPID);
    backends.clear();
    server_stop.cancel();
    server_task
        .await
        .map_err(|e| CommandError::with("discovery server task", e))?
        .map_err(|e| CommandError::with("discovery server", e))?;
    out.step("registry stopped")?;

    if failed_total > 0 {
        return Err(CommandError(format!(
            "{failed_total} requests failed; retry should have moved them to live backends"
        )));
    }
    if joined_served == 0 {
        return Err(CommandError(
            "backend-4 joined but served nothing".to_owned(),
        ));
    }
    out.step(&format!(
        "{} 0 failed requests; done in {:.1}s",
        style.green("ok:"),
        out.started.elapsed().as_secs_f64()
    ))?;
    Ok(EXIT_OK)
}

/// Fresh statistics for a phase.
fn phase() -> Arc<Stats> {
    Arc::new(Stats::default())
}

async fn start_backend(target: &Target, name: &str) -> Result<Running, CommandError> {
    let backend = Backend::start(name)
        .await
        .map_err(|e| CommandError::with(format!("starting {name}"), e))?;
    let instance = Instance::new(name, backend.addr().to_string()).with_zone("local");
    let registrar = target
        .registrar(instance)
        .map_err(|e| CommandError(e.to_string()))?;
    tokio::time::timeout(STEP, registrar.register())
        .await
        .map_err(|_| CommandError(format!("{name}: not registered within {STEP:?}")))?
        .map_err(|e| CommandError::with(format!("registering {name}"), e))?;
    Ok(Running { backend, registrar })
}

/// Waits until the endpoint set's addresses satisfy `ok`; returns them.
async fn wait_for_set(
    set: &EndpointSet<HttpEndpoint>,
    ok: impl Fn(&[String]) -> bool,
) -> Result<Vec<String>, CommandError> {
    let wait = async {
        loop {
            let seen = set.version();
            let addrs: Vec<String> = set
                .load()
                .iter()
                .map(|e| e.instance().addr().to_owned())
                .collect();
            if ok(&addrs) {
                return addrs;
            }
            set.changed_since(seen).await;
        }
    };
    tokio::time::timeout(STEP, wait).await.map_err(|_| {
        CommandError(format!(
            "the watch did not show the expected set within {STEP:?}"
        ))
    })
}

/// Waits until `n` requests of the phase finished.
async fn wait_progress(stats: &Stats, n: u64) -> Result<(), CommandError> {
    tokio::time::timeout(STEP, stats.wait_completed(n))
        .await
        .map_err(|_| CommandError(format!("traffic stalled below {n} requests")))
}
