//! The example app scaled out: two `example-app` processes (A and B) sharing one
//! real memcached and one signing secret, driven over raw HTTP/1.1.
//!
//! - One cookie jar sees one visit counter whichever process answers.
//! - A login on A (CSRF token, new session id, flash) is seen on B; the flash is
//!   shown exactly once across both; the pre-login id is dead everywhere.
//! - A logout on B ends the session on A too, even for a replayed cookie.
//! - CSRF tokens are shared state: B refuses a forged token and accepts A's.
//! - Malformed session cookies (forged, tampered, truncated, oversized,
//!   duplicated, empty, not UTF-8, validly signed but unknown) each get a fresh,
//!   working session and a 2xx: never a 5xx, never another user's session, and
//!   that user's session stays intact.
//! - A wrong password flashes an error that the other app shows; a username
//!   with markup is escaped on the other app's pages.
//! - `/healthz` on both reports memcached as reachable; while memcached is
//!   down both apps answer 503 (pages with `Retry-After`, `/healthz` saying
//!   why), and both recover once it is back.

use base64::Engine as _;
use integration_tests::app::{CookieJar, Reply, percent_encode};
use integration_tests::example_app::{ExampleApp, exchange};
use integration_tests::memcached::Memcached;
use session_core::CookieSigner;

/// The secret both apps sign cookies with.
const SECRET: &str = "scale-out-test-secret-of-at-least-32-bytes";

/// The example app's session cookie name (its default).
const SESSION_COOKIE: &str = "__session";

/// The password the example app accepts.
const PASSWORD: &str = "letmein";

/// A memcached and two apps A and B using it with the same secret.
///
/// Destructure in this order so that the apps stop before memcached.
fn memcached_and_two_apps() -> (Memcached, ExampleApp, ExampleApp) {
    let memcached = Memcached::start();
    let a = ExampleApp::start(&memcached.addr(), SECRET);
    let b = ExampleApp::start(&memcached.addr(), SECRET);
    (memcached, a, b)
}

/// An HTTP/1.1 request with `Connection: close`, optional raw `Cookie` header
/// bytes and an optional form body.
fn request(method: &str, path: &str, cookie: Option<&[u8]>, form: Option<&str>) -> Vec<u8> {
    let mut request =
        format!("{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n")
            .into_bytes();
    if let Some(cookie) = cookie {
        request.extend_from_slice(b"Cookie: ");
        request.extend_from_slice(cookie);
        request.extend_from_slice(b"\r\n");
    }
    if form.is_some() {
        request.extend_from_slice(b"Content-Type: application/x-www-form-urlencoded\r\n");
    }
    let body = form.unwrap_or_default();
    request.extend_from_slice(format!("Content-Length: {}\r\n\r\n{body}", body.len()).as_bytes());
    request
}

/// `application/x-www-form-urlencoded` encoding of `fields`.
fn form(fields: &[(&str, &str)]) -> String {
    fields
        .iter()
        .map(|(name, value)| format!("{}={}", percent_encode(name), percent_encode(value)))
        .collect::<Vec<_>>()
        .join("&")
}

/// A client that keeps cookies as a browser does, for any number of apps on
/// 127.0.0.1 (cookies do not depend on the port).
#[derive(Clone, Debug, Default)]
struct Client {
    jar: CookieJar,
}

impl Client {
    fn get(&mut self, app: &ExampleApp, path: &str) -> Reply {
        self.send(app, "GET", path, None)
    }

    fn post(&mut self, app: &ExampleApp, path: &str, fields: &[(&str, &str)]) -> Reply {
        self.send(app, "POST", path, Some(&form(fields)))
    }

    fn send(&mut self, app: &ExampleApp, method: &str, path: &str, form: Option<&str>) -> Reply {
        let cookie = self.jar.header();
        let reply = exchange(
            app.addr(),
            &request(method, path, cookie.as_deref().map(str::as_bytes), form),
        );
        assert!(
            !reply.status.is_server_error(),
            "{method} {path} on {}: {} {}\napp log:\n{}",
            app.url(),
            reply.status,
            reply.body,
            app.log()
        );
        self.jar.update(&reply);
        reply
    }

    /// The session cookie's value, if held.
    fn session(&self) -> Option<String> {
        self.jar.get(SESSION_COOKIE).map(str::to_owned)
    }

    /// A client holding only the session cookie `value`.
    fn with_session(value: &str) -> Self {
        Self {
            jar: CookieJar::holding(SESSION_COOKIE, value),
        }
    }
}

