//! AMM liquidity pools and the router over them, settled through the
//! ledger (`malipo-amm` does the arithmetic; this module the state, the
//! locks and the money).
//!
//! # One operation, one transaction
//!
//! 1. Lock the pool's row (`FOR UPDATE` on PostgreSQL; SQLite has one
//!    writer). A route locks every active book of the mode first
//!    (`trading/route.rs`), then every pool of the mode, each in id order,
//!    so two routes never deadlock. Its book legs are the customer's
//!    market IOC orders, settled and logged as any order.
//! 2. Rebuild the [`Pool`] from the row and run the operation on it. A
//!    refusal (slippage, deadline, too little liquidity) changes nothing.
//! 3. Post the operation's movements as one ledger batch: the customer's
//!    `available` accounts, the pool's `reserve` accounts, the LP share
//!    accounts (ledger asset: the pool's id). A customer that cannot pay
//!    is a 400 `balance_insufficient` and the transaction rolls back.
//! 4. Write the pool row, the event and the Idempotency-Key's answer, and
//!    commit. The ledger therefore always equals the rows; `malipo trading
//!    check` proves it.

use crate::auth::{Actor, AuditChange, MerchantContext, audit_state};
use crate::customers::customer_of;
use crate::idempotency::{IdempotencyGuard, complete};
use crate::payments::emit;
use crate::{ApiError, ErrorKind, Gateway, GatewayError, GatewayResult, ledger_entries, now_ms};
use malipo_amm::{
    AddLiquidity, AmmError, AssetAmount, Deadline, MINIMUM_LIQUIDITY, Movement, NewPool, Party,
    Pool, RemoveLiquidity, Route, RouteError, RouteRequest, SwapExactIn, Unit, Venue, VenueId,
    Venues,
};
use malipo_core::Asset;
use malipo_core::id::{IdKind, new_id};
use malipo_core::objects::{List, Scope};
use malipo_ledger::{Account, TransferError, TransferKind, TransferRequest};
use malipo_store::{Conn, PoolRecord, StoreError};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Decimal places of a pool's `price` (a ratio of minor units, truncated).
pub const PRICE_DECIMALS: u32 = 18;

/// `POST /v1/admin/trading/pools`
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"asset_a": "btc", "asset_b": "usd", "fee_bps": 30}))]
pub struct CreatePool {
    /// One asset, e.g. `btc`.
    pub asset_a: Option<String>,
    /// The other asset, e.g. `usd`.
    pub asset_b: Option<String>,
    /// The swap fee, kept by the pool: 0 to 1,000 (10%); default 30.
    pub fee_bps: Option<u64>,
    /// `active` (default) or `halted` (refuses swaps and new liquidity).
    pub status: Option<String>,
}

/// `POST /v1/trading/pools/{id}/add_liquidity`. Amounts follow the pool's
/// `assets` order.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"customer": "cus_01J...", "amount_a": 1000000, "amount_b": 5000000000u64, "min_shares": 1}))]
pub struct AddLiquidityRequest {
    pub customer: Option<String>,
    /// The most of `assets[0]` to deposit (minor units, > 0).
    pub amount_a: Option<u64>,
    /// The most of `assets[1]` to deposit (minor units, > 0).
    pub amount_b: Option<u64>,
    /// Refused (nothing moves) if fewer shares would be minted; default 0.
    pub min_shares: Option<u64>,
    /// Refused if the pool's ratio takes less than this of `assets[0]`.
    pub min_amount_a: Option<u64>,
    /// Refused if the pool's ratio takes less than this of `assets[1]`.
    pub min_amount_b: Option<u64>,
    /// Refused after this time (Unix seconds).
    pub deadline: Option<i64>,
}

/// `POST /v1/trading/pools/{id}/remove_liquidity`
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RemoveLiquidityRequest {
    pub customer: Option<String>,
    /// LP shares to burn (> 0).
    pub shares: Option<u64>,
    /// Refused unless at least this much of `assets[0]` is paid out.
    pub min_amount_a: Option<u64>,
    /// Refused unless at least this much of `assets[1]` is paid out.
    pub min_amount_b: Option<u64>,
    /// Refused after this time (Unix seconds).
    pub deadline: Option<i64>,
}

/// `POST /v1/trading/swaps`
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"customer": "cus_01J...", "pool": "pool_btc_usd_30", "asset_in": "usd",
    "amount_in": 100000, "min_amount_out": 190, "deadline": 1767225600}))]
pub struct CreateSwap {
    pub customer: Option<String>,
    /// The pool's id (`pool_…`).
    pub pool: Option<String>,
    /// The asset sold; the other asset of the pool is bought.
    pub asset_in: Option<String>,
    /// Minor units sold (> 0).
    pub amount_in: Option<u64>,
    /// Refused (nothing moves) if the output would be less.
    pub min_amount_out: Option<u64>,
    /// Refused after this time (Unix seconds).
    pub deadline: Option<i64>,
}

/// `POST /v1/trading/route` and `POST /v1/trading/route/execute` (the
/// latter with `customer`, `min_amount_out` and `deadline`).
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"asset_in": "kes", "asset_out": "btc", "amount_in": 1000000, "max_hops": 3, "allow_split": true}))]
pub struct RouteParams {
    pub asset_in: Option<String>,
    pub asset_out: Option<String>,
    /// Minor units sold (> 0).
    pub amount_in: Option<u64>,
    /// 1 to 3 (default 3).
    pub max_hops: Option<u64>,
    /// Whether the input may be split across two paths (default true).
    pub allow_split: Option<bool>,
    /// Execute only: the customer who pays and receives.
    pub customer: Option<String>,
    /// Execute only (required): refused, moving nothing, below it.
    pub min_amount_out: Option<u64>,
    /// Execute only: refused after this time (Unix seconds).
    pub deadline: Option<i64>,
}

