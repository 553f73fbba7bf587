//! The signature test vectors of providers.md, each with the tampering
//! cases that must fail.

use crate::helpers::{check, headers, provider};
use malipo_hooks::{
    HmacAlgorithm, SignatureEncoding, Verdict, canonical_json, fields_and_url_message,
    legacy_top_level_sorted_json, sign_canonical_json, sign_hmac_body, stripe_signature_header,
};

// ---------------------------------------------------------------- Paystack

const PAYSTACK_SECRET: &str = "sk_test_0123456789abcdef0123456789abcdef01234567";
const PAYSTACK_CHARGE_BODY: &str = r#"{"event":"charge.success","data":{"id":302961,"status":"success","reference":"qTPrJoy9Bx","amount":10000,"currency":"NGN"}}"#;
const PAYSTACK_CHARGE_SIGNATURE: &str = "bf0ab04917335673cf1ad5f189432300b7b8689a79c69193f57b0d5f4816e84a05ed43baec972c19738dfe67dd1be3592901a0949e74e52d23903ca1baedbc08";
const PAYSTACK_REFUND_BODY: &str = r#"{"event":"refund.processed","data":{"status":"processed","transaction_reference":"T2154954_412829_3be32076_6lcg3","refund_reference":"132013318360","amount":"5000","currency":"NGN"}}"#;
const PAYSTACK_REFUND_SIGNATURE: &str = "153480c4330780b4ac4392aa4f7085c47521eeb1aa7faa74d660db7f3d2b17daf3b07474625debf34e102ca75cbea4f1c6d81c20d353f957f7730ad76a555a36";

#[test]
fn paystack_vectors_sign_and_verify() {
    let paystack = provider("paystack");
    for (body, signature) in [
        (PAYSTACK_CHARGE_BODY, PAYSTACK_CHARGE_SIGNATURE),
        (PAYSTACK_REFUND_BODY, PAYSTACK_REFUND_SIGNATURE),
    ] {
        assert_eq!(
            sign_hmac_body(
                HmacAlgorithm::Sha512,
                SignatureEncoding::Hex,
                PAYSTACK_SECRET.as_bytes(),
                body.as_bytes()
            ),
            signature
        );
        let sent = headers(&[("x-paystack-signature", signature)]);
        assert_eq!(
            check(
                &paystack,
                PAYSTACK_SECRET.as_bytes(),
                &sent,
                body.as_bytes(),
                "",
                0
            ),
            Verdict::Verified
        );
    }
}

#[test]
fn paystack_header_name_is_case_insensitive_and_hex_case_is_ignored() {
    let paystack = provider("paystack");
    let upper = PAYSTACK_CHARGE_SIGNATURE.to_uppercase();
    let sent = headers(&[
        ("Content-Type", "application/json"),
        ("X-Paystack-Signature", &upper),
    ]);
    assert_eq!(
        check(
            &paystack,
            PAYSTACK_SECRET.as_bytes(),
            &sent,
            PAYSTACK_CHARGE_BODY.as_bytes(),
            "",
            0
        ),
        Verdict::Verified
    );
}

#[test]
fn paystack_tampering_is_refused() {
    let paystack = provider("paystack");
    let secret = PAYSTACK_SECRET.as_bytes();
    let body = PAYSTACK_CHARGE_BODY.as_bytes();
    let sent = headers(&[("x-paystack-signature", PAYSTACK_CHARGE_SIGNATURE)]);

    let tampered = PAYSTACK_CHARGE_BODY.replace("10000", "1000000");
    assert_eq!(
        check(&paystack, secret, &sent, tampered.as_bytes(), "", 0),
        Verdict::BadSignature
    );
    // The same JSON with other whitespace is other bytes: signatures are over raw bytes.
    let reformatted = PAYSTACK_CHARGE_BODY.replace(",\"", ", \"");
    assert_eq!(
        check(&paystack, secret, &sent, reformatted.as_bytes(), "", 0),
        Verdict::BadSignature
    );
    assert_eq!(
        check(&paystack, b"sk_test_other", &sent, body, "", 0),
        Verdict::BadSignature
    );
    // A truncated signature is well formed hex but the wrong length.
    let short = headers(&[("x-paystack-signature", &PAYSTACK_CHARGE_SIGNATURE[..64])]);
    assert_eq!(
        check(&paystack, secret, &short, body, "", 0),
        Verdict::BadSignature
    );
    let garbage = headers(&[("x-paystack-signature", "not-hex")]);
    assert_eq!(
        check(&paystack, secret, &garbage, body, "", 0),
        Verdict::MalformedSignature
    );
    assert_eq!(
        check(&paystack, secret, &[], body, "", 0),
        Verdict::MissingSignature
    );
    let blank = headers(&[("x-paystack-signature", "  ")]);
    assert_eq!(
        check(&paystack, secret, &blank, body, "", 0),
        Verdict::MissingSignature
    );
    assert_eq!(
        check(&paystack, b"", &sent, body, "", 0),
        Verdict::MissingSecret
    );
}

