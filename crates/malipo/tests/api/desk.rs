//! The buy/sell desk over HTTP: prices from the venue's book and from the
//! rate sources (stale refused), quotes with the method's fee and
//! platform-favoured rounding, buys from the customer's balance and sells
//! that settle through the reserve and fee accounts in the ledger,
//! refusals (short reserve, short balance, expired or used quote) that move
//! nothing.

use crate::both_backends;
use crate::conversions::static_source;
use crate::helpers::{TestApp, test_config};
use crate::trading::{assert_consistent, balance, btc_usd, credit, customer, limit, order};
use malipo::config::Config;
use serde_json::{Value, json};
use std::time::Duration;

/// 1 BTC = 50 000 USD (fresh); ETH only from a source that went stale.
fn desk_config() -> Config {
    Config {
        rate_sources: vec![
            static_source("static", &[("btc", "0.00002")], 0, 0),
            static_source("old", &[("eth", "0.00025")], 1_000_000, 60),
        ],
        ..test_config()
    }
}

fn short_quotes_config() -> Config {
    let mut config = desk_config();
    config.desk.quote_lifetime_seconds = 1;
    config
}

async fn fund(app: &TestApp, asset: &str, amount: u64) {
    app.post(
        "/v1/admin/trading/reserves",
        &app.operator_token,
        &json!({"asset": asset, "amount": amount, "mode": "test"}),
    )
    .await
    .expect(200);
}

async fn reserve(app: &TestApp, asset: &str) -> (u64, u64) {
    let list = app
        .get("/v1/admin/trading/reserves", &app.operator_token)
        .await
        .expect(200);
    list["data"]
        .as_array()
        .expect("data")
        .iter()
        .find(|reserve| reserve["asset"] == asset && reserve["livemode"] == false)
        .map_or((0, 0), |reserve| {
            (
                reserve["available"].as_u64().expect("available"),
                reserve["fees"].as_u64().expect("fees"),
            )
        })
}

async fn quote(app: &TestApp, key: &str, body: Value) -> crate::helpers::Response {
    app.post("/v1/trading/quotes", key, &body).await
}

async fn prices_come_from_the_book_or_the_rates(app: &TestApp) {
    let key = app.test_key().await;
    // No pair yet: the rate source, mid ± 1%.
    let price = app
        .get("/v1/trading/prices?asset=btc&currency=usd", &key)
        .await
        .expect(200);
    assert_eq!(price["object"], "desk_price");
    assert_eq!(price["source"], "static");
    assert_eq!(price["bid"], "49500");
    // 1 / (0.00002 × 0.99), rounded up at 12 digits.
    assert_eq!(price["ask"], "50505.0505051");
    // A stale rate is refused.
    let stale = app
        .get("/v1/trading/prices?asset=eth&currency=usd", &key)
        .await;
    assert_eq!(stale.status, 503, "{}", stale.body);
    assert_eq!(stale.body["error"]["code"], "rate_stale");
    // A fiat "asset" names the field.
    let bad = app
        .get("/v1/trading/prices?asset=kes&currency=usd", &key)
        .await;
    assert_eq!(bad.status, 400);
    assert_eq!(bad.body["error"]["param"], "asset");

    // A pair with one side only is not liquidity: still the rates.
    btc_usd(app).await;
    let maker = customer(app, &key, "maker").await;
    credit(app, &key, &maker, "usd", 1_000_000).await;
    credit(app, &key, &maker, "btc", 10_000_000).await;
    order(app, &key, limit(&maker, "buy", 49, 10_000))
        .await
        .expect(200);
    let one_sided = app
        .get("/v1/trading/prices?asset=btc&currency=usd", &key)
        .await
        .expect(200);
    assert_eq!(one_sided["source"], "static");
    // Both sides: the book's best bid and ask ($49 000 and $51 000).
    order(app, &key, limit(&maker, "sell", 51, 10_000))
        .await
        .expect(200);
    let book = app
        .get("/v1/trading/prices?asset=btc&currency=usd", &key)
        .await
        .expect(200);
    assert_eq!(book["source"], "order_book");
    assert_eq!(book["bid"], "49000");
    assert_eq!(book["ask"], "51000");
    assert_consistent(app).await;
}
both_backends!(prices_come_from_the_book_or_the_rates, super::desk_config());

