//! A bb8 pool of async-memcached clients, with every command bounded in time and no
//! connection reused after a failed, timed-out or cancelled command.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use async_memcached::{Client, MetaProtocol as _, Status};
use tokio::sync::watch;

use crate::Error;
use crate::address::Address;

/// One command sent to memcached.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Command<'a> {
    /// Read a value with its CAS value and remaining TTL; with `touch`, also set a new
    /// expiry in the same round trip.
    Get { key: &'a str, touch: Option<u64> },
    /// Store a value, with an optional expiry (seconds, or an absolute unix time).
    Set {
        key: &'a str,
        value: &'a [u8],
        expiry: Option<u64>,
        mode: SetMode,
    },
    /// Delete a key, only if its CAS value still is `cas` when given.
    Delete { key: &'a str, cas: Option<u64> },
    /// Add a lock item holding `token`, answering the item's CAS value.
    Lock {
        key: &'a str,
        token: &'a [u8],
        expiry: u64,
    },
    /// Ask for the server's version: a health check.
    Version,
}

/// How a value is stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum SetMode {
    /// Whatever is there.
    Overwrite,
    /// Only if the key does not exist.
    Add,
    /// Only if the item still has this CAS value.
    Cas(u64),
}

/// An item read from memcached.
#[derive(Debug)]
pub(crate) struct Item {
    pub(crate) data: Vec<u8>,
    pub(crate) cas: Option<u64>,
    /// Seconds left before the item expires (before any touch); `-1` for never.
    pub(crate) ttl_remaining: Option<i64>,
}

/// What memcached answered.
#[derive(Debug)]
pub(crate) enum Reply {
    /// The item read, if any.
    Item(Option<Item>),
    /// The write or delete was applied.
    Done,
    /// The lock was taken; its item has this CAS value.
    Locked { cas: u64 },
    /// `Add` found the key already there.
    NotStored,
    /// The CAS value did not match: another client wrote the item.
    Exists,
    /// The item to compare against does not exist.
    NotFound,
}

/// A pooled connection: the client, and the pool epoch it was opened in.
pub(crate) struct Connection {
    client: Client,
    epoch: u64,
    opened: Instant,
}

/// Why a connection could not be opened.
#[derive(Debug)]
pub(crate) enum ConnectError {
    Failed(async_memcached::Error),
    TimedOut(Duration),
}

impl fmt::Display for ConnectError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Failed(error) => write!(f, "{error}"),
            Self::TimedOut(timeout) => write!(f, "connecting took longer than {timeout:?}"),
        }
    }
}

impl std::error::Error for ConnectError {}

/// Opens connections for bb8 and tells it which ones must not be reused.
pub(crate) struct Manager {
    dsn: String,
    connect_timeout: Duration,
    /// Connections opened before the current epoch are discarded: the epoch moves on when a
    /// reused connection fails, since its siblings most likely failed with it (a restarted
    /// server).
    epoch: Arc<AtomicU64>,
}

impl bb8::ManageConnection for Manager {
    type Connection = Connection;
    type Error = ConnectError;

    async fn connect(&self) -> Result<Connection, ConnectError> {
        let epoch = self.epoch.load(Ordering::Acquire);
        match tokio::time::timeout(self.connect_timeout, Client::new(&self.dsn)).await {
            Ok(Ok(client)) => Ok(Connection {
                client,
                epoch,
                opened: Instant::now(),
            }),
            Ok(Err(error)) => Err(ConnectError::Failed(error)),
            Err(_) => Err(ConnectError::TimedOut(self.connect_timeout)),
        }
    }

    /// Asked by bb8 only with `test_on_check_out`, which this pool leaves off: a check on
    /// every checkout would double the round trips, and broken connections are caught by
    /// `has_broken` and the retry in `Pool::execute` instead.
    async fn is_valid(&self, connection: &mut Connection) -> Result<(), ConnectError> {
        match tokio::time::timeout(self.connect_timeout, connection.client.version()).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(error)) => Err(ConnectError::Failed(error)),
            Err(_) => Err(ConnectError::TimedOut(self.connect_timeout)),
        }
    }

    fn has_broken(&self, connection: &mut Connection) -> bool {
        // `is_closed` is also true while a command is in flight, that is when the command's
        // future was dropped (cancelled or timed out) before reading the whole answer.
        connection.client.is_closed() || connection.epoch < self.epoch.load(Ordering::Acquire)
    }
}

/// Passes connection errors from bb8's background tasks to the requests waiting for a
/// connection, so that they fail at once when memcached refuses connections.
#[derive(Clone, Debug)]
struct ConnectErrors(Arc<watch::Sender<Option<Arc<str>>>>);