/// The text inside the `<p>` with `id`, tags removed.
fn text_by_id(body: &str, id: &str) -> Option<String> {
    let start = body.find(&format!("id=\"{id}\""))?;
    let rest = &body[start..];
    let rest = &rest[rest.find('>')? + 1..];
    let inner = &rest[..rest.find("</p>")?];
    let mut text = String::new();
    let mut in_tag = false;
    for character in inner.chars() {
        match character {
            '<' => in_tag = true,
            '>' => in_tag = false,
            _ if !in_tag => text.push(character),
            _ => {}
        }
    }
    Some(text)
}

/// The visit counter on a home page.
fn visits(reply: &Reply) -> u64 {
    assert_eq!(reply.status, 200, "the home page: {}", reply.body);
    text_by_id(&reply.body, "visits")
        .and_then(|count| count.trim().parse().ok())
        .unwrap_or_else(|| panic!("no visit counter in {}", reply.body))
}

/// The CSRF token of the page's form.
fn csrf(reply: &Reply) -> String {
    const MARKER: &str = "name=\"csrf\" value=\"";
    let start = reply
        .body
        .find(MARKER)
        .unwrap_or_else(|| panic!("no CSRF token in {}", reply.body))
        + MARKER.len();
    let end = reply.body[start..].find('"').expect("the token's end") + start;
    reply.body[start..end].to_owned()
}

/// Asserts that `reply` is a `303 See Other` to `location`.
fn assert_redirect(reply: &Reply, location: &str) {
    assert_eq!(
        (reply.status.as_u16(), reply.header("location")),
        (303, Some(location)),
        "expected a 303 to {location}; got {} with {:?}",
        reply.status,
        reply.headers
    );
}

/// Logs `client` in as `username` on `app` (form from `app` too), returning
/// the login response.
fn log_in(client: &mut Client, app: &ExampleApp, username: &str) -> Reply {
    let page = client.get(app, "/login");
    assert_eq!(page.status, 200, "the login form: {}", page.body);
    let token = csrf(&page);
    client.post(
        app,
        "/login",
        &[
            ("username", username),
            ("password", PASSWORD),
            ("csrf", &token),
        ],
    )
}

#[test]
fn visit_counter_counts_across_both_apps_with_one_cookie() {
    let (_memcached, a, b) = memcached_and_two_apps();
    let mut client = Client::default();

    assert_eq!(visits(&client.get(&a, "/")), 1);
    let cookie = client
        .session()
        .expect("the first visit sets the session cookie");
    assert_eq!(visits(&client.get(&b, "/")), 2);
    assert_eq!(visits(&client.get(&a, "/")), 3);
    assert_eq!(visits(&client.get(&b, "/")), 4);
    assert_eq!(
        client.session(),
        Some(cookie),
        "the session id stays the same"
    );

    let mut other = Client::default();
    assert_eq!(
        visits(&other.get(&b, "/")),
        1,
        "another client has its own counter"
    );
    assert_eq!(visits(&client.get(&a, "/")), 5);
}

#[test]
fn login_on_one_app_shows_the_dashboard_on_the_other_and_logout_there_ends_it_on_both() {
    let (_memcached, a, b) = memcached_and_two_apps();
    let mut client = Client::default();

    let login_page = client.get(&a, "/login");
    let anonymous = client.session().expect("the login form starts a session");
    let token = csrf(&login_page);
    let login = client.post(
        &a,
        "/login",
        &[
            ("username", "alice"),
            ("password", PASSWORD),
            ("csrf", &token),
        ],
    );
    assert_redirect(&login, "/dashboard");
    let logged_in = client.session().expect("the login sets the session cookie");
    assert_ne!(logged_in, anonymous, "logging in issues a new session id");

    let dashboard = client.get(&b, "/dashboard");
    assert_eq!(dashboard.status, 200, "B's dashboard: {}", dashboard.body);
    assert_eq!(
        text_by_id(&dashboard.body, "greeting").as_deref(),
        Some("Hello, alice.")
    );
    assert_eq!(
        text_by_id(&dashboard.body, "flash").as_deref(),
        Some("Welcome, alice")
    );
    let again = client.get(&a, "/dashboard");
    assert_eq!(again.status, 200, "A's dashboard: {}", again.body);
    assert_eq!(
        text_by_id(&again.body, "greeting").as_deref(),
        Some("Hello, alice.")
    );
    assert_eq!(
        text_by_id(&again.body, "flash"),
        None,
        "the flash was already shown by B"
    );
    assert_redirect(
        &Client::with_session(&anonymous).get(&a, "/dashboard"),
        "/login",
    );

    let token = csrf(&client.get(&b, "/dashboard"));
    let logout = client.post(&b, "/logout", &[("csrf", &token)]);
    assert_redirect(&logout, "/");
    assert_eq!(client.session(), None, "the logout removes the cookie");

    assert_redirect(&client.get(&a, "/dashboard"), "/login");
    assert_redirect(
        &Client::with_session(&logged_in).get(&a, "/dashboard"),
        "/login",
    );
}

