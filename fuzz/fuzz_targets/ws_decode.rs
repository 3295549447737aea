//! WebSocket frame decoding: arbitrary bytes, fed in arbitrary chunks, to both ends of the codec.
#![no_main]

use clawgate_proto::ws::{Message, SeededMasks, WsCodec};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: (u16, Vec<u8>, Vec<u8>)| {
    let (limit, cuts, bytes) = input;
    let limit = limit as usize;
    for mut codec in [WsCodec::server(limit), WsCodec::client(limit, Box::new(SeededMasks::new([1; 8])))] {
        let mut pos = 0;
        let mut cut_iter = cuts.iter().cycle();
        while pos < bytes.len() {
            let step = cut_iter.next().map_or(bytes.len(), |c| *c as usize + 1);
            let end = (pos + step).min(bytes.len());
            codec.feed(&bytes[pos..end]);
            pos = end;
            loop {
                match codec.poll_message() {
                    Ok(Some(Message::Text(t))) => assert!(t.len() <= limit),
                    Ok(Some(Message::Binary(b))) => assert!(b.len() <= limit),
                    Ok(Some(Message::Ping(p) | Message::Pong(p))) => assert!(p.len() <= 125),
                    Ok(Some(Message::Close(_))) => {}
                    Ok(None) => break,
                    Err(e) => {
                        let close = e.close_frame();
                        assert!(matches!(close.code, 1002 | 1007 | 1009));
                        return;
                    }
                }
            }
            if cuts.is_empty() {
                break;
            }
        }
    }
});
