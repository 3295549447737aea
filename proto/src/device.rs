//! Device identity: ed25519 keys, device ids, the v3/v2 signature payloads, signing and verifying.
//!
//! A device is an ed25519 key pair. Its id is the lowercase hex SHA-256 of the raw 32-byte public
//! key; the public key and signatures travel as base64url without padding. The device signs a
//! `|`-joined payload binding the connection parameters to the server's challenge nonce.

use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE_NO_PAD};
use base64::Engine;
use ed25519_dalek::{Signer, SigningKey, Verifier, VerifyingKey};
use sha2::{Digest, Sha256};

/// DER prefix of an ed25519 SubjectPublicKeyInfo; the raw key follows it.
const SPKI_ED25519_PREFIX: [u8; 12] = [0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00];
/// DER prefix of an ed25519 PKCS#8 private key; the 32-byte seed follows it.
const PKCS8_ED25519_PREFIX: [u8; 16] = [
    0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20,
];

/// Base64url without padding, as used for keys, signatures and tokens.
pub fn base64url_encode(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Decodes base64url or standard base64, with or without padding (the reference server maps
/// `-_` to `+/` and re-pads, so both alphabets are accepted).
pub fn base64_decode_lenient(text: &str) -> Option<Vec<u8>> {
    let trimmed = text.trim().trim_end_matches('=');
    if trimmed.contains(['+', '/']) && trimmed.contains(['-', '_']) {
        return None;
    }
    let normalized: String = trimmed
        .chars()
        .map(|c| match c {
            '-' => '+',
            '_' => '/',
            c => c,
        })
        .collect();
    STANDARD_NO_PAD.decode(normalized.as_bytes()).ok()
}

/// Lowercase hex of `bytes`.
pub fn hex_lower(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[(b >> 4) as usize] as char);
        s.push(DIGITS[(b & 15) as usize] as char);
    }
    s
}

/// The device id of a raw public key: lowercase hex SHA-256.
pub fn device_id_from_raw_public_key(raw: &[u8; 32]) -> String {
    hex_lower(&Sha256::digest(raw))
}

fn pem_body(pem: &str) -> Option<Vec<u8>> {
    let body: String = pem
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with("-----"))
        .collect();
    STANDARD.decode(body.as_bytes()).ok()
}

/// Extracts the raw 32-byte key from a device's `publicKey` field: base64url of the raw key, or a
/// PEM SPKI block (recognized by `BEGIN`).
pub fn parse_public_key(text: &str) -> Option<[u8; 32]> {
    if text.contains("BEGIN") {
        let der = pem_body(text)?;
        let raw = der.strip_prefix(&SPKI_ED25519_PREFIX[..])?;
        return raw.try_into().ok();
    }
    base64_decode_lenient(text)?.try_into().ok()
}

/// Extracts the 32-byte seed from an ed25519 PKCS#8 PEM private key (`BEGIN PRIVATE KEY`), the
/// format OpenClaw stores in `identity/device.json`.
pub fn parse_private_key_pem(pem: &str) -> Option<[u8; 32]> {
    let der = pem_body(pem)?;
    der.strip_prefix(&PKCS8_ED25519_PREFIX[..])?.try_into().ok()
}

/// An ed25519 device key pair made from caller-supplied seed bytes.
#[derive(Clone)]
pub struct DeviceIdentity {
    signing: SigningKey,
    device_id: String,
    public_key_b64url: String,
}

impl std::fmt::Debug for DeviceIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The seed is secret and never printed.
        f.debug_struct("DeviceIdentity")
            .field("device_id", &self.device_id)
            .finish_non_exhaustive()
    }
}

impl DeviceIdentity {
    /// The identity whose private key is `seed` (32 random bytes chosen by the caller).
    pub fn from_seed(seed: &[u8; 32]) -> Self {
        let signing = SigningKey::from_bytes(seed);
        let raw = signing.verifying_key().to_bytes();
        DeviceIdentity {
            device_id: device_id_from_raw_public_key(&raw),
            public_key_b64url: base64url_encode(&raw),
            signing,
        }
    }

    /// The device id (lowercase hex SHA-256 of the raw public key).
    pub fn device_id(&self) -> &str {
        &self.device_id
    }

