//! AMM liquidity pools and the router over HTTP, settled through the
//! ledger: pool creation, liquidity (first and pro rata), swaps whose output
//! the test computes itself, slippage / deadline / balance refusals that
//! move nothing, removal pro rata, a 2-hop route executed atomically (and
//! one refused by its minimum), the check proving pools equal their ledger
//! accounts, and parallel swaps on one pool.

use crate::both_backends;
use crate::helpers::TestApp;
use serde_json::{Value, json};
use std::collections::BTreeMap;

const KES_USD: &str = "pool_kes_usd_30";
const BTC_USD: &str = "pool_btc_usd_30";

/// Uniswap v2's exact-input formula, computed here independently of
/// `malipo-amm`: the fee stays in the pool, the output is rounded down.
fn amount_out(amount_in: u128, reserve_in: u128, reserve_out: u128, fee_bps: u128) -> u128 {
    let in_with_fee = amount_in * (10_000 - fee_bps);
    in_with_fee * reserve_out / (reserve_in * 10_000 + in_with_fee)
}

fn isqrt(value: u128) -> u128 {
    let mut root = (value as f64).sqrt() as u128;
    while root * root > value {
        root -= 1;
    }
    while (root + 1) * (root + 1) <= value {
        root += 1;
    }
    root
}

async fn create_pool(app: &TestApp, a: &str, b: &str) -> Value {
    app.post(
        "/v1/admin/trading/pools",
        &app.operator_token,
        &json!({"asset_a": a, "asset_b": b, "fee_bps": 30}),
    )
    .await
    .expect(200)
}

async fn customer(app: &TestApp, key: &str, name: &str) -> String {
    app.post("/v1/customers", key, &json!({"name": name}))
        .await
        .expect(200)["id"]
        .as_str()
        .expect("id")
        .to_owned()
}

async fn credit(app: &TestApp, key: &str, customer: &str, asset: &str, amount: u64) {
    app.post(
        &format!("/v1/customers/{customer}/test_credits"),
        key,
        &json!({"asset": asset, "amount": amount}),
    )
    .await
    .expect(200);
}

/// asset -> available (LP shares show under the pool's id).
async fn balances(app: &TestApp, key: &str, customer: &str) -> BTreeMap<String, u128> {
    let body = app
        .get(&format!("/v1/customers/{customer}/balances"), key)
        .await
        .expect(200);
    body["balances"]
        .as_array()
        .expect("balances")
        .iter()
        .map(|balance| {
            (
                balance["asset"].as_str().expect("asset").to_owned(),
                u128::from(balance["available"].as_u64().expect("available")),
            )
        })
        .collect()
}

async fn pool(app: &TestApp, key: &str, id: &str) -> Value {
    app.get(&format!("/v1/trading/pools/{id}"), key)
        .await
        .expect(200)
}

fn reserves(pool: &Value) -> (u128, u128) {
    (
        u128::from(pool["reserves"][0].as_u64().expect("reserve")),
        u128::from(pool["reserves"][1].as_u64().expect("reserve")),
    )
}

fn number(value: &Value) -> u128 {
    u128::from(value.as_u64().expect("a number"))
}

async fn add(app: &TestApp, key: &str, id: &str, customer: &str, a: u64, b: u64) -> Value {
    app.post(
        &format!("/v1/trading/pools/{id}/add_liquidity"),
        key,
        &json!({"customer": customer, "amount_a": a, "amount_b": b}),
    )
    .await
    .expect(200)
}

async fn assert_consistent(app: &TestApp) {
    let verify = app.verify_ledger().await;
    assert_eq!(verify["ok"], true, "{verify}");
    let check = app.gateway().trading_check().await.expect("check runs");
    assert!(check.ok, "{:?}", check.problems);
}

