//! The session cookie's name, attributes and secrets.

use std::time::Duration;

use cookie::Cookie;
pub use cookie::SameSite;
use session_core::{CookieSigner, Verified};

use crate::Error;

/// The session cookie: its name, its attributes, and the secrets that sign it.
///
/// Defaults: name `__session`, `Path=/`, `HttpOnly`, `SameSite=Lax`, no `Secure`, no
/// `Domain`, no `Max-Age` (a browser-session cookie), not `Partitioned`. Set
/// [`max_age`](Self::max_age) to the storage's TTL so that cookie and session expire
/// together.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use axum_session_memcache::{SameSite, SessionCookie};
///
/// let cookie = SessionCookie::new(["a-secret-of-at-least-32-random-bytes"])?
///     .secure(true)
///     .same_site(SameSite::Strict)
///     .max_age(Duration::from_secs(60 * 60 * 24 * 14));
/// assert_eq!(cookie.get_name(), "__session");
/// # Ok::<(), axum_session_memcache::Error>(())
/// ```
///
/// # Security
///
/// Session cookies are always signed (HMAC-SHA256, as Remix signs them). The first secret
/// signs; every secret verifies, so a secret is rotated by putting the new one first: cookies
/// signed with an older secret are re-signed with the first on their next response. Turn on
/// [`secure`](Self::secure) in production (HTTPS).
#[derive(Clone, Debug)]
pub struct SessionCookie {
    name: String,
    signer: CookieSigner,
    path: String,
    domain: Option<String>,
    secure: bool,
    http_only: bool,
    same_site: SameSite,
    partitioned: bool,
    max_age: Option<Duration>,
}

impl SessionCookie {
    /// A session cookie signed with `secrets` (the first signs, all verify), with the
    /// default attributes.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidOption`] when there is no secret or an empty one: session cookies
    /// must be signed.
    pub fn new<I>(secrets: I) -> Result<Self, Error>
    where
        I: IntoIterator,
        I::Item: AsRef<[u8]>,
    {
        let signer =
            CookieSigner::new(secrets).map_err(|error| Error::InvalidOption(error.to_string()))?;
        Ok(Self {
            name: "__session".to_owned(),
            signer,
            path: "/".to_owned(),
            domain: None,
            secure: false,
            http_only: true,
            same_site: SameSite::Lax,
            partitioned: false,
            max_age: None,
        })
    }

    /// The cookie's name (default `__session`, Remix's).
    ///
    /// # Errors
    ///
    /// [`Error::InvalidOption`] unless the name is a cookie name: visible ASCII without
    /// separators such as `=`, `;`, `,` or spaces.
    pub fn name(mut self, name: impl Into<String>) -> Result<Self, Error> {
        let name = name.into();
        let is_token = !name.is_empty()
            && name
                .bytes()
                .all(|b| b.is_ascii_graphic() && !b"()<>@,;:\\\"/[]?={}".contains(&b));
        if !is_token {
            return Err(Error::InvalidOption(format!(
                "cookie name {name:?} is not valid: use visible ASCII without separators such as = ; , or spaces"
            )));
        }
        self.name = name;
        Ok(self)
    }

    /// The `Path` attribute (default `/`).
    ///
    /// # Errors
    ///
    /// [`Error::InvalidOption`] unless the path starts with `/` and holds no `;` nor
    /// control character.
    pub fn path(mut self, path: impl Into<String>) -> Result<Self, Error> {
        let path = path.into();
        if !path.starts_with('/') || !is_attribute_value(&path) {
            return Err(Error::InvalidOption(format!(
                "cookie path {path:?} is not valid: it must start with / and hold no ; nor control character"
            )));
        }
        self.path = path;
        Ok(self)
    }

    /// The `Domain` attribute (default: none, the cookie goes to this host only).
    ///
    /// # Errors
    ///
    /// [`Error::InvalidOption`] when the domain is empty or holds a `;`, a space or a
    /// control character.
    pub fn domain(mut self, domain: impl Into<String>) -> Result<Self, Error> {
        let domain = domain.into();
        if domain.is_empty() || domain.contains(' ') || !is_attribute_value(&domain) {
            return Err(Error::InvalidOption(format!(
                "cookie domain {domain:?} is not valid: it must be a host name"
            )));
        }
        self.domain = Some(domain);
        Ok(self)
    }

    /// The `Secure` attribute (default off; turn it on behind HTTPS).
    #[must_use]
    pub fn secure(mut self, secure: bool) -> Self {
        self.secure = secure;
        self
    }

    /// The `HttpOnly` attribute (default on: scripts cannot read the cookie).
    #[must_use]
    pub fn http_only(mut self, http_only: bool) -> Self {
        self.http_only = http_only;
        self
    }

    /// The `SameSite` attribute (default `Lax`).
    #[must_use]
    pub fn same_site(mut self, same_site: SameSite) -> Self {
        self.same_site = same_site;
        self
    }

    /// The `Partitioned` attribute (default off).
    #[must_use]
    pub fn partitioned(mut self, partitioned: bool) -> Self {
        self.partitioned = partitioned;
        self
    }

    /// The `Max-Age` attribute (default: none, the cookie lasts the browser session).
    #[must_use]
    pub fn max_age(mut self, max_age: Duration) -> Self {
        self.max_age = Some(max_age);
        self
    }

    /// The cookie's name.
    pub fn get_name(&self) -> &str {
        &self.name
    }

