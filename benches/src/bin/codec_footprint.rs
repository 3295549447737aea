//! Prints what one connection's wire state costs in memory: the inline size of each codec type and
//! the heap it holds when idle (after a message was received and delivered) and mid-message.

use clawgate_proto::http::{HttpLimits, RequestParser};
use clawgate_proto::limits::MAX_PREAUTH_PAYLOAD_BYTES;
use clawgate_proto::ws::{encode_frame, OpCode, WsCodec};
use std::mem::size_of;

fn main() {
    let mut codec = WsCodec::server(MAX_PREAUTH_PAYLOAD_BYTES);
    let mut wire = Vec::new();
    encode_frame(
        OpCode::Text,
        br#"{"type":"req","id":"1","method":"health"}"#,
        Some([1, 2, 3, 4]),
        &mut wire,
    );
    codec.feed(&wire);
    while let Ok(Some(_)) = codec.poll_message() {}
    let idle_heap = codec.heap_bytes();

    let mut partial = Vec::new();
    encode_frame(OpCode::Text, &[b'x'; 4000], Some([1, 2, 3, 4]), &mut partial);
    codec.feed(&partial[..2000]);
    let _ = codec.poll_message();
    let mid_heap = codec.heap_bytes();

    let mut parser = RequestParser::new(HttpLimits::default());
    parser.feed(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n");
    while let Ok(Some(_)) = parser.poll_request() {}

    println!("WsCodec inline size: {} bytes", size_of::<WsCodec>());
    println!("WsCodec heap when idle: {idle_heap} bytes");
    println!("WsCodec heap with half of a 4000-byte frame buffered: {mid_heap} bytes");
    println!("RequestParser inline size: {} bytes", size_of::<RequestParser>());
    println!("RequestParser heap when idle: {} bytes", parser.heap_bytes());
}
