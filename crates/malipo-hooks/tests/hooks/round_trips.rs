//! sign -> verify for every scheme, event keys, and header redaction.

use crate::helpers::{NOW, URL, check, headers, provider, round_trip};
use malipo_hooks::{
    HmacAlgorithm, HookResponse, IpAllowList, ProviderDefinition, REDACTED, SignError,
    SignatureEncoding, SignatureScheme, Verdict, event_key, redact_headers,
};

const JSON_BODY: &[u8] = br#"{"id":"evt_1","status":"success","customer_reference":"c-1","internal_reference":"i-1","amount":12.5,"nested":{"b":1,"a":[true,null]}}"#;

fn custom(scheme: SignatureScheme) -> ProviderDefinition {
    ProviderDefinition {
        name: "custom".to_owned(),
        display_name: "Custom".to_owned(),
        scheme,
        event_id: vec![vec!["/id".to_owned()]],
        success_response: HookResponse::ok_empty(),
        methods: vec!["POST".to_owned()],
        published_source_ips: IpAllowList::default(),
        redact_headers: Vec::new(),
        rate_limit_per_minute: 60,
    }
}

fn every_scheme() -> Vec<SignatureScheme> {
    let mut schemes = Vec::new();
    for algorithm in [HmacAlgorithm::Sha256, HmacAlgorithm::Sha512] {
        for encoding in [SignatureEncoding::Hex, SignatureEncoding::Base64] {
            schemes.push(SignatureScheme::HmacBody {
                algorithm,
                encoding,
                header: "x-signature".to_owned(),
                prefix: Some("sha=".to_owned()),
            });
            schemes.push(SignatureScheme::CanonicalSortedJson {
                algorithm,
                encoding,
                header: "x-signature".to_owned(),
                accept_legacy_top_level_sort: false,
            });
            schemes.push(SignatureScheme::FieldsAndUrl {
                algorithm,
                encodings: vec![encoding],
                header: "x-signature".to_owned(),
                fields: vec![
                    "status".to_owned(),
                    "amount".to_owned(),
                    "absent".to_owned(),
                ],
                tolerance_seconds: 60,
            });
        }
    }
    schemes.push(SignatureScheme::StripeTimestamped {
        header: "x-signature".to_owned(),
        tolerance_seconds: 60,
    });
    schemes.push(SignatureScheme::SharedSecretHeader {
        header: "x-token".to_owned(),
    });
    schemes
}

#[test]
fn every_builtin_signed_provider_round_trips() {
    for definition in malipo_hooks::builtin_providers() {
        let expected = if definition.requires_status_query() {
            Verdict::Unsigned
        } else {
            Verdict::Verified
        };
        assert_eq!(
            round_trip(&definition, b"s3cret", JSON_BODY),
            expected,
            "{}",
            definition.name
        );
    }
}

#[test]
fn every_scheme_round_trips_and_refuses_another_secret() {
    for scheme in every_scheme() {
        let definition = custom(scheme.clone());
        assert_eq!(
            round_trip(&definition, b"s3cret", JSON_BODY),
            Verdict::Verified,
            "{scheme:?}"
        );
        let signed = definition.sign(b"s3cret", JSON_BODY, URL, NOW).unwrap();
        assert_eq!(
            check(&definition, b"other", &signed, JSON_BODY, URL, NOW),
            Verdict::BadSignature,
            "{scheme:?}"
        );
    }
}

#[test]
fn header_names_are_matched_without_regard_to_case() {
    for scheme in every_scheme() {
        let definition = custom(scheme.clone());
        let signed = definition.sign(b"s3cret", JSON_BODY, URL, NOW).unwrap();
        let shouting: Vec<(String, String)> = signed
            .into_iter()
            .map(|(name, value)| (name.to_uppercase(), value))
            .collect();
        assert_eq!(
            check(&definition, b"s3cret", &shouting, JSON_BODY, URL, NOW),
            Verdict::Verified,
            "{scheme:?}"
        );
    }
}

