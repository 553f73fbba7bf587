//! Fuzzing the provider callback parsers on stable Rust: property tests
//! that feed every connector's `parse_callback` (and the M-Pesa, MTN MoMo,
//! Airtel and Relworx body parsers behind them) arbitrary bytes, arbitrary
//! JSON in the providers' envelopes, and mutations of valid callbacks.
//!
//! Nothing may panic, and whatever a parser makes of a body must be what
//! the body says: a claim names the payment the body names, and claims
//! success only when the body reports success in the provider's own terms
//! (mobile money; the signed ones, Paystack, Stripe, Flutterwave and
//! NOWPayments, are held to not panicking and answering the same twice).
//!
//! A few seconds by default; `MALIPO_FUZZ_CASES=100000 cargo test -p
//! malipo-connectors --test fuzz --release` for a long run.

#![allow(clippy::unwrap_used)]

use malipo_connectors::airtel::{self, AirtelConnector};
use malipo_connectors::flutterwave::FlutterwaveConnector;
use malipo_connectors::mpesa::{self, MpesaConnector};
use malipo_connectors::mtn_momo::{self, MtnMomoConnector};
use malipo_connectors::nowpayments::NowPaymentsConnector;
use malipo_connectors::paystack::PaystackConnector;
use malipo_connectors::relworx::{self, RelworxConnector, ViaRelworx};
use malipo_connectors::sandbox::SandboxConnector;
use malipo_connectors::stripe::StripeConnector;
use malipo_connectors::{CallbackClaim, Connector, PaymentOutcome};
use proptest::prelude::*;
use proptest::test_runner::Config;
use serde_json::{Value, json};
use std::sync::{Arc, OnceLock};

