//! `GET /v1/trading/stream`: the venue's live feeds over a WebSocket
//! (docs/trading.md, "Live feeds").
//!
//! The upgrade request is authenticated like every API call (a secret key
//! as `Authorization: Bearer`, the key's allowed addresses and rate limit),
//! and counts against the key's open sockets on this node. After the
//! upgrade, two halves: this task reads the client's JSON messages
//! (`subscribe`, `unsubscribe`, `ping`) and queues the answers; a writer
//! task sends the socket's queue, pings, and the close frame when the
//! feeds give up on the socket (slow consumer, no pong). The queue is the
//! socket's bounded send buffer (`malipo_gateway::feeds`).

use crate::AppState;
use crate::error::{ErrorBody, ErrorDetail, HttpResult, status_and_type};
use crate::extract::Merchant;
use axum::Router;
use axum::extract::State;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade, close_code};
use axum::response::Response;
use axum::routing::get;
use futures::stream::SplitSink;
use futures::{SinkExt, StreamExt};
use malipo_gateway::feeds::{Channel, CloseReason, FeedConfig, FeedSocket};
use malipo_gateway::{ApiError, ErrorKind, Gateway, GatewayError};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

/// The largest message a client may send (a subscribe is well under 200
/// bytes).
pub const CLIENT_MESSAGE_BYTES_MAX: usize = 4 * 1024;
/// The longest `id` a client may attach to a message, in bytes.
const CLIENT_ID_BYTES_MAX: usize = 64;

pub fn router() -> Router<AppState> {
    Router::new().route("/v1/trading/stream", get(stream))
}

/// Live feeds of the venue over a WebSocket (`Upgrade: websocket`),
/// authenticated with the secret key as `Authorization: Bearer`. Send
/// `{"op": "subscribe", "channel": "book:btc_usd"}` (channels
/// `book:{pair}`, `trades:{pair}`, `ticker:{pair}`, `orders`); see
/// docs/trading.md for every message. A request that is not a WebSocket
/// upgrade is a 400 `websocket_upgrade_required`; too many open streams
/// for the key a 429 `sockets_too_many`.
#[utoipa::path(get, path = "/v1/trading/stream", tag = "trading",
    responses(
        (status = 101, description = "Switching Protocols: the stream is open"),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 429, body = ErrorBody)),
    security(("secret_key" = [])))]
pub async fn stream(
    State(state): State<AppState>,
    Merchant(context): Merchant,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> HttpResult<Response> {
    let upgrade = upgrade.map_err(|rejection| {
        ApiError::new(
            ErrorKind::InvalidRequest,
            "websocket_upgrade_required",
            format!("open this path as a WebSocket ({rejection})"),
        )
    })?;
    let (socket, queue, permit) = state.gateway.open_feed_socket(&context)?;
    let gateway = state.gateway.clone();
    Ok(upgrade
        .max_message_size(CLIENT_MESSAGE_BYTES_MAX)
        .max_frame_size(CLIENT_MESSAGE_BYTES_MAX)
        .on_upgrade(move |websocket| async move {
            serve(gateway, websocket, socket, queue).await;
            drop(permit);
        }))
}

/// A client's message.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ClientMessage {
    op: Option<String>,
    channel: Option<String>,
    /// Echoed in the answer: a string or a number.
    id: Option<Value>,
}

#[derive(Serialize)]
struct Ack<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    channel: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<&'a Value>,
}

#[derive(Serialize)]
struct ErrorMessage<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<&'a Value>,
    error: ErrorDetail,
}

fn frame(message: &impl Serialize) -> Arc<str> {
    // Serializing these plain structs cannot fail.
    Arc::from(serde_json::to_string(message).unwrap_or_default())
}

fn error_frame(id: Option<&Value>, error: &GatewayError) -> Arc<str> {
    let detail = match error {
        GatewayError::Api(error) => ErrorDetail {
            kind: status_and_type(error.kind).1,
            code: error.code.clone(),
            message: error.message.clone(),
            param: error.param.clone(),
        },
        GatewayError::Internal(_) => {
            tracing::error!(error = %error.chain(), "a stream request failed");
            ErrorDetail {
                kind: "api_error",
                code: "internal_error".into(),
                message: "An internal error occurred.".into(),
                param: None,
            }
        }
    };
    frame(&ErrorMessage {
        kind: "error",
        id,
        error: detail,
    })
}

