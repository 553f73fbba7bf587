//! A server killed with SIGKILL while webhook deliveries are pending
//! delivers every event after it restarts.

use crate::helpers::{Backend, Receiver};
use malipo_test_support::TestDatabase;
use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

struct Server {
    child: Child,
    base: String,
}

/// Starts the real binary and reads its address from what it prints.
fn start_server(database_url: &str) -> Server {
    let mut child = Command::new(env!("CARGO_BIN_EXE_malipo"))
        .arg("serve")
        .env("DATABASE_URL", database_url)
        .env("MALIPO_LISTEN", "127.0.0.1:0")
        .env("MALIPO_WORKER_IDLE_INTERVAL_MS", "20")
        .env(
            "MALIPO_WEBHOOK_RETRY_DELAYS_MS",
            format!("[{}]", ["150"; 40].join(",")),
        )
        .env("RUST_LOG", "error")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("the malipo binary starts");
    let stdout = child.stdout.take().expect("stdout");
    let mut lines = BufReader::new(stdout).lines();
    let mut base = None;
    for line in lines.by_ref() {
        let Ok(line) = line else { break };
        if let Some(rest) = line.strip_prefix("Malipo listening on ") {
            base = rest.split_whitespace().next().map(str::to_owned);
            break;
        }
    }
    // Keep draining stdout so the server never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    Server {
        child,
        base: base.expect("the server printed its address"),
    }
}

async fn wait_ready(client: &reqwest::Client, base: &str) {
    for _ in 0..200 {
        if client
            .get(format!("{base}/readyz"))
            .send()
            .await
            .is_ok_and(|response| response.status() == 200)
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("server at {base} never became ready");
}

async fn pending_events_survive_sigkill(backend: Backend) {
    let Some(database) = TestDatabase::create(backend).await else {
        return;
    };
    malipo_gateway::install_crypto_provider();
    let client = reqwest::Client::new();
    // A port for the receiver, closed for now so every delivery fails.
    let reserved = std::net::TcpListener::bind("127.0.0.1:0").expect("reserve a port");
    let receiver_address = reserved.local_addr().expect("address");
    drop(reserved);

    let mut server = start_server(&database.url);
    wait_ready(&client, &server.base).await;
    // An operator token from the CLI, against the running server's database.
    let output = Command::new(env!("CARGO_BIN_EXE_malipo"))
        .args(["operator", "token"])
        .env("DATABASE_URL", &database.url)
        .env("RUST_LOG", "error")
        .output()
        .expect("malipo operator token");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let token = String::from_utf8_lossy(&output.stdout).trim().to_owned();
    let merchant: Value = client
        .post(format!("{}/v1/admin/merchants", server.base))
        .bearer_auth(&token)
        .json(&json!({"name": "Crash Test Ltd"}))
        .send()
        .await
        .expect("create merchant")
        .json()
        .await
        .expect("json");
    let key = merchant["test_secret_key"]["secret"]
        .as_str()
        .expect("key")
        .to_owned();
    let endpoint = client
        .post(format!("{}/v1/webhook_endpoints", server.base))
        .bearer_auth(&key)
        .json(&json!({"url": format!("http://{receiver_address}/hooks"), "enabled_events": ["*"]}))
        .send()
        .await
        .expect("create endpoint");
    assert_eq!(endpoint.status(), 200);
    for _ in 0..10 {
        let response = client
            .post(format!("{}/v1/payments", server.base))
            .bearer_auth(&key)
            .json(&json!({"amount": 1000, "currency": "kes", "method": "sandbox", "customer": {"phone": "254700000000"}}))
            .send()
            .await
            .expect("payment");
        assert_eq!(response.status(), 200);
    }
    let events: Value = client
        .get(format!("{}/v1/events?limit=100", server.base))
        .bearer_auth(&key)
        .send()
        .await
        .expect("events")
        .json()
        .await
        .expect("json");
    let expected: BTreeSet<String> = events["data"]
        .as_array()
        .expect("data")
        .iter()
        .map(|event| event["id"].as_str().expect("id").to_owned())
        .collect();
    assert_eq!(expected.len(), 20, "created + succeeded for each payment");

    server.child.kill().expect("SIGKILL");
    server.child.wait().expect("reaped");

    let listener = tokio::net::TcpListener::bind(receiver_address)
        .await
        .expect("the receiver takes its port");
    let receiver = Receiver::serve(listener, vec![]);
    let mut restarted = start_server(&database.url);
    let received = receiver
        .wait_until(|received| {
            let ids: BTreeSet<String> = received
                .iter()
                .map(|delivery| {
                    let event: Value = serde_json::from_str(&delivery.body).expect("event");
                    event["id"].as_str().expect("id").to_owned()
                })
                .collect();
            ids.is_superset(&expected)
        })
        .await;
    restarted.child.kill().expect("stop");
    restarted.child.wait().expect("reaped");
    let ids: BTreeSet<String> = received
        .iter()
        .map(|delivery| {
            let event: Value = serde_json::from_str(&delivery.body).expect("event");
            event["id"].as_str().expect("id").to_owned()
        })
        .collect();
    let missing: Vec<_> = expected.difference(&ids).collect();
    assert!(
        missing.is_empty(),
        "events never delivered after the restart: {missing:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pending_events_survive_sigkill_on_sqlite() {
    pending_events_survive_sigkill(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pending_events_survive_sigkill_on_postgres() {
    pending_events_survive_sigkill(Backend::Postgres).await;
}
