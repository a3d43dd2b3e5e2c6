//! Configuration from environment variables.
//!
//! The variables are listed in the crate documentation (the README).
//!
//! Booleans are `true`/`false` (also `1`/`0`, `yes`/`no`, `on`/`off`). An empty value counts
//! as unset.

use std::str::FromStr;
use std::time::Duration;

use crate::{
    Error, MemcacheSessionStorage, MemcacheSessionStorageOptions, SameSite, SessionCookie,
};

/// Secrets shorter than this draw a warning.
const MIN_SECRET_LEN: usize = 32;

/// Reads variables through a lookup function, and says what is wrong with them.
struct Vars<F>(F);

impl<F: Fn(&str) -> Option<String>> Vars<F> {
    fn get(&self, name: &str) -> Option<String> {
        (self.0)(name).filter(|value| !value.is_empty())
    }

    fn required(&self, name: &'static str, expected: &str) -> Result<String, Error> {
        self.get(name).ok_or_else(|| Error::Config {
            name,
            problem: format!("is missing; expected {expected}"),
        })
    }

    fn parse<T: FromStr>(&self, name: &'static str, expected: &str) -> Result<Option<T>, Error> {
        self.get(name)
            .map(|value| {
                value
                    .trim()
                    .parse()
                    .map_err(|_| malformed(name, &value, expected))
            })
            .transpose()
    }

    fn boolean(&self, name: &'static str) -> Result<Option<bool>, Error> {
        self.get(name)
            .map(|value| match value.trim().to_ascii_lowercase().as_str() {
                "true" | "1" | "yes" | "on" => Ok(true),
                "false" | "0" | "no" | "off" => Ok(false),
                _ => Err(malformed(name, &value, "true or false")),
            })
            .transpose()
    }

    fn millis(&self, name: &'static str) -> Result<Option<Duration>, Error> {
        let millis: Option<u64> = self.parse(name, "a whole number of milliseconds above 0")?;
        match millis {
            Some(0) => Err(malformed(
                name,
                "0",
                "a whole number of milliseconds above 0",
            )),
            other => Ok(other.map(Duration::from_millis)),
        }
    }
}

fn malformed(name: &'static str, value: &str, expected: &str) -> Error {
    Error::Config {
        name,
        problem: format!("has the value {value:?}; expected {expected}"),
    }
}

/// Re-labels an error from building the storage or cookie with the variable it came from.
fn from_variable(name: &'static str, value: &str, error: &Error) -> Error {
    Error::Config {
        name,
        problem: format!("has the value {value:?}, which is not valid: {error}"),
    }
}

const TTL_EXPECTED: &str = "a whole number of seconds, 0 or more";

impl MemcacheSessionStorage {
    /// Builds the storage from the process environment; see the table in the crate docs.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] naming the variable, its value and what was expected, for each
    /// missing or malformed variable; [`Error::NoRuntime`] outside a Tokio runtime.
    pub fn from_env() -> Result<Self, Error> {
        Self::from_vars(env_lookup)
    }

