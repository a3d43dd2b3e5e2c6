//! The app's configuration: sessions from the environment, with loud development defaults.

use std::net::{IpAddr, SocketAddr};

use axum_session_memcache::{MemcacheSessionStorage, SessionCookie, SessionLayer};
use base64::Engine as _;
use rand::RngCore as _;
use session_core::MemoryStorage;

/// What the health check asks.
#[derive(Clone, Debug)]
pub(crate) enum Health {
    /// Sessions live in memcached: ping it.
    Memcached(MemcacheSessionStorage),
    /// Sessions live in this process: nothing to check.
    InProcess,
}

/// The session layer and the health check, as configured.
pub(crate) struct Setup {
    pub(crate) layer: SessionLayer,
    pub(crate) health: Health,
}

fn var(name: &str) -> Option<String> {
    std::env::var_os(name)
        .map(|value| value.to_string_lossy().into_owned())
        .filter(|value| !value.is_empty())
}

impl Setup {
    /// Reads the session settings. A variable that is set but malformed is an error; only
    /// absent `MEMCACHE_SERVER` and `SESSION_SECRETS` fall back, loudly.
    pub(crate) fn from_env() -> Result<Self, axum_session_memcache::Error> {
        let cookie = if var("SESSION_SECRETS").is_some() {
            SessionCookie::from_env()?
        } else {
            tracing::warn!(
                "SESSION_SECRETS is not set: signing cookies with a secret made up for this process. \
                 Sessions will not survive a restart and other app servers cannot read them. \
                 Set SESSION_SECRETS in production."
            );
            let mut bytes = [0_u8; 32];
            rand::rng().fill_bytes(&mut bytes);
            let secret = base64::engine::general_purpose::STANDARD.encode(bytes);
            SessionCookie::from_vars(|name| {
                if name == "SESSION_SECRETS" {
                    Some(secret.clone())
                } else {
                    var(name)
                }
            })?
        };
        if var("MEMCACHE_SERVER").is_some() {
            let storage = MemcacheSessionStorage::from_env()?;
            tracing::info!(
                prefix = storage.options().get_key_prefix(),
                "sessions are stored in memcached"
            );
            Ok(Self {
                layer: SessionLayer::new(storage.clone(), cookie),
                health: Health::Memcached(storage),
            })
        } else {
            tracing::warn!(
                "MEMCACHE_SERVER is not set: keeping sessions in this process's memory. \
                 They are lost on restart and not shared between app servers. \
                 Set MEMCACHE_SERVER in production."
            );
            Ok(Self {
                layer: SessionLayer::new(MemoryStorage::new(), cookie),
                health: Health::InProcess,
            })
        }
    }
}

/// The address to listen on: `HOST` (default `127.0.0.1`) and `PORT` (default `3000`; `0`
/// picks a free port).
pub(crate) fn listen_address() -> Result<SocketAddr, String> {
    let host = var("HOST").unwrap_or_else(|| "127.0.0.1".to_owned());
    let host: IpAddr = host
        .parse()
        .map_err(|_| format!("HOST has the value {host:?}; expected an IP address"))?;
    let port = var("PORT").unwrap_or_else(|| "3000".to_owned());
    let port: u16 = port
        .parse()
        .map_err(|_| format!("PORT has the value {port:?}; expected a port number"))?;
    Ok(SocketAddr::new(host, port))
}
