//! Wire compatibility with the real Remix packages.
//!
//! Each test starts a real memcached, the Remix app in `tests/remix-interop`
//! (`@remix-run/session-storage-memcache`, `@remix-run/cookie`,
//! `@remix-run/session-middleware` on Node) and an in-process axum app with
//! `SessionLayer` and `MemcacheSessionStorage`. Both apps share the memcached,
//! the secret, the cookie name and the key prefix, expose the same JSON routes,
//! and are driven over real HTTP with one cookie jar carried between them by
//! hand, as a browser would carry it between two servers behind one load
//! balancer.
//!
//! Covered, in both directions: values written by one side read and updated by
//! the other, flash values read once, destroyed sessions, ids regenerated with
//! the old session deleted, the cookie format, and the raw memcached items
//! (key, flags and JSON text) each side writes for the same data.
//!
//! The Remix packages must be installed first: `npm ci --prefix
//! tests/remix-interop` (`cargo xtask ci` does it). Without them every test
//! fails, saying so.

use std::collections::HashMap;
use std::io::{self, BufRead as _, BufReader, Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, PoisonError, mpsc};
use std::thread;
use std::time::Duration;

use axum::Router;
use axum::extract::RawQuery;
use axum::http::StatusCode;
use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum_session_memcache::{
    MemcacheSessionStorageOptions, Session, SessionError, SessionLayer, memcache_key,
};
// Both apps sign with `app::SECRET` and name the cookie `app::COOKIE_NAME`
// (Remix's default name and ours).
use integration_tests::app::{
    self, COOKIE_NAME, CookieJar, Reply, SECRET, Server, cookie_pair, expires_cookie,
    percent_encode,
};
use integration_tests::memcached::Memcached;
use serde_json::{Value, json};
use session_core::SessionId;

/// Longest wait for one HTTP exchange or memcached command: well above the
/// Remix memcache client's own 5 s socket timeout, so reaching it means a hang.
const HANG_GUARD: Duration = Duration::from_secs(15);

/// Longest wait for the Node server to print its `listening on` line.
const NODE_STARTUP: Duration = Duration::from_secs(30);

/// What the Node server prints once it accepts connections.
const LISTENING_PREFIX: &str = "listening on http://";

/// How to install the Remix packages the Node server needs.
const NPM_HINT: &str = "run `npm ci --prefix tests/remix-interop` from the workspace root \
     (`cargo xtask ci` does it before the tests)";

// ---------------------------------------------------------------------------
// The Remix app: `node tests/remix-interop/server.mjs`, killed on drop.
// ---------------------------------------------------------------------------

/// `tests/remix-interop`, the Node project holding the Remix app.
fn interop_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("remix-interop")
}

/// A child process, killed on drop; a panicking test also prints its stderr.
struct NodeProcess {
    child: Child,
    stderr: Arc<Mutex<Vec<u8>>>,
    stderr_reader: Option<thread::JoinHandle<()>>,
}

impl NodeProcess {
    fn stderr(&self) -> String {
        let bytes = self.stderr.lock().unwrap_or_else(PoisonError::into_inner);
        String::from_utf8_lossy(&bytes).into_owned()
    }
}

impl Drop for NodeProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        // The pipe closes with the process, so the reader ends.
        if let Some(reader) = self.stderr_reader.take() {
            let _ = reader.join();
        }
        if thread::panicking() {
            eprintln!("remix-interop server stderr:\n{}", self.stderr());
        }
    }
}

/// The Remix app, listening on `127.0.0.1`.
struct RemixServer {
    /// Held to kill the process on drop.
    _process: NodeProcess,
    addr: SocketAddr,
}

