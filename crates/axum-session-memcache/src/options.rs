//! Options of the memcached session storage.

use std::time::Duration;

use crate::Error;

/// Longest key memcached accepts.
const MAX_KEY_LENGTH: usize = 250;
/// Length of the hex SHA-256 that follows the prefix in every key.
const HASH_LENGTH: usize = 64;
/// Longest expiry memcached takes as relative seconds.
const MAX_RELATIVE_EXPIRY: u64 = 60 * 60 * 24 * 30;
/// Appended to a session's key to name its lock.
pub(crate) const LOCK_SUFFIX: &str = ":lock";

/// Options of [`MemcacheSessionStorage`](crate::MemcacheSessionStorage): Remix's
/// `createMemcacheSessionStorage` options, plus the connection pool's.
///
/// Each setter states its default.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use axum_session_memcache::MemcacheSessionStorageOptions;
///
/// let options = MemcacheSessionStorageOptions::default()
///     .key_prefix("my-app:session:")
///     .ttl_seconds(60 * 60 * 24 * 14)
///     .operation_timeout(Duration::from_millis(250));
/// assert_eq!(options.get_key_prefix(), "my-app:session:");
/// ```
#[derive(Clone, Debug)]
pub struct MemcacheSessionStorageOptions {
    key_prefix: String,
    ttl_seconds: u64,
    use_unknown_ids: bool,
    pool_max_size: u32,
    connect_timeout: Duration,
    operation_timeout: Duration,
    max_item_size: usize,
    sliding_expiration: bool,
    cookie_renewal_interval: Duration,
    locking: bool,
    lock_wait: Duration,
    lock_expire: Duration,
}

impl Default for MemcacheSessionStorageOptions {
    fn default() -> Self {
        Self {
            key_prefix: "remix:session:".to_owned(),
            ttl_seconds: 0,
            use_unknown_ids: false,
            pool_max_size: 16,
            connect_timeout: Duration::from_secs(1),
            operation_timeout: Duration::from_millis(500),
            max_item_size: 1024 * 1024,
            sliding_expiration: false,
            cookie_renewal_interval: Duration::from_secs(60),
            locking: false,
            lock_wait: Duration::from_secs(2),
            lock_expire: Duration::from_secs(30),
        }
    }
}

impl MemcacheSessionStorageOptions {
    /// Prefix of every memcached key (default `"remix:session:"`). Printable ASCII without
    /// spaces, at most 186 bytes (memcached keys are at most 250 bytes, 64 of which are the
    /// hash of the session id).
    #[must_use]
    pub fn key_prefix(mut self, key_prefix: impl Into<String>) -> Self {
        self.key_prefix = key_prefix.into();
        self
    }

    /// Seconds a session lives after its last write (default `0`: never expires, though
    /// memcached may still evict it when full). Above 30 days it is sent to memcached as an
    /// absolute time, as memcached requires.
    #[must_use]
    pub fn ttl_seconds(mut self, ttl_seconds: u64) -> Self {
        self.ttl_seconds = ttl_seconds;
        self
    }

    /// Whether an id sent by a client but not found in memcached is reused for the new
    /// session (default `false`).
    #[must_use]
    pub fn use_unknown_ids(mut self, use_unknown_ids: bool) -> Self {
        self.use_unknown_ids = use_unknown_ids;
        self
    }

    /// Most connections kept open to memcached (default 16).
    #[must_use]
    pub fn pool_max_size(mut self, pool_max_size: u32) -> Self {
        self.pool_max_size = pool_max_size;
        self
    }

    /// Longest wait for a connection: to open one, or for a busy one to be free
    /// (default 1 s).
    #[must_use]
    pub fn connect_timeout(mut self, connect_timeout: Duration) -> Self {
        self.connect_timeout = connect_timeout;
        self
    }

    /// Longest wait for memcached to answer one command (default 500 ms).
    #[must_use]
    pub fn operation_timeout(mut self, operation_timeout: Duration) -> Self {
        self.operation_timeout = operation_timeout;
        self
    }

    /// memcached's item size limit, its `-I` option (default 1 MiB, memcached's default).
    /// Larger sessions are refused before they are sent: memcached would otherwise delete
    /// the copy it holds.
    #[must_use]
    pub fn max_item_size(mut self, max_item_size: usize) -> Self {
        self.max_item_size = max_item_size;
        self
    }

    /// Whether each read also extends the session's lifetime by the TTL (default `false`:
    /// the TTL counts from the last write, as in Remix). The extension rides on the read's
    /// round trip; the value is not rewritten.
    #[must_use]
    pub fn sliding_expiration(mut self, sliding_expiration: bool) -> Self {
        self.sliding_expiration = sliding_expiration;
        self
    }

    /// With sliding expiration, how often at most an unchanged session's cookie is sent again
    /// to extend its `Max-Age` too (default 60 s; never more than half the TTL).
    #[must_use]
    pub fn cookie_renewal_interval(mut self, interval: Duration) -> Self {
        self.cookie_renewal_interval = interval;
        self
    }

    /// Strict mode (default `false`): requests on one session are serialized by a lock held
    /// from the read to the save, as PHP's memcached session handler does. Requests on
    /// different sessions never wait for each other.
    #[must_use]
    pub fn locking(mut self, locking: bool) -> Self {
        self.locking = locking;
        self
    }

    /// With locking, the longest wait for a session's lock before answering `503`
    /// (default 2 s).
    #[must_use]
    pub fn lock_wait(mut self, lock_wait: Duration) -> Self {
        self.lock_wait = lock_wait;
        self
    }