// ------------------------------------------------------------------ Stripe

const STRIPE_SECRET: &str = "whsec_test_secret";
const STRIPE_BODY: &str = r#"{"id":"evt_test_webhook","object":"event"}"#;
const STRIPE_HEADER: &str =
    "t=1700000000,v1=d95c6b7477fbd7e9f90b1b0ef5f9c7ac25abca5382460e0d988c2b2a5b71b990";
const STRIPE_SECRET_2: &str = "whsec_5f8e0f3c2d1b4a6978e0d1c2b3a4f5e6";
const STRIPE_BODY_2: &str = "{\n  \"id\": \"evt_1\",\n  \"object\": \"event\",\n  \"type\": \"payment_intent.succeeded\"\n}";
const STRIPE_HEADER_2: &str =
    "t=1492774577,v1=055dc4aa8d1f88e06a0c41e6d1e464c4da88b95883cca1ef0dca67dc99a3ad38";

#[test]
fn stripe_vectors_sign_and_verify() {
    let stripe = provider("stripe");
    for (secret, t, body, header) in [
        (STRIPE_SECRET, 1_700_000_000, STRIPE_BODY, STRIPE_HEADER),
        (
            STRIPE_SECRET_2,
            1_492_774_577,
            STRIPE_BODY_2,
            STRIPE_HEADER_2,
        ),
    ] {
        assert_eq!(
            stripe_signature_header(secret.as_bytes(), t, body.as_bytes()),
            header
        );
        let sent = headers(&[("Stripe-Signature", header)]);
        assert_eq!(
            check(
                &stripe,
                secret.as_bytes(),
                &sent,
                body.as_bytes(),
                "",
                t + 10
            ),
            Verdict::Verified
        );
    }
}

#[test]
fn stripe_accepts_any_matching_v1_and_ignores_v0() {
    let stripe = provider("stripe");
    let good = STRIPE_HEADER.split_once(",v1=").unwrap().1;
    let old = "0".repeat(64);
    let rolled = format!("t=1700000000,v1={old},v0=deadbeef,v1={good}");
    let sent = headers(&[("stripe-signature", &rolled)]);
    assert_eq!(
        check(
            &stripe,
            STRIPE_SECRET.as_bytes(),
            &sent,
            STRIPE_BODY.as_bytes(),
            "",
            1_700_000_000
        ),
        Verdict::Verified
    );
    // v0 alone is not a v1.
    let only_v0 = format!("t=1700000000,v0={good}");
    let sent = headers(&[("stripe-signature", &only_v0)]);
    assert_eq!(
        check(
            &stripe,
            STRIPE_SECRET.as_bytes(),
            &sent,
            STRIPE_BODY.as_bytes(),
            "",
            1_700_000_000
        ),
        Verdict::MalformedSignature
    );
}

#[test]
fn stripe_timestamp_tolerance_is_300_seconds() {
    let stripe = provider("stripe");
    let secret = STRIPE_SECRET.as_bytes();
    let body = STRIPE_BODY.as_bytes();
    let sent = headers(&[("stripe-signature", STRIPE_HEADER)]);
    let t = 1_700_000_000;
    assert_eq!(
        check(&stripe, secret, &sent, body, "", t + 300),
        Verdict::Verified
    );
    assert_eq!(
        check(&stripe, secret, &sent, body, "", t + 301),
        Verdict::StaleTimestamp
    );
    assert_eq!(
        check(&stripe, secret, &sent, body, "", t - 301),
        Verdict::StaleTimestamp
    );
    // A stale timestamp is only reported for a genuine signature.
    assert_eq!(
        check(&stripe, b"whsec_other", &sent, body, "", t + 301),
        Verdict::BadSignature
    );
}

