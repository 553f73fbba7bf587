//! Cards end to end against the local Paystack and Stripe simulators.
//! Paystack: a `card` payment is `requires_action` with a redirect to the
//! hosted page, and the customer pays there (Malipo never sees the card);
//! the signed webhook and the verify poll both settle it, in either order,
//! and duplicates change nothing. Stripe: the merchant's `pm_…` token
//! confirms a PaymentIntent at once, a decline fails with its code, 3-D
//! Secure is `requires_action` with a redirect. The ledger and the
//! merchant's webhooks follow.

use crate::both_backends;
use crate::helpers::{Receiver, TestApp};
use crate::mtn_momo::{
    balance, connector_account, event_for, last_inbound, merchant_with_receiver,
};
use malipo_simulators::paystack::{CARD_INSUFFICIENT_FUNDS, CARD_SUCCESS};
use malipo_simulators::{Provider, RunningSimulator, SimulatorConfig};
use serde_json::{Value, json};

pub(crate) const RETURN_URL: &str = "https://shop.example/orders/42/done";
/// NGN 5,000 in kobo; the default 2.9% fee is 14,500.
const AMOUNT: i64 = 500_000;
const NET: i64 = 485_500;

/// A merchant with a card account on a new simulator of `provider` (whose
/// dashboard sends its signed webhooks to the account's hook URL);
/// `account` gives the account's body from the simulator's config.
pub(crate) async fn card_merchant(
    app: &TestApp,
    provider: Provider,
    callback_delay_ms: u64,
    account: impl Fn(&RunningSimulator) -> Value,
) -> (String, Receiver, RunningSimulator) {
    let simulator =
        malipo_simulators::spawn(provider, SimulatorConfig::for_tests(callback_delay_ms))
            .await
            .expect("simulator");
    let (key, receiver) = merchant_with_receiver(app).await;
    let body = account(&simulator);
    let name = body["provider"].as_str().expect("provider").to_owned();
    let account = connector_account(app, &key, body).await;
    simulator
        .set_callback_url(&format!("{}/v1/hooks/{name}/{account}", app.base))
        .expect("webhook url");
    (key, receiver, simulator)
}

pub(crate) fn paystack_account(simulator: &RunningSimulator) -> Value {
    let secret_key = &simulator.config().paystack.secret_key;
    json!({"provider": "paystack", "name": "Paystack NG", "webhook_secret": secret_key,
        "credentials": {"secret_key": secret_key, "base_url": simulator.base_url()}})
}

pub(crate) fn stripe_account(simulator: &RunningSimulator) -> Value {
    let stripe = &simulator.config().stripe;
    json!({"provider": "stripe", "name": "Stripe", "webhook_secret": stripe.webhook_secret,
        "credentials": {"secret_key": stripe.secret_key, "base_url": simulator.base_url()}})
}

/// A merchant whose card account is with Paystack.
pub(crate) async fn paystack_merchant(
    app: &TestApp,
    callback_delay_ms: u64,
) -> (String, Receiver, RunningSimulator) {
    card_merchant(app, Provider::Paystack, callback_delay_ms, paystack_account).await
}

/// A merchant whose card account is with Stripe.
pub(crate) async fn stripe_merchant(
    app: &TestApp,
    callback_delay_ms: u64,
) -> (String, Receiver, RunningSimulator) {
    card_merchant(app, Provider::Stripe, callback_delay_ms, stripe_account).await
}

/// A card payment: `requires_action` with a redirect to the hosted page.
pub(crate) async fn pay_by_card(app: &TestApp, key: &str) -> Value {
    let payment = app
        .post(
            "/v1/payments",
            key,
            &json!({"amount": AMOUNT, "currency": "ngn", "method": "card",
                "customer": {"email": "ada@example.com"}, "return_url": RETURN_URL}),
        )
        .await
        .expect(200);
    assert_eq!(payment["status"], "requires_action", "{payment}");
    assert_eq!(payment["connector"], "paystack");
    assert_eq!(payment["return_url"], RETURN_URL);
    let next_action = &payment["next_action"];
    assert_eq!(next_action["type"], "redirect", "{payment}");
    assert_eq!(next_action["return_url"], RETURN_URL);
    assert!(
        next_action["url"]
            .as_str()
            .expect("url")
            .contains("/checkout/")
    );
    payment
}

