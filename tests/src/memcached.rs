//! A real memcached server, started per test.
//!
//! [`Memcached::start`] spawns `memcached -l 127.0.0.1 -p -1 -U 0` with
//! `MEMCACHED_PORT_FILENAME` pointing into a private temporary directory, so
//! memcached binds a free port itself (no reservation race) and reports it in
//! that file. [`Memcached::builder`] adds extra arguments or switches to a Unix
//! socket. The server is killed and its directory removed on drop; a panicking
//! test also prints the server log to stderr.
//!
//! Every helper is blocking and std-only; every network operation has a
//! timeout, and every wait is bounded by [`STARTUP_TIMEOUT`].
//!
//! The binary is `memcached` from `PATH` unless `MEMCACHED_BIN` (or
//! [`MemcachedBuilder::binary`]) names another one.

use std::collections::HashMap;
use std::ffi::OsString;
use std::fs::{self, DirBuilder, OpenOptions};
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::os::unix::fs::DirBuilderExt;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Upper bound for memcached to start (or restart) and accept connections.
pub const STARTUP_TIMEOUT: Duration = Duration::from_secs(10);

/// Connect, read and write timeout of the blocking helpers ([`Memcached::stats`],
/// [`Memcached::flush_all`]).
pub const IO_TIMEOUT: Duration = Duration::from_secs(5);

/// Environment variable that overrides the memcached binary.
pub const BINARY_ENV: &str = "MEMCACHED_BIN";

/// Timeout of a single readiness probe while waiting for the server.
const PROBE_TIMEOUT: Duration = Duration::from_millis(200);

/// Pause between readiness probes.
const POLL_INTERVAL: Duration = Duration::from_millis(10);

/// Environment variable memcached reads to report the ports it bound.
const PORT_FILE_ENV: &str = "MEMCACHED_PORT_FILENAME";

/// Largest `slab_chunk_max` memcached accepts by default (half a slab page).
const DEFAULT_SLAB_CHUNK_MAX: u32 = 512 * 1024;

/// How to get memcached onto the machine.
const INSTALL_HINT: &str = "install it with `apt-get install -y memcached` \
     (or `cargo xtask memcached`), or set MEMCACHED_BIN to the binary's path";

/// A private directory under `/tmp`, removed on drop.
///
/// `/tmp` rather than `$TMPDIR` keeps Unix socket paths well under the
/// 108-byte `sun_path` limit.
#[derive(Debug)]
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> Self {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |elapsed| elapsed.subsec_nanos());
        for _ in 0..100 {
            let path = PathBuf::from(format!(
                "/tmp/itmc-{}-{}-{nanos:08x}",
                std::process::id(),
                COUNTER.fetch_add(1, Ordering::Relaxed),
            ));
            match DirBuilder::new().mode(0o700).create(&path) {
                Ok(()) => return Self(path),
                Err(error) if error.kind() == io::ErrorKind::AlreadyExists => {}
                Err(error) => panic!("cannot create {}: {error}", path.display()),
            }
        }
        panic!("cannot create a unique memcached test directory under /tmp");
    }

    fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// Options for starting a [`Memcached`]; see [`Memcached::builder`].
#[derive(Debug, Clone, Default)]
pub struct MemcachedBuilder {
    binary: Option<PathBuf>,
    args: Vec<OsString>,
    unix_socket: bool,
}

impl MemcachedBuilder {
    /// Appends one extra command-line argument, e.g. `-m` then `64`.
    ///
    /// Extra arguments come after the ones this module passes (`-U 0`, the
    /// listener and, as root, `-u root`). Do not pass `-p`, `-l` or `-s`.
    #[must_use]
    pub fn arg(mut self, arg: impl Into<OsString>) -> Self {
        self.args.push(arg.into());
        self
    }

    /// Appends extra command-line arguments, e.g. `["-m", "64"]`.
    ///
    /// See [`MemcachedBuilder::arg`] for restrictions.
    #[must_use]
    pub fn args<I>(mut self, args: I) -> Self
    where
        I: IntoIterator,
        I::Item: Into<OsString>,
    {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }

    /// Limits items to `bytes` (`-I bytes`).
    ///
    /// memcached refuses `-I` below its default slab chunk size (512 KiB)
    /// unless `slab_chunk_max` is lowered too, and requires that chunk size
    /// to divide the 1 MiB slab page; this adds
    /// `-o slab_chunk_max=<largest power of two <= bytes>` when needed.
    /// memcached itself rejects `bytes < 1024`.
    #[must_use]
    pub fn item_size_max(self, bytes: u32) -> Self {
        let builder = self.arg("-I").arg(bytes.to_string());
        if bytes < DEFAULT_SLAB_CHUNK_MAX && bytes > 0 {
            let chunk = 1_u32 << bytes.ilog2();
            builder.arg("-o").arg(format!("slab_chunk_max={chunk}"))
        } else {
            builder
        }
    }