impl RemixServer {
    /// Starts the Remix app on a free port, for the memcached at
    /// `memcache_server`, with Remix's default key prefix unless `key_prefix`
    /// is given, and waits for its `listening on` line.
    fn start(memcache_server: &str, key_prefix: Option<&str>) -> Self {
        let dir = interop_dir();
        let installed = dir.join("node_modules/@remix-run/session-storage-memcache/package.json");
        assert!(
            installed.is_file(),
            "the Remix packages are not installed ({} is missing): {NPM_HINT}",
            installed.display()
        );

        let mut command = Command::new("node");
        command
            .arg(dir.join("server.mjs"))
            .current_dir(&dir)
            .env("MEMCACHE_SERVER", memcache_server)
            .env("SESSION_SECRET", SECRET)
            .env("PORT", "0")
            .env_remove("SESSION_KEY_PREFIX")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if let Some(prefix) = key_prefix {
            command.env("SESSION_KEY_PREFIX", prefix);
        }
        let mut child = command.spawn().unwrap_or_else(|error| {
            panic!("cannot run `node` ({error}): install Node.js 20 or later")
        });

        let stderr = Arc::new(Mutex::new(Vec::new()));
        let mut stderr_pipe = child.stderr.take().expect("stderr is piped");
        let stderr_reader = {
            let stderr = Arc::clone(&stderr);
            thread::spawn(move || {
                let mut chunk = [0_u8; 4096];
                while let Ok(read @ 1..) = stderr_pipe.read(&mut chunk) {
                    stderr
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .extend_from_slice(&chunk[..read]);
                }
            })
        };
        let stdout = child.stdout.take().expect("stdout is piped");
        let process = NodeProcess {
            child,
            stderr,
            stderr_reader: Some(stderr_reader),
        };

        let (sender, receiver) = mpsc::channel();
        thread::spawn(move || {
            let mut reader = BufReader::new(stdout);
            let mut line = String::new();
            let _ = sender.send(reader.read_line(&mut line).map(|_| line));
            // Keep the pipe drained: the server must never block on stdout.
            let _ = io::copy(&mut reader, &mut io::sink());
        });
        let line = match receiver.recv_timeout(NODE_STARTUP) {
            Ok(Ok(line)) => line,
            Ok(Err(error)) => panic!("cannot read the Remix server's stdout: {error}"),
            Err(error) => panic!(
                "the Remix server printed no `listening on` line within {NODE_STARTUP:?} \
                 ({error}); stderr so far:\n{}",
                process.stderr()
            ),
        };
        let addr = line
            .strip_suffix('\n')
            .and_then(|line| line.strip_prefix(LISTENING_PREFIX))
            .and_then(|addr| addr.parse::<SocketAddr>().ok())
            .unwrap_or_else(|| {
                panic!(
                    "the Remix server's first line is {line:?}, not `{LISTENING_PREFIX}127.0.0.1:PORT`; \
                     stderr:\n{}",
                    process.stderr()
                )
            });
        assert!(
            addr.ip().is_loopback() && addr.port() != 0,
            "the Remix server listens on {addr}, not on a port of 127.0.0.1"
        );
        Self {
            _process: process,
            addr,
        }
    }
}

// ---------------------------------------------------------------------------
// The Rust app: the same routes behind `SessionLayer`, served on 127.0.0.1:0.
// ---------------------------------------------------------------------------

/// A handler's failure: a status and a message.
type Failure = (StatusCode, String);

/// Serves [`rust_routes`] behind a `SessionLayer` on the memcached at
/// `memcache_server`, with default storage options (but `key_prefix` when
/// given) and the default cookie ([`app::cookie`], signed with [`SECRET`]).
async fn start_rust_app(memcache_server: &str, key_prefix: Option<&str>) -> Server {
    let mut options = MemcacheSessionStorageOptions::default();
    if let Some(prefix) = key_prefix {
        options = options.key_prefix(prefix);
    }
    let storage = app::storage(memcache_server, options);
    Server::start(rust_routes().layer(SessionLayer::new(storage, app::cookie()))).await
}

/// The routes of `tests/remix-interop/server.mjs`, in axum:
///
/// | route | what the handler does | body |
/// | --- | --- | --- |
/// | `GET /get?key=K` | reads `K` | `{"value": <value or null>}` |
/// | `GET /size` | counts values and flash values | `{"size": n}` |
/// | `POST /set?key=K&value=JSON` | inserts `K` | `{"ok": true}` |
/// | `POST /flash?key=K&value=JSON` | flashes `K` | `{"ok": true}` |
/// | `POST /unset?key=K` | removes `K` | `{"ok": true}` |
/// | `POST /destroy` | destroys the session | `{"ok": true}` |
/// | `POST /regenerate?delete=1` | regenerates the id, deleting the old one with `delete=1` | `{"ok": true}` |
fn rust_routes() -> Router {
    Router::new()
        .route("/get", get(rust_get))
        .route("/size", get(rust_size))
        .route("/set", post(rust_set))
        .route("/flash", post(rust_flash))
        .route("/unset", post(rust_unset))
        .route("/destroy", post(rust_destroy))
        .route("/regenerate", post(rust_regenerate))
}

