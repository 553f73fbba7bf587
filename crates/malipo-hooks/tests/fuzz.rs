//! Fuzzing the signature verifiers on stable Rust: property tests over
//! every built-in provider and one configured variant of each scheme
//! option (prefixes, base64, SHA-512, the legacy NOWPayments sort, a
//! tolerance). See `tests/hooks/properties.rs` for the round trips.
//!
//! - Arbitrary requests (bytes, several headers of any case, any clock,
//!   any URL) never panic any verifier, event key, redaction, canonical
//!   form or allow-list parser.
//! - A signed request that is then mutated is never `Verified` unless the
//!   mutation left what the scheme signs unchanged (computed here from the
//!   scheme's definition): body bytes, JSON fields, the signature's digits,
//!   its timestamp, the URL, a forged header placed first.
//!
//! A few seconds by default; `MALIPO_FUZZ_CASES=100000 cargo test -p
//! malipo-hooks --test fuzz --release` for a long run.

#![allow(clippy::unwrap_used)]

use malipo_hooks::{
    HmacAlgorithm, InboundRequest, IpAllowList, ProviderDefinition, SignatureEncoding,
    SignatureScheme, Verdict, builtin_providers, canonical_json, event_key, fields_and_url_message,
    legacy_top_level_sorted_json, redact_headers,
};
use proptest::prelude::*;
use proptest::test_runner::Config;
use serde_json::{Map, Value};

const NOW: i64 = 1_700_000_000;
const URL: &str = "https://pay.example.com/v1/hooks/p/ca_01";

/// Cases per property: `MALIPO_FUZZ_CASES`, default 500 (each case checks
/// every provider).
fn config() -> Config {
    let cases = std::env::var("MALIPO_FUZZ_CASES")
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(500);
    Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    }
}

/// The built-in providers and a configured variant of each scheme option.
fn definitions() -> Vec<ProviderDefinition> {
    let base = builtin_providers()
        .into_iter()
        .find(|definition| definition.name == "sandbox")
        .unwrap();
    let configured = |name: &str, scheme: SignatureScheme| ProviderDefinition {
        name: name.to_owned(),
        scheme,
        ..base.clone()
    };
    let mut definitions = builtin_providers();
    definitions.extend([
        configured(
            "prefixed_base64",
            SignatureScheme::HmacBody {
                algorithm: HmacAlgorithm::Sha256,
                encoding: SignatureEncoding::Base64,
                header: "x-signature".into(),
                prefix: Some("sha256=".into()),
            },
        ),
        configured(
            "canonical_legacy",
            SignatureScheme::CanonicalSortedJson {
                algorithm: HmacAlgorithm::Sha256,
                encoding: SignatureEncoding::Base64,
                header: "x-sig".into(),
                accept_legacy_top_level_sort: true,
            },
        ),
        configured(
            "fields_base64_fresh",
            SignatureScheme::FieldsAndUrl {
                algorithm: HmacAlgorithm::Sha512,
                encodings: vec![SignatureEncoding::Base64],
                header: "x-fields".into(),
                fields: vec!["id".into(), "status".into(), "amount".into()],
                tolerance_seconds: 300,
            },
        ),
        configured(
            "stripe_no_tolerance",
            SignatureScheme::StripeTimestamped {
                header: "x-stripe".into(),
                tolerance_seconds: 0,
            },
        ),
    ]);
    definitions
}

fn verify(
    definition: &ProviderDefinition,
    secret: &[u8],
    headers: &[(String, String)],
    body: &[u8],
    url: &str,
    now: i64,
) -> Verdict {
    malipo_hooks::verify(
        definition,
        secret,
        &InboundRequest {
            headers,
            raw_body: body,
            url,
            now_unix: now,
        },
    )
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(key, _)| key.eq_ignore_ascii_case(name))
        .map(|(_, value)| value.as_str())
}

