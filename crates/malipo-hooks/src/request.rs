//! The incoming request as the checks see it, and its redacted audit copy.

use crate::provider::ProviderDefinition;

/// What replaces a secret header value in the audit copy.
pub const REDACTED: &str = "[redacted]";

/// Headers redacted for every provider, whatever its scheme: credentials a
/// proxy or a misconfigured provider might forward.
pub const ALWAYS_REDACTED_HEADERS: [&str; 4] = [
    "authorization",
    "proxy-authorization",
    "cookie",
    "x-api-key",
];

/// One incoming callback, borrowed from the HTTP layer.
#[derive(Debug, Clone, Copy)]
pub struct InboundRequest<'a> {
    /// Header names and values as received; names are matched without
    /// regard to case. A header that appears twice is looked up by its
    /// first occurrence.
    pub headers: &'a [(String, String)],
    /// The body exactly as received: signatures are over these bytes, never
    /// over a re-serialization.
    pub raw_body: &'a [u8],
    /// The public URL the provider called, as configured at the provider
    /// (scheme, host, path and query string, trailing slash included).
    /// Relworx signs it, so it must be the externally visible URL, not the
    /// address the gateway listens on behind a proxy.
    pub url: &'a str,
    /// The gateway's clock, in Unix seconds, for timestamp tolerance.
    pub now_unix: i64,
}

impl<'a> InboundRequest<'a> {
    /// The first value of header `name`, matched case-insensitively.
    pub fn header(&self, name: &str) -> Option<&'a str> {
        header_value(self.headers, name)
    }
}

pub(crate) fn header_value<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(key, _)| key.eq_ignore_ascii_case(name))
        .map(|(_, value)| value.as_str())
}

/// A copy of `headers` for the audit log, names and order unchanged, with
/// the value of every secret-bearing header replaced by [`REDACTED`]:
/// [`ALWAYS_REDACTED_HEADERS`], the headers the provider's scheme reads
/// (Flutterwave's `verif-hash` is the secret itself; signatures are kept out
/// of logs so a leaked log can't be replayed), and the provider's own
/// `redact_headers`.
pub fn redact_headers(
    headers: &[(String, String)],
    definition: &ProviderDefinition,
) -> Vec<(String, String)> {
    let scheme_headers = definition.scheme.headers();
    let is_secret = |name: &str| {
        ALWAYS_REDACTED_HEADERS
            .iter()
            .copied()
            .chain(scheme_headers.iter().copied())
            .chain(definition.redact_headers.iter().map(String::as_str))
            .any(|secret| secret.eq_ignore_ascii_case(name))
    };
    headers
        .iter()
        .map(|(name, value)| {
            let value = if is_secret(name) {
                REDACTED.to_owned()
            } else {
                value.clone()
            };
            (name.clone(), value)
        })
        .collect()
}