/// A liquidity pool as it stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct LiquidityPool {
    /// `pool_{asset_a}_{asset_b}_{fee_bps}`.
    pub id: String,
    /// Always `liquidity_pool`.
    pub object: String,
    pub livemode: bool,
    /// The two assets, by code.
    pub assets: Vec<String>,
    /// Minor units, in the order of `assets`.
    #[schema(value_type = Vec<u64>)]
    pub reserves: Vec<u128>,
    /// LP shares outstanding, the locked minimum included.
    #[schema(value_type = u64)]
    pub total_shares: u128,
    /// Shares locked forever by the first deposit (0 before it).
    #[schema(value_type = u64)]
    pub locked_shares: u128,
    pub fee_bps: u16,
    /// Minor units of `assets[1]` per minor unit of `assets[0]`, before
    /// fees, truncated to 18 decimals; null while the pool is empty.
    pub price: Option<String>,
    /// `active` or `halted`.
    pub status: String,
    pub created: i64,
    pub updated: i64,
}

/// One hop: `amount_in` of `asset_in` offered on a venue (a pool or a
/// pair's order book) for `amount_out` of `asset_out`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct SwapLeg {
    /// `pool` or `book`.
    pub venue: String,
    /// The pool's id (`pool_…`) or the pair's id (e.g. `btc_usd`).
    pub venue_id: String,
    /// The pool's id on a pool leg, null on a book leg (kept for clients
    /// that read it before books joined the router).
    pub pool: Option<String>,
    /// Executed book legs: the customer's market IOC order (`ord_…`) that
    /// ran the leg, with its fills.
    pub order: Option<String>,
    pub asset_in: String,
    #[schema(value_type = u64)]
    pub amount_in: u128,
    /// The part of `amount_in` the venue did not use, left in the
    /// customer's balance: always 0 on a pool; on a book, what is short of a
    /// whole lot, of one more lot's cost, or beyond the book's depth.
    #[schema(value_type = u64)]
    pub amount_unspent: u128,
    pub asset_out: String,
    #[schema(value_type = u64)]
    pub amount_out: u128,
}

impl SwapLeg {
    fn pool(
        pool: &str,
        asset_in: Asset,
        amount_in: u128,
        asset_out: Asset,
        amount_out: u128,
    ) -> Self {
        SwapLeg {
            venue: "pool".into(),
            venue_id: pool.to_owned(),
            pool: Some(pool.to_owned()),
            order: None,
            asset_in: asset_in.code().to_owned(),
            amount_in,
            amount_unspent: 0,
            asset_out: asset_out.code().to_owned(),
            amount_out,
        }
    }
}

/// One path of a route and the part of the input sent through it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct RoutePath {
    #[schema(value_type = u64)]
    pub amount_in: u128,
    #[schema(value_type = u64)]
    pub amount_out: u128,
    pub legs: Vec<SwapLeg>,
}

/// `POST /v1/trading/route`: the best execution now, moving nothing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct RouteQuote {
    /// Always `route_quote`.
    pub object: String,
    pub livemode: bool,
    pub asset_in: String,
    pub asset_out: String,
    #[schema(value_type = u64)]
    pub amount_in: u128,
    /// What executing now would give.
    #[schema(value_type = u64)]
    pub amount_out: u128,
    /// The shortfall against the paths' mid prices, fees included, in basis
    /// points rounded up.
    pub price_impact_bps: u32,
    /// One path, or two when splitting gives more.
    pub paths: Vec<RoutePath>,
    /// How many complete paths were compared.
    pub paths_considered: u64,
}

/// A swap on one pool, or an executed route (several legs).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Swap {
    /// `swp_…`; its ledger transfers are `swp_….{n}` (an executed route's
    /// pool legs: `swp_….{leg}.{n}`; its book legs are orders).
    pub id: String,
    /// Always `swap`.
    pub object: String,
    pub livemode: bool,
    pub customer: String,
    pub asset_in: String,
    #[schema(value_type = u64)]
    pub amount_in: u128,
    pub asset_out: String,
    #[schema(value_type = u64)]
    pub amount_out: u128,
    /// The paths as executed (one path of one leg for a pool swap).
    pub paths: Vec<RoutePath>,
    /// Routes only: the impact quoted before executing.
    pub price_impact_bps: Option<u32>,
    pub created: i64,
}

/// What adding or removing liquidity did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct PoolLiquidity {
    /// `liq_…`; its ledger transfers are `liq_….{n}`.
    pub id: String,
    /// Always `pool_liquidity`.
    pub object: String,
    pub livemode: bool,
    pub customer: String,
    pub pool: String,
    /// `add` or `remove`.
    pub action: String,
    /// Minor units deposited (add) or paid out (remove), in the order of the
    /// pool's `assets`.
    #[schema(value_type = Vec<u64>)]
    pub amounts: Vec<u128>,
    /// Shares minted (add) or burned (remove).
    #[schema(value_type = u64)]
    pub shares: u128,
    /// The pool after the operation.
    pub pool_after: LiquidityPool,
    pub created: i64,
}

/// What the check found about pools.
#[derive(Debug, Clone, Default, Serialize)]
pub struct PoolCheck {
    pub pools: usize,
    pub problems: Vec<String>,
}

fn pool_id(assets: [&str; 2], fee_bps: u16) -> String {
    format!("pool_{}_{}_{fee_bps}", assets[0], assets[1])
}

fn parse_asset(param: &str, value: Option<String>) -> Result<Asset, ApiError> {
    let code = value.ok_or_else(|| ApiError::missing(param))?;
    Asset::parse(&code.to_ascii_lowercase())
        .map_err(|error| ApiError::invalid(param, error.to_string()))
}

fn parse_status(value: Option<String>) -> Result<String, ApiError> {
    match value.as_deref() {
        None | Some("active") => Ok("active".into()),
        Some("halted") => Ok("halted".into()),
        Some(other) => Err(ApiError::invalid(
            "status",
            format!("unknown status `{other}`: use active or halted"),
        )),
    }
}