#[test]
fn stripe_tampering_is_refused() {
    let stripe = provider("stripe");
    let secret = STRIPE_SECRET.as_bytes();
    let body = STRIPE_BODY.as_bytes();
    let now = 1_700_000_000;
    // The timestamp is signed: moving it forward breaks the signature.
    let moved = STRIPE_HEADER.replace("t=1700000000", "t=1700000100");
    let sent = headers(&[("stripe-signature", &moved)]);
    assert_eq!(
        check(&stripe, secret, &sent, body, "", now + 100),
        Verdict::BadSignature
    );
    // Re-serialized with other whitespace.
    let pretty = serde_json::to_string_pretty(
        &serde_json::from_str::<serde_json::Value>(STRIPE_BODY).unwrap(),
    )
    .unwrap();
    let sent = headers(&[("stripe-signature", STRIPE_HEADER)]);
    assert_eq!(
        check(&stripe, secret, &sent, pretty.as_bytes(), "", now),
        Verdict::BadSignature
    );
    // The secret is the whole whsec_ string.
    assert_eq!(
        check(&stripe, b"test_secret", &sent, body, "", now),
        Verdict::BadSignature
    );
    for malformed in [
        "v1=abc",
        "t=1700000000",
        "t=soon,v1=d95c",
        "t=+1700000000,v1=d95c",
        "garbage",
        ",,,",
    ] {
        let sent = headers(&[("stripe-signature", malformed)]);
        assert_eq!(
            check(&stripe, secret, &sent, body, "", now),
            Verdict::MalformedSignature,
            "{malformed}"
        );
    }
}

// ------------------------------------------------------------- NOWPayments

const NOWPAYMENTS_SECRET: &str = "test_ipn_secret_key";
const NOWPAYMENTS_BODY: &str = r#"{"payment_id":123456789,"payment_status":"finished","pay_address":"address","price_amount":1,"price_currency":"usd","pay_amount":15,"actually_paid":15,"pay_currency":"trx","order_id":"ORDER-1","order_description":null,"purchase_id":"123456789","outcome_amount":14.8106,"outcome_currency":"trx","fee":{"currency":"btc","depositFee":0.09853637216235617,"withdrawalFee":0,"serviceFee":0}}"#;
const NOWPAYMENTS_CANONICAL: &str = r#"{"actually_paid":15,"fee":{"currency":"btc","depositFee":0.09853637216235617,"serviceFee":0,"withdrawalFee":0},"order_description":null,"order_id":"ORDER-1","outcome_amount":14.8106,"outcome_currency":"trx","pay_address":"address","pay_amount":15,"pay_currency":"trx","payment_id":123456789,"payment_status":"finished","price_amount":1,"price_currency":"usd","purchase_id":"123456789"}"#;
const NOWPAYMENTS_SIGNATURE: &str = "d5b07709b1fbd544805483fdefc2c952e8a83cdd5eaa4e3612665c78f302751ed17f2b93acf5bb60d3e9003ea66cca9e92a3a8db2276fffeb047c65cf8f976e8";
const NOWPAYMENTS_LEGACY_SIGNATURE: &str = "e4fc39d736f2651851e0c14abcc97d07b2f053d681af785a443e221a03e7fb96b97be26aa4032c093412c4391b4d0cf1b668e6edb8b035decaa61e50435fce0f";

#[test]
fn nowpayments_canonical_string_and_signature_match_the_vector() {
    assert_eq!(
        canonical_json(NOWPAYMENTS_BODY.as_bytes()).unwrap(),
        NOWPAYMENTS_CANONICAL
    );
    assert_eq!(
        sign_canonical_json(
            HmacAlgorithm::Sha512,
            SignatureEncoding::Hex,
            NOWPAYMENTS_SECRET.as_bytes(),
            NOWPAYMENTS_BODY.as_bytes()
        )
        .unwrap(),
        NOWPAYMENTS_SIGNATURE
    );
    let nowpayments = provider("nowpayments");
    let sent = headers(&[("x-nowpayments-sig", NOWPAYMENTS_SIGNATURE)]);
    assert_eq!(
        check(
            &nowpayments,
            NOWPAYMENTS_SECRET.as_bytes(),
            &sent,
            NOWPAYMENTS_BODY.as_bytes(),
            "",
            0
        ),
        Verdict::Verified
    );
}