/// The customer pays on Paystack's hosted page: answers where it sends them.
pub(crate) async fn pay_on_page(payment: &Value, card: &str, webhook: &str) -> String {
    submit_hosted_page(payment, CARD_SUCCESS, card, webhook).await
}

/// The customer opens a card simulator's hosted page (which must list
/// `listed`, a provider's test card) and pays with `card`, the webhook
/// timed by `webhook`: answers where the page sends them.
pub(crate) async fn submit_hosted_page(
    payment: &Value,
    listed: &str,
    card: &str,
    webhook: &str,
) -> String {
    let url = payment["next_action"]["url"].as_str().expect("url");
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    let page = client
        .get(url)
        .send()
        .await
        .expect("page")
        .text()
        .await
        .expect("html");
    assert!(page.contains(listed), "the page lists the test cards");
    let answer = client
        .post(url)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("card_number={card}&simulate_webhook={webhook}"))
        .send()
        .await
        .expect("submitted");
    answer.headers()["location"]
        .to_str()
        .expect("location")
        .to_owned()
}

pub(crate) async fn get(app: &TestApp, key: &str, payment: &Value) -> Value {
    let id = payment["id"].as_str().expect("id");
    app.get(&format!("/v1/payments/{id}"), key)
        .await
        .expect(200)
}

pub(crate) async fn settled(app: &TestApp, key: &str, payment: &Value) -> Value {
    let id = payment["id"].as_str().expect("id");
    app.wait_for_payment(key, id, |p| p["status"] != "requires_action")
        .await
}

/// How many `event_type` webhooks the merchant got for `payment`.
pub(crate) fn events(receiver: &Receiver, event_type: &str, payment: &Value) -> usize {
    receiver
        .received()
        .iter()
        .filter(|received| {
            let event: Value = serde_json::from_str(&received.body).expect("json");
            event["type"] == event_type && event["data"]["object"]["id"] == payment["id"]
        })
        .count()
}

async fn card_succeeds_by_signed_webhook_before_the_redirect(app: &TestApp) {
    let (key, receiver, simulator) = paystack_merchant(app, 100).await;
    let payment = pay_by_card(app, &key).await;
    // The initialize call carried the amount in kobo and the return URL;
    // Malipo's request holds no card data (it has none).
    let initialize = simulator.requests()[0].json().expect("json");
    assert_eq!(initialize["amount"], AMOUNT);
    assert_eq!(initialize["currency"], "NGN");
    assert_eq!(initialize["callback_url"], RETURN_URL);
    assert_eq!(initialize["channels"], json!(["card"]));

    let location = pay_on_page(&payment, CARD_SUCCESS, "before_redirect").await;
    assert!(
        location.starts_with(&format!("{RETURN_URL}?trxref=pay-")),
        "{location}"
    );
    // The signed webhook came before the customer was sent back.
    let done = get(app, &key, &payment).await;
    assert_eq!(done["status"], "succeeded", "{done}");
    assert_eq!(done["next_action"], Value::Null);
    let entry = last_inbound(app, "paystack").await;
    assert_eq!(entry["verdict"], "verified");
    assert_eq!(entry["outcome"], "processed", "{entry}");
    assert_eq!(
        event_for(&receiver, "payment.succeeded", &payment).await["status"],
        "succeeded"
    );
    assert_eq!(balance(app, &key, "ngn").await, (NET, 0));
    let transactions = app.get("/v1/balance_transactions", &key).await.expect(200);
    assert_eq!(transactions["data"][0]["net"], NET);
    assert_eq!(transactions["data"][0]["source"], payment["id"]);

    // The worker's verify poll comes later and changes nothing.
    tokio::time::sleep(std::time::Duration::from_millis(3_500)).await;
    assert_eq!(events(&receiver, "payment.succeeded", &payment), 1);
    assert_eq!(balance(app, &key, "ngn").await, (NET, 0));
    assert_eq!(app.verify_ledger().await["ok"], true);
    simulator.shutdown().await;
}
both_backends!(card_succeeds_by_signed_webhook_before_the_redirect);

