//! The system tools table: one row per tool, with the Debian packages that provide it and a
//! probe that checks the *capability* the build or the tests rely on.
//!
//! A new system tool (a server a fixture starts, a browser, a checker) is one more row here,
//! with its probe; nothing else in xtask names tools. After changing the table, run the purge
//! procedure of `docs/contributing.md`.

use std::env;
use std::path::PathBuf;
use std::process::{Command, Stdio};

/// What needs a tool.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Need {
    /// Building the workspace needs it (so the demo, the tests and the benchmarks do).
    Build,
    /// Only the tests and benchmarks need it (a server a fixture starts).
    Test,
}

/// How a tool proves it works.
pub enum Probe {
    /// `binary args…` exits 0 (`--version` and the like).
    Runs(&'static str, &'static [&'static str]),
    /// protoc compiles a `.proto` that imports the well-known types etcd-client's protos import
    /// (`descriptor.proto`, `struct.proto`), with only the probe's own folder on the include
    /// path, as prost-build calls it.
    ProtocWellKnownTypes,
}

/// One row of the table.
pub struct Tool {
    /// What the tool is called in messages.
    pub name: &'static str,
    /// The Debian packages that provide it (all of them installed together).
    pub packages: &'static [&'static str],
    /// What needs it.
    pub need: Need,
    /// The check that it works.
    pub probe: Probe,
}

/// Every system tool the workspace needs.
pub const TOOLS: &[Tool] = &[
    Tool {
        name: "protoc",
        // descriptor.proto, struct.proto … are in libprotobuf-dev, only *recommended* by
        // protobuf-compiler: with --no-install-recommends protoc alone cannot build etcd-client.
        packages: &["protobuf-compiler", "libprotobuf-dev"],
        need: Need::Build,
        probe: Probe::ProtocWellKnownTypes,
    },
    Tool {
        name: "etcd",
        packages: &["etcd-server"],
        need: Need::Test,
        probe: Probe::Runs("etcd", &["--version"]),
    },
    Tool {
        name: "dnsmasq",
        packages: &["dnsmasq"],
        need: Need::Test,
        probe: Probe::Runs("dnsmasq", &["--version"]),
    },
    Tool {
        // The etcd TLS fixture makes its throw-away certificates with the openssl command.
        name: "openssl",
        packages: &["openssl"],
        need: Need::Test,
        probe: Probe::Runs("openssl", &["version"]),
    },
    Tool {
        // The ZooKeeper fixture runs the server's main class with java (no systemd): the
        // package pulls a JRE in; the probe loads the server jar's classes in that JRE.
        name: "zookeeper",
        packages: &["zookeeper"],
        need: Need::Test,
        probe: Probe::Runs(
            "java",
            &[
                "-cp",
                "/usr/share/java/zookeeper.jar",
                "org.apache.zookeeper.version.VersionInfoMain",
            ],
        ),
    },
    Tool {
        // The dashboard test drives a headless Chromium over the DevTools protocol.
        name: "chromium",
        packages: &["chromium"],
        need: Need::Test,
        probe: Probe::Runs(
            "chromium",
            &[
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--dump-dom",
                "about:blank",
            ],
        ),
    },
];

impl Tool {
    /// Whether a task that needs `need` needs this tool (the tests need the build's tools too).
    pub fn needed_for(&self, need: Need) -> bool {
        self.need == Need::Build || need == Need::Test
    }

    /// Runs the probe: `Ok` when the capability is there, otherwise why not.
    pub fn probe(&self) -> Result<(), String> {
        match self.probe {
            Probe::Runs(binary, args) => {
                let path = find(binary).ok_or_else(|| format!("`{binary}` is not installed"))?;
                run_quiet(Command::new(&path).args(args))
            }
            Probe::ProtocWellKnownTypes => protoc_probe(),
        }
    }
}

/// `cargo xtask tools`: every row and whether its probe passes.
pub fn report() -> Result<(), String> {
    let mut failed = 0;
    for tool in TOOLS {
        let need = match tool.need {
            Need::Build => "build",
            Need::Test => "tests",
        };
        match tool.probe() {
            Ok(()) => println!(
                "ok       {:<10} ({need}; {})",
                tool.name,
                tool.packages.join(" ")
            ),
            Err(why) => {
                failed += 1;
                println!(
                    "MISSING  {:<10} ({need}; {}): {why}",
                    tool.name,
                    tool.packages.join(" ")
                );
            }
        }
    }
    if failed == 0 {
        Ok(())
    } else {
        Err(format!(
            "{failed} tool(s) fail their probe; `cargo xtask test` installs them"
        ))
    }
}

/// Finds `binary` on `PATH`, or in the sbin folders Debian puts some servers in (dnsmasq).
fn find(binary: &str) -> Option<PathBuf> {
    let paths = env::var_os("PATH").unwrap_or_default();
    env::split_paths(&paths)
        .chain([PathBuf::from("/usr/sbin"), PathBuf::from("/sbin")])
        .map(|dir| dir.join(binary))
        .find(|candidate| candidate.is_file())
}

fn run_quiet(cmd: &mut Command) -> Result<(), String> {
    let shown = format!("{cmd:?}");
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("{shown} could not run: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        let stderr = String::from_utf8_lossy(&out.stderr);
        let first = stderr.lines().next().unwrap_or("").trim();
        Err(format!("{shown} failed ({}): {first}", out.status))
    }
}

const PROBE_PROTO: &str = r#"syntax = "proto3";
package xtask.probe;
import "google/protobuf/descriptor.proto";
import "google/protobuf/struct.proto";
extend google.protobuf.FieldOptions { string probe_option = 50000; }
message Probe { google.protobuf.Struct value = 1; }
"#;

fn protoc_probe() -> Result<(), String> {
    let protoc = match env::var_os("PROTOC") {
        Some(path) => PathBuf::from(path),
        None => find("protoc").ok_or("`protoc` is not installed")?,
    };
    let dir = env::temp_dir().join(format!("xtask-protoc-probe-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let result = std::fs::write(dir.join("probe.proto"), PROBE_PROTO)
        .map_err(|e| format!("writing the probe .proto: {e}"))
        .and_then(|()| {
            run_quiet(
                Command::new(&protoc)
                    .arg(format!("--proto_path={}", dir.display()))
                    .arg(format!(
                        "--descriptor_set_out={}",
                        dir.join("probe.pb").display()
                    ))
                    .arg(dir.join("probe.proto")),
            )
        });
    let _ = std::fs::remove_dir_all(&dir);
    result
}