    /// As [`from_env`](Self::from_env), reading variables through `lookup` instead of the
    /// process environment.
    ///
    /// # Errors
    ///
    /// As [`from_env`](Self::from_env).
    ///
    /// # Examples
    ///
    /// ```
    /// use axum_session_memcache::MemcacheSessionStorage;
    ///
    /// let error = MemcacheSessionStorage::from_vars(|name| match name {
    ///     "MEMCACHE_SERVER" => Some("127.0.0.1:11211".into()),
    ///     "SESSION_TTL_SECONDS" => Some("-1".into()),
    ///     _ => None,
    /// })
    /// .unwrap_err();
    /// assert_eq!(
    ///     error.to_string(),
    ///     "environment variable SESSION_TTL_SECONDS has the value \"-1\"; expected a whole number of seconds, 0 or more"
    /// );
    /// ```
    pub fn from_vars(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, Error> {
        let vars = Vars(lookup);
        let server = vars.required(
            "MEMCACHE_SERVER",
            "the memcached address, as in 127.0.0.1:11211",
        )?;
        let mut options = MemcacheSessionStorageOptions::default();
        if let Some(prefix) = vars.get("SESSION_KEY_PREFIX") {
            let candidate = options.clone().key_prefix(prefix.clone());
            candidate
                .validate()
                .map_err(|error| from_variable("SESSION_KEY_PREFIX", &prefix, &error))?;
            options = candidate;
        }
        if let Some(ttl) = vars.parse("SESSION_TTL_SECONDS", TTL_EXPECTED)? {
            options = options.ttl_seconds(ttl);
        }
        if let Some(reuse) = vars.boolean("SESSION_USE_UNKNOWN_IDS")? {
            options = options.use_unknown_ids(reuse);
        }
        if let Some(size) = vars.parse("MEMCACHE_POOL_MAX_SIZE", "a whole number from 1 up")? {
            if size == 0 {
                return Err(malformed(
                    "MEMCACHE_POOL_MAX_SIZE",
                    "0",
                    "a whole number from 1 up",
                ));
            }
            options = options.pool_max_size(size);
        }
        if let Some(timeout) = vars.millis("MEMCACHE_CONNECT_TIMEOUT_MS")? {
            options = options.connect_timeout(timeout);
        }
        if let Some(timeout) = vars.millis("MEMCACHE_TIMEOUT_MS")? {
            options = options.operation_timeout(timeout);
        }
        let item_size_expected = "a number of bytes, 1024 or more";
        if let Some(size) = vars.parse::<usize>("MEMCACHE_MAX_ITEM_SIZE", item_size_expected)? {
            if size < 1024 {
                return Err(malformed(
                    "MEMCACHE_MAX_ITEM_SIZE",
                    &size.to_string(),
                    item_size_expected,
                ));
            }
            options = options.max_item_size(size);
        }
        if let Some(sliding) = vars.boolean("SESSION_SLIDING_EXPIRATION")? {
            options = options.sliding_expiration(sliding);
        }
        if let Some(seconds) = vars.parse::<u64>("SESSION_COOKIE_RENEWAL_SECONDS", TTL_EXPECTED)? {
            options = options.cookie_renewal_interval(Duration::from_secs(seconds));
        }
        if let Some(locking) = vars.boolean("SESSION_LOCKING")? {
            options = options.locking(locking);
        }
        if let Some(wait) = vars.millis("SESSION_LOCK_WAIT_MS")? {
            options = options.lock_wait(wait);
        }
        let expire_expected = "a whole number of seconds, 1 or more";
        if let Some(expire) = vars.parse::<u64>("SESSION_LOCK_EXPIRE_SECONDS", expire_expected)? {
            if expire == 0 {
                return Err(malformed(
                    "SESSION_LOCK_EXPIRE_SECONDS",
                    "0",
                    expire_expected,
                ));
            }
            options = options.lock_expire(Duration::from_secs(expire));
        }
        Self::new(&server, options).map_err(|error| match error {
            Error::InvalidServer { .. } => from_variable("MEMCACHE_SERVER", &server, &error),
            Error::InvalidOption(ref message) if message.contains("key_prefix") => {
                let prefix = vars.get("SESSION_KEY_PREFIX").unwrap_or_default();
                from_variable("SESSION_KEY_PREFIX", &prefix, &error)
            }
            other => other,
        })
    }
}

impl SessionCookie {
    /// Builds the session cookie from the process environment; see the table in the crate
    /// docs. Secrets shorter than 32 bytes are accepted with a warning.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] naming the variable, its value and what was expected, for each
    /// missing or malformed variable.
    pub fn from_env() -> Result<Self, Error> {
        Self::from_vars(env_lookup)
    }

