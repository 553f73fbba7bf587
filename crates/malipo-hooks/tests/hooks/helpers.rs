use malipo_hooks::{InboundRequest, ProviderDefinition, ProviderRegistry, Verdict};

pub const NOW: i64 = 1_700_000_000;
pub const URL: &str = "https://pay.example.com/v1/hooks/test/acct_1";

pub fn provider(name: &str) -> ProviderDefinition {
    ProviderRegistry::builtin()
        .get(name)
        .cloned()
        .unwrap_or_else(|| panic!("no built-in provider {name}"))
}

pub fn headers(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(name, value)| ((*name).to_owned(), (*value).to_owned()))
        .collect()
}

/// Verifies `body` with `headers` against `definition` at `now`.
pub fn check(
    definition: &ProviderDefinition,
    secret: &[u8],
    headers: &[(String, String)],
    body: &[u8],
    url: &str,
    now: i64,
) -> Verdict {
    let request = InboundRequest {
        headers,
        raw_body: body,
        url,
        now_unix: now,
    };
    malipo_hooks::verify(definition, secret, &request)
}

/// Signs with the definition, then verifies the same request.
pub fn round_trip(definition: &ProviderDefinition, secret: &[u8], body: &[u8]) -> Verdict {
    let signed = malipo_hooks::sign(definition, secret, body, URL, NOW).unwrap();
    check(definition, secret, &signed, body, URL, NOW)
}
