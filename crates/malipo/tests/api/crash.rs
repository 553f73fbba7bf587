//! A server killed with SIGKILL while webhook deliveries are pending
//! delivers every event after it restarts; killed again and again under a
//! load of payments and refunds, it loses nothing it acknowledged and makes
//! nothing twice.

use crate::helpers::{Backend, Receiver};
use malipo_test_support::TestDatabase;
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A `malipo serve` child process. Dropping it kills the process, so a
/// failed assertion never leaves a server running after the test binary
/// exits (a leaked server would hold CI's output open and log forever
/// against a database that no longer exists).
pub(crate) struct Server {
    pub(crate) child: Child,
    pub(crate) base: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts the real binary and reads its address from what it prints.
/// Rate limits are off here: after the crashes the test replays every
/// Idempotency-Key it sent (hundreds) as fast as the server answers, which
/// a per-key limit of 100/s answers with 429 on a fast run (rate limits are
/// tested in `rate_limits.rs`).
fn start_server(database_url: &str) -> Server {
    start_server_with(
        database_url,
        &[
            ("MALIPO_RATE_LIMIT_PER_KEY_PER_SECOND", "0"),
            ("MALIPO_RATE_LIMIT_PER_IP_PER_SECOND", "0"),
        ],
    )
}

/// The same, with more `MALIPO_*` settings in its environment.
pub(crate) fn start_server_with(database_url: &str, settings: &[(&str, &str)]) -> Server {
    let mut child = Command::new(env!("CARGO_BIN_EXE_malipo"))
        .arg("serve")
        .envs(settings.iter().copied())
        .env("DATABASE_URL", database_url)
        .env("MALIPO_LISTEN", "127.0.0.1:0")
        .env("MALIPO_WORKER_IDLE_INTERVAL_MS", "20")
        .env(
            "MALIPO_WEBHOOK_RETRY_DELAYS_MS",
            format!("[{}]", ["150"; 40].join(",")),
        )
        .env("RUST_LOG", "error")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the malipo binary starts");
    // The server's stderr goes through this test's output (captured by the
    // test harness), never straight to the terminal or CI's log.
    let stderr = child.stderr.take().expect("stderr");
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            eprintln!("[malipo serve] {line}");
        }
    });
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