#[test]
fn timestamped_schemes_refuse_stale_deliveries() {
    for scheme in every_scheme() {
        let timestamped = matches!(
            scheme,
            SignatureScheme::StripeTimestamped { .. } | SignatureScheme::FieldsAndUrl { .. }
        );
        let definition = custom(scheme.clone());
        let signed = definition.sign(b"s3cret", JSON_BODY, URL, NOW).unwrap();
        let later = check(&definition, b"s3cret", &signed, JSON_BODY, URL, NOW + 61);
        let expected = if timestamped {
            Verdict::StaleTimestamp
        } else {
            Verdict::Verified
        };
        assert_eq!(later, expected, "{scheme:?}");
    }
}

#[test]
fn hmac_prefix_is_required_when_configured() {
    let definition = custom(SignatureScheme::HmacBody {
        algorithm: HmacAlgorithm::Sha256,
        encoding: SignatureEncoding::Hex,
        header: "x-signature".to_owned(),
        prefix: Some("sha256=".to_owned()),
    });
    let signed = definition.sign(b"k", b"body", URL, NOW).unwrap();
    assert!(signed[0].1.starts_with("sha256="));
    let bare = headers(&[("x-signature", signed[0].1.trim_start_matches("sha256="))]);
    assert_eq!(
        check(&definition, b"k", &bare, b"body", URL, NOW),
        Verdict::MalformedSignature
    );
}

#[test]
fn json_schemes_refuse_to_sign_non_objects() {
    let definition = provider("nowpayments");
    assert!(matches!(
        definition.sign(b"k", b"[]", URL, NOW),
        Err(SignError::Body(_))
    ));
    assert_eq!(
        definition.sign(b"", b"{}", URL, NOW),
        Err(SignError::EmptySecret)
    );
    assert_eq!(provider("mpesa").sign(b"", b"{}", URL, NOW), Ok(Vec::new()));
}

#[test]
fn shared_secret_ignores_whitespace_that_http_would_strip() {
    let definition = custom(SignatureScheme::SharedSecretHeader {
        header: "verif-hash".to_owned(),
    });
    assert_eq!(
        round_trip(&definition, b" hash\n", b"{}"),
        Verdict::Verified
    );
    let sent = headers(&[("verif-hash", " hash ")]);
    assert_eq!(
        check(&definition, b"hash", &sent, b"{}", URL, NOW),
        Verdict::Verified
    );
    assert_eq!(
        definition.sign(b" ", b"{}", URL, NOW),
        Err(SignError::EmptySecret)
    );
    assert_eq!(
        definition.sign(b"\xff", b"{}", URL, NOW),
        Err(SignError::SecretNotText)
    );
}

