//! The benchmark's load generator: closed-loop HTTP/1.1 load with one cookie jar per
//! connection, printing one JSON line of results.
//!
//! ```text
//! loadgen URL PATH [--method GET] [--connections 32] [--duration 5] [--warmup 1]
//!                  [--setup PATH] [--sync]
//! ```
//!
//! Each connection is its own keep-alive HTTP/1.1 connection that sends one request at a
//! time. The first response that sets a cookie gives the connection its cookie, and every
//! later request sends the latest value, so each connection is one session (for `/login`,
//! whose every response rotates the session id, the newest cookie is always sent).
//!
//! Why not `wrk`: wrk's Lua `response()` hook does not say which connection a response came
//! from, so it cannot keep one cookie per connection; all connections would share one session
//! (or none), which measures lock contention on one memcached key instead of the per-user
//! cost. This client also stays small and single-threaded, so that on a two-core machine it
//! takes as little CPU as possible from the server it measures.
//!
//! Phases: connect every connection (and send one `GET --setup PATH` on each, to obtain a
//! session before measuring read-only routes); with `--sync`, print `{"event":"ready"}` and
//! wait for a line on stdin (so that a driver can snapshot counters exactly here); then
//! `--warmup` seconds unrecorded, then `--duration` seconds recorded. Throughput and latency
//! count the responses that complete inside the recorded window; `total_requests` counts
//! every request after the setup phase, warm-up included, for per-request costs.

use std::collections::BTreeMap;
use std::io::{self, BufRead as _, Write as _};
use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

const USAGE: &str = "usage: loadgen URL PATH [--method GET] [--connections 32] [--duration 5] \
                     [--warmup 1] [--setup PATH] [--sync]";

/// Largest latency recorded, in microseconds.
const MAX_LATENCY_US: u64 = 60_000_000;

/// Longest wait for one response before the connection is counted as failed.
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(10);

fn main() -> ExitCode {
    let args = match Args::parse(std::env::args().skip(1)) {
        Ok(args) => args,
        Err(error) => {
            eprintln!("loadgen: {error}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("loadgen: {error}");
            ExitCode::FAILURE
        }
    }
}

#[derive(Debug)]
struct Args {
    address: SocketAddr,
    host: String,
    path: String,
    method: String,
    connections: usize,
    duration: Duration,
    warmup: Duration,
    setup: Option<String>,
    sync: bool,
}

impl Args {
    fn parse(mut args: impl Iterator<Item = String>) -> Result<Self, String> {
        let url = args.next().ok_or("missing URL")?;
        let path = args.next().ok_or("missing PATH")?;
        let host = url
            .strip_prefix("http://")
            .ok_or("only http:// URLs are supported")?
            .trim_end_matches('/')
            .to_owned();
        let address = host
            .parse()
            .map_err(|_| format!("URL host must be IP:PORT, got {host:?}"))?;
        let mut parsed = Self {
            address,
            host,
            path,
            method: "GET".to_owned(),
            connections: 32,
            duration: Duration::from_secs(5),
            warmup: Duration::from_secs(1),
            setup: None,
            sync: false,
        };
        while let Some(flag) = args.next() {
            let mut value = || args.next().ok_or(format!("{flag} needs a value"));
            match flag.as_str() {
                "--method" => parsed.method = value()?.to_ascii_uppercase(),
                "--connections" => {
                    parsed.connections = value()?
                        .parse()
                        .ok()
                        .filter(|&n| n > 0)
                        .ok_or("--connections must be a positive integer")?;
                }
                "--duration" => parsed.duration = seconds(&value()?)?,
                "--warmup" => parsed.warmup = seconds(&value()?)?,
                "--setup" => parsed.setup = Some(value()?),
                "--sync" => parsed.sync = true,
                other => return Err(format!("unknown argument {other:?}")),
            }
        }
        Ok(parsed)
    }
}

fn seconds(value: &str) -> Result<Duration, String> {
    value
        .trim_end_matches('s')
        .parse::<f64>()
        .ok()
        .filter(|s| s.is_finite() && *s >= 0.0)
        .map(Duration::from_secs_f64)
        .ok_or_else(|| format!("not a number of seconds: {value:?}"))
}

fn run(args: &Args) -> Result<(), String> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|error| format!("cannot start a runtime: {error}"))?;

    // Phase 1: connect, and obtain a session where asked.
    let mut connections = Vec::with_capacity(args.connections);
    runtime.block_on(async {
        for _ in 0..args.connections {
            let mut connection = Connection::new(args.address, &args.host);
            connection.connect().await?;
            if let Some(setup) = &args.setup {
                let response = connection
                    .send("GET", setup)
                    .await
                    .map_err(|error| format!("setup request GET {setup} failed: {error}"))?;
                if !(200..300).contains(&response.status) {
                    return Err(format!("setup request GET {setup} got {}", response.status));
                }
            }
            connections.push(connection);
        }
        Ok::<_, String>(())
    })?;

    if args.sync {
        println!(r#"{{"event":"ready"}}"#);
        io::stdout().flush().map_err(|error| error.to_string())?;
        let mut line = String::new();
        io::stdin()
            .lock()
            .read_line(&mut line)
            .map_err(|error| format!("cannot read stdin: {error}"))?;
    }

    // Phase 2: warm-up, then the recorded window.
    let cpu_before = bench::process_cpu_seconds();
    let started = Instant::now();
    let plan = Plan {
        method: args.method.clone(),
        path: args.path.clone(),
        recording_from: started + args.warmup,
        until: started + args.warmup + args.duration,
    };
    let tallies = runtime.block_on(async {
        let plan = std::sync::Arc::new(plan);
        let tasks: Vec<_> = connections
            .into_iter()
            .map(|connection| tokio::spawn(drive(connection, std::sync::Arc::clone(&plan))))
            .collect();
        let mut total = Tally::new();
        for task in tasks {
            let tally = task
                .await
                .map_err(|error| format!("a connection task failed: {error}"))?;
            total.merge(&tally)?;
        }
        Ok::<_, String>(total)
    })?;
    let cpu_seconds = bench::process_cpu_seconds() - cpu_before;

    print_report(args, &tallies, cpu_seconds);
    Ok(())
}

