//! HTTP-level tests of `SessionLayer`, the `Session` extractor and
//! `MemcacheSessionStorage` together: requests go through a real axum `Router`
//! (`tower::ServiceExt::oneshot`) to a real memcached started per test.
//!
//! They cover Remix's storage scenarios (persistence, destroy, no cookie when
//! unchanged, flash, id regeneration, complex values, invalid and unknown ids)
//! and its session-middleware scenarios (persistence, the handler's own
//! `Set-Cookie` headers kept), seen from the client: status, body and
//! `Set-Cookie` headers, plus memcached's own counters where "nothing was sent"
//! or "the item is gone" is the fact under test. Beyond Remix: cookie
//! attributes, hostile cookies, duplicated cookie names, secret rotation, 5xx
//! responses, a missing layer, TTL expiry and `use_unknown_ids`.

use std::io::{BufRead as _, BufReader, Write as _};
use std::net::TcpStream;
use std::time::Duration;

use axum::body::Body;
use axum::extract::Request;
use axum::http::header::COOKIE;
use axum::http::{HeaderValue, StatusCode};
use axum_session_memcache::{MemcacheSessionStorageOptions, SameSite, SessionCookie, SessionLayer};
use integration_tests::app::{
    self, Browser, COOKIE_NAME, Reply, assert_no_set_cookie, assert_ok, cookie_attributes,
    cookie_pair, expires_cookie, session_header,
};
use integration_tests::memcached::Memcached;
use session_core::{CookieSigner, SessionId};

/// The session id a signed session cookie value stands for, checked with
/// `signer`.
fn id_of(signer: &CookieSigner, cookie_value: &str) -> String {
    signer
        .verify(cookie_value)
        .unwrap_or_else(|| panic!("{cookie_value:?} does not verify"))
        .into_value()
}

/// A browser that has visited `/count` once: its session holds `count` = 1.
async fn browser_with_count(router: &axum::Router) -> Browser {
    let mut browser = Browser::new(router);
    let reply = browser.get("/count").await;
    assert_ok(&reply, "1", "first visit");
    assert!(
        browser.session_cookie().is_some(),
        "a session cookie was set"
    );
    browser
}

// ---------------------------------------------------------------------------
// Persistence and "no cookie when nothing changed"
// ---------------------------------------------------------------------------

#[tokio::test]
async fn counter_persists_across_requests_through_the_cookie() {
    let memcached = Memcached::start();
    let router = app::default_app(&memcached);
    let mut browser = Browser::new(&router);

    let mut cookies = Vec::new();
    for expected in 1..=3 {
        let reply = browser.get("/count").await;
        assert_ok(&reply, &expected.to_string(), "counter");
        cookies.push(
            reply
                .session_cookie()
                .expect("a changed session sets the cookie"),
        );
    }
    // The session keeps its id: the same signed value every time.
    assert_eq!(cookies[0], cookies[1]);
    assert_eq!(cookies[1], cookies[2]);
    assert_eq!(memcached.stat("curr_items"), 1, "one session, one item");
}

#[tokio::test]
async fn read_only_request_sets_no_cookie_and_writes_nothing() {
    let memcached = Memcached::start();
    let router = app::default_app(&memcached);
    let mut browser = browser_with_count(&router).await;

    let sets_before = memcached.stat("cmd_set");
    let reply = browser.get("/read").await;
    assert_ok(&reply, "1", "read-only request");
    assert_no_set_cookie(&reply, "read-only request");
    assert_eq!(
        memcached.stat("cmd_set"),
        sets_before,
        "nothing was written"
    );
}

#[tokio::test]
async fn fresh_session_that_is_only_read_sets_no_cookie_and_touches_no_memcached() {
    let memcached = Memcached::start();
    let router = app::default_app(&memcached);

    let before = app::command_counters(&memcached);
    let reply = app::get(&router, "/read", None).await;
    assert_ok(&reply, "none", "fresh session");
    assert_no_set_cookie(&reply, "fresh session, read only");
    assert_eq!(
        app::command_counters(&memcached),
        before,
        "without a cookie there is nothing to load, and nothing changed to save"
    );
    assert_eq!(memcached.stat("curr_items"), 0);
}

