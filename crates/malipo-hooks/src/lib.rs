//! Incoming provider callbacks: how each provider proves a callback is
//! its own, and what the gateway records about it. Pure: no IO, no
//! database, no HTTP server, no clock (the caller passes `now_unix`).
//!
//! The gateway receives callbacks on `POST /v1/hooks/{provider}/{account}`.
//! `{provider}` selects a [`ProviderDefinition`] from the
//! [`ProviderRegistry`]; `{account}` selects the merchant's connector
//! account, whose secret checks the signature.
//!
//! # Signature schemes
//!
//! A provider declares one [`SignatureScheme`]; adding a provider whose
//! scheme is one of these is configuration (JSON/TOML), not code.
//!
//! | scheme | signed bytes | header | providers |
//! |---|---|---|---|
//! | `hmac_body` | the raw body | hex or base64 HMAC-SHA256/512, optional prefix | Paystack, Flutterwave `flutterwave-signature`, sandbox |
//! | `stripe_timestamped` | `"<t>.<raw body>"` | `t=…,v1=…[,v1=…]`, hex HMAC-SHA256, tolerance | Stripe |
//! | `canonical_sorted_json` | the parsed body, keys sorted at every level, compact, JavaScript number formatting | hex HMAC-SHA512 | NOWPayments |
//! | `fields_and_url` | URL + t + sorted `key value` pairs of chosen fields | `t=…,v=…`, hex or base64 HMAC-SHA256 | Relworx |
//! | `shared_secret_header` | nothing: the header *is* the secret | constant-time equality | Flutterwave `verif-hash` |
//! | `any_of` | any of several schemes | | Flutterwave |
//! | `none` | nothing | | Daraja, MTN MoMo, Airtel Money |
//!
//! Signatures are always checked over the raw body bytes except where the
//! provider signs something else (NOWPayments, Relworx). MACs are compared
//! in constant time; [`verify`] never panics, whatever the input.
//!
//! # Order of checks
//!
//! The gateway applies [`Check::ORDER`], records a verdict for each, and
//! stops at the first failure:
//!
//! 1. Provider ([`Check::Provider`]): known provider, configured account.
//! 2. Source IP ([`Check::SourceIp`]): the peer is in the account's
//!    [`IpAllowList`], if it has one. Providers' published lists are in
//!    [`ProviderDefinition::published_source_ips`].
//! 3. Rate limit ([`Check::RateLimit`]): under
//!    [`ProviderDefinition::rate_limit_per_minute`].
//! 4. Signature ([`Check::Signature`]) and 5. timestamp
//!    ([`Check::Timestamp`]): [`verify`] returns one [`Verdict`], and
//!    [`Verdict::check`] says which of the two it belongs to.
//!    [`Verdict::Unsigned`] passes both, but the gateway must confirm the
//!    callback with the provider's status API before acting on it.
//! 6. Replay ([`Check::Replay`]): an [`event_key`] seen before for this
//!    provider and account is answered with
//!    [`ProviderDefinition::success_response`] again and not processed.
//!
//! Every request is stored for audit with [`redact_headers`] applied.
//!
//! # Not here, deliberately
//!
//! The replay table, rate-limit counters, secrets storage and the status
//! queries belong to the gateway and the connectors; this crate only
//! decides and describes.

mod builtin;
mod canonical;
mod ip;
mod provider;
mod request;
mod scheme;
mod verdict;

pub use builtin::builtin_providers;
pub use canonical::{CanonicalJsonError, canonical_json, legacy_top_level_sorted_json};
pub use ip::{IP_ALLOW_LIST_ENTRIES_MAX, IpAllowList, IpAllowListError, IpNetwork};
pub use provider::{
    DefinitionError, EVENT_ID_LENGTH_MAX, HookResponse, PROVIDER_NAME_LENGTH_MAX,
    ProviderDefinition, ProviderRegistry, RATE_LIMIT_PER_MINUTE_DEFAULT, event_key,
};
pub use request::{ALWAYS_REDACTED_HEADERS, InboundRequest, REDACTED, redact_headers};
pub use scheme::{
    HmacAlgorithm, SIGNATURE_CANDIDATES_MAX, SignError, SignatureEncoding, SignatureScheme,
    fields_and_url_message, sign_canonical_json, sign_hmac_body, stripe_signature_header,
};
pub use verdict::{Check, Verdict};

/// Checks `request` with the account's `secret` under the provider's
/// scheme. See [`SignatureScheme::verify`].
pub fn verify(
    definition: &ProviderDefinition,
    secret: &[u8],
    request: &InboundRequest<'_>,
) -> Verdict {
    definition.verify(secret, request)
}

/// The headers `definition`'s provider would send with `raw_body`. See
/// [`SignatureScheme::sign`].
pub fn sign(
    definition: &ProviderDefinition,
    secret: &[u8],
    raw_body: &[u8],
    url: &str,
    now_unix: i64,
) -> Result<Vec<(String, String)>, SignError> {
    definition.sign(secret, raw_body, url, now_unix)
}
