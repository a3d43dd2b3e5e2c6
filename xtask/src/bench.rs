//! `cargo xtask bench`: the session stack against plain axum, measured in the same run.
//!
//! Builds the `bench` package in release mode, starts memcached (over TCP on loopback, then
//! over a Unix socket) and `bench-server` (three routers in one process, each on its own
//! runtime: the session stack with default options, the same in strict mode with
//! `.locking(true)`, and plain axum), and for each scenario runs `loadgen` against the
//! session router, then against the locked router (for the routes that extract the
//! session), then against the plain router's same route, for the same time. Around each run it reads the server's
//! `/__stats` (CPU time of that router's threads, peak RSS) and memcached's `stats` (commands
//! sent), so that costs come out per request. Prints the tables (default session router
//! against plain; locked against default and plain) and the targets met or missed, and
//! writes `target/bench/report.md` and `target/bench/report.svg`.
//!
//! The numbers that matter are the ratios: both routers run on the same machine at the same
//! time of day, with the same load generator, alternating. Absolute numbers on a shared
//! two-core machine are noise. `BENCH_DURATION_SECS` (default 5), `BENCH_CONNECTIONS`
//! (default 32) and `BENCH_MEMCACHED_THREADS` (default 2) change the length and the
//! concurrency of each run and memcached's `-t`.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{ChildStdin, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

use crate::cmd::{self, Failure, Result};
use crate::install;
use crate::process::{self, Running, spawn};

/// Longest wait for memcached or the server to start.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(20);

/// Timeout of each stats request to the server or memcached.
const IO_TIMEOUT: Duration = Duration::from_secs(5);

/// Unrecorded seconds at the start of each run.
const WARMUP_SECS: &str = "1";

/// One scenario: a route, and the targets of the session router against the plain one.
struct Scenario {
    name: &'static str,
    method: &'static str,
    path: &'static str,
    /// Least session/plain throughput ratio.
    min_throughput_ratio: f64,
    /// Most memcached commands per request.
    max_commands: f64,
    /// Least memcached commands per request (the route must really use the session).
    min_commands: f64,
    /// Whether the route also runs against the locked (strict mode) router: it extracts the
    /// session, so locking costs it two commands.
    locked: bool,
}

const SCENARIOS: [Scenario; 4] = [
    Scenario {
        name: "plain",
        method: "GET",
        path: "/plain",
        min_throughput_ratio: 0.97,
        max_commands: 0.0,
        min_commands: 0.0,
        locked: false,
    },
    Scenario {
        name: "read",
        method: "GET",
        path: "/read",
        min_throughput_ratio: 0.75,
        max_commands: 1.0,
        min_commands: 1.0,
        locked: true,
    },
    Scenario {
        name: "write",
        method: "GET",
        path: "/write",
        min_throughput_ratio: 0.60,
        max_commands: 2.0,
        min_commands: 1.0,
        locked: true,
    },
    Scenario {
        name: "login",
        method: "POST",
        path: "/login",
        min_throughput_ratio: 0.50,
        max_commands: 2.0,
        min_commands: 1.0,
        locked: true,
    },
];

/// Most session/plain p99 latency ratio, for every scenario.
const MAX_P99_RATIO: f64 = 2.0;

/// Most session/plain peak RSS ratio, for every scenario.
const MAX_PEAK_RSS_RATIO: f64 = 2.0;

/// Slack on commands per request, for rounding only (the counts are exact).
const COMMAND_SLACK: f64 = 0.005;

/// Commands that strict mode adds to a request that extracts the session: the lock is
/// taken (`ms <key>:lock ... ME`) and released (`md <key>:lock C<cas>`).
const LOCK_EXTRA_COMMANDS: f64 = 2.0;

/// How memcached is reached.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Transport {
    Tcp,
    Unix,
}

impl Transport {
    fn name(self) -> &'static str {
        match self {
            Self::Tcp => "tcp",
            Self::Unix => "unix",
        }
    }
}

/// Where memcached's `stats` are read.
enum Memcached {
    Tcp(SocketAddr),
    Unix(PathBuf),
}

impl Memcached {
    /// The `MEMCACHE_SERVER` value for this memcached.
    fn server(&self) -> String {
        match self {
            Self::Tcp(address) => address.to_string(),
            Self::Unix(path) => format!("unix://{}", path.display()),
        }
    }

    /// memcached's `stats`, as numbers.
    fn stats(&self) -> Result<HashMap<String, f64>> {
        let fail = |error: std::io::Error| Failure::new(format!("memcached stats: {error}"));
        let reply = match self {
            Self::Tcp(address) => {
                let stream = TcpStream::connect_timeout(address, IO_TIMEOUT).map_err(fail)?;
                stream.set_read_timeout(Some(IO_TIMEOUT)).map_err(fail)?;
                stream.set_write_timeout(Some(IO_TIMEOUT)).map_err(fail)?;
                stats_exchange(stream).map_err(fail)?
            }
            Self::Unix(path) => {
                let stream = UnixStream::connect(path).map_err(fail)?;
                stream.set_read_timeout(Some(IO_TIMEOUT)).map_err(fail)?;
                stream.set_write_timeout(Some(IO_TIMEOUT)).map_err(fail)?;
                stats_exchange(stream).map_err(fail)?
            }
        };
        Ok(reply
            .lines()
            .filter_map(|line| {
                let mut words = line.strip_prefix("STAT ")?.split_whitespace();
                let name = words.next()?;
                let value = words.next()?.parse().ok()?;
                Some((name.to_owned(), value))
            })
            .collect())
    }
}

