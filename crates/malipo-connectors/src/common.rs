//! What the mobile-money connectors share: reading credentials, a cached
//! OAuth token per (host, client), phone numbers per country, exact amount
//! formatting, and the poll schedule. One copy of each, so a fix applies to
//! every provider.

use crate::{ConnectorAccount, ConnectorError};
use malipo_core::Asset;
use malipo_core::objects::{Customer, NextAction};
use serde_json::Value;
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// Timeout of each call to a provider.
pub(crate) const HTTP_TIMEOUT_SECONDS: u64 = 30;
/// A cached token is renewed this long before it expires (at most a
/// quarter of its life, for providers whose tokens live three minutes).
const TOKEN_RENEW_MARGIN_SECONDS: u64 = 60;
/// The first status poll of a payment, and the shortest pause between two.
pub(crate) const POLL_AFTER_MS_MIN: u64 = 3_000;
/// The longest pause between two status polls.
pub(crate) const POLL_AFTER_MS_MAX: u64 = 30_000;

/// The HTTP client connectors use unless given one (needs rustls' crypto
/// provider installed, see `malipo_gateway::install_crypto_provider`).
pub(crate) fn http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(HTTP_TIMEOUT_SECONDS))
        .build()
        .unwrap_or_default()
}

/// A credential's value, trimmed; `None` when absent or blank.
pub(crate) fn credential<'a>(account: &'a ConnectorAccount, key: &str) -> Option<&'a str> {
    account
        .credentials
        .get(key)
        .map(|value| value.trim())
        .filter(|value| !value.is_empty())
}

/// A credential that must be there.
pub(crate) fn required<'a>(
    account: &'a ConnectorAccount,
    key: &str,
) -> Result<&'a str, ConnectorError> {
    credential(account, key)
        .ok_or_else(|| ConnectorError::Rejected(format!("missing credential `{key}`")))
}

/// The `base_url` credential without its trailing slash, else the host of
/// the named `environment` (`sandbox` / `test` or `production` / `live`),
/// else `sandbox`. Answers the URL and whether it was configured (a live
/// payment must not silently go to a sandbox).
pub(crate) fn base_url(
    account: &ConnectorAccount,
    sandbox: &str,
    production: &str,
) -> Result<(String, bool), ConnectorError> {
    match (
        credential(account, "base_url"),
        credential(account, "environment"),
    ) {
        (Some(url), _) => Ok((url.trim_end_matches('/').to_string(), true)),
        (None, Some("production" | "live")) => Ok((production.to_string(), true)),
        (None, Some("sandbox" | "test")) => Ok((sandbox.to_string(), true)),
        (None, Some(_)) => Err(ConnectorError::Rejected(
            "invalid credential `environment`: `sandbox` or `production` expected".into(),
        )),
        (None, None) => Ok((sandbox.to_string(), false)),
    }
}

/// A JSON string or number as text (integers without a fraction).
pub(crate) fn scalar_text(value: &Value) -> Option<String> {
    match value {
        Value::String(text) => Some(text.trim().to_string()),
        Value::Number(number) => Some(number.to_string()),
        _ => None,
    }
}

pub(crate) fn is_digits(text: &str) -> bool {
    !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit())
}

/// The message of a refusal made before any request.
pub(crate) fn refusal_message(error: ConnectorError) -> String {
    match error {
        ConnectorError::Rejected(message) | ConnectorError::Unavailable(message) => message,
        ConnectorError::Unsupported(what) => format!("{what} is not supported"),
    }
}

/// A transport failure calling `provider` for `what`.
pub(crate) fn unavailable(provider: &str, what: &str, error: &reqwest::Error) -> ConnectorError {
    let kind = if error.is_timeout() {
        "timed out"
    } else {
        "failed"
    };
    ConnectorError::Unavailable(format!("{provider} {what} {kind}: {error}"))
}

/// At most `max` characters of `text` that providers take in a reference
/// or note: letters, digits, space, `-`, `_`, `.`.
pub(crate) fn clip(text: &str, max: usize) -> String {
    text.chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, ' ' | '-' | '_' | '.'))
        .take(max)
        .collect::<String>()
        .trim()
        .to_string()
}

