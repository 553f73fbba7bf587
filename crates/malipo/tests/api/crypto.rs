//! Crypto payments through NOWPayments, end to end against the local
//! NOWPayments simulator: the deposit address as `next_action`, the signed
//! IPN (`x-nowpayments-sig`, checked by the hooks scheme) settling the
//! payment, partial payment shown as such, expiry and failure, a lost IPN
//! found by the status poll, a forged IPN refused, refunds refused up front.

use crate::both_backends;
use crate::helpers::{Receiver, TestApp};
use crate::mtn_momo::{
    balance, connector_account, event_for, last_inbound, merchant_with_receiver,
};
use malipo_simulators::nowpayments::{
    PRICE_EXPIRED, PRICE_FAILED, PRICE_IPN_LOST, PRICE_PARTIALLY_PAID,
};
use malipo_simulators::{Provider, RunningSimulator, SimulatorConfig};
use serde_json::{Value, json};

/// A merchant with a NOWPayments account on the simulator; answers its
/// key, webhook receiver, simulator and hook URL.
async fn crypto_merchant(app: &TestApp) -> (String, Receiver, RunningSimulator, String) {
    let simulator =
        malipo_simulators::spawn(Provider::NowPayments, SimulatorConfig::for_tests(150))
            .await
            .expect("simulator");
    let (key, receiver) = merchant_with_receiver(app).await;
    let nowpayments = &simulator.config().nowpayments;
    let account = connector_account(
        app,
        &key,
        json!({"provider": "nowpayments", "name": "NOWPayments",
            "webhook_secret": nowpayments.ipn_secret,
            "credentials": {"api_key": nowpayments.api_key, "base_url": simulator.base_url()}}),
    )
    .await;
    let hook = format!("{}/v1/hooks/nowpayments/{account}", app.base);
    (key, receiver, simulator, hook)
}

/// A crypto payment of `cents` US cents paid in BTC; asserts the deposit
/// address the customer is shown.
async fn pay_in_btc(app: &TestApp, key: &str, cents: u128) -> Value {
    let payment = app
        .post(
            "/v1/payments",
            key,
            &json!({"amount": cents, "currency": "usd", "method": "crypto",
                    "payment_method": "BTC", "description": "2 tickets"}),
        )
        .await
        .expect(200);
    assert_eq!(payment["status"], "requires_action", "{payment}");
    assert_eq!(payment["connector"], "nowpayments");
    assert_eq!(payment["payment_method"], "btc");
    let action = &payment["next_action"];
    assert_eq!(action["type"], "crypto_address", "{payment}");
    assert_eq!(action["pay_currency"], "btc");
    assert_eq!(action["network"], "btc");
    assert_eq!(action["provider_status"], "waiting");
    assert_eq!(action["amount_received"], "0");
    assert!(action["address"].as_str().is_some_and(|a| a.len() > 20));
    assert!(
        action["expires_at"]
            .as_str()
            .is_some_and(|e| e.ends_with('Z'))
    );
    payment
}

async fn settled(app: &TestApp, key: &str, payment: &Value) -> Value {
    let id = payment["id"].as_str().expect("id");
    app.wait_for_payment(key, id, |p| {
        p["status"] != "requires_action" && p["status"] != "processing"
    })
    .await
}

async fn crypto_payment_completes_by_signed_ipn(app: &TestApp) {
    let (key, receiver, simulator, hook) = crypto_merchant(app).await;
    let payment = pay_in_btc(app, &key, 1_000).await;
    // $10.00 at the simulator's 60,000 USD/BTC, rounded up to 8 decimals.
    assert_eq!(payment["next_action"]["pay_amount"], "0.00016667");

    let created = simulator
        .requests()
        .into_iter()
        .find(|request| request.path == "/v1/payment" && request.method == "POST")
        .expect("a create payment call")
        .json()
        .expect("json");
    assert_eq!(created["price_amount"], json!(10));
    assert_eq!(created["price_currency"], "usd");
    assert_eq!(created["pay_currency"], "btc");
    assert_eq!(created["order_id"], payment["id"]);
    assert_eq!(created["ipn_callback_url"], hook.as_str());
    assert_eq!(created["is_fixed_rate"], true);

    let done = settled(app, &key, &payment).await;
    assert_eq!(done["status"], "succeeded", "{done}");
    assert_eq!(
        event_for(&receiver, "payment.succeeded", &payment).await["status"],
        "succeeded"
    );
    let entry = last_inbound(app, "nowpayments").await;
    assert_eq!(entry["verdict"], "verified", "{entry}");
    assert_eq!(entry["outcome"], "processed", "{entry}");
    let net = done["net"].as_i64().expect("net");
    assert!(net > 0 && net < 1_000, "a fee was taken: {done}");
    assert_eq!(balance(app, &key, "usd").await.0, net);
    assert_eq!(app.verify_ledger().await["ok"], true);

    // No refund API at NOWPayments: refused up front, nothing reserved.
    let refund = app
        .post("/v1/refunds", &key, &json!({"payment": payment["id"]}))
        .await
        .expect(400);
    assert_eq!(refund["error"]["param"], "payment", "{refund}");
    assert_eq!(balance(app, &key, "usd").await.0, net);
    simulator.shutdown().await;
}
both_backends!(crypto_payment_completes_by_signed_ipn);