fn stats_exchange(mut stream: impl Read + Write) -> std::io::Result<String> {
    stream.write_all(b"stats\r\n")?;
    let mut reply = Vec::new();
    let mut chunk = [0_u8; 4096];
    while !reply.ends_with(b"END\r\n") {
        let read = stream.read(&mut chunk)?;
        if read == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        reply.extend_from_slice(&chunk[..read]);
    }
    Ok(String::from_utf8_lossy(&reply).into_owned())
}

/// What memcached did between two `stats` snapshots.
#[derive(Clone, Copy, Debug, Default)]
struct MemcachedDelta {
    commands: f64,
    gets: f64,
    get_hits: f64,
    sets: f64,
    touches: f64,
    deletes: f64,
    /// Sets that carried a CAS value and matched it (`cas_hits`), or did not (`cas_badval`,
    /// `cas_misses`: changed or gone since it was read).
    cas_hits: f64,
    cas_failures: f64,
    cpu_seconds: f64,
}

impl MemcachedDelta {
    fn between(before: &HashMap<String, f64>, after: &HashMap<String, f64>) -> Self {
        let delta = |name: &str| {
            after.get(name).copied().unwrap_or(0.0) - before.get(name).copied().unwrap_or(0.0)
        };
        let gets = delta("cmd_get");
        let sets = delta("cmd_set");
        let touches = delta("cmd_touch");
        let deletes = delta("delete_hits") + delta("delete_misses");
        Self {
            commands: gets + sets + touches + deletes,
            gets,
            get_hits: delta("get_hits"),
            sets,
            touches,
            deletes,
            cas_hits: delta("cas_hits"),
            cas_failures: delta("cas_badval") + delta("cas_misses"),
            cpu_seconds: delta("rusage_user") + delta("rusage_system"),
        }
    }
}

/// The bench server's `/__stats` for one router.
#[derive(Clone, Copy, Debug)]
struct ServerStats {
    cpu_seconds: f64,
    system_seconds: f64,
    peak_kib: f64,
    rss_kib: f64,
}

/// One loadgen run against one router, with its costs.
#[derive(Clone, Debug)]
struct Run {
    rps: f64,
    p50_us: f64,
    p99_us: f64,
    non_2xx: f64,
    errors: f64,
    total_requests: f64,
    cpu_us_per_request: f64,
    /// The part of `cpu_us_per_request` spent in the kernel (system calls, mostly).
    system_us_per_request: f64,
    loadgen_cpu_us_per_request: f64,
    /// Peak RSS of the server process during the run, and its RSS when the run began.
    peak_kib: f64,
    start_rss_kib: f64,
    memcached: Option<MemcachedDelta>,
    raw: String,
}

impl Run {
    fn per_request(&self, value: f64) -> f64 {
        if self.total_requests > 0.0 {
            value / self.total_requests
        } else {
            f64::NAN
        }
    }
}

/// The session run and the plain run of one scenario over one transport, and the locked
/// run when the scenario has one.
struct Pair {
    scenario: &'static Scenario,
    transport: Transport,
    session: Run,
    plain: Run,
    locked: Option<Run>,
}

/// The server process and its three routers.
struct Server {
    _process: Running,
    session: SocketAddr,
    locked: SocketAddr,
    plain: SocketAddr,
}

struct Settings {
    loadgen: PathBuf,
    duration: String,
    connections: String,
    memcached_threads: String,
}

/// Runs the benchmark and writes the report.
pub(crate) fn run() -> Result {
    install::debian_package("memcached", "memcached")?;
    cmd::run("cargo", ["build", "--release", "--package", "bench"])?;
    let root = cmd::workspace_root();
    let work = root.join("target").join("bench");
    std::fs::create_dir_all(&work)
        .map_err(|error| Failure::new(format!("cannot create {}: {error}", work.display())))?;
    let release = root.join("target").join("release");
    let settings = Settings {
        loadgen: release.join("loadgen"),
        duration: env_number("BENCH_DURATION_SECS", "5")?,
        connections: env_number("BENCH_CONNECTIONS", "32")?,
        // The machine has two cores.
        memcached_threads: env_number("BENCH_MEMCACHED_THREADS", "2")?,
    };
    let machine = machine_info();
    let started = Instant::now();

    let mut pairs = Vec::new();
    for transport in [Transport::Tcp, Transport::Unix] {
        let (_memcached, memcached) =
            start_memcached(&work, transport, &settings.memcached_threads)?;
        let server = start_server(&release.join("bench-server"), &memcached.server())?;
        for scenario in &SCENARIOS {
            let session = measure(
                &settings,
                "session",
                server.session,
                scenario,
                Some(&memcached),
            )?;
            let locked = if scenario.locked {
                Some(measure(
                    &settings,
                    "locked",
                    server.locked,
                    scenario,
                    Some(&memcached),
                )?)
            } else {
                None
            };
            let plain = measure(&settings, "plain", server.plain, scenario, None)?;
            pairs.push(Pair {
                scenario,
                transport,
                session,
                plain,
                locked,
            });
        }
    }
    let elapsed = started.elapsed();

    let table = table(&pairs);
    let cpu_table = cpu_table(&pairs);
    let locking_table = locking_table(&pairs);
    let cas = cas_summary(&pairs);
    let checks = checks(&pairs);
    println!();
    println!("{table}");
    println!("CPU time per request, machine-wide:\n\n{cpu_table}");
    println!("Strict mode (locking) against the default router and plain axum:\n\n{locking_table}");
    println!("{cas}\n");
    for (passed, text) in &checks {
        println!("{} {text}", if *passed { "PASS" } else { "MISS" });
    }
    let misses = checks.iter().filter(|(passed, _)| !passed).count();
    println!(
        "\n{} of {} targets met; measured in {:.0} s",
        checks.len() - misses,
        checks.len(),
        elapsed.as_secs_f64()
    );

    let report = work.join("report.md");
    let chart = work.join("report.svg");
    write_file(
        &report,
        &report_markdown(
            &[&table, &cpu_table, &locking_table, &cas],
            &checks,
            &machine,
            &settings,
            &pairs,
        ),
    )?;
    write_file(&chart, &svg_chart(&pairs))?;
    println!("report: {}", report.display());
    println!("chart:  {}", chart.display());
    Ok(())
}

