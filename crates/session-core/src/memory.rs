//! Sessions kept in this process's memory.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use crate::{CookieUpdate, Session, SessionData, SessionId, SessionStorage};

/// A [`SessionStorage`] in this process's memory, for tests, development and single-process
/// apps. Clones share the same sessions.
///
/// Saves never lose a concurrent request's changes: each record has a version, and a session
/// saved after another request wrote it has its own changes re-applied on top
/// ([`Changes::rebase`](crate::Changes::rebase)). A session destroyed meanwhile stays
/// destroyed.
///
/// With a [`ttl`](Self::ttl), sessions expire that long after their last save, and expired
/// records are removed (lazily on read, and in a sweep at most once per TTL on save), so the
/// map does not grow without bound.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use session_core::MemoryStorage;
///
/// let storage = MemoryStorage::new()
///     .ttl(Duration::from_secs(3600))
///     .use_unknown_ids(false);
/// assert_eq!(storage.len(), 0);
/// ```
#[derive(Clone, Debug, Default)]
pub struct MemoryStorage {
    inner: Arc<Mutex<Records>>,
    use_unknown_ids: bool,
    ttl: Option<Duration>,
}

#[derive(Debug, Default)]
struct Records {
    sessions: HashMap<SessionId, Record>,
    last_sweep: Option<Instant>,
    last_version: u64,
}

#[derive(Debug)]
struct Record {
    data: SessionData,
    expires: Option<Instant>,
    version: u64,
}

impl Record {
    fn is_live(&self, now: Instant) -> bool {
        self.expires.is_none_or(|expires| now < expires)
    }
}

impl MemoryStorage {
    /// An empty storage: no expiry, unknown ids not reused.
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether an id sent by a client but not found is reused for the new session
    /// (default `false`, as in Remix).
    #[must_use]
    pub fn use_unknown_ids(mut self, use_unknown_ids: bool) -> Self {
        self.use_unknown_ids = use_unknown_ids;
        self
    }

    /// How long a session lives after its last save (default: forever).
    #[must_use]
    pub fn ttl(mut self, ttl: Duration) -> Self {
        self.ttl = Some(ttl);
        self
    }

    /// The number of stored sessions, expired ones not yet removed included.
    pub fn len(&self) -> usize {
        self.records().sessions.len()
    }

    /// Whether no session is stored.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn records(&self) -> MutexGuard<'_, Records> {
        // A panic while holding the lock cannot leave the map half-updated: every update is a
        // single insert or remove.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn read_now(&self, cookie_value: Option<&str>) -> Session {
        let Some(id) = cookie_value.and_then(SessionId::parse) else {
            return Session::new();
        };
        let now = Instant::now();
        let mut records = self.records();
        match records.sessions.get(&id) {
            Some(record) if record.is_live(now) => {
                let mut session = Session::from_data(id, record.data.clone());
                session.set_version(record.version);
                return session;
            }
            Some(_) => {
                records.sessions.remove(&id);
            }
            None => {}
        }
        if self.use_unknown_ids {
            Session::with_id(id)
        } else {
            Session::new()
        }
    }

    fn save_now(&self, session: &Session) -> CookieUpdate {
        let now = Instant::now();
        let mut records = self.records();
        if session.is_destroyed() {
            if let Some(old) = session.delete_id() {
                records.sessions.remove(old);
            }
            records.sessions.remove(session.id());
            return CookieUpdate::Clear;
        }
        if !session.is_dirty() {
            return if session.wants_cookie_renewal() {
                CookieUpdate::Set(session.id().as_str().to_owned())
            } else {
                CookieUpdate::Unchanged
            };
        }
        // What was stored when this session was loaded, compared with what is stored now.
        let stored = records
            .sessions
            .get(session.original_id())
            .filter(|record| record.is_live(now));
        let data = match (session.version(), stored) {
            (None, None) => session.data(),
            (Some(version), Some(record)) if record.version == version => session.data(),
            // Written by another request since this one loaded it (or, for a reused unknown
            // id, since this one found nothing): re-apply this request's changes on top.
            (_, Some(record)) => session.changes().rebase(record.data.clone()),
            // Destroyed or expired meanwhile: not brought back.
            (Some(_), None) => return CookieUpdate::Unchanged,
        };
        records.last_version += 1;
        let version = records.last_version;
        records.sessions.insert(
            session.id().clone(),
            Record {
                data,
                expires: self.ttl.map(|ttl| now + ttl),
                version,
            },
        );
        if let Some(old) = session.delete_id() {
            records.sessions.remove(old);
        }
        if let Some(ttl) = self.ttl
            && records.last_sweep.is_none_or(|last| now - last >= ttl)
        {
            records.sessions.retain(|_, record| record.is_live(now));
            records.last_sweep = Some(now);
        }
        CookieUpdate::Set(session.id().as_str().to_owned())
    }
}

impl SessionStorage for MemoryStorage {
    type Error = Infallible;

    async fn read(&self, cookie_value: Option<&str>) -> Result<Session, Infallible> {
        Ok(self.read_now(cookie_value))
    }

    async fn save(&self, session: &Session) -> Result<CookieUpdate, Infallible> {
        Ok(self.save_now(session))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expired_sessions_are_not_read_and_are_swept() {
        let storage = MemoryStorage::new().ttl(Duration::from_millis(30));
        let mut first = storage.read_now(None);
        first.insert("a", 1).unwrap();
        let CookieUpdate::Set(cookie) = storage.save_now(&first) else {
            panic!("a dirty session is set")
        };
        std::thread::sleep(Duration::from_millis(60));
        assert!(storage.read_now(Some(&cookie)).get_value("a").is_none());

        // The sweep on save removes records that nobody reads again.
        let mut second = storage.read_now(None);
        second.insert("b", 1).unwrap();
        storage.save_now(&second);
        std::thread::sleep(Duration::from_millis(60));
        let mut third = storage.read_now(None);
        third.insert("c", 1).unwrap();
        storage.save_now(&third);
        assert_eq!(storage.len(), 1);
    }
}
