//! Random identifiers shaped like each provider's own.
//!
//! Randomness comes from UUID v4 (the OS generator through `uuid`), which the
//! workspace already depends on; nothing here needs to be unpredictable, only
//! unique enough that two transactions of one run never collide.

use base64::Engine;
use base64::engine::general_purpose::{STANDARD_NO_PAD, URL_SAFE_NO_PAD};
use uuid::Uuid;

const UPPERCASE_ALPHANUMERIC: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
const LOWERCASE_HEX: &[u8] = b"0123456789abcdef";

fn random_u128() -> u128 {
    u128::from_be_bytes(*Uuid::new_v4().as_bytes())
}

/// `length` characters drawn from `alphabet`.
fn random_text(alphabet: &[u8], length: usize) -> String {
    let base = alphabet.len() as u128;
    let mut text = String::with_capacity(length);
    let mut pool = random_u128();
    let mut left_in_pool = 0usize;
    for _ in 0..length {
        // Each UUID gives about 122 random bits; refill before they run out.
        if left_in_pool == 0 {
            pool = random_u128();
            left_in_pool = 16;
        }
        let index = (pool % base) as usize;
        pool /= base;
        left_in_pool -= 1;
        text.push(char::from(alphabet[index]));
    }
    text
}

/// `length` decimal digits (the first may be zero).
pub(crate) fn digits(length: usize) -> String {
    random_text(b"0123456789", length)
}

/// `length` lowercase hex characters.
pub(crate) fn hex(length: usize) -> String {
    random_text(LOWERCASE_HEX, length)
}

/// `length` uppercase letters and digits, like M-Pesa receipt numbers.
pub(crate) fn uppercase_alphanumeric(length: usize) -> String {
    random_text(UPPERCASE_ALPHANUMERIC, length)
}

/// An opaque bearer token of `length` letters and digits.
pub(crate) fn token(length: usize) -> String {
    let mut token = String::with_capacity(length + 32);
    while token.len() < length {
        let chunk = STANDARD_NO_PAD.encode(Uuid::new_v4().as_bytes());
        token.extend(chunk.chars().filter(char::is_ascii_alphanumeric));
    }
    token.truncate(length);
    token
}

/// A JWT-shaped token (three base64url parts), as MTN MoMo issues.
/// Only its shape matters: the simulator looks tokens up, it never parses them.
pub(crate) fn jwt_shaped(subject: &str) -> String {
    let header = URL_SAFE_NO_PAD.encode(br#"{"typ":"JWT","alg":"R256"}"#);
    let claims = serde_json::json!({"clientId": subject, "sessionId": Uuid::new_v4().to_string()});
    let payload = URL_SAFE_NO_PAD.encode(claims.to_string());
    let signature =
        URL_SAFE_NO_PAD.encode([Uuid::new_v4().into_bytes(), Uuid::new_v4().into_bytes()].concat());
    format!("{header}.{payload}.{signature}")
}

/// Daraja's generic error `requestId`, e.g. `1c5b-4ba8-815c-ac45c57a3db01495926`.
pub(crate) fn daraja_request_id() -> String {
    format!("{}-{}-{}-{}{}", hex(4), hex(4), hex(4), hex(12), digits(7))
}

/// Daraja `OriginatorConversationID`, same shape as the request id.
pub(crate) fn originator_conversation_id() -> String {
    daraja_request_id()
}

/// Daraja `ConversationID`, e.g. `AG_20210706_20106e9209f64bebd05b`.
pub(crate) fn conversation_id(date_yyyymmdd: &str) -> String {
    format!("AG_{date_yyyymmdd}_{}", hex(20))
}

/// STK `MerchantRequestID`, e.g. `29115-34620561-1`.
pub(crate) fn merchant_request_id() -> String {
    format!("{}-{}-1", digits(5), digits(8))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_have_the_providers_shapes() {
        let receipt = uppercase_alphanumeric(10);
        assert_eq!(receipt.len(), 10);
        assert!(
            receipt
                .bytes()
                .all(|byte| byte.is_ascii_uppercase() || byte.is_ascii_digit())
        );
        assert_eq!(token(28).len(), 28);
        assert!(token(28).chars().all(|c| c.is_ascii_alphanumeric()));
        assert_eq!(jwt_shaped("user").split('.').count(), 3);
        let request_id = daraja_request_id();
        assert_eq!(request_id.split('-').count(), 4);
        assert_eq!(request_id.len(), 4 + 1 + 4 + 1 + 4 + 1 + 12 + 7);
        assert!(merchant_request_id().ends_with("-1"));
        assert!(conversation_id("20240101").starts_with("AG_20240101_"));
        assert_ne!(digits(12), digits(12));
    }
}
