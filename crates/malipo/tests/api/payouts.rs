//! Payouts end to end through the public API against the provider
//! simulators: M-Pesa B2C paid (and failed) by its `Result` callback, MTN
//! MoMo Disbursement transfers paid and failed by their (confirmed)
//! callbacks or by the poller when the callback is lost, Relworx
//! send-payment for Airtel Money; the money moves available -> in transit
//! -> out (or back) in the ledger, which verifies after each; refusals
//! change nothing; an Idempotency-Key retry answers the same payout.

use crate::both_backends;
use crate::helpers::{Receiver, TestApp};
use crate::mpesa_reversal::{mpesa_merchant, mpesa_simulator};
use crate::mtn_momo::{connector_account, event_for, merchant_with_receiver};
use malipo_simulators::mpesa::AMOUNT_NEVER_ANSWERED;
use malipo_simulators::mtn_momo::{TEST_NUMBER_CALLBACK_LOST, TEST_NUMBER_FAILED};
use malipo_simulators::{Provider, RunningSimulator, SimulatorConfig};
use serde_json::{Value, json};
use std::time::Duration;

/// Waits until the payout is neither pending nor processing, or 15 s pass.
async fn payout_settled(app: &TestApp, key: &str, payout: &Value) -> Value {
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

/// The merchant's (available, in transit) balance in `currency`.
async fn balances(app: &TestApp, key: &str, currency: &str) -> (i64, i64) {
    let balance = app.get("/v1/balance", key).await.expect(200);
    let amount = |kind: &str| {
        balance[kind]
            .as_array()
            .expect("a list")
            .iter()
            .find(|entry| entry["currency"] == currency)
            .map_or(0, |entry| entry["amount"].as_i64().expect("an amount"))
    };
    (amount("available"), amount("in_transit"))
}

/// Funds the merchant with a sandbox payment of `amount` (net of the 2.9%
/// fee is what becomes available).
async fn fund(app: &TestApp, key: &str, amount: u64, currency: &str) {
    let payment = app
        .post(
            "/v1/payments",
            key,
            &json!({"amount": amount, "currency": currency, "method": "sandbox",
                    "customer": {"phone": "254700000000"}}),
        )
        .await
        .expect(200);
    assert_eq!(payment["status"], "succeeded", "{payment}");
}

/// The (type, amount) of the merchant's balance transactions caused by `source`.
async fn balance_entries(app: &TestApp, key: &str, source: &Value) -> Vec<(String, i64)> {
    let id = source["id"].as_str().expect("id");
    let list = app
        .get(&format!("/v1/balance_transactions?source={id}"), key)
        .await
        .expect(200);
    let mut entries: Vec<(String, i64)> = list["data"]
        .as_array()
        .expect("a list")
        .iter()
        .map(|entry| {
            (
                entry["type"].as_str().expect("type").to_owned(),
                entry["amount"].as_i64().expect("amount"),
            )
        })
        .collect();
    entries.sort();
    entries
}

fn initiator(name: &str) -> Value {
    json!({"initiator": name, "security_credential": "c2VjcmV0LXBhc3N3b3Jk"})
}

fn mpesa_payout(cents: u64) -> Value {
    json!({"amount": cents, "currency": "kes", "method": "mpesa",
           "destination": {"phone": "0708374149"}, "description": "Seller payout 42",
           "metadata": {"seller": "s_42"}})
}

async fn mpesa_b2c_payout_is_paid_by_its_result(app: &TestApp) {
    let simulator = mpesa_simulator().await;
    let (key, _, receiver) = mpesa_merchant(app, &simulator, initiator("testapi")).await;
    fund(app, &key, 100_000, "kes").await;
    assert_eq!(balances(app, &key, "kes").await, (97_100, 0));

    let payout = app
        .post("/v1/payouts", &key, &mpesa_payout(50_000))
        .await
        .expect(200);
    assert_eq!(payout["object"], "payout");
    assert!(payout["id"].as_str().expect("id").starts_with("po_"));
    assert_eq!(payout["status"], "processing", "{payout}");
    assert_eq!(payout["destination"]["phone"], "254708374149");
    assert_eq!(payout["metadata"]["seller"], "s_42");
    // Taken from available at once, held in transit until the Result.
    let request = simulator
        .requests()
        .into_iter()
        .find(|request| request.path == "/mpesa/b2c/v1/paymentrequest")
        .expect("a B2C request");
    let body = request.json().expect("json");
    assert_eq!(body["CommandID"], "BusinessPayment");
    assert_eq!(body["InitiatorName"], "testapi");
    assert_eq!(body["Amount"], 500);
    assert_eq!(body["PartyB"], 254_708_374_149_u64);
    assert!(
        body["ResultURL"]
            .as_str()
            .expect("url")
            .contains("/v1/hooks/mpesa/")
    );

    let done = payout_settled(app, &key, &payout).await;
    assert_eq!(done["status"], "paid", "{done}");
    assert!(done["receipt"].is_string(), "the B2C receipt: {done}");
    assert_eq!(balances(app, &key, "kes").await, (47_100, 0));
    assert_eq!(
        balance_entries(app, &key, &payout).await,
        [("payout".to_owned(), -50_000)]
    );
    assert_eq!(
        event_for(&receiver, "payout.created", &payout).await["status"],
        "pending"
    );
    assert_eq!(
        event_for(&receiver, "payout.paid", &payout).await["receipt"],
        done["receipt"]
    );
    let listed = app.get("/v1/payouts?status=paid", &key).await.expect(200);
    assert_eq!(listed["data"][0]["id"], payout["id"]);
    assert_eq!(app.verify_ledger().await["ok"], true);
    simulator.shutdown().await;
}
both_backends!(mpesa_b2c_payout_is_paid_by_its_result);

/// Time between a provider accepting a request and its result, in the
/// tests that look at the money in transit meanwhile.
const RESULT_DELAY_MS: u64 = 1_000;

async fn a_failed_b2c_result_returns_the_money(app: &TestApp) {
    let simulator =
        malipo_simulators::spawn(Provider::Mpesa, SimulatorConfig::for_tests(RESULT_DELAY_MS))
            .await
            .expect("simulator");
    let (key, _, receiver) = mpesa_merchant(app, &simulator, initiator("testapi")).await;
    fund(app, &key, 300_000, "kes").await;
    assert_eq!(balances(app, &key, "kes").await, (291_300, 0));
    // KES 2040: the simulator's B2C ResultCode 2040 (recipient not supported).
    let payout = app
        .post("/v1/payouts", &key, &mpesa_payout(204_000))
        .await
        .expect(200);
    assert_eq!(payout["status"], "processing");
    assert_eq!(balances(app, &key, "kes").await, (87_300, 204_000));
    let done = payout_settled(app, &key, &payout).await;
    assert_eq!(done["status"], "failed", "{done}");
    assert_eq!(done["failure"]["code"], "recipient_not_supported");
    assert!(
        done["failure"]["message"]
            .as_str()
            .expect("message")
            .contains("2040")
    );
    assert_eq!(balances(app, &key, "kes").await, (291_300, 0));
    assert_eq!(
        balance_entries(app, &key, &payout).await,
        [
            ("payout".to_owned(), -204_000),
            ("payout_failure".to_owned(), 204_000)
        ]
    );
    assert_eq!(
        event_for(&receiver, "payout.failed", &payout).await["failure"],
        done["failure"]
    );
    assert_eq!(app.verify_ledger().await["ok"], true);
    simulator.shutdown().await;
}
both_backends!(a_failed_b2c_result_returns_the_money);

async fn mtn_simulator() -> RunningSimulator {
    malipo_simulators::spawn(
        Provider::MtnMomo,
        SimulatorConfig::for_tests(RESULT_DELAY_MS),
    )
    .await
    .expect("simulator")
}

/// A merchant with an MTN MoMo sandbox account that has Disbursement
/// credentials, funded with EUR 97.10.
async fn momo_payout_merchant(app: &TestApp, simulator: &RunningSimulator) -> (String, Receiver) {
    let (key, receiver) = merchant_with_receiver(app).await;
    let momo = &simulator.config().mtn_momo;
    connector_account(
        app,
        &key,
        json!({"provider": "mtn_momo", "name": "MoMo sandbox", "credentials": {
            "api_user": momo.api_user, "api_key": momo.api_key,
            "subscription_key": momo.collection_subscription_key,
            "disbursement_subscription_key": momo.disbursement_subscription_key,
            "target_environment": "sandbox", "base_url": simulator.base_url()}}),
    )
    .await;
    fund(app, &key, 10_000, "eur").await;
    assert_eq!(balances(app, &key, "eur").await, (9_710, 0));
    (key, receiver)
}

fn momo_payout(cents: u64, phone: &str) -> Value {
    json!({"amount": cents, "currency": "eur", "method": "mtn_momo",
           "destination": {"phone": phone}})
}

async fn mtn_transfers_are_paid_and_failed_by_their_callbacks(app: &TestApp) {
    let simulator = mtn_simulator().await;
    let (key, receiver) = momo_payout_merchant(app, &simulator).await;
    let paid = app
        .post("/v1/payouts", &key, &momo_payout(5_000, "+46733123499"))
        .await
        .expect(200);
    assert_eq!(paid["status"], "processing", "{paid}");
    assert_eq!(paid["destination"]["phone"], "46733123499");
    let failed = app
        .post("/v1/payouts", &key, &momo_payout(1_000, TEST_NUMBER_FAILED))
        .await
        .expect(200);
    assert_eq!(balances(app, &key, "eur").await, (3_710, 6_000));

    let paid_done = payout_settled(app, &key, &paid).await;
    assert_eq!(paid_done["status"], "paid", "{paid_done}");
    assert!(paid_done["receipt"].is_string(), "financialTransactionId");
    let failed_done = payout_settled(app, &key, &failed).await;
    assert_eq!(failed_done["status"], "failed", "{failed_done}");
    assert_eq!(failed_done["failure"]["code"], "declined");
    assert_eq!(balances(app, &key, "eur").await, (4_710, 0));

    // Disbursement transfers with the payee; each unsigned callback was
    // confirmed with the transfer's status before it counted.
    let requests = simulator.requests();
    let transfers: Vec<Value> = requests
        .iter()
        .filter(|request| request.path == "/disbursement/v1_0/transfer")
        .map(|request| request.json().expect("json"))
        .collect();
    assert_eq!(transfers.len(), 2);
    assert_eq!(transfers[0]["payee"]["partyId"], "46733123499");
    assert_eq!(transfers[0]["amount"], "50");
    assert!(
        requests
            .iter()
            .any(|request| request.path.starts_with("/disbursement/v1_0/transfer/"))
    );
    assert_eq!(
        event_for(&receiver, "payout.paid", &paid).await["status"],
        "paid"
    );
    assert_eq!(
        event_for(&receiver, "payout.failed", &failed).await["failure"]["code"],
        "declined"
    );
    assert_eq!(app.verify_ledger().await["ok"], true);
    simulator.shutdown().await;
}
both_backends!(mtn_transfers_are_paid_and_failed_by_their_callbacks);

async fn a_lost_transfer_callback_is_resolved_by_the_poller(app: &TestApp) {
    let simulator = mtn_simulator().await;
    let (key, receiver) = momo_payout_merchant(app, &simulator).await;
    // Succeeds at MTN, whose callback is never sent.
    let payout = app
        .post(
            "/v1/payouts",
            &key,
            &momo_payout(2_000, TEST_NUMBER_CALLBACK_LOST),
        )
        .await
        .expect(200);
    assert_eq!(payout["status"], "processing");
    let done = payout_settled(app, &key, &payout).await;
    assert_eq!(done["status"], "paid", "{done}");
    let id = payout["id"].as_str().expect("id");
    let inbound = app
        .get(
            "/v1/admin/webhooks/inbound?provider=mtn_momo",
            &app.operator_token,
        )
        .await
        .expect(200);
    assert_eq!(
        inbound["data"].as_array().expect("a list").len(),
        0,
        "no callback came: the poll found it"
    );
    assert!(
        simulator
            .requests()
            .iter()
            .any(|request| request.path.starts_with("/disbursement/v1_0/transfer/"))
    );
    assert_eq!(balances(app, &key, "eur").await, (7_710, 0));
    assert_eq!(event_for(&receiver, "payout.paid", &payout).await["id"], id);
    assert_eq!(app.verify_ledger().await["ok"], true);
    simulator.shutdown().await;
}
both_backends!(a_lost_transfer_callback_is_resolved_by_the_poller);

async fn refused_payouts_change_nothing(app: &TestApp) {
    let simulator = mpesa_simulator().await;
    let (key, _, _) = mpesa_merchant(app, &simulator, initiator("testapi")).await;
    fund(app, &key, 10_000, "kes").await;
    let before = balances(app, &key, "kes").await;
    assert_eq!(before, (9_710, 0));
    let refused = |body: Value, param: &'static str| {
        let key = key.clone();
        async move {
            let answer = app.post("/v1/payouts", &key, &body).await;
            assert_eq!(answer.status, 400, "{}", answer.body);
            assert_eq!(answer.error_param(), Some(param), "{}", answer.body);
            answer.body
        }
    };
    // More than the available balance.
    let body = refused(mpesa_payout(20_000), "amount").await;
    assert_eq!(body["error"]["code"], "balance_insufficient");
    // Not a Kenyan number, not a number at all, no number.
    let mut foreign = mpesa_payout(1_000);
    foreign["destination"]["phone"] = json!("256772123456");
    refused(foreign, "destination[phone]").await;
    let mut letters = mpesa_payout(1_000);
    letters["destination"]["phone"] = json!("07O8374149");
    refused(letters, "destination[phone]").await;
    let mut missing = mpesa_payout(1_000);
    missing["destination"] = json!({});
    refused(missing, "destination[phone]").await;
    // Not whole shillings; a method payouts don't go by; a provider the
    // merchant has no account with.
    refused(mpesa_payout(1_050), "amount").await;
    let mut card = mpesa_payout(1_000);
    card["method"] = json!("card");
    refused(card, "method").await;
    refused(
        json!({"amount": 1_000, "currency": "ugx", "method": "airtel_money",
               "destination": {"phone": "0752000001"}}),
        "method",
    )
    .await;
    refused(json!({"currency": "kes", "method": "mpesa"}), "amount").await;
    // A key without the payouts scope can read payouts, not send them.
    let payments_only = app
        .post(
            "/v1/api_keys",
            &key,
            &json!({"name": "checkout", "scopes": ["payments_write"]}),
        )
        .await
        .expect(200);
    let payments_only = payments_only["secret"].as_str().expect("secret");
    let forbidden = app
        .post("/v1/payouts", payments_only, &mpesa_payout(1_000))
        .await;
    assert_eq!(forbidden.status, 403, "{}", forbidden.body);
    assert_eq!(app.get("/v1/payouts", payments_only).await.status, 200);

    assert_eq!(balances(app, &key, "kes").await, before);
    let listed = app.get("/v1/payouts", &key).await.expect(200);
    assert_eq!(listed["data"], json!([]));
    let entries = app
        .get("/v1/balance_transactions?type=payout", &key)
        .await
        .expect(200);
    assert_eq!(entries["data"], json!([]));
    assert!(
        !simulator
            .requests()
            .iter()
            .any(|request| request.path.contains("/b2c/")),
        "nothing reached M-Pesa"
    );
    assert_eq!(app.verify_ledger().await["ok"], true);
    simulator.shutdown().await;
}
both_backends!(refused_payouts_change_nothing);