async fn quotes_charge_the_method_fee_and_round_for_the_platform(app: &TestApp) {
    let key = app.test_key().await;
    let alice = customer(app, &key, "alice").await;
    let body = |method: &str| {
        json!({"customer": alice, "side": "buy", "asset": "btc", "currency": "usd",
               "amount": 10_001, "payment_method": method})
    };
    // An empty reserve cannot sell anything.
    let short = quote(app, &key, body("mpesa")).await;
    assert_eq!(short.status, 409, "{}", short.body);
    assert_eq!(short.body["error"]["code"], "reserve_insufficient");
    fund(app, "btc", 100_000_000).await;

    // Buy rate 0.00002 × 0.99 = 0.0000198 BTC per USD.
    // M-Pesa 2.5%: fee ceil(250.025) = 251 cents; 97.50 USD buy
    // 9 750 × 19.8 = 193 050 sats.
    let mpesa = quote(app, &key, body("mpesa")).await.expect(200);
    assert_eq!(mpesa["object"], "desk_quote");
    assert!(mpesa["id"].as_str().expect("id").starts_with("dq_"));
    assert_eq!(mpesa["amount"], 10_001);
    assert_eq!(mpesa["fee"], 251);
    assert_eq!(mpesa["fee_basis_points"], 250);
    assert_eq!(mpesa["asset_amount"], 193_050);
    assert_eq!(mpesa["price"], "50505.0505051");
    assert_eq!(mpesa["source"], "static");
    let created = mpesa["created"].as_i64().expect("created");
    assert_eq!(mpesa["expires_at"].as_i64().expect("expires"), created + 60);
    // Card 3%: fee ceil(300.03) = 301; 9 700 × 19.8 = 192 060.
    let card = quote(app, &key, body("card")).await.expect(200);
    assert_eq!(
        (card["fee"].as_u64(), card["asset_amount"].as_u64()),
        (Some(301), Some(192_060))
    );
    // Bank 1.5%, voucher 1%, crypto 0.5%, balance 0.5%.
    for (method, fee) in [
        ("bank_transfer", 151),
        ("voucher", 101),
        ("crypto", 51),
        ("balance", 51),
    ] {
        let quoted = quote(app, &key, body(method)).await.expect(200);
        assert_eq!(quoted["fee"], fee, "{method}");
    }
    // Asking for an asset amount: 0.01 BTC costs ceil(10 000 000 / 19.8)
    // = 50 506 cents net, grossed up over the 2.5% fee.
    let exact = quote(
        app,
        &key,
        json!({"customer": alice, "side": "buy", "asset": "btc", "currency": "usd",
               "asset_amount": 1_000_000, "payment_method": "mpesa"}),
    )
    .await
    .expect(200);
    assert_eq!(exact["asset_amount"], 1_000_000);
    assert_eq!(exact["amount"], 51_802);
    assert_eq!(exact["fee"], 1_296);

    // Field by field.
    for (body, param) in [
        (
            json!({"side": "buy", "asset": "btc", "currency": "usd", "amount": 100, "payment_method": "card"}),
            "customer",
        ),
        (
            json!({"customer": alice, "side": "hold", "asset": "btc", "currency": "usd", "amount": 100, "payment_method": "card"}),
            "side",
        ),
        (
            json!({"customer": alice, "side": "buy", "asset": "usd", "currency": "usd", "amount": 100, "payment_method": "card"}),
            "asset",
        ),
        (
            json!({"customer": alice, "side": "buy", "asset": "btc", "currency": "eth", "amount": 100, "payment_method": "card"}),
            "currency",
        ),
        (
            json!({"customer": alice, "side": "buy", "asset": "btc", "currency": "usd", "payment_method": "card"}),
            "amount",
        ),
        (
            json!({"customer": alice, "side": "buy", "asset": "btc", "currency": "usd", "amount": 100, "asset_amount": 5, "payment_method": "card"}),
            "asset_amount",
        ),
        (
            json!({"customer": alice, "side": "buy", "asset": "btc", "currency": "usd", "amount": 100, "payment_method": "cheque"}),
            "payment_method",
        ),
        (
            json!({"customer": alice, "side": "sell", "asset": "btc", "currency": "usd", "asset_amount": 100, "payment_method": "card"}),
            "payment_method",
        ),
        (
            json!({"customer": "cus_nope", "side": "buy", "asset": "btc", "currency": "usd", "amount": 100, "payment_method": "card"}),
            "customer",
        ),
    ] {
        let refused = quote(app, &key, body.clone()).await;
        assert!(
            refused.status == 400 || refused.status == 404,
            "{body}: {}",
            refused.body
        );
        assert_eq!(refused.body["error"]["param"], param, "{body}");
    }
}
both_backends!(
    quotes_charge_the_method_fee_and_round_for_the_platform,
    super::desk_config()
);

