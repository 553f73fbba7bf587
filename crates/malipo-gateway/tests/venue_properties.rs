//! The venue as a whole, over a real store (SQLite always; PostgreSQL when
//! `MALIPO_TEST_DATABASE_URL` is set): proptest generates sequences of
//! operations by three customers — limit (GTC, IOC, FOK, post-only),
//! market, stop and stop-limit orders on two pairs, cancels, liquidity
//! added to and removed from two pools, swaps and routes (across the pools
//! and the books) — runs
//! them through the gateway's public functions, and after every step
//! checks what a customer and an auditor rely on:
//!
//! - conservation: per asset, the ledger balances (debits equal credits
//!   over every account) and the value held by customers (available and
//!   held), pool reserves and the venue's fee accounts equals what was
//!   credited, fees included;
//! - each customer's available + held equals what was credited, plus what
//!   its fills, swaps and liquidity moves brought in, minus what they took
//!   out (computed from the answers and the fills, not from the ledger);
//! - a refused operation changes no balance;
//! - no book is crossed (best bid < best ask);
//! - each pool's `k = reserve_a × reserve_b` never decreases except when
//!   liquidity is removed, and `k / shares²` never decreases;
//! - the gateway's `trading_check` passes.
//!
//! Each case runs on a fresh database. 16 cases of up to 30 steps by
//! default; `PROPTEST_CASES=200 cargo test -p malipo-gateway --test
//! venue_properties` runs more.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use malipo_core::trading::OrderStatus;
use malipo_gateway::auth::{Actor, MerchantContext};
use malipo_gateway::customers::{CreateCustomer, CreateTestCredit};
use malipo_gateway::merchants::CreateMerchant;
use malipo_gateway::pools::{
    AddLiquidityRequest, CreatePool, CreateSwap, RemoveLiquidityRequest, RouteParams,
};
use malipo_gateway::trading::{BookParams, CreateOrder, CreatePair, FillFilters, OrderFilters};
use malipo_gateway::{Gateway, GatewayConfig, GatewayError};
use malipo_store::{Cursor, Page, Store, StoreOptions};
use malipo_test_support::{Backend, TestDatabase};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestError, TestRunner};
use std::collections::{BTreeMap, BTreeSet};

/// Steps per case, at most.
const STEPS_MAX: usize = 30;
/// Cases when `PROPTEST_CASES` is not set.
const CASES_DEFAULT: u32 = 16;
const CUSTOMERS: usize = 3;
const PAIRS: [&str; 2] = ["btc_usd", "eth_usd"];
const POOLS: [&str; 2] = ["pool_btc_usd_30", "pool_eth_usd_30"];
const ASSETS: [&str; 3] = ["btc", "eth", "usd"];
const LOT_SIZE: u64 = 1_000;
/// What each customer starts with, per asset (minor units).
const CREDIT: u64 = 400_000;

#[derive(Debug, Clone, Copy)]
enum Tif {
    Gtc,
    Ioc,
    Fok,
    PostOnly,
}

#[derive(Debug, Clone)]
enum Op {
    Limit {
        customer: usize,
        pair: usize,
        buy: bool,
        price: u64,
        lots: u64,
        tif: Tif,
    },
    Market {
        customer: usize,
        pair: usize,
        buy: bool,
        lots: u64,
    },
    /// A sell stop (market when triggered).
    Stop {
        customer: usize,
        pair: usize,
        trigger: u64,
        lots: u64,
    },
    StopLimit {
        customer: usize,
        pair: usize,
        buy: bool,
        trigger: u64,
        price: u64,
        lots: u64,
    },
    /// Cancels one of the customer's open orders (by position), if any.
    Cancel { customer: usize, pick: usize },
    AddLiquidity {
        customer: usize,
        pool: usize,
        amount_a: u64,
        amount_b: u64,
    },
    /// Burns this many percent of the customer's shares in the pool.
    RemoveLiquidity {
        customer: usize,
        pool: usize,
        percent: u64,
    },
    Swap {
        customer: usize,
        pool: usize,
        sell_a: bool,
        amount: u64,
    },
    Route {
        customer: usize,
        asset_in: usize,
        asset_out: usize,
        amount: u64,
    },
}

