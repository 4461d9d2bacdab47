//! Serving a database that a process holds open: the backup listener (online backups and
//! status over a local socket or TCP, with TLS and bearer tokens) and its client.
//! docs/server.md says how to embed it, run it and what travels on the wire.
//!
//! The framed protocol is [`crate::format::wire`] (always built, so the fuzz crate can
//! reach its decoder); the listener, the client, TLS and the remote repository come with
//! the `server` feature.

#[cfg(feature = "server")]
pub mod api;
#[cfg(feature = "server")]
pub mod client;
#[cfg(feature = "server")]
pub mod link;
#[cfg(feature = "server")]
pub mod listener;
#[cfg(feature = "server")]
pub mod remote;
#[cfg(feature = "server")]
pub mod tls;
pub mod tokens;

#[cfg(feature = "server")]
pub use listener::{socket_path, ListenOptions, Listener, RemoteStatus, SOCKET_NAME};
pub use tokens::{Role, Tokens};