/// A payment canceled while its hosted page stayed open, then paid there:
/// Malipo keeps it canceled and credits nothing, and never silently: the
/// operator is alerted (error log and a metric) to refund at the provider.
async fn card_paid_after_cancel_stays_canceled_and_alerts_the_operator(app: &TestApp) {
    let (key, _receiver, simulator) = paystack_merchant(app, 100).await;
    let payment = pay_by_card(app, &key).await;
    let id = payment["id"].as_str().expect("id");
    let canceled = app
        .post(&format!("/v1/payments/{id}/cancel"), &key, &json!({}))
        .await
        .expect(200);
    assert_eq!(canceled["status"], "canceled", "{canceled}");

    pay_on_page(&payment, CARD_SUCCESS, "before_redirect").await;
    let entry = last_inbound(app, "paystack").await;
    assert_eq!(entry["verdict"], "verified", "{entry}");
    assert_eq!(entry["outcome"], "paid_after_close", "{entry}");
    assert_eq!(get(app, &key, &payment).await["status"], "canceled");
    assert_eq!(balance(app, &key, "ngn").await, (0, 0));
    let metrics = app.get("/metrics", "").await.expect(200);
    let text = metrics.as_str().expect("prometheus text");
    assert!(
        text.lines().any(|line| line
            .starts_with("malipo_payments_paid_after_close_total{connector=\"paystack\"}")),
        "{text}"
    );
    assert_eq!(app.verify_ledger().await["ok"], true);
    simulator.shutdown().await;
}
both_backends!(card_paid_after_cancel_stays_canceled_and_alerts_the_operator);

async fn card_redirect_before_webhook_is_settled_by_verify_and_duplicates_change_nothing(
    app: &TestApp,
) {
    // The webhook comes 6 s after the redirect: the verify poll (after 3 s)
    // settles the payment first.
    let (key, receiver, simulator) = paystack_merchant(app, 6_000).await;
    let late = pay_by_card(app, &key).await;
    pay_on_page(&late, CARD_SUCCESS, "after_redirect").await;
    // Back at the shop, the payment is not trusted yet.
    assert_eq!(get(app, &key, &late).await["status"], "requires_action");
    let done = settled(app, &key, &late).await;
    assert_eq!(done["status"], "succeeded", "{done}");
    assert!(
        simulator
            .requests()
            .iter()
            .any(|request| request.path.starts_with("/transaction/verify/pay-")),
        "settled by verify"
    );
    // Then the late webhook: accepted, nothing changes.
    let entry = app
        .wait_for_list(
            "/v1/admin/webhooks/inbound?provider=paystack",
            &app.operator_token,
            1,
        )
        .await["data"][0]
        .clone();
    assert_eq!(entry["verdict"], "verified", "{entry}");
    assert_eq!(entry["outcome"], "ignored", "{entry}");

    // A webhook delivered twice: the second is a replay.
    let twice = pay_by_card(app, &key).await;
    pay_on_page(&twice, CARD_SUCCESS, "twice").await;
    assert_eq!(get(app, &key, &twice).await["status"], "succeeded");
    let entry = last_inbound(app, "paystack").await;
    assert_eq!(entry["verdict"], "replayed", "{entry}");
    assert_eq!(entry["outcome"], "duplicate");

    for payment in [&late, &twice] {
        event_for(&receiver, "payment.succeeded", payment).await;
        assert_eq!(events(&receiver, "payment.succeeded", payment), 1);
    }
    assert_eq!(balance(app, &key, "ngn").await, (2 * NET, 0));
    assert_eq!(app.verify_ledger().await["ok"], true);
    simulator.shutdown().await;
}
both_backends!(card_redirect_before_webhook_is_settled_by_verify_and_duplicates_change_nothing);