    /// Listens only on a Unix socket (`-s <tempdir>/memcached.sock -a 700`)
    /// instead of TCP; see [`Memcached::socket_path`].
    #[must_use]
    pub fn unix_socket(mut self) -> Self {
        self.unix_socket = true;
        self
    }

    /// Uses this memcached binary, overriding `MEMCACHED_BIN` and `PATH`.
    #[must_use]
    pub fn binary(mut self, path: impl Into<PathBuf>) -> Self {
        self.binary = Some(path.into());
        self
    }

    /// Starts memcached and waits until it accepts connections.
    ///
    /// # Panics
    ///
    /// If the binary is missing (the message says how to install it), if
    /// memcached exits during startup, or if it is not ready within
    /// [`STARTUP_TIMEOUT`]; the message then includes the server log.
    pub fn start(self) -> Memcached {
        let dir = TempDir::new();
        let endpoint = if self.unix_socket {
            Endpoint::Unix(dir.path("memcached.sock"))
        } else {
            Endpoint::Tcp(None)
        };
        let binary = self
            .binary
            .map(PathBuf::into_os_string)
            .or_else(|| std::env::var_os(BINARY_ENV))
            .unwrap_or_else(|| "memcached".into());
        let mut server = Memcached {
            child: None,
            dir,
            binary,
            args: self.args,
            endpoint,
        };
        server.spawn();
        server
    }
}

/// Where the server listens.
#[derive(Debug, Clone)]
enum Endpoint {
    /// TCP on 127.0.0.1; `None` until memcached reports its chosen port.
    Tcp(Option<u16>),
    /// A Unix socket at this path.
    Unix(PathBuf),
}

/// A memcached process owned by a test, killed on drop.
#[derive(Debug)]
pub struct Memcached {
    child: Option<Child>,
    dir: TempDir,
    binary: OsString,
    args: Vec<OsString>,
    endpoint: Endpoint,
}

impl Memcached {
    /// Starts memcached on a free 127.0.0.1 TCP port with default options.
    ///
    /// # Panics
    ///
    /// As [`MemcachedBuilder::start`].
    pub fn start() -> Self {
        Self::builder().start()
    }

    /// Options for a server with extra arguments or a Unix socket.
    pub fn builder() -> MemcachedBuilder {
        MemcachedBuilder::default()
    }

