//! Exchange rates: where they come from and how fresh they are.
//!
//! A [`RateSource`] answers a [`RateTable`]: mid rates of the assets it
//! knows against one base asset, and when they were true (`as_of`). The
//! sources are configured in order (`[[rate_sources]]`); a pair's rate comes
//! from the first source that knows both assets and is fresh, directly
//! (`base -> x`), inverted (`x -> base`) or crossed through the base
//! (`x -> base -> y`). Each source has a freshness limit
//! (`max_age_seconds`): a rate older than that is **stale**, shown as such
//! by `GET /v1/rates` and never quoted.
//!
//! - [`StaticRates`]: a table from the configuration, true as of the
//!   configured `as_of` (or the start).
//! - [`HttpRates`]: a JSON endpoint (`GET {url}?base=usd` answering
//!   `{"base": "usd", "timestamp": 1700000000, "rates": {"kes": "129.5"}}`;
//!   rates as decimal strings, or JSON numbers read through their shortest
//!   decimal form), fetched on demand and reused for `refresh_ms`. A failed
//!   fetch keeps the last table, which turns stale by its own `as_of`.
//!   `malipo simulate rates` serves this format.
//! - The exchange's order books become a source by implementing the trait
//!   (a table of book mid prices against the quote asset); nothing else
//!   changes.
//!
//! Rates are `rust_decimal::Decimal`, never floats.

use crate::now_ms;
use malipo_core::Asset;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

/// The most assets one source's table may hold.
pub const RATE_TABLE_ASSETS_MAX: usize = 1_000;
/// The largest answer an HTTP source may send.
pub const RATE_RESPONSE_BYTES_MAX: usize = 256 * 1024;

/// Mid rates against `base`: `rates[x]` major units of `x` per one `base`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RateTable {
    pub base: Asset,
    pub rates: BTreeMap<&'static str, Decimal>,
    /// When the rates were true (Unix seconds).
    pub as_of: i64,
}

impl RateTable {
    fn rate_to(&self, asset: Asset) -> Option<Decimal> {
        if asset == self.base {
            return Some(Decimal::ONE);
        }
        self.rates
            .get(asset.code())
            .copied()
            .filter(|rate| *rate > Decimal::ZERO)
    }

    /// Major units of `to` one major unit of `from` buys at mid.
    pub fn mid(&self, from: Asset, to: Asset) -> Option<Decimal> {
        let from_rate = self.rate_to(from)?;
        let to_rate = self.rate_to(to)?;
        to_rate.checked_div(from_rate)
    }
}

/// Why a source has no table.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("rate source `{source_name}`: {problem}")]
pub struct RateSourceError {
    pub source_name: String,
    pub problem: String,
}

/// Where rates come from.
#[async_trait::async_trait]
pub trait RateSource: Send + Sync + fmt::Debug {
    /// The name `GET /v1/rates` and quotes show.
    fn name(&self) -> &str;
    /// Rates older than this many seconds are stale; `None`: never.
    fn max_age_seconds(&self) -> Option<i64>;
    /// The source's current table.
    async fn table(&self) -> Result<Arc<RateTable>, RateSourceError>;
}

/// `static` or `http`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RateSourceKind {
    Static,
    Http,
}

/// One `[[rate_sources]]` entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateSourceConfig {
    /// Shown with every rate it gives (`static`, `ecb`, `exchange`).
    pub name: String,
    pub kind: RateSourceKind,
    /// The asset the rates are against (default `usd`).
    #[serde(default = "default_base")]
    pub base: String,
    /// `static`: units of each asset per one `base`, as decimal strings
    /// (`kes = "129.5"`).
    #[serde(default)]
    pub rates: BTreeMap<String, String>,
    /// `static`: when the table was true (Unix seconds); 0: at start.
    #[serde(default)]
    pub as_of: i64,
    /// `http`: the endpoint; `?base=<base>` is appended.
    #[serde(default)]
    pub url: String,
    /// Rates older than this are stale and never quoted; 0: never stale
    /// (`static` only).
    #[serde(default)]
    pub max_age_seconds: u64,
    /// `http`: how long a fetched table is reused (0: fetched for every use).
    #[serde(default = "default_refresh_ms")]
    pub refresh_ms: u64,
    /// `http`: one fetch's time limit.
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
}