/// Whether `scheme` may accept `new` where it signed `old`: what it signs
/// is the same for both (from its definition, independently of `verify`).
fn same_signed_content(
    scheme: &SignatureScheme,
    headers: &[(String, String)],
    old: &[u8],
    new: &[u8],
    old_url: &str,
    new_url: &str,
) -> bool {
    match scheme {
        SignatureScheme::None => true,
        // The header is the secret: the body is not signed at all.
        SignatureScheme::SharedSecretHeader { header: name } => header(headers, name).is_some(),
        SignatureScheme::HmacBody { .. } | SignatureScheme::StripeTimestamped { .. } => old == new,
        SignatureScheme::CanonicalSortedJson {
            accept_legacy_top_level_sort,
            ..
        } => {
            let same = |form: fn(&[u8]) -> Result<String, _>| match (form(old), form(new)) {
                (Ok(a), Ok(b)) => a == b,
                _ => false,
            };
            same(canonical_json)
                || (*accept_legacy_top_level_sort && same(legacy_top_level_sorted_json))
        }
        SignatureScheme::FieldsAndUrl { fields, .. } => {
            match (
                fields_and_url_message(old_url, NOW, fields, old),
                fields_and_url_message(new_url, NOW, fields, new),
            ) {
                (Ok(a), Ok(b)) => a == b,
                _ => false,
            }
        }
        SignatureScheme::AnyOf { schemes } => schemes.iter().any(|scheme| {
            scheme
                .headers()
                .iter()
                .any(|name| header(headers, name).is_some())
                && same_signed_content(scheme, headers, old, new, old_url, new_url)
        }),
    }
}

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Value::from),
        "\\PC{0,10}".prop_map(Value::String),
        "[\u{0}\u{202e}\"\\\\a-z0-9]{0,6}".prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 16, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..3).prop_map(Value::Array),
            prop::collection::btree_map("[a-z_]{1,5}", inner, 0..4)
                .prop_map(|map| Value::Object(map.into_iter().collect())),
        ]
    })
}

/// Callback-like objects: the fields the providers sign and look up, and
/// others.
fn body() -> impl Strategy<Value = Map<String, Value>> {
    let key = prop_oneof![
        prop::sample::select(vec![
            "id",
            "status",
            "amount",
            "event",
            "data",
            "customer_reference",
            "internal_reference",
            "payment_id",
        ])
        .prop_map(str::to_owned),
        "[a-z_]{1,8}",
    ];
    prop::collection::btree_map(key, json_value(), 1..7).prop_map(|map| map.into_iter().collect())
}

/// What is done to a signed request.
#[derive(Debug, Clone)]
enum Attack {
    /// Bytes of the body changed: flip, set, insert, delete.
    Bytes(Vec<(usize, u8, u8)>),
    /// One field of the body replaced, added or removed.
    Field(String, Option<Value>),
    /// One digit of the signature changed to a different value.
    Digit(usize, u8),
    /// The signed timestamp moved.
    Timestamp(i64),
    /// The URL changed (Relworx signs it).
    Url(String),
    /// A forged signature header placed before the real one.
    ForgedFirst(String),
    /// The signature cut short.
    Truncate(usize),
}

fn attack() -> impl Strategy<Value = Attack> {
    prop_oneof![
        prop::collection::vec((any::<usize>(), 0u8..4, any::<u8>()), 1..4).prop_map(Attack::Bytes),
        (
            prop_oneof![
                "[a-z_]{1,8}",
                Just("status".to_owned()),
                Just("id".to_owned())
            ],
            prop::option::of(json_value())
        )
            .prop_map(|(key, value)| Attack::Field(key, value)),
        (any::<usize>(), 1u8..16).prop_map(|(at, by)| Attack::Digit(at, by)),
        prop_oneof![-299i64..-1, 1i64..299].prop_map(Attack::Timestamp),
        "[a-z/._]{1,6}".prop_map(Attack::Url),
        "[0-9a-zA-Z+/=,t]{0,100}".prop_map(Attack::ForgedFirst),
        (1usize..12).prop_map(Attack::Truncate),
    ]
}

const HEX: &[u8] = b"0123456789abcdef";
const BASE64: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// The span of signature digits inside a header value: after `v1=`, `v=`
/// or a `sha256=` prefix, up to the next `,`.
fn signature_span(value: &str) -> (usize, usize) {
    let start = if let Some(at) = value.find("v1=") {
        at + 3
    } else if let Some(at) = value.find(",v=") {
        at + 3
    } else if value.starts_with("sha256=") {
        7
    } else {
        0
    };
    let end = value[start..]
        .find(',')
        .map_or(value.len(), |offset| start + offset);
    (start, end)
}

/// Changes one digit of the signature to a different value of the same
/// alphabet, keeping clear of base64's last digit (its low bits are
/// padding) and the padding itself.
fn change_digit(value: &str, at: usize, by: u8) -> Option<String> {
    let (start, end) = signature_span(value);
    let digits = &value.as_bytes()[start..end];
    let data = digits.iter().take_while(|b| **b != b'=').count();
    let hex = digits.iter().all(u8::is_ascii_hexdigit);
    let (alphabet, usable): (&[u8], usize) = if hex {
        (HEX, data)
    } else {
        (BASE64, data.saturating_sub(1))
    };
    if usable == 0 {
        return None;
    }
    let index = start + at % usable;
    let old = value.as_bytes()[index];
    let position = alphabet
        .iter()
        .position(|b| *b == old.to_ascii_lowercase() || (!hex && *b == old))?;
    let new = alphabet[(position + usize::from(by)) % alphabet.len()];
    let mut bytes = value.as_bytes().to_vec();
    bytes[index] = new;
    String::from_utf8(bytes).ok()
}

