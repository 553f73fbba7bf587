//! `GET /v1/ws` over a real WebSocket: the credential in the first message
//! (a secret key or a customer token; a bad key, an expired token, another
//! first message or none at all close the socket with a reason), customer
//! tokens limited to their own customer, the private `payments` channel fed
//! from the event outbox (also from another node), `prices`, resuming a book
//! with exactly the missed updates or a flagged fresh snapshot when the
//! replay window is passed, resuming events, and heartbeats.

use crate::both_backends;
use crate::helpers::{TestApp, spawn_node, test_config};
use crate::trading::{btc_usd, credit, customer, limit, order};
use futures::{SinkExt, StreamExt};
use malipo::config::Config;
use serde_json::{Value, json};
use std::time::Duration;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// How long a test waits for one message before failing (not a timing
/// assertion: a message that never comes would otherwise hang the test).
const WAIT: Duration = Duration::from_secs(30);

/// A socket on `/v1/ws`, not authenticated yet (no header at all).
async fn open(base: &str) -> Ws {
    let url = format!("{}/v1/ws", base.replace("http://", "ws://"));
    tokio_tungstenite::connect_async(url)
        .await
        .expect("the upgrade needs no header")
        .0
}

async fn send(ws: &mut Ws, message: Value) {
    ws.send(Message::Text(message.to_string().into()))
        .await
        .expect("send");
}

/// The next JSON message (pings, pongs and heartbeats skipped).
async fn next(ws: &mut Ws) -> Value {
    loop {
        let message = next_any(ws).await;
        if message["type"] != "heartbeat" {
            return message;
        }
    }
}

/// The next JSON message, heartbeats included.
async fn next_any(ws: &mut Ws) -> Value {
    loop {
        let message = tokio::time::timeout(WAIT, ws.next())
            .await
            .expect("a message within the wait")
            .expect("the stream is open")
            .expect("a frame");
        match message {
            Message::Text(text) => return serde_json::from_str(&text).expect("JSON"),
            Message::Ping(_) | Message::Pong(_) => continue,
            other => panic!("unexpected frame: {other:?}"),
        }
    }
}

/// The close frame the server ends the socket with: (code, reason).
async fn closed(ws: &mut Ws) -> (CloseCode, String) {
    loop {
        let frame = tokio::time::timeout(WAIT, ws.next())
            .await
            .expect("the server closes within the wait");
        match frame {
            Some(Ok(Message::Close(Some(frame)))) => {
                return (frame.code, frame.reason.to_string());
            }
            Some(Ok(Message::Close(None))) => panic!("a close frame without a reason"),
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
            Some(Ok(other)) => panic!("unexpected frame before the close: {other:?}"),
            Some(Err(error)) => panic!("the socket failed before its close frame: {error}"),
            None => panic!("the socket ended without a close frame"),
        }
    }
}

/// Opens `/v1/ws` and authenticates with `auth` (`{"key": …}` or
/// `{"customer_token": …}`); answers the socket and the `authenticated`
/// message.
async fn connect_with(base: &str, auth: Value) -> (Ws, Value) {
    let mut ws = open(base).await;
    let mut message = json!({"type": "auth", "id": "a1"});
    for (name, value) in auth.as_object().expect("object") {
        message[name] = value.clone();
    }
    send(&mut ws, message).await;
    let answer = next(&mut ws).await;
    assert_eq!(answer["type"], "authenticated", "{answer}");
    assert_eq!(answer["id"], "a1");
    (ws, answer)
}

async fn connect(base: &str, key: &str) -> Ws {
    connect_with(base, json!({"key": key})).await.0
}

/// Subscribes and checks the acknowledgement.
async fn subscribe(ws: &mut Ws, message: Value) {
    let mut message = message;
    message["op"] = json!("subscribe");
    message["id"] = message["channel"].clone();
    send(ws, message.clone()).await;
    assert_eq!(
        next(ws).await,
        json!({"type": "subscribed", "channel": message["channel"], "id": message["channel"]})
    );
}

/// A ping answered by its pong proves nothing else was queued before it.
async fn nothing_else(ws: &mut Ws) {
    send(ws, json!({"op": "ping", "id": "fence"})).await;
    assert_eq!(next(ws).await, json!({"type": "pong", "id": "fence"}));
}