#[test]
fn big_integer_event_ids_keep_every_digit() {
    let stripe = provider("stripe");
    let a = event_key(&stripe, br#"{"id":9007199254740993}"#);
    let b = event_key(&stripe, br#"{"id":9007199254740992}"#);
    assert_eq!(a, "id:9007199254740993");
    assert_ne!(a, b);
}

#[test]
fn flutterwave_signs_both_headers() {
    let signed = provider("flutterwave")
        .sign(b"hash", b"{}", URL, NOW)
        .unwrap();
    let names: Vec<&str> = signed.iter().map(|(name, _)| name.as_str()).collect();
    assert_eq!(names, ["flutterwave-signature", "verif-hash"]);
}

// -------------------------------------------------------------- event keys

#[test]
fn event_keys_use_provider_ids_when_present() {
    let stk = br#"{"Body":{"stkCallback":{"MerchantRequestID":"29115-34620561-1","CheckoutRequestID":"ws_CO_191220191020363925","ResultCode":0}}}"#;
    assert_eq!(
        event_key(&provider("mpesa"), stk),
        "id:ws_CO_191220191020363925"
    );
    let result = br#"{"Result":{"ResultType":0,"ResultCode":0,"ConversationID":"AG_20211114_201018edbbf9f1582eaa"}}"#;
    assert_eq!(
        event_key(&provider("mpesa"), result),
        "id:AG_20211114_201018edbbf9f1582eaa"
    );

    let charge = br#"{"event":"charge.success","data":{"id":302961,"status":"success"}}"#;
    assert_eq!(
        event_key(&provider("paystack"), charge),
        "id:302961:charge.success"
    );
    let refund = br#"{"event":"refund.processed","data":{"refund_reference":"132013318360"}}"#;
    assert_eq!(
        event_key(&provider("paystack"), refund),
        "id:132013318360:refund.processed"
    );

    let stripe = br#"{"id":"evt_1NG8Du2eZvKYlo2CUI79vXWy","object":"event"}"#;
    assert_eq!(
        event_key(&provider("stripe"), stripe),
        "id:evt_1NG8Du2eZvKYlo2CUI79vXWy"
    );

    let ipn = br#"{"payment_id":5745459419,"payment_status":"partially_paid","actually_paid":0.5}"#;
    assert_eq!(
        event_key(&provider("nowpayments"), ipn),
        "id:5745459419:partially_paid:0.5"
    );
}

#[test]
fn event_keys_fall_back_to_the_body_hash() {
    let mpesa = provider("mpesa");
    // C2B confirmation: no configured id, hashed.
    let c2b = br#"{"TransactionType":"Pay Bill","TransID":"RKTQDM7W6S"}"#;
    let key = event_key(&mpesa, c2b);
    assert_eq!(
        key,
        format!(
            "sha256:{}",
            hex::encode(<sha2::Sha256 as sha2::Digest>::digest(c2b))
        )
    );
    // Not JSON at all.
    assert!(event_key(&mpesa, b"\xff\x00").starts_with("sha256:"));
    // An empty or null id does not count.
    let empty = br#"{"Body":{"stkCallback":{"CheckoutRequestID":""}}}"#;
    assert!(event_key(&mpesa, empty).starts_with("sha256:"));
    // MoMo: only successful transactions carry a financialTransactionId.
    let failed = br#"{"externalId":"947354","status":"FAILED","reason":"EXPIRED"}"#;
    assert!(event_key(&provider("mtn_momo"), failed).starts_with("sha256:"));
    // Identical bytes, identical key; other bytes, other key.
    assert_eq!(event_key(&mpesa, c2b), key);
    assert_ne!(event_key(&mpesa, br#"{"TransID":"X"}"#), key);
}

#[test]
fn oversized_event_ids_are_hashed() {
    let long = "x".repeat(1000);
    let body = format!(r#"{{"id":"{long}"}}"#);
    let key = event_key(&provider("stripe"), body.as_bytes());
    assert!(key.starts_with("id-sha256:"), "{key}");
    assert_eq!(key.len(), "id-sha256:".len() + 64);
}

// --------------------------------------------------------------- redaction

#[test]
fn secrets_and_signatures_are_redacted_for_audit() {
    let sent = headers(&[
        ("Content-Type", "application/json"),
        ("Authorization", "Bearer sk_live_x"),
        ("Verif-Hash", "my_secret_hash"),
        ("flutterwave-signature", "abc="),
        ("User-Agent", "Flutterwave"),
    ]);
    let redacted = redact_headers(&sent, &provider("flutterwave"));
    assert_eq!(
        redacted,
        headers(&[
            ("Content-Type", "application/json"),
            ("Authorization", REDACTED),
            ("Verif-Hash", REDACTED),
            ("flutterwave-signature", REDACTED),
            ("User-Agent", "Flutterwave"),
        ])
    );

    let mut sandbox = provider("sandbox");
    sandbox.redact_headers = vec!["x-extra-token".to_owned()];
    let sent = headers(&[
        ("malipo-sandbox-signature", "ff"),
        ("X-Extra-Token", "t"),
        ("x-request-id", "r"),
    ]);
    assert_eq!(
        redact_headers(&sent, &sandbox),
        headers(&[
            ("malipo-sandbox-signature", REDACTED),
            ("X-Extra-Token", REDACTED),
            ("x-request-id", "r"),
        ])
    );
}