fn apply_bytes(body: &mut Vec<u8>, edits: &[(usize, u8, u8)]) {
    for (at, kind, byte) in edits {
        let at = if body.is_empty() { 0 } else { at % body.len() };
        match kind {
            0 if !body.is_empty() => body[at] ^= byte | 1,
            1 if !body.is_empty() => body[at] = *byte,
            2 => body.insert(at.min(body.len()), *byte),
            _ if !body.is_empty() => {
                body.remove(at);
            }
            _ => {}
        }
    }
}

proptest! {
    #![proptest_config(config())]

    /// Nothing panics, whatever arrives.
    #[test]
    fn arbitrary_requests_never_panic(
        body in prop::collection::vec(any::<u8>(), 0..512),
        headers in prop::collection::vec(("[a-zA-Z-]{1,24}", "\\PC{0,120}"), 0..6),
        values in prop::collection::vec("t=[0-9-]{0,20},v1?=[0-9a-zA-Z+/=]{0,140}|[0-9a-fA-F]{0,140}|\\PC{0,40}", 1..3),
        secret in prop::collection::vec(any::<u8>(), 0..48),
        now in any::<i64>(),
        url in "\\PC{0,60}",
        networks in prop::collection::vec("[0-9a-f:./]{0,45}|\\PC{0,20}", 0..4),
    ) {
        let _ = canonical_json(&body);
        let _ = legacy_top_level_sorted_json(&body);
        let _ = IpAllowList::parse(networks.iter().map(String::as_str));
        let _ = fields_and_url_message(&url, now, &["status".to_owned()], &body);
        for definition in definitions() {
            let mut sent: Vec<(String, String)> = headers.clone();
            // The scheme's own headers, several times, in odd cases.
            for name in definition.scheme.headers() {
                for value in &values {
                    sent.push((name.to_ascii_uppercase(), value.clone()));
                }
            }
            let verdict = verify(&definition, &secret, &sent, &body, &url, now);
            if secret.len() >= 16 {
                prop_assert_ne!(verdict, Verdict::Verified, "{}", definition.name);
            }
            let _ = event_key(&definition, &body);
            prop_assert_eq!(redact_headers(&sent, &definition).len(), sent.len());
        }
    }

    /// A mutated signed request is never verified unless what the scheme
    /// signs is unchanged.
    #[test]
    fn mutated_signed_requests_are_refused(
        object in body(),
        secret in "[!-~]{16,40}",
        attacks in prop::collection::vec(attack(), 1..3),
        pretty in any::<bool>(),
    ) {
        let value = Value::Object(object);
        let original = if pretty {
            serde_json::to_vec_pretty(&value).unwrap()
        } else {
            serde_json::to_vec(&value).unwrap()
        };
        for definition in definitions() {
            if definition.requires_status_query() {
                continue;
            }
            let signed = definition.sign(secret.as_bytes(), &original, URL, NOW).unwrap();
            prop_assert_eq!(
                verify(&definition, secret.as_bytes(), &signed, &original, URL, NOW),
                Verdict::Verified,
                "{} verifies what it signed", &definition.name
            );
            // Each signature header on its own (Flutterwave sends one of two).
            for sent in &signed {
                attack_one(&definition, secret.as_bytes(), sent, &original, &attacks)?;
            }
        }
    }
}

