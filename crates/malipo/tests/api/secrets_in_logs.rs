//! Secrets and card numbers never reach the logs. The real binary runs at
//! `RUST_LOG=debug` (what an operator turns on to troubleshoot) and takes a
//! full round of API traffic that carries known secrets (operator token,
//! API keys, webhook secrets, provider credentials, a wrong key) and known
//! card numbers (in metadata, description, reference, a header, a filter,
//! a bad request and a provider callback); then everything it printed is
//! searched. The operator token is printed once on purpose (the first
//! start shows it); nothing else may appear, and no card-like number
//! (15 to 19 digits starting 3-6 that pass the Luhn check) either.

use crate::helpers::{Backend, Receiver};
use malipo_simulators::{Provider, SimulatorConfig};
use malipo_test_support::TestDatabase;
use serde_json::{Value, json};
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Card numbers sent in the run: Visa and Mastercard test numbers, plain
/// and grouped.
const CARD_NUMBERS: [&str; 3] = [
    "4242424242424242",
    "4000 0566 5566 5556",
    "5555-5555-5555-4444",
];

/// The real binary with everything it prints kept in `output`. Dropping it
/// kills the process.
struct LoggedServer {
    child: Child,
    base: String,
    operator_token: String,
    output: Arc<Mutex<Vec<String>>>,
}

impl Drop for LoggedServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl LoggedServer {
    fn start(database_url: &str) -> LoggedServer {
        let child = Command::new(env!("CARGO_BIN_EXE_malipo"))
            .arg("serve")
            .env("DATABASE_URL", database_url)
            .env("MALIPO_LISTEN", "127.0.0.1:0")
            .env("MALIPO_WORKER_IDLE_INTERVAL_MS", "20")
            .env("RUST_LOG", "debug")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the malipo binary starts");
        // Owned by the server from here: a panic below kills it on drop.
        let mut server = LoggedServer {
            child,
            base: String::new(),
            operator_token: String::new(),
            output: Arc::new(Mutex::new(Vec::new())),
        };
        for stream in [
            Box::new(server.child.stdout.take().expect("stdout")) as Box<dyn std::io::Read + Send>,
            Box::new(server.child.stderr.take().expect("stderr")),
        ] {
            let output = server.output.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines() {
                    let Ok(line) = line else { break };
                    output.lock().expect("lock").push(line);
                }
            });
        }
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        loop {
            let lines = server.output.lock().expect("lock").clone();
            let base = lines.iter().find_map(|line| {
                line.strip_prefix("Malipo listening on ")
                    .and_then(|rest| rest.split_whitespace().next())
            });
            let token = lines
                .iter()
                .map(|line| line.trim())
                .find(|line| line.starts_with("op_"));
            if let (Some(base), Some(token)) = (base, token) {
                server.base = base.to_owned();
                server.operator_token = token.to_owned();
                return server;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "no address and operator token printed:\n{}",
                lines.join("\n")
            );
            std::thread::sleep(Duration::from_millis(25));
        }
    }

    /// Stops the server (SIGKILL after its work is awaited by the test)
    /// and answers everything it printed.
    fn stop(mut self) -> String {
        let _ = self.child.kill();
        let _ = self.child.wait();
        // Let the reader threads take the last lines.
        std::thread::sleep(Duration::from_millis(200));
        self.output.lock().expect("lock").join("\n")
    }
}

/// Luhn's check digit test.
fn luhn_valid(digits: &[u8]) -> bool {
    let sum: u32 = digits
        .iter()
        .rev()
        .enumerate()
        .map(|(index, digit)| {
            let value = u32::from(*digit);
            if index % 2 == 1 {
                let doubled = value * 2;
                if doubled > 9 { doubled - 9 } else { doubled }
            } else {
                value
            }
        })
        .sum();
    sum.is_multiple_of(10)
}

