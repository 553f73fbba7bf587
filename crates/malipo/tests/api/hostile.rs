//! Hostile input (issue 7): the classic attacks, each answered with a clear
//! 4xx in the standard error shape (naming the field where one applies),
//! never a 5xx, and changing nothing: every count, balance and the ledger
//! are the same after the attacks as before.

use crate::both_backends;
use crate::helpers::{Response, TestApp, test_config};
use malipo::config::Config;
use reqwest::Method;
use serde_json::{Value, json};

/// Strings that break queries built by concatenation, in every dialect the
/// gateway runs on.
const INJECTIONS: &[&str] = &[
    "' OR '1'='1",
    "' OR 1=1 --",
    "\" OR \"\"=\"",
    "'; DROP TABLE payments; --",
    "x'); DELETE FROM ledger_transfers; --",
    "' UNION SELECT secret_hash, id, id FROM api_keys --",
    "1; SELECT pg_sleep(10)",
    "%' OR '%'='",
    "\\'; --",
    "pay_' OR ''='",
    "*/ OR 1=1 /*",
    "$1",
    "?",
];

/// Rate limits off: each test sends a few thousand requests with one key.
fn unlimited() -> Config {
    Config {
        rate_limit_per_key_per_second: 0,
        rate_limit_per_ip_per_second: 0,
        ..test_config()
    }
}

/// Everything an attack could have changed, as the API shows it.
#[derive(Debug, PartialEq)]
struct Snapshot {
    payments: Value,
    refunds: Value,
    events: usize,
    balance: Value,
    balance_transactions: usize,
    webhook_endpoints: usize,
    api_keys: usize,
    merchants: usize,
    audit: usize,
}

async fn ids(app: &TestApp, path: &str, key: &str) -> Value {
    let list = app.get(path, key).await.expect(200);
    let ids: Vec<Value> = list["data"]
        .as_array()
        .expect("a list")
        .iter()
        .map(|object| json!([object["id"], object["status"], object["amount_refunded"]]))
        .collect();
    Value::Array(ids)
}

async fn count(app: &TestApp, path: &str, key: &str) -> usize {
    app.get(path, key).await.expect(200)["data"]
        .as_array()
        .expect("a list")
        .len()
}

async fn snapshot(app: &TestApp, key: &str) -> Snapshot {
    let operator = app.operator_token.as_str();
    Snapshot {
        payments: ids(app, "/v1/payments?limit=100", key).await,
        refunds: ids(app, "/v1/refunds?limit=100", key).await,
        events: count(app, "/v1/events?limit=100", key).await,
        balance: app.get("/v1/balance", key).await.expect(200),
        balance_transactions: count(app, "/v1/balance_transactions?limit=100", key).await,
        webhook_endpoints: count(app, "/v1/webhook_endpoints?limit=100", key).await,
        api_keys: count(app, "/v1/api_keys?limit=100", key).await,
        merchants: count(app, "/v1/admin/merchants?limit=100", operator).await,
        audit: count(app, "/v1/admin/audit?limit=100", operator).await,
    }
}

/// A merchant with a succeeded payment, a partial refund and a webhook
/// endpoint, next to another merchant whose data must never show.
async fn merchant_with_history(app: &TestApp) -> (String, String) {
    let key = app.test_key().await;
    let payment = app.pay(&key, 10_000, "254700000000").await;
    let payment_id = payment["id"].as_str().expect("id").to_owned();
    app.post(
        "/v1/refunds",
        &key,
        &json!({"payment": payment_id, "amount": 1_000}),
    )
    .await
    .expect(200);
    app.post(
        "/v1/webhook_endpoints",
        &key,
        &json!({"url": "https://merchant.example/hooks", "enabled_events": ["*"]}),
    )
    .await
    .expect(200);
    let other = app.test_key().await;
    app.pay(&other, 777, "254700000000").await;
    (key, payment_id)
}