async fn card_declined_fails_with_a_clear_code(app: &TestApp) {
    let (key, receiver, simulator) = paystack_merchant(app, 100).await;
    let payment = pay_by_card(app, &key).await;
    pay_on_page(&payment, CARD_INSUFFICIENT_FUNDS, "before_redirect").await;
    // Paystack sends no webhook for a failed charge: the poll finds it.
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
both_backends!(card_declined_fails_with_a_clear_code);

async fn card_payments_are_checked_before_anything_is_written(app: &TestApp) {
    let key = app.test_key().await;
    let card = |extra: Value| {
        let mut body = json!({"amount": AMOUNT, "currency": "ngn", "method": "card",
            "customer": {"email": "ada@example.com"}});
        if let (Some(body), Some(extra)) = (body.as_object_mut(), extra.as_object()) {
            body.extend(extra.clone());
        }
        body
    };
    // No card account yet.
    let refused = app.post("/v1/payments", &key, &card(json!({}))).await;
    assert_eq!(refused.status, 400);
    assert_eq!(refused.error_param(), Some("method"));
    // return_url: a URL, http(s), bounded.
    for bad in [
        json!("not a url"),
        json!("ftp://shop.example/x"),
        json!(format!("https://shop.example/{}", "a".repeat(2_100))),
    ] {
        let refused = app
            .post("/v1/payments", &key, &card(json!({"return_url": bad})))
            .await;
        assert_eq!(refused.status, 400, "{}", refused.body);
        assert_eq!(refused.error_param(), Some("return_url"));
    }
    let simulator = malipo_simulators::spawn(Provider::Paystack, SimulatorConfig::for_tests(100))
        .await
        .expect("simulator");
    connector_account(app, &key, paystack_account(&simulator)).await;
    // Paystack needs the customer's email, and takes NGN, GHS, KES, ZAR, USD.
    let refused = app
        .post("/v1/payments", &key, &card(json!({"customer": {}})))
        .await;
    assert_eq!(refused.error_param(), Some("customer[email]"));
    let refused = app
        .post("/v1/payments", &key, &card(json!({"currency": "ugx"})))
        .await;
    assert_eq!(refused.error_param(), Some("currency"));
    // A card number is never taken; Paystack takes no token either.
    let refused = app
        .post(
            "/v1/payments",
            &key,
            &card(json!({"payment_method": "4084 0840 8408 4081"})),
        )
        .await;
    assert_eq!(refused.error_param(), Some("payment_method"));
    assert!(
        refused.body["error"]["message"]
            .as_str()
            .expect("message")
            .contains("never takes card numbers")
    );
    let refused = app
        .post(
            "/v1/payments",
            &key,
            &card(json!({"payment_method": "pm_card_visa"})),
        )
        .await;
    assert_eq!(refused.error_param(), Some("payment_method"));
    assert!(simulator.requests().is_empty());
    let listed = app.get("/v1/payments?method=card", &key).await.expect(200);
    assert_eq!(listed["data"], json!([]));
    simulator.shutdown().await;
}
both_backends!(card_payments_are_checked_before_anything_is_written);

/// USD 50.00; the default 2.9% fee is 145.
pub(crate) const USD_AMOUNT: i64 = 5_000;
pub(crate) const USD_NET: i64 = 4_855;

async fn pay_with_token(app: &TestApp, key: &str, token: &str) -> Value {
    app.post(
        "/v1/payments",
        key,
        &json!({"amount": USD_AMOUNT, "currency": "usd", "method": "card",
            "payment_method": token, "return_url": RETURN_URL}),
    )
    .await
    .expect(200)
}

async fn stripe_card_succeeds_at_once_and_its_webhook_changes_nothing(app: &TestApp) {
    let (key, receiver, simulator) = stripe_merchant(app, 100).await;
    let payment = pay_with_token(app, &key, "pm_card_visa").await;
    assert_eq!(payment["status"], "succeeded", "{payment}");
    assert_eq!(payment["connector"], "stripe");
    assert_eq!(payment["payment_method"], "pm_card_visa");
    let request = &simulator.requests()[0];
    assert!(
        request.body.contains("payment_method=pm_card_visa"),
        "{}",
        request.body
    );
    assert_eq!(request.header("idempotency-key"), payment["id"].as_str());
    // The signed payment_intent.succeeded webhook comes after: accepted,
    // nothing changes.
    let entry = app
        .wait_for_list(
            "/v1/admin/webhooks/inbound?provider=stripe",
            &app.operator_token,
            1,
        )
        .await["data"][0]
        .clone();
    assert_eq!(entry["verdict"], "verified", "{entry}");
    assert_eq!(entry["outcome"], "ignored", "{entry}");
    event_for(&receiver, "payment.succeeded", &payment).await;
    assert_eq!(events(&receiver, "payment.succeeded", &payment), 1);
    assert_eq!(balance(app, &key, "usd").await, (USD_NET, 0));
    assert_eq!(app.verify_ledger().await["ok"], true);
    simulator.shutdown().await;
}
both_backends!(stripe_card_succeeds_at_once_and_its_webhook_changes_nothing);

async fn stripe_decline_fails_with_its_decline_code(app: &TestApp) {
    let (key, receiver, simulator) = stripe_merchant(app, 100).await;
    let payment = pay_with_token(app, &key, "pm_card_chargeDeclinedInsufficientFunds").await;
    assert_eq!(payment["status"], "failed", "{payment}");
    assert_eq!(payment["failure"]["code"], "insufficient_funds");
    assert_eq!(
        event_for(&receiver, "payment.failed", &payment).await["failure"],
        payment["failure"]
    );
    let expired = pay_with_token(app, &key, "pm_card_chargeDeclinedExpiredCard").await;
    assert_eq!(expired["failure"]["code"], "expired_card");
    assert_eq!(balance(app, &key, "usd").await, (0, 0));
    assert_eq!(app.verify_ledger().await["ok"], true);
    simulator.shutdown().await;
}
both_backends!(stripe_decline_fails_with_its_decline_code);

/// The customer answers the 3-D Secure page: answers where it sends them.
pub(crate) async fn authenticate(payment: &Value, outcome: &str, webhook: &str) -> String {
    let url = payment["next_action"]["url"].as_str().expect("url");
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    let answer = client
        .post(url)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("outcome={outcome}&simulate_webhook={webhook}"))
        .send()
        .await
        .expect("submitted");
    answer.headers()["location"]
        .to_str()
        .expect("location")
        .to_owned()
}

