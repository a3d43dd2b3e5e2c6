//! The tower layer that verifies the session cookie and saves the session after the handler.

use std::fmt;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum_core::body::Body;
use axum_core::response::Response;
use bytes::Bytes;
use http::header::SET_COOKIE;
use http::{HeaderValue, Request};
use session_core::{CookieUpdate, SessionStorage};
use tokio::sync::OnceCell;
use tower_layer::Layer;
use tower_service::Service;

use crate::SessionCookie;
use crate::dyn_storage::{BoxFuture, Chain, DynStorage};
use crate::error::BoxError;
use crate::extract::Session;
use crate::rejection::SessionUnavailable;

/// Adds sessions to a router: verifies the session cookie of each request, lets handlers
/// extract [`Session`], and after the handler saves what changed and sets the cookie.
///
/// - A session no handler extracted is never loaded, and nothing is written.
/// - A changed session is saved and a `Set-Cookie` appended; an unchanged one writes
///   nothing; a destroyed one is deleted and its cookie expired (`Max-Age=0`).
/// - A cookie signed with an older secret is re-issued, signed with the first.
/// - A response with a 5xx status keeps the session as it was: its changes are not saved
///   and no session cookie is set.
/// - When the save fails, the response is replaced by `503 Service Unavailable`: the change
///   was not kept, so the client must not be told it was.
///
/// Works with any [`SessionStorage`]: [`MemcacheSessionStorage`](crate::MemcacheSessionStorage)
/// in production, [`MemoryStorage`](session_core::MemoryStorage) in tests.
///
/// # Examples
///
/// ```
/// use axum::{Router, routing::get};
/// use axum_session_memcache::{SessionCookie, SessionLayer};
/// use session_core::MemoryStorage;
///
/// let cookie = SessionCookie::new(["a-secret-of-at-least-32-random-bytes"])?;
/// let app: Router = Router::new()
///     .route("/", get(|| async { "hello" }))
///     .layer(SessionLayer::new(MemoryStorage::new(), cookie));
/// # Ok::<(), axum_session_memcache::Error>(())
/// ```
#[derive(Clone)]
pub struct SessionLayer {
    shared: Arc<Shared>,
}

struct Shared {
    storage: Box<dyn DynStorage>,
    cookie: SessionCookie,
}

impl SessionLayer {
    /// A layer keeping sessions in `storage`, with the cookie `cookie`.
    pub fn new(storage: impl SessionStorage, cookie: SessionCookie) -> Self {
        Self {
            shared: Arc::new(Shared {
                storage: Box::new(storage),
                cookie,
            }),
        }
    }
}

impl fmt::Debug for SessionLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionLayer")
            .field("cookie", &self.shared.cookie)
            .finish_non_exhaustive()
    }
}

impl<S> Layer<S> for SessionLayer {
    type Service = SessionService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        SessionService {
            inner,
            shared: Arc::clone(&self.shared),
        }
    }
}

/// The service built by [`SessionLayer`].
#[derive(Clone)]
pub struct SessionService<S> {
    inner: S,
    shared: Arc<Shared>,
}

impl<S: fmt::Debug> fmt::Debug for SessionService<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionService")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for SessionService<S>
where
    S: Service<Request<ReqBody>, Response = http::Response<ResBody>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    ReqBody: Send + 'static,
    ResBody: http_body::Body<Data = Bytes> + Send + 'static,
    ResBody::Error: Into<BoxError>,
{
    type Response = Response;
    type Error = S::Error;
    type Future = BoxFuture<'static, Result<Response, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<ReqBody>) -> Self::Future {
        // Keep the service that was polled ready; leave a fresh clone in its place.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let shared = Arc::clone(&self.shared);

        let verified = shared
            .cookie
            .find(request.headers())
            .and_then(|value| shared.cookie.verify(value));
        let reissue = verified
            .as_ref()
            .is_some_and(session_core::Verified::signed_with_old_secret);
        let session = RequestSession {
            inner: Arc::new(RequestState {
                shared: Arc::clone(&shared),
                cookie_value: verified.map(session_core::Verified::into_value),
                loaded: OnceCell::new(),
            }),
        };
        request.extensions_mut().insert(session.clone());

        Box::pin(async move {
            let response = inner.call(request).await?.map(Body::new);
            Ok(finish(&shared, &session, reissue, response).await)
        })
    }
}

/// Saves the session if it was loaded, and sets the cookie accordingly.
async fn finish(
    shared: &Shared,
    session: &RequestSession,
    reissue: bool,
    mut response: Response,
) -> Response {
    let loaded = session.inner.loaded.get();
    let failed = response.status().is_server_error();
    // A cookie naming a session that no longer exists is not worth re-signing.
    let reissue = reissue && !failed && loaded.is_none_or(Session::is_loaded);
    let update = match loaded.map(Session::take) {
        None => CookieUpdate::Unchanged,
        Some(stored) if failed => {
            if let Err(error) = shared.storage.release_boxed(&stored).await {
                tracing::warn!(error = %Chain(&*error), "could not release the session");
            }
            return response;
        }
        Some(stored) => match shared.storage.save_boxed(&stored).await {
            Ok(update) => update,
            Err(error) => {
                tracing::error!(error = %Chain(&*error), "could not save the session");
                return SessionUnavailable::save_failed_response();
            }
        },
    };
    let header = match update {
        CookieUpdate::Set(value) => Some(shared.cookie.set_cookie(&value)),
        CookieUpdate::Clear => Some(shared.cookie.clear_cookie()),
        _ => session
            .inner
            .cookie_value
            .as_deref()
            .filter(|value| reissue && !value.is_empty())
            .map(|value| shared.cookie.set_cookie(value)),
    };
    if let Some(header) = header {
        match HeaderValue::try_from(header) {
            Ok(value) => {
                response.headers_mut().append(SET_COOKIE, value);
            }
            Err(error) => {
                tracing::error!(%error, "session cookie is not a valid header value");
            }
        }
    }
    response
}

/// The request's session state, kept in the request's extensions for the extractor.
#[derive(Clone)]
pub(crate) struct RequestSession {
    inner: Arc<RequestState>,
}

struct RequestState {
    shared: Arc<Shared>,
    cookie_value: Option<String>,
    loaded: OnceCell<Session>,
}

impl RequestSession {
    /// Loads the session once per request; later calls share it.
    pub(crate) async fn load(&self) -> Result<Session, BoxError> {
        let state = &self.inner;
        state
            .loaded
            .get_or_try_init(|| async {
                state
                    .shared
                    .storage
                    .read_boxed(state.cookie_value.as_deref())
                    .await
                    .map(Session::new)
            })
            .await
            .cloned()
    }
}
