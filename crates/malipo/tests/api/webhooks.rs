use crate::both_backends;
use crate::helpers::{Receiver, TestApp, test_config, verify_signature_independently};
use malipo::config::Config;
use serde_json::{Value, json};

fn fast_retries() -> Config {
    Config {
        webhook_retry_delays_ms: vec![300, 600],
        ..test_config()
    }
}

async fn endpoint(app: &TestApp, key: &str, url: &str, events: Value) -> Value {
    app.post(
        "/v1/webhook_endpoints",
        key,
        &json!({"url": url, "enabled_events": events}),
    )
    .await
    .expect(200)
}

async fn events_arrive_signed(app: &TestApp) {
    let key = app.test_key().await;
    let receiver = Receiver::start(vec![]).await;
    let created = endpoint(app, &key, &receiver.url, json!(["*"])).await;
    let secret = created["secret"]
        .as_str()
        .expect("secret shown at creation")
        .to_owned();
    assert!(secret.starts_with("whsec_"));
    let listed = app.get("/v1/webhook_endpoints", &key).await.expect(200);
    assert!(
        listed["data"][0].get("secret").is_none(),
        "the secret is never shown again"
    );

    let payment = app.pay(&key, 1_000, "254700000000").await;
    let received = receiver.wait_until(|received| received.len() >= 2).await;
    assert_eq!(
        receiver.event_types(),
        ["payment.created", "payment.succeeded"]
    );
    for delivery in &received {
        assert_eq!(
            verify_signature_independently(&delivery.signature, &delivery.body, &secret),
            1,
            "{}",
            delivery.signature
        );
        assert_eq!(
            verify_signature_independently(&delivery.signature, &delivery.body, "whsec_wrong"),
            0
        );
    }
    let succeeded: Value = serde_json::from_str(&received[1].body).expect("event");
    assert_eq!(succeeded["object"], "event");
    assert!(succeeded["id"].as_str().expect("id").starts_with("evt_"));
    assert_eq!(succeeded["livemode"], false);
    assert_eq!(succeeded["data"]["object"]["id"], payment["id"]);
    assert_eq!(succeeded["data"]["object"]["status"], "succeeded");

    // The same event through the API.
    let id = succeeded["id"].as_str().expect("id");
    assert_eq!(
        app.get(&format!("/v1/events/{id}"), &key).await.expect(200),
        succeeded
    );
    let by_type = app
        .get("/v1/events?type=payment.succeeded", &key)
        .await
        .expect(200);
    assert_eq!(by_type["data"].as_array().expect("data").len(), 1);
    assert_eq!(
        app.get("/v1/events?limit=100", &key).await.expect(200)["data"]
            .as_array()
            .expect("data")
            .len(),
        2
    );
    assert_eq!(app.get("/v1/events/evt_nope", &key).await.status, 404);
    let stranger = app.test_key().await;
    assert_eq!(
        app.get(&format!("/v1/events/{id}"), &stranger).await.status,
        404
    );
}
both_backends!(events_arrive_signed);

async fn failures_retry_on_schedule(app: &TestApp) {
    let key = app.test_key().await;
    let receiver = Receiver::start(vec![500, 500]).await;
    let created = endpoint(app, &key, &receiver.url, json!(["payment.succeeded"])).await;
    app.pay(&key, 1_000, "254700000000").await;
    let received = receiver.wait_until(|received| received.len() >= 3).await;
    assert_eq!(received.len(), 3, "500, 500, then 200");
    assert!(
        received
            .iter()
            .all(|delivery| delivery.body == received[0].body),
        "the same event each time"
    );
    let gaps = [
        received[1].at - received[0].at,
        received[2].at - received[1].at,
    ];
    assert!(
        gaps[0].as_millis() >= 250,
        "first retry after ~300 ms (±10%): {gaps:?}"
    );
    assert!(
        gaps[1].as_millis() >= 500,
        "second retry after ~600 ms (±10%): {gaps:?}"
    );

    let id = created["id"].as_str().expect("id");
    // The receiver answers before the attempt is recorded: wait for the record.
    let attempts = app
        .wait_for_list(&format!("/v1/webhook_endpoints/{id}/deliveries"), &key, 3)
        .await;
    let statuses: Vec<_> = attempts["data"]
        .as_array()
        .expect("data")
        .iter()
        .map(|attempt| attempt["http_status"].clone())
        .collect();
    assert_eq!(
        statuses,
        [json!(200), json!(500), json!(500)],
        "newest first"
    );
    assert_eq!(attempts["data"][0]["succeeded"], true);

    // Redelivery sends it again now.
    let event: Value = serde_json::from_str(&received[0].body).expect("event");
    let event_id = event["id"].as_str().expect("id");
    let redelivery = app
        .post(
            &format!("/v1/events/{event_id}/redeliver"),
            &key,
            &json!({}),
        )
        .await
        .expect(200);
    assert_eq!(redelivery["endpoints"], json!([id]));
    receiver.wait_until(|received| received.len() >= 4).await;
    assert_eq!(receiver.received().len(), 4);
    let per_event = app
        .wait_for_list(&format!("/v1/events/{event_id}/deliveries"), &key, 4)
        .await;
    assert_eq!(per_event["data"].as_array().expect("data").len(), 4);
}
both_backends!(failures_retry_on_schedule, super::fast_retries());