/// Cases per property: `MALIPO_FUZZ_CASES`, default 1,000.
fn config() -> Config {
    let cases = std::env::var("MALIPO_FUZZ_CASES")
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(1_000);
    Config {
        cases,
        // The inputs are cheap: no need to persist regressions next to the
        // test (a failure prints its minimal input).
        failure_persistence: None,
        ..Config::default()
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Provider {
    Mpesa,
    MtnMomo,
    Airtel,
    Relworx,
}

const PROVIDERS: [Provider; 4] = [
    Provider::Mpesa,
    Provider::MtnMomo,
    Provider::Airtel,
    Provider::Relworx,
];

struct Connectors {
    sandbox: SandboxConnector,
    mpesa: MpesaConnector,
    mtn_momo: Arc<MtnMomoConnector>,
    airtel: Arc<AirtelConnector>,
    relworx: Arc<RelworxConnector>,
    mtn_via_relworx: ViaRelworx,
    airtel_via_relworx: ViaRelworx,
    paystack: PaystackConnector,
    stripe: StripeConnector,
    flutterwave: FlutterwaveConnector,
    nowpayments: NowPaymentsConnector,
}

fn connectors() -> &'static Connectors {
    static CONNECTORS: OnceLock<Connectors> = OnceLock::new();
    CONNECTORS.get_or_init(|| {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let mtn_momo = Arc::new(MtnMomoConnector::new());
        let airtel = Arc::new(AirtelConnector::new());
        let relworx = Arc::new(RelworxConnector::new());
        Connectors {
            sandbox: SandboxConnector::new(600),
            mpesa: MpesaConnector::new(),
            mtn_via_relworx: ViaRelworx::new(mtn_momo.clone(), relworx.clone()),
            airtel_via_relworx: ViaRelworx::new(airtel.clone(), relworx.clone()),
            mtn_momo,
            airtel,
            relworx,
            paystack: PaystackConnector::new(),
            stripe: StripeConnector::new(),
            flutterwave: FlutterwaveConnector::new(),
            nowpayments: NowPaymentsConnector::new(),
        }
    })
}

/// A valid callback of each provider, as documented.
fn valid(provider: Provider) -> Value {
    match provider {
        Provider::Mpesa => json!({"Body": {"stkCallback": {
            "MerchantRequestID": "29115-34620561-1",
            "CheckoutRequestID": "ws_CO_191220191020363925",
            "ResultCode": 0,
            "ResultDesc": "The service request is processed successfully.",
            "CallbackMetadata": {"Item": [
                {"Name": "Amount", "Value": 1.00},
                {"Name": "MpesaReceiptNumber", "Value": "NLJ7RT61SV"},
                {"Name": "Balance"},
                {"Name": "TransactionDate", "Value": 20191219102115u64},
                {"Name": "PhoneNumber", "Value": 254708374149u64}]}}}}),
        Provider::MtnMomo => json!({
            "financialTransactionId": "23503452", "externalId": "0f9e2d5c-6a3b-4c8e-9a1f-2b7c4d6e8f00",
            "amount": "100", "currency": "UGX",
            "payer": {"partyIdType": "MSISDN", "partyId": "256772123456"},
            "payerMessage": "", "payeeNote": "", "status": "SUCCESSFUL"}),
        Provider::Airtel => json!({"transaction": {
            "id": "pay01m89w034eek989exm4a1fa2z3", "message": "Paid UGX 5,000 to Duka",
            "status_code": "TS", "airtel_money_id": "MP210603.1234.L06941"}}),
        Provider::Relworx => json!({
            "status": "success", "message": "Request payment completed successfully.",
            "customer_reference": "pay_01m89w034eek989exm4a1fa2z3",
            "internal_reference": "d4b9a6f0e2c84a1b", "msisdn": "+256701345678",
            "amount": 500.0, "currency": "UGX", "provider": "AIRTEL_UGANDA", "charge": 0.0,
            "completed_at": "2024-06-04T12:00:00.000+03:00"}),
    }
}

/// Where each provider's body names the payment and reports the outcome,
/// as JSON pointers: (reference, outcome, Malipo's payment id if echoed).
fn pointers(provider: Provider) -> (&'static str, &'static str, Option<&'static str>) {
    match provider {
        Provider::Mpesa => (
            "/Body/stkCallback/CheckoutRequestID",
            "/Body/stkCallback/ResultCode",
            None,
        ),
        Provider::MtnMomo => ("/externalId", "/status", None),
        Provider::Airtel => ("/transaction/id", "/transaction/status_code", None),
        Provider::Relworx => (
            "/internal_reference",
            "/status",
            Some("/customer_reference"),
        ),
    }
}

/// Every leaf and object of a valid callback, as pointers: where a
/// mutation may land.
fn paths(value: &Value, prefix: String, out: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (key, child) in map {
                let path = format!("{prefix}/{key}");
                out.push(path.clone());
                paths(child, path, out);
            }
        }
        Value::Array(items) => {
            for (index, child) in items.iter().enumerate() {
                let path = format!("{prefix}/{index}");
                out.push(path.clone());
                paths(child, path, out);
            }
        }
        _ => {}
    }
}

/// A string or number as the parsers read it.
fn text(value: Option<&Value>) -> Option<String> {
    match value? {
        Value::String(text) => Some(text.trim().to_owned()),
        Value::Number(number) => Some(number.to_string()),
        _ => None,
    }
}

fn says_success(provider: Provider, outcome: &str) -> bool {
    match provider {
        Provider::Mpesa => outcome.trim() == "0",
        Provider::MtnMomo => outcome.eq_ignore_ascii_case("SUCCESSFUL"),
        Provider::Airtel => outcome.trim().eq_ignore_ascii_case("TS"),
        Provider::Relworx => {
            let outcome = outcome.trim().to_ascii_lowercase();
            outcome == "success" || outcome == "successful"
        }
    }
}

