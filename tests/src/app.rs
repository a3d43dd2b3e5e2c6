//! An axum app with sessions in a real memcached, and the HTTP plumbing the
//! HTTP-level tests share.
//!
//! - [`app`] builds a [`Router`] whose routes exercise every part of the
//!   `Session` API (see [`routes`] for the list), behind a [`SessionLayer`].
//! - [`send`] drives one request through a router with
//!   [`tower::ServiceExt::oneshot`], bounded by [`HANG_GUARD`]; [`Browser`]
//!   does the same while keeping cookies in a [`CookieJar`], as a browser
//!   would.
//! - [`Server`] serves a router on a real `127.0.0.1:0` socket and
//!   [`raw_request`] (or [`raw_exchange`]) talks to it over a raw TCP
//!   connection, for tests that need real connections (client disconnects,
//!   other servers).
//! - [`assert_ok`] and [`assert_no_set_cookie`] check a [`Reply`].
//! - [`SilentServer`] accepts TCP connections and never answers: a
//!   misbehaving memcached, for fault tests only.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::Request;
use axum::http::header::{COOKIE, SET_COOKIE};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{AppendHeaders, IntoResponse, Response};
use axum::routing;
use axum_session_memcache::{
    MemcacheSessionStorage, MemcacheSessionStorageOptions, Session, SessionCookie, SessionError,
    SessionLayer,
};
use http_body_util::BodyExt as _;
use session_core::CookieSigner;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use tower::ServiceExt as _;

use crate::memcached::Memcached;

/// The secret the default [`cookie`] signs with.
pub const SECRET: &str = "integration-tests-secret-of-at-least-32-bytes";

/// Longest wait for any response: far above every timeout the tests configure,
/// so reaching it means the stack hangs.
pub const HANG_GUARD: Duration = Duration::from_secs(5);

/// The default session cookie's name.
pub const COOKIE_NAME: &str = "__session";

/// The size, in bytes, of the value the `/big` route stores.
pub const BIG_VALUE_LEN: usize = 2000;

/// A storage for the memcached at `server` (`host:port`).
///
/// # Panics
///
/// If the storage refuses the address or the options.
pub fn storage(server: &str, options: MemcacheSessionStorageOptions) -> MemcacheSessionStorage {
    MemcacheSessionStorage::new(server, options)
        .unwrap_or_else(|error| panic!("cannot create the storage for {server}: {error}"))
}

/// A storage for `memcached` with default options.
///
/// # Panics
///
/// As [`storage`].
pub fn default_storage(memcached: &Memcached) -> MemcacheSessionStorage {
    storage(&memcached.addr(), MemcacheSessionStorageOptions::default())
}

/// The default session cookie, signed with [`SECRET`].
///
/// # Panics
///
/// Never: the secret is not empty.
pub fn cookie() -> SessionCookie {
    SessionCookie::new([SECRET]).expect("a non-empty secret")
}

/// A signer with the same secret as [`cookie`], to forge or check cookies.
///
/// # Panics
///
/// Never: the secret is not empty.
pub fn signer() -> CookieSigner {
    CookieSigner::new([SECRET]).expect("a non-empty secret")
}

/// [`routes`] behind a [`SessionLayer`] with `storage` and `cookie`.
pub fn app(storage: MemcacheSessionStorage, cookie: SessionCookie) -> Router {
    routes().layer(SessionLayer::new(storage, cookie))
}

/// [`app`] on `memcached` with the default options and [`cookie`].
///
/// # Panics
///
/// As [`storage`].
pub fn default_app(memcached: &Memcached) -> Router {
    app(default_storage(memcached), cookie())
}

