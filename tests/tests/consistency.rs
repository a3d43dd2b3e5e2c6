//! Consistency under real parallelism, and expiry modes, against a real memcached: CAS
//! merges keep concurrent changes, locking serializes one session without blocking others,
//! a logout beats racing writes, sliding expiration keeps a read session alive.
//!
//! Tests whose names start with `measured_` print figures; `cargo xtask ci` runs them with
//! their output shown.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum_session_memcache::{MemcacheSessionStorageOptions, Session, SessionError, SessionLayer};
use integration_tests::app::{self, Reply};
use integration_tests::memcached::Memcached;
use tokio::sync::{Notify, Semaphore};

const REQUESTS: usize = 50;
const IN_FLIGHT: usize = 20;

/// Lets a test hold a request inside its handler until the test says so.
#[derive(Clone, Default)]
struct Gate {
    entered: Arc<Notify>,
    release: Arc<Notify>,
}

async fn init(session: Session) -> Result<&'static str, SessionError> {
    session.insert("user", "mj")?;
    Ok("ok")
}

async fn insert(session: Session, Path(n): Path<usize>) -> Result<&'static str, SessionError> {
    session.insert(format!("k{n}"), n)?;
    Ok("ok")
}

async fn increment(session: Session) -> Result<String, SessionError> {
    let count = session.get::<u64>("count")?.unwrap_or(0) + 1;
    // Give the other requests a chance to read the same count.
    tokio::task::yield_now().await;
    session.insert("count", count)?;
    Ok(count.to_string())
}

async fn summary(session: Session) -> Result<String, SessionError> {
    let keys = (0..REQUESTS)
        .filter(|n| session.contains_key(&format!("k{n}")))
        .count();
    let count = session.get::<u64>("count")?.unwrap_or(0);
    let user = session.get::<String>("user")?.unwrap_or_default();
    Ok(format!(
        "keys={keys} count={count} user={user} loaded={}",
        session.is_loaded()
    ))
}

async fn logout(session: Session) -> &'static str {
    session.destroy();
    "bye"
}

async fn hold(State(gate): State<Gate>, session: Session) -> Result<&'static str, SessionError> {
    session.insert("held", true)?;
    gate.entered.notify_one();
    gate.release.notified().await;
    Ok("held")
}

fn routes(gate: Gate) -> Router {
    Router::new()
        .route("/init", post(init))
        .route("/insert/{n}", post(insert))
        .route("/increment", post(increment))
        .route("/summary", get(summary))
        .route("/logout", post(logout))
        .route("/hold", post(hold))
        .with_state(gate)
}

fn session_app(memcached: &Memcached, options: MemcacheSessionStorageOptions) -> Router {
    routes(Gate::default()).layer(SessionLayer::new(
        app::storage(&memcached.addr(), options),
        app::cookie(),
    ))
}

/// Creates a session and returns the `Cookie` header that names it.
async fn new_session(app: &Router) -> String {
    let reply = app::post(app, "/init", None).await;
    assert_eq!(reply.status, StatusCode::OK);
    let value = reply.session_cookie().expect("a new session sets a cookie");
    app::session_header(&value)
}

/// Sends `REQUESTS` requests to `path(n)` on one session, `IN_FLIGHT` at a time, from
/// several tasks on a multi-threaded runtime.
async fn hammer(app: &Router, cookie: &str, path: impl Fn(usize) -> String) -> Vec<Reply> {
    let limit = Arc::new(Semaphore::new(IN_FLIGHT));
    let tasks: Vec<_> = (0..REQUESTS)
        .map(|n| {
            let app = app.clone();
            let cookie = cookie.to_owned();
            let path = path(n);
            let limit = Arc::clone(&limit);
            tokio::spawn(async move {
                let _permit = limit.acquire_owned().await.expect("semaphore open");
                app::post(&app, &path, Some(&cookie)).await
            })
        })
        .collect();
    let mut replies = Vec::with_capacity(REQUESTS);
    for task in tasks {
        replies.push(task.await.expect("request task"));
    }
    replies
}

