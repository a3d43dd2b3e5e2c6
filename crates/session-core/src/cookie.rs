//! The session cookie's value: Remix's default cookie codec, signed with HMAC-SHA256.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq as _;

use crate::Error;

type HmacSha256 = Hmac<Sha256>;

/// Signs and verifies session cookie values, byte for byte as Remix's `remix/cookie` does
/// with its default codec.
///
/// A value is encoded as `base64(utf8(value))` (standard alphabet, padded) and signed as
/// `encoded + "." + base64_no_pad(HMAC-SHA256(secret, encoded))`. The first secret signs;
/// every secret verifies, so secrets can be rotated by putting the new one first. Signatures
/// are compared in constant time.
///
/// `Debug` never shows the secrets.
///
/// # Examples
///
/// ```
/// use session_core::CookieSigner;
///
/// let signer = CookieSigner::new(["a much longer secret with spaces and ünïcödé"])?;
/// let cookie = signer.sign("session-id-1");
/// assert_eq!(cookie, "c2Vzc2lvbi1pZC0x./Nymqt6APYUvhDNioRrXTa9MH6RyORyHXC0T/vghBi4");
///
/// let verified = signer.verify(&cookie).expect("signed by this signer");
/// assert_eq!(verified.value(), "session-id-1");
/// assert!(signer.verify("c2Vzc2lvbi1pZC0x.forged").is_none());
/// # Ok::<(), session_core::Error>(())
/// ```
///
/// # Security
///
/// Keep secrets out of source control and at least 32 random bytes long. A cookie that fails
/// verification is simply absent: callers start a fresh session rather than report an error.
#[derive(Clone)]
pub struct CookieSigner {
    keys: Vec<HmacSha256>,
}

/// A cookie value whose signature checked out. `Debug` shows only a short prefix of the
/// value.
#[derive(Clone, PartialEq, Eq)]
pub struct Verified {
    value: String,
    signed_with_old_secret: bool,
}

impl Verified {
    /// The value that was signed (for a session cookie: the session id).
    pub fn value(&self) -> &str {
        &self.value
    }

    /// Takes the value.
    pub fn into_value(self) -> String {
        self.value
    }

    /// Whether a secret other than the first verified it: the cookie should be re-issued,
    /// signed with the first secret, to complete a rotation.
    pub fn signed_with_old_secret(&self) -> bool {
        self.signed_with_old_secret
    }
}

impl fmt::Debug for Verified {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Verified")
            .field("value", &crate::id::Redacted(&self.value))
            .field("signed_with_old_secret", &self.signed_with_old_secret)
            .finish()
    }
}

impl CookieSigner {
    /// Builds a signer. The first secret signs; all of them verify.
    ///
    /// # Errors
    ///
    /// [`Error::MissingSecret`] when `secrets` is empty or holds an empty secret: session
    /// cookies must be signed.
    pub fn new<I>(secrets: I) -> Result<Self, Error>
    where
        I: IntoIterator,
        I::Item: AsRef<[u8]>,
    {
        let keys = secrets
            .into_iter()
            .map(|secret| {
                let secret = secret.as_ref();
                if secret.is_empty() {
                    return Err(Error::MissingSecret);
                }
                // HMAC takes keys of any length.
                HmacSha256::new_from_slice(secret).map_err(|_| Error::MissingSecret)
            })
            .collect::<Result<Vec<_>, _>>()?;
        if keys.is_empty() {
            return Err(Error::MissingSecret);
        }
        Ok(Self { keys })
    }

    /// Encodes and signs `value` with the first secret. The empty string encodes to the empty
    /// string, as in Remix.
    pub fn sign(&self, value: &str) -> String {
        if value.is_empty() {
            return String::new();
        }
        let encoded = STANDARD.encode(value);
        let signature = Self::signature(&self.keys[0], &encoded);
        let mut cookie = String::with_capacity(encoded.len() + 1 + signature.len());
        cookie.push_str(&encoded);
        cookie.push('.');
        cookie.push_str(&signature);
        cookie
    }

    /// Verifies and decodes a cookie value. `None` when it is malformed, not signed by any of
    /// the secrets, or not UTF-8 once decoded; the empty cookie decodes to the empty string.
    pub fn verify(&self, cookie: &str) -> Option<Verified> {
        if cookie.is_empty() {
            return Some(Verified {
                value: String::new(),
                signed_with_old_secret: false,
            });
        }
        let (encoded, signature) = cookie.rsplit_once('.')?;
        let index = self.keys.iter().position(|key| {
            let expected = Self::signature(key, encoded);
            bool::from(expected.as_bytes().ct_eq(signature.as_bytes()))
        })?;
        let bytes = STANDARD.decode(encoded).ok()?;
        let value = String::from_utf8(bytes).ok()?;
        Some(Verified {
            value,
            signed_with_old_secret: index > 0,
        })
    }

    fn signature(key: &HmacSha256, encoded: &str) -> String {
        let mut mac = key.clone();
        mac.update(encoded.as_bytes());
        STANDARD_NO_PAD.encode(mac.finalize().into_bytes())
    }
}

impl fmt::Debug for CookieSigner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CookieSigner")
            .field("secrets", &format_args!("[REDACTED; {}]", self.keys.len()))
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_no_secret_or_an_empty_secret() {
        assert!(matches!(
            CookieSigner::new(Vec::<String>::new()),
            Err(Error::MissingSecret)
        ));
        assert!(matches!(
            CookieSigner::new(["good", ""]),
            Err(Error::MissingSecret)
        ));
    }

    #[test]
    fn debug_redacts_secrets() {
        let signer = CookieSigner::new(["hunter2", "older"]).unwrap();
        let debug = format!("{signer:?}");
        assert!(!debug.contains("hunter2"));
        assert!(debug.contains("REDACTED; 2"));
    }

    #[test]
    fn old_secret_is_reported_for_rotation() {
        let old = CookieSigner::new(["old"]).unwrap();
        let rotated = CookieSigner::new(["new", "old"]).unwrap();
        let verified = rotated.verify(&old.sign("id")).unwrap();
        assert!(verified.signed_with_old_secret());
        assert!(
            !rotated
                .verify(&rotated.sign("id"))
                .unwrap()
                .signed_with_old_secret()
        );
    }
}