async fn pools_take_liquidity_and_swap_exactly(app: &TestApp) {
    let key = app.test_key().await;
    let created = create_pool(app, "usd", "kes").await;
    assert_eq!(created["id"], KES_USD, "assets in canonical order");
    assert_eq!(created["object"], "liquidity_pool");
    assert_eq!(created["assets"], json!(["kes", "usd"]));
    assert_eq!(created["reserves"], json!([0, 0]));
    assert_eq!(created["price"], Value::Null);
    let again = app
        .post(
            "/v1/admin/trading/pools",
            &app.operator_token,
            &json!({"asset_a": "kes", "asset_b": "usd", "fee_bps": 30}),
        )
        .await;
    assert_eq!(again.status, 409);
    let bad = app
        .post(
            "/v1/admin/trading/pools",
            &app.operator_token,
            &json!({"asset_a": "kes", "asset_b": "usd", "fee_bps": 1001}),
        )
        .await;
    assert_eq!(bad.status, 400);
    assert_eq!(bad.error_param(), Some("fee_bps"));
    let listed = app.get("/v1/trading/pools", &key).await.expect(200);
    assert_eq!(listed["data"][0]["id"], KES_USD);

    // The first deposit sets the price: sqrt(a * b) shares, 1,000 locked.
    let founder = customer(app, &key, "Founder").await;
    credit(app, &key, &founder, "kes", 10_000_000).await;
    credit(app, &key, &founder, "usd", 10_000_000).await;
    let first = add(app, &key, KES_USD, &founder, 4_000_000, 1_000_000).await;
    assert_eq!(first["object"], "pool_liquidity");
    let founder_shares = isqrt(4_000_000 * 1_000_000) - 1_000;
    assert_eq!(number(&first["shares"]), founder_shares);
    let state = pool(app, &key, KES_USD).await;
    assert_eq!(reserves(&state), (4_000_000, 1_000_000));
    assert_eq!(number(&state["total_shares"]), founder_shares + 1_000);
    assert_eq!(state["locked_shares"], 1_000);
    assert_eq!(state["price"], "0.250000000000000000");
    let founder_balances = balances(app, &key, &founder).await;
    assert_eq!(founder_balances["kes"], 6_000_000);
    assert_eq!(founder_balances["usd"], 9_000_000);
    assert_eq!(founder_balances[KES_USD], founder_shares);

    // A later deposit is cut to the pool's ratio and minted pro rata.
    let second = customer(app, &key, "Second").await;
    credit(app, &key, &second, "kes", 1_000_000).await;
    credit(app, &key, &second, "usd", 1_000_000).await;
    let refused = app
        .post(
            &format!("/v1/trading/pools/{KES_USD}/add_liquidity"),
            &key,
            &json!({"customer": second, "amount_a": 400_000, "amount_b": 200_000,
                    "min_shares": 200_001}),
        )
        .await;
    assert_eq!(refused.status, 400);
    assert_eq!(refused.error_param(), Some("min_shares"));
    let later = add(app, &key, KES_USD, &second, 400_000, 200_000).await;
    assert_eq!(later["amounts"], json!([400_000, 100_000]));
    let second_shares = 400_000 * 2_000_000 / 4_000_000;
    assert_eq!(number(&later["shares"]), second_shares);
    let second_balances = balances(app, &key, &second).await;
    assert_eq!(second_balances["kes"], 600_000);
    assert_eq!(second_balances["usd"], 900_000);
    assert_eq!(second_balances[KES_USD], second_shares);

    // A swap pays exactly the constant-product output.
    let trader = customer(app, &key, "Trader").await;
    credit(app, &key, &trader, "kes", 1_000_000).await;
    let before = pool(app, &key, KES_USD).await;
    let (kes, usd) = reserves(&before);
    let expected = amount_out(100_000, kes, usd, 30);
    let swap = |min: u128, deadline: Option<i64>| {
        let mut body = json!({"customer": trader, "pool": KES_USD, "asset_in": "kes",
                              "amount_in": 100_000, "min_amount_out": min as u64});
        if let Some(deadline) = deadline {
            body["deadline"] = json!(deadline);
        }
        body
    };
    let slipped = app
        .post("/v1/trading/swaps", &key, &swap(expected + 1, None))
        .await;
    assert_eq!(slipped.status, 400);
    assert_eq!(slipped.error_param(), Some("min_amount_out"));
    assert_eq!(slipped.body["error"]["code"], "slippage");
    let late = app
        .post("/v1/trading/swaps", &key, &swap(0, Some(1_600_000_000)))
        .await;
    assert_eq!(late.status, 400);
    assert_eq!(late.error_param(), Some("deadline"));
    let broke = app
        .post(
            "/v1/trading/swaps",
            &key,
            &json!({"customer": trader, "pool": KES_USD, "asset_in": "kes",
                    "amount_in": 2_000_000, "min_amount_out": 0}),
        )
        .await;
    assert_eq!(broke.status, 400);
    assert_eq!(broke.body["error"]["code"], "balance_insufficient");
    assert_eq!(
        pool(app, &key, KES_USD).await,
        before,
        "refusals move nothing"
    );
    assert_eq!(balances(app, &key, &trader).await["kes"], 1_000_000);

    let future = 4_000_000_000;
    let done = app
        .post_idempotent(
            "/v1/trading/swaps",
            &key,
            &swap(expected, Some(future)),
            "swap-1",
        )
        .await
        .expect(200);
    assert_eq!(done["object"], "swap");
    assert_eq!(number(&done["amount_out"]), expected);
    let replay = app
        .post_idempotent(
            "/v1/trading/swaps",
            &key,
            &swap(expected, Some(future)),
            "swap-1",
        )
        .await
        .expect(200);
    assert_eq!(replay["id"], done["id"], "the retry answers the same swap");
    let after = pool(app, &key, KES_USD).await;
    assert_eq!(reserves(&after), (kes + 100_000, usd - expected));
    assert!(
        (kes + 100_000) * (usd - expected) >= kes * usd,
        "k never falls"
    );
    let trader_balances = balances(app, &key, &trader).await;
    assert_eq!(trader_balances["kes"], 900_000);
    assert_eq!(trader_balances["usd"], expected);

    // Removing liquidity pays the shares' part of both reserves.
    let (kes, usd) = reserves(&after);
    let total = number(&after["total_shares"]);
    let removed = app
        .post(
            &format!("/v1/trading/pools/{KES_USD}/remove_liquidity"),
            &key,
            &json!({"customer": second, "shares": second_shares as u64}),
        )
        .await
        .expect(200);
    let (out_kes, out_usd) = (second_shares * kes / total, second_shares * usd / total);
    assert_eq!(removed["amounts"], json!([out_kes as u64, out_usd as u64]));
    let second_balances = balances(app, &key, &second).await;
    assert_eq!(second_balances["kes"], 600_000 + out_kes);
    assert_eq!(second_balances["usd"], 900_000 + out_usd);
    assert_eq!(second_balances[KES_USD], 0);
    let more = app
        .post(
            &format!("/v1/trading/pools/{KES_USD}/remove_liquidity"),
            &key,
            &json!({"customer": second, "shares": 1}),
        )
        .await;
    assert_eq!(more.status, 400, "{}", more.body);

    // Field checks name the field; another mode's pool is empty.
    let missing = app
        .post(
            "/v1/trading/swaps",
            &key,
            &json!({"customer": trader, "asset_in": "kes", "amount_in": 1, "min_amount_out": 0}),
        )
        .await;
    assert_eq!(missing.error_param(), Some("pool"));
    let unknown = app
        .post(
            "/v1/trading/swaps",
            &key,
            &json!({"customer": trader, "pool": "pool_nope", "asset_in": "kes",
                    "amount_in": 1, "min_amount_out": 0}),
        )
        .await;
    assert_eq!(unknown.status, 404);
    assert_consistent(app).await;

    // `malipo trading check` proves the pool equals its ledger accounts,
    // and fails once a reserve is moved behind the pool's back.
    let check = || {
        std::process::Command::new(env!("CARGO_BIN_EXE_malipo"))
            .args(["trading", "check"])
            .env("DATABASE_URL", app.database_url())
            .env("RUST_LOG", "error")
            .output()
            .expect("malipo trading check")
    };
    let passed = check();
    assert!(passed.status.success(), "{passed:?}");
    let report: Value = serde_json::from_slice(&passed.stdout).expect("a JSON report");
    assert_eq!(report["pools"], 2, "one row per mode");
    let reserve = format!("test/pool/{KES_USD}/kes/reserve");
    let mut tx = app.gateway().store().begin().await.expect("tx");
    tx.conn()
        .post_transfers(
            &[malipo_ledger::TransferRequest {
                id: "tamper.pool".into(),
                debit_account_id: reserve.clone(),
                credit_account_id: format!("test/customer/{trader}/kes/available"),
                amount: 1,
                asset: "kes".into(),
                kind: malipo_ledger::TransferKind::Posted,
                pending_id: None,
                code: "tamper".into(),
                source_id: None,
            }],
            0,
        )
        .await
        .expect("the ledger takes it");
    tx.commit().await.expect("commit");
    let failed = check();
    assert_eq!(failed.status.code(), Some(1));
    let report: Value = serde_json::from_slice(&failed.stdout).expect("a JSON report");
    assert!(
        report["problems"].to_string().contains(&reserve),
        "{report}"
    );
}
both_backends!(pools_take_liquidity_and_swap_exactly);

