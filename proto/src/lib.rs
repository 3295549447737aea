//! Sans-IO implementation of the OpenClaw gateway wire protocol, version 4.
//!
//! This crate holds everything about the wire that needs no gateway state, as plain data types and
//! state machines. It never reads a clock, draws randomness, or touches sockets or files: the
//! caller passes the time (milliseconds since the Unix epoch) and random bytes in, and moves the
//! bytes this crate produces to and from the network itself.
//!
//! Modules:
//! - [`frame`]: the `req` / `res` / `event` JSON frames and the error shape.
//! - [`connect`]: `connect.challenge`, the `connect` params and `hello-ok`.
//! - [`handshake`]: the server handshake and the table of handshake failures.
//! - [`client`]: the client handshake and request tracking, with the tick watchdog.
//! - [`device`]: ed25519 device identities and the v3/v2 signature payloads.
//! - [`auth`]: shared-secret checks and authentication failure messages.
//! - [`scopes`]: roles, operator scopes, the method and event gates.
//! - [`ws`]: the RFC 6455 WebSocket codec, server and client side, and the HTTP upgrade.
//! - [`http`]: HTTP/1.1 request parsing, responses and Server-Sent Events.
//! - [`close`] and [`limits`]: close codes and named limits.
#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![cfg_attr(not(test), deny(clippy::unwrap_used))]

pub mod auth;
pub mod client;
pub mod close;
pub mod connect;
pub mod device;
pub mod frame;
pub mod handshake;
pub mod http;
pub mod limits;
pub mod scopes;
pub mod ws;

pub use connect::{ClientId, ClientMode, ConnectParams, HelloOk, Role};
pub use frame::{ErrorCode, ErrorShape, EventFrame, Frame, RequestFrame, ResponseFrame};
