//! Stripe's manual capture and Flutterwave's hosted flow, on the wire.

use crate::support::{Receiver, answer, client, simulator};
use malipo_simulators::Provider;
use serde_json::Value;

async fn stripe_post(base: &str, path: &str, form: &str) -> (u16, Value) {
    let response = client()
        .post(format!("{base}{path}"))
        .bearer_auth("sk_test_malipo_simulator_stripe_0123456789abcdef")
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form.to_owned())
        .send()
        .await
        .expect("sent");
    answer(response).await
}

#[tokio::test]
async fn stripe_manual_capture_authorises_then_captures_part_or_cancels() {
    let stripe = simulator(Provider::Stripe).await;
    let receiver = Receiver::start().await;
    stripe
        .set_callback_url(&receiver.url("/stripe"))
        .expect("url");
    let base = stripe.base_url();
    let create =
        "amount=5000&currency=usd&payment_method=pm_card_visa&confirm=true&capture_method=manual";
    let (status, intent) = stripe_post(base, "/v1/payment_intents", create).await;
    assert_eq!(status, 200, "{intent}");
    assert_eq!(intent["status"], "requires_capture");
    assert_eq!(intent["amount_capturable"], 5000);
    assert_eq!(intent["amount_received"], 0);
    let id = intent["id"].as_str().expect("id");
    let received = receiver.wait_for(1).await;
    assert_eq!(
        received[0].body["type"],
        "payment_intent.amount_capturable_updated"
    );

    // More than capturable: 400 naming amount_to_capture, nothing changes.
    let (status, error) = stripe_post(
        base,
        &format!("/v1/payment_intents/{id}/capture"),
        "amount_to_capture=5001",
    )
    .await;
    assert_eq!(status, 400, "{error}");
    assert_eq!(error["error"]["param"], "amount_to_capture");
    let (status, captured) = stripe_post(
        base,
        &format!("/v1/payment_intents/{id}/capture"),
        "amount_to_capture=3000",
    )
    .await;
    assert_eq!(status, 200, "{captured}");
    assert_eq!(captured["status"], "succeeded");
    assert_eq!(captured["amount_received"], 3000);
    assert_eq!(captured["amount_capturable"], 0);
    let received = receiver.wait_for(2).await;
    assert_eq!(received[1].body["type"], "payment_intent.succeeded");
    // Captured: neither a second capture nor a cancel.
    let (status, error) = stripe_post(base, &format!("/v1/payment_intents/{id}/capture"), "").await;
    assert_eq!(status, 400);
    assert_eq!(error["error"]["code"], "payment_intent_unexpected_state");
    let (status, _) = stripe_post(base, &format!("/v1/payment_intents/{id}/cancel"), "").await;
    assert_eq!(status, 400);
    // Refunds reach what was received.
    let (status, error) = stripe_post(
        base,
        "/v1/refunds",
        &format!("payment_intent={id}&amount=3001"),
    )
    .await;
    assert_eq!(status, 400, "{error}");

    // Another authorisation, canceled: nothing capturable is left.
    let (_, intent) = stripe_post(base, "/v1/payment_intents", create).await;
    let id = intent["id"].as_str().expect("id");
    let (status, canceled) = stripe_post(
        base,
        &format!("/v1/payment_intents/{id}/cancel"),
        "cancellation_reason=requested_by_customer",
    )
    .await;
    assert_eq!(status, 200, "{canceled}");
    assert_eq!(canceled["status"], "canceled");
    assert_eq!(canceled["amount_capturable"], 0);
    assert_eq!(canceled["cancellation_reason"], "requested_by_customer");
    let (status, error) = stripe_post(base, &format!("/v1/payment_intents/{id}/capture"), "").await;
    assert_eq!(status, 400);
    assert_eq!(error["error"]["code"], "payment_intent_unexpected_state");
    let received = receiver.wait_for(4).await;
    assert_eq!(received[3].body["type"], "payment_intent.canceled");
    stripe.shutdown().await;
}

#[tokio::test]
async fn flutterwave_hosted_payment_verifies_only_once_paid_and_signs_its_webhook() {
    let flutterwave = simulator(Provider::Flutterwave).await;
    let receiver = Receiver::start().await;
    flutterwave
        .set_callback_url(&receiver.url("/flutterwave"))
        .expect("url");
    let base = flutterwave.base_url();
    let config = flutterwave.config().flutterwave.clone();
    let create = client()
        .post(format!("{base}/v3/payments"))
        .bearer_auth(&config.secret_key)
        .json(
            &serde_json::json!({"tx_ref": "order-1", "amount": "100.50", "currency": "NGN",
            "redirect_url": "https://shop.example/done", "payment_options": "card",
            "customer": {"email": "ada@example.com"}}),
        )
        .send()
        .await
        .expect("sent");
    let (status, created) = answer(create).await;
    assert_eq!(status, 200, "{created}");
    assert_eq!(created["message"], "Hosted Link");
    let link = created["data"]["link"].as_str().expect("link").to_owned();
    let verify = || async {
        let response = client()
            .get(format!(
                "{base}/v3/transactions/verify_by_reference?tx_ref=order-1"
            ))
            .bearer_auth(&config.secret_key)
            .send()
            .await
            .expect("sent");
        answer(response).await
    };
    // Not paid yet: Flutterwave has no transaction.
    let (status, body) = verify().await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["status"], "error");

    let browser = reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    let paid = browser
        .post(&link)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!(
            "card_number={}",
            malipo_simulators::flutterwave::CARD_SUCCESS
        ))
        .send()
        .await
        .expect("sent");
    assert_eq!(paid.status().as_u16(), 303, "the customer goes back");
    let location = paid.headers()["location"].to_str().expect("location");
    assert!(
        location.starts_with(
            "https://shop.example/done?status=successful&tx_ref=order-1&transaction_id="
        ),
        "{location}"
    );
    let (status, body) = verify().await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["status"], "successful");
    assert_eq!(body["data"]["amount"], 100.5);
    assert_eq!(body["data"]["currency"], "NGN");
    // The webhook: both headers, over the exact body.
    let received = receiver.wait_for(1).await;
    let webhook = &received[0];
    assert_eq!(webhook.body["event"], "charge.completed");
    assert_eq!(
        webhook.header("verif-hash").as_deref(),
        Some(config.secret_hash.as_str())
    );
    assert_eq!(
        webhook.header("flutterwave-signature"),
        Some(malipo_simulators::flutterwave::signature(
            &config.secret_hash,
            webhook.raw.as_bytes()
        ))
    );
    flutterwave.shutdown().await;
}
