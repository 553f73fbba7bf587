//! Canonical JSON as NOWPayments signs it: the parsed body re-serialized
//! compactly with object keys sorted at every level, numbers and strings
//! printed the way JavaScript's `JSON.stringify` prints them.
//!
//! Why JavaScript: NOWPayments' reference recipe is `sortObject` +
//! `JSON.stringify`, and the PHP/Python recipes agree with it on every body
//! they send. Where the languages differ (a float with an integral value,
//! `1.0`), JavaScript prints `1`; serde_json would print `1.0`, so numbers
//! are formatted here rather than by serde_json.
//!
//! Known divergence, deliberately not emulated: JavaScript enumerates
//! integer-like keys (`"1"`, `"10"`) before other keys in numeric order,
//! and sorts by UTF-16 code units rather than code points. Provider bodies
//! have neither integer-like keys nor astral-plane keys.

use serde_json::{Map, Number, Value};
use std::collections::BTreeSet;

/// Why a body has no canonical form.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CanonicalJsonError {
    #[error("the body is not valid JSON")]
    NotJson,
    #[error("the body is JSON but not an object")]
    NotObject,
}

/// Parses `raw_body` as a JSON object. serde_json's recursion limit (128)
/// bounds the depth, so the writers below can recurse safely.
pub(crate) fn parse_object(raw_body: &[u8]) -> Result<Map<String, Value>, CanonicalJsonError> {
    match serde_json::from_slice::<Value>(raw_body) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(CanonicalJsonError::NotObject),
        Err(_) => Err(CanonicalJsonError::NotJson),
    }
}

/// The canonical form of a JSON object body: compact, keys sorted
/// recursively, JavaScript number formatting, `/` and non-ASCII unescaped.
pub fn canonical_json(raw_body: &[u8]) -> Result<String, CanonicalJsonError> {
    let object = parse_object(raw_body)?;
    let mut out = String::with_capacity(raw_body.len());
    write_object(&mut out, &object, None);
    Ok(out)
}

/// The form produced by NOWPayments' older recipe
/// `JSON.stringify(params, Object.keys(params).sort())`: the replacer array
/// keeps, at every depth, only keys that also appear at the top level, so a
/// nested object such as `fee` usually becomes `{}`. Its nested fields are
/// then not covered by the signature, which is why accepting it is opt-in.
pub fn legacy_top_level_sorted_json(raw_body: &[u8]) -> Result<String, CanonicalJsonError> {
    let object = parse_object(raw_body)?;
    let allowed: BTreeSet<&str> = object.keys().map(String::as_str).collect();
    let mut out = String::with_capacity(raw_body.len());
    write_object(&mut out, &object, Some(&allowed));
    Ok(out)
}

fn write_value(out: &mut String, value: &Value, allowed: Option<&BTreeSet<&str>>) {
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(true) => out.push_str("true"),
        Value::Bool(false) => out.push_str("false"),
        Value::Number(number) => out.push_str(&js_number(number)),
        Value::String(text) => write_string(out, text),
        Value::Array(items) => {
            out.push('[');
            for (index, item) in items.iter().enumerate() {
                if index > 0 {
                    out.push(',');
                }
                write_value(out, item, allowed);
            }
            out.push(']');
        }
        Value::Object(object) => write_object(out, object, allowed),
    }
}

fn write_object(out: &mut String, object: &Map<String, Value>, allowed: Option<&BTreeSet<&str>>) {
    // Sort explicitly: with serde_json's `preserve_order` feature (which any
    // crate in the build may switch on) `Map` keeps insertion order.
    let mut entries: Vec<(&String, &Value)> = object
        .iter()
        .filter(|(key, _)| allowed.is_none_or(|keys| keys.contains(key.as_str())))
        .collect();
    entries.sort_unstable_by_key(|(key, _)| *key);
    out.push('{');
    for (index, (key, value)) in entries.into_iter().enumerate() {
        if index > 0 {
            out.push(',');
        }
        write_string(out, key);
        out.push(':');
        write_value(out, value, allowed);
    }
    out.push('}');
}

/// serde_json escapes exactly what `JSON.stringify` escapes for valid
/// Unicode: `"`, `\`, and control characters below U+0020 (short forms for
/// `\b \f \n \r \t`, lowercase `\u00xx` otherwise). `/` and non-ASCII stay.
fn write_string(out: &mut String, text: &str) {
    match serde_json::to_string(text) {
        Ok(quoted) => out.push_str(&quoted),
        // Serializing a `str` can't fail; an empty string keeps the output
        // well formed should that ever change.
        Err(_) => out.push_str("\"\""),
    }
}

