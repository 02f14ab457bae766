//! The daemon's one error type, shared by the engine, the image store and the runtime
//! client. Each variant is a kind of failure a client can act on; `api::error` maps
//! them to HTTP status codes in one place.

use std::io;

/// What went wrong in an operation; the message is what the client sees.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The named object does not exist (404).
    #[error("{0}")]
    NotFound(String),
    /// The request conflicts with the current state, e.g. a name in use (409).
    #[error("{0}")]
    Conflict(String),
    /// The request is malformed or names an invalid value (400).
    #[error("{0}")]
    InvalidParameter(String),
    /// Nothing to do: the object is already in the requested state (304).
    #[error("{0}")]
    NotModified(String),
    /// The request is valid Docker API, but this daemon does not do it yet (501).
    #[error("{0}")]
    NotImplemented(String),
    /// The request lacks credentials the other side accepts, e.g. a registry's
    /// token service refused them (401).
    #[error("{0}")]
    Unauthorized(String),
    /// The operation is refused by policy (403).
    #[error("{0}")]
    Forbidden(String),
    /// The service the request needs is not available here, e.g. swarm mode on a
    /// node outside any swarm (503).
    #[error("{0}")]
    Unavailable(String),
    /// Anything else: a failure inside the daemon or the system (500).
    #[error("{0}")]
    Internal(String),
}

/// Result of an operation that fails with [`Error`].
pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    pub fn not_found(msg: impl Into<String>) -> Self {
        Error::NotFound(msg.into())
    }
    pub fn conflict(msg: impl Into<String>) -> Self {
        Error::Conflict(msg.into())
    }
    pub fn invalid(msg: impl Into<String>) -> Self {
        Error::InvalidParameter(msg.into())
    }
    pub fn not_implemented(msg: impl Into<String>) -> Self {
        Error::NotImplemented(msg.into())
    }
    pub fn internal(msg: impl Into<String>) -> Self {
        Error::Internal(msg.into())
    }
}

impl From<io::Error> for Error {
    fn from(e: io::Error) -> Self {
        Error::Internal(crate::store::strip_os_suffix(&e))
    }
}
