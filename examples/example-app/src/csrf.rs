//! CSRF tokens kept in the session and checked on every form post.

use axum_session_memcache::{Session, SessionError};
use base64::Engine as _;
use rand::RngCore as _;
use subtle::ConstantTimeEq as _;

const KEY: &str = "csrf";

/// The session's token, created on first use.
pub(crate) fn token(session: &Session) -> Result<String, SessionError> {
    if let Some(token) = session.get::<String>(KEY)? {
        return Ok(token);
    }
    rotate(session)
}

/// Replaces the token (on login, with the new session id).
pub(crate) fn rotate(session: &Session) -> Result<String, SessionError> {
    let mut bytes = [0_u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    let token = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
    session.insert(KEY, &token)?;
    Ok(token)
}

/// Whether `submitted` is the session's token (compared in constant time).
pub(crate) fn is_valid(session: &Session, submitted: &str) -> Result<bool, SessionError> {
    Ok(session
        .get::<String>(KEY)?
        .is_some_and(|token| bool::from(token.as_bytes().ct_eq(submitted.as_bytes()))))
}
