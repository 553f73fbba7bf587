//! Several nodes on one PostgreSQL share the background work without doing
//! it twice: each event reaches the endpoint once, whichever node sends it.

use crate::helpers::{Backend, Receiver, spawn_app_with, spawn_node, test_config};
use serde_json::{Value, json};
use std::collections::BTreeMap;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_deliver_each_event_once() {
    let Some(app) = spawn_app_with(Backend::Postgres, test_config()).await else {
        return;
    };
    let second = spawn_node(app.database_url(), test_config()).await;
    let third = spawn_node(app.database_url(), test_config()).await;
    let key = app.test_key().await;
    let receiver = Receiver::start(vec![]).await;
    app.post(
        "/v1/webhook_endpoints",
        &key,
        &json!({"url": receiver.url, "enabled_events": ["*"]}),
    )
    .await
    .expect(200);

    // Payments through all three nodes.
    let bases = [
        app.base.clone(),
        format!("http://{}", second.address),
        format!("http://{}", third.address),
    ];
    for index in 0..30 {
        let response = app
            .client
            .post(format!("{}/v1/payments", bases[index % 3]))
            .bearer_auth(&key)
            .json(&json!({"amount": 1_000, "currency": "kes", "method": "sandbox", "customer": {"phone": "254700000000"}}))
            .send()
            .await
            .expect("payment");
        assert_eq!(response.status(), 200);
    }
    receiver.wait_until(|received| received.len() >= 60).await;
    // Give a duplicate every chance to show up.
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let mut deliveries: BTreeMap<String, usize> = BTreeMap::new();
    for received in receiver.received() {
        let event: Value = serde_json::from_str(&received.body).expect("event");
        *deliveries
            .entry(event["id"].as_str().expect("id").to_owned())
            .or_default() += 1;
    }
    assert_eq!(
        deliveries.len(),
        60,
        "created + succeeded for each of 30 payments"
    );
    let twice: Vec<_> = deliveries.iter().filter(|(_, count)| **count > 1).collect();
    assert!(twice.is_empty(), "delivered more than once: {twice:?}");
    second.stop().await;
    third.stop().await;
}