async fn an_idempotent_retry_answers_the_same_payout(app: &TestApp) {
    let simulator = mpesa_simulator().await;
    let (key, _, _) = mpesa_merchant(app, &simulator, initiator("testapi")).await;
    fund(app, &key, 1_000_000, "kes").await;
    // Daraja never answers this one: the payout stays processing.
    let body = mpesa_payout(AMOUNT_NEVER_ANSWERED * 100);
    let first = app
        .post_idempotent("/v1/payouts", &key, &body, "payout-7001")
        .await;
    let first_body = first.body.clone();
    assert_eq!(first.status, 200, "{first_body}");
    let again = app
        .post_idempotent("/v1/payouts", &key, &body, "payout-7001")
        .await;
    assert_eq!(again.status, 200);
    assert_eq!(again.body["id"], first_body["id"]);
    assert_eq!(
        again
            .headers
            .get("idempotent-replayed")
            .and_then(|value| value.to_str().ok()),
        Some("true")
    );
    // The same key with another body is refused.
    let other = app
        .post_idempotent("/v1/payouts", &key, &mpesa_payout(1_000), "payout-7001")
        .await;
    assert_eq!(other.status.as_u16() / 100, 4, "{}", other.body);
    let listed = app.get("/v1/payouts", &key).await.expect(200);
    assert_eq!(listed["data"].as_array().expect("a list").len(), 1);
    let amount = first_body["amount"].as_i64().expect("amount");
    assert_eq!(balances(app, &key, "kes").await, (971_000 - amount, amount));
    let b2c_requests = simulator
        .requests()
        .iter()
        .filter(|request| request.path.contains("/b2c/"))
        .count();
    assert_eq!(b2c_requests, 1, "sent once");
    assert_eq!(app.verify_ledger().await["ok"], true);
    simulator.shutdown().await;
}
both_backends!(an_idempotent_retry_answers_the_same_payout);