async fn rust_get(session: Session, RawQuery(query): RawQuery) -> Result<Response, Failure> {
    let key = required_param(query.as_deref(), "key")?;
    Ok(json_response(&json!({ "value": session.get_value(&key) })))
}

async fn rust_size(session: Session) -> Response {
    json_response(&json!({ "size": session.len() }))
}

async fn rust_set(session: Session, RawQuery(query): RawQuery) -> Result<Response, Failure> {
    let key = required_param(query.as_deref(), "key")?;
    let value = json_param(query.as_deref(), "value")?;
    session
        .insert(key, value)
        .map_err(|error| session_failure(&error))?;
    Ok(ok_response())
}

async fn rust_flash(session: Session, RawQuery(query): RawQuery) -> Result<Response, Failure> {
    let key = required_param(query.as_deref(), "key")?;
    let value = json_param(query.as_deref(), "value")?;
    session
        .flash(key, value)
        .map_err(|error| session_failure(&error))?;
    Ok(ok_response())
}

async fn rust_unset(session: Session, RawQuery(query): RawQuery) -> Result<Response, Failure> {
    let key = required_param(query.as_deref(), "key")?;
    session
        .remove(&key)
        .map_err(|error| session_failure(&error))?;
    Ok(ok_response())
}

async fn rust_destroy(session: Session) -> Response {
    session.destroy();
    ok_response()
}

async fn rust_regenerate(session: Session, RawQuery(query): RawQuery) -> Result<Response, Failure> {
    let delete_old = query_param(query.as_deref(), "delete")?.as_deref() == Some("1");
    session
        .regenerate_id(delete_old)
        .map_err(|error| session_failure(&error))?;
    Ok(ok_response())
}

fn json_response(body: &Value) -> Response {
    ([(CONTENT_TYPE, "application/json")], body.to_string()).into_response()
}

fn ok_response() -> Response {
    json_response(&json!({ "ok": true }))
}

fn session_failure(error: &SessionError) -> Failure {
    (StatusCode::INTERNAL_SERVER_ERROR, error.to_string())
}

/// The decoded value of `name` in a query string, if present.
fn query_param(query: Option<&str>, name: &str) -> Result<Option<String>, Failure> {
    for pair in query.unwrap_or_default().split('&') {
        let (raw_name, raw_value) = pair.split_once('=').unwrap_or((pair, ""));
        if percent_decode(raw_name)? == name {
            return percent_decode(raw_value).map(Some);
        }
    }
    Ok(None)
}

fn required_param(query: Option<&str>, name: &str) -> Result<String, Failure> {
    query_param(query, name)?.ok_or_else(|| {
        (
            StatusCode::BAD_REQUEST,
            format!("missing query parameter {name}"),
        )
    })
}

fn json_param(query: Option<&str>, name: &str) -> Result<Value, Failure> {
    let text = required_param(query, name)?;
    serde_json::from_str(&text).map_err(|error| {
        (
            StatusCode::BAD_REQUEST,
            format!("query parameter {name} is not JSON: {error}"),
        )
    })
}

/// Decodes `application/x-www-form-urlencoded` text (`%XX`, `+` for space).
fn percent_decode(text: &str) -> Result<String, Failure> {
    let invalid = || {
        (
            StatusCode::BAD_REQUEST,
            format!("invalid percent-encoding in {text:?}"),
        )
    };
    let bytes = text.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        match bytes[index] {
            b'%' => {
                let hex = text.get(index + 1..index + 3).ok_or_else(invalid)?;
                decoded.push(u8::from_str_radix(hex, 16).map_err(|_| invalid())?);
                index += 3;
            }
            b'+' => {
                decoded.push(b' ');
                index += 1;
            }
            byte => {
                decoded.push(byte);
                index += 1;
            }
        }
    }
    String::from_utf8(decoded).map_err(|_| invalid())
}

// ---------------------------------------------------------------------------
// The client: `app::raw_exchange` with the session cookie of a `CookieJar`.
// ---------------------------------------------------------------------------