#[tokio::test]
async fn route_without_session_extractor_sets_no_cookie_and_sends_no_memcached_command() {
    let memcached = Memcached::start();
    let router = app::default_app(&memcached);
    let mut browser = browser_with_count(&router).await;

    let before = app::command_counters(&memcached);
    let reply = browser.get("/plain").await;
    assert_ok(&reply, "plain", "route without Session");
    assert_no_set_cookie(&reply, "route without Session");
    assert_eq!(
        app::command_counters(&memcached),
        before,
        "a route that never extracts Session costs no memcached command"
    );
}

#[tokio::test]
async fn session_extracted_twice_in_one_request_is_loaded_once() {
    let memcached = Memcached::start();
    let router = app::default_app(&memcached);
    let mut browser = browser_with_count(&router).await;

    let gets_before = memcached.stat("cmd_get");
    let sets_before = memcached.stat("cmd_set");
    let reply = browser.get("/twice").await;
    assert_ok(&reply, "2", "middleware and handler share one session");
    assert_eq!(memcached.stat("cmd_get") - gets_before, 1, "loaded once");
    assert_eq!(memcached.stat("cmd_set") - sets_before, 1, "saved once");

    assert_ok(&browser.get("/read").await, "2", "the change was saved");
}

#[tokio::test]
async fn existing_session_is_reported_loaded_and_a_new_one_is_not() {
    let memcached = Memcached::start();
    let router = app::default_app(&memcached);
    assert_ok(
        &app::get(&router, "/loaded", None).await,
        "false",
        "no cookie",
    );
    let mut browser = browser_with_count(&router).await;
    assert_ok(&browser.get("/loaded").await, "true", "with the cookie");
}

#[tokio::test]
async fn complex_values_survive_a_round_trip_over_http() {
    let memcached = Memcached::start();
    let router = app::default_app(&memcached);
    let mut browser = Browser::new(&router);

    assert_ok(&browser.post("/complex").await, "stored", "store");
    let reply = browser.get("/complex").await;
    assert_eq!(reply.status, StatusCode::OK);
    let read: serde_json::Value = serde_json::from_str(&reply.body).expect("JSON body");
    assert_eq!(read, app::complex_value());
}

// ---------------------------------------------------------------------------
// Cookie attributes and value
// ---------------------------------------------------------------------------

#[tokio::test]
async fn default_set_cookie_is_httponly_samesite_lax_path_root_and_verifies_to_an_id() {
    let memcached = Memcached::start();
    let router = app::default_app(&memcached);

    let reply = app::get(&router, "/count", None).await;
    assert_ok(&reply, "1", "first visit");
    let header = reply.set_cookie(COOKIE_NAME).expect("session cookie set");
    let value = reply.session_cookie().expect("session cookie value");
    assert_eq!(
        header,
        format!("__session={value}; HttpOnly; SameSite=Lax; Path=/")
    );

    let id = id_of(&app::signer(), &value);
    assert!(SessionId::parse(&id).is_some(), "{id:?} is a session id");
    assert_eq!(id.len(), 43, "256 random bits, URL-safe base64: {id:?}");
    // Signed as Remix signs: base64(id) "." base64-no-pad(HMAC).
    assert_eq!(app::signer().sign(&id), value);
}

#[tokio::test]
async fn customised_session_cookie_shows_every_attribute() {
    let memcached = Memcached::start();
    let cookie = SessionCookie::new(["custom secret"])
        .expect("a secret")
        .name("sid")
        .expect("a valid name")
        .path("/app")
        .expect("a valid path")
        .domain("example.com")
        .expect("a valid domain")
        .secure(true)
        .same_site(SameSite::Strict)
        .partitioned(true)
        .max_age(Duration::from_secs(3600));
    let router = app::app(app::default_storage(&memcached), cookie);

    let reply = app::get(&router, "/count", None).await;
    assert_ok(&reply, "1", "first visit");
    assert!(reply.set_cookie(COOKIE_NAME).is_none(), "renamed cookie");
    let header = reply.set_cookie("sid").expect("the cookie is named sid");
    let attributes = cookie_attributes(&header);
    for expected in [
        "Path=/app",
        "Domain=example.com",
        "Secure",
        "HttpOnly",
        "SameSite=Strict",
        "Partitioned",
        "Max-Age=3600",
    ] {
        assert!(
            attributes.iter().any(|attribute| attribute == expected),
            "{expected} missing from {header}"
        );
    }

    let value = reply.cookie_value("sid").expect("value");
    let custom = CookieSigner::new(["custom secret"]).expect("a secret");
    assert!(SessionId::parse(&id_of(&custom, &value)).is_some());
    assert!(
        app::signer().verify(&value).is_none(),
        "signed with the custom secret only"
    );

    // The renamed cookie finds the session again.
    let reply = app::get(&router, "/count", Some(&format!("sid={value}"))).await;
    assert_ok(&reply, "2", "second visit with sid");
    // A cookie under the default name is not the session cookie any more.
    let reply = app::get(&router, "/read", Some(&session_header(&value))).await;
    assert_ok(
        &reply,
        "none",
        "__session is ignored when the cookie is named sid",
    );
}

