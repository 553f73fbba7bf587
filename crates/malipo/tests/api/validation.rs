use crate::both_backends;
use crate::helpers::TestApp;
use serde_json::{Value, json};

async fn bad_input_names_the_field_and_writes_nothing(app: &TestApp) {
    let key = app.test_key().await;
    let many_keys: serde_json::Map<String, Value> =
        (0..51).map(|i| (format!("k{i}"), json!("v"))).collect();
    let cases = [
        (json!({"currency": "kes", "method": "sandbox"}), "amount"),
        (
            json!({"amount": 0, "currency": "kes", "method": "sandbox"}),
            "amount",
        ),
        (
            json!({"amount": -5, "currency": "kes", "method": "sandbox"}),
            "amount",
        ),
        (
            json!({"amount": "100", "currency": "kes", "method": "sandbox"}),
            "amount",
        ),
        (
            json!({"amount": 10_000_000_001u64, "currency": "kes", "method": "sandbox"}),
            "amount",
        ),
        (json!({"amount": 100, "method": "sandbox"}), "currency"),
        (
            json!({"amount": 100, "currency": "xyz", "method": "sandbox"}),
            "currency",
        ),
        (json!({"amount": 100, "currency": "kes"}), "method"),
        (
            json!({"amount": 100, "currency": "kes", "method": "cheque"}),
            "method",
        ),
        (
            json!({"amount": 100, "currency": "kes", "method": "card"}),
            "method",
        ),
        (
            json!({"amount": 100, "currency": "kes", "method": "sandbox", "colour": "red"}),
            "colour",
        ),
        (
            json!({"amount": 100, "currency": "kes", "method": "sandbox", "customer": {"phone": "12ab"}}),
            "customer[phone]",
        ),
        (
            json!({"amount": 100, "currency": "kes", "method": "sandbox", "customer": {"phone": "1", "age": 3}}),
            "customer.age",
        ),
        (
            json!({"amount": 100, "currency": "kes", "method": "sandbox", "metadata": many_keys}),
            "metadata",
        ),
        (
            json!({"amount": 100, "currency": "kes", "method": "sandbox", "metadata": {"note": "x".repeat(501)}}),
            "metadata[note]",
        ),
        (
            json!({"amount": 100, "currency": "kes", "method": "sandbox", "reference": "r".repeat(256)}),
            "reference",
        ),
        (
            json!({"amount": 100, "currency": "kes", "method": "sandbox", "confirm": "yes"}),
            "confirm",
        ),
    ];
    for (body, param) in cases {
        let response = app.post("/v1/payments", &key, &body).await;
        assert_eq!(response.status, 400, "{body}: {}", response.body);
        assert_eq!(response.body["error"]["type"], "invalid_request_error");
        assert_eq!(response.error_param(), Some(param), "{body}");
    }

    let raw = |body: &'static str, content_type: &'static str| {
        app.client
            .post(format!("{}/v1/payments", app.base))
            .bearer_auth(&key)
            .header("content-type", content_type)
            .body(body)
            .send()
    };
    let malformed = raw("{\"amount\": 100,", "application/json")
        .await
        .expect("sent");
    assert_eq!(malformed.status(), 400);
    let body: Value = malformed.json().await.expect("json");
    assert_eq!(body["error"]["code"], "body_malformed");
    let wrong_type = raw("amount=100", "application/x-www-form-urlencoded")
        .await
        .expect("sent");
    assert_eq!(wrong_type.status(), 400);

    let huge = json!({"amount": 100, "currency": "kes", "method": "sandbox", "description": "x".repeat(70 * 1024)});
    let oversized = app.post("/v1/payments", &key, &huge).await;
    assert_eq!(oversized.status, 413);
    assert_eq!(oversized.body["error"]["code"], "body_too_large");

    let listed = app.get("/v1/payments", &key).await.expect(200);
    assert_eq!(
        listed["data"],
        json!([]),
        "no refused request wrote anything"
    );
    assert_eq!(
        app.get("/v1/balance", &key).await.expect(200)["available"],
        json!([])
    );
}
both_backends!(bad_input_names_the_field_and_writes_nothing);