fn default_base() -> String {
    "usd".into()
}

fn default_refresh_ms() -> u64 {
    30_000
}

fn default_timeout_ms() -> u64 {
    2_000
}

/// The longest freshness limit: a week.
pub const RATE_MAX_AGE_SECONDS_MAX: u64 = 7 * 86_400;

/// Reads a rate as the configuration or a source wrote it.
fn parse_rate(text: &str) -> Option<Decimal> {
    let text = text.trim();
    Decimal::from_str_exact(text)
        .ok()
        .or_else(|| Decimal::from_scientific(text).ok())
        .filter(|rate| *rate > Decimal::ZERO)
}

fn parse_rates<'a>(
    entries: impl Iterator<Item = (&'a str, Option<String>)>,
) -> Result<BTreeMap<&'static str, Decimal>, String> {
    let mut rates = BTreeMap::new();
    for (code, text) in entries {
        if rates.len() >= RATE_TABLE_ASSETS_MAX {
            return Err(format!("more than {RATE_TABLE_ASSETS_MAX} rates"));
        }
        // Codes no asset has are skipped: a source may know more than Malipo.
        let Ok(asset) = Asset::parse(code) else {
            continue;
        };
        let rate = text
            .as_deref()
            .and_then(parse_rate)
            .ok_or_else(|| format!("the rate of `{code}` is not a positive decimal"))?;
        rates.insert(asset.code(), rate);
    }
    Ok(rates)
}

impl RateSourceConfig {
    /// Checks the entry and builds its source.
    pub fn build(&self, client: &reqwest::Client, now: i64) -> Result<Arc<dyn RateSource>, String> {
        self.build_with(Some(client), now)?
            .ok_or_else(|| "no HTTP client".to_owned())
    }

    /// Checks the entry without building anything (configuration loading).
    pub fn validate(&self) -> Result<(), String> {
        self.build_with(None, 0).map(|_| ())
    }

    fn build_with(
        &self,
        client: Option<&reqwest::Client>,
        now: i64,
    ) -> Result<Option<Arc<dyn RateSource>>, String> {
        if self.name.is_empty()
            || self.name.len() > 64
            || !self
                .name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        {
            return Err("name must be 1 to 64 letters, digits, `_` or `-`".into());
        }
        let base = Asset::parse(&self.base).map_err(|error| format!("base: {error}"))?;
        if self.max_age_seconds > RATE_MAX_AGE_SECONDS_MAX {
            return Err(format!(
                "max_age_seconds must be at most {RATE_MAX_AGE_SECONDS_MAX}"
            ));
        }
        let max_age_seconds = (self.max_age_seconds > 0).then_some(self.max_age_seconds as i64);
        match self.kind {
            RateSourceKind::Static => {
                if !self.url.is_empty() {
                    return Err("a static source has no url".into());
                }
                let rates = parse_rates(
                    self.rates
                        .iter()
                        .map(|(code, text)| (code.as_str(), Some(text.clone()))),
                )?;
                if rates.is_empty() {
                    return Err("a static source needs rates".into());
                }
                Ok(Some(Arc::new(StaticRates {
                    name: self.name.clone(),
                    max_age_seconds,
                    table: Arc::new(RateTable {
                        base,
                        rates,
                        as_of: if self.as_of > 0 { self.as_of } else { now },
                    }),
                })))
            }
            RateSourceKind::Http => {
                if !(self.url.starts_with("http://") || self.url.starts_with("https://"))
                    || url::Url::parse(&self.url).is_err()
                {
                    return Err("url must be an http:// or https:// URL".into());
                }
                if !self.rates.is_empty() || self.as_of != 0 {
                    return Err("an http source takes no rates or as_of".into());
                }
                if max_age_seconds.is_none() {
                    return Err("an http source needs max_age_seconds".into());
                }
                if !(100..=30_000).contains(&self.timeout_ms) {
                    return Err("timeout_ms must be 100 to 30000".into());
                }
                if self.refresh_ms > 3_600_000 {
                    return Err("refresh_ms must be at most 3600000".into());
                }
                Ok(client.map(|client| -> Arc<dyn RateSource> {
                    Arc::new(HttpRates {
                        name: self.name.clone(),
                        url: self.url.clone(),
                        base,
                        max_age_seconds,
                        refresh_ms: self.refresh_ms,
                        timeout: Duration::from_millis(self.timeout_ms),
                        client: client.clone(),
                        cache: tokio::sync::Mutex::new(None),
                    })
                }))
            }
        }
    }
}