    /// As [`from_env`](Self::from_env), reading variables through `lookup`.
    ///
    /// # Errors
    ///
    /// As [`from_env`](Self::from_env).
    ///
    /// # Examples
    ///
    /// ```
    /// use axum_session_memcache::SessionCookie;
    ///
    /// let cookie = SessionCookie::from_vars(|name| match name {
    ///     "SESSION_SECRETS" => Some("new-secret-of-32-or-more-bytes....,old-secret-also-32-or-more-bytes...".into()),
    ///     "SESSION_COOKIE_SECURE" => Some("true".into()),
    ///     _ => None,
    /// })?;
    /// assert_eq!(cookie.get_name(), "__session");
    /// # Ok::<(), axum_session_memcache::Error>(())
    /// ```
    pub fn from_vars(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, Error> {
        let vars = Vars(lookup);
        let secrets_expected = "comma-separated secrets, the first of which signs";
        let secrets = vars.required("SESSION_SECRETS", secrets_expected)?;
        let secrets: Vec<&str> = secrets.split(',').map(str::trim).collect();
        if secrets.iter().any(|secret| secret.is_empty()) {
            return Err(Error::Config {
                name: "SESSION_SECRETS",
                problem: format!("holds an empty secret; expected {secrets_expected}"),
            });
        }
        let short = secrets
            .iter()
            .filter(|secret| secret.len() < MIN_SECRET_LEN)
            .count();
        if short > 0 {
            tracing::warn!(
                "SESSION_SECRETS holds {short} secret(s) shorter than {MIN_SECRET_LEN} bytes; use long random secrets"
            );
        }
        let mut cookie = Self::new(&secrets)?;
        if let Some(name) = vars.get("SESSION_COOKIE_NAME") {
            cookie = cookie.name(name.clone()).map_err(|_| {
                malformed(
                    "SESSION_COOKIE_NAME",
                    &name,
                    "a cookie name: visible ASCII without separators such as = ; , or spaces",
                )
            })?;
        }
        if let Some(secure) = vars.boolean("SESSION_COOKIE_SECURE")? {
            cookie = cookie.secure(secure);
        }
        if let Some(same_site) = vars.get("SESSION_COOKIE_SAME_SITE") {
            let parsed = match same_site.trim().to_ascii_lowercase().as_str() {
                "lax" => SameSite::Lax,
                "strict" => SameSite::Strict,
                "none" => SameSite::None,
                _ => {
                    return Err(malformed(
                        "SESSION_COOKIE_SAME_SITE",
                        &same_site,
                        "lax, strict or none",
                    ));
                }
            };
            cookie = cookie.same_site(parsed);
        }
        if let Some(domain) = vars.get("SESSION_COOKIE_DOMAIN") {
            cookie = cookie
                .domain(domain.clone())
                .map_err(|_| malformed("SESSION_COOKIE_DOMAIN", &domain, "a host name"))?;
        }
        if let Some(path) = vars.get("SESSION_COOKIE_PATH") {
            cookie = cookie.path(path.clone()).map_err(|_| {
                malformed(
                    "SESSION_COOKIE_PATH",
                    &path,
                    "a path starting with / without ; or control characters",
                )
            })?;
        }
        if let Some(http_only) = vars.boolean("SESSION_COOKIE_HTTP_ONLY")? {
            cookie = cookie.http_only(http_only);
        }
        if let Some(partitioned) = vars.boolean("SESSION_COOKIE_PARTITIONED")? {
            cookie = cookie.partitioned(partitioned);
        }
        let max_age = match vars.parse::<u64>("SESSION_COOKIE_MAX_AGE", TTL_EXPECTED)? {
            Some(max_age) => Some(max_age),
            None => vars
                .parse::<u64>("SESSION_TTL_SECONDS", TTL_EXPECTED)?
                .filter(|&ttl| ttl > 0),
        };
        if let Some(seconds) = max_age {
            cookie = cookie.max_age(Duration::from_secs(seconds));
        }
        Ok(cookie)
    }
}

fn env_lookup(name: &str) -> Option<String> {
    std::env::var_os(name).map(|value| value.to_string_lossy().into_owned())
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        move |name| map.get(name).cloned()
    }

    fn cookie_error(pairs: &[(&str, &str)]) -> String {
        SessionCookie::from_vars(vars(pairs))
            .unwrap_err()
            .to_string()
    }

    #[tokio::test]
    async fn storage_errors_name_the_variable_value_and_expectation() {
        let error = |pairs: &[(&str, &str)]| {
            MemcacheSessionStorage::from_vars(vars(pairs))
                .unwrap_err()
                .to_string()
        };
        assert_eq!(
            error(&[]),
            "environment variable MEMCACHE_SERVER is missing; expected the memcached address, as in 127.0.0.1:11211"
        );
        let server = [("MEMCACHE_SERVER", "127.0.0.1:11211")];
        let with = |name: &'static str, value: &'static str| {
            let mut pairs = server.to_vec();
            pairs.push((name, value));
            error(&pairs)
        };
        for (name, value, expected) in [
            ("SESSION_TTL_SECONDS", "soon", "a whole number of seconds"),
            ("SESSION_USE_UNKNOWN_IDS", "maybe", "true or false"),
            ("MEMCACHE_POOL_MAX_SIZE", "0", "from 1 up"),
            ("MEMCACHE_CONNECT_TIMEOUT_MS", "0", "above 0"),
            ("MEMCACHE_TIMEOUT_MS", "1s", "milliseconds"),
            ("MEMCACHE_MAX_ITEM_SIZE", "12", "1024 or more"),
            ("SESSION_KEY_PREFIX", "has space", "printable ASCII"),
            ("SESSION_SLIDING_EXPIRATION", "often", "true or false"),
            (
                "SESSION_COOKIE_RENEWAL_SECONDS",
                "1m",
                "whole number of seconds",
            ),
            ("SESSION_LOCKING", "strict", "true or false"),
            ("SESSION_LOCK_WAIT_MS", "0", "above 0"),
            ("SESSION_LOCK_EXPIRE_SECONDS", "0", "1 or more"),
        ] {
            let message = with(name, value);
            assert!(message.contains(name), "{message}");
            assert!(message.contains(&format!("{value:?}")), "{message}");
            assert!(message.contains(expected), "{message}");
        }
        let message = error(&[("MEMCACHE_SERVER", "[::1]:11211")]);
        assert!(
            message.contains("MEMCACHE_SERVER") && message.contains("IPv6"),
            "{message}"
        );
    }

