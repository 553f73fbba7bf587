//! M-Pesa end to end against the local Daraja simulator: STK push, the
//! unsigned callback confirmed with an STK query, the ledger and the events.

use crate::both_backends;
use crate::helpers::TestApp;
use malipo_simulators::{Provider, SimulatorConfig};
use serde_json::{Value, json};

pub(crate) async fn mpesa_key(
    app: &TestApp,
    simulator: &malipo_simulators::RunningSimulator,
) -> String {
    let key = app.test_key().await;
    let mpesa = &simulator.config().mpesa;
    app.post(
        "/v1/connector_accounts",
        &key,
        &json!({"provider": "mpesa", "name": "Paybill", "credentials": {
            "consumer_key": mpesa.consumer_key, "consumer_secret": mpesa.consumer_secret,
            "shortcode": mpesa.stk_shortcode, "passkey": mpesa.stk_passkey,
            "base_url": simulator.base_url()}}),
    )
    .await
    .expect(200);
    key
}

async fn pay(app: &TestApp, key: &str, amount: u64) -> Value {
    app.post(
        "/v1/payments",
        key,
        &json!({"amount": amount, "currency": "kes", "method": "mpesa", "customer": {"phone": "254708374149"}}),
    )
    .await
    .expect(200)
}

async fn stk_push_completes_by_confirmed_callback(app: &TestApp) {
    let simulator = malipo_simulators::spawn(Provider::Mpesa, SimulatorConfig::for_tests(200))
        .await
        .expect("simulator");
    let key = mpesa_key(app, &simulator).await;

    let payment = pay(app, &key, 10_000).await;
    assert_eq!(payment["status"], "processing");
    assert_eq!(payment["connector"], "mpesa");
    assert_eq!(payment["next_action"]["type"], "phone_prompt");
    let id = payment["id"].as_str().expect("id");
    let done = app
        .wait_for_payment(&key, id, |p| p["status"] != "processing")
        .await;
    assert_eq!(done["status"], "succeeded", "{done}");

    let log = app
        .get(
            "/v1/admin/webhooks/inbound?provider=mpesa",
            &app.operator_token,
        )
        .await
        .expect(200);
    let entry = &log["data"][0];
    assert_eq!(entry["verdict"], "unsigned");
    assert_eq!(entry["outcome"], "processed", "{entry}");
    assert!(
        entry["outcome_detail"]
            .as_str()
            .expect("detail")
            .contains("status API")
    );

    let cancelled = pay(app, &key, 103_200).await;
    let cancelled = app
        .wait_for_payment(&key, cancelled["id"].as_str().expect("id"), |p| {
            p["status"] != "processing"
        })
        .await;
    assert_eq!(cancelled["status"], "failed");
    assert_eq!(cancelled["failure"]["code"], "cancelled_by_user");

    let balance = app.get("/v1/balance", &key).await.expect(200);
    assert_eq!(
        balance["available"],
        json!([{"currency": "kes", "amount": 9_710}])
    );
    assert_eq!(app.verify_ledger().await["ok"], true);

    // Phones are normalised to Daraja's format, and refused with the field named.
    let local = app
        .post("/v1/payments", &key, &json!({"amount": 10_000, "currency": "kes", "method": "mpesa", "customer": {"phone": "0708374149"}}))
        .await
        .expect(200);
    assert_eq!(local["customer"]["phone"], "254708374149");
    let ugandan = app
        .post("/v1/payments", &key, &json!({"amount": 10_000, "currency": "kes", "method": "mpesa", "customer": {"phone": "256772123456"}}))
        .await;
    assert_eq!(ugandan.status, 400);
    assert_eq!(ugandan.error_param(), Some("customer[phone]"));
    let cents = app
        .post("/v1/payments", &key, &json!({"amount": 10_050, "currency": "kes", "method": "mpesa", "customer": {"phone": "254708374149"}}))
        .await;
    assert_eq!(cents.error_param(), Some("amount"));
    let dollars = app
        .post("/v1/payments", &key, &json!({"amount": 10_000, "currency": "usd", "method": "mpesa", "customer": {"phone": "254708374149"}}))
        .await;
    assert_eq!(dollars.error_param(), Some("currency"));

    let without_account = app.test_key().await;
    let refused = app
        .post(
            "/v1/payments",
            &without_account,
            &json!({"amount": 10_000, "currency": "kes", "method": "mpesa", "customer": {"phone": "254708374149"}}),
        )
        .await;
    assert_eq!(refused.status, 400);
    assert_eq!(refused.error_param(), Some("method"));
    simulator.shutdown().await;
}
both_backends!(stk_push_completes_by_confirmed_callback);
