//! The session a request works with.

use std::collections::BTreeSet;
use std::fmt;

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::{Changes, Error, SessionData, SessionId, Values};

/// A session: data kept for one user across requests, with Remix's semantics.
///
/// - [`get`](Self::get) looks in the values first, then in the flash values left by the
///   previous request.
/// - [`insert`](Self::insert) stores a value; inserting JSON `null` removes the key.
/// - [`flash`](Self::flash) stores a value for the next request only. Loading a session that
///   holds flash values marks it dirty, so the flash is consumed when the session is saved.
/// - After [`destroy`](Self::destroy), reads find nothing and changes are errors.
///
/// The session also remembers which changes it went through since it was loaded (see
/// [`changes`](Self::changes)), so a storage can re-apply them on top of a concurrent writer's
/// data.
///
/// # Examples
///
/// ```
/// use session_core::Session;
///
/// let mut session = Session::new();
/// session.insert("user", serde_json::json!({ "name": "mj" }))?;
/// session.flash("message", "welcome")?;
///
/// assert_eq!(session.get::<String>("message")?, None); // flash is for the next request
/// assert!(session.is_dirty());
/// assert_eq!(
///     serde_json::to_string(&session.data())?,
///     r#"[{"user":{"name":"mj"}},{"message":"welcome"}]"#
/// );
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
#[allow(
    clippy::struct_excessive_bools,
    reason = "independent flags, as in Remix's session: loaded, cookie renewal, dirty, destroyed"
)]
pub struct Session {
    original_id: SessionId,
    id: SessionId,
    delete_id: Option<SessionId>,
    values: Values,
    flash: Values,
    next_flash: Values,
    touched: BTreeSet<String>,
    loaded: bool,
    version: Option<u64>,
    lock_token: Option<u64>,
    renew_cookie: bool,
    dirty: bool,
    destroyed: bool,
}

impl Session {
    /// Creates an empty session with a fresh random id.
    pub fn new() -> Self {
        Self::with_id(SessionId::generate())
    }

    /// Creates an empty session with the given id (used for unknown ids a storage reuses).
    pub fn with_id(id: SessionId) -> Self {
        Self::build(id, SessionData::default(), false)
    }

    /// Creates a session loaded from storage. It is dirty when `data` holds flash values, so
    /// that saving it consumes them.
    pub fn from_data(id: SessionId, data: SessionData) -> Self {
        Self::build(id, data, true)
    }

    fn build(id: SessionId, data: SessionData, loaded: bool) -> Self {
        let dirty = !data.flash.is_empty();
        Self {
            original_id: id.clone(),
            id,
            delete_id: None,
            values: data.values,
            flash: data.flash,
            next_flash: Values::new(),
            touched: BTreeSet::new(),
            loaded,
            version: None,
            lock_token: None,
            renew_cookie: false,
            dirty,
            destroyed: false,
        }
    }

    /// The current id (changed by [`regenerate_id`](Self::regenerate_id)).
    pub fn id(&self) -> &SessionId {
        &self.id
    }

    /// The id the session was created or loaded with.
    pub fn original_id(&self) -> &SessionId {
        &self.original_id
    }

    /// The id whose stored data must be deleted on save: the original id, once
    /// [`regenerate_id`](Self::regenerate_id) was called with `delete_old`.
    pub fn delete_id(&self) -> Option<&SessionId> {
        self.delete_id.as_ref()
    }

    /// Whether the session was loaded from storage (rather than created by this request).
    pub fn is_loaded(&self) -> bool {
        self.loaded
    }

    /// The version of the stored data this session was loaded from, as the storage counts
    /// versions (memcached's CAS value, for instance): a storage compares it on save to
    /// detect a concurrent write.
    pub fn version(&self) -> Option<u64> {
        self.version
    }

    /// Records the version of the stored data this session was loaded from.
    pub fn set_version(&mut self, version: u64) {
        self.version = Some(version);
    }

    /// Records that the storage locked this session for the request, with a token it needs
    /// to let go of the lock (memcached's CAS value of the lock item, for instance).
    pub fn set_lock_token(&mut self, token: u64) {
        self.lock_token = Some(token);
    }

    /// The token of the lock the storage holds on this session, if any.
    pub fn lock_token(&self) -> Option<u64> {
        self.lock_token
    }

    /// Asks for the cookie to be sent again on save even if nothing changed (a storage with
    /// sliding expiration does so when it extended the session's lifetime).
    pub fn renew_cookie(&mut self) {
        self.renew_cookie = true;
    }

    /// Whether [`renew_cookie`](Self::renew_cookie) was called.
    pub fn wants_cookie_renewal(&self) -> bool {
        self.renew_cookie
    }

    /// Whether the session must be written back.
    pub fn is_dirty(&self) -> bool {
        self.dirty
    }

    /// Whether [`destroy`](Self::destroy) was called.
    pub fn is_destroyed(&self) -> bool {
        self.destroyed
    }

