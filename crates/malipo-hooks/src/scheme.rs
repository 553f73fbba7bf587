//! Signature schemes: how a provider authenticates its callbacks, how to
//! check one ([`SignatureScheme::verify`]) and how to produce one
//! ([`SignatureScheme::sign`], for simulators and tests).

use crate::canonical::{self, CanonicalJsonError};
use crate::request::InboundRequest;
use crate::verdict::Verdict;
use base64::Engine as _;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use base64::engine::{DecodePaddingMode, general_purpose};
use hmac::{Hmac, KeyInit, Mac};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Sha256, Sha512};
use subtle::ConstantTimeEq;

/// Standard-alphabet base64 that accepts a signature with or without its
/// `=` padding; what matters is the bytes, and senders differ.
const BASE64_LENIENT: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// At most this many candidate signatures are compared per header. Stripe
/// sends one `v1` per active secret (two while rolling); the cap keeps a
/// hostile header from costing more than a handful of comparisons.
pub const SIGNATURE_CANDIDATES_MAX: usize = 8;

/// The HMAC hash function.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HmacAlgorithm {
    Sha256,
    Sha512,
}

/// How the MAC bytes are written in the header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SignatureEncoding {
    /// Hex; produced lowercase, accepted in either case.
    Hex,
    /// Standard base64; produced padded, accepted with or without padding.
    Base64,
}

/// How a provider authenticates its callbacks. Serializable, so a provider
/// whose scheme is one of these is configuration, not code; in JSON the
/// variant is named by `"kind"`:
///
/// ```json
/// {"kind": "hmac_body", "algorithm": "sha512", "encoding": "hex",
///  "header": "x-paystack-signature"}
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum SignatureScheme {
    /// `header` = encode(HMAC(secret, raw body)), optionally preceded by
    /// `prefix` (e.g. `sha256=`). Paystack, Flutterwave's newer
    /// `flutterwave-signature`, the Malipo sandbox.
    HmacBody {
        algorithm: HmacAlgorithm,
        encoding: SignatureEncoding,
        header: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        prefix: Option<String>,
    },
    /// Stripe: `header` = `t=<unix>,v1=<hex>[,v1=<hex>…]`, each v1 being
    /// `hex(HMAC-SHA256(secret, "<t>.<raw body>"))`. Valid when any `v1`
    /// matches (several appear while a secret is rolled) and `t` is within
    /// `tolerance_seconds` of now in either direction (0 disables the
    /// check). `v0` and unknown elements are ignored. The secret is the
    /// whole `whsec_…` string.
    StripeTimestamped {
        header: String,
        tolerance_seconds: u64,
    },
    /// NOWPayments: `header` = encode(HMAC(secret, canonical JSON)), the
    /// canonical JSON being the parsed body re-serialized compactly with
    /// keys sorted at every level (see [`crate::canonical_json`]).
    /// `accept_legacy_top_level_sort` also accepts the older recipe that
    /// sorted only top-level keys and emptied nested objects; off by
    /// default because nested fields (`fee`) are then unsigned.
    CanonicalSortedJson {
        algorithm: HmacAlgorithm,
        encoding: SignatureEncoding,
        header: String,
        #[serde(default)]
        accept_legacy_top_level_sort: bool,
    },
    /// Relworx: `header` = `t=<unix>,v=<signature>`, the signature being
    /// HMAC(secret, url + t + key1 + value1 + key2 + value2 …) over only
    /// `fields`, sorted by key, without delimiters; a field absent from the
    /// body is skipped. Any of `encodings` is accepted (the docs say hex
    /// but their sample looks like base64). `tolerance_seconds` as for
    /// Stripe (0 disables).
    FieldsAndUrl {
        algorithm: HmacAlgorithm,
        encodings: Vec<SignatureEncoding>,
        header: String,
        fields: Vec<String>,
        tolerance_seconds: u64,
    },
    /// Flutterwave v3 `verif-hash`: the header carries the shared secret
    /// itself, compared in constant time.
    SharedSecretHeader { header: String },
    /// Valid when any of `schemes` verifies, for providers that send one
    /// of several headers (Flutterwave: `verif-hash` or
    /// `flutterwave-signature`). When none verifies, the verdict is the
    /// first that is not [`Verdict::MissingSignature`] (the header the
    /// provider did send), else `MissingSignature`.
    AnyOf { schemes: Vec<SignatureScheme> },
    /// The provider does not sign callbacks (Daraja, MTN MoMo, Airtel):
    /// every callback is [`Verdict::Unsigned`] and must be confirmed by
    /// querying the provider's status API.
    None,
}