    #[tokio::test]
    async fn storage_reads_every_option() {
        let storage = MemcacheSessionStorage::from_vars(vars(&[
            ("MEMCACHE_SERVER", "unix:///run/memcached.sock"),
            ("SESSION_KEY_PREFIX", "app:"),
            ("SESSION_TTL_SECONDS", "3600"),
            ("SESSION_USE_UNKNOWN_IDS", "yes"),
            ("MEMCACHE_POOL_MAX_SIZE", "4"),
            ("MEMCACHE_CONNECT_TIMEOUT_MS", "250"),
            ("MEMCACHE_TIMEOUT_MS", "100"),
            ("MEMCACHE_MAX_ITEM_SIZE", "2048"),
            ("SESSION_SLIDING_EXPIRATION", "true"),
            ("SESSION_COOKIE_RENEWAL_SECONDS", "30"),
            ("SESSION_LOCKING", "on"),
            ("SESSION_LOCK_WAIT_MS", "750"),
            ("SESSION_LOCK_EXPIRE_SECONDS", "9"),
        ]))
        .unwrap();
        let options = storage.options();
        assert_eq!(options.get_key_prefix(), "app:");
        assert_eq!(options.get_ttl_seconds(), 3600);
        assert!(options.get_use_unknown_ids());
        assert_eq!(options.get_pool_max_size(), 4);
        assert_eq!(options.get_connect_timeout(), Duration::from_millis(250));
        assert_eq!(options.get_operation_timeout(), Duration::from_millis(100));
        assert_eq!(options.get_max_item_size(), 2048);
        assert!(options.get_sliding_expiration());
        assert_eq!(
            options.get_cookie_renewal_interval(),
            Duration::from_secs(30)
        );
        assert!(options.get_locking());
        assert_eq!(options.get_lock_wait(), Duration::from_millis(750));
        assert_eq!(options.get_lock_expire(), Duration::from_secs(9));
    }

    #[test]
    fn cookie_requires_secrets() {
        assert!(cookie_error(&[]).contains("SESSION_SECRETS is missing"));
        assert!(cookie_error(&[("SESSION_SECRETS", "a,,b")]).contains("empty secret"));
    }

    #[test]
    fn cookie_errors_name_the_variable_value_and_expectation() {
        let secrets = ("SESSION_SECRETS", "0123456789abcdef0123456789abcdef");
        for (name, value, expected) in [
            ("SESSION_COOKIE_SECURE", "sometimes", "true or false"),
            ("SESSION_COOKIE_SAME_SITE", "loose", "lax, strict or none"),
            ("SESSION_COOKIE_NAME", "a=b", "cookie name"),
            ("SESSION_COOKIE_PATH", "app", "starting with /"),
            ("SESSION_COOKIE_DOMAIN", "a;b", "host name"),
            ("SESSION_COOKIE_MAX_AGE", "-5", "whole number of seconds"),
            ("SESSION_COOKIE_HTTP_ONLY", "2", "true or false"),
        ] {
            let message = cookie_error(&[secrets, (name, value)]);
            assert!(message.contains(name), "{message}");
            assert!(message.contains(&format!("{value:?}")), "{message}");
            assert!(message.contains(expected), "{message}");
        }
    }

    #[test]
    fn cookie_max_age_follows_the_ttl_unless_set() {
        let secrets = ("SESSION_SECRETS", "0123456789abcdef0123456789abcdef");
        let header = |pairs: &[(&str, &str)]| {
            SessionCookie::from_vars(vars(pairs))
                .unwrap()
                .set_cookie("id")
        };
        assert!(header(&[secrets, ("SESSION_TTL_SECONDS", "60")]).contains("Max-Age=60"));
        assert!(
            header(&[
                secrets,
                ("SESSION_TTL_SECONDS", "60"),
                ("SESSION_COOKIE_MAX_AGE", "30")
            ])
            .contains("Max-Age=30")
        );
        assert!(!header(&[secrets]).contains("Max-Age"));
        let full = header(&[
            secrets,
            ("SESSION_COOKIE_NAME", "sid"),
            ("SESSION_COOKIE_SECURE", "true"),
            ("SESSION_COOKIE_SAME_SITE", "Strict"),
            ("SESSION_COOKIE_DOMAIN", "example.com"),
            ("SESSION_COOKIE_PATH", "/app"),
            ("SESSION_COOKIE_HTTP_ONLY", "false"),
            ("SESSION_COOKIE_PARTITIONED", "on"),
        ]);
        for part in [
            "sid=",
            "Secure",
            "SameSite=Strict",
            "Domain=example.com",
            "Path=/app",
            "Partitioned",
        ] {
            assert!(full.contains(part), "{part} missing from {full}");
        }
        assert!(!full.contains("HttpOnly"));
    }
}
