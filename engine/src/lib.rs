//! The Clawgate gateway engine: connections, HTTP routing, the WebSocket handshake, auth, method
//! dispatch, presence, ticks and shutdown, as one sans-IO state machine.
//!
//! The engine never touches a socket, a clock or a random source. A runtime feeds it events with
//! the `handle_*` methods (each takes the current time in milliseconds since the Unix epoch) and
//! carries out what [`Gateway::poll_output`] returns, then arms a timer for
//! [`Gateway::poll_timeout`].
//!
//! Invariant for runtimes: after every `handle_*` call, drain `poll_output` until it returns `None`
//! before handling the next input; outputs are ordered (bytes for a connection always precede its
//! close).
#![forbid(unsafe_code)]
#![cfg_attr(not(test), deny(clippy::unwrap_used))]

mod admission;
mod agent_entries;
pub mod agent_files;
pub mod agents;
pub mod approvals;
mod cache;
pub mod channel_config;
pub mod channel_pairing;
pub mod channel_routing;
pub mod channel_text;
pub mod channels;
pub mod config;
mod config_rpc;
mod config_schema;
mod connect;
mod conns;
mod context;
pub mod control_ui;
mod cron;
mod duration;
mod entropy;
mod gateway;
pub mod hook_mappings;
pub mod hooks;
mod hooks_http;
mod http_routes;
mod http_runs;
pub mod idempotency;
mod lifecycle;
mod log_ring;
mod methods;
mod metrics;
pub mod models;
pub mod nodes;
mod openai_http;
mod output;
pub mod pairing;
mod pairing_methods;
mod presence;
pub mod rate_limit;
pub mod reload;
mod reply;
pub mod scheduler;
pub mod session_usage;
pub mod settings;
pub mod stability;
#[cfg(feature = "testkit")]
pub mod testkit;
pub mod tool_calls;
mod tool_catalog;
pub mod tool_policy;
pub mod usage;

pub use config::GatewayConfig;
pub use entropy::Entropy;
pub use gateway::{ConnId, Gateway, LogLevel, LogLine, Output};