impl bb8::ErrorSink<ConnectError> for ConnectErrors {
    fn sink(&self, error: ConnectError) {
        tracing::debug!(%error, "memcached connection failed");
        self.0.send_replace(Some(error.to_string().into()));
    }

    fn boxed_clone(&self) -> Box<dyn bb8::ErrorSink<ConnectError>> {
        Box::new(self.clone())
    }
}

/// The pool, and the bounds every command runs within.
pub(crate) struct Pool {
    connections: bb8::Pool<Manager>,
    server: String,
    epoch: Arc<AtomicU64>,
    connect_errors: ConnectErrors,
    max_size: u32,
    connect_timeout: Duration,
    operation_timeout: Duration,
}

impl fmt::Debug for Pool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pool")
            .field("server", &self.server)
            .field("state", &self.connections.state())
            .finish_non_exhaustive()
    }
}

/// How one attempt at a command failed.
enum Failure {
    /// The connection failed: worth one more try on a fresh connection if this one was
    /// already open before the attempt (it may have outlived a memcached restart).
    Connection {
        error: async_memcached::Error,
        reused: bool,
    },
    /// Anything else: reported as it is.
    Final(Error),
}

impl Pool {
    pub(crate) fn new(
        address: &Address,
        max_size: u32,
        connect_timeout: Duration,
        operation_timeout: Duration,
    ) -> Result<Self, Error> {
        tokio::runtime::Handle::try_current().map_err(|_| Error::NoRuntime)?;
        let epoch = Arc::new(AtomicU64::new(0));
        let connect_errors = ConnectErrors(Arc::new(watch::Sender::new(None)));
        let manager = Manager {
            dsn: address.dsn(),
            connect_timeout,
            epoch: Arc::clone(&epoch),
        };
        let pool = bb8::Pool::builder()
            .max_size(max_size)
            .min_idle(None)
            .connection_timeout(connect_timeout)
            .retry_connection(false)
            .test_on_check_out(false)
            .error_sink(Box::new(connect_errors.clone()))
            .build_unchecked(manager);
        Ok(Self {
            connections: pool,
            server: address.to_string(),
            epoch,
            connect_errors,
            max_size,
            connect_timeout,
            operation_timeout,
        })
    }

    /// The server's address, for messages.
    pub(crate) fn server(&self) -> &str {
        &self.server
    }

    /// Runs a command, bounded by the connect and operation timeouts. A command that fails
    /// on a reused connection (say, after memcached restarted) is tried once more on a
    /// fresh connection; a timed-out command is not.
    pub(crate) async fn execute(&self, command: Command<'_>) -> Result<Reply, Error> {
        match self.attempt(command).await {
            Ok(reply) => Ok(reply),
            Err(Failure::Connection {
                error,
                reused: true,
            }) => {
                self.epoch.fetch_add(1, Ordering::AcqRel);
                tracing::debug!(%error, "memcached connection failed; retrying on a new connection");
                self.attempt(command)
                    .await
                    .map_err(|failure| self.report(failure))
            }
            Err(failure) => Err(self.report(failure)),
        }
    }

    fn report(&self, failure: Failure) -> Error {
        match failure {
            Failure::Connection { error, .. } => {
                self.epoch.fetch_add(1, Ordering::AcqRel);
                Error::Unreachable {
                    server: self.server.clone(),
                    source: Box::new(error),
                }
            }
            Failure::Final(error) => error,
        }
    }

    async fn attempt(&self, command: Command<'_>) -> Result<Reply, Failure> {
        let started = Instant::now();
        let mut connection = self.acquire().await.map_err(Failure::Final)?;
        let reused = connection.opened < started;
        let client = &mut connection.client;
        let sent = tokio::time::timeout(self.operation_timeout, send(client, command)).await;
        match sent {
            Ok(Ok(reply)) => Ok(reply),
            Ok(Err(error)) if is_connection_error(&error) => {
                Err(Failure::Connection { error, reused })
            }
            Ok(Err(error)) => Err(Failure::Final(Error::Protocol {
                server: self.server.clone(),
                source: Box::new(error),
            })),
            // The command's future was dropped mid-way: the client closed itself, and
            // `has_broken` keeps the pool from handing it out again.
            Err(_) => Err(Failure::Final(Error::Timeout {
                server: self.server.clone(),
                timeout: self.operation_timeout,
            })),
        }
    }

