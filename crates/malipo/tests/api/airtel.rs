//! Airtel Money end to end against the local Airtel simulator: the USSD
//! push, the unsigned callback (to the URL configured on the Airtel app)
//! confirmed with an enquiry, the ledger and the merchant's webhooks.

use crate::both_backends;
use crate::helpers::{Receiver, TestApp};
use crate::mtn_momo::{
    balance, connector_account, event_for, last_inbound, merchant_with_receiver, pay, settled,
};
use malipo_simulators::{Provider, RunningSimulator, SimulatorConfig};
use serde_json::{Value, json};

/// A merchant with an Airtel Money account, the simulated app calling back
/// at the account's hook URL.
pub(crate) async fn airtel_merchant(app: &TestApp) -> (String, Receiver, RunningSimulator) {
    let simulator = malipo_simulators::spawn(Provider::Airtel, SimulatorConfig::for_tests(200))
        .await
        .expect("simulator");
    let (key, receiver) = merchant_with_receiver(app).await;
    let airtel = &simulator.config().airtel;
    let account = connector_account(
        app,
        &key,
        json!({"provider": "airtel_money", "name": "Airtel UG", "credentials": {
            "client_id": airtel.client_id, "client_secret": airtel.client_secret,
            "base_url": simulator.base_url()}}),
    )
    .await;
    simulator
        .set_callback_url(&format!("{}/v1/hooks/airtel_money/{account}", app.base))
        .expect("callback url");
    (key, receiver, simulator)
}

fn airtel_payment(phone: &str) -> Value {
    json!({"amount": 5_000, "currency": "ugx", "method": "airtel_money", "customer": {"phone": phone}})
}

async fn airtel_succeeds_by_confirmed_callback(app: &TestApp) {
    let (key, receiver, simulator) = airtel_merchant(app).await;

    let payment = pay(app, &key, airtel_payment("0752000001")).await;
    assert_eq!(payment["connector"], "airtel_money");
    assert_eq!(payment["customer"]["phone"], "256752000001");
    let done = settled(app, &key, &payment).await;
    assert_eq!(done["status"], "succeeded", "{done}");

    let entry = last_inbound(app, "airtel_money").await;
    assert_eq!(entry["verdict"], "unsigned");
    assert_eq!(entry["outcome"], "processed", "{entry}");
    assert!(
        simulator
            .requests()
            .iter()
            .any(|request| request.path.starts_with("/standard/v1/payments/")),
        "confirmed with the enquiry"
    );
    assert_eq!(
        event_for(&receiver, "payment.succeeded", &payment).await["status"],
        "succeeded"
    );
    // UGX has no minor unit: 5,000 less 2.9% (145).
    assert_eq!(balance(app, &key, "ugx").await, (4_855, 0));
    assert_eq!(app.verify_ledger().await["ok"], true);

    let kenyan = app
        .post("/v1/payments", &key, &airtel_payment("254733000001"))
        .await;
    assert_eq!(kenyan.status, 400);
    assert_eq!(kenyan.error_param(), Some("customer[phone]"));
    simulator.shutdown().await;
}
both_backends!(airtel_succeeds_by_confirmed_callback);

async fn airtel_fails(app: &TestApp) {
    let (key, receiver, simulator) = airtel_merchant(app).await;

    let payment = pay(app, &key, airtel_payment("256752000002")).await;
    let done = settled(app, &key, &payment).await;
    assert_eq!(done["status"], "failed", "{done}");
    assert_eq!(done["failure"]["code"], "insufficient_funds");
    assert!(
        done["failure"]["message"]
            .as_str()
            .expect("message")
            .contains("DP00800001007")
    );
    assert_eq!(
        last_inbound(app, "airtel_money").await["outcome"],
        "processed"
    );
    assert_eq!(
        event_for(&receiver, "payment.failed", &payment).await["failure"],
        done["failure"]
    );
    assert_eq!(balance(app, &key, "ugx").await, (0, 0));
    assert_eq!(app.verify_ledger().await["ok"], true);
    simulator.shutdown().await;
}
both_backends!(airtel_fails);