fn positive(param: &str, value: Option<u64>) -> Result<u128, ApiError> {
    match value {
        None => Err(ApiError::missing(param)),
        Some(0) => Err(ApiError::invalid(
            param,
            format!("{param} must be positive"),
        )),
        Some(value) => Ok(u128::from(value)),
    }
}

fn deadline(value: Option<i64>) -> Result<Deadline, ApiError> {
    let now = now_ms();
    match value {
        None => Ok(Deadline::none(now)),
        Some(seconds) if seconds <= 0 => Err(ApiError::invalid(
            "deadline",
            "deadline must be a positive Unix time in seconds",
        )),
        Some(seconds) => Ok(Deadline {
            now_ms: now,
            deadline_ms: seconds.saturating_mul(1000),
        }),
    }
}

/// A pool refusal as the API answers it, naming the field to change.
/// `min_param` names the minimum that a slippage refusal is about.
fn amm_error(error: AmmError, amount_param: &str, min_param: &str) -> GatewayError {
    let message = error.to_string();
    let (kind, code, param) = match error {
        AmmError::Slippage { .. } | AmmError::ExcessiveInput { .. } => {
            (ErrorKind::InvalidRequest, "slippage", min_param)
        }
        AmmError::Expired { .. } => (ErrorKind::InvalidRequest, "deadline_passed", "deadline"),
        AmmError::AssetNotInPool(_) | AmmError::SameAsset => {
            (ErrorKind::InvalidRequest, "parameter_invalid", "asset_in")
        }
        AmmError::ZeroOutput | AmmError::InsufficientLiquidity => (
            ErrorKind::InvalidRequest,
            "insufficient_liquidity",
            amount_param,
        ),
        AmmError::BurnExceedsUnlockedShares { .. } | AmmError::InsufficientLiquidityBurned => {
            (ErrorKind::InvalidRequest, "parameter_invalid", "shares")
        }
        AmmError::ZeroAmount
        | AmmError::InsufficientInitialLiquidity { .. }
        | AmmError::InsufficientLiquidityMinted
        | AmmError::Overflow => (ErrorKind::InvalidRequest, "parameter_invalid", amount_param),
        AmmError::FeeTooHigh { .. } => (ErrorKind::InvalidRequest, "parameter_invalid", "fee_bps"),
        AmmError::InvalidVenueId | AmmError::InvalidBook(_) => return internal(message),
    };
    ApiError::new(kind, code, message).with_param(param).into()
}

fn route_error(error: RouteError) -> GatewayError {
    let message = error.to_string();
    let (code, param) = match error {
        RouteError::SameAsset => ("parameter_invalid", "asset_out"),
        RouteError::ZeroAmount | RouteError::Overflow => ("parameter_invalid", "amount_in"),
        RouteError::HopsOutOfRange { .. } => ("parameter_invalid", "max_hops"),
        RouteError::NoRoute { .. } => ("no_route", "asset_out"),
        RouteError::TooManyPaths { .. } => ("parameter_invalid", "max_hops"),
        RouteError::Slippage { .. } => ("slippage", "min_amount_out"),
        RouteError::Expired { .. } => ("deadline_passed", "deadline"),
        RouteError::Venue { error, .. } => return amm_error(error, "amount_in", "min_amount_out"),
        RouteError::TooManyVenues { .. }
        | RouteError::DuplicateVenue(_)
        | RouteError::UnknownVenue(_)
        | RouteError::MalformedRoute => return internal(message),
    };
    ApiError::new(ErrorKind::InvalidRequest, code, message)
        .with_param(param)
        .into()
}

fn internal(message: impl Into<String>) -> GatewayError {
    GatewayError::internal(ApiError::new(
        ErrorKind::Conflict,
        "pool_inconsistent",
        message,
    ))
}

/// `numerator / denominator` truncated to [`PRICE_DECIMALS`] places.
fn decimal_ratio(numerator: u128, denominator: u128) -> Option<String> {
    if denominator == 0 {
        return None;
    }
    let whole = numerator / denominator;
    let mut rest = numerator % denominator;
    let mut digits = String::with_capacity(PRICE_DECIMALS as usize);
    for _ in 0..PRICE_DECIMALS {
        // rest < denominator, so rest * 10 overflows only past 2^124.
        let scaled = rest.checked_mul(10)?;
        digits.push(char::from(b'0' + (scaled / denominator) as u8));
        rest = scaled % denominator;
    }
    Some(format!("{whole}.{digits}"))
}

fn view(record: &PoolRecord) -> LiquidityPool {
    LiquidityPool {
        id: record.id.clone(),
        object: "liquidity_pool".into(),
        livemode: record.livemode,
        assets: record.assets.to_vec(),
        reserves: record.reserves.to_vec(),
        total_shares: record.shares_total,
        locked_shares: if record.shares_total > 0 {
            MINIMUM_LIQUIDITY
        } else {
            0
        },
        fee_bps: record.fee_bps,
        price: if record.shares_total > 0 {
            decimal_ratio(record.reserves[1], record.reserves[0])
        } else {
            None
        },
        status: record.status.clone(),
        created: record.created,
        updated: record.updated,
    }
}

fn assets_of(record: &PoolRecord) -> GatewayResult<[Asset; 2]> {
    let parse = |code: &str| {
        Asset::parse(code)
            .map_err(|_| internal(format!("pool {} has an unknown asset {code}", record.id)))
    };
    Ok([parse(&record.assets[0])?, parse(&record.assets[1])?])
}

/// The pool a row holds; `None` while it has no liquidity.
fn pool_of(record: &PoolRecord) -> GatewayResult<Option<Pool>> {
    if record.shares_total == 0 {
        return Ok(None);
    }
    Pool::from_state(
        VenueId(record.id.clone()),
        assets_of(record)?,
        record.reserves,
        record.fee_bps,
        record.shares_total,
    )
    .map(Some)
    .map_err(|error| internal(format!("pool {} is invalid: {error}", record.id)))
}

