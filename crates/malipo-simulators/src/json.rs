//! Reading request fields the way each provider is lenient or strict.
//!
//! Bodies are parsed into `serde_json::Value` rather than typed structs
//! because the providers accept several JSON types for one field (Daraja
//! takes `174379` or `"174379"`) and reject others (MoMo wants `"500"`,
//! never `500`); each simulator states per field which types it accepts.

use serde_json::Value;

/// A JSON object body, or `None` for malformed JSON or a non-object.
pub(crate) fn parse_object(bytes: &[u8]) -> Option<Value> {
    serde_json::from_slice::<Value>(bytes)
        .ok()
        .filter(Value::is_object)
}

/// A non-empty JSON string.
pub(crate) fn text<'a>(body: &'a Value, key: &str) -> Option<&'a str> {
    body.get(key)
        .and_then(Value::as_str)
        .filter(|text| !text.trim().is_empty())
}

/// An optional JSON string: absent and `null` are `Some(None)`, a string is
/// `Some(Some(..))`, any other type is `None` (invalid).
pub(crate) fn optional_text<'a>(body: &'a Value, key: &str) -> Option<Option<&'a str>> {
    match body.get(key) {
        None | Some(Value::Null) => Some(None),
        Some(Value::String(text)) => Some(Some(text.as_str())),
        Some(_) => None,
    }
}

/// A whole non-negative number sent either as a JSON integer or as a string
/// of ASCII digits, returned as its digits (`254708374149`, `"600984"`).
pub(crate) fn digits_either(body: &Value, key: &str) -> Option<String> {
    match body.get(key)? {
        Value::Number(number) => number.as_u64().map(|value| value.to_string()),
        Value::String(text) if is_digits(text) => Some(text.clone()),
        _ => None,
    }
}

/// A whole amount sent as a JSON number (`1`, `1.0`) or a string of digits
/// (`"1"`); fractions are rejected.
pub(crate) fn whole_amount_either(body: &Value, key: &str) -> Option<u64> {
    match body.get(key)? {
        Value::Number(number) => whole_number(number),
        Value::String(text) if is_digits(text) => text.parse().ok(),
        _ => None,
    }
}

/// A whole amount sent as a JSON number only.
pub(crate) fn whole_number(number: &serde_json::Number) -> Option<u64> {
    if let Some(value) = number.as_u64() {
        return Some(value);
    }
    // `1.0` is a whole number written as a float; exact for amounts < 2^53.
    let value = number.as_f64()?;
    (value >= 0.0 && value.fract() == 0.0 && value < 9_007_199_254_740_992.0)
        .then_some(value as u64)
}

/// Whether `text` is one or more ASCII digits.
pub(crate) fn is_digits(text: &str) -> bool {
    !text.is_empty() && text.bytes().all(|byte| byte.is_ascii_digit())
}

/// A positive decimal amount in hundredths, from its JSON text (`"500"`,
/// `"500.5"`, `"500.00"`). At most two decimals; no sign, no exponent.
pub(crate) fn decimal_hundredths(text: &str) -> Option<u128> {
    let (whole, fraction) = text.split_once('.').unwrap_or((text, ""));
    if !is_digits(whole) || fraction.len() > 2 || (!fraction.is_empty() && !is_digits(fraction)) {
        return None;
    }
    let whole: u128 = whole.parse().ok()?;
    let mut fraction_hundredths: u128 = if fraction.is_empty() {
        0
    } else {
        fraction.parse().ok()?
    };
    if fraction.len() == 1 {
        fraction_hundredths *= 10;
    }
    whole
        .checked_mul(100)?
        .checked_add(fraction_hundredths)
        .filter(|hundredths| *hundredths > 0)
}

/// A JSON number for `hundredths / 100`, for echoing provider-computed
/// values (a charge) as JSON numbers, which is how the providers send them.
/// The float only carries the value onto the wire; nothing computes with it.
pub(crate) fn hundredths_number(hundredths: u128) -> Value {
    let text = format!("{}.{:02}", hundredths / 100, hundredths % 100);
    text.parse::<f64>()
        .ok()
        .and_then(serde_json::Number::from_f64)
        .map(Value::Number)
        .unwrap_or(Value::Null)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn digits_accept_numbers_and_digit_strings_only() {
        let body = json!({"a": 174379, "b": "174379", "c": "17a", "d": -1, "e": 1.5});
        assert_eq!(digits_either(&body, "a").as_deref(), Some("174379"));
        assert_eq!(digits_either(&body, "b").as_deref(), Some("174379"));
        assert_eq!(digits_either(&body, "c"), None);
        assert_eq!(digits_either(&body, "d"), None);
        assert_eq!(digits_either(&body, "e"), None);
        assert_eq!(digits_either(&body, "missing"), None);
    }

    #[test]
    fn whole_amounts_reject_fractions() {
        let body = json!({"a": 1, "b": 1.0, "c": "10", "d": 1.5, "e": "1.5", "f": true});
        assert_eq!(whole_amount_either(&body, "a"), Some(1));
        assert_eq!(whole_amount_either(&body, "b"), Some(1));
        assert_eq!(whole_amount_either(&body, "c"), Some(10));
        assert_eq!(whole_amount_either(&body, "d"), None);
        assert_eq!(whole_amount_either(&body, "e"), None);
        assert_eq!(whole_amount_either(&body, "f"), None);
    }

    #[test]
    fn decimal_amounts_in_hundredths() {
        assert_eq!(decimal_hundredths("500"), Some(50_000));
        assert_eq!(decimal_hundredths("500.5"), Some(50_050));
        assert_eq!(decimal_hundredths("500.05"), Some(50_005));
        assert_eq!(decimal_hundredths("0"), None);
        assert_eq!(decimal_hundredths("1.234"), None);
        assert_eq!(decimal_hundredths("-1"), None);
        assert_eq!(decimal_hundredths("1e3"), None);
        assert_eq!(decimal_hundredths(""), None);
        assert_eq!(hundredths_number(1250), json!(12.5));
    }
}