async fn relworx_sends_airtel_payouts(app: &TestApp) {
    let (key, receiver, simulator) = crate::relworx::relworx_merchant(app).await;
    fund(app, &key, 10_000, "ugx").await;
    assert_eq!(balances(app, &key, "ugx").await, (9_710, 0));
    let payout = app
        .post(
            "/v1/payouts",
            &key,
            &json!({"amount": 4_000, "currency": "ugx", "method": "airtel_money",
                    "destination": {"phone": "0752340001"}}),
        )
        .await
        .expect(200);
    assert_eq!(payout["status"], "processing", "{payout}");
    assert_eq!(payout["connector"], "airtel_money");
    let done = payout_settled(app, &key, &payout).await;
    assert_eq!(done["status"], "paid", "{done}");
    let sent = simulator
        .requests()
        .into_iter()
        .find(|request| request.path.ends_with("/send-payment"))
        .expect("a send-payment")
        .json()
        .expect("json");
    assert_eq!(sent["msisdn"], "+256752340001");
    assert_eq!(sent["reference"], payout["id"]);
    assert_eq!(sent["amount"], 4_000);
    assert_eq!(balances(app, &key, "ugx").await, (5_710, 0));
    assert_eq!(
        event_for(&receiver, "payout.paid", &payout).await["status"],
        "paid"
    );
    assert_eq!(app.verify_ledger().await["ok"], true);
    simulator.shutdown().await;
}
both_backends!(relworx_sends_airtel_payouts);