fn set_state(record: &mut PoolRecord, pool: &Pool) {
    record.reserves = pool.reserves();
    record.shares_total = pool.shares_total();
    record.updated = now_ms() / 1000;
}

/// A quoted route's paths, each leg naming its venue's kind.
fn legs(venues: &Venues, parts: &[malipo_amm::RoutePart]) -> Vec<RoutePath> {
    parts
        .iter()
        .map(|part| RoutePath {
            amount_in: part.amount_in,
            amount_out: part.amount_out,
            legs: part
                .hops
                .iter()
                .map(|hop| {
                    let mut leg = SwapLeg::pool(
                        &hop.venue.0,
                        hop.asset_in,
                        hop.amount_in,
                        hop.asset_out,
                        hop.amount_out,
                    );
                    if let Some(Venue::Book(_)) = venues.get(&hop.venue) {
                        leg.venue = "book".into();
                        leg.pool = None;
                    }
                    leg.amount_unspent = hop.amount_unspent;
                    leg
                })
                .collect(),
        })
        .collect()
}

/// The ledger account of a movement's party.
fn account_of(livemode: bool, party: &Party, unit: &Unit) -> GatewayResult<Account> {
    let asset = match unit {
        Unit::Asset(asset) => asset.code().to_owned(),
        Unit::Shares(pool) => pool.0.clone(),
    };
    Ok(match party {
        // A customer's LP shares sit next to its assets (ledger asset: the
        // pool's id), so they show in its balances.
        Party::Owner(customer) => {
            ledger_entries::customer_account(livemode, customer, &asset, false)
        }
        Party::Pool(pool) => ledger_entries::pool_reserve_account(livemode, &pool.0, &asset),
        Party::ShareIssuer(pool) => ledger_entries::pool_shares_issued_account(livemode, &pool.0),
        Party::LockedShares(pool) => ledger_entries::pool_shares_locked_account(livemode, &pool.0),
        // Book legs settle as orders (`trading/route.rs`), never as
        // movements.
        Party::Book(book) => {
            return Err(internal(format!("book {book} has no movements to settle")));
        }
    })
}

/// Posts one operation's movements as one ledger batch in the caller's
/// transaction (transfers `{id}.{n}`). A customer that can't pay is a 400
/// `balance_insufficient` naming `param`.
async fn settle(
    conn: &mut Conn<'_>,
    livemode: bool,
    id: &str,
    movements: &[Movement],
    param: &str,
) -> GatewayResult<()> {
    let mut accounts = Vec::with_capacity(movements.len() * 2);
    let mut transfers = Vec::with_capacity(movements.len());
    for (index, movement) in movements.iter().enumerate() {
        if movement.amount == 0 {
            continue;
        }
        let debit = account_of(livemode, &movement.from, &movement.unit)?;
        let credit = account_of(livemode, &movement.to, &movement.unit)?;
        transfers.push(TransferRequest {
            id: format!("{id}.{index}"),
            debit_account_id: debit.id.clone(),
            credit_account_id: credit.id.clone(),
            amount: movement.amount,
            asset: debit.asset.clone(),
            kind: TransferKind::Posted,
            pending_id: None,
            code: "pool".into(),
            source_id: None,
        });
        accounts.push(debit);
        accounts.push(credit);
    }
    let created = now_ms() / 1000;
    match conn
        .post_transfers_creating_accounts(&accounts, &transfers, created, now_ms())
        .await
    {
        Ok(outcome) => {
            metrics::counter!("malipo_ledger_transfers_total")
                .increment(outcome.created.len() as u64);
            Ok(())
        }
        Err(StoreError::Ledger(error)) if error.error == TransferError::ExceedsCredits => {
            Err(ApiError::new(
                ErrorKind::InvalidRequest,
                "balance_insufficient",
                "the customer's available balance cannot pay for this",
            )
            .with_param(param)
            .into())
        }
        Err(error) => Err(error.into()),
    }
}

/// A parsed route request.
struct RouteInput {
    request: RouteRequest,
}

impl RouteInput {
    fn parse(params: &RouteParams) -> Result<RouteInput, ApiError> {
        let asset_in = parse_asset("asset_in", params.asset_in.clone())?;
        let asset_out = parse_asset("asset_out", params.asset_out.clone())?;
        if asset_in == asset_out {
            return Err(ApiError::invalid(
                "asset_out",
                "asset_out must differ from asset_in",
            ));
        }
        let amount_in = positive("amount_in", params.amount_in)?;
        let max_hops = params.max_hops.unwrap_or(malipo_amm::HOPS_MAX as u64);
        if max_hops == 0 || max_hops > malipo_amm::HOPS_MAX as u64 {
            return Err(ApiError::invalid(
                "max_hops",
                format!("max_hops must be 1 to {}", malipo_amm::HOPS_MAX),
            ));
        }
        Ok(RouteInput {
            request: RouteRequest {
                asset_in,
                asset_out,
                amount_in,
                min_amount_out: 0,
                max_hops: max_hops as usize,
                split: params.allow_split.unwrap_or(true),
            },
        })
    }
}

/// The active pools with liquidity among `records` that trade `a`
/// against `b` (either order): the desk's pool prices.
pub(crate) fn active_pools_of(
    records: &[PoolRecord],
    a: Asset,
    b: Asset,
) -> GatewayResult<Vec<Pool>> {
    let mut pools = Vec::new();
    for record in records.iter().filter(|record| {
        record.status == "active"
            && ((record.assets[0] == a.code() && record.assets[1] == b.code())
                || (record.assets[0] == b.code() && record.assets[1] == a.code()))
    }) {
        pools.extend(pool_of(record)?);
    }
    Ok(pools)
}