/// Applies `attacks` to a request carrying the one signature header
/// `sent`, and checks the verdict against what changed.
fn attack_one(
    definition: &ProviderDefinition,
    secret: &[u8],
    sent: &(String, String),
    original: &[u8],
    attacks: &[Attack],
) -> Result<(), TestCaseError> {
    let mut headers = vec![sent.clone()];
    prop_assert_eq!(
        verify(definition, secret, &headers, original, URL, NOW),
        Verdict::Verified,
        "{} verifies {} alone",
        &definition.name,
        &sent.0
    );
    let mut body = original.to_vec();
    let mut url = URL.to_owned();
    // Whether an attack changed the signature header's meaning.
    let mut header_forged = false;
    for attack in attacks {
        match attack {
            Attack::Bytes(edits) => apply_bytes(&mut body, edits),
            Attack::Field(key, replacement) => {
                if let Ok(Value::Object(mut map)) = serde_json::from_slice::<Value>(&body) {
                    match replacement {
                        Some(value) => map.insert(key.clone(), value.clone()),
                        None => map.remove(key),
                    };
                    body = serde_json::to_vec(&Value::Object(map)).unwrap();
                }
            }
            Attack::Digit(at, by) => {
                let value = &mut headers[0].1;
                if let Some(changed) = change_digit(value, *at, *by)
                    && changed != *value
                {
                    *value = changed;
                    header_forged = true;
                }
            }
            Attack::Timestamp(delta) => {
                let value = &mut headers[0].1;
                if let Some(rest) = value.strip_prefix(&format!("t={NOW},")) {
                    *value = format!("t={},{rest}", NOW + delta);
                    header_forged = true;
                }
            }
            Attack::Url(suffix) => url.push_str(suffix),
            Attack::ForgedFirst(forged) => {
                let (name, value) = headers[0].clone();
                if *forged != value {
                    headers.insert(0, (name, forged.clone()));
                    header_forged = true;
                }
            }
            Attack::Truncate(cut) => {
                let value = &mut headers[0].1;
                let keep = value.len().saturating_sub(*cut);
                // Base64 padding is optional: cutting only it changes nothing.
                if value[keep..].bytes().any(|b| b != b'=') {
                    header_forged = true;
                }
                value.truncate(keep);
            }
        }
    }
    // Two attacks can undo each other (a digit moved by 6 and then by 10
    // is the digit sent): a header that ends as it was sent is not forged.
    let header_forged = header_forged && headers != [sent.clone()];
    if verify(definition, secret, &headers, &body, &url, NOW) == Verdict::Verified {
        prop_assert!(
            !header_forged,
            "{}: a forged or damaged signature verified: {:?}",
            &definition.name,
            headers
        );
        prop_assert!(
            same_signed_content(&definition.scheme, &headers, original, &body, URL, &url),
            "{}: verified a body whose signed content changed:\n{}\n->\n{}",
            &definition.name,
            String::from_utf8_lossy(original),
            String::from_utf8_lossy(&body)
        );
    }
    Ok(())
}

/// The valid cases the mutation property starts from verify, and the
/// oracle tells a changed signed field from an unsigned one.
#[test]
fn oracle_tells_signed_from_unsigned_fields() {
    let relworx = builtin_providers()
        .into_iter()
        .find(|definition| definition.name == "relworx")
        .unwrap();
    let old = br#"{"status":"success","internal_reference":"r1","customer_reference":"pay_1","amount":5}"#;
    let unsigned_change = br#"{"status":"success","internal_reference":"r1","customer_reference":"pay_1","amount":9}"#;
    let signed_change =
        br#"{"status":"failed","internal_reference":"r1","customer_reference":"pay_1","amount":5}"#;
    let headers = relworx.sign(b"0123456789abcdef", old, URL, NOW).unwrap();
    assert!(same_signed_content(
        &relworx.scheme,
        &headers,
        old,
        unsigned_change,
        URL,
        URL
    ));
    assert!(!same_signed_content(
        &relworx.scheme,
        &headers,
        old,
        signed_change,
        URL,
        URL
    ));
    assert_eq!(
        verify(
            &relworx,
            b"0123456789abcdef",
            &headers,
            signed_change,
            URL,
            NOW
        ),
        Verdict::BadSignature
    );
    assert_eq!(
        verify(
            &relworx,
            b"0123456789abcdef",
            &headers,
            unsigned_change,
            URL,
            NOW
        ),
        Verdict::Verified,
        "Relworx signs three fields only: the amount is Malipo's own"
    );
    for (value, at) in [("t=1,v1=abcd", 0), ("t=1,v=QUJD", 1), ("00ff", 0)] {
        let changed = change_digit(value, at, 1).unwrap();
        assert_ne!(changed, value);
        assert_eq!(changed.len(), value.len());
    }
}

/// The case CI found: two digit changes that cancel out leave the header
/// as it was signed, which verifies and is no forgery; a single one is.
#[test]
fn digit_changes_that_cancel_out_are_no_forgery() {
    let original = br#"{"id":null}"#;
    let secret = b"AAA0!00aAAaa!0aa";
    for definition in definitions() {
        if definition.requires_status_query() {
            continue;
        }
        let signed = definition.sign(secret, original, URL, NOW).unwrap();
        for sent in &signed {
            for attacks in [
                vec![
                    Attack::Digit(15_487_678_470_027_980_118, 6),
                    Attack::Digit(4_879_752_484_386_807_958, 10),
                ],
                vec![Attack::Digit(15_487_678_470_027_980_118, 6)],
            ] {
                attack_one(&definition, secret, sent, original, &attacks)
                    .unwrap_or_else(|error| panic!("{}: {error}", definition.name));
            }
        }
    }
}
