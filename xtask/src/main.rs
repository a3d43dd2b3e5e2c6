//! Development tasks for this workspace, run as `cargo xtask <task>`.
//!
//! - `ci`: everything CI checks, in order, stopping at the first failure: formatting,
//!   clippy with warnings denied, tests (with doc tests) against a real memcached, a real
//!   browser and a real Remix app, docs with warnings denied, and cargo-deny. Installs what
//!   the tests need (memcached, Node.js and npm, Chromium and ChromeDriver) when missing, and
//!   checks the lockfile against the declared `rust-version`.
//! - `demo`: start a local memcached and two example-app instances sharing it; print their
//!   URLs and run until Ctrl-C.
//! - `bench`: the session stack against plain axum in one process run (req/s, latency, CPU
//!   and memcached commands per request, peak RSS); writes `target/bench/report.md` and
//!   `report.svg`.
//! - `memcached`: install memcached (Debian, as root) when it is missing.

mod bench;
mod cmd;
mod demo;
mod deny;
mod install;
mod msrv;
mod process;

use std::process::ExitCode;

use cmd::Result;

const USAGE: &str = "usage: cargo xtask <ci | demo | bench | memcached>";

fn main() -> ExitCode {
    let task = std::env::args().nth(1);
    let result = match task.as_deref() {
        Some("ci") => ci(),
        Some("demo") => demo::run(),
        Some("bench") => bench::run(),
        Some("memcached") => install::debian_package("memcached", "memcached"),
        Some("-h" | "--help") => {
            println!("{USAGE}");
            Ok(())
        }
        _ => {
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            eprintln!("error: {failure}");
            failure.exit_code()
        }
    }
}

fn ci() -> Result {
    cmd::run("cargo", ["fmt", "--all", "--check"])?;
    cmd::run(
        "cargo",
        [
            "clippy",
            "--workspace",
            "--all-targets",
            "--all-features",
            "--",
            "-D",
            "warnings",
        ],
    )?;
    msrv::check()?;
    install::debian_package("memcached", "memcached")?;
    install::debian_package("node", "nodejs")?;
    install::debian_package("npm", "npm")?;
    install::debian_package("chromium", "chromium")?;
    install::debian_package("chromedriver", "chromium-driver")?;
    // The Remix interop test runs a Node server with Remix's own packages, pinned.
    cmd::run(
        "npm",
        [
            "ci",
            "--no-audit",
            "--no-fund",
            "--prefix",
            "tests/remix-interop",
        ],
    )?;
    // The end-to-end tests run the example app as separate processes.
    cmd::run("cargo", ["build", "--package", "example-app"])?;
    // Tests named `measured_*` print figures (such as updates lost without locking): they
    // run on their own, with their output shown.
    cmd::run(
        "cargo",
        [
            "test",
            "--workspace",
            "--all-features",
            "--",
            "--skip",
            "measured_",
        ],
    )?;
    cmd::run(
        "cargo",
        [
            "test",
            "--package",
            "integration-tests",
            "--test",
            "consistency",
            "--",
            "--nocapture",
            "measured_",
        ],
    )?;
    let mut doc = std::process::Command::new("cargo");
    doc.args(["doc", "--workspace", "--no-deps", "--all-features"])
        .env("RUSTDOCFLAGS", "-D warnings")
        .current_dir(cmd::workspace_root());
    cmd::run_command(&mut doc)?;
    deny::check()
}
