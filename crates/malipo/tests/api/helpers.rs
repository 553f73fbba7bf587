//! `spawn_app`: a real gateway on a random port over a fresh database, on
//! SQLite or PostgreSQL, and one helper per kind of call.

use malipo::config::Config;
use reqwest::StatusCode;
use reqwest::header::HeaderMap;
use serde_json::{Value, json};
use std::time::Duration;

/// The variable naming the PostgreSQL server for tests. Without it the
/// PostgreSQL half of each test is skipped with a message, except in CI
/// (`CI=true`), where a missing server is a failure.
pub const POSTGRES_URL_VARIABLE: &str = "MALIPO_TEST_DATABASE_URL";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

pub struct TestApp {
    pub base: String,
    pub client: reqwest::Client,
    pub operator_token: String,
    running: Option<malipo::Running>,
    database: TestDatabase,
}

enum TestDatabase {
    Sqlite(#[allow(dead_code)] tempfile::TempDir),
    Postgres { server_url: String, name: String },
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
    let _ = rustls::crypto::ring::default_provider().install_default();
    let database = match backend {
        Backend::Sqlite => {
            let directory = tempfile::tempdir().expect("temp dir");
            config.database_url =
                format!("sqlite://{}", directory.path().join("malipo.db").display());
            TestDatabase::Sqlite(directory)
        }
        Backend::Postgres => {
            let Ok(server_url) = std::env::var(POSTGRES_URL_VARIABLE) else {
                if std::env::var("CI").is_ok_and(|value| value == "true") {
                    panic!(
                        "{POSTGRES_URL_VARIABLE} must be set in CI: PostgreSQL tests never skip there"
                    );
                }
                eprintln!(
                    "SKIPPED (PostgreSQL): set {POSTGRES_URL_VARIABLE}=postgres://… to run this test on PostgreSQL"
                );
                return None;
            };
            let name = format!("malipo_test_{}", uuid::Uuid::new_v4().simple());
            let mut admin = connect_postgres(&server_url).await;
            sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
                .execute(&mut admin)
                .await
                .expect("create test database");
            config.database_url = database_url_with_name(&server_url, &name);
            TestDatabase::Postgres { server_url, name }
        }
    };
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

async fn connect_postgres(url: &str) -> sqlx::PgConnection {
    use sqlx::Connection;
    sqlx::PgConnection::connect(url)
        .await
        .expect("connect to the test PostgreSQL server")
}

/// `postgres://user@host:port/db?x` with the database name replaced.
fn database_url_with_name(server_url: &str, name: &str) -> String {
    let (without_query, query) = match server_url.split_once('?') {
        Some((url, query)) => (url, Some(query)),
        None => (server_url, None),
    };
    let scheme_end = without_query
        .find("://")
        .map(|index| index + 3)
        .unwrap_or(0);
    let base = match without_query[scheme_end..].find('/') {
        Some(slash) => &without_query[..scheme_end + slash],
        None => without_query,
    };
    match query {
        Some(query) => format!("{base}/{name}?{query}"),
        None => format!("{base}/{name}"),
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        let running = self.running.take();
        let TestDatabase::Postgres { server_url, name } = &self.database else {
            return;
        };
        let (server_url, name) = (server_url.clone(), name.clone());
        // Drop runs outside async context: stop the app and drop the
        // database on a runtime of its own.
        let cleanup = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            runtime.block_on(async move {
                if let Some(running) = running {
                    drop(running);
                }
                let mut admin = connect_postgres(&server_url).await;
                let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
                    "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
                )))
                .execute(&mut admin)
                .await;
            });
        });
        let _ = cleanup.join();
    }
}

impl TestApp {
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