/// Why [`SignatureScheme::sign`] could not produce a signature.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignError {
    #[error("an empty secret signs nothing")]
    EmptySecret,
    #[error("a shared-secret header needs a secret that is valid UTF-8 text")]
    SecretNotText,
    #[error("this scheme signs a JSON object: {0}")]
    Body(#[from] CanonicalJsonError),
}

impl SignatureScheme {
    /// True for [`SignatureScheme::None`]: callbacks carry no proof and
    /// the gateway must query the provider's status API before acting.
    pub fn requires_status_query(&self) -> bool {
        matches!(self, SignatureScheme::None)
    }

    /// The header names this scheme reads, lowercase as configured.
    pub fn headers(&self) -> Vec<&str> {
        match self {
            SignatureScheme::HmacBody { header, .. }
            | SignatureScheme::StripeTimestamped { header, .. }
            | SignatureScheme::CanonicalSortedJson { header, .. }
            | SignatureScheme::FieldsAndUrl { header, .. }
            | SignatureScheme::SharedSecretHeader { header } => vec![header.as_str()],
            SignatureScheme::AnyOf { schemes } => {
                schemes.iter().flat_map(SignatureScheme::headers).collect()
            }
            SignatureScheme::None => Vec::new(),
        }
    }

    /// Checks `request` against the account's `secret`. Never panics, and
    /// compares MACs in constant time. Checks run in this order: scheme
    /// signed at all, secret present, header present, header well formed,
    /// body parseable (JSON schemes), signature, timestamp.
    pub fn verify(&self, secret: &[u8], request: &InboundRequest<'_>) -> Verdict {
        if let SignatureScheme::None = self {
            return Verdict::Unsigned;
        }
        if secret.is_empty() {
            return Verdict::MissingSecret;
        }
        match self {
            SignatureScheme::HmacBody {
                algorithm,
                encoding,
                header,
                prefix,
            } => verify_hmac_body(
                *algorithm,
                *encoding,
                header,
                prefix.as_deref(),
                secret,
                request,
            ),
            SignatureScheme::StripeTimestamped {
                header,
                tolerance_seconds,
            } => verify_stripe(header, *tolerance_seconds, secret, request),
            SignatureScheme::CanonicalSortedJson {
                algorithm,
                encoding,
                header,
                accept_legacy_top_level_sort,
            } => verify_canonical_json(
                *algorithm,
                *encoding,
                header,
                *accept_legacy_top_level_sort,
                secret,
                request,
            ),
            SignatureScheme::FieldsAndUrl {
                algorithm,
                encodings,
                header,
                fields,
                tolerance_seconds,
            } => verify_fields_and_url(
                *algorithm,
                encodings,
                header,
                fields,
                *tolerance_seconds,
                secret,
                request,
            ),
            SignatureScheme::SharedSecretHeader { header } => {
                verify_shared_secret(header, secret, request)
            }
            SignatureScheme::AnyOf { schemes } => verify_any_of(schemes, secret, request),
            SignatureScheme::None => Verdict::Unsigned,
        }
    }