async fn rolled_secrets_overlap(app: &TestApp) {
    let key = app.test_key().await;
    let receiver = Receiver::start(vec![]).await;
    let created = endpoint(app, &key, &receiver.url, json!(["payment.succeeded"])).await;
    let id = created["id"].as_str().expect("id");
    let old = created["secret"].as_str().expect("secret").to_owned();
    let rolled = app
        .post(
            &format!("/v1/webhook_endpoints/{id}/roll_secret"),
            &key,
            &json!({"expires_in_seconds": 3600}),
        )
        .await
        .expect(200);
    let new = rolled["secret"].as_str().expect("new secret").to_owned();
    assert_ne!(old, new);
    assert!(rolled["previous_secret_expires_at"].is_i64());
    app.pay(&key, 1_000, "254700000000").await;
    let received = receiver.wait_until(|received| !received.is_empty()).await;
    let delivery = &received[0];
    assert_eq!(
        delivery.signature.matches("v1=").count(),
        2,
        "both secrets sign during the overlap"
    );
    assert_eq!(
        verify_signature_independently(&delivery.signature, &delivery.body, &new),
        1
    );
    assert_eq!(
        verify_signature_independently(&delivery.signature, &delivery.body, &old),
        1
    );

    let retired = app
        .post(
            &format!("/v1/webhook_endpoints/{id}/roll_secret"),
            &key,
            &json!({"expires_in_seconds": 0}),
        )
        .await
        .expect(200);
    let newest = retired["secret"].as_str().expect("secret").to_owned();
    app.pay(&key, 1_000, "254700000000").await;
    let received = receiver.wait_until(|received| received.len() >= 2).await;
    assert_eq!(received[1].signature.matches("v1=").count(), 1);
    assert_eq!(
        verify_signature_independently(&received[1].signature, &received[1].body, &newest),
        1
    );
    assert_eq!(
        verify_signature_independently(&received[1].signature, &received[1].body, &new),
        0
    );
}
both_backends!(rolled_secrets_overlap);

async fn endpoints_are_validated_and_managed(app: &TestApp) {
    let (_, test_key, live_key) = app.merchant().await;
    let refused = app
        .post(
            "/v1/webhook_endpoints",
            &live_key,
            &json!({"url": "http://127.0.0.1:9/hooks", "enabled_events": ["*"]}),
        )
        .await;
    assert_eq!(refused.status, 400);
    assert_eq!(refused.error_param(), Some("url"));
    let bad_event = app
        .post(
            "/v1/webhook_endpoints",
            &test_key,
            &json!({"url": "https://shop.example/h", "enabled_events": ["payment.exploded"]}),
        )
        .await;
    assert_eq!(bad_event.error_param(), Some("enabled_events"));
    let bad_scheme = app
        .post(
            "/v1/webhook_endpoints",
            &test_key,
            &json!({"url": "ftp://shop.example/h", "enabled_events": ["*"]}),
        )
        .await;
    assert_eq!(bad_scheme.error_param(), Some("url"));
    let live = app
        .post(
            "/v1/webhook_endpoints",
            &live_key,
            &json!({"url": "https://shop.example/h", "enabled_events": ["*"]}),
        )
        .await
        .expect(200);
    assert_eq!(live["livemode"], true);

    let receiver = Receiver::start(vec![]).await;
    let created = endpoint(app, &test_key, &receiver.url, json!(["refund.created"])).await;
    let id = created["id"].as_str().expect("id");
    let updated = app
        .post(
            &format!("/v1/webhook_endpoints/{id}"),
            &test_key,
            &json!({"enabled": false, "description": "paused"}),
        )
        .await
        .expect(200);
    assert_eq!(updated["enabled"], false);
    assert_eq!(updated["description"], "paused");
    app.pay(&test_key, 1_000, "254700000000").await;
    let deleted = app
        .request(
            reqwest::Method::DELETE,
            &format!("/v1/webhook_endpoints/{id}"),
            &test_key,
            None,
            &[],
        )
        .await
        .expect(200);
    assert_eq!(deleted["id"], id);
    assert_eq!(
        app.get(&format!("/v1/webhook_endpoints/{id}"), &test_key)
            .await
            .status,
        404
    );
    assert_eq!(
        app.get(&format!("/v1/webhook_endpoints/{id}"), &live_key)
            .await
            .status,
        404
    );
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert!(
        receiver.received().is_empty(),
        "a disabled endpoint receives nothing"
    );
}
both_backends!(endpoints_are_validated_and_managed);