async fn summary_of(app: &Router, cookie: &str) -> String {
    let reply = app::get(app, "/summary", Some(cookie)).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    reply.body
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fifty_concurrent_requests_inserting_distinct_keys_all_survive() {
    let memcached = Memcached::start();
    let app = session_app(&memcached, MemcacheSessionStorageOptions::default());
    let cookie = new_session(&app).await;
    let replies = hammer(&app, &cookie, |n| format!("/insert/{n}")).await;
    let failed: Vec<_> = replies
        .iter()
        .filter(|reply| reply.status != StatusCode::OK)
        .map(|reply| (reply.status, reply.body.clone()))
        .collect();
    assert!(failed.is_empty(), "{failed:?}");
    let summary = summary_of(&app, &cookie).await;
    assert!(summary.starts_with("keys=50 "), "{summary}");
    assert!(
        summary.contains("user=mj"),
        "an untouched key was lost: {summary}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fifty_concurrent_increments_with_locking_count_fifty() {
    let memcached = Memcached::start();
    let options = MemcacheSessionStorageOptions::default()
        .locking(true)
        .lock_wait(Duration::from_secs(20));
    let app = session_app(&memcached, options);
    let cookie = new_session(&app).await;
    let replies = hammer(&app, &cookie, |_| "/increment".to_owned()).await;
    assert!(replies.iter().all(|reply| reply.status == StatusCode::OK));
    let summary = summary_of(&app, &cookie).await;
    assert!(summary.contains("count=50 "), "{summary}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn measured_increments_without_locking_are_merged_last_save_wins() {
    let memcached = Memcached::start();
    let app = session_app(&memcached, MemcacheSessionStorageOptions::default());
    let cookie = new_session(&app).await;
    let replies = hammer(&app, &cookie, |_| "/increment".to_owned()).await;
    let failed = replies
        .iter()
        .filter(|reply| reply.status != StatusCode::OK)
        .count();
    let summary = summary_of(&app, &cookie).await;
    let count: usize = summary
        .split_whitespace()
        .find_map(|part| part.strip_prefix("count="))
        .and_then(|count| count.parse().ok())
        .expect("a count");
    println!(
        "without locking: {count} of {REQUESTS} read-modify-write increments kept \
         ({} lost to the last-save-wins rule for a key both requests changed, {failed} failed)",
        REQUESTS - count
    );
    assert_eq!(failed, 0);
    assert!((1..=REQUESTS).contains(&count), "{summary}");
    assert!(
        summary.contains("user=mj"),
        "an untouched key was lost: {summary}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn logout_racing_twenty_writes_leaves_the_session_destroyed() {
    let memcached = Memcached::start();
    let app = session_app(&memcached, MemcacheSessionStorageOptions::default());
    let cookie = new_session(&app).await;
    let writes: Vec<_> = (0..20)
        .map(|n| {
            let app = app.clone();
            let cookie = cookie.clone();
            tokio::spawn(
                async move { app::post(&app, &format!("/insert/{n}"), Some(&cookie)).await },
            )
        })
        .collect();
    let logout = app::post(&app, "/logout", Some(&cookie)).await;
    assert_eq!(logout.status, StatusCode::OK);
    assert!(
        logout
            .set_cookies()
            .iter()
            .any(|header| app::expires_cookie(header)),
        "logout expires the cookie: {:?}",
        logout.set_cookies()
    );
    for write in writes {
        let reply = write.await.expect("write task");
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    }
    let after = app::get(&app, "/summary", Some(&cookie)).await;
    assert!(
        after.body.contains("loaded=false"),
        "the session came back: {}",
        after.body
    );
    assert!(
        after.body.contains("user= "),
        "the user came back: {}",
        after.body
    );
    let next = app::post(&app, "/insert/1", Some(&cookie)).await;
    let new_id = next.session_cookie().expect("a new session is created");
    assert_ne!(
        app::session_header(&new_id),
        cookie,
        "the old id was reused"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_sessions_never_block_each_other_under_locking() {
    let memcached = Memcached::start();
    let gate = Gate::default();
    let options = MemcacheSessionStorageOptions::default()
        .locking(true)
        .lock_wait(Duration::from_millis(300));
    let app = routes(gate.clone()).layer(SessionLayer::new(
        app::storage(&memcached.addr(), options),
        app::cookie(),
    ));
    let first = new_session(&app).await;
    let second = new_session(&app).await;

    let held = {
        let app = app.clone();
        let first = first.clone();
        tokio::spawn(async move { app::post(&app, "/hold", Some(&first)).await })
    };
    gate.entered.notified().await;

    // While the first session's lock is held: the second session goes through...
    let other = app::post(&app, "/insert/1", Some(&second)).await;
    assert_eq!(other.status, StatusCode::OK, "{}", other.body);
    // ...and a second request on the first session waits, then gives up with a 503.
    let blocked = app::post(&app, "/insert/2", Some(&first)).await;
    assert_eq!(
        blocked.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{}",
        blocked.body
    );

    gate.release.notify_one();
    assert_eq!(held.await.expect("held task").status, StatusCode::OK);
    // Once released, the first session takes requests again.
    let after = app::post(&app, "/insert/3", Some(&first)).await;
    assert_eq!(after.status, StatusCode::OK, "{}", after.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_client_that_goes_away_mid_request_does_not_leave_its_session_locked() {
    let memcached = Memcached::start();
    let gate = Gate::default();
    // The lock would outlive the test if it were left to expire on its own.
    let options = MemcacheSessionStorageOptions::default()
        .locking(true)
        .lock_wait(Duration::from_secs(2))
        .lock_expire(Duration::from_secs(120));
    let app = routes(gate.clone()).layer(SessionLayer::new(
        app::storage(&memcached.addr(), options),
        app::cookie(),
    ));
    let cookie = new_session(&app).await;
    let server = app::Server::start(app.clone()).await;

    let mut client = tokio::net::TcpStream::connect(server.addr())
        .await
        .expect("connect");
    tokio::io::AsyncWriteExt::write_all(
        &mut client,
        app::request_text("POST", "/hold", Some(&cookie)).as_bytes(),
    )
    .await
    .expect("send");
    // The handler holds the session's lock; the client goes away; hyper drops the request.
    gate.entered.notified().await;
    drop(client);

    let next = app::post(&app, "/insert/1", Some(&cookie)).await;
    assert_eq!(
        next.status,
        StatusCode::OK,
        "the session stayed locked: {}",
        next.body
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_request_that_outlives_its_lock_does_not_release_the_next_holders_lock() {
    let memcached = Memcached::start();
    let gate = Gate::default();
    // Two app servers on one memcached: A's locks expire after a second, B's after a
    // minute (memcached counts whole seconds, so a one-second lock may last much less).
    let server = |lock_expire: u64| {
        let options = MemcacheSessionStorageOptions::default()
            .locking(true)
            .lock_wait(Duration::from_secs(6))
            .lock_expire(Duration::from_secs(lock_expire));
        routes(gate.clone()).layer(SessionLayer::new(
            app::storage(&memcached.addr(), options),
            app::cookie(),
        ))
    };
    let (short_locks, long_locks) = (server(1), server(60));
    let cookie = new_session(&short_locks).await;

    // A holds the lock past its expiry; B then takes it over and holds it in turn.
    let first = {
        let (app, cookie) = (short_locks.clone(), cookie.clone());
        tokio::spawn(async move { app::post(&app, "/hold", Some(&cookie)).await })
    };
    gate.entered.notified().await;
    let second = {
        let (app, cookie) = (long_locks.clone(), cookie.clone());
        tokio::spawn(async move { app::post(&app, "/hold", Some(&cookie)).await })
    };
    gate.entered.notified().await;
    // A finishes now, while B holds the lock: A must not release B's lock.
    gate.release.notify_one();
    assert_eq!(first.await.expect("first").status, StatusCode::OK);

    let strict = MemcacheSessionStorageOptions::default()
        .locking(true)
        .lock_wait(Duration::from_millis(300));
    let probe = routes(Gate::default()).layer(SessionLayer::new(
        app::storage(&memcached.addr(), strict),
        app::cookie(),
    ));
    let third = app::post(&probe, "/insert/1", Some(&cookie)).await;
    assert_eq!(
        third.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "a third request got in while B held the lock: {}",
        third.body
    );
    gate.release.notify_one();
    assert_eq!(second.await.expect("second").status, StatusCode::OK);
}

/// Reads the session every `period` until `total` has passed or it is gone; returns how
/// long it stayed alive, and the renewed `Set-Cookie` headers seen.
async fn read_until_gone(
    app: &Router,
    cookie: &str,
    period: Duration,
    total: Duration,
) -> (Duration, Vec<String>) {
    let start = Instant::now();
    let mut renewals = Vec::new();
    while start.elapsed() < total {
        tokio::time::sleep(period).await;
        let reply = app::get(app, "/summary", Some(cookie)).await;
        if reply.body.contains("loaded=false") {
            return (start.elapsed(), renewals);
        }
        renewals.extend(reply.set_cookies());
    }
    (start.elapsed(), renewals)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sliding_expiration_keeps_a_session_read_every_700_ms_alive_past_twice_its_ttl() {
    // memcached counts time in whole seconds on a clock that can lag under load: a TTL of
    // 3 s (rather than 2) keeps the test meaningful on a busy machine.
    let memcached = Memcached::start();
    let options = MemcacheSessionStorageOptions::default()
        .ttl_seconds(3)
        .sliding_expiration(true);
    let app = session_app(&memcached, options);
    let cookie = new_session(&app).await;
    let total = Duration::from_secs(7);
    let (alive, renewals) = read_until_gone(&app, &cookie, Duration::from_millis(700), total).await;
    assert!(
        alive >= total,
        "the session died after {alive:?} despite reads"
    );
    assert!(!renewals.is_empty(), "the cookie was never renewed");
    let value = cookie.strip_prefix("__session=").expect("a session cookie");
    for renewal in &renewals {
        assert!(
            renewal.starts_with(&format!("__session={value};")),
            "{renewal}"
        );
        assert!(!renewal.contains("Max-Age=0"), "{renewal}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remix_expiration_lets_a_session_read_every_700_ms_die_after_its_ttl() {
    let memcached = Memcached::start();
    let options = MemcacheSessionStorageOptions::default().ttl_seconds(3);
    let app = session_app(&memcached, options);
    let cookie = new_session(&app).await;
    let (alive, renewals) = read_until_gone(
        &app,
        &cookie,
        Duration::from_millis(700),
        Duration::from_secs(7),
    )
    .await;
    assert!(
        alive < Duration::from_secs(6),
        "reads kept the session alive for {alive:?}"
    );
    assert!(
        renewals.is_empty(),
        "reads renewed the cookie: {renewals:?}"
    );
}