/// A table from the configuration.
#[derive(Debug)]
pub struct StaticRates {
    name: String,
    max_age_seconds: Option<i64>,
    table: Arc<RateTable>,
}

#[async_trait::async_trait]
impl RateSource for StaticRates {
    fn name(&self) -> &str {
        &self.name
    }

    fn max_age_seconds(&self) -> Option<i64> {
        self.max_age_seconds
    }

    async fn table(&self) -> Result<Arc<RateTable>, RateSourceError> {
        Ok(self.table.clone())
    }
}

/// A JSON endpoint, fetched on demand and cached for `refresh_ms`.
#[derive(Debug)]
pub struct HttpRates {
    name: String,
    url: String,
    base: Asset,
    max_age_seconds: Option<i64>,
    refresh_ms: u64,
    timeout: Duration,
    client: reqwest::Client,
    /// When the table was fetched (Unix ms) and the table. Held across a
    /// fetch, so concurrent users wait for one fetch instead of each
    /// sending their own.
    cache: tokio::sync::Mutex<Option<(i64, Arc<RateTable>)>>,
}

/// What an HTTP source answers.
#[derive(Debug, Deserialize)]
struct RatesAnswer {
    base: String,
    timestamp: i64,
    rates: BTreeMap<String, serde_json::Value>,
}

impl HttpRates {
    async fn fetch(&self) -> Result<RateTable, String> {
        let mut url = url::Url::parse(&self.url).map_err(|error| format!("url: {error}"))?;
        url.query_pairs_mut().append_pair("base", self.base.code());
        let response = self
            .client
            .get(url)
            .timeout(self.timeout)
            .send()
            .await
            .map_err(|error| format!("unreachable: {error}"))?;
        let status = response.status();
        if !status.is_success() {
            return Err(format!("answered HTTP {status}"));
        }
        if response
            .content_length()
            .is_some_and(|length| length > RATE_RESPONSE_BYTES_MAX as u64)
        {
            return Err("the answer is too large".into());
        }
        let body = response
            .bytes()
            .await
            .map_err(|error| format!("the answer could not be read: {error}"))?;
        if body.len() > RATE_RESPONSE_BYTES_MAX {
            return Err("the answer is too large".into());
        }
        let answer: RatesAnswer = serde_json::from_slice(&body)
            .map_err(|error| format!("the answer is not a rate table: {error}"))?;
        if !answer.base.eq_ignore_ascii_case(self.base.code()) {
            return Err(format!("asked for base {}, got {}", self.base, answer.base));
        }
        let rates = parse_rates(answer.rates.iter().map(|(code, value)| {
            let text = match value {
                serde_json::Value::String(text) => Some(text.clone()),
                serde_json::Value::Number(number) => Some(number.to_string()),
                _ => None,
            };
            (code.as_str(), text)
        }))?;
        Ok(RateTable {
            base: self.base,
            rates,
            as_of: answer.timestamp,
        })
    }
}

#[async_trait::async_trait]
impl RateSource for HttpRates {
    fn name(&self) -> &str {
        &self.name
    }

    fn max_age_seconds(&self) -> Option<i64> {
        self.max_age_seconds
    }

