//! An exchange-rate JSON endpoint, the shape Malipo's HTTP rate source
//! reads (the common "latest rates" format of public rate APIs, with
//! decimal strings instead of floats):
//!
//! `GET /rates?base=usd` ->
//! `{"base": "usd", "timestamp": 1700000000, "rates": {"kes": "129.5", ...}}`
//!
//! The simulator holds rates against USD and answers any base it holds by
//! crossing through USD (exact decimals). `timestamp` is the time of the
//! request unless a fixed one was set (to make the rates look old).
//!
//! Control (not journaled): `PUT /simulate/rates` with
//! `{"rates": {"kes": "130"}, "timestamp": 1700000000}` replaces the table
//! (`rates` omitted: kept; `timestamp` omitted or null: "now");
//! [`crate::RunningSimulator::set_rates`] does the same from a test.

use crate::clock::now_unix_ms;
use crate::context::SimulatorContext;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, put};
use axum::{Json, Router};
use rust_decimal::Decimal;
use serde::Deserialize;
use serde_json::json;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

/// The rates a new simulator starts with: units per one USD.
pub const DEFAULT_RATES: &[(&str, &str)] = &[
    ("kes", "129.5"),
    ("ugx", "3700"),
    ("tzs", "2650"),
    ("rwf", "1400"),
    ("ngn", "1550"),
    ("ghs", "15.2"),
    ("zar", "18.1"),
    ("eur", "0.92"),
    ("gbp", "0.79"),
    ("btc", "0.0000105"),
    ("eth", "0.00025"),
    ("sol", "0.0065"),
    ("trx", "4.1"),
    ("usdt", "1"),
    ("usdc", "1"),
];

/// The most rates one table may hold.
pub const RATES_MAX: usize = 1_000;

#[derive(Debug)]
struct Table {
    /// Units of each asset per one USD.
    rates: BTreeMap<String, Decimal>,
    /// A fixed `timestamp`; `None`: the time of each request.
    timestamp: Option<i64>,
}

/// The simulator's state.
#[derive(Debug, Clone)]
pub struct RatesState {
    #[allow(dead_code)]
    context: SimulatorContext,
    table: Arc<Mutex<Table>>,
}

fn parse_rates(entries: &BTreeMap<String, String>) -> Result<BTreeMap<String, Decimal>, String> {
    if entries.len() > RATES_MAX {
        return Err(format!("at most {RATES_MAX} rates"));
    }
    entries
        .iter()
        .map(|(code, text)| {
            Decimal::from_str_exact(text.trim())
                .ok()
                .filter(|rate| *rate > Decimal::ZERO)
                .map(|rate| (code.to_ascii_lowercase(), rate))
                .ok_or_else(|| format!("the rate of {code} is not a positive decimal"))
        })
        .collect()
}

impl RatesState {
    pub fn new(context: SimulatorContext) -> RatesState {
        let rates = DEFAULT_RATES
            .iter()
            .filter_map(|(code, rate)| {
                Decimal::from_str_exact(rate)
                    .ok()
                    .map(|rate| ((*code).to_owned(), rate))
            })
            .collect();
        RatesState {
            context,
            table: Arc::new(Mutex::new(Table {
                rates,
                timestamp: None,
            })),
        }
    }

    /// Replaces the rates (units per one USD; `None` keeps them) and the
    /// timestamp (`None`: the time of each request).
    pub fn set(
        &self,
        rates: Option<&BTreeMap<String, String>>,
        timestamp: Option<i64>,
    ) -> Result<(), String> {
        let parsed = rates.map(parse_rates).transpose()?;
        let mut table = self.table.lock().map_err(|_| "poisoned".to_owned())?;
        if let Some(parsed) = parsed {
            table.rates = parsed;
        }
        table.timestamp = timestamp;
        Ok(())
    }

    fn answer(&self, base: &str) -> Result<serde_json::Value, String> {
        let table = self.table.lock().map_err(|_| "poisoned".to_owned())?;
        let base = base.to_ascii_lowercase();
        let base_rate = if base == "usd" {
            Decimal::ONE
        } else {
            *table
                .rates
                .get(&base)
                .ok_or_else(|| format!("unsupported base `{base}`"))?
        };
        let mut rates = serde_json::Map::new();
        if base != "usd" {
            let usd = Decimal::ONE
                .checked_div(base_rate)
                .ok_or("overflow")?
                .normalize();
            rates.insert("usd".into(), json!(usd.to_string()));
        }
        for (code, rate) in &table.rates {
            if *code == base {
                continue;
            }
            let crossed = rate.checked_div(base_rate).ok_or("overflow")?.normalize();
            rates.insert(code.clone(), json!(crossed.to_string()));
        }
        Ok(json!({
            "base": base,
            "timestamp": table.timestamp.unwrap_or(now_unix_ms() / 1000),
            "rates": rates,
        }))
    }
}

#[derive(Debug, Deserialize)]
struct RatesQuery {
    base: Option<String>,
}

async fn latest(State(state): State<RatesState>, Query(query): Query<RatesQuery>) -> Response {
    match state.answer(query.base.as_deref().unwrap_or("usd")) {
        Ok(body) => Json(body).into_response(),
        Err(error) => (
            StatusCode::BAD_REQUEST,
            Json(json!({"error": true, "description": error})),
        )
            .into_response(),
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SetRates {
    rates: Option<BTreeMap<String, String>>,
    timestamp: Option<i64>,
}

async fn set_rates(State(state): State<RatesState>, Json(body): Json<SetRates>) -> Response {
    match state.set(body.rates.as_ref(), body.timestamp) {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(error) => (StatusCode::BAD_REQUEST, Json(json!({"error": error}))).into_response(),
    }
}

pub fn router(state: RatesState) -> Router {
    Router::new()
        .route("/rates", get(latest))
        .route("/simulate/rates", put(set_rates))
        .with_state(state)
}
