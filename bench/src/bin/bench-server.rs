//! The benchmark's server: the session stack, in its default and its strict (locking) mode,
//! and plain axum, side by side in one process.
//!
//! Three Tokio runtimes, each on its own OS thread with its own named worker threads, serve
//! three loopback ports:
//!
//! - `session-*` threads: the four routes behind
//!   `SessionLayer::new(MemcacheSessionStorage::new(MEMCACHE_SERVER, defaults), cookie)`;
//! - `locked-*` threads: the same four routes behind the same stack with
//!   `MemcacheSessionStorageOptions::default().locking(true)` (a per-session lock taken on
//!   read, released after the save);
//! - `plain-*` threads: the same four routes, same bodies, without any session layer.
//!
//! Routes: `GET /plain` (never extracts `Session`), `GET /read` (reads a value),
//! `GET /write` (increments a counter), `POST /login` (`regenerate_id(true)` and a value).
//! Both ports also serve, outside the session layer, `GET /__stats` (JSON: the CPU time of
//! that port's runtime threads, and the process's `VmHWM`/`VmRSS`) and `POST /__reset-peak`
//! (resets `VmHWM` to the current RSS, so that each run measures its own peak).
//!
//! Prints `session http://...`, `locked http://...` and `plain http://...` on stdout once all
//! three listen, then serves until killed. `MEMCACHE_SERVER` (`host:port` or `unix:///path`) is required.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::mpsc;

use axum::Router;
use axum::routing::{get, post};
use axum_session_memcache::{
    MemcacheSessionStorage, MemcacheSessionStorageOptions, Session, SessionCookie, SessionError,
    SessionLayer,
};
use tokio::net::TcpListener;

/// Signs the benchmark's cookies; the value does not matter, its length is realistic.
const SECRET: &str = "bench-secret-0123456789abcdef0123456789abcdef";

/// Worker threads per runtime: the machine has two cores, shared with the load generator
/// and memcached.
const WORKERS: usize = 1;

fn main() -> ExitCode {
    let Ok(server) = std::env::var("MEMCACHE_SERVER") else {
        eprintln!("bench-server: set MEMCACHE_SERVER to host:port or unix:///path");
        return ExitCode::FAILURE;
    };
    let (ready, addresses) = mpsc::channel();
    let mut threads = Vec::new();
    for flavour in Flavour::ALL {
        let ready = ready.clone();
        let server = server.clone();
        let thread = std::thread::Builder::new()
            .name(format!("{}main", flavour.prefix()))
            .spawn(move || serve(flavour, &server, &ready));
        match thread {
            Ok(thread) => threads.push(thread),
            Err(error) => {
                eprintln!("bench-server: cannot start a thread: {error}");
                return ExitCode::FAILURE;
            }
        }
    }
    drop(ready);
    let mut urls = Vec::new();
    for _ in Flavour::ALL {
        match addresses.recv() {
            Ok(Ok((flavour, address))) => urls.push((flavour, address)),
            Ok(Err(error)) => {
                eprintln!("bench-server: {error}");
                return ExitCode::FAILURE;
            }
            Err(_) => {
                eprintln!("bench-server: a runtime stopped before listening");
                return ExitCode::FAILURE;
            }
        }
    }
    urls.sort_by_key(|(flavour, _)| *flavour);
    for (flavour, address) in urls {
        println!("{} http://{address}", flavour.name());
    }
    for thread in threads {
        let _ = thread.join();
    }
    ExitCode::FAILURE
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Flavour {
    Session,
    Locked,
    Plain,
}

impl Flavour {
    const ALL: [Self; 3] = [Self::Session, Self::Locked, Self::Plain];

    fn name(self) -> &'static str {
        match self {
            Self::Session => "session",
            Self::Locked => "locked",
            Self::Plain => "plain",
        }
    }

    /// The prefix of this runtime's thread names (at most 15 bytes in all, a Linux limit).
    fn prefix(self) -> &'static str {
        match self {
            Self::Session => "session-",
            Self::Locked => "locked-",
            Self::Plain => "plain-",
        }
    }
}

type Ready = mpsc::Sender<Result<(Flavour, SocketAddr), String>>;