#[test]
fn nowpayments_signature_ignores_key_order_and_whitespace_but_not_values() {
    let nowpayments = provider("nowpayments");
    let secret = NOWPAYMENTS_SECRET.as_bytes();
    let sent = headers(&[("x-nowpayments-sig", NOWPAYMENTS_SIGNATURE)]);
    // Pretty-printed, keys in another order, `15` written as `15.0`: the
    // same canonical form, as the provider's JavaScript would see it.
    let reordered = NOWPAYMENTS_CANONICAL
        .replace("{\"actually_paid\":15,", "{ \"actually_paid\" : 15.0 ,\n ")
        .replace(
            "\"serviceFee\":0,\"withdrawalFee\":0",
            "\"withdrawalFee\":0e0,\"serviceFee\":0",
        );
    assert_ne!(reordered, NOWPAYMENTS_CANONICAL);
    assert_eq!(
        check(&nowpayments, secret, &sent, reordered.as_bytes(), "", 0),
        Verdict::Verified
    );

    let tampered = NOWPAYMENTS_BODY.replace("\"finished\"", "\"confirmed\"");
    assert_eq!(
        check(&nowpayments, secret, &sent, tampered.as_bytes(), "", 0),
        Verdict::BadSignature
    );
    let nested = NOWPAYMENTS_BODY.replace("\"depositFee\":0.09853637216235617", "\"depositFee\":0");
    assert_eq!(
        check(&nowpayments, secret, &sent, nested.as_bytes(), "", 0),
        Verdict::BadSignature
    );
    assert_eq!(
        check(&nowpayments, secret, &sent, b"not json", "", 0),
        Verdict::MalformedBody
    );
    assert_eq!(
        check(&nowpayments, secret, &sent, b"[1,2]", "", 0),
        Verdict::MalformedBody
    );
    assert_eq!(
        check(
            &nowpayments,
            b"other",
            &sent,
            NOWPAYMENTS_BODY.as_bytes(),
            "",
            0
        ),
        Verdict::BadSignature
    );
}

#[test]
fn nowpayments_legacy_form_is_accepted_only_when_enabled() {
    let legacy = legacy_top_level_sorted_json(NOWPAYMENTS_BODY.as_bytes()).unwrap();
    assert!(legacy.contains("\"fee\":{}"), "{legacy}");

    let mut nowpayments = provider("nowpayments");
    let secret = NOWPAYMENTS_SECRET.as_bytes();
    let body = NOWPAYMENTS_BODY.as_bytes();
    let sent = headers(&[("x-nowpayments-sig", NOWPAYMENTS_LEGACY_SIGNATURE)]);
    assert_eq!(
        check(&nowpayments, secret, &sent, body, "", 0),
        Verdict::BadSignature
    );

    if let malipo_hooks::SignatureScheme::CanonicalSortedJson {
        accept_legacy_top_level_sort,
        ..
    } = &mut nowpayments.scheme
    {
        *accept_legacy_top_level_sort = true;
    }
    assert_eq!(
        check(&nowpayments, secret, &sent, body, "", 0),
        Verdict::Verified
    );
    // The current form still verifies with the legacy switch on.
    let sent = headers(&[("x-nowpayments-sig", NOWPAYMENTS_SIGNATURE)]);
    assert_eq!(
        check(&nowpayments, secret, &sent, body, "", 0),
        Verdict::Verified
    );
}

// ----------------------------------------------------------------- Relworx