    /// With locking, when a lock expires on its own, so that a crashed holder cannot block
    /// a session forever (default 30 s; whole seconds, from 1 s to 30 days).
    #[must_use]
    pub fn lock_expire(mut self, lock_expire: Duration) -> Self {
        self.lock_expire = lock_expire;
        self
    }

    /// Whether reads extend the session's lifetime.
    pub fn get_sliding_expiration(&self) -> bool {
        self.sliding_expiration
    }

    /// The cookie renewal interval of sliding expiration.
    pub fn get_cookie_renewal_interval(&self) -> Duration {
        self.cookie_renewal_interval
    }

    /// Whether requests on one session are serialized.
    pub fn get_locking(&self) -> bool {
        self.locking
    }

    /// The longest wait for a lock.
    pub fn get_lock_wait(&self) -> Duration {
        self.lock_wait
    }

    /// The lifetime of a lock.
    pub fn get_lock_expire(&self) -> Duration {
        self.lock_expire
    }

    /// The key prefix.
    pub fn get_key_prefix(&self) -> &str {
        &self.key_prefix
    }

    /// The TTL in seconds (`0`: none).
    pub fn get_ttl_seconds(&self) -> u64 {
        self.ttl_seconds
    }

    /// Whether unknown ids are reused.
    pub fn get_use_unknown_ids(&self) -> bool {
        self.use_unknown_ids
    }

    /// The pool's maximum size.
    pub fn get_pool_max_size(&self) -> u32 {
        self.pool_max_size
    }

    /// The connect timeout.
    pub fn get_connect_timeout(&self) -> Duration {
        self.connect_timeout
    }

    /// The operation timeout.
    pub fn get_operation_timeout(&self) -> Duration {
        self.operation_timeout
    }

    /// The item size limit.
    pub fn get_max_item_size(&self) -> usize {
        self.max_item_size
    }

    /// Checks the options as Remix does (key prefix), and the pool's.
    pub(crate) fn validate(&self) -> Result<(), Error> {
        if !self.key_prefix.bytes().all(|b| (0x21..=0x7e).contains(&b)) {
            return Err(Error::InvalidOption(
                "memcache key_prefix may only contain printable ASCII characters without spaces"
                    .to_owned(),
            ));
        }
        if self.key_prefix.len() + HASH_LENGTH > MAX_KEY_LENGTH {
            return Err(Error::InvalidOption(format!(
                "memcache key_prefix is too long; maximum length is {} bytes",
                MAX_KEY_LENGTH - HASH_LENGTH
            )));
        }
        if self.pool_max_size == 0 {
            return Err(Error::InvalidOption(
                "memcache pool_max_size must be at least 1".to_owned(),
            ));
        }
        if self.connect_timeout.is_zero() || self.operation_timeout.is_zero() {
            return Err(Error::InvalidOption(
                "memcache connect_timeout and operation_timeout must be longer than zero"
                    .to_owned(),
            ));
        }
        if self.locking && self.key_prefix.len() + HASH_LENGTH + LOCK_SUFFIX.len() > MAX_KEY_LENGTH
        {
            return Err(Error::InvalidOption(format!(
                "memcache key_prefix is too long for locking; maximum length is {} bytes",
                MAX_KEY_LENGTH - HASH_LENGTH - LOCK_SUFFIX.len()
            )));
        }
        if self.locking && !(1..=MAX_RELATIVE_EXPIRY).contains(&self.lock_expire.as_secs()) {
            return Err(Error::InvalidOption(
                "memcache lock_expire must be from 1 second to 30 days".to_owned(),
            ));
        }
        if self.max_item_size < 1024 {
            return Err(Error::InvalidOption(
                "memcache max_item_size must be at least 1024 bytes, memcached's smallest -I"
                    .to_owned(),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_remixs() {
        let options = MemcacheSessionStorageOptions::default();
        assert_eq!(options.get_key_prefix(), "remix:session:");
        assert_eq!(options.get_ttl_seconds(), 0);
        assert!(!options.get_use_unknown_ids());
        assert!(options.validate().is_ok());
    }

    #[test]
    fn key_prefix_is_validated_as_remix_does() {
        let message = |prefix: &str| {
            MemcacheSessionStorageOptions::default()
                .key_prefix(prefix)
                .validate()
                .unwrap_err()
                .to_string()
        };
        assert!(message("has space").contains("printable ASCII"));
        assert!(message("tab\t").contains("printable ASCII"));
        assert!(message("é").contains("printable ASCII"));
        assert!(message(&"p".repeat(187)).contains("maximum length is 186 bytes"));
        assert!(
            MemcacheSessionStorageOptions::default()
                .key_prefix("p".repeat(186))
                .validate()
                .is_ok()
        );
        assert!(
            MemcacheSessionStorageOptions::default()
                .key_prefix("")
                .validate()
                .is_ok()
        );
    }

    #[test]
    fn pool_options_are_validated() {
        let defaults = MemcacheSessionStorageOptions::default;
        assert!(defaults().pool_max_size(0).validate().is_err());
        assert!(
            defaults()
                .operation_timeout(Duration::ZERO)
                .validate()
                .is_err()
        );
        assert!(
            defaults()
                .connect_timeout(Duration::ZERO)
                .validate()
                .is_err()
        );
        assert!(defaults().max_item_size(10).validate().is_err());
    }
}