fn print_report(args: &Args, tally: &Tally, cpu_seconds: f64) {
    let window = args.duration.as_secs_f64();
    #[allow(clippy::cast_precision_loss)] // request counts stay far below 2^52
    let rps = if window > 0.0 {
        tally.recorded as f64 / window
    } else {
        0.0
    };
    let latency = &tally.latency;
    let statuses: serde_json::Map<String, serde_json::Value> = tally
        .statuses
        .iter()
        .map(|(status, count)| (status.to_string(), (*count).into()))
        .collect();
    let report = serde_json::json!({
        "url": format!("http://{}", args.host),
        "method": args.method,
        "path": args.path,
        "connections": args.connections,
        "warmup_s": args.warmup.as_secs_f64(),
        "duration_s": window,
        "requests": tally.recorded,
        "rps": rps,
        "p50_us": latency.value_at_quantile(0.50),
        "p90_us": latency.value_at_quantile(0.90),
        "p99_us": latency.value_at_quantile(0.99),
        "p999_us": latency.value_at_quantile(0.999),
        "max_us": latency.max(),
        "mean_us": latency.mean(),
        "total_requests": tally.total,
        "non_2xx": tally.non_2xx,
        "errors": tally.errors,
        "first_error": tally.first_error,
        "statuses": statuses,
        "cookie_changes": tally.cookie_changes,
        "loadgen_cpu_s": cpu_seconds,
    });
    println!("{report}");
}

/// What every connection does.
struct Plan {
    method: String,
    path: String,
    recording_from: Instant,
    until: Instant,
}

/// What one connection counted.
struct Tally {
    latency: Histogram<u64>,
    /// Responses completed inside the recorded window.
    recorded: u64,
    /// Requests sent after the setup phase, answered or failed.
    total: u64,
    non_2xx: u64,
    errors: u64,
    first_error: Option<String>,
    statuses: BTreeMap<u16, u64>,
    cookie_changes: u64,
}