/// Sends one request with an empty body and, when given, the session cookie
/// `cookie` over a new connection, and reads the whole response, within
/// [`HANG_GUARD`].
async fn http(addr: SocketAddr, method: &str, target: &str, cookie: Option<&str>) -> Reply {
    let cookie = cookie.map(app::session_header);
    let request = app::request_text(method, target, cookie.as_deref());
    app::raw_exchange(addr, &request, HANG_GUARD).await
}

/// The session cookie's value, which the jar must hold by now (possibly empty:
/// Remix "clears" a cookie by setting it to the empty string).
fn session_value(jar: &CookieJar) -> String {
    jar.get(COOKIE_NAME)
        .expect("the jar holds a session cookie by now")
        .to_owned()
}

/// One of the two apps, seen from the client.
#[derive(Debug, Clone, Copy)]
struct App {
    name: &'static str,
    addr: SocketAddr,
}

impl App {
    /// Sends a request with the jar's cookie, asserts `200`, and updates the
    /// jar from the response.
    async fn send(&self, jar: &mut CookieJar, method: &str, target: &str) -> Reply {
        let reply = http(self.addr, method, target, jar.get(COOKIE_NAME)).await;
        assert_eq!(
            reply.status, 200,
            "{} answered {method} {target} with {reply:?}",
            self.name
        );
        jar.update(&reply);
        reply
    }

    /// `GET /get?key=K`: the value the session holds under `key` (`null` if none).
    async fn get(&self, jar: &mut CookieJar, key: &str) -> Value {
        let target = format!("/get?key={}", percent_encode(key));
        self.send(jar, "GET", &target).await.json()["value"].clone()
    }

    /// `GET /size`: how many values and flash values the session holds.
    async fn size(&self, jar: &mut CookieJar) -> u64 {
        let reply = self.send(jar, "GET", "/size").await;
        reply.json()["size"]
            .as_u64()
            .unwrap_or_else(|| panic!("{} answered /size with {reply:?}", self.name))
    }

    async fn set(&self, jar: &mut CookieJar, key: &str, value: &Value) {
        self.set_json(jar, key, &value.to_string()).await;
    }

    /// `POST /set` with the value as JSON text, sent as is (`Value` would sort
    /// object keys).
    async fn set_json(&self, jar: &mut CookieJar, key: &str, json: &str) {
        let target = format!(
            "/set?key={}&value={}",
            percent_encode(key),
            percent_encode(json)
        );
        self.send(jar, "POST", &target).await;
    }

    async fn flash(&self, jar: &mut CookieJar, key: &str, value: &Value) {
        let target = format!(
            "/flash?key={}&value={}",
            percent_encode(key),
            percent_encode(&value.to_string())
        );
        self.send(jar, "POST", &target).await;
    }

    async fn unset(&self, jar: &mut CookieJar, key: &str) {
        let target = format!("/unset?key={}", percent_encode(key));
        self.send(jar, "POST", &target).await;
    }

    async fn destroy(&self, jar: &mut CookieJar) -> Reply {
        self.send(jar, "POST", "/destroy").await
    }

    async fn regenerate(&self, jar: &mut CookieJar, delete_old: bool) {
        let target = if delete_old {
            "/regenerate?delete=1"
        } else {
            "/regenerate"
        };
        self.send(jar, "POST", target).await;
    }
}

// ---------------------------------------------------------------------------
// The fixture: one memcached, the Remix app and the Rust app on it.
// ---------------------------------------------------------------------------

/// Both apps on one fresh memcached.
struct Interop {
    remix: RemixServer,
    rust: Server,
    memcached: Memcached,
    key_prefix: String,
}

impl Interop {
    /// Both apps with the default key prefix (each app's own default, which
    /// must be the same).
    async fn start() -> Self {
        Self::start_with(None).await
    }

    /// Both apps with `key_prefix`, or their defaults for `None`.
    async fn start_with(key_prefix: Option<&str>) -> Self {
        let memcached = Memcached::start();
        let remix = RemixServer::start(&memcached.addr(), key_prefix);
        let rust = start_rust_app(&memcached.addr(), key_prefix).await;
        let key_prefix = key_prefix.map_or_else(
            || {
                MemcacheSessionStorageOptions::default()
                    .get_key_prefix()
                    .to_owned()
            },
            str::to_owned,
        );
        Self {
            remix,
            rust,
            memcached,
            key_prefix,
        }
    }