    /// The public key as base64url of the raw 32 bytes.
    pub fn public_key_b64url(&self) -> &str {
        &self.public_key_b64url
    }

    /// The raw public key.
    pub fn public_key_raw(&self) -> [u8; 32] {
        self.signing.verifying_key().to_bytes()
    }

    /// The seed, for the caller to persist.
    pub fn seed(&self) -> [u8; 32] {
        self.signing.to_bytes()
    }

    /// Signs `payload` and returns the base64url signature.
    pub fn sign(&self, payload: &str) -> String {
        base64url_encode(&self.signing.sign(payload.as_bytes()).to_bytes())
    }
}

/// Which signature payload format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignatureVersion {
    /// `v2|deviceId|clientId|clientMode|role|scopes|signedAt|token|nonce`.
    V2,
    /// v2 plus `|platform|deviceFamily`, both trimmed and ASCII-lowercased.
    V3,
}

/// The fields a device signs.
#[derive(Debug, Clone, Copy)]
pub struct SignaturePayload<'a> {
    /// `device.id` as sent.
    pub device_id: &'a str,
    /// `client.id` as sent.
    pub client_id: &'a str,
    /// `client.mode` as sent.
    pub client_mode: &'a str,
    /// The role (`operator` when absent).
    pub role: &'a str,
    /// The requested scopes, exactly as sent.
    pub scopes: &'a [String],
    /// `device.signedAt`.
    pub signed_at_ms: u64,
    /// `auth.token ?? auth.deviceToken ?? auth.bootstrapToken ?? ""`.
    pub token: &'a str,
    /// The challenge nonce.
    pub nonce: &'a str,
    /// `client.platform` (v3 only).
    pub platform: &'a str,
    /// `client.deviceFamily`, empty when absent (v3 only).
    pub device_family: &'a str,
}

/// Trims and lowercases ASCII letters only, as the v3 payload requires.
pub fn normalize_metadata(s: &str) -> String {
    s.trim().to_ascii_lowercase()
}

impl SignaturePayload<'_> {
    /// The exact string that is signed.
    pub fn render(&self, version: SignatureVersion) -> String {
        let mut s = String::with_capacity(256);
        s.push_str(match version {
            SignatureVersion::V2 => "v2|",
            SignatureVersion::V3 => "v3|",
        });
        s.push_str(self.device_id);
        s.push('|');
        s.push_str(self.client_id);
        s.push('|');
        s.push_str(self.client_mode);
        s.push('|');
        s.push_str(self.role);
        s.push('|');
        for (i, scope) in self.scopes.iter().enumerate() {
            if i > 0 {
                s.push(',');
            }
            s.push_str(scope);
        }
        s.push('|');
        s.push_str(&self.signed_at_ms.to_string());
        s.push('|');
        s.push_str(self.token);
        s.push('|');
        s.push_str(self.nonce);
        if version == SignatureVersion::V3 {
            s.push('|');
            s.push_str(&normalize_metadata(self.platform));
            s.push('|');
            s.push_str(&normalize_metadata(self.device_family));
        }
        s
    }
}

/// Verifies a base64 signature of `message` by the raw public key. Any malformed input is simply
/// "does not verify".
pub fn verify_signature(public_key: &[u8; 32], message: &str, signature_b64: &str) -> bool {
    let Ok(key) = VerifyingKey::from_bytes(public_key) else {
        return false;
    };
    let Some(sig) = base64_decode_lenient(signature_b64) else {
        return false;
    };
    let Ok(sig) = ed25519_dalek::Signature::from_slice(&sig) else {
        return false;
    };
    key.verify(message.as_bytes(), &sig).is_ok()
}

/// Verifies a payload as v3 first, then v2; returns the version that verified.
pub fn verify_payload(
    public_key: &[u8; 32],
    payload: &SignaturePayload<'_>,
    signature_b64: &str,
) -> Option<SignatureVersion> {
    [SignatureVersion::V3, SignatureVersion::V2]
        .into_iter()
        .find(|v| verify_signature(public_key, &payload.render(*v), signature_b64))
}

