use crate::both_backends;
use crate::helpers::TestApp;
use serde_json::json;

async fn a_key_replays_the_first_response(app: &TestApp) {
    let key = app.test_key().await;
    let body = json!({"amount": 1_000, "currency": "kes", "method": "sandbox", "customer": {"phone": "254700000000"}});
    let first = app
        .post_idempotent("/v1/payments", &key, &body, "order-1")
        .await;
    assert_eq!(first.status, 200);
    assert!(first.headers.get("idempotent-replayed").is_none());
    let again = app
        .post_idempotent("/v1/payments", &key, &body, "order-1")
        .await;
    assert_eq!(again.status, 200);
    assert_eq!(again.body, first.body);
    assert_eq!(
        again
            .headers
            .get("idempotent-replayed")
            .expect("replay header"),
        "true"
    );

    let other = json!({"amount": 2_000, "currency": "kes", "method": "sandbox"});
    let mismatch = app
        .post_idempotent("/v1/payments", &key, &other, "order-1")
        .await;
    assert_eq!(mismatch.status, 400);
    assert_eq!(mismatch.body["error"]["type"], "idempotency_error");

    // Errors are replayed too.
    let invalid = json!({"amount": 0, "currency": "kes", "method": "sandbox"});
    let refused = app
        .post_idempotent("/v1/payments", &key, &invalid, "order-2")
        .await;
    assert_eq!(refused.status, 400);
    let refused_again = app
        .post_idempotent("/v1/payments", &key, &invalid, "order-2")
        .await;
    assert_eq!(refused_again.status, 400);
    assert_eq!(refused_again.body, refused.body);

    // Keys are per merchant: another merchant's same key is independent.
    let stranger = app.test_key().await;
    let theirs = app
        .post_idempotent("/v1/payments", &stranger, &body, "order-1")
        .await
        .expect(200);
    assert_ne!(theirs["id"], first.body["id"]);

    let listed = app.get("/v1/payments", &key).await.expect(200);
    assert_eq!(listed["data"].as_array().expect("data").len(), 1);

    let too_long = "k".repeat(256);
    let refused = app
        .post_idempotent("/v1/payments", &key, &body, &too_long)
        .await;
    assert_eq!(refused.status, 400);
    assert_eq!(refused.error_param(), Some("Idempotency-Key"));
}
both_backends!(a_key_replays_the_first_response);

async fn fifty_parallel_requests_with_one_key_create_one_payment(app: &TestApp) {
    let key = app.test_key().await;
    let body = json!({"amount": 1_000, "currency": "kes", "method": "sandbox", "customer": {"phone": "254700000000"}});
    let attempts = (0..50).map(|_| app.post_idempotent("/v1/payments", &key, &body, "checkout-7"));
    let responses = futures::future::join_all(attempts).await;
    let ids: std::collections::BTreeSet<_> = responses
        .iter()
        .filter(|response| response.status == 200)
        .map(|response| response.body["id"].as_str().expect("id").to_owned())
        .collect();
    assert_eq!(ids.len(), 1, "every success is the same payment");
    for response in &responses {
        assert!(
            response.status == 200
                || (response.status == 409
                    && response.body["error"]["type"] == "idempotency_error"),
            "{} {}",
            response.status,
            response.body
        );
    }
    let listed = app.get("/v1/payments", &key).await.expect(200);
    assert_eq!(listed["data"].as_array().expect("data").len(), 1);
}
both_backends!(fifty_parallel_requests_with_one_key_create_one_payment);
