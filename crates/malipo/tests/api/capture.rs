//! Manual capture end to end against the Stripe simulator: a
//! `capture_method: "manual"` card payment is only authorised
//! (`requires_capture`, its amount pending in the ledger); a capture, full
//! or partial, succeeds at Stripe first and only then credits what was
//! captured; a cancel releases the authorisation at Stripe and moves no
//! money; a second capture, a capture after a cancel and manual capture on
//! a connector that can't are refused and change nothing. The ledger
//! verifies after each.

use crate::both_backends;
use crate::cards::{
    RETURN_URL, USD_AMOUNT, USD_NET, authenticate, events, get, paystack_account, stripe_merchant,
};
use crate::helpers::TestApp;
use crate::mtn_momo::{balance, connector_account, event_for, last_inbound};
use malipo_simulators::{Provider, RunningSimulator, SimulatorConfig};
use serde_json::{Value, json};

/// An authorised manual-capture card payment through Stripe.
async fn authorise(app: &TestApp, key: &str, token: &str) -> Value {
    app.post(
        "/v1/payments",
        key,
        &json!({"amount": USD_AMOUNT, "currency": "usd", "method": "card",
            "payment_method": token, "return_url": RETURN_URL, "capture_method": "manual"}),
    )
    .await
    .expect(200)
}

fn path(payment: &Value, step: &str) -> String {
    format!(
        "/v1/payments/{}/{step}",
        payment["id"].as_str().expect("id")
    )
}

/// The requests Malipo sent to the simulator's `…/{step}` of `payment`'s intent.
fn provider_calls(simulator: &RunningSimulator, step: &str) -> Vec<String> {
    simulator
        .requests()
        .iter()
        .filter(|request| request.path.ends_with(&format!("/{step}")))
        .map(|request| request.body.clone())
        .collect()
}

async fn assert_authorised(app: &TestApp, key: &str, payment: &Value) {
    assert_eq!(payment["status"], "requires_capture", "{payment}");
    assert_eq!(payment["capture_method"], "manual");
    assert_eq!(payment["amount_capturable"], USD_AMOUNT);
    assert_eq!(payment["amount_received"], 0);
    // Authorised, not moved: the net amount is pending, nothing available.
    assert_eq!(balance(app, key, "usd").await, (0, USD_NET));
}

