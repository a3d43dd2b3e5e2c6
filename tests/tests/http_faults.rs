//! Fault tests of `SessionLayer` + `Session` + `MemcacheSessionStorage` over
//! HTTP: memcached stopped and restarted, a memcached that never answers, a
//! session larger than memcached's item limit, clients that disconnect in the
//! middle of a request (during the handler, during the load and during the
//! save), and an exhausted connection pool.
//!
//! Each test starts its own memcached (or stub). A misbehaving-server stub or a
//! fault-injecting TCP proxy stands between the app and memcached only where
//! the fault needs it. Every request is bounded by `app::HANG_GUARD` (5 s),
//! far above the timeouts configured here, so "no hang" is checked without
//! asserting any timing.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::Request;
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing;
use axum_session_memcache::{
    MemcacheSessionStorage, MemcacheSessionStorageOptions, Session, SessionError, SessionLayer,
};
use integration_tests::app::{
    self, Browser, Reply, Server, SilentServer, assert_no_set_cookie, assert_ok, session_header,
};
use integration_tests::memcached::Memcached;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, mpsc, watch};
use tokio::task::{JoinHandle, JoinSet};

/// Short timeouts, so that faults surface quickly; long enough that a working memcached on
/// a busy machine is not mistaken for a silent one.
fn short_timeouts() -> MemcacheSessionStorageOptions {
    MemcacheSessionStorageOptions::default()
        .connect_timeout(Duration::from_millis(500))
        .operation_timeout(Duration::from_millis(500))
}

/// Asserts the response is the 503 the layer sends when memcached fails.
fn assert_unavailable(reply: &Reply, what: &str) {
    assert_eq!(
        reply.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{what}: {:?}",
        reply.body
    );
    assert_eq!(reply.header("retry-after"), Some("1"), "{what}");
    assert_no_set_cookie(reply, &format!("{what}: no cookie on a 503"));
}

// ---------------------------------------------------------------------------
// memcached stopped, then restarted
// ---------------------------------------------------------------------------

#[tokio::test]
async fn stopped_memcached_gives_503_with_retry_after_and_sessions_work_again_after_restart() {
    let mut memcached = Memcached::start();
    let router = app::app(
        app::storage(&memcached.addr(), short_timeouts()),
        app::cookie(),
    );
    let mut browser = Browser::new(&router);
    assert_ok(&browser.get("/count").await, "1", "before the outage");

    memcached.stop();

    // Loading an existing session fails: 503 from the extractor.
    assert_unavailable(&browser.get("/read").await, "load while stopped");
    assert_unavailable(&browser.get("/count").await, "load while stopped, again");
    // A fresh session needs no load, but its save fails: 503 replaces the response.
    assert_unavailable(
        &app::get(&router, "/count", None).await,
        "save while stopped",
    );
    // Routes that do not use sessions are unaffected.
    assert_ok(
        &browser.get("/plain").await,
        "plain",
        "route without Session",
    );
    // `Option<Session>` lets the handler run without a session.
    assert_ok(&browser.get("/optional").await, "none", "Option<Session>");
    assert!(
        browser.session_cookie().is_some(),
        "the failures did not clear the browser's cookie"
    );

    memcached.restart();

    // Same app, same storage. The README: the first failing command retires
    // the old connections and is retried once on a new one.
    let mut attempts = Vec::new();
    for _ in 0..3 {
        let reply = browser.get("/count").await;
        let ok = reply.status == StatusCode::OK;
        attempts.push((reply.status, reply.body));
        if ok {
            break;
        }
    }
    let (status, body) = attempts.last().expect("at least one attempt").clone();
    assert_eq!(
        status,
        StatusCode::OK,
        "no success within 3 attempts after restart: {attempts:?}"
    );
    // The restarted memcached is empty: the session starts over.
    assert_eq!(body, "1", "{attempts:?}");
    assert_ok(&browser.get("/count").await, "2", "saved after the restart");
}

/// Rounds of the restart scenario below: which idle connection the pool hands
/// out first varies from run to run, so one round may miss a fault that this
/// many rounds do not.
const RESTART_ROUNDS: usize = 10;