fn op() -> impl Strategy<Value = Op> {
    let customer = 0..CUSTOMERS;
    let pair = 0..PAIRS.len();
    let pool = 0..POOLS.len();
    let price = 40u64..=60;
    let lots = 1u64..=12;
    let tif = prop_oneof![
        4 => Just(Tif::Gtc),
        1 => Just(Tif::Ioc),
        1 => Just(Tif::Fok),
        1 => Just(Tif::PostOnly),
    ];
    prop_oneof![
        8 => (customer.clone(), pair.clone(), any::<bool>(), price.clone(), lots.clone(), tif)
            .prop_map(|(customer, pair, buy, price, lots, tif)| Op::Limit {
                customer, pair, buy, price, lots, tif,
            }),
        2 => (customer.clone(), pair.clone(), any::<bool>(), lots.clone())
            .prop_map(|(customer, pair, buy, lots)| Op::Market { customer, pair, buy, lots }),
        1 => (customer.clone(), pair.clone(), price.clone(), lots.clone())
            .prop_map(|(customer, pair, trigger, lots)| Op::Stop { customer, pair, trigger, lots }),
        1 => (customer.clone(), pair.clone(), any::<bool>(), price.clone(), price, lots)
            .prop_map(|(customer, pair, buy, trigger, price, lots)| Op::StopLimit {
                customer, pair, buy, trigger, price, lots,
            }),
        2 => (customer.clone(), any::<usize>())
            .prop_map(|(customer, pick)| Op::Cancel { customer, pick }),
        3 => (customer.clone(), pool.clone(), 500u64..=60_000, 500u64..=60_000)
            .prop_map(|(customer, pool, amount_a, amount_b)| Op::AddLiquidity {
                customer, pool, amount_a, amount_b,
            }),
        1 => (customer.clone(), pool.clone(), 1u64..=100)
            .prop_map(|(customer, pool, percent)| Op::RemoveLiquidity { customer, pool, percent }),
        3 => (customer.clone(), pool, any::<bool>(), 1u64..=30_000)
            .prop_map(|(customer, pool, sell_a, amount)| Op::Swap { customer, pool, sell_a, amount }),
        2 => (customer, 0..ASSETS.len(), 0..ASSETS.len(), 1u64..=30_000)
            .prop_map(|(customer, asset_in, asset_out, amount)| Op::Route {
                customer, asset_in, asset_out, amount,
            }),
    ]
}

/// One case's venue: a fresh database, a merchant, its customers, the
/// pairs and pools, and what the test expects of them.
struct World {
    gateway: Gateway,
    store: Store,
    context: MerchantContext,
    customers: Vec<String>,
    /// Per (customer, asset): what swaps and liquidity moves brought in
    /// less what they took out (fills are read back from the venue).
    flows: BTreeMap<(String, String), i128>,
    /// Per pool: (k, total shares) after the last step.
    pools: BTreeMap<String, (u128, u128)>,
    /// Open after every step: the customers' and venue's balances.
    balances_before: BTreeMap<(String, String), u128>,
}