    fn remix(&self) -> App {
        App {
            name: "Remix",
            addr: self.remix.addr,
        }
    }

    fn rust(&self) -> App {
        App {
            name: "Rust",
            addr: self.rust.addr(),
        }
    }

    /// The session id a cookie value stands for, checked with our signer.
    fn id_of(cookie_value: &str) -> SessionId {
        let verified = app::signer()
            .verify(cookie_value)
            .unwrap_or_else(|| panic!("{cookie_value:?} does not verify with the shared secret"));
        SessionId::parse(verified.value())
            .unwrap_or_else(|| panic!("{cookie_value:?} holds no usable session id"))
    }

    /// The raw memcached item of the session a cookie value stands for.
    fn raw_item(&self, cookie_value: &str) -> Option<RawItem> {
        let key = memcache_key(&self.key_prefix, &Self::id_of(cookie_value));
        raw_get(&self.memcached.addr(), &key)
    }
}

/// A memcached item as `get` returns it.
#[derive(Debug, PartialEq, Eq)]
struct RawItem {
    flags: u32,
    data: String,
}

/// `get key` over a plain TCP connection, with [`HANG_GUARD`] timeouts.
fn raw_get(server: &str, key: &str) -> Option<RawItem> {
    let addr: SocketAddr = server.parse().expect("memcached listens on host:port");
    let stream = TcpStream::connect_timeout(&addr, HANG_GUARD).expect("connect to memcached");
    stream.set_read_timeout(Some(HANG_GUARD)).expect("timeout");
    stream.set_write_timeout(Some(HANG_GUARD)).expect("timeout");
    (&stream)
        .write_all(format!("get {key}\r\n").as_bytes())
        .expect("send `get` to memcached");
    let mut reader = BufReader::new(&stream);
    let mut line = String::new();
    reader.read_line(&mut line).expect("read the `get` reply");
    if line == "END\r\n" {
        return None;
    }
    let header: Vec<&str> = line.trim_end().split(' ').collect();
    let ["VALUE", returned_key, flags, bytes] = header[..] else {
        panic!("unexpected `get` reply line {line:?}");
    };
    assert_eq!(returned_key, key, "memcached answered for another key");
    let flags = flags.parse().expect("numeric flags");
    let bytes: usize = bytes.parse().expect("numeric length");
    let mut data = vec![0_u8; bytes + 2];
    reader.read_exact(&mut data).expect("read the item's data");
    assert_eq!(&data[bytes..], b"\r\n", "the data ends with CRLF");
    data.truncate(bytes);
    let mut end = String::new();
    reader
        .read_line(&mut end)
        .expect("read the `get` reply's END");
    assert_eq!(end, "END\r\n", "one item, then END");
    Some(RawItem {
        flags,
        data: String::from_utf8(data).expect("session data is UTF-8 JSON"),
    })
}

/// Asserts that an item, if any, holds no session for Remix either: it is
/// missing, or holds JSON `null` (the short-lived tombstone our storage leaves
/// for a destroyed session), which Remix's `readSessionData` parses to `null`
/// and treats as missing.
fn assert_holds_no_session(item: Option<RawItem>, what: &str) {
    if let Some(item) = item {
        assert_eq!(item.data, "null", "{what}: the item still holds {item:?}");
    }
}

// ---------------------------------------------------------------------------
// The tests.
// ---------------------------------------------------------------------------

#[tokio::test]
async fn remix_and_rust_set_cookies_in_one_signed_format() {
    let interop = Interop::start().await;
    let signer = app::signer();

    for app in [interop.remix(), interop.rust()] {
        let reply = http(app.addr, "POST", "/set?key=count&value=1", None).await;
        assert_eq!(reply.status, 200, "{} answered {reply:?}", app.name);
        let headers = reply.set_cookies_named(COOKIE_NAME);
        assert_eq!(
            headers.len(),
            1,
            "{} sets one session cookie: {reply:?}",
            app.name
        );
        let (_, value) = cookie_pair(&headers[0]).expect("a name=value pair");
        // `base64(id) + "." + base64_no_pad(HMAC-SHA256(secret, base64(id)))`.
        let id = Interop::id_of(value);
        assert_eq!(
            value,
            signer.sign(id.as_str()),
            "{}'s cookie is not our signature of its id",
            app.name
        );
        let attributes: Vec<&str> = headers[0].split(';').skip(1).map(str::trim).collect();
        assert!(
            attributes.contains(&"Path=/") && attributes.contains(&"SameSite=Lax"),
            "{}'s cookie has Remix's default Path and SameSite: {}",
            app.name,
            headers[0]
        );
    }
}

