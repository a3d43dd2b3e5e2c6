//! `MemcacheSessionStorage` against a real memcached: Remix's storage suite, the wire format
//! (keys and `[values, flash]` JSON, byte for byte Remix's, checked with raw memcached
//! commands), TTLs (relative, none, and absolute above 30 days), the item size limit, corrupt
//! stored data, Unix sockets, id regeneration, connection and configuration errors, and
//! cancellation safety of pooled connections.

use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::task::Poll;
use std::time::{Duration, Instant};

use axum_session_memcache::{Error, MemcacheSessionStorage, MemcacheSessionStorageOptions};
use integration_tests::memcached::Memcached;
use serde_json::{Value, json};
use session_core::{CookieUpdate, Session, SessionStorage};

/// Remix's reference vectors (cookies, memcached keys, stored data).
const VECTORS: &str =
    include_str!("../../crates/session-core/tests/vectors/remix-cookie-and-keys.json");

/// Connect, read and write timeout of the raw memcached helpers.
const IO_TIMEOUT: Duration = Duration::from_secs(5);

/// Upper bound for a storage call that must fail fast rather than hang.
const HANG_GUARD: Duration = Duration::from_secs(5);

const DAY: u64 = 60 * 60 * 24;

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

/// One `keys` entry of the vectors: a prefix and an id, and the key Remix stores them under.
struct KeyVector {
    prefix: String,
    id: String,
    memcache_key: String,
}

fn vectors() -> Value {
    serde_json::from_str(VECTORS).expect("the vectors file is JSON")
}

fn key_vectors() -> Vec<KeyVector> {
    let text = |entry: &Value, field: &str| {
        entry[field]
            .as_str()
            .unwrap_or_else(|| panic!("keys entry without {field}: {entry}"))
            .to_owned()
    };
    let vectors = vectors();
    let keys = vectors["keys"].as_array().expect("keys is an array");
    assert!(!keys.is_empty(), "the vectors hold key entries");
    keys.iter()
        .map(|entry| KeyVector {
            prefix: text(entry, "key_prefix"),
            id: text(entry, "id"),
            memcache_key: text(entry, "memcache_key"),
        })
        .collect()
}

/// The first `keys` vector, whose prefix is the default `remix:session:`.
fn remix_key() -> KeyVector {
    let vector = key_vectors().remove(0);
    assert_eq!(vector.prefix, "remix:session:");
    vector
}

/// The `stored_json` of the first `data` vector: count 3, a user, and the flash `message`.
fn stored_json_vector() -> String {
    vectors()["data"][0]["stored_json"]
        .as_str()
        .expect("data[0].stored_json is a string")
        .to_owned()
}

fn options() -> MemcacheSessionStorageOptions {
    MemcacheSessionStorageOptions::default()
}

fn storage(server: &Memcached, options: MemcacheSessionStorageOptions) -> MemcacheSessionStorage {
    MemcacheSessionStorage::new(&server.addr(), options).expect("a valid storage")
}

/// A storage together with the memcached it talks to, so that the server outlives it.
struct Fixture {
    storage: MemcacheSessionStorage,
    _memcached: Memcached,
}

impl SessionStorage for Fixture {
    type Error = Error;

    async fn read(&self, cookie_value: Option<&str>) -> Result<Session, Error> {
        self.storage.read(cookie_value).await
    }

    async fn save(&self, session: &Session) -> Result<CookieUpdate, Error> {
        self.storage.save(session).await
    }
}

fn fixture(options: MemcacheSessionStorageOptions) -> Fixture {
    let memcached = Memcached::start();
    Fixture {
        storage: storage(&memcached, options),
        _memcached: memcached,
    }
}

