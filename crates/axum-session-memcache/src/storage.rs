//! The memcached session storage.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use session_core::{CookieUpdate, Session, SessionData, SessionId, SessionStorage};
use tracing::Instrument as _;

use crate::Error;
use crate::address::Address;
use crate::error::Chain;
use crate::key::{expiry, memcache_key};
use crate::options::{LOCK_SUFFIX, MemcacheSessionStorageOptions};
use crate::pool::{Command, Pool, Reply, SetMode};

/// What a destroyed session's item holds until it expires: JSON `null`, which Remix reads as
/// "no session" too.
const TOMBSTONE: &[u8] = b"null";
/// Seconds a tombstone stays.
const TOMBSTONE_TTL: u64 = 60;
/// Tries of a save that keeps meeting concurrent writes.
const MAX_SAVE_TRIES: u32 = 10;
/// Longest pause before trying a conflicting save again; each pause is drawn at random
/// below a bound that doubles from 1 ms, so that contenders spread out.
const CONFLICT_PAUSE_MAX: Duration = Duration::from_millis(32);
/// First pause between two attempts to take a lock.
const LOCK_POLL_FIRST: Duration = Duration::from_millis(2);
/// Longest pause between two attempts to take a lock.
const LOCK_POLL_MAX: Duration = Duration::from_millis(50);

/// Bytes memcached adds to key and value when it stores an item (item header, CAS, suffix);
/// a safe upper bound, so that a session that passes the size check always fits.
const ITEM_OVERHEAD: usize = 96;

/// Sessions stored in memcached, as Remix's `createMemcacheSessionStorage` stores them: under
/// `key_prefix + hex(SHA-256(id))`, as the JSON `[values, flash]`, with the TTL set on each
/// write.
///
/// Cheap to clone: clones share one connection pool.
///
/// # Examples
///
/// ```no_run
/// use axum_session_memcache::{MemcacheSessionStorage, MemcacheSessionStorageOptions};
///
/// # async fn run() -> Result<(), axum_session_memcache::Error> {
/// let storage = MemcacheSessionStorage::new(
///     "127.0.0.1:11211",
///     MemcacheSessionStorageOptions::default().ttl_seconds(60 * 60 * 24),
/// )?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct MemcacheSessionStorage {
    inner: Arc<Inner>,
}

struct Inner {
    pool: Pool,
    options: MemcacheSessionStorageOptions,
}

impl fmt::Debug for MemcacheSessionStorage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemcacheSessionStorage")
            .field("pool", &self.inner.pool)
            .field("options", &self.inner.options)
            .finish()
    }
}

impl MemcacheSessionStorage {
    /// Creates the storage for the memcached at `server`: `host:port` (the port defaults to
    /// 11211), `tcp://host:port`, or `unix:///path/to.sock`. No connection is opened yet;
    /// the pool opens them as requests need them.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidServer`] for a malformed address (IPv6 addresses included: the client
    /// opens IPv4 sockets only), [`Error::InvalidOption`] for an invalid option,
    /// [`Error::NoRuntime`] outside a Tokio runtime.
    pub fn new(server: &str, options: MemcacheSessionStorageOptions) -> Result<Self, Error> {
        let address = Address::parse(server)?;
        options.validate()?;
        let pool = Pool::new(
            &address,
            options.get_pool_max_size(),
            options.get_connect_timeout(),
            options.get_operation_timeout(),
        )?;
        Ok(Self {
            inner: Arc::new(Inner { pool, options }),
        })
    }

    /// The options the storage was built with.
    pub fn options(&self) -> &MemcacheSessionStorageOptions {
        &self.inner.options
    }

    /// Checks that memcached answers, within the storage's timeouts: for health checks.
    ///
    /// # Errors
    ///
    /// As any command: [`Error::Unreachable`], [`Error::Timeout`], [`Error::PoolExhausted`]
    /// or [`Error::Protocol`].
    pub async fn ping(&self) -> Result<(), Error> {
        self.inner.pool.execute(Command::Version).await.map(drop)
    }

    fn key(&self, id: &SessionId) -> String {
        memcache_key(self.inner.options.get_key_prefix(), id)
    }