#[tokio::test]
async fn remix_session_is_read_and_updated_by_rust_then_read_back_by_remix() {
    let interop = Interop::start().await;
    let (remix, rust) = (interop.remix(), interop.rust());
    let mut jar = CookieJar::default();

    remix.set(&mut jar, "count", &json!(1)).await;
    remix.set(&mut jar, "user", &json!({ "name": "mj" })).await;
    let remix_cookie = session_value(&jar);

    assert_eq!(rust.get(&mut jar, "count").await, json!(1));
    assert_eq!(rust.get(&mut jar, "user").await, json!({ "name": "mj" }));
    assert_eq!(rust.size(&mut jar).await, 2);

    let count = rust.get(&mut jar, "count").await.as_u64().expect("a count");
    rust.set(&mut jar, "count", &json!(count + 1)).await;
    rust.set(&mut jar, "theme", &json!("dark")).await;
    assert_eq!(
        session_value(&jar),
        remix_cookie,
        "Rust keeps the Remix session id and signs it the same way"
    );

    assert_eq!(remix.get(&mut jar, "count").await, json!(2));
    assert_eq!(remix.get(&mut jar, "theme").await, json!("dark"));
    assert_eq!(remix.get(&mut jar, "user").await, json!({ "name": "mj" }));
    assert_eq!(remix.size(&mut jar).await, 3);
}

#[tokio::test]
async fn rust_session_is_read_and_updated_by_remix_then_read_back_by_rust() {
    let interop = Interop::start().await;
    let (remix, rust) = (interop.remix(), interop.rust());
    let mut jar = CookieJar::default();

    rust.set(&mut jar, "count", &json!(10)).await;
    rust.set(
        &mut jar,
        "user",
        &json!({ "name": "mj", "roles": ["admin"] }),
    )
    .await;
    rust.set(&mut jar, "temporary", &json!(true)).await;
    let rust_cookie = session_value(&jar);

    assert_eq!(remix.get(&mut jar, "count").await, json!(10));
    assert_eq!(
        remix.get(&mut jar, "user").await,
        json!({ "name": "mj", "roles": ["admin"] })
    );
    assert_eq!(remix.get(&mut jar, "temporary").await, json!(true));

    remix.set(&mut jar, "count", &json!(11)).await;
    remix.set(&mut jar, "greeting", &json!("héllo ✓")).await;
    remix.unset(&mut jar, "temporary").await;
    assert_eq!(
        session_value(&jar),
        rust_cookie,
        "Remix keeps the Rust session id and signs it the same way"
    );

    assert_eq!(rust.get(&mut jar, "count").await, json!(11));
    assert_eq!(rust.get(&mut jar, "greeting").await, json!("héllo ✓"));
    assert_eq!(rust.get(&mut jar, "temporary").await, Value::Null);
    assert_eq!(
        rust.get(&mut jar, "user").await,
        json!({ "name": "mj", "roles": ["admin"] })
    );
    assert_eq!(rust.size(&mut jar).await, 3);
}

#[tokio::test]
async fn remix_flash_is_read_once_by_rust_then_gone_on_both() {
    let interop = Interop::start().await;
    let (remix, rust) = (interop.remix(), interop.rust());
    let mut jar = CookieJar::default();

    remix.set(&mut jar, "user", &json!("mj")).await;
    remix.flash(&mut jar, "message", &json!("saved")).await;

    assert_eq!(rust.get(&mut jar, "message").await, json!("saved"));
    assert_eq!(rust.get(&mut jar, "message").await, Value::Null);
    assert_eq!(remix.get(&mut jar, "message").await, Value::Null);
    assert_eq!(remix.get(&mut jar, "user").await, json!("mj"));
    assert_eq!(rust.get(&mut jar, "user").await, json!("mj"));
}

