//! The `Session` extractor: a handle on the request's session.

use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use axum_core::extract::{FromRequestParts, OptionalFromRequestParts};
use http::request::Parts;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::SessionError;
use crate::error::Chain;
use crate::layer::RequestSession;
use crate::rejection::{MissingSessionLayer, SessionRejection, SessionUnavailable};

/// The request's session, in handler signatures: `async fn handler(session: Session)`.
///
/// Extracting it loads the session from the storage (once per request, however many
/// extractors ask); routes that never extract it cost no storage round trip. Changes are
/// saved by [`SessionLayer`](crate::SessionLayer) after the handler returns. The handle is
/// cheap to clone; clones share the session until the response is produced (changes made
/// after that, from a spawned task for instance, are not saved).
///
/// Extraction fails with [`SessionRejection`]: `500` when the layer is missing, `503` when
/// the storage cannot be reached. `Option<Session>` never fails: it is `None` in those cases
/// (which are logged).
///
/// # Examples
///
/// ```
/// use axum::{Router, routing::get};
/// use axum_session_memcache::{Session, SessionCookie, SessionLayer};
/// use session_core::MemoryStorage;
///
/// async fn visits(session: Session) -> Result<String, axum_session_memcache::SessionError> {
///     let visits = session.get::<u64>("visits")?.unwrap_or(0) + 1;
///     session.insert("visits", visits)?;
///     Ok(format!("{visits} visits"))
/// }
///
/// let cookie = SessionCookie::new(["a-secret-of-at-least-32-random-bytes"])?;
/// let app: Router = Router::new()
///     .route("/", get(visits))
///     .layer(SessionLayer::new(MemoryStorage::new(), cookie));
/// # Ok::<(), axum_session_memcache::Error>(())
/// ```
#[derive(Clone)]
pub struct Session {
    inner: Arc<Mutex<session_core::Session>>,
}

impl Session {
    pub(crate) fn new(session: session_core::Session) -> Self {
        Self {
            inner: Arc::new(Mutex::new(session)),
        }
    }

    fn lock(&self) -> MutexGuard<'_, session_core::Session> {
        // Every method below leaves the session consistent even if a serializer panics.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Takes the session out of the handle to save it, once the handler has returned;
    /// clones still held elsewhere then see an empty session.
    pub(crate) fn take(&self) -> session_core::Session {
        let mut session = self.lock();
        let placeholder = session_core::Session::with_id(session.id().clone());
        std::mem::replace(&mut *session, placeholder)
    }

    /// Reads a value: the values first, then the flash values from the previous request.
    ///
    /// # Errors
    ///
    /// A [`SessionError`] when the stored value does not have type `T`.
    pub fn get<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>, SessionError> {
        Ok(self.lock().get(key)?)
    }

    /// Reads a value as raw JSON.
    pub fn get_value(&self, key: &str) -> Option<serde_json::Value> {
        self.lock().get_value(key).cloned()
    }

    /// Stores a value; one that serializes to JSON `null` removes the key.
    ///
    /// # Errors
    ///
    /// A [`SessionError`] after [`destroy`](Self::destroy), or when the value cannot be
    /// written as JSON.
    pub fn insert(
        &self,
        key: impl Into<String>,
        value: impl Serialize,
    ) -> Result<(), SessionError> {
        Ok(self.lock().insert(key, value)?)
    }

    /// Removes a value and returns it.
    ///
    /// # Errors
    ///
    /// A [`SessionError`] after [`destroy`](Self::destroy).
    pub fn remove(&self, key: &str) -> Result<Option<serde_json::Value>, SessionError> {
        Ok(self.lock().remove(key)?)
    }

    /// Stores a value for the next request only.
    ///
    /// # Errors
    ///
    /// As [`insert`](Self::insert).
    pub fn flash(&self, key: impl Into<String>, value: impl Serialize) -> Result<(), SessionError> {
        Ok(self.lock().flash(key, value)?)
    }

    /// Whether a value or flash value is stored under `key`.
    pub fn contains_key(&self, key: &str) -> bool {
        self.lock().contains_key(key)
    }

    /// The number of values and flash values.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether the session holds nothing.
    pub fn is_empty(&self) -> bool {
        self.lock().is_empty()
    }

    /// Gives the session a new id, keeping its data: call it on login (session fixation
    /// defence). With `delete_old`, the data under the old id is deleted on save.
    ///
    /// # Errors
    ///
    /// A [`SessionError`] after [`destroy`](Self::destroy).
    pub fn regenerate_id(&self, delete_old: bool) -> Result<(), SessionError> {
        Ok(self.lock().regenerate_id(delete_old)?)
    }

    /// Destroys the session: its data is deleted and the cookie expired on save.
    pub fn destroy(&self) {
        self.lock().destroy();
    }

    /// Whether the session changed in this request.
    pub fn is_dirty(&self) -> bool {
        self.lock().is_dirty()
    }

    /// Whether [`destroy`](Self::destroy) was called.
    pub fn is_destroyed(&self) -> bool {
        self.lock().is_destroyed()
    }

    /// Whether the session existed before this request.
    pub fn is_loaded(&self) -> bool {
        self.lock().is_loaded()
    }
}

impl fmt::Debug for Session {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.lock().fmt(f)
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Session {
    type Rejection = SessionRejection;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let request = parts
            .extensions
            .get::<RequestSession>()
            .cloned()
            .ok_or(SessionRejection::MissingLayer(MissingSessionLayer))?;
        request.load(&parts.headers).await.map_err(|error| {
            tracing::error!(error = %Chain(&*error), "could not load the session");
            SessionRejection::Unavailable(SessionUnavailable::new(error))
        })
    }
}

impl<S: Send + Sync> OptionalFromRequestParts<S> for Session {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &S,
    ) -> Result<Option<Self>, Self::Rejection> {
        Ok(
            <Self as FromRequestParts<S>>::from_request_parts(parts, state)
                .await
                .ok(),
        )
    }
}