#[tokio::test]
async fn http_only_can_be_turned_off_and_same_site_none_is_written() {
    let memcached = Memcached::start();
    let cookie = app::cookie()
        .http_only(false)
        .secure(true)
        .same_site(SameSite::None);
    let router = app::app(app::default_storage(&memcached), cookie);

    let reply = app::get(&router, "/count", None).await;
    let header = reply.set_cookie(COOKIE_NAME).expect("session cookie set");
    let attributes = cookie_attributes(&header);
    assert!(!attributes.iter().any(|a| a == "HttpOnly"), "{header}");
    assert!(attributes.iter().any(|a| a == "SameSite=None"), "{header}");
    assert!(attributes.iter().any(|a| a == "Secure"), "{header}");
}

// ---------------------------------------------------------------------------
// Destroy
// ---------------------------------------------------------------------------

#[tokio::test]
async fn destroy_removes_the_stored_data_and_expires_the_cookie_keeping_name_path_domain() {
    let memcached = Memcached::start();
    let cookie = app::cookie()
        .path("/")
        .and_then(|cookie| cookie.domain("example.com"))
        .expect("a valid path and domain");
    let router = app::app(app::default_storage(&memcached), cookie);
    let mut browser = browser_with_count(&router).await;
    let old_cookie = browser.session_cookie().expect("cookie").to_owned();
    let keys = stored_keys(&memcached);
    assert_eq!(keys.len(), 1, "one session stored: {keys:?}");
    assert_ne!(stored_value(&memcached, &keys[0]), None);

    let reply = browser.post("/destroy").await;
    assert_ok(&reply, "destroyed", "destroy");
    let header = reply
        .set_cookie(COOKIE_NAME)
        .expect("the cookie is expired");
    assert_eq!(cookie_pair(&header), Some((COOKIE_NAME, "")), "{header}");
    assert!(expires_cookie(&header), "Max-Age=0 in {header}");
    let attributes = cookie_attributes(&header);
    assert!(attributes.iter().any(|a| a == "Path=/"), "{header}");
    assert!(
        attributes.iter().any(|a| a == "Domain=example.com"),
        "{header}"
    );

    // The data is gone: the item is deleted, or replaced by a short-lived
    // `null` tombstone (which Remix, too, reads as "no session").
    let after = stored_value(&memcached, &keys[0]);
    assert!(
        after.is_none() || after.as_deref() == Some("null"),
        "the destroyed session's data is still stored: {after:?}"
    );
    assert!(browser.session_cookie().is_none(), "the browser dropped it");

    // A client that keeps sending the old cookie gets a fresh session.
    let old = session_header(&old_cookie);
    assert_ok(
        &app::get(&router, "/read", Some(&old)).await,
        "none",
        "old cookie",
    );
    assert_ok(
        &app::get(&router, "/loaded", Some(&old)).await,
        "false",
        "old cookie",
    );
    let reply = app::get(&router, "/count", Some(&old)).await;
    assert_ok(&reply, "1", "counting starts over");
    let new_cookie = reply.session_cookie().expect("a new session cookie");
    assert_ne!(
        id_of(&app::signer(), &new_cookie),
        id_of(&app::signer(), &old_cookie),
        "the destroyed id is not reused"
    );
}

// ---------------------------------------------------------------------------
// Flash
// ---------------------------------------------------------------------------