fn env_number(name: &str, default: &str) -> Result<String> {
    match std::env::var(name) {
        Ok(value) if value.parse::<f64>().is_ok_and(|n| n > 0.0) => Ok(value),
        Ok(value) => Err(Failure::new(format!(
            "{name}={value:?} is not a positive number"
        ))),
        Err(_) => Ok(default.to_owned()),
    }
}

fn write_file(path: &Path, contents: &str) -> Result {
    std::fs::write(path, contents)
        .map_err(|error| Failure::new(format!("cannot write {}: {error}", path.display())))
}

fn start_memcached(
    work: &Path,
    transport: Transport,
    threads: &str,
) -> Result<(Running, Memcached)> {
    let deadline = Instant::now() + STARTUP_TIMEOUT;
    match transport {
        Transport::Tcp => {
            let (running, port) = process::start_memcached_tcp(work, &["-t", threads])?;
            let memcached = Memcached::Tcp(SocketAddr::from(([127, 0, 0, 1], port)));
            memcached.stats()?;
            Ok((running, memcached))
        }
        Transport::Unix => {
            let socket = work.join("memcached.sock");
            let _ = std::fs::remove_file(&socket);
            let mut command = process::memcached_command();
            command
                .args(["-t", threads, "-a", "0700", "-s"])
                .arg(&socket);
            let running = spawn(&mut command, "memcached (unix socket)")?;
            let memcached = Memcached::Unix(socket);
            loop {
                if memcached.stats().is_ok() {
                    return Ok((running, memcached));
                }
                if Instant::now() > deadline {
                    return Err(Failure::new(
                        "memcached's Unix socket did not answer in time",
                    ));
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }
}

fn start_server(binary: &Path, memcache_server: &str) -> Result<Server> {
    let mut command = Command::new(binary);
    command
        .env("MEMCACHE_SERVER", memcache_server)
        .stdin(Stdio::null())
        .stdout(Stdio::piped());
    let mut running = spawn(&mut command, "bench-server")?;
    let stdout = running.child.stdout.take().expect("stdout is piped");
    let mut lines = BufReader::new(stdout).lines();
    let mut address = |expected: &str| -> Result<SocketAddr> {
        let line = lines
            .next()
            .and_then(std::result::Result::ok)
            .unwrap_or_default();
        line.strip_prefix(expected)
            .and_then(|url| url.strip_prefix(" http://"))
            .and_then(|address| address.parse().ok())
            .ok_or_else(|| {
                Failure::new(format!("bench-server did not start: {expected}: {line:?}"))
            })
    };
    // bench-server prints its routers in this order.
    let session = address("session")?;
    let locked = address("locked")?;
    let plain = address("plain")?;
    Ok(Server {
        _process: running,
        session,
        locked,
        plain,
    })
}

/// One loadgen run against `target` (the router called `which`), with the counters read
/// around it.
fn measure(
    settings: &Settings,
    which: &str,
    target: SocketAddr,
    scenario: &Scenario,
    memcached: Option<&Memcached>,
) -> Result<Run> {
    let url = format!("http://{target}");
    let mut command = Command::new(&settings.loadgen);
    command
        .args([url.as_str(), scenario.path, "--method", scenario.method])
        .args(["--connections", &settings.connections])
        .args(["--duration", &settings.duration, "--warmup", WARMUP_SECS])
        // Every connection first obtains a session (the plain router sets none), so that
        // `/read` reads a stored session and `/plain` carries a cookie, as for a signed-in
        // user.
        .args(["--setup", "/write", "--sync"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped());
    let mut loadgen = spawn(&mut command, "loadgen")?;
    let mut stdin = loadgen.child.stdin.take().expect("stdin is piped");
    let mut stdout = BufReader::new(loadgen.child.stdout.take().expect("stdout is piped"));
    let ready = read_line(&mut stdout)?;
    if !ready.contains("\"ready\"") {
        return Err(Failure::new(format!(
            "loadgen did not get ready: {ready:?}"
        )));
    }

    // Connected and signed in: snapshot the counters, then let it go.
    http(target, "POST", "/__reset-peak")?;
    let before = server_stats(target)?;
    let memcached_before = memcached.map(Memcached::stats).transpose()?;
    go(&mut stdin)?;
    let line = read_line(&mut stdout)?;
    let status = loadgen
        .child
        .wait()
        .map_err(|error| Failure::new(format!("loadgen: {error}")))?;
    if !status.success() {
        return Err(Failure::new(format!("loadgen failed: {status}")));
    }
    let after = server_stats(target)?;
    let memcached_delta = match (memcached, memcached_before) {
        (Some(memcached), Some(before)) => {
            Some(MemcachedDelta::between(&before, &memcached.stats()?))
        }
        _ => None,
    };

    let number = |key: &str| {
        json_number(&line, key)
            .ok_or_else(|| Failure::new(format!("loadgen printed no {key}: {line}")))
    };
    let mut run = Run {
        rps: number("rps")?,
        p50_us: number("p50_us")?,
        p99_us: number("p99_us")?,
        non_2xx: number("non_2xx")?,
        errors: number("errors")?,
        total_requests: number("total_requests")?,
        cpu_us_per_request: 0.0,
        system_us_per_request: 0.0,
        loadgen_cpu_us_per_request: 0.0,
        peak_kib: after.peak_kib,
        start_rss_kib: before.rss_kib,
        memcached: memcached_delta,
        raw: line.trim().to_owned(),
    };
    run.cpu_us_per_request = run.per_request((after.cpu_seconds - before.cpu_seconds) * 1e6);
    run.system_us_per_request =
        run.per_request((after.system_seconds - before.system_seconds) * 1e6);
    run.loadgen_cpu_us_per_request = run.per_request(number("loadgen_cpu_s")? * 1e6);
    eprintln!(
        "{} {which} {}: {:.0} req/s, p50 {} µs, p99 {} µs, non-2xx {}, {:.1} µs CPU/request",
        scenario.name,
        scenario.path,
        run.rps,
        run.p50_us,
        run.p99_us,
        run.non_2xx,
        run.cpu_us_per_request
    );
    Ok(run)
}

fn read_line(reader: &mut BufReader<ChildStdout>) -> Result<String> {
    let mut line = String::new();
    reader
        .read_line(&mut line)
        .map_err(|error| Failure::new(format!("cannot read loadgen's output: {error}")))?;
    Ok(line)
}

fn go(stdin: &mut ChildStdin) -> Result {
    stdin
        .write_all(b"go\n")
        .and_then(|()| stdin.flush())
        .map_err(|error| Failure::new(format!("cannot start loadgen: {error}")))
}

fn server_stats(target: SocketAddr) -> Result<ServerStats> {
    let body = http(target, "GET", "/__stats")?;
    let number = |key: &str| {
        json_number(&body, key)
            .ok_or_else(|| Failure::new(format!("/__stats has no {key}: {body}")))
    };
    Ok(ServerStats {
        cpu_seconds: number("cpu_seconds")?,
        system_seconds: number("cpu_system_seconds")?,
        peak_kib: number("vm_hwm_kib")?,
        rss_kib: number("vm_rss_kib")?,
    })
}

/// One HTTP/1.1 request on its own connection; the body of a 200 response.
fn http(target: SocketAddr, method: &str, path: &str) -> Result<String> {
    let fail = |error: std::io::Error| Failure::new(format!("{method} {path}: {error}"));
    let mut stream = TcpStream::connect_timeout(&target, IO_TIMEOUT).map_err(fail)?;
    stream.set_read_timeout(Some(IO_TIMEOUT)).map_err(fail)?;
    stream.set_write_timeout(Some(IO_TIMEOUT)).map_err(fail)?;
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: {target}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )
    .map_err(fail)?;
    let mut response = String::new();
    stream.read_to_string(&mut response).map_err(fail)?;
    let (head, body) = response
        .split_once("\r\n\r\n")
        .ok_or_else(|| Failure::new(format!("{method} {path}: no response head")))?;
    if !head.starts_with("HTTP/1.1 200") {
        return Err(Failure::new(format!(
            "{method} {path}: {}",
            head.lines().next().unwrap_or_default()
        )));
    }
    Ok(body.to_owned())
}

/// The number after `"key":` in a flat JSON object (enough for our own one-line outputs).
fn json_number(json: &str, key: &str) -> Option<f64> {
    let needle = format!("\"{key}\":");
    let start = json.find(&needle)? + needle.len();
    let rest = json[start..].trim_start();
    let end = rest.find([',', '}']).unwrap_or(rest.len());
    rest[..end].trim().parse().ok()
}

/// Each scenario's numbers, session against plain, as a Markdown table.
fn table(pairs: &[Pair]) -> String {
    let mut table = String::from(
        "| scenario | transport | req/s session | req/s plain | ratio | p50 µs s / p | \
         p99 µs s / p | p99 ratio | non-2xx s / p | CPU µs/req s / p (of which kernel) | memcached cmds/req \
         (get+set+touch+delete) | memcached CPU µs/req | peak RSS MiB s / p (growth in run) |\n\
         | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n",
    );
    for pair in pairs {
        let (session, plain) = (&pair.session, &pair.plain);
        let memcached = session.memcached.unwrap_or_default();
        let _ = writeln!(
            table,
            "| {} {} | {} | {:.0} | {:.0} | {:.2} | {:.0} / {:.0} | {:.0} / {:.0} | {:.2} | {:.0} / {:.0} | {:.1} ({:.1}) / {:.1} ({:.1}) | {:.2} ({:.2}+{:.2}+{:.2}+{:.2}) | {:.1} | {:.1} / {:.1} ({:+.1} / {:+.1}) |",
            pair.scenario.method,
            pair.scenario.path,
            pair.transport.name(),
            session.rps,
            plain.rps,
            session.rps / plain.rps,
            session.p50_us,
            plain.p50_us,
            session.p99_us,
            plain.p99_us,
            session.p99_us / plain.p99_us,
            session.non_2xx + session.errors,
            plain.non_2xx + plain.errors,
            session.cpu_us_per_request,
            session.system_us_per_request,
            plain.cpu_us_per_request,
            plain.system_us_per_request,
            session.per_request(memcached.commands),
            session.per_request(memcached.gets),
            session.per_request(memcached.sets),
            session.per_request(memcached.touches),
            session.per_request(memcached.deletes),
            session.per_request(memcached.cpu_seconds * 1e6),
            mib(session.peak_kib),
            mib(plain.peak_kib),
            mib(session.peak_kib - session.start_rss_kib),
            mib(plain.peak_kib - plain.start_rss_kib),
        );
    }
    table
}

/// Where the CPU time of a request goes, machine-wide: the server's router threads (user
/// and kernel), memcached, and the load generator. On a saturated two-core machine the
/// throughput ratio follows the ratio of these totals.
fn cpu_table(pairs: &[Pair]) -> String {
    let mut table = String::from(
        "| scenario | transport | server user µs s / p | server kernel µs s / p | memcached µs s \
         | loadgen µs s / p | machine total µs s / p | plain / session total |\n\
         | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |\n",
    );
    for pair in pairs {
        let (session, plain) = (&pair.session, &pair.plain);
        let memcached =
            session.per_request(session.memcached.unwrap_or_default().cpu_seconds * 1e6);
        let total = |run: &Run, memcached: f64| {
            run.cpu_us_per_request + run.loadgen_cpu_us_per_request + memcached
        };
        let (session_total, plain_total) = (total(session, memcached), total(plain, 0.0));
        let _ = writeln!(
            table,
            "| {} {} | {} | {:.1} / {:.1} | {:.1} / {:.1} | {:.1} | {:.1} / {:.1} | {:.1} / {:.1} | {:.2} |",
            pair.scenario.method,
            pair.scenario.path,
            pair.transport.name(),
            session.cpu_us_per_request - session.system_us_per_request,
            plain.cpu_us_per_request - plain.system_us_per_request,
            session.system_us_per_request,
            plain.system_us_per_request,
            memcached,
            session.loadgen_cpu_us_per_request,
            plain.loadgen_cpu_us_per_request,
            session_total,
            plain_total,
            plain_total / session_total,
        );
    }
    table
}

/// A run's CPU time per request, machine-wide: its router's threads, memcached, loadgen.
fn machine_total(run: &Run) -> f64 {
    let memcached = run.per_request(run.memcached.unwrap_or_default().cpu_seconds * 1e6);
    run.cpu_us_per_request + run.loadgen_cpu_us_per_request + memcached
}

/// Strict mode: each locked run against the default session run and the plain run of the
/// same scenario, transport and server process.
fn locking_table(pairs: &[Pair]) -> String {
    let mut table = String::from(
        "| scenario | transport | req/s locked / default / plain | req/s locked ÷ default | \
         req/s locked ÷ plain | p50 µs locked / default | p99 µs locked / default / plain | \
         p99 locked ÷ default | p99 locked ÷ plain | non-2xx locked | memcached cmds/req \
         locked / default (locked: get+set+touch+delete) | server CPU µs/req locked / default \
         (of which kernel) | memcached CPU µs/req locked / default | machine total µs/req \
         locked / default | peak RSS MiB locked (growth in run) |\n\
         | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | \
         ---: | ---: | ---: |\n",
    );
    for pair in pairs {
        let Some(locked) = &pair.locked else {
            continue;
        };
        let (session, plain) = (&pair.session, &pair.plain);
        let (ours, theirs) = (
            locked.memcached.unwrap_or_default(),
            session.memcached.unwrap_or_default(),
        );
        let _ = writeln!(
            table,
            "| {} {} | {} | {:.0} / {:.0} / {:.0} | {:.2} | {:.2} | {:.0} / {:.0} | {:.0} / {:.0} / {:.0} | {:.2} | {:.2} | {:.0} | {:.2} / {:.2} ({:.2}+{:.2}+{:.2}+{:.2}) | {:.1} ({:.1}) / {:.1} ({:.1}) | {:.1} / {:.1} | {:.1} / {:.1} | {:.1} ({:+.1}) |",
            pair.scenario.method,
            pair.scenario.path,
            pair.transport.name(),
            locked.rps,
            session.rps,
            plain.rps,
            locked.rps / session.rps,
            locked.rps / plain.rps,
            locked.p50_us,
            session.p50_us,
            locked.p99_us,
            session.p99_us,
            plain.p99_us,
            locked.p99_us / session.p99_us,
            locked.p99_us / plain.p99_us,
            locked.non_2xx + locked.errors,
            locked.per_request(ours.commands),
            session.per_request(theirs.commands),
            locked.per_request(ours.gets),
            locked.per_request(ours.sets),
            locked.per_request(ours.touches),
            locked.per_request(ours.deletes),
            locked.cpu_us_per_request,
            locked.system_us_per_request,
            session.cpu_us_per_request,
            session.system_us_per_request,
            locked.per_request(ours.cpu_seconds * 1e6),
            session.per_request(theirs.cpu_seconds * 1e6),
            machine_total(locked),
            machine_total(session),
            mib(locked.peak_kib),
            mib(locked.peak_kib - locked.start_rss_kib),
        );
    }
    table
}

/// What the default router's writes cost: how many of its sets were CAS writes, and what a
/// CAS write costs against a blind set (one command either way).
fn cas_summary(pairs: &[Pair]) -> String {
    let mut summary = String::new();
    for pair in pairs {
        let session = &pair.session;
        let memcached = session.memcached.unwrap_or_default();
        if memcached.sets == 0.0 {
            continue;
        }
        let _ = writeln!(
            summary,
            "- {} {} {}, default router: {:.2} commands/request in all, of which {:.2} sets; \
             {:.2} CAS writes/request that matched (`cas_hits`), {:.2} that did not \
             (`cas_badval + cas_misses`).",
            pair.scenario.method,
            pair.scenario.path,
            pair.transport.name(),
            session.per_request(memcached.commands),
            session.per_request(memcached.sets),
            session.per_request(memcached.cas_hits),
            session.per_request(memcached.cas_failures),
        );
    }
    let one_cas_write = pairs
        .iter()
        .filter(|pair| pair.scenario.name == "write")
        .all(|pair| {
            let memcached = pair.session.memcached.unwrap_or_default();
            let sets = pair.session.per_request(memcached.sets);
            let cas = pair.session.per_request(memcached.cas_hits);
            (sets - 1.0).abs() <= COMMAND_SLACK && (cas - 1.0).abs() <= COMMAND_SLACK
        });
    summary.push('\n');
    summary.push_str(if one_cas_write {
        "CAS write = 1 command, same as a blind set: every save of `/write` was one `ms` \
         carrying the CAS value read with the session, and nothing else was sent for it. CAS \
         has no switch of its own (it is the default write), so there is no blind-set run to \
         compare; the command count is the comparison."
    } else {
        "A `/write` save was not exactly one CAS set per request in this run (see the counts \
         above): CAS writes cost more than a blind set here, or some saves were not CAS writes."
    });
    summary
}

fn mib(kib: f64) -> f64 {
    kib / 1024.0
}

/// Every target, met (`true`) or missed, with the numbers behind it.
fn checks(pairs: &[Pair]) -> Vec<(bool, String)> {
    let mut checks = Vec::new();
    for pair in pairs {
        let (session, plain) = (&pair.session, &pair.plain);
        let scenario = pair.scenario;
        let label = format!(
            "{:<5} {:<6} {:<4}",
            scenario.name,
            scenario.path,
            pair.transport.name()
        );
        let ratio = session.rps / plain.rps;
        checks.push((
            ratio >= scenario.min_throughput_ratio,
            format!(
                "{label} req/s ratio {ratio:.2} (target >= {:.2})",
                scenario.min_throughput_ratio
            ),
        ));
        let p99 = session.p99_us / plain.p99_us;
        checks.push((
            p99 <= MAX_P99_RATIO,
            format!("{label} p99 ratio {p99:.2} (target <= {MAX_P99_RATIO:.2})"),
        ));
        let rss = session.peak_kib / plain.peak_kib;
        checks.push((
            rss <= MAX_PEAK_RSS_RATIO,
            format!("{label} peak RSS ratio {rss:.2} (target <= {MAX_PEAK_RSS_RATIO:.2})"),
        ));
        let commands = session.per_request(session.memcached.unwrap_or_default().commands);
        let target = if scenario.min_commands >= scenario.max_commands {
            format!("{:.0}", scenario.max_commands)
        } else {
            format!("<= {:.0}", scenario.max_commands)
        };
        checks.push((
            commands <= scenario.max_commands + COMMAND_SLACK
                && commands >= scenario.min_commands - COMMAND_SLACK,
            format!("{label} memcached commands/request {commands:.3} (target {target})"),
        ));
        let failures = session.non_2xx + session.errors + plain.non_2xx + plain.errors;
        checks.push((
            failures == 0.0,
            format!("{label} non-2xx responses and errors {failures} (target 0)"),
        ));
        if scenario.name == "write" {
            let memcached = session.memcached.unwrap_or_default();
            let sets = session.per_request(memcached.sets);
            let cas = session.per_request(memcached.cas_hits);
            checks.push((
                (sets - 1.0).abs() <= COMMAND_SLACK && (cas - 1.0).abs() <= COMMAND_SLACK,
                format!(
                    "{label} save = one CAS write: sets/request {sets:.3}, of which CAS {cas:.3} \
                     (target 1 and 1)"
                ),
            ));
        }
        if let Some(locked) = &pair.locked {
            checks.extend(locked_checks(&label, session, locked));
        }
    }
    checks
}

/// The locked run of a scenario: exactly two more commands than the default router (lock
/// and unlock), and no failures.
fn locked_checks(label: &str, session: &Run, locked: &Run) -> [(bool, String); 2] {
    let extra = locked.per_request(locked.memcached.unwrap_or_default().commands)
        - session.per_request(session.memcached.unwrap_or_default().commands);
    let failures = locked.non_2xx + locked.errors;
    [
        (
            (extra - LOCK_EXTRA_COMMANDS).abs() <= 2.0 * COMMAND_SLACK,
            format!(
                "{label} locked: extra memcached commands/request over default {extra:.3} \
                 (target {LOCK_EXTRA_COMMANDS:.0})"
            ),
        ),
        (
            failures == 0.0,
            format!("{label} locked: non-2xx responses and errors {failures} (target 0)"),
        ),
    ]
}

/// What the machine is, and how busy it was.
fn machine_info() -> Vec<(&'static str, String)> {
    let output = |program: &str, args: &[&str]| {
        Command::new(program).args(args).output().ok().map_or_else(
            || "unknown".to_owned(),
            |output| String::from_utf8_lossy(&output.stdout).trim().to_owned(),
        )
    };
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find_map(|line| line.strip_prefix("model name")?.split_once(':'))
                .map(|(_, model)| model.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown".to_owned());
    vec![
        ("date", output("date", &["-u", "+%Y-%m-%d %H:%M:%S UTC"])),
        ("nproc", output("nproc", &[])),
        ("CPU", cpu),
        ("kernel", output("uname", &["-sr"])),
        ("memcached", output("memcached", &["-V"])),
        ("load average at start", load_average()),
    ]
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg").map_or_else(
        |_| "unknown".to_owned(),
        |load| {
            load.split_whitespace()
                .take(3)
                .collect::<Vec<_>>()
                .join(" ")
        },
    )
}

fn report_markdown(
    tables: &[&str; 4],
    checks: &[(bool, String)],
    machine: &[(&str, String)],
    settings: &Settings,
    pairs: &[Pair],
) -> String {
    let mut report = String::from("# Benchmark: axum-session-memcache against plain axum\n\n");
    let _ = writeln!(
        report,
        "Written by `cargo xtask bench`. Each row: `loadgen` with {} keep-alive connections \
         (one session each), {WARMUP_SECS} s warm-up and {} s recorded, against the session \
         router (default options), then, for the routes that extract the session, the locked \
         router (`.locking(true)`), then the same route of the plain router, one after the \
         other, in the same process run. memcached runs with `-t {}`.\n",
        settings.connections, settings.duration, settings.memcached_threads
    );
    report.push_str(tables[0]);
    report.push_str(
        "\n## Where the CPU goes\n\nCPU time per request, machine-wide: the server's router \
         threads (user space, kernel), memcached (`rusage_user + rusage_system`), the load \
         generator. The machine is saturated in every run, so the throughput ratio follows \
         the last column (plain total / session total), give or take the noise.\n\n",
    );
    report.push_str(tables[1]);
    report.push_str(
        "\n## Strict mode (locking) against the default\n\n\
         The same routes over `MemcacheSessionStorageOptions::default().locking(true)`: a \
         per-session lock taken on read (`ms <key>:lock ... ME T30 c`) and released after the \
         save (`md <key>:lock C<cas>`). Default is the session router above, plain is plain \
         axum, all from the same server process and memcached.\n\n",
    );
    report.push_str(tables[2]);
    report.push_str("\n## CAS writes\n\n");
    report.push_str(tables[3]);
    report.push_str("\n\n## Targets\n\n");
    for (passed, text) in checks {
        let _ = writeln!(
            report,
            "- {} {text}",
            if *passed { "PASS" } else { "**MISS**" }
        );
    }
    report.push_str("\n## Machine\n\n");
    for (name, value) in machine {
        let _ = writeln!(report, "- {name}: {value}");
    }
    let _ = writeln!(report, "- load average at end: {}", load_average());
    report.push_str(
        "\n## How to read it\n\n\
         - Ratios are session / plain unless labelled. The three routers live in one \
         `bench-server` process, each on its own Tokio runtime with one worker thread \
         (`session-*`, `locked-*` and `plain-*` threads); only one router is under load at a \
         time.\n\
         - CPU µs/request: `utime + stime` of that router's threads (clock ticks, 10 ms) over \
         the run, warm-up included, divided by every request of the run; in parentheses the \
         part spent in the kernel (`stime`: system calls, mostly socket I/O). It excludes \
         memcached's own CPU (its column) and the load generator's (below).\n\
         - memcached commands per request: the change in `cmd_get + cmd_set + cmd_touch + \
         delete_hits + delete_misses` over the run, divided by the run's requests (memcached \
         counts a meta get `mg` in `cmd_get`, a meta set `ms` in `cmd_set` whatever its mode, \
         lock adds included, a meta delete `md` in `delete_*`). Each connection obtained its \
         session (one `GET /write`) before the counters were read.\n\
         - Peak RSS: the process's `VmHWM`, reset through `/proc/self/clear_refs` just before \
         each run, so it is the peak during that run; growth is that peak minus the RSS at the \
         start of the run. Both routers share the process, so the absolute numbers include \
         both; the growth is what the run itself added.\n\
         - The load generator, memcached and the server share the machine's two cores (and \
         other work on the machine, see the load average): absolute numbers are noisy, the \
         ratios of neighbouring runs much less so.\n\n## Raw loadgen output\n\n",
    );
    for pair in pairs {
        let runs = [
            Some(("session", &pair.session)),
            pair.locked.as_ref().map(|run| ("locked", run)),
            Some(("plain", &pair.plain)),
        ];
        for (which, run) in runs.into_iter().flatten() {
            let memcached = run.memcached.map_or_else(String::new, |delta| {
                format!(
                    "; memcached gets {:.0} ({:.0} hits), sets {:.0} (CAS {:.0}, CAS failed \
                     {:.0}), touches {:.0}, deletes {:.0}",
                    delta.gets,
                    delta.get_hits,
                    delta.sets,
                    delta.cas_hits,
                    delta.cas_failures,
                    delta.touches,
                    delta.deletes
                )
            });
            let _ = writeln!(
                report,
                "- {} {} {which}: loadgen CPU {:.1} µs/request{memcached}; `{}`",
                pair.scenario.name,
                pair.transport.name(),
                run.loadgen_cpu_us_per_request,
                run.raw
            );
        }
    }
    report
}

/// One value of a run, as charted.
type Metric = fn(&Run) -> f64;

const SVG_WIDTH: f64 = 960.0;
const SVG_PANEL_HEIGHT: f64 = 300.0;
const SVG_LEFT: f64 = 70.0;
const SVG_TOP: f64 = 50.0;
const SVG_BOTTOM: f64 = 50.0;

/// Bars of req/s and p99, session (and locked) against plain, per scenario and transport.
fn svg_chart(pairs: &[Pair]) -> String {
    let panel = SVG_PANEL_HEIGHT + SVG_TOP + SVG_BOTTOM;
    let height = 2.0 * panel + 10.0;
    let mut svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{SVG_WIDTH}\" height=\"{height}\" \
         viewBox=\"0 0 {SVG_WIDTH} {height}\" font-family=\"sans-serif\" font-size=\"12\">\n\
         <rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n"
    );
    let panels: [(&str, Metric); 2] = [
        ("Throughput (req/s, higher is better)", |run| run.rps),
        ("p99 latency (µs, lower is better)", |run| run.p99_us),
    ];
    for (index, (title, value)) in panels.into_iter().enumerate() {
        #[allow(clippy::cast_precision_loss)] // two panels
        let y0 = index as f64 * panel + 10.0;
        svg_panel(&mut svg, pairs, y0, title, value);
    }
    svg.push_str("</svg>\n");
    svg
}

/// One chart: a title, a scale, two or three bars per pair (session, locked, plain), a
/// legend.
fn svg_panel(svg: &mut String, pairs: &[Pair], y0: f64, title: &str, value: Metric) {
    let (left, right, height) = (SVG_LEFT, SVG_WIDTH - 10.0, SVG_PANEL_HEIGHT);
    let max = pairs
        .iter()
        .flat_map(|pair| {
            [Some(&pair.session), pair.locked.as_ref(), Some(&pair.plain)]
                .into_iter()
                .flatten()
                .map(value)
        })
        .fold(0.0_f64, f64::max);
    let scale_max = nice_ceiling(max);
    let _ = writeln!(
        svg,
        "<text x=\"{left}\" y=\"{}\" font-size=\"15\" font-weight=\"bold\">{}</text>",
        y0 + 20.0,
        xml_escape(title)
    );
    let base = y0 + SVG_TOP + height;
    for tick in 0..=5 {
        let fraction = f64::from(tick) / 5.0;
        let y = base - fraction * height;
        let _ = writeln!(
            svg,
            "<line x1=\"{left}\" x2=\"{right}\" y1=\"{y:.1}\" y2=\"{y:.1}\" stroke=\"#ddd\"/>\
             <text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{:.0}</text>",
            left - 6.0,
            y + 4.0,
            fraction * scale_max
        );
    }
    #[allow(clippy::cast_precision_loss)] // a handful of groups
    let group_width = (right - left) / pairs.len().max(1) as f64;
    let bar_width = group_width * 0.25;
    for (group, pair) in pairs.iter().enumerate() {
        #[allow(clippy::cast_precision_loss)]
        let x = left + group as f64 * group_width + group_width * 0.125;
        let bars = [
            Some((&pair.session, SESSION_COLOUR)),
            pair.locked.as_ref().map(|run| (run, LOCKED_COLOUR)),
            Some((&pair.plain, PLAIN_COLOUR)),
        ];
        #[allow(clippy::cast_precision_loss)] // three bars at most
        let middle = x + bars.iter().flatten().count() as f64 * bar_width / 2.0;
        for (slot, (run, colour)) in bars.into_iter().flatten().enumerate() {
            #[allow(clippy::cast_precision_loss)] // three bars
            let offset = slot as f64 * bar_width;
            let v = value(run);
            let h = v / scale_max * height;
            let _ = writeln!(
                svg,
                "<rect x=\"{:.1}\" y=\"{:.1}\" width=\"{bar_width:.1}\" height=\"{h:.1}\" \
                 fill=\"{colour}\"/><text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\" \
                 font-size=\"10\">{v:.0}</text>",
                x + offset,
                base - h,
                x + offset + bar_width / 2.0,
                base - h - 3.0
            );
        }
        let _ = writeln!(
            svg,
            "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{} {}</text>\
             <text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\" fill=\"#555\">{} ({:.2}×)</text>",
            middle,
            base + 16.0,
            pair.scenario.method,
            xml_escape(pair.scenario.path),
            middle,
            base + 31.0,
            pair.transport.name(),
            value(&pair.session) / value(&pair.plain)
        );
    }
    let _ = writeln!(
        svg,
        "<line x1=\"{left}\" x2=\"{right}\" y1=\"{base}\" y2=\"{base}\" stroke=\"black\"/>"
    );
    let legend_x = SVG_WIDTH - 400.0;
    for (offset, label, colour) in [
        (0.0, "session router", SESSION_COLOUR),
        (120.0, "locked (strict mode)", LOCKED_COLOUR),
        (280.0, "plain axum", PLAIN_COLOUR),
    ] {
        let _ = writeln!(
            svg,
            "<rect x=\"{:.1}\" y=\"{:.1}\" width=\"12\" height=\"12\" fill=\"{colour}\"/>\
             <text x=\"{:.1}\" y=\"{:.1}\">{label}</text>",
            legend_x + offset,
            y0 + 10.0,
            legend_x + offset + 16.0,
            y0 + 20.0
        );
    }
}

const SESSION_COLOUR: &str = "#d9534f";
const LOCKED_COLOUR: &str = "#f0ad4e";
const PLAIN_COLOUR: &str = "#5b8def";

/// The smallest round number (1, 1.5, 2, 2.5, 3, 4, 5, 6 or 8 times a power of ten) that is
/// at least `value`: the top of a chart's scale.
fn nice_ceiling(value: f64) -> f64 {
    if value <= 0.0 || !value.is_finite() {
        return 1.0;
    }
    let magnitude = 10_f64.powf(value.log10().floor());
    [1.0, 1.5, 2.0, 2.5, 3.0, 4.0, 5.0, 6.0, 8.0, 10.0]
        .into_iter()
        .map(|step| step * magnitude)
        .find(|&candidate| candidate >= value)
        .unwrap_or(10.0 * magnitude)
}

fn xml_escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use super::{json_number, nice_ceiling};

    #[test]
    fn reads_numbers_from_flat_json() {
        let line = r#"{"requests":10,"rps":2.5,"p99_us":7,"p999_us":9,"total_requests":12}"#;
        assert_eq!(json_number(line, "rps"), Some(2.5));
        assert_eq!(json_number(line, "p99_us"), Some(7.0));
        assert_eq!(json_number(line, "requests"), Some(10.0));
        assert_eq!(json_number(line, "total_requests"), Some(12.0));
        assert_eq!(json_number(line, "missing"), None);
    }

    #[test]
    fn rounds_chart_scales_up_to_a_round_number() {
        assert!((nice_ceiling(3_400.0) - 4_000.0).abs() < 1e-9);
        assert!((nice_ceiling(124_522.0) - 150_000.0).abs() < 1e-9);
        assert!((nice_ceiling(8_100.0) - 10_000.0).abs() < 1e-9);
        assert!((nice_ceiling(100.0) - 100.0).abs() < 1e-9);
    }
}