#[test]
fn csrf_token_from_one_app_is_accepted_by_the_other_and_a_forged_one_is_refused() {
    let (_memcached, a, b) = memcached_and_two_apps();
    let mut client = Client::default();
    let token = csrf(&client.get(&a, "/login"));

    let forged = client.post(
        &b,
        "/login",
        &[
            ("username", "mallory"),
            ("password", PASSWORD),
            ("csrf", "forged"),
        ],
    );
    assert_eq!(forged.status, 403, "a forged token: {}", forged.body);
    assert_redirect(&client.get(&b, "/dashboard"), "/login");

    let accepted = client.post(
        &b,
        "/login",
        &[
            ("username", "mallory"),
            ("password", PASSWORD),
            ("csrf", &token),
        ],
    );
    assert_redirect(&accepted, "/dashboard");
    assert_eq!(client.get(&a, "/dashboard").status, 200);
}

/// The session id inside a signed cookie value, as the cookie codec encodes it.
fn signed_payload(cookie: &str) -> String {
    let (encoded, _signature) = cookie.rsplit_once('.').expect("a signed cookie");
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .expect("base64 before the signature");
    String::from_utf8(bytes).expect("a UTF-8 payload")
}

#[test]
fn malformed_session_cookies_get_a_fresh_session_and_never_another_users() {
    const VICTIM: &str = "victim-bob";
    const VICTIM_VISITS: u64 = 7;
    let (_memcached, a, b) = memcached_and_two_apps();

    let mut victim = Client::default();
    assert_redirect(&log_in(&mut victim, &a, VICTIM), "/dashboard");
    for expected in 1..=VICTIM_VISITS {
        assert_eq!(visits(&victim.get(&b, "/")), expected);
    }
    let cookie = victim.session().expect("the victim's session cookie");

    let payload = signed_payload(&cookie);
    let forged = CookieSigner::new(["an-attackers-guess-at-the-secret-32-bytes"])
        .expect("a secret")
        .sign(&payload);
    let unknown_id = CookieSigner::new([SECRET])
        .expect("a secret")
        .sign(&payload.replace(|c: char| c.is_ascii_alphanumeric(), "0"));
    let mut tampered = cookie.clone();
    let last = tampered.pop().expect("a non-empty cookie");
    tampered.push(if last == 'A' { 'B' } else { 'A' });
    let half = &cookie[..cookie.len() / 2];
    let without_last = &cookie[..cookie.len() - 1];

    let named = |value: &str| format!("{SESSION_COOKIE}={value}").into_bytes();
    let mut non_utf8 = format!("{SESSION_COOKIE}=").into_bytes();
    non_utf8.extend_from_slice(b"\xff\xfe\x80");
    non_utf8.extend_from_slice(cookie.as_bytes());
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("forged (signed with another secret)", named(&forged)),
        ("tampered signature", named(&tampered)),
        ("truncated to half", named(half)),
        ("truncated by one character", named(without_last)),
        (
            "oversized (8 KiB appended)",
            named(&format!("{cookie}{}", "A".repeat(8 * 1024))),
        ),
        (
            "duplicated, forged first",
            format!("{SESSION_COOKIE}={forged}; {SESSION_COOKIE}={cookie}").into_bytes(),
        ),
        (
            "duplicated, garbage first",
            format!("{SESSION_COOKIE}=garbage; {SESSION_COOKIE}={cookie}").into_bytes(),
        ),
        ("not UTF-8", non_utf8),
        ("empty", named("")),
        ("garbage", named("not-a-session")),
        ("validly signed, unknown id", named(&unknown_id)),
    ];

    let mut problems = Vec::new();
    for (index, (case, cookie_header)) in cases.iter().enumerate() {
        let app = if index % 2 == 0 { &a } else { &b };
        let reply = exchange(app.addr(), &request("GET", "/", Some(cookie_header), None));
        if !reply.status.is_success() {
            problems.push(format!("{case}: status {} ({})", reply.status, reply.body));
            continue;
        }
        if reply.body.contains(VICTIM) {
            problems.push(format!("{case}: the page shows the victim's name"));
        }
        let count = text_by_id(&reply.body, "visits");
        if count.as_deref() != Some("1") {
            problems.push(format!("{case}: visits {count:?}, expected a fresh 1"));
        }
        let Some(fresh) = reply.session_cookie() else {
            problems.push(format!("{case}: no new session cookie"));
            continue;
        };
        if fresh == cookie {
            problems.push(format!("{case}: the response re-sets the victim's cookie"));
            continue;
        }
        let mut follower = Client::with_session(&fresh);
        let next = visits(&follower.get(app, "/"));
        if next != 2 {
            problems.push(format!("{case}: the fresh session counts {next}, not 2"));
        }
    }
    assert!(
        problems.is_empty(),
        "malformed cookies were mishandled:\n{}\nA's log:\n{}\nB's log:\n{}",
        problems.join("\n"),
        a.log(),
        b.log()
    );

    let home = victim.get(&a, "/");
    assert_eq!(
        visits(&home),
        VICTIM_VISITS + 1,
        "the victim's count is intact"
    );
    assert!(home.body.contains(VICTIM), "the victim is still logged in");
}

