//! `connect` params and frames: arbitrary text through the frame decoder, the params schema and a
//! fresh server handshake.
#![no_main]

use clawgate_proto::connect::ConnectParams;
use clawgate_proto::frame::Frame;
use clawgate_proto::handshake::{ChallengeNonceOnly, ServerHandshake};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(frame) = Frame::decode(text) {
        // Whatever decodes must re-encode to something that decodes to the same frame.
        let again = Frame::decode(&frame.encode()).expect("re-encoded frame decodes");
        assert_eq!(again, frame);
    }
    if let Ok(params) = ConnectParams::parse(text) {
        let again = serde_json::to_string(&params).expect("params encode");
        assert_eq!(ConnectParams::parse(&again).expect("re-encoded params parse"), params);
    }
    let wrapped = format!(r#"{{"type":"req","id":"f","method":"connect","params":{text}}}"#);
    for candidate in [text, wrapped.as_str()] {
        match ServerHandshake::new("nonce", 1_800_000_000_000).handle_first_frame(candidate, 1_800_000_000_000, &mut ChallengeNonceOnly) {
            Ok(accepted) => assert!(accepted.device.is_none() || accepted.params.device.is_some()),
            Err(rejection) => {
                assert!(rejection.close.reason.len() <= 120);
                if let Some(res) = rejection.response {
                    assert!(!res.ok);
                }
            }
        }
    }
});
