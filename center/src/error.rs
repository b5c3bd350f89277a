//! The center's errors: starting the server, and what a page action met.

use std::net::SocketAddr;
use std::path::PathBuf;

/// What went wrong.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// `--listen` is not `IP:PORT`.
    #[error("--listen {given}: not an address and port such as 127.0.0.1:8385")]
    BadListen {
        /// What was given.
        given: String,
    },
    /// `--listen` names an address other machines can reach.
    #[error("--listen {addr}: the Sync Center listens on loopback only (127.0.0.1 or [::1]), nothing was started")]
    NotLoopback {
        /// The address refused.
        addr: SocketAddr,
    },
    /// The socket could not be bound.
    #[error("cannot listen on {addr}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The HTTP server failed (runtime, accept loop).
    #[error("the Sync Center's server failed")]
    Server(#[source] std::io::Error),
    /// An action named a folder that is not in the replica registry.
    #[error("{root} is not a registered replica")]
    NotRegistered {
        /// The folder.
        root: PathBuf,
    },
    /// An action needs the replica's key and the center was started with none.
    #[error("no key to open {root}: the Sync Center was started without FERRY_PASSWORD* or a key file, so it only shows state")]
    NoKey {
        /// The replica.
        root: PathBuf,
    },
    /// An action names a store the replica does not sync with.
    #[error("{store} is not a store of {root}")]
    NotARemote {
        /// The replica.
        root: PathBuf,
        /// The store location given.
        store: String,
    },
    /// A form field is missing or malformed.
    #[error("bad request: {0}")]
    BadRequest(String),
    /// What the sync library reported.
    #[error(transparent)]
    Sync(#[from] ferry_sync::Error),
    /// What the store library reported.
    #[error(transparent)]
    Store(#[from] ferry_store::Error),
}

/// The center's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
