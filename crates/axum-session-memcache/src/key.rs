//! memcached keys and expiry times.

use std::time::{SystemTime, UNIX_EPOCH};

use session_core::SessionId;
use sha2::{Digest, Sha256};

/// memcached reads an expiry above 30 days as an absolute unix time.
const MAX_RELATIVE_TTL: u64 = 60 * 60 * 24 * 30;

/// The memcached key a session is stored under: the prefix, then the lowercase hex SHA-256 of
/// the id, as Remix computes it. The raw id never reaches memcached.
///
/// Useful to find or delete one session's item by hand.
///
/// # Examples
///
/// ```
/// use axum_session_memcache::memcache_key;
/// use session_core::SessionId;
///
/// let id = SessionId::parse("rotated-id").unwrap();
/// assert_eq!(
///     memcache_key("my-app:session:", &id),
///     "my-app:session:1a1786813e40f13f95fd607b83492794b3f8fa5b1db4d26dc07c98af3126a70d"
/// );
/// ```
pub fn memcache_key(prefix: &str, id: &SessionId) -> String {
    let digest = Sha256::digest(id.as_str().as_bytes());
    format!("{prefix}{digest:x}")
}

/// The expiry to send for a TTL: `None` for no expiry, the TTL itself up to 30 days, and an
/// absolute unix time above that.
pub(crate) fn expiry(ttl_seconds: u64) -> Option<u64> {
    match ttl_seconds {
        0 => None,
        ttl if ttl <= MAX_RELATIVE_TTL => Some(ttl),
        ttl => {
            let now = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |since| since.as_secs());
            Some(now.saturating_add(ttl))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_match_remix() {
        let id = SessionId::parse("4f9d6b3e-1c2a-4b7e-9d8f-0a1b2c3d4e5f").unwrap();
        assert_eq!(
            memcache_key("remix:session:", &id),
            "remix:session:36965b6579d20d21e9c32ff6ca7a3fe6c8ce200bcb85c01aa250b4682b4e61ab"
        );
    }

    #[test]
    fn long_ttls_become_absolute_times() {
        assert_eq!(expiry(0), None);
        assert_eq!(expiry(60), Some(60));
        assert_eq!(expiry(MAX_RELATIVE_TTL), Some(MAX_RELATIVE_TTL));
        let absolute = expiry(MAX_RELATIVE_TTL + 1).unwrap();
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs();
        assert!(absolute >= now + MAX_RELATIVE_TTL);
        assert!(absolute <= now + MAX_RELATIVE_TTL + 60);
    }
}