async fn world(database: &TestDatabase) -> World {
    let mut options = StoreOptions::new(&database.url);
    // Durability is not what this test proves; a case runs faster without
    // an fsync per commit.
    options.sqlite_fsync_every_commit = false;
    let store = Store::connect(&options).await.expect("connect");
    store.migrate().await.expect("migrate");
    let gateway = Gateway::new(store.clone(), GatewayConfig::default())
        .await
        .expect("gateway");
    let merchant = gateway
        .create_merchant(CreateMerchant {
            name: "Soko Exchange".into(),
            email: None,
            fee_schedules: BTreeMap::new(),
        })
        .await
        .expect("merchant");
    let secret = merchant.test_secret_key.secret.expect("secret shown once");
    let context = gateway
        .authenticate_merchant(&secret)
        .await
        .expect("the key authenticates");
    let operator = Actor::system();
    for (base, quote) in [("btc", "usd"), ("eth", "usd")] {
        gateway
            .create_trading_pair(
                &operator,
                CreatePair {
                    base: Some(base.into()),
                    quote: Some(quote.into()),
                    tick_size: Some(1),
                    lot_size: Some(LOT_SIZE),
                    min_notional: Some(0),
                    maker_fee_bps: Some(10),
                    taker_fee_bps: Some(20),
                    status: None,
                },
            )
            .await
            .expect("pair");
        gateway
            .create_pool(
                &operator,
                CreatePool {
                    asset_a: Some(base.into()),
                    asset_b: Some(quote.into()),
                    fee_bps: Some(30),
                    status: None,
                },
            )
            .await
            .expect("pool");
    }
    let mut customers = Vec::new();
    for _ in 0..CUSTOMERS {
        let customer = gateway
            .create_customer(&context, CreateCustomer::default(), None)
            .await
            .expect("customer");
        for asset in ASSETS {
            gateway
                .create_test_credit(
                    &context,
                    &customer.id,
                    CreateTestCredit {
                        asset: Some(asset.into()),
                        amount: Some(CREDIT),
                    },
                    None,
                )
                .await
                .expect("credit");
        }
        customers.push(customer.id);
    }
    World {
        gateway,
        store,
        context,
        customers,
        flows: BTreeMap::new(),
        pools: POOLS.iter().map(|id| (id.to_string(), (0, 0))).collect(),
        balances_before: BTreeMap::new(),
    }
}

fn order(customer: &str, pair: usize, buy: bool, kind: &str, lots: u64) -> CreateOrder {
    CreateOrder {
        customer: Some(customer.to_owned()),
        pair: Some(PAIRS[pair].to_owned()),
        side: Some(if buy { "buy" } else { "sell" }.to_owned()),
        kind: Some(kind.to_owned()),
        quantity: Some(lots * LOT_SIZE),
        ..CreateOrder::default()
    }
}

/// The codes a refusal may carry; anything else (an internal error above
/// all) fails the property.
const REFUSALS: [&str; 8] = [
    "balance_insufficient",
    "order_not_fillable",
    "post_only_would_take",
    "insufficient_liquidity",
    "no_route",
    "slippage",
    "parameter_invalid",
    "order_not_open",
];

/// What a step did, for the checks.
enum Outcome {
    Done,
    /// Liquidity was removed: `k` may go down (not `k / shares²`).
    Removed,
    Refused(String),
}

fn refused(error: GatewayError) -> Result<Outcome, String> {
    match error {
        GatewayError::Api(error) if REFUSALS.contains(&error.code.as_str()) => Ok(
            Outcome::Refused(format!("{}: {}", error.code, error.message)),
        ),
        other => Err(format!("unexpected error: {}", other.chain())),
    }
}

impl World {
    fn flow(&mut self, customer: &str, asset: &str, amount: i128) {
        *self
            .flows
            .entry((customer.to_owned(), asset.to_owned()))
            .or_default() += amount;
    }

    async fn shares_of(&self, customer: &str, pool: &str) -> u128 {
        let balances = self
            .gateway
            .customer_balances(&self.context, customer)
            .await
            .expect("balances");
        balances
            .balances
            .iter()
            .find(|balance| balance.asset == pool)
            .map_or(0, |balance| balance.available)
    }