/// Runs one runtime and its server on the calling thread; reports the address or the error.
fn serve(flavour: Flavour, server: &str, ready: &Ready) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(WORKERS)
        .thread_name(format!("{}worker", flavour.prefix()))
        .enable_all()
        .build();
    let runtime = match runtime {
        Ok(runtime) => runtime,
        Err(error) => {
            let _ = ready.send(Err(format!(
                "cannot start the {flavour:?} runtime: {error}"
            )));
            return;
        }
    };
    let started = runtime.block_on(async {
        let router = match flavour {
            Flavour::Session => session_router(server, false)?,
            Flavour::Locked => session_router(server, true)?,
            Flavour::Plain => plain_router(),
        };
        let prefix = flavour.prefix();
        let router = router
            .route("/__stats", get(move || async move { stats(prefix) }))
            .route("/__reset-peak", post(reset_peak));
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(|error| format!("cannot listen: {error}"))?;
        let address = listener
            .local_addr()
            .map_err(|error| format!("no local address: {error}"))?;
        // Spawned, so that accepting runs on the named worker too.
        let serving = tokio::spawn(async move { axum::serve(listener, router).await });
        Ok::<_, String>((address, serving))
    });
    match started {
        Ok((address, serving)) => {
            let _ = ready.send(Ok((flavour, address)));
            if let Ok(Err(error)) = runtime.block_on(serving) {
                eprintln!("bench-server: {flavour:?} server failed: {error}");
            }
        }
        Err(error) => {
            let _ = ready.send(Err(error));
        }
    }
}

/// The session routes; with `locking`, over a storage in strict mode.
fn session_router(server: &str, locking: bool) -> Result<Router, String> {
    let options = MemcacheSessionStorageOptions::default().locking(locking);
    let storage = MemcacheSessionStorage::new(server, options)
        .map_err(|error| format!("cannot configure memcached {server}: {error}"))?;
    let cookie = SessionCookie::new([SECRET]).map_err(|error| error.to_string())?;
    Ok(Router::new()
        .route("/plain", get(plain))
        .route("/read", get(session_read))
        .route("/write", get(session_write))
        .route("/login", post(session_login))
        .layer(SessionLayer::new(storage, cookie)))
}

fn plain_router() -> Router {
    Router::new()
        .route("/plain", get(plain))
        .route("/read", get(plain_read))
        .route("/write", get(plain_write))
        .route("/login", post(plain_login))
}

async fn plain() -> &'static str {
    "hello, world"
}

async fn session_read(session: Session) -> Result<String, SessionError> {
    let count = session.get::<u64>("count")?.unwrap_or(0);
    Ok(format!("count {count}"))
}

async fn session_write(session: Session) -> Result<String, SessionError> {
    let count = session.get::<u64>("count")?.unwrap_or(0) + 1;
    session.insert("count", count)?;
    Ok(format!("count {count}"))
}

async fn session_login(session: Session) -> Result<&'static str, SessionError> {
    session.regenerate_id(true)?;
    session.insert("user", "bench-user")?;
    Ok("logged in")
}

/// The plain twins build the same bodies, from a value that is not stored anywhere.
async fn plain_read() -> String {
    format!("count {}", std::hint::black_box(0_u64))
}

async fn plain_write() -> String {
    format!("count {}", std::hint::black_box(0_u64) + 1)
}

async fn plain_login() -> &'static str {
    "logged in"
}

fn stats(prefix: &'static str) -> String {
    let cpu = bench::threads_cpu(prefix);
    let (peak_kib, rss_kib) = bench::process_memory_kib();
    serde_json::json!({
        "prefix": prefix,
        "cpu_seconds": cpu.user_seconds + cpu.system_seconds,
        "cpu_user_seconds": cpu.user_seconds,
        "cpu_system_seconds": cpu.system_seconds,
        "threads": cpu.threads,
        "vm_hwm_kib": peak_kib,
        "vm_rss_kib": rss_kib,
    })
    .to_string()
}

async fn reset_peak() -> (axum::http::StatusCode, &'static str) {
    if bench::reset_peak_memory() {
        (axum::http::StatusCode::OK, "reset")
    } else {
        (
            axum::http::StatusCode::NOT_IMPLEMENTED,
            "cannot reset VmHWM",
        )
    }
}