async fn buy_from_balance_then_sell(app: &TestApp) {
    let key = app.test_key().await;
    fund(app, "btc", 100_000_000).await;
    fund(app, "usd", 1_000_000).await;
    let bob = customer(app, &key, "bob").await;
    credit(app, &key, &bob, "usd", 20_000).await;

    // 100 USD at 0.5%: fee 50; 9 950 × 19.8 = 197 010 sats.
    let buy_quote = quote(
        app,
        &key,
        json!({"customer": bob, "side": "buy", "asset": "btc", "currency": "usd",
               "amount": 10_000, "payment_method": "balance"}),
    )
    .await
    .expect(200);
    assert_eq!(buy_quote["asset_amount"], 197_010);
    let quote_id = buy_quote["id"].as_str().expect("id");
    // A buy quote is not a sell quote.
    let wrong = app
        .post("/v1/trading/sell", &key, &json!({"quote": quote_id}))
        .await;
    assert_eq!(wrong.status, 400);
    assert_eq!(wrong.body["error"]["param"], "quote");
    let trade = app
        .post(
            "/v1/trading/buy",
            &key,
            &json!({"quote": quote_id, "pay_from_balance": true}),
        )
        .await
        .expect(200);
    assert_eq!(trade["object"], "trade");
    assert!(trade["id"].as_str().expect("id").starts_with("trd_"));
    assert_eq!(trade["status"], "completed");
    assert_eq!(trade["customer"], bob.as_str());
    assert_eq!(balance(app, &key, &bob, "usd").await, (10_000, 0));
    assert_eq!(balance(app, &key, &bob, "btc").await, (197_010, 0));
    assert_eq!(reserve(app, "btc").await, (100_000_000 - 197_010, 0));
    assert_eq!(reserve(app, "usd").await, (1_000_000 + 9_950, 50));
    // A quote trades once.
    let again = app
        .post(
            "/v1/trading/buy",
            &key,
            &json!({"quote": quote_id, "pay_from_balance": true}),
        )
        .await;
    assert_eq!(again.status, 400, "{}", again.body);
    assert_eq!(again.body["error"]["code"], "quote_unusable");
    assert_eq!(balance(app, &key, &bob, "btc").await, (197_010, 0));

    // Sell 0.001 BTC at 49 500: 4 950 cents, fee ceil(24.75) = 25.
    let sell_quote = quote(
        app,
        &key,
        json!({"customer": bob, "side": "sell", "asset": "btc", "currency": "usd",
               "asset_amount": 100_000}),
    )
    .await
    .expect(200);
    assert_eq!(sell_quote["payment_method"], "balance");
    assert_eq!(sell_quote["amount"], 4_925);
    assert_eq!(sell_quote["fee"], 25);
    assert_eq!(sell_quote["price"], "49500");
    let sold = app
        .post(
            "/v1/trading/sell",
            &key,
            &json!({"quote": sell_quote["id"]}),
        )
        .await
        .expect(200);
    assert_eq!(sold["status"], "completed");
    assert_eq!(balance(app, &key, &bob, "usd").await, (14_925, 0));
    assert_eq!(balance(app, &key, &bob, "btc").await, (97_010, 0));
    assert_eq!(reserve(app, "usd").await, (1_000_000 + 9_950 - 4_950, 75));

    let list = app.get("/v1/trading/trades", &key).await.expect(200);
    let data = list["data"].as_array().expect("data");
    assert_eq!(data.len(), 2);
    assert_eq!(data[0]["id"], sold["id"]);
    let fetched = app
        .get(
            &format!("/v1/trading/trades/{}", trade["id"].as_str().expect("id")),
            &key,
        )
        .await
        .expect(200);
    assert_eq!(fetched, trade);
    let events = app
        .get("/v1/events?type=trade.completed", &key)
        .await
        .expect(200);
    assert_eq!(events["data"].as_array().map(Vec::len), Some(2), "{events}");
    assert_consistent(app).await;
}
both_backends!(buy_from_balance_then_sell, super::desk_config());

