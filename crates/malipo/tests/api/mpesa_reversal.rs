//! M-Pesa refunds as Daraja reversals, end to end against the simulator:
//! the refund stays pending until the reversal `Result` reaches the
//! account's hook URL, then succeeds (ledger posted) or fails (ledger
//! voided, the payment refundable again); partial refunds are refused.
//! Also the amount-mismatch rule for STK callbacks, and Airtel Money's
//! whole-transaction refunds.

use crate::both_backends;
use crate::helpers::{Receiver, TestApp};
use crate::mtn_momo::{
    balance, connector_account, event_for, last_inbound, merchant_with_receiver, settled,
};
use malipo_simulators::mpesa::AMOUNT_CALLBACK_LOST;
use malipo_simulators::{Provider, RunningSimulator, SimulatorConfig};
use serde_json::{Value, json};
use std::time::Duration;

pub(crate) async fn mpesa_simulator() -> RunningSimulator {
    malipo_simulators::spawn(Provider::Mpesa, SimulatorConfig::for_tests(200))
        .await
        .expect("simulator")
}

/// A merchant with an M-Pesa account on `simulator` (with `extra`
/// credentials) and a webhook endpoint; answers (key, account id, receiver).
pub(crate) async fn mpesa_merchant(
    app: &TestApp,
    simulator: &RunningSimulator,
    extra: Value,
) -> (String, String, Receiver) {
    let (key, receiver) = merchant_with_receiver(app).await;
    let mpesa = &simulator.config().mpesa;
    let mut credentials = json!({
        "consumer_key": mpesa.consumer_key, "consumer_secret": mpesa.consumer_secret,
        "shortcode": mpesa.stk_shortcode, "passkey": mpesa.stk_passkey,
        "base_url": simulator.base_url()});
    for (name, value) in extra.as_object().expect("credentials") {
        credentials[name] = value.clone();
    }
    let account = connector_account(
        app,
        &key,
        json!({"provider": "mpesa", "name": "Paybill", "credentials": credentials}),
    )
    .await;
    (key, account, receiver)
}

fn initiator(name: &str) -> Value {
    json!({"initiator": name, "security_credential": "c2VjcmV0LXBhc3N3b3Jk"})
}

/// An STK push of `cents` that succeeds by its callback.
async fn paid(app: &TestApp, key: &str, cents: u64) -> Value {
    let payment = app
        .post(
            "/v1/payments",
            key,
            &json!({"amount": cents, "currency": "kes", "method": "mpesa",
                    "customer": {"phone": "254708374149"}}),
        )
        .await
        .expect(200);
    let done = settled(app, key, &payment).await;
    assert_eq!(done["status"], "succeeded", "{done}");
    done
}