fn close_frame(reason: CloseReason, config: &FeedConfig) -> CloseFrame {
    let (code, reason) = match reason {
        CloseReason::SlowConsumer => (
            close_code::POLICY,
            format!(
                "slow_consumer: more than {} messages waited to be sent",
                config.send_buffer_messages
            ),
        ),
        CloseReason::PongTimeout => (
            close_code::POLICY,
            "pong_timeout: no pong for two ping intervals".to_owned(),
        ),
    };
    CloseFrame {
        code,
        reason: reason.into(),
    }
}

async fn serve(
    gateway: Gateway,
    websocket: WebSocket,
    socket: Arc<FeedSocket>,
    queue: mpsc::Receiver<Arc<str>>,
) {
    let config = gateway.config().feeds.clone();
    let (sink, mut incoming) = websocket.split();
    let last_pong = Arc::new(Mutex::new(Instant::now()));
    let writer = tokio::spawn(write(
        sink,
        queue,
        socket.clone(),
        config.clone(),
        last_pong.clone(),
    ));
    let mut channels: BTreeSet<Channel> = BTreeSet::new();
    let mut closing = socket.closed_signal();
    loop {
        let message = tokio::select! {
            message = incoming.next() => message,
            _ = closing.changed() => break,
        };
        match message {
            None | Some(Err(_)) | Some(Ok(Message::Close(_))) => break,
            Some(Ok(Message::Text(text))) => {
                answer(&gateway, &socket, &config, &mut channels, text.as_str()).await;
            }
            Some(Ok(Message::Binary(_))) => {
                socket.send(error_frame(
                    None,
                    &ApiError::new(
                        ErrorKind::InvalidRequest,
                        "message_invalid",
                        "send JSON text frames",
                    )
                    .into(),
                ));
            }
            Some(Ok(Message::Pong(_))) => {
                *last_pong.lock().unwrap_or_else(|p| p.into_inner()) = Instant::now();
            }
            // The WebSocket library answers pings itself.
            Some(Ok(Message::Ping(_))) => {}
        }
        if socket.is_closing() {
            break;
        }
    }
    for channel in &channels {
        gateway.feed_unsubscribe(&socket, channel).await;
    }
    if socket.is_closing() {
        // The writer sends the close frame (bounded by the write timeout).
        // Meanwhile read and drop what the client still sends, until its
        // closing answer: a socket closed with unread data is reset, and a
        // reset would discard the close frame before the client reads it.
        let deadline = tokio::time::Instant::now()
            + Duration::from_millis(config.write_timeout_ms.saturating_mul(2));
        loop {
            match tokio::time::timeout_at(deadline, incoming.next()).await {
                Ok(Some(Ok(Message::Close(_)) | Err(_)) | None) | Err(_) => break,
                Ok(Some(Ok(_))) => {}
            }
        }
        let _ = writer.await;
    } else {
        writer.abort();
    }
}

async fn answer(
    gateway: &Gateway,
    socket: &Arc<FeedSocket>,
    config: &FeedConfig,
    channels: &mut BTreeSet<Channel>,
    text: &str,
) {
    let message: ClientMessage = match serde_json::from_str(text) {
        Ok(message) => message,
        Err(error) => {
            socket.send(error_frame(
                None,
                &ApiError::new(
                    ErrorKind::InvalidRequest,
                    "message_invalid",
                    format!("a message is a JSON object {{\"op\", \"channel\", \"id\"}}: {error}"),
                )
                .into(),
            ));
            return;
        }
    };
    let id = message.id.as_ref();
    match handle(gateway, socket, config, channels, &message).await {
        Ok(Some(reply)) => {
            socket.send(reply);
        }
        Ok(None) => {}
        Err(error) => {
            socket.send(error_frame(id, &error));
        }
    }
}

