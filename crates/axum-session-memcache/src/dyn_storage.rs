//! A `SessionStorage` behind a trait object, so that the layer and the extractor need no
//! type parameter for the storage.

use std::future::Future;
use std::pin::Pin;

use session_core::{CookieUpdate, Session, SessionStorage};

use crate::error::BoxError;

pub(crate) type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// [`SessionStorage`] with boxed futures and boxed errors.
pub(crate) trait DynStorage: Send + Sync + 'static {
    fn read_boxed<'a>(
        &'a self,
        cookie_value: Option<&'a str>,
    ) -> BoxFuture<'a, Result<Session, BoxError>>;

    fn save_boxed<'a>(
        &'a self,
        session: &'a Session,
    ) -> BoxFuture<'a, Result<CookieUpdate, BoxError>>;

    fn release_boxed<'a>(&'a self, session: &'a Session) -> BoxFuture<'a, Result<(), BoxError>>;
}

impl<S: SessionStorage> DynStorage for S {
    fn read_boxed<'a>(
        &'a self,
        cookie_value: Option<&'a str>,
    ) -> BoxFuture<'a, Result<Session, BoxError>> {
        Box::pin(async move { self.read(cookie_value).await.map_err(Into::into) })
    }

    fn save_boxed<'a>(
        &'a self,
        session: &'a Session,
    ) -> BoxFuture<'a, Result<CookieUpdate, BoxError>> {
        Box::pin(async move { self.save(session).await.map_err(Into::into) })
    }

    fn release_boxed<'a>(&'a self, session: &'a Session) -> BoxFuture<'a, Result<(), BoxError>> {
        Box::pin(async move { self.release(session).await.map_err(Into::into) })
    }
}
