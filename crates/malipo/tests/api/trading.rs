//! Customers and the trading venue over HTTP: balances from the ledger,
//! deposits by payment, orders that hold funds and settle every fill in the
//! ledger, cancels, IOC/FOK/post-only, refusals that move nothing, halted
//! pairs, and books rebuilt from the command log on another node.

use crate::both_backends;
use crate::helpers::{TestApp, spawn_node, test_config};
use malipo::config::Config;
use serde_json::{Value, json};
use std::collections::BTreeMap;

/// BTC/USD: quantities in satoshis (lots of 1,000), prices in US cents per
/// lot, so a price of 50 is $50,000 per BTC; maker 10 bps, taker 20 bps.
pub(crate) async fn btc_usd(app: &TestApp) -> Value {
    app.post(
        "/v1/admin/trading/pairs",
        &app.operator_token,
        &json!({"base": "btc", "quote": "usd", "tick_size": 1, "lot_size": 1000,
                "maker_fee_bps": 10, "taker_fee_bps": 20}),
    )
    .await
    .expect(200)
}

pub(crate) async fn customer(app: &TestApp, key: &str, name: &str) -> String {
    app.post("/v1/customers", key, &json!({"name": name}))
        .await
        .expect(200)["id"]
        .as_str()
        .expect("id")
        .to_owned()
}

pub(crate) async fn credit(app: &TestApp, key: &str, customer: &str, asset: &str, amount: u64) {
    app.post(
        &format!("/v1/customers/{customer}/test_credits"),
        key,
        &json!({"asset": asset, "amount": amount}),
    )
    .await
    .expect(200);
}

/// asset -> (available, held)
async fn balances(app: &TestApp, key: &str, customer: &str) -> BTreeMap<String, (u64, u64)> {
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
                (
                    balance["available"].as_u64().expect("available"),
                    balance["held"].as_u64().expect("held"),
                ),
            )
        })
        .collect()
}

pub(crate) async fn balance(app: &TestApp, key: &str, customer: &str, asset: &str) -> (u64, u64) {
    balances(app, key, customer)
        .await
        .get(asset)
        .copied()
        .unwrap_or((0, 0))
}

pub(crate) async fn order(app: &TestApp, key: &str, body: Value) -> crate::helpers::Response {
    app.post("/v1/trading/orders", key, &body).await
}

pub(crate) fn limit(customer: &str, side: &str, price: u64, quantity: u64) -> Value {
    json!({"customer": customer, "pair": "btc_usd", "side": side, "type": "limit",
           "price": price, "quantity": quantity})
}

async fn book(app: &TestApp, key: &str) -> Value {
    app.get("/v1/trading/books/btc_usd", key).await.expect(200)
}

pub(crate) async fn assert_consistent(app: &TestApp) {
    let verify = app.verify_ledger().await;
    assert_eq!(verify["ok"], true, "{verify}");
    let check = app.gateway().trading_check().await.expect("check runs");
    assert!(check.ok, "{:?}", check.problems);
}

async fn customers_have_balances_and_lists(app: &TestApp) {
    let key = app.test_key().await;
    let created = app
        .post(
            "/v1/customers",
            &key,
            &json!({"name": "Amina Njeri", "email": "amina@example.com", "phone": "+254708374149",
                    "metadata": {"tier": "gold"}}),
        )
        .await
        .expect(200);
    assert_eq!(created["object"], "customer");
    assert_eq!(created["livemode"], false);
    let id = created["id"].as_str().expect("id");
    assert!(id.starts_with("cus_"), "{id}");
    let fetched = app
        .get(&format!("/v1/customers/{id}"), &key)
        .await
        .expect(200);
    assert_eq!(fetched, created);
    let other = customer(app, &key, "Baraka").await;

    let page = app.get("/v1/customers?limit=1", &key).await.expect(200);
    assert_eq!(page["data"][0]["id"], other.as_str(), "newest first");
    assert_eq!(page["has_more"], true);
    let by_email = app
        .get("/v1/customers?email=amina@example.com", &key)
        .await
        .expect(200);
    assert_eq!(by_email["data"].as_array().expect("list").len(), 1);

    // Another merchant sees none of them.
    let stranger = app.test_key().await;
    app.get(&format!("/v1/customers/{id}"), &stranger)
        .await
        .expect(404);
    let bad = app
        .post("/v1/customers", &key, &json!({"email": "not-an-email"}))
        .await;
    assert_eq!(bad.status, 400);
    assert_eq!(bad.error_param(), Some("email"));

    let empty = app
        .get(&format!("/v1/customers/{id}/balances"), &key)
        .await
        .expect(200);
    assert_eq!(empty["balances"], json!([]));
    credit(app, &key, id, "btc", 150_000_000).await;
    credit(app, &key, id, "usd", 2_500).await;
    let all = balances(app, &key, id).await;
    assert_eq!(all["btc"], (150_000_000, 0));
    assert_eq!(all["usd"], (2_500, 0));

    // Test credits are a test-mode tool only.
    let (_, _, live_key) = app.merchant().await;
    let live_customer = customer(app, &live_key, "Live").await;
    let refused = app
        .post(
            &format!("/v1/customers/{live_customer}/test_credits"),
            &live_key,
            &json!({"asset": "btc", "amount": 1}),
        )
        .await;
    assert_eq!(refused.status, 403);

    // Documented, without the payment's `customer` details losing their schema.
    let spec = app.get("/openapi.json", "").await.expect(200);
    for path in [
        "/v1/customers",
        "/v1/customers/{id}/balances",
        "/v1/trading/orders",
        "/v1/trading/orders/{id}/cancel",
        "/v1/trading/books/{pair}",
        "/v1/trading/fills",
        "/v1/admin/trading/pairs",
    ] {
        assert!(spec["paths"][path].is_object(), "{path} is documented");
    }
    let schemas = &spec["components"]["schemas"];
    assert!(schemas["TradingCustomer"]["properties"]["metadata"].is_object());
    assert!(schemas["Customer"]["properties"]["phone"].is_object());
    assert!(schemas["Customer"]["properties"]["livemode"].is_null());
    assert_consistent(app).await;
}
both_backends!(customers_have_balances_and_lists);

