//! Flutterwave cards end to end against the local simulator: a `card`
//! payment through a merchant's Flutterwave account is `requires_action`
//! with a redirect to the hosted page; the customer pays there; the payment
//! succeeds only once `GET /v3/transactions/verify_by_reference` says so
//! (with its amount and currency), whether the signed `charge.completed`
//! webhook (`verif-hash` or `flutterwave-signature`) comes before the
//! customer is back or the poll finds it first. A decline fails with its
//! code, a refund settles at once, and a webhook with a bad signature is
//! refused and changes nothing. The ledger verifies after each.

use crate::both_backends;
use crate::cards::{RETURN_URL, events, get, settled, submit_hosted_page};
use crate::helpers::{Receiver, TestApp};
use crate::mtn_momo::{
    balance, connector_account, event_for, last_inbound, merchant_with_receiver,
};
use malipo_simulators::flutterwave::{CARD_INSUFFICIENT_FUNDS, CARD_SUCCESS};
use malipo_simulators::{FlutterwaveWebhookHeaders, Provider, RunningSimulator, SimulatorConfig};
use serde_json::{Value, json};

/// NGN 5,000 in kobo; the default 2.9% fee is 14,500.
const AMOUNT: i64 = 500_000;
const NET: i64 = 485_500;

/// A merchant with a Flutterwave account on a new simulator whose
/// dashboard sends `charge.completed` to the account's hook URL with
/// `headers`; answers (key, receiver, simulator, account id).
async fn flutterwave_merchant(
    app: &TestApp,
    callback_delay_ms: u64,
    headers: FlutterwaveWebhookHeaders,
) -> (String, Receiver, RunningSimulator, String) {
    let mut config = SimulatorConfig::for_tests(callback_delay_ms);
    config.flutterwave.webhook_headers = headers;
    let simulator = malipo_simulators::spawn(Provider::Flutterwave, config)
        .await
        .expect("simulator");
    let (key, receiver) = merchant_with_receiver(app).await;
    let flutterwave = &simulator.config().flutterwave;
    let account = connector_account(
        app,
        &key,
        json!({"provider": "flutterwave", "name": "Flutterwave NG",
            "webhook_secret": flutterwave.secret_hash,
            "credentials": {"secret_key": flutterwave.secret_key, "base_url": simulator.base_url()}}),
    )
    .await;
    simulator
        .set_callback_url(&format!("{}/v1/hooks/flutterwave/{account}", app.base))
        .expect("webhook url");
    (key, receiver, simulator, account)
}

/// A card payment: `requires_action` with a redirect to the hosted page.
async fn pay_by_card(app: &TestApp, key: &str) -> Value {
    let payment = app
        .post(
            "/v1/payments",
            key,
            &json!({"amount": AMOUNT, "currency": "ngn", "method": "card",
                "customer": {"email": "ada@example.com", "name": "Ada"}, "return_url": RETURN_URL}),
        )
        .await
        .expect(200);
    assert_eq!(payment["status"], "requires_action", "{payment}");
    assert_eq!(payment["connector"], "flutterwave");
    assert_eq!(payment["next_action"]["type"], "redirect", "{payment}");
    assert!(
        payment["next_action"]["url"]
            .as_str()
            .expect("url")
            .contains("/checkout/")
    );
    payment
}

/// The customer pays on Flutterwave's hosted page: answers where it sends them.
async fn pay_on_page(payment: &Value, card: &str, webhook: &str) -> String {
    submit_hosted_page(payment, CARD_SUCCESS, card, webhook).await
}

fn verify_calls(simulator: &RunningSimulator) -> usize {
    simulator
        .requests()
        .iter()
        .filter(|request| {
            request
                .path
                .starts_with("/v3/transactions/verify_by_reference")
        })
        .count()
}

async fn flutterwave_webhook_before_the_redirect_is_confirmed_by_verify(app: &TestApp) {
    let (key, receiver, simulator, _) =
        flutterwave_merchant(app, 100, FlutterwaveWebhookHeaders::VerifHashOnly).await;
    let payment = pay_by_card(app, &key).await;
    // Flutterwave Standard: the amount in major units, exactly; the
    // payment id as tx_ref; no card data (Malipo has none).
    let create = simulator.requests()[0].json().expect("json");
    assert_eq!(create["amount"], "5000");
    assert_eq!(create["currency"], "NGN");
    assert_eq!(create["tx_ref"], payment["id"]);
    assert_eq!(create["redirect_url"], RETURN_URL);
    assert_eq!(create["payment_options"], "card");

    let location = pay_on_page(&payment, CARD_SUCCESS, "before_redirect").await;
    assert!(
        location.starts_with(&format!("{RETURN_URL}?status=successful&tx_ref=pay_")),
        "{location}"
    );
    // The webhook (verif-hash) came first, and only named the payment:
    // Flutterwave's verify decided.
    let done = get(app, &key, &payment).await;
    assert_eq!(done["status"], "succeeded", "{done}");
    assert!(verify_calls(&simulator) >= 1);
    let entry = last_inbound(app, "flutterwave").await;
    assert_eq!(entry["verdict"], "verified", "{entry}");
    assert_eq!(entry["outcome"], "processed", "{entry}");
    event_for(&receiver, "payment.succeeded", &payment).await;
    assert_eq!(balance(app, &key, "ngn").await, (NET, 0));
    assert_eq!(app.verify_ledger().await["ok"], true);
    simulator.shutdown().await;
}
both_backends!(flutterwave_webhook_before_the_redirect_is_confirmed_by_verify);