const RELWORX_KEY: &str = "relworx_webhook_key";
const RELWORX_URL: &str = "https://example.com/webhooks/relworx";
const RELWORX_T: i64 = 1_561_370_460;
const RELWORX_MESSAGE: &str = "https://example.com/webhooks/relworx1561370460customer_referenceshdfjsue789sh8jshuehuinternal_referencejshfufehkshffkseuhfskahakhuefakstatussuccess";
const RELWORX_SIGNATURE: &str = "7dcd98aabffc65a968418495363ef510388f171d6413e7f3ba6d24791ab6a2aa";
/// The webhook body of providers.md with the vector's field values; the
/// unsigned fields (amount, msisdn…) are in it but not in the signature.
const RELWORX_BODY: &str = r#"{"status":"success","message":"Request payment completed successfully.","customer_reference":"shdfjsue789sh8jshuehu","internal_reference":"jshfufehkshffkseuhfskahakhuefak","msisdn":"+256773454899","amount":500.0,"currency":"UGX","provider":"mtn_mobile_money","charge":12.5,"completed_at":"2025-04-10T15:12:58.977+03:00"}"#;

fn relworx_fields() -> Vec<String> {
    ["status", "internal_reference", "customer_reference"]
        .map(str::to_owned)
        .to_vec()
}

#[test]
fn relworx_vector_signed_string_and_hex_signature() {
    let message = fields_and_url_message(
        RELWORX_URL,
        RELWORX_T,
        &relworx_fields(),
        RELWORX_BODY.as_bytes(),
    )
    .unwrap();
    assert_eq!(message, RELWORX_MESSAGE);

    let relworx = provider("relworx");
    let header = format!("t={RELWORX_T},v={RELWORX_SIGNATURE}");
    let sent = headers(&[("Relworx-Signature", &header)]);
    assert_eq!(
        check(
            &relworx,
            RELWORX_KEY.as_bytes(),
            &sent,
            RELWORX_BODY.as_bytes(),
            RELWORX_URL,
            RELWORX_T
        ),
        Verdict::Verified
    );
    let signed = relworx
        .sign(
            RELWORX_KEY.as_bytes(),
            RELWORX_BODY.as_bytes(),
            RELWORX_URL,
            RELWORX_T,
        )
        .unwrap();
    assert_eq!(signed, headers(&[("relworx-signature", &header)]));
}

#[test]
fn relworx_base64_encoding_of_the_same_mac_is_accepted() {
    let relworx = provider("relworx");
    let bytes = hex::decode(RELWORX_SIGNATURE).unwrap();
    let base64 = {
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD.encode(bytes)
    };
    let header = format!("t={RELWORX_T},v={base64}");
    let sent = headers(&[("relworx-signature", &header)]);
    assert_eq!(
        check(
            &relworx,
            RELWORX_KEY.as_bytes(),
            &sent,
            RELWORX_BODY.as_bytes(),
            RELWORX_URL,
            RELWORX_T
        ),
        Verdict::Verified
    );
}

#[test]
fn relworx_tampering_is_refused() {
    let relworx = provider("relworx");
    let key = RELWORX_KEY.as_bytes();
    let body = RELWORX_BODY.as_bytes();
    let header = format!("t={RELWORX_T},v={RELWORX_SIGNATURE}");
    let sent = headers(&[("relworx-signature", &header)]);

    // Signed fields.
    let failed = RELWORX_BODY.replace("\"status\":\"success\"", "\"status\":\"failed\"");
    assert_eq!(
        check(&relworx, key, &sent, failed.as_bytes(), RELWORX_URL, 0),
        Verdict::BadSignature
    );
    // Unsigned fields change nothing (which is why the gateway confirms
    // amounts through the status API).
    let amount = RELWORX_BODY.replace("500.0", "5000.0");
    assert_eq!(
        check(&relworx, key, &sent, amount.as_bytes(), RELWORX_URL, 0),
        Verdict::Verified
    );
    // The URL is signed, trailing slash included.
    let slash = format!("{RELWORX_URL}/");
    assert_eq!(
        check(&relworx, key, &sent, body, &slash, 0),
        Verdict::BadSignature
    );
    // So is the timestamp.
    let moved = header.replace("t=1561370460", "t=1561370461");
    let sent_moved = headers(&[("relworx-signature", &moved)]);
    assert_eq!(
        check(&relworx, key, &sent_moved, body, RELWORX_URL, 0),
        Verdict::BadSignature
    );
    assert_eq!(
        check(&relworx, b"other_key", &sent, body, RELWORX_URL, 0),
        Verdict::BadSignature
    );
    let no_t = headers(&[("relworx-signature", &format!("v={RELWORX_SIGNATURE}"))]);
    assert_eq!(
        check(&relworx, key, &no_t, body, RELWORX_URL, 0),
        Verdict::MalformedSignature
    );
    assert_eq!(
        check(&relworx, key, &sent, b"status=success", RELWORX_URL, 0),
        Verdict::MalformedBody
    );
}