    /// The headers a provider would send with `raw_body`, signed with
    /// `secret` at time `now_unix` for delivery to `url`. [`AnyOf`] signs
    /// with every alternative; [`SignatureScheme::None`] returns no
    /// headers.
    ///
    /// [`AnyOf`]: SignatureScheme::AnyOf
    pub fn sign(
        &self,
        secret: &[u8],
        raw_body: &[u8],
        url: &str,
        now_unix: i64,
    ) -> Result<Vec<(String, String)>, SignError> {
        if let SignatureScheme::None = self {
            return Ok(Vec::new());
        }
        if secret.is_empty() {
            return Err(SignError::EmptySecret);
        }
        let one = |header: &str, value: String| Ok(vec![(header.to_owned(), value)]);
        match self {
            SignatureScheme::HmacBody {
                algorithm,
                encoding,
                header,
                prefix,
            } => {
                let signature = sign_hmac_body(*algorithm, *encoding, secret, raw_body);
                one(
                    header,
                    format!("{}{signature}", prefix.as_deref().unwrap_or("")),
                )
            }
            SignatureScheme::StripeTimestamped { header, .. } => {
                one(header, stripe_signature_header(secret, now_unix, raw_body))
            }
            SignatureScheme::CanonicalSortedJson {
                algorithm,
                encoding,
                header,
                ..
            } => one(
                header,
                sign_canonical_json(*algorithm, *encoding, secret, raw_body)?,
            ),
            SignatureScheme::FieldsAndUrl {
                algorithm,
                encodings,
                header,
                fields,
                ..
            } => {
                let message = fields_and_url_message(url, now_unix, fields, raw_body)?;
                let encoding = encodings.first().copied().unwrap_or(SignatureEncoding::Hex);
                let signature = encode(encoding, &mac(*algorithm, secret, &[message.as_bytes()]));
                one(header, format!("t={now_unix},v={signature}"))
            }
            SignatureScheme::SharedSecretHeader { header } => {
                let secret = std::str::from_utf8(secret.trim_ascii())
                    .map_err(|_| SignError::SecretNotText)?;
                if secret.is_empty() {
                    return Err(SignError::EmptySecret);
                }
                one(header, secret.to_owned())
            }
            SignatureScheme::AnyOf { schemes } => {
                let mut headers = Vec::new();
                for scheme in schemes {
                    headers.extend(scheme.sign(secret, raw_body, url, now_unix)?);
                }
                Ok(headers)
            }
            SignatureScheme::None => Ok(Vec::new()),
        }
    }
}

/// encode(HMAC(secret, raw_body)): the header value of an
/// [`SignatureScheme::HmacBody`] scheme, without its prefix.
pub fn sign_hmac_body(
    algorithm: HmacAlgorithm,
    encoding: SignatureEncoding,
    secret: &[u8],
    raw_body: &[u8],
) -> String {
    encode(encoding, &mac(algorithm, secret, &[raw_body]))
}

/// The `Stripe-Signature` header for `raw_body` at `timestamp`:
/// `t=<timestamp>,v1=<hex HMAC-SHA256(secret, "<timestamp>.<body>")>`.
pub fn stripe_signature_header(secret: &[u8], timestamp: i64, raw_body: &[u8]) -> String {
    let t = timestamp.to_string();
    let tag = mac(
        HmacAlgorithm::Sha256,
        secret,
        &[t.as_bytes(), b".", raw_body],
    );
    format!("t={t},v1={}", hex::encode(tag))
}

/// encode(HMAC(secret, canonical JSON of `raw_body`)): NOWPayments'
/// `x-nowpayments-sig`.
pub fn sign_canonical_json(
    algorithm: HmacAlgorithm,
    encoding: SignatureEncoding,
    secret: &[u8],
    raw_body: &[u8],
) -> Result<String, SignError> {
    let message = canonical::canonical_json(raw_body)?;
    Ok(encode(
        encoding,
        &mac(algorithm, secret, &[message.as_bytes()]),
    ))
}

/// The string a [`SignatureScheme::FieldsAndUrl`] scheme signs:
/// `url + timestamp + (key + value for each of fields present, sorted by
/// key)`. Values follow PHP's `strval`, the docs' reference: strings as
/// they are, `true` as `1`, `false` and `null` as empty; integers exactly,
/// fractions in shortest form (`500.0` as `500`), nested values as compact
/// JSON. (The fields Relworx signs are all strings.)
pub fn fields_and_url_message(
    url: &str,
    timestamp: i64,
    fields: &[String],
    raw_body: &[u8],
) -> Result<String, CanonicalJsonError> {
    let object = canonical::parse_object(raw_body)?;
    let mut keys: Vec<&str> = fields.iter().map(String::as_str).collect();
    keys.sort_unstable();
    keys.dedup();
    let mut message = format!("{url}{timestamp}");
    for key in keys {
        let Some(value) = object.get(key) else {
            continue;
        };
        message.push_str(key);
        match value {
            Value::String(text) => message.push_str(text),
            Value::Number(number) if !number.is_f64() => message.push_str(&number.to_string()),
            Value::Number(number) => message.push_str(&canonical::js_number(number)),
            Value::Bool(true) => message.push('1'),
            Value::Bool(false) | Value::Null => {}
            nested => message.push_str(&nested.to_string()),
        }
    }
    Ok(message)
}

