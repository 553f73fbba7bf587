use crate::both_backends;
use crate::helpers::{TestApp, test_config};
use malipo::config::Config;
use serde_json::{Value, json};

fn id(value: &Value) -> &str {
    value["id"].as_str().expect("id")
}

async fn sandbox_numbers_decide_the_outcome(app: &TestApp) {
    let key = app.test_key().await;

    let paid = app.pay(&key, 10_000, "+254700000000").await;
    assert_eq!(paid["object"], "payment");
    assert_eq!(paid["status"], "succeeded");
    assert_eq!(paid["currency"], "kes");
    assert_eq!(paid["connector"], "sandbox");
    assert_eq!(paid["customer"]["phone"], "254700000000");
    assert_eq!(paid["fee"], 290, "default fee 2.9%");
    assert_eq!(paid["net"], 9_710);
    assert!(id(&paid).starts_with("pay_"));

    let declined = app.pay(&key, 1_000, "254700000002").await;
    assert_eq!(declined["status"], "failed");
    assert_eq!(declined["failure"]["code"], "insufficient_funds");

    let later = app.pay(&key, 1_000, "254700000003").await;
    assert_eq!(later["status"], "processing");
    assert_eq!(later["next_action"]["type"], "phone_prompt");
    let later = app
        .wait_for_payment(&key, id(&later), |p| p["status"] != "processing")
        .await;
    assert_eq!(later["status"], "succeeded");
    assert_eq!(later["next_action"], Value::Null);

    let refused = app.pay(&key, 1_000, "254700000004").await;
    assert_eq!(refused["status"], "processing");
    let refused = app
        .wait_for_payment(&key, id(&refused), |p| p["status"] != "processing")
        .await;
    assert_eq!(refused["status"], "failed");
    assert_eq!(refused["failure"]["code"], "cancelled_by_user");

    let other = app.pay(&key, 1_000, "254711223344").await;
    assert_eq!(other["status"], "succeeded");

    // While 0003 was processing its net was pending; now all is available:
    // 9,710 + 971 + 971.
    let balance = app.get("/v1/balance", &key).await.expect(200);
    assert_eq!(
        balance["available"],
        json!([{"currency": "kes", "amount": 11_652}])
    );
    assert_eq!(
        balance["pending"],
        json!([{"currency": "kes", "amount": 0}])
    );
    assert_eq!(app.verify_ledger().await["ok"], true);
}
both_backends!(sandbox_numbers_decide_the_outcome);

async fn processing_funds_are_pending_in_the_balance(app: &TestApp) {
    let key = app.test_key().await;
    let waiting = app.pay(&key, 1_000, "254700000005").await;
    assert_eq!(waiting["status"], "processing");
    let balance = app.get("/v1/balance", &key).await.expect(200);
    assert_eq!(
        balance["pending"],
        json!([{"currency": "kes", "amount": 971}])
    );
    assert_eq!(
        balance["available"],
        json!([{"currency": "kes", "amount": 0}])
    );
    // It can't be canceled while the provider holds it.
    let cancel = app
        .post(
            &format!("/v1/payments/{}/cancel", id(&waiting)),
            &key,
            &json!({}),
        )
        .await;
    assert_eq!(cancel.status, 409);
    assert_eq!(cancel.body["error"]["code"], "payment_unexpected_state");
}
both_backends!(processing_funds_are_pending_in_the_balance);

fn quick_expiry() -> Config {
    Config {
        sandbox_payment_expiry_seconds: 1,
        ..test_config()
    }
}

async fn unfinished_payments_expire(app: &TestApp) {
    let key = app.test_key().await;
    let waiting = app.pay(&key, 1_000, "254700000005").await;
    assert_eq!(waiting["status"], "processing");
    let expired = app
        .wait_for_payment(&key, id(&waiting), |p| p["status"] == "expired")
        .await;
    assert_eq!(expired["status"], "expired");
    assert_eq!(expired["failure"]["code"], "expired");
    let balance = app.get("/v1/balance", &key).await.expect(200);
    assert_eq!(
        balance["pending"],
        json!([{"currency": "kes", "amount": 0}]),
        "the reservation was voided"
    );
    assert_eq!(app.verify_ledger().await["ok"], true);
}
both_backends!(unfinished_payments_expire, super::quick_expiry());