/// The phone prompt a customer sees while a push is pending.
pub(crate) fn phone_prompt(customer: &Customer, message: &str) -> Option<NextAction> {
    customer
        .phone
        .as_ref()
        .map(|phone| NextAction::PhonePrompt {
            phone: phone.clone(),
            message: message.to_string(),
        })
}

/// When to ask again about a payment started at `started_ms`: soon at
/// first, then half the time it has been waiting, at most
/// [`POLL_AFTER_MS_MAX`]. Callbacks usually come first; polls find lost ones.
pub(crate) fn poll_after_ms(started_ms: i64, now_ms: i64) -> u64 {
    let waited_ms = u64::try_from(now_ms.saturating_sub(started_ms)).unwrap_or(0);
    (waited_ms / 2).clamp(POLL_AFTER_MS_MIN, POLL_AFTER_MS_MAX)
}

/// What a provider answered an HTTP call: its status and body.
#[derive(Debug, Clone)]
pub(crate) struct Reply {
    pub status: u16,
    /// The body, when it is JSON.
    pub json: Option<Value>,
    /// The start of the body as text, for messages.
    pub excerpt: String,
}

/// How much of an unreadable answer a message quotes.
const EXCERPT_CHARS_MAX: usize = 200;

impl Reply {
    pub(crate) fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }

    pub(crate) fn is_server_error(&self) -> bool {
        self.status >= 500
    }

    /// A string (or number) field of the JSON body.
    pub(crate) fn text(&self, key: &str) -> Option<String> {
        self.json
            .as_ref()
            .and_then(|body| body.get(key))
            .and_then(scalar_text)
            .filter(|text| !text.is_empty())
    }
    /// What a failed answer with a top-level `message` means:
    /// [`ConnectorError::Unavailable`] (worth asking again) for a 5xx or a
    /// 429, [`ConnectorError::Rejected`] otherwise, quoting the message.
    pub(crate) fn refusal(&self, provider: &str, what: &str) -> ConnectorError {
        self.refusal_quoting(provider, what, "/message")
    }

    /// [`Reply::refusal`] for a provider whose error message is elsewhere
    /// in the body (`message_pointer`, a JSON pointer such as Stripe's
    /// `/error/message`).
    pub(crate) fn refusal_quoting(
        &self,
        provider: &str,
        what: &str,
        message_pointer: &str,
    ) -> ConnectorError {
        let message = self
            .json
            .as_ref()
            .and_then(|body| body.pointer(message_pointer))
            .and_then(scalar_text)
            .filter(|text| !text.is_empty())
            .unwrap_or_else(|| self.excerpt.clone());
        let text = format!("{provider} {what} (HTTP {}): {message}", self.status);
        if self.is_server_error() || self.status == 429 {
            ConnectorError::Unavailable(text)
        } else {
            ConnectorError::Rejected(text)
        }
    }
}