    async fn apply(&mut self, op: &Op) -> Result<Outcome, String> {
        let gateway = self.gateway.clone();
        let context = &self.context.clone();
        let result = match op.clone() {
            Op::Limit {
                customer,
                pair,
                buy,
                price,
                lots,
                tif,
            } => {
                let mut request = order(&self.customers[customer], pair, buy, "limit", lots);
                request.price = Some(price);
                match tif {
                    Tif::Gtc => {}
                    Tif::Ioc => request.time_in_force = Some("IOC".into()),
                    Tif::Fok => request.time_in_force = Some("FOK".into()),
                    Tif::PostOnly => request.post_only = Some(true),
                }
                gateway
                    .create_order(context, request, None)
                    .await
                    .map(|_| ())
            }
            Op::Market {
                customer,
                pair,
                buy,
                lots,
            } => {
                let request = order(&self.customers[customer], pair, buy, "market", lots);
                gateway
                    .create_order(context, request, None)
                    .await
                    .map(|_| ())
            }
            Op::Stop {
                customer,
                pair,
                trigger,
                lots,
            } => {
                let mut request = order(&self.customers[customer], pair, false, "stop", lots);
                request.stop_price = Some(trigger);
                gateway
                    .create_order(context, request, None)
                    .await
                    .map(|_| ())
            }
            Op::StopLimit {
                customer,
                pair,
                buy,
                trigger,
                price,
                lots,
            } => {
                let mut request = order(&self.customers[customer], pair, buy, "stop_limit", lots);
                request.stop_price = Some(trigger);
                request.price = Some(price);
                gateway
                    .create_order(context, request, None)
                    .await
                    .map(|_| ())
            }
            Op::Cancel { customer, pick } => {
                let open = gateway
                    .orders(
                        context,
                        &OrderFilters {
                            customer: Some(self.customers[customer].clone()),
                            status: Some("open".into()),
                            ..OrderFilters::default()
                        },
                        &Page {
                            limit: 100,
                            cursor: Cursor::Newest,
                        },
                    )
                    .await
                    .map_err(|error| error.chain())?;
                if open.data.is_empty() {
                    return Ok(Outcome::Done);
                }
                let id = open.data[pick % open.data.len()].id.clone();
                let cancelled = gateway.cancel_order(context, &id, None).await;
                if let Ok(order) = &cancelled
                    && order.status == OrderStatus::Open
                {
                    return Err(format!("order {id} is still open after its cancel"));
                }
                cancelled.map(|_| ())
            }
            Op::AddLiquidity {
                customer,
                pool,
                amount_a,
                amount_b,
            } => {
                let customer = self.customers[customer].clone();
                let request = AddLiquidityRequest {
                    customer: Some(customer.clone()),
                    amount_a: Some(amount_a),
                    amount_b: Some(amount_b),
                    ..AddLiquidityRequest::default()
                };
                match gateway
                    .add_liquidity(context, POOLS[pool], request, None)
                    .await
                {
                    Ok(added) => {
                        let assets = added.pool_after.assets.clone();
                        for (asset, amount) in assets.iter().zip(&added.amounts) {
                            self.flow(&customer, asset, -(*amount as i128));
                        }
                        self.flow(&customer, POOLS[pool], added.shares as i128);
                        Ok(())
                    }
                    Err(error) => Err(error),
                }
            }
            Op::RemoveLiquidity {
                customer,
                pool,
                percent,
            } => {
                let customer = self.customers[customer].clone();
                let shares =
                    self.shares_of(&customer, POOLS[pool]).await * u128::from(percent) / 100;
                if shares == 0 {
                    return Ok(Outcome::Done);
                }
                let request = RemoveLiquidityRequest {
                    customer: Some(customer.clone()),
                    shares: Some(u64::try_from(shares).expect("shares fit")),
                    ..RemoveLiquidityRequest::default()
                };
                return match gateway
                    .remove_liquidity(context, POOLS[pool], request, None)
                    .await
                {
                    Ok(removed) => {
                        let assets = removed.pool_after.assets.clone();
                        for (asset, amount) in assets.iter().zip(&removed.amounts) {
                            self.flow(&customer, asset, *amount as i128);
                        }
                        self.flow(&customer, POOLS[pool], -(removed.shares as i128));
                        Ok(Outcome::Removed)
                    }
                    Err(error) => refused(error),
                };
            }
            Op::Swap {
                customer,
                pool,
                sell_a,
                amount,
            } => {
                let customer = self.customers[customer].clone();
                let asset_in = if sell_a { ASSETS[pool] } else { "usd" };
                let request = CreateSwap {
                    customer: Some(customer.clone()),
                    pool: Some(POOLS[pool].to_owned()),
                    asset_in: Some(asset_in.to_owned()),
                    amount_in: Some(amount),
                    min_amount_out: Some(0),
                    deadline: None,
                };
                match gateway.create_swap(context, request, None).await {
                    Ok(swap) => {
                        self.flow(&customer, &swap.asset_in, -(swap.amount_in as i128));
                        self.flow(&customer, &swap.asset_out, swap.amount_out as i128);
                        Ok(())
                    }
                    Err(error) => Err(error),
                }
            }
            Op::Route {
                customer,
                asset_in,
                asset_out,
                amount,
            } => {
                if asset_in == asset_out {
                    return Ok(Outcome::Done);
                }
                let customer = self.customers[customer].clone();
                let params = RouteParams {
                    asset_in: Some(ASSETS[asset_in].to_owned()),
                    asset_out: Some(ASSETS[asset_out].to_owned()),
                    amount_in: Some(amount),
                    customer: Some(customer.clone()),
                    min_amount_out: Some(0),
                    ..RouteParams::default()
                };
                match gateway.execute_route(context, params, None).await {
                    Ok(swap) => {
                        // Pool legs move what they say; a book leg is the
                        // customer's order, counted with every fill (what
                        // it leaves unspent never left the balance).
                        for leg in swap.paths.iter().flat_map(|path| &path.legs) {
                            if leg.venue == "pool" {
                                self.flow(&customer, &leg.asset_in, -(leg.amount_in as i128));
                                self.flow(&customer, &leg.asset_out, leg.amount_out as i128);
                            }
                        }
                        Ok(())
                    }
                    Err(error) => Err(error),
                }
            }
        };
        match result {
            Ok(()) => Ok(Outcome::Done),
            Err(error) => refused(error),
        }
    }