    /// Takes a connection from the pool (opening one if needed), skipping connections from
    /// an earlier epoch, and failing as soon as memcached refuses a new connection.
    async fn acquire(&self) -> Result<bb8::PooledConnection<'_, Manager>, Error> {
        let mut connect_errors = self.connect_errors.0.subscribe();
        loop {
            let connection = tokio::select! {
                biased;
                got = self.connections.get() => got.map_err(|error| self.classify(error))?,
                Ok(()) = connect_errors.changed() => {
                    let message = connect_errors.borrow().clone().unwrap_or_default();
                    return Err(Error::Unreachable {
                        server: self.server.clone(),
                        source: message.to_string().into(),
                    });
                }
            };
            if connection.epoch >= self.epoch.load(Ordering::Acquire) {
                return Ok(connection);
            }
            // Dropped here: `has_broken` sees the old epoch and closes it.
        }
    }

    fn classify(&self, error: bb8::RunError<ConnectError>) -> Error {
        match error {
            bb8::RunError::User(error) => Error::Unreachable {
                server: self.server.clone(),
                source: Box::new(error),
            },
            bb8::RunError::TimedOut if self.connections.state().connections >= self.max_size => {
                Error::PoolExhausted {
                    size: self.max_size,
                    timeout: self.connect_timeout,
                }
            }
            bb8::RunError::TimedOut => Error::Timeout {
                server: self.server.clone(),
                timeout: self.connect_timeout,
            },
        }
    }
}

/// Sends one command with the meta protocol.
async fn send(client: &mut Client, command: Command<'_>) -> Result<Reply, async_memcached::Error> {
    let outcome = match command {
        Command::Get { key, touch } => {
            let touch = touch.map(|expiry| format!("T{expiry}"));
            let mut flags = vec!["v", "c", "t"];
            flags.extend(touch.as_deref());
            let item = client.meta_get(key, false, None, Some(&flags)).await?;
            return Ok(Reply::Item(item.and_then(|item| {
                Some(Item {
                    data: item.data?,
                    cas: item.cas,
                    ttl_remaining: item.ttl_remaining,
                })
            })));
        }
        Command::Set {
            key,
            value,
            expiry,
            mode,
        } => {
            let ttl = expiry.map(|expiry| format!("T{expiry}"));
            let cas = match mode {
                SetMode::Cas(cas) => Some(format!("C{cas}")),
                SetMode::Overwrite | SetMode::Add => None,
            };
            let mut flags: Vec<&str> = ttl.iter().chain(cas.iter()).map(String::as_str).collect();
            if mode == SetMode::Add {
                flags.push("ME");
            }
            client.meta_set(key, value, true, None, Some(&flags)).await
        }
        Command::Delete { key, cas } => {
            // Quiet mode: memcached leaves out the answer for a deleted key; a missing key
            // (`NF`), a CAS mismatch (`EX`) and errors still come back.
            let cas = cas.map(|cas| format!("C{cas}"));
            let flags: Vec<&str> = cas.iter().map(String::as_str).collect();
            client.meta_delete(key, true, None, Some(&flags)).await
        }
        Command::Lock { key, token, expiry } => {
            let ttl = format!("T{expiry}");
            let flags = ["ME", ttl.as_str(), "c"];
            let stored = client.meta_set(key, token, false, None, Some(&flags)).await;
            // With a return flag, memcached answers `NS c0` when the key exists: the
            // client hands that back as an item whose status says it was not stored.
            return match stored {
                Ok(Some(item)) if item.status == Some(Status::NotStored) => Ok(Reply::NotStored),
                Ok(Some(item)) => item
                    .cas
                    .map(|cas| Reply::Locked { cas })
                    .ok_or_else(no_cas_error),
                Ok(None) => Err(no_cas_error()),
                Err(async_memcached::Error::Protocol(Status::NotStored)) => Ok(Reply::NotStored),
                Err(error) => Err(error),
            };
        }
        Command::Version => client.version().await.map(|_| None),
    };
    match outcome {
        Ok(_) => Ok(Reply::Done),
        Err(async_memcached::Error::Protocol(Status::NotStored)) => Ok(Reply::NotStored),
        Err(async_memcached::Error::Protocol(Status::Exists)) => Ok(Reply::Exists),
        Err(async_memcached::Error::Protocol(Status::NotFound)) => Ok(Reply::NotFound),
        Err(error) => Err(error),
    }
}

fn no_cas_error() -> async_memcached::Error {
    async_memcached::Error::Protocol(Status::Error(async_memcached::ErrorKind::Protocol(Some(
        "memcached did not return the lock's CAS value (meta flag c needs memcached 1.6.10 or later)"
            .to_owned(),
    ))))
}

/// Whether the error means the connection itself failed (as opposed to memcached refusing
/// the command on a working connection).
fn is_connection_error(error: &async_memcached::Error) -> bool {
    match error {
        async_memcached::Error::Connect(_)
        | async_memcached::Error::ConnectionClosed
        | async_memcached::Error::Io(_) => true,
        async_memcached::Error::Protocol(_) | async_memcached::Error::ParseError(_) => false,
    }
}
