//! Project automation for sdkit.
//!
//! ```text
//! cargo xtask test     install missing system tools, then run every test of the workspace
//! cargo xtask demo     run the demo on the embedded registry
//! cargo xtask bench    run the criterion benchmarks
//! cargo xtask ci       fmt --check, clippy -D warnings, then `test`
//! ```
//!
//! The system tools the tests need are `etcd` (Debian `etcd-server`), `dnsmasq`, `protoc`
//! (Debian `protobuf-compiler`, needed to build `etcd-client`) and `openssl` (TLS fixtures). When one is missing and we run as
//! root (or `sudo -n` works) they are installed with `apt-get`; otherwise the task stops and
//! prints the exact command to run.

use std::env;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

/// (binary looked up on PATH, Debian package that provides it)
const SYSTEM_TOOLS: &[(&str, &str)] = &[
    ("etcd", "etcd-server"),
    ("dnsmasq", "dnsmasq"),
    ("protoc", "protobuf-compiler"),
    // The etcd TLS fixture makes its throw-away certificates with the openssl command.
    ("openssl", "openssl"),
];

fn main() -> ExitCode {
    let args: Vec<String> = env::args().skip(1).collect();
    let (task, rest) = match args.split_first() {
        Some((task, rest)) => (task.as_str(), rest),
        None => {
            eprintln!("{}", USAGE);
            return ExitCode::from(2);
        }
    };
    let result = match task {
        "test" => ensure_system_tools().and_then(|()| test(rest)),
        "demo" => demo(rest),
        "bench" => ensure_system_tools().and_then(|()| bench(rest)),
        "ci" => ensure_system_tools().and_then(|()| ci(rest)),
        "-h" | "--help" | "help" => {
            println!("{}", USAGE);
            Ok(())
        }
        other => Err(format!("unknown task `{other}`\n\n{USAGE}")),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("xtask: {message}");
            ExitCode::FAILURE
        }
    }
}

const USAGE: &str = "usage: cargo xtask <task> [args…]

tasks:
  test   install etcd-server, dnsmasq and protobuf-compiler when missing, then run every test
         (extra args go to cargo nextest / cargo test)
  demo   run `sdkit demo` on the embedded registry (debug build; `--release` for an
         optimized one; other args go to `sdkit demo`)
  bench  run the criterion benchmarks (extra args go to cargo bench)
  ci     cargo fmt --check, cargo clippy --all-targets -- -D warnings, then `test`";

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}

fn on_path(binary: &str) -> bool {
    let Some(paths) = env::var_os("PATH") else {
        return false;
    };
    // Debian installs etcd and dnsmasq under /usr/sbin for some packages; look there too.
    env::split_paths(&paths)
        .chain([PathBuf::from("/usr/sbin"), PathBuf::from("/sbin")])
        .any(|dir| dir.join(binary).is_file())
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|out| String::from_utf8_lossy(&out.stdout).trim() == "0")
        .unwrap_or(false)
}

fn sudo_works() -> bool {
    Command::new("sudo")
        .args(["-n", "true"])
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

/// Installs the Debian packages whose binaries are missing, or explains how to.
fn ensure_system_tools() -> Result<(), String> {
    let missing: Vec<&str> = SYSTEM_TOOLS
        .iter()
        .filter(|(bin, _)| !on_path(bin))
        .map(|(_, pkg)| *pkg)
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    let install = format!("apt-get update && apt-get install -y {}", missing.join(" "));
    let prefix: &[&str] = if is_root() {
        &[]
    } else if sudo_works() {
        &["sudo", "-n"]
    } else {
        return Err(format!(
            "missing system packages: {}. Install them with:\n    sudo sh -c '{install}'",
            missing.join(", ")
        ));
    };
    eprintln!("xtask: installing {}", missing.join(" "));
    run_apt(prefix, &["update"])?;
    let mut install_args = vec!["install", "-y", "--no-install-recommends"];
    install_args.extend(&missing);
    run_apt(prefix, &install_args)?;
    if let Some((bin, pkg)) = SYSTEM_TOOLS.iter().find(|(bin, _)| !on_path(bin)) {
        return Err(format!("`{bin}` is still missing after installing `{pkg}`"));
    }
    Ok(())
}

fn run_apt(prefix: &[&str], args: &[&str]) -> Result<(), String> {
    let mut argv: Vec<&str> = prefix.to_vec();
    argv.push("apt-get");
    argv.extend(args);
    let status = Command::new(argv[0])
        .args(&argv[1..])
        .env("DEBIAN_FRONTEND", "noninteractive")
        .status()
        .map_err(|e| format!("could not run {}: {e}", argv.join(" ")))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("`{}` failed with {status}", argv.join(" ")))
    }
}

fn cargo() -> Command {
    let mut cmd = Command::new(env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned()));
    cmd.current_dir(workspace_root());
    cmd
}

fn run(mut cmd: Command) -> Result<(), String> {
    let shown = format!("{cmd:?}");
    let status = cmd
        .status()
        .map_err(|e| format!("could not run {shown}: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("{shown} failed with {status}"))
    }
}

fn nextest_available() -> bool {
    cargo()
        .args(["nextest", "--version"])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

fn test(extra: &[String]) -> Result<(), String> {
    if nextest_available() {
        let mut cmd = cargo();
        cmd.args(["nextest", "run", "--workspace", "--no-fail-fast"]);
        cmd.args(extra);
        run(cmd)?;
    } else {
        let mut cmd = cargo();
        cmd.args(["test", "--workspace", "--no-fail-fast"]);
        cmd.args(extra);
        run(cmd)?;
    }
    // nextest does not run doctests; run them with cargo test.
    let mut doc = cargo();
    doc.args(["test", "--workspace", "--doc"]);
    run(doc)
}

/// `sdkit demo` through `cargo run`. A debug build by default: the demo takes well under a
/// second either way, a fresh release build is no faster than a debug one (figures in
/// docs/cli.md), and the debug artifacts are usually already there from `cargo test`.
/// `--release` opts in; other arguments go to `sdkit demo`.
fn demo(extra: &[String]) -> Result<(), String> {
    let release = extra.iter().any(|a| a == "--release");
    let mut cmd = cargo();
    cmd.args(["run", "--quiet"]);
    if release {
        cmd.arg("--release");
    }
    cmd.args(["--package", "sdkit-cli", "--bin", "sdkit", "--", "demo"]);
    cmd.args(extra.iter().filter(|a| *a != "--release"));
    run(cmd)
}

fn bench(extra: &[String]) -> Result<(), String> {
    let mut cmd = cargo();
    cmd.args(["bench", "--workspace"]);
    cmd.args(extra);
    run(cmd)
}

fn ci(extra: &[String]) -> Result<(), String> {
    let mut fmt = cargo();
    fmt.args(["fmt", "--all", "--check"]);
    run(fmt)?;
    let mut clippy = cargo();
    clippy.args([
        "clippy",
        "--workspace",
        "--all-targets",
        "--",
        "-D",
        "warnings",
    ]);
    run(clippy)?;
    test(extra)
}