async fn a_payment_can_credit_a_customer(app: &TestApp) {
    let key = app.test_key().await;
    let id = customer(app, &key, "Depositor").await;
    let payment = app
        .post(
            "/v1/payments",
            &key,
            &json!({"amount": 10_000, "currency": "usd", "method": "sandbox",
                    "customer": {"phone": "254700000000"}, "customer_id": id, "credit_customer": true}),
        )
        .await
        .expect(200);
    assert_eq!(payment["status"], "succeeded");
    assert_eq!(payment["credit_customer"], id.as_str());
    let net = payment["net"].as_u64().expect("net");
    assert!(net > 0 && net < 10_000, "{payment}");
    assert_eq!(balance(app, &key, &id, "usd").await, (net, 0));
    // The merchant's balance passed the net on to the customer.
    let merchant = app.get("/v1/balance", &key).await.expect(200);
    let usd = merchant["available"]
        .as_array()
        .expect("available")
        .iter()
        .find(|amount| amount["currency"] == "usd")
        .map(|amount| amount["amount"].as_u64().expect("amount"))
        .unwrap_or(0);
    assert_eq!(usd, 0, "{merchant}");

    // A payment that fails credits nothing.
    let failed = app
        .post(
            "/v1/payments",
            &key,
            &json!({"amount": 10_000, "currency": "usd", "method": "sandbox",
                    "customer": {"phone": "254700000002"}, "customer_id": id, "credit_customer": true}),
        )
        .await
        .expect(200);
    assert_eq!(failed["status"], "failed");
    assert_eq!(balance(app, &key, &id, "usd").await, (net, 0));

    let missing = app
        .post(
            "/v1/payments",
            &key,
            &json!({"amount": 100, "currency": "usd", "method": "sandbox", "credit_customer": true}),
        )
        .await;
    assert_eq!(missing.status, 400);
    assert_eq!(missing.error_param(), Some("customer_id"));
    let stranger = customer(app, &app.test_key().await, "Elsewhere").await;
    let foreign = app
        .post(
            "/v1/payments",
            &key,
            &json!({"amount": 100, "currency": "usd", "method": "sandbox",
                    "customer_id": stranger, "credit_customer": true}),
        )
        .await;
    assert_eq!(foreign.status, 404);
    assert_eq!(foreign.error_param(), Some("customer_id"));
    assert_consistent(app).await;
}
both_backends!(a_payment_can_credit_a_customer);

