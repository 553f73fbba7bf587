//! The buy/sell desk over HTTP: prices from the venue's book and from the
//! rate sources (stale refused), quotes with the method's fee and
//! platform-favoured rounding, buys from the customer's balance and sells
//! that settle through the reserve and fee accounts in the ledger,
//! refusals (short reserve, short balance, expired or used quote) that move
//! nothing; buys paid with a payment method (sandbox, bank transfer, card,
//! M-Pesa) that hold their asset on the reserve, complete when the payment
//! succeeds, fail with it, and cancel while pending (the payment, which
//! the provider holds, runs on and only credits the customer); their
//! refunds come out of the customer's balance.

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

/// The desk's config with a KES rate (125 per USD).
fn kes_config() -> Config {
    let mut config = desk_config();
    config.rate_sources[0] = static_source("static", &[("btc", "0.00002"), ("kes", "125")], 0, 0);
    config
}

/// [`kes_config`] with a five-minute payment window, shorter than the
/// sandbox's ten-minute payment expiry.
fn window_config() -> Config {
    let mut config = kes_config();
    config.desk.payment_window_seconds = 300;
    config
}

/// Sandbox payments that expire after three seconds (time enough to
/// cancel a trade first, even on a loaded machine).
fn expiring_config() -> Config {
    Config {
        sandbox_payment_expiry_seconds: 3,
        ..desk_config()
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

/// What the test-mode reserve of `asset` holds for pending buys.
async fn held(app: &TestApp, asset: &str) -> u64 {
    let list = app
        .get("/v1/admin/trading/reserves", &app.operator_token)
        .await
        .expect(200);
    list["data"]
        .as_array()
        .expect("data")
        .iter()
        .find(|reserve| reserve["asset"] == asset && reserve["livemode"] == false)
        .map_or(0, |reserve| reserve["held"].as_u64().expect("held"))
}

/// The operator confirms the bank deposit of a trade's payment.
async fn confirm_deposit(app: &TestApp, trade: &Value, amount: u64) {
    let deposits = app
        .get("/v1/admin/bank_deposits?limit=100", &app.operator_token)
        .await
        .expect(200);
    let deposit = deposits["data"]
        .as_array()
        .expect("deposits")
        .iter()
        .find(|deposit| deposit["payment"] == trade["payment"])
        .cloned()
        .expect("the buy's deposit");
    app.post(
        &format!(
            "/v1/admin/bank_deposits/{}/confirm",
            deposit["id"].as_str().expect("id")
        ),
        &app.operator_token,
        &json!({"amount_received": amount, "bank_reference": "FT26BUY1"}),
    )
    .await
    .expect(200);
}

async fn quote(app: &TestApp, key: &str, body: Value) -> crate::helpers::Response {
    app.post("/v1/trading/quotes", key, &body).await
}

fn buy_quote(customer: &str, currency: &str, amount: u64, method: &str) -> Value {
    json!({"customer": customer, "side": "buy", "asset": "btc", "currency": currency,
           "amount": amount, "payment_method": method})
}

/// A buy paid by a sandbox payment from `phone` (its last four digits
/// decide the payment), with extra payment fields.
fn paid_buy(quote: &Value, phone: &str, extra: Value) -> Value {
    let mut payment = json!({"customer": {"phone": phone}});
    if let (Some(payment), Some(extra)) = (payment.as_object_mut(), extra.as_object()) {
        payment.extend(extra.clone());
    }
    json!({"quote": quote["id"], "payment": payment})
}

/// Polls a trade until it is no longer pending, or 15 s pass.
async fn settled_trade(app: &TestApp, key: &str, trade: &Value) -> Value {
    let path = format!("/v1/trading/trades/{}", trade["id"].as_str().expect("id"));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        let trade = app.get(&path, key).await.expect(200);
        if trade["status"] != "pending" || tokio::time::Instant::now() > deadline {
            return trade;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The types of the events about `object_id`, oldest first.
async fn events_of(app: &TestApp, key: &str, object_id: &Value) -> Vec<String> {
    let events = app.get("/v1/events?limit=100", key).await.expect(200);
    let mut types: Vec<String> = events["data"]
        .as_array()
        .expect("data")
        .iter()
        .filter(|event| event["data"]["object"]["id"] == *object_id)
        .map(|event| event["type"].as_str().expect("type").to_owned())
        .collect();
    types.reverse();
    types
}

async fn payments_count(app: &TestApp, key: &str) -> usize {
    app.get("/v1/payments?limit=100", key).await.expect(200)["data"]
        .as_array()
        .map_or(0, Vec::len)
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
    let short = quote(app, &key, body("sandbox")).await;
    assert_eq!(short.status, 409, "{}", short.body);
    assert_eq!(short.body["error"]["code"], "reserve_insufficient");
    fund(app, "btc", 100_000_000).await;

    // Buy rate 0.00002 × 0.99 = 0.0000198 BTC per USD.
    // Sandbox (as M-Pesa) 2.5%: fee ceil(250.025) = 251 cents; 97.50 USD
    // buy 9 750 × 19.8 = 193 050 sats.
    let mpesa = quote(app, &key, body("sandbox")).await.expect(200);
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
               "asset_amount": 1_000_000, "payment_method": "sandbox"}),
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
    // A balance quote is not paid by a payment: it names the quote.
    let unpaid = app
        .post("/v1/trading/buy", &key, &json!({"quote": buy["id"]}))
        .await;
    assert_eq!(unpaid.status, 400);
    assert_eq!(unpaid.body["error"]["param"], "quote");
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

async fn a_buy_paid_by_sandbox_completes_when_its_payment_succeeds(app: &TestApp) {
    let key = app.test_key().await;
    fund(app, "btc", 100_000_000).await;
    let bob = customer(app, &key, "bob").await;

    // 100 USD by sandbox at 2.5%: fee 250; 9 750 × 19.8 = 193 050 sats.
    let quoted = quote(app, &key, buy_quote(&bob, "usd", 10_000, "sandbox"))
        .await
        .expect(200);
    assert_eq!(quoted["fee"], 250);
    assert_eq!(quoted["asset_amount"], 193_050);
    let body = paid_buy(
        &quoted,
        "254700000000",
        json!({"reference": "buy-1", "metadata": {"order": "7"}}),
    );
    let trade = app
        .post_idempotent("/v1/trading/buy", &key, &body, "buy-once")
        .await
        .expect(200);
    assert_eq!(trade["status"], "completed", "{trade}");
    assert_eq!(trade["payment_method"], "sandbox");
    assert!(trade["expires_at"].as_i64().is_some(), "{trade}");
    let payment_id = trade["payment"].as_str().expect("the payment's id");
    // The same key answers the same trade and creates nothing more.
    let replay = app
        .post_idempotent("/v1/trading/buy", &key, &body, "buy-once")
        .await
        .expect(200);
    assert_eq!(replay, trade);
    assert_eq!(payments_count(app, &key).await, 1);
    let payment = app
        .get(&format!("/v1/payments/{payment_id}"), &key)
        .await
        .expect(200);
    assert_eq!(payment["status"], "succeeded");
    assert_eq!(payment["amount"], 10_000);
    assert_eq!(payment["currency"], "usd");
    assert_eq!(payment["fee"], 0, "the desk's fee prices the method");
    assert_eq!(payment["credit_customer"], bob.as_str());
    assert_eq!(payment["reference"], "buy-1");
    assert_eq!(payment["metadata"]["order"], "7");
    assert_eq!(payment["metadata"]["desk_trade"], trade["id"]);
    // The payment's fiat went through the customer to the reserve.
    assert_eq!(balance(app, &key, &bob, "usd").await, (0, 0));
    assert_eq!(balance(app, &key, &bob, "btc").await, (193_050, 0));
    assert_eq!(reserve(app, "btc").await, (100_000_000 - 193_050, 0));
    assert_eq!(reserve(app, "usd").await, (9_750, 250));
    assert_eq!(
        events_of(app, &key, &trade["id"]).await,
        ["trade.created", "trade.completed"]
    );

    // Processing first (`0003`), then the sandbox's callback succeeds it.
    let later = quote(app, &key, buy_quote(&bob, "usd", 1_000, "sandbox"))
        .await
        .expect(200);
    let pending = app
        .post(
            "/v1/trading/buy",
            &key,
            &paid_buy(&later, "254700000003", json!({})),
        )
        .await
        .expect(200);
    assert_eq!(pending["status"], "pending", "{pending}");
    let completed = settled_trade(app, &key, &pending).await;
    assert_eq!(completed["status"], "completed", "{completed}");
    let later_sats = later["asset_amount"].as_u64().expect("sats");
    assert_eq!(
        balance(app, &key, &bob, "btc").await,
        (193_050 + later_sats, 0)
    );
    assert_eq!(balance(app, &key, &bob, "usd").await, (0, 0));
    assert_eq!(reserve(app, "usd").await, (9_750 + 975, 250 + 25));

    // A failed payment (`0002`) fails the trade: nothing moves.
    let failing = quote(app, &key, buy_quote(&bob, "usd", 1_000, "sandbox"))
        .await
        .expect(200);
    let failed = app
        .post(
            "/v1/trading/buy",
            &key,
            &paid_buy(&failing, "254700000002", json!({})),
        )
        .await
        .expect(200);
    assert_eq!(failed["status"], "failed", "{failed}");
    assert_eq!(failed["failure_code"], "payment_failed");
    assert_eq!(
        balance(app, &key, &bob, "btc").await,
        (193_050 + later_sats, 0)
    );
    assert_eq!(balance(app, &key, &bob, "usd").await, (0, 0));
    assert_eq!(reserve(app, "usd").await, (9_750 + 975, 250 + 25));
    assert_eq!(
        events_of(app, &key, &failed["id"]).await,
        ["trade.created", "trade.failed"]
    );
    let listed = app
        .get("/v1/trading/trades?status=failed", &key)
        .await
        .expect(200);
    assert_eq!(listed["data"][0]["id"], failed["id"]);
    assert_consistent(app).await;
}
both_backends!(
    a_buy_paid_by_sandbox_completes_when_its_payment_succeeds,
    super::desk_config()
);

async fn paid_buy_refusals_move_nothing(app: &TestApp) {
    let key = app.test_key().await;
    fund(app, "btc", 200_000).await;
    let carol = customer(app, &key, "carol").await;
    let quoted = quote(app, &key, buy_quote(&carol, "usd", 5_000, "sandbox"))
        .await
        .expect(200);
    let refusals = [
        (
            paid_buy(&quoted, "254700000000", json!({"amount": 4_999})),
            "payment[amount]",
        ),
        (
            paid_buy(&quoted, "254700000000", json!({"method": "mpesa"})),
            "payment[method]",
        ),
        (
            paid_buy(&quoted, "254700000000", json!({"credit_customer": true})),
            "payment[credit_customer]",
        ),
        (
            paid_buy(&quoted, "254700000000", json!({"capture_method": "manual"})),
            "payment[capture_method]",
        ),
        (
            paid_buy(&quoted, "254700000000", json!({"metadata": {"": "x"}})),
            "payment[metadata]",
        ),
        (
            paid_buy(&quoted, "not a phone", json!({})),
            "payment[customer][phone]",
        ),
        (
            json!({"quote": quoted["id"], "pay_from_balance": true}),
            "quote",
        ),
        (
            json!({"quote": quoted["id"], "pay_from_balance": false}),
            "pay_from_balance",
        ),
    ];
    for (body, param) in refusals {
        let refused = app.post("/v1/trading/buy", &key, &body).await;
        assert_eq!(refused.status, 400, "{body}: {}", refused.body);
        assert!(
            refused.body["error"]["param"]
                .as_str()
                .is_some_and(|named| named.starts_with(param)),
            "{body}: {}",
            refused.body
        );
    }
    let sell = app
        .post(
            "/v1/trading/sell",
            &key,
            &json!({"quote": quoted["id"], "payment": {}}),
        )
        .await;
    assert_eq!(sell.status, 400);
    assert_eq!(sell.body["error"]["param"], "payment");
    assert_eq!(payments_count(app, &key).await, 0);

    // Another customer's balance buy drains the reserve after the quote:
    // the paid buy is refused before any payment exists.
    let dave = customer(app, &key, "dave").await;
    credit(app, &key, &dave, "usd", 100_000).await;
    let drain = quote(app, &key, buy_quote(&dave, "usd", 10_000, "balance"))
        .await
        .expect(200);
    app.post(
        "/v1/trading/buy",
        &key,
        &json!({"quote": drain["id"], "pay_from_balance": true}),
    )
    .await
    .expect(200);
    let short = app
        .post(
            "/v1/trading/buy",
            &key,
            &paid_buy(&quoted, "254700000000", json!({})),
        )
        .await;
    assert_eq!(short.status, 409, "{}", short.body);
    assert_eq!(short.body["error"]["code"], "reserve_insufficient");
    assert_eq!(payments_count(app, &key).await, 0);
    let trades = app
        .get(&format!("/v1/trading/trades?customer={carol}"), &key)
        .await
        .expect(200);
    assert_eq!(trades["data"].as_array().map(Vec::len), Some(0));

    // A pending buy holds its BTC on the reserve: a quote of the whole
    // reserve taken before it can no longer be served, and the paid buy
    // completes from its hold when its payment succeeds.
    fund(app, "btc", 200_000).await;
    let (whole, _) = reserve(app, "btc").await;
    let dave_btc = balance(app, &key, &dave, "btc").await;
    let carol_btc = balance(app, &key, &carol, "btc").await.0;
    let drain = quote(
        app,
        &key,
        json!({"customer": dave, "side": "buy", "asset": "btc", "currency": "usd",
               "asset_amount": whole, "payment_method": "balance"}),
    )
    .await
    .expect(200);
    // Paid by bank transfer, so it waits for the operator's confirmation.
    app.post(
        "/v1/bank_accounts",
        &key,
        &json!({"currency": "kes", "bank_name": "Equity Bank", "account_name": "Duka Ltd",
                "account_number": "0150 2939 4455"}),
    )
    .await
    .expect(200);
    let small = quote(
        app,
        &key,
        buy_quote(&carol, "kes", 250_000, "bank_transfer"),
    )
    .await
    .expect(200);
    let sats = small["asset_amount"].as_u64().expect("sats");
    let pending = app
        .post("/v1/trading/buy", &key, &json!({"quote": small["id"]}))
        .await
        .expect(200);
    assert_eq!(pending["status"], "pending", "{pending}");
    assert_eq!(reserve(app, "btc").await.0, whole - sats);
    assert_eq!(held(app, "btc").await, sats);
    assert_consistent(app).await;
    let short = app
        .post(
            "/v1/trading/buy",
            &key,
            &json!({"quote": drain["id"], "pay_from_balance": true}),
        )
        .await;
    assert_eq!(short.status, 409, "{}", short.body);
    assert_eq!(short.body["error"]["code"], "reserve_insufficient");
    assert_eq!(balance(app, &key, &dave, "btc").await, dave_btc);
    confirm_deposit(app, &pending, 250_000).await;
    let completed = settled_trade(app, &key, &pending).await;
    assert_eq!(completed["status"], "completed", "{completed}");
    assert_eq!(balance(app, &key, &carol, "kes").await, (0, 0));
    assert_eq!(
        balance(app, &key, &carol, "btc").await,
        (carol_btc + sats, 0)
    );
    assert_eq!(reserve(app, "btc").await.0, whole - sats);
    assert_eq!(held(app, "btc").await, 0);
    assert_consistent(app).await;
}
both_backends!(paid_buy_refusals_move_nothing, super::kes_config());

async fn one_quote_pays_for_one_buy(app: &TestApp) {
    let key = app.test_key().await;
    fund(app, "btc", 100_000_000).await;
    let gita = customer(app, &key, "gita").await;
    let quoted = quote(app, &key, buy_quote(&gita, "usd", 2_000, "sandbox"))
        .await
        .expect(200);
    // Eight buys of one quote at once (often in one group commit): one
    // payment and one trade; the others are refused and write nothing.
    let body = paid_buy(&quoted, "254700000000", json!({}));
    let answers =
        futures::future::join_all((0..8).map(|_| app.post("/v1/trading/buy", &key, &body))).await;
    let won: Vec<_> = answers
        .iter()
        .filter(|answer| answer.status == 200)
        .collect();
    assert_eq!(
        won.len(),
        1,
        "{:?}",
        answers.iter().map(|a| &a.body).collect::<Vec<_>>()
    );
    for answer in answers.iter().filter(|answer| answer.status != 200) {
        assert_eq!(answer.status, 400, "{}", answer.body);
        assert_eq!(answer.body["error"]["code"], "quote_unusable");
    }
    assert_eq!(won[0].body["status"], "completed");
    assert_eq!(payments_count(app, &key).await, 1);
    let sats = quoted["asset_amount"].as_u64().expect("sats");
    assert_eq!(balance(app, &key, &gita, "btc").await, (sats, 0));
    assert_eq!(balance(app, &key, &gita, "usd").await, (0, 0));
    assert_consistent(app).await;
}
both_backends!(one_quote_pays_for_one_buy, super::desk_config());

async fn pending_buys_cancel_and_late_payments_keep_the_fiat(app: &TestApp) {
    let key = app.test_key().await;
    fund(app, "btc", 100_000_000).await;
    let erin = customer(app, &key, "erin").await;

    // An unsent payment would hold the price for free: refused, nothing
    // written, the quote still usable.
    let quoted = quote(app, &key, buy_quote(&erin, "usd", 3_000, "sandbox"))
        .await
        .expect(200);
    let unsent = app
        .post(
            "/v1/trading/buy",
            &key,
            &paid_buy(&quoted, "254700000000", json!({"confirm": false})),
        )
        .await;
    assert_eq!(unsent.status, 400, "{}", unsent.body);
    assert_eq!(unsent.body["error"]["param"], "payment[confirm]");
    assert_eq!(payments_count(app, &key).await, 0);
    // The sandbox keeps this one processing: canceling the trade leaves
    // the payment running, and it ends no later than the trade's deadline.
    let reserve_before = reserve(app, "btc").await;
    let pending = app
        .post(
            "/v1/trading/buy",
            &key,
            &paid_buy(&quoted, "254700000005", json!({})),
        )
        .await
        .expect(200);
    assert_eq!(pending["status"], "pending");
    assert_eq!(
        held(app, "btc").await,
        quoted["asset_amount"].as_u64().expect("sats")
    );
    let cancel_path = format!(
        "/v1/trading/trades/{}/cancel",
        pending["id"].as_str().expect("id")
    );
    let canceled = app
        .post_idempotent(&cancel_path, &key, &json!({}), "cancel-1")
        .await
        .expect(200);
    assert_eq!(canceled["status"], "canceled");
    let replay = app
        .post_idempotent(&cancel_path, &key, &json!({}), "cancel-1")
        .await
        .expect(200);
    assert_eq!(replay, canceled);
    // The cancel gave the held BTC back to the reserve.
    assert_eq!(reserve(app, "btc").await, reserve_before);
    assert_eq!(held(app, "btc").await, 0);
    let payment = app
        .get(
            &format!(
                "/v1/payments/{}",
                pending["payment"].as_str().expect("payment")
            ),
            &key,
        )
        .await
        .expect(200);
    assert_eq!(payment["status"], "processing", "{payment}");
    assert_eq!(payment["expires_at"], pending["expires_at"], "{payment}");
    let again = app.post(&cancel_path, &key, &json!({})).await;
    assert_eq!(again.status, 400, "{}", again.body);
    assert_eq!(again.body["error"]["code"], "trade_not_pending");
    assert!(
        again.body["error"]["message"]
            .as_str()
            .is_some_and(|message| message.contains("canceled")),
        "{}",
        again.body
    );
    assert_eq!(
        events_of(app, &key, &pending["id"]).await,
        ["trade.created", "trade.canceled"]
    );
    // A completed trade can't be canceled either.
    let done = quote(app, &key, buy_quote(&erin, "usd", 1_000, "sandbox"))
        .await
        .expect(200);
    let completed = app
        .post(
            "/v1/trading/buy",
            &key,
            &paid_buy(&done, "254700000000", json!({})),
        )
        .await
        .expect(200);
    let refused = app
        .post(
            &format!(
                "/v1/trading/trades/{}/cancel",
                completed["id"].as_str().expect("id")
            ),
            &key,
            &json!({}),
        )
        .await;
    assert_eq!(refused.status, 400);
    assert!(
        refused.body["error"]["message"]
            .as_str()
            .is_some_and(|message| message.contains("completed"))
    );
    let btc_after_completed = balance(app, &key, &erin, "btc").await;
    assert_eq!(
        btc_after_completed.0,
        done["asset_amount"].as_u64().expect("sats")
    );

    // A bank transfer waits for the bank: the trade is canceled, the
    // payment goes on, and its success only credits her KES balance.
    app.post(
        "/v1/bank_accounts",
        &key,
        &json!({"currency": "kes", "bank_name": "Equity Bank", "account_name": "Duka Ltd",
                "account_number": "0150 2939 4455"}),
    )
    .await
    .expect(200);
    let by_bank = quote(app, &key, buy_quote(&erin, "kes", 150_000, "bank_transfer"))
        .await
        .expect(200);
    assert_eq!(by_bank["fee"], 2_250);
    let waiting = app
        .post("/v1/trading/buy", &key, &json!({"quote": by_bank["id"]}))
        .await
        .expect(200);
    assert_eq!(waiting["status"], "pending");
    assert_eq!(waiting["next_action"]["type"], "bank_transfer", "{waiting}");
    assert_eq!(waiting["next_action"]["amount"], 150_000);
    let fetched = app
        .get(
            &format!("/v1/trading/trades/{}", waiting["id"].as_str().expect("id")),
            &key,
        )
        .await
        .expect(200);
    assert_eq!(fetched, waiting);
    app.post(
        &format!(
            "/v1/trading/trades/{}/cancel",
            waiting["id"].as_str().expect("id")
        ),
        &key,
        &json!({}),
    )
    .await
    .expect(200);
    confirm_deposit(app, &waiting, 150_000).await;
    let paid = app
        .get(
            &format!(
                "/v1/payments/{}",
                waiting["payment"].as_str().expect("payment")
            ),
            &key,
        )
        .await
        .expect(200);
    assert_eq!(paid["status"], "succeeded");
    let still = app
        .get(
            &format!("/v1/trading/trades/{}", waiting["id"].as_str().expect("id")),
            &key,
        )
        .await
        .expect(200);
    assert_eq!(still["status"], "canceled");
    assert_eq!(balance(app, &key, &erin, "kes").await, (150_000, 0));
    assert_eq!(balance(app, &key, &erin, "btc").await, btc_after_completed);

    assert_consistent(app).await;
}
both_backends!(
    pending_buys_cancel_and_late_payments_keep_the_fiat,
    super::window_config()
);

async fn prices_come_from_a_pool_when_the_book_has_none(app: &TestApp) {
    let key = app.test_key().await;
    fund(app, "btc", 100_000_000).await;
    fund(app, "usd", 1_000_000).await;
    app.post(
        "/v1/admin/trading/pools",
        &app.operator_token,
        &json!({"asset_a": "btc", "asset_b": "usd", "fee_bps": 30}),
    )
    .await
    .expect(200);
    // A pool without reserves gives no price: the rate source does.
    let price = app
        .get("/v1/trading/prices?asset=btc&currency=usd", &key)
        .await
        .expect(200);
    assert_eq!(price["source"], "static");
    // A thin pool pushed to about 80 000 USD per BTC (3 BTC against
    // 240 000 USD at a 1% fee: bid 59 548.87, ask 121 212.13): its mid is
    // 80% away from the source's 50 000, past the 5% allowed, so the
    // rate source still prices the pair.
    let lp = customer(app, &key, "lp").await;
    credit(app, &key, &lp, "btc", 1_300_000_000).await;
    credit(app, &key, &lp, "usd", 74_000_000).await;
    app.post(
        "/v1/admin/trading/pools",
        &app.operator_token,
        &json!({"asset_a": "btc", "asset_b": "usd", "fee_bps": 100}),
    )
    .await
    .expect(200);
    app.post(
        "/v1/trading/pools/pool_btc_usd_100/add_liquidity",
        &key,
        &json!({"customer": lp, "amount_a": 300_000_000u64, "amount_b": 24_000_000u64}),
    )
    .await
    .expect(200);
    let price = app
        .get("/v1/trading/prices?asset=btc&currency=usd", &key)
        .await
        .expect(200);
    assert_eq!(price["source"], "static", "{price}");
    assert_eq!(price["bid"], "49500");
    // 10 BTC against 500 000 USD, the deepest pool: both prices are its
    // own (the thin pool's higher bid would cross its ask).
    app.post(
        "/v1/trading/pools/pool_btc_usd_30/add_liquidity",
        &key,
        &json!({"customer": lp, "amount_a": 1_000_000_000u64, "amount_b": 50_000_000u64}),
    )
    .await
    .expect(200);
    // Uniswap v2's formulas for one BTC, computed here: selling pays out
    // floor(1e8 × 9 970 × 5e7 / (1e9 × 10 000 + 1e8 × 9 970)) cents,
    // buying takes ceil(5e7 × 10 000 × 1e8 / ((1e9 − 1e8) × 9 970)).
    let (btc, usd, unit) = (1_000_000_000u128, 50_000_000u128, 100_000_000u128);
    let bid_cents = unit * 9_970 * usd / (btc * 10_000 + unit * 9_970);
    let ask_cents = (usd * 10_000 * unit).div_ceil((btc - unit) * 9_970);
    assert_eq!((bid_cents, ask_cents), (4_533_054, 5_572_273));
    let price = app
        .get("/v1/trading/prices?asset=btc&currency=usd", &key)
        .await
        .expect(200);
    // The desk's 1% spread on top, as on a rate source's mid: the bid is
    // 45 330.54 × 0.99 truncated; the buy rate is 1 / 55 722.73 truncated
    // to 12 digits (0.0000179459979796), × 0.99 truncated
    // (0.0000177665379998), and the ask shown its inverse rounded up.
    assert_eq!(price["source"], "pool", "{price}");
    assert_eq!(price["bid"], "44877.2346");
    assert_eq!(price["ask"], "56285.5858588");

    // Quotes at the pool's prices round for the platform: a buy of 100 USD
    // (fee 0.5%) gets 9 950 cents' worth at the buy rate, rounded down:
    // 99.50 × 0.0000177665379998 BTC = 176 777.05… sats.
    let bob = customer(app, &key, "bob").await;
    let buy = quote(app, &key, buy_quote(&bob, "usd", 10_000, "balance"))
        .await
        .expect(200);
    assert_eq!(buy["source"], "pool");
    assert_eq!(buy["price"], "56285.5858588");
    assert_eq!(buy["asset_amount"], 176_777);
    assert!(
        176_777 * ask_cents < 9_950 * unit,
        "less than the pool's own ask gives"
    );
    // A sell of 0.001 BTC: floor(4 487.72346) = 4 487 cents, fee
    // ceil(22.435).
    let sell = quote(
        app,
        &key,
        json!({"customer": bob, "side": "sell", "asset": "btc", "currency": "usd",
               "asset_amount": 100_000}),
    )
    .await
    .expect(200);
    assert_eq!(sell["price"], "44877.2346");
    assert_eq!(sell["fee"], 23);
    assert_eq!(sell["amount"], 4_464);

    // A two-sided book still comes first.
    btc_usd(app).await;
    let maker = customer(app, &key, "maker").await;
    credit(app, &key, &maker, "usd", 1_000_000).await;
    credit(app, &key, &maker, "btc", 10_000_000).await;
    order(app, &key, limit(&maker, "buy", 49, 1_000))
        .await
        .expect(200);
    order(app, &key, limit(&maker, "sell", 51, 1_000))
        .await
        .expect(200);
    let price = app
        .get("/v1/trading/prices?asset=btc&currency=usd", &key)
        .await
        .expect(200);
    assert_eq!(price["source"], "order_book");
    assert_consistent(app).await;
}
both_backends!(
    prices_come_from_a_pool_when_the_book_has_none,
    super::desk_config()
);

async fn a_buy_paid_by_mpesa_completes_on_the_stk_callback(app: &TestApp) {
    let simulator = malipo_simulators::spawn(
        malipo_simulators::Provider::Mpesa,
        malipo_simulators::SimulatorConfig::for_tests(200),
    )
    .await
    .expect("simulator");
    let key = crate::mpesa::mpesa_key(app, &simulator).await;
    fund(app, "btc", 100_000_000).await;
    let wanjiru = customer(app, &key, "wanjiru").await;
    // 100 KES by M-Pesa at 2.5%: the STK push asks for the quote's amount.
    let quoted = quote(app, &key, buy_quote(&wanjiru, "kes", 10_000, "mpesa"))
        .await
        .expect(200);
    assert_eq!(quoted["fee"], 250);
    let pending = app
        .post(
            "/v1/trading/buy",
            &key,
            &json!({"quote": quoted["id"], "payment": {"customer": {"phone": "0708374149"}}}),
        )
        .await
        .expect(200);
    assert_eq!(pending["status"], "pending", "{pending}");
    assert_eq!(pending["next_action"]["type"], "phone_prompt", "{pending}");
    let completed = settled_trade(app, &key, &pending).await;
    assert_eq!(completed["status"], "completed", "{completed}");
    assert_eq!(completed["next_action"], Value::Null);
    let payment = app
        .get(
            &format!(
                "/v1/payments/{}",
                pending["payment"].as_str().expect("payment")
            ),
            &key,
        )
        .await
        .expect(200);
    assert_eq!(payment["connector"], "mpesa");
    assert_eq!(payment["status"], "succeeded");
    assert_eq!(payment["amount"], 10_000);
    let sats = quoted["asset_amount"].as_u64().expect("sats");
    assert_eq!(balance(app, &key, &wanjiru, "btc").await, (sats, 0));
    assert_eq!(balance(app, &key, &wanjiru, "kes").await, (0, 0));
    assert_eq!(reserve(app, "kes").await, (9_750, 250));
    assert_eq!(reserve(app, "btc").await, (100_000_000 - sats, 0));
    // M-Pesa takes whole shillings: refused when quoted, naming `amount`.
    let cents = quote(app, &key, buy_quote(&wanjiru, "kes", 10_050, "mpesa")).await;
    assert_eq!(cents.status, 400, "{}", cents.body);
    assert_eq!(cents.error_param(), Some("amount"));
    assert_consistent(app).await;
    simulator.shutdown().await;
}
both_backends!(
    a_buy_paid_by_mpesa_completes_on_the_stk_callback,
    super::kes_config()
);

async fn an_unpaid_buy_fails_when_its_payment_expires(app: &TestApp) {
    let key = app.test_key().await;
    fund(app, "btc", 100_000_000).await;
    let faith = customer(app, &key, "faith").await;
    // `0005` stays processing until the payment expires (after three
    // seconds here): the worker's expiry fails the trade; nothing moves.
    let quoted = quote(app, &key, buy_quote(&faith, "usd", 1_000, "sandbox"))
        .await
        .expect(200);
    let pending = app
        .post(
            "/v1/trading/buy",
            &key,
            &paid_buy(&quoted, "254700000005", json!({})),
        )
        .await
        .expect(200);
    assert_eq!(pending["status"], "pending", "{pending}");
    let expired = settled_trade(app, &key, &pending).await;
    assert_eq!(expired["status"], "failed", "{expired}");
    assert_eq!(expired["failure_code"], "payment_expired");
    assert_eq!(
        events_of(app, &key, &pending["id"]).await,
        ["trade.created", "trade.failed"]
    );

    // Canceled while the provider holds the payment: the payment goes on
    // (here, to its expiry) and the trade stays canceled.
    let again = quote(app, &key, buy_quote(&faith, "usd", 1_000, "sandbox"))
        .await
        .expect(200);
    let waiting = app
        .post(
            "/v1/trading/buy",
            &key,
            &paid_buy(&again, "254700000005", json!({})),
        )
        .await
        .expect(200);
    let canceled = app
        .post(
            &format!(
                "/v1/trading/trades/{}/cancel",
                waiting["id"].as_str().expect("id")
            ),
            &key,
            &json!({}),
        )
        .await
        .expect(200);
    assert_eq!(canceled["status"], "canceled");
    let payment_id = waiting["payment"].as_str().expect("payment");
    let payment = app
        .get(&format!("/v1/payments/{payment_id}"), &key)
        .await
        .expect(200);
    assert_ne!(payment["status"], "canceled", "{payment}");
    let ended = app
        .wait_for_payment(&key, payment_id, |payment| payment["status"] == "expired")
        .await;
    assert_eq!(ended["status"], "expired");
    let still = settled_trade(app, &key, &waiting).await;
    assert_eq!(still["status"], "canceled");
    assert_eq!(
        events_of(app, &key, &waiting["id"]).await,
        ["trade.created", "trade.canceled"]
    );
    assert_eq!(balance(app, &key, &faith, "usd").await, (0, 0));
    assert_eq!(balance(app, &key, &faith, "btc").await, (0, 0));
    assert_eq!(reserve(app, "btc").await, (100_000_000, 0));
    assert_consistent(app).await;
}
both_backends!(
    an_unpaid_buy_fails_when_its_payment_expires,
    super::expiring_config()
);

/// The desk's config with an NGN rate (1 500 per USD), for card buys.
fn ngn_config() -> Config {
    let mut config = desk_config();
    config.rate_sources[0] = static_source("static", &[("btc", "0.00002"), ("ngn", "1500")], 0, 0);
    config
}

/// A card buy waits on Paystack's hosted page (`requires_action`): the
/// provider holds the payment and the customer can still pay there, so
/// canceling the trade leaves the payment running, and its success only
/// credits the customer's NGN balance.
async fn canceling_a_card_buy_leaves_its_payment_payable(app: &TestApp) {
    let (key, _receiver, simulator) = crate::cards::paystack_merchant(app, 100).await;
    fund(app, "btc", 100_000_000).await;
    let reserve_before = reserve(app, "btc").await;
    let ada = customer(app, &key, "ada").await;
    let quoted = quote(app, &key, buy_quote(&ada, "ngn", 500_000, "card"))
        .await
        .expect(200);
    let pending = app
        .post(
            "/v1/trading/buy",
            &key,
            &json!({"quote": quoted["id"], "payment": {
                "customer": {"email": "ada@example.com"},
                "return_url": crate::cards::RETURN_URL}}),
        )
        .await
        .expect(200);
    assert_eq!(pending["status"], "pending", "{pending}");
    assert_eq!(pending["next_action"]["type"], "redirect", "{pending}");
    let canceled = app
        .post(
            &format!(
                "/v1/trading/trades/{}/cancel",
                pending["id"].as_str().expect("id")
            ),
            &key,
            &json!({}),
        )
        .await
        .expect(200);
    assert_eq!(canceled["status"], "canceled");
    let payment_path = format!(
        "/v1/payments/{}",
        pending["payment"].as_str().expect("payment")
    );
    let payment = app.get(&payment_path, &key).await.expect(200);
    assert_eq!(payment["status"], "requires_action", "{payment}");

    // The customer pays on the page after all: the fiat is hers, no BTC.
    crate::cards::pay_on_page(
        &payment,
        malipo_simulators::paystack::CARD_SUCCESS,
        "before_redirect",
    )
    .await;
    let paid = app
        .wait_for_payment(&key, payment["id"].as_str().expect("id"), |p| {
            p["status"] != "requires_action"
        })
        .await;
    assert_eq!(paid["status"], "succeeded", "{paid}");
    let trade = app
        .get(
            &format!("/v1/trading/trades/{}", pending["id"].as_str().expect("id")),
            &key,
        )
        .await
        .expect(200);
    assert_eq!(trade["status"], "canceled");
    assert_eq!(balance(app, &key, &ada, "ngn").await, (500_000, 0));
    assert_eq!(balance(app, &key, &ada, "btc").await, (0, 0));
    assert_eq!(reserve(app, "btc").await, reserve_before);
    assert_consistent(app).await;
    simulator.shutdown().await;
}
both_backends!(
    canceling_a_card_buy_leaves_its_payment_payable,
    super::ngn_config()
);

/// A trade's card payment once the customer left the hosted page.
async fn paid(app: &TestApp, key: &str, trade: &Value) -> Value {
    let id = trade["payment"].as_str().expect("payment");
    app.wait_for_payment(key, id, |p| p["status"] != "requires_action")
        .await
}

/// A desk buy's payment credited the customer: refunding it takes the
/// fiat back from her balance, never from the merchant's. After a
/// canceled trade whose card payment she paid anyway she still has it and
/// the refund goes through; after a completed trade she spent it on the
/// BTC and the refund is refused, moving nothing.
async fn refunds_of_desk_payments_take_the_fiat_from_the_customer(app: &TestApp) {
    use malipo_simulators::paystack::CARD_SUCCESS;
    let (key, receiver, simulator) = crate::cards::paystack_merchant(app, 100).await;
    fund(app, "btc", 100_000_000).await;
    // The merchant's own card payment, which no desk refund may touch.
    let own = crate::cards::pay_by_card(app, &key).await;
    crate::cards::pay_on_page(&own, CARD_SUCCESS, "before_redirect").await;
    assert_eq!(
        crate::cards::settled(app, &key, &own).await["status"],
        "succeeded"
    );
    let merchant_before = crate::mtn_momo::balance(app, &key, "ngn").await;
    assert!(merchant_before.0 > 0, "{merchant_before:?}");
    let ada = customer(app, &key, "ada").await;
    let card_buy = |quote: &Value| {
        json!({"quote": quote["id"], "payment": {
            "customer": {"email": "ada@example.com"},
            "return_url": crate::cards::RETURN_URL}})
    };
    // Canceled, then paid on the page anyway: the fiat is hers.
    let quoted = quote(app, &key, buy_quote(&ada, "ngn", 500_000, "card"))
        .await
        .expect(200);
    let canceled = app
        .post("/v1/trading/buy", &key, &card_buy(&quoted))
        .await
        .expect(200);
    app.post(
        &format!(
            "/v1/trading/trades/{}/cancel",
            canceled["id"].as_str().expect("id")
        ),
        &key,
        &json!({}),
    )
    .await
    .expect(200);
    crate::cards::pay_on_page(&canceled, CARD_SUCCESS, "before_redirect").await;
    assert_eq!(paid(app, &key, &canceled).await["status"], "succeeded");
    assert_eq!(balance(app, &key, &ada, "ngn").await, (500_000, 0));
    let refund = app
        .post(
            "/v1/refunds",
            &key,
            &json!({"payment": canceled["payment"]}),
        )
        .await
        .expect(200);
    assert_eq!(refund["amount"], 500_000, "{refund}");
    assert_eq!(balance(app, &key, &ada, "ngn").await, (0, 0));
    crate::mtn_momo::event_for(&receiver, "refund.succeeded", &refund).await;
    assert_eq!(
        crate::mtn_momo::balance(app, &key, "ngn").await,
        merchant_before
    );

    // Completed: the fiat paid for the BTC, so there is nothing to take.
    let done = quote(app, &key, buy_quote(&ada, "ngn", 200_000, "card"))
        .await
        .expect(200);
    let bought = app
        .post("/v1/trading/buy", &key, &card_buy(&done))
        .await
        .expect(200);
    crate::cards::pay_on_page(&bought, CARD_SUCCESS, "before_redirect").await;
    assert_eq!(paid(app, &key, &bought).await["status"], "succeeded");
    let completed = settled_trade(app, &key, &bought).await;
    assert_eq!(completed["status"], "completed", "{completed}");
    let btc = balance(app, &key, &ada, "btc").await;
    let refused = app
        .post("/v1/refunds", &key, &json!({"payment": bought["payment"]}))
        .await;
    assert_eq!(refused.status, 400, "{}", refused.body);
    assert_eq!(refused.body["error"]["code"], "balance_insufficient");
    assert_eq!(refused.body["error"]["param"], "amount");
    let payment_id = bought["payment"].as_str().expect("payment");
    let payment = app
        .get(&format!("/v1/payments/{payment_id}"), &key)
        .await
        .expect(200);
    assert_eq!(payment["amount_refunded"], 0);
    let refunds = app
        .get(&format!("/v1/refunds?payment={payment_id}"), &key)
        .await
        .expect(200);
    assert_eq!(refunds["data"], json!([]));
    assert_eq!(balance(app, &key, &ada, "ngn").await, (0, 0));
    assert_eq!(balance(app, &key, &ada, "btc").await, btc);
    assert_eq!(
        crate::mtn_momo::balance(app, &key, "ngn").await,
        merchant_before
    );
    assert_consistent(app).await;
    simulator.shutdown().await;
}
both_backends!(
    refunds_of_desk_payments_take_the_fiat_from_the_customer,
    super::ngn_config()
);

/// Quotes their method can never pay are refused at quote time, naming
/// what the client sent (`currency`, `amount`): M-Pesa takes whole KES
/// only.
async fn quotes_their_method_cannot_pay_are_refused(app: &TestApp) {
    let key = app.test_key().await;
    fund(app, "btc", 100_000_000).await;
    let erin = customer(app, &key, "erin").await;
    let in_usd = quote(app, &key, buy_quote(&erin, "usd", 5_000, "mpesa")).await;
    assert_eq!(in_usd.status, 400, "{}", in_usd.body);
    assert_eq!(in_usd.body["error"]["param"], "currency", "{}", in_usd.body);
    let with_cents = quote(app, &key, buy_quote(&erin, "kes", 150_050, "mpesa")).await;
    assert_eq!(with_cents.status, 400, "{}", with_cents.body);
    assert_eq!(
        with_cents.body["error"]["param"], "amount",
        "{}",
        with_cents.body
    );
    let payable = quote(app, &key, buy_quote(&erin, "kes", 150_000, "mpesa"))
        .await
        .expect(200);
    // No M-Pesa account for this merchant: the payment's refusal is about
    // the method the quote filled in, so it names `quote`.
    let refused = app
        .post(
            "/v1/trading/buy",
            &key,
            &paid_buy(&payable, "254708374149", json!({})),
        )
        .await;
    assert_eq!(refused.status, 400, "{}", refused.body);
    assert_eq!(refused.body["error"]["param"], "quote", "{}", refused.body);
    assert_eq!(payments_count(app, &key).await, 0);
}
both_backends!(
    quotes_their_method_cannot_pay_are_refused,
    super::kes_config()
);