    /// Every fill so far, oldest first.
    async fn fills(&self) -> Vec<malipo_core::trading::Fill> {
        let mut fills = Vec::new();
        let mut cursor = Cursor::Newest;
        loop {
            let page = self
                .gateway
                .fills(
                    &self.context,
                    &FillFilters::default(),
                    &Page { limit: 100, cursor },
                )
                .await
                .expect("fills");
            let last = page.data.last().map(|fill| fill.id.clone());
            fills.extend(page.data);
            match (page.has_more, last) {
                (true, Some(last)) => cursor = Cursor::StartingAfter(last),
                _ => return fills,
            }
        }
    }

    /// Each customer's available + held per asset, read from the gateway.
    async fn balances(&self) -> BTreeMap<(String, String), u128> {
        let mut all = BTreeMap::new();
        for customer in &self.customers {
            let balances = self
                .gateway
                .customer_balances(&self.context, customer)
                .await
                .expect("balances");
            for balance in balances.balances {
                all.insert(
                    (customer.clone(), balance.asset.clone()),
                    balance.available + balance.held,
                );
            }
        }
        all
    }

    /// The checks after each step; `outcome` is what the step did.
    async fn check(&mut self, outcome: &Outcome) -> Result<(), String> {
        // 1. Each customer's balance, from credits and what moved.
        let mut expected: BTreeMap<(String, String), i128> = BTreeMap::new();
        for customer in &self.customers {
            for asset in ASSETS {
                expected.insert((customer.clone(), asset.to_owned()), i128::from(CREDIT));
            }
        }
        for (key, amount) in &self.flows {
            *expected.entry(key.clone()).or_default() += amount;
        }
        for fill in self.fills().await {
            let pair = fill.pair.clone();
            let (base, quote) = pair.split_once('_').expect("pair id");
            let sign = if fill.side == malipo_core::trading::OrderSide::Buy {
                1
            } else {
                -1
            };
            let notional = fill.notional as i128;
            *expected
                .entry((fill.customer.clone(), base.to_owned()))
                .or_default() += sign * i128::from(fill.quantity);
            *expected
                .entry((fill.customer.clone(), quote.to_owned()))
                .or_default() += -sign * notional - fill.fee as i128;
        }
        let balances = self.balances().await;
        let keys: BTreeSet<_> = expected.keys().chain(balances.keys()).cloned().collect();
        for key in keys {
            let want = expected.get(&key).copied().unwrap_or(0);
            let have = balances.get(&key).copied().unwrap_or(0) as i128;
            if want != have {
                return Err(format!(
                    "customer {} holds {have} {} (available + held) but credits and moves say {want}",
                    key.0, key.1
                ));
            }
        }
        if let Outcome::Refused(why) = outcome
            && balances != self.balances_before
        {
            return Err(format!("a refused step ({why}) changed balances"));
        }
        self.balances_before = balances;

        // 2. Conservation over the whole ledger, fees included.
        let verified = self.gateway.verify_ledger().await.expect("verify");
        if !verified.ok {
            return Err(format!("the ledger does not verify: {verified:?}"));
        }
        let mut reader = self.store.reader().await.expect("reader");
        let accounts = reader
            .conn()
            .ledger_accounts_with_prefix("test/")
            .await
            .expect("accounts");
        let mut held_value: BTreeMap<String, i128> = BTreeMap::new();
        for account in &accounts {
            let balance = account.credits_posted as i128 - account.debits_posted as i128;
            let value_holder = account.id.starts_with("test/customer/")
                || (account.id.starts_with("test/pool/") && account.id.ends_with("/reserve"))
                || account.id.ends_with("/trading_fees");
            if value_holder && ASSETS.contains(&account.asset.as_str()) {
                *held_value.entry(account.asset.clone()).or_default() += balance;
            }
        }
        for asset in ASSETS {
            let credited = i128::from(CREDIT) * CUSTOMERS as i128;
            let held = held_value.get(asset).copied().unwrap_or(0);
            if held != credited {
                return Err(format!(
                    "{asset}: customers, pool reserves and fees hold {held}, {credited} was credited"
                ));
            }
        }

        // 3. No book crossed.
        for pair in PAIRS {
            let book = self
                .gateway
                .order_book(&self.context, pair, &BookParams { depth: Some(1) })
                .await
                .expect("book");
            if let (Some(bid), Some(ask)) = (book.bids.first(), book.asks.first())
                && bid.price >= ask.price
            {
                return Err(format!(
                    "book {pair} is crossed: best bid {} >= best ask {}",
                    bid.price, ask.price
                ));
            }
        }

        // 4. Pools: k never decreases but by removal; k / shares² never.
        for id in POOLS {
            let pool = self.gateway.pool(&self.context, id).await.expect("pool");
            let k = pool.reserves[0] * pool.reserves[1];
            let shares = pool.total_shares;
            let (k_before, shares_before) = self.pools[id];
            if k < k_before && !matches!(outcome, Outcome::Removed) {
                return Err(format!("pool {id}: k fell from {k_before} to {k}"));
            }
            // k / s² >= k0 / s0², cross-multiplied (exact: amounts here stay
            // far below 2^32, so each product fits 128 bits).
            if shares_before > 0
                && shares > 0
                && k * shares_before * shares_before < k_before * shares * shares
            {
                return Err(format!(
                    "pool {id}: k per share² fell: k {k_before} -> {k}, shares {shares_before} -> {shares}"
                ));
            }
            self.pools.insert(id.to_owned(), (k, shares));
        }

        // 5. The venue's own proof.
        let report = self.gateway.trading_check().await.expect("check runs");
        if !report.ok {
            return Err(format!("trading_check: {:?}", report.problems));
        }
        Ok(())
    }
}