async fn confirm_later_and_cancel(app: &TestApp) {
    let key = app.test_key().await;
    let body = json!({"amount": 500, "currency": "UGX", "method": "sandbox", "confirm": false,
        "customer": {"phone": "256770000000"}, "reference": "order-17", "description": "Two mangoes",
        "metadata": {"cart": "42"}});
    let draft = app.post("/v1/payments", &key, &body).await.expect(200);
    assert_eq!(draft["status"], "requires_confirmation");
    assert_eq!(draft["currency"], "ugx");
    assert_eq!(draft["metadata"], json!({"cart": "42"}));
    let confirmed = app
        .post(
            &format!("/v1/payments/{}/confirm", id(&draft)),
            &key,
            &json!({}),
        )
        .await
        .expect(200);
    assert_eq!(confirmed["status"], "succeeded");
    let again = app
        .post(
            &format!("/v1/payments/{}/confirm", id(&draft)),
            &key,
            &json!({}),
        )
        .await;
    assert_eq!(again.status, 409);

    let draft = app.post("/v1/payments", &key, &body).await.expect(200);
    let canceled = app
        .post(
            &format!("/v1/payments/{}/cancel", id(&draft)),
            &key,
            &json!({}),
        )
        .await
        .expect(200);
    assert_eq!(canceled["status"], "canceled");
    let cancel_again = app
        .post(
            &format!("/v1/payments/{}/cancel", id(&draft)),
            &key,
            &json!({}),
        )
        .await;
    assert_eq!(cancel_again.status, 409);
    assert!(
        cancel_again.body["error"]["message"]
            .as_str()
            .expect("message")
            .contains("canceled")
    );
    let confirm_canceled = app
        .post(
            &format!("/v1/payments/{}/confirm", id(&draft)),
            &key,
            &json!({}),
        )
        .await;
    assert_eq!(confirm_canceled.status, 409);
    let cancel_succeeded = app
        .post(
            &format!("/v1/payments/{}/cancel", id(&confirmed)),
            &key,
            &json!({}),
        )
        .await;
    assert_eq!(cancel_succeeded.status, 409);
    assert_eq!(
        app.post("/v1/payments/pay_doesnotexist/confirm", &key, &json!({}))
            .await
            .status,
        404
    );
}
both_backends!(confirm_later_and_cancel);