async fn crossing_orders_settle_fills_and_fees(app: &TestApp) {
    let key = app.test_key().await;
    btc_usd(app).await;
    let pairs = app.get("/v1/trading/pairs", &key).await.expect(200);
    assert_eq!(pairs["data"][0]["id"], "btc_usd");
    assert_eq!(pairs["data"][0]["status"], "active");
    let buyer = customer(app, &key, "Buyer").await;
    let seller = customer(app, &key, "Seller").await;
    credit(app, &key, &buyer, "usd", 100_000).await;
    credit(app, &key, &seller, "btc", 1_000_000).await;

    let ask = order(app, &key, limit(&seller, "sell", 50, 100_000))
        .await
        .expect(200);
    assert_eq!(ask["status"], "open");
    assert_eq!(ask["hold_remaining"], 100_000);
    assert_eq!(balance(app, &key, &seller, "btc").await, (900_000, 100_000));

    // The buyer's limit (52) is above the ask: it trades at the maker's 50.
    let bid = app
        .post_idempotent(
            "/v1/trading/orders",
            &key,
            &limit(&buyer, "buy", 52, 60_000),
            "bid-1",
        )
        .await
        .expect(200);
    assert_eq!(bid["status"], "filled", "{bid}");
    assert_eq!(bid["filled_quantity"], 60_000);
    // notional 50 × 60 lots = 3,000 cents; taker fee 20 bps = 6.
    assert_eq!(bid["quote_filled"], 3_000);
    assert_eq!(bid["fees_paid"], 6);
    assert_eq!(bid["hold_remaining"], 0);
    // A retry with the same key answers the same order and trades nothing.
    let replay = app
        .post_idempotent(
            "/v1/trading/orders",
            &key,
            &limit(&buyer, "buy", 52, 60_000),
            "bid-1",
        )
        .await;
    assert_eq!(
        replay
            .headers
            .get("idempotent-replayed")
            .map(|v| v.as_bytes()),
        Some(&b"true"[..])
    );
    assert_eq!(replay.body["id"], bid["id"]);

    assert_eq!(balance(app, &key, &buyer, "usd").await, (96_994, 0));
    assert_eq!(balance(app, &key, &buyer, "btc").await, (60_000, 0));
    // Maker fee 10 bps of 3,000 = 3, out of the proceeds.
    assert_eq!(balance(app, &key, &seller, "usd").await, (2_997, 0));
    assert_eq!(balance(app, &key, &seller, "btc").await, (900_000, 40_000));

    let ask = app
        .get(
            &format!("/v1/trading/orders/{}", ask["id"].as_str().expect("id")),
            &key,
        )
        .await
        .expect(200);
    assert_eq!(ask["status"], "open");
    assert_eq!(ask["filled_quantity"], 60_000);
    assert_eq!(ask["hold_remaining"], 40_000);
    assert_eq!(ask["fees_paid"], 3);

    let fills = app.get("/v1/trading/fills", &key).await.expect(200);
    let fills = fills["data"].as_array().expect("fills");
    assert_eq!(fills.len(), 2, "one fill per side: {fills:?}");
    let taker = fills
        .iter()
        .find(|fill| fill["liquidity"] == "taker")
        .expect("taker fill");
    assert_eq!(taker["order"], bid["id"]);
    assert_eq!(taker["side"], "buy");
    assert_eq!(taker["price"], 50);
    assert_eq!(taker["quantity"], 60_000);
    assert_eq!(taker["notional"], 3_000);
    assert_eq!(taker["fee"], 6);
    let maker = fills
        .iter()
        .find(|fill| fill["liquidity"] == "maker")
        .expect("maker fill");
    assert_eq!(maker["customer"], seller.as_str());
    assert_eq!(maker["fee"], 3);
    let by_order = app
        .get(
            &format!(
                "/v1/trading/fills?order={}",
                bid["id"].as_str().expect("id")
            ),
            &key,
        )
        .await
        .expect(200);
    assert_eq!(by_order["data"].as_array().expect("fills").len(), 1);

    let book = book(app, &key).await;
    assert_eq!(
        book["asks"],
        json!([{"price": 50, "quantity": 40_000, "orders": 1}])
    );
    assert_eq!(book["bids"], json!([]));
    assert_eq!(book["last_price"], 50);
    assert_eq!(book["sequence"], 2);

    let open = app
        .get("/v1/trading/orders?status=open", &key)
        .await
        .expect(200);
    assert_eq!(open["data"].as_array().expect("orders").len(), 1);
    // Each order's changes are events in the webhook outbox.
    let events = app.get("/v1/events?limit=100", &key).await.expect(200);
    let mut types: Vec<&str> = events["data"]
        .as_array()
        .expect("events")
        .iter()
        .filter_map(|event| event["type"].as_str())
        .filter(|kind| kind.starts_with("order."))
        .collect();
    types.sort_unstable();
    assert_eq!(types, ["order.created", "order.created", "order.filled"]);
    assert_consistent(app).await;
}
both_backends!(crossing_orders_settle_fills_and_fees);

