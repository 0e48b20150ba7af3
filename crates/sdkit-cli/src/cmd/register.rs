//! `sdkit register <target> --addr host:port`: register one instance, keep it alive, and on
//! SIGINT or SIGTERM deregister and exit 0.
//!
//! A signal before the registry accepted the registration cancels it and exits 1.
//!
//! `--ttl` becomes the backend's lease option in the target URL before it is parsed: `ttl=` for
//! `consul://` and `etcd://`, `renew=` (the renew interval) for `discovery://`. Giving both
//! `--ttl` and that key in the URL is an error.

use std::time::Duration;

use super::output::{Style, println_flush};
use super::{CommandError, EXIT_OK, parse_target, shutdown_signal};
use sdkit::{Instance, Registrar, duration};
use tracing::info;

const EXAMPLES: &str = "\
Examples:
  sdkit register 'discovery://127.0.0.1:7171/demo.hello?env=dev&scheme=http' --addr 127.0.0.1:8080
  sdkit register consul://127.0.0.1:8500/web --addr 10.0.0.5:8080 --id web-1 --tag v1 --ttl 10s
  sdkit register etcd://127.0.0.1:2379/services/web --addr 10.0.0.5:8080 --meta version=1.2 --weight 5

The instance stays registered until SIGINT (Ctrl-C) or SIGTERM, then it is deregistered.
--ttl sets `ttl=` (consul, etcd) or `renew=` (discovery) in the target URL.";

/// Options of `sdkit register`.
#[derive(Debug, clap::Args)]
#[command(after_help = EXAMPLES)]
pub struct Args {
    /// Registry URL: discovery://, consul:// or etcd://.
    target: String,
    /// The instance's address, host:port (IPv6 hosts bracketed).
    #[arg(long)]
    addr: String,
    /// The instance's identity [default: the address].
    #[arg(long)]
    id: Option<String>,
    /// Load-balancing weight.
    #[arg(long, default_value_t = 1)]
    weight: u32,
    /// Zone (availability zone / datacenter slice).
    #[arg(long)]
    zone: Option<String>,
    /// A tag; repeat for more.
    #[arg(long = "tag", value_name = "TAG")]
    tags: Vec<String>,
    /// Metadata `key=value`; repeat for more.
    #[arg(long = "meta", value_name = "KEY=VALUE", value_parser = parse_meta)]
    meta: Vec<(String, String)>,
    /// Lease/TTL of the registration (see below).
    #[arg(long, value_parser = duration::parse)]
    ttl: Option<Duration>,
}

fn parse_meta(input: &str) -> Result<(String, String), String> {
    match input.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_owned(), v.to_owned())),
        _ => Err(format!("`{input}` is not key=value")),
    }
}

/// The query key `--ttl` sets for `scheme`.
fn ttl_key(scheme: &str) -> Option<&'static str> {
    match scheme {
        "consul" | "etcd" => Some("ttl"),
        "discovery" => Some("renew"),
        _ => None,
    }
}

/// `url` with `key=value` added to its query.
fn with_query(url: &str, key: &str, value: &str) -> String {
    let separator = if url.contains('?') { '&' } else { '?' };
    format!("{url}{separator}{key}={value}")
}

/// `true` when the URL's query already has `key`.
fn has_query_key(url: &str, key: &str) -> bool {
    url.split_once('?').is_some_and(|(_, query)| {
        query
            .split('&')
            .any(|pair| pair.split('=').next() == Some(key))
    })
}

/// Registers, waits for a signal, deregisters.
pub async fn run(args: Args) -> Result<u8, CommandError> {
    let mut target = parse_target(&args.target)?;
    if !target.can_register() {
        return Err(CommandError(format!(
            "{}:// targets cannot register instances (use discovery://, consul:// or etcd://)",
            target.scheme()
        )));
    }
    if let Some(ttl) = args.ttl {
        let key = ttl_key(target.scheme()).ok_or_else(|| {
            CommandError(format!("--ttl is not supported for {}://", target.scheme()))
        })?;
        if has_query_key(&args.target, key) {
            return Err(CommandError(format!(
                "--ttl and `{key}=` in the target both set the lease; give one"
            )));
        }
        target = parse_target(&with_query(&args.target, key, &duration::format(ttl)))?;
    }
    let mut instance = Instance::new(args.id.unwrap_or_else(|| args.addr.clone()), &args.addr)
        .with_weight(args.weight)
        .with_tags(args.tags);
    if let Some(zone) = args.zone {
        instance = instance.with_zone(zone);
    }
    for (key, value) in args.meta {
        instance = instance.with_meta(key, value);
    }
    let signal = shutdown_signal()?;
    let registrar = target
        .registrar(instance.clone())
        .map_err(|e| CommandError(e.to_string()))?;
    info!(%target, id = instance.id(), addr = instance.addr(), "registering");
    tokio::pin!(signal);
    tokio::select! {
        result = registrar.register() => {
            result.map_err(|e| CommandError::with(&target, e))?;
        }
        name = &mut signal => {
            // The registry may have accepted a request whose answer was lost: cancel anyway
            // (bounded by the backend's deregister timeout).
            let cleanup = match registrar.deregister().await {
                Ok(()) => String::new(),
                Err(e) => format!(" (cleanup: {e})"),
            };
            return Err(CommandError(format!(
                "{name} before {target} accepted the registration{cleanup}"
            )));
        }
    }
    let style = Style::detect();
    println_flush(&format!(
        "{} {} ({}) in {target}",
        style.green("registered"),
        instance.id(),
        instance.addr()
    ))?;
    let name = signal.await;
    info!("{name}: deregistering");
    registrar
        .deregister()
        .await
        .map_err(|e| CommandError::with(format!("{target}: deregister"), e))?;
    info!("deregistered");
    Ok(EXIT_OK)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ttl_goes_into_the_query() {
        assert_eq!(
            with_query("etcd://h:1/p", "ttl", "5s"),
            "etcd://h:1/p?ttl=5s"
        );
        assert_eq!(
            with_query("consul://h:1/s?tag=a", "ttl", "5s"),
            "consul://h:1/s?tag=a&ttl=5s"
        );
        assert!(has_query_key("consul://h:1/s?tag=a&ttl=5s", "ttl"));
        assert!(!has_query_key("consul://h:1/s?tag=ttl", "ttl"));
        assert_eq!(ttl_key("discovery"), Some("renew"));
        assert_eq!(ttl_key("static"), None);
    }

    #[test]
    fn meta_needs_key_and_value() {
        assert_eq!(parse_meta("a=b=c"), Ok(("a".into(), "b=c".into())));
        assert!(parse_meta("novalue").is_err());
        assert!(parse_meta("=x").is_err());
    }
}
