//! WebSocket close codes and reasons used by the gateway.

use crate::limits::MAX_GATEWAY_CLOSE_REASON_BYTES;

/// Close codes the gateway and its clients use.
pub mod code {
    /// Normal close; also used for handshake timeouts and invalid JSON before `hello-ok`.
    pub const NORMAL: u16 = 1000;
    /// The peer is going away.
    pub const GOING_AWAY: u16 = 1001;
    /// Protocol error; the gateway also uses it for protocol version mismatch.
    pub const PROTOCOL_ERROR: u16 = 1002;
    /// Data of a type the endpoint cannot accept.
    pub const UNSUPPORTED_DATA: u16 = 1003;
    /// Text frame with invalid UTF-8.
    pub const INVALID_PAYLOAD: u16 = 1007;
    /// Policy violation: handshake and auth failures, slow consumers, pairing required.
    pub const POLICY_VIOLATION: u16 = 1008;
    /// Message too big (pre-auth frames over 64 KiB).
    pub const MESSAGE_TOO_BIG: u16 = 1009;
    /// Unexpected server condition.
    pub const INTERNAL_ERROR: u16 = 1011;
    /// The gateway is stopping or restarting (sent after the `shutdown` event).
    pub const SERVICE_RESTART: u16 = 1012;
    /// The gateway is still starting; retry shortly.
    pub const TRY_AGAIN_LATER: u16 = 1013;
    /// Client-side: no frame received for more than twice the tick interval.
    pub const TICK_TIMEOUT: u16 = 4000;
    /// The shared gateway secret changed since this socket authenticated.
    pub const AUTH_CHANGED: u16 = 4001;
}

/// A close code with its reason text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CloseFrame {
    /// The close code (see [`code`]).
    pub code: u16,
    /// The reason, at most [`MAX_GATEWAY_CLOSE_REASON_BYTES`] bytes of valid UTF-8.
    pub reason: String,
}

impl CloseFrame {
    /// A close frame whose reason is truncated on a character boundary to the gateway limit.
    pub fn new(code: u16, reason: &str) -> Self {
        CloseFrame {
            code,
            reason: truncate_utf8(reason, MAX_GATEWAY_CLOSE_REASON_BYTES).to_owned(),
        }
    }
}

/// The longest prefix of `s` that is at most `max` bytes and ends on a character boundary.
pub fn truncate_utf8(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while end > 0 && !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// Whether a peer may send this code in a close frame (RFC 6455 section 7.4).
pub fn is_valid_received_code(code: u16) -> bool {
    matches!(code, 1000..=1003 | 1007..=1014 | 3000..=4999)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_are_truncated_on_char_boundaries() {
        let long = "é".repeat(100);
        let c = CloseFrame::new(code::POLICY_VIOLATION, &long);
        assert!(c.reason.len() <= MAX_GATEWAY_CLOSE_REASON_BYTES);
        assert_eq!(c.reason.len(), 120);
        let odd = format!("a{}", "é".repeat(100));
        assert_eq!(CloseFrame::new(1008, &odd).reason.len(), 119);
    }

    #[test]
    fn reserved_codes_are_not_valid_to_receive() {
        for c in [0, 999, 1004, 1005, 1006, 1015, 2999, 5000] {
            assert!(!is_valid_received_code(c), "{c}");
        }
        for c in [1000, 1008, 1012, 3000, 4000, 4999] {
            assert!(is_valid_received_code(c), "{c}");
        }
    }
}