/// Card-like numbers in `text`: runs of 15 to 19 digits (spaces and dashes
/// between groups allowed) not touching a letter or digit, starting with 3
/// to 6 (the card networks' first digits), passing the Luhn check.
fn card_like_numbers(text: &str) -> Vec<String> {
    let bytes = text.as_bytes();
    let mut found = Vec::new();
    let mut index = 0;
    while index < bytes.len() {
        // The fraction of a decimal (`elapsed_secs=0.6199409999999999` in
        // the database driver's timings) is not a card number.
        let fraction = index >= 2 && bytes[index - 1] == b'.' && bytes[index - 2].is_ascii_digit();
        let starts = bytes[index].is_ascii_digit()
            && !fraction
            && (index == 0 || !bytes[index - 1].is_ascii_alphanumeric());
        if !starts {
            index += 1;
            continue;
        }
        let mut end = index;
        let mut digits = Vec::new();
        while end < bytes.len() {
            let byte = bytes[end];
            if byte.is_ascii_digit() {
                digits.push(byte - b'0');
            } else if !((byte == b' ' || byte == b'-')
                && end + 1 < bytes.len()
                && bytes[end + 1].is_ascii_digit())
            {
                break;
            }
            end += 1;
        }
        let bounded = end == bytes.len() || !bytes[end].is_ascii_alphabetic();
        if bounded
            && (15..=19).contains(&digits.len())
            && (3..=6).contains(&digits[0])
            && luhn_valid(&digits)
        {
            found.push(text[index..end].to_owned());
        }
        index = end.max(index + 1);
    }
    found
}

#[test]
fn card_like_numbers_are_found() {
    assert!(card_like_numbers("elapsed_secs=0.6199409999999999 x=0.649951000000001").is_empty());
    assert_eq!(
        card_like_numbers("at .4242424242424242"),
        ["4242424242424242"]
    );
    assert_eq!(
        card_like_numbers("pan=4242424242424242;"),
        ["4242424242424242"]
    );
    assert_eq!(
        card_like_numbers("a 4000 0566 5566 5556 b"),
        ["4000 0566 5566 5556"]
    );
    assert_eq!(
        card_like_numbers("5555-5555-5555-4444"),
        ["5555-5555-5555-4444"]
    );
    // Not Luhn-valid, too short, inside an id, or a timestamp.
    assert!(card_like_numbers("4242424242424241").is_empty());
    assert!(card_like_numbers("424242424242").is_empty());
    assert!(card_like_numbers("pay_4242424242424242x").is_empty());
    assert!(card_like_numbers("1764109933123").is_empty());
}