/// Sends one raw request on a new connection and reads until `parse` recognises a whole
/// reply.
fn exchange<T>(server: &Memcached, request: &[u8], parse: impl Fn(&[u8]) -> Option<T>) -> T {
    let address: SocketAddr = server.addr().parse().expect("addr() is a socket address");
    let mut stream = TcpStream::connect_timeout(&address, IO_TIMEOUT).expect("connect");
    stream.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    stream.set_write_timeout(Some(IO_TIMEOUT)).unwrap();
    stream.write_all(request).expect("send the request");
    let mut reply = Vec::new();
    let mut buffer = vec![0_u8; 64 * 1024];
    loop {
        if let Some(parsed) = parse(&reply) {
            return parsed;
        }
        let read = stream.read(&mut buffer).expect("read the reply");
        assert!(
            read > 0,
            "memcached closed the connection; got {:?}",
            String::from_utf8_lossy(&reply)
        );
        reply.extend_from_slice(&buffer[..read]);
    }
}

/// The first line of `reply`, once complete.
fn first_line(reply: &[u8]) -> Option<String> {
    let end = reply.windows(2).position(|pair| pair == b"\r\n")?;
    Some(String::from_utf8_lossy(&reply[..end]).into_owned())
}

/// The value stored under `key` (classic `get`), `None` when the reply is `END` alone.
fn raw_get(server: &Memcached, key: &str) -> Option<Vec<u8>> {
    exchange(server, format!("get {key}\r\n").as_bytes(), |reply| {
        if reply == b"END\r\n" {
            return Some(None);
        }
        let header = first_line(reply)?;
        let parts: Vec<&str> = header.split(' ').collect();
        assert!(
            parts.len() == 4 && parts[0] == "VALUE" && parts[1] == key,
            "unexpected reply to get {key}: {header:?}"
        );
        let length: usize = parts[3].parse().expect("the value length is a number");
        let start = header.len() + 2;
        let end = start + length;
        if reply.len() < end + 7 {
            return None;
        }
        assert_eq!(&reply[end..], b"\r\nEND\r\n", "get {key} ends with END");
        Some(Some(reply[start..end].to_vec()))
    })
}

/// Stores `value` under `key` with no expiry (classic `set`).
fn raw_set(server: &Memcached, key: &str, value: &[u8]) {
    let mut request = format!("set {key} 0 0 {}\r\n", value.len()).into_bytes();
    request.extend_from_slice(value);
    request.extend_from_slice(b"\r\n");
    let reply = exchange(server, &request, first_line);
    assert_eq!(reply, "STORED", "set {key}");
}

/// The remaining TTL of `key` in seconds from `mg <key> t` (`-1`: no expiry), `None` when
/// the key is missing.
fn raw_ttl(server: &Memcached, key: &str) -> Option<i64> {
    let reply = exchange(server, format!("mg {key} t\r\n").as_bytes(), first_line);
    if reply == "EN" {
        return None;
    }
    let flags = reply
        .strip_prefix("HD ")
        .unwrap_or_else(|| panic!("unexpected reply to mg {key} t: {reply:?}"));
    let ttl = flags
        .split(' ')
        .find_map(|flag| flag.strip_prefix('t'))
        .unwrap_or_else(|| panic!("no t flag in {reply:?}"));
    Some(ttl.parse().expect("the TTL is a number"))
}

/// Every key memcached holds (`lru_crawler metadump all`), percent-decoded.
fn raw_keys(server: &Memcached) -> Vec<String> {
    let dump = exchange(server, b"lru_crawler metadump all\r\n", |reply| {
        reply
            .ends_with(b"END\r\n")
            .then(|| String::from_utf8_lossy(reply).into_owned())
    });
    dump.lines()
        .filter_map(|line| line.strip_prefix("key="))
        .map(|rest| percent_decode(rest.split(' ').next().unwrap_or_default()))
        .collect()
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        if bytes[index] == b'%' && index + 2 < bytes.len() {
            let hex = std::str::from_utf8(&bytes[index + 1..index + 3]).expect("ASCII");
            decoded.push(u8::from_str_radix(hex, 16).expect("a percent escape"));
            index += 3;
        } else {
            decoded.push(bytes[index]);
            index += 1;
        }
    }
    String::from_utf8(decoded).expect("keys are UTF-8")
}