/// HMAC over the concatenation of `parts`. Any key length is valid for
/// HMAC, so `new_from_slice` can't fail; an empty tag (which matches no
/// signature) keeps this total all the same.
fn mac(algorithm: HmacAlgorithm, secret: &[u8], parts: &[&[u8]]) -> Vec<u8> {
    match algorithm {
        HmacAlgorithm::Sha256 => match <Hmac<Sha256> as KeyInit>::new_from_slice(secret) {
            Ok(mut mac) => {
                parts.iter().for_each(|part| mac.update(part));
                mac.finalize().into_bytes().to_vec()
            }
            Err(_) => Vec::new(),
        },
        HmacAlgorithm::Sha512 => match <Hmac<Sha512> as KeyInit>::new_from_slice(secret) {
            Ok(mut mac) => {
                parts.iter().for_each(|part| mac.update(part));
                mac.finalize().into_bytes().to_vec()
            }
            Err(_) => Vec::new(),
        },
    }
}

fn encode(encoding: SignatureEncoding, bytes: &[u8]) -> String {
    match encoding {
        SignatureEncoding::Hex => hex::encode(bytes),
        SignatureEncoding::Base64 => general_purpose::STANDARD.encode(bytes),
    }
}

/// Decoded signature bytes, or `None` if the text is not valid in this
/// encoding (or decodes to nothing).
fn decode(encoding: SignatureEncoding, text: &str) -> Option<Vec<u8>> {
    let bytes = match encoding {
        SignatureEncoding::Hex => hex::decode(text).ok()?,
        SignatureEncoding::Base64 => BASE64_LENIENT.decode(text).ok()?,
    };
    (!bytes.is_empty()).then_some(bytes)
}

/// Constant-time equality; an empty expected tag never matches.
fn tags_match(expected: &[u8], received: &[u8]) -> bool {
    !expected.is_empty() && bool::from(expected.ct_eq(received))
}

/// The trimmed header value, or `None` when absent or blank.
fn signature_header<'a>(request: &InboundRequest<'a>, name: &str) -> Option<&'a str> {
    request
        .header(name)
        .map(str::trim)
        .filter(|value| !value.is_empty())
}

fn within_tolerance(timestamp: i64, now_unix: i64, tolerance_seconds: u64) -> bool {
    if tolerance_seconds == 0 {
        return true;
    }
    let age = i128::from(now_unix) - i128::from(timestamp);
    age.unsigned_abs() <= u128::from(tolerance_seconds)
}

fn verify_hmac_body(
    algorithm: HmacAlgorithm,
    encoding: SignatureEncoding,
    header: &str,
    prefix: Option<&str>,
    secret: &[u8],
    request: &InboundRequest<'_>,
) -> Verdict {
    let Some(value) = signature_header(request, header) else {
        return Verdict::MissingSignature;
    };
    let value = match prefix {
        None => value,
        Some(prefix) => match strip_prefix_ignore_case(value, prefix) {
            Some(rest) => rest,
            None => return Verdict::MalformedSignature,
        },
    };
    let Some(received) = decode(encoding, value) else {
        return Verdict::MalformedSignature;
    };
    let expected = mac(algorithm, secret, &[request.raw_body]);
    if tags_match(&expected, &received) {
        Verdict::Verified
    } else {
        Verdict::BadSignature
    }
}

fn strip_prefix_ignore_case<'a>(value: &'a str, prefix: &str) -> Option<&'a str> {
    let head = value.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| value.get(prefix.len()..))
        .flatten()
}

/// `t=…,v1=…` style headers: the timestamp and the values of every
/// element named `signature_key`, split on `,` then on the first `=` (base64
/// values keep their `=` padding). Elements without `=` are ignored, like
/// Stripe's own libraries do.
struct TimestampedHeader<'a> {
    timestamp: Option<&'a str>,
    signatures: Vec<&'a str>,
}