    /// Reads what is stored for `id`, extending its lifetime when `touch` is set.
    async fn fetch(&self, id: &SessionId, touch: bool) -> Result<Stored, Error> {
        let key = self.key(id);
        let touch = touch
            .then(|| expiry(self.options().get_ttl_seconds()))
            .flatten();
        let Reply::Item(item) = self
            .inner
            .pool
            .execute(Command::Get { key: &key, touch })
            .await?
        else {
            return Err(self.unexpected("an item"));
        };
        let Some(item) = item else {
            return Ok(Stored::Missing);
        };
        if item.data == TOMBSTONE {
            return Ok(Stored::Tombstone);
        }
        match SessionData::from_json(&item.data) {
            Ok(data) => Ok(Stored::Data {
                data,
                cas: item.cas,
                ttl_remaining: item.ttl_remaining,
            }),
            Err(error) => {
                tracing::warn!(
                    session = id.redacted(),
                    %error,
                    "stored session data is not [values, flash] JSON; starting a fresh session"
                );
                Ok(Stored::Corrupt)
            }
        }
    }

    /// Encodes session data, refusing what memcached would not store.
    fn encode(&self, key: &str, data: &SessionData) -> Result<Vec<u8>, Error> {
        let value = data.to_json().map_err(|error| Error::Protocol {
            server: self.inner.pool.server().to_owned(),
            source: Box::new(error),
        })?;
        let size = key.len() + value.len() + ITEM_OVERHEAD;
        let limit = self.options().get_max_item_size();
        if size > limit {
            return Err(Error::TooLarge { size, limit });
        }
        Ok(value)
    }

    async fn set(
        &self,
        key: &str,
        value: &[u8],
        mode: SetMode,
        expiry: Option<u64>,
    ) -> Result<Reply, Error> {
        self.inner
            .pool
            .execute(Command::Set {
                key,
                value,
                expiry,
                mode,
            })
            .await
    }

    async fn delete(&self, id: &SessionId, cas: Option<u64>) -> Result<Reply, Error> {
        let key = self.key(id);
        self.inner
            .pool
            .execute(Command::Delete { key: &key, cas })
            .await
    }

    /// Replaces a destroyed session's data by a short-lived tombstone, so that a racing save
    /// finds it destroyed rather than missing.
    async fn bury(&self, id: &SessionId) -> Result<(), Error> {
        let key = self.key(id);
        self.set(&key, TOMBSTONE, SetMode::Overwrite, Some(TOMBSTONE_TTL))
            .await?;
        Ok(())
    }

    fn unexpected(&self, expected: &str) -> Error {
        Error::Protocol {
            server: self.inner.pool.server().to_owned(),
            source: format!("memcached did not answer with {expected}").into(),
        }
    }

    fn lock_key(&self, id: &SessionId) -> String {
        let mut key = self.key(id);
        key.push_str(LOCK_SUFFIX);
        key
    }

    /// Takes the session's lock, waiting at most `lock_wait`; returns the lock item's CAS
    /// value, which releasing it requires.
    async fn lock(&self, id: &SessionId) -> Result<u64, Error> {
        let key = self.lock_key(id);
        // A token of our own, so that after an ambiguous failure (the add may have been
        // applied though its answer was lost) the lock can be recognised as ours.
        let token = format!("{:016x}", rand::random::<u64>());
        let expiry = self.options().get_lock_expire().as_secs();
        let wait = self.options().get_lock_wait();
        let start = Instant::now();
        let mut pause = LOCK_POLL_FIRST;
        loop {
            let command = Command::Lock {
                key: &key,
                token: token.as_bytes(),
                expiry,
            };
            match self.inner.pool.execute(command).await? {
                Reply::Locked { cas } => return Ok(cas),
                Reply::NotStored => {}
                _ => return Err(self.unexpected("stored or not stored")),
            }
            let holder = Command::Get {
                key: &key,
                touch: None,
            };
            if let Reply::Item(Some(item)) = self.inner.pool.execute(holder).await?
                && item.data == token.as_bytes()
                && let Some(cas) = item.cas
            {
                return Ok(cas);
            }
            let waited = start.elapsed();
            let Some(left) = wait.checked_sub(waited).filter(|left| !left.is_zero()) else {
                return Err(Error::LockTimeout { waited });
            };
            tokio::time::sleep(pause.min(left)).await;
            pause = (pause * 2).min(LOCK_POLL_MAX);
        }
    }