#[tokio::test]
async fn rust_flash_is_read_once_by_remix_then_gone_on_both() {
    let interop = Interop::start().await;
    let (remix, rust) = (interop.remix(), interop.rust());
    let mut jar = CookieJar::default();

    rust.set(&mut jar, "user", &json!("mj")).await;
    rust.flash(&mut jar, "message", &json!({ "text": "saved", "level": 1 }))
        .await;

    assert_eq!(
        remix.get(&mut jar, "message").await,
        json!({ "text": "saved", "level": 1 })
    );
    assert_eq!(remix.get(&mut jar, "message").await, Value::Null);
    assert_eq!(rust.get(&mut jar, "message").await, Value::Null);
    assert_eq!(rust.get(&mut jar, "user").await, json!("mj"));
    assert_eq!(remix.get(&mut jar, "user").await, json!("mj"));
}

#[tokio::test]
async fn rust_destroying_a_remix_session_leaves_remix_a_fresh_empty_session() {
    let interop = Interop::start().await;
    let (remix, rust) = (interop.remix(), interop.rust());
    let mut jar = CookieJar::default();

    remix.set(&mut jar, "user", &json!("mj")).await;
    let old_cookie = session_value(&jar);
    assert_eq!(rust.get(&mut jar, "user").await, json!("mj"));

    let reply = rust.destroy(&mut jar).await;
    assert!(
        reply
            .set_cookies_named(COOKIE_NAME)
            .iter()
            .any(|header| expires_cookie(header)),
        "Rust expires the cookie of a destroyed session: {reply:?}"
    );
    assert_eq!(jar.get(COOKIE_NAME), None, "the browser dropped the cookie");
    assert_holds_no_session(
        interop.raw_item(&old_cookie),
        "Rust destroyed the item Remix wrote",
    );

    let mut old = CookieJar::holding(COOKIE_NAME, &old_cookie);
    assert_eq!(remix.get(&mut old, "user").await, Value::Null);
    assert_eq!(remix.size(&mut old).await, 0);
    let reply = http(remix.addr, "GET", "/size", Some(&old_cookie)).await;
    assert!(
        reply.set_cookies_named(COOKIE_NAME).is_empty(),
        "Remix's fresh session is not saved by a read: {reply:?}"
    );
}

#[tokio::test]
async fn remix_destroying_a_rust_session_leaves_rust_a_fresh_empty_session() {
    let interop = Interop::start().await;
    let (remix, rust) = (interop.remix(), interop.rust());
    let mut jar = CookieJar::default();

    rust.set(&mut jar, "user", &json!("mj")).await;
    let old_cookie = session_value(&jar);
    assert_eq!(remix.get(&mut jar, "user").await, json!("mj"));

    remix.destroy(&mut jar).await;
    assert_eq!(
        jar.get(COOKIE_NAME),
        Some(""),
        "Remix clears the cookie by setting it to the empty string"
    );
    assert_holds_no_session(
        interop.raw_item(&old_cookie),
        "Remix destroyed the item Rust wrote",
    );

    let mut old = CookieJar::holding(COOKIE_NAME, &old_cookie);
    assert_eq!(rust.get(&mut old, "user").await, Value::Null);
    assert_eq!(rust.size(&mut old).await, 0);
    let reply = http(rust.addr, "GET", "/size", Some(&old_cookie)).await;
    assert!(
        reply.set_cookies_named(COOKIE_NAME).is_empty(),
        "Rust's fresh session is not saved by a read: {reply:?}"
    );

    // The emptied cookie Remix left behind is no session either.
    assert_eq!(rust.get(&mut jar, "user").await, Value::Null);
    assert_eq!(rust.size(&mut jar).await, 0);
}

#[tokio::test]
async fn remix_regenerating_with_delete_orphans_the_old_cookie_on_rust() {
    let interop = Interop::start().await;
    let (remix, rust) = (interop.remix(), interop.rust());
    let mut jar = CookieJar::default();

    remix.set(&mut jar, "user", &json!("mj")).await;
    let old_cookie = session_value(&jar);
    remix.regenerate(&mut jar, true).await;
    let new_cookie = session_value(&jar);
    assert_ne!(new_cookie, old_cookie, "Remix issued a cookie for a new id");
    assert_holds_no_session(interop.raw_item(&old_cookie), "the old id was deleted");

    let mut old = CookieJar::holding(COOKIE_NAME, &old_cookie);
    assert_eq!(rust.get(&mut old, "user").await, Value::Null);
    assert_eq!(rust.size(&mut old).await, 0);

    assert_eq!(rust.get(&mut jar, "user").await, json!("mj"));
    rust.set(&mut jar, "count", &json!(1)).await;
    assert_eq!(
        session_value(&jar),
        new_cookie,
        "Rust keeps the regenerated id"
    );
    assert_eq!(remix.get(&mut jar, "count").await, json!(1));
}