/// A customer token for `customer`: the creation answer.
async fn token(app: &TestApp, key: &str, customer: &str) -> Value {
    app.post(&format!("/v1/customers/{customer}/tokens"), key, &json!({}))
        .await
        .expect(200)
}

/// A sandbox payment (succeeds at once) crediting `customer`.
async fn deposit(base: &str, app: &TestApp, key: &str, customer: &str, amount: u64) -> Value {
    let response = app
        .client
        .post(format!("{base}/v1/payments"))
        .bearer_auth(key)
        .json(
            &json!({"amount": amount, "currency": "usd", "method": "sandbox",
                      "customer": {"phone": "254700000000"}, "customer_id": customer,
                      "credit_customer": true}),
        )
        .send()
        .await
        .expect("payment");
    assert_eq!(response.status(), 200);
    let payment: Value = response.json().await.expect("JSON");
    assert_eq!(payment["status"], "succeeded", "{payment}");
    payment
}

/// The merchant's events of one payment, oldest first, as `GET /v1/events`
/// lists them: (id, type).
async fn payment_events(app: &TestApp, key: &str, payment: &str) -> Vec<(String, String)> {
    let list = app.get("/v1/events?limit=100", key).await.expect(200);
    let mut events: Vec<(String, String)> = list["data"]
        .as_array()
        .expect("data")
        .iter()
        .filter(|event| event["data"]["object"]["id"] == payment)
        .map(|event| {
            (
                event["id"].as_str().expect("id").to_owned(),
                event["type"].as_str().expect("type").to_owned(),
            )
        })
        .collect();
    events.reverse();
    events
}

/// Reads `count` event messages of a private channel: (id, type) and the
/// last sequence, checking each message's shape.
async fn event_messages(ws: &mut Ws, channel: &str, count: usize) -> (Vec<(String, String)>, u64) {
    let mut seen = Vec::new();
    let mut last = 0;
    while seen.len() < count {
        let message = next(ws).await;
        assert_eq!(message["channel"], channel, "{message}");
        assert_eq!(message["type"], message["event"]["type"], "{message}");
        assert_eq!(message["event"]["object"], "event");
        let sequence = message["sequence"].as_u64().expect("sequence");
        assert!(sequence > last, "sequences increase: {message}");
        last = sequence;
        seen.push((
            message["event"]["id"].as_str().expect("id").to_owned(),
            message["type"].as_str().expect("type").to_owned(),
        ));
    }
    (seen, last)
}

fn quick_auth() -> Config {
    Config {
        feed_auth_timeout_ms: 300,
        ..test_config()
    }
}