    async fn table(&self) -> Result<Arc<RateTable>, RateSourceError> {
        let mut cache = self.cache.lock().await;
        let now = now_ms();
        if let Some((fetched_ms, table)) = cache.as_ref()
            && now.saturating_sub(*fetched_ms) < self.refresh_ms as i64
        {
            return Ok(table.clone());
        }
        match self.fetch().await {
            Ok(table) => {
                let table = Arc::new(table);
                *cache = Some((now, table.clone()));
                metrics::counter!("malipo_rate_fetches_total", "source" => self.name.clone(), "outcome" => "ok").increment(1);
                Ok(table)
            }
            Err(problem) => {
                metrics::counter!("malipo_rate_fetches_total", "source" => self.name.clone(), "outcome" => "failed").increment(1);
                tracing::warn!(source = %self.name, %problem, "a rate source failed; its last table is kept");
                match cache.as_ref() {
                    Some((_, table)) => Ok(table.clone()),
                    None => Err(RateSourceError {
                        source_name: self.name.clone(),
                        problem,
                    }),
                }
            }
        }
    }
}

/// A pair's mid rate and where it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourcedRate {
    pub mid: Decimal,
    pub source: String,
    pub as_of: i64,
    pub stale: bool,
}

/// Why a pair has no rate to quote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PairRateError {
    /// No source knows the pair.
    Unknown,
    /// Only stale rates (the freshest shown).
    Stale(SourcedRate),
    /// A source that might know it could not answer.
    SourcesDown(Vec<RateSourceError>),
}

/// The configured sources, in order.
#[derive(Debug, Clone, Default)]
pub struct RateBook {
    sources: Vec<Arc<dyn RateSource>>,
}

fn is_stale(source: &dyn RateSource, as_of: i64, now: i64) -> bool {
    source
        .max_age_seconds()
        .is_some_and(|max_age| now.saturating_sub(as_of) > max_age)
}

impl RateBook {
    pub fn new(sources: Vec<Arc<dyn RateSource>>) -> RateBook {
        RateBook { sources }
    }

    /// The first fresh rate of `from -> to`.
    pub async fn pair(
        &self,
        from: Asset,
        to: Asset,
        now: i64,
    ) -> Result<SourcedRate, PairRateError> {
        let mut stale: Option<SourcedRate> = None;
        let mut down = Vec::new();
        for source in &self.sources {
            let table = match source.table().await {
                Ok(table) => table,
                Err(error) => {
                    down.push(error);
                    continue;
                }
            };
            let Some(mid) = table.mid(from, to) else {
                continue;
            };
            let rate = SourcedRate {
                mid,
                source: source.name().to_owned(),
                as_of: table.as_of,
                stale: is_stale(source.as_ref(), table.as_of, now),
            };
            if !rate.stale {
                return Ok(rate);
            }
            if stale.as_ref().is_none_or(|seen| seen.as_of < rate.as_of) {
                stale = Some(rate);
            }
        }
        match (stale, down.is_empty()) {
            (Some(rate), _) => Err(PairRateError::Stale(rate)),
            (None, false) => Err(PairRateError::SourcesDown(down)),
            (None, true) => Err(PairRateError::Unknown),
        }
    }