async fn cancel_releases_the_hold(app: &TestApp) {
    let key = app.test_key().await;
    btc_usd(app).await;
    let buyer = customer(app, &key, "Buyer").await;
    credit(app, &key, &buyer, "usd", 100_000).await;
    let bid = order(app, &key, limit(&buyer, "buy", 40, 100_000))
        .await
        .expect(200);
    // 40 × 100 lots = 4,000 plus the larger fee (20 bps) = 8.
    assert_eq!(bid["hold_remaining"], 4_008);
    assert_eq!(balance(app, &key, &buyer, "usd").await, (95_992, 4_008));
    let id = bid["id"].as_str().expect("id");
    let canceled = app
        .post(&format!("/v1/trading/orders/{id}/cancel"), &key, &json!({}))
        .await
        .expect(200);
    assert_eq!(canceled["status"], "canceled");
    assert_eq!(canceled["canceled_quantity"], 100_000);
    assert_eq!(canceled["hold_remaining"], 0);
    let events = app.get("/v1/events?limit=100", &key).await.expect(200);
    let canceled_events = events["data"]
        .as_array()
        .expect("events")
        .iter()
        .filter(|event| event["type"] == "order.canceled" || event["type"] == "order.created")
        .count();
    assert_eq!(
        canceled_events, 2,
        "one order.created, one order.canceled: {events}"
    );
    assert_eq!(balance(app, &key, &buyer, "usd").await, (100_000, 0));
    let again = app
        .post(&format!("/v1/trading/orders/{id}/cancel"), &key, &json!({}))
        .await;
    assert_eq!(again.status, 409);
    assert_eq!(book(app, &key).await["bids"], json!([]));
    // Another merchant cannot see or cancel it.
    let stranger = app.test_key().await;
    app.post(
        &format!("/v1/trading/orders/{id}/cancel"),
        &stranger,
        &json!({}),
    )
    .await
    .expect(404);
    assert_consistent(app).await;
}
both_backends!(cancel_releases_the_hold);

async fn unfunded_orders_move_nothing(app: &TestApp) {
    let key = app.test_key().await;
    btc_usd(app).await;
    let buyer = customer(app, &key, "Buyer").await;
    let seller = customer(app, &key, "Seller").await;
    credit(app, &key, &buyer, "usd", 1_000).await;
    credit(app, &key, &seller, "btc", 100_000).await;

    let refused = order(app, &key, limit(&buyer, "buy", 50, 100_000)).await;
    assert_eq!(refused.status, 400, "{}", refused.body);
    assert_eq!(refused.error_param(), Some("quantity"));
    assert_eq!(refused.body["error"]["code"], "balance_insufficient");
    let oversell = order(app, &key, limit(&seller, "sell", 50, 200_000)).await;
    assert_eq!(oversell.status, 400);
    assert_eq!(balance(app, &key, &buyer, "usd").await, (1_000, 0));
    assert_eq!(book(app, &key).await["sequence"], 0);
    let orders = app.get("/v1/trading/orders", &key).await.expect(200);
    assert_eq!(orders["data"], json!([]));

    // A market buy the balance can't pay is refused after matching: the
    // ask it would have taken is still there, whole.
    order(app, &key, limit(&seller, "sell", 50, 100_000))
        .await
        .expect(200);
    let market = json!({"customer": buyer, "pair": "btc_usd", "side": "buy", "type": "market",
                        "quantity": 100_000});
    let refused = order(app, &key, market).await;
    assert_eq!(refused.status, 400, "{}", refused.body);
    assert_eq!(refused.error_param(), Some("quantity"));
    let book_after = book(app, &key).await;
    assert_eq!(
        book_after["asks"],
        json!([{"price": 50, "quantity": 100_000, "orders": 1}])
    );
    assert_eq!(balance(app, &key, &buyer, "usd").await, (1_000, 0));
    assert_eq!(balance(app, &key, &buyer, "btc").await, (0, 0));

    // A market buy it can pay: 10 lots at 50 = 500, fee 1.
    let small = json!({"customer": buyer, "pair": "btc_usd", "side": "buy", "type": "market",
                       "quantity": 10_000});
    let filled = order(app, &key, small).await.expect(200);
    assert_eq!(filled["status"], "filled");
    assert_eq!(balance(app, &key, &buyer, "usd").await, (499, 0));
    assert_eq!(balance(app, &key, &buyer, "btc").await, (10_000, 0));
    assert_consistent(app).await;
}
both_backends!(unfunded_orders_move_nothing);

