//! Customers' withdrawals (`POST /v1/customers/{id}/withdrawals`): payouts
//! funded from the customer's available balance. By the sandbox (paid and
//! failed at once, by the recipient's last four digits) and by M-Pesa B2C
//! against its simulator (paid and failed by the `Result` callback): the
//! money leaves the customer's available balance for the merchant's
//! payouts in transit, goes out when paid and comes back to the customer
//! when failed; the merchant's own balance never moves; a customer short
//! of the amount gets a 400 naming `amount` and nothing moves; the ledger
//! verifies after each.

use crate::both_backends;
use crate::helpers::TestApp;
use crate::mpesa_reversal::mpesa_merchant;
use malipo_simulators::{Provider, SimulatorConfig};
use serde_json::{Value, json};
use std::time::Duration;

async fn new_customer(app: &TestApp, key: &str) -> String {
    app.post("/v1/customers", key, &json!({"name": "Wanjiru"}))
        .await
        .expect(200)["id"]
        .as_str()
        .expect("id")
        .to_owned()
}

/// Deposits by a sandbox payment crediting the customer; answers the net
/// amount credited.
async fn deposit(app: &TestApp, key: &str, customer: &str, amount: u64) -> u64 {
    let payment = app
        .post(
            "/v1/payments",
            key,
            &json!({"amount": amount, "currency": "kes", "method": "sandbox",
                    "customer": {"phone": "254700000000"}, "customer_id": customer,
                    "credit_customer": true}),
        )
        .await
        .expect(200);
    assert_eq!(payment["status"], "succeeded", "{payment}");
    payment["net"].as_u64().expect("net")
}

/// The customer's (available, held) KES.
async fn customer_kes(app: &TestApp, key: &str, customer: &str) -> (u64, u64) {
    let balances = app
        .get(&format!("/v1/customers/{customer}/balances"), key)
        .await
        .expect(200);
    balances["balances"]
        .as_array()
        .expect("balances")
        .iter()
        .find(|balance| balance["asset"] == "kes")
        .map_or((0, 0), |balance| {
            (
                balance["available"].as_u64().expect("available"),
                balance["held"].as_u64().expect("held"),
            )
        })
}

/// The merchant's (available, in transit) KES.
async fn merchant_kes(app: &TestApp, key: &str) -> (i64, i64) {
    let balance = app.get("/v1/balance", key).await.expect(200);
    let amount = |kind: &str| {
        balance[kind]
            .as_array()
            .expect("a list")
            .iter()
            .find(|entry| entry["currency"] == "kes")
            .map_or(0, |entry| entry["amount"].as_i64().expect("an amount"))
    };
    (amount("available"), amount("in_transit"))
}

fn withdrawal(amount: u64, method: &str, phone: &str) -> Value {
    json!({"amount": amount, "currency": "kes", "method": method,
           "destination": {"phone": phone}, "description": "Cash out"})
}