/// Formats a JSON number as JavaScript's `Number.prototype.toString` does.
/// Every JSON number is an IEEE double in JavaScript, so integers beyond
/// 2^53 lose precision exactly as they would for a JavaScript signer.
pub(crate) fn js_number(number: &Number) -> String {
    match number.as_f64() {
        Some(value) => js_double(value),
        None => number.to_string(),
    }
}

/// ECMAScript Number::toString(10) for a finite double: take the shortest
/// round-tripping digits `d1…dk` and decimal exponent `n` (value =
/// 0.d1…dk × 10^n), then choose plain or exponential notation by the
/// spec's thresholds (21 digits before, 6 zeros after the point).
pub(crate) fn js_double(value: f64) -> String {
    if !value.is_finite() {
        // JSON.stringify prints non-finite numbers as null; JSON text can't
        // produce them, but the function stays total.
        return "null".to_owned();
    }
    if value == 0.0 {
        // Both zeros print as "0".
        return "0".to_owned();
    }
    // Rust's `{:e}` without precision prints the shortest digits that
    // round-trip, e.g. "-9.853637216235617e-2".
    let scientific = format!("{value:e}");
    let (sign, unsigned) = match scientific.strip_prefix('-') {
        Some(rest) => ("-", rest),
        None => ("", scientific.as_str()),
    };
    let Some((mantissa, exponent)) = unsigned.split_once('e') else {
        return scientific;
    };
    let Ok(exponent) = exponent.parse::<i32>() else {
        return scientific;
    };
    let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    if digits.is_empty() {
        return scientific;
    }
    let digit_count = i32::try_from(digits.len()).unwrap_or(i32::MAX);
    let point = exponent + 1; // `n` in the spec

    let mut out = String::from(sign);
    if digit_count <= point && point <= 21 {
        out.push_str(&digits);
        out.extend(std::iter::repeat_n('0', (point - digit_count) as usize));
    } else if 0 < point && point <= 21 {
        let (whole, fraction) = digits.split_at(point as usize);
        out.push_str(whole);
        out.push('.');
        out.push_str(fraction);
    } else if -6 < point && point <= 0 {
        out.push_str("0.");
        out.extend(std::iter::repeat_n('0', (-point) as usize));
        out.push_str(&digits);
    } else {
        let (first, rest) = digits.split_at(1);
        out.push_str(first);
        if !rest.is_empty() {
            out.push('.');
            out.push_str(rest);
        }
        out.push('e');
        out.push(if point > 0 { '+' } else { '-' });
        out.push_str(&(point - 1).unsigned_abs().to_string());
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn doubles_print_like_javascript() {
        // Expected strings are what `String(x)` gives in Node.
        let cases: &[(f64, &str)] = &[
            (1.0, "1"),
            (-1.0, "-1"),
            (15.0, "15"),
            (14.8106, "14.8106"),
            (0.09853637216235617, "0.09853637216235617"),
            (0.1, "0.1"),
            (0.000001, "0.000001"),
            (0.0000001, "1e-7"),
            (1.5e-7, "1.5e-7"),
            (123456789.0, "123456789"),
            (1e20, "100000000000000000000"),
            (1e21, "1e+21"),
            (1.2345e22, "1.2345e+22"),
            (-0.0, "0"),
            (3999.5, "3999.5"),
            (18446744073709551615.0, "18446744073709552000"),
            (f64::NAN, "null"),
        ];
        for (value, expected) in cases {
            assert_eq!(js_double(*value), *expected, "{value:e}");
        }
    }

    #[test]
    fn keys_are_sorted_at_every_level_and_output_is_compact() {
        let body = br#"{ "b": {"z": 1, "a": [ {"y": 2.0, "x": "/\u00e9"} ]}, "a": null }"#;
        assert_eq!(
            canonical_json(body).unwrap(),
            r#"{"a":null,"b":{"a":[{"x":"/é","y":2}],"z":1}}"#
        );
    }

    #[test]
    fn legacy_form_drops_nested_keys_absent_at_top_level() {
        let body = br#"{"b":{"a":1,"c":2},"a":3}"#;
        assert_eq!(
            legacy_top_level_sorted_json(body).unwrap(),
            r#"{"a":3,"b":{"a":1}}"#
        );
    }

    #[test]
    fn non_objects_are_refused() {
        assert_eq!(canonical_json(b"[1]"), Err(CanonicalJsonError::NotObject));
        assert_eq!(canonical_json(b"{"), Err(CanonicalJsonError::NotJson));
        assert_eq!(canonical_json(b""), Err(CanonicalJsonError::NotJson));
    }

    #[test]
    fn control_characters_are_escaped_like_javascript() {
        let body = "{\"k\":\"a\\u0001\\n\\\"\\\\\"}".as_bytes();
        assert_eq!(canonical_json(body).unwrap(), r#"{"k":"a\u0001\n\"\\"}"#);
    }
}
