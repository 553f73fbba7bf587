//! Live feeds over a real WebSocket (`GET /v1/trading/stream`): a book
//! snapshot then one update per command with increasing sequence, trades
//! and the ticker from orders placed over REST, the `orders` channel
//! limited to the key's merchant and mode, clear errors naming the field,
//! the limits (sockets per key, subscriptions), a slow consumer cut off
//! with a close reason, and a second node's orders reaching a feed on the
//! first.

use crate::both_backends;
use crate::helpers::{TestApp, spawn_node, test_config};
use crate::trading::{assert_consistent, btc_usd, credit, customer, limit, order};
use futures::{SinkExt, StreamExt};
use malipo::config::Config;
use serde_json::{Value, json};
use std::time::Duration;
use tokio::net::{TcpSocket, TcpStream};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

type Ws = WebSocketStream<TcpStream>;

/// How long a test waits for one message before failing (not a timing
/// assertion: a message that never comes would otherwise hang the test).
const WAIT: Duration = Duration::from_secs(30);

fn upgrade_request(
    base: &str,
    key: &str,
) -> tokio_tungstenite::tungstenite::handshake::client::Request {
    let url = format!("{}/v1/trading/stream", base.replace("http://", "ws://"));
    let mut request = url.into_client_request().expect("request");
    request.headers_mut().insert(
        "Authorization",
        format!("Bearer {key}").parse().expect("header"),
    );
    request
}

/// Opens a stream on `base` with `key`, or answers the HTTP status that
/// refused the upgrade.
async fn try_connect(base: &str, key: &str, receive_buffer_bytes: Option<u32>) -> Result<Ws, u16> {
    let address = base.trim_start_matches("http://").parse().expect("address");
    let socket = TcpSocket::new_v4().expect("socket");
    if let Some(bytes) = receive_buffer_bytes {
        socket.set_recv_buffer_size(bytes).expect("buffer size");
    }
    let tcp = socket.connect(address).await.expect("connect");
    match tokio_tungstenite::client_async(upgrade_request(base, key), tcp).await {
        Ok((ws, _)) => Ok(ws),
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            Err(response.status().as_u16())
        }
        Err(error) => panic!("upgrade failed: {error}"),
    }
}

async fn connect(base: &str, key: &str) -> Ws {
    try_connect(base, key, None).await.expect("stream opens")
}

async fn send(ws: &mut Ws, message: Value) {
    ws.send(Message::Text(message.to_string().into()))
        .await
        .expect("send");
}