#[tokio::test]
async fn first_request_after_an_unnoticed_restart_succeeds_with_many_idle_connections() {
    let mut memcached = Memcached::start();
    let router = app::app(
        app::storage(&memcached.addr(), short_timeouts()),
        app::cookie(),
    );

    let mut failures = Vec::new();
    for round in 1..=RESTART_ROUNDS {
        // The restarted memcached is empty: a new session each round.
        let mut browser = Browser::new(&router);
        assert_ok(&browser.get("/count").await, "1", "before the restart");
        let cookie = browser.cookie_header().expect("cookie");

        // Concurrent loads fill the pool with several idle connections.
        let mut loads = JoinSet::new();
        for _ in 0..8 {
            let (router, cookie) = (router.clone(), cookie.clone());
            loads.spawn(async move { app::get(&router, "/read", Some(&cookie)).await });
        }
        while let Some(reply) = loads.join_next().await {
            assert_ok(&reply.expect("a load task"), "1", "concurrent load");
        }
        // The stats connection itself counts as one.
        let pooled = memcached.stat("curr_connections") - 1;
        assert!(
            pooled >= 2,
            "expected several pooled connections, got {pooled}"
        );

        // Restart with no request in between: every pooled connection still
        // points at the old process.
        memcached.restart();

        // README: "the first failing command retires every older connection
        // and is retried once on a new one", so not even the first request
        // after the restart fails.
        let reply = browser.get("/count").await;
        let first_ok = (reply.status, reply.body.as_str()) == (StatusCode::OK, "1");
        if !first_ok {
            failures.push((round, reply.status, reply.body));
        }
        // By the second request, the old connections are retired in any case.
        let expected = if first_ok { "2" } else { "1" };
        assert_ok(&browser.get("/count").await, expected, "the second request");
    }
    assert!(
        failures.is_empty(),
        "the first request after a restart failed in {} of {RESTART_ROUNDS} rounds: {failures:?}",
        failures.len()
    );
}

// ---------------------------------------------------------------------------
// memcached that never answers
// ---------------------------------------------------------------------------

#[tokio::test]
async fn memcached_that_never_answers_gives_503_within_the_hang_guard() {
    let stub = SilentServer::start().await;
    let router = app::app(app::storage(&stub.addr(), short_timeouts()), app::cookie());
    let cookie = session_header(&app::signer().sign("some-session-id"));

    // `app::get` panics when no response arrives within `HANG_GUARD` (5 s).
    assert_unavailable(
        &app::get(&router, "/read", Some(&cookie)).await,
        "load from a silent server",
    );
    assert_unavailable(
        &app::get(&router, "/count", None).await,
        "save to a silent server",
    );
    assert_unavailable(
        &app::get(&router, "/read", Some(&cookie)).await,
        "load again: the timed-out connection is not reused",
    );
    assert_ok(
        &app::get(&router, "/plain", Some(&cookie)).await,
        "plain",
        "route without Session",
    );
}

// ---------------------------------------------------------------------------
// Item size limit
// ---------------------------------------------------------------------------

#[tokio::test]
async fn session_larger_than_the_item_limit_gives_503_and_keeps_the_stored_copy() {
    let memcached = Memcached::builder().item_size_max(1024).start();
    let router = app::app(
        app::storage(
            &memcached.addr(),
            MemcacheSessionStorageOptions::default().max_item_size(1024),
        ),
        app::cookie(),
    );
    let mut browser = Browser::new(&router);
    assert_ok(&browser.get("/count").await, "1", "small session stored");
    let cookie = browser.session_cookie().expect("cookie").to_owned();

    let sets_before = memcached.stat("cmd_set");
    let reply = browser.post("/big").await;
    assert_unavailable(&reply, "session over the limit");
    assert_ne!(reply.body, "stored", "the handler's response was replaced");
    assert_eq!(
        memcached.stat("cmd_set"),
        sets_before,
        "refused before sending"
    );

    assert_eq!(browser.session_cookie(), Some(cookie.as_str()));
    assert_ok(
        &browser.get("/read").await,
        "1",
        "the stored copy is intact",
    );
    assert_ok(&browser.get("/count").await, "2", "and still writable");
}

#[tokio::test]
async fn session_that_memcached_itself_refuses_gives_503_and_later_requests_still_work() {
    // Misconfiguration: memcached's -I is 1 KiB but the storage believes the
    // default 1 MiB, so the item reaches memcached, which refuses it.
    let memcached = Memcached::builder().item_size_max(1024).start();
    let router = app::app(app::default_storage(&memcached), app::cookie());
    let mut browser = Browser::new(&router);
    assert_ok(&browser.get("/count").await, "1", "small session stored");

    let reply = browser.post("/big").await;
    assert_unavailable(&reply, "memcached refuses the item");

    // The connection that carried the refused command is usable, or replaced.
    let mut other = Browser::new(&router);
    assert_ok(&other.get("/count").await, "1", "another session");
    assert_ok(&other.get("/count").await, "2", "another session, again");
    // memcached drops the key it could not overwrite (to avoid serving stale
    // data); this is why `max_item_size` must match -I. Either way the session
    // is whole: the old state or a fresh one, never the refused one.
    let read = browser.get("/read").await;
    assert_eq!(read.status, StatusCode::OK);
    assert!(["1", "none"].contains(&read.body.as_str()), "{read:?}");
}