async fn partial_payment_is_shown_with_the_amount_received(app: &TestApp) {
    let (key, _receiver, simulator, _hook) = crypto_merchant(app).await;
    let payment = pay_in_btc(app, &key, PRICE_PARTIALLY_PAID).await;
    let id = payment["id"].as_str().expect("id");
    let seen = app
        .wait_for_payment(&key, id, |p| {
            p["next_action"]["provider_status"] == "partially_paid"
        })
        .await;
    assert_eq!(seen["status"], "requires_action", "{seen}");
    let action = &seen["next_action"];
    assert_eq!(action["pay_amount"], payment["next_action"]["pay_amount"]);
    assert_eq!(action["address"], payment["next_action"]["address"]);
    // Half arrived; what the IPN does not repeat is kept.
    assert_eq!(action["amount_received"], "0.00058442", "{seen}");
    assert_eq!(action["expires_at"], payment["next_action"]["expires_at"]);
    // Seen on chain first, so expected (pending), never available.
    let net = seen["net"].as_i64().expect("net");
    assert_eq!(balance(app, &key, "usd").await, (0, net));
    assert_eq!(app.verify_ledger().await["ok"], true);
    simulator.shutdown().await;
}
both_backends!(partial_payment_is_shown_with_the_amount_received);

async fn expired_and_failed_crypto_payments_fail_with_clear_codes(app: &TestApp) {
    let (key, receiver, simulator, _hook) = crypto_merchant(app).await;
    for (price, code) in [
        (PRICE_EXPIRED, "expired"),
        (PRICE_FAILED, "crypto_payment_failed"),
    ] {
        let payment = pay_in_btc(app, &key, price).await;
        let done = settled(app, &key, &payment).await;
        assert_eq!(done["status"], "failed", "{done}");
        assert_eq!(done["failure"]["code"], code, "{done}");
        assert_eq!(
            event_for(&receiver, "payment.failed", &payment).await["failure"]["code"],
            code
        );
    }
    assert_eq!(balance(app, &key, "usd").await, (0, 0));
    assert_eq!(app.verify_ledger().await["ok"], true);
    simulator.shutdown().await;
}
both_backends!(expired_and_failed_crypto_payments_fail_with_clear_codes);

async fn a_lost_ipn_is_found_by_the_status_poll(app: &TestApp) {
    let (key, _receiver, simulator, _hook) = crypto_merchant(app).await;
    let payment = pay_in_btc(app, &key, PRICE_IPN_LOST).await;
    let done = settled(app, &key, &payment).await;
    assert_eq!(done["status"], "succeeded", "{done}");
    assert!(simulator.callbacks_sent().is_empty(), "no IPN was sent");
    assert!(
        simulator
            .requests()
            .iter()
            .any(|request| request.method == "GET" && request.path.starts_with("/v1/payment/")),
        "the worker asked NOWPayments"
    );
    assert_eq!(app.verify_ledger().await["ok"], true);
    simulator.shutdown().await;
}
both_backends!(a_lost_ipn_is_found_by_the_status_poll);

async fn a_forged_ipn_changes_nothing(app: &TestApp) {
    let (key, _receiver, simulator, hook) = crypto_merchant(app).await;
    // Never paid: only a forged IPN could settle it.
    let payment = pay_in_btc(app, &key, malipo_simulators::nowpayments::PRICE_NEVER_PAID).await;
    let body = json!({"payment_id": 1234567890u64, "payment_status": "finished",
        "order_id": payment["id"], "pay_currency": "btc", "actually_paid": 1});
    let forged = reqwest::Client::new()
        .post(&hook)
        .header("content-type", "application/json")
        .header("x-nowpayments-sig", "0".repeat(128))
        .body(body.to_string())
        .send()
        .await
        .expect("send");
    assert_eq!(forged.status(), 401);
    let entry = last_inbound(app, "nowpayments").await;
    assert_eq!(entry["verdict"], "bad_signature", "{entry}");
    let now = app
        .get(
            &format!("/v1/payments/{}", payment["id"].as_str().expect("id")),
            &key,
        )
        .await
        .expect(200);
    assert_eq!(now["status"], "requires_action");
    assert_eq!(balance(app, &key, "usd").await, (0, 0));
    simulator.shutdown().await;
}
both_backends!(a_forged_ipn_changes_nothing);

async fn a_crypto_payment_names_a_known_coin(app: &TestApp) {
    let (key, _receiver, simulator, _hook) = crypto_merchant(app).await;
    for body in [
        json!({"amount": 1000, "currency": "usd", "method": "crypto"}),
        json!({"amount": 1000, "currency": "usd", "method": "crypto", "payment_method": "dogecoin"}),
    ] {
        let refused = app.post("/v1/payments", &key, &body).await.expect(400);
        assert_eq!(refused["error"]["param"], "payment_method", "{refused}");
    }
    let list = app.get("/v1/payments", &key).await.expect(200);
    assert_eq!(list["data"].as_array().expect("data").len(), 0);
    assert!(simulator.requests().is_empty());
    simulator.shutdown().await;
}
both_backends!(a_crypto_payment_names_a_known_coin);