/// The router over `books` (first) and the active pools with liquidity
/// among `records`; past [`malipo_amm::VENUES_MAX`] the rest are left out.
fn venues_of(mut venues: Vec<Venue>, records: &[PoolRecord]) -> GatewayResult<Venues> {
    for record in records.iter().filter(|record| record.status == "active") {
        if let Some(pool) = pool_of(record)? {
            venues.push(Venue::from(pool));
        }
    }
    if venues.len() > malipo_amm::VENUES_MAX {
        venues.truncate(malipo_amm::VENUES_MAX);
    }
    Venues::new(venues).map_err(route_error)
}

fn quote_of(livemode: bool, venues: &Venues, route: &Route) -> RouteQuote {
    RouteQuote {
        object: "route_quote".into(),
        livemode,
        asset_in: route.asset_in.code().to_owned(),
        asset_out: route.asset_out.code().to_owned(),
        amount_in: route.amount_in,
        amount_out: route.amount_out,
        price_impact_bps: route.price_impact_bps,
        paths: legs(venues, &route.parts),
        paths_considered: route.paths_considered as u64,
    }
}

impl Gateway {
    /// Operator: a new pool (a row per mode, empty until the first
    /// liquidity). Its id is `pool_{a}_{b}_{fee_bps}`, the assets by code.
    pub async fn create_pool(
        &self,
        actor: &Actor,
        request: CreatePool,
    ) -> GatewayResult<LiquidityPool> {
        let first = parse_asset("asset_a", request.asset_a)?;
        let second = parse_asset("asset_b", request.asset_b)?;
        if first == second {
            return Err(ApiError::invalid("asset_b", "asset_b must differ from asset_a").into());
        }
        let fee_bps = request.fee_bps.unwrap_or(30);
        if fee_bps > u64::from(malipo_amm::FEE_BPS_MAX) {
            return Err(ApiError::invalid(
                "fee_bps",
                format!(
                    "fee_bps must be at most {} basis points",
                    malipo_amm::FEE_BPS_MAX
                ),
            )
            .into());
        }
        let fee_bps = fee_bps as u16;
        let status = parse_status(request.status)?;
        let mut codes = [first.code(), second.code()];
        codes.sort_unstable();
        let id = pool_id(codes, fee_bps);
        let now = now_ms() / 1000;
        let mut tx = self.store().begin().await?;
        let mut conn = tx.conn();
        let mut created = None;
        for livemode in [false, true] {
            let record = PoolRecord {
                id: id.clone(),
                livemode,
                assets: codes.map(str::to_owned),
                fee_bps,
                status: status.clone(),
                reserves: [0, 0],
                shares_total: 0,
                created: now,
                updated: now,
            };
            if !conn.insert_trading_pool(&record).await? {
                return Err(ApiError::new(
                    ErrorKind::Conflict,
                    "pool_exists",
                    format!("pool `{id}` exists (same assets and fee)"),
                )
                .with_param("asset_a")
                .into());
            }
            created.get_or_insert(view(&record));
        }
        let pool = created.ok_or_else(|| internal("no pool row"))?;
        actor
            .record(
                &mut tx,
                AuditChange {
                    action: "liquidity_pool.create",
                    object_type: "liquidity_pool",
                    object_id: &id,
                    merchant_id: None,
                    livemode: None,
                    before: None,
                    after: Some(audit_state(&pool)?),
                },
            )
            .await?;
        tx.commit().await?;
        Ok(pool)
    }

    /// The pools of the key's mode.
    pub async fn pools(&self, context: &MerchantContext) -> GatewayResult<List<LiquidityPool>> {
        context.require(Scope::ReadOnly)?;
        let mut reader = self.store().reader().await?;
        let records = reader
            .conn()
            .trading_pools(context.livemode(), false)
            .await?;
        Ok(List::new(records.iter().map(view).collect(), false))
    }

    pub async fn pool(&self, context: &MerchantContext, id: &str) -> GatewayResult<LiquidityPool> {
        context.require(Scope::ReadOnly)?;
        let mut reader = self.store().reader().await?;
        let record = reader
            .conn()
            .trading_pool(id, context.livemode(), false)
            .await?
            .ok_or_else(|| ApiError::not_found("liquidity pool", id))?;
        Ok(view(&record))
    }

    /// The pool's row, locked, and refused if halted.
    async fn pool_for_update(
        conn: &mut Conn<'_>,
        id: &str,
        livemode: bool,
        param: &str,
    ) -> GatewayResult<PoolRecord> {
        let record = conn
            .trading_pool(id, livemode, true)
            .await?
            .ok_or_else(|| ApiError::not_found("liquidity pool", id).with_param(param))?;
        if record.status != "active" {
            return Err(ApiError::new(
                ErrorKind::Conflict,
                "pool_halted",
                format!("pool `{id}` is halted"),
            )
            .with_param(param)
            .into());
        }
        Ok(record)
    }

