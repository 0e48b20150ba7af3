//! Project automation for sdkit.
//!
//! ```text
//! cargo xtask test     install missing system tools, then run every test of the workspace
//! cargo xtask demo     run the demo on the embedded registry
//! cargo xtask bench    run the criterion benchmarks
//! cargo xtask ci       fmt --check, clippy -D warnings, then `test`
//! ```
//!
//! The system tools are one table, [`TOOLS`]: each row names the tool, the Debian packages that
//! provide it, what needs it (the build, or only the tests) and a **capability probe** — not a
//! binary name on `PATH` but a command that must succeed (protoc must compile a `.proto` that
//! imports the well-known types; a server must answer `--version`). What fails its probe is
//! installed with `apt-get` when we run as root (or `sudo -n` works); otherwise the task stops
//! and prints the exact command to run. A change of this table is checked on a purged machine
//! as `docs/contributing.md` describes.

use std::env;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};

mod tools;
use tools::{Need, TOOLS};

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
        "test" => ensure_system_tools(Need::Test).and_then(|()| test(rest)),
        "demo" => ensure_system_tools(Need::Build).and_then(|()| demo(rest)),
        "bench" => ensure_system_tools(Need::Test).and_then(|()| bench(rest)),
        "ci" => ensure_system_tools(Need::Test).and_then(|()| ci(rest)),
        "tools" => tools::report(),
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
  test   install the system tools the tests need when their probes fail (see `tools`), then
         run every test (extra args go to cargo nextest / cargo test)
  demo   check the build tools (protoc), then run `sdkit demo` on the embedded registry (debug
         build; `--release` for an optimized one; other args go to `sdkit demo`)
  tools  probe every system tool of the table and say which pass (installs nothing)
  bench  run the criterion benchmarks (extra args go to cargo bench)
  ci     cargo fmt --check, cargo clippy --all-targets -- -D warnings, then `test`";

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
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
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

/// Installs the Debian packages of every tool `need` requires whose probe fails, or explains
/// how to. After installing, every probe is run again: a package that installs but does not
/// give the capability (the reason for this table) is an error naming the probe.
fn ensure_system_tools(need: Need) -> Result<(), String> {
    let failing: Vec<_> = TOOLS
        .iter()
        .filter(|t| t.needed_for(need) && t.probe().is_err())
        .collect();
    if failing.is_empty() {
        return Ok(());
    }
    let mut packages: Vec<&str> = failing
        .iter()
        .flat_map(|t| t.packages.iter().copied())
        .collect();
    packages.dedup();
    let install = format!(
        "apt-get update && apt-get install -y --no-install-recommends {}",
        packages.join(" ")
    );
    let prefix: &[&str] = if is_root() {
        &[]
    } else if sudo_works() {
        &["sudo", "-n"]
    } else {
        let names: Vec<&str> = failing.iter().map(|t| t.name).collect();
        return Err(format!(
            "missing system tools: {}. Install them with:\n    sudo sh -c '{install}'",
            names.join(", ")
        ));
    };
    eprintln!("xtask: installing {}", packages.join(" "));
    run_apt(prefix, &["update"])?;
    let mut install_args = vec!["install", "-y", "--no-install-recommends"];
    install_args.extend(&packages);
    run_apt(prefix, &install_args)?;
    for tool in failing {
        tool.probe().map_err(|why| {
            format!(
                "`{}` still fails its probe after installing {}: {why}",
                tool.name,
                tool.packages.join(" ")
            )
        })?;
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

/// `cargo` for the test run: without incremental compilation unless the caller chose
/// (`CARGO_INCREMENTAL`). A from-scratch run (CI, a fresh clone) gains nothing from it and
/// would write some 1.6 GB of incremental state; see docs/contributing.md.
fn test_cargo() -> Command {
    let mut cmd = cargo();
    if env::var_os("CARGO_INCREMENTAL").is_none() {
        cmd.env("CARGO_INCREMENTAL", "0");
    }
    cmd
}

fn test(extra: &[String]) -> Result<(), String> {
    if nextest_available() {
        let mut cmd = test_cargo();
        cmd.args(["nextest", "run", "--workspace", "--no-fail-fast"]);
        cmd.args(extra);
        run(cmd)?;
    } else {
        let mut cmd = test_cargo();
        cmd.args(["test", "--workspace", "--no-fail-fast"]);
        cmd.args(extra);
        run(cmd)?;
    }
    // nextest does not run doctests; run them with cargo test.
    let mut doc = test_cargo();
    doc.args(["test", "--workspace", "--doc", "--no-fail-fast"]);
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