/// An M-Pesa connector account whose Daraja is unreachable: for requests
/// refused (or recorded) before any provider call.
async fn mpesa_account(app: &TestApp, key: &str) -> Value {
    app.post(
        "/v1/connector_accounts",
        key,
        &json!({"provider": "mpesa", "name": "Paybill", "credentials": {
            "consumer_key": "k", "consumer_secret": "s", "shortcode": "174379",
            "passkey": "p", "base_url": "http://127.0.0.1:9"}}),
    )
    .await
    .expect(200)
}

/// A refusal: the given 4xx in the standard error shape.
#[track_caller]
fn assert_refused(response: &Response, what: &str) {
    let status = response.status.as_u16();
    assert!(
        (400..500).contains(&status),
        "{what}: expected a 4xx, got {status}: {}",
        response.body
    );
    let error = &response.body["error"];
    assert!(
        error["type"].is_string() && error["code"].is_string() && error["message"].is_string(),
        "{what}: not the standard error shape: {}",
        response.body
    );
}

/// Every byte outside the unreserved set percent-encoded (`/`, `?`, `&`
/// and `=` included): one path segment or one query value.
fn encode(text: &str) -> String {
    text.bytes()
        .map(|byte| {
            if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
                (byte as char).to_string()
            } else {
                format!("%{byte:02X}")
            }
        })
        .collect()
}

async fn sql_injection_in_every_filter_and_id(app: &TestApp) {
    let (key, payment_id) = merchant_with_history(app).await;
    let before = snapshot(app, &key).await;
    let operator = app.operator_token.clone();
    let lists: &[(&str, &[&str], bool)] = &[
        (
            "/v1/payments",
            &[
                "status",
                "method",
                "reference",
                "created[gte]",
                "created[lte]",
                "starting_after",
                "ending_before",
                "limit",
            ],
            false,
        ),
        (
            "/v1/refunds",
            &["payment", "created[gte]", "starting_after", "limit"],
            false,
        ),
        (
            "/v1/balance_transactions",
            &["type", "source", "created[lte]", "starting_after"],
            false,
        ),
        (
            "/v1/events",
            &["type", "created[gte]", "ending_before"],
            false,
        ),
        ("/v1/webhook_endpoints", &["starting_after"], false),
        ("/v1/api_keys", &["starting_after", "ending_before"], false),
        ("/v1/connector_accounts", &["starting_after"], false),
        ("/v1/admin/merchants", &["starting_after"], true),
        (
            "/v1/admin/audit",
            &["action", "object_id", "starting_after"],
            true,
        ),
        (
            "/v1/admin/webhooks/inbound",
            &[
                "provider",
                "verdict",
                "outcome",
                "account",
                "starting_after",
            ],
            true,
        ),
    ];
    for (path, params, admin) in lists {
        let credential = if *admin { operator.as_str() } else { &key };
        for param in *params {
            for injection in INJECTIONS {
                let url = format!("{path}?{}={}", encode(param), encode(injection));
                let response = app.get(&url, credential).await;
                match response.status.as_u16() {
                    // A filter that matched nothing: no row of this or any
                    // other merchant leaks out.
                    200 => assert_eq!(
                        response.body["data"],
                        json!([]),
                        "{url} matched rows: {}",
                        response.body
                    ),
                    _ => {
                        assert_refused(&response, &url);
                        assert_eq!(response.status, 400, "{url}: {}", response.body);
                        assert_eq!(
                            response.error_param(),
                            Some(*param),
                            "{url}: the refusal names the parameter"
                        );
                    }
                }
            }
        }
    }

    // Path ids: not found (or refused), never a server error, never a row.
    for injection in INJECTIONS {
        let id = encode(injection);
        let gets = [
            (format!("/v1/payments/{id}"), key.as_str()),
            (format!("/v1/refunds/{id}"), &key),
            (format!("/v1/events/{id}"), &key),
            (format!("/v1/events/{id}/deliveries"), &key),
            (format!("/v1/webhook_endpoints/{id}"), &key),
            (format!("/v1/webhook_endpoints/{id}/deliveries"), &key),
            (format!("/v1/admin/merchants/{id}"), &operator),
            (format!("/v1/admin/payments/{id}"), &operator),
        ];
        for (path, credential) in gets {
            let response = app.get(&path, credential).await;
            assert_refused(&response, &path);
            assert!(
                [400, 404].contains(&response.status.as_u16()),
                "{path}: {}",
                response.body
            );
        }
        let posts = [
            (format!("/v1/payments/{id}/confirm"), key.as_str()),
            (format!("/v1/payments/{id}/cancel"), &key),
            (format!("/v1/api_keys/{id}/revoke"), &key),
            (format!("/v1/webhook_endpoints/{id}"), &key),
            (format!("/v1/webhook_endpoints/{id}/roll_secret"), &key),
            (format!("/v1/events/{id}/redeliver"), &key),
            (format!("/v1/admin/merchants/{id}/api_keys"), &operator),
        ];
        for (path, credential) in posts {
            let response = app.post(&path, credential, &json!({})).await;
            assert_refused(&response, &path);
            assert!(
                [400, 404].contains(&response.status.as_u16()),
                "{path}: {}",
                response.body
            );
        }
        let delete = format!("/v1/webhook_endpoints/{id}");
        let response = app.request(Method::DELETE, &delete, &key, None, &[]).await;
        assert_refused(&response, &delete);
        // A provider callback to an account id that is an injection.
        let hook = format!("/v1/hooks/mpesa/{id}");
        let response = app.post(&hook, "", &json!({"Body": {}})).await;
        assert_eq!(response.status, 404, "{hook}: {}", response.body);
        // In bodies: a refund of an injected payment id, a payment whose
        // reference is an injection (stored verbatim, as data).
        let response = app
            .post("/v1/refunds", &key, &json!({"payment": injection}))
            .await;
        assert_refused(&response, "refund of an injected id");
        assert_eq!(response.error_param(), Some("payment"));
    }
    assert_eq!(
        snapshot(app, &key).await,
        before,
        "no injection changed anything"
    );

    // Stored as data and found again by exact match only.
    let reference = "'; DROP TABLE payments; --";
    let created = app
        .post(
            "/v1/payments",
            &key,
            &json!({"amount": 500, "currency": "kes", "method": "sandbox", "reference": reference}),
        )
        .await
        .expect(200);
    assert_eq!(created["reference"], reference);
    let found = app
        .get(
            &format!("/v1/payments?reference={}", encode(reference)),
            &key,
        )
        .await
        .expect(200);
    assert_eq!(found["data"].as_array().expect("list").len(), 1);
    assert_eq!(found["data"][0]["id"], created["id"]);
    let original = app
        .get(&format!("/v1/payments/{payment_id}"), &key)
        .await
        .expect(200);
    assert_eq!(original["amount_refunded"], 1_000, "the tables are intact");
    assert_eq!(app.verify_ledger().await["ok"], true);
}
both_backends!(sql_injection_in_every_filter_and_id, super::unlimited());

