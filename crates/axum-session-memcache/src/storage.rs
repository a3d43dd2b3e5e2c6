//! The memcached session storage.

use std::fmt;
use std::sync::Arc;

use session_core::{CookieUpdate, Session, SessionData, SessionId, SessionStorage};
use tracing::Instrument as _;

use crate::Error;
use crate::address::Address;
use crate::key::{expiry, memcache_key};
use crate::options::MemcacheSessionStorageOptions;
use crate::pool::{Command, Pool, Reply};

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

    async fn read_data(&self, id: &SessionId) -> Result<Option<Vec<u8>>, Error> {
        let key = self.key(id);
        match self.inner.pool.execute(Command::Get { key: &key }).await? {
            Reply::Value(value) => Ok(value),
            Reply::Done => Ok(None),
        }
    }

    async fn delete(&self, id: &SessionId) -> Result<(), Error> {
        let key = self.key(id);
        self.inner
            .pool
            .execute(Command::Delete { key: &key })
            .await?;
        Ok(())
    }

    async fn write(&self, session: &Session) -> Result<(), Error> {
        let key = self.key(session.id());
        let value = session.data().to_json().map_err(|error| Error::Protocol {
            server: self.inner.pool.server().to_owned(),
            source: Box::new(error),
        })?;
        let size = key.len() + value.len() + ITEM_OVERHEAD;
        let limit = self.inner.options.get_max_item_size();
        if size > limit {
            return Err(Error::TooLarge { size, limit });
        }
        let expiry = expiry(self.inner.options.get_ttl_seconds());
        self.inner
            .pool
            .execute(Command::Set {
                key: &key,
                value: &value,
                expiry,
            })
            .await?;
        Ok(())
    }

    async fn read_session(&self, cookie_value: Option<&str>) -> Result<Session, Error> {
        let Some(id) = cookie_value.and_then(SessionId::parse) else {
            return Ok(Session::new());
        };
        match self.read_data(&id).await? {
            Some(bytes) => match SessionData::from_json(&bytes) {
                Ok(data) => Ok(Session::from_data(id, data)),
                Err(error) => {
                    tracing::warn!(
                        session = id.redacted(),
                        %error,
                        "stored session data is not [values, flash] JSON; starting a fresh session"
                    );
                    Ok(Session::new())
                }
            },
            None if self.inner.options.get_use_unknown_ids() => Ok(Session::with_id(id)),
            None => Ok(Session::new()),
        }
    }

    async fn save_session(&self, session: &Session) -> Result<CookieUpdate, Error> {
        if session.is_destroyed() {
            if let Some(old) = session.delete_id() {
                self.delete(old).await?;
            }
            self.delete(session.id()).await?;
            return Ok(CookieUpdate::Clear);
        }
        if !session.is_dirty() {
            return Ok(CookieUpdate::Unchanged);
        }
        // Write first, delete the old id after: a failed write keeps the old session intact.
        self.write(session).await?;
        if let Some(old) = session.delete_id() {
            self.delete(old).await?;
        }
        Ok(CookieUpdate::Set(session.id().as_str().to_owned()))
    }
}

impl SessionStorage for MemcacheSessionStorage {
    type Error = Error;

    async fn read(&self, cookie_value: Option<&str>) -> Result<Session, Error> {
        let span = tracing::debug_span!(
            "session.load",
            session = cookie_value.map(|value| value.get(..6).unwrap_or(value))
        );
        self.read_session(cookie_value).instrument(span).await
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
}