#[tokio::test]
async fn flash_is_visible_on_the_next_request_exactly_once() {
    let memcached = Memcached::start();
    let router = app::default_app(&memcached);
    let mut browser = Browser::new(&router);

    let reply = browser.post("/flash").await;
    assert_ok(&reply, "flashed", "request 1 flashes");
    assert!(
        reply.session_cookie().is_some(),
        "flashing saves the session"
    );

    let reply = browser.get("/message").await;
    assert_ok(&reply, "hello", "request 2 sees the flash");
    assert!(
        reply.session_cookie().is_some(),
        "reading a flash consumes it, which is a change"
    );

    let reply = browser.get("/message").await;
    assert_ok(&reply, "none", "request 3: the flash is gone");
    assert_no_set_cookie(&reply, "nothing left to consume");
}

// ---------------------------------------------------------------------------
// Id regeneration
// ---------------------------------------------------------------------------

#[tokio::test]
async fn login_with_regenerate_id_true_issues_a_new_cookie_and_orphans_the_old_one() {
    let memcached = Memcached::start();
    let router = app::default_app(&memcached);
    let mut browser = browser_with_count(&router).await;
    let before_login = browser.clone();
    let old_cookie = browser.session_cookie().expect("cookie").to_owned();

    let reply = browser.post("/login").await;
    assert_ok(&reply, "logged in", "login");
    let new_cookie = reply.session_cookie().expect("login sets a cookie");
    assert_ne!(new_cookie, old_cookie);
    assert_ne!(
        id_of(&app::signer(), &new_cookie),
        id_of(&app::signer(), &old_cookie)
    );

    assert_ok(&browser.get("/user").await, "mj", "new cookie: logged in");
    assert_ok(
        &browser.get("/read").await,
        "1",
        "new cookie keeps the data",
    );

    let mut old = before_login;
    assert_ok(&old.get("/read").await, "none", "old cookie: fresh session");
    assert_ok(&old.get("/user").await, "none", "old cookie: not logged in");
    assert_ok(
        &old.get("/loaded").await,
        "false",
        "old cookie: nothing stored",
    );
    assert_eq!(memcached.stat("curr_items"), 1, "only the new id is stored");
}

#[tokio::test]
async fn login_with_regenerate_id_false_leaves_the_old_cookie_readable() {
    let memcached = Memcached::start();
    let router = app::default_app(&memcached);
    let mut browser = browser_with_count(&router).await;
    let mut old = browser.clone();
    let old_cookie = browser.session_cookie().expect("cookie").to_owned();

    let reply = browser.post("/login-keep-old").await;
    assert_ok(&reply, "logged in", "login");
    let new_cookie = reply.session_cookie().expect("login sets a cookie");
    assert_ne!(new_cookie, old_cookie);

    assert_ok(&browser.get("/user").await, "mj", "new cookie: logged in");
    assert_ok(
        &browser.get("/read").await,
        "1",
        "new cookie keeps the data",
    );
    assert_ok(
        &old.get("/read").await,
        "1",
        "old cookie still reads the data",
    );
    assert_ok(
        &old.get("/user").await,
        "none",
        "old data is from before login",
    );
    assert_eq!(memcached.stat("curr_items"), 2, "both ids are stored");
}

// ---------------------------------------------------------------------------
// The handler's own cookies
// ---------------------------------------------------------------------------

#[tokio::test]
async fn handler_set_cookie_headers_are_kept_next_to_the_session_cookie() {
    let memcached = Memcached::start();
    let router = app::default_app(&memcached);

    let reply = app::get(&router, "/own-cookies", None).await;
    assert_ok(&reply, "1", "handler with its own cookies");
    let set_cookies = reply.set_cookies();
    assert_eq!(set_cookies.len(), 3, "{set_cookies:?}");
    assert!(
        set_cookies.contains(&"theme=dark".to_owned()),
        "{set_cookies:?}"
    );
    assert!(
        set_cookies.contains(&"lang=en; Path=/".to_owned()),
        "{set_cookies:?}"
    );
    assert!(reply.session_cookie().is_some(), "{set_cookies:?}");
}

// ---------------------------------------------------------------------------
// Hostile cookies
// ---------------------------------------------------------------------------

