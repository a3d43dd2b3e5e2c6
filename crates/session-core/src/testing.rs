//! A conformance suite that any [`SessionStorage`] can be run against: Remix's storage
//! scenarios, as async functions that panic with a message when the storage misbehaves.
//!
//! Run them all with [`storage_suite!`](crate::storage_suite), which writes one
//! `#[tokio::test]` per scenario (the calling crate needs `tokio` with the `macros` and `rt`
//! features):
//!
//! ```
//! # macro_rules! ignore_tests { ($($t:tt)*) => {} }
//! # ignore_tests! {
//! mod memory_storage {
//!     use session_core::MemoryStorage;
//!     session_core::storage_suite! {
//!         default: MemoryStorage::new(),
//!         unknown_ids: MemoryStorage::new().use_unknown_ids(true),
//!     }
//! }
//! # }
//! ```
//!
//! # Panics
//!
//! Every scenario panics, with a message saying what went wrong, when the storage does not
//! behave as Remix's storages do.

#![allow(
    clippy::missing_panics_doc,
    reason = "a test suite reports failures by panicking, as documented above"
)]

use crate::{CookieUpdate, Session, SessionStorage};

/// One request against a storage: reads the session named by `cookie`, lets `handler` work
/// on it, saves it, and returns the cookie the response would carry and the session.
///
/// # Panics
///
/// When the storage fails.
pub async fn request<S, F>(storage: &S, cookie: Option<&str>, handler: F) -> (CookieUpdate, Session)
where
    S: SessionStorage,
    F: FnOnce(&mut Session),
{
    let mut session = storage.read(cookie).await.expect("storage read failed");
    handler(&mut session);
    let update = storage.save(&session).await.expect("storage save failed");
    (update, session)
}

/// The cookie a browser would send next, given the cookie it held and the update.
pub fn next_cookie(held: Option<String>, update: &CookieUpdate) -> Option<String> {
    match update {
        CookieUpdate::Set(value) => Some(value.clone()),
        CookieUpdate::Clear => None,
        _ => held,
    }
}

fn count(session: &Session) -> u64 {
    session
        .get::<u64>("count")
        .expect("count is a number")
        .unwrap_or(0)
}

fn increment(session: &mut Session) {
    let next = count(session) + 1;
    session.insert("count", next).expect("insert");
}

async fn increment_request<S: SessionStorage>(
    storage: &S,
    cookie: Option<&str>,
) -> (Option<String>, Session) {
    let (update, session) = request(storage, cookie, increment).await;
    (next_cookie(cookie.map(str::to_owned), &update), session)
}

/// An id the storage never issued is not reused when `use_unknown_ids` is off.
pub async fn does_not_use_unknown_session_ids_by_default<S: SessionStorage>(storage: &S) {
    let session = storage.read(Some("unknown")).await.expect("read");
    assert_ne!(session.id().as_str(), "unknown");
    assert!(!session.is_loaded());
}

/// An id the storage never issued is reused when `use_unknown_ids` is on.
pub async fn uses_unknown_session_ids_if_enabled<S: SessionStorage>(storage: &S) {
    let session = storage.read(Some("unknown")).await.expect("read");
    assert_eq!(session.id().as_str(), "unknown");
}

/// Values written by one request are read by the next.
pub async fn persists_session_data_across_requests<S: SessionStorage>(storage: &S) {
    let (cookie, session) = increment_request(storage, None).await;
    assert_eq!(count(&session), 1);
    let (cookie, session) = increment_request(storage, cookie.as_deref()).await;
    assert_eq!(count(&session), 2);
    let (_, session) = increment_request(storage, cookie.as_deref()).await;
    assert_eq!(count(&session), 3);
}

/// A destroyed session's data is gone and its cookie cleared.
pub async fn clears_session_data_when_the_session_is_destroyed<S: SessionStorage>(storage: &S) {
    let (cookie, _) = increment_request(storage, None).await;
    let (cookie, _) = increment_request(storage, cookie.as_deref()).await;
    let (update, destroyed) = request(storage, cookie.as_deref(), Session::destroy).await;
    assert!(destroyed.is_destroyed());
    assert_eq!(update, CookieUpdate::Clear);

    // A client that kept sending the old cookie finds nothing under it.
    let (_, session) = increment_request(storage, cookie.as_deref()).await;
    assert_eq!(count(&session), 1);
    assert_ne!(session.id(), destroyed.id());
}

/// A session nobody changed sets no cookie and is not stored.
pub async fn does_not_set_a_cookie_when_session_data_is_not_changed<S: SessionStorage>(
    storage: &S,
) {
    let (update, session) = request(storage, None, |_| {}).await;
    assert!(!session.is_dirty());
    assert_eq!(update, CookieUpdate::Unchanged);

    let (cookie, _) = increment_request(storage, None).await;
    let (update, _) = request(storage, cookie.as_deref(), |session| {
        let _ = count(session);
    })
    .await;
    assert_eq!(update, CookieUpdate::Unchanged);
}