async fn nothing_secret_is_logged(backend: Backend) {
    malipo_gateway::install_crypto_provider();
    let Some(database) = TestDatabase::create(backend).await else {
        return;
    };
    let server = LoggedServer::start(&database.url);
    let base = server.base.clone();
    let client = reqwest::Client::new();
    let call = |method: reqwest::Method, path: &str, key: &str, body: Option<Value>| {
        let mut request = client
            .request(method, format!("{base}{path}"))
            .bearer_auth(key);
        if let Some(body) = body {
            request = request.json(&body);
        }
        async move {
            let response = request.send().await.expect("sent");
            let status = response.status().as_u16();
            let text = response.text().await.expect("body");
            (
                status,
                serde_json::from_str::<Value>(&text).unwrap_or(Value::Null),
            )
        }
    };
    let post =
        |path: &str, key: &str, body: Value| call(reqwest::Method::POST, path, key, Some(body));
    let get = |path: &str, key: &str| call(reqwest::Method::GET, path, key, None);
    let mut secrets: Vec<String> = Vec::new();
    let operator = server.operator_token.clone();

    // Onboarding and key management.
    let (status, merchant) = post(
        "/v1/admin/merchants",
        &operator,
        json!({"name": "Duka Ltd", "email": "ops@duka.example"}),
    )
    .await;
    assert_eq!(status, 200, "{merchant}");
    let key = merchant["test_secret_key"]["secret"]
        .as_str()
        .expect("key")
        .to_owned();
    secrets.push(key.clone());
    secrets.push(
        merchant["live_secret_key"]["secret"]
            .as_str()
            .expect("key")
            .to_owned(),
    );
    let (status, extra) = post(
        "/v1/api_keys",
        &key,
        json!({"name": "ci", "allowed_ips": ["127.0.0.1"]}),
    )
    .await;
    assert_eq!(status, 200, "{extra}");
    secrets.push(extra["secret"].as_str().expect("secret").to_owned());
    let (status, _) = post(
        &format!("/v1/api_keys/{}/revoke", extra["id"].as_str().expect("id")),
        &key,
        json!({}),
    )
    .await;
    assert_eq!(status, 200);
    // A wrong key that looks right, and a revoked one: refused, not logged.
    let wrong = "sk_test_WrongButPlausible0123456789";
    secrets.push(wrong.to_owned());
    assert_eq!(get("/v1/balance", wrong).await.0, 401);
    assert_eq!(get("/v1/balance", &secrets[2]).await.0, 401);
    assert_eq!(
        get("/v1/admin/merchants", "op_WrongOperatorToken0123")
            .await
            .0,
        401
    );
    secrets.push("op_WrongOperatorToken0123".to_owned());

    // Webhooks: an endpoint, its secret rolled, deliveries of every event.
    let receiver = Receiver::start(vec![]).await;
    let (status, endpoint) = post(
        "/v1/webhook_endpoints",
        &key,
        json!({"url": receiver.url, "enabled_events": ["*"]}),
    )
    .await;
    assert_eq!(status, 200, "{endpoint}");
    secrets.push(endpoint["secret"].as_str().expect("secret").to_owned());
    let (status, rolled) = post(
        &format!(
            "/v1/webhook_endpoints/{}/roll_secret",
            endpoint["id"].as_str().expect("id")
        ),
        &key,
        json!({}),
    )
    .await;
    assert_eq!(status, 200, "{rolled}");
    secrets.push(rolled["secret"].as_str().expect("secret").to_owned());

    // Provider credentials: M-Pesa (Daraja simulator) and Stripe.
    let daraja = malipo_simulators::spawn(Provider::Mpesa, SimulatorConfig::for_tests(100))
        .await
        .expect("simulator");
    let mpesa = daraja.config().mpesa.clone();
    secrets.push(mpesa.consumer_secret.clone());
    secrets.push(mpesa.stk_passkey.clone());
    let (status, account) = post(
        "/v1/connector_accounts",
        &key,
        json!({"provider": "mpesa", "name": "Paybill", "credentials": {
            "consumer_key": mpesa.consumer_key, "consumer_secret": mpesa.consumer_secret,
            "shortcode": mpesa.stk_shortcode, "passkey": mpesa.stk_passkey,
            "base_url": daraja.base_url()}}),
    )
    .await;
    assert_eq!(status, 200, "{account}");
    let stripe_simulator =
        malipo_simulators::spawn(Provider::Stripe, SimulatorConfig::for_tests(100))
            .await
            .expect("simulator");
    let stripe = stripe_simulator.config().stripe.clone();
    secrets.push(stripe.secret_key.clone());
    let stripe_webhook_secret = "whsec_LogTestStripeSecret0123456789".to_owned();
    secrets.push(stripe_webhook_secret.clone());
    let (status, stripe_account) = post(
        "/v1/connector_accounts",
        &key,
        json!({"provider": "stripe", "name": "Stripe US", "webhook_secret": stripe_webhook_secret,
               "credentials": {"secret_key": stripe.secret_key, "base_url": stripe_simulator.base_url()}}),
    )
    .await;
    assert_eq!(status, 200, "{stripe_account}");

    // Payments carrying card numbers where a careless log would echo them.
    let (status, sandbox) = post(
        "/v1/payments",
        &key,
        json!({"amount": 1_000, "currency": "kes", "method": "sandbox",
               "customer": {"phone": "254700000000", "name": CARD_NUMBERS[1]},
               "reference": CARD_NUMBERS[0], "description": format!("card {}", CARD_NUMBERS[2]),
               "metadata": {"pan": CARD_NUMBERS[0]}}),
    )
    .await;
    assert_eq!(status, 200, "{sandbox}");
    let (status, stk) = post(
        "/v1/payments",
        &key,
        json!({"amount": 10_000, "currency": "kes", "method": "mpesa",
               "customer": {"phone": "254708374149"}, "metadata": {"card": CARD_NUMBERS[2]}}),
    )
    .await;
    assert_eq!(status, 200, "{stk}");
    let (status, card) = post(
        "/v1/payments",
        &key,
        json!({"amount": 2_000, "currency": "usd", "method": "card",
               "payment_method": "pm_card_visa", "return_url": "https://shop.example/return",
               "metadata": {"pan": CARD_NUMBERS[1]}}),
    )
    .await;
    assert_eq!(status, 200, "{card}");
    // A refund, a bad request holding a card number, a header and a filter.
    let (status, refund) = post(
        "/v1/refunds",
        &key,
        json!({"payment": sandbox["id"], "amount": 100, "metadata": {"pan": CARD_NUMBERS[0]}}),
    )
    .await;
    assert_eq!(status, 200, "{refund}");
    let (status, _) = post(
        "/v1/payments",
        &key,
        json!({"amount": CARD_NUMBERS[0], "currency": "kes", "card_number": CARD_NUMBERS[0]}),
    )
    .await;
    assert_eq!(status, 400);
    let response = client
        .post(format!("{base}/v1/payments"))
        .bearer_auth(&key)
        .header("Idempotency-Key", CARD_NUMBERS[0])
        .header("X-Card", CARD_NUMBERS[1])
        .json(
            &json!({"amount": 500, "currency": "kes", "method": "sandbox",
                      "customer": {"phone": "254700000000"}}),
        )
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status(), 200);
    assert_eq!(
        get(&format!("/v1/payments?reference={}", CARD_NUMBERS[0]), &key)
            .await
            .0,
        200
    );
    // A provider callback whose body holds a card number (unsigned and
    // unknown to Malipo: refused, and recorded without it in the log).
    let response = client
        .post(format!(
            "{base}/v1/hooks/stripe/{}",
            stripe_account["id"].as_str().expect("id")
        ))
        .header("stripe-signature", "t=1,v1=00")
        .body(format!(r#"{{"id":"evt_1","card":"{}"}}"#, CARD_NUMBERS[0]))
        .send()
        .await
        .expect("sent");
    assert!(response.status().is_client_error());

    // Let the background work run: the STK push's callback, the deliveries.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let (_, payment) = get(
            &format!("/v1/payments/{}", stk["id"].as_str().expect("id")),
            &key,
        )
        .await;
        if payment["status"] != "processing" || tokio::time::Instant::now() > deadline {
            assert_eq!(payment["status"], "succeeded", "{payment}");
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    receiver.wait_until(|received| received.len() >= 8).await;
    assert_eq!(
        get("/v1/admin/ledger/verify", &operator).await.1["ok"],
        true
    );
    let (status, _) = get("/v1/admin/audit?limit=100", &operator).await;
    assert_eq!(status, 200);

    let output = server.stop();
    daraja.shutdown().await;
    stripe_simulator.shutdown().await;
    assert!(output.lines().count() > 50, "debug logging ran:\n{output}");
    // The first start prints the operator token once, on purpose.
    assert_eq!(
        output.matches(operator.as_str()).count(),
        1,
        "the operator token"
    );
    for secret in &secrets {
        assert!(!secret.is_empty());
        assert!(
            !output.contains(secret.as_str()),
            "a secret is in the output: {}…",
            &secret[..secret.len().min(8)]
        );
    }
    let cards = card_like_numbers(&output);
    assert!(
        cards.is_empty(),
        "card-like numbers in the output: {cards:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_secret_is_logged_on_sqlite() {
    nothing_secret_is_logged(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_secret_is_logged_on_postgres() {
    nothing_secret_is_logged(Backend::Postgres).await;
}
