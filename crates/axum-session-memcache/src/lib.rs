#![doc = include_str!("../README.md")]

mod address;
mod config;
mod cookie;
mod dyn_storage;
mod error;
mod extract;
mod key;
mod layer;
mod options;
mod pool;
mod rejection;
mod session_error;
mod storage;

pub use cookie::{SameSite, SessionCookie};
pub use error::Error;
pub use extract::Session;
pub use key::memcache_key;
pub use layer::{SessionLayer, SessionService};
pub use options::MemcacheSessionStorageOptions;
pub use rejection::{MissingSessionLayer, SessionRejection, SessionUnavailable};
pub use session_error::SessionError;
pub use storage::MemcacheSessionStorage;