    pub async fn add_liquidity(
        &self,
        context: &MerchantContext,
        id: &str,
        request: AddLiquidityRequest,
        guard: Option<IdempotencyGuard>,
    ) -> GatewayResult<PoolLiquidity> {
        context.require(Scope::Full)?;
        let customer_id = request
            .customer
            .clone()
            .ok_or_else(|| ApiError::missing("customer"))?;
        let amount_a = positive("amount_a", request.amount_a)?;
        let amount_b = positive("amount_b", request.amount_b)?;
        let min_shares = u128::from(request.min_shares.unwrap_or(0));
        let deadline = deadline(request.deadline)?;
        let livemode = context.livemode();
        let mut tx = self.store().begin().await?;
        let mut conn = tx.conn();
        let customer = customer_of(&mut conn, context, &customer_id, "customer").await?;
        let mut record = Self::pool_for_update(&mut conn, id, livemode, "id").await?;
        let assets = assets_of(&record)?;
        let desired = [
            AssetAmount {
                asset: assets[0],
                amount: amount_a,
            },
            AssetAmount {
                asset: assets[1],
                amount: amount_b,
            },
        ];
        let (pool, receipt) = match pool_of(&record)? {
            None => {
                deadline
                    .check()
                    .map_err(|error| amm_error(error, "amount_a", "min_shares"))?;
                Pool::create(NewPool {
                    id: VenueId(record.id.clone()),
                    provider: customer.customer.id.clone(),
                    deposits: desired,
                    fee_bps: record.fee_bps,
                })
                .map_err(|error| amm_error(error, "amount_a", "min_shares"))?
            }
            Some(mut pool) => {
                let receipt = pool
                    .add_liquidity(AddLiquidity {
                        provider: customer.customer.id.clone(),
                        desired,
                        minimum: [
                            AssetAmount {
                                asset: assets[0],
                                amount: u128::from(request.min_amount_a.unwrap_or(0)),
                            },
                            AssetAmount {
                                asset: assets[1],
                                amount: u128::from(request.min_amount_b.unwrap_or(0)),
                            },
                        ],
                        deadline,
                    })
                    .map_err(|error| {
                        let min = match &error {
                            AmmError::Slippage { asset, .. } if *asset == assets[1] => {
                                "min_amount_b"
                            }
                            _ => "min_amount_a",
                        };
                        amm_error(error, "amount_a", min)
                    })?;
                (pool, receipt)
            }
        };
        if receipt.shares < min_shares {
            return Err(ApiError::new(
                ErrorKind::InvalidRequest,
                "slippage",
                format!(
                    "slippage: {} shares would be minted, below the minimum {min_shares}",
                    receipt.shares
                ),
            )
            .with_param("min_shares")
            .into());
        }
        let liquidity_id = new_id(IdKind::Liquidity);
        settle(
            &mut conn,
            livemode,
            &liquidity_id,
            &receipt.movements,
            "amount_a",
        )
        .await?;
        set_state(&mut record, &pool);
        conn.update_trading_pool(&record).await?;
        let answer = PoolLiquidity {
            id: liquidity_id,
            object: "pool_liquidity".into(),
            livemode,
            customer: customer.customer.id.clone(),
            pool: record.id.clone(),
            action: "add".into(),
            amounts: receipt.amounts.iter().map(|amount| amount.amount).collect(),
            shares: receipt.shares,
            pool_after: view(&record),
            created: now_ms() / 1000,
        };
        emit(
            &mut conn,
            &context.merchant_id,
            livemode,
            "pool_liquidity.added",
            &answer,
        )
        .await?;
        complete(&mut conn, guard.as_ref(), &answer).await?;
        tx.commit().await?;
        Ok(answer)
    }

    pub async fn remove_liquidity(
        &self,
        context: &MerchantContext,
        id: &str,
        request: RemoveLiquidityRequest,
        guard: Option<IdempotencyGuard>,
    ) -> GatewayResult<PoolLiquidity> {
        context.require(Scope::Full)?;
        let customer_id = request
            .customer
            .clone()
            .ok_or_else(|| ApiError::missing("customer"))?;
        let shares = positive("shares", request.shares)?;
        let deadline = deadline(request.deadline)?;
        let livemode = context.livemode();
        let mut tx = self.store().begin().await?;
        let mut conn = tx.conn();
        let customer = customer_of(&mut conn, context, &customer_id, "customer").await?;
        // Withdrawing stays possible from a halted pool.
        let mut record = conn
            .trading_pool(id, livemode, true)
            .await?
            .ok_or_else(|| ApiError::not_found("liquidity pool", id).with_param("id"))?;
        let assets = assets_of(&record)?;
        let mut pool = pool_of(&record)?.ok_or_else(|| {
            ApiError::invalid("shares", "the pool has no liquidity yet").with_param("shares")
        })?;
        let receipt = pool
            .remove_liquidity(RemoveLiquidity {
                provider: customer.customer.id.clone(),
                shares,
                minimum: [
                    AssetAmount {
                        asset: assets[0],
                        amount: u128::from(request.min_amount_a.unwrap_or(0)),
                    },
                    AssetAmount {
                        asset: assets[1],
                        amount: u128::from(request.min_amount_b.unwrap_or(0)),
                    },
                ],
                deadline,
            })
            .map_err(|error| {
                let min = match &error {
                    AmmError::Slippage { asset, .. } if *asset == assets[1] => "min_amount_b",
                    _ => "min_amount_a",
                };
                amm_error(error, "shares", min)
            })?;
        let liquidity_id = new_id(IdKind::Liquidity);
        settle(
            &mut conn,
            livemode,
            &liquidity_id,
            &receipt.movements,
            "shares",
        )
        .await?;
        set_state(&mut record, &pool);
        conn.update_trading_pool(&record).await?;
        let answer = PoolLiquidity {
            id: liquidity_id,
            object: "pool_liquidity".into(),
            livemode,
            customer: customer.customer.id.clone(),
            pool: record.id.clone(),
            action: "remove".into(),
            amounts: receipt.amounts.iter().map(|amount| amount.amount).collect(),
            shares,
            pool_after: view(&record),
            created: now_ms() / 1000,
        };
        emit(
            &mut conn,
            &context.merchant_id,
            livemode,
            "pool_liquidity.removed",
            &answer,
        )
        .await?;
        complete(&mut conn, guard.as_ref(), &answer).await?;
        tx.commit().await?;
        Ok(answer)
    }