impl Tally {
    fn new() -> Self {
        Self {
            latency: Histogram::new_with_bounds(1, MAX_LATENCY_US, 3)
                .expect("valid histogram bounds"),
            recorded: 0,
            total: 0,
            non_2xx: 0,
            errors: 0,
            first_error: None,
            statuses: BTreeMap::new(),
            cookie_changes: 0,
        }
    }

    fn merge(&mut self, other: &Self) -> Result<(), String> {
        self.latency
            .add(&other.latency)
            .map_err(|error| format!("cannot merge histograms: {error:?}"))?;
        self.recorded += other.recorded;
        self.total += other.total;
        self.non_2xx += other.non_2xx;
        self.errors += other.errors;
        if self.first_error.is_none() {
            self.first_error.clone_from(&other.first_error);
        }
        for (status, count) in &other.statuses {
            *self.statuses.entry(*status).or_default() += count;
        }
        self.cookie_changes += other.cookie_changes;
        Ok(())
    }
}

/// Sends requests one after the other until the end of the plan.
async fn drive(mut connection: Connection, plan: std::sync::Arc<Plan>) -> Tally {
    let mut tally = Tally::new();
    let cookie_changes_before = connection.cookie_changes;
    loop {
        let start = Instant::now();
        if start >= plan.until {
            break;
        }
        tally.total += 1;
        let sent =
            tokio::time::timeout(RESPONSE_TIMEOUT, connection.send(&plan.method, &plan.path))
                .await
                .unwrap_or_else(|_| Err(io::Error::new(io::ErrorKind::TimedOut, "no response")));
        match sent {
            Ok(response) => {
                let done = Instant::now();
                *tally.statuses.entry(response.status).or_default() += 1;
                if !(200..300).contains(&response.status) {
                    tally.non_2xx += 1;
                }
                if done >= plan.recording_from && done <= plan.until {
                    tally.recorded += 1;
                    let micros = u64::try_from(done.duration_since(start).as_micros())
                        .unwrap_or(MAX_LATENCY_US);
                    tally.latency.saturating_record(micros.max(1));
                }
            }
            Err(error) => {
                tally.errors += 1;
                if tally.first_error.is_none() {
                    tally.first_error = Some(error.to_string());
                }
                connection.stream = None;
                // Do not spin on a server that refuses: pause, then reconnect on next send.
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    }
    tally.cookie_changes = connection.cookie_changes - cookie_changes_before;
    tally
}

/// One keep-alive HTTP/1.1 connection and its cookie jar.
struct Connection {
    address: SocketAddr,
    host: String,
    stream: Option<TcpStream>,
    /// `(name, value)` of every cookie the server set and did not expire.
    cookies: Vec<(String, String)>,
    cookie_changes: u64,
    request: Vec<u8>,
    buffer: Vec<u8>,
}

/// The parts of a response the benchmark needs.
struct Response {
    status: u16,
}

/// How the body of a response is delimited.
enum Framing {
    Length(usize),
    Chunked,
    UntilClose,
}

impl Connection {
    fn new(address: SocketAddr, host: &str) -> Self {
        Self {
            address,
            host: host.to_owned(),
            stream: None,
            cookies: Vec::new(),
            cookie_changes: 0,
            request: Vec::with_capacity(512),
            buffer: Vec::with_capacity(8 * 1024),
        }
    }

    async fn connect(&mut self) -> Result<(), String> {
        let stream = TcpStream::connect(self.address)
            .await
            .map_err(|error| format!("cannot connect to {}: {error}", self.address))?;
        stream
            .set_nodelay(true)
            .map_err(|error| format!("cannot set TCP_NODELAY: {error}"))?;
        self.stream = Some(stream);
        self.buffer.clear();
        Ok(())
    }

    /// Sends one request (reconnecting first if the server closed the connection) and reads
    /// the whole response, keeping the cookies it sets.
    async fn send(&mut self, method: &str, path: &str) -> io::Result<Response> {
        if self.stream.is_none() {
            self.connect().await.map_err(io::Error::other)?;
        }
        self.request.clear();
        write!(
            self.request,
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nUser-Agent: loadgen\r\n",
            self.host
        )?;
        if !self.cookies.is_empty() {
            self.request.extend_from_slice(b"Cookie: ");
            for (index, (name, value)) in self.cookies.iter().enumerate() {
                if index > 0 {
                    self.request.extend_from_slice(b"; ");
                }
                write!(self.request, "{name}={value}")?;
            }
            self.request.extend_from_slice(b"\r\n");
        }
        if method != "GET" && method != "HEAD" {
            self.request.extend_from_slice(b"Content-Length: 0\r\n");
        }
        self.request.extend_from_slice(b"\r\n");

        let stream = self.stream.as_mut().expect("connected above");
        stream.write_all(&self.request).await?;
        let result = read_response(stream, &mut self.buffer, method == "HEAD").await;
        let (response, set_cookies, close) = match result {
            Ok(read) => read,
            Err(error) => {
                self.stream = None;
                return Err(error);
            }
        };
        for set_cookie in &set_cookies {
            self.keep_cookie(set_cookie);
        }
        if close {
            self.stream = None;
        }
        Ok(response)
    }

    /// Applies one `Set-Cookie` header to the jar.
    fn keep_cookie(&mut self, header: &str) {
        let mut parts = header.split(';');
        let Some((name, value)) = parts.next().and_then(|pair| pair.split_once('=')) else {
            return;
        };
        let (name, value) = (name.trim(), value.trim());
        let expired = parts.any(|attribute| {
            attribute.trim().split_once('=').is_some_and(|(key, age)| {
                key.trim().eq_ignore_ascii_case("max-age") && age.trim().starts_with(['0', '-'])
            })
        });
        let existing = self.cookies.iter().position(|(known, _)| known == name);
        match (existing, expired) {
            (Some(index), true) => {
                self.cookies.remove(index);
                self.cookie_changes += 1;
            }
            (Some(index), false) => {
                if self.cookies[index].1 != value {
                    value.clone_into(&mut self.cookies[index].1);
                    self.cookie_changes += 1;
                }
            }
            (None, false) => {
                self.cookies.push((name.to_owned(), value.to_owned()));
                self.cookie_changes += 1;
            }
            (None, true) => {}
        }
    }
}

/// Reads one response from `stream`. `buffer` may hold bytes already read; on return it holds
/// what followed the response (nothing, as requests are not pipelined). Returns the response,
/// its `Set-Cookie` values, and whether the server closes the connection after it.
async fn read_response(
    stream: &mut TcpStream,
    buffer: &mut Vec<u8>,
    head_request: bool,
) -> io::Result<(Response, Vec<String>, bool)> {
    // The head.
    let (head_len, status, framing, set_cookies, close) = loop {
        let mut headers = [httparse::EMPTY_HEADER; 64];
        let mut parsed = httparse::Response::new(&mut headers);
        match parsed.parse(buffer) {
            Ok(httparse::Status::Complete(head_len)) => {
                let status = parsed.code.unwrap_or(0);
                let mut length = None;
                let mut chunked = false;
                let mut close = parsed.version == Some(0);
                let mut set_cookies = Vec::new();
                for header in parsed.headers.iter() {
                    let value = String::from_utf8_lossy(header.value);
                    if header.name.eq_ignore_ascii_case("content-length") {
                        let parsed_length = value.trim().parse::<usize>().map_err(|_| {
                            io::Error::new(io::ErrorKind::InvalidData, "bad Content-Length")
                        })?;
                        length = Some(parsed_length);
                    } else if header.name.eq_ignore_ascii_case("transfer-encoding") {
                        chunked = value.to_ascii_lowercase().contains("chunked");
                    } else if header.name.eq_ignore_ascii_case("connection") {
                        let value = value.to_ascii_lowercase();
                        if value.contains("close") {
                            close = true;
                        } else if value.contains("keep-alive") {
                            close = false;
                        }
                    } else if header.name.eq_ignore_ascii_case("set-cookie") {
                        set_cookies.push(value.into_owned());
                    }
                }
                let framing = if head_request
                    || (100..200).contains(&status)
                    || status == 204
                    || status == 304
                {
                    Framing::Length(0)
                } else if chunked {
                    Framing::Chunked
                } else if let Some(length) = length {
                    Framing::Length(length)
                } else {
                    close = true;
                    Framing::UntilClose
                };
                break (head_len, status, framing, set_cookies, close);
            }
            Ok(httparse::Status::Partial) => {
                if read_more(stream, buffer).await? == 0 {
                    return Err(io::ErrorKind::UnexpectedEof.into());
                }
            }
            Err(error) => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("bad response head: {error}"),
                ));
            }
        }
    };

    // The body.
    let end = match framing {
        Framing::Length(length) => {
            let end = head_len + length;
            while buffer.len() < end {
                if read_more(stream, buffer).await? == 0 {
                    return Err(io::ErrorKind::UnexpectedEof.into());
                }
            }
            end
        }
        Framing::Chunked => loop {
            if let Some(end) = chunked_end(buffer, head_len)? {
                break end;
            }
            if read_more(stream, buffer).await? == 0 {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
        },
        Framing::UntilClose => {
            while read_more(stream, buffer).await? > 0 {}
            buffer.len()
        }
    };
    buffer.drain(..end);
    Ok((Response { status }, set_cookies, close))
}

