//! The tower layer that verifies the session cookie and saves the session after the handler.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};

use axum_core::body::Body;
use axum_core::response::Response;
use bytes::Bytes;
use http::header::SET_COOKIE;
use http::{HeaderMap, HeaderValue, Request};
use session_core::{CookieUpdate, SessionStorage};
use tokio::sync::OnceCell;
use tower_layer::Layer;
use tower_service::Service;

use crate::SessionCookie;
use crate::dyn_storage::{BoxFuture, DynStorage};
use crate::error::BoxError;
use crate::error::Chain;
use crate::extract::Session;
use crate::rejection::SessionUnavailable;

/// Adds sessions to a router: lets handlers extract [`Session`] (the session cookie is then
/// verified and the session loaded), and after the handler saves what changed and sets the
/// cookie.
///
/// - A session no handler extracted is never loaded, and nothing is written.
/// - A changed session is saved and a `Set-Cookie` appended; an unchanged one writes
///   nothing; a destroyed one is deleted and its cookie expired (`Max-Age=0`).
/// - A cookie signed with an older secret is re-issued, signed with the first, on the next
///   response whose handler extracts the session.
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
        let session = RequestSession {
            inner: Arc::new(RequestState {
                shared: Arc::clone(&self.shared),
                loaded: OnceCell::new(),
                finished: AtomicBool::new(false),
            }),
        };
        // Nothing else happens before the handler: the cookie is verified and the session
        // loaded only if the handler extracts it.
        request.extensions_mut().insert(session.clone());
        Box::pin(async move {
            let response = inner.call(request).await?.map(Body::new);
            Ok(session.finish(response).await)
        })
    }
}

/// The request's session state, kept in the request's extensions for the extractor.
#[derive(Clone)]
pub(crate) struct RequestSession {
    inner: Arc<RequestState>,
}

struct RequestState {
    shared: Arc<Shared>,
    loaded: OnceCell<Loaded>,
    /// Whether `finish` took charge of the loaded session.
    finished: AtomicBool,
}

impl Drop for RequestState {
    /// A request dropped between loading its session and finishing (the client went away,
    /// or the handler panicked) still releases what the storage holds for the session,
    /// such as a lock.
    fn drop(&mut self) {
        if self.finished.load(Ordering::Acquire) {
            return;
        }
        let Some(loaded) = self.loaded.get() else {
            return;
        };
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let session = loaded.session.take();
        let shared = Arc::clone(&self.shared);
        runtime.spawn(async move {
            if let Err(error) = shared.storage.release_boxed(&session).await {
                tracing::warn!(error = %Chain(&*error), "could not release an abandoned session");
            }
        });
    }
}

/// A session loaded for this request, and what its cookie said.
struct Loaded {
    session: Session,
    /// The verified cookie value (the session id the client sent), if any.
    cookie_value: Option<String>,
    /// Whether the cookie was signed with an older secret and must be re-signed.
    signed_with_old_secret: bool,
}

impl RequestSession {
    /// Verifies the session cookie in `headers` and loads the session, once per request;
    /// later calls share it.
    pub(crate) async fn load(&self, headers: &HeaderMap) -> Result<Session, BoxError> {
        let shared = &self.inner.shared;
        let loaded = self
            .inner
            .loaded
            .get_or_try_init(|| async {
                let verified = shared
                    .cookie
                    .find(headers)
                    .and_then(|value| shared.cookie.verify(value));
                let signed_with_old_secret = verified
                    .as_ref()
                    .is_some_and(session_core::Verified::signed_with_old_secret);
                let cookie_value = verified.map(session_core::Verified::into_value);
                let session = shared.storage.read_boxed(cookie_value.as_deref()).await?;
                Ok::<_, BoxError>(Loaded {
                    session: Session::new(session),
                    cookie_value,
                    signed_with_old_secret,
                })
            })
            .await?;
        Ok(loaded.session.clone())
    }

    /// After the handler: saves the session if it was loaded, and sets the cookie
    /// accordingly.
    async fn finish(&self, mut response: Response) -> Response {
        let Some(loaded) = self.inner.loaded.get() else {
            return response;
        };
        self.inner.finished.store(true, Ordering::Release);
        // A cookie naming a session that no longer exists is not worth re-signing.
        let reissue = loaded.signed_with_old_secret && loaded.session.is_loaded();
        let session = loaded.session.take();
        let failed = response.status().is_server_error();
        let needs_storage =
            session.is_dirty() || session.is_destroyed() || session.lock_token().is_some();
        let shared = Arc::clone(&self.inner.shared);
        let work = async move {
            if failed {
                if let Err(error) = shared.storage.release_boxed(&session).await {
                    tracing::warn!(error = %Chain(&*error), "could not release the session");
                }
                None
            } else {
                Some(shared.storage.save_boxed(&session).await)
            }
        };
        // A save with something to write, or a lock to let go of, runs in a task of its
        // own: a client that goes away cannot interrupt it half-way (a new id written but
        // the old one not deleted, a lock left held). Anything else is done in place.
        let saving = if needs_storage {
            tokio::spawn(work).await
        } else {
            Ok(work.await)
        };
        let update = match saving {
            Ok(None) => return response,
            Ok(Some(Ok(update))) => update,
            Ok(Some(Err(error))) => {
                tracing::error!(error = %Chain(&*error), "could not save the session");
                return SessionUnavailable::save_failed_response();
            }
            Err(error) => {
                tracing::error!(%error, "the session save task failed");
                return SessionUnavailable::save_failed_response();
            }
        };
        let shared = &self.inner.shared;
        let header = match update {
            CookieUpdate::Set(value) => Some(shared.cookie.set_cookie(&value)),
            CookieUpdate::Clear => Some(shared.cookie.clear_cookie()),
            _ => loaded
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
}