/// Sends `body` as it is (no re-serialization) with the given content type.
async fn raw(app: &TestApp, path: &str, key: &str, body: Vec<u8>) -> Response {
    let response = app
        .client
        .post(format!("{}{path}", app.base))
        .bearer_auth(key)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .expect("sent");
    let status = response.status();
    let headers = response.headers().clone();
    let text = response.text().await.expect("body");
    Response {
        status,
        body: serde_json::from_str(&text).unwrap_or(Value::String(text)),
        headers,
    }
}

async fn oversized_and_deeply_nested_bodies(app: &TestApp) {
    let (key, _) = merchant_with_history(app).await;
    let before = snapshot(app, &key).await;
    let limit = test_config().body_limit_bytes;

    // Past the body limit, on every kind of route: 413 and the error shape.
    let padding = "x".repeat(limit + 1);
    let oversized = format!(
        r#"{{"amount": 100, "currency": "kes", "method": "sandbox", "description": "{padding}"}}"#
    );
    for (path, credential) in [
        ("/v1/payments", key.as_str()),
        ("/v1/refunds", &key),
        ("/v1/webhook_endpoints", &key),
        ("/v1/api_keys", &key),
        ("/v1/admin/merchants", &app.operator_token),
    ] {
        let response = raw(app, path, credential, oversized.clone().into_bytes()).await;
        assert_eq!(response.status, 413, "{path}: {}", response.body);
        assert_refused(&response, path);
        assert_eq!(response.body["error"]["code"], "body_too_large");
    }
    // A body just under the limit is read (and refused for what it says).
    let under = format!(
        r#"{{"amount": 100, "currency": "kes", "method": "sandbox", "description": "{}"}}"#,
        "x".repeat(limit - 100)
    );
    let response = raw(app, "/v1/payments", &key, under.into_bytes()).await;
    assert_eq!(response.status, 400, "{}", response.body);
    assert_eq!(response.error_param(), Some("description"));

    // Deeply nested JSON: in metadata, in an unknown field, as the whole body.
    for depth in [64usize, 1_000, 20_000] {
        let nested = format!("{}{}", "[".repeat(depth), "]".repeat(depth));
        for body in [
            format!(
                r#"{{"amount": 100, "currency": "kes", "method": "sandbox", "metadata": {nested}}}"#
            ),
            format!(r#"{{"amount": 100, "currency": "kes", "method": "sandbox", "x": {nested}}}"#),
            nested.clone(),
            format!(
                "{}1{}",
                r#"{"a":"#.repeat(depth.min(5_000)),
                "}".repeat(depth.min(5_000))
            ),
        ] {
            let response = raw(app, "/v1/payments", &key, body.into_bytes()).await;
            assert_refused(&response, &format!("nested {depth}"));
            assert_eq!(response.status, 400, "{}", response.body);
        }
    }
    // Not JSON at all, invalid UTF-8 (an overlong `/`), a NUL byte.
    for body in [
        b"\xc0\xaf".to_vec(),
        br#"{"amount": 100, "currency": "kes", "method": "sandbox", "reference": "a"#.to_vec(),
        [
            br#"{"amount": 100, "currency": "kes", "method": "sandbox", "reference": "a"#
                .as_slice(),
            b"\xc0\xaf\"}",
        ]
        .concat(),
        [
            br#"{"amount": 100, "currency": "kes", "method": "sandbox", "reference": "a"#
                .as_slice(),
            b"\x00\"}",
        ]
        .concat(),
        vec![0xff; 100],
    ] {
        let response = raw(app, "/v1/payments", &key, body).await;
        assert_eq!(response.status, 400, "{}", response.body);
        assert_eq!(response.body["error"]["code"], "body_malformed");
    }
    // A provider callback past its own limit, and garbage bytes as one.
    // (A second sandbox account is a conflict, not a server error: the
    // first sandbox payment made one.)
    let second_sandbox = app
        .post(
            "/v1/connector_accounts",
            &key,
            &json!({"provider": "sandbox", "name": "hooks", "webhook_secret": "s3cret-s3cret-s3cret"}),
        )
        .await;
    assert_eq!(second_sandbox.status, 409, "{}", second_sandbox.body);
    assert_eq!(second_sandbox.error_param(), Some("provider"));
    let account = app
        .post(
            "/v1/connector_accounts",
            &key,
            &json!({"provider": "paystack", "name": "hooks", "webhook_secret": "s3cret-s3cret-s3cret"}),
        )
        .await
        .expect(200);
    let hook = format!(
        "/v1/hooks/paystack/{}",
        account["id"].as_str().expect("account id")
    );
    let response = raw(app, &hook, "", vec![b'x'; 300 * 1024]).await;
    assert_eq!(response.status, 413, "{}", response.body);
    assert_refused(&response, "oversized callback");
    let response = raw(app, &hook, "", b"\x00\xff\xc0\xaf".to_vec()).await;
    // Callbacks are answered in the providers' terms, not the API's shape.
    assert_eq!(response.status, 401, "garbage callback: {}", response.body);
    assert_eq!(response.body["error"], "missing_signature");
    // An unsigned provider's callback naming a payment by an id with NUL
    // and bidi tricks: recorded and answered, never a server error.
    let mpesa = mpesa_account(app, &key).await;
    let mpesa_hook = format!("/v1/hooks/mpesa/{}", mpesa["id"].as_str().expect("id"));
    for body in [
        br#"{"Body": {"stkCallback": {"CheckoutRequestID": "ws_CO_\u0000\u202e1", "MerchantRequestID": "1\u0000", "ResultCode": 0, "ResultDesc": "ok"}}}"#.to_vec(),
        b"\x00\x00\x00".to_vec(),
        br#"{"Body": {"stkCallback": {"CheckoutRequestID": "' OR 1=1 --", "ResultCode": 0}}}"#.to_vec(),
    ] {
        let response = raw(app, &mpesa_hook, "", body).await;
        assert!(response.status.as_u16() < 500, "{}", response.body);
    }
    let log = app
        .get(
            "/v1/admin/webhooks/inbound?provider=mpesa",
            &app.operator_token,
        )
        .await
        .expect(200);
    assert_eq!(
        log["data"].as_array().expect("log").len(),
        3,
        "each recorded"
    );

    let mut after = snapshot(app, &key).await;
    // The two connector accounts are audited; nothing else changed.
    after.audit -= 2;
    assert_eq!(after, before);
    assert_eq!(app.verify_ledger().await["ok"], true);
}
both_backends!(oversized_and_deeply_nested_bodies, super::unlimited());

async fn unicode_tricks_in_references_and_metadata(app: &TestApp) {
    let (key, payment_id) = merchant_with_history(app).await;
    let before = snapshot(app, &key).await;
    let payment = |field: &str, value: Value| {
        let mut body = json!({"amount": 100, "currency": "kes", "method": "sandbox"});
        if let Some((outer, inner)) = field.split_once('.') {
            body[outer] = json!({ inner: value });
        } else {
            body[field] = value;
        }
        body
    };
    // Identifiers (reference, metadata keys) refuse every control and
    // invisible formatting character; free text (descriptions, metadata
    // values, names) refuses NUL, C0 controls other than tab and newlines,
    // and the bidi overrides that reorder what a dashboard shows.
    let cases = [
        (
            payment("reference", json!("order\u{202e}1001")),
            "reference",
        ),
        (
            payment("reference", json!("order\u{200b}1001")),
            "reference",
        ),
        (
            payment("reference", json!("order\u{feff}1001")),
            "reference",
        ),
        (payment("reference", json!("order\u{0}1001")), "reference"),
        (payment("reference", json!("order\u{1b}[31m")), "reference"),
        (
            payment("reference", json!("order\u{2066}1001")),
            "reference",
        ),
        (payment("metadata.order\u{202e}", json!("1")), "metadata"),
        (payment("metadata.order\u{200d}", json!("1")), "metadata"),
        (
            payment("metadata.order", json!("a\u{0}b")),
            "metadata.order",
        ),
        (
            payment("metadata.order", json!("gpj.\u{202e}exe")),
            "metadata[order]",
        ),
        (payment("description", json!("a\u{0}b")), "description"),
        (payment("customer.name", json!("a\u{0}b")), "customer.name"),
        (
            payment("customer.name", json!("a\u{202d}b")),
            "customer[name]",
        ),
        (payment("description", json!("a\u{2067}b")), "description"),
        (
            payment("customer.email", json!("a\u{0}@b.example")),
            "customer.email",
        ),
    ];
    for (body, param) in &cases {
        let response = app.post("/v1/payments", &key, body).await;
        assert_eq!(response.status, 400, "{body}: {}", response.body);
        assert_refused(&response, &body.to_string());
        let named = response.error_param().expect("a param");
        assert!(
            named.starts_with(param),
            "{body}: named {named}, expected {param}"
        );
    }
    // The same in a refund's metadata and a webhook endpoint's description.
    let response = app
        .post(
            "/v1/refunds",
            &key,
            &json!({"payment": payment_id, "amount": 1, "metadata": {"note": "a\u{0}b"}}),
        )
        .await;
    assert_eq!(response.status, 400, "{}", response.body);
    assert_eq!(response.error_param(), Some("metadata.note"));
    let response = app
        .post(
            "/v1/webhook_endpoints",
            &key,
            &json!({"url": "https://merchant.example/x", "enabled_events": ["*"], "description": "a\u{0}b"}),
        )
        .await;
    assert_eq!(response.status, 400, "{}", response.body);
    assert_eq!(response.error_param(), Some("description"));
    let response = app
        .post(
            "/v1/admin/merchants",
            &app.operator_token,
            &json!({"name": "Duka\u{0}Ltd"}),
        )
        .await;
    assert_eq!(response.status, 400, "{}", response.body);
    assert_eq!(response.error_param(), Some("name"));
    // NUL in a query string filter.
    for url in [
        "/v1/payments?reference=a%00b",
        "/v1/refunds?payment=pay_%00",
        "/v1/events?type=payment.%00",
    ] {
        let response = app.get(url, &key).await;
        assert_eq!(response.status, 400, "{url}: {}", response.body);
        assert_refused(&response, url);
    }
    assert_eq!(snapshot(app, &key).await, before, "nothing was written");

    // Legitimate non-ASCII text is kept exactly: Swahili, Arabic (right to
    // left without override characters), emoji joined by ZWJ, CJK.
    let metadata = json!({
        "jina": "Wanjiku Kamau",
        "عنوان": "شارع الجامعة ١٢",
        "note": "👩‍👩‍👧 家族\tline\nnext",
    });
    let created = app
        .post(
            "/v1/payments",
            &key,
            &json!({"amount": 100, "currency": "kes", "method": "sandbox",
                    "reference": "ORD-٢٠٢٦-ü", "description": "Malipo ya ‏ada", "metadata": metadata}),
        )
        .await
        .expect(200);
    let read = app
        .get(
            &format!("/v1/payments/{}", created["id"].as_str().expect("id")),
            &key,
        )
        .await
        .expect(200);
    assert_eq!(read["metadata"], metadata);
    assert_eq!(read["reference"], "ORD-٢٠٢٦-ü");
    assert_eq!(read["description"], "Malipo ya ‏ada");
}
both_backends!(
    unicode_tricks_in_references_and_metadata,
    super::unlimited()
);

async fn hostile_amounts_and_currencies(app: &TestApp) {
    let (key, payment_id) = merchant_with_history(app).await;
    // An M-Pesa account (never called: every case is refused first).
    mpesa_account(app, &key).await;
    let before = snapshot(app, &key).await;
    let body = |amount: &str, currency: &str, method: &str| {
        format!(r#"{{"amount": {amount}, "currency": "{currency}", "method": "{method}"}}"#)
    };
    let cases: Vec<(String, &str)> = vec![
        (body("-1", "kes", "sandbox"), "amount"),
        (body("-9223372036854775808", "kes", "sandbox"), "amount"),
        (body("0", "kes", "sandbox"), "amount"),
        (body("-0", "kes", "sandbox"), "amount"),
        (body("18446744073709551615", "kes", "sandbox"), "amount"),
        (body("18446744073709551616", "kes", "sandbox"), "amount"),
        (
            body("340282366920938463463374607431768211456", "kes", "sandbox"),
            "amount",
        ),
        (body("1e30", "kes", "sandbox"), "amount"),
        (body("1e2", "kes", "sandbox"), "amount"),
        (body("100.0", "kes", "sandbox"), "amount"),
        (body("100.5", "kes", "sandbox"), "amount"),
        (body("0.1", "btc", "sandbox"), "amount"),
        (body("\"100\"", "kes", "sandbox"), "amount"),
        (body("\"1e3\"", "kes", "sandbox"), "amount"),
        (body("null", "kes", "sandbox"), "amount"),
        (body("true", "kes", "sandbox"), "amount"),
        (body("[100]", "kes", "sandbox"), "amount"),
        (body("{\"value\": 100}", "kes", "sandbox"), "amount"),
        // Past a currency's per-payment maximum: UGX has no minor unit, so
        // UGX 50 billion is its cap; USD's is 999,999.00.
        (body("50000000001", "ugx", "sandbox"), "amount"),
        (body("100000000", "usd", "sandbox"), "amount"),
        // Cents on M-Pesa, which takes whole shillings.
        (body("150050", "kes", "mpesa"), "amount"),
        // Currencies: unknown, wrong type, tricks.
        (body("100", "ke", "sandbox"), "currency"),
        (body("100", "kes\\u0000", "sandbox"), "currency"),
        (body("100", "' OR 1=1 --", "sandbox"), "currency"),
        (body("100", "ugx", "mpesa"), "currency"),
        (body("100", "\\u212aes", "sandbox"), "currency"),
        (
            r#"{"amount": 100, "currency": 404, "method": "sandbox"}"#.into(),
            "currency",
        ),
    ];
    for (body, param) in &cases {
        let response = raw(app, "/v1/payments", &key, body.clone().into_bytes()).await;
        assert_eq!(response.status, 400, "{body}: {}", response.body);
        assert_refused(&response, body);
        assert_eq!(response.error_param(), Some(*param), "{body}");
    }
    // Refund amounts: negative, zero, float, more than is left.
    for (amount, status) in [
        ("-1", 400),
        ("0", 400),
        ("1.5", 400),
        ("\"5\"", 400),
        ("18446744073709551616", 400),
        // More than is left: refused as an invalid amount.
        ("9001", 400),
        ("18446744073709551615", 400),
    ] {
        let body = format!(r#"{{"payment": "{payment_id}", "amount": {amount}}}"#);
        let response = raw(app, "/v1/refunds", &key, body.clone().into_bytes()).await;
        assert_eq!(response.status, status, "{body}: {}", response.body);
        assert_refused(&response, &body);
        assert_eq!(response.error_param(), Some("amount"), "{body}");
    }
    assert_eq!(snapshot(app, &key).await, before, "no amount got through");
    assert_eq!(app.verify_ledger().await["ok"], true);
}
both_backends!(hostile_amounts_and_currencies, super::unlimited());

async fn duplicate_json_keys_are_refused(app: &TestApp) {
    let (key, payment_id) = merchant_with_history(app).await;
    let before = snapshot(app, &key).await;
    // Two parsers may keep different copies of a duplicated key (first or
    // last): refused, naming the key, wherever it appears.
    let cases: &[(&str, &str, &str)] = &[
        (
            "/v1/payments",
            r#"{"amount": 100, "amount": 100000, "currency": "kes", "method": "sandbox"}"#,
            "amount",
        ),
        (
            "/v1/payments",
            r#"{"amount": 100, "currency": "kes", "currency": "ugx", "method": "sandbox"}"#,
            "currency",
        ),
        (
            "/v1/payments",
            r#"{"amount": 100, "currency": "kes", "method": "sandbox", "customer": {"phone": "254700000000", "phone": "254700000002"}}"#,
            "customer.phone",
        ),
        (
            "/v1/payments",
            r#"{"amount": 100, "currency": "kes", "method": "sandbox", "metadata": {"order": "1", "order": "2"}}"#,
            "metadata.order",
        ),
        (
            "/v1/refunds",
            r#"{"payment": "PAYMENT", "amount": 1, "amount": 9000}"#,
            "amount",
        ),
        (
            "/v1/refunds",
            r#"{"payment": "PAYMENT", "amount": 1, "metadata": {"a": "1", "a": "1"}}"#,
            "metadata.a",
        ),
        (
            "/v1/webhook_endpoints",
            r#"{"url": "https://a.example/x", "url": "https://b.example/x", "enabled_events": ["*"]}"#,
            "url",
        ),
    ];
    for (path, body, param) in cases {
        let body = body.replace("PAYMENT", &payment_id);
        let response = raw(app, path, &key, body.clone().into_bytes()).await;
        assert_eq!(response.status, 400, "{body}: {}", response.body);
        assert_refused(&response, &body);
        assert_eq!(response.error_param(), Some(*param), "{body}");
    }
    assert_eq!(snapshot(app, &key).await, before, "nothing was written");
}
both_backends!(duplicate_json_keys_are_refused, super::unlimited());