/// The first message authenticates: a good key or customer token opens the
/// stream; a wrong key, an expired token, another first message or none
/// within the timeout close the socket with code 1008 and a reason.
async fn the_first_message_authenticates(app: &TestApp) {
    let (merchant_id, key, _) = app.merchant().await;
    btc_usd(app).await;

    let (mut ws, answer) = connect_with(&app.base, json!({"key": key})).await;
    assert_eq!(answer["livemode"], false);
    assert_eq!(answer["customer"], Value::Null);
    subscribe(&mut ws, json!({"channel": "book:btc_usd"})).await;
    assert_eq!(next(&mut ws).await["type"], "snapshot");

    let mut wrong = open(&app.base).await;
    send(&mut wrong, json!({"type": "auth", "key": "sk_test_nope"})).await;
    let (code, reason) = closed(&mut wrong).await;
    assert_eq!(code, CloseCode::Policy);
    assert!(reason.starts_with("auth_failed"), "{reason}");

    let mut other = open(&app.base).await;
    send(
        &mut other,
        json!({"op": "subscribe", "channel": "book:btc_usd"}),
    )
    .await;
    let (code, reason) = closed(&mut other).await;
    assert_eq!(code, CloseCode::Policy);
    assert!(reason.starts_with("auth_required"), "{reason}");

    let mut both = open(&app.base).await;
    send(
        &mut both,
        json!({"type": "auth", "key": key, "customer_token": "ct_test_x"}),
    )
    .await;
    assert!(closed(&mut both).await.1.starts_with("auth_required"));

    let mut silent = open(&app.base).await;
    let (code, reason) = closed(&mut silent).await;
    assert_eq!(code, CloseCode::Policy);
    assert!(reason.starts_with("auth_timeout"), "{reason}");

    // A customer token opens a stream for its customer.
    let amina = customer(app, &key, "Amina").await;
    let created = token(app, &key, &amina).await;
    assert_eq!(created["object"], "customer_token");
    assert_eq!(created["customer"], amina);
    let secret = created["token"].as_str().expect("token shown once");
    assert!(secret.starts_with("ct_test_"), "{created}");
    assert_eq!(
        created["expires_at"].as_i64().expect("expires_at")
            - created["created"].as_i64().expect("created"),
        900
    );
    let (mut customer_ws, answer) =
        connect_with(&app.base, json!({"customer_token": secret})).await;
    assert_eq!(answer["customer"], amina);
    subscribe(&mut customer_ws, json!({"channel": "book:btc_usd"})).await;
    assert_eq!(next(&mut customer_ws).await["type"], "snapshot");

    // An expired token (written as the API would, with an expiry passed).
    let hasher = malipo_gateway::auth::KeyHasher::load_or_create(app.gateway().store())
        .await
        .expect("hasher");
    let expired = "ct_test_expiredexpiredexpiredexpired";
    let mut tx = app.gateway().store().begin().await.expect("tx");
    tx.conn()
        .insert_customer_token(
            &malipo_store::CustomerTokenRecord {
                id: "ctok_expired".into(),
                merchant_id,
                livemode: false,
                customer_id: amina.clone(),
                prefix: "ct_test_expi".into(),
                created: 1,
                expires_at: 2,
            },
            &hasher.hash(expired),
        )
        .await
        .expect("insert");
    tx.commit().await.expect("commit");
    let mut late = open(&app.base).await;
    send(
        &mut late,
        json!({"type": "auth", "customer_token": expired}),
    )
    .await;
    let (code, reason) = closed(&mut late).await;
    assert_eq!(code, CloseCode::Policy);
    assert!(reason.starts_with("auth_failed"), "{reason}");

    // The path refuses plain HTTP; the token endpoint checks its input and
    // the customer's owner; the audit log has the token without its secret.
    let plain = app.get("/v1/ws", &key).await;
    assert_eq!(plain.status, 400, "{}", plain.body);
    assert_eq!(plain.body["error"]["code"], "websocket_upgrade_required");
    let short = app
        .post(
            &format!("/v1/customers/{amina}/tokens"),
            &key,
            &json!({"lifetime_seconds": 10}),
        )
        .await;
    assert_eq!(short.status, 400);
    assert_eq!(short.error_param(), Some("lifetime_seconds"));
    let stranger = app.test_key().await;
    let foreign = app
        .post(
            &format!("/v1/customers/{amina}/tokens"),
            &stranger,
            &json!({}),
        )
        .await;
    assert_eq!(foreign.status, 404);
    let audit = app
        .get(
            "/v1/admin/audit?action=customer_token.create",
            &app.operator_token,
        )
        .await
        .expect(200);
    assert!(!audit.to_string().contains(secret), "{audit}");
    assert!(
        audit
            .to_string()
            .contains(created["id"].as_str().expect("id")),
        "{audit}"
    );
    let spec = app.get("/openapi.json", "").await.expect(200);
    assert!(spec["paths"]["/v1/ws"]["get"].is_object());
    assert!(spec["paths"]["/v1/customers/{id}/tokens"]["post"].is_object());
    assert!(spec["components"]["schemas"]["CustomerToken"]["properties"]["token"].is_object());
    nothing_else(&mut ws).await;
}
both_backends!(the_first_message_authenticates, super::quick_auth());

