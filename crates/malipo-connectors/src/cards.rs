//! What the card connectors (Paystack, Flutterwave, Stripe) share: the providers a
//! `card` payment may go to, the failure codes declines map to, and the
//! redirect to a provider's hosted page.
//!
//! Malipo never sees a card number: the customer types it on the
//! provider's hosted page (the `redirect` next action); Malipo only learns
//! the outcome, from a signed webhook or from the provider's status API.

use crate::common::{credential, required};
use crate::{ConnectorAccount, ConnectorError};
use malipo_core::objects::{Customer, Failure, NextAction};

/// The card providers, in the order a merchant's accounts are preferred
/// when several take the payment's currency (see the gateway's routing).
pub const CARD_PROVIDERS: &[&str] = &["paystack", "flutterwave", "stripe"];

/// The card providers whose payments take the merchant's `payment_method`
/// token (collected with the provider's own library); the others take the
/// card on their hosted page and refuse a token.
pub const TOKEN_PROVIDERS: &[&str] = &["stripe"];

/// Whether `provider`'s card payments take a `payment_method` token.
pub fn takes_token(provider: &str) -> bool {
    TOKEN_PROVIDERS.contains(&provider)
}

/// A customer on a hosted card page has this long to finish.
pub const PAYMENT_EXPIRY_SECONDS: u64 = 3_600;

/// Words of a decline's reason (a Stripe `decline_code` or `code`, a
/// Paystack `gateway_response`) and the Malipo failure code each means;
/// the first that appears wins, otherwise `card_declined`.
pub const DECLINE_KEYWORDS: &[(&str, &str)] = &[
    ("insufficient", "insufficient_funds"),
    ("expired", "expired_card"),
    ("cvc", "incorrect_cvc"),
    ("cvv", "incorrect_cvc"),
    ("incorrect_number", "incorrect_number"),
    ("invalid card", "incorrect_number"),
    ("authentication", "authentication_failed"),
    ("3d secure", "authentication_failed"),
    ("otp", "authentication_failed"),
    ("lost", "card_declined"),
    ("stolen", "card_declined"),
    ("fraud", "card_declined"),
    ("processing_error", "processing_error"),
    ("abandoned", "cancelled_by_user"),
    ("cancel", "cancelled_by_user"),
];

/// The Malipo failure for a declined card: `reason` (a provider code or
/// text) decides the code; `message` is shown as given.
pub fn decline(reason: &str, message: &str) -> Failure {
    let lowercase = reason.to_ascii_lowercase();
    let code = DECLINE_KEYWORDS
        .iter()
        .find(|(word, _)| lowercase.contains(word))
        .map_or("card_declined", |(_, code)| *code);
    let message = message.trim();
    Failure {
        code: code.into(),
        message: if message.is_empty() {
            "The card was declined".into()
        } else {
            message.to_string()
        },
    }
}

/// The hosted page the customer goes to, and where it sends them back.
pub fn redirect(url: String, return_url: Option<&str>) -> NextAction {
    NextAction::Redirect {
        url,
        return_url: return_url.map(str::to_string),
    }
}

/// The URL of the hosted page the customer was last sent to, from the
/// payment's next action (status answers do not repeat it).
pub fn last_redirect(next_action: Option<&NextAction>) -> Option<NextAction> {
    next_action
        .filter(|action| matches!(action, NextAction::Redirect { .. }))
        .cloned()
}

/// Malipo's payment id as a provider reference that takes only letters,
/// digits, `-`, `.` and `=` (Paystack): `pay_01J…` -> `pay-01J…`.
pub fn reference_of(payment_id: &str) -> Result<String, ConnectorError> {
    let reference = payment_id.replace('_', "-");
    if reference.is_empty()
        || !reference
            .bytes()
            .all(|byte| byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'='))
    {
        return Err(ConnectorError::Rejected(format!(
            "`{payment_id}` can't be a card provider reference"
        )));
    }
    Ok(reference)
}

/// The payment id a [`reference_of`] reference stands for.
pub fn payment_id_of(reference: &str) -> Option<String> {
    reference
        .strip_prefix("pay-")
        .map(|rest| format!("pay_{rest}"))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn declines_map_to_clear_codes() {
        let code = |reason: &str| decline(reason, "").code;
        assert_eq!(code("insufficient_funds"), "insufficient_funds");
        assert_eq!(code("Insufficient Funds"), "insufficient_funds");
        assert_eq!(code("expired_card"), "expired_card");
        assert_eq!(code("incorrect_cvc"), "incorrect_cvc");
        assert_eq!(code("generic_decline"), "card_declined");
        assert_eq!(code("Declined"), "card_declined");
        assert_eq!(
            code("payment_intent_authentication_failure"),
            "authentication_failed"
        );
        assert_eq!(decline("x", " ").message, "The card was declined");
        assert_eq!(decline("x", "Do not honor").message, "Do not honor");
    }

    #[test]
    fn references_round_trip() {
        let reference = reference_of("pay_01JABCDEFGHJKMNPQRSTVWXYZ0").unwrap();
        assert_eq!(reference, "pay-01JABCDEFGHJKMNPQRSTVWXYZ0");
        assert_eq!(
            payment_id_of(&reference).as_deref(),
            Some("pay_01JABCDEFGHJKMNPQRSTVWXYZ0")
        );
        assert!(reference_of("pay_ 1").is_err());
        assert_eq!(payment_id_of("T2154954"), None);
    }
}

/// A card provider account's settings: its secret key, and the API's base
/// URL (credential `base_url`, for a simulator, else the provider's).
/// Deliberately not `Debug`: it holds the key.
#[derive(Clone)]
pub(crate) struct Settings {
    pub base_url: String,
    pub secret_key: String,
}

impl Settings {
    pub(crate) fn of(
        default_base_url: &str,
        account: &ConnectorAccount,
    ) -> Result<Settings, ConnectorError> {
        Ok(Settings {
            secret_key: required(account, "secret_key")?.to_string(),
            base_url: credential(account, "base_url")
                .unwrap_or(default_base_url)
                .trim_end_matches('/')
                .to_string(),
        })
    }
}

/// Refuses a currency `provider`'s card payments do not take.
pub(crate) fn check_currency(
    provider: &str,
    currencies: &[&str],
    currency: &str,
) -> Result<(), ConnectorError> {
    if currencies
        .iter()
        .any(|known| known.eq_ignore_ascii_case(currency))
    {
        Ok(())
    } else {
        Err(ConnectorError::Rejected(format!(
            "{provider} card payments take {}, not `{}`",
            currencies.join(", ").to_ascii_uppercase(),
            currency.to_ascii_uppercase()
        )))
    }
}

/// The customer's email, which hosted card pages need.
pub(crate) fn email<'a>(provider: &str, customer: &'a Customer) -> Result<&'a str, ConnectorError> {
    customer
        .email
        .as_deref()
        .filter(|email| !email.trim().is_empty())
        .ok_or_else(|| {
            ConnectorError::Rejected(format!("a {provider} card payment needs customer.email"))
        })
}