/// What the steps of every case did, by kind of step: (ran, refused). The
/// run asserts the generator reaches the interesting paths (fills, swaps,
/// routes, liquidity), not only refusals.
static STATS: std::sync::Mutex<BTreeMap<&'static str, (u32, u32)>> =
    std::sync::Mutex::new(BTreeMap::new());

fn count(kind: &'static str, refused: bool) {
    let mut stats = STATS
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let entry = stats.entry(kind).or_default();
    if refused {
        entry.1 += 1;
    } else {
        entry.0 += 1;
    }
}

fn kind(op: &Op) -> &'static str {
    match op {
        Op::Limit { .. } => "limit",
        Op::Market { .. } => "market",
        Op::Stop { .. } => "stop",
        Op::StopLimit { .. } => "stop_limit",
        Op::Cancel { .. } => "cancel",
        Op::AddLiquidity { .. } => "add_liquidity",
        Op::RemoveLiquidity { .. } => "remove_liquidity",
        Op::Swap { .. } => "swap",
        Op::Route { .. } => "route",
    }
}

async fn run_case(backend: Backend, ops: &[Op]) -> Result<(), String> {
    let database = TestDatabase::create(backend)
        .await
        .expect("checked before the run");
    let mut world = world(&database).await;
    world.balances_before = world.balances().await;
    let mut result = Ok(());
    for (step, op) in ops.iter().enumerate() {
        let checked = match world.apply(op).await {
            Ok(outcome) => {
                count(kind(op), matches!(outcome, Outcome::Refused(_)));
                world.check(&outcome).await
            }
            Err(error) => Err(error),
        };
        if let Err(problem) = checked {
            result = Err(format!("step {step} ({op:?}): {problem}"));
            break;
        }
    }
    let fills = world.fills().await.len() as u32;
    STATS
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .entry("fills")
        .or_default()
        .0 += fills;
    world.store.close().await;
    result
}

