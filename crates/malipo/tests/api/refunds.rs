use crate::both_backends;
use crate::helpers::TestApp;
use serde_json::json;

async fn partial_and_full_refunds_reverse_the_ledger(app: &TestApp) {
    let key = app.test_key().await;
    let payment = app.pay(&key, 10_000, "254700000000").await;
    let payment_id = payment["id"].as_str().expect("id");
    assert_eq!(payment["fee"], 290);

    let partial = app
        .post(
            "/v1/refunds",
            &key,
            &json!({"payment": payment_id, "amount": 2_500, "reason": "requested_by_customer"}),
        )
        .await
        .expect(200);
    assert_eq!(partial["object"], "refund");
    assert_eq!(partial["status"], "succeeded");
    assert_eq!(partial["amount"], 2_500);
    assert_eq!(
        partial["fee_refunded"], 72,
        "290 * 2500 / 10000, rounded down"
    );
    assert!(partial["id"].as_str().expect("id").starts_with("re_"));

    let after = app
        .get(&format!("/v1/payments/{payment_id}"), &key)
        .await
        .expect(200);
    assert_eq!(after["amount_refunded"], 2_500);

    let too_much = app
        .post(
            "/v1/refunds",
            &key,
            &json!({"payment": payment_id, "amount": 7_501}),
        )
        .await;
    assert_eq!(too_much.status, 400);
    assert_eq!(too_much.error_param(), Some("amount"));

    // No amount: the rest. The last refund returns exactly the fee left.
    let rest = app
        .post("/v1/refunds", &key, &json!({"payment": payment_id}))
        .await
        .expect(200);
    assert_eq!(rest["amount"], 7_500);
    assert_eq!(rest["fee_refunded"], 218);
    let done = app
        .post("/v1/refunds", &key, &json!({"payment": payment_id}))
        .await;
    assert_eq!(done.status, 409);
    assert_eq!(done.body["error"]["code"], "payment_already_refunded");

    let balance = app.get("/v1/balance", &key).await.expect(200);
    assert_eq!(
        balance["available"],
        json!([{"currency": "kes", "amount": 0}])
    );

    let listed = app
        .get(&format!("/v1/refunds?payment={payment_id}"), &key)
        .await
        .expect(200);
    assert_eq!(listed["data"].as_array().expect("data").len(), 2);
    let fetched = app
        .get(
            &format!("/v1/refunds/{}", partial["id"].as_str().expect("id")),
            &key,
        )
        .await
        .expect(200);
    assert_eq!(fetched, partial);

    let entries = app
        .get("/v1/balance_transactions?limit=10", &key)
        .await
        .expect(200);
    let entries = entries["data"].as_array().expect("data");
    assert_eq!(entries.len(), 3);
    assert_eq!(entries[2]["type"], "payment");
    assert_eq!(entries[2]["net"], 9_710);
    assert_eq!(entries[1]["type"], "refund");
    assert_eq!(entries[1]["amount"], -2_500);
    assert_eq!(entries[1]["net"], -2_428);
    let net_sum: i64 = entries
        .iter()
        .map(|entry| entry["net"].as_i64().expect("net"))
        .sum();
    assert_eq!(net_sum, 0);
    assert_eq!(app.verify_ledger().await["ok"], true);
}
both_backends!(partial_and_full_refunds_reverse_the_ledger);

async fn only_succeeded_payments_can_be_refunded(app: &TestApp) {
    let key = app.test_key().await;
    let failed = app.pay(&key, 1_000, "254700000002").await;
    let refused = app
        .post("/v1/refunds", &key, &json!({"payment": failed["id"]}))
        .await;
    assert_eq!(refused.status, 409);
    assert_eq!(refused.body["error"]["code"], "payment_not_refundable");
    assert_eq!(refused.error_param(), Some("payment"));
    let missing = app
        .post(
            "/v1/refunds",
            &key,
            &json!({"payment": "pay_01m89hft5necta8qdefc9yp7sa"}),
        )
        .await;
    assert_eq!(missing.status, 404);
    let no_payment = app.post("/v1/refunds", &key, &json!({})).await;
    assert_eq!(no_payment.status, 400);
    assert_eq!(no_payment.error_param(), Some("payment"));
    let bad_reason = app
        .post(
            "/v1/refunds",
            &key,
            &json!({"payment": failed["id"], "reason": "because"}),
        )
        .await;
    assert_eq!(bad_reason.error_param(), Some("reason"));
}
both_backends!(only_succeeded_payments_can_be_refunded);

async fn concurrent_refunds_never_over_refund(app: &TestApp) {
    let key = app.test_key().await;
    let payment = app.pay(&key, 1_000, "254700000000").await;
    let payment_id = payment["id"].as_str().expect("id").to_owned();
    let attempts = (0..25).map(|_| {
        let key = key.clone();
        let payment_id = payment_id.clone();
        async move {
            app.post(
                "/v1/refunds",
                &key,
                &json!({"payment": payment_id, "amount": 100}),
            )
            .await
        }
    });
    let responses = futures::future::join_all(attempts).await;
    let succeeded = responses
        .iter()
        .filter(|response| response.status == 200)
        .count();
    assert_eq!(succeeded, 10, "exactly the amount can be refunded");
    assert!(responses.iter().all(|response| response.status == 200
        || response.status == 400
        || response.status == 409));
    let after = app
        .get(&format!("/v1/payments/{payment_id}"), &key)
        .await
        .expect(200);
    assert_eq!(after["amount_refunded"], 1_000);
    assert_eq!(app.verify_ledger().await["ok"], true);
}
both_backends!(concurrent_refunds_never_over_refund);