async fn stripe_three_d_secure_requires_action_then_settles(app: &TestApp) {
    let (key, receiver, simulator) = stripe_merchant(app, 100).await;
    let payment = pay_with_token(app, &key, "pm_card_authenticationRequired").await;
    assert_eq!(payment["status"], "requires_action", "{payment}");
    assert_eq!(payment["next_action"]["type"], "redirect");
    assert_eq!(payment["next_action"]["return_url"], RETURN_URL);
    assert!(
        payment["next_action"]["url"]
            .as_str()
            .expect("url")
            .contains("/3ds/pi_")
    );
    event_for(&receiver, "payment.requires_action", &payment).await;
    assert_eq!(balance(app, &key, "usd").await, (0, 0));
    // Authenticated; the signed webhook arrives before the customer is back.
    let location = authenticate(&payment, "complete", "before_redirect").await;
    assert!(
        location.ends_with("redirect_status=succeeded"),
        "{location}"
    );
    assert_eq!(get(app, &key, &payment).await["status"], "succeeded");
    let entry = last_inbound(app, "stripe").await;
    assert_eq!(entry["outcome"], "processed", "{entry}");
    event_for(&receiver, "payment.succeeded", &payment).await;

    // Failed authentication, webhook lost: the poll finds it.
    let failing = pay_with_token(app, &key, "pm_card_authenticationRequired").await;
    authenticate(&failing, "fail", "lost").await;
    let done = settled(app, &key, &failing).await;
    assert_eq!(done["status"], "failed", "{done}");
    assert_eq!(done["failure"]["code"], "authentication_failed");
    assert_eq!(balance(app, &key, "usd").await, (USD_NET, 0));
    assert_eq!(app.verify_ledger().await["ok"], true);
    simulator.shutdown().await;
}
both_backends!(stripe_three_d_secure_requires_action_then_settles);