/// The next JSON message (pings and pongs skipped).
async fn next(ws: &mut Ws) -> Value {
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

async fn subscribe(ws: &mut Ws, channel: &str) {
    send(
        ws,
        json!({"op": "subscribe", "channel": channel, "id": channel}),
    )
    .await;
    assert_eq!(
        next(ws).await,
        json!({"type": "subscribed", "channel": channel, "id": channel})
    );
}

/// The error a message gets: (code, param).
async fn refused(ws: &mut Ws, message: Value) -> (String, Option<String>) {
    send(ws, message.clone()).await;
    let answer = next(ws).await;
    assert_eq!(answer["type"], "error", "{message} -> {answer}");
    assert_eq!(answer["id"], message["id"], "{answer}");
    assert!(answer["error"]["message"].is_string(), "{answer}");
    (
        answer["error"]["code"].as_str().expect("code").to_owned(),
        answer["error"]["param"].as_str().map(str::to_owned),
    )
}

/// A ping answered by its pong proves nothing else was queued before it.
async fn nothing_else(ws: &mut Ws) {
    send(ws, json!({"op": "ping", "id": "fence"})).await;
    assert_eq!(next(ws).await, json!({"type": "pong", "id": "fence"}));
}

async fn book_and_trades_stream_from_rest_orders(app: &TestApp) {
    let key = app.test_key().await;
    btc_usd(app).await;
    let buyer = customer(app, &key, "Buyer").await;
    let seller = customer(app, &key, "Seller").await;
    credit(app, &key, &buyer, "usd", 1_000_000).await;
    credit(app, &key, &seller, "btc", 1_000_000).await;
    order(app, &key, limit(&seller, "sell", 50, 100_000))
        .await
        .expect(200);

    let mut ws = connect(&app.base, &key).await;
    subscribe(&mut ws, "book:btc_usd").await;
    let snapshot = next(&mut ws).await;
    assert_eq!(
        snapshot,
        json!({"type": "snapshot", "channel": "book:btc_usd", "livemode": false, "sequence": 1,
               "bids": [], "asks": [{"price": 50, "quantity": 100_000, "orders": 1}]})
    );
    subscribe(&mut ws, "trades:btc_usd").await;
    subscribe(&mut ws, "ticker:btc_usd").await;
    let ticker = next(&mut ws).await;
    assert_eq!(ticker["type"], "ticker");
    assert_eq!(
        ticker["best_ask"],
        json!({"price": 50, "quantity": 100_000})
    );
    assert_eq!(ticker["best_bid"], Value::Null);
    assert_eq!(ticker["last_price"], Value::Null);

    // A buy crossing the ask: one trade, the ask shrinks, the ticker moves.
    order(app, &key, limit(&buyer, "buy", 50, 30_000))
        .await
        .expect(200);
    let trade = next(&mut ws).await;
    assert_eq!(trade["type"], "trade", "{trade}");
    assert_eq!(trade["channel"], "trades:btc_usd");
    assert_eq!(trade["sequence"], 2);
    assert_eq!(trade["price"], 50);
    assert_eq!(trade["quantity"], 30_000);
    assert_eq!(trade["notional"], 1_500);
    assert_eq!(trade["taker_side"], "buy");
    assert!(trade["time"].as_i64().expect("time") > 1_600_000_000);
    let update = next(&mut ws).await;
    assert_eq!(
        update,
        json!({"type": "update", "channel": "book:btc_usd", "livemode": false, "sequence": 2,
               "bids": [], "asks": [{"price": 50, "quantity": 70_000, "orders": 1}]})
    );
    let ticker = next(&mut ws).await;
    assert_eq!(ticker["type"], "ticker", "{ticker}");
    assert_eq!(ticker["sequence"], 2);
    assert_eq!(ticker["last_price"], 50);

    // A resting bid: the next sequence, one new level, no trade.
    order(app, &key, limit(&buyer, "buy", 45, 10_000))
        .await
        .expect(200);
    let update = next(&mut ws).await;
    assert_eq!(
        update,
        json!({"type": "update", "channel": "book:btc_usd", "livemode": false, "sequence": 3,
               "bids": [{"price": 45, "quantity": 10_000, "orders": 1}], "asks": []})
    );
    let ticker = next(&mut ws).await;
    assert_eq!(ticker["best_bid"], json!({"price": 45, "quantity": 10_000}));

    // Taking the whole ask removes its level (quantity 0).
    order(app, &key, limit(&buyer, "buy", 50, 70_000))
        .await
        .expect(200);
    let trade = next(&mut ws).await;
    assert_eq!(
        (trade["sequence"].clone(), trade["quantity"].clone()),
        (json!(4), json!(70_000))
    );
    let update = next(&mut ws).await;
    assert_eq!(update["sequence"], 4);
    assert_eq!(
        update["asks"],
        json!([{"price": 50, "quantity": 0, "orders": 0}])
    );
    next(&mut ws).await; // the ticker

    // Subscribing again gives a fresh snapshot at the book's sequence,
    // equal to the REST book.
    send(
        &mut ws,
        json!({"op": "unsubscribe", "channel": "book:btc_usd"}),
    )
    .await;
    assert_eq!(
        next(&mut ws).await,
        json!({"type": "unsubscribed", "channel": "book:btc_usd"})
    );
    subscribe(&mut ws, "book:btc_usd").await;
    let snapshot = next(&mut ws).await;
    let rest = app.get("/v1/trading/books/btc_usd", &key).await.expect(200);
    assert_eq!(snapshot["sequence"], rest["sequence"]);
    assert_eq!(snapshot["bids"], rest["bids"]);
    assert_eq!(snapshot["asks"], rest["asks"]);
    nothing_else(&mut ws).await;
    assert_consistent(app).await;
}
both_backends!(book_and_trades_stream_from_rest_orders);

/// `orders` carries the key's merchant's orders only, in the key's mode: a
/// second merchant's orders on the same book never show, a test key never
/// sees the live order and a live key nothing of the test book.
async fn orders_channel_is_private_to_merchant_and_mode(app: &TestApp) {
    let (_, key, live_key) = app.merchant().await;
    let other = app.test_key().await;
    btc_usd(app).await;
    let mine = customer(app, &key, "Mine").await;
    let theirs = customer(app, &other, "Theirs").await;
    credit(app, &key, &mine, "usd", 1_000_000).await;
    credit(app, &other, &theirs, "btc", 1_000_000).await;

    let mut ws = connect(&app.base, &key).await;
    subscribe(&mut ws, "orders").await;
    let mut live = connect(&app.base, &live_key).await;
    subscribe(&mut live, "orders").await;
    subscribe(&mut live, "book:btc_usd").await;
    let live_snapshot = next(&mut live).await;
    assert_eq!(live_snapshot["livemode"], true);
    assert_eq!(live_snapshot["sequence"], 0);

    // A live order, funded by a live deposit: the live stream sees it, the
    // test stream must not (had it leaked, it would come first there).
    let live_buyer = customer(app, &live_key, "Live buyer").await;
    let deposit = app
        .post(
            "/v1/payments",
            &live_key,
            &json!({"amount": 10_000, "currency": "usd", "method": "sandbox",
                    "customer": {"phone": "254700000000"}, "customer_id": live_buyer,
                    "credit_customer": true}),
        )
        .await
        .expect(200);
    assert_eq!(deposit["status"], "succeeded", "{deposit}");
    let live_order = order(app, &live_key, limit(&live_buyer, "buy", 45, 10_000))
        .await
        .expect(200);
    let update = next(&mut live).await;
    assert_eq!(update["type"], "update", "{update}");
    assert_eq!(
        (update["livemode"].clone(), update["sequence"].clone()),
        (json!(true), json!(1))
    );
    let created = next(&mut live).await;
    assert_eq!(created["type"], "order.created", "{created}");
    assert_eq!(created["livemode"], true);
    assert_eq!(created["order"]["id"], live_order["id"]);

    // The other merchant's ask comes first in the test log: had it leaked,
    // it would be the first message.
    order(app, &other, limit(&theirs, "sell", 50, 10_000))
        .await
        .expect(200);
    let placed = order(app, &key, limit(&mine, "buy", 50, 10_000))
        .await
        .expect(200);
    assert_eq!(placed["status"], "filled");
    let created = next(&mut ws).await;
    assert_eq!(created["type"], "order.created", "{created}");
    assert_eq!(created["channel"], "orders");
    assert_eq!(created["livemode"], false);
    assert_eq!(created["pair"], "btc_usd");
    assert_eq!(created["sequence"], 2);
    assert_eq!(created["order"]["id"], placed["id"]);
    let filled = next(&mut ws).await;
    assert_eq!(filled["type"], "order.filled", "{filled}");
    assert_eq!(filled["order"]["id"], placed["id"]);
    assert_eq!(filled["order"]["filled_quantity"], 10_000);
    nothing_else(&mut ws).await;

    // The live stream saw nothing of the test book.
    nothing_else(&mut live).await;
}
both_backends!(orders_channel_is_private_to_merchant_and_mode);

fn strict_limits() -> Config {
    Config {
        feed_sockets_per_key_max: 1,
        feed_subscriptions_per_socket_max: 2,
        ..test_config()
    }
}

/// Every bad message gets an error naming the field, and the stream stays
/// open; the upgrade itself is refused without a key, without the
/// WebSocket headers, and past the key's socket limit.
async fn bad_requests_are_answered_with_the_field(app: &TestApp) {
    let key = app.test_key().await;
    btc_usd(app).await;
    assert_eq!(
        try_connect(&app.base, "sk_test_nope", None).await.err(),
        Some(401)
    );
    let plain = app.get("/v1/trading/stream", &key).await;
    assert_eq!(plain.status, 400, "{}", plain.body);
    assert_eq!(plain.body["error"]["code"], "websocket_upgrade_required");

    let mut ws = connect(&app.base, &key).await;
    assert_eq!(try_connect(&app.base, &key, None).await.err(), Some(429));
    let cases = [
        (
            json!({"op": "subscribe", "channel": "candles:btc_usd", "id": 1}),
            "channel_unknown",
            Some("channel"),
        ),
        (
            json!({"op": "subscribe", "channel": "book", "id": 2}),
            "channel_unknown",
            Some("channel"),
        ),
        (
            json!({"op": "subscribe", "channel": "book:doge_usd", "id": 3}),
            "resource_missing",
            Some("channel"),
        ),
        (
            json!({"op": "subscribe", "id": 4}),
            "parameter_missing",
            Some("channel"),
        ),
        (
            json!({"channel": "book:btc_usd", "id": 5}),
            "parameter_missing",
            Some("op"),
        ),
        (
            json!({"op": "watch", "channel": "book:btc_usd", "id": 6}),
            "parameter_invalid",
            Some("op"),
        ),
        (
            json!({"op": "unsubscribe", "channel": "trades:btc_usd", "id": 7}),
            "channel_not_subscribed",
            Some("channel"),
        ),
        (
            json!({"op": "subscribe", "channel": "orders", "id": [1]}),
            "parameter_invalid",
            Some("id"),
        ),
    ];
    for (message, code, param) in cases {
        let (got_code, got_param) = refused(&mut ws, message.clone()).await;
        assert_eq!(got_code, code, "{message}");
        assert_eq!(got_param.as_deref(), param, "{message}");
    }
    ws.send(Message::Text("not json".into()))
        .await
        .expect("send");
    let answer = next(&mut ws).await;
    assert_eq!(answer["error"]["code"], "message_invalid", "{answer}");

    subscribe(&mut ws, "orders").await;
    subscribe(&mut ws, "trades:btc_usd").await;
    let (code, param) = refused(
        &mut ws,
        json!({"op": "subscribe", "channel": "ticker:btc_usd", "id": 8}),
    )
    .await;
    assert_eq!(
        (code.as_str(), param.as_deref()),
        ("subscriptions_too_many", Some("channel"))
    );
    let (code, param) = refused(
        &mut ws,
        json!({"op": "subscribe", "channel": "orders", "id": 9}),
    )
    .await;
    assert_eq!(
        (code.as_str(), param.as_deref()),
        ("channel_already_subscribed", Some("channel"))
    );
    nothing_else(&mut ws).await;

    // Closing the stream frees the key's place.
    ws.close(None).await.expect("close");
    let mut again = None;
    for _ in 0..100 {
        match try_connect(&app.base, &key, None).await {
            Ok(ws) => {
                again = Some(ws);
                break;
            }
            Err(429) => tokio::time::sleep(Duration::from_millis(50)).await,
            Err(status) => panic!("status {status}"),
        }
    }
    assert!(again.is_some(), "the socket's place was freed");
}
both_backends!(
    bad_requests_are_answered_with_the_field,
    super::strict_limits()
);

fn small_send_buffer() -> Config {
    Config {
        feed_send_buffer_messages: 4,
        ..test_config()
    }
}

/// A client that asks for far more than it reads fills its send buffer and
/// is closed with `slow_consumer`, instead of the server buffering for it.
async fn a_slow_consumer_is_cut_off(app: &TestApp) {
    let key = app.test_key().await;
    btc_usd(app).await;
    let seller = customer(app, &key, "Seller").await;
    credit(app, &key, &seller, "btc", 10_000_000).await;
    // Forty levels make each snapshot about two kilobytes.
    for price in 100..140 {
        order(app, &key, limit(&seller, "sell", price, 1_000))
            .await
            .expect(200);
    }
    // A small receive buffer, so the kernel holds little for the client.
    let ws = try_connect(&app.base, &key, Some(4096))
        .await
        .expect("stream opens");
    let (mut sink, mut stream) = ws.split();
    const ROUNDS: usize = 600;
    let writer = tokio::spawn(async move {
        for _ in 0..ROUNDS {
            for op in ["subscribe", "unsubscribe"] {
                let message = json!({"op": op, "channel": "book:btc_usd"}).to_string();
                if sink.send(Message::Text(message.into())).await.is_err() {
                    return;
                }
            }
        }
    });
    // Read nothing until every request is written (or the server stopped
    // reading them), then drain.
    let _ = tokio::time::timeout(WAIT, writer).await;
    let mut messages = 0usize;
    let close = loop {
        let frame = tokio::time::timeout(WAIT, stream.next())
            .await
            .expect("the stream answers");
        match frame {
            Some(Ok(Message::Text(_))) => messages += 1,
            Some(Ok(Message::Close(frame))) => break frame,
            Some(Ok(_)) => {}
            Some(Err(error)) => panic!("the stream failed before its close frame: {error}"),
            None => panic!("the stream ended without a close frame"),
        }
    };
    let close = close.expect("a close frame with a reason");
    assert_eq!(close.code, CloseCode::Policy);
    assert!(
        close.reason.starts_with("slow_consumer"),
        "{}",
        close.reason
    );
    assert!(
        messages < 3 * ROUNDS,
        "the server stopped queueing: {messages} messages"
    );
    // The server is fine: a new stream works.
    let mut ws = connect(&app.base, &key).await;
    nothing_else(&mut ws).await;
}
both_backends!(a_slow_consumer_is_cut_off, super::small_send_buffer());

/// An order placed through a second node on the same database reaches a
/// stream on the first (by the first node's poll of the command log).
async fn another_nodes_orders_reach_the_stream(app: &TestApp) {
    let key = app.test_key().await;
    btc_usd(app).await;
    let buyer = customer(app, &key, "Buyer").await;
    let seller = customer(app, &key, "Seller").await;
    credit(app, &key, &buyer, "usd", 1_000_000).await;
    credit(app, &key, &seller, "btc", 1_000_000).await;
    let mut ws = connect(&app.base, &key).await;
    subscribe(&mut ws, "book:btc_usd").await;
    assert_eq!(next(&mut ws).await["sequence"], 0);
    subscribe(&mut ws, "trades:btc_usd").await;
    subscribe(&mut ws, "orders").await;

    let second = spawn_node(app.database_url(), test_config()).await;
    let second_base = format!("http://{}", second.address);
    for body in [
        limit(&seller, "sell", 50, 20_000),
        limit(&buyer, "buy", 50, 5_000),
    ] {
        let response = app
            .client
            .post(format!("{second_base}/v1/trading/orders"))
            .bearer_auth(&key)
            .json(&body)
            .send()
            .await
            .expect("order");
        assert_eq!(response.status(), 200);
    }
    let mut seen = Vec::new();
    while seen.len() < 6 {
        seen.push(next(&mut ws).await);
    }
    let kinds: Vec<(String, u64)> = seen
        .iter()
        .map(|message| {
            (
                message["type"].as_str().expect("type").to_owned(),
                message["sequence"].as_u64().expect("sequence"),
            )
        })
        .collect();
    assert_eq!(
        kinds,
        [
            ("update".to_owned(), 1),
            ("order.created".to_owned(), 1),
            ("trade".to_owned(), 2),
            ("update".to_owned(), 2),
            ("order.created".to_owned(), 2),
            ("order.filled".to_owned(), 2),
        ]
    );
    assert_eq!(seen[2]["quantity"], 5_000);
    assert_eq!(
        seen[3]["asks"],
        json!([{"price": 50, "quantity": 15_000, "orders": 1}])
    );
    nothing_else(&mut ws).await;
    assert_consistent(app).await;
}
both_backends!(another_nodes_orders_reach_the_stream);