/// Waits until the refund is no longer pending.
async fn refund_settled(app: &TestApp, key: &str, refund: &Value) -> Value {
    let path = format!("/v1/refunds/{}", refund["id"].as_str().expect("id"));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        let refund = app.get(&path, key).await.expect(200);
        if refund["status"] != "pending" || tokio::time::Instant::now() > deadline {
            return refund;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn mpesa_refund_is_a_reversal_completed_by_its_result(app: &TestApp) {
    let simulator = mpesa_simulator().await;
    let (key, _, receiver) = mpesa_merchant(app, &simulator, initiator("testapi")).await;
    let payment = paid(app, &key, 10_000).await;
    let payment_id = payment["id"].as_str().expect("id");
    assert_eq!(balance(app, &key, "kes").await, (9_710, 0));

    // Daraja reverses whole transactions: a partial refund is refused
    // before anything is reserved.
    let partial = app
        .post(
            "/v1/refunds",
            &key,
            &json!({"payment": payment_id, "amount": 5_000}),
        )
        .await;
    assert_eq!(partial.status, 400, "{}", partial.body);
    assert_eq!(partial.error_param(), Some("amount"));
    assert_eq!(balance(app, &key, "kes").await, (9_710, 0));

    let refund = app
        .post("/v1/refunds", &key, &json!({"payment": payment_id}))
        .await
        .expect(200);
    assert_eq!(refund["status"], "pending", "answered by a later Result");
    assert_eq!(refund["amount"], 10_000);
    let request = simulator
        .requests()
        .into_iter()
        .find(|request| request.path == "/mpesa/reversal/v1/request")
        .expect("a reversal request");
    let body: Value = serde_json::from_str(&request.body).expect("json");
    assert_eq!(body["Amount"], "100");
    assert!(
        body["ResultURL"]
            .as_str()
            .expect("url")
            .contains("/v1/hooks/mpesa/")
    );

    let done = refund_settled(app, &key, &refund).await;
    assert_eq!(done["status"], "succeeded", "{done}");
    assert_eq!(
        event_for(&receiver, "refund.created", &refund).await["status"],
        "pending"
    );
    assert_eq!(
        event_for(&receiver, "refund.succeeded", &refund).await["status"],
        "succeeded"
    );
    // The whole amount went back, the fee with it.
    assert_eq!(balance(app, &key, "kes").await, (0, 0));
    let result = last_inbound(app, "mpesa").await;
    assert_eq!(result["outcome"], "processed", "{result}");
    assert!(
        result["outcome_detail"]
            .as_str()
            .expect("detail")
            .contains("succeeded")
    );
    let again = app
        .post("/v1/refunds", &key, &json!({"payment": payment_id}))
        .await;
    assert_eq!(again.status, 409);
    assert_eq!(app.verify_ledger().await["ok"], true);
    simulator.shutdown().await;
}
both_backends!(mpesa_refund_is_a_reversal_completed_by_its_result);

async fn a_failed_reversal_fails_the_refund_and_releases_it(app: &TestApp) {
    let simulator = mpesa_simulator().await;
    // Daraja answers 2001 in the Result for an initiator it does not know.
    let (key, _, receiver) = mpesa_merchant(app, &simulator, initiator("stranger")).await;
    let payment = paid(app, &key, 10_000).await;
    let refund = app
        .post("/v1/refunds", &key, &json!({"payment": payment["id"]}))
        .await
        .expect(200);
    assert_eq!(refund["status"], "pending");
    let done = refund_settled(app, &key, &refund).await;
    assert_eq!(done["status"], "failed", "{done}");
    assert_eq!(done["failure"]["code"], "invalid_initiator");
    assert_eq!(
        event_for(&receiver, "refund.failed", &refund).await["failure"],
        done["failure"]
    );
    // The reservation was voided: the money and the payment are as before.
    assert_eq!(balance(app, &key, "kes").await, (9_710, 0));
    let payment = app
        .get(
            &format!("/v1/payments/{}", payment["id"].as_str().expect("id")),
            &key,
        )
        .await
        .expect(200);
    assert_eq!(payment["amount_refunded"], 0);
    assert_eq!(app.verify_ledger().await["ok"], true);
    simulator.shutdown().await;
}
both_backends!(a_failed_reversal_fails_the_refund_and_releases_it);

async fn an_stk_callback_for_another_amount_fails_the_payment(app: &TestApp) {
    let simulator = mpesa_simulator().await;
    let (key, account, receiver) = mpesa_merchant(app, &simulator, json!({})).await;
    // Succeeds at Daraja (the STK query says so) but its own callback is
    // lost; the callback that comes reports half the amount.
    let cents = AMOUNT_CALLBACK_LOST * 100;
    let payment = app
        .post(
            "/v1/payments",
            &key,
            &json!({"amount": cents, "currency": "kes", "method": "mpesa",
                    "customer": {"phone": "254708374149"}}),
        )
        .await
        .expect(200);
    let id = payment["id"].as_str().expect("id");
    let record = app.gateway().admin_payment(id).await.expect("payment");
    let checkout = record.provider_reference.expect("a CheckoutRequestID");
    // Until the customer answers the query says "processing".
    tokio::time::sleep(Duration::from_millis(600)).await;
    let callback = json!({"Body": {"stkCallback": {
        "MerchantRequestID": "1-2-3", "CheckoutRequestID": checkout,
        "ResultCode": 0, "ResultDesc": "The service request is processed successfully.",
        "CallbackMetadata": {"Item": [
            {"Name": "Amount", "Value": AMOUNT_CALLBACK_LOST / 2},
            {"Name": "MpesaReceiptNumber", "Value": "MISMATCH01"},
            {"Name": "TransactionDate", "Value": 20_241_101_120_000_u64},
            {"Name": "PhoneNumber", "Value": 254_708_374_149_u64}]}}}});
    let answer = app
        .client
        .post(format!("{}/v1/hooks/mpesa/{account}", app.base))
        .json(&callback)
        .send()
        .await
        .expect("sent");
    assert_eq!(answer.status(), 200);
    let done = settled(app, &key, &payment).await;
    assert_eq!(done["status"], "failed", "{done}");
    assert_eq!(done["failure"]["code"], "amount_mismatch");
    assert!(
        done["failure"]["message"]
            .as_str()
            .expect("message")
            .contains("MISMATCH01")
    );
    assert_eq!(
        event_for(&receiver, "payment.failed", &payment).await["failure"]["code"],
        "amount_mismatch"
    );
    // Nothing unpaid is credited.
    assert_eq!(balance(app, &key, "kes").await, (0, 0));
    assert_eq!(app.verify_ledger().await["ok"], true);
    simulator.shutdown().await;
}
both_backends!(an_stk_callback_for_another_amount_fails_the_payment);

async fn airtel_refunds_reverse_whole_payments(app: &TestApp) {
    let (key, receiver, simulator) = crate::airtel::airtel_merchant(app).await;
    let payment = app
        .post(
            "/v1/payments",
            &key,
            &json!({"amount": 5_000, "currency": "ugx", "method": "airtel_money",
                    "customer": {"phone": "0752000001"}}),
        )
        .await
        .expect(200);
    let done = settled(app, &key, &payment).await;
    assert_eq!(done["status"], "succeeded", "{done}");
    assert_eq!(balance(app, &key, "ugx").await, (4_855, 0));

    let partial = app
        .post(
            "/v1/refunds",
            &key,
            &json!({"payment": payment["id"], "amount": 1_000}),
        )
        .await;
    assert_eq!(partial.status, 400);
    assert_eq!(partial.error_param(), Some("amount"));

    let refund = app
        .post("/v1/refunds", &key, &json!({"payment": payment["id"]}))
        .await
        .expect(200);
    assert_eq!(refund["status"], "succeeded", "{refund}");
    assert!(
        simulator
            .requests()
            .iter()
            .any(|request| request.path == "/standard/v1/payments/refund")
    );
    assert_eq!(
        event_for(&receiver, "refund.succeeded", &refund).await["amount"],
        5_000
    );
    assert_eq!(balance(app, &key, "ugx").await, (0, 0));
    assert_eq!(app.verify_ledger().await["ok"], true);
    simulator.shutdown().await;
}
both_backends!(airtel_refunds_reverse_whole_payments);
