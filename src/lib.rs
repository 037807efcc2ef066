//! matrix-leave: the Matrix federation leave handshake for homeservers.
//!
//! The crate has a pure Rust core and a thin C ABI over it (module [`ffi`]):
//!
//! - [`json`]: the strict JSON parser and canonical JSON.
//! - [`version`]: the room-version capability table for versions 1 to 12.
//! - [`keys`], [`event`], [`xmatrix`]: signing keys, JSON and event signatures, hashes,
//!   redaction, event IDs, server key documents and X-Matrix request authentication.
//! - [`auth`], [`acl`]: the auth rules for leaves and server ACLs.
//! - [`resident`]: answering `make_leave` and `send_leave` for a room this server is in.
//! - [`leaving`]: completing a template and driving the handshake from the leaving server.

pub mod acl;
pub mod auth;
pub mod error;
pub mod event;
pub mod ffi;
pub mod json;
pub mod keys;
pub mod leaving;
pub mod resident;
pub mod version;
pub mod xmatrix;

pub use error::{Code, Error};
pub use json::Value;
pub use version::RoomVersion;