/// KES -> USD -> BTC across two pools: the quote is the chained formula,
/// execution moves every leg in one transaction, and a minimum above the
/// output moves nothing.
async fn two_hop_routes_execute_all_or_nothing(app: &TestApp) {
    let key = app.test_key().await;
    create_pool(app, "kes", "usd").await;
    create_pool(app, "btc", "usd").await;
    let founder = customer(app, &key, "Founder").await;
    credit(app, &key, &founder, "kes", 100_000_000).await;
    credit(app, &key, &founder, "usd", 100_000_000).await;
    credit(app, &key, &founder, "btc", 100_000_000).await;
    add(app, &key, KES_USD, &founder, 13_000_000, 100_000).await;
    add(app, &key, BTC_USD, &founder, 2_000_000, 2_000_000).await;
    let trader = customer(app, &key, "Trader").await;
    credit(app, &key, &trader, "kes", 1_000_000).await;

    let usd = amount_out(130_000, 13_000_000, 100_000, 30);
    let btc = amount_out(usd, 2_000_000, 2_000_000, 30);
    let request = json!({"asset_in": "kes", "asset_out": "btc", "amount_in": 130_000,
                         "max_hops": 3, "allow_split": true});
    let quote = app
        .post("/v1/trading/route", &key, &request)
        .await
        .expect(200);
    assert_eq!(quote["object"], "route_quote");
    assert_eq!(number(&quote["amount_out"]), btc);
    assert_eq!(quote["paths"].as_array().expect("paths").len(), 1);
    let legs = &quote["paths"][0]["legs"];
    assert_eq!(legs[0]["pool"], KES_USD);
    assert_eq!(number(&legs[0]["amount_out"]), usd);
    assert_eq!(legs[1]["pool"], BTC_USD);
    assert!(quote["price_impact_bps"].as_u64().expect("impact") > 0);
    let one_hop = app
        .post(
            "/v1/trading/route",
            &key,
            &json!({"asset_in": "kes", "asset_out": "btc", "amount_in": 130_000, "max_hops": 1}),
        )
        .await;
    assert_eq!(one_hop.status, 400);
    assert_eq!(one_hop.body["error"]["code"], "no_route");
    let hops = app
        .post(
            "/v1/trading/route",
            &key,
            &json!({"asset_in": "kes", "asset_out": "btc", "amount_in": 1, "max_hops": 4}),
        )
        .await;
    assert_eq!(hops.error_param(), Some("max_hops"));

    let pools_before = app.get("/v1/trading/pools", &key).await.expect(200);
    let mut execute = request.clone();
    execute["customer"] = json!(trader);
    execute["min_amount_out"] = json!((btc + 1) as u64);
    let refused = app.post("/v1/trading/route/execute", &key, &execute).await;
    assert_eq!(refused.status, 400);
    assert_eq!(refused.error_param(), Some("min_amount_out"));
    assert_eq!(
        app.get("/v1/trading/pools", &key).await.expect(200),
        pools_before,
        "a refused route moves nothing"
    );
    assert_eq!(balances(app, &key, &trader).await["kes"], 1_000_000);

    execute["min_amount_out"] = json!(btc as u64);
    let done = app
        .post("/v1/trading/route/execute", &key, &execute)
        .await
        .expect(200);
    assert_eq!(done["object"], "swap");
    assert_eq!(number(&done["amount_out"]), btc);
    let trader_balances = balances(app, &key, &trader).await;
    assert_eq!(trader_balances["kes"], 1_000_000 - 130_000);
    assert_eq!(trader_balances["btc"], btc);
    assert_eq!(trader_balances.get("usd").copied().unwrap_or(0), 0);
    assert_eq!(
        reserves(&pool(app, &key, KES_USD).await),
        (13_130_000, 100_000 - usd)
    );
    assert_eq!(
        reserves(&pool(app, &key, BTC_USD).await),
        (2_000_000 - btc, 2_000_000 + usd)
    );
    assert_consistent(app).await;

    let spec = app.get("/openapi.json", "").await.expect(200);
    for path in [
        "/v1/admin/trading/pools",
        "/v1/trading/pools",
        "/v1/trading/pools/{id}",
        "/v1/trading/pools/{id}/add_liquidity",
        "/v1/trading/pools/{id}/remove_liquidity",
        "/v1/trading/swaps",
        "/v1/trading/route",
        "/v1/trading/route/execute",
    ] {
        assert!(spec["paths"][path].is_object(), "{path} is documented");
    }
}
both_backends!(two_hop_routes_execute_all_or_nothing);