#[tokio::test]
async fn rust_regenerating_with_delete_orphans_the_old_cookie_on_remix() {
    let interop = Interop::start().await;
    let (remix, rust) = (interop.remix(), interop.rust());
    let mut jar = CookieJar::default();

    rust.set(&mut jar, "user", &json!("mj")).await;
    let old_cookie = session_value(&jar);
    rust.regenerate(&mut jar, true).await;
    let new_cookie = session_value(&jar);
    assert_ne!(new_cookie, old_cookie, "Rust issued a cookie for a new id");
    assert_holds_no_session(interop.raw_item(&old_cookie), "the old id was deleted");

    let mut old = CookieJar::holding(COOKIE_NAME, &old_cookie);
    assert_eq!(remix.get(&mut old, "user").await, Value::Null);
    assert_eq!(remix.size(&mut old).await, 0);

    assert_eq!(remix.get(&mut jar, "user").await, json!("mj"));
    remix.set(&mut jar, "count", &json!(1)).await;
    assert_eq!(
        session_value(&jar),
        new_cookie,
        "Remix keeps the regenerated id"
    );
    assert_eq!(rust.get(&mut jar, "count").await, json!(1));
}

#[tokio::test]
async fn remix_and_rust_write_byte_identical_items_for_the_same_data() {
    let interop = Interop::start_with(Some("interop-raw:")).await;
    // Keys in alphabetical order at every level: see the next test for why.
    let values = [
        ("count", json!(1)),
        ("list", json!([1, "two", null, true, 2.5, -3])),
        (
            "user",
            json!({ "name": "mj ✓ \"quoted\" \\ </script>", "tags": ["a\nb", "\u{1}"] }),
        ),
    ];

    let mut items = HashMap::new();
    for app in [interop.remix(), interop.rust()] {
        let mut jar = CookieJar::default();
        for (key, value) in &values {
            app.set(&mut jar, key, value).await;
        }
        app.flash(&mut jar, "notice", &json!("saved")).await;
        let item = interop
            .raw_item(&session_value(&jar))
            .unwrap_or_else(|| panic!("no item under {}'s key", app.name));
        items.insert(app.name, item);
    }

    let expected = concat!(
        r#"[{"count":1,"list":[1,"two",null,true,2.5,-3],"#,
        r#""user":{"name":"mj ✓ \"quoted\" \\ </script>","tags":["a\nb","\u0001"]}},"#,
        r#"{"notice":"saved"}]"#
    );
    assert_eq!(items["Remix"].data, expected, "what Remix stores");
    assert_eq!(
        items["Remix"], items["Rust"],
        "Rust stores what Remix stores"
    );
    assert_eq!(items["Rust"].flags, 0, "no memcached flags on either side");
}

#[tokio::test]
async fn items_hold_equal_json_whatever_order_keys_were_set_in() {
    let interop = Interop::start_with(Some("interop-order:")).await;

    let mut texts = HashMap::new();
    for app in [interop.remix(), interop.rust()] {
        let mut jar = CookieJar::default();
        app.set(&mut jar, "zeta", &json!(1)).await;
        app.set_json(&mut jar, "alpha", r#"{"y":1,"b":2}"#).await;
        let item = interop
            .raw_item(&session_value(&jar))
            .unwrap_or_else(|| panic!("no item under {}'s key", app.name));
        texts.insert(app.name, item.data);
    }

    let parse = |text: &str| -> Value {
        serde_json::from_str(text).unwrap_or_else(|error| panic!("{text:?}: {error}"))
    };
    assert_eq!(
        parse(&texts["Remix"]),
        parse(&texts["Rust"]),
        "same JSON ({} vs {})",
        texts["Remix"],
        texts["Rust"]
    );
}
