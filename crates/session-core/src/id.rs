//! Session identifiers.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::RngCore as _;

/// The identifier of a session.
///
/// New ids carry 256 bits from the operating-system-seeded CSPRNG, written as URL-safe base64
/// without padding (43 characters). Ids that arrive from a client are opaque strings: any
/// non-empty string of at most [`SessionId::MAX_LEN`] bytes is accepted, so that sessions
/// created by a Remix app (whose ids are UUIDs) keep working.
///
/// `Debug` shows only a short prefix of the id, so that logs never hold a usable id.
///
/// # Examples
///
/// ```
/// use session_core::SessionId;
///
/// let id = SessionId::generate();
/// assert_eq!(id.as_str().len(), 43);
///
/// assert!(SessionId::parse("4f9d6b3e-1c2a-4b7e-9d8f-0a1b2c3d4e5f").is_some());
/// assert!(SessionId::parse("").is_none());
/// assert!(SessionId::parse(&"x".repeat(300)).is_none());
/// ```
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct SessionId(String);

impl SessionId {
    /// The longest id, in bytes, accepted from a client.
    pub const MAX_LEN: usize = 256;

    /// Number of random bytes in a generated id.
    const RANDOM_BYTES: usize = 32;

    /// Creates a new random id.
    pub fn generate() -> Self {
        let mut bytes = [0_u8; Self::RANDOM_BYTES];
        rand::rng().fill_bytes(&mut bytes);
        Self(URL_SAFE_NO_PAD.encode(bytes))
    }

    /// Accepts an id that came from a client, or `None` when it is empty or longer than
    /// [`SessionId::MAX_LEN`] bytes (such an id is treated as absent).
    pub fn parse(id: &str) -> Option<Self> {
        if id.is_empty() || id.len() > Self::MAX_LEN {
            None
        } else {
            Some(Self(id.to_owned()))
        }
    }

    /// The id as a string, for storage keys and cookies. Never log it.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SessionId(")?;
        f.write_str(self.redacted())?;
        f.write_str("…)")
    }
}

impl SessionId {
    /// The first few characters of the id: enough to correlate log lines, too few to use.
    pub fn redacted(&self) -> &str {
        redact(&self.0)
    }
}

/// The first six characters of a secret-bearing string.
pub(crate) fn redact(value: &str) -> &str {
    let end = value
        .char_indices()
        .nth(6)
        .map_or(value.len(), |(index, _)| index);
    &value[..end]
}

/// Shows a secret-bearing string as its first six characters and an ellipsis.
pub(crate) struct Redacted<'a>(pub(crate) &'a str);

impl fmt::Debug for Redacted<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "\"{}…\"", redact(self.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_ids_are_43_url_safe_characters_and_distinct() {
        let a = SessionId::generate();
        let b = SessionId::generate();
        assert_ne!(a, b);
        for id in [&a, &b] {
            assert_eq!(id.as_str().len(), 43);
            assert!(
                id.as_str()
                    .bytes()
                    .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_')
            );
        }
    }

    #[test]
    fn parse_accepts_up_to_max_len_bytes() {
        assert!(SessionId::parse(&"a".repeat(SessionId::MAX_LEN)).is_some());
        assert!(SessionId::parse(&"a".repeat(SessionId::MAX_LEN + 1)).is_none());
        assert!(SessionId::parse("").is_none());
    }

    #[test]
    fn debug_of_verified_values_and_cookie_updates_shows_only_a_prefix() {
        let signer = crate::CookieSigner::new(["s"]).unwrap();
        let verified = signer.verify(&signer.sign("abcdefghijklmnop")).unwrap();
        let debug = format!(
            "{verified:?} {:?}",
            crate::CookieUpdate::Set("abcdefghijklmnop".into())
        );
        assert!(!debug.contains("abcdefg"), "{debug}");
        assert!(debug.contains("abcdef…"), "{debug}");
    }

    #[test]
    fn debug_shows_only_a_prefix() {
        let id = SessionId::parse("abcdefghijklmnop").unwrap();
        assert_eq!(format!("{id:?}"), "SessionId(abcdef…)");
        let short = SessionId::parse("é").unwrap();
        assert_eq!(short.redacted(), "é");
    }
}