/// Sends `GET path` with a raw `Cookie` header (any bytes).
async fn get_with_raw_cookie(router: &axum::Router, path: &str, cookie: &[u8]) -> Reply {
    let request = Request::builder()
        .uri(path)
        .header(
            COOKIE,
            HeaderValue::from_bytes(cookie).expect("a header value"),
        )
        .body(Body::empty())
        .expect("a request");
    app::send(router, request).await
}

#[tokio::test]
async fn forged_tampered_unsigned_truncated_oversized_or_non_utf8_cookies_give_a_fresh_session() {
    let memcached = Memcached::start();
    let router = app::default_app(&memcached);
    let signer = app::signer();

    // The victim: a logged-in session.
    let mut victim = browser_with_count(&router).await;
    assert_ok(&victim.post("/login").await, "logged in", "victim logs in");
    let victim_cookie = victim.session_cookie().expect("cookie").to_owned();
    let victim_id = id_of(&signer, &victim_cookie);
    let (encoded, signature) = victim_cookie.rsplit_once('.').expect("value.signature");

    let other_cookie = signer.sign("another-session-id");
    let (_, other_signature) = other_cookie.rsplit_once('.').expect("value.signature");
    let mut flipped_signature = signature.to_owned();
    let last = flipped_signature.pop().expect("a signature");
    flipped_signature.push(if last == 'A' { 'B' } else { 'A' });

    let hostile: Vec<(&str, Vec<u8>)> = vec![
        (
            "forged with another secret",
            CookieSigner::new(["not the app's secret"])
                .expect("a secret")
                .sign(&victim_id)
                .into_bytes(),
        ),
        (
            "signature tampered",
            format!("{encoded}.{flipped_signature}").into_bytes(),
        ),
        (
            "value swapped under another cookie's signature",
            format!("{encoded}.{other_signature}").into_bytes(),
        ),
        ("unsigned base64 id", encoded.as_bytes().to_vec()),
        ("unsigned raw id", victim_id.clone().into_bytes()),
        (
            "signature stripped, dot kept",
            format!("{encoded}.").into_bytes(),
        ),
        (
            "truncated by one character",
            victim_cookie.as_bytes()[..victim_cookie.len() - 1].to_vec(),
        ),
        (
            "truncated to half",
            victim_cookie.as_bytes()[..victim_cookie.len() / 2].to_vec(),
        ),
        ("8 KB of garbage", "A".repeat(8 * 1024).into_bytes()),
        (
            "8 KB after a valid cookie",
            format!("{victim_cookie}{}", "A".repeat(8 * 1024)).into_bytes(),
        ),
        (
            "validly signed 8 KB id",
            signer.sign(&"i".repeat(8 * 1024)).into_bytes(),
        ),
        ("validly signed empty id", signer.sign("").into_bytes()),
        ("non-UTF-8 bytes", b"\xff\xfe\xfd\x80garbage".to_vec()),
    ];

    for (what, value) in &hostile {
        let mut header = format!("{COOKIE_NAME}=").into_bytes();
        header.extend_from_slice(value);

        let reply = get_with_raw_cookie(&router, "/user", &header).await;
        assert_ok(&reply, "none", what);
        let reply = get_with_raw_cookie(&router, "/loaded", &header).await;
        assert_ok(&reply, "false", what);

        let reply = get_with_raw_cookie(&router, "/count", &header).await;
        assert_ok(&reply, "1", what);
        let issued = reply
            .session_cookie()
            .expect("a fresh session is issued a cookie");
        assert_ne!(
            id_of(&signer, &issued),
            victim_id,
            "{what}: victim id reused"
        );
    }

    // The victim's session was never touched.
    assert_ok(&victim.get("/user").await, "mj", "victim still logged in");
    assert_ok(&victim.get("/read").await, "1", "victim's data intact");
}