/// The test routes, without the session layer:
///
/// | route | what the handler does | body |
/// | --- | --- | --- |
/// | `GET /count` | increments `count` | the new count |
/// | `GET /read` | reads `count` | the count, or `none` |
/// | `GET /plain` | never extracts `Session` | `plain` |
/// | `GET /twice` | a middleware and the handler both extract `Session`; increments `count` | the new count |
/// | `GET /loaded` | reads `Session::is_loaded` | `true` / `false` |
/// | `GET /user` | reads `user` | the user, or `none` |
/// | `POST /flash` | flashes `message` = `hello` | `flashed` |
/// | `GET /message` | reads `message` | the message, or `none` |
/// | `POST /destroy` | destroys the session | `destroyed` |
/// | `POST /login` | `regenerate_id(true)`, sets `user` = `mj` | `logged in` |
/// | `POST /login-keep-old` | `regenerate_id(false)`, sets `user` = `mj` | `logged in` |
/// | `GET /own-cookies` | increments `count`, sets `theme=dark` and `lang=en` itself | the new count |
/// | `GET /fail` | sets `count` = 999, answers `500` | `failed` |
/// | `GET /optional` | extracts `Option<Session>` | `some` / `none` |
/// | `POST /big` | stores [`BIG_VALUE_LEN`] bytes under `blob` | `stored` |
/// | `POST /complex` | stores a nested JSON object under `complex` | `stored` |
/// | `GET /complex` | reads `complex` | its JSON, or `none` |
pub fn routes() -> Router {
    Router::new()
        .route("/count", routing::get(count))
        .route("/read", routing::get(read))
        .route("/plain", routing::get(|| async { "plain" }))
        .route(
            "/twice",
            routing::get(count).layer(middleware::from_fn(extract_in_middleware)),
        )
        .route(
            "/loaded",
            routing::get(|session: Session| async move { session.is_loaded().to_string() }),
        )
        .route("/user", routing::get(user))
        .route("/flash", routing::post(flash))
        .route("/message", routing::get(message))
        .route("/destroy", routing::post(destroy))
        .route(
            "/login",
            routing::post(|session: Session| async move { login(&session, true) }),
        )
        .route(
            "/login-keep-old",
            routing::post(|session: Session| async move { login(&session, false) }),
        )
        .route("/own-cookies", routing::get(own_cookies))
        .route("/fail", routing::get(fail))
        .route(
            "/optional",
            routing::get(|session: Option<Session>| async move {
                if session.is_some() { "some" } else { "none" }
            }),
        )
        .route("/big", routing::post(big))
        .route("/complex", routing::post(store_complex).get(read_complex))
}

/// The nested value `POST /complex` stores.
pub fn complex_value() -> serde_json::Value {
    serde_json::json!({
        "name": "mj",
        "roles": ["admin", "editor"],
        "meta": { "visits": 3, "ratio": 1.5, "verified": true, "nothing": null },
        "unicode": "ünïcödé ✓",
    })
}

fn increment(session: &Session) -> Result<u64, SessionError> {
    let next = session.get::<u64>("count")?.unwrap_or(0) + 1;
    session.insert("count", next)?;
    Ok(next)
}

async fn count(session: Session) -> Result<String, SessionError> {
    increment(&session).map(|count| count.to_string())
}

async fn read(session: Session) -> Result<String, SessionError> {
    Ok(session
        .get::<u64>("count")?
        .map_or_else(|| "none".to_owned(), |count| count.to_string()))
}

async fn user(session: Session) -> Result<String, SessionError> {
    Ok(session
        .get::<String>("user")?
        .unwrap_or_else(|| "none".to_owned()))
}

async fn flash(session: Session) -> Result<&'static str, SessionError> {
    session.flash("message", "hello")?;
    Ok("flashed")
}

async fn message(session: Session) -> Result<String, SessionError> {
    Ok(session
        .get::<String>("message")?
        .unwrap_or_else(|| "none".to_owned()))
}

async fn destroy(session: Session) -> &'static str {
    session.destroy();
    "destroyed"
}

fn login(session: &Session, delete_old: bool) -> Result<&'static str, SessionError> {
    session.regenerate_id(delete_old)?;
    session.insert("user", "mj")?;
    Ok("logged in")
}

async fn own_cookies(session: Session) -> Result<Response, SessionError> {
    let count = increment(&session)?;
    Ok((
        // `AppendHeaders`: a plain array of pairs would `insert`, keeping only the last.
        AppendHeaders([(SET_COOKIE, "theme=dark"), (SET_COOKIE, "lang=en; Path=/")]),
        count.to_string(),
    )
        .into_response())
}

async fn fail(session: Session) -> Result<Response, SessionError> {
    session.insert("count", 999)?;
    Ok((StatusCode::INTERNAL_SERVER_ERROR, "failed").into_response())
}