async fn time_in_force_ioc_fok_and_post_only(app: &TestApp) {
    let key = app.test_key().await;
    btc_usd(app).await;
    let buyer = customer(app, &key, "Buyer").await;
    let seller = customer(app, &key, "Seller").await;
    credit(app, &key, &buyer, "usd", 100_000).await;
    credit(app, &key, &seller, "btc", 1_000_000).await;
    order(app, &key, limit(&seller, "sell", 50, 50_000))
        .await
        .expect(200);

    // IOC: takes the 50,000 there is, cancels the rest, holds nothing after.
    let mut ioc = limit(&buyer, "buy", 50, 100_000);
    ioc["time_in_force"] = json!("IOC");
    let ioc = order(app, &key, ioc).await.expect(200);
    assert_eq!(ioc["status"], "canceled");
    assert_eq!(ioc["filled_quantity"], 50_000);
    assert_eq!(ioc["canceled_quantity"], 50_000);
    // 2,500 notional + 5 fee.
    assert_eq!(balance(app, &key, &buyer, "usd").await, (97_495, 0));
    assert_eq!(book(app, &key).await["asks"], json!([]));

    // FOK: 100,000 can't fill against 50,000: refused, nothing moves.
    order(app, &key, limit(&seller, "sell", 50, 50_000))
        .await
        .expect(200);
    let mut fok = limit(&buyer, "buy", 50, 100_000);
    fok["time_in_force"] = json!("FOK");
    let refused = order(app, &key, fok.clone()).await;
    assert_eq!(refused.status, 409, "{}", refused.body);
    assert_eq!(refused.error_param(), Some("time_in_force"));
    assert_eq!(balance(app, &key, &buyer, "usd").await, (97_495, 0));
    assert_eq!(
        book(app, &key).await["asks"],
        json!([{"price": 50, "quantity": 50_000, "orders": 1}])
    );
    fok["quantity"] = json!(50_000);
    let filled = order(app, &key, fok).await.expect(200);
    assert_eq!(filled["status"], "filled");

    // Post-only refuses to take.
    order(app, &key, limit(&seller, "sell", 55, 10_000))
        .await
        .expect(200);
    let mut post_only = limit(&buyer, "buy", 55, 10_000);
    post_only["post_only"] = json!(true);
    let refused = order(app, &key, post_only).await;
    assert_eq!(refused.status, 409);
    assert_eq!(refused.error_param(), Some("post_only"));
    assert_consistent(app).await;
}
both_backends!(time_in_force_ioc_fok_and_post_only);

async fn halted_pairs_refuse_orders_and_take_cancels(app: &TestApp) {
    let key = app.test_key().await;
    btc_usd(app).await;
    let seller = customer(app, &key, "Seller").await;
    credit(app, &key, &seller, "btc", 100_000).await;
    let ask = order(app, &key, limit(&seller, "sell", 50, 50_000))
        .await
        .expect(200);
    let halted = app
        .post(
            "/v1/admin/trading/pairs/btc_usd",
            &app.operator_token,
            &json!({"status": "halted"}),
        )
        .await
        .expect(200);
    assert_eq!(halted["status"], "halted");
    let refused = order(app, &key, limit(&seller, "sell", 50, 50_000)).await;
    assert_eq!(refused.status, 409);
    assert_eq!(refused.body["error"]["code"], "pair_halted");
    assert_eq!(balance(app, &key, &seller, "btc").await, (50_000, 50_000));
    let id = ask["id"].as_str().expect("id");
    app.post(&format!("/v1/trading/orders/{id}/cancel"), &key, &json!({}))
        .await
        .expect(200);
    assert_eq!(balance(app, &key, &seller, "btc").await, (100_000, 0));
    app.post(
        "/v1/admin/trading/pairs/btc_usd",
        &app.operator_token,
        &json!({"status": "active"}),
    )
    .await
    .expect(200);
    order(app, &key, limit(&seller, "sell", 50, 50_000))
        .await
        .expect(200);
    assert_consistent(app).await;
}
both_backends!(halted_pairs_refuse_orders_and_take_cancels);

async fn orders_are_validated_field_by_field(app: &TestApp) {
    let key = app.test_key().await;
    btc_usd(app).await;
    let buyer = customer(app, &key, "Buyer").await;
    credit(app, &key, &buyer, "usd", 100_000).await;
    let cases = [
        (
            json!({"pair": "btc_usd", "side": "buy", "type": "limit", "price": 50, "quantity": 1000}),
            "customer",
        ),
        (
            json!({"customer": buyer, "pair": "doge_usd", "side": "buy", "type": "limit", "price": 50, "quantity": 1000}),
            "pair",
        ),
        (
            json!({"customer": buyer, "pair": "btc_usd", "side": "hold", "type": "limit", "price": 50, "quantity": 1000}),
            "side",
        ),
        (
            json!({"customer": buyer, "pair": "btc_usd", "side": "buy", "type": "limit", "quantity": 1000}),
            "price",
        ),
        (
            json!({"customer": buyer, "pair": "btc_usd", "side": "buy", "type": "limit", "price": 50, "quantity": 1500}),
            "quantity",
        ),
        (
            json!({"customer": buyer, "pair": "btc_usd", "side": "buy", "type": "market", "price": 50, "quantity": 1000}),
            "price",
        ),
        (
            json!({"customer": buyer, "pair": "btc_usd", "side": "buy", "type": "stop", "stop_price": 50, "quantity": 1000}),
            "type",
        ),
        (
            json!({"customer": buyer, "pair": "btc_usd", "side": "buy", "type": "limit", "price": 50, "quantity": 1000, "time_in_force": "GTD"}),
            "time_in_force",
        ),
        (
            json!({"customer": "cus_00000000000000000000000000", "pair": "btc_usd", "side": "buy", "type": "limit", "price": 50, "quantity": 1000}),
            "customer",
        ),
    ];
    for (body, param) in cases {
        let response = order(app, &key, body.clone()).await;
        assert!(
            response.status == 400 || response.status == 404,
            "{body}: {}",
            response.body
        );
        assert_eq!(response.error_param(), Some(param), "{body}");
    }
    let bad_pair = app
        .post(
            "/v1/admin/trading/pairs",
            &app.operator_token,
            &json!({"base": "eth", "quote": "usd", "tick_size": 1, "lot_size": 1, "taker_fee_bps": 10_001}),
        )
        .await;
    assert_eq!(bad_pair.status, 400);
    assert_eq!(bad_pair.error_param(), Some("taker_fee_bps"));
    assert_eq!(balance(app, &key, &buyer, "usd").await, (100_000, 0));
    assert_eq!(book(app, &key).await["sequence"], 0);
}
both_backends!(orders_are_validated_field_by_field);