    /// Reads a value: the session's values first, then the flash values from the previous
    /// request. A destroyed session holds nothing.
    ///
    /// # Errors
    ///
    /// [`Error::Deserialize`] when the stored value does not have type `T`.
    pub fn get<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>, Error> {
        self.get_value(key)
            .map(|value| {
                T::deserialize(value).map_err(|source| Error::Deserialize {
                    key: key.to_owned(),
                    source,
                })
            })
            .transpose()
    }

    /// Reads a value as raw JSON, with the same lookup order as [`get`](Self::get).
    pub fn get_value(&self, key: &str) -> Option<&Value> {
        if self.destroyed {
            return None;
        }
        self.values.get(key).or_else(|| self.flash.get(key))
    }

    /// Whether a value or a flash value is stored under `key`.
    pub fn contains_key(&self, key: &str) -> bool {
        !self.destroyed && (self.values.contains_key(key) || self.flash.contains_key(key))
    }

    /// The number of values plus flash values readable in this request.
    pub fn len(&self) -> usize {
        if self.destroyed {
            0
        } else {
            self.values.len() + self.flash.len()
        }
    }

    /// Whether [`len`](Self::len) is zero.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Stores a value under `key`. A value that serializes to JSON `null` removes the key.
    ///
    /// # Errors
    ///
    /// [`Error::Destroyed`] after [`destroy`](Self::destroy); [`Error::Serialize`] when the
    /// value cannot be written as JSON.
    pub fn insert(&mut self, key: impl Into<String>, value: impl Serialize) -> Result<(), Error> {
        self.check_not_destroyed()?;
        let key = key.into();
        let value = serde_json::to_value(value).map_err(|source| Error::Serialize {
            key: key.clone(),
            source,
        })?;
        if value.is_null() {
            self.values.shift_remove(&key);
        } else {
            self.values.insert(key.clone(), value);
        }
        self.touched.insert(key);
        self.dirty = true;
        Ok(())
    }

    /// Removes the value under `key` and returns it.
    ///
    /// # Errors
    ///
    /// [`Error::Destroyed`] after [`destroy`](Self::destroy).
    pub fn remove(&mut self, key: &str) -> Result<Option<Value>, Error> {
        self.check_not_destroyed()?;
        let removed = self.values.shift_remove(key);
        self.touched.insert(key.to_owned());
        self.dirty = true;
        Ok(removed)
    }

    /// Stores a value that the next request can read once.
    ///
    /// # Errors
    ///
    /// [`Error::Destroyed`] after [`destroy`](Self::destroy); [`Error::Serialize`] when the
    /// value cannot be written as JSON.
    pub fn flash(&mut self, key: impl Into<String>, value: impl Serialize) -> Result<(), Error> {
        self.check_not_destroyed()?;
        let key = key.into();
        let value = serde_json::to_value(value).map_err(|source| Error::Serialize {
            key: key.clone(),
            source,
        })?;
        self.next_flash.insert(key, value);
        self.dirty = true;
        Ok(())
    }

    /// Gives the session a new random id, keeping its data: call it after login or any other
    /// change of privilege (session fixation defence). With `delete_old`, the data stored
    /// under the original id is deleted on save, however many times the id was regenerated.
    ///
    /// # Errors
    ///
    /// [`Error::Destroyed`] after [`destroy`](Self::destroy).
    pub fn regenerate_id(&mut self, delete_old: bool) -> Result<(), Error> {
        self.check_not_destroyed()?;
        if delete_old {
            self.delete_id = Some(self.original_id.clone());
        }
        self.id = SessionId::generate();
        self.dirty = true;
        Ok(())
    }

    /// Marks the session destroyed: on save its data is deleted and the cookie cleared.
    pub fn destroy(&mut self) {
        self.destroyed = true;
    }

    /// The data to store: `[values, next flash]`, empty once destroyed.
    pub fn data(&self) -> SessionData {
        if self.destroyed {
            SessionData::default()
        } else {
            SessionData::new(self.values.clone(), self.next_flash.clone())
        }
    }

    /// What this session went through since it was created or loaded.
    pub fn changes(&self) -> Changes<'_> {
        Changes::new(self)
    }

    pub(crate) fn touched_keys(&self) -> &BTreeSet<String> {
        &self.touched
    }

    pub(crate) fn values(&self) -> &Values {
        &self.values
    }

    pub(crate) fn loaded_flash(&self) -> &Values {
        &self.flash
    }

    pub(crate) fn next_flash(&self) -> &Values {
        &self.next_flash
    }

    fn check_not_destroyed(&self) -> Result<(), Error> {
        if self.destroyed {
            Err(Error::Destroyed)
        } else {
            Ok(())
        }
    }
}

impl Default for Session {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for Session {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Session")
            .field("id", &self.id)
            .field("len", &self.len())
            .field("loaded", &self.loaded)
            .field("dirty", &self.dirty)
            .field("destroyed", &self.destroyed)
            .finish_non_exhaustive()
    }
}