async fn big(session: Session) -> Result<&'static str, SessionError> {
    session.insert("blob", "x".repeat(BIG_VALUE_LEN))?;
    Ok("stored")
}

async fn store_complex(session: Session) -> Result<&'static str, SessionError> {
    session.insert("complex", complex_value())?;
    Ok("stored")
}

async fn read_complex(session: Session) -> String {
    session
        .get_value("complex")
        .map_or_else(|| "none".to_owned(), |value| value.to_string())
}

/// Extracts `Session` before the handler does, to check it is loaded once.
async fn extract_in_middleware(session: Session, request: Request, next: Next) -> Response {
    // Reading through the middleware's handle: it must see what the handler sees.
    let _ = session.get_value("count");
    next.run(request).await
}

/// What a response carried, with the body read to the end.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Reply {
    /// The status code.
    pub status: StatusCode,
    /// The headers.
    pub headers: HeaderMap,
    /// The body, as (lossy) UTF-8.
    pub body: String,
}

impl Reply {
    /// Every `Set-Cookie` header, in order.
    pub fn set_cookies(&self) -> Vec<String> {
        self.headers
            .get_all(SET_COOKIE)
            .iter()
            .map(|value| String::from_utf8_lossy(value.as_bytes()).into_owned())
            .collect()
    }

    /// Every `Set-Cookie` header of the cookie `name`, in order.
    pub fn set_cookies_named(&self, name: &str) -> Vec<String> {
        self.set_cookies()
            .into_iter()
            .filter(|header| cookie_pair(header).is_some_and(|(n, _)| n == name))
            .collect()
    }

    /// The `Set-Cookie` header of the cookie `name`, if there is exactly one.
    ///
    /// # Panics
    ///
    /// If the response sets `name` more than once.
    pub fn set_cookie(&self, name: &str) -> Option<String> {
        let mut matching = self.set_cookies_named(name).into_iter();
        let first = matching.next();
        assert!(
            matching.next().is_none(),
            "the response sets {name} more than once: {:?}",
            self.set_cookies()
        );
        first
    }

    /// The value the response sets the cookie `name` to.
    ///
    /// # Panics
    ///
    /// As [`Reply::set_cookie`].
    pub fn cookie_value(&self, name: &str) -> Option<String> {
        self.set_cookie(name)
            .and_then(|header| cookie_pair(&header).map(|(_, value)| value.to_owned()))
    }

    /// The value of the session cookie ([`COOKIE_NAME`]) this response sets.
    ///
    /// # Panics
    ///
    /// As [`Reply::set_cookie`].
    pub fn session_cookie(&self) -> Option<String> {
        self.cookie_value(COOKIE_NAME)
    }

    /// A header as a string.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|value| value.to_str().ok())
    }

    /// The body parsed as JSON.
    ///
    /// # Panics
    ///
    /// If the body is not JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|error| {
            panic!(
                "the body of a {} response is not JSON ({error}): {:?}",
                self.status, self.body
            )
        })
    }
}

/// Asserts a `200 OK` with `body`; `what` names the request in the message.
///
/// # Panics
///
/// If the status or the body differs.
pub fn assert_ok(reply: &Reply, body: &str, what: &str) {
    assert_eq!(
        (reply.status, reply.body.as_str()),
        (StatusCode::OK, body),
        "{what}"
    );
}

/// Asserts the response sets no cookie at all; `what` names the request in
/// the message.
///
/// # Panics
///
/// If the response has a `Set-Cookie` header.
pub fn assert_no_set_cookie(reply: &Reply, what: &str) {
    assert!(
        reply.set_cookies().is_empty(),
        "{what}: unexpected Set-Cookie {:?}",
        reply.set_cookies()
    );
}

/// The `name=value` part of a `Set-Cookie` header.
pub fn cookie_pair(set_cookie: &str) -> Option<(&str, &str)> {
    let pair = set_cookie.split(';').next()?;
    pair.split_once('=')
        .map(|(name, value)| (name.trim(), value.trim()))
}

/// The attributes of a `Set-Cookie` header after `name=value`, trimmed, e.g.
/// `["HttpOnly", "SameSite=Lax", "Path=/"]`.
pub fn cookie_attributes(set_cookie: &str) -> Vec<String> {
    set_cookie
        .split(';')
        .skip(1)
        .map(|attribute| attribute.trim().to_owned())
        .collect()
}

