//! MTN MoMo end to end against the local MoMo simulator: RequestToPay, the
//! unsigned callback (a PUT) confirmed with a status query, polling when
//! the callback is lost, failures, the ledger and the merchant's webhooks.
//! Also the helpers the other mobile-money tests share.

use crate::both_backends;
use crate::helpers::{Receiver, TestApp};
use malipo_simulators::mtn_momo::{
    TEST_NUMBER_CALLBACK_LOST, TEST_NUMBER_PENDING, TEST_NUMBER_REJECTED, TEST_NUMBER_TIMEOUT,
};
use malipo_simulators::{Provider, RunningSimulator, SimulatorConfig};
use serde_json::{Value, json};

/// Any other number succeeds.
const PHONE: &str = "46733123499";

/// A new merchant's test key, with a webhook endpoint receiving every event.
pub(crate) async fn merchant_with_receiver(app: &TestApp) -> (String, Receiver) {
    let key = app.test_key().await;
    let receiver = Receiver::start(vec![]).await;
    app.post(
        "/v1/webhook_endpoints",
        &key,
        &json!({"url": receiver.url, "enabled_events": ["*"]}),
    )
    .await
    .expect(200);
    (key, receiver)
}

/// Creates a connector account; answers its id.
pub(crate) async fn connector_account(app: &TestApp, key: &str, body: Value) -> String {
    let account = app
        .post("/v1/connector_accounts", key, &body)
        .await
        .expect(200);
    account["id"].as_str().expect("id").to_owned()
}

/// Creates a payment; asserts it is processing with a phone prompt.
pub(crate) async fn pay(app: &TestApp, key: &str, body: Value) -> Value {
    let payment = app.post("/v1/payments", key, &body).await.expect(200);
    assert_eq!(payment["status"], "processing", "{payment}");
    assert_eq!(payment["next_action"]["type"], "phone_prompt", "{payment}");
    payment
}

/// Waits until the payment is no longer processing.
pub(crate) async fn settled(app: &TestApp, key: &str, payment: &Value) -> Value {
    let id = payment["id"].as_str().expect("id");
    app.wait_for_payment(key, id, |p| p["status"] != "processing")
        .await
}

/// The merchant webhook announcing `event_type` for `payment`: waits for
/// it, asserts it, answers the payment it carries.
pub(crate) async fn event_for(receiver: &Receiver, event_type: &str, payment: &Value) -> Value {
    let matching = |body: &str| {
        let event: Value = serde_json::from_str(body).expect("json event");
        (event["type"] == event_type && event["data"]["object"]["id"] == payment["id"])
            .then_some(event)
    };
    let received = receiver
        .wait_until(|received| received.iter().any(|r| matching(&r.body).is_some()))
        .await;
    let event = received
        .iter()
        .find_map(|r| matching(&r.body))
        .unwrap_or_else(|| panic!("no {event_type} webhook for {}", payment["id"]));
    event["data"]["object"].clone()
}

/// The newest inbound log entry of `provider` (waiting for the first one:
/// under load the status poll can settle a payment before its callback
/// comes).
pub(crate) async fn last_inbound(app: &TestApp, provider: &str) -> Value {
    let log = app
        .wait_for_list(
            &format!("/v1/admin/webhooks/inbound?provider={provider}"),
            &app.operator_token,
            1,
        )
        .await;
    log["data"][0].clone()
}

/// The merchant's balance: (available, pending) in `currency`.
pub(crate) async fn balance(app: &TestApp, key: &str, currency: &str) -> (i64, i64) {
    let balance = app.get("/v1/balance", key).await.expect(200);
    let amount = |kind: &str| {
        balance[kind]
            .as_array()
            .expect("a list")
            .iter()
            .find(|entry| entry["currency"] == currency)
            .map_or(0, |entry| entry["amount"].as_i64().expect("an amount"))
    };
    (amount("available"), amount("pending"))
}

async fn simulator() -> RunningSimulator {
    malipo_simulators::spawn(Provider::MtnMomo, SimulatorConfig::for_tests(200))
        .await
        .expect("simulator")
}

/// A merchant (and its event receiver) with an MTN MoMo sandbox account.
async fn momo_merchant(app: &TestApp, simulator: &RunningSimulator) -> (String, Receiver) {
    let (key, receiver) = merchant_with_receiver(app).await;
    let momo = &simulator.config().mtn_momo;
    connector_account(
        app,
        &key,
        json!({"provider": "mtn_momo", "name": "MoMo sandbox", "credentials": {
            "api_user": momo.api_user, "api_key": momo.api_key,
            "subscription_key": momo.collection_subscription_key,
            "target_environment": "sandbox", "base_url": simulator.base_url()}}),
    )
    .await;
    (key, receiver)
}

fn momo_payment(amount: u64, phone: &str) -> Value {
    json!({"amount": amount, "currency": "eur", "method": "mtn_momo", "customer": {"phone": phone}})
}

