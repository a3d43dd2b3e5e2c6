//! The error type of this crate.

/// What can go wrong when using a [`Session`](crate::Session) or building a
/// [`CookieSigner`](crate::CookieSigner).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The session was destroyed earlier in this request; it can no longer be changed.
    #[error("session has been destroyed")]
    Destroyed,

    /// A value could not be turned into JSON for storage.
    #[error("session value for key {key:?} could not be serialized")]
    Serialize {
        /// The key being written.
        key: String,
        /// What serde reported.
        #[source]
        source: serde_json::Error,
    },

    /// A stored value does not have the type that was asked for.
    #[error("session value for key {key:?} does not have the requested type")]
    Deserialize {
        /// The key being read.
        key: String,
        /// What serde reported.
        #[source]
        source: serde_json::Error,
    },

    /// A cookie signer was built without a secret, or with an empty one.
    #[error("session cookies must be signed: give at least one non-empty secret")]
    MissingSecret,
}

impl Error {
    /// Whether the error comes from using a session after [`Session::destroy`](crate::Session::destroy).
    pub fn is_destroyed(&self) -> bool {
        matches!(self, Self::Destroyed)
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
    fn display_prints_only_its_own_level() {
        let source = serde_json::from_str::<u8>("\"x\"").unwrap_err();
        let error = Error::Deserialize {
            key: "count".into(),
            source,
        };
        assert_eq!(
            error.to_string(),
            "session value for key \"count\" does not have the requested type"
        );
        assert!(std::error::Error::source(&error).is_some());
    }
}
