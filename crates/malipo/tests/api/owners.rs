//! Book ownership across two real `malipo serve` processes on one
//! PostgreSQL: the first node to run a command for a book takes its lease;
//! orders and cancels sent to either node all run on that owner (the
//! `Malipo-Node` header of each answer and the command log's node column
//! say so); after the owner is killed (SIGKILL), the other node runs the
//! book's commands and takes the lease once it expires; every acknowledged
//! order is still there and `malipo trading check` passes. And on either
//! store, with two in-process nodes, the lease rules: a free lease is
//! taken, a held one names its node and URL, a node that stops hands its
//! books over at once.

use crate::crash::{Server, operator_and_merchant, start_server_with, wait_ready};
use malipo_test_support::{Backend, TestDatabase};
use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::time::Duration;

/// A short lease so the takeover comes quickly.
const LEASE_MS: &str = "1500";

fn node(database_url: &str, id: &str) -> Server {
    start_server_with(
        database_url,
        &[
            ("MALIPO_NODE_ID", id),
            ("MALIPO_TRADING_LEASE_MS", LEASE_MS),
        ],
    )
}

/// POSTs `body` to `base`; answers (status, body, the node that ran it).
async fn post(
    client: &reqwest::Client,
    base: &str,
    path: &str,
    key: &str,
    body: &Value,
    idempotency_key: Option<&str>,
) -> (u16, Value, Option<String>) {
    let mut request = client
        .post(format!("{base}{path}"))
        .bearer_auth(key)
        .json(body);
    if let Some(idempotency_key) = idempotency_key {
        request = request.header("Idempotency-Key", idempotency_key);
    }
    let response = request.send().await.expect("sent");
    let status = response.status().as_u16();
    let node = response
        .headers()
        .get("malipo-node")
        .and_then(|value| value.to_str().ok())
        .map(str::to_owned);
    (status, response.json().await.expect("json"), node)
}

/// (node id of each logged command of the book, the lease's holder).
async fn log_and_lease(database_url: &str, book: &str) -> (Vec<Option<String>>, Option<String>) {
    use sqlx::Connection;
    let mut conn = sqlx::PgConnection::connect(database_url)
        .await
        .expect("connect");
    let nodes: Vec<(Option<String>,)> =
        sqlx::query_as("SELECT node_id FROM trading_commands WHERE book_id = $1 ORDER BY sequence")
            .bind(book)
            .fetch_all(&mut conn)
            .await
            .expect("log");
    let holder: Option<(String,)> =
        sqlx::query_as("SELECT node_id FROM trading_book_leases WHERE book_id = $1")
            .bind(book)
            .fetch_optional(&mut conn)
            .await
            .expect("lease");
    (
        nodes.into_iter().map(|(node,)| node).collect(),
        holder.map(|(node,)| node),
    )
}