    /// The TCP address, `127.0.0.1:PORT`.
    ///
    /// # Panics
    ///
    /// In Unix socket mode.
    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port())
    }

    /// The TCP port memcached listens on; it stays the same across
    /// [`Memcached::restart`].
    ///
    /// # Panics
    ///
    /// In Unix socket mode.
    pub fn port(&self) -> u16 {
        match &self.endpoint {
            Endpoint::Tcp(Some(port)) => *port,
            Endpoint::Tcp(None) => unreachable!("the port is known once started"),
            Endpoint::Unix(path) => panic!(
                "memcached listens on the Unix socket {} and has no TCP port",
                path.display()
            ),
        }
    }

    /// The Unix socket path in Unix socket mode, `None` for TCP.
    pub fn socket_path(&self) -> Option<PathBuf> {
        match &self.endpoint {
            Endpoint::Tcp(_) => None,
            Endpoint::Unix(path) => Some(path.clone()),
        }
    }

    /// Whether the process is running (started and not stopped).
    pub fn is_running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|child| matches!(child.try_wait(), Ok(None)))
    }

    /// Kills memcached and waits for it to exit; the port (or socket) then
    /// refuses connections. Does nothing if already stopped.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Stops memcached if needed and starts it again on the same port (passed
    /// explicitly as `-p PORT`) or socket, with the same arguments, waiting
    /// until it accepts connections. The cache starts empty.
    ///
    /// # Panics
    ///
    /// If memcached exits (for example because another process took the port
    /// meanwhile) or is not ready within [`STARTUP_TIMEOUT`]; the message
    /// includes the server log.
    pub fn restart(&mut self) {
        self.stop();
        self.spawn();
    }

    /// Everything memcached has written to stdout and stderr so far, across
    /// restarts, preceded by the command line of each start.
    pub fn log(&self) -> String {
        fs::read_to_string(self.dir.path("server.log")).unwrap_or_default()
    }

    /// The `stats` command's output, name to value (e.g. `pid`, `cmd_get`,
    /// `curr_items`). Blocking; the request uses its own connection, which
    /// itself counts in `curr_connections`.
    ///
    /// # Panics
    ///
    /// If the server cannot be reached, does not answer within
    /// [`IO_TIMEOUT`] or answers something other than `STAT` lines and `END`.
    pub fn stats(&self) -> HashMap<String, String> {
        let mut reader = self.request(b"stats\r\n");
        let mut stats = HashMap::new();
        loop {
            let line = read_line(&mut reader, "stats");
            if line == "END" {
                return stats;
            }
            let Some(stat) = line.strip_prefix("STAT ") else {
                panic!("unexpected line in the memcached stats reply: {line:?}");
            };
            let (name, value) = stat.split_once(' ').unwrap_or((stat, ""));
            stats.insert(name.to_owned(), value.to_owned());
        }
    }

    /// One integer statistic, e.g. `cmd_get`, `cmd_set`, `cmd_touch`,
    /// `delete_hits`, `get_hits`, `curr_items`, `curr_connections`.
    ///
    /// # Panics
    ///
    /// As [`Memcached::stats`], and if the statistic is missing or not an
    /// unsigned integer.
    pub fn stat(&self, name: &str) -> u64 {
        let stats = self.stats();
        let Some(value) = stats.get(name) else {
            let mut names: Vec<&str> = stats.keys().map(String::as_str).collect();
            names.sort_unstable();
            panic!("memcached has no stat {name:?}; it has {names:?}");
        };
        value
            .parse()
            .unwrap_or_else(|error| panic!("memcached stat {name} = {value:?}: {error}"))
    }

    /// Removes every item (`flush_all`). Blocking.
    ///
    /// # Panics
    ///
    /// If the server cannot be reached, does not answer within
    /// [`IO_TIMEOUT`] or answers something other than `OK`.
    pub fn flush_all(&self) {
        let mut reader = self.request(b"flush_all\r\n");
        let line = read_line(&mut reader, "flush_all");
        assert_eq!(line, "OK", "unexpected memcached reply to flush_all");
    }

    /// Opens a connection with [`IO_TIMEOUT`] timeouts and sends `request`.
    fn request(&self, request: &[u8]) -> BufReader<Stream> {
        let mut stream = connect(&self.endpoint, IO_TIMEOUT)
            .unwrap_or_else(|error| panic!("cannot connect to memcached: {error}"));
        stream
            .write_all(request)
            .unwrap_or_else(|error| panic!("cannot send a request to memcached: {error}"));
        BufReader::new(stream)
    }

    /// Starts the process on `self.endpoint` and waits until it is ready.
    fn spawn(&mut self) {
        assert!(self.child.is_none(), "memcached is already running");
        let port_file = self.dir.path("ports");
        let mut command = Command::new(&self.binary);
        command.args(["-U", "0"]);
        if running_as_root() {
            // memcached refuses to run as root without -u. Another user
            // (e.g. nobody) would lose access to the 0700 directory and
            // memcached could then not write its port file.
            command.args(["-u", "root"]);
        }
        match &self.endpoint {
            Endpoint::Tcp(port) => {
                let _ = fs::remove_file(&port_file);
                let port = port.map_or_else(|| "-1".to_owned(), |port| port.to_string());
                command.args(["-l", "127.0.0.1", "-p", &port]);
                command.env(PORT_FILE_ENV, &port_file);
            }
            Endpoint::Unix(path) => {
                let _ = fs::remove_file(path);
                command.arg("-s").arg(path).args(["-a", "700"]);
            }
        }
        command.args(&self.args);

        let log_path = self.dir.path("server.log");
        let mut log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .unwrap_or_else(|error| panic!("cannot open {}: {error}", log_path.display()));
        let _ = writeln!(log, "--- starting {command:?}");
        let stdout = log
            .try_clone()
            .unwrap_or_else(|error| panic!("cannot duplicate the log file handle: {error}"));
        let child = command
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(log)
            .spawn()
            .unwrap_or_else(|error| {
                let binary = Path::new(&self.binary).display();
                let problem = if error.kind() == io::ErrorKind::NotFound {
                    "not found"
                } else {
                    "cannot be started"
                };
                panic!("memcached binary `{binary}` {problem} ({error}); {INSTALL_HINT}");
            });
        self.child = Some(child);

        if let Endpoint::Tcp(None) = self.endpoint {
            let port = self.wait_for("memcached to write its port file", || {
                read_port_file(&port_file)
            });
            self.endpoint = Endpoint::Tcp(Some(port));
        }
        let endpoint = self.endpoint.clone();
        self.wait_for("memcached to answer `version`", || probe_version(&endpoint));
    }

    /// Polls `probe` until it returns a value, memcached exits, or
    /// [`STARTUP_TIMEOUT`] passes; the last two panic with the server log.
    fn wait_for<T>(&mut self, description: &str, mut probe: impl FnMut() -> Option<T>) -> T {
        let deadline = Instant::now() + STARTUP_TIMEOUT;
        loop {
            let child = self.child.as_mut().expect("memcached was spawned");
            match child.try_wait() {
                Ok(Some(status)) => {
                    self.child = None;
                    panic!(
                        "memcached exited with {status} while waiting for {description}; \
                         server log:\n{}",
                        self.log()
                    );
                }
                Ok(None) => {}
                Err(error) => panic!("cannot poll the memcached process: {error}"),
            }
            if let Some(value) = probe() {
                return value;
            }
            if Instant::now() >= deadline {
                self.stop();
                panic!(
                    "timed out after {STARTUP_TIMEOUT:?} waiting for {description}; \
                     server log:\n{}",
                    self.log()
                );
            }
            std::thread::sleep(POLL_INTERVAL);
        }
    }
}

