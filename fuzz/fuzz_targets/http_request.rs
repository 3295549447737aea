//! HTTP/1.1 request parsing: arbitrary bytes in arbitrary chunks; every parsed request is also
//! offered to the WebSocket upgrade check.
#![no_main]

use clawgate_proto::http::{HttpLimits, RequestParser};
use clawgate_proto::ws::accept_upgrade;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: (u8, Vec<u8>)| {
    let (chunk, bytes) = input;
    let limits = HttpLimits { max_head_bytes: 4096, max_headers: 32, max_body_bytes: 4096 };
    let mut parser = RequestParser::new(limits);
    for piece in bytes.chunks(chunk as usize + 1) {
        parser.feed(piece);
        loop {
            match parser.poll_request() {
                Ok(Some(req)) => {
                    assert!(req.body.len() <= limits.max_body_bytes);
                    let _ = req.keep_alive();
                    let _ = req.path();
                    let _ = accept_upgrade(&req);
                }
                Ok(None) => break,
                Err(e) => {
                    assert!(matches!(e.status, 400 | 411 | 413 | 431 | 505));
                    let mut out = Vec::new();
                    e.response().encode(false, &mut out);
                    return;
                }
            }
        }
    }
});