    /// Lets go of the session's lock, only if it still is the one taken with `cas`; a
    /// failure is logged (the lock expires on its own).
    async fn unlock(&self, id: &SessionId, cas: u64) {
        let key = self.lock_key(id);
        let deleted = self
            .inner
            .pool
            .execute(Command::Delete {
                key: &key,
                cas: Some(cas),
            })
            .await;
        match deleted {
            Ok(Reply::Done | Reply::NotFound) => {}
            Ok(_) => tracing::warn!(
                session = id.redacted(),
                "the session lock expired while held (the request took longer than lock_expire) and another request has it now"
            ),
            Err(error) => tracing::warn!(
                session = id.redacted(),
                error = %Chain(&error),
                "could not release the session lock; it expires on its own"
            ),
        }
    }

    /// Releases the lock a session holds, if any.
    async fn release_lock(&self, session: &Session) {
        if let Some(cas) = session.lock_token() {
            self.unlock(session.original_id(), cas).await;
        }
    }

    /// Whether a sliding session's cookie is due to be sent again, given the item's
    /// remaining lifetime before this read extended it.
    fn cookie_due(&self, ttl_remaining: Option<i64>) -> bool {
        let ttl = self.options().get_ttl_seconds();
        if !self.options().get_sliding_expiration() || ttl == 0 {
            return false;
        }
        let Some(remaining) = ttl_remaining.and_then(|remaining| u64::try_from(remaining).ok())
        else {
            // No expiry on the item yet (written without a TTL): this read set one.
            return true;
        };
        let interval = self
            .options()
            .get_cookie_renewal_interval()
            .as_secs()
            .min(ttl / 2);
        ttl.saturating_sub(remaining) >= interval
    }

    async fn read_session(&self, id: Option<SessionId>) -> Result<Session, Error> {
        let Some(id) = id else {
            return Ok(Session::new());
        };
        let lock = if self.options().get_locking() {
            Some(self.lock(&id).await?)
        } else {
            None
        };
        let stored = match self
            .fetch(&id, self.options().get_sliding_expiration())
            .await
        {
            Ok(stored) => stored,
            Err(error) => {
                if let Some(cas) = lock {
                    self.unlock(&id, cas).await;
                }
                return Err(error);
            }
        };
        if let Stored::Data {
            data,
            cas,
            ttl_remaining,
        } = stored
        {
            let mut session = Session::from_data(id, data);
            if let Some(cas) = cas {
                session.set_version(cas);
            }
            if let Some(lock) = lock {
                session.set_lock_token(lock);
            }
            if self.cookie_due(ttl_remaining) {
                session.renew_cookie();
            }
            return Ok(session);
        }
        if let Some(cas) = lock {
            self.unlock(&id, cas).await;
        }
        Ok(match stored {
            Stored::Missing if self.options().get_use_unknown_ids() => Session::with_id(id),
            _ => Session::new(),
        })
    }

    async fn save_session(&self, session: &Session) -> Result<CookieUpdate, Error> {
        let result = self.save_unlocked(session).await;
        self.release_lock(session).await;
        result
    }

    async fn save_unlocked(&self, session: &Session) -> Result<CookieUpdate, Error> {
        if session.is_destroyed() {
            self.bury(session.id()).await?;
            if let Some(old) = session.delete_id() {
                self.bury(old).await?;
            }
            return Ok(CookieUpdate::Clear);
        }
        if !session.is_dirty() {
            return Ok(if session.wants_cookie_renewal() {
                CookieUpdate::Set(session.id().as_str().to_owned())
            } else {
                CookieUpdate::Unchanged
            });
        }
        match (session.version(), session.changes().id_regenerated()) {
            (Some(cas), false) => self.write(session, SetMode::Cas(cas)).await,
            (Some(cas), true) => self.write_regenerated(session, cas).await,
            (None, _) if session.is_loaded() => self.write(session, SetMode::Overwrite).await,
            (None, _) => self.write(session, SetMode::Add).await,
        }
    }

