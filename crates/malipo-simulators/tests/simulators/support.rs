//! A callback receiver (a tiny axum server that records what it gets and
//! answers what it is told to) and small HTTP helpers.

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::IntoResponse;
use malipo_simulators::{Provider, RunningSimulator, SimulatorConfig, spawn};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

/// Callback delay used by the tests: short, but long enough that a status
/// query right after the request still sees the transaction pending.
pub const DELAY_MS: u64 = 40;
/// Callback delay for tests that must observe a transaction still pending:
/// wide enough for a loaded 2-core machine to send the status query first.
pub const PENDING_WINDOW_MS: u64 = 500;
/// Upper bound for any wait in the tests.
pub const WAIT: Duration = Duration::from_secs(5);
/// How long to wait when checking that nothing (more) arrives.
pub const QUIET: Duration = Duration::from_millis(300);

pub async fn simulator(provider: Provider) -> RunningSimulator {
    simulator_with(provider, SimulatorConfig::for_tests(DELAY_MS)).await
}

pub async fn simulator_with(provider: Provider, config: SimulatorConfig) -> RunningSimulator {
    spawn(provider, config).await.expect("simulator starts")
}

/// One client for every test: building one per request costs tens of
/// milliseconds (TLS setup). Pooling is off because each test has its own
/// runtime and a pooled connection must not outlive the runtime it was
/// made on.
pub fn client() -> reqwest::Client {
    static CLIENT: OnceLock<reqwest::Client> = OnceLock::new();
    CLIENT
        .get_or_init(|| {
            let _ = rustls::crypto::ring::default_provider().install_default();
            reqwest::Client::builder()
                .no_proxy()
                .pool_max_idle_per_host(0)
                .timeout(Duration::from_secs(10))
                .build()
                .expect("client")
        })
        .clone()
}

/// Status and body (JSON if it parses, else the text as a JSON string).
pub async fn answer(response: reqwest::Response) -> (u16, Value) {
    let status = response.status().as_u16();
    let text = response.text().await.expect("body");
    let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
    (status, body)
}

/// A URL nothing listens on (a port just released).
pub fn closed_port_url(path: &str) -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    drop(listener);
    format!("http://127.0.0.1:{port}{path}")
}

/// One request the receiver got.
#[derive(Debug, Clone)]
pub struct Received {
    pub method: String,
    pub path: String,
    pub headers: HeaderMap,
    pub raw: String,
    pub body: Value,
}

impl Received {
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .and_then(|value| value.to_str().ok())
            .map(str::to_string)
    }
}

#[derive(Clone, Default)]
struct Shared {
    received: Arc<Mutex<Vec<Received>>>,
    replies: Arc<Mutex<HashMap<String, (u16, Value)>>>,
}

/// Records every request; answers 200 `{"ResultCode": 0, "ResultDesc":
/// "Accepted"}` unless told otherwise for a path.
pub struct Receiver {
    pub base_url: String,
    shared: Shared,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.server.abort();
    }
}

async fn record(
    State(shared): State<Shared>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> impl IntoResponse {
    let raw = String::from_utf8_lossy(&body).into_owned();
    let path = uri.path().to_string();
    shared.received.lock().expect("lock").push(Received {
        method: method.to_string(),
        path: path.clone(),
        headers,
        body: serde_json::from_str(&raw).unwrap_or(Value::Null),
        raw,
    });
    let (status, reply) = shared
        .replies
        .lock()
        .expect("lock")
        .get(&path)
        .cloned()
        .unwrap_or((200, json!({"ResultCode": 0, "ResultDesc": "Accepted"})));
    (
        StatusCode::from_u16(status).expect("status"),
        axum::Json(reply),
    )
}

impl Receiver {
    pub async fn start() -> Receiver {
        let shared = Shared::default();
        let app = Router::new().fallback(record).with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind receiver");
        let base_url = format!("http://{}", listener.local_addr().expect("addr"));
        let server = tokio::spawn(async move {
            axum::serve(listener, app).await.expect("receiver serves");
        });
        Receiver {
            base_url,
            shared,
            server,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base_url)
    }

    /// Answer `status` / `body` to requests on `path`.
    pub fn reply(&self, path: &str, status: u16, body: Value) {
        self.shared
            .replies
            .lock()
            .expect("lock")
            .insert(path.to_string(), (status, body));
    }

    pub fn received(&self) -> Vec<Received> {
        self.shared.received.lock().expect("lock").clone()
    }

    /// Waits for at least `count` requests (at most [`WAIT`]).
    pub async fn wait_for(&self, count: usize) -> Vec<Received> {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let received = self.received();
            if received.len() >= count {
                return received;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "expected {count} callbacks, got {}: {received:?}",
                received.len()
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// Waits [`QUIET`] and asserts exactly `count` requests arrived.
    pub async fn assert_exactly(&self, count: usize) -> Vec<Received> {
        tokio::time::sleep(QUIET).await;
        let received = self.received();
        assert_eq!(received.len(), count, "callbacks: {received:?}");
        received
    }
}