/// Sends `request` and reads the whole answer; a transport failure is
/// [`ConnectorError::Unavailable`].
///
/// Every call is timed and recorded for audit: a log line (target
/// `malipo::provider`) with the provider, the operation, the method, the
/// URL's host and path (never its query, headers or bodies, which carry
/// credentials and customers' phone numbers), the HTTP status and the
/// latency; and the metrics `malipo_provider_requests_total` (by provider,
/// operation and result: `ok`, `http_4xx`, `http_5xx`, `unavailable`) and
/// `malipo_provider_request_duration_seconds`.
pub(crate) async fn send(
    request: reqwest::RequestBuilder,
    provider: &str,
    what: &str,
) -> Result<Reply, ConnectorError> {
    let (client, request) = request.build_split();
    let request = request.map_err(|error| unavailable(provider, what, &error))?;
    let method = request.method().clone();
    let target = format!(
        "{}{}",
        request.url().host_str().unwrap_or_default(),
        request.url().path()
    );
    let started = std::time::Instant::now();
    let answer = async {
        let response = client
            .execute(request)
            .await
            .map_err(|error| unavailable(provider, what, &error))?;
        let status = response.status().as_u16();
        let bytes = response
            .bytes()
            .await
            .map_err(|error| unavailable(provider, what, &error))?;
        Ok::<_, ConnectorError>((status, bytes))
    }
    .await;
    let elapsed = started.elapsed();
    let result = match &answer {
        Ok((status, _)) if *status >= 500 => "http_5xx",
        Ok((status, _)) if *status >= 400 => "http_4xx",
        Ok(_) => "ok",
        Err(_) => "unavailable",
    };
    let status = answer.as_ref().map(|(status, _)| *status).unwrap_or(0);
    tracing::info!(
        target: "malipo::provider",
        provider,
        operation = what,
        %method,
        %target,
        status,
        result,
        latency_ms = elapsed.as_secs_f64() * 1000.0,
        "provider call"
    );
    let labels = [
        ("provider", provider.to_owned()),
        ("operation", what.to_owned()),
    ];
    metrics::histogram!("malipo_provider_request_duration_seconds", &labels)
        .record(elapsed.as_secs_f64());
    metrics::counter!("malipo_provider_requests_total", "provider" => provider.to_owned(), "operation" => what.to_owned(), "result" => result)
        .increment(1);
    let (status, bytes) = answer?;
    Ok(Reply {
        status,
        json: serde_json::from_slice(&bytes).ok(),
        excerpt: String::from_utf8_lossy(&bytes)
            .chars()
            .take(EXCERPT_CHARS_MAX)
            .collect(),
    })
}

// --- money --------------------------------------------------------------

/// The currency's exponent, or a refusal naming the provider.
fn exponent(currency: &str, provider: &str) -> Result<u32, ConnectorError> {
    Asset::parse(currency)
        .map(|asset| u32::from(asset.exponent()))
        .map_err(|_| ConnectorError::Rejected(format!("{provider} does not take `{currency}`")))
}

/// Minor units as an exact decimal string: 1050 cents -> `"10.50"`, 500
/// UGX -> `"500"`, 1000 cents -> `"10"` (no trailing zeros when whole).
pub(crate) fn decimal_text(
    amount: u64,
    currency: &str,
    provider: &str,
) -> Result<String, ConnectorError> {
    let exponent = exponent(currency, provider)?;
    let scale = 10u64.pow(exponent);
    let (whole, fraction) = (amount / scale, amount % scale);
    if fraction == 0 {
        Ok(whole.to_string())
    } else {
        let width = usize::try_from(exponent).unwrap_or(0);
        Ok(format!("{whole}.{fraction:0width$}"))
    }
}

/// Whole major units (shillings, not cents) for providers that take no
/// fractions; refuses an amount that is not whole, or zero.
pub(crate) fn whole_units(
    amount: u64,
    currency: &str,
    provider: &str,
) -> Result<u64, ConnectorError> {
    let scale = 10u64.pow(exponent(currency, provider)?);
    if !amount.is_multiple_of(scale) {
        return Err(ConnectorError::Rejected(format!(
            "{provider} takes whole amounts only; {amount} minor units of {} is not a whole number",
            currency.to_ascii_uppercase()
        )));
    }
    let whole = amount / scale;
    if whole == 0 {
        return Err(ConnectorError::Rejected(format!(
            "{provider} takes at least 1 {}",
            currency.to_ascii_uppercase()
        )));
    }
    Ok(whole)
}

// --- phones ---------------------------------------------------------------

/// A country's mobile numbers: `+{dialling_code}` then `national_digits`
/// digits, the first of which is one of `leading`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Country {
    /// ISO 3166 alpha-2, e.g. `UG` (Airtel's `X-Country`).
    pub code: &'static str,
    pub name: &'static str,
    /// Lowercase ISO 4217, e.g. `ugx`.
    pub currency: &'static str,
    pub dialling_code: &'static str,
    pub national_digits: usize,
    pub leading: &'static [char],
}

const fn country(
    code: &'static str,
    name: &'static str,
    currency: &'static str,
    dialling_code: &'static str,
    national_digits: usize,
    leading: &'static [char],
) -> Country {
    Country {
        code,
        name,
        currency,
        dialling_code,
        national_digits,
        leading,
    }
}