fn parse_timestamped_header<'a>(value: &'a str, signature_key: &str) -> TimestampedHeader<'a> {
    let mut parsed = TimestampedHeader {
        timestamp: None,
        signatures: Vec::new(),
    };
    for element in value.split(',') {
        let Some((key, value)) = element.split_once('=') else {
            continue;
        };
        let (key, value) = (key.trim(), value.trim());
        if key == "t" && parsed.timestamp.is_none() {
            parsed.timestamp = Some(value);
        } else if key == signature_key && parsed.signatures.len() < SIGNATURE_CANDIDATES_MAX {
            parsed.signatures.push(value);
        }
    }
    parsed
}

/// Unix seconds in canonical decimal (what providers send). Anything that
/// would not print back identically (`+5`, `007`, `-0`) is refused, so the
/// value used for the tolerance is exactly the text that was signed.
fn parse_unix_seconds(text: &str) -> Option<i64> {
    let seconds: i64 = text.parse().ok()?;
    (seconds.to_string() == text).then_some(seconds)
}

fn verify_stripe(
    header: &str,
    tolerance_seconds: u64,
    secret: &[u8],
    request: &InboundRequest<'_>,
) -> Verdict {
    let Some(value) = signature_header(request, header) else {
        return Verdict::MissingSignature;
    };
    let parsed = parse_timestamped_header(value, "v1");
    let Some(timestamp_text) = parsed.timestamp else {
        return Verdict::MalformedSignature;
    };
    let Some(timestamp) = parse_unix_seconds(timestamp_text) else {
        return Verdict::MalformedSignature;
    };
    if parsed.signatures.is_empty() {
        return Verdict::MalformedSignature;
    }
    let expected = mac(
        HmacAlgorithm::Sha256,
        secret,
        &[timestamp_text.as_bytes(), b".", request.raw_body],
    );
    let matched = parsed.signatures.iter().any(|candidate| {
        decode(SignatureEncoding::Hex, candidate).is_some_and(|bytes| tags_match(&expected, &bytes))
    });
    if !matched {
        Verdict::BadSignature
    } else if !within_tolerance(timestamp, request.now_unix, tolerance_seconds) {
        Verdict::StaleTimestamp
    } else {
        Verdict::Verified
    }
}

fn verify_canonical_json(
    algorithm: HmacAlgorithm,
    encoding: SignatureEncoding,
    header: &str,
    accept_legacy_top_level_sort: bool,
    secret: &[u8],
    request: &InboundRequest<'_>,
) -> Verdict {
    let Some(value) = signature_header(request, header) else {
        return Verdict::MissingSignature;
    };
    let Some(received) = decode(encoding, value) else {
        return Verdict::MalformedSignature;
    };
    let Ok(message) = canonical::canonical_json(request.raw_body) else {
        return Verdict::MalformedBody;
    };
    if tags_match(&mac(algorithm, secret, &[message.as_bytes()]), &received) {
        return Verdict::Verified;
    }
    if accept_legacy_top_level_sort
        && let Ok(legacy) = canonical::legacy_top_level_sorted_json(request.raw_body)
        && tags_match(&mac(algorithm, secret, &[legacy.as_bytes()]), &received)
    {
        return Verdict::Verified;
    }
    Verdict::BadSignature
}

fn verify_fields_and_url(
    algorithm: HmacAlgorithm,
    encodings: &[SignatureEncoding],
    header: &str,
    fields: &[String],
    tolerance_seconds: u64,
    secret: &[u8],
    request: &InboundRequest<'_>,
) -> Verdict {
    let Some(value) = signature_header(request, header) else {
        return Verdict::MissingSignature;
    };
    let parsed = parse_timestamped_header(value, "v");
    let Some(timestamp_text) = parsed.timestamp else {
        return Verdict::MalformedSignature;
    };
    let Some(timestamp) = parse_unix_seconds(timestamp_text) else {
        return Verdict::MalformedSignature;
    };
    let candidates: Vec<Vec<u8>> = parsed
        .signatures
        .iter()
        .flat_map(|text| {
            encodings
                .iter()
                .filter_map(|encoding| decode(*encoding, text))
        })
        .collect();
    if candidates.is_empty() {
        return Verdict::MalformedSignature;
    }
    let Ok(message) = fields_and_url_message(request.url, timestamp, fields, request.raw_body)
    else {
        return Verdict::MalformedBody;
    };
    let expected = mac(algorithm, secret, &[message.as_bytes()]);
    if !candidates
        .iter()
        .any(|candidate| tags_match(&expected, candidate))
    {
        Verdict::BadSignature
    } else if !within_tolerance(timestamp, request.now_unix, tolerance_seconds) {
        Verdict::StaleTimestamp
    } else {
        Verdict::Verified
    }
}

