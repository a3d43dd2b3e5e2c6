//! The contract between sessions and the place they are kept.

use std::future::Future;

use crate::Session;

/// Where sessions are kept: the same contract as Remix's `SessionStorage`.
///
/// The cookie value handed to [`read`](Self::read) is the *verified* content of the session
/// cookie (the session id); signing and verifying are done by
/// [`CookieSigner`](crate::CookieSigner) before a storage sees anything, so storages never
/// handle secrets.
///
/// # Examples
///
/// ```
/// use session_core::{CookieUpdate, MemoryStorage, SessionStorage};
///
/// # tokio_test_block_on(async {
/// let storage = MemoryStorage::new();
///
/// // First request: no cookie, a fresh session.
/// let mut session = storage.read(None).await?;
/// session.insert("count", 1)?;
/// let CookieUpdate::Set(cookie) = storage.save(&session).await? else { unreachable!() };
///
/// // Next request: the cookie finds the session again.
/// let session = storage.read(Some(&cookie)).await?;
/// assert_eq!(session.get::<u32>("count")?, Some(1));
/// assert_eq!(storage.save(&session).await?, CookieUpdate::Unchanged);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// # }).unwrap();
/// # fn tokio_test_block_on<F: std::future::Future>(f: F) -> F::Output {
/// #     tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(f)
/// # }
/// ```
pub trait SessionStorage: Send + Sync + 'static {
    /// What a failing storage reports (an unreachable server, a timeout...).
    type Error: std::error::Error + Send + Sync + 'static;

    /// Finds the session named by a verified cookie value, or creates a fresh one when there
    /// is no cookie, the id is not valid, or nothing is stored under it (unless the storage
    /// is configured to reuse unknown ids).
    ///
    /// # Errors
    ///
    /// When the storage cannot be reached. A missing session is not an error.
    fn read(
        &self,
        cookie_value: Option<&str>,
    ) -> impl Future<Output = Result<Session, Self::Error>> + Send;

    /// Stores the session and says what the response's cookie must become: deletes the data
    /// of a destroyed session ([`CookieUpdate::Clear`]), writes a dirty one
    /// ([`CookieUpdate::Set`]) and leaves an unchanged one alone
    /// ([`CookieUpdate::Unchanged`], or [`CookieUpdate::Set`] when
    /// [`Session::wants_cookie_renewal`]). The data under [`Session::delete_id`] is deleted.
    ///
    /// A storage that can detect concurrent writes (see [`Session::version`]) re-applies this
    /// session's [`changes`](Session::changes) on top of the other writer's data rather than
    /// overwriting it, and never brings back a session that was destroyed meanwhile: the save
    /// of such a session is dropped and answers [`CookieUpdate::Unchanged`].
    ///
    /// # Errors
    ///
    /// When the storage cannot be reached or refuses the write; the change was then not kept.
    fn save(
        &self,
        session: &Session,
    ) -> impl Future<Output = Result<CookieUpdate, Self::Error>> + Send;

    /// Lets go of a loaded session without saving it (the request failed): releases whatever
    /// [`read`](Self::read) holds for it, such as a lock. The default does nothing.
    ///
    /// # Errors
    ///
    /// When the storage cannot be reached.
    fn release(&self, session: &Session) -> impl Future<Output = Result<(), Self::Error>> + Send {
        let _ = session;
        std::future::ready(Ok(()))
    }
}

/// What a saved session means for the response's cookie. `Debug` shows only a short prefix
/// of a cookie value.
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum CookieUpdate {
    /// Send the cookie with this value (to be signed).
    Set(String),
    /// Expire the cookie: the session was destroyed.
    Clear,
    /// Send no cookie: nothing changed.
    Unchanged,
}

impl std::fmt::Debug for CookieUpdate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Set(value) => f
                .debug_tuple("Set")
                .field(&crate::id::Redacted(value))
                .finish(),
            Self::Clear => f.write_str("Clear"),
            Self::Unchanged => f.write_str("Unchanged"),
        }
    }
}