// ---------------------------------------------------------------------------
// Client disconnects
// ---------------------------------------------------------------------------

/// How the request the client walked away from ended, as seen by a middleware
/// wrapping the session layer (so after the save, if any).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Outcome {
    /// The whole stack, save included, ran to the end with this status.
    Completed(StatusCode),
    /// The request's future was dropped before it finished.
    Cancelled,
}

/// Reports the outcome when dropped.
struct Watch {
    outcome: Outcome,
    report: mpsc::UnboundedSender<Outcome>,
}

impl Drop for Watch {
    fn drop(&mut self) {
        let _ = self.report.send(self.outcome);
    }
}

/// The three keys the disconnect tests write, as `a,b,c` (`-` when missing).
async fn abc(session: Session) -> Result<String, SessionError> {
    let mut parts = Vec::new();
    for key in ["a", "b", "c"] {
        parts.push(
            session
                .get::<String>(key)?
                .unwrap_or_else(|| "-".to_owned()),
        );
    }
    Ok(parts.join(","))
}

fn set_abc(session: &Session, value: &str) -> Result<(), SessionError> {
    for key in ["a", "b", "c"] {
        session.insert(key, value)?;
    }
    Ok(())
}

/// A server whose routes write `a`, `b`, `c`, with `slow` as `POST /slow` and a
/// watch on `POST /slow` reporting its [`Outcome`].
async fn disconnect_server(
    storage: MemcacheSessionStorage,
    slow: routing::MethodRouter,
) -> (Server, mpsc::UnboundedReceiver<Outcome>) {
    let (report, outcomes) = mpsc::unbounded_channel();
    let router = Router::new()
        .route("/abc", routing::get(abc))
        .route(
            "/abc-old",
            routing::post(
                |session: Session| async move { set_abc(&session, "old").map(|()| "old") },
            ),
        )
        .route("/slow", slow)
        .merge(app::routes())
        .layer(SessionLayer::new(storage, app::cookie()))
        .layer(middleware::from_fn(move |request: Request, next: Next| {
            let report = report.clone();
            async move {
                if request.uri().path() != "/slow" {
                    return next.run(request).await;
                }
                let mut watch = Watch {
                    outcome: Outcome::Cancelled,
                    report,
                };
                let response: Response = next.run(request).await;
                watch.outcome = Outcome::Completed(response.status());
                response
            }
        }));
    (Server::start(router).await, outcomes)
}

/// Creates a session with `a,b,c` = `old` over real HTTP; returns its cookie value.
async fn old_session(addr: SocketAddr) -> String {
    let reply = app::raw_request(addr, "POST", "/abc-old", None).await;
    assert_ok(&reply, "old", "setting up the old state");
    reply.session_cookie().expect("a session cookie")
}

/// Sends `POST /slow` with `cookie` over a raw connection, waits for `ready`,
/// then closes the connection without reading the response; returns how the
/// request ended.
async fn walk_away(
    addr: SocketAddr,
    cookie: &str,
    ready: &Notify,
    outcomes: &mut mpsc::UnboundedReceiver<Outcome>,
) -> Outcome {
    let mut client = TcpStream::connect(addr).await.expect("connect");
    let request = format!(
        "POST /slow HTTP/1.1\r\nHost: localhost\r\nCookie: {}\r\nContent-Length: 0\r\n\r\n",
        session_header(cookie)
    );
    client
        .write_all(request.as_bytes())
        .await
        .expect("send the request");
    tokio::time::timeout(app::HANG_GUARD, ready.notified())
        .await
        .expect("the request reached the fault point");
    drop(client);
    tokio::time::timeout(app::HANG_GUARD, outcomes.recv())
        .await
        .expect("the aborted request ends (completes or is dropped) in time")
        .expect("the watch reports")
}