/// A flash value is readable by the next request only.
pub async fn makes_flash_data_available_only_on_the_next_request<S: SessionStorage>(storage: &S) {
    let (update, session) = request(storage, None, |_| {}).await;
    assert_eq!(session.get_value("message"), None);
    let cookie = next_cookie(None, &update);

    let (update, session) = request(storage, cookie.as_deref(), |session| {
        session.flash("message", "success!").expect("flash");
    })
    .await;
    assert_eq!(session.get_value("message"), None);
    let cookie = next_cookie(cookie, &update);

    let (update, session) = request(storage, cookie.as_deref(), |_| {}).await;
    assert_eq!(
        session.get::<String>("message").unwrap().as_deref(),
        Some("success!")
    );
    assert!(
        matches!(update, CookieUpdate::Set(_)),
        "reading flash consumes it"
    );
    let cookie = next_cookie(cookie, &update);

    let (_, session) = request(storage, cookie.as_deref(), |_| {}).await;
    assert_eq!(session.get_value("message"), None);
}

/// Regenerating the id without `delete_old` leaves the old data readable.
pub async fn leaves_old_session_data_in_storage_by_default_when_the_id_is_regenerated<
    S: SessionStorage,
>(
    storage: &S,
) {
    let (first_cookie, first) = increment_request(storage, None).await;
    let (update, login) = request(storage, first_cookie.as_deref(), |session| {
        session.regenerate_id(false).expect("regenerate");
    })
    .await;
    assert_ne!(login.id(), first.id());
    let login_cookie = next_cookie(first_cookie.clone(), &update);

    let (_, session) = increment_request(storage, login_cookie.as_deref()).await;
    assert_eq!(count(&session), 2);
    let (_, old) = increment_request(storage, first_cookie.as_deref()).await;
    assert_eq!(
        count(&old),
        2,
        "old session data should still be in storage"
    );
}

/// Regenerating the id with `delete_old` deletes the original id's data on save.
pub async fn deletes_old_session_data_when_the_id_is_regenerated_with_delete_old<
    S: SessionStorage,
>(
    storage: &S,
) {
    let (first_cookie, first) = increment_request(storage, None).await;
    let (update, login) = request(storage, first_cookie.as_deref(), |session| {
        session.regenerate_id(true).expect("regenerate");
        session.regenerate_id(true).expect("regenerate twice");
    })
    .await;
    assert_ne!(login.id(), first.id());
    let login_cookie = next_cookie(first_cookie.clone(), &update);

    let (_, session) = increment_request(storage, login_cookie.as_deref()).await;
    assert_eq!(count(&session), 2);
    let (_, old) = increment_request(storage, first_cookie.as_deref()).await;
    assert_eq!(count(&old), 1, "old session data should be deleted");
}

/// Nested objects and arrays survive a round trip through the storage.
pub async fn stores_complex_values<S: SessionStorage>(storage: &S) {
    let user = serde_json::json!({ "name": "mj", "roles": ["admin"], "meta": { "n": 1.5 } });
    let (update, _) = request(storage, None, |session| {
        session.insert("user", &user).expect("insert");
    })
    .await;
    let cookie = next_cookie(None, &update);
    let (_, session) = request(storage, cookie.as_deref(), |_| {}).await;
    assert_eq!(session.get_value("user"), Some(&user));
}

/// Cookie values that cannot be ids (empty, too long) give a fresh session.
pub async fn invalid_cookie_values_give_a_fresh_session<S: SessionStorage>(storage: &S) {
    for cookie in [String::new(), "x".repeat(crate::SessionId::MAX_LEN + 1)] {
        let session = storage.read(Some(&cookie)).await.expect("read");
        assert!(!session.is_loaded());
        assert_ne!(session.id().as_str(), cookie);
        assert!(session.is_empty());
    }
}

/// Two requests that loaded the same session and changed different keys both keep their
/// change, whichever saves last.
pub async fn concurrent_saves_keep_each_others_changes<S: SessionStorage>(storage: &S) {
    let (update, _) = request(storage, None, |session| {
        session.insert("a", 1).expect("insert");
    })
    .await;
    let cookie = next_cookie(None, &update);
    let mut first = storage.read(cookie.as_deref()).await.expect("read");
    let mut second = storage.read(cookie.as_deref()).await.expect("read");
    first.insert("b", 2).expect("insert");
    second.insert("c", 3).expect("insert");
    second.remove("a").expect("remove");
    storage.save(&first).await.expect("save");
    storage.save(&second).await.expect("save");
    let (_, session) = request(storage, cookie.as_deref(), |_| {}).await;
    assert_eq!(session.get_value("a"), None, "the second request removed a");
    assert_eq!(
        session.get::<u32>("b").unwrap(),
        Some(2),
        "the first request's b was lost"
    );
    assert_eq!(session.get::<u32>("c").unwrap(), Some(3));
}