/// Twenty swaps at once on one pool, both ways: each runs under the pool's
/// row lock, so k never falls and the ledger equals the reserves.
async fn parallel_swaps_keep_the_pool_and_ledger_equal(app: &TestApp) {
    let key = app.test_key().await;
    create_pool(app, "kes", "usd").await;
    let founder = customer(app, &key, "Founder").await;
    credit(app, &key, &founder, "kes", 50_000_000).await;
    credit(app, &key, &founder, "usd", 50_000_000).await;
    add(app, &key, KES_USD, &founder, 40_000_000, 10_000_000).await;
    let mut traders = Vec::new();
    for index in 0..4 {
        let id = customer(app, &key, &format!("Trader {index}")).await;
        credit(app, &key, &id, "kes", 1_000_000).await;
        credit(app, &key, &id, "usd", 1_000_000).await;
        traders.push(id);
    }
    let (kes_before, usd_before) = reserves(&pool(app, &key, KES_USD).await);
    let requests = (0..20).map(|index: usize| {
        let client = app.client.clone();
        let key = key.clone();
        let base = app.base.clone();
        let asset = if index.is_multiple_of(2) {
            "kes"
        } else {
            "usd"
        };
        let body = json!({"customer": traders[index % 4], "pool": KES_USD, "asset_in": asset,
                          "amount_in": 50_000 + index as u64 * 1_000, "min_amount_out": 1});
        async move {
            client
                .post(format!("{base}/v1/trading/swaps"))
                .bearer_auth(&key)
                .json(&body)
                .send()
                .await
                .expect("swap")
                .status()
                .as_u16()
        }
    });
    let statuses = futures::future::join_all(requests).await;
    assert!(statuses.iter().all(|status| *status == 200), "{statuses:?}");
    let (kes, usd) = reserves(&pool(app, &key, KES_USD).await);
    assert!(kes * usd >= kes_before * usd_before, "k never falls");
    // Value is conserved: the traders plus the pool hold what they started with.
    let mut held = (kes, usd);
    for trader in &traders {
        let balances = balances(app, &key, trader).await;
        held.0 += balances.get("kes").copied().unwrap_or(0);
        held.1 += balances.get("usd").copied().unwrap_or(0);
    }
    assert_eq!(held, (kes_before + 4_000_000, usd_before + 4_000_000));
    assert_consistent(app).await;
}
both_backends!(parallel_swaps_keep_the_pool_and_ledger_equal);