/// After a disconnect: other sessions are served, each with its own data.
async fn assert_sessions_are_independent(addr: SocketAddr) {
    let mut first = None;
    let mut second = None;
    for round in 1..=3 {
        let reply = app::raw_request(addr, "GET", "/count", first.as_deref()).await;
        assert_ok(&reply, &round.to_string(), "first client");
        if let Some(value) = reply.session_cookie() {
            first = Some(session_header(&value));
        }
    }
    let reply = app::raw_request(addr, "GET", "/count", second.as_deref()).await;
    assert_ok(&reply, "1", "second client starts at 1");
    second = reply.session_cookie().map(|value| session_header(&value));
    let reply = app::raw_request(addr, "GET", "/read", first.as_deref()).await;
    assert_ok(&reply, "3", "first client still at 3");
    let reply = app::raw_request(addr, "GET", "/read", second.as_deref()).await;
    assert_ok(&reply, "1", "second client still at 1");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_disconnect_during_the_handler_saves_nothing_and_the_server_keeps_serving() {
    let memcached = Memcached::start();
    let reached = Arc::new(Notify::new());
    let slow = {
        let reached = Arc::clone(&reached);
        routing::post(move |session: Session| {
            let reached = Arc::clone(&reached);
            async move {
                // Half of the change, then a pause during which the client leaves.
                session.insert("a", "new")?;
                session.insert("b", "new")?;
                reached.notify_one();
                tokio::time::sleep(Duration::from_secs(1)).await;
                session.insert("c", "new")?;
                Ok::<_, SessionError>("slow done")
            }
        })
    };
    let (server, mut outcomes) = disconnect_server(app::default_storage(&memcached), slow).await;
    let cookie = old_session(server.addr()).await;
    let sets_before = memcached.stat("cmd_set");

    let outcome = walk_away(server.addr(), &cookie, &reached, &mut outcomes).await;

    // Observed: hyper notices the closed connection and drops the request's
    // future while the handler sleeps, so the session layer never saves: the
    // half-made change is lost entirely, and memcached sees no write.
    let read = app::raw_request(server.addr(), "GET", "/abc", Some(&session_header(&cookie))).await;
    assert_eq!(read.status, StatusCode::OK);
    assert!(
        ["old,old,old", "new,new,new"].contains(&read.body.as_str()),
        "half-saved session after a disconnect: {:?} (outcome {outcome:?})",
        read.body
    );
    match outcome {
        Outcome::Cancelled => {
            assert_eq!(read.body, "old,old,old", "a dropped request saves nothing");
            assert_eq!(memcached.stat("cmd_set"), sets_before, "no write at all");
        }
        Outcome::Completed(status) => {
            assert_eq!(status, StatusCode::OK);
            assert_eq!(read.body, "new,new,new", "a completed request saved all");
        }
    }
    assert_sessions_are_independent(server.addr()).await;
}

/// A TCP proxy to memcached that can hold back memcached's replies: while
/// `hold` is on, the next reply chunk waits (and `waiting` is notified) until
/// `hold` goes off; `released` is notified once that chunk was passed on (or
/// the app's side was gone). Fault tests only.
struct HoldingProxy {
    addr: SocketAddr,
    hold: Arc<watch::Sender<bool>>,
    waiting: Arc<Notify>,
    released: Arc<Notify>,
    task: JoinHandle<()>,
}

impl HoldingProxy {
    async fn start(upstream: String) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("address");
        let hold = Arc::new(watch::Sender::new(false));
        let waiting = Arc::new(Notify::new());
        let released = Arc::new(Notify::new());
        let task = {
            let (hold, waiting, released) = (hold.clone(), waiting.clone(), released.clone());
            tokio::spawn(async move {
                let mut pipes = JoinSet::new();
                while let Ok((app_side, _)) = listener.accept().await {
                    let Ok(memcached_side) = TcpStream::connect(&upstream).await else {
                        continue;
                    };
                    pipes.spawn(pipe(
                        app_side,
                        memcached_side,
                        hold.subscribe(),
                        waiting.clone(),
                        released.clone(),
                    ));
                }
            })
        };
        Self {
            addr,
            hold,
            waiting,
            released,
            task,
        }
    }

    fn set_hold(&self, on: bool) {
        self.hold.send_replace(on);
    }

    /// Turns `hold` off and waits until the held reply was let through.
    async fn release(&self) {
        self.set_hold(false);
        tokio::time::timeout(app::HANG_GUARD, self.released.notified())
            .await
            .expect("the held reply was let through");
    }

    /// A storage through this proxy with one connection only, and an
    /// operation timeout well above the time a reply is held: a held command
    /// is cancelled by a disconnect, not timed out.
    fn one_connection_storage(&self) -> MemcacheSessionStorage {
        app::storage(
            &self.addr.to_string(),
            MemcacheSessionStorageOptions::default()
                .pool_max_size(1)
                .operation_timeout(Duration::from_secs(3)),
        )
    }
}