/// The markets Malipo's mobile-money connectors serve.
pub(crate) const COUNTRIES: &[Country] = &[
    country("KE", "Kenyan", "kes", "254", 9, &['7', '1']),
    country("UG", "Ugandan", "ugx", "256", 9, &['7']),
    country("TZ", "Tanzanian", "tzs", "255", 9, &['6', '7']),
    country("RW", "Rwandan", "rwf", "250", 9, &['7']),
    country("ZM", "Zambian", "zmw", "260", 9, &['7', '9']),
    country("GH", "Ghanaian", "ghs", "233", 9, &['2', '5']),
    country("NG", "Nigerian", "ngn", "234", 10, &['7', '8', '9']),
    country("CM", "Cameroonian", "xaf", "237", 9, &['6']),
    country("CG", "Congolese", "xaf", "242", 9, &['0']),
    country("CI", "Ivorian", "xof", "225", 10, &['0']),
    country("BJ", "Beninese", "xof", "229", 10, &['0']),
];

/// The countries whose currency is `currency` (any case).
pub(crate) fn countries_for(currency: &str) -> Vec<&'static Country> {
    COUNTRIES
        .iter()
        .filter(|country| country.currency.eq_ignore_ascii_case(currency))
        .collect()
}

impl Country {
    fn national_ok(&self, national: &str) -> bool {
        national.len() == self.national_digits
            && is_digits(national)
            && national.starts_with(self.leading)
    }

    /// The national part of an international number of this country.
    pub(crate) fn national<'a>(&self, international: &'a str) -> Option<&'a str> {
        international
            .strip_prefix(self.dialling_code)
            .filter(|national| self.national_ok(national))
    }
}

/// `phone` as international digits without `+` (e.g. `256772123456`) if it
/// is a mobile number of one of `countries`. Accepts `+`, `00`, spaces,
/// dashes, dots and brackets, and the local forms `0XXXXXXXXX` and
/// `XXXXXXXXX` when they name one country only.
pub(crate) fn international_phone(
    phone: &str,
    countries: &[&'static Country],
) -> Option<(String, &'static Country)> {
    let trimmed = phone.trim();
    let international = trimmed.starts_with('+') || trimmed.starts_with("00");
    let digits: String = trimmed
        .chars()
        .filter(|c| !matches!(c, '+' | ' ' | '-' | '.' | '(' | ')'))
        .collect();
    if !is_digits(&digits) {
        return None;
    }
    let digits = if trimmed.starts_with("00") {
        digits.get(2..).unwrap_or_default().to_string()
    } else {
        digits
    };
    if let Some(country) = countries
        .iter()
        .find(|country| country.national(&digits).is_some())
    {
        return Some((digits, country));
    }
    if international {
        return None;
    }
    let local: Vec<(&'static Country, &str)> = countries
        .iter()
        .filter_map(|country| {
            let national = match digits.strip_prefix('0') {
                Some(rest) if !country.leading.contains(&'0') => rest,
                _ => digits.as_str(),
            };
            country
                .national_ok(national)
                .then_some((*country, national))
        })
        .collect();
    match local.as_slice() {
        [(country, national)] => Some((format!("{}{national}", country.dialling_code), country)),
        _ => None,
    }
}

/// Any international number of 8 to 15 digits (E.164), for sandboxes whose
/// test numbers belong to no served country (MTN's `46733123450`).
pub(crate) fn e164_digits(phone: &str) -> Option<String> {
    let digits: String = phone
        .trim()
        .trim_start_matches('+')
        .chars()
        .filter(|c| !matches!(c, ' ' | '-' | '.' | '(' | ')'))
        .collect();
    (is_digits(&digits) && (8..=15).contains(&digits.len()) && !digits.starts_with('0'))
        .then_some(digits)
}

/// Countries' adjectives for a message: "Ugandan", "Cameroonian or Congolese".
pub(crate) fn country_names(countries: &[&Country]) -> String {
    let names: Vec<&str> = countries.iter().map(|country| country.name).collect();
    names.join(" or ")
}

// --- tokens -------------------------------------------------------------

#[derive(Debug, Clone)]
struct CachedToken {
    token: String,
    renew_at: Instant,
}

/// `(base_url, client id)`: one token per app per host.
pub(crate) type TokenKey = (String, String);

/// OAuth tokens cached per [`TokenKey`] until shortly before they expire;
/// one refresh at a time. Never shows its tokens in `Debug`.
#[derive(Default)]
pub(crate) struct TokenCache {
    tokens: tokio::sync::Mutex<HashMap<TokenKey, CachedToken>>,
}

impl std::fmt::Debug for TokenCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenCache").finish_non_exhaustive()
    }
}

