//! `cargo xtask demo`: a local memcached and two example-app instances sharing it.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::cmd::{self, Failure, Result};
use crate::install;

/// Longest wait for memcached or an app instance to start.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(20);

/// Kills the child process when dropped.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts memcached on a free loopback port and two app instances, prints their URLs, and
/// runs until Ctrl-C.
pub(crate) fn run() -> Result {
    install::debian_package("memcached", "memcached")?;
    cmd::run("cargo", ["build", "--package", "example-app"])?;
    let root = cmd::workspace_root();
    let work = root.join("target").join("demo");
    std::fs::create_dir_all(&work)
        .map_err(|error| Failure::new(format!("cannot create {}: {error}", work.display())))?;

    let (_memcached, server) = start_memcached(&work)?;
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

fn start_memcached(work: &Path) -> Result<(Running, String)> {
    let port_file = work.join("memcached.ports");
    let _ = std::fs::remove_file(&port_file);
    let mut command = Command::new("memcached");
    command
        .args(["-l", "127.0.0.1", "-p", "-1", "-U", "0"])
        .env("MEMCACHED_PORT_FILENAME", &port_file)
        .stdin(Stdio::null());
    if cmd::is_root() {
        command.args(["-u", "root"]);
    }
    eprintln!("$ memcached -l 127.0.0.1 -p -1 -U 0");
    let child = command
        .spawn()
        .map_err(|error| Failure::new(format!("cannot start memcached: {error}")))?;
    let running = Running(child);
    let deadline = Instant::now() + STARTUP_TIMEOUT;
    loop {
        let port = std::fs::read_to_string(&port_file).ok().and_then(|ports| {
            ports
                .lines()
                .find_map(|line| line.strip_prefix("TCP INET: ")?.trim().parse::<u16>().ok())
        });
        if let Some(port) = port {
            return Ok((running, format!("127.0.0.1:{port}")));
        }
        if Instant::now() > deadline {
            return Err(Failure::new("memcached did not report its port in time"));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn start_app(binary: &PathBuf, server: &str, secret: &str) -> Result<(Running, String)> {
    let mut child = Command::new(binary)
        .env("MEMCACHE_SERVER", server)
        .env("SESSION_SECRETS", secret)
        .env("HOST", "127.0.0.1")
        .env("PORT", "0")
        .stdout(Stdio::piped())
        .stdin(Stdio::null())
        .spawn()
        .map_err(|error| Failure::new(format!("cannot start {}: {error}", binary.display())))?;
    let stdout = child.stdout.take().expect("stdout is piped");
    let running = Running(child);
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
