//! The randomness the engine draws (nonces, connection ids, device tokens) comes in through one
//! small trait, so that tests and fuzzers run it deterministically.

use clawgate_proto::device::base64url_encode;

/// The source of randomness the engine draws from (nonces, connection ids, device tokens).
pub trait Entropy {
    /// Fills `buf` with random bytes.
    fn fill(&mut self, buf: &mut [u8]);
}

/// A device token: 32 random bytes, base64url (43 characters).
pub(crate) fn mint_token(entropy: &mut dyn Entropy) -> String {
    let mut bytes = [0u8; 32];
    entropy.fill(&mut bytes);
    base64url_encode(&bytes)
}

/// A random (version 4) UUID in its 36-character text form.
pub(crate) fn uuid_v4(bytes: [u8; 16]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut b = bytes;
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let mut s = String::with_capacity(36);
    for (i, byte) in b.iter().enumerate() {
        if matches!(i, 4 | 6 | 8 | 10) {
            s.push('-');
        }
        s.push(DIGITS[(byte >> 4) as usize] as char);
        s.push(DIGITS[(byte & 15) as usize] as char);
    }
    s
}

#[cfg(test)]
mod uuid_tests {
    #[test]
    fn uuids_have_the_v4_layout() {
        assert_eq!(super::uuid_v4([0xff; 16]), "ffffffff-ffff-4fff-bfff-ffffffffffff");
        assert_eq!(super::uuid_v4([0; 16]), "00000000-0000-4000-8000-000000000000");
    }
}