    /// Sells an exact input on one pool.
    pub async fn create_swap(
        &self,
        context: &MerchantContext,
        request: CreateSwap,
        guard: Option<IdempotencyGuard>,
    ) -> GatewayResult<Swap> {
        context.require(Scope::Full)?;
        let customer_id = request
            .customer
            .clone()
            .ok_or_else(|| ApiError::missing("customer"))?;
        let pool_id = request
            .pool
            .clone()
            .ok_or_else(|| ApiError::missing("pool"))?;
        let asset_in = parse_asset("asset_in", request.asset_in.clone())?;
        let amount_in = positive("amount_in", request.amount_in)?;
        let min_amount_out = request
            .min_amount_out
            .map(u128::from)
            .ok_or_else(|| ApiError::missing("min_amount_out"))?;
        let deadline = deadline(request.deadline)?;
        let livemode = context.livemode();
        let mut tx = self.store().begin().await?;
        let mut conn = tx.conn();
        let customer = customer_of(&mut conn, context, &customer_id, "customer").await?;
        let mut record = Self::pool_for_update(&mut conn, &pool_id, livemode, "pool").await?;
        let mut pool = pool_of(&record)?.ok_or_else(|| {
            ApiError::new(
                ErrorKind::InvalidRequest,
                "insufficient_liquidity",
                "the pool has no liquidity yet",
            )
            .with_param("pool")
        })?;
        let receipt = pool
            .swap_exact_in(SwapExactIn {
                trader: customer.customer.id.clone(),
                asset_in,
                amount_in,
                min_amount_out,
                deadline,
            })
            .map_err(|error| amm_error(error, "amount_in", "min_amount_out"))?;
        let swap_id = new_id(IdKind::Swap);
        settle(
            &mut conn,
            livemode,
            &swap_id,
            &receipt.movements,
            "amount_in",
        )
        .await?;
        set_state(&mut record, &pool);
        conn.update_trading_pool(&record).await?;
        let leg = SwapLeg::pool(
            &record.id,
            receipt.paid.asset,
            receipt.paid.amount,
            receipt.received.asset,
            receipt.received.amount,
        );
        let answer = Swap {
            id: swap_id,
            object: "swap".into(),
            livemode,
            customer: customer.customer.id.clone(),
            asset_in: leg.asset_in.clone(),
            amount_in: leg.amount_in,
            asset_out: leg.asset_out.clone(),
            amount_out: leg.amount_out,
            paths: vec![RoutePath {
                amount_in: leg.amount_in,
                amount_out: leg.amount_out,
                legs: vec![leg],
            }],
            price_impact_bps: None,
            created: now_ms() / 1000,
        };
        emit(
            &mut conn,
            &context.merchant_id,
            livemode,
            "swap.succeeded",
            &answer,
        )
        .await?;
        complete(&mut conn, guard.as_ref(), &answer).await?;
        tx.commit().await?;
        Ok(answer)
    }

    /// The best execution across the mode's active pools now; moves nothing.
    pub async fn quote_route(
        &self,
        context: &MerchantContext,
        params: RouteParams,
    ) -> GatewayResult<RouteQuote> {
        context.require(Scope::ReadOnly)?;
        let input = RouteInput::parse(&params)?;
        for (param, given) in [
            ("customer", params.customer.is_some()),
            ("min_amount_out", params.min_amount_out.is_some()),
            ("deadline", params.deadline.is_some()),
        ] {
            if given {
                return Err(ApiError::invalid(
                    param,
                    format!("{param} is for POST /v1/trading/route/execute"),
                )
                .into());
            }
        }
        let books = self.book_venues(context.livemode()).await?;
        let mut reader = self.store().reader().await?;
        let records = reader
            .conn()
            .trading_pools(context.livemode(), false)
            .await?;
        let venues = venues_of(books, &records)?;
        let route = venues.quote(&input.request).map_err(route_error)?;
        Ok(quote_of(context.livemode(), &venues, &route))
    }

