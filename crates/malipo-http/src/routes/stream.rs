//! `GET /v1/ws` and `GET /v1/trading/stream`: the live feeds over a
//! WebSocket (docs/trading.md, "Live feeds").
//!
//! Two ways in, one stream after them. `/v1/ws` upgrades without any
//! header and takes the credential in the first message (`{"type":
//! "auth", "key": "sk_…"}` or `{"type": "auth", "customer_token":
//! "ct_…"}`) within `auth_timeout_ms`, so browsers (which can't set
//! headers on a WebSocket) can use it with a customer token; anything
//! else closes the socket with a reason. `/v1/trading/stream` authenticates
//! the upgrade request like every API call (`Authorization: Bearer`). Both
//! apply a key's allowed addresses and rate limit, and count against the
//! credential's open sockets on this node. After that, two halves: this task reads the client's JSON messages
//! (`subscribe`, `unsubscribe`, `ping`) and queues the answers; a writer
//! task sends the socket's queue, pings, heartbeats, and the close frame
//! when the feeds give up on the socket (slow consumer, a silent client, an
//! expired customer token). The queue is the
//! socket's bounded send buffer (`malipo_gateway::feeds`).

use crate::AppState;
use crate::error::{ErrorBody, ErrorDetail, HttpResult, status_and_type};
use crate::extract::Merchant;
use crate::security::{check_key_source, limit_credential};
use axum::Router;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade, close_code};
use axum::extract::{FromRequestParts, State};
use axum::http::Extensions;
use axum::http::request::Parts;
use axum::response::Response;
use axum::routing::get;
use futures::stream::SplitSink;
use futures::{SinkExt, StreamExt};
use malipo_gateway::feeds::{
    Channel, CloseReason, FeedConfig, FeedIdentity, FeedSocket, SocketPermit, SubscribeOptions,
};
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

/// The longest close reason a WebSocket close frame carries, in bytes.
const CLOSE_REASON_BYTES_MAX: usize = 123;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/trading/stream", get(stream))
        .route("/v1/ws", get(ws))
}

fn upgrade_required(rejection: WebSocketUpgradeRejection) -> ApiError {
    ApiError::new(
        ErrorKind::InvalidRequest,
        "websocket_upgrade_required",
        format!("open this path as a WebSocket ({rejection})"),
    )
}

/// Live feeds over a WebSocket (`Upgrade: websocket`), authenticated with
/// the secret key as `Authorization: Bearer`: the same stream as `GET
/// /v1/ws` without its auth message. Send `{"op": "subscribe", "channel":
/// "book:btc_usd"}` (channels `book:{pair}`, `trades:{pair}`,
/// `ticker:{pair}`, `prices`, `orders`, `payments`, `trades`; `since`
/// resumes); see docs/trading.md for every message. A request that is not a WebSocket
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
    let upgrade = upgrade.map_err(upgrade_required)?;
    let identity = FeedIdentity::merchant(&context)?;
    let (socket, queue, permit) = state.gateway.open_feed_socket(identity)?;
    let gateway = state.gateway.clone();
    Ok(upgrade
        .max_message_size(CLIENT_MESSAGE_BYTES_MAX)
        .max_frame_size(CLIENT_MESSAGE_BYTES_MAX)
        .on_upgrade(move |websocket| async move {
            serve(gateway, websocket, socket, queue, permit).await;
        }))
}

/// The request's extensions (the peer address), for the checks a key
/// authenticated after the upgrade still goes through.
pub struct RequestExtensions(Extensions);

impl FromRequestParts<AppState> for RequestExtensions {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        _state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        Ok(RequestExtensions(parts.extensions.clone()))
    }
}

/// Live feeds over a WebSocket (`Upgrade: websocket`), authenticated by
/// the first message: `{"type": "auth", "key": "sk_…"}` or `{"type":
/// "auth", "customer_token": "ct_…"}` (from `POST
/// /v1/customers/{id}/tokens`), within `feed_auth_timeout_ms`; a missing,
/// late, malformed or refused auth message closes the socket with code
/// 1008 and a reason (`auth_required`, `auth_timeout`, `auth_failed`,
/// `sockets_too_many`). Then `{"op": "subscribe", "channel": …}` (channels
/// `book:{pair}`, `trades:{pair}`, `ticker:{pair}`, `prices`, `orders`,
/// `payments`, `trades`; `since` resumes); see docs/trading.md for every
/// message. A request that is not a WebSocket upgrade is a 400
/// `websocket_upgrade_required`.
#[utoipa::path(get, path = "/v1/ws", tag = "trading",
    responses(
        (status = 101, description = "Switching Protocols: send the auth message first"),
        (status = 400, body = ErrorBody), (status = 429, body = ErrorBody)),
    security(()))]