/// A customer token reads only its customer's private channels: naming
/// another customer is refused, and another customer's payments and orders
/// never reach it. The merchant's key sees both.
async fn a_customer_token_reads_only_its_own_customer(app: &TestApp) {
    let key = app.test_key().await;
    btc_usd(app).await;
    let amina = customer(app, &key, "Amina").await;
    let baraka = customer(app, &key, "Baraka").await;
    let secret = token(app, &key, &amina).await["token"]
        .as_str()
        .expect("token")
        .to_owned();
    let (mut ws, _) = connect_with(&app.base, json!({"customer_token": secret})).await;
    send(
        &mut ws,
        json!({"op": "subscribe", "channel": "payments", "customer": baraka, "id": 1}),
    )
    .await;
    let refused = next(&mut ws).await;
    assert_eq!(refused["type"], "error", "{refused}");
    assert_eq!(refused["error"]["code"], "customer_forbidden");
    assert_eq!(refused["error"]["param"], "customer");
    subscribe(&mut ws, json!({"channel": "payments"})).await;
    subscribe(&mut ws, json!({"channel": "orders"})).await;
    let mut merchant = connect(&app.base, &key).await;
    subscribe(
        &mut merchant,
        json!({"channel": "payments", "customer": baraka}),
    )
    .await;

    // Baraka's payment and order first: had they leaked, they would come
    // first on Amina's stream.
    let theirs = deposit(&app.base, app, &key, &baraka, 10_000).await;
    credit(app, &key, &baraka, "btc", 1_000_000).await;
    order(app, &key, limit(&baraka, "sell", 50, 10_000))
        .await
        .expect(200);
    let mine = deposit(&app.base, app, &key, &amina, 20_000).await;
    let expected = payment_events(app, &key, mine["id"].as_str().expect("id")).await;
    assert!(!expected.is_empty());
    let (seen, _) = event_messages(&mut ws, "payments", expected.len()).await;
    assert_eq!(seen, expected);
    let placed = order(app, &key, limit(&amina, "buy", 40, 10_000))
        .await
        .expect(200);
    let created = next(&mut ws).await;
    assert_eq!(created["type"], "order.created", "{created}");
    assert_eq!(created["order"]["id"], placed["id"]);
    nothing_else(&mut ws).await;

    // The merchant narrowed to Baraka sees Baraka's payment only.
    let expected = payment_events(app, &key, theirs["id"].as_str().expect("id")).await;
    let (seen, _) = event_messages(&mut merchant, "payments", expected.len()).await;
    assert_eq!(seen, expected);
    nothing_else(&mut merchant).await;
}
both_backends!(a_customer_token_reads_only_its_own_customer);

/// A payment's events reach the `payments` channel with the event's id,
/// type and object, also when the payment is made on another node; a
/// stream that reconnects with `since` gets exactly the events it missed.
async fn payment_events_reach_the_payments_channel(app: &TestApp) {
    let key = app.test_key().await;
    let amina = customer(app, &key, "Amina").await;
    let mut ws = connect(&app.base, &key).await;
    subscribe(&mut ws, json!({"channel": "payments"})).await;

    let first = deposit(&app.base, app, &key, &amina, 10_000).await;
    let expected = payment_events(app, &key, first["id"].as_str().expect("id")).await;
    assert!(
        expected.iter().any(|(_, kind)| kind == "payment.succeeded"),
        "{expected:?}"
    );
    let (seen, _) = event_messages(&mut ws, "payments", expected.len()).await;
    assert_eq!(seen, expected);

    // Through a second node on the same database.
    let second = spawn_node(app.database_url(), test_config()).await;
    let second_base = format!("http://{}", second.address);
    let other = deposit(&second_base, app, &key, &amina, 20_000).await;
    let expected = payment_events(app, &key, other["id"].as_str().expect("id")).await;
    let message = next(&mut ws).await;
    assert_eq!(message["event"]["data"]["object"]["id"], other["id"]);
    assert_eq!(message["event"]["data"]["object"]["amount"], 20_000);
    assert_eq!(message["livemode"], false);
    let (rest, last) = event_messages(&mut ws, "payments", expected.len() - 1).await;
    let mut seen = vec![(
        message["event"]["id"].as_str().expect("id").to_owned(),
        message["type"].as_str().expect("type").to_owned(),
    )];
    seen.extend(rest);
    assert_eq!(seen, expected);
    nothing_else(&mut ws).await;

    // Gone for a while: the payment made meanwhile comes on resuming.
    ws.close(None).await.expect("close");
    let missed = deposit(&app.base, app, &key, &amina, 30_000).await;
    let expected = payment_events(app, &key, missed["id"].as_str().expect("id")).await;
    let mut again = connect(&app.base, &key).await;
    // The worker numbers events shortly after they commit: wait until all
    // of the missed payment's are numbered (a fresh subscription then
    // starts after them), then resume.
    let mut probe = connect(&app.base, &key).await;
    subscribe(&mut probe, json!({"channel": "payments", "since": last})).await;
    event_messages(&mut probe, "payments", expected.len()).await;
    subscribe(&mut again, json!({"channel": "payments", "since": last})).await;
    let (seen, _) = event_messages(&mut again, "payments", expected.len()).await;
    assert_eq!(seen, expected);
    nothing_else(&mut again).await;
}
both_backends!(payment_events_reach_the_payments_channel);