/// For a key both requests changed, the later save wins.
pub async fn the_later_save_wins_for_a_key_both_changed<S: SessionStorage>(storage: &S) {
    let (update, _) = request(storage, None, |session| {
        session.insert("k", "original").expect("insert");
    })
    .await;
    let cookie = next_cookie(None, &update);
    let mut first = storage.read(cookie.as_deref()).await.expect("read");
    let mut second = storage.read(cookie.as_deref()).await.expect("read");
    first.insert("k", "first").expect("insert");
    second.insert("k", "second").expect("insert");
    storage.save(&first).await.expect("save");
    storage.save(&second).await.expect("save");
    let (_, session) = request(storage, cookie.as_deref(), |_| {}).await;
    assert_eq!(
        session.get::<String>("k").unwrap().as_deref(),
        Some("second")
    );
}

/// A save racing a destroy (logout) does not bring the session back.
pub async fn a_save_racing_a_destroy_does_not_resurrect_the_session<S: SessionStorage>(
    storage: &S,
) {
    let (update, _) = request(storage, None, |session| {
        session.insert("user", "mj").expect("insert");
    })
    .await;
    let cookie = next_cookie(None, &update);
    let mut logout = storage.read(cookie.as_deref()).await.expect("read");
    let mut racing = storage.read(cookie.as_deref()).await.expect("read");
    logout.destroy();
    assert_eq!(
        storage.save(&logout).await.expect("save"),
        CookieUpdate::Clear
    );
    racing.insert("cart", 1).expect("insert");
    let update = storage.save(&racing).await.expect("save");
    assert_eq!(
        update,
        CookieUpdate::Unchanged,
        "the racing save must not set a cookie"
    );
    let session = storage.read(cookie.as_deref()).await.expect("read");
    assert!(!session.is_loaded(), "the destroyed session came back");
    assert_eq!(session.get_value("user"), None);
}

/// Flash values consumed by one request are not revived by a concurrent request's save.
pub async fn consumed_flash_is_not_revived_by_a_concurrent_save<S: SessionStorage>(storage: &S) {
    let (update, _) = request(storage, None, |session| {
        session.flash("message", "hello").expect("flash");
    })
    .await;
    let cookie = next_cookie(None, &update);
    let first = storage.read(cookie.as_deref()).await.expect("read");
    let mut second = storage.read(cookie.as_deref()).await.expect("read");
    assert!(first.get_value("message").is_some());
    storage.save(&first).await.expect("save");
    second.insert("k", 1).expect("insert");
    storage.save(&second).await.expect("save");
    let (_, session) = request(storage, cookie.as_deref(), |_| {}).await;
    assert_eq!(session.get_value("message"), None);
    assert_eq!(session.get::<u32>("k").unwrap(), Some(1));
}

/// Writes one `#[tokio::test]` per scenario of [`testing`](crate::testing).
///
/// `default` is an expression giving a storage with default options; `unknown_ids` one with
/// unknown ids reused. Both are evaluated inside the async test, so they may `.await`.
#[macro_export]
macro_rules! storage_suite {
    (default: $default:expr, unknown_ids: $unknown:expr $(,)?) => {
        $crate::storage_suite!(@tests $default;
            does_not_use_unknown_session_ids_by_default,
            persists_session_data_across_requests,
            clears_session_data_when_the_session_is_destroyed,
            does_not_set_a_cookie_when_session_data_is_not_changed,
            makes_flash_data_available_only_on_the_next_request,
            leaves_old_session_data_in_storage_by_default_when_the_id_is_regenerated,
            deletes_old_session_data_when_the_id_is_regenerated_with_delete_old,
            stores_complex_values,
            invalid_cookie_values_give_a_fresh_session,
            concurrent_saves_keep_each_others_changes,
            the_later_save_wins_for_a_key_both_changed,
            a_save_racing_a_destroy_does_not_resurrect_the_session,
            consumed_flash_is_not_revived_by_a_concurrent_save,
        );
        $crate::storage_suite!(@tests $unknown; uses_unknown_session_ids_if_enabled,);
    };
    (@tests $make:expr; $($scenario:ident,)*) => {
        $(
            #[::tokio::test]
            async fn $scenario() {
                let storage = $make;
                $crate::testing::$scenario(&storage).await;
            }
        )*
    };
}