/// Whether a `Set-Cookie` header removes its cookie (`Max-Age=0`).
pub fn expires_cookie(set_cookie: &str) -> bool {
    cookie_attributes(set_cookie)
        .iter()
        .any(|attribute| attribute.eq_ignore_ascii_case("Max-Age=0"))
}

/// A request with an empty body and, when given, a `Cookie` header.
///
/// # Panics
///
/// If `method`, `path` or `cookie` is not valid in a request.
pub fn request(method: &str, path: &str, cookie: Option<&str>) -> Request {
    let mut builder = Request::builder().method(method).uri(path);
    if let Some(cookie) = cookie {
        builder = builder.header(COOKIE, cookie);
    }
    builder
        .body(Body::empty())
        .unwrap_or_else(|error| panic!("invalid request {method} {path}: {error}"))
}

/// Sends `request` through `app` and reads the whole response.
///
/// # Panics
///
/// If there is no complete response within [`HANG_GUARD`], or the body fails.
pub async fn send(app: &Router, request: Request) -> Reply {
    let description = format!("{} {}", request.method(), request.uri());
    let exchange = async {
        let response = app
            .clone()
            .oneshot(request)
            .await
            .unwrap_or_else(|never| match never {});
        let (parts, body) = response.into_parts();
        let bytes = body
            .collect()
            .await
            .unwrap_or_else(|error| panic!("cannot read the body of {description}: {error}"))
            .to_bytes();
        Reply {
            status: parts.status,
            headers: parts.headers,
            body: String::from_utf8_lossy(&bytes).into_owned(),
        }
    };
    tokio::time::timeout(HANG_GUARD, exchange)
        .await
        .unwrap_or_else(|_| panic!("{description}: no response within {HANG_GUARD:?}"))
}

/// `GET path` with an optional `Cookie` header, through `app`.
///
/// # Panics
///
/// As [`send`].
pub async fn get(app: &Router, path: &str, cookie: Option<&str>) -> Reply {
    send(app, request("GET", path, cookie)).await
}

/// `POST path` with an optional `Cookie` header, through `app`.
///
/// # Panics
///
/// As [`send`].
pub async fn post(app: &Router, path: &str, cookie: Option<&str>) -> Reply {
    send(app, request("POST", path, cookie)).await
}

/// The `Cookie` header that sends the session cookie ([`COOKIE_NAME`]) with `value`.
pub fn session_header(value: &str) -> String {
    format!("{COOKIE_NAME}={value}")
}

/// `%XX`-encodes every byte of `text` but RFC 3986's unreserved characters
/// (letters, digits, `-`, `.`, `_`, `~`): fit for a query string or an
/// `application/x-www-form-urlencoded` body.
pub fn percent_encode(text: &str) -> String {
    let mut encoded = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
            encoded.push(char::from(byte));
        } else {
            let _ = write!(encoded, "%{byte:02X}");
        }
    }
    encoded
}

/// The cookies a browser holds for one site, by name: it applies every
/// `Set-Cookie` of a response (`Max-Age=0` removes the cookie; any other
/// value, even an empty one, is kept) and sends them all back.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CookieJar(BTreeMap<String, String>);

impl CookieJar {
    /// A jar holding only the cookie `name` = `value`.
    pub fn holding(name: &str, value: &str) -> Self {
        Self(BTreeMap::from([(name.to_owned(), value.to_owned())]))
    }

    /// The value of the cookie `name`, if held.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
    }

    /// The `Cookie` header that sends every held cookie, if any is held.
    pub fn header(&self) -> Option<String> {
        (!self.0.is_empty()).then(|| {
            self.0
                .iter()
                .map(|(name, value)| format!("{name}={value}"))
                .collect::<Vec<_>>()
                .join("; ")
        })
    }

    /// Applies every `Set-Cookie` header of `reply`, in order.
    pub fn update(&mut self, reply: &Reply) {
        for set_cookie in reply.set_cookies() {
            if let Some((name, value)) = cookie_pair(&set_cookie) {
                if expires_cookie(&set_cookie) {
                    self.0.remove(name);
                } else {
                    self.0.insert(name.to_owned(), value.to_owned());
                }
            }
        }
    }
}