async fn manual_capture_takes_the_whole_authorisation_once(app: &TestApp) {
    let (key, receiver, simulator) = stripe_merchant(app, 100).await;
    let payment = authorise(app, &key, "pm_card_visa").await;
    assert_authorised(app, &key, &payment).await;
    let create = &simulator.requests()[0];
    assert!(
        create.body.contains("capture_method=manual"),
        "{}",
        create.body
    );
    assert_eq!(
        event_for(&receiver, "payment.requires_capture", &payment).await["amount_capturable"],
        USD_AMOUNT
    );
    // Stripe's payment_intent.amount_capturable_updated changes nothing.
    let entry = app
        .wait_for_list(
            "/v1/admin/webhooks/inbound?provider=stripe",
            &app.operator_token,
            1,
        )
        .await["data"][0]
        .clone();
    assert_eq!(entry["verdict"], "verified", "{entry}");

    // Two captures at once: one goes to Stripe and succeeds, the other is
    // refused (while the first is with Stripe, or after it).
    let capture = path(&payment, "capture");
    let empty = json!({});
    let (first, second) = tokio::join!(
        app.post_idempotent(&capture, &key, &empty, "capture-1"),
        app.post_idempotent(&capture, &key, &empty, "capture-2"),
    );
    let ((winner, captured), refused) = match (first.status.as_u16(), second.status.as_u16()) {
        (200, _) => (("capture-1", first.body), second),
        (_, 200) => (("capture-2", second.body), first),
        _ => panic!("no capture succeeded: {} / {}", first.body, second.body),
    };
    assert_eq!(refused.status, 409, "{}", refused.body);
    let code = refused.body["error"]["code"].as_str().expect("code");
    assert!(
        ["payment_operation_in_progress", "payment_unexpected_state"].contains(&code),
        "{code}"
    );
    assert_eq!(captured["status"], "succeeded", "{captured}");
    assert_eq!(captured["amount_received"], USD_AMOUNT);
    assert_eq!(captured["amount_capturable"], 0);
    assert_eq!(captured["fee"], USD_AMOUNT - USD_NET);
    assert_eq!(
        provider_calls(&simulator, "capture"),
        vec!["amount_to_capture=5000".to_owned()]
    );
    assert_eq!(balance(app, &key, "usd").await, (USD_NET, 0));
    // The same key replays the answer; nothing is captured twice.
    let replay = app
        .post_idempotent(&path(&payment, "capture"), &key, &json!({}), winner)
        .await;
    assert_eq!(replay.headers["idempotent-replayed"], "true");
    assert_eq!(replay.body, captured);
    // A new capture, or a cancel, of a succeeded payment: 409, nothing changes.
    for step in ["capture", "cancel"] {
        let refused = app.post(&path(&payment, step), &key, &json!({})).await;
        assert_eq!(refused.status, 409, "{}", refused.body);
        assert_eq!(refused.body["error"]["code"], "payment_unexpected_state");
    }
    assert_eq!(provider_calls(&simulator, "capture").len(), 1);
    // Stripe's payment_intent.succeeded follows the capture: one event.
    event_for(&receiver, "payment.succeeded", &payment).await;
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(events(&receiver, "payment.succeeded", &payment), 1);
    assert_eq!(balance(app, &key, "usd").await, (USD_NET, 0));
    let transactions = app.get("/v1/balance_transactions", &key).await.expect(200);
    assert_eq!(transactions["data"][0]["amount"], USD_AMOUNT);
    assert_eq!(transactions["data"][0]["net"], USD_NET);
    assert_eq!(app.verify_ledger().await["ok"], true);
    simulator.shutdown().await;
}
both_backends!(manual_capture_takes_the_whole_authorisation_once);

async fn partial_capture_credits_only_what_was_captured(app: &TestApp) {
    let (key, _receiver, simulator) = stripe_merchant(app, 100).await;
    let payment = authorise(app, &key, "pm_card_visa").await;
    // More than authorised, or nothing: 400 naming the field, nothing sent.
    for bad in [USD_AMOUNT + 1, 0] {
        let refused = app
            .post(
                &path(&payment, "capture"),
                &key,
                &json!({"amount_to_capture": bad}),
            )
            .await;
        assert_eq!(refused.status, 400, "{}", refused.body);
        assert_eq!(refused.error_param(), Some("amount_to_capture"));
    }
    assert!(provider_calls(&simulator, "capture").is_empty());
    assert_authorised(app, &key, &get(app, &key, &payment).await).await;

    // USD 30.00 of 50.00: the fee is 2.9% of 3,000 (87); 2,000 is released.
    let captured = app
        .post(
            &path(&payment, "capture"),
            &key,
            &json!({"amount_to_capture": 3_000}),
        )
        .await
        .expect(200);
    assert_eq!(captured["status"], "succeeded", "{captured}");
    assert_eq!(captured["amount"], USD_AMOUNT);
    assert_eq!(captured["amount_received"], 3_000);
    assert_eq!(captured["fee"], 87);
    assert_eq!(captured["net"], 2_913);
    assert_eq!(
        provider_calls(&simulator, "capture"),
        vec!["amount_to_capture=3000".to_owned()]
    );
    assert_eq!(balance(app, &key, "usd").await, (2_913, 0));
    let transactions = app.get("/v1/balance_transactions", &key).await.expect(200);
    assert_eq!(transactions["data"][0]["amount"], 3_000);
    assert_eq!(transactions["data"][0]["fee"], 87);
    assert_eq!(app.verify_ledger().await["ok"], true);

    // Refunds reach only what was captured.
    let refused = app
        .post(
            "/v1/refunds",
            &key,
            &json!({"payment": payment["id"], "amount": 3_001}),
        )
        .await;
    assert_eq!(refused.error_param(), Some("amount"));
    let refund = app
        .post("/v1/refunds", &key, &json!({"payment": payment["id"]}))
        .await
        .expect(200);
    assert_eq!(refund["amount"], 3_000);
    assert_eq!(refund["status"], "succeeded", "{refund}");
    assert_eq!(refund["fee_refunded"], 87);
    assert_eq!(balance(app, &key, "usd").await, (0, 0));
    assert_eq!(app.verify_ledger().await["ok"], true);
    simulator.shutdown().await;
}
both_backends!(partial_capture_credits_only_what_was_captured);