impl Drop for HoldingProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn pipe(
    app_side: TcpStream,
    memcached_side: TcpStream,
    mut hold: watch::Receiver<bool>,
    waiting: Arc<Notify>,
    released: Arc<Notify>,
) {
    let (mut app_read, mut app_write) = app_side.into_split();
    let (mut memcached_read, mut memcached_write) = memcached_side.into_split();
    let requests = tokio::spawn(async move {
        let _ = tokio::io::copy(&mut app_read, &mut memcached_write).await;
        let _ = memcached_write.shutdown().await;
    });
    let mut buffer = vec![0_u8; 64 * 1024];
    while let Ok(read) = memcached_read.read(&mut buffer).await {
        if read == 0 {
            break;
        }
        let was_held = *hold.borrow_and_update();
        if was_held {
            waiting.notify_one();
            if hold.wait_for(|on| !*on).await.is_err() {
                break;
            }
        }
        let written = app_write.write_all(&buffer[..read]).await;
        if was_held {
            released.notify_one();
        }
        if written.is_err() {
            break;
        }
    }
    requests.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_disconnect_during_the_save_never_reuses_the_interrupted_connection() {
    let memcached = Memcached::start();
    let proxy = Arc::new(HoldingProxy::start(memcached.addr()).await);
    let storage = proxy.one_connection_storage();
    let slow = {
        let proxy = Arc::clone(&proxy);
        routing::post(move |session: Session| {
            let proxy = Arc::clone(&proxy);
            async move {
                set_abc(&session, "new")?;
                // The load is done; hold memcached's reply to the save.
                proxy.set_hold(true);
                Ok::<_, SessionError>("saved?")
            }
        })
    };
    let (server, mut outcomes) = disconnect_server(storage, slow).await;
    let cookie = old_session(server.addr()).await;

    let outcome = walk_away(server.addr(), &cookie, &proxy.waiting, &mut outcomes).await;
    // Observed: the save's command reached memcached, its reply was held, and
    // hyper dropped the request when the client left: cancelled mid-command.
    assert_eq!(
        outcome,
        Outcome::Cancelled,
        "the disconnect cancels the request"
    );

    // Let the stale reply through to the interrupted connection. Were that
    // connection reused, the next command would read this stale reply as its
    // own answer.
    proxy.release().await;

    // memcached received the whole `ms` before the client left, so the aborted
    // request's change was stored even though its response was never sent:
    // the session reads as the complete new state (never a mix).
    let read = app::raw_request(server.addr(), "GET", "/abc", Some(&session_header(&cookie))).await;
    assert_ok(
        &read,
        "new,new,new",
        "the stored state after the disconnect",
    );
    assert_sessions_are_independent(server.addr()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_disconnect_during_the_load_never_reuses_the_interrupted_connection() {
    let memcached = Memcached::start();
    let proxy = HoldingProxy::start(memcached.addr()).await;
    let storage = proxy.one_connection_storage();
    let slow =
        routing::post(|session: Session| async move { set_abc(&session, "new").map(|()| "saved") });
    let (server, mut outcomes) = disconnect_server(storage, slow).await;
    let cookie = old_session(server.addr()).await;

    // Hold the reply to the load (`mg`), the request's first command.
    proxy.set_hold(true);
    let outcome = walk_away(server.addr(), &cookie, &proxy.waiting, &mut outcomes).await;
    assert_eq!(
        outcome,
        Outcome::Cancelled,
        "the disconnect cancels the load"
    );
    proxy.release().await;

    // The handler never ran: the old state, read over a fresh connection.
    let read = app::raw_request(server.addr(), "GET", "/abc", Some(&session_header(&cookie))).await;
    assert_ok(&read, "old,old,old", "nothing was changed");
    assert_sessions_are_independent(server.addr()).await;
}

// ---------------------------------------------------------------------------
// Pool exhaustion
// ---------------------------------------------------------------------------

#[tokio::test]
async fn exhausted_pool_answers_503_to_every_waiting_request_without_hanging() {
    let stub = SilentServer::start().await;
    let router = app::app(
        app::storage(
            &stub.addr(),
            MemcacheSessionStorageOptions::default()
                .pool_max_size(1)
                .connect_timeout(Duration::from_millis(200)),
        ),
        app::cookie(),
    );
    let cookie = session_header(&app::signer().sign("some-session-id"));

    let all = async {
        tokio::join!(
            app::get(&router, "/read", Some(&cookie)),
            app::get(&router, "/read", Some(&cookie)),
            app::get(&router, "/read", Some(&cookie)),
        )
    };
    let (first, second, third) = tokio::time::timeout(app::HANG_GUARD, all)
        .await
        .expect("all three requests answered within the hang guard");
    for (index, reply) in [first, second, third].iter().enumerate() {
        assert_unavailable(reply, &format!("concurrent request {index}"));
    }
}