/// A client that keeps cookies as a browser does (in a [`CookieJar`]), talking
/// to a router. Clone it to keep a copy of the cookies as they were.
#[derive(Clone, Debug)]
pub struct Browser {
    app: Router,
    jar: CookieJar,
}

impl Browser {
    /// A browser without cookies, talking to `app`.
    pub fn new(app: &Router) -> Self {
        Self {
            app: app.clone(),
            jar: CookieJar::default(),
        }
    }

    /// The value of the cookie `name`, if held.
    pub fn cookie(&self, name: &str) -> Option<&str> {
        self.jar.get(name)
    }

    /// The value of the session cookie ([`COOKIE_NAME`]), if held.
    pub fn session_cookie(&self) -> Option<&str> {
        self.cookie(COOKIE_NAME)
    }

    /// The `Cookie` header this browser sends, if it holds any cookie.
    pub fn cookie_header(&self) -> Option<String> {
        self.jar.header()
    }

    /// `GET path`.
    ///
    /// # Panics
    ///
    /// As [`send`].
    pub async fn get(&mut self, path: &str) -> Reply {
        self.send("GET", path).await
    }

    /// `POST path`.
    ///
    /// # Panics
    ///
    /// As [`send`].
    pub async fn post(&mut self, path: &str) -> Reply {
        self.send("POST", path).await
    }

    /// Sends a request with the held cookies, then stores the response's cookies.
    ///
    /// # Panics
    ///
    /// As [`send`].
    pub async fn send(&mut self, method: &str, path: &str) -> Reply {
        let header = self.cookie_header();
        let reply = send(&self.app, request(method, path, header.as_deref())).await;
        self.jar.update(&reply);
        reply
    }
}

/// memcached's command counters: the commands a session storage can send
/// (`mg`, `ms`, `md`, `mn`, touches) all move at least one of them.
///
/// # Panics
///
/// As [`Memcached::stats`], and if a counter is missing.
pub fn command_counters(memcached: &Memcached) -> BTreeMap<&'static str, u64> {
    let stats: HashMap<String, String> = memcached.stats();
    [
        "cmd_get",
        "cmd_set",
        "cmd_touch",
        "cmd_meta",
        "get_hits",
        "get_misses",
        "delete_hits",
        "delete_misses",
    ]
    .into_iter()
    .map(|name| {
        let value = stats
            .get(name)
            .and_then(|value| value.parse().ok())
            .unwrap_or_else(|| panic!("memcached stat {name} is missing or not a number"));
        (name, value)
    })
    .collect()
}

/// A router served over real TCP on `127.0.0.1:0`; the server task is aborted
/// on drop.
#[derive(Debug)]
pub struct Server {
    addr: SocketAddr,
    task: JoinHandle<()>,
}

impl Server {
    /// Serves `app` with `axum::serve` on a free loopback port.
    ///
    /// # Panics
    ///
    /// If no port can be bound.
    pub async fn start(app: Router) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("the listener's address");
        let task = tokio::spawn(async move {
            axum::serve(listener, app)
                .await
                .expect("the test server failed");
        });
        Self { addr, task }
    }

    /// The address the server listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The HTTP/1.1 request text for `method path`, with `Connection: close` and,
/// when given, a `Cookie` header.
pub fn request_text(method: &str, path: &str, cookie: Option<&str>) -> String {
    let cookie = cookie.map_or_else(String::new, |cookie| format!("Cookie: {cookie}\r\n"));
    format!(
        "{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n{cookie}Content-Length: 0\r\n\r\n"
    )
}

/// Sends `method path` over a new TCP connection to `addr` and reads the
/// response until the server closes the connection.
///
/// # Panics
///
/// As [`raw_exchange`] with [`HANG_GUARD`].
pub async fn raw_request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    cookie: Option<&str>,
) -> Reply {
    raw_exchange(addr, &request_text(method, path, cookie), HANG_GUARD).await
}