fn json_of(bytes: &[u8]) -> Value {
    serde_json::from_slice(bytes)
        .unwrap_or_else(|error| panic!("{error}: {:?}", String::from_utf8_lossy(bytes)))
}

/// Reads a session that must exist, with a hang guard.
async fn read(storage: &MemcacheSessionStorage, id: Option<&str>) -> Session {
    tokio::time::timeout(HANG_GUARD, storage.read(id))
        .await
        .expect("read hung")
        .expect("read failed")
}

/// Saves a dirty session and returns the id its cookie carries.
async fn save(storage: &MemcacheSessionStorage, session: &Session) -> String {
    let update = tokio::time::timeout(HANG_GUARD, storage.save(session))
        .await
        .expect("save hung")
        .expect("save failed");
    match update {
        CookieUpdate::Set(id) => id,
        other => panic!("a dirty session sets its cookie, got {other:?}"),
    }
}

// ---------------------------------------------------------------------------------------------
// Remix's storage suite
// ---------------------------------------------------------------------------------------------

mod remix_suite {
    use super::{fixture, options};

    session_core::storage_suite! {
        default: fixture(options()),
        unknown_ids: fixture(options().use_unknown_ids(true)),
    }
}

// ---------------------------------------------------------------------------------------------
// Wire format
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn sessions_are_stored_under_remix_keys_as_remix_json() {
    let server = Memcached::start();
    let stored_json = stored_json_vector();
    for vector in key_vectors() {
        let storage = storage(
            &server,
            options()
                .key_prefix(vector.prefix.clone())
                .use_unknown_ids(true),
        );
        let mut session = read(&storage, Some(&vector.id)).await;
        assert_eq!(session.id().as_str(), vector.id);
        session.insert("count", 3).unwrap();
        session
            .insert("user", json!({ "name": "mj", "roles": ["admin"] }))
            .unwrap();
        session.flash("message", "welcome").unwrap();
        assert_eq!(save(&storage, &session).await, vector.id);

        let stored = raw_get(&server, &vector.memcache_key)
            .unwrap_or_else(|| panic!("nothing under {}", vector.memcache_key));
        assert_eq!(
            String::from_utf8_lossy(&stored),
            stored_json,
            "the value under {} is Remix's [values, flash] JSON",
            vector.memcache_key
        );
    }
    assert_eq!(server.stat("curr_items"), 3, "one item per key vector");
}

#[tokio::test]
async fn remix_stored_json_is_read_with_its_values_and_flash_and_the_flash_is_consumed() {
    let server = Memcached::start();
    let storage = storage(&server, options());
    let vector = remix_key();
    raw_set(
        &server,
        &vector.memcache_key,
        stored_json_vector().as_bytes(),
    );

    let session = read(&storage, Some(&vector.id)).await;
    assert!(session.is_loaded());
    assert_eq!(session.id().as_str(), vector.id);
    assert_eq!(session.get::<u64>("count").unwrap(), Some(3));
    assert_eq!(
        session.get_value("user"),
        Some(&json!({ "name": "mj", "roles": ["admin"] }))
    );
    assert_eq!(
        session.get::<String>("message").unwrap().as_deref(),
        Some("welcome")
    );
    assert!(session.is_dirty(), "loaded flash must be consumed on save");

    assert_eq!(save(&storage, &session).await, vector.id);
    let stored = raw_get(&server, &vector.memcache_key).expect("still stored");
    assert_eq!(
        json_of(&stored),
        json!([{ "count": 3, "user": { "name": "mj", "roles": ["admin"] } }, {}])
    );

    let session = read(&storage, Some(&vector.id)).await;
    assert_eq!(session.get_value("message"), None, "flash is read once");
    assert_eq!(session.get::<u64>("count").unwrap(), Some(3));
    assert!(!session.is_dirty());
}

