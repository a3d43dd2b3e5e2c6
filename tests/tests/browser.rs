//! The example app in a real browser: headless Chromium driven through
//! chromedriver (the W3C WebDriver protocol, spoken over plain HTTP by a
//! minimal client here), against one `example-app` with sessions in a real
//! memcached.
//!
//! One test walks the whole flow: the visit counter counts reloads; an
//! anonymous visit to the dashboard lands on the login form with a flash;
//! logging in shows the greeting and the welcome flash exactly once; a
//! screenshot of the dashboard is saved to `target/e2e/dashboard.png`; logging
//! out starts a new session (the counter restarts) and the dashboard is closed
//! again.
//!
//! Chromium and chromedriver come from the Debian packages `chromium` and
//! `chromium-driver` (`cargo xtask ci` installs them); without them the test
//! fails and says how to install them.

use std::fs::{self, DirBuilder, File};
use std::io;
use std::net::{SocketAddr, TcpListener};
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use integration_tests::example_app::{ExampleApp, try_exchange};
use integration_tests::memcached::Memcached;
use serde_json::{Value, json};

/// The Chromium binary of the Debian package `chromium`.
const CHROMIUM: &str = "/usr/bin/chromium";

/// The chromedriver binary of the Debian package `chromium-driver`.
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// How to get both onto the machine.
const INSTALL_HINT: &str = "install them with `apt-get install -y chromium chromium-driver` \
     (`cargo xtask ci` does this on a fresh machine)";

/// Chromium's command line: headless, quiet, nothing that phones home, and a
/// fixed window size so that the screenshot shows the whole page.
const CHROMIUM_ARGS: [&str; 10] = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
    "--window-size=1024,768",
];

/// Upper bound for chromedriver to answer `GET /status` as ready.
const DRIVER_STARTUP_TIMEOUT: Duration = Duration::from_secs(10);

/// Upper bound for one WebDriver command (starting Chromium is the slowest).
const COMMAND_TIMEOUT: Duration = Duration::from_secs(30);

/// Upper bound for the page to reach an expected state after an action.
const PAGE_TIMEOUT: Duration = Duration::from_secs(10);

/// The key of an element reference in WebDriver JSON.
const ELEMENT_KEY: &str = "element-6066-11e4-a52e-4f735466cecf";

/// The secret the app signs cookies with.
const SECRET: &str = "browser-test-secret-of-at-least-32-bytes!";

/// A private directory under the system's temporary directory, removed on drop.
#[derive(Debug)]
struct TempDir(PathBuf);

impl TempDir {
    fn new(label: &str) -> Self {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |elapsed| elapsed.subsec_nanos());
        let path = std::env::temp_dir().join(format!(
            "{label}-{}-{}-{nanos:08x}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed),
        ));
        DirBuilder::new()
            .mode(0o700)
            .create(&path)
            .unwrap_or_else(|error| panic!("cannot create {}: {error}", path.display()));
        Self(path)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// Panics with [`INSTALL_HINT`] unless both binaries exist.
fn require_browser() {
    let missing: Vec<&str> = [CHROMIUM, CHROMEDRIVER]
        .into_iter()
        .filter(|binary| !Path::new(binary).is_file())
        .collect();
    assert!(
        missing.is_empty(),
        "the browser test needs {missing:?}, which are missing: {INSTALL_HINT}"
    );
}

/// A chromedriver process on a free loopback port, killed on drop.
#[derive(Debug)]
struct ChromeDriver {
    child: Child,
    addr: SocketAddr,
    log_path: PathBuf,
}

impl ChromeDriver {
    /// Starts chromedriver, logging to `dir/chromedriver.log`, and waits until
    /// it reports itself ready. The port is found by binding `127.0.0.1:0`
    /// and releasing it, so another process may take it meanwhile: a start
    /// that fails is retried on a new port, twice.
    fn start(dir: &Path) -> Self {
        let log_path = dir.join("chromedriver.log");
        let mut failures = Vec::new();
        for _ in 0..3 {
            match Self::try_start(&log_path) {
                Ok(driver) => return driver,
                Err(failure) => failures.push(failure),
            }
        }
        panic!(
            "chromedriver did not start: {}; its log:\n{}",
            failures.join("; "),
            fs::read_to_string(&log_path).unwrap_or_default()
        );
    }