/// Waits until the payout is neither pending nor processing, or 15 s pass.
async fn settled(app: &TestApp, key: &str, payout: &Value) -> Value {
    let path = format!("/v1/payouts/{}", payout["id"].as_str().expect("id"));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        let current = app.get(&path, key).await.expect(200);
        let open = matches!(current["status"].as_str(), Some("pending" | "processing"));
        if !open || tokio::time::Instant::now() > deadline {
            return current;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// How many balance transactions the merchant has.
async fn balance_transaction_count(app: &TestApp, key: &str) -> usize {
    app.get("/v1/balance_transactions?limit=100", key)
        .await
        .expect(200)["data"]
        .as_array()
        .expect("a list")
        .len()
}

async fn sandbox_withdrawals_are_paid_or_returned(app: &TestApp) {
    let key = app.test_key().await;
    let customer = new_customer(app, &key).await;
    let net = deposit(app, &key, &customer, 100_000).await;
    assert_eq!(customer_kes(app, &key, &customer).await, (net, 0));
    // The deposit passed the merchant's net on to the customer.
    assert_eq!(merchant_kes(app, &key).await, (0, 0));
    let entries_before = balance_transaction_count(app, &key).await;

    let path = format!("/v1/customers/{customer}/withdrawals");
    let paid = app
        .post(&path, &key, &withdrawal(40_000, "sandbox", "254700000000"))
        .await
        .expect(200);
    assert_eq!(paid["object"], "payout");
    assert_eq!(paid["status"], "paid", "{paid}");
    assert_eq!(paid["customer"], customer.as_str());
    assert_eq!(paid["method"], "sandbox");
    assert!(paid["receipt"].is_string(), "{paid}");
    assert_eq!(customer_kes(app, &key, &customer).await, (net - 40_000, 0));
    assert_eq!(merchant_kes(app, &key).await, (0, 0));

    // A recipient ending in 0002: refused by the sandbox, the money comes
    // back to the customer.
    let failed = app
        .post(&path, &key, &withdrawal(10_000, "sandbox", "254700000002"))
        .await
        .expect(200);
    assert_eq!(failed["status"], "failed", "{failed}");
    assert_eq!(failed["failure"]["code"], "recipient_invalid");
    assert_eq!(customer_kes(app, &key, &customer).await, (net - 40_000, 0));
    assert_eq!(merchant_kes(app, &key).await, (0, 0));

    // More than the customer has: refused naming `amount`, nothing moves,
    // no payout is written.
    let short = app
        .post(
            &path,
            &key,
            &withdrawal(net - 40_000 + 1, "sandbox", "254700000000"),
        )
        .await;
    assert_eq!(short.status, 400, "{}", short.body);
    assert_eq!(short.body["error"]["code"], "balance_insufficient");
    assert_eq!(short.error_param(), Some("amount"));
    assert_eq!(customer_kes(app, &key, &customer).await, (net - 40_000, 0));
    // The exact balance can go.
    let all = app
        .post(
            &path,
            &key,
            &withdrawal(net - 40_000, "sandbox", "254700000000"),
        )
        .await
        .expect(200);
    assert_eq!(all["status"], "paid");
    assert_eq!(customer_kes(app, &key, &customer).await, (0, 0));

    // Listed per customer (newest first) and among the merchant's payouts.
    let listed = app.get(&path, &key).await.expect(200);
    let ids: Vec<&str> = listed["data"]
        .as_array()
        .expect("a list")
        .iter()
        .map(|payout| payout["id"].as_str().expect("id"))
        .collect();
    assert_eq!(
        ids,
        [&all["id"], &failed["id"], &paid["id"]].map(|id| id.as_str().expect("id"))
    );
    let failed_only = app
        .get(&format!("{path}?status=failed"), &key)
        .await
        .expect(200);
    assert_eq!(failed_only["data"].as_array().expect("a list").len(), 1);
    let by_filter = app
        .get(&format!("/v1/payouts?customer={customer}"), &key)
        .await
        .expect(200);
    assert_eq!(by_filter["data"], listed["data"]);
    // Another customer has none.
    let other = new_customer(app, &key).await;
    let none = app
        .get(&format!("/v1/customers/{other}/withdrawals"), &key)
        .await
        .expect(200);
    assert_eq!(none["data"], json!([]));
    // The merchant's balance transactions: none for withdrawals.
    assert_eq!(balance_transaction_count(app, &key).await, entries_before);

    // Unknown, foreign and malformed customers are 404s naming `id`.
    let stranger = new_customer(app, &app.test_key().await).await;
    for id in [stranger.as_str(), "cus_nope"] {
        let missing = app
            .post(
                &format!("/v1/customers/{id}/withdrawals"),
                &key,
                &withdrawal(100, "sandbox", "254700000000"),
            )
            .await;
        assert_eq!(missing.status, 404, "{}", missing.body);
        assert_eq!(missing.error_param(), Some("id"));
        let listed = app
            .get(&format!("/v1/customers/{id}/withdrawals"), &key)
            .await;
        assert_eq!(listed.status, 404);
    }
    // A withdrawal's fields are checked like a payout's.
    let mut bad = withdrawal(100, "card", "254700000000");
    let refused = app.post(&path, &key, &bad).await;
    assert_eq!(refused.status, 400);
    assert_eq!(refused.error_param(), Some("method"));
    bad = withdrawal(0, "sandbox", "254700000000");
    assert_eq!(
        app.post(&path, &key, &bad).await.error_param(),
        Some("amount")
    );
    assert_eq!(app.verify_ledger().await["ok"], true);

    let spec = app.get("/openapi.json", "").await.expect(200);
    let documented = &spec["paths"]["/v1/customers/{id}/withdrawals"];
    assert!(documented["post"].is_object() && documented["get"].is_object());
    let payout = &spec["components"]["schemas"]["Payout"]["properties"];
    assert!(
        payout["customer"].is_object(),
        "Payout.customer is documented"
    );
}
both_backends!(sandbox_withdrawals_are_paid_or_returned);

async fn an_open_order_holds_what_a_withdrawal_cannot_take(app: &TestApp) {
    let key = app.test_key().await;
    app.post(
        "/v1/admin/trading/pairs",
        &app.operator_token,
        &json!({"base": "btc", "quote": "kes", "tick_size": 1, "lot_size": 1000}),
    )
    .await
    .expect(200);
    let customer = new_customer(app, &key).await;
    let net = deposit(app, &key, &customer, 100_000).await;
    // A buy of 50 lots at 900 cents a lot holds 45,000 cents (no fees on
    // this pair).
    let order = app
        .post(
            "/v1/trading/orders",
            &key,
            &json!({"customer": customer, "pair": "btc_kes", "side": "buy", "type": "limit",
                    "price": 900, "quantity": 50_000}),
        )
        .await
        .expect(200);
    let held = order["hold_remaining"].as_u64().expect("hold");
    assert_eq!(held, 45_000);
    assert_eq!(customer_kes(app, &key, &customer).await, (net - held, held));
    let path = format!("/v1/customers/{customer}/withdrawals");
    let short = app
        .post(
            &path,
            &key,
            &withdrawal(net - held + 1, "sandbox", "254700000000"),
        )
        .await;
    assert_eq!(short.status, 400);
    assert_eq!(short.error_param(), Some("amount"));
    assert_eq!(customer_kes(app, &key, &customer).await, (net - held, held));
    let report = app.gateway().trading_check().await.expect("check");
    assert!(report.ok, "{:?}", report.problems);
}
both_backends!(an_open_order_holds_what_a_withdrawal_cannot_take);

async fn mpesa_withdrawals_settle_by_the_b2c_result(app: &TestApp) {
    // Results come a second after the request, so the money is seen in
    // transit meanwhile.
    let simulator = malipo_simulators::spawn(Provider::Mpesa, SimulatorConfig::for_tests(1_000))
        .await
        .expect("simulator");
    let initiator = json!({"initiator": "testapi", "security_credential": "c2VjcmV0LXBhc3N3b3Jk"});
    let (key, _, _) = mpesa_merchant(app, &simulator, initiator).await;
    let customer = new_customer(app, &key).await;
    let net = deposit(app, &key, &customer, 300_000).await;
    let path = format!("/v1/customers/{customer}/withdrawals");

    let paid = app
        .post(&path, &key, &withdrawal(50_000, "mpesa", "0708374149"))
        .await
        .expect(200);
    assert_eq!(paid["status"], "processing", "{paid}");
    assert_eq!(paid["customer"], customer.as_str());
    assert_eq!(customer_kes(app, &key, &customer).await, (net - 50_000, 0));
    assert_eq!(merchant_kes(app, &key).await, (0, 50_000));
    let b2c = simulator
        .requests()
        .into_iter()
        .find(|request| request.path == "/mpesa/b2c/v1/paymentrequest")
        .expect("a B2C request");
    assert_eq!(b2c.json().expect("json")["Amount"], 500);
    let done = settled(app, &key, &paid).await;
    assert_eq!(done["status"], "paid", "{done}");
    assert_eq!(customer_kes(app, &key, &customer).await, (net - 50_000, 0));
    assert_eq!(merchant_kes(app, &key).await, (0, 0));

    // KES 2040: the simulator's ResultCode 2040; the money comes back.
    let failed = app
        .post(&path, &key, &withdrawal(204_000, "mpesa", "0708374149"))
        .await
        .expect(200);
    assert_eq!(customer_kes(app, &key, &customer).await, (net - 254_000, 0));
    assert_eq!(merchant_kes(app, &key).await, (0, 204_000));
    let done = settled(app, &key, &failed).await;
    assert_eq!(done["status"], "failed", "{done}");
    assert_eq!(done["failure"]["code"], "recipient_not_supported");
    assert_eq!(customer_kes(app, &key, &customer).await, (net - 50_000, 0));
    assert_eq!(merchant_kes(app, &key).await, (0, 0));
    assert_eq!(app.verify_ledger().await["ok"], true);
    simulator.shutdown().await;
}
both_backends!(mpesa_withdrawals_settle_by_the_b2c_result);