    /// Verifies a cookie value; `None` when it was not signed with one of the secrets.
    pub(crate) fn verify(&self, value: &str) -> Option<Verified> {
        self.signer.verify(value)
    }

    /// The `Set-Cookie` value that sets the cookie to `value`, signed.
    pub(crate) fn set_cookie(&self, value: &str) -> String {
        let mut cookie = self.base(self.signer.sign(value));
        if let Some(max_age) = self.max_age {
            let seconds = i64::try_from(max_age.as_secs()).unwrap_or(i64::MAX);
            cookie.set_max_age(cookie::time::Duration::seconds(seconds));
        }
        cookie.to_string()
    }

    /// The `Set-Cookie` value that expires the cookie (`Max-Age=0`, same name, path and
    /// domain).
    pub(crate) fn clear_cookie(&self) -> String {
        let mut cookie = self.base(String::new());
        cookie.set_max_age(cookie::time::Duration::ZERO);
        cookie.set_expires(cookie::time::OffsetDateTime::UNIX_EPOCH);
        cookie.to_string()
    }

    fn base(&self, value: String) -> Cookie<'static> {
        let mut cookie = Cookie::new(self.name.clone(), value);
        cookie.set_path(self.path.clone());
        if let Some(domain) = &self.domain {
            cookie.set_domain(domain.clone());
        }
        cookie.set_secure(self.secure);
        cookie.set_http_only(self.http_only);
        cookie.set_same_site(self.same_site);
        cookie.set_partitioned(self.partitioned);
        cookie
    }

    /// The first value of the session cookie in a request's `Cookie` headers, as Remix reads
    /// it when the name appears more than once.
    pub(crate) fn find<'a>(&self, headers: &'a http::HeaderMap) -> Option<&'a str> {
        headers
            .get_all(http::header::COOKIE)
            .iter()
            .filter_map(|header| header.to_str().ok())
            .flat_map(|header| header.split(';'))
            .filter_map(|pair| pair.trim().split_once('='))
            .find(|(name, _)| *name == self.name)
            .map(|(_, value)| value.trim().trim_matches('"'))
    }
}

/// Whether `value` can stand in a `Set-Cookie` attribute: no `;`, no control character.
fn is_attribute_value(value: &str) -> bool {
    value.bytes().all(|b| b != b';' && !b.is_ascii_control()) && value.is_ascii()
}

#[cfg(test)]
mod tests {
    use http::HeaderMap;
    use http::header::COOKIE;

    use super::*;

    fn cookie() -> SessionCookie {
        SessionCookie::new(["s3cr3t"]).unwrap()
    }

    #[test]
    fn refuses_to_be_unsigned() {
        let error = SessionCookie::new(Vec::<String>::new()).unwrap_err();
        assert!(error.to_string().contains("must be signed"));
    }

    #[test]
    fn set_cookie_has_the_default_attributes() {
        let signed = cookie().signer.sign("session-id-1");
        assert_eq!(
            cookie().set_cookie("session-id-1"),
            format!("__session={signed}; HttpOnly; SameSite=Lax; Path=/")
        );
    }

    #[test]
    fn every_attribute_is_written() {
        let header = cookie()
            .name("sid")
            .unwrap()
            .path("/app")
            .unwrap()
            .domain("example.com")
            .unwrap()
            .secure(true)
            .http_only(false)
            .same_site(SameSite::Strict)
            .partitioned(true)
            .max_age(Duration::from_secs(60))
            .set_cookie("id");
        for part in [
            "sid=",
            "Path=/app",
            "Domain=example.com",
            "Secure",
            "SameSite=Strict",
            "Partitioned",
            "Max-Age=60",
        ] {
            assert!(header.contains(part), "{part} missing from {header}");
        }
        assert!(!header.contains("HttpOnly"));
    }

    #[test]
    fn clear_cookie_expires_it_with_the_same_name_path_and_domain() {
        let header = cookie().domain("example.com").unwrap().clear_cookie();
        assert!(header.starts_with("__session=;"), "{header}");
        for part in [
            "Max-Age=0",
            "Path=/",
            "Domain=example.com",
            "Expires=Thu, 01 Jan 1970",
        ] {
            assert!(header.contains(part), "{part} missing from {header}");
        }
    }

    #[test]
    fn names_paths_and_domains_that_would_break_the_header_are_refused() {
        for name in ["", "a=b", "a b", "a;b", "é"] {
            assert!(cookie().name(name).is_err(), "{name:?}");
        }
        for path in ["app", "/a;b", "/a\nb", "/é"] {
            assert!(cookie().path(path).is_err(), "{path:?}");
        }
        for domain in ["", "a b", "a;b", "a\rb"] {
            assert!(cookie().domain(domain).is_err(), "{domain:?}");
        }
        assert!(cookie().name("sid").and_then(|c| c.path("/app")).is_ok());
    }

    #[test]
    fn the_first_of_duplicate_cookies_is_read() {
        let mut headers = HeaderMap::new();
        headers.append(COOKIE, "other=1; __session=first".parse().unwrap());
        headers.append(COOKIE, "__session=second".parse().unwrap());
        assert_eq!(cookie().find(&headers), Some("first"));
    }

    #[test]
    fn non_utf8_cookie_headers_are_skipped() {
        let mut headers = HeaderMap::new();
        headers.append(
            COOKIE,
            http::HeaderValue::from_bytes(b"__session=\xff\xfe").unwrap(),
        );
        headers.append(COOKIE, "__session=ok".parse().unwrap());
        assert_eq!(cookie().find(&headers), Some("ok"));
    }
}