#[tokio::test]
async fn duplicated_cookie_name_uses_the_first_occurrence() {
    let memcached = Memcached::start();
    let router = app::default_app(&memcached);
    let browser = browser_with_count(&router).await;
    let valid = browser.session_cookie().expect("cookie").to_owned();

    // Valid first, garbage second: the valid one is read.
    let header = format!("{COOKIE_NAME}={valid}; {COOKIE_NAME}=garbage");
    assert_ok(
        &app::get(&router, "/read", Some(&header)).await,
        "1",
        "valid first",
    );

    // Garbage first, valid second: the garbage one is read, a fresh session.
    let header = format!("{COOKIE_NAME}=garbage; {COOKIE_NAME}={valid}");
    assert_ok(
        &app::get(&router, "/read", Some(&header)).await,
        "none",
        "garbage first",
    );

    // The same across two Cookie headers.
    for (first, second, expected) in [(&*valid, "garbage", "1"), ("garbage", &*valid, "none")] {
        let request = Request::builder()
            .uri("/read")
            .header(COOKIE, format!("other=1; {COOKIE_NAME}={first}"))
            .header(COOKIE, format!("{COOKIE_NAME}={second}"))
            .body(Body::empty())
            .expect("a request");
        assert_ok(
            &app::send(&router, request).await,
            expected,
            "two Cookie headers",
        );
    }
}

#[tokio::test]
async fn signed_but_unknown_id_gets_a_fresh_session_by_default() {
    let memcached = Memcached::start();
    let router = app::default_app(&memcached);
    let unknown = "4f9d6b3e-1c2a-4b7e-9d8f-0a1b2c3d4e5f";
    let header = session_header(&app::signer().sign(unknown));

    assert_ok(
        &app::get(&router, "/loaded", Some(&header)).await,
        "false",
        "unknown id",
    );
    let reply = app::get(&router, "/count", Some(&header)).await;
    assert_ok(&reply, "1", "unknown id");
    let issued = reply.session_cookie().expect("cookie");
    assert_ne!(
        id_of(&app::signer(), &issued),
        unknown,
        "unknown ids are not reused"
    );
}

#[tokio::test]
async fn signed_but_unknown_id_is_kept_with_use_unknown_ids() {
    let memcached = Memcached::start();
    let storage = app::storage(
        &memcached.addr(),
        MemcacheSessionStorageOptions::default().use_unknown_ids(true),
    );
    let router = app::app(storage, app::cookie());
    let unknown = "4f9d6b3e-1c2a-4b7e-9d8f-0a1b2c3d4e5f";
    let header = session_header(&app::signer().sign(unknown));

    let reply = app::get(&router, "/count", Some(&header)).await;
    assert_ok(&reply, "1", "unknown id, reused");
    let issued = reply.session_cookie().expect("cookie");
    assert_eq!(id_of(&app::signer(), &issued), unknown, "the id is kept");

    assert_ok(
        &app::get(&router, "/read", Some(&header)).await,
        "1",
        "stored under it",
    );
    assert_ok(
        &app::get(&router, "/loaded", Some(&header)).await,
        "true",
        "now known",
    );
}

/// Sends a text-protocol request to memcached and reads reply lines up to and
/// including the first line that is one of `last_lines`.
fn memcached_exchange(memcached: &Memcached, request: &[u8], last_lines: &[&str]) -> Vec<String> {
    let mut stream = TcpStream::connect(memcached.addr()).expect("connect to memcached");
    stream
        .set_read_timeout(Some(app::HANG_GUARD))
        .expect("read timeout");
    stream.write_all(request).expect("send to memcached");
    let mut reader = BufReader::new(stream);
    let mut lines = Vec::new();
    loop {
        let mut line = String::new();
        let read = reader.read_line(&mut line).expect("read from memcached");
        assert!(read > 0, "memcached closed the connection after {lines:?}");
        let line = line.trim_end().to_owned();
        let last = last_lines.contains(&line.as_str());
        lines.push(line);
        if last {
            return lines;
        }
    }
}

/// The keys memcached holds, from `lru_crawler metadump all` (URL-decoded `:`).
fn stored_keys(memcached: &Memcached) -> Vec<String> {
    memcached_exchange(memcached, b"lru_crawler metadump all\r\n", &["END"])
        .iter()
        .filter_map(|line| line.strip_prefix("key="))
        .map(|rest| rest.split(' ').next().unwrap_or("").replace("%3A", ":"))
        .collect()
}

/// The value stored under `key`, if any.
fn stored_value(memcached: &Memcached, key: &str) -> Option<String> {
    let lines = memcached_exchange(memcached, format!("get {key}\r\n").as_bytes(), &["END"]);
    match lines.as_slice() {
        [end] if end == "END" => None,
        [header, value, end] if header.starts_with("VALUE ") && end == "END" => Some(value.clone()),
        other => panic!("unexpected reply to get: {other:?}"),
    }
}