/// The outbox retention (`events_retain_days`, docs/webhooks.md) deletes
/// events past it whose deliveries are all finished, with those deliveries
/// and their attempts, and keeps an event still pending delivery however
/// old it is.
async fn old_finished_events_are_pruned(app: &TestApp) {
    let delivered_key = app.test_key().await;
    let receiver = Receiver::start(vec![]).await;
    let delivered = endpoint(app, &delivered_key, &receiver.url, json!(["*"])).await;
    app.pay(&delivered_key, 1_000, "254700000000").await;
    let delivered_attempts = format!(
        "/v1/webhook_endpoints/{}/deliveries",
        delivered["id"].as_str().expect("id")
    );
    let attempts = app
        .wait_for_list(&delivered_attempts, &delivered_key, 2)
        .await;
    assert_eq!(attempts["data"].as_array().expect("data").len(), 2);

    // The first attempt fails; the retry is minutes away (the default
    // schedule): the delivery stays pending.
    let pending_key = app.test_key().await;
    let failing = Receiver::start(vec![500]).await;
    let pending = endpoint(
        app,
        &pending_key,
        &failing.url,
        json!(["payment.succeeded"]),
    )
    .await;
    app.pay(&pending_key, 1_000, "254700000001").await;
    let pending_attempts = format!(
        "/v1/webhook_endpoints/{}/deliveries",
        pending["id"].as_str().expect("id")
    );
    let attempts = app.wait_for_list(&pending_attempts, &pending_key, 1).await;
    assert_eq!(attempts["data"][0]["http_status"], 500);
    let pending_events = app.get("/v1/events", &pending_key).await.expect(200);
    let pending_ids: Vec<Value> = pending_events["data"]
        .as_array()
        .expect("data")
        .iter()
        .map(|event| event["id"].clone())
        .collect();
    assert_eq!(
        pending_ids.len(),
        2,
        "payment.created and payment.succeeded"
    );

    assert_eq!(
        app.gateway().prune_events().await.expect("prune"),
        0,
        "nothing is older than 30 days yet"
    );
    // Everything 31 days older, as if it was.
    let mut tx = app.gateway().store().begin().await.expect("tx");
    let older = "UPDATE events SET created = created - 31 * 86400";
    match tx.conn() {
        malipo_store::Conn::Sqlite(c) => sqlx::query(older).execute(&mut *c).await.map(|_| ()),
        malipo_store::Conn::Postgres(c) => sqlx::query(older).execute(&mut *c).await.map(|_| ()),
    }
    .expect("backdate");
    tx.commit().await.expect("commit");

    // The first merchant's two delivered events, and the second's
    // payment.created (which no endpoint wanted), go.
    assert_eq!(app.gateway().prune_events().await.expect("prune"), 3);
    let listed = app.get("/v1/events", &delivered_key).await.expect(200);
    assert_eq!(listed["data"], json!([]), "{listed}");
    assert_eq!(
        app.get(&delivered_attempts, &delivered_key)
            .await
            .expect(200)["data"],
        json!([]),
        "the deliveries' attempts went with their events"
    );
    let left = app.get("/v1/events", &pending_key).await.expect(200);
    let left: Vec<&Value> = left["data"].as_array().expect("data").iter().collect();
    assert_eq!(left.len(), 1);
    assert_eq!(left[0]["type"], "payment.succeeded");
    assert!(pending_ids.contains(&left[0]["id"]));
    assert_eq!(
        app.get(&pending_attempts, &pending_key).await.expect(200)["data"]
            .as_array()
            .expect("data")
            .len(),
        1,
        "the pending delivery keeps its attempts"
    );
    assert_eq!(app.gateway().prune_events().await.expect("prune"), 0);
}
both_backends!(old_finished_events_are_pruned);