    /// Quotes and executes a route in one transaction holding every active
    /// book and pool of the mode (books, then pools, each in id order): all
    /// legs or none, at least `min_amount_out`. Pool legs are swaps, book
    /// legs the customer's market IOC orders (`trading/route.rs`); each leg
    /// is settled before the next spends its output.
    pub async fn execute_route(
        &self,
        context: &MerchantContext,
        params: RouteParams,
        guard: Option<IdempotencyGuard>,
    ) -> GatewayResult<Swap> {
        context.require(Scope::Full)?;
        let input = RouteInput::parse(&params)?;
        let customer_id = params
            .customer
            .clone()
            .ok_or_else(|| ApiError::missing("customer"))?;
        let min_amount_out = params
            .min_amount_out
            .map(u128::from)
            .ok_or_else(|| ApiError::missing("min_amount_out"))?;
        let deadline = deadline(params.deadline)?;
        let livemode = context.livemode();
        let locked = self.lock_route_books(livemode).await?;
        let mut tx = self.store().begin().await?;
        let mut conn = tx.conn();
        // The books' rows first: their first statement writes, so on SQLite
        // the transaction holds the write lock before it reads anything
        // (another node writing in between cannot fail it), as a single
        // order's does.
        let mut books = self.open_route_books(&mut conn, locked).await?;
        let customer = customer_of(&mut conn, context, &customer_id, "customer").await?;
        let customer_id = customer.customer.id.clone();
        let mut records = conn.trading_pools(livemode, true).await?;
        let book_venues = books
            .iter()
            .map(|book| book.venue_for(&customer_id))
            .collect::<GatewayResult<Vec<_>>>()?;
        let venues = venues_of(book_venues, &records)?;
        let route = venues.quote(&input.request).map_err(route_error)?;
        deadline
            .check()
            .map_err(|error| amm_error(error, "amount_in", "min_amount_out"))?;
        // The legs post one ledger batch each; the customer's accounts of
        // every asset on the route are locked together first, in id order,
        // so another use case locking them in one batch cannot meet the
        // route halfway (PostgreSQL; SQLite has one writer).
        let customer_accounts: Vec<Account> = route
            .parts
            .iter()
            .flat_map(|part| &part.hops)
            .flat_map(|hop| [hop.asset_in, hop.asset_out])
            .flat_map(|asset| {
                [false, true].map(|held| {
                    ledger_entries::customer_account(livemode, &customer_id, asset.code(), held)
                })
            })
            .collect();
        let ids: std::collections::BTreeSet<&str> = customer_accounts
            .iter()
            .map(|account| account.id.as_str())
            .collect();
        conn.ledger_accounts_for_update(&ids).await?;
        let swap_id = new_id(IdKind::Swap);
        let mut pools: Vec<(usize, Pool)> = Vec::new();
        let mut paths = Vec::with_capacity(route.parts.len());
        let mut amount_out = 0u128;
        let mut leg_number = 0usize;
        for part in &route.parts {
            let mut amount = part.amount_in;
            let mut legs = Vec::with_capacity(part.hops.len());
            for hop in &part.hops {
                leg_number += 1;
                let leg = if let Some(book) =
                    books.iter_mut().find(|book| book.pair_id() == hop.venue.0)
                {
                    let taken = book
                        .take(
                            &mut conn,
                            &context.merchant_id,
                            livemode,
                            &customer_id,
                            hop.asset_in,
                            amount,
                        )
                        .await?;
                    SwapLeg {
                        venue: "book".into(),
                        venue_id: hop.venue.0.clone(),
                        pool: None,
                        order: Some(taken.order.id.clone()),
                        asset_in: hop.asset_in.code().to_owned(),
                        amount_in: amount,
                        amount_unspent: amount - taken.spent.min(amount),
                        asset_out: hop.asset_out.code().to_owned(),
                        amount_out: taken.got,
                    }
                } else {
                    let index = records
                        .iter()
                        .position(|record| record.id == hop.venue.0)
                        .ok_or_else(|| internal(format!("no venue {}", hop.venue)))?;
                    if !pools.iter().any(|(at, _)| *at == index) {
                        let pool = pool_of(&records[index])?
                            .ok_or_else(|| internal(format!("pool {} is empty", hop.venue)))?;
                        pools.push((index, pool));
                    }
                    let pool = pools
                        .iter_mut()
                        .find(|(at, _)| *at == index)
                        .map(|(_, pool)| pool)
                        .ok_or_else(|| internal("a pool vanished"))?;
                    let receipt = pool
                        .swap_exact_in(SwapExactIn {
                            trader: customer_id.clone(),
                            asset_in: hop.asset_in,
                            amount_in: amount,
                            min_amount_out: 0,
                            deadline,
                        })
                        .map_err(|error| amm_error(error, "amount_in", "min_amount_out"))?;
                    settle(
                        &mut conn,
                        livemode,
                        &format!("{swap_id}.{leg_number}"),
                        &receipt.movements,
                        "amount_in",
                    )
                    .await?;
                    SwapLeg::pool(
                        &hop.venue.0,
                        hop.asset_in,
                        amount,
                        hop.asset_out,
                        receipt.received.amount,
                    )
                };
                amount = leg.amount_out;
                legs.push(leg);
            }
            amount_out = amount_out
                .checked_add(amount)
                .ok_or_else(|| route_error(RouteError::Overflow))?;
            paths.push(RoutePath {
                amount_in: part.amount_in,
                amount_out: amount,
                legs,
            });
        }
        // Dropping the transaction rolls every leg back, and the books keep
        // their engines as they were.
        if amount_out < min_amount_out {
            return Err(route_error(RouteError::Slippage {
                minimum: min_amount_out,
                expected: amount_out,
            }));
        }
        for (index, pool) in &pools {
            let record = &mut records[*index];
            set_state(record, pool);
            conn.update_trading_pool(record).await?;
        }
        let mut sequences = Vec::with_capacity(books.len());
        for book in &books {
            sequences.push(book.log(self, &mut conn).await?);
        }
        let answer = Swap {
            id: swap_id,
            object: "swap".into(),
            livemode,
            customer: customer_id,
            asset_in: route.asset_in.code().to_owned(),
            amount_in: route.amount_in,
            asset_out: route.asset_out.code().to_owned(),
            amount_out,
            paths,
            price_impact_bps: Some(route.price_impact_bps),
            created: now_ms() / 1000,
        };
        emit(
            &mut conn,
            &context.merchant_id,
            livemode,
            "swap.succeeded",
            &answer,
        )
        .await?;
        complete(&mut conn, guard.as_ref(), &answer).await?;
        tx.commit().await?;
        for (book, sequence) in books.into_iter().zip(sequences) {
            book.keep(self, sequence);
        }
        Ok(answer)
    }
}

/// Proves every pool's row equals its ledger accounts: each reserve, the
/// shares outstanding (the issuer's debit balance) and the locked minimum.
pub(crate) async fn check_pools(conn: &mut Conn<'_>) -> GatewayResult<PoolCheck> {
    let mut check = PoolCheck::default();
    for livemode in [false, true] {
        for record in conn.trading_pools(livemode, true).await? {
            check.pools += 1;
            let mut expected: Vec<(Account, u128, bool)> = Vec::new();
            for (asset, reserve) in record.assets.iter().zip(record.reserves) {
                expected.push((
                    ledger_entries::pool_reserve_account(livemode, &record.id, asset),
                    reserve,
                    false,
                ));
            }
            expected.push((
                ledger_entries::pool_shares_issued_account(livemode, &record.id),
                record.shares_total,
                true,
            ));
            expected.push((
                ledger_entries::pool_shares_locked_account(livemode, &record.id),
                if record.shares_total > 0 {
                    MINIMUM_LIQUIDITY
                } else {
                    0
                },
                false,
            ));
            let ids: std::collections::BTreeSet<&str> = expected
                .iter()
                .map(|(account, _, _)| account.id.as_str())
                .collect();
            let found = conn.ledger_accounts_for_update(&ids).await?;
            for (account, want, debit) in &expected {
                let (want, debit) = (*want, *debit);
                let actual = found
                    .iter()
                    .find(|candidate| candidate.id == account.id)
                    .map(|candidate| {
                        if debit {
                            candidate.posted_debit_balance()
                        } else {
                            candidate.posted_credit_balance()
                        }
                    })
                    .unwrap_or(Some(0));
                if actual != Some(want) {
                    check.problems.push(format!(
                        "pool {} ({}): account {} holds {actual:?} but the pool says {want}",
                        record.id,
                        malipo_core::Mode::from_livemode(livemode).as_str(),
                        account.id
                    ));
                }
            }
        }
    }
    Ok(check)
}