#[tokio::test]
async fn corrupt_stored_session_data_gives_a_fresh_session_instead_of_an_error() {
    let memcached = Memcached::start();
    let router = app::default_app(&memcached);

    for corrupt in [
        &b"not json"[..],
        b"{\"count\":1}",
        b"[{\"count\":1}]",
        b"[1,{}]",
        b"\xff\xfe",
    ] {
        memcached.flush_all();
        let mut browser = browser_with_count(&router).await;
        let old_cookie = browser.session_cookie().expect("cookie").to_owned();
        let keys = stored_keys(&memcached);
        assert_eq!(keys.len(), 1, "{keys:?}");
        assert!(keys[0].starts_with("remix:session:"), "{keys:?}");

        let mut set = format!("set {} 0 0 {}\r\n", keys[0], corrupt.len()).into_bytes();
        set.extend_from_slice(corrupt);
        set.extend_from_slice(b"\r\n");
        assert_eq!(
            memcached_exchange(&memcached, &set, &["STORED"]),
            ["STORED"],
            "overwrite with {corrupt:?}"
        );

        let what = format!("stored data {:?}", String::from_utf8_lossy(corrupt));
        assert_ok(&browser.get("/read").await, "none", &what);
        assert_ok(&browser.get("/loaded").await, "false", &what);
        let reply = browser.get("/count").await;
        assert_ok(&reply, "1", &what);
        let new_cookie = reply.session_cookie().expect("the fresh session is saved");
        assert_ne!(new_cookie, old_cookie, "{what}: a new id");
        assert_ok(&browser.get("/read").await, "1", &what);
    }
}

// ---------------------------------------------------------------------------
// Secret rotation
// ---------------------------------------------------------------------------

#[tokio::test]
async fn cookie_signed_with_an_old_secret_is_reissued_signed_with_the_new_one() {
    let memcached = Memcached::start();
    let storage = app::default_storage(&memcached);
    let before_rotation = app::app(
        storage.clone(),
        SessionCookie::new(["old"]).expect("a secret"),
    );
    let after_rotation = app::app(
        storage,
        SessionCookie::new(["new", "old"]).expect("secrets"),
    );

    let reply = app::get(&before_rotation, "/count", None).await;
    let old_value = reply.session_cookie().expect("cookie");
    let id = id_of(&CookieSigner::new(["old"]).expect("a secret"), &old_value);

    let sets_before = memcached.stat("cmd_set");
    let reply = app::get(&after_rotation, "/read", Some(&session_header(&old_value))).await;
    assert_ok(&reply, "1", "old cookie still reads the session");
    let reissued = reply
        .session_cookie()
        .expect("the cookie is re-issued although the session did not change");
    let new_only = CookieSigner::new(["new"]).expect("a secret");
    assert_eq!(id_of(&new_only, &reissued), id, "same id, signed with new");
    assert!(
        CookieSigner::new(["old"])
            .expect("a secret")
            .verify(&reissued)
            .is_none(),
        "not signed with old"
    );
    assert_eq!(
        memcached.stat("cmd_set"),
        sets_before,
        "re-signing writes nothing"
    );

    let reply = app::get(&after_rotation, "/read", Some(&session_header(&reissued))).await;
    assert_ok(&reply, "1", "the re-issued cookie reads the session");
    assert_no_set_cookie(
        &reply,
        "a cookie signed with the first secret is not re-issued",
    );
}

#[tokio::test]
async fn cookie_signed_with_an_old_secret_for_a_session_that_no_longer_exists_is_not_reissued() {
    let memcached = Memcached::start();
    let router = app::app(
        app::default_storage(&memcached),
        SessionCookie::new(["new", "old"]).expect("secrets"),
    );
    let stale = CookieSigner::new(["old"])
        .expect("a secret")
        .sign("a-session-memcached-never-had");

    let reply = app::get(&router, "/read", Some(&session_header(&stale))).await;
    assert_ok(&reply, "none", "a fresh session");
    assert_no_set_cookie(&reply, "re-signing a cookie for a missing session");
}

