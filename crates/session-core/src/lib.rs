#![doc = include_str!("../README.md")]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod changes;
mod cookie;
mod data;
mod error;
mod id;
mod memory;
mod session;
mod storage;

#[cfg(feature = "testing")]
pub mod testing;

pub use changes::Changes;
pub use cookie::{CookieSigner, Verified};
pub use data::{SessionData, Values};
pub use error::Error;
pub use id::SessionId;
pub use memory::MemoryStorage;
pub use session::Session;
pub use storage::{CookieUpdate, SessionStorage};