    /// Every asset some source can price against `base`: the first fresh
    /// source's rate, or the freshest stale one, by asset code.
    pub async fn against(&self, base: Asset, now: i64) -> BTreeMap<&'static str, SourcedRate> {
        let mut found: BTreeMap<&'static str, SourcedRate> = BTreeMap::new();
        for source in &self.sources {
            let Ok(table) = source.table().await else {
                continue;
            };
            let stale = is_stale(source.as_ref(), table.as_of, now);
            let codes = std::iter::once(table.base.code()).chain(table.rates.keys().copied());
            for code in codes {
                let Ok(asset) = Asset::parse(code) else {
                    continue;
                };
                if asset == base {
                    continue;
                }
                let Some(mid) = table.mid(base, asset) else {
                    continue;
                };
                let better = match found.get(asset.code()) {
                    None => true,
                    Some(seen) => seen.stale && (!stale || seen.as_of < table.as_of),
                };
                if better {
                    found.insert(
                        asset.code(),
                        SourcedRate {
                            mid: mid.normalize(),
                            source: source.name().to_owned(),
                            as_of: table.as_of,
                            stale,
                        },
                    );
                }
            }
        }
        found
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn config(rates: &[(&str, &str)], as_of: i64, max_age_seconds: u64) -> RateSourceConfig {
        RateSourceConfig {
            name: "static".into(),
            kind: RateSourceKind::Static,
            base: "usd".into(),
            rates: rates
                .iter()
                .map(|(code, rate)| ((*code).to_owned(), (*rate).to_owned()))
                .collect(),
            as_of,
            url: String::new(),
            max_age_seconds,
            refresh_ms: 0,
            timeout_ms: 2_000,
        }
    }

    fn asset(code: &str) -> Asset {
        Asset::parse(code).unwrap()
    }

    fn client() -> reqwest::Client {
        crate::install_crypto_provider();
        reqwest::Client::new()
    }

    #[tokio::test]
    async fn pairs_are_direct_inverted_or_crossed() {
        let client = client();
        let source = config(&[("kes", "129.5"), ("ugx", "3700")], 1_000, 0)
            .build(&client, 0)
            .unwrap();
        let book = RateBook::new(vec![source]);
        let direct = book.pair(asset("usd"), asset("kes"), 5_000).await.unwrap();
        assert_eq!(direct.mid.to_string(), "129.5");
        assert!(!direct.stale);
        let inverted = book.pair(asset("kes"), asset("usd"), 5_000).await.unwrap();
        assert_eq!(inverted.mid, Decimal::ONE / Decimal::new(1295, 1));
        let crossed = book.pair(asset("kes"), asset("ugx"), 5_000).await.unwrap();
        assert_eq!(crossed.mid, Decimal::new(3700, 0) / Decimal::new(1295, 1));
        assert_eq!(
            book.pair(asset("kes"), asset("btc"), 5_000).await,
            Err(PairRateError::Unknown)
        );
    }

    #[tokio::test]
    async fn old_rates_are_stale_and_a_fresh_source_wins() {
        let client = client();
        let old = config(&[("kes", "120")], 1_000, 60)
            .build(&client, 0)
            .unwrap();
        let book = RateBook::new(vec![old.clone()]);
        match book.pair(asset("usd"), asset("kes"), 1_061).await {
            Err(PairRateError::Stale(rate)) => assert_eq!(rate.as_of, 1_000),
            other => panic!("{other:?}"),
        }
        assert!(book.pair(asset("usd"), asset("kes"), 1_060).await.is_ok());
        let mut fresh = config(&[("kes", "130")], 2_000, 60);
        fresh.name = "second".into();
        let book = RateBook::new(vec![old, fresh.build(&client, 0).unwrap()]);
        let rate = book.pair(asset("usd"), asset("kes"), 2_010).await.unwrap();
        assert_eq!(
            (rate.source.as_str(), rate.mid.to_string()),
            ("second", "130".into())
        );
        let listed = book.against(asset("usd"), 2_010).await;
        assert_eq!(listed["kes"].source, "second");
    }

    #[test]
    fn bad_entries_are_refused_with_a_reason() {
        let client = client();
        let problem = |entry: RateSourceConfig| entry.build(&client, 0).unwrap_err();
        assert!(problem(config(&[("kes", "-1")], 0, 0)).contains("kes"));
        assert!(problem(config(&[("kes", "abc")], 0, 0)).contains("kes"));
        assert!(problem(config(&[], 0, 0)).contains("rates"));
        let mut http = config(&[], 0, 60);
        http.kind = RateSourceKind::Http;
        http.url = "ftp://rates".into();
        assert!(problem(http.clone()).contains("url"));
        http.url = "http://127.0.0.1:1/rates".into();
        http.max_age_seconds = 0;
        assert!(problem(http).contains("max_age_seconds"));
    }
}
