//! `cargo xtask demo`: a local memcached and two example-app instances sharing it.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};

use crate::cmd::{self, Failure, Result};
use crate::install;
use crate::process::{self, Running};

/// Starts memcached on a free loopback port and two app instances, prints their URLs, and
/// runs until Ctrl-C.
pub(crate) fn run() -> Result {
    install::debian_package("memcached", "memcached")?;
    cmd::run("cargo", ["build", "--package", "example-app"])?;
    let root = cmd::workspace_root();
    let work = root.join("target").join("demo");
    std::fs::create_dir_all(&work)
        .map_err(|error| Failure::new(format!("cannot create {}: {error}", work.display())))?;

    let (_memcached, port) = process::start_memcached_tcp(&work, &[])?;
    let server = format!("127.0.0.1:{port}");
    let secret = format!("demo-secret-{}-not-for-production", std::process::id());
    let binary = root.join("target").join("debug").join("example-app");
    let (_a, url_a) = start_app(&binary, &server, &secret)?;
    let (_b, url_b) = start_app(&binary, &server, &secret)?;

    println!();
    println!("memcached: {server}");
    println!("app server A: {url_a}");
    println!("app server B: {url_b}");
    println!();
    println!("Log in on one, reload the other: both see the same session. Ctrl-C stops all three.");
    wait_for_ctrl_c();
    Ok(())
}

fn start_app(binary: &Path, server: &str, secret: &str) -> Result<(Running, String)> {
    let mut command = Command::new(binary);
    command
        .env("MEMCACHE_SERVER", server)
        .env("SESSION_SECRETS", secret)
        .env("HOST", "127.0.0.1")
        .env("PORT", "0")
        .stdout(Stdio::piped())
        .stdin(Stdio::null());
    let mut running = process::spawn(&mut command, "example-app")?;
    let stdout = running.child.stdout.take().expect("stdout is piped");
    // The app prints exactly one line, `listening on URL`, once it is ready.
    let mut line = String::new();
    BufReader::new(stdout)
        .read_line(&mut line)
        .map_err(|error| Failure::new(format!("cannot read the app's output: {error}")))?;
    let url = line
        .trim()
        .strip_prefix("listening on ")
        .ok_or_else(|| Failure::new(format!("the app did not start: {line:?}")))?
        .to_owned();
    Ok((running, url))
}

/// Blocks until the process gets Ctrl-C (SIGINT). The children, in the same process group,
/// get it too; the `Running` guards then reap them.
fn wait_for_ctrl_c() {
    // Without a signal-handling dependency: `sleep infinity` dies with the same Ctrl-C.
    let _ = Command::new("sleep").arg("infinity").status();
}
