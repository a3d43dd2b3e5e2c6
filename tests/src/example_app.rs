//! The bundled example app (`examples/example-app`), run as a child process.
//!
//! [`ExampleApp::start`] spawns the `example-app` binary that `cargo xtask ci`
//! builds next to the test binaries (`target/debug/example-app`), configured
//! only through the environment it is given (`MEMCACHE_SERVER`,
//! `SESSION_SECRETS`, `HOST=127.0.0.1`, `PORT=0`, `NO_COLOR=1` for a plain
//! log), and reads the one line `listening on http://127.0.0.1:PORT` it prints
//! on stdout when ready. The process is stopped with SIGTERM (then killed if
//! it lingers) on drop, and a panicking test prints the app's log.
//!
//! [`exchange`] sends raw request bytes to such a server (or any HTTP/1.1
//! server, such as a WebDriver server) over a fresh TCP connection and reads
//! the response, so tests can send any bytes, including headers that are not
//! UTF-8.

use std::ffi::OsString;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::app::{Reply, parse_response};

/// Upper bound for the app to print its address.
pub const STARTUP_TIMEOUT: Duration = Duration::from_secs(10);

/// Upper bound for the app to exit after SIGTERM before it is killed.
pub const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(5);

/// Upper bound for one [`exchange`] with the app.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// The environment variables passed on from the test's environment, for logs.
const PASSED_ON: [&str; 2] = ["RUST_LOG", "RUST_BACKTRACE"];

/// A running example app, stopped on drop.
#[derive(Debug)]
pub struct ExampleApp {
    child: Child,
    addr: SocketAddr,
    url: String,
    log: Arc<Mutex<String>>,
    log_reader: Option<JoinHandle<()>>,
    /// Set once a panic message has included the log, so drop does not repeat it.
    log_shown: bool,
}

impl ExampleApp {
    /// Starts the app with sessions in the memcached at `memcached_addr`
    /// (`host:port`), cookies signed with `secret` (32 bytes or more), on a
    /// free loopback port, and waits until it prints its address.
    ///
    /// The environment is cleared first, and the app runs in the system's
    /// temporary directory, so neither the test's environment nor a `.env`
    /// file in the workspace changes its settings.
    ///
    /// # Panics
    ///
    /// If the binary is missing (the message says how to build it), cannot be
    /// started, exits early or does not print its address within
    /// [`STARTUP_TIMEOUT`]; the message then includes the app's log.
    pub fn start(memcached_addr: &str, secret: &str) -> Self {
        let binary = binary();
        let mut command = Command::new(&binary);
        command
            .env_clear()
            .envs(PASSED_ON.iter().filter_map(|name| {
                std::env::var_os(name).map(|value| (OsString::from(name), value))
            }))
            .env("MEMCACHE_SERVER", memcached_addr)
            .env("SESSION_SECRETS", secret)
            .env("HOST", "127.0.0.1")
            .env("PORT", "0")
            .env("NO_COLOR", "1")
            .current_dir(std::env::temp_dir())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = command.spawn().unwrap_or_else(|error| {
            panic!("cannot start {}: {error}", binary.display());
        });

        let log = Arc::new(Mutex::new(String::new()));
        let stderr = child.stderr.take().expect("stderr is piped");
        let log_reader = {
            let log = Arc::clone(&log);
            std::thread::spawn(move || {
                for line in BufReader::new(stderr).lines() {
                    let Ok(line) = line else { break };
                    let mut log = log.lock().unwrap_or_else(PoisonError::into_inner);
                    log.push_str(&line);
                    log.push('\n');
                }
            })
        };
        let stdout = child.stdout.take().expect("stdout is piped");
        let (sender, receiver) = mpsc::channel();
        std::thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            let _ = sender.send(lines.next());
            // Keep reading so that the app never blocks on a full pipe.
            for _ in lines {}
        });

        let mut app = Self {
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            url: String::new(),
            log,
            log_reader: Some(log_reader),
            log_shown: false,
        };
        let line = match receiver.recv_timeout(STARTUP_TIMEOUT) {
            Ok(Some(Ok(line))) => line,
            Ok(Some(Err(error))) => app.fail(&format!("cannot read its stdout: {error}")),
            Ok(None) | Err(mpsc::RecvTimeoutError::Disconnected) => {
                app.fail("it closed its stdout without printing its address")
            }
            Err(mpsc::RecvTimeoutError::Timeout) => app.fail(&format!(
                "it did not print its address within {STARTUP_TIMEOUT:?}"
            )),
        };
        let Some(addr) = line
            .strip_prefix("listening on http://")
            .and_then(|addr| addr.trim().parse::<SocketAddr>().ok())
        else {
            app.fail(&format!(
                "its first stdout line is {line:?}, not `listening on http://ADDR`"
            ))
        };
        app.addr = addr;
        app.url = format!("http://{addr}");
        app
    }

    /// The app's base URL, `http://127.0.0.1:PORT` (no trailing slash).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The app's socket address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Everything the app has logged (its stderr) so far.
    pub fn log(&self) -> String {
        self.log
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Stops the app, then panics with `problem` and the app's log.
    fn fail(&mut self, problem: &str) -> ! {
        let status = self.stop();
        self.log_shown = true;
        panic!(
            "example-app: {problem} (exit: {status}); its log:\n{}",
            self.log()
        );
    }

    /// Sends SIGTERM, waits up to [`SHUTDOWN_TIMEOUT`], then kills; returns
    /// how the process ended and finishes reading its log.
    fn stop(&mut self) -> String {
        let status = if let Ok(Some(status)) = self.child.try_wait() {
            status.to_string()
        } else {
            let _ = Command::new("kill")
                .args(["-TERM", &self.child.id().to_string()])
                .status();
            let deadline = Instant::now() + SHUTDOWN_TIMEOUT;
            loop {
                match self.child.try_wait() {
                    Ok(Some(status)) => break status.to_string(),
                    Ok(None) if Instant::now() < deadline => {
                        std::thread::sleep(Duration::from_millis(20));
                    }
                    _ => {
                        let _ = self.child.kill();
                        let _ = self.child.wait();
                        break format!("killed after {SHUTDOWN_TIMEOUT:?} without exiting");
                    }
                }
            }
        };
        if let Some(reader) = self.log_reader.take() {
            let _ = reader.join();
        }
        status
    }
}