pub async fn ws(
    State(state): State<AppState>,
    RequestExtensions(extensions): RequestExtensions,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> HttpResult<Response> {
    let upgrade = upgrade.map_err(upgrade_required)?;
    Ok(upgrade
        .max_message_size(CLIENT_MESSAGE_BYTES_MAX)
        .max_frame_size(CLIENT_MESSAGE_BYTES_MAX)
        .on_upgrade(move |websocket| async move {
            let mut websocket = websocket;
            match authenticate(&state, &extensions, &mut websocket).await {
                Ok((socket, queue, permit)) => {
                    serve(state.gateway.clone(), websocket, socket, queue, permit).await;
                }
                Err(reason) => {
                    refuse(&state.gateway.config().feeds, websocket, reason).await;
                }
            }
        }))
}

/// The first message of `/v1/ws`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AuthMessage {
    #[serde(rename = "type")]
    kind: String,
    key: Option<String>,
    customer_token: Option<String>,
    id: Option<Value>,
}

#[derive(Serialize)]
struct Authenticated<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    livemode: bool,
    customer: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<&'a Value>,
}

const AUTH_REQUIRED: &str = r#"auth_required: the first message must be {"type": "auth", "key": "sk_…"} or {"type": "auth", "customer_token": "ct_…"}"#;

/// `code: message`, cut to what a close frame carries.
fn close_reason(code: &str, message: &str) -> String {
    let mut reason = format!("{code}: {message}");
    if reason.len() > CLOSE_REASON_BYTES_MAX {
        let mut end = CLOSE_REASON_BYTES_MAX;
        while !reason.is_char_boundary(end) {
            end -= 1;
        }
        reason.truncate(end);
    }
    reason
}

fn refused(error: GatewayError) -> String {
    match error {
        GatewayError::Api(error) => {
            let code = if error.code == "sockets_too_many" {
                "sockets_too_many"
            } else {
                "auth_failed"
            };
            close_reason(code, &error.message)
        }
        GatewayError::Internal(_) => {
            tracing::error!(error = %error.chain(), "authenticating a stream failed");
            close_reason("auth_failed", "an internal error occurred")
        }
    }
}

/// Reads the auth message and authenticates it; answers the stream's
/// socket, or the close reason.
async fn authenticate(
    state: &AppState,
    extensions: &Extensions,
    websocket: &mut WebSocket,
) -> Result<(Arc<FeedSocket>, mpsc::Receiver<Arc<str>>, SocketPermit), String> {
    let config = &state.gateway.config().feeds;
    let deadline = tokio::time::Instant::now() + Duration::from_millis(config.auth_timeout_ms);
    let text = loop {
        match tokio::time::timeout_at(deadline, websocket.recv()).await {
            Err(_) => {
                return Err(close_reason(
                    "auth_timeout",
                    &format!("no auth message within {} ms", config.auth_timeout_ms),
                ));
            }
            Ok(Some(Ok(Message::Text(text)))) => break text,
            Ok(Some(Ok(Message::Ping(_) | Message::Pong(_)))) => {}
            Ok(_) => return Err(AUTH_REQUIRED.to_owned()),
        }
    };
    let message: AuthMessage = serde_json::from_str(text.as_str())
        .ok()
        .filter(|message: &AuthMessage| message.kind == "auth")
        .ok_or_else(|| AUTH_REQUIRED.to_owned())?;
    let identity = match (&message.key, &message.customer_token) {
        (Some(key), None) => {
            let context = state
                .gateway
                .authenticate_merchant(key)
                .await
                .map_err(refused)?;
            check_key_source(&context, extensions).map_err(|error| refused(error.into()))?;
            limit_credential(
                state,
                extensions,
                &format!("key:{}", context.key_id),
                "for this API key",
            )
            .await
            .map_err(|error| refused(error.into()))?;
            FeedIdentity::merchant(&context).map_err(|error| refused(error.into()))?
        }
        (None, Some(token)) => {
            let identity = state
                .gateway
                .authenticate_customer_token(token)
                .await
                .map_err(refused)?;
            limit_credential(
                state,
                extensions,
                &format!("customer_token:{}", identity.credential_id),
                "for this customer token",
            )
            .await
            .map_err(|error| refused(error.into()))?;
            identity
        }
        _ => return Err(AUTH_REQUIRED.to_owned()),
    };
    let (socket, queue, permit) = state.gateway.open_feed_socket(identity).map_err(refused)?;
    socket.send(frame(&Authenticated {
        kind: "authenticated",
        livemode: socket.identity().livemode,
        customer: socket.identity().customer.as_deref(),
        id: message.id.as_ref(),
    }));
    Ok((socket, queue, permit))
}