/// Sends `request` (complete HTTP/1.1 request text asking for
/// `Connection: close`, such as [`request_text`]) over a new TCP connection to
/// `addr` and reads the response until the server closes the connection.
///
/// # Panics
///
/// If the exchange fails, takes longer than `hang_guard`, or the response is
/// not HTTP/1.1 as [`parse_response`] reads it.
pub async fn raw_exchange(addr: SocketAddr, request: &str, hang_guard: Duration) -> Reply {
    let head = request.lines().next().unwrap_or_default();
    let exchange = async {
        let mut stream = TcpStream::connect(addr)
            .await
            .unwrap_or_else(|error| panic!("{head}: cannot connect to {addr}: {error}"));
        stream
            .write_all(request.as_bytes())
            .await
            .unwrap_or_else(|error| panic!("{head}: cannot send the request: {error}"));
        let mut raw = Vec::new();
        stream
            .read_to_end(&mut raw)
            .await
            .unwrap_or_else(|error| panic!("{head}: cannot read the response: {error}"));
        parse_response(&raw)
    };
    tokio::time::timeout(hang_guard, exchange)
        .await
        .unwrap_or_else(|_| panic!("{head} to {addr}: no response within {hang_guard:?}"))
}

/// Parses an HTTP/1.1 response (fixed length or chunked body); the body is
/// decoded as (lossy) UTF-8 after any chunked framing is removed.
///
/// # Panics
///
/// If `raw` is not such a response.
pub fn parse_response(raw: &[u8]) -> Reply {
    let (head, body) = split_once(raw, b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no end of headers in {:?}", String::from_utf8_lossy(raw)));
    let head = String::from_utf8_lossy(head);
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status = status_line
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse::<u16>().ok())
        .and_then(|code| StatusCode::from_u16(code).ok())
        .unwrap_or_else(|| panic!("bad status line {status_line:?}"));
    let mut headers = HeaderMap::new();
    for line in lines {
        let (name, value) = line
            .split_once(':')
            .unwrap_or_else(|| panic!("bad header line {line:?}"));
        headers.append(
            HeaderName::from_bytes(name.trim().as_bytes()).expect("a header name"),
            HeaderValue::from_str(value.trim()).expect("a header value"),
        );
    }
    let chunked = headers
        .get("transfer-encoding")
        .is_some_and(|value| value.as_bytes().eq_ignore_ascii_case(b"chunked"));
    let body = if chunked {
        dechunk(body)
    } else {
        body.to_vec()
    };
    Reply {
        status,
        headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    }
}

/// The bytes before and after the first `separator` in `bytes`.
fn split_once<'a>(bytes: &'a [u8], separator: &[u8]) -> Option<(&'a [u8], &'a [u8])> {
    let at = bytes
        .windows(separator.len())
        .position(|window| window == separator)?;
    Some((&bytes[..at], &bytes[at + separator.len()..]))
}

/// Decodes a chunked body (chunk extensions ignored, no trailers).
///
/// # Panics
///
/// If `body` is not a complete chunked body.
fn dechunk(mut body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let (size_line, rest) = split_once(body, b"\r\n")
            .unwrap_or_else(|| panic!("bad chunk in {:?}", String::from_utf8_lossy(body)));
        let size_line = String::from_utf8_lossy(size_line);
        let size = usize::from_str_radix(size_line.split(';').next().unwrap_or("").trim(), 16)
            .unwrap_or_else(|_| panic!("bad chunk size {size_line:?}"));
        if size == 0 {
            return out;
        }
        let (chunk, rest) = rest
            .split_at_checked(size)
            .unwrap_or_else(|| panic!("a chunk of {size} bytes is cut short"));
        out.extend_from_slice(chunk);
        body = rest
            .strip_prefix(b"\r\n")
            .unwrap_or_else(|| panic!("no CRLF after a chunk of {size} bytes"));
    }
}

/// A TCP server on `127.0.0.1:0` that accepts connections, keeps them open and
/// never answers: a memcached that hangs. The task is aborted on drop.
#[derive(Debug)]
pub struct SilentServer {
    addr: SocketAddr,
    task: JoinHandle<()>,
}

impl SilentServer {
    /// Starts the server.
    ///
    /// # Panics
    ///
    /// If no port can be bound.
    pub async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("the listener's address");
        let task = tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((stream, _)) = listener.accept().await {
                held.push(stream);
            }
        });
        Self { addr, task }
    }

    /// The address, as `127.0.0.1:PORT`.
    pub fn addr(&self) -> String {
        self.addr.to_string()
    }
}

impl Drop for SilentServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}