/// Every parser over `body`: none may panic; each claim must be what the
/// body says (checked when the body is JSON).
fn parse_everything(body: &[u8]) -> Result<(), TestCaseError> {
    let c = connectors();
    let _ = mpesa::parse_stk_callback(body);
    let _ = mtn_momo::parse_status(body);
    let _ = airtel::parse_callback_body(body);
    let _ = relworx::parse_webhook(body);
    let _ = c.sandbox.parse_callback(body);
    // Signed providers (verified before parsing): any body parses the same
    // way twice and never panics.
    for signed in [
        &c.paystack as &dyn Connector,
        &c.stripe,
        &c.flutterwave,
        &c.nowpayments,
    ] {
        prop_assert_eq!(signed.parse_callback(body), signed.parse_callback(body));
    }
    let json: Option<Value> = serde_json::from_slice(body).ok();
    let claims: [(Provider, &dyn Connector); 6] = [
        (Provider::Mpesa, &c.mpesa),
        (Provider::MtnMomo, c.mtn_momo.as_ref()),
        (Provider::Airtel, c.airtel.as_ref()),
        (Provider::Relworx, c.relworx.as_ref()),
        (Provider::MtnMomo, &c.mtn_via_relworx),
        (Provider::Airtel, &c.airtel_via_relworx),
    ];
    for (provider, connector) in claims {
        let claim = connector.parse_callback(body);
        prop_assert_eq!(
            &claim,
            &connector.parse_callback(body),
            "{} parses the same body the same way twice",
            connector.name()
        );
        if let (Some(claim), Some(json)) = (claim, &json) {
            check_claim(provider, &claim, json)?;
        }
    }
    Ok(())
}

fn check_claim(
    provider: Provider,
    claim: &CallbackClaim,
    body: &Value,
) -> Result<(), TestCaseError> {
    let (reference, outcome, payment_id) = pointers(provider);
    prop_assert!(!claim.provider_reference.is_empty());
    prop_assert_eq!(
        Some(claim.provider_reference.clone()),
        text(body.pointer(reference)),
        "{:?}: the claim names the payment the body names",
        provider
    );
    if let Some(payment_id) = payment_id {
        prop_assert_eq!(claim.payment_id.clone(), text(body.pointer(payment_id)));
    }
    let reported = text(body.pointer(outcome)).unwrap_or_default();
    let claimed_reference = match &claim.outcome {
        PaymentOutcome::Succeeded { provider_reference } => {
            prop_assert!(
                says_success(provider, &reported),
                "{:?} claims success for `{}`",
                provider,
                reported
            );
            provider_reference
        }
        PaymentOutcome::Failed {
            provider_reference,
            failure,
        } => {
            prop_assert!(!says_success(provider, &reported));
            prop_assert!(!failure.code.is_empty());
            provider_reference
        }
        PaymentOutcome::Processing {
            provider_reference, ..
        }
        | PaymentOutcome::RequiresAction {
            provider_reference, ..
        }
        | PaymentOutcome::Authorized {
            provider_reference, ..
        } => {
            prop_assert!(!says_success(provider, &reported));
            provider_reference
        }
    };
    prop_assert_eq!(claimed_reference.as_ref(), Some(&claim.provider_reference));
    Ok(())
}

/// The providers' own outcome words, in odd cases and spacing, as strings
/// and numbers.
fn word() -> impl Strategy<Value = Value> {
    prop_oneof![
        3 => prop::sample::select(vec![
            "0", "1", "1032", "SUCCESSFUL", "Successful", "successful ", "SUCCESS", "FAILED",
            "PENDING", "TS", "ts", " TS ", "TF", "TE", "TIP", "TA", "success", "Success",
            "failed", "pending", "", " ", "0.0", "00", "+0", "-0", "0 ", "\u{0}0",
        ])
        .prop_map(|word| Value::String(word.to_owned())),
        1 => prop::sample::select(vec![0i64, 1, -1, 1032]).prop_map(Value::from),
        1 => Just(json!(0.0)),
        1 => Just(json!(true)),
        1 => Just(Value::Null),
    ]
}

/// Any JSON value, with strings that look like the providers' own words
/// half the time.
fn json_value() -> impl Strategy<Value = Value> {
    let words = prop_oneof![
        Just("0"),
        Just("1032"),
        Just("SUCCESSFUL"),
        Just("successful"),
        Just("FAILED"),
        Just("PENDING"),
        Just("TS"),
        Just("ts "),
        Just("TF"),
        Just("TIP"),
        Just("success"),
        Just("failed"),
        Just("pending"),
        Just(""),
        Just(" "),
    ]
    .prop_map(|word| Value::String(word.to_owned()));
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Value::from),
        "\\PC{0,16}".prop_map(Value::String),
        "[\u{0}\u{202e}\u{200b}\u{feff}0-9.eE+-]{0,12}".prop_map(Value::String),
        words,
    ];
    leaf.prop_recursive(4, 24, 5, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map(field_name(), inner, 0..5)
                .prop_map(|map| Value::Object(map.into_iter().collect())),
        ]
    })
}

