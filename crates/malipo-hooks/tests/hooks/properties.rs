//! Property tests: no input panics, and only the right secret verifies.

use crate::helpers::{NOW, URL, check};
use malipo_hooks::{Verdict, builtin_providers, canonical_json, event_key, redact_headers};
use proptest::prelude::*;
use serde_json::Value;

/// Arbitrary JSON objects: finite numbers of every kind, strings with
/// escapes and non-ASCII, nesting.
fn json_object() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Value::from),
        "\\PC{0,12}".prop_map(Value::String),
        "[\u{0}-\u{1f}\"\\\\/é€😀a-z]{0,8}".prop_map(Value::String),
    ];
    let value = leaf.prop_recursive(4, 32, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map("[a-zA-Z_]{1,6}", inner, 0..5)
                .prop_map(|map| Value::Object(map.into_iter().collect())),
        ]
    });
    prop::collection::btree_map("[a-z_]{1,8}", value, 0..6)
        .prop_map(|map| Value::Object(map.into_iter().collect()))
}

fn header_value() -> impl Strategy<Value = String> {
    prop_oneof![
        "\\PC{0,80}",
        "t=[0-9-]{0,12},v1?=[0-9a-fA-F+/=]{0,140}",
        "[0-9a-f]{0,130}",
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Any bytes, any header values, any secret, any clock: every built-in
    /// provider returns a verdict, and hashing/redaction never panic.
    #[test]
    fn arbitrary_requests_never_panic(
        body in prop::collection::vec(any::<u8>(), 0..256),
        value in header_value(),
        // At least 16 bytes: a 1-byte secret could equal a random 1-byte
        // `verif-hash` header and verify legitimately.
        secret in prop::collection::vec(any::<u8>(), 16..40),
        now in any::<i64>(),
        url in "\\PC{0,40}",
    ) {
        for definition in builtin_providers() {
            let mut sent: Vec<(String, String)> = definition
                .scheme
                .headers()
                .into_iter()
                .map(|name| (name.to_owned(), value.clone()))
                .collect();
            sent.push(("authorization".to_owned(), value.clone()));
            let verdict = check(&definition, &secret, &sent, &body, &url, now);
            // Random input is never accepted as signed.
            prop_assert_ne!(verdict, Verdict::Verified);
            let _ = event_key(&definition, &body);
            let redacted = redact_headers(&sent, &definition);
            prop_assert_eq!(redacted.len(), sent.len());
        }
    }

    /// A body signed with one secret verifies with that secret and with no
    /// other, for every signed built-in provider.
    #[test]
    fn only_the_right_secret_verifies(
        body in json_object(),
        // No spaces: a shared-secret header can't carry surrounding
        // whitespace, so " a" and "a" are the same Flutterwave secret.
        secret in "[!-~]{1,40}",
        other in "[!-~]{1,40}",
    ) {
        prop_assume!(secret != other);
        let body = serde_json::to_vec(&body).unwrap();
        for definition in builtin_providers() {
            if definition.requires_status_query() {
                continue;
            }
            let signed = definition.sign(secret.as_bytes(), &body, URL, NOW).unwrap();
            prop_assert_eq!(
                check(&definition, secret.as_bytes(), &signed, &body, URL, NOW),
                Verdict::Verified,
                "{}", definition.name
            );
            prop_assert_eq!(
                check(&definition, other.as_bytes(), &signed, &body, URL, NOW),
                Verdict::BadSignature,
                "{}", definition.name
            );
        }
    }

    /// Canonical JSON is a fixed point, and ignores formatting: a pretty
    /// printed body has the same canonical form (and NOWPayments
    /// signature) as a compact one.
    #[test]
    fn canonical_json_ignores_formatting(body in json_object()) {
        let compact = serde_json::to_vec(&body).unwrap();
        let pretty = serde_json::to_vec_pretty(&body).unwrap();
        let canonical = canonical_json(&compact).unwrap();
        prop_assert_eq!(&canonical_json(&pretty).unwrap(), &canonical);
        prop_assert_eq!(&canonical_json(canonical.as_bytes()).unwrap(), &canonical);
    }
}