async fn short_balances_and_reserves_move_nothing(app: &TestApp) {
    let key = app.test_key().await;
    fund(app, "btc", 1_000_000).await;
    fund(app, "usd", 3_000).await;
    let carol = customer(app, &key, "carol").await;
    credit(app, &key, &carol, "usd", 5_000).await;
    credit(app, &key, &carol, "btc", 50_000).await;
    let sell = |customer: &str, sats: u64| {
        json!({"customer": customer, "side": "sell", "asset": "btc", "currency": "usd",
               "asset_amount": sats})
    };
    // The buy costs more than her balance.
    let buy = quote(
        app,
        &key,
        json!({"customer": carol, "side": "buy", "asset": "btc", "currency": "usd",
               "amount": 6_000, "payment_method": "balance"}),
    )
    .await
    .expect(200);
    let refused = app
        .post(
            "/v1/trading/buy",
            &key,
            &json!({"quote": buy["id"], "pay_from_balance": true}),
        )
        .await;
    assert_eq!(refused.status, 400, "{}", refused.body);
    assert_eq!(refused.body["error"]["code"], "balance_insufficient");
    assert_eq!(refused.body["error"]["param"], "quote");
    // A buy paid otherwise is not available yet: it names the field.
    let unpaid = app
        .post("/v1/trading/buy", &key, &json!({"quote": buy["id"]}))
        .await;
    assert_eq!(unpaid.status, 400);
    assert_eq!(unpaid.body["error"]["param"], "pay_from_balance");
    // 0.0007 BTC would take 3 465 cents from a 3 000 reserve: refused at
    // quote time.
    let too_big = quote(app, &key, sell(&carol, 70_000)).await;
    assert_eq!(too_big.status, 409, "{}", too_big.body);
    assert_eq!(too_big.body["error"]["code"], "reserve_insufficient");
    // 0.0006 BTC (2 970 cents) fits the reserve but not her 50 000 sats.
    let over = quote(app, &key, sell(&carol, 60_000)).await.expect(200);
    let short_balance = app
        .post("/v1/trading/sell", &key, &json!({"quote": over["id"]}))
        .await;
    assert_eq!(short_balance.status, 400, "{}", short_balance.body);
    assert_eq!(short_balance.body["error"]["code"], "balance_insufficient");
    assert_eq!(short_balance.body["error"]["param"], "asset_amount");

    // The reserve runs short between quote and trade: both quotes fit
    // (1 980 cents each), the first sell leaves 1 020.
    let dave = customer(app, &key, "dave").await;
    credit(app, &key, &dave, "btc", 100_000).await;
    let first = quote(app, &key, sell(&dave, 40_000)).await.expect(200);
    let second = quote(app, &key, sell(&carol, 40_000)).await.expect(200);
    app.post("/v1/trading/sell", &key, &json!({"quote": first["id"]}))
        .await
        .expect(200);
    let short = app
        .post("/v1/trading/sell", &key, &json!({"quote": second["id"]}))
        .await;
    assert_eq!(short.status, 409, "{}", short.body);
    assert_eq!(short.body["error"]["code"], "reserve_insufficient");
    assert_eq!(balance(app, &key, &carol, "usd").await, (5_000, 0));
    assert_eq!(balance(app, &key, &carol, "btc").await, (50_000, 0));
    assert_eq!(reserve(app, "usd").await.0, 3_000 - 1_980);
    let listed = app
        .get(&format!("/v1/trading/trades?customer={carol}"), &key)
        .await
        .expect(200);
    assert_eq!(listed["data"].as_array().map(Vec::len), Some(0));
    assert_consistent(app).await;
}
both_backends!(
    short_balances_and_reserves_move_nothing,
    super::desk_config()
);

async fn an_expired_quote_is_refused(app: &TestApp) {
    let key = app.test_key().await;
    fund(app, "btc", 1_000_000).await;
    let erin = customer(app, &key, "erin").await;
    credit(app, &key, &erin, "usd", 10_000).await;
    let quoted = quote(
        app,
        &key,
        json!({"customer": erin, "side": "buy", "asset": "btc", "currency": "usd",
               "amount": 1_000, "payment_method": "balance"}),
    )
    .await
    .expect(200);
    tokio::time::sleep(Duration::from_millis(2_100)).await;
    let late = app
        .post(
            "/v1/trading/buy",
            &key,
            &json!({"quote": quoted["id"], "pay_from_balance": true}),
        )
        .await;
    assert_eq!(late.status, 400, "{}", late.body);
    assert_eq!(late.body["error"]["code"], "quote_unusable");
    assert_eq!(late.body["error"]["param"], "quote");
    assert_eq!(balance(app, &key, &erin, "usd").await, (10_000, 0));
    assert_eq!(balance(app, &key, &erin, "btc").await, (0, 0));
    // Live reserves are not funded over the API.
    let live = app
        .post(
            "/v1/admin/trading/reserves",
            &app.operator_token,
            &json!({"asset": "btc", "amount": 1, "mode": "live"}),
        )
        .await;
    assert_eq!(live.status, 400);
    assert_eq!(live.body["error"]["param"], "mode");
    assert_consistent(app).await;
}
both_backends!(an_expired_quote_is_refused, super::short_quotes_config());