/// Closes a socket that did not authenticate, with its reason.
async fn refuse(config: &FeedConfig, mut websocket: WebSocket, reason: String) {
    metrics::counter!("malipo_feed_auth_refusals_total").increment(1);
    let write_timeout = Duration::from_millis(config.write_timeout_ms);
    let close = Message::Close(Some(CloseFrame {
        code: close_code::POLICY,
        reason: reason.into(),
    }));
    if tokio::time::timeout(write_timeout, websocket.send(close))
        .await
        .is_err()
    {
        return;
    }
    // Wait (bounded) for the client's closing answer, so that the close
    // frame is read before the connection goes.
    let deadline = tokio::time::Instant::now() + write_timeout;
    while let Ok(Some(Ok(message))) = tokio::time::timeout_at(deadline, websocket.recv()).await {
        if matches!(message, Message::Close(_)) {
            break;
        }
    }
}

/// A client's message.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ClientMessage {
    op: Option<String>,
    channel: Option<String>,
    /// Echoed in the answer: a string or a number.
    id: Option<Value>,
    /// Resume after this sequence (book and private event channels).
    since: Option<u64>,
    /// A private channel narrowed to one customer.
    customer: Option<String>,
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
struct Heartbeat {
    #[serde(rename = "type")]
    kind: &'static str,
    /// Unix seconds.
    time: i64,
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
            "pong_timeout: nothing from the client, not even a pong, for two ping intervals"
                .to_owned(),
        ),
        CloseReason::TokenExpired => (
            close_code::POLICY,
            "token_expired: the customer token expired".to_owned(),
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
    permit: SocketPermit,
) {
    let config = gateway.config().feeds.clone();
    let (sink, mut incoming) = websocket.split();
    let last_heard = Arc::new(Mutex::new(Instant::now()));
    let writer = tokio::spawn(write(
        sink,
        queue,
        socket.clone(),
        config.clone(),
        last_heard.clone(),
    ));
    let mut channels: BTreeSet<Channel> = BTreeSet::new();
    let mut closing = socket.closed_signal();
    // A customer token's stream ends with the token.
    let expiry = socket.identity().expires_at.map(|expires_at| {
        let left = u64::try_from(expires_at - malipo_gateway::now_seconds()).unwrap_or(0);
        tokio::time::Instant::now() + Duration::from_secs(left)
    });
    loop {
        let message = tokio::select! {
            message = incoming.next() => message,
            _ = closing.changed() => break,
            _ = async {
                match expiry {
                    Some(at) => tokio::time::sleep_until(at).await,
                    None => std::future::pending::<()>().await,
                }
            } => {
                socket.close(CloseReason::TokenExpired);
                break;
            }
        };
        if let Some(Ok(_)) = &message {
            // Any frame shows the client is there (the silent-client check).
            *last_heard.lock().unwrap_or_else(|p| p.into_inner()) = Instant::now();
        }
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
            // The WebSocket library answers pings itself.
            Some(Ok(Message::Pong(_) | Message::Ping(_))) => {}
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
    drop(permit);
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
            let options = SubscribeOptions {
                since: message.since,
                customer: message.customer.clone(),
            };
            gateway
                .feed_subscribe(socket, &channel, &options, ack)
                .await?;
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
    last_heard: Arc<Mutex<Instant>>,
) {
    let write_timeout = Duration::from_millis(config.write_timeout_ms);
    let ping_interval = Duration::from_millis(config.ping_interval_ms);
    let mut ping =
        tokio::time::interval_at(tokio::time::Instant::now() + ping_interval, ping_interval);
    let heartbeat_interval = Duration::from_millis(config.heartbeat_interval_ms);
    let mut heartbeat = tokio::time::interval_at(
        tokio::time::Instant::now() + heartbeat_interval,
        heartbeat_interval,
    );
    let mut closing = socket.closed_signal();
    loop {
        if socket.is_closing() {
            break;
        }
        tokio::select! {
            biased;
            _ = closing.changed() => {}
            _ = ping.tick() => {
                let silent = last_heard.lock().unwrap_or_else(|p| p.into_inner()).elapsed();
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
            _ = heartbeat.tick() => {
                // Through the queue, after what is already waiting (and
                // counted against the send buffer like any message).
                socket.send(frame(&Heartbeat {
                    kind: "heartbeat",
                    time: malipo_gateway::now_seconds(),
                }));
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
        CloseReason::TokenExpired => "token_expired",
    })
    .increment(1);
    let _ = tokio::time::timeout(
        write_timeout,
        sink.send(Message::Close(Some(close_frame(reason, &config)))),
    )
    .await;
}
