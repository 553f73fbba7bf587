//! Object ids: a type prefix and 26 Crockford base32 characters of a UUIDv7.
//!
//! UUIDv7 starts with the creation time in milliseconds, so ids sort by
//! creation: cursor pagination orders by id and stays stable under inserts.

use uuid::Uuid;

const CROCKFORD: &[u8; 32] = b"0123456789abcdefghjkmnpqrstvwxyz";

/// The prefix of each object kind, Stripe style.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdKind {
    Merchant,
    ApiKey,
    Payment,
    Refund,
    BalanceTransaction,
    Event,
    Request,
    LedgerTransfer,
    WebhookEndpoint,
    WebhookDelivery,
    WebhookAttempt,
    InboundWebhook,
    ConnectorAccount,
    Payout,
    Customer,
    Order,
    Fill,
    ConversionQuote,
    Swap,
    Liquidity,
    DeskQuote,
    Trade,
    CustomerToken,
}

impl IdKind {
    pub fn prefix(self) -> &'static str {
        match self {
            IdKind::Merchant => "mch_",
            IdKind::ApiKey => "key_",
            IdKind::Payment => "pay_",
            IdKind::Refund => "re_",
            IdKind::BalanceTransaction => "txn_",
            IdKind::Event => "evt_",
            IdKind::Request => "req_",
            IdKind::LedgerTransfer => "tr_",
            IdKind::WebhookEndpoint => "we_",
            IdKind::WebhookDelivery => "whd_",
            IdKind::WebhookAttempt => "wha_",
            IdKind::InboundWebhook => "ih_",
            IdKind::ConnectorAccount => "ca_",
            IdKind::Payout => "po_",
            IdKind::Customer => "cus_",
            IdKind::Order => "ord_",
            IdKind::Fill => "fill_",
            IdKind::ConversionQuote => "cq_",
            IdKind::Swap => "swp_",
            IdKind::Liquidity => "liq_",
            IdKind::DeskQuote => "dq_",
            IdKind::Trade => "trd_",
            IdKind::CustomerToken => "ctok_",
        }
    }
}

/// A new, time-sortable id of the given kind.
pub fn new_id(kind: IdKind) -> String {
    let mut id = String::with_capacity(kind.prefix().len() + 26);
    id.push_str(kind.prefix());
    push_base32(&mut id, Uuid::now_v7().as_u128());
    id
}

/// Whether `text` has the shape of an id of this kind (prefix + 26 base32
/// characters). Used to reject malformed path parameters early.
pub fn looks_like(kind: IdKind, text: &str) -> bool {
    text.strip_prefix(kind.prefix())
        .is_some_and(|rest| rest.len() == 26 && rest.bytes().all(|b| CROCKFORD.contains(&b)))
}

/// The UUID an id of this kind was made from (`None` when `text` is not
/// one). Providers that want a UUID reference chosen by the caller (MTN
/// MoMo's `X-Reference-Id`) get this one: derived from the id, it is
/// known before the request is sent, so a request whose answer was lost
/// can still be looked up.
pub fn uuid_of(kind: IdKind, text: &str) -> Option<Uuid> {
    if !looks_like(kind, text) {
        return None;
    }
    let digits = &text[kind.prefix().len()..];
    let mut value: u128 = 0;
    for byte in digits.bytes() {
        let digit = CROCKFORD.iter().position(|&c| c == byte)?;
        value = value.checked_mul(32)?.checked_add(digit as u128)?;
    }
    Some(Uuid::from_u128(value))
}

fn push_base32(out: &mut String, value: u128) {
    // 26 characters * 5 bits = 130 bits >= 128: the top character holds 3 bits.
    for index in (0..26).rev() {
        let digit = ((value >> (index * 5)) & 0x1f) as usize;
        out.push(CROCKFORD[digit] as char);
    }
}

/// A random secret of `bytes` bytes, as lowercase base32 text; used for API
/// keys, operator tokens and signing secrets.
pub fn random_secret(bytes: usize) -> String {
    let mut buffer = vec![0u8; bytes];
    rand::fill(&mut buffer[..]);
    let mut out = String::with_capacity(bytes * 8 / 5 + 1);
    let mut accumulator: u32 = 0;
    let mut bits = 0;
    for byte in buffer {
        accumulator = (accumulator << 8) | u32::from(byte);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(CROCKFORD[((accumulator >> bits) & 0x1f) as usize] as char);
        }
    }
    if bits > 0 {
        out.push(CROCKFORD[((accumulator << (5 - bits)) & 0x1f) as usize] as char);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_id_gives_back_its_uuid() {
        let id = new_id(IdKind::Payment);
        let uuid = uuid_of(IdKind::Payment, &id).expect("a payment id");
        assert_eq!(uuid.get_version_num(), 7);
        let mut again = String::from("pay_");
        push_base32(&mut again, uuid.as_u128());
        assert_eq!(again, id);
        assert_eq!(uuid_of(IdKind::Payout, &id), None, "another kind");
        assert_eq!(uuid_of(IdKind::Payment, "pay_123"), None, "too short");
        // The top character holds 3 bits: anything larger overflows.
        assert_eq!(
            uuid_of(IdKind::Payment, &format!("pay_{}", "z".repeat(26))),
            None
        );
    }

    #[test]
    fn ids_have_prefix_and_sort_by_creation() {
        let first = new_id(IdKind::Payment);
        let second = new_id(IdKind::Payment);
        assert!(looks_like(IdKind::Payment, &first), "{first}");
        assert!(first < second, "{first} !< {second}");
        assert!(!looks_like(IdKind::Refund, &first));
        assert!(!looks_like(IdKind::Payment, "pay_123"));
    }

    #[test]
    fn secrets_are_random_and_long_enough() {
        let a = random_secret(24);
        let b = random_secret(24);
        assert_ne!(a, b);
        assert!(a.len() >= 38);
    }
}