async fn read_more(stream: &mut TcpStream, buffer: &mut Vec<u8>) -> io::Result<usize> {
    buffer.reserve(4096);
    stream.read_buf(buffer).await
}

/// Where a chunked body that starts at `start` ends, or `None` while it is incomplete.
fn chunked_end(buffer: &[u8], start: usize) -> io::Result<Option<usize>> {
    let bad = || io::Error::new(io::ErrorKind::InvalidData, "bad chunked body");
    let mut at = start;
    loop {
        let Some(line_len) = find_crlf(&buffer[at..]) else {
            return Ok(None);
        };
        let line = std::str::from_utf8(&buffer[at..at + line_len]).map_err(|_| bad())?;
        let size_text = line.split(';').next().unwrap_or("").trim();
        let size = usize::from_str_radix(size_text, 16).map_err(|_| bad())?;
        at += line_len + 2;
        if size == 0 {
            // Trailer fields, then an empty line.
            loop {
                let Some(trailer_len) = find_crlf(&buffer[at..]) else {
                    return Ok(None);
                };
                at += trailer_len + 2;
                if trailer_len == 0 {
                    return Ok(Some(at));
                }
            }
        }
        if buffer.len() < at + size + 2 {
            return Ok(None);
        }
        if &buffer[at + size..at + size + 2] != b"\r\n" {
            return Err(bad());
        }
        at += size + 2;
    }
}

