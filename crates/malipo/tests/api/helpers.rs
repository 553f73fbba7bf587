//! `spawn_app`: a real gateway on a random port over a fresh database, on
//! SQLite or PostgreSQL, and one helper per kind of call.

use malipo::config::Config;
use reqwest::StatusCode;
use reqwest::header::HeaderMap;
use serde_json::{Value, json};
use std::time::Duration;

pub use malipo_test_support::Backend;
use malipo_test_support::TestDatabase;

pub struct TestApp {
    pub base: String,
    pub client: reqwest::Client,
    pub operator_token: String,
    running: Option<malipo::Running>,
    // Dropped last (fields drop in order); a PostgreSQL database is dropped
    // WITH (FORCE), closing the app's connections.
    database: TestDatabase,
}

pub struct Response {
    pub status: StatusCode,
    pub body: Value,
    pub headers: HeaderMap,
}

impl Response {
    #[track_caller]
    pub fn expect(self, status: u16) -> Value {
        assert_eq!(
            self.status.as_u16(),
            status,
            "unexpected status; body: {}",
            self.body
        );
        self.body
    }

    /// The error's `param`, asserting the error shape.
    #[track_caller]
    pub fn error_param(&self) -> Option<&str> {
        let error = &self.body["error"];
        assert!(
            error["type"].is_string() && error["code"].is_string() && error["message"].is_string(),
            "{}",
            self.body
        );
        error["param"].as_str()
    }
}

pub fn test_config() -> Config {
    Config {
        listen: "127.0.0.1:0".into(),
        worker_idle_interval_ms: 20,
        ..Config::default()
    }
}

/// Starts an app, or `None` when PostgreSQL is asked for but not configured
/// outside CI (the test then passes after printing that it skipped).
#[allow(dead_code)]
pub async fn spawn_app(backend: Backend) -> Option<TestApp> {
    spawn_app_with(backend, test_config()).await
}

pub async fn spawn_app_with(backend: Backend, mut config: Config) -> Option<TestApp> {
    malipo_gateway::install_crypto_provider();
    let database = TestDatabase::create(backend).await?;
    config.database_url = database.url.clone();
    let running = malipo::start(&config).await.expect("app starts");
    let operator_token = running
        .first_operator_token
        .clone()
        .expect("a fresh database prints an operator token");
    Some(TestApp {
        base: format!("http://{}", running.address),
        client: reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .expect("client"),
        operator_token,
        running: Some(running),
        database,
    })
}

/// Another node on the same database as `app` (several `malipo serve`
/// processes sharing one PostgreSQL).
pub async fn spawn_node(database_url: &str, mut config: Config) -> malipo::Running {
    config.database_url = database_url.to_owned();
    malipo::start(&config).await.expect("node starts")
}

impl TestApp {
    /// The database this app runs on.
    pub fn database_url(&self) -> &str {
        &self.database.url
    }

    /// The running gateway, for checks the API does not expose yet.
    pub fn gateway(&self) -> &malipo_gateway::Gateway {
        &self.running.as_ref().expect("running").gateway
    }

    pub async fn request(
        &self,
        method: reqwest::Method,
        path: &str,
        key: &str,
        body: Option<&Value>,
        headers: &[(&str, &str)],
    ) -> Response {
        let mut request = self
            .client
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(key);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request.send().await.expect("request sent");
        let status = response.status();
        let headers = response.headers().clone();
        assert!(
            headers.contains_key("request-id"),
            "every response carries a Request-Id"
        );
        let text = response.text().await.expect("body");
        let body = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        Response {
            status,
            body,
            headers,
        }
    }

    pub async fn get(&self, path: &str, key: &str) -> Response {
        self.request(reqwest::Method::GET, path, key, None, &[])
            .await
    }

    pub async fn post(&self, path: &str, key: &str, body: &Value) -> Response {
        self.request(reqwest::Method::POST, path, key, Some(body), &[])
            .await
    }

    pub async fn post_idempotent(
        &self,
        path: &str,
        key: &str,
        body: &Value,
        idempotency_key: &str,
    ) -> Response {
        self.request(
            reqwest::Method::POST,
            path,
            key,
            Some(body),
            &[("Idempotency-Key", idempotency_key)],
        )
        .await
    }

    /// A new merchant through the operator API; answers (merchant id, test key, live key).
    pub async fn merchant(&self) -> (String, String, String) {
        let body = self
            .post(
                "/v1/admin/merchants",
                &self.operator_token,
                &json!({"name": "Duka Ltd", "email": "ops@duka.example"}),
            )
            .await
            .expect(200);
        (
            body["merchant"]["id"].as_str().expect("id").to_owned(),
            body["test_secret_key"]["secret"]
                .as_str()
                .expect("test key")
                .to_owned(),
            body["live_secret_key"]["secret"]
                .as_str()
                .expect("live key")
                .to_owned(),
        )
    }

    /// A test key of a new merchant.
    pub async fn test_key(&self) -> String {
        self.merchant().await.1
    }

    pub async fn pay(&self, key: &str, amount: u64, phone: &str) -> Value {
        self.post(
            "/v1/payments",
            key,
            &json!({"amount": amount, "currency": "kes", "method": "sandbox", "customer": {"phone": phone}}),
        )
        .await
        .expect(200)
    }