/// The providers' field names (so random objects reach deep paths), or
/// anything.
fn field_name() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(vec![
            "Body",
            "stkCallback",
            "CheckoutRequestID",
            "MerchantRequestID",
            "ResultCode",
            "ResultDesc",
            "CallbackMetadata",
            "Item",
            "Name",
            "Value",
            "Amount",
            "externalId",
            "status",
            "reason",
            "code",
            "message",
            "transaction",
            "id",
            "status_code",
            "airtel_money_id",
            "hash",
            "customer_reference",
            "internal_reference",
            "amount",
            "event",
            "data",
            "reference",
            "type",
            "object",
            "metadata",
            "malipo_payment",
            "last_payment_error",
        ])
        .prop_map(str::to_owned),
        "\\PC{0,8}",
    ]
}

/// One byte-level change.
#[derive(Debug, Clone)]
enum Mutation {
    Flip { at: usize, bit: u8 },
    Set { at: usize, byte: u8 },
    Insert { at: usize, bytes: Vec<u8> },
    Delete { at: usize, len: usize },
    Duplicate { at: usize, len: usize },
    Truncate { at: usize },
}

fn mutation() -> impl Strategy<Value = Mutation> {
    let at = any::<usize>();
    prop_oneof![
        (at, 0u8..8).prop_map(|(at, bit)| Mutation::Flip { at, bit }),
        (at, any::<u8>()).prop_map(|(at, byte)| Mutation::Set { at, byte }),
        (
            at,
            prop_oneof![
                prop::collection::vec(any::<u8>(), 1..8),
                prop::sample::select(vec![
                    b"\"".to_vec(),
                    b"{".to_vec(),
                    b"}".to_vec(),
                    b"[".to_vec(),
                    b",".to_vec(),
                    b"\\u0000".to_vec(),
                    b"\\ud800".to_vec(),
                    b"1e999".to_vec(),
                    b"-0".to_vec(),
                    b"\xc0\xaf".to_vec(),
                    b"\xef\xbb\xbf".to_vec(),
                ]),
            ]
        )
            .prop_map(|(at, bytes)| Mutation::Insert { at, bytes }),
        (at, 1usize..16).prop_map(|(at, len)| Mutation::Delete { at, len }),
        (at, 1usize..32).prop_map(|(at, len)| Mutation::Duplicate { at, len }),
        at.prop_map(|at| Mutation::Truncate { at }),
    ]
}

fn apply(body: &mut Vec<u8>, mutation: &Mutation) {
    let position = |at: usize, len: usize| if len == 0 { 0 } else { at % len };
    match mutation {
        Mutation::Flip { at, bit } if !body.is_empty() => {
            let at = position(*at, body.len());
            body[at] ^= 1 << bit;
        }
        Mutation::Set { at, byte } if !body.is_empty() => {
            let at = position(*at, body.len());
            body[at] = *byte;
        }
        Mutation::Insert { at, bytes } => {
            let at = position(*at, body.len() + 1);
            body.splice(at..at, bytes.iter().copied());
        }
        Mutation::Delete { at, len } if !body.is_empty() => {
            let at = position(*at, body.len());
            let end = (at + len).min(body.len());
            body.drain(at..end);
        }
        Mutation::Duplicate { at, len } if !body.is_empty() => {
            let at = position(*at, body.len());
            let end = (at + len).min(body.len());
            let copy = body[at..end].to_vec();
            body.splice(at..at, copy);
        }
        Mutation::Truncate { at } => {
            let at = position(*at, body.len() + 1);
            body.truncate(at);
        }
        _ => {}
    }
}