pub(crate) async fn wait_ready(client: &reqwest::Client, base: &str) {
    // Generous: after a SIGKILL on a loaded 2-core CI machine, recovery and
    // migrations checks can take seconds.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while tokio::time::Instant::now() < deadline {
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

/// An operator token from the CLI (against the running server's database)
/// and the test key of a new merchant.
pub(crate) async fn operator_and_merchant(
    client: &reqwest::Client,
    base: &str,
    database_url: &str,
) -> (String, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_malipo"))
        .args(["operator", "token"])
        .env("DATABASE_URL", database_url)
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
        .post(format!("{base}/v1/admin/merchants"))
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
    (token, key)
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
    let (_, key) = operator_and_merchant(&client, &server.base, &database.url).await;
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

/// Kills per run: `MALIPO_TEST_CRASH_KILLS`, default 10 (issue 7's floor).
fn kills() -> usize {
    std::env::var("MALIPO_TEST_CRASH_KILLS")
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(10)
}

/// What the client saw acknowledged: payments by Idempotency-Key, and the
/// refunded amount per payment.
#[derive(Default)]
struct Acknowledged {
    payments: BTreeMap<String, String>,
    refunded: BTreeMap<String, u64>,
    /// Every key sent, acknowledged or not.
    sent: BTreeSet<String>,
}

/// Payments (each followed by a refund of 100 on every other one) until
/// the server dies, recording what it acknowledged.
async fn drive(
    client: reqwest::Client,
    base: String,
    key: String,
    round: usize,
    seen: Arc<Mutex<Acknowledged>>,
) {
    for index in 0.. {
        let idempotency_key = format!("crash-{round}-{index}");
        seen.lock()
            .expect("lock")
            .sent
            .insert(idempotency_key.clone());
        let Ok(response) = client
            .post(format!("{base}/v1/payments"))
            .bearer_auth(&key)
            .header("Idempotency-Key", &idempotency_key)
            .json(
                &json!({"amount": 1000, "currency": "kes", "method": "sandbox",
                          "customer": {"phone": "254700000000"}}),
            )
            .send()
            .await
        else {
            return;
        };
        if response.status() != 200 {
            return;
        }
        let Ok(payment) = response.json::<Value>().await else {
            return;
        };
        let id = payment["id"].as_str().expect("id").to_owned();
        seen.lock()
            .expect("lock")
            .payments
            .insert(idempotency_key.clone(), id.clone());
        if index % 2 == 0 {
            let Ok(response) = client
                .post(format!("{base}/v1/refunds"))
                .bearer_auth(&key)
                .header("Idempotency-Key", format!("refund-{idempotency_key}"))
                .json(&json!({"payment": id, "amount": 100}))
                .send()
                .await
            else {
                return;
            };
            if response.status() != 200 {
                return;
            }
            *seen.lock().expect("lock").refunded.entry(id).or_default() += 100;
        }
    }
}

/// Every id of a list, following `starting_after`.
async fn all_ids(client: &reqwest::Client, base: &str, path: &str, key: &str) -> Vec<String> {
    let mut ids = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let cursor = after
            .as_ref()
            .map(|id| format!("&starting_after={id}"))
            .unwrap_or_default();
        let page: Value = client
            .get(format!("{base}{path}?limit=100{cursor}"))
            .bearer_auth(key)
            .send()
            .await
            .expect("list")
            .json()
            .await
            .expect("json");
        let data = page["data"].as_array().expect("data");
        ids.extend(
            data.iter()
                .map(|object| object["id"].as_str().expect("id").to_owned()),
        );
        if page["has_more"] != true || data.is_empty() {
            return ids;
        }
        after = ids.last().cloned();
    }
}

/// Payments and refunds under load while the server is SIGKILLed at random
/// moments, again and again: every payment the client saw acknowledged
/// exists once with its final state and at least its acknowledged refunds,
/// a retried key never makes a second payment, every event is delivered at
/// least once, and the ledger verifies.
async fn acknowledged_work_survives_repeated_sigkill(backend: Backend) {
    let Some(database) = TestDatabase::create(backend).await else {
        return;
    };
    malipo_gateway::install_crypto_provider();
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("client");
    let receiver = Receiver::start(vec![]).await;
    let mut server = start_server(&database.url);
    wait_ready(&client, &server.base).await;
    let (token, key) = operator_and_merchant(&client, &server.base, &database.url).await;
    let endpoint = client
        .post(format!("{}/v1/webhook_endpoints", server.base))
        .bearer_auth(&key)
        .json(&json!({"url": receiver.url, "enabled_events": ["*"]}))
        .send()
        .await
        .expect("create endpoint");
    assert_eq!(endpoint.status(), 200);

    let seen = Arc::new(Mutex::new(Acknowledged::default()));
    let started = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .subsec_nanos();
    for round in 0..kills() {
        let load = tokio::spawn(drive(
            client.clone(),
            server.base.clone(),
            key.clone(),
            round,
            seen.clone(),
        ));
        // A moment between 100 and 700 ms into the load.
        let jitter = u64::from(
            started
                .wrapping_mul(2_654_435_761)
                .rotate_left(round as u32),
        ) % 600;
        tokio::time::sleep(Duration::from_millis(100 + jitter)).await;
        server.child.kill().expect("SIGKILL");
        server.child.wait().expect("reaped");
        let _ = load.await;
        server = start_server(&database.url);
        wait_ready(&client, &server.base).await;
    }

    let seen = std::mem::take(&mut *seen.lock().expect("lock"));
    assert!(
        seen.payments.len() >= kills(),
        "the load made progress: {} payments acknowledged",
        seen.payments.len()
    );
    // Every key again: an acknowledged one answers its payment, never a
    // second; an unacknowledged one resumes or makes its payment now. A key
    // whose request was running when the server died stays locked for the
    // idempotency lock (60 s), answering 409 until then.
    let mut by_key = BTreeMap::new();
    let mut pending: Vec<&String> = seen.sent.iter().collect();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(90);
    while !pending.is_empty() {
        let mut locked = Vec::new();
        for idempotency_key in pending {
            let response = client
                .post(format!("{}/v1/payments", server.base))
                .bearer_auth(&key)
                .header("Idempotency-Key", idempotency_key)
                .json(
                    &json!({"amount": 1000, "currency": "kes", "method": "sandbox",
                              "customer": {"phone": "254700000000"}}),
                )
                .send()
                .await
                .expect("retry");
            if response.status() == 409 {
                locked.push(idempotency_key);
                continue;
            }
            assert_eq!(response.status(), 200, "{idempotency_key}");
            let payment: Value = response.json().await.expect("json");
            let id = payment["id"].as_str().expect("a payment").to_owned();
            if let Some(acknowledged) = seen.payments.get(idempotency_key) {
                assert_eq!(&id, acknowledged, "{idempotency_key} made a second payment");
            }
            assert_eq!(payment["status"], "succeeded", "{payment}");
            by_key.insert(idempotency_key.clone(), id);
        }
        assert!(
            tokio::time::Instant::now() < deadline || locked.is_empty(),
            "keys still locked after 90 s: {locked:?}"
        );
        if !locked.is_empty() {
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        pending = locked;
    }
    let listed = all_ids(&client, &server.base, "/v1/payments", &key).await;
    let distinct: BTreeSet<&String> = listed.iter().collect();
    assert_eq!(distinct.len(), listed.len(), "no payment listed twice");
    let expected: BTreeSet<&String> = by_key.values().collect();
    assert_eq!(distinct, expected, "one payment per key, and no other");
    for (id, refunded) in &seen.refunded {
        let payment: Value = client
            .get(format!("{}/v1/payments/{id}", server.base))
            .bearer_auth(&key)
            .send()
            .await
            .expect("payment")
            .json()
            .await
            .expect("json");
        // An unacknowledged refund may have committed too.
        assert!(
            payment["amount_refunded"].as_u64().expect("refunded") >= *refunded,
            "{payment}"
        );
    }
    let report: Value = client
        .get(format!("{}/v1/admin/ledger/verify", server.base))
        .bearer_auth(&token)
        .send()
        .await
        .expect("verify")
        .json()
        .await
        .expect("json");
    assert_eq!(report["ok"], true, "{report}");

    let events: BTreeSet<String> = all_ids(&client, &server.base, "/v1/events", &key)
        .await
        .into_iter()
        .collect();
    let delivered = |received: &[crate::helpers::Received]| -> BTreeSet<String> {
        received
            .iter()
            .map(|delivery| {
                let event: Value = serde_json::from_str(&delivery.body).expect("event");
                event["id"].as_str().expect("id").to_owned()
            })
            .collect()
    };
    let received = receiver
        .wait_until(|received| delivered(received).is_superset(&events))
        .await;
    let missing: Vec<_> = events.difference(&delivered(&received)).cloned().collect();
    assert!(missing.is_empty(), "events never delivered: {missing:?}");
    server.child.kill().expect("stop");
    server.child.wait().expect("reaped");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_work_survives_repeated_sigkill_on_sqlite() {
    acknowledged_work_survives_repeated_sigkill(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_work_survives_repeated_sigkill_on_postgres() {
    acknowledged_work_survives_repeated_sigkill(Backend::Postgres).await;
}

/// M-Pesa payments until the server dies, each with its Idempotency-Key
/// as its reference (Daraja's `AccountReference`), recording the ones
/// the server acknowledged: key -> payment id.
async fn drive_mpesa(
    client: reqwest::Client,
    base: String,
    key: String,
    round: usize,
    seen: Arc<Mutex<BTreeMap<String, String>>>,
) {
    for index in 0.. {
        let idempotency_key = format!("m{round}-{index}");
        let Ok(response) = client
            .post(format!("{base}/v1/payments"))
            .bearer_auth(&key)
            .header("Idempotency-Key", &idempotency_key)
            .json(
                &json!({"amount": 10_000, "currency": "kes", "method": "mpesa",
                          "reference": idempotency_key,
                          "customer": {"phone": "254708374149"}}),
            )
            .send()
            .await
        else {
            return;
        };
        if response.status() != 200 {
            return;
        }
        let Ok(payment) = response.json::<Value>().await else {
            return;
        };
        let id = payment["id"].as_str().expect("id").to_owned();
        seen.lock().expect("lock").insert(idempotency_key, id);
    }
}

/// M-Pesa payments while the server is SIGKILLed with STK pushes in the
/// air (and their callbacks then sent to a server that is gone): every
/// payment the client saw acknowledged succeeds after the restarts (the
/// status poll asks Daraja), no payment is ever pushed to the customer's
/// phone twice, the merchant's balance is exactly the net of what
/// succeeded, and the ledger verifies.
async fn provider_calls_survive_sigkill(backend: Backend) {
    let Some(database) = TestDatabase::create(backend).await else {
        return;
    };
    malipo_gateway::install_crypto_provider();
    let mut config = malipo_simulators::SimulatorConfig::for_tests(200);
    config.journal_entries_max = 100_000;
    let simulator = malipo_simulators::spawn(malipo_simulators::Provider::Mpesa, config)
        .await
        .expect("simulator");
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("client");
    let mut server = start_server(&database.url);
    wait_ready(&client, &server.base).await;
    let (token, key) = operator_and_merchant(&client, &server.base, &database.url).await;
    let mpesa = &simulator.config().mpesa;
    let account = client
        .post(format!("{}/v1/connector_accounts", server.base))
        .bearer_auth(&key)
        .json(
            &json!({"provider": "mpesa", "name": "Paybill", "credentials": {
            "consumer_key": mpesa.consumer_key, "consumer_secret": mpesa.consumer_secret,
            "shortcode": mpesa.stk_shortcode, "passkey": mpesa.stk_passkey,
            "base_url": simulator.base_url()}}),
        )
        .send()
        .await
        .expect("connector account");
    assert_eq!(account.status(), 200);

    let seen = Arc::new(Mutex::new(BTreeMap::new()));
    let rounds = kills().div_ceil(2).max(3);
    for round in 0..rounds {
        let load = tokio::spawn(drive_mpesa(
            client.clone(),
            server.base.clone(),
            key.clone(),
            round,
            seen.clone(),
        ));
        // 150 to 850 ms into the load: pushes are in the air.
        tokio::time::sleep(Duration::from_millis(150 + (round as u64 * 233) % 700)).await;
        server.child.kill().expect("SIGKILL");
        server.child.wait().expect("reaped");
        let _ = load.await;
        server = start_server(&database.url);
        wait_ready(&client, &server.base).await;
    }
    let acknowledged = std::mem::take(&mut *seen.lock().expect("lock"));
    assert!(
        acknowledged.len() >= rounds,
        "the load made progress: {} payments acknowledged",
        acknowledged.len()
    );

    let get = |id: String| {
        let client = client.clone();
        let url = format!("{}/v1/payments/{id}", server.base);
        let key = key.clone();
        async move {
            let payment: Value = client
                .get(url)
                .bearer_auth(key)
                .send()
                .await
                .expect("payment")
                .json()
                .await
                .expect("json");
            payment
        }
    };
    // Callbacks went to dead servers: the status poll settles each one.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(90);
    for id in acknowledged.values() {
        let mut payment = get(id.clone()).await;
        while payment["status"] == "processing" && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(200)).await;
            payment = get(id.clone()).await;
        }
        assert_eq!(payment["status"], "succeeded", "{payment}");
    }

    // Never two prompts on the customer's phone for one payment.
    let mut pushes: BTreeMap<String, usize> = BTreeMap::new();
    for request in simulator.requests() {
        if request.path.ends_with("/stkpush/v1/processrequest") {
            let body = request.json().expect("json push");
            let reference = body["AccountReference"].as_str().expect("reference");
            *pushes.entry(reference.to_owned()).or_default() += 1;
        }
    }
    let twice: Vec<_> = pushes.iter().filter(|(_, count)| **count > 1).collect();
    assert!(twice.is_empty(), "pushed more than once: {twice:?}");
    for idempotency_key in acknowledged.keys() {
        assert_eq!(pushes.get(idempotency_key), Some(&1), "{idempotency_key}");
    }

    // One payment per key; whatever did not succeed was never acknowledged
    // (its push, if any, had no answer recorded before the kill); the
    // balance is exactly the net of what succeeded.
    let listed = all_ids(&client, &server.base, "/v1/payments", &key).await;
    let mut references = BTreeSet::new();
    let mut net = 0;
    for id in listed {
        let payment = get(id).await;
        let reference = payment["reference"].as_str().expect("reference").to_owned();
        assert!(
            references.insert(reference.clone()),
            "two payments for {reference}"
        );
        if payment["status"] == "succeeded" {
            net += payment["net"].as_i64().expect("net");
        } else {
            assert!(
                !acknowledged.contains_key(&reference),
                "acknowledged but {payment}"
            );
        }
    }
    let balance: Value = client
        .get(format!("{}/v1/balance", server.base))
        .bearer_auth(&key)
        .send()
        .await
        .expect("balance")
        .json()
        .await
        .expect("json");
    let available = balance["available"]
        .as_array()
        .expect("available")
        .iter()
        .find(|entry| entry["currency"] == "kes")
        .map_or(0, |entry| entry["amount"].as_i64().expect("amount"));
    assert_eq!(available, net, "{balance}");
    eprintln!(
        "{rounds} kills: {} payments acknowledged, {} made, {} pushed",
        acknowledged.len(),
        references.len(),
        pushes.len()
    );
    let report: Value = client
        .get(format!("{}/v1/admin/ledger/verify", server.base))
        .bearer_auth(&token)
        .send()
        .await
        .expect("verify")
        .json()
        .await
        .expect("json");
    assert_eq!(report["ok"], true, "{report}");
    simulator.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn provider_calls_survive_sigkill_on_sqlite() {
    provider_calls_survive_sigkill(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn provider_calls_survive_sigkill_on_postgres() {
    provider_calls_survive_sigkill(Backend::Postgres).await;
}