async fn card_routing_picks_the_provider_that_fits(app: &TestApp) {
    let (key, _receiver, paystack) = paystack_merchant(app, 100).await;
    let stripe = malipo_simulators::spawn(Provider::Stripe, SimulatorConfig::for_tests(100))
        .await
        .expect("simulator");
    connector_account(app, &key, stripe_account(&stripe)).await;
    // No token: the hosted page (Paystack); a token: Stripe.
    assert_eq!(pay_by_card(app, &key).await["connector"], "paystack");
    let tokened = pay_with_token(app, &key, "pm_card_visa").await;
    assert_eq!(tokened["connector"], "stripe");
    assert_eq!(tokened["status"], "succeeded");
    paystack.shutdown().await;
    stripe.shutdown().await;
}
both_backends!(card_routing_picks_the_provider_that_fits);

/// Refunds `amount` of `payment`; answers the refund.
async fn refund(app: &TestApp, key: &str, payment: &Value, amount: i64) -> Value {
    app.post(
        "/v1/refunds",
        key,
        &json!({"payment": payment["id"], "amount": amount}),
    )
    .await
    .expect(200)
}

async fn card_refunds_settle_through_each_provider(app: &TestApp) {
    // Stripe refunds at once.
    let (key, receiver, stripe) = stripe_merchant(app, 100).await;
    let payment = pay_with_token(app, &key, "pm_card_visa").await;
    let refunded = refund(app, &key, &payment, 1_000).await;
    assert_eq!(refunded["status"], "succeeded", "{refunded}");
    // The fee comes back in proportion: 1,000 of 5,000 returns 29 of 145.
    assert_eq!(refunded["fee_refunded"], 29);
    assert!(
        stripe
            .requests()
            .iter()
            .any(|request| request.path == "/v1/refunds" && request.body.contains("amount=1000"))
    );
    assert_eq!(
        event_for(&receiver, "refund.succeeded", &refunded).await["status"],
        "succeeded"
    );
    assert_eq!(balance(app, &key, "usd").await, (USD_NET - 971, 0));

    // Paystack queues it: pending, then its signed refund.processed webhook.
    let (key, receiver, paystack) = paystack_merchant(app, 100).await;
    let payment = pay_by_card(app, &key).await;
    pay_on_page(&payment, CARD_SUCCESS, "before_redirect").await;
    assert_eq!(get(app, &key, &payment).await["status"], "succeeded");
    let pending = refund(app, &key, &payment, 100_000).await;
    assert_eq!(pending["status"], "pending", "{pending}");
    let settled = event_for(&receiver, "refund.succeeded", &pending).await;
    assert_eq!(settled["fee_refunded"], 2_900);
    let entry = last_inbound(app, "paystack").await;
    assert_eq!(entry["verdict"], "verified", "{entry}");
    assert_eq!(entry["outcome"], "processed", "{entry}");
    assert_eq!(balance(app, &key, "ngn").await, (NET - 97_100, 0));
    assert_eq!(app.verify_ledger().await["ok"], true);
    stripe.shutdown().await;
    paystack.shutdown().await;
}
both_backends!(card_refunds_settle_through_each_provider);