fn snapshot_every_three() -> Config {
    Config {
        trading_snapshot_every_commands: 3,
        ..test_config()
    }
}

/// A second node on the same database rebuilds the book from the log (a
/// snapshot every three commands, then the commands after it) and reads
/// the same book as the first after each command, wherever it ran.
async fn another_node_rebuilds_the_same_book(app: &TestApp) {
    let key = app.test_key().await;
    btc_usd(app).await;
    let buyer = customer(app, &key, "Buyer").await;
    let seller = customer(app, &key, "Seller").await;
    credit(app, &key, &buyer, "usd", 1_000_000).await;
    credit(app, &key, &seller, "btc", 10_000_000).await;
    for (price, quantity) in [(50, 100_000), (51, 20_000), (53, 30_000)] {
        order(app, &key, limit(&seller, "sell", price, quantity))
            .await
            .expect(200);
    }
    let bid = order(app, &key, limit(&buyer, "buy", 45, 70_000))
        .await
        .expect(200);
    order(app, &key, limit(&buyer, "buy", 44, 10_000))
        .await
        .expect(200);
    app.post(
        &format!(
            "/v1/trading/orders/{}/cancel",
            bid["id"].as_str().expect("id")
        ),
        &key,
        &json!({}),
    )
    .await
    .expect(200);
    order(app, &key, limit(&buyer, "buy", 51, 30_000))
        .await
        .expect(200);
    let before = book(app, &key).await;
    assert_eq!(before["sequence"], 7);

    let second = spawn_node(app.database_url(), snapshot_every_three()).await;
    let second_base = format!("http://{}", second.address);
    let read = |base: String| {
        let client = app.client.clone();
        let key = key.clone();
        async move {
            client
                .get(format!("{base}/v1/trading/books/btc_usd"))
                .bearer_auth(&key)
                .send()
                .await
                .expect("book")
                .json::<Value>()
                .await
                .expect("json")
        }
    };
    assert_eq!(read(second_base.clone()).await, before);

    // An order sent to the second node runs on the book's owner (the
    // first, which ran every command so far: docs/trading.md, "Several
    // nodes"); both nodes then read the same book.
    let response = app
        .client
        .post(format!("{second_base}/v1/trading/orders"))
        .bearer_auth(&key)
        .json(&limit(&buyer, "buy", 53, 30_000))
        .send()
        .await
        .expect("order");
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["malipo-node"]
            .to_str()
            .expect("a node id"),
        app.gateway().node_id()
    );
    let after = book(app, &key).await;
    assert_eq!(after["sequence"], 8);
    assert_eq!(read(second_base).await, after);
    order(app, &key, limit(&buyer, "buy", 46, 10_000))
        .await
        .expect(200);
    let report = second.gateway.trading_check().await.expect("check");
    assert!(report.ok, "{:?}", report.problems);
    assert_eq!(report.open_orders, 5, "{report:?}");
    assert_consistent(app).await;
}
both_backends!(
    another_node_rebuilds_the_same_book,
    super::snapshot_every_three()
);

