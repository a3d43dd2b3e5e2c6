//! Why the `Session` extractor can refuse a request, as HTTP responses.

use std::fmt;

use axum_core::response::{IntoResponse, Response};
use http::StatusCode;
use http::header::{HeaderValue, RETRY_AFTER};

use crate::error::BoxError;

/// The [`SessionLayer`](crate::SessionLayer) is missing from the route: `500 Internal Server
/// Error`, with a body that names the fix.
#[derive(Debug, Default)]
#[non_exhaustive]
pub struct MissingSessionLayer;

impl MissingSessionLayer {
    const BODY: &'static str = "Missing session layer: the `Session` extractor needs `SessionLayer`. Perhaps you forgot to add `.layer(SessionLayer::new(storage, cookie))` to your Router?";
}

impl fmt::Display for MissingSessionLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(Self::BODY)
    }
}

impl std::error::Error for MissingSessionLayer {}

impl IntoResponse for MissingSessionLayer {
    fn into_response(self) -> Response {
        tracing::error!("{}", Self::BODY);
        (StatusCode::INTERNAL_SERVER_ERROR, Self::BODY).into_response()
    }
}

/// The session storage could not be reached in time: `503 Service Unavailable` with
/// `Retry-After: 1`. The cause is logged, not sent to the client.
#[derive(Debug)]
pub struct SessionUnavailable {
    source: BoxError,
}

impl SessionUnavailable {
    const BODY: &'static str = "Session storage unavailable, please try again shortly";

    pub(crate) fn new(source: BoxError) -> Self {
        Self { source }
    }

    /// The response for a request whose session could not be saved.
    pub(crate) fn save_failed_response() -> Response {
        unavailable("Session could not be saved, please try again shortly")
    }
}

impl fmt::Display for SessionUnavailable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("session storage unavailable")
    }
}

impl std::error::Error for SessionUnavailable {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&*self.source)
    }
}

impl IntoResponse for SessionUnavailable {
    fn into_response(self) -> Response {
        unavailable(Self::BODY)
    }
}

fn unavailable(body: &'static str) -> Response {
    (
        StatusCode::SERVICE_UNAVAILABLE,
        [(RETRY_AFTER, HeaderValue::from_static("1"))],
        body,
    )
        .into_response()
}

/// Why a [`Session`](crate::Session) could not be extracted.
#[derive(Debug)]
#[non_exhaustive]
pub enum SessionRejection {
    /// See [`MissingSessionLayer`].
    MissingLayer(MissingSessionLayer),
    /// See [`SessionUnavailable`].
    Unavailable(SessionUnavailable),
}

impl fmt::Display for SessionRejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::MissingLayer(inner) => inner.fmt(f),
            Self::Unavailable(inner) => inner.fmt(f),
        }
    }
}

/// The rejection is its variant: `source` is the variant's own cause, so that a chain of
/// causes does not print the same message twice.
impl std::error::Error for SessionRejection {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::MissingLayer(inner) => inner.source(),
            Self::Unavailable(inner) => inner.source(),
        }
    }
}

impl IntoResponse for SessionRejection {
    fn into_response(self) -> Response {
        match self {
            Self::MissingLayer(inner) => inner.into_response(),
            Self::Unavailable(inner) => inner.into_response(),
        }
    }
}

impl SessionRejection {
    /// The status code of the response.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::MissingLayer(_) => StatusCode::INTERNAL_SERVER_ERROR,
            Self::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        }
    }
}
