//! Named limits and protocol constants, each next to a short note of why it has its value.

/// The protocol version this crate speaks.
pub const PROTOCOL_VERSION: u32 = 4;
/// Oldest protocol accepted from `node`/`node` clients (legacy node hosts).
pub const MIN_NODE_PROTOCOL_VERSION: u32 = 3;
/// Oldest protocol accepted from `probe` clients (status probes of older CLIs).
pub const MIN_PROBE_PROTOCOL_VERSION: u32 = 3;

/// Largest frame accepted before `hello-ok` (64 KiB): unauthenticated peers get little memory.
pub const MAX_PREAUTH_PAYLOAD_BYTES: usize = 64 * 1024;
/// Largest frame accepted after `hello-ok` (25 MiB), advertised as `policy.maxPayload`.
pub const MAX_PAYLOAD_BYTES: usize = 25 * 1024 * 1024;
/// Outbound buffer threshold of the slow-consumer rule (50 MiB), advertised as `policy.maxBufferedBytes`.
pub const MAX_BUFFERED_BYTES: usize = 50 * 1024 * 1024;
/// Interval of the server's `tick` event, advertised as `policy.tickIntervalMs`.
pub const TICK_INTERVAL_MS: u64 = 30_000;
/// Time a socket has to complete the handshake.
pub const HANDSHAKE_TIMEOUT_MS: u64 = 10_000;
/// Largest accepted difference between the server clock and a device proof's `signedAt`.
pub const DEVICE_SIGNATURE_SKEW_MS: u64 = 120_000;
/// Longest close reason the gateway sends; the reference server truncates to this many bytes.
pub const MAX_GATEWAY_CLOSE_REASON_BYTES: usize = 120;
/// Longest close reason RFC 6455 allows (a control frame carries at most 125 bytes, 2 of them the code).
pub const MAX_WS_CLOSE_REASON_BYTES: usize = 123;
/// Largest HTTP request head (request line and headers).
pub const MAX_HTTP_HEAD_BYTES: usize = 16 * 1024;
/// Most HTTP request headers accepted.
pub const MAX_HTTP_HEADERS: usize = 64;
/// Default cap on an HTTP request body.
pub const DEFAULT_MAX_HTTP_BODY_BYTES: usize = 2 * 1024 * 1024;