#[test]
fn healthz_reports_memcached_ok_on_both_apps() {
    let (_memcached, a, b) = memcached_and_two_apps();
    for app in [&a, &b] {
        let reply = exchange(app.addr(), &request("GET", "/healthz", None, None));
        assert_eq!(reply.status, 200, "{}: {}", app.url(), reply.body);
        let json: serde_json::Value =
            serde_json::from_str(&reply.body).expect("a JSON health report");
        assert_eq!(
            json,
            serde_json::json!({ "sessions": "memcached", "memcached": "ok" })
        );
        assert!(
            reply.set_cookies().is_empty(),
            "the health check starts no session"
        );
    }
}

#[test]
fn wrong_password_on_one_app_flashes_an_error_on_the_others_login_form() {
    let (_memcached, a, b) = memcached_and_two_apps();
    let mut client = Client::default();
    let token = csrf(&client.get(&a, "/login"));
    let refused = client.post(
        &a,
        "/login",
        &[
            ("username", "alice"),
            ("password", "guess"),
            ("csrf", &token),
        ],
    );
    assert_redirect(&refused, "/login");

    let form = client.get(&b, "/login");
    assert_eq!(form.status, 200, "B's login form: {}", form.body);
    assert_eq!(
        text_by_id(&form.body, "flash").as_deref(),
        Some("Wrong username or password.")
    );
    assert_redirect(&client.get(&a, "/dashboard"), "/login");
}

#[test]
fn username_markup_is_escaped_on_the_other_apps_pages() {
    const NAME: &str = "<script>alert(1)</script>";
    let (_memcached, a, b) = memcached_and_two_apps();
    let mut client = Client::default();
    assert_redirect(&log_in(&mut client, &a, NAME), "/dashboard");

    for path in ["/dashboard", "/"] {
        let page = client.get(&b, path);
        assert_eq!(page.status, 200, "{path}: {}", page.body);
        assert!(!page.body.contains(NAME), "{path} shows the raw markup");
        assert!(
            page.body.contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
            "{path} does not show the escaped name: {}",
            page.body
        );
    }
}

#[test]
fn memcached_outage_gives_503_on_both_apps_and_they_recover_after_a_restart() {
    let (mut memcached, a, b) = memcached_and_two_apps();
    let mut client = Client::default();
    assert_eq!(visits(&client.get(&a, "/")), 1);

    memcached.stop();
    for app in [&a, &b] {
        let cookie = client
            .jar
            .get(SESSION_COOKIE)
            .map(|value| format!("{SESSION_COOKIE}={value}").into_bytes());
        let home = exchange(app.addr(), &request("GET", "/", cookie.as_deref(), None));
        assert_eq!(
            home.status,
            503,
            "{} / during the outage: {}",
            app.url(),
            home.body
        );
        assert_eq!(home.header("retry-after"), Some("1"));
        let health = exchange(app.addr(), &request("GET", "/healthz", None, None));
        assert_eq!(
            health.status,
            503,
            "{} /healthz: {}",
            app.url(),
            health.body
        );
        let json: serde_json::Value =
            serde_json::from_str(&health.body).expect("a JSON health report");
        assert_eq!(json["memcached"], "unreachable", "{json}");
    }

    memcached.restart();
    for app in [&a, &b] {
        let health = exchange(app.addr(), &request("GET", "/healthz", None, None));
        assert_eq!(
            health.status,
            200,
            "{} /healthz after the restart: {}",
            app.url(),
            health.body
        );
    }
    // The restarted memcached is empty: the old cookie names no session, so
    // the counter starts again, and then counts on both apps.
    assert_eq!(visits(&client.get(&b, "/")), 1);
    assert_eq!(visits(&client.get(&a, "/")), 2);
}