impl Drop for ExampleApp {
    fn drop(&mut self) {
        let status = self.stop();
        if std::thread::panicking() && !self.log_shown {
            eprintln!(
                "example-app at {} ({status}) log:\n{}",
                self.url,
                self.log()
            );
        }
    }
}

/// `target/debug/example-app`: the test binary lives in `target/debug/deps`.
///
/// # Panics
///
/// If the binary does not exist; the message says how to build it.
pub fn binary() -> PathBuf {
    let test_binary = std::env::current_exe().expect("the test binary's path");
    let binary = test_binary
        .parent()
        .and_then(|deps| deps.parent())
        .map(|dir| dir.join("example-app"))
        .expect("the test binary lives in target/<profile>/deps");
    assert!(
        binary.is_file(),
        "{} is missing: run `cargo build -p example-app` (or `cargo xtask ci`) first",
        binary.display()
    );
    binary
}

/// Sends `request` (a complete HTTP/1.1 request, which should ask for
/// `Connection: close`) to `addr` over a new TCP connection and parses the
/// response.
///
/// # Panics
///
/// If [`try_exchange`] fails with [`REQUEST_TIMEOUT`], or the response is not
/// HTTP/1.1.
pub fn exchange(addr: SocketAddr, request: &[u8]) -> Reply {
    try_exchange(addr, request, REQUEST_TIMEOUT).unwrap_or_else(|error| {
        let head = String::from_utf8_lossy(request);
        let head = head.lines().next().unwrap_or_default();
        panic!("{head} to {addr}: {error}");
    })
}

/// Sends `request` to `addr` over a new TCP connection and reads the response
/// until its `Content-Length` is complete or the server closes the connection.
///
/// # Errors
///
/// If the connection fails or the whole exchange takes longer than `timeout`.
///
/// # Panics
///
/// If the response is not HTTP/1.1.
pub fn try_exchange(addr: SocketAddr, request: &[u8], timeout: Duration) -> io::Result<Reply> {
    let deadline = Instant::now() + timeout;
    let mut stream = TcpStream::connect_timeout(&addr, timeout)?;
    stream.set_write_timeout(Some(timeout))?;
    stream.write_all(request)?;
    let mut raw = Vec::new();
    let mut buffer = [0_u8; 16 * 1024];
    while !is_complete(&raw) {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("no complete response within {timeout:?}"),
            ));
        }
        stream.set_read_timeout(Some(left))?;
        match stream.read(&mut buffer)? {
            0 => break,
            read => raw.extend_from_slice(&buffer[..read]),
        }
    }
    Ok(parse_response(&raw))
}

/// Whether `raw` holds a whole response with a `Content-Length` body.
fn is_complete(raw: &[u8]) -> bool {
    let Some(head_end) = raw.windows(4).position(|window| window == b"\r\n\r\n") else {
        return false;
    };
    let head = String::from_utf8_lossy(&raw[..head_end]);
    head.lines()
        .filter_map(|line| line.split_once(':'))
        .find(|(name, _)| name.trim().eq_ignore_ascii_case("content-length"))
        .and_then(|(_, value)| value.trim().parse::<usize>().ok())
        .is_some_and(|length| raw.len() >= head_end + 4 + length)
}
