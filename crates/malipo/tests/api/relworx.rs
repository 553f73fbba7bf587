//! MTN MoMo and Airtel Money in Uganda through Relworx, end to end against
//! the local Relworx simulator: a merchant with a `relworx` account and no
//! direct one pays by `mtn_momo` / `airtel_money`; the signed webhook
//! (`Relworx-Signature`, checked by the hooks scheme) settles the payment
//! directly; the ledger and the merchant's webhooks follow.

use crate::both_backends;
use crate::helpers::{Receiver, TestApp};
use crate::mtn_momo::{
    balance, connector_account, event_for, last_inbound, merchant_with_receiver, pay, settled,
};
use malipo_simulators::{Provider, RunningSimulator, SimulatorConfig};
use serde_json::{Value, json};

/// A merchant whose only mobile-money account is with Relworx, the
/// simulated business account sending signed webhooks to its hook URL.
pub(crate) async fn relworx_merchant(app: &TestApp) -> (String, Receiver, RunningSimulator) {
    let simulator = malipo_simulators::spawn(Provider::Relworx, SimulatorConfig::for_tests(200))
        .await
        .expect("simulator");
    let (key, receiver) = merchant_with_receiver(app).await;
    let relworx = &simulator.config().relworx;
    let account = connector_account(
        app,
        &key,
        json!({"provider": "relworx", "name": "Relworx UG",
            "webhook_secret": relworx.webhook_key.clone().expect("a webhook key"),
            "credentials": {"api_key": relworx.api_key, "account_no": relworx.account_no,
                            "base_url": simulator.base_url()}}),
    )
    .await;
    simulator
        .set_callback_url(&format!("{}/v1/hooks/relworx/{account}", app.base))
        .expect("webhook url");
    (key, receiver, simulator)
}

fn ugandan_payment(method: &str, phone: &str) -> Value {
    json!({"amount": 5_000, "currency": "ugx", "method": method, "customer": {"phone": phone}})
}

async fn relworx_carries_mtn_and_airtel_by_signed_webhook(app: &TestApp) {
    let (key, receiver, simulator) = relworx_merchant(app).await;

    let mtn = pay(app, &key, ugandan_payment("mtn_momo", "0772340001")).await;
    assert_eq!(mtn["connector"], "mtn_momo");
    assert_eq!(mtn["customer"]["phone"], "256772340001");
    let airtel = pay(app, &key, ugandan_payment("airtel_money", "256752340001")).await;
    for payment in [&mtn, &airtel] {
        let done = settled(app, &key, payment).await;
        assert_eq!(done["status"], "succeeded", "{done}");
        assert_eq!(
            event_for(&receiver, "payment.succeeded", payment).await["status"],
            "succeeded"
        );
    }
    // Both went to Relworx, which signed its webhooks; they were applied
    // as they came, without a status query.
    let requests = simulator.requests();
    let sent: Vec<String> = requests
        .iter()
        .filter(|request| request.path.ends_with("/request-payment"))
        .map(|request| request.json().expect("json")["msisdn"].to_string())
        .collect();
    assert_eq!(sent, ["\"+256772340001\"", "\"+256752340001\""]);
    assert!(
        !requests
            .iter()
            .any(|request| request.path.ends_with("/check-request-status"))
    );
    let entry = last_inbound(app, "relworx").await;
    assert_eq!(entry["verdict"], "verified");
    assert_eq!(entry["outcome"], "processed", "{entry}");
    assert_eq!(balance(app, &key, "ugx").await, (2 * 4_855, 0));
    assert_eq!(app.verify_ledger().await["ok"], true);

    // Relworx carries MTN and Airtel in Uganda only.
    let cedis = app
        .post(
            "/v1/payments",
            &key,
            &json!({"amount": 5_000, "currency": "ghs", "method": "mtn_momo", "customer": {"phone": "233241234567"}}),
        )
        .await
        .expect(200);
    assert_eq!(cedis["status"], "failed", "{cedis}");
    assert_eq!(cedis["failure"]["code"], "provider_rejected");
    assert!(
        cedis["failure"]["message"]
            .as_str()
            .expect("message")
            .contains("UGX only")
    );
    simulator.shutdown().await;
}
both_backends!(relworx_carries_mtn_and_airtel_by_signed_webhook);

async fn relworx_failure_by_signed_webhook(app: &TestApp) {
    let (key, receiver, simulator) = relworx_merchant(app).await;

    let payment = pay(app, &key, ugandan_payment("mtn_momo", "256772340002")).await;
    let done = settled(app, &key, &payment).await;
    assert_eq!(done["status"], "failed", "{done}");
    assert_eq!(done["failure"]["code"], "insufficient_funds");
    let entry = last_inbound(app, "relworx").await;
    assert_eq!(entry["verdict"], "verified");
    assert_eq!(entry["outcome"], "processed", "{entry}");
    assert_eq!(
        event_for(&receiver, "payment.failed", &payment).await["failure"],
        done["failure"]
    );
    assert_eq!(balance(app, &key, "ugx").await, (0, 0));
    assert_eq!(app.verify_ledger().await["ok"], true);
    simulator.shutdown().await;
}
both_backends!(relworx_failure_by_signed_webhook);