async fn flutterwave_redirect_before_webhook_is_settled_by_the_poll(app: &TestApp) {
    // The webhook (flutterwave-signature only) comes 6 s after the
    // redirect: the verify poll (after 3 s) settles the payment first.
    let (key, receiver, simulator, _) =
        flutterwave_merchant(app, 6_000, FlutterwaveWebhookHeaders::SignatureOnly).await;
    let payment = pay_by_card(app, &key).await;
    pay_on_page(&payment, CARD_SUCCESS, "after_redirect").await;
    // Back at the shop, nothing is trusted yet.
    assert_eq!(get(app, &key, &payment).await["status"], "requires_action");
    let done = settled(app, &key, &payment).await;
    assert_eq!(done["status"], "succeeded", "{done}");
    // Then the late webhook: verified, nothing changes.
    let entry = app
        .wait_for_list(
            "/v1/admin/webhooks/inbound?provider=flutterwave",
            &app.operator_token,
            1,
        )
        .await["data"][0]
        .clone();
    assert_eq!(entry["verdict"], "verified", "{entry}");
    event_for(&receiver, "payment.succeeded", &payment).await;
    assert_eq!(events(&receiver, "payment.succeeded", &payment), 1);
    assert_eq!(balance(app, &key, "ngn").await, (NET, 0));
    assert_eq!(app.verify_ledger().await["ok"], true);
    simulator.shutdown().await;
}
both_backends!(flutterwave_redirect_before_webhook_is_settled_by_the_poll);

async fn flutterwave_decline_fails_with_its_code(app: &TestApp) {
    let (key, receiver, simulator, _) =
        flutterwave_merchant(app, 100, FlutterwaveWebhookHeaders::Both).await;
    let payment = pay_by_card(app, &key).await;
    let location = pay_on_page(&payment, CARD_INSUFFICIENT_FUNDS, "before_redirect").await;
    assert!(location.contains("status=failed"), "{location}");
    let done = settled(app, &key, &payment).await;
    assert_eq!(done["status"], "failed", "{done}");
    assert_eq!(done["failure"]["code"], "insufficient_funds");
    assert_eq!(
        event_for(&receiver, "payment.failed", &payment).await["failure"],
        done["failure"]
    );
    assert_eq!(balance(app, &key, "ngn").await, (0, 0));
    assert_eq!(app.verify_ledger().await["ok"], true);
    simulator.shutdown().await;
}
both_backends!(flutterwave_decline_fails_with_its_code);

async fn flutterwave_refund_settles_at_once(app: &TestApp) {
    let (key, receiver, simulator, _) =
        flutterwave_merchant(app, 100, FlutterwaveWebhookHeaders::Both).await;
    let payment = pay_by_card(app, &key).await;
    pay_on_page(&payment, CARD_SUCCESS, "before_redirect").await;
    assert_eq!(get(app, &key, &payment).await["status"], "succeeded");
    // NGN 1,000 of 5,000: the fee comes back in proportion (2,900 of 14,500).
    let refund = app
        .post(
            "/v1/refunds",
            &key,
            &json!({"payment": payment["id"], "amount": 100_000}),
        )
        .await
        .expect(200);
    assert_eq!(refund["status"], "succeeded", "{refund}");
    assert_eq!(refund["fee_refunded"], 2_900);
    let call = simulator
        .requests()
        .into_iter()
        .find(|request| request.path.ends_with("/refund"))
        .expect("refund call");
    assert!(call.path.starts_with("/v3/transactions/"), "{}", call.path);
    assert_eq!(call.json().expect("json")["amount"], "1000");
    event_for(&receiver, "refund.succeeded", &refund).await;
    assert_eq!(balance(app, &key, "ngn").await, (NET - 97_100, 0));
    assert_eq!(app.verify_ledger().await["ok"], true);
    simulator.shutdown().await;
}
both_backends!(flutterwave_refund_settles_at_once);

async fn flutterwave_webhook_with_a_bad_signature_changes_nothing(app: &TestApp) {
    let (key, _receiver, simulator, account) =
        flutterwave_merchant(app, 100, FlutterwaveWebhookHeaders::Both).await;
    let payment = pay_by_card(app, &key).await;
    let body = json!({"event": "charge.completed", "data": {"id": 1, "tx_ref": payment["id"],
        "status": "successful", "amount": 5000, "currency": "NGN"}});
    let hook = format!("/v1/hooks/flutterwave/{account}");
    for headers in [
        vec![("verif-hash", "not-the-secret-hash")],
        vec![(
            "flutterwave-signature",
            "Ms57A29vlXGh3MatCH8yIS5+FOnDUK9W07WSrsn+Kt4=",
        )],
        vec![],
    ] {
        let refused = app
            .request(reqwest::Method::POST, &hook, "", Some(&body), &headers)
            .await;
        assert_eq!(refused.status, 401, "{headers:?}: {}", refused.body);
        let entry = last_inbound(app, "flutterwave").await;
        assert_ne!(entry["verdict"], "verified", "{entry}");
        assert_eq!(entry["outcome"], "rejected", "{entry}");
    }
    // Nothing changed.
    assert_eq!(get(app, &key, &payment).await["status"], "requires_action");
    assert_eq!(balance(app, &key, "ngn").await, (0, 0));
    assert_eq!(app.verify_ledger().await["ok"], true);
    simulator.shutdown().await;
}
both_backends!(flutterwave_webhook_with_a_bad_signature_changes_nothing);