/// The command log's retention (`crate::retention`, one command kept
/// before the newest snapshot) never breaks recovery: a fresh node, and a
/// node whose engine is behind the deleted commands, rebuild the same book,
/// and the consistency check passes on both.
async fn pruning_the_log_keeps_recovery(app: &TestApp) {
    let key = app.test_key().await;
    btc_usd(app).await;
    let buyer = customer(app, &key, "Buyer").await;
    let seller = customer(app, &key, "Seller").await;
    credit(app, &key, &buyer, "usd", 1_000_000).await;
    credit(app, &key, &seller, "btc", 10_000_000).await;
    order(app, &key, limit(&seller, "sell", 50, 100_000))
        .await
        .expect(200);
    let behind = spawn_node(app.database_url(), pruned_often()).await;
    let behind_base = format!("http://{}", behind.address);
    let read = |base: String| {
        let client = app.client.clone();
        let key = key.clone();
        async move {
            client
                .get(format!("{base}/v1/trading/books/btc_usd"))
                .bearer_auth(&key)
                .send()
                .await
                .expect("book")
                .json::<Value>()
                .await
                .expect("json")
        }
    };
    assert_eq!(read(behind_base.clone()).await["sequence"], 1);
    for (side, price, quantity) in [
        ("sell", 51, 20_000),
        ("buy", 45, 70_000),
        ("buy", 50, 30_000),
        ("sell", 53, 30_000),
        ("buy", 44, 10_000),
        ("buy", 51, 30_000),
        ("sell", 55, 5_000),
        ("buy", 46, 10_000),
        ("sell", 54, 1_000),
    ] {
        let customer = if side == "buy" { &buyer } else { &seller };
        order(app, &key, limit(customer, side, price, quantity))
            .await
            .expect(200);
    }
    let before = book(app, &key).await;
    assert_eq!(before["sequence"], 10);

    // Snapshots at 3, 6 and 9: commands 1 to 6 (up to the second newest
    // snapshot, as one kept before 9 is 8) and the snapshot at 3 go.
    let pruned = app.gateway().prune_trading_logs().await.expect("prune");
    assert_eq!(pruned, 7);
    assert_eq!(
        app.gateway().prune_trading_logs().await.expect("prune"),
        0,
        "the next run finds nothing more"
    );

    let fresh = spawn_node(app.database_url(), pruned_often()).await;
    assert_eq!(read(format!("http://{}", fresh.address)).await, before);
    assert_eq!(read(behind_base).await, before);
    for gateway in [app.gateway(), &fresh.gateway, &behind.gateway] {
        let report = gateway.trading_check().await.expect("check");
        assert!(report.ok, "{:?}", report.problems);
        assert_eq!(report.books, 1);
    }
    // The book goes on from where it was, on every node.
    order(app, &key, limit(&buyer, "buy", 47, 10_000))
        .await
        .expect(200);
    let report = fresh.gateway.trading_check().await.expect("check");
    assert!(report.ok, "{:?}", report.problems);
    assert_consistent(app).await;
}
both_backends!(pruning_the_log_keeps_recovery, super::pruned_often());

fn pruned_often() -> Config {
    Config {
        trading_log_retain_commands: 1,
        ..snapshot_every_three()
    }
}

/// A sell stop waits apart, holding its base, and enters as a market order
/// when a trade prints at its trigger; a buy stop-limit holds at its limit.
async fn stops_wait_then_trade_when_triggered(app: &TestApp) {
    let key = app.test_key().await;
    btc_usd(app).await;
    let buyer = customer(app, &key, "Buyer").await;
    let seller = customer(app, &key, "Seller").await;
    let stopper = customer(app, &key, "Stopper").await;
    credit(app, &key, &buyer, "usd", 100_000).await;
    credit(app, &key, &seller, "btc", 100_000).await;
    credit(app, &key, &stopper, "btc", 100_000).await;
    let stop = order(
        app,
        &key,
        json!({"customer": stopper, "pair": "btc_usd", "side": "sell", "type": "stop",
               "stop_price": 48, "quantity": 10_000}),
    )
    .await
    .expect(200);
    assert_eq!(stop["status"], "open");
    assert_eq!(balance(app, &key, &stopper, "btc").await, (90_000, 10_000));
    assert_eq!(
        book(app, &key).await["asks"],
        json!([]),
        "stops are not in the book"
    );
    let stop_limit_buy = order(
        app,
        &key,
        json!({"customer": buyer, "pair": "btc_usd", "side": "buy", "type": "stop_limit",
               "stop_price": 60, "price": 61, "quantity": 10_000}),
    )
    .await
    .expect(200);
    // 61 × 10 lots = 610, plus 20 bps rounded up = 2.
    assert_eq!(stop_limit_buy["hold_remaining"], 612);

    order(app, &key, limit(&buyer, "buy", 48, 20_000))
        .await
        .expect(200);
    // A trade at 48 triggers the stop: it sells into the rest of the bid.
    order(app, &key, limit(&seller, "sell", 48, 10_000))
        .await
        .expect(200);
    let stop = app
        .get(
            &format!("/v1/trading/orders/{}", stop["id"].as_str().expect("id")),
            &key,
        )
        .await
        .expect(200);
    assert_eq!(stop["status"], "filled", "{stop}");
    assert_eq!(stop["quote_filled"], 480);
    // 480 less the taker fee (20 bps, rounded up: 1).
    assert_eq!(balance(app, &key, &stopper, "usd").await, (479, 0));
    assert_eq!(balance(app, &key, &stopper, "btc").await, (90_000, 0));
    assert_eq!(balance(app, &key, &buyer, "btc").await, (20_000, 0));
    assert_eq!(book(app, &key).await["bids"], json!([]));
    assert_consistent(app).await;
}
both_backends!(stops_wait_then_trade_when_triggered);

