//! Installing the tools the tasks need on a fresh Debian machine.

use crate::cmd::{self, Failure, Result};

/// `apt-get update` runs at most once per task.
static APT_UPDATED: std::sync::Once = std::sync::Once::new();

/// Makes sure a Debian package providing `program` is installed, installing it with
/// `apt-get` when running as root.
pub(crate) fn debian_package(program: &str, package: &str) -> Result {
    if cmd::on_path(program) || std::path::Path::new(&format!("/usr/bin/{program}")).is_file() {
        return Ok(());
    }
    if !cmd::is_root() {
        return Err(Failure::new(format!(
            "`{program}` is not installed: run `sudo apt-get install -y {package}`"
        )));
    }
    eprintln!("`{program}` is missing; installing the Debian package `{package}`");
    let mut updated = Ok(());
    APT_UPDATED.call_once(|| updated = cmd::run("apt-get", ["update", "-qq"]));
    updated?;
    let mut install = std::process::Command::new("apt-get");
    install
        .args(["install", "-y", "-qq", "--no-install-recommends", package])
        .env("DEBIAN_FRONTEND", "noninteractive");
    cmd::run_command(&mut install)
}

/// Makes sure a cargo subcommand is installed, with `cargo install --locked` when missing.
pub(crate) fn cargo_tool(binary: &str, krate: &str) -> Result {
    if cmd::on_path(binary) {
        return Ok(());
    }
    eprintln!("`{binary}` is missing; installing `{krate}` from crates.io");
    cmd::run("cargo", ["install", "--locked", krate])
}
