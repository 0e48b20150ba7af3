//! Output shared by the subcommands: the JSON line of an instance set, its human rendering, and
//! colour (only when stdout is a terminal and `NO_COLOR` is unset).

use std::collections::BTreeMap;
use std::io::{IsTerminal, Write};

use sdkit::{Instance, Snapshot};
use serde::Serialize;

use super::CommandError;

/// One instance as printed by `watch --json` and `resolve --json`.
#[derive(Debug, Serialize, PartialEq, Eq)]
struct InstanceJson<'a> {
    id: &'a str,
    addr: &'a str,
    weight: u32,
    zone: Option<&'a str>,
    tags: Vec<&'a str>,
    metadata: BTreeMap<&'a str, &'a str>,
}

/// One instance set: instances sorted by `addr`, and the source error if any.
#[derive(Debug, Serialize, PartialEq, Eq)]
struct SnapshotJson<'a> {
    instances: Vec<InstanceJson<'a>>,
    error: Option<String>,
}

fn sorted(snapshot: &Snapshot) -> Vec<&Instance> {
    let mut instances: Vec<&Instance> = snapshot.instances().iter().collect();
    instances.sort_by(|a, b| a.addr().cmp(b.addr()).then_with(|| a.id().cmp(b.id())));
    instances
}

/// The snapshot as one JSON object (no newline).
pub fn snapshot_json(snapshot: &Snapshot) -> String {
    let doc = SnapshotJson {
        instances: sorted(snapshot)
            .into_iter()
            .map(|i| InstanceJson {
                id: i.id(),
                addr: i.addr(),
                weight: i.weight(),
                zone: i.zone(),
                tags: i.tags().collect(),
                metadata: i.metadata().collect(),
            })
            .collect(),
        error: snapshot.error().map(ToString::to_string),
    };
    // Serializing strings, numbers, vectors and string maps cannot fail.
    serde_json::to_string(&doc).unwrap_or_else(|e| format!(r#"{{"error":"json: {e}"}}"#))
}

/// The snapshot for people: a header line, then one line per instance sorted by address.
pub fn snapshot_text(snapshot: &Snapshot, style: Style) -> String {
    let instances = sorted(snapshot);
    let mut out = match instances.len() {
        1 => "1 instance".to_owned(),
        n => format!("{n} instances"),
    };
    if let Some(error) = snapshot.error() {
        out.push_str(&format!(
            " (last good set; {})",
            style.red(&format!("error: {error}"))
        ));
    }
    for i in instances {
        out.push_str(&format!(
            "\n  {}  id={} weight={}",
            style.bold(i.addr()),
            i.id(),
            i.weight()
        ));
        if let Some(zone) = i.zone() {
            out.push_str(&format!(" zone={zone}"));
        }
        if i.tags().len() > 0 {
            out.push_str(&format!(" tags={}", i.tags().collect::<Vec<_>>().join(",")));
        }
        for (k, v) in i.metadata() {
            out.push_str(&format!(" {k}={v}"));
        }
    }
    out
}

/// Writes one line to stdout and flushes it.
pub fn println_flush(line: &str) -> Result<(), CommandError> {
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "{line}")
        .and_then(|()| stdout.flush())
        .map_err(|e| CommandError::with("writing to stdout", e))
}

/// ANSI styling, on only for a terminal without `NO_COLOR`.
#[derive(Debug, Clone, Copy)]
pub struct Style {
    colour: bool,
}

impl Style {
    /// Colour when stdout is a terminal and `NO_COLOR` is unset (or empty).
    pub fn detect() -> Style {
        let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
        Style {
            colour: !no_color && std::io::stdout().is_terminal(),
        }
    }

    fn paint(self, code: &str, text: &str) -> String {
        if self.colour {
            format!("\x1b[{code}m{text}\x1b[0m")
        } else {
            text.to_owned()
        }
    }

    /// Bold.
    pub fn bold(self, text: &str) -> String {
        self.paint("1", text)
    }
    /// Green (success).
    pub fn green(self, text: &str) -> String {
        self.paint("32", text)
    }
    /// Red (failure).
    pub fn red(self, text: &str) -> String {
        self.paint("31", text)
    }
    /// Yellow (attention).
    pub fn yellow(self, text: &str) -> String {
        self.paint("33", text)
    }
    /// Cyan (headings).
    pub fn cyan(self, text: &str) -> String {
        self.paint("36", text)
    }
    /// Dim (details).
    pub fn dim(self, text: &str) -> String {
        self.paint("2", text)
    }
}