impl Drop for Memcached {
    fn drop(&mut self) {
        self.stop();
        if std::thread::panicking() {
            eprintln!("memcached log ({}):\n{}", self.dir.0.display(), self.log());
        }
    }
}

/// Whether this process runs as root, from `id -u` (std has no `getuid`).
fn running_as_root() -> bool {
    static ROOT: OnceLock<bool> = OnceLock::new();
    *ROOT.get_or_init(|| {
        let output = Command::new("id")
            .arg("-u")
            .output()
            .unwrap_or_else(|error| panic!("cannot run `id -u`: {error}"));
        assert!(output.status.success(), "`id -u` failed: {output:?}");
        String::from_utf8_lossy(&output.stdout).trim() == "0"
    })
}

/// The TCP port from memcached's port file (`TCP INET: 41234` lines), once
/// the file exists. memcached writes it under a `.lck` name and renames it,
/// so a present file is complete.
fn read_port_file(path: &Path) -> Option<u16> {
    fs::read_to_string(path)
        .ok()?
        .lines()
        .find_map(|line| line.strip_prefix("TCP INET: ")?.trim().parse().ok())
}

/// The version memcached reports, if it answers within [`PROBE_TIMEOUT`].
fn probe_version(endpoint: &Endpoint) -> Option<String> {
    let mut stream = connect(endpoint, PROBE_TIMEOUT).ok()?;
    stream.write_all(b"version\r\n").ok()?;
    let mut line = String::new();
    BufReader::new(stream).read_line(&mut line).ok()?;
    Some(line.strip_prefix("VERSION ")?.trim().to_owned())
}

/// A connection to either kind of endpoint.
enum Stream {
    Tcp(TcpStream),
    Unix(UnixStream),
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Self::Tcp(stream) => stream.read(buf),
            Self::Unix(stream) => stream.read(buf),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Self::Tcp(stream) => stream.write(buf),
            Self::Unix(stream) => stream.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Self::Tcp(stream) => stream.flush(),
            Self::Unix(stream) => stream.flush(),
        }
    }
}

/// Connects with `timeout` for the TCP connect and for every read and write.
///
/// A Unix socket connect has no timeout in std; it completes at once unless
/// the listen backlog is full.
fn connect(endpoint: &Endpoint, timeout: Duration) -> io::Result<Stream> {
    match endpoint {
        Endpoint::Tcp(port) => {
            let port = port.ok_or_else(|| io::Error::other("the TCP port is not known yet"))?;
            let address = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
            let stream = TcpStream::connect_timeout(&address, timeout)?;
            stream.set_read_timeout(Some(timeout))?;
            stream.set_write_timeout(Some(timeout))?;
            Ok(Stream::Tcp(stream))
        }
        Endpoint::Unix(path) => {
            let stream = UnixStream::connect(path)?;
            stream.set_read_timeout(Some(timeout))?;
            stream.set_write_timeout(Some(timeout))?;
            Ok(Stream::Unix(stream))
        }
    }
}

/// One reply line without its `\r\n`; panics on errors, timeouts and EOF.
fn read_line(reader: &mut impl BufRead, command: &str) -> String {
    let mut line = String::new();
    match reader.read_line(&mut line) {
        Ok(0) => panic!("memcached closed the connection during `{command}`"),
        Ok(_) => line.trim_end_matches(['\r', '\n']).to_owned(),
        Err(error) => panic!("cannot read the memcached reply to `{command}`: {error}"),
    }
}