/// One client message; `Ok(None)` when the answer was already queued.
async fn handle(
    gateway: &Gateway,
    socket: &Arc<FeedSocket>,
    config: &FeedConfig,
    channels: &mut BTreeSet<Channel>,
    message: &ClientMessage,
) -> Result<Option<Arc<str>>, GatewayError> {
    let id = message.id.as_ref();
    match id {
        None | Some(Value::Number(_)) => {}
        Some(Value::String(text)) if text.len() <= CLIENT_ID_BYTES_MAX => {}
        Some(_) => {
            return Err(ApiError::invalid(
                "id",
                format!("id must be a number or a string of at most {CLIENT_ID_BYTES_MAX} bytes"),
            )
            .into());
        }
    }
    let op = message
        .op
        .as_deref()
        .ok_or_else(|| ApiError::missing("op"))?;
    let channel = || -> Result<Channel, ApiError> {
        Channel::parse(
            message
                .channel
                .as_deref()
                .ok_or_else(|| ApiError::missing("channel"))?,
        )
    };
    match op {
        "ping" => Ok(Some(frame(&Ack {
            kind: "pong",
            channel: None,
            id,
        }))),
        "subscribe" => {
            let channel = channel()?;
            if channels.contains(&channel) {
                return Err(ApiError::new(
                    ErrorKind::InvalidRequest,
                    "channel_already_subscribed",
                    format!(
                        "already subscribed to `{}`: unsubscribe first for a fresh snapshot",
                        channel.name()
                    ),
                )
                .with_param("channel")
                .into());
            }
            if channels.len() >= config.subscriptions_per_socket_max {
                return Err(ApiError::new(
                    ErrorKind::InvalidRequest,
                    "subscriptions_too_many",
                    format!(
                        "a stream may subscribe to at most {} channels at once",
                        config.subscriptions_per_socket_max
                    ),
                )
                .with_param("channel")
                .into());
            }
            let name = channel.name();
            let ack = frame(&Ack {
                kind: "subscribed",
                channel: Some(&name),
                id,
            });
            gateway.feed_subscribe(socket, &channel, ack).await?;
            channels.insert(channel);
            Ok(None)
        }
        "unsubscribe" => {
            let channel = channel()?;
            if !channels.remove(&channel) {
                return Err(ApiError::new(
                    ErrorKind::InvalidRequest,
                    "channel_not_subscribed",
                    format!("not subscribed to `{}`", channel.name()),
                )
                .with_param("channel")
                .into());
            }
            gateway.feed_unsubscribe(socket, &channel).await;
            let name = channel.name();
            Ok(Some(frame(&Ack {
                kind: "unsubscribed",
                channel: Some(&name),
                id,
            })))
        }
        other => Err(ApiError::invalid(
            "op",
            format!("unknown op `{other}`: use subscribe, unsubscribe or ping"),
        )
        .into()),
    }
}

/// Sends the socket's queue and pings until the socket closes; then the
/// close frame with its reason.
async fn write(
    mut sink: SplitSink<WebSocket, Message>,
    mut queue: mpsc::Receiver<Arc<str>>,
    socket: Arc<FeedSocket>,
    config: FeedConfig,
    last_pong: Arc<Mutex<Instant>>,
) {
    let write_timeout = Duration::from_millis(config.write_timeout_ms);
    let ping_interval = Duration::from_millis(config.ping_interval_ms);
    let mut ping =
        tokio::time::interval_at(tokio::time::Instant::now() + ping_interval, ping_interval);
    let mut closing = socket.closed_signal();
    loop {
        if socket.is_closing() {
            break;
        }
        tokio::select! {
            biased;
            _ = closing.changed() => {}
            _ = ping.tick() => {
                let silent = last_pong.lock().unwrap_or_else(|p| p.into_inner()).elapsed();
                if silent > ping_interval * 2 {
                    socket.close(CloseReason::PongTimeout);
                    continue;
                }
                match tokio::time::timeout(write_timeout, sink.send(Message::Ping(Default::default()))).await {
                    Ok(Ok(())) => {}
                    Ok(Err(_)) => return,
                    Err(_) => socket.close(CloseReason::SlowConsumer),
                }
            }
            text = queue.recv() => {
                let Some(text) = text else { return };
                match tokio::time::timeout(write_timeout, sink.send(Message::Text(text.as_ref().into()))).await {
                    Ok(Ok(())) => {}
                    Ok(Err(_)) => return,
                    Err(_) => socket.close(CloseReason::SlowConsumer),
                }
            }
        }
    }
    let reason = (*socket.closed_signal().borrow()).unwrap_or(CloseReason::SlowConsumer);
    metrics::counter!("malipo_feed_sockets_closed_total", "reason" => match reason {
        CloseReason::SlowConsumer => "slow_consumer",
        CloseReason::PongTimeout => "pong_timeout",
    })
    .increment(1);
    let _ = tokio::time::timeout(
        write_timeout,
        sink.send(Message::Close(Some(close_frame(reason, &config)))),
    )
    .await;
}