impl TokenCache {
    /// The cached token for `key`, or the one `fetch` answers (with its
    /// life in seconds), kept for next time. The cache stays locked while
    /// fetching, so concurrent callers wait for one refresh.
    pub(crate) async fn get<F, Fut>(
        &self,
        key: TokenKey,
        fetch: F,
    ) -> Result<String, ConnectorError>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<(String, u64), ConnectorError>>,
    {
        let mut tokens = self.tokens.lock().await;
        if let Some(cached) = tokens.get(&key)
            && Instant::now() < cached.renew_at
        {
            return Ok(cached.token.clone());
        }
        let (token, expires_in) = fetch().await?;
        let margin = TOKEN_RENEW_MARGIN_SECONDS.min(expires_in / 4);
        let lifetime = expires_in.saturating_sub(margin);
        tokens.insert(
            key,
            CachedToken {
                token: token.clone(),
                renew_at: Instant::now() + Duration::from_secs(lifetime),
            },
        );
        Ok(token)
    }

    /// Forgets `token` if it is still the one cached for `key` (the
    /// provider refused it).
    pub(crate) async fn forget(&self, key: &TokenKey, token: &str) {
        let mut tokens = self.tokens.lock().await;
        if tokens.get(key).is_some_and(|cached| cached.token == token) {
            tokens.remove(key);
        }
    }
}

/// Sends the call `build` makes with the cached bearer token for `key`
/// (fetched with `fetch` when there is none); when the provider answers
/// 401 the token is dropped and the call tried once more with a new one.
pub(crate) async fn call_with_token<Fetch, Fut>(
    tokens: &TokenCache,
    key: &TokenKey,
    fetch: Fetch,
    (provider, what): (&str, &str),
    build: impl Fn(&str) -> reqwest::RequestBuilder,
) -> Result<Reply, ConnectorError>
where
    Fetch: Fn() -> Fut,
    Fut: Future<Output = Result<(String, u64), ConnectorError>>,
{
    let mut retried = false;
    loop {
        let token = tokens.get(key.clone(), &fetch).await?;
        let reply = send(build(&token), provider, what).await?;
        if reply.status == 401 && !retried {
            tokens.forget(key, &token).await;
            retried = true;
            continue;
        }
        return Ok(reply);
    }
}

