//! The providers Malipo knows out of the box.
//!
//! Every header name, algorithm and encoding comes from
//! `/work/shared/providers.md` (the project's provider wire facts) unless a
//! comment names another source. Header names are written lowercase: HTTP
//! header names are case-insensitive, and HTTP/2 sends them lowercase.

use crate::ip::IpAllowList;
use crate::provider::{HookResponse, ProviderDefinition, RATE_LIMIT_PER_MINUTE_DEFAULT};
use crate::scheme::{HmacAlgorithm, SignatureEncoding, SignatureScheme};

/// Safaricom's callback sender addresses (providers.md §1: the
/// community-maintained list; Safaricom publishes none officially).
const SAFARICOM_CALLBACK_IPS: [&str; 12] = [
    "196.201.214.200",
    "196.201.214.206",
    "196.201.213.114",
    "196.201.214.207",
    "196.201.214.208",
    "196.201.213.44",
    "196.201.212.127",
    "196.201.212.138",
    "196.201.212.129",
    "196.201.212.136",
    "196.201.212.74",
    "196.201.212.69",
];

/// providers.md §4: "same in test and live".
const PAYSTACK_WEBHOOK_IPS: [&str; 3] = ["52.31.139.75", "52.49.173.169", "52.214.14.220"];

/// providers.md §7: IPN source IPs listed by NOWPayments support.
const NOWPAYMENTS_IPN_IPS: [&str; 4] = [
    "51.89.194.21",
    "51.75.77.69",
    "138.201.172.58",
    "65.21.158.36",
];

/// Not in providers.md. Snapshot of Stripe's published list
/// (https://stripe.com/files/ips/ips_webhooks.txt, referenced from
/// https://docs.stripe.com/ips#webhook-notifications; copy as mirrored in
/// May 2026). Stripe announces changes seven days ahead on its api-announce
/// list: refresh from the source before enforcing it.
const STRIPE_WEBHOOK_IPS: [&str; 15] = [
    "3.18.12.63",
    "3.69.109.8",
    "3.120.168.93",
    "3.130.192.231",
    "13.235.14.237",
    "13.235.122.149",
    "18.211.135.69",
    "35.154.171.200",
    "35.157.207.129",
    "52.15.183.38",
    "54.88.130.119",
    "54.88.130.237",
    "54.187.174.169",
    "54.187.205.235",
    "54.187.216.72",
];

/// A constant list that fails to parse would be a bug caught by the
/// `builtin_lists_parse` test; at run time it degrades to "none published"
/// rather than panicking.
fn published(entries: &[&str]) -> IpAllowList {
    IpAllowList::parse(entries).unwrap_or_default()
}

fn definition(
    name: &str,
    display_name: &str,
    scheme: SignatureScheme,
    event_id: &[&[&str]],
    success_response: HookResponse,
) -> ProviderDefinition {
    ProviderDefinition {
        name: name.to_owned(),
        display_name: display_name.to_owned(),
        scheme,
        event_id: event_id
            .iter()
            .map(|pointers| pointers.iter().map(|p| (*p).to_owned()).collect())
            .collect(),
        success_response,
        methods: vec!["POST".to_owned()],
        published_source_ips: IpAllowList::default(),
        redact_headers: Vec::new(),
        rate_limit_per_minute: RATE_LIMIT_PER_MINUTE_DEFAULT,
    }
}

/// mpesa, mtn_momo, airtel_money, relworx, paystack, flutterwave, stripe,
/// nowpayments and sandbox, in that order.
pub fn builtin_providers() -> Vec<ProviderDefinition> {
    vec![
        mpesa(),
        mtn_momo(),
        airtel_money(),
        relworx(),
        paystack(),
        flutterwave(),
        stripe(),
        nowpayments(),
        sandbox(),
    ]
}