async fn canceling_an_authorisation_moves_no_money(app: &TestApp) {
    let (key, receiver, simulator) = stripe_merchant(app, 100).await;
    let payment = authorise(app, &key, "pm_card_visa").await;
    assert_authorised(app, &key, &payment).await;
    let canceled = app
        .post_idempotent(&path(&payment, "cancel"), &key, &json!({}), "cancel-1")
        .await
        .expect(200);
    assert_eq!(canceled["status"], "canceled", "{canceled}");
    assert_eq!(canceled["amount_capturable"], 0);
    assert_eq!(canceled["amount_received"], 0);
    assert_eq!(canceled["failure"], Value::Null);
    assert_eq!(provider_calls(&simulator, "cancel").len(), 1);
    assert_eq!(
        event_for(&receiver, "payment.canceled", &payment).await["status"],
        "canceled"
    );
    // Nothing moved: no balance, no balance transaction.
    assert_eq!(balance(app, &key, "usd").await, (0, 0));
    let transactions = app.get("/v1/balance_transactions", &key).await.expect(200);
    assert_eq!(transactions["data"], json!([]));
    // Capturing (or canceling) it afterwards is refused; Stripe is not asked.
    let refused = app.post(&path(&payment, "capture"), &key, &json!({})).await;
    assert_eq!(refused.status, 409, "{}", refused.body);
    assert_eq!(refused.body["error"]["code"], "payment_unexpected_state");
    assert!(provider_calls(&simulator, "capture").is_empty());
    // Stripe's payment_intent.canceled comes after: it changes nothing.
    let entry = app
        .wait_for_list(
            "/v1/admin/webhooks/inbound?provider=stripe",
            &app.operator_token,
            2,
        )
        .await["data"][0]
        .clone();
    assert_eq!(entry["verdict"], "verified", "{entry}");
    assert_eq!(get(app, &key, &payment).await["status"], "canceled");
    assert_eq!(events(&receiver, "payment.canceled", &payment), 1);

    // With 3-D Secure: authorised once the customer authenticated (by the
    // signed amount_capturable_updated webhook), then canceled.
    let secure = authorise(app, &key, "pm_card_authenticationRequired").await;
    assert_eq!(secure["status"], "requires_action", "{secure}");
    authenticate(&secure, "complete", "before_redirect").await;
    let authorised = get(app, &key, &secure).await;
    assert_authorised(app, &key, &authorised).await;
    assert_eq!(last_inbound(app, "stripe").await["outcome"], "processed");
    app.post(&path(&secure, "cancel"), &key, &json!({}))
        .await
        .expect(200);
    assert_eq!(balance(app, &key, "usd").await, (0, 0));
    assert_eq!(app.verify_ledger().await["ok"], true);
    simulator.shutdown().await;
}
both_backends!(canceling_an_authorisation_moves_no_money);

