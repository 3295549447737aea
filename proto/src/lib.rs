//! Sans-IO implementation of the OpenClaw gateway wire protocol, version 4.
//!
//! This crate holds everything about the wire that needs no gateway state, as plain data types and
//! state machines. It never reads a clock, draws randomness, or touches sockets or files: the
//! caller passes the time (milliseconds since the Unix epoch) and random bytes in, and moves the
//! bytes this crate produces to and from the network itself. That makes every part usable alone:
//! in a custom client, a fuzzer, a test or a gateway.
//!
//! # The protocol in one paragraph
//!
//! A client opens a WebSocket (any path) on the gateway port. The gateway sends a
//! `connect.challenge` event carrying a nonce. The client's first frame must be a `connect`
//! request: who it is ([`connect::ClientInfo`]), the role and scopes it asks for, its credentials
//! (shared token or password, or a device token) and, optionally, a device proof: an ed25519
//! signature over a `|`-joined payload that includes the nonce ([`device`]). The gateway answers
//! `hello-ok` (protocol, features, a state snapshot, the granted role and scopes, limits) or an
//! error followed by a close frame ([`handshake::ConnectRejection`] lists them all). Then the
//! client sends `req` frames and gets `res` frames (sometimes two per request), and the gateway
//! pushes `event` frames; each is one JSON text message ([`frame`]).
//!
//! # A client and a server, in memory
//!
//! The two handshake state machines can talk to each other without any socket:
//!
//! ```
//! use clawgate_proto::client::{ClientConnection, ClientEvent, ClientOptions};
//! use clawgate_proto::connect::{ClientId, ClientInfo, ClientMode, HelloAuth, HelloFeatures, HelloOk, HelloPolicy, HelloServer};
//! use clawgate_proto::device::DeviceIdentity;
//! use clawgate_proto::handshake::{ChallengeNonceOnly, ServerHandshake};
//!
//! let now = 1_800_000_000_000;
//! let mut options = ClientOptions::new(ClientInfo::new(ClientId::Cli, ClientMode::Cli, "1.0", "linux"));
//! options.scopes = vec!["operator.read".into()];
//! options.auth.token = Some("secret".into());
//! options.device = Some(DeviceIdentity::from_seed(&[42; 32])); // seed: 32 random bytes you keep
//! let mut client = ClientConnection::new(options, now);
//!
//! // The server's first frame: the challenge (the nonce would be a fresh random UUID).
//! let server = ServerHandshake::new("3f9c1a52-7d1e-4c7b-9a53-6f1d2e8b4c10", now);
//! client.handle_text(now, &server.challenge().encode()).unwrap();
//!
//! // The client answers with a signed connect; the server checks frame, schema, protocol, role
//! // and the device proof.
//! let connect = client.poll_transmit().unwrap();
//! let accepted = server.handle_first_frame(&connect, now, &mut ChallengeNonceOnly).unwrap();
//! assert!(accepted.device.is_some());
//!
//! // The gateway decides the rest (secret, pairing, scopes) and answers hello-ok.
//! let hello = HelloOk {
//!     ty: HelloOk::TYPE.into(),
//!     protocol: 4,
//!     server: HelloServer { version: "x".into(), conn_id: "c1".into(), extra: Default::default() },
//!     features: HelloFeatures { methods: vec!["health".into()], events: vec![], capabilities: None, extra: Default::default() },
//!     snapshot: serde_json::json!({}),
//!     auth: HelloAuth { method: Some("token".into()), role: "operator".into(), scopes: accepted.params.scopes().to_vec(),
//!                       device_token: None, issued_at_ms: None, device_tokens: None, extra: Default::default() },
//!     policy: HelloPolicy::default(),
//!     extra: Default::default(),
//! };
//! client.handle_text(now, &accepted.accept(&hello).encode()).unwrap();
//! assert!(matches!(client.poll_event(), Some(ClientEvent::Connected(_))));
//! ```
//!
//! Over a real socket, put [`ws::ClientUpgrade`] (the HTTP upgrade) and a [`ws::WsCodec`] in client
//! role (frames) between the network and [`client::ClientConnection`]; `examples/call.rs` does
//! exactly that with blocking std sockets in about 100 lines.
//!
//! # Modules
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
pub mod methods;
pub mod scopes;
pub mod session;
pub mod ws;

pub use connect::{ClientId, ClientMode, ConnectParams, HelloOk, Role};
pub use frame::{ErrorCode, ErrorShape, EventFrame, Frame, RequestFrame, ResponseFrame};
