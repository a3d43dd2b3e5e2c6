//! The error type of this crate.

use std::time::Duration;

/// A boxed error from a dependency, kept out of the public API.
pub(crate) type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Formats an error with its chain of sources: `a: b: c`.
pub(crate) struct Chain<'a>(pub(crate) &'a (dyn std::error::Error + 'static));

impl std::fmt::Display for Chain<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)?;
        let mut source = self.0.source();
        while let Some(error) = source {
            write!(f, ": {error}")?;
            source = error.source();
        }
        Ok(())
    }
}

/// What can go wrong when configuring or using the memcached session storage.
///
/// `Display` describes this level only; the underlying cause, if any, is in
/// [`source`](std::error::Error::source).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The memcached server address could not be understood.
    #[error("invalid memcached server address {input:?}: {reason}")]
    InvalidServer {
        /// The address as given.
        input: String,
        /// What is wrong with it.
        reason: String,
    },

    /// An option has a value memcached or this crate cannot work with.
    #[error("{0}")]
    InvalidOption(String),

    /// An environment variable is missing or malformed.
    #[error("environment variable {name} {problem}")]
    Config {
        /// The variable.
        name: &'static str,
        /// What is wrong, and what was expected.
        problem: String,
    },

    /// The storage was built outside a Tokio runtime.
    #[error("the memcached session storage must be created inside a Tokio runtime")]
    NoRuntime,

    /// memcached could not be reached (connection refused, reset, closed...).
    #[error("memcached at {server} is unreachable; check that it runs and the address is right")]
    Unreachable {
        /// The server's address.
        server: String,
        /// What the connection reported.
        #[source]
        source: BoxError,
    },

    /// memcached did not answer in time.
    #[error("memcached at {server} did not answer within {timeout:?}")]
    Timeout {
        /// The server's address.
        server: String,
        /// The limit that was exceeded.
        timeout: Duration,
    },

    /// Every pooled connection stayed busy for longer than the connect timeout.
    #[error(
        "no memcached connection became free within {timeout:?}: all {size} are in use; raise the pool size"
    )]
    PoolExhausted {
        /// The pool's maximum size.
        size: u32,
        /// How long the request waited.
        timeout: Duration,
    },

    /// memcached answered something unexpected, or refused the command.
    #[error("memcached at {server} answered with an error")]
    Protocol {
        /// The server's address.
        server: String,
        /// What memcached said.
        #[source]
        source: BoxError,
    },

    /// Other requests kept writing the same session: the save was retried this many times,
    /// each time on top of the latest data, and gave up.
    #[error(
        "session was written concurrently by other requests {tries} times in a row; gave up saving"
    )]
    Conflict {
        /// How many times the save was tried.
        tries: u32,
    },

    /// With locking, another request held the session's lock for longer than `lock_wait`.
    #[error("session is locked by another request; waited {waited:?}")]
    LockTimeout {
        /// How long the request waited.
        waited: Duration,
    },

    /// The session is larger than memcached's item size limit. Nothing was written, and the
    /// copy already stored (if any) is intact.
    #[error(
        "session of {size} bytes does not fit memcached's item size limit of {limit} bytes; store less in the session, or raise memcached's -I and max_item_size together"
    )]
    TooLarge {
        /// The size the item would have had.
        size: usize,
        /// The configured limit.
        limit: usize,
    },
}

impl Error {
    /// Whether memcached did not answer in time.
    pub fn is_timeout(&self) -> bool {
        matches!(self, Self::Timeout { .. })
    }

    /// Whether memcached could not be reached.
    pub fn is_unreachable(&self) -> bool {
        matches!(self, Self::Unreachable { .. })
    }

    /// Whether the save gave up after repeated concurrent writes, or the lock wait ran out.
    pub fn is_contention(&self) -> bool {
        matches!(self, Self::Conflict { .. } | Self::LockTimeout { .. })
    }

    /// Whether the session was too large to store.
    pub fn is_too_large(&self) -> bool {
        matches!(self, Self::TooLarge { .. })
    }

    /// Whether the error is about configuration (address, options or environment), as
    /// opposed to memcached's behaviour at run time.
    pub fn is_config(&self) -> bool {
        matches!(
            self,
            Self::InvalidServer { .. }
                | Self::InvalidOption(_)
                | Self::Config { .. }
                | Self::NoRuntime
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_is_send_sync_and_static() {
        fn assert_bounds<T: Send + Sync + 'static + std::error::Error>() {}
        assert_bounds::<Error>();
    }

    #[test]
    fn display_does_not_repeat_the_source() {
        let error = Error::Unreachable {
            server: "127.0.0.1:11211".into(),
            source: "connection refused".into(),
        };
        assert!(!error.to_string().contains("refused"));
        assert_eq!(
            std::error::Error::source(&error).unwrap().to_string(),
            "connection refused"
        );
        assert!(error.is_unreachable());
    }
}