/// `malipo trading check` passes on a consistent venue and exits 1 once a
/// customer's held balance no longer matches its open orders.
async fn the_check_command_proves_the_venue(app: &TestApp) {
    let key = app.test_key().await;
    btc_usd(app).await;
    let seller = customer(app, &key, "Seller").await;
    credit(app, &key, &seller, "btc", 100_000).await;
    order(app, &key, limit(&seller, "sell", 50, 100_000))
        .await
        .expect(200);
    let check = || {
        std::process::Command::new(env!("CARGO_BIN_EXE_malipo"))
            .args(["trading", "check"])
            .env("DATABASE_URL", app.database_url())
            .env("RUST_LOG", "error")
            .output()
            .expect("malipo trading check")
    };
    let passed = check();
    assert!(
        passed.status.success(),
        "{}{}",
        String::from_utf8_lossy(&passed.stdout),
        String::from_utf8_lossy(&passed.stderr)
    );
    let report: Value = serde_json::from_slice(&passed.stdout).expect("a JSON report");
    assert_eq!(report["ok"], true);
    assert_eq!(report["open_orders"], 1);

    // Move one satoshi out of the hold behind the venue's back: the ledger
    // allows it, the check does not.
    let mut tx = app.gateway().store().begin().await.expect("tx");
    let held = format!("test/customer/{seller}/btc/held");
    let available = format!("test/customer/{seller}/btc/available");
    tx.conn()
        .post_transfers(
            &[malipo_ledger::TransferRequest {
                id: "tamper.1".into(),
                debit_account_id: held.clone(),
                credit_account_id: available,
                amount: 1,
                asset: "btc".into(),
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
    assert_eq!(report["ok"], false);
    assert!(report["problems"].to_string().contains(&held), "{report}");
}
both_backends!(the_check_command_proves_the_venue);

/// Orders sent at once through two nodes on one PostgreSQL: each book's
/// commands are serialized through its row, every node catches up from the
/// log, and value is conserved: what the customers hold plus the fees
/// equals what was credited.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_trading_at_once_stay_consistent() {
    let Some(app) =
        crate::helpers::spawn_app_with(crate::helpers::Backend::Postgres, snapshot_every_three())
            .await
    else {
        return;
    };
    let second = spawn_node(app.database_url(), snapshot_every_three()).await;
    let bases = [app.base.clone(), format!("http://{}", second.address)];
    let key = app.test_key().await;
    btc_usd(&app).await;
    let mut customers = Vec::new();
    for index in 0..4 {
        let id = customer(&app, &key, &format!("Trader {index}")).await;
        credit(&app, &key, &id, "usd", 1_000_000).await;
        credit(&app, &key, &id, "btc", 1_000_000).await;
        customers.push(id);
    }
    let requests = (0..40).map(|index: usize| {
        let client = app.client.clone();
        let key = key.clone();
        let base = bases[index % 2].clone();
        let side = if index.is_multiple_of(3) {
            "sell"
        } else {
            "buy"
        };
        let price = 48 + (index % 5) as u64;
        let body = limit(&customers[index % 4], side, price, 10_000);
        async move {
            client
                .post(format!("{base}/v1/trading/orders"))
                .bearer_auth(&key)
                .json(&body)
                .send()
                .await
                .expect("order")
                .status()
                .as_u16()
        }
    });
    let statuses = futures::future::join_all(requests).await;
    assert!(statuses.iter().all(|status| *status == 200), "{statuses:?}");

    let book = book(&app, &key).await;
    assert_eq!(book["sequence"], 40);
    let fills = app
        .get("/v1/trading/fills?limit=100", &key)
        .await
        .expect(200);
    let fills = fills["data"].as_array().expect("fills");
    assert!(fills.len() >= 2, "the orders crossed: {fills:?}");
    let fees: u64 = fills
        .iter()
        .map(|fill| fill["fee"].as_u64().expect("fee"))
        .sum();
    let mut usd = 0;
    let mut btc = 0;
    for id in &customers {
        let (available, held) = balance(&app, &key, id, "usd").await;
        usd += available + held;
        let (available, held) = balance(&app, &key, id, "btc").await;
        btc += available + held;
    }
    assert_eq!(usd + fees, 4_000_000);
    assert_eq!(btc, 4_000_000);
    let report = second.gateway.trading_check().await.expect("check");
    assert!(report.ok, "{:?}", report.problems);
    assert_consistent(&app).await;
}