fn verify_shared_secret(header: &str, secret: &[u8], request: &InboundRequest<'_>) -> Verdict {
    let Some(value) = signature_header(request, header) else {
        return Verdict::MissingSignature;
    };
    // HTTP strips whitespace around header values, so a secret typed with
    // a stray space at either end could never match; compare without it.
    let secret = secret.trim_ascii();
    if secret.is_empty() {
        return Verdict::MissingSecret;
    }
    if tags_match(secret, value.as_bytes()) {
        Verdict::Verified
    } else {
        Verdict::BadSignature
    }
}

fn verify_any_of(
    schemes: &[SignatureScheme],
    secret: &[u8],
    request: &InboundRequest<'_>,
) -> Verdict {
    let mut first_failure = None;
    for scheme in schemes {
        // Nesting is refused by validation; treat a nested `AnyOf` or `None`
        // as not verifying rather than recursing or passing unsigned.
        let verdict = match scheme {
            SignatureScheme::AnyOf { .. } | SignatureScheme::None => Verdict::MissingSignature,
            scheme => scheme.verify(secret, request),
        };
        if verdict == Verdict::Verified {
            return Verdict::Verified;
        }
        if verdict != Verdict::MissingSignature && first_failure.is_none() {
            first_failure = Some(verdict);
        }
    }
    first_failure.unwrap_or(Verdict::MissingSignature)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn timestamped_header_splits_on_first_equals_and_caps_candidates() {
        let parsed = parse_timestamped_header("t=1, v=abc==,v0=x,junk,v=def", "v");
        assert_eq!(parsed.timestamp, Some("1"));
        assert_eq!(parsed.signatures, vec!["abc==", "def"]);
        let many = format!("t=1{}", ",v1=aa".repeat(100));
        assert_eq!(
            parse_timestamped_header(&many, "v1").signatures.len(),
            SIGNATURE_CANDIDATES_MAX
        );
    }

    #[test]
    fn unix_seconds_are_digits_only() {
        assert_eq!(parse_unix_seconds("1700000000"), Some(1_700_000_000));
        assert_eq!(parse_unix_seconds("-5"), Some(-5));
        for bad in [
            "",
            "-",
            "+5",
            " 5",
            "007",
            "-0",
            "1e9",
            "99999999999999999999",
        ] {
            assert_eq!(parse_unix_seconds(bad), None, "{bad}");
        }
    }

    #[test]
    fn tolerance_is_symmetric_and_zero_disables_it() {
        assert!(within_tolerance(1000, 1300, 300));
        assert!(!within_tolerance(1000, 1301, 300));
        assert!(!within_tolerance(1301, 1000, 300));
        assert!(within_tolerance(i64::MIN, i64::MAX, 0));
        assert!(within_tolerance(i64::MIN, i64::MAX, u64::MAX));
        assert!(!within_tolerance(i64::MIN, i64::MAX, u64::MAX - 1));
    }

    #[test]
    fn prefix_is_stripped_without_regard_to_case() {
        assert_eq!(
            strip_prefix_ignore_case("SHA256=abc", "sha256="),
            Some("abc")
        );
        assert_eq!(strip_prefix_ignore_case("sha1=abc", "sha256="), None);
        // A multi-byte character across the prefix boundary is not a panic.
        assert_eq!(strip_prefix_ignore_case("ééé", "ab"), None);
    }

    #[test]
    fn base64_signatures_are_accepted_with_or_without_padding() {
        let bytes = decode(SignatureEncoding::Base64, "YWI=").unwrap();
        assert_eq!(bytes, b"ab");
        assert_eq!(decode(SignatureEncoding::Base64, "YWI").unwrap(), b"ab");
        assert_eq!(
            decode(SignatureEncoding::Hex, "ABff").unwrap(),
            vec![0xab, 0xff]
        );
        assert_eq!(decode(SignatureEncoding::Hex, ""), None);
        assert_eq!(decode(SignatureEncoding::Hex, "abc"), None);
    }
}
