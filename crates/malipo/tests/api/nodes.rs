//! Several nodes on one PostgreSQL share the background work without doing
//! it twice: each event reaches the endpoint once, whichever node sends it;
//! and under concurrent requests to every node, one Idempotency-Key makes
//! one payment and refunds never exceed the payment.

use crate::helpers::{Backend, Receiver, spawn_app_with, spawn_node, test_config};
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};

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

/// The same request sent to every node at once: answers, in node order.
async fn to_every_node(
    client: &reqwest::Client,
    bases: &[String],
    path: &str,
    key: &str,
    idempotency_key: Option<&str>,
    body: &Value,
) -> Vec<(u16, Value)> {
    let mut requests = tokio::task::JoinSet::new();
    for (index, base) in bases.iter().enumerate() {
        let mut request = client
            .post(format!("{base}{path}"))
            .bearer_auth(key)
            .json(body);
        if let Some(idempotency_key) = idempotency_key {
            request = request.header("Idempotency-Key", idempotency_key);
        }
        requests.spawn(async move {
            let response = request.send().await.expect("sent");
            let status = response.status().as_u16();
            (index, status, response.json::<Value>().await.expect("json"))
        });
    }
    let mut answers: Vec<(usize, u16, Value)> = requests.join_all().await;
    answers.sort_by_key(|(index, ..)| *index);
    answers
        .into_iter()
        .map(|(_, status, body)| (status, body))
        .collect()
}

/// A concurrent mixed load on three nodes: one Idempotency-Key sent to
/// every node at once makes one payment; refunds of the same payment from
/// every node at once never refund more than was paid; the ledger verifies.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_never_pay_twice_or_over_refund() {
    let Some(app) = spawn_app_with(Backend::Postgres, test_config()).await else {
        return;
    };
    let second = spawn_node(app.database_url(), test_config()).await;
    let third = spawn_node(app.database_url(), test_config()).await;
    let key = app.test_key().await;
    let bases = [
        app.base.clone(),
        format!("http://{}", second.address),
        format!("http://{}", third.address),
    ];
    let body = json!({"amount": 10_000, "currency": "kes", "method": "sandbox",
                      "customer": {"phone": "254700000000"}});
    let mut payments = BTreeSet::new();
    for round in 0..10 {
        let idempotency_key = format!("order-{round}");
        let answers = to_every_node(
            &app.client,
            &bases,
            "/v1/payments",
            &key,
            Some(&idempotency_key),
            &body,
        )
        .await;
        let ids: BTreeSet<&str> = answers
            .iter()
            .filter(|(status, _)| *status == 200)
            .map(|(_, payment)| payment["id"].as_str().expect("id"))
            .collect();
        assert_eq!(
            ids.len(),
            1,
            "one payment for {idempotency_key}: {answers:?}"
        );
        for (status, answer) in &answers {
            assert!(
                *status == 200
                    || (*status == 409 && answer["error"]["code"] == "idempotency_key_in_use"),
                "{status}: {answer}"
            );
        }
        payments.extend(ids.into_iter().map(str::to_owned));
    }
    let listed = app.get("/v1/payments?limit=100", &key).await.expect(200);
    assert_eq!(
        listed["data"].as_array().expect("list").len(),
        10,
        "one payment per key across the nodes"
    );

    // Three refunds of 4,000 of each 10,000 payment, one from each node at
    // once: two fit, the third would over-refund.
    for payment in &payments {
        let answers = to_every_node(
            &app.client,
            &bases,
            "/v1/refunds",
            &key,
            None,
            &json!({"payment": payment, "amount": 4_000}),
        )
        .await;
        let succeeded = answers.iter().filter(|(status, _)| *status == 200).count();
        assert_eq!(succeeded, 2, "{answers:?}");
        for (status, answer) in answers.iter().filter(|(status, _)| *status != 200) {
            assert!([400, 409].contains(status), "{status}: {answer}");
        }
        let read = app
            .get(&format!("/v1/payments/{payment}"), &key)
            .await
            .expect(200);
        assert_eq!(read["amount_refunded"], 8_000, "{read}");
    }
    let refunds = app.get("/v1/refunds?limit=100", &key).await.expect(200);
    assert_eq!(refunds["data"].as_array().expect("list").len(), 20);
    assert_eq!(app.verify_ledger().await["ok"], true);
    second.stop().await;
    third.stop().await;
}