// ------------------------------------------------------------- Flutterwave

const FLUTTERWAVE_SECRET: &str = "my_secret_hash";
const FLUTTERWAVE_BODY: &str = r#"{"event":"charge.completed","data":{"id":285959875,"tx_ref":"Links-616626414629","status":"successful","amount":100,"currency":"NGN"}}"#;
const FLUTTERWAVE_SIGNATURE: &str = "Ms57A29vlXGh3MatCH8yIS5+FOnDUK9W07WSrsn+Kt4=";

#[test]
fn flutterwave_signature_vector_verifies() {
    assert_eq!(
        sign_hmac_body(
            HmacAlgorithm::Sha256,
            SignatureEncoding::Base64,
            FLUTTERWAVE_SECRET.as_bytes(),
            FLUTTERWAVE_BODY.as_bytes()
        ),
        FLUTTERWAVE_SIGNATURE
    );
    let flutterwave = provider("flutterwave");
    let secret = FLUTTERWAVE_SECRET.as_bytes();
    let body = FLUTTERWAVE_BODY.as_bytes();
    let sent = headers(&[("flutterwave-signature", FLUTTERWAVE_SIGNATURE)]);
    assert_eq!(
        check(&flutterwave, secret, &sent, body, "", 0),
        Verdict::Verified
    );
    let tampered = FLUTTERWAVE_BODY.replace("successful", "failed");
    assert_eq!(
        check(&flutterwave, secret, &sent, tampered.as_bytes(), "", 0),
        Verdict::BadSignature
    );
}

#[test]
fn flutterwave_verif_hash_is_the_secret_itself() {
    let flutterwave = provider("flutterwave");
    let secret = FLUTTERWAVE_SECRET.as_bytes();
    let body = FLUTTERWAVE_BODY.as_bytes();
    let sent = headers(&[("Verif-Hash", FLUTTERWAVE_SECRET)]);
    assert_eq!(
        check(&flutterwave, secret, &sent, body, "", 0),
        Verdict::Verified
    );
    let wrong = headers(&[("verif-hash", "my_secret_hasx")]);
    assert_eq!(
        check(&flutterwave, secret, &wrong, body, "", 0),
        Verdict::BadSignature
    );
    let prefix = headers(&[("verif-hash", "my_secret")]);
    assert_eq!(
        check(&flutterwave, secret, &prefix, body, "", 0),
        Verdict::BadSignature
    );
    assert_eq!(
        check(&flutterwave, secret, &[], body, "", 0),
        Verdict::MissingSignature
    );
    // A wrong verif-hash is not rescued by a missing signature header, nor
    // the other way round.
    let both_wrong = headers(&[("verif-hash", "nope"), ("flutterwave-signature", "AAAA")]);
    assert_eq!(
        check(&flutterwave, secret, &both_wrong, body, "", 0),
        Verdict::BadSignature
    );
}

// ------------------------------------------------------ unsigned providers

#[test]
fn daraja_momo_and_airtel_callbacks_are_unsigned() {
    let body = br#"{"Body":{"stkCallback":{"CheckoutRequestID":"ws_CO_191220191020363925","ResultCode":0}}}"#;
    for name in ["mpesa", "mtn_momo", "airtel_money"] {
        let definition = provider(name);
        assert!(definition.requires_status_query(), "{name}");
        // Whatever headers or secret: unsigned, to be confirmed by a status query.
        let sent = headers(&[("authorization", "Bearer x")]);
        assert_eq!(
            check(&definition, b"", &sent, body, "", 0),
            Verdict::Unsigned
        );
        assert_eq!(
            check(&definition, b"secret", &[], b"\xff", "", 0),
            Verdict::Unsigned
        );
    }
}