fn limit(customer: &str, side: &str, price: u64) -> Value {
    json!({"customer": customer, "pair": "btc_usd", "side": side, "type": "limit",
           "price": price, "quantity": 1_000})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_node_owns_a_book_and_the_other_takes_over_when_it_dies() {
    let Some(database) = TestDatabase::create(Backend::Postgres).await else {
        return;
    };
    malipo_gateway::install_crypto_provider();
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .expect("client");
    let mut first = node(&database.url, "node-a");
    wait_ready(&client, &first.base).await;
    let second = node(&database.url, "node-b");
    wait_ready(&client, &second.base).await;
    let (token, key) = operator_and_merchant(&client, &first.base, &database.url).await;
    let (status, pair, _) = post(
        &client,
        &first.base,
        "/v1/admin/trading/pairs",
        &token,
        &json!({"base": "btc", "quote": "usd", "tick_size": 1, "lot_size": 1000}),
        None,
    )
    .await;
    assert_eq!(status, 200, "{pair}");
    let mut customers = Vec::new();
    for name in ["Seller", "Buyer"] {
        let (status, customer, _) = post(
            &client,
            &second.base,
            "/v1/customers",
            &key,
            &json!({"name": name}),
            None,
        )
        .await;
        assert_eq!(status, 200);
        let id = customer["id"].as_str().expect("id").to_owned();
        for asset in ["btc", "usd"] {
            let (status, _, _) = post(
                &client,
                &second.base,
                &format!("/v1/customers/{id}/test_credits"),
                &key,
                &json!({"asset": asset, "amount": 10_000_000}),
                None,
            )
            .await;
            assert_eq!(status, 200);
        }
        customers.push(id);
    }
    let (seller, buyer) = (customers[0].clone(), customers[1].clone());

    // The first command takes the book's lease for the node it reaches.
    let (status, first_order, ran_on) = post(
        &client,
        &first.base,
        "/v1/trading/orders",
        &key,
        &limit(&seller, "sell", 60),
        None,
    )
    .await;
    assert_eq!(status, 200, "{first_order}");
    assert_eq!(ran_on.as_deref(), Some("node-a"));
    let mut acknowledged = BTreeSet::from([first_order["id"].as_str().expect("id").to_owned()]);

    // Twenty orders sent to both nodes at once, half with an
    // Idempotency-Key: every one runs on the owner.
    let mut requests = tokio::task::JoinSet::new();
    for index in 0..20 {
        let base = if index % 2 == 0 {
            first.base.clone()
        } else {
            second.base.clone()
        };
        let (customer, side, price) = if index % 4 < 2 {
            (&seller, "sell", 50)
        } else {
            (&buyer, "buy", 50)
        };
        let body = limit(customer, side, price);
        let (client, key) = (client.clone(), key.clone());
        requests.spawn(async move {
            let idempotency_key = format!("order-{index}");
            let idempotency_key = (index % 3 == 0).then_some(idempotency_key.as_str());
            post(
                &client,
                &base,
                "/v1/trading/orders",
                &key,
                &body,
                idempotency_key,
            )
            .await
        });
    }
    for (status, order, ran_on) in requests.join_all().await {
        assert_eq!(status, 200, "{order}");
        assert_eq!(ran_on.as_deref(), Some("node-a"), "{order}");
        acknowledged.insert(order["id"].as_str().expect("id").to_owned());
    }
    // One Idempotency-Key sent to both nodes makes one order: the owner
    // answers the second request with the first one's result.
    let (status, once, _) = post(
        &client,
        &second.base,
        "/v1/trading/orders",
        &key,
        &limit(&seller, "sell", 65),
        Some("once"),
    )
    .await;
    assert_eq!(status, 200, "{once}");
    let (status, again, ran_on) = post(
        &client,
        &first.base,
        "/v1/trading/orders",
        &key,
        &limit(&seller, "sell", 65),
        Some("once"),
    )
    .await;
    assert_eq!(status, 200, "{again}");
    assert_eq!(again["id"], once["id"]);
    assert_eq!(ran_on.as_deref(), Some("node-a"));
    acknowledged.insert(once["id"].as_str().expect("id").to_owned());

    // A cancel sent to the other node runs on the owner too.
    let first_id = first_order["id"].as_str().expect("id");
    let (status, canceled, ran_on) = post(
        &client,
        &second.base,
        &format!("/v1/trading/orders/{first_id}/cancel"),
        &key,
        &json!({}),
        None,
    )
    .await;
    assert_eq!(status, 200, "{canceled}");
    assert_eq!(canceled["status"], "canceled");
    assert_eq!(ran_on.as_deref(), Some("node-a"));
    let (log, holder) = log_and_lease(&database.url, "btc_usd/test").await;
    assert_eq!(log.len(), 23, "22 orders and a cancel");
    assert!(
        log.iter().all(|node| node.as_deref() == Some("node-a")),
        "{log:?}"
    );
    assert_eq!(holder.as_deref(), Some("node-a"));

    // The owner dies without a word: the other node runs the book's
    // commands (the owner's port refuses the forward) and takes the lease
    // once it expires.
    first.child.kill().expect("SIGKILL");
    first.child.wait().expect("reaped");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let mut index = 0;
    loop {
        let (status, order, ran_on) = post(
            &client,
            &second.base,
            "/v1/trading/orders",
            &key,
            &limit(&seller, "sell", 70 + index),
            None,
        )
        .await;
        assert_eq!(status, 200, "{order}");
        assert_eq!(ran_on.as_deref(), Some("node-b"));
        acknowledged.insert(order["id"].as_str().expect("id").to_owned());
        index += 1;
        let (_, holder) = log_and_lease(&database.url, "btc_usd/test").await;
        if holder.as_deref() == Some("node-b") {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "node-b never took the lease (held by {holder:?})"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // Nothing acknowledged was lost: every order is there, the log holds
    // every command, and the venue proves itself.
    for id in &acknowledged {
        let response = client
            .get(format!("{}/v1/trading/orders/{id}", second.base))
            .bearer_auth(&key)
            .send()
            .await
            .expect("sent");
        assert_eq!(response.status(), 200, "order {id} lost");
    }
    let (log, _) = log_and_lease(&database.url, "btc_usd/test").await;
    assert_eq!(
        log.len(),
        acknowledged.len() + 1,
        "every order and the cancel"
    );
    let check = std::process::Command::new(env!("CARGO_BIN_EXE_malipo"))
        .args(["trading", "check"])
        .env("DATABASE_URL", &database.url)
        .env("RUST_LOG", "error")
        .output()
        .expect("malipo trading check");
    assert!(
        check.status.success(),
        "{}{}",
        String::from_utf8_lossy(&check.stdout),
        String::from_utf8_lossy(&check.stderr)
    );
    let verified = client
        .get(format!("{}/v1/admin/ledger/verify", second.base))
        .bearer_auth(&token)
        .send()
        .await
        .expect("sent")
        .json::<Value>()
        .await
        .expect("json");
    assert_eq!(verified["ok"], true, "{verified}");
    drop(second);
}

/// The lease rules on either store, through two in-process nodes: the
/// first to ask takes a free lease, the other is sent to it (with the URL
/// it advertises), an unknown pair runs where it is, and a node that stops
/// gracefully hands its books over at once.
async fn a_stopping_node_hands_its_books_over(app: &crate::helpers::TestApp) {
    use crate::helpers::{spawn_node, test_config};
    use malipo_gateway::ownership::BookRoute;
    let (status, pair, _) = post(
        &app.client,
        &app.base,
        "/v1/admin/trading/pairs",
        &app.operator_token,
        &json!({"base": "btc", "quote": "usd", "tick_size": 1, "lot_size": 1000}),
        None,
    )
    .await;
    assert_eq!(status, 200, "{pair}");
    let named = |id: &str| malipo::config::Config {
        node_id: id.to_owned(),
        ..test_config()
    };
    let first = spawn_node(app.database_url(), named("node-a")).await;
    let second = spawn_node(app.database_url(), named("node-b")).await;
    assert_eq!(
        first
            .gateway
            .book_route("btc_usd", false)
            .await
            .expect("route"),
        BookRoute::Local
    );
    assert_eq!(
        second
            .gateway
            .book_route("btc_usd", false)
            .await
            .expect("route"),
        BookRoute::Remote {
            node_id: "node-a".into(),
            url: format!("http://{}", first.address),
        }
    );
    // The live book is another lease: free, so the second node takes it.
    assert_eq!(
        second
            .gateway
            .book_route("btc_usd", true)
            .await
            .expect("route"),
        BookRoute::Local
    );
    assert_eq!(
        second
            .gateway
            .book_route("doge_usd", false)
            .await
            .expect("route"),
        BookRoute::Local
    );
    first.stop().await;
    assert_eq!(
        second
            .gateway
            .book_route("btc_usd", false)
            .await
            .expect("route"),
        BookRoute::Local
    );
    second.stop().await;
}
crate::both_backends!(a_stopping_node_hands_its_books_over);