    fn try_start(log_path: &Path) -> Result<Self, String> {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .map_err(|error| format!("cannot find a free port: {error}"))?
            .port();
        let log = File::create(log_path)
            .map_err(|error| format!("cannot create {}: {error}", log_path.display()))?;
        let stderr = log
            .try_clone()
            .map_err(|error| format!("cannot duplicate the log handle: {error}"))?;
        let child = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(stderr)
            .spawn()
            .map_err(|error| format!("cannot run {CHROMEDRIVER} ({error}); {INSTALL_HINT}"))?;
        let mut driver = Self {
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            log_path: log_path.to_owned(),
        };
        let deadline = Instant::now() + DRIVER_STARTUP_TIMEOUT;
        loop {
            if let Ok(Some(status)) = driver.child.try_wait() {
                return Err(format!("it exited with {status} on port {port}"));
            }
            let status = try_exchange(driver.addr, &http("GET", "/status", None), COMMAND_TIMEOUT);
            if let Ok(reply) = status
                && reply.status == 200
                && reply.json()["value"]["ready"] == true
            {
                return Ok(driver);
            }
            if Instant::now() >= deadline {
                driver.stop();
                return Err(format!(
                    "it was not ready on port {port} within {DRIVER_STARTUP_TIMEOUT:?}"
                ));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for ChromeDriver {
    fn drop(&mut self) {
        self.stop();
        if std::thread::panicking() {
            eprintln!(
                "chromedriver log:\n{}",
                fs::read_to_string(&self.log_path).unwrap_or_default()
            );
        }
    }
}

/// An HTTP/1.1 request to chromedriver, with a JSON body when given.
fn http(method: &str, path: &str, body: Option<&Value>) -> Vec<u8> {
    let body = body.map_or_else(String::new, Value::to_string);
    format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\
         Content-Type: application/json; charset=utf-8\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// A WebDriver session (one Chromium), ended on drop.
#[derive(Debug)]
struct Browser {
    driver: SocketAddr,
    session: String,
}

impl Browser {
    /// Starts Chromium with [`CHROMIUM_ARGS`] and a fresh profile in
    /// `profile`.
    fn start(driver: &ChromeDriver, profile: &Path) -> Self {
        let mut args: Vec<String> = CHROMIUM_ARGS.iter().map(ToString::to_string).collect();
        args.push(format!("--user-data-dir={}", profile.display()));
        let capabilities = json!({
            "capabilities": {
                "alwaysMatch": {
                    "browserName": "chrome",
                    "pageLoadStrategy": "normal",
                    "timeouts": { "pageLoad": 20_000, "script": 10_000, "implicit": 0 },
                    "goog:chromeOptions": { "binary": CHROMIUM, "args": args },
                }
            }
        });
        let value = command(driver.addr, "POST", "/session", Some(&capabilities));
        let session = value["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no sessionId in {value}"))
            .to_owned();
        Self {
            driver: driver.addr,
            session,
        }
    }

    /// A command in this session; `path` follows `/session/{id}`.
    fn command(&self, method: &str, path: &str, body: Option<&Value>) -> Value {
        command(
            self.driver,
            method,
            &format!("/session/{}{path}", self.session),
            body,
        )
    }

    fn goto(&self, url: &str) {
        self.command("POST", "/url", Some(&json!({ "url": url })));
    }

    fn current_url(&self) -> String {
        let value = self.command("GET", "/url", None);
        value
            .as_str()
            .unwrap_or_else(|| panic!("the URL is {value}"))
            .to_owned()
    }

    fn refresh(&self) {
        self.command("POST", "/refresh", Some(&json!({})));
    }

    /// The element matching the CSS `selector`, if there is one.
    fn find(&self, selector: &str) -> Option<String> {
        let value = self.command(
            "POST",
            "/elements",
            Some(&json!({ "using": "css selector", "value": selector })),
        );
        let elements = value
            .as_array()
            .unwrap_or_else(|| panic!("the elements are {value}"));
        elements.first().map(|element| {
            element[ELEMENT_KEY]
                .as_str()
                .unwrap_or_else(|| panic!("an element reference is {element}"))
                .to_owned()
        })
    }

    /// The element matching `selector`.
    fn element(&self, selector: &str) -> String {
        self.find(selector).unwrap_or_else(|| {
            panic!(
                "no element {selector} on {}; the page:\n{}",
                self.current_url(),
                self.source()
            )
        })
    }

    /// The rendered text of the element matching `selector`, if there is one.
    fn text(&self, selector: &str) -> Option<String> {
        let element = self.find(selector)?;
        let value = self.command("GET", &format!("/element/{element}/text"), None);
        value.as_str().map(ToOwned::to_owned)
    }

    fn type_into(&self, selector: &str, text: &str) {
        let element = self.element(selector);
        self.command(
            "POST",
            &format!("/element/{element}/value"),
            Some(&json!({ "text": text })),
        );
    }

    fn click(&self, selector: &str) {
        let element = self.element(selector);
        self.command(
            "POST",
            &format!("/element/{element}/click"),
            Some(&json!({})),
        );
    }

    fn source(&self) -> String {
        self.command("GET", "/source", None)
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    /// The page as a PNG.
    fn screenshot(&self) -> Vec<u8> {
        let value = self.command("GET", "/screenshot", None);
        let encoded = value
            .as_str()
            .unwrap_or_else(|| panic!("the screenshot is {value}"));
        base64::engine::general_purpose::STANDARD
            .decode(encoded)
            .expect("a base64 screenshot")
    }

    /// Polls until the page is at `url` and shows `selector`, for up to
    /// [`PAGE_TIMEOUT`].
    fn wait_for_page(&self, url: &str, selector: &str) {
        let deadline = Instant::now() + PAGE_TIMEOUT;
        loop {
            let current = self.current_url();
            if current == url && self.find(selector).is_some() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "after {PAGE_TIMEOUT:?} the browser is at {current}, not at {url} showing \
                 {selector}; the page:\n{}",
                self.source()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // Quits Chromium; chromedriver itself is killed by its own drop.
        let path = format!("/session/{}", self.session);
        let _ = try_exchange(self.driver, &http("DELETE", &path, None), COMMAND_TIMEOUT);
    }
}

/// Sends one WebDriver command and returns its `value`.
///
/// # Panics
///
/// If chromedriver does not answer within [`COMMAND_TIMEOUT`] or answers with
/// an error.
fn command(driver: SocketAddr, method: &str, path: &str, body: Option<&Value>) -> Value {
    let reply = try_exchange(driver, &http(method, path, body), COMMAND_TIMEOUT)
        .unwrap_or_else(|error: io::Error| panic!("WebDriver {method} {path}: {error}"));
    let mut json = reply.json();
    assert!(
        reply.status.is_success(),
        "WebDriver {method} {path}: {} {}",
        reply.status,
        json["value"]
    );
    json["value"].take()
}

/// `<workspace>/target/e2e/dashboard.png`.
fn screenshot_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the tests package lives in the workspace")
        .join("target")
        .join("e2e")
        .join("dashboard.png")
}

#[test]
fn browser_counts_visits_logs_in_with_a_flash_shown_once_and_logs_out_to_a_new_session() {
    require_browser();
    let memcached = Memcached::start();
    let app = ExampleApp::start(&memcached.addr(), SECRET);
    let dir = TempDir::new("e2e-browser");
    let profile = dir.0.join("profile");
    fs::create_dir(&profile).expect("create the profile directory");
    let driver = ChromeDriver::start(&dir.0);
    let browser = Browser::start(&driver, &profile);
    let home = format!("{}/", app.url());
    let dashboard = format!("{}/dashboard", app.url());
    let login = format!("{}/login", app.url());

    browser.goto(&home);
    assert_eq!(browser.text("#visits").as_deref(), Some("1"));
    browser.refresh();
    assert_eq!(browser.text("#visits").as_deref(), Some("2"));

    browser.goto(&dashboard);
    browser.wait_for_page(&login, "#username");
    let flash = browser.text("#flash").unwrap_or_default();
    assert!(
        flash.contains("Please log in"),
        "the login form's flash is {flash:?}"
    );

    browser.type_into("#username", "alice");
    browser.type_into("#password", "letmein");
    browser.click("#submit");
    browser.wait_for_page(&dashboard, "#greeting");
    assert_eq!(browser.text("#greeting").as_deref(), Some("Hello, alice."));
    assert_eq!(browser.text("#flash").as_deref(), Some("Welcome, alice"));

    browser.refresh();
    browser.wait_for_page(&dashboard, "#greeting");
    assert_eq!(browser.text("#greeting").as_deref(), Some("Hello, alice."));
    assert_eq!(
        browser.text("#flash"),
        None,
        "the welcome flash is shown once"
    );

    let png = browser.screenshot();
    assert!(
        png.starts_with(b"\x89PNG\r\n\x1a\n"),
        "the screenshot is not a PNG"
    );
    let path = screenshot_path();
    fs::create_dir_all(path.parent().expect("a parent directory"))
        .unwrap_or_else(|error| panic!("cannot create {}: {error}", path.display()));
    fs::write(&path, &png)
        .unwrap_or_else(|error| panic!("cannot write {}: {error}", path.display()));

    browser.click("#logout");
    browser.wait_for_page(&home, "#visits");
    assert_eq!(
        browser.text("#visits").as_deref(),
        Some("1"),
        "logging out starts a new session"
    );

    browser.goto(&dashboard);
    browser.wait_for_page(&login, "#username");
    let flash = browser.text("#flash").unwrap_or_default();
    assert!(
        flash.contains("Please log in"),
        "after logout the login form's flash is {flash:?}"
    );
}