/// A book subscription resumed with `since` gets exactly the updates a
/// stream that stayed got meanwhile, then the live ones; resuming at the
/// head gets nothing more.
async fn resuming_a_book_replays_exactly_the_missed_updates(app: &TestApp) {
    let key = app.test_key().await;
    btc_usd(app).await;
    let buyer = customer(app, &key, "Buyer").await;
    let seller = customer(app, &key, "Seller").await;
    credit(app, &key, &buyer, "usd", 1_000_000).await;
    credit(app, &key, &seller, "btc", 1_000_000).await;
    order(app, &key, limit(&seller, "sell", 50, 100_000))
        .await
        .expect(200);

    let mut stayed = connect(&app.base, &key).await;
    subscribe(&mut stayed, json!({"channel": "book:btc_usd"})).await;
    let mut left = connect(&app.base, &key).await;
    subscribe(&mut left, json!({"channel": "book:btc_usd"})).await;
    let snapshot = next(&mut left).await;
    assert_eq!(snapshot, next(&mut stayed).await);
    let since = snapshot["sequence"].as_u64().expect("sequence");
    left.close(None).await.expect("close");

    for body in [
        limit(&buyer, "buy", 50, 30_000),
        limit(&buyer, "buy", 45, 10_000),
        limit(&seller, "sell", 52, 5_000),
        limit(&buyer, "buy", 50, 70_000),
    ] {
        order(app, &key, body).await.expect(200);
    }
    let mut live = Vec::new();
    for _ in 0..4 {
        live.push(next(&mut stayed).await);
    }
    assert_eq!(
        live.iter()
            .map(|update| update["sequence"].clone())
            .collect::<Vec<_>>(),
        [
            json!(since + 1),
            json!(since + 2),
            json!(since + 3),
            json!(since + 4)
        ]
    );

    let mut back = connect(&app.base, &key).await;
    subscribe(
        &mut back,
        json!({"channel": "book:btc_usd", "since": since}),
    )
    .await;
    let mut replayed = Vec::new();
    for _ in 0..4 {
        replayed.push(next(&mut back).await);
    }
    assert_eq!(replayed, live);
    nothing_else(&mut back).await;

    // Then live, like everybody.
    order(app, &key, limit(&seller, "sell", 55, 1_000))
        .await
        .expect(200);
    let update = next(&mut back).await;
    assert_eq!(update, next(&mut stayed).await);
    assert_eq!(update["sequence"], since + 5);

    // At the head: nothing to replay.
    let mut current = connect(&app.base, &key).await;
    subscribe(
        &mut current,
        json!({"channel": "book:btc_usd", "since": since + 5}),
    )
    .await;
    nothing_else(&mut current).await;
    // Ahead of the book: refused, naming `since`.
    send(
        &mut current,
        json!({"op": "subscribe", "channel": "trades:btc_usd", "since": 1, "id": 2}),
    )
    .await;
    let refused = next(&mut current).await;
    assert_eq!(refused["error"]["param"], "since", "{refused}");
    send(
        &mut current,
        json!({"op": "unsubscribe", "channel": "book:btc_usd"}),
    )
    .await;
    next(&mut current).await;
    send(
        &mut current,
        json!({"op": "subscribe", "channel": "book:btc_usd", "since": since + 99, "id": 3}),
    )
    .await;
    let refused = next(&mut current).await;
    assert_eq!(refused["error"]["param"], "since", "{refused}");
}
both_backends!(resuming_a_book_replays_exactly_the_missed_updates);

fn small_resume_window() -> Config {
    Config {
        feed_resume_commands_max: 2,
        feed_resume_events_max: 1,
        ..test_config()
    }
}