// ---------------------------------------------------------------------------
// Server errors and a missing layer
// ---------------------------------------------------------------------------

#[tokio::test]
async fn server_error_response_sets_no_cookie_and_keeps_the_stored_session() {
    let memcached = Memcached::start();
    let router = app::default_app(&memcached);
    let mut browser = browser_with_count(&router).await;

    let sets_before = memcached.stat("cmd_set");
    let reply = browser.get("/fail").await;
    assert_eq!(reply.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(reply.body, "failed", "the handler's own response");
    assert_no_set_cookie(&reply, "5xx");
    assert_eq!(memcached.stat("cmd_set"), sets_before, "nothing written");
    assert_ok(
        &browser.get("/read").await,
        "1",
        "the change to 999 was dropped",
    );

    // A fresh session changed by a failing handler is not stored either.
    let reply = app::get(&router, "/fail", None).await;
    assert_eq!(reply.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_no_set_cookie(&reply, "5xx on a fresh session");
    assert_eq!(
        memcached.stat("curr_items"),
        1,
        "only the browser's session"
    );
}

#[tokio::test]
async fn session_extractor_without_the_layer_answers_500_naming_session_layer() {
    let router = app::routes();
    let reply = app::get(&router, "/count", None).await;
    assert_eq!(reply.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(reply.body.contains("SessionLayer"), "{:?}", reply.body);
    assert_no_set_cookie(&reply, "no layer");
}

#[tokio::test]
async fn optional_session_without_the_layer_lets_the_handler_run_with_none() {
    let router = app::routes();
    assert_ok(
        &app::get(&router, "/optional", None).await,
        "none",
        "no layer",
    );

    let memcached = Memcached::start();
    let router = app::default_app(&memcached);
    assert_ok(
        &app::get(&router, "/optional", None).await,
        "some",
        "with the layer",
    );
}

#[tokio::test]
async fn layer_works_with_a_plain_router_built_in_the_test() {
    // The layer applied by hand, on a route defined here, rather than through
    // the shared app: the smallest app a user writes.
    let memcached = Memcached::start();
    let router = axum::Router::new()
        .route(
            "/",
            axum::routing::get(|session: axum_session_memcache::Session| async move {
                let visits = session.get::<u32>("visits").ok().flatten().unwrap_or(0) + 1;
                session
                    .insert("visits", visits)
                    .map(|()| format!("Count: {visits}"))
            }),
        )
        .layer(SessionLayer::new(
            app::default_storage(&memcached),
            app::cookie(),
        ));
    let mut browser = Browser::new(&router);
    for expected in ["Count: 1", "Count: 2", "Count: 3"] {
        assert_ok(
            &browser.get("/").await,
            expected,
            "Remix middleware counter",
        );
    }
}

// ---------------------------------------------------------------------------
// TTL
// ---------------------------------------------------------------------------

#[tokio::test]
async fn session_with_a_one_second_ttl_is_gone_after_it_expires() {
    let memcached = Memcached::start();
    let short = app::app(
        app::storage(
            &memcached.addr(),
            MemcacheSessionStorageOptions::default()
                .key_prefix("short:")
                .ttl_seconds(1),
        ),
        app::cookie(),
    );
    // A control on the same memcached without TTL: it must survive the wait,
    // so that "gone" is the TTL's doing, not a cookie that never worked.
    let forever = app::app(
        app::storage(
            &memcached.addr(),
            MemcacheSessionStorageOptions::default().key_prefix("forever:"),
        ),
        app::cookie(),
    );
    let mut expiring = browser_with_count(&short).await;
    let mut control = browser_with_count(&forever).await;

    tokio::time::sleep(Duration::from_millis(2500)).await;
    // memcached's clock ticks once a second; poll (read only, so the TTL is
    // not renewed) a bounded number of times.
    let mut last = String::new();
    for _ in 0..20 {
        let reply = expiring.get("/read").await;
        assert_eq!(reply.status, StatusCode::OK);
        last = reply.body;
        if last == "none" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert_eq!(last, "none", "the session outlived its 1 s TTL");
    assert_ok(
        &expiring.get("/loaded").await,
        "false",
        "expired: a fresh session",
    );
    assert_ok(&control.get("/read").await, "1", "no TTL: still there");
}