// ---------------------------------------------------------------------------------------------
// TTL
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn session_with_a_one_second_ttl_expires_while_one_without_ttl_stays() {
    let server = Memcached::start();
    let vectors = key_vectors();
    let (short, forever) = (&vectors[0], &vectors[1]);
    let short_storage = storage(
        &server,
        options()
            .key_prefix(short.prefix.clone())
            .use_unknown_ids(true)
            .ttl_seconds(1),
    );
    let forever_storage = storage(
        &server,
        options()
            .key_prefix(forever.prefix.clone())
            .use_unknown_ids(true),
    );
    for (storage, vector) in [(&short_storage, short), (&forever_storage, forever)] {
        let mut session = read(storage, Some(&vector.id)).await;
        session.insert("count", 1).unwrap();
        save(storage, &session).await;
    }

    let deadline = Instant::now() + Duration::from_secs(10);
    while raw_get(&server, &short.memcache_key).is_some() {
        assert!(
            Instant::now() < deadline,
            "a session with a 1 s TTL is still stored after 10 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let session = read(&short_storage, Some(&short.id)).await;
    assert!(!session.is_loaded(), "the expired session is not loaded");
    assert!(session.is_empty());

    assert!(
        raw_get(&server, &forever.memcache_key).is_some(),
        "the session without TTL is still stored"
    );
    let session = read(&forever_storage, Some(&forever.id)).await;
    assert_eq!(session.get::<u64>("count").unwrap(), Some(1));
}

/// Saves a session under the Remix key vector with `ttl_seconds` and returns the TTL
/// memcached reports for it.
async fn stored_ttl(ttl_seconds: u64) -> i64 {
    let server = Memcached::start();
    let vector = remix_key();
    let storage = storage(
        &server,
        options().use_unknown_ids(true).ttl_seconds(ttl_seconds),
    );
    let mut session = read(&storage, Some(&vector.id)).await;
    session.insert("count", 1).unwrap();
    save(&storage, &session).await;
    raw_ttl(&server, &vector.memcache_key).expect("the session is stored")
}

fn seconds(value: u64) -> i64 {
    i64::try_from(value).expect("fits i64")
}

#[tokio::test]
async fn ttl_zero_stores_the_session_without_expiry() {
    assert_eq!(stored_ttl(0).await, -1);
}

#[tokio::test]
async fn ttl_of_exactly_thirty_days_stays_relative() {
    let ttl = stored_ttl(30 * DAY).await;
    let expected = seconds(30 * DAY);
    assert!(
        (expected - 60..=expected).contains(&ttl),
        "memcached reports {ttl} s left, expected about {expected} s"
    );
}

#[tokio::test]
async fn ttl_of_thirty_one_days_is_sent_as_an_absolute_time() {
    let ttl = stored_ttl(31 * DAY).await;
    let expected = seconds(31 * DAY);
    assert!(
        (expected - 60..=expected + 60).contains(&ttl),
        "memcached reports {ttl} s left, expected about {expected} s"
    );
}

// ---------------------------------------------------------------------------------------------
// Item size limit
// ---------------------------------------------------------------------------------------------

fn small_items_server() -> Memcached {
    Memcached::builder().item_size_max(1024).start()
}

#[tokio::test]
async fn session_over_the_item_size_limit_is_refused_and_the_stored_copy_stays_intact() {
    let server = small_items_server();
    let vector = remix_key();
    let storage = storage(&server, options().use_unknown_ids(true).max_item_size(1024));
    let mut session = read(&storage, Some(&vector.id)).await;
    session.insert("a", "small").unwrap();
    save(&storage, &session).await;
    let original = br#"[{"a":"small"},{}]"#;
    assert_eq!(
        raw_get(&server, &vector.memcache_key).as_deref(),
        Some(&original[..])
    );
    let sets = server.stat("cmd_set");

    let mut session = read(&storage, Some(&vector.id)).await;
    session.insert("big", "x".repeat(2000)).unwrap();
    let result = tokio::time::timeout(HANG_GUARD, storage.save(&session))
        .await
        .expect("save hung");
    let Err(error) = result else {
        panic!("a 2000-byte session was accepted with max_item_size 1024: {result:?}");
    };
    assert!(error.is_too_large(), "{error:?}");
    assert!(error.to_string().contains("1024"), "{error}");
    assert_eq!(
        server.stat("cmd_set"),
        sets,
        "nothing was sent to memcached"
    );

    assert_eq!(
        raw_get(&server, &vector.memcache_key).as_deref(),
        Some(&original[..]),
        "the stored copy is intact"
    );
    let session = read(&storage, Some(&vector.id)).await;
    assert!(session.is_loaded());
    assert_eq!(
        session.get::<String>("a").unwrap().as_deref(),
        Some("small")
    );
    assert!(!session.contains_key("big"));
}

/// Stores, through a storage with `max_item_size(limit)`, a session whose size by the
/// storage's rule (key + value + 96 bytes of memcached overhead) is exactly `limit`, checks
/// that memcached kept it byte for byte, then checks that one byte more is refused before
/// anything is sent and leaves the stored copy intact.
async fn assert_the_limit_is_exact(server: &Memcached, limit: usize) {
    let vector = remix_key();
    let storage = storage(server, options().use_unknown_ids(true).max_item_size(limit));
    // The value is `[{"v":"<filler>"},{}]`: 13 bytes around the filler.
    let filler = limit - 96 - vector.memcache_key.len() - 13;
    let expected = format!(r#"[{{"v":"{}"}},{{}}]"#, "x".repeat(filler));
    assert_eq!(vector.memcache_key.len() + expected.len() + 96, limit);

    let mut session = read(&storage, Some(&vector.id)).await;
    session.insert("v", "x".repeat(filler)).unwrap();
    save(&storage, &session).await;
    assert!(
        raw_get(server, &vector.memcache_key).as_deref() == Some(expected.as_bytes()),
        "memcached keeps a session of exactly {limit} bytes by the size check"
    );

    let sets = server.stat("cmd_set");
    session.insert("v", "x".repeat(filler + 1)).unwrap();
    let error = tokio::time::timeout(HANG_GUARD, storage.save(&session))
        .await
        .expect("save hung")
        .expect_err("one byte over the limit is refused");
    assert!(error.is_too_large(), "{error:?}");
    assert_eq!(
        server.stat("cmd_set"),
        sets,
        "nothing was sent to memcached"
    );
    assert!(
        raw_get(server, &vector.memcache_key).as_deref() == Some(expected.as_bytes()),
        "the stored copy is intact"
    );
}

#[tokio::test]
async fn session_exactly_at_a_one_kib_item_limit_is_stored_and_one_byte_more_is_refused() {
    assert_the_limit_is_exact(&small_items_server(), 1024).await;
}

#[tokio::test]
async fn session_exactly_at_the_default_item_limit_is_stored_by_a_default_memcached() {
    let server = Memcached::start();
    let limit = options().get_max_item_size();
    assert_eq!(
        limit,
        1024 * 1024,
        "the default matches memcached's default -I"
    );
    assert_the_limit_is_exact(&server, limit).await;
}

// ---------------------------------------------------------------------------------------------
// Corrupt data, Unix sockets, regeneration
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn corrupt_stored_data_gives_a_fresh_empty_session() {
    let server = Memcached::start();
    let storage = storage(&server, options());
    let vector = remix_key();
    for corrupt in [&b"not json"[..], b"[1,2]"] {
        raw_set(&server, &vector.memcache_key, corrupt);
        let session = read(&storage, Some(&vector.id)).await;
        let shown = String::from_utf8_lossy(corrupt);
        assert!(!session.is_loaded(), "{shown}");
        assert_ne!(session.id().as_str(), vector.id, "{shown}");
        assert!(session.is_empty(), "{shown}");
    }
}

#[tokio::test]
async fn unix_socket_storage_persists_a_session_across_requests() {
    let server = Memcached::builder().unix_socket().start();
    let path = server.socket_path().expect("a socket path");
    let storage = MemcacheSessionStorage::new(&format!("unix://{}", path.display()), options())
        .expect("a valid storage");

    let mut session = read(&storage, None).await;
    session.insert("count", 1).unwrap();
    let id = save(&storage, &session).await;

    let mut session = read(&storage, Some(&id)).await;
    assert!(session.is_loaded());
    assert_eq!(session.get::<u64>("count").unwrap(), Some(1));
    session.insert("count", 2).unwrap();
    assert_eq!(save(&storage, &session).await, id);

    let session = read(&storage, Some(&id)).await;
    assert_eq!(session.get::<u64>("count").unwrap(), Some(2));
    assert_eq!(server.stat("curr_items"), 1);
}

#[tokio::test]
async fn regenerating_the_id_with_delete_old_moves_the_item_to_the_new_key() {
    let server = Memcached::start();
    let storage = storage(&server, options().use_unknown_ids(true));
    let vector = remix_key();
    let mut session = read(&storage, Some(&vector.id)).await;
    session.insert("user", "mj").unwrap();
    save(&storage, &session).await;
    assert!(raw_get(&server, &vector.memcache_key).is_some());

    let mut session = read(&storage, Some(&vector.id)).await;
    session.regenerate_id(true).unwrap();
    let new_id = save(&storage, &session).await;
    assert_ne!(new_id, vector.id);

    assert_eq!(
        raw_get(&server, &vector.memcache_key),
        None,
        "the old key is deleted"
    );
    let keys = raw_keys(&server);
    assert_eq!(keys.len(), 1, "only the new key is left: {keys:?}");
    let new_key = &keys[0];
    let hash = new_key
        .strip_prefix("remix:session:")
        .unwrap_or_else(|| panic!("{new_key} has the prefix"));
    assert!(
        hash.len() == 64
            && hash
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)),
        "{new_key} ends with a lowercase hex SHA-256"
    );
    assert_eq!(
        raw_get(&server, new_key).as_deref(),
        Some(&br#"[{"user":"mj"},{}]"#[..])
    );

    let session = read(&storage, Some(&new_id)).await;
    assert_eq!(
        session.get::<String>("user").unwrap().as_deref(),
        Some("mj")
    );
    let old = read(&storage, Some(&vector.id)).await;
    assert!(!old.is_loaded());
    assert!(old.is_empty());
}

// ---------------------------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn unreachable_server_fails_fast_with_an_error_naming_its_address() {
    let mut server = Memcached::start();
    let address = server.addr();
    server.stop();
    let storage = storage(&server, options());

    let error = tokio::time::timeout(HANG_GUARD, storage.read(Some("a-valid-looking-id")))
        .await
        .expect("read hung")
        .expect_err("nothing listens");
    assert!(error.is_unreachable(), "{error:?}");
    assert!(error.to_string().contains(&address), "{error}");

    let mut session = Session::new();
    session.insert("count", 1).unwrap();
    let error = tokio::time::timeout(HANG_GUARD, storage.save(&session))
        .await
        .expect("save hung")
        .expect_err("nothing listens");
    assert!(error.is_unreachable(), "{error:?}");
    assert!(error.to_string().contains(&address), "{error}");
}

#[tokio::test]
async fn missing_unix_socket_is_unreachable_naming_the_path() {
    let path = format!(
        "/tmp/itmc-missing-{}-{:?}.sock",
        std::process::id(),
        Instant::now()
    )
    .replace(' ', "");
    let storage =
        MemcacheSessionStorage::new(&format!("unix://{path}"), options()).expect("a valid storage");
    let error = tokio::time::timeout(HANG_GUARD, storage.read(Some("some-id")))
        .await
        .expect("read hung")
        .expect_err("no socket");
    assert!(error.is_unreachable(), "{error:?}");
    assert!(error.to_string().contains(&path), "{error}");
}

#[test]
fn new_outside_a_tokio_runtime_is_a_no_runtime_error() {
    let result = MemcacheSessionStorage::new("127.0.0.1:11211", options());
    assert!(matches!(result, Err(Error::NoRuntime)), "{result:?}");
}

#[tokio::test]
async fn ipv6_server_address_is_a_config_error() {
    for address in ["[::1]:11211", "tcp://[::1]:11211", "::1"] {
        let error = MemcacheSessionStorage::new(address, options()).expect_err(address);
        assert!(error.is_config(), "{address}: {error:?}");
        assert!(
            matches!(error, Error::InvalidServer { .. }),
            "{address}: {error:?}"
        );
        assert!(error.to_string().contains("IPv6"), "{address}: {error}");
    }
}

// ---------------------------------------------------------------------------------------------
// Cancellation safety
// ---------------------------------------------------------------------------------------------

/// A storage with a single pooled connection, so that any reuse of a broken connection
/// shows; generous timeouts keep the pool's own limits out of the way.
fn single_connection_storage(server: &Memcached) -> MemcacheSessionStorage {
    storage(
        server,
        options()
            .pool_max_size(1)
            .connect_timeout(HANG_GUARD)
            .operation_timeout(HANG_GUARD),
    )
}

/// Stores a session holding `values` and returns its id.
async fn store(storage: &MemcacheSessionStorage, values: &Value) -> String {
    let mut session = read(storage, None).await;
    for (key, value) in values.as_object().expect("an object") {
        session.insert(key.clone(), value).unwrap();
    }
    save(storage, &session).await
}

/// The values of the session stored under `id`, as one JSON object.
async fn stored_values(storage: &MemcacheSessionStorage, id: &str) -> Value {
    let session = read(storage, Some(id)).await;
    assert!(session.is_loaded(), "session {id} is stored");
    session.data().values.into_iter().collect()
}

/// Starts `operation` and drops it while it is still pending, after a read of `other` that
/// leaves a used connection idle in the pool (so the operation gets it at once and is
/// cancelled mid-command, not while waiting for a connection). Attempt `n` polls the
/// operation `n` times, yielding in between, so some progress is made before the drop; an
/// attempt whose operation finishes is repeated with more polls. Returns the server's
/// `total_connections` from just before the cancelled attempt.
async fn cancel_once<F, Fut, T>(
    server: &Memcached,
    storage: &MemcacheSessionStorage,
    other: (&str, &Value),
    operation: F,
) -> u64
where
    F: Fn() -> Fut,
    Fut: Future<Output = Result<T, Error>>,
{
    for polls in 1..=50 {
        assert_eq!(&stored_values(storage, other.0).await, other.1);
        let connections = server.stat("total_connections");
        let mut future = std::pin::pin!(operation());
        let mut finished = false;
        for poll in 0..polls {
            if poll > 0 {
                tokio::task::yield_now().await;
            }
            let polled = std::future::poll_fn(|cx| Poll::Ready(future.as_mut().poll(cx))).await;
            if let Poll::Ready(result) = polled {
                result.expect("an operation that was not cancelled succeeds");
                finished = true;
                break;
            }
        }
        if !finished {
            // Returning drops the pending operation.
            return connections;
        }
    }
    panic!("the operation always finished before it could be cancelled");
}

#[tokio::test]
async fn cancelled_save_never_leaves_its_connection_to_other_sessions() {
    let server = Memcached::start();
    let storage = single_connection_storage(&server);
    let big_old = json!({ "blob": "a".repeat(500 * 1024) });
    let big_new = json!({ "blob": "b".repeat(500 * 1024) });
    let small = json!({ "owner": "b", "count": 1 });
    let big_id = store(&storage, &big_old).await;
    let small_id = store(&storage, &small).await;

    let mut big = read(&storage, Some(&big_id)).await;
    big.insert("blob", &big_new["blob"]).unwrap();
    let before = cancel_once(&server, &storage, (&small_id, &small), || {
        storage.save(&big)
    })
    .await;

    // The same storage keeps serving the other session with exactly its own data.
    assert_eq!(stored_values(&storage, &small_id).await, small);
    let mut session = read(&storage, Some(&small_id)).await;
    session.insert("count", 2).unwrap();
    assert_eq!(save(&storage, &session).await, small_id);
    let updated = json!({ "owner": "b", "count": 2 });
    assert_eq!(stored_values(&storage, &small_id).await, updated);
    assert_eq!(stored_values(&storage, &small_id).await, updated);

    // One new connection for the storage, one for this stats request.
    let after = server.stat("total_connections");
    assert!(
        after >= before + 2,
        "the cancelled connection was reused: total_connections {before} -> {after}"
    );

    // The big session is either wholly old or wholly new, never a mix.
    let big = stored_values(&storage, &big_id).await;
    assert!(big == big_old || big == big_new, "the big session is torn");
}

#[tokio::test]
async fn cancelled_read_never_leaves_its_reply_to_the_next_read() {
    let server = Memcached::start();
    let storage = single_connection_storage(&server);
    let big = json!({ "blob": "a".repeat(500 * 1024) });
    let small = json!({ "owner": "b", "count": 1 });
    let big_id = store(&storage, &big).await;
    let small_id = store(&storage, &small).await;

    let before = cancel_once(&server, &storage, (&small_id, &small), || {
        storage.read(Some(&big_id))
    })
    .await;

    for _ in 0..3 {
        assert_eq!(
            stored_values(&storage, &small_id).await,
            small,
            "a read got another session's data"
        );
    }
    let after = server.stat("total_connections");
    assert!(
        after >= before + 2,
        "the cancelled connection was reused: total_connections {before} -> {after}"
    );
    assert_eq!(stored_values(&storage, &big_id).await, big);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrently_cancelled_requests_never_see_another_sessions_data() {
    let server = Memcached::start();
    let storage = storage(
        &server,
        options()
            .pool_max_size(2)
            .connect_timeout(Duration::from_secs(10))
            .operation_timeout(Duration::from_secs(10)),
    );
    let mut tasks = Vec::new();
    for owner in 0..8_u64 {
        let storage = storage.clone();
        tasks.push(tokio::spawn(async move {
            let values = json!({ "owner": owner, "blob": owner.to_string().repeat(40 * 1024) });
            let id = store(&storage, &values).await;
            let mut cancelled = 0;
            for round in 0..60_u64 {
                let limit = Duration::from_micros((round * 37 + owner * 11) % 400);
                let mut session = read(&storage, Some(&id)).await;
                assert_eq!(
                    session.data().values.into_iter().collect::<Value>(),
                    values,
                    "session {owner} read another session's data"
                );
                session.insert("owner", owner).unwrap();
                if round % 2 == 0 {
                    if tokio::time::timeout(limit, storage.save(&session))
                        .await
                        .is_err()
                    {
                        cancelled += 1;
                    }
                } else if let Ok(result) =
                    tokio::time::timeout(limit, storage.read(Some(&id))).await
                {
                    let loaded = result.expect("read failed");
                    assert_eq!(loaded.get::<u64>("owner").unwrap(), Some(owner));
                } else {
                    cancelled += 1;
                }
            }
            cancelled
        }));
    }
    let mut cancelled = 0;
    for task in tasks {
        cancelled += tokio::time::timeout(Duration::from_secs(60), task)
            .await
            .expect("the workers hung")
            .expect("a worker panicked");
    }
    assert!(
        cancelled > 0,
        "no request was cancelled; the test proves nothing"
    );
}