/// The valid callbacks parse into the claims they make: the oracle above
/// is not vacuous.
#[test]
fn valid_callbacks_make_their_claims() {
    let c = connectors();
    let connectors: [(Provider, &dyn Connector); 4] = [
        (Provider::Mpesa, &c.mpesa),
        (Provider::MtnMomo, c.mtn_momo.as_ref()),
        (Provider::Airtel, c.airtel.as_ref()),
        (Provider::Relworx, c.relworx.as_ref()),
    ];
    for (provider, connector) in connectors {
        let body = valid(provider);
        let claim = connector
            .parse_callback(&serde_json::to_vec(&body).unwrap())
            .unwrap_or_else(|| panic!("{provider:?} parses its valid callback"));
        assert!(
            matches!(claim.outcome, PaymentOutcome::Succeeded { .. }),
            "{provider:?}: {claim:?}"
        );
        check_claim(provider, &claim, &body).unwrap();
    }
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn arbitrary_bytes_never_panic(body in prop::collection::vec(any::<u8>(), 0..1_024)) {
        parse_everything(&body)?;
    }

    /// Random JSON inside each provider's envelope, and on its own.
    #[test]
    fn arbitrary_json_in_every_envelope(inner in json_value(), top in json_value()) {
        for body in [
            json!({"Body": {"stkCallback": inner.clone()}}),
            json!({"transaction": inner.clone(), "hash": top.clone()}),
            json!({"event": "charge.success", "data": inner.clone()}),
            json!({"type": "payment_intent.succeeded", "data": {"object": inner.clone()}}),
            inner.clone(),
            top.clone(),
        ] {
            parse_everything(&serde_json::to_vec(&body).unwrap())?;
        }
    }

    /// A valid callback with fields replaced by anything (another type, a
    /// trick string, nesting) or removed: claims still follow the body.
    #[test]
    fn valid_callbacks_with_fields_replaced(
        provider in prop::sample::select(PROVIDERS.to_vec()),
        picks in prop::collection::vec((any::<prop::sample::Index>(), prop::option::of(json_value())), 1..4),
    ) {
        let mut body = valid(provider);
        let mut targets = Vec::new();
        paths(&body, String::new(), &mut targets);
        for (index, replacement) in picks {
            let target = index.get(&targets).clone();
            let (parent, key) = target.rsplit_once('/').unwrap();
            let Some(parent) = body.pointer_mut(if parent.is_empty() { "" } else { parent }) else {
                continue;
            };
            match (parent, replacement) {
                (Value::Object(map), Some(value)) => {
                    map.insert(key.to_owned(), value);
                }
                (Value::Object(map), None) => {
                    map.remove(key);
                }
                (Value::Array(items), Some(value)) => {
                    if let Some(slot) = key.parse::<usize>().ok().and_then(|i| items.get_mut(i)) {
                        *slot = value;
                    }
                }
                _ => {}
            }
        }
        parse_everything(&serde_json::to_vec(&body).unwrap())?;
    }

    /// The outcome and the references of a valid callback replaced: the
    /// claim follows exactly what the body reports.
    #[test]
    fn valid_callbacks_with_outcome_and_reference_replaced(
        provider in prop::sample::select(PROVIDERS.to_vec()),
        outcome in prop_oneof![3 => word(), 1 => json_value()],
        reference in prop::option::of(prop_oneof![word(), json_value()]),
    ) {
        let mut body = valid(provider);
        let (reference_at, outcome_at, _) = pointers(provider);
        *body.pointer_mut(outcome_at).unwrap() = outcome;
        if let Some(reference) = reference {
            *body.pointer_mut(reference_at).unwrap() = reference;
        }
        parse_everything(&serde_json::to_vec(&body).unwrap())?;
    }

    /// A valid callback with byte-level damage: no panic, and whatever
    /// still parses as JSON still makes only the claims it supports.
    #[test]
    fn valid_callbacks_with_bytes_mutated(
        provider in prop::sample::select(PROVIDERS.to_vec()),
        pretty in any::<bool>(),
        mutations in prop::collection::vec(mutation(), 1..6),
    ) {
        let value = valid(provider);
        let mut body = if pretty {
            serde_json::to_vec_pretty(&value).unwrap()
        } else {
            serde_json::to_vec(&value).unwrap()
        };
        for mutation in &mutations {
            apply(&mut body, mutation);
        }
        parse_everything(&body)?;
    }
}