/// Safaricom Daraja. Callbacks carry no signature and no auth header
/// (providers.md §1): unsigned, confirmed by the STK query / transaction
/// status API. Event ids: the STK callback's CheckoutRequestID, or the
/// ConversationID of an async `Result` (reversal, transaction status).
/// C2B validation and confirmation share a TransID, so they fall back to
/// the body hash instead of colliding.
fn mpesa() -> ProviderDefinition {
    ProviderDefinition {
        published_source_ips: published(&SAFARICOM_CALLBACK_IPS),
        ..definition(
            "mpesa",
            "M-Pesa (Safaricom Daraja)",
            SignatureScheme::None,
            &[
                &["/Body/stkCallback/CheckoutRequestID"],
                &["/Result/ConversationID"],
            ],
            // "Merchant reply: any HTTP 200; conventional body" (§1).
            HookResponse::ok_json(r#"{"ResultCode":0,"ResultDesc":"Accepted"}"#),
        )
    }
}

/// MTN MoMo Collection. No signature (§2); the callback body is the
/// status object. Only successful transactions have a
/// financialTransactionId; others fall back to the body hash. MTN may PUT
/// or POST ("allow both", §2).
fn mtn_momo() -> ProviderDefinition {
    ProviderDefinition {
        methods: vec!["POST".to_owned(), "PUT".to_owned()],
        ..definition(
            "mtn_momo",
            "MTN MoMo",
            SignatureScheme::None,
            &[&["/financialTransactionId", "/status"]],
            HookResponse::ok_empty(),
        )
    }
}

/// Airtel Money. Unsigned by default (§3); the optional body `hash`
/// ("callback authentication") has unconfirmed signed bytes, so it is not
/// relied on: callbacks are confirmed through the enquiry API.
fn airtel_money() -> ProviderDefinition {
    definition(
        "airtel_money",
        "Airtel Money",
        SignatureScheme::None,
        &[&["/transaction/id", "/transaction/status_code"]],
        HookResponse::ok_empty(),
    )
}

/// Relworx: `Relworx-Signature: t=<unix>,v=<sig>` over URL + t + the
/// sorted `customer_reference`, `internal_reference`, `status` pairs,
/// HMAC-SHA256 (§8). The docs say hex but their sample value is base64, so
/// both are accepted. No tolerance: the docs leave freshness to the
/// receiver ("you can have your application reject"), and whether retries
/// (10, exponential backoff) carry a fresh `t` is undocumented; replays are
/// caught by the event key instead.
fn relworx() -> ProviderDefinition {
    definition(
        "relworx",
        "Relworx",
        SignatureScheme::FieldsAndUrl {
            algorithm: HmacAlgorithm::Sha256,
            encodings: vec![SignatureEncoding::Hex, SignatureEncoding::Base64],
            header: "relworx-signature".to_owned(),
            fields: vec![
                "customer_reference".to_owned(),
                "internal_reference".to_owned(),
                "status".to_owned(),
            ],
            tolerance_seconds: 0,
        },
        &[&["/internal_reference", "/status"]],
        HookResponse::ok_empty(),
    )
}

/// Paystack: `x-paystack-signature` = hex HMAC-SHA512 of the raw body,
/// keyed with the secret key `sk_…` (§4). Charge and transfer events carry
/// `data.id`; refund events carry `data.refund_reference` instead.
fn paystack() -> ProviderDefinition {
    ProviderDefinition {
        published_source_ips: published(&PAYSTACK_WEBHOOK_IPS),
        ..definition(
            "paystack",
            "Paystack",
            SignatureScheme::HmacBody {
                algorithm: HmacAlgorithm::Sha512,
                encoding: SignatureEncoding::Hex,
                header: "x-paystack-signature".to_owned(),
                prefix: None,
            },
            &[
                &["/data/id", "/event"],
                &["/data/refund_reference", "/event"],
            ],
            HookResponse::ok_empty(),
        )
    }
}

/// Flutterwave (§5): v3 sends `verif-hash` = the dashboard's secret hash;
/// newer deliveries send `flutterwave-signature` = base64 HMAC-SHA256 of
/// the raw body keyed with the same secret hash. Either is accepted. One
/// transaction can be notified as pending then successful, hence the
/// status in the event id.
fn flutterwave() -> ProviderDefinition {
    definition(
        "flutterwave",
        "Flutterwave",
        SignatureScheme::AnyOf {
            schemes: vec![
                SignatureScheme::HmacBody {
                    algorithm: HmacAlgorithm::Sha256,
                    encoding: SignatureEncoding::Base64,
                    header: "flutterwave-signature".to_owned(),
                    prefix: None,
                },
                SignatureScheme::SharedSecretHeader {
                    header: "verif-hash".to_owned(),
                },
            ],
        },
        &[&["/data/id", "/event", "/data/status"]],
        HookResponse::ok_empty(),
    )
}

/// Stripe: `Stripe-Signature: t=…,v1=…`, HMAC-SHA256 over "t.body" keyed
/// with the whole `whsec_…` secret; the official libraries' default
/// tolerance is 300 s (§6). Event ids `evt_…` repeat on redelivery.
fn stripe() -> ProviderDefinition {
    ProviderDefinition {
        published_source_ips: published(&STRIPE_WEBHOOK_IPS),
        ..definition(
            "stripe",
            "Stripe",
            SignatureScheme::StripeTimestamped {
                header: "stripe-signature".to_owned(),
                tolerance_seconds: 300,
            },
            &[&["/id"]],
            HookResponse::ok_empty(),
        )
    }
}

/// NOWPayments: `x-nowpayments-sig` = hex HMAC-SHA512 of the recursively
/// key-sorted compact JSON, keyed with the IPN secret (§7). An IPN is sent
/// on each status change; a payment can be `partially_paid` more than once
/// with a growing `actually_paid`, hence the three-part event id.
fn nowpayments() -> ProviderDefinition {
    ProviderDefinition {
        published_source_ips: published(&NOWPAYMENTS_IPN_IPS),
        ..definition(
            "nowpayments",
            "NOWPayments",
            SignatureScheme::CanonicalSortedJson {
                algorithm: HmacAlgorithm::Sha512,
                encoding: SignatureEncoding::Hex,
                header: "x-nowpayments-sig".to_owned(),
                accept_legacy_top_level_sort: false,
            },
            &[&["/payment_id", "/payment_status", "/actually_paid"]],
            HookResponse::ok_empty(),
        )
    }
}

/// Malipo's own sandbox provider: hex HMAC-SHA256 of the raw body in
/// `malipo-sandbox-signature`, so tests and demos exercise a signed path.
/// Its simulator is expected to send an event object with a top-level
/// `id`.
fn sandbox() -> ProviderDefinition {
    definition(
        "sandbox",
        "Malipo sandbox",
        SignatureScheme::HmacBody {
            algorithm: HmacAlgorithm::Sha256,
            encoding: SignatureEncoding::Hex,
            header: "malipo-sandbox-signature".to_owned(),
            prefix: None,
        },
        &[&["/id"]],
        HookResponse::ok_empty(),
    )
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn builtin_lists_parse() {
        for entries in [
            &SAFARICOM_CALLBACK_IPS[..],
            &PAYSTACK_WEBHOOK_IPS[..],
            &NOWPAYMENTS_IPN_IPS[..],
            &STRIPE_WEBHOOK_IPS[..],
        ] {
            let list = IpAllowList::parse(entries).unwrap();
            assert_eq!(list.networks().len(), entries.len());
        }
    }

    #[test]
    fn builtin_definitions_are_valid_and_uniquely_named() {
        let definitions = builtin_providers();
        let names: Vec<&str> = definitions.iter().map(|d| d.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "mpesa",
                "mtn_momo",
                "airtel_money",
                "relworx",
                "paystack",
                "flutterwave",
                "stripe",
                "nowpayments",
                "sandbox"
            ]
        );
        for definition in &definitions {
            definition.validate().unwrap();
        }
    }
}