    /// Writes the session under its id. When another request wrote it since it was loaded,
    /// re-applies this request's changes on top of that and tries again, a bounded number of
    /// times; a session destroyed meanwhile is not brought back.
    async fn write(&self, session: &Session, mut mode: SetMode) -> Result<CookieUpdate, Error> {
        let id = session.id();
        let key = self.key(id);
        let expiry = expiry(self.options().get_ttl_seconds());
        let mut data = session.data();
        for attempt in 1..=MAX_SAVE_TRIES {
            let value = self.encode(&key, &data)?;
            let missing = match self.set(&key, &value, mode, expiry).await? {
                Reply::Done => return Ok(CookieUpdate::Set(id.as_str().to_owned())),
                Reply::NotFound => true,
                Reply::Exists | Reply::NotStored => false,
                Reply::Item(_) | Reply::Locked { .. } => {
                    return Err(self.unexpected("a write status"));
                }
            };
            let current = if missing {
                Stored::Missing
            } else {
                // Let the other writers finish before reading what they wrote; the write
                // follows the read at once, so that its CAS value is as fresh as can be.
                tokio::time::sleep(conflict_pause(attempt)).await;
                self.fetch(id, false).await?
            };
            match current {
                Stored::Data {
                    data: theirs,
                    cas: Some(cas),
                    ..
                } => {
                    tracing::info!(
                        session = id.redacted(),
                        keys = ?session.changes().keys().collect::<Vec<_>>(),
                        "session written concurrently: re-applying this request's changes on top; for keys both changed, this save wins"
                    );
                    data = session.changes().rebase(theirs);
                    mode = SetMode::Cas(cas);
                }
                Stored::Missing if mode == SetMode::Add => {}
                Stored::Corrupt | Stored::Data { cas: None, .. } => {
                    data = session.data();
                    mode = SetMode::Overwrite;
                }
                Stored::Missing | Stored::Tombstone => {
                    tracing::warn!(
                        session = id.redacted(),
                        "session was destroyed or expired while this request ran; its changes are dropped"
                    );
                    return Ok(CookieUpdate::Unchanged);
                }
            }
        }
        Err(Error::Conflict {
            tries: MAX_SAVE_TRIES,
        })
    }

    /// Writes a session whose id was regenerated: the new id is added, then the old one is
    /// deleted if asked, only if nobody wrote it since it was loaded (otherwise their write
    /// is merged into the new id first). Two round trips in the usual case.
    async fn write_regenerated(&self, session: &Session, cas: u64) -> Result<CookieUpdate, Error> {
        let update = self.write(session, SetMode::Add).await?;
        if session.delete_id().is_none() {
            return Ok(update);
        }
        let old = session.original_id();
        match self.delete(old, Some(cas)).await? {
            Reply::Done | Reply::NotFound => return Ok(update),
            Reply::Exists => {}
            _ => return Err(self.unexpected("a delete status")),
        }
        match self.fetch(old, false).await? {
            Stored::Data { data: theirs, .. } => {
                let key = self.key(session.id());
                let value = self.encode(&key, &session.changes().rebase(theirs))?;
                let expiry = expiry(self.options().get_ttl_seconds());
                self.set(&key, &value, SetMode::Overwrite, expiry).await?;
                self.delete(old, None).await?;
                Ok(update)
            }
            Stored::Tombstone => {
                tracing::warn!(
                    session = old.redacted(),
                    "session was destroyed while its id was regenerated; the new id is dropped"
                );
                self.delete(session.id(), None).await?;
                Ok(CookieUpdate::Unchanged)
            }
            Stored::Missing | Stored::Corrupt => {
                self.delete(old, None).await?;
                Ok(update)
            }
        }
    }
}

/// A random pause before the `attempt`-th try of a conflicting save.
fn conflict_pause(attempt: u32) -> Duration {
    let bound = Duration::from_millis(1 << attempt.min(5)).min(CONFLICT_PAUSE_MAX);
    bound.mul_f64(rand::random::<f64>())
}

/// What memcached holds for a session id.
enum Stored {
    Missing,
    Tombstone,
    Corrupt,
    Data {
        data: SessionData,
        cas: Option<u64>,
        ttl_remaining: Option<i64>,
    },
}

impl SessionStorage for MemcacheSessionStorage {
    type Error = Error;

    async fn read(&self, cookie_value: Option<&str>) -> Result<Session, Error> {
        let id = cookie_value.and_then(SessionId::parse);
        let span = tracing::debug_span!(
            "session.load",
            session = id.as_ref().map(SessionId::redacted)
        );
        self.read_session(id).instrument(span).await
    }

    async fn save(&self, session: &Session) -> Result<CookieUpdate, Error> {
        let span = tracing::debug_span!(
            "session.save",
            session = session.id().redacted(),
            destroyed = session.is_destroyed(),
            dirty = session.is_dirty(),
        );
        self.save_session(session).instrument(span).await
    }

    async fn release(&self, session: &Session) -> Result<(), Error> {
        self.release_lock(session).await;
        Ok(())
    }
}