fn find_crlf(bytes: &[u8]) -> Option<usize> {
    bytes.windows(2).position(|pair| pair == b"\r\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_end_of_a_chunked_body() {
        let body = b"HEAD5\r\nhello\r\n3;x=y\r\nabc\r\n0\r\nTrailer: 1\r\n\r\nNEXT";
        assert_eq!(chunked_end(body, 4).unwrap(), Some(body.len() - 4));
        assert_eq!(chunked_end(&body[..20], 4).unwrap(), None);
        assert!(chunked_end(b"zz\r\n", 0).is_err());
    }

    #[test]
    fn keeps_replaces_and_expires_cookies() {
        let mut connection = Connection::new("127.0.0.1:1".parse().unwrap(), "127.0.0.1:1");
        connection.keep_cookie("__session=abc.def; Path=/; HttpOnly; SameSite=Lax");
        assert_eq!(connection.cookies, [("__session".into(), "abc.def".into())]);
        connection.keep_cookie("__session=abc.def; Path=/");
        assert_eq!(connection.cookie_changes, 1);
        connection.keep_cookie("__session=new; Path=/");
        assert_eq!(connection.cookies[0].1, "new");
        connection.keep_cookie("__session=; Path=/; Max-Age=0");
        assert!(connection.cookies.is_empty());
        assert_eq!(connection.cookie_changes, 3);
    }
}