/// Further behind than the replay window: a book resume says so and sends
/// a fresh snapshot (equal to the REST book); an event resume says so and
/// sends events from now.
async fn past_the_replay_window_a_resume_starts_fresh(app: &TestApp) {
    let key = app.test_key().await;
    btc_usd(app).await;
    let seller = customer(app, &key, "Seller").await;
    credit(app, &key, &seller, "btc", 1_000_000).await;
    for price in [50, 51, 52] {
        order(app, &key, limit(&seller, "sell", price, 1_000))
            .await
            .expect(200);
    }
    let mut ws = connect(&app.base, &key).await;
    subscribe(&mut ws, json!({"channel": "book:btc_usd", "since": 0})).await;
    let notice = next(&mut ws).await;
    assert_eq!(notice["type"], "resume_unavailable", "{notice}");
    assert_eq!(notice["channel"], "book:btc_usd");
    assert_eq!(notice["since"], 0);
    assert!(notice["message"].is_string());
    let snapshot = next(&mut ws).await;
    assert_eq!(snapshot["type"], "snapshot");
    let rest = app.get("/v1/trading/books/btc_usd", &key).await.expect(200);
    assert_eq!(snapshot["sequence"], rest["sequence"]);
    assert_eq!(snapshot["asks"], rest["asks"]);

    // Events: the orders and a payment are more than the window of one.
    let amina = customer(app, &key, "Amina").await;
    // A stream that saw the payment's events live: they are numbered.
    let mut live = connect(&app.base, &key).await;
    subscribe(&mut live, json!({"channel": "payments"})).await;
    let first = deposit(&app.base, app, &key, &amina, 10_000).await;
    let count = payment_events(app, &key, first["id"].as_str().expect("id"))
        .await
        .len();
    event_messages(&mut live, "payments", count).await;
    let mut probe = connect(&app.base, &key).await;
    subscribe(&mut probe, json!({"channel": "payments", "since": 0})).await;
    let notice = next(&mut probe).await;
    assert_eq!(
        (
            notice["type"].as_str(),
            notice["channel"].as_str(),
            notice["since"].as_u64()
        ),
        (Some("resume_unavailable"), Some("payments"), Some(0)),
        "{notice}"
    );
    let second = deposit(&app.base, app, &key, &amina, 20_000).await;
    let expected = payment_events(app, &key, second["id"].as_str().expect("id")).await;
    let (seen, _) = event_messages(&mut probe, "payments", expected.len()).await;
    assert_eq!(seen, expected);
    nothing_else(&mut probe).await;
}
both_backends!(
    past_the_replay_window_a_resume_starts_fresh,
    super::small_resume_window()
);

fn fast_heartbeats() -> Config {
    Config {
        feed_heartbeat_interval_ms: 100,
        ..test_config()
    }
}

/// Heartbeats arrive on a quiet stream; `prices` sends every pair's best
/// bid and ask, then a new price when a book changes.
async fn heartbeats_and_prices(app: &TestApp) {
    let key = app.test_key().await;
    btc_usd(app).await;
    let seller = customer(app, &key, "Seller").await;
    credit(app, &key, &seller, "btc", 1_000_000).await;
    let mut ws = connect(&app.base, &key).await;
    for _ in 0..2 {
        let beat = next_any(&mut ws).await;
        assert_eq!(beat["type"], "heartbeat", "{beat}");
        assert!(beat["time"].as_i64().expect("time") > 1_600_000_000);
    }

    subscribe(&mut ws, json!({"channel": "prices"})).await;
    let price = next(&mut ws).await;
    assert_eq!(
        price,
        json!({"type": "price", "channel": "prices", "livemode": false, "pair": "btc_usd",
               "sequence": 0, "last_price": null, "best_bid": null, "best_ask": null})
    );
    order(app, &key, limit(&seller, "sell", 50, 1_000))
        .await
        .expect(200);
    let price = next(&mut ws).await;
    assert_eq!(price["pair"], "btc_usd");
    assert_eq!(price["sequence"], 1);
    assert_eq!(price["best_ask"], json!({"price": 50, "quantity": 1_000}));
    nothing_else(&mut ws).await;
}
both_backends!(heartbeats_and_prices, super::fast_heartbeats());

