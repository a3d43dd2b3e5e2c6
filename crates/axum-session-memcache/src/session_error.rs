//! The error of `Session`'s methods, as an HTTP response.

use std::fmt;

use axum_core::response::{IntoResponse, Response};
use http::StatusCode;

/// What can go wrong using a [`Session`](crate::Session): a value of the wrong type, a value
/// that cannot be serialized, a change to a destroyed session. Returned from a handler it
/// becomes `500 Internal Server Error` (the details are logged, not sent), so handlers can
/// use `?`.
#[derive(Debug)]
pub struct SessionError(session_core::Error);

impl SessionError {
    /// The underlying error from `session-core`.
    pub fn inner(&self) -> &session_core::Error {
        &self.0
    }

    /// Whether the session had been destroyed earlier in the request.
    pub fn is_destroyed(&self) -> bool {
        self.0.is_destroyed()
    }
}

impl From<session_core::Error> for SessionError {
    fn from(error: session_core::Error) -> Self {
        Self(error)
    }
}

impl fmt::Display for SessionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl std::error::Error for SessionError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.0.source()
    }
}

impl IntoResponse for SessionError {
    fn into_response(self) -> Response {
        tracing::error!(error = %crate::error::Chain(&self), "session error in a handler");
        (StatusCode::INTERNAL_SERVER_ERROR, "Session error").into_response()
    }
}