/// Constant-time equality of two secrets; an empty secret never matches.
pub fn secrets_equal(a: &str, b: &str) -> bool {
    if a.is_empty() || b.is_empty() {
        return false;
    }
    // Hash both sides so the comparison time does not depend on where they differ or on lengths.
    let ha = Sha256::digest(a.as_bytes());
    let hb = Sha256::digest(b.as_bytes());
    let mut diff = 0u8;
    for (x, y) in ha.iter().zip(hb.iter()) {
        diff |= x ^ y;
    }
    diff == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn self_made_vector_of_the_protocol_notes() {
        let seed: [u8; 32] = core::array::from_fn(|i| i as u8);
        let id = DeviceIdentity::from_seed(&seed);
        assert_eq!(
            hex_lower(&id.public_key_raw()),
            "03a107bff3ce10be1d70dd18e74bc09967e4d6309ba50d5f1ddc8664125531b8"
        );
        assert_eq!(id.public_key_b64url(), "A6EHv_POEL4dcN0Y50vAmWfk1jCbpQ1fHdyGZBJVMbg");
        assert_eq!(
            id.device_id(),
            "56475aa75463474c0285df5dbf2bcab73da651358839e9b77481b2eab107708c"
        );
        let scopes = vec!["operator.read".to_owned(), "operator.write".to_owned()];
        let payload = SignaturePayload {
            device_id: id.device_id(),
            client_id: "cli",
            client_mode: "cli",
            role: "operator",
            scopes: &scopes,
            signed_at_ms: 1737264000000,
            token: "tok_example",
            nonce: "7f3c2a9e-1b4d-4c8e-9f6a-0d2e5b7c1a38",
            platform: "darwin",
            device_family: "",
        };
        let v3 = payload.render(SignatureVersion::V3);
        assert_eq!(v3, "v3|56475aa75463474c0285df5dbf2bcab73da651358839e9b77481b2eab107708c|cli|cli|operator|operator.read,operator.write|1737264000000|tok_example|7f3c2a9e-1b4d-4c8e-9f6a-0d2e5b7c1a38|darwin|");
        assert_eq!(
            id.sign(&v3),
            "wZ94ziKVCqFcnLFdmSmPFq75H_H6iPAvZQpQstPAwz5_bTXQVblzqNUwtUSBAj9XA8xWGj17opDLKuizBtzOBA"
        );
        let v2 = payload.render(SignatureVersion::V2);
        assert_eq!(
            id.sign(&v2),
            "5DAamdPPxDlpzunywETnV9fVJ9K_ONXBH1iUZoid3M3ikvTrw4JOCtg-9hW53SXLOZ1gjEHtfbx0te6FuGesDA"
        );
        assert_eq!(
            verify_payload(
                &id.public_key_raw(),
                &payload,
                "5DAamdPPxDlpzunywETnV9fVJ9K_ONXBH1iUZoid3M3ikvTrw4JOCtg-9hW53SXLOZ1gjEHtfbx0te6FuGesDA"
            ),
            Some(SignatureVersion::V2)
        );
    }

    #[test]
    fn pem_public_keys_are_accepted() {
        let id = DeviceIdentity::from_seed(&[7; 32]);
        let mut der = SPKI_ED25519_PREFIX.to_vec();
        der.extend_from_slice(&id.public_key_raw());
        let pem = format!(
            "-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----\n",
            STANDARD.encode(&der)
        );
        assert_eq!(parse_public_key(&pem), Some(id.public_key_raw()));
    }

    #[test]
    fn standard_base64_signatures_are_accepted() {
        let id = DeviceIdentity::from_seed(&[9; 32]);
        let sig = id.sign("hello");
        let raw = base64_decode_lenient(&sig).unwrap();
        assert!(verify_signature(&id.public_key_raw(), "hello", &STANDARD.encode(raw)));
        assert!(!verify_signature(&id.public_key_raw(), "hellO", &sig));
        assert!(!verify_signature(&id.public_key_raw(), "hello", "not base64!"));
    }

    #[test]
    fn secrets_compare_exactly_and_never_empty() {
        assert!(secrets_equal("abc", "abc"));
        assert!(!secrets_equal("abc", "abd"));
        assert!(!secrets_equal("abc", "abcd"));
        assert!(!secrets_equal("", ""));
    }
}