async fn lists_paginate_newest_first_and_filter(app: &TestApp) {
    let key = app.test_key().await;
    let mut ids = Vec::new();
    for index in 0..12 {
        let phone = if index % 3 == 0 {
            "254700000002"
        } else {
            "254700000000"
        };
        let body = json!({"amount": 100 + index, "currency": "kes", "method": "sandbox",
            "customer": {"phone": phone}, "reference": format!("order-{}", index % 4)});
        ids.push(id(&app.post("/v1/payments", &key, &body).await.expect(200)).to_owned());
    }
    ids.reverse(); // newest first

    let first = app.get("/v1/payments?limit=5", &key).await.expect(200);
    let page_ids: Vec<_> = first["data"]
        .as_array()
        .expect("data")
        .iter()
        .map(|p| id(p).to_owned())
        .collect();
    assert_eq!(page_ids, ids[0..5]);
    assert_eq!(first["has_more"], true);

    // A payment created now must not disturb the next page.
    app.pay(&key, 999, "254700000000").await;
    let second = app
        .get(
            &format!("/v1/payments?limit=5&starting_after={}", ids[4]),
            &key,
        )
        .await
        .expect(200);
    let page_ids: Vec<_> = second["data"]
        .as_array()
        .expect("data")
        .iter()
        .map(|p| id(p).to_owned())
        .collect();
    assert_eq!(page_ids, ids[5..10]);
    let last = app
        .get(
            &format!("/v1/payments?limit=5&starting_after={}", ids[9]),
            &key,
        )
        .await
        .expect(200);
    assert_eq!(last["data"].as_array().expect("data").len(), 2);
    assert_eq!(last["has_more"], false);

    let before = app
        .get(
            &format!("/v1/payments?limit=3&ending_before={}", ids[5]),
            &key,
        )
        .await
        .expect(200);
    let page_ids: Vec<_> = before["data"]
        .as_array()
        .expect("data")
        .iter()
        .map(|p| id(p).to_owned())
        .collect();
    assert_eq!(page_ids, ids[2..5]);
    assert_eq!(before["has_more"], true);

    let failed = app
        .get("/v1/payments?status=failed&limit=100", &key)
        .await
        .expect(200);
    assert_eq!(failed["data"].as_array().expect("data").len(), 4);
    let by_reference = app
        .get("/v1/payments?reference=order-1&limit=100", &key)
        .await
        .expect(200);
    assert_eq!(by_reference["data"].as_array().expect("data").len(), 3);
    let future = app
        .get("/v1/payments?created[gte]=4102444800", &key)
        .await
        .expect(200);
    assert_eq!(future["data"].as_array().expect("data").len(), 0);
    let past = app
        .get("/v1/payments?created[lte]=4102444800&limit=100", &key)
        .await
        .expect(200);
    assert_eq!(past["data"].as_array().expect("data").len(), 13);

    for (query, param) in [
        ("limit=0", "limit"),
        ("limit=101", "limit"),
        ("limit=abc", "limit"),
        ("status=bogus", "status"),
    ] {
        let response = app.get(&format!("/v1/payments?{query}"), &key).await;
        assert_eq!(response.status, 400, "{query}");
        assert_eq!(response.error_param(), Some(param), "{query}");
    }
}
both_backends!(lists_paginate_newest_first_and_filter);

async fn every_change_writes_its_event(app: &TestApp) {
    let (merchant_id, key, _) = app.merchant().await;
    let paid = app.pay(&key, 1_000, "254700000003").await;
    app.wait_for_payment(&key, id(&paid), |p| p["status"] == "succeeded")
        .await;
    app.post(
        "/v1/refunds",
        &key,
        &json!({"payment": id(&paid), "amount": 100}),
    )
    .await
    .expect(200);
    let store = app_store(app);
    let mut reader = store.reader().await.expect("reader");
    let types = reader
        .conn()
        .event_types_for(&merchant_id)
        .await
        .expect("events");
    assert_eq!(
        types,
        [
            "payment.created",
            "payment.processing",
            "payment.succeeded",
            "refund.created",
            "refund.succeeded"
        ]
    );
}
both_backends!(every_change_writes_its_event);

fn app_store(app: &TestApp) -> malipo_store::Store {
    app.gateway().store().clone()
}

/// First payments create the ledger and sandbox accounts they need; many at
/// once, for several merchants sharing the clearing and fee accounts, must
/// neither deadlock nor create an account twice.
async fn concurrent_first_payments_create_accounts_once(app: &TestApp) {
    let mut keys = Vec::new();
    for _ in 0..4 {
        keys.push(app.test_key().await);
    }
    let attempts = (0..40).map(|index| {
        let key = keys[index % keys.len()].clone();
        async move {
            let phone = if index % 5 == 0 { "254700000003" } else { "254700000000" };
            app.post(
                "/v1/payments",
                &key,
                &json!({"amount": 1_000, "currency": "kes", "method": "sandbox", "customer": {"phone": phone}}),
            )
            .await
        }
    });
    let responses = futures::future::join_all(attempts).await;
    for response in &responses {
        assert_eq!(response.status, 200, "{}", response.body);
    }
    for key in &keys {
        let accounts = app.get("/v1/connector_accounts", key).await.expect(200);
        assert_eq!(
            accounts["data"].as_array().expect("data").len(),
            1,
            "one sandbox account per merchant"
        );
    }
    assert_eq!(app.verify_ledger().await["ok"], true);
}
both_backends!(concurrent_first_payments_create_accounts_once);
