//! memcached server addresses.

use std::fmt;
use std::path::PathBuf;

use crate::Error;

/// memcached's default port.
const DEFAULT_PORT: u16 = 11211;

/// Where memcached listens: parsed from `host:port` (as Remix takes it; the port defaults to
/// 11211), `tcp://host:port` or `unix:///path/to.sock`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Address {
    Tcp { host: String, port: u16 },
    Unix(PathBuf),
}

impl Address {
    pub(crate) fn parse(input: &str) -> Result<Self, Error> {
        let invalid = |reason: &str| Error::InvalidServer {
            input: input.to_owned(),
            reason: reason.to_owned(),
        };
        let trimmed = input.trim();
        if trimmed.is_empty() {
            return Err(invalid("it is empty; expected host:port"));
        }
        if let Some(path) = trimmed.strip_prefix("unix://") {
            if !path.starts_with('/') {
                return Err(invalid(
                    "a Unix socket path must be absolute, as in unix:///run/memcached.sock",
                ));
            }
            return Ok(Self::Unix(PathBuf::from(path)));
        }
        let authority = match trimmed.split_once("://") {
            Some(("tcp", rest)) => rest,
            Some((scheme, _)) => {
                return Err(invalid(&format!(
                    "unsupported scheme {scheme:?}; use host:port, tcp://host:port or unix:///path"
                )));
            }
            None => trimmed,
        };
        let authority = authority.strip_suffix('/').unwrap_or(authority);
        if authority.starts_with('[') || authority.matches(':').count() > 1 {
            return Err(invalid(
                "IPv6 addresses are not supported: the memcached client opens IPv4 sockets only; use an IPv4 address, a host name that resolves to IPv4, or a Unix socket",
            ));
        }
        let (host, port) = match authority.split_once(':') {
            Some((host, port)) => {
                let port = port
                    .parse::<u16>()
                    .ok()
                    .filter(|&port| port != 0)
                    .ok_or_else(|| invalid("the port must be a number from 1 to 65535"))?;
                (host, port)
            }
            None => (authority, DEFAULT_PORT),
        };
        let valid_host = !host.is_empty()
            && host
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-' || b == b'_');
        if !valid_host {
            return Err(invalid("expected host:port, as in 127.0.0.1:11211"));
        }
        Ok(Self::Tcp {
            host: host.to_owned(),
            port,
        })
    }

    /// The address in the form the memcached client takes.
    pub(crate) fn dsn(&self) -> String {
        match self {
            Self::Tcp { host, port } => format!("tcp://{host}:{port}"),
            Self::Unix(path) => format!("unix://{}", path.display()),
        }
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Tcp { host, port } => write!(f, "{host}:{port}"),
            Self::Unix(path) => write!(f, "unix://{}", path.display()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tcp(host: &str, port: u16) -> Address {
        Address::Tcp {
            host: host.into(),
            port,
        }
    }

    #[test]
    fn parses_the_accepted_forms() {
        assert_eq!(
            Address::parse("127.0.0.1:11211").unwrap(),
            tcp("127.0.0.1", 11211)
        );
        assert_eq!(Address::parse("memcache").unwrap(), tcp("memcache", 11211));
        assert_eq!(
            Address::parse("tcp://cache.internal:2000").unwrap(),
            tcp("cache.internal", 2000)
        );
        assert_eq!(
            Address::parse("tcp://cache:2000/").unwrap(),
            tcp("cache", 2000)
        );
        assert_eq!(
            Address::parse("unix:///run/memcached.sock").unwrap(),
            Address::Unix("/run/memcached.sock".into())
        );
    }

    #[test]
    fn dsn_is_what_the_client_parses() {
        assert_eq!(tcp("127.0.0.1", 1).dsn(), "tcp://127.0.0.1:1");
        assert_eq!(Address::Unix("/a.sock".into()).dsn(), "unix:///a.sock");
    }

    #[test]
    fn refuses_malformed_addresses_naming_the_input() {
        for (input, needle) in [
            ("", "empty"),
            ("host:0", "port"),
            ("host:99999", "port"),
            ("host:abc", "port"),
            (":11211", "host:port"),
            ("http://host:1", "scheme"),
            ("unix://relative.sock", "absolute"),
            ("[::1]:11211", "IPv6"),
            ("::1", "IPv6"),
            ("tcp://[::1]:11211", "IPv6"),
            ("host name:1", "host:port"),
        ] {
            let error = Address::parse(input).unwrap_err();
            let message = error.to_string();
            assert!(message.contains(needle), "{input:?}: {message}");
            assert!(message.contains(&format!("{input:?}")), "{message}");
        }
    }
}
