//! Support code shared by the workspace integration tests.
//!
//! [`memcached::Memcached`] runs a real memcached server per test, on a port
//! memcached picks itself (or on a Unix socket), and kills it on drop.

pub mod app;
pub mod example_app;
pub mod memcached;