fn run(backend: Backend) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    // Skip (with the support crate's message) when PostgreSQL is not set.
    if runtime.block_on(TestDatabase::create(backend)).is_none() {
        return;
    }
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|cases| cases.parse().ok())
        .unwrap_or(CASES_DEFAULT);
    let mut runner = TestRunner::new(Config {
        cases,
        max_shrink_iters: 256,
        // A failure prints its minimal sequence (below) instead.
        failure_persistence: None,
        ..Config::default()
    });
    let strategy = proptest::collection::vec(op(), 1..=STEPS_MAX);
    let result = runner.run(&strategy, |ops| {
        runtime
            .block_on(run_case(backend, &ops))
            .map_err(TestCaseError::fail)
    });
    let stats = STATS
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    eprintln!("steps by kind (ran, refused): {stats:?}");
    match result {
        Ok(()) => {
            for kind in [
                "limit",
                "market",
                "cancel",
                "add_liquidity",
                "swap",
                "route",
                "fills",
            ] {
                assert!(
                    stats.get(kind).is_some_and(|(ran, _)| *ran > 0),
                    "no `{kind}` step ran in {cases} cases: {stats:?}"
                );
            }
        }
        Err(TestError::Fail(reason, ops)) => {
            panic!("{reason}\nminimal failing sequence: {ops:#?}")
        }
        Err(error) => panic!("{error}"),
    }
}

#[test]
fn venue_properties_sqlite() {
    run(Backend::Sqlite);
}

#[test]
fn venue_properties_postgres() {
    run(Backend::Postgres);
}