async fn manual_capture_is_refused_where_it_cannot_work(app: &TestApp) {
    let key = app.test_key().await;
    let pay = |extra: Value| {
        let mut body = json!({"amount": 150_000, "currency": "kes", "method": "sandbox",
            "customer": {"phone": "254700000000"}, "capture_method": "manual"});
        if let (Some(body), Some(extra)) = (body.as_object_mut(), extra.as_object()) {
            body.extend(extra.clone());
        }
        body
    };
    // The sandbox connector holds no authorisation.
    let refused = app.post("/v1/payments", &key, &pay(json!({}))).await;
    assert_eq!(refused.status, 400, "{}", refused.body);
    assert_eq!(refused.error_param(), Some("capture_method"));
    let refused = app
        .post(
            "/v1/payments",
            &key,
            &pay(json!({"capture_method": "later"})),
        )
        .await;
    assert_eq!(refused.error_param(), Some("capture_method"));
    // Paystack's hosted page captures at once.
    let simulator = malipo_simulators::spawn(Provider::Paystack, SimulatorConfig::for_tests(100))
        .await
        .expect("simulator");
    connector_account(app, &key, paystack_account(&simulator)).await;
    let refused = app
        .post(
            "/v1/payments",
            &key,
            &json!({"amount": 500_000, "currency": "ngn", "method": "card",
                "customer": {"email": "ada@example.com"}, "capture_method": "manual"}),
        )
        .await;
    assert_eq!(refused.status, 400, "{}", refused.body);
    assert_eq!(refused.error_param(), Some("capture_method"));
    assert!(simulator.requests().is_empty());
    // Nothing was written.
    let listed = app.get("/v1/payments", &key).await.expect(200);
    assert_eq!(listed["data"], json!([]));
    // An automatic payment has nothing to capture.
    let automatic = app
        .post(
            "/v1/payments",
            &key,
            &pay(json!({"capture_method": "automatic"})),
        )
        .await
        .expect(200);
    assert_eq!(automatic["status"], "succeeded");
    assert_eq!(automatic["amount_received"], 150_000);
    let refused = app
        .post(&path(&automatic, "capture"), &key, &json!({}))
        .await;
    assert_eq!(refused.status, 409, "{}", refused.body);
    assert_eq!(refused.body["error"]["code"], "payment_unexpected_state");
    simulator.shutdown().await;
}
both_backends!(manual_capture_is_refused_where_it_cannot_work);

/// Stripe releases an uncaptured authorisation after 7 days; Malipo
/// expires the payment before (its `expires_at` is moved into the past
/// here): `expired` with `authorization_expired`, nothing moved, and
/// nothing left to capture.
async fn an_uncaptured_authorisation_expires_and_moves_no_money(app: &TestApp) {
    let (key, receiver, simulator) = stripe_merchant(app, 100).await;
    let payment = authorise(app, &key, "pm_card_visa").await;
    assert_authorised(app, &key, &payment).await;
    // Authorised for a little under Stripe's 7 days.
    let seven_days = 7 * 24 * 3600;
    let window = payment["expires_at"].as_i64().expect("expires_at")
        - payment["updated"].as_i64().expect("updated");
    assert!(
        (seven_days - 3_700..seven_days).contains(&window),
        "{window}"
    );
    let id = payment["id"].as_str().expect("id");
    {
        let store = app.gateway().store().clone();
        let mut tx = store.begin().await.expect("tx");
        let mut conn = tx.conn();
        let mut record = conn
            .payment_by_id_for_update(id)
            .await
            .expect("read")
            .expect("payment");
        record.payment.expires_at = 1;
        conn.update_payment(&record).await.expect("write");
        tx.commit().await.expect("commit");
    }
    let expired = app
        .wait_for_payment(&key, id, |p| p["status"] != "requires_capture")
        .await;
    assert_eq!(expired["status"], "expired", "{expired}");
    assert_eq!(expired["failure"]["code"], "authorization_expired");
    assert_eq!(expired["amount_capturable"], 0);
    event_for(&receiver, "payment.expired", &payment).await;
    assert_eq!(balance(app, &key, "usd").await, (0, 0));
    let refused = app.post(&path(&payment, "capture"), &key, &json!({})).await;
    assert_eq!(refused.status, 409, "{}", refused.body);
    assert!(provider_calls(&simulator, "capture").is_empty());
    assert_eq!(app.verify_ledger().await["ok"], true);
    simulator.shutdown().await;
}
both_backends!(an_uncaptured_authorisation_expires_and_moves_no_money);