/// Events the outbox retention deleted after `since` (docs/webhooks.md,
/// "Retention"): an event resume says so and sends events from now, never
/// a replay with a silent gap.
async fn a_resume_past_pruned_events_starts_fresh(app: &TestApp) {
    let key = app.test_key().await;
    let amina = customer(app, &key, "Amina").await;
    let mut live = connect(&app.base, &key).await;
    subscribe(&mut live, json!({"channel": "payments"})).await;
    let first = deposit(&app.base, app, &key, &amina, 10_000).await;
    let count = payment_events(app, &key, first["id"].as_str().expect("id"))
        .await
        .len();
    event_messages(&mut live, "payments", count).await;
    let mut tx = app.gateway().store().begin().await.expect("tx");
    let older = "UPDATE events SET created = created - 31 * 86400";
    match tx.conn() {
        malipo_store::Conn::Sqlite(c) => sqlx::query(older).execute(&mut *c).await.map(|_| ()),
        malipo_store::Conn::Postgres(c) => sqlx::query(older).execute(&mut *c).await.map(|_| ()),
    }
    .expect("backdate");
    tx.commit().await.expect("commit");
    let pruned = app.gateway().prune_events().await.expect("prune");
    assert!(pruned >= count as u64, "{pruned} < {count}");

    let mut probe = connect(&app.base, &key).await;
    subscribe(&mut probe, json!({"channel": "payments", "since": 0})).await;
    let notice = next(&mut probe).await;
    assert_eq!(notice["type"], "resume_unavailable", "{notice}");
    assert_eq!(notice["since"], 0);
    assert!(
        notice["message"]
            .as_str()
            .expect("message")
            .contains("retention"),
        "{notice}"
    );
    let second = deposit(&app.base, app, &key, &amina, 20_000).await;
    let expected = payment_events(app, &key, second["id"].as_str().expect("id")).await;
    let (seen, _) = event_messages(&mut probe, "payments", expected.len()).await;
    assert_eq!(seen, expected);
    nothing_else(&mut probe).await;
}
both_backends!(a_resume_past_pruned_events_starts_fresh);

fn snapshots_often() -> Config {
    Config {
        trading_snapshot_every_commands: 2,
        trading_log_retain_commands: 0,
        ..test_config()
    }
}

/// When the log no longer holds the commands after `since` (deleted by the
/// retention, `trading_log_retain_commands`), a resume says so and sends a fresh
/// snapshot; a resume the snapshot and the rest of the log still cover
/// replays.
async fn a_pruned_log_yields_a_fresh_snapshot(app: &TestApp) {
    let key = app.test_key().await;
    btc_usd(app).await;
    let seller = customer(app, &key, "Seller").await;
    credit(app, &key, &seller, "btc", 1_000_000).await;
    for price in [50, 51, 52, 53] {
        order(app, &key, limit(&seller, "sell", price, 1_000))
            .await
            .expect(200);
    }
    // The retention (none kept before the newest snapshot, 4) deletes
    // commands 1 and 2: those after the second newest snapshot (2) stay.
    let pruned = app.gateway().prune_trading_logs().await.expect("prune");
    assert_eq!(pruned, 2);

    let mut ws = connect(&app.base, &key).await;
    subscribe(&mut ws, json!({"channel": "book:btc_usd", "since": 1})).await;
    let notice = next(&mut ws).await;
    assert_eq!(notice["type"], "resume_unavailable", "{notice}");
    assert!(
        notice["message"]
            .as_str()
            .expect("message")
            .contains("no longer holds"),
        "{notice}"
    );
    let snapshot = next(&mut ws).await;
    let rest = app.get("/v1/trading/books/btc_usd", &key).await.expect(200);
    assert_eq!(snapshot["type"], "snapshot");
    assert_eq!(snapshot["sequence"], 4);
    assert_eq!(snapshot["asks"], rest["asks"]);
    nothing_else(&mut ws).await;

    // From 3: the snapshot at 2, command 3, then command 4's update.
    let mut other = connect(&app.base, &key).await;
    subscribe(&mut other, json!({"channel": "book:btc_usd", "since": 3})).await;
    assert_eq!(
        next(&mut other).await,
        json!({"type": "update", "channel": "book:btc_usd", "livemode": false, "sequence": 4,
               "bids": [], "asks": [{"price": 53, "quantity": 1_000, "orders": 1}]})
    );
    nothing_else(&mut other).await;
}
both_backends!(
    a_pruned_log_yields_a_fresh_snapshot,
    super::snapshots_often()
);
