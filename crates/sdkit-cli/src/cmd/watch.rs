//! `sdkit watch <target>`: print each distinct instance set as it changes, until SIGINT/SIGTERM.
//!
//! With `--json`, exactly one JSON object per line (flushed per line):
//! `{"instances":[…sorted by addr…],"error":null}`; on a source error the last good set with
//! `"error":"message"`.

use super::output::{Style, println_flush, snapshot_json, snapshot_text};
use super::{CommandError, EXIT_OK, parse_target, shutdown_signal};
use sdkit::Instancer;
use tracing::info;

const EXAMPLES: &str = "\
Examples:
  sdkit watch 'discovery://127.0.0.1:7171/demo.hello?env=dev&scheme=http'
  sdkit watch --json consul://127.0.0.1:8500/web?passing=true
  sdkit watch --json etcd://127.0.0.1:2379/services/web | jq -c '.instances | length'
  sdkit watch 'dnssrv://_http._tcp.web.example.com?nameserver=127.0.0.1:53'";

/// Options of `sdkit watch`.
#[derive(Debug, clap::Args)]
#[command(after_help = EXAMPLES)]
pub struct Args {
    /// Registry URL: discovery://, consul://, etcd://, dnssrv:// or static://.
    target: String,
    /// One JSON object per line instead of text.
    #[arg(long)]
    json: bool,
}

/// Watches until a signal; exit 0 then.
pub async fn run(args: Args) -> Result<u8, CommandError> {
    let target = parse_target(&args.target)?;
    let signal = shutdown_signal()?;
    let instancer = target
        .instancer()
        .map_err(|e| CommandError(e.to_string()))?;
    let mut subscription = instancer.subscribe();
    let style = Style::detect();
    info!(%target, "watching");
    let printing = async {
        let mut last: Option<String> = None;
        while let Some(snapshot) = subscription.next().await {
            let json = snapshot_json(&snapshot);
            if last.as_deref() == Some(json.as_str()) {
                continue;
            }
            if args.json {
                println_flush(&json)?;
            } else {
                println_flush(&snapshot_text(&snapshot, style))?;
            }
            last = Some(json);
        }
        Err::<(), _>(CommandError("the watch ended unexpectedly".to_owned()))
    };
    let outcome = tokio::select! {
        result = printing => result.map(|()| EXIT_OK),
        name = signal => {
            info!("{name}: stopping");
            Ok(EXIT_OK)
        }
    };
    instancer.stop();
    outcome
}