async fn momo_succeeds_by_confirmed_callback(app: &TestApp) {
    let simulator = simulator().await;
    let (key, receiver) = momo_merchant(app, &simulator).await;

    let payment = pay(app, &key, momo_payment(1_000, "+46733123499")).await;
    assert_eq!(payment["connector"], "mtn_momo");
    assert_eq!(payment["customer"]["phone"], PHONE, "normalised");
    assert_eq!(
        balance(app, &key, "eur").await,
        (0, 971),
        "pending while processing"
    );
    let done = settled(app, &key, &payment).await;
    assert_eq!(done["status"], "succeeded", "{done}");

    // MTN PUT its callback; the gateway asked MTN before believing it.
    let entry = last_inbound(app, "mtn_momo").await;
    assert_eq!(entry["method"], "PUT");
    assert_eq!(entry["verdict"], "unsigned");
    assert_eq!(entry["outcome"], "processed", "{entry}");
    assert!(
        entry["outcome_detail"]
            .as_str()
            .expect("detail")
            .contains("status API")
    );
    let statuses = simulator
        .requests()
        .into_iter()
        .filter(|request| request.path.starts_with("/collection/v1_0/requesttopay/"))
        .count();
    assert!(statuses >= 1, "confirmed with GET requesttopay/{{id}}");

    assert_eq!(
        event_for(&receiver, "payment.succeeded", &payment).await["status"],
        "succeeded"
    );
    assert_eq!(balance(app, &key, "eur").await, (971, 0));
    assert_eq!(app.verify_ledger().await["ok"], true);

    // Phones and currencies are checked before anything is written.
    let kenyan = app
        .post("/v1/payments", &key, &json!({"amount": 500, "currency": "ugx", "method": "mtn_momo", "customer": {"phone": "254708374149"}}))
        .await;
    assert_eq!(kenyan.status, 400);
    assert_eq!(kenyan.error_param(), Some("customer[phone]"));
    let shillings = app
        .post("/v1/payments", &key, &json!({"amount": 500, "currency": "kes", "method": "mtn_momo", "customer": {"phone": PHONE}}))
        .await;
    assert_eq!(shillings.error_param(), Some("currency"));
    let without_account = app.test_key().await;
    let refused = app
        .post(
            "/v1/payments",
            &without_account,
            &momo_payment(1_000, PHONE),
        )
        .await;
    assert_eq!(refused.error_param(), Some("method"));
    simulator.shutdown().await;
}
both_backends!(momo_succeeds_by_confirmed_callback);

async fn momo_failures_and_timeout(app: &TestApp) {
    let simulator = simulator().await;
    let (key, receiver) = momo_merchant(app, &simulator).await;

    let rejected = pay(app, &key, momo_payment(1_000, TEST_NUMBER_REJECTED)).await;
    let timeout = pay(app, &key, momo_payment(2_000, TEST_NUMBER_TIMEOUT)).await;
    let rejected = settled(app, &key, &rejected).await;
    assert_eq!(rejected["status"], "failed", "{rejected}");
    assert_eq!(rejected["failure"]["code"], "cancelled_by_user");
    let timeout = settled(app, &key, &timeout).await;
    assert_eq!(timeout["status"], "failed", "{timeout}");
    assert_eq!(timeout["failure"]["code"], "expired");

    for payment in [&rejected, &timeout] {
        let event = event_for(&receiver, "payment.failed", payment).await;
        assert_eq!(event["failure"], payment["failure"]);
    }
    assert_eq!(balance(app, &key, "eur").await, (0, 0), "nothing moved");
    assert_eq!(app.verify_ledger().await["ok"], true);
    simulator.shutdown().await;
}
both_backends!(momo_failures_and_timeout);

async fn momo_pending_then_succeeds_by_polling(app: &TestApp) {
    let simulator = simulator().await;
    let (key, receiver) = momo_merchant(app, &simulator).await;

    // MTN completes it but never calls back: only the status poll tells.
    let lost = pay(app, &key, momo_payment(1_000, TEST_NUMBER_CALLBACK_LOST)).await;
    // MTN never completes this one: it stays processing until it expires.
    let pending = pay(app, &key, momo_payment(3_000, TEST_NUMBER_PENDING)).await;
    let expiry = pending["expires_at"].as_i64().expect("expires_at")
        - pending["created"].as_i64().expect("created");
    assert_eq!(expiry, 600, "MTN's ~5 minute approval window, with room");

    let lost = settled(app, &key, &lost).await;
    assert_eq!(lost["status"], "succeeded", "{lost}");
    assert!(
        simulator.callbacks_sent().is_empty(),
        "no callback was ever sent"
    );
    assert_eq!(
        event_for(&receiver, "payment.succeeded", &lost).await["id"],
        lost["id"]
    );
    let still = app
        .get(
            &format!("/v1/payments/{}", pending["id"].as_str().expect("id")),
            &key,
        )
        .await
        .expect(200);
    assert_eq!(still["status"], "processing");
    assert_eq!(balance(app, &key, "eur").await, (971, 2_913));
    assert_eq!(app.verify_ledger().await["ok"], true);
    simulator.shutdown().await;
}
both_backends!(momo_pending_then_succeeds_by_polling);
