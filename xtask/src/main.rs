//! Development tasks for this workspace, run as `cargo xtask <task>`.
//!
//! - `ci`: everything CI checks, in order, stopping at the first failure: formatting,
//!   clippy with warnings denied, tests (with doc tests) against a real memcached, docs with
//!   warnings denied, and cargo-deny.
//! - `demo`: start a local memcached and two example-app instances sharing it; print their
//!   URLs and run until Ctrl-C.
//! - `memcached`: install memcached (Debian, as root) when it is missing.

mod cmd;
mod demo;
mod deny;
mod install;

use std::process::ExitCode;

use cmd::Result;

const USAGE: &str = "usage: cargo xtask <ci | demo | memcached>";

fn main() -> ExitCode {
    let task = std::env::args().nth(1);
    let result = match task.as_deref() {
        Some("ci") => ci(),
        Some("demo") => demo::run(),
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
    install::debian_package("memcached", "memcached")?;
    cmd::run("cargo", ["test", "--workspace", "--all-features"])?;
    let mut doc = std::process::Command::new("cargo");
    doc.args(["doc", "--workspace", "--no-deps", "--all-features"])
        .env("RUSTDOCFLAGS", "-D warnings")
        .current_dir(cmd::workspace_root());
    cmd::run_command(&mut doc)?;
    deny::check()
}