/// `expires_in` of a token answer, a number or a string (`"180"`).
pub(crate) fn expires_in(body: &Value, default_seconds: u64) -> u64 {
    body.get("expires_in")
        .and_then(scalar_text)
        .and_then(|text| text.parse::<u64>().ok())
        .unwrap_or(default_seconds)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn phone(phone: &str, currency: &str) -> Option<String> {
        international_phone(phone, &countries_for(currency)).map(|(digits, _)| digits)
    }

    #[test]
    fn phones_are_normalised_per_country() {
        assert_eq!(
            phone("256772123456", "ugx").as_deref(),
            Some("256772123456")
        );
        assert_eq!(
            phone("+256 772 123 456", "UGX").as_deref(),
            Some("256772123456")
        );
        assert_eq!(
            phone("00256772123456", "ugx").as_deref(),
            Some("256772123456")
        );
        assert_eq!(
            phone("0772-123-456", "ugx").as_deref(),
            Some("256772123456")
        );
        assert_eq!(phone("772123456", "ugx").as_deref(), Some("256772123456"));
        assert_eq!(phone("0708374149", "kes").as_deref(), Some("254708374149"));
        assert_eq!(phone("0110000000", "kes").as_deref(), Some("254110000000"));
        assert_eq!(phone("0241234567", "ghs").as_deref(), Some("233241234567"));
        assert_eq!(
            phone("08031234567", "ngn").as_deref(),
            Some("2348031234567")
        );
        // A Kenyan number is not Ugandan; a landline is not mobile.
        assert_eq!(phone("254708374149", "ugx"), None);
        assert_eq!(phone("+254708374149", "ugx"), None);
        assert_eq!(phone("256412123456", "ugx"), None);
        assert_eq!(phone("25677212345", "ugx"), None);
        assert_eq!(phone("not a phone", "ugx"), None);
        assert_eq!(phone("256772123456", "usd"), None);
        // Two countries share XAF: international numbers decide.
        assert_eq!(
            phone("237671234567", "xaf").as_deref(),
            Some("237671234567")
        );
        assert_eq!(
            phone("242061234567", "xaf").as_deref(),
            Some("242061234567")
        );
        assert_eq!(phone("0701234567", "xof"), None, "Ivorian or Beninese?");
        assert_eq!(
            phone("+2250701234567", "xof").as_deref(),
            Some("2250701234567")
        );
    }

    #[test]
    fn sandbox_numbers_are_any_e164() {
        assert_eq!(e164_digits("46733123450").as_deref(), Some("46733123450"));
        assert_eq!(
            e164_digits("+46 733 123 450").as_deref(),
            Some("46733123450")
        );
        assert_eq!(e164_digits("0733123450"), None);
        assert_eq!(e164_digits("1234567"), None);
        assert_eq!(e164_digits("46-73a"), None);
    }

    #[test]
    fn amounts_are_exact() {
        assert_eq!(decimal_text(500, "ugx", "P").unwrap(), "500");
        assert_eq!(decimal_text(1_050, "eur", "P").unwrap(), "10.50");
        assert_eq!(decimal_text(1_005, "EUR", "P").unwrap(), "10.05");
        assert_eq!(decimal_text(1_000, "eur", "P").unwrap(), "10");
        assert_eq!(
            decimal_text(u64::MAX, "eur", "P").unwrap(),
            "184467440737095516.15"
        );
        assert!(decimal_text(1, "xyz", "P").is_err());
        assert_eq!(whole_units(500, "ugx", "P").unwrap(), 500);
        assert_eq!(whole_units(10_000, "kes", "P").unwrap(), 100);
        assert!(whole_units(10_050, "kes", "P").is_err());
        assert!(whole_units(0, "ugx", "P").is_err());
    }

    #[test]
    fn polls_back_off() {
        assert_eq!(poll_after_ms(0, 0), POLL_AFTER_MS_MIN);
        assert_eq!(poll_after_ms(0, 20_000), 10_000);
        assert_eq!(poll_after_ms(0, 600_000), POLL_AFTER_MS_MAX);
        assert_eq!(poll_after_ms(10, 0), POLL_AFTER_MS_MIN);
    }

    #[tokio::test]
    async fn tokens_are_cached_until_forgotten() {
        let cache = TokenCache::default();
        let key: TokenKey = ("host".into(), "client".into());
        let first = cache
            .get(key.clone(), || async { Ok(("one".to_string(), 180)) })
            .await
            .unwrap();
        let again = cache
            .get(key.clone(), || async { Ok(("two".to_string(), 180)) })
            .await
            .unwrap();
        assert_eq!((first.as_str(), again.as_str()), ("one", "one"));
        cache.forget(&key, "one").await;
        let fresh = cache
            .get(key.clone(), || async { Ok(("three".to_string(), 180)) })
            .await
            .unwrap();
        assert_eq!(fresh, "three");
        // A token living less than the margin is renewed every time.
        let short: TokenKey = ("host".into(), "short".into());
        cache
            .get(short.clone(), || async { Ok(("a".to_string(), 0)) })
            .await
            .unwrap();
        let renewed = cache
            .get(short, || async { Ok(("b".to_string(), 0)) })
            .await
            .unwrap();
        assert_eq!(renewed, "b");
        assert_eq!(format!("{cache:?}"), "TokenCache { .. }");
    }
}