    /// Polls a payment until `done` holds or 15 s pass.
    pub async fn wait_for_payment(
        &self,
        key: &str,
        id: &str,
        done: impl Fn(&Value) -> bool,
    ) -> Value {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
        loop {
            let payment = self
                .get(&format!("/v1/payments/{id}"), key)
                .await
                .expect(200);
            if done(&payment) || tokio::time::Instant::now() > deadline {
                return payment;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// GETs a list until it holds `length` objects or 10 s pass (for records
    /// written just after the effect a test observed).
    pub async fn wait_for_list(&self, path: &str, key: &str, length: usize) -> Value {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            let list = self.get(path, key).await.expect(200);
            if list["data"].as_array().expect("a list").len() >= length
                || tokio::time::Instant::now() > deadline
            {
                return list;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    pub async fn verify_ledger(&self) -> Value {
        self.get("/v1/admin/ledger/verify", &self.operator_token)
            .await
            .expect(200)
    }
}

/// Runs one test body on SQLite and on PostgreSQL, as two tests; an
/// optional second argument is the `Config` to start with.
#[macro_export]
macro_rules! both_backends {
    ($name:ident) => {
        $crate::both_backends!($name, $crate::helpers::test_config());
    };
    ($name:ident, $config:expr) => {
        mod $name {

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                if let Some(app) =
                    $crate::helpers::spawn_app_with($crate::helpers::Backend::Sqlite, $config).await
                {
                    super::$name(&app).await;
                }
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                if let Some(app) =
                    $crate::helpers::spawn_app_with($crate::helpers::Backend::Postgres, $config)
                        .await
                {
                    super::$name(&app).await;
                }
            }
        }
    };
}

/// A request a [`Receiver`] got.
#[derive(Debug, Clone)]
pub struct Received {
    pub signature: String,
    pub body: String,
    pub at: tokio::time::Instant,
}

/// A local HTTP server standing in for a merchant's webhook endpoint: it
/// records every request and answers the queued statuses, then 200.
#[derive(Clone)]
pub struct Receiver {
    pub url: String,
    received: std::sync::Arc<std::sync::Mutex<Vec<Received>>>,
}

impl Receiver {
    pub async fn start(statuses: Vec<u16>) -> Receiver {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind receiver");
        Receiver::serve(listener, statuses)
    }

    /// Serves on an already bound listener (to come back on a known port).
    pub fn serve(listener: tokio::net::TcpListener, statuses: Vec<u16>) -> Receiver {
        use axum::extract::State;
        use axum::http::{HeaderMap, StatusCode};
        type Shared = (
            std::sync::Arc<std::sync::Mutex<Vec<Received>>>,
            std::sync::Arc<std::sync::Mutex<std::collections::VecDeque<u16>>>,
        );
        async fn hook(
            State((received, statuses)): State<Shared>,
            headers: HeaderMap,
            body: String,
        ) -> StatusCode {
            let signature = headers
                .get("malipo-signature")
                .and_then(|value| value.to_str().ok())
                .unwrap_or("")
                .to_owned();
            received.lock().expect("lock").push(Received {
                signature,
                body,
                at: tokio::time::Instant::now(),
            });
            let status = statuses.lock().expect("lock").pop_front().unwrap_or(200);
            StatusCode::from_u16(status).expect("status")
        }
        let url = format!("http://{}/hooks", listener.local_addr().expect("address"));
        let received = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let queued = std::sync::Arc::new(std::sync::Mutex::new(statuses.into_iter().collect()));
        let app = axum::Router::new()
            .route("/hooks", axum::routing::post(hook))
            .with_state((received.clone(), queued));
        tokio::spawn(async move { axum::serve(listener, app).await });
        Receiver { url, received }
    }

    pub fn received(&self) -> Vec<Received> {
        self.received.lock().expect("lock").clone()
    }

    /// Event types received so far, in order.
    pub fn event_types(&self) -> Vec<String> {
        self.received()
            .iter()
            .map(|received| {
                let event: Value = serde_json::from_str(&received.body).expect("json event");
                event["type"].as_str().expect("type").to_owned()
            })
            .collect()
    }

    /// Waits until `done` holds for what was received, or 20 s pass.
    pub async fn wait_until(&self, done: impl Fn(&[Received]) -> bool) -> Vec<Received> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            let received = self.received();
            if done(&received) || tokio::time::Instant::now() > deadline {
                return received;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }
}

/// Checks a `Malipo-Signature` with Python's `hmac` module: an
/// implementation independent of Malipo's. Answers how many `v1` entries
/// verify with `secret`.
pub fn verify_signature_independently(header: &str, body: &str, secret: &str) -> usize {
    let script = r#"
import hmac, hashlib, sys
header, body, secret = sys.argv[1], sys.stdin.read(), sys.argv[2]
parts = [part.split("=", 1) for part in header.split(",")]
t = [v for k, v in parts if k == "t"][0]
expected = hmac.new(secret.encode(), (t + "." + body).encode(), hashlib.sha256).hexdigest()
print(sum(1 for k, v in parts if k == "v1" and hmac.compare_digest(v, expected)))
"#;
    use std::io::Write;
    let mut child = std::process::Command::new("python3")
        .args(["-c", script, header, secret])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("python3 runs");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(body.as_bytes())
        .expect("write body");
    let output = child.wait_with_output().expect("python3 finishes");
    assert!(output.status.success(), "python3 failed");
    String::from_utf8_lossy(&output.stdout)
        .trim()
        .parse()
        .expect("a count")
}
