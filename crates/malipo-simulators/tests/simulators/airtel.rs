//! Airtel Money: token, USSD push, enquiry, refund, callbacks.

use crate::support::{
    DELAY_MS, PENDING_WINDOW_MS, Receiver, answer, client, simulator, simulator_with,
};
use base64::Engine;
use hmac::{Hmac, KeyInit, Mac};
use malipo_simulators::{AirtelConfig, Provider, RunningSimulator, SimulatorConfig};
use serde_json::{Value, json};
use sha2::Sha256;

async fn token(simulator: &RunningSimulator) -> String {
    let (status, body) = answer(
        client()
            .post(format!("{}/auth/oauth2/token", simulator.base_url()))
            .json(&json!({
                "client_id": "malipo-airtel-client-id",
                "client_secret": "malipo-airtel-client-secret",
                "grant_type": "client_credentials",
            }))
            .send()
            .await
            .expect("token"),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    body["access_token"].as_str().expect("token").to_string()
}

fn collection(id: &str, msisdn: &str, amount: Value) -> Value {
    json!({
        "reference": "Testing transaction",
        "subscriber": {"country": "UG", "currency": "UGX", "msisdn": msisdn},
        "transaction": {"amount": amount, "country": "UG", "currency": "UGX", "id": id},
    })
}

async fn collect(simulator: &RunningSimulator, token: &str, body: &Value) -> (u16, Value) {
    answer(
        client()
            .post(format!("{}/merchant/v1/payments/", simulator.base_url()))
            .bearer_auth(token)
            .header("X-Country", "UG")
            .header("X-Currency", "UGX")
            .header("Accept", "*/*")
            .json(body)
            .send()
            .await
            .expect("collect"),
    )
    .await
}

async fn enquiry(simulator: &RunningSimulator, token: &str, id: &str) -> (u16, Value) {
    answer(
        client()
            .get(format!(
                "{}/standard/v1/payments/{id}",
                simulator.base_url()
            ))
            .bearer_auth(token)
            .header("X-Country", "UG")
            .header("X-Currency", "UGX")
            .send()
            .await
            .expect("enquiry"),
    )
    .await
}

async fn refund(simulator: &RunningSimulator, token: &str, airtel_money_id: &str) -> (u16, Value) {
    answer(
        client()
            .post(format!(
                "{}/standard/v1/payments/refund",
                simulator.base_url()
            ))
            .bearer_auth(token)
            .header("X-Country", "UG")
            .header("X-Currency", "UGX")
            .json(&json!({"transaction": {"airtel_money_id": airtel_money_id}}))
            .send()
            .await
            .expect("refund"),
    )
    .await
}

#[tokio::test]
async fn token_has_a_string_expires_in_and_bad_clients_are_refused() {
    let simulator = simulator(Provider::Airtel).await;
    let (status, body) = answer(
        client()
            .post(format!("{}/auth/oauth2/token", simulator.base_url()))
            .json(&json!({
                "client_id": "malipo-airtel-client-id",
                "client_secret": "malipo-airtel-client-secret",
                "grant_type": "client_credentials",
            }))
            .send()
            .await
            .expect("token"),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(body["expires_in"], json!("180"), "expires_in is a string");
    assert_eq!(body["token_type"], "bearer");
    let (status, body) = answer(
        client()
            .post(format!("{}/auth/oauth2/token", simulator.base_url()))
            .json(&json!({"client_id": "malipo-airtel-client-id", "client_secret": "nope", "grant_type": "client_credentials"}))
            .send()
            .await
            .expect("token"),
    )
    .await;
    assert_eq!(status, 401);
    assert_eq!(body["error"], "invalid_client");
    let (status, _) = collect(
        &simulator,
        "bogus",
        &collection("t-1", "752000001", json!(1000)),
    )
    .await;
    assert_eq!(status, 401);
}

#[tokio::test]
async fn collection_is_in_progress_then_called_back_and_enquired() {
    // Long enough that the enquiry right after the push still sees TIP.
    let simulator = simulator_with(
        Provider::Airtel,
        SimulatorConfig::for_tests(PENDING_WINDOW_MS),
    )
    .await;
    let receiver = Receiver::start().await;
    simulator
        .set_callback_url(&receiver.url("/airtel/callback"))
        .expect("callback url");
    let token = token(&simulator).await;
    let (status, body) = collect(
        &simulator,
        &token,
        &collection("order-1", "752000001", json!(5000)),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body,
        json!({
            "data": {"transaction": {"id": "order-1", "status": "SUCCESS"}},
            "status": {"code": "200", "message": "SUCCESS", "result_code": "ESB000010",
                       "response_code": "DP00800001006", "success": true},
        })
    );
    let (_, pending) = enquiry(&simulator, &token, "order-1").await;
    assert_eq!(pending["data"]["transaction"]["status"], "TIP");
    assert_eq!(pending["status"]["response_code"], "DP00800001006");

    let callbacks = receiver.wait_for(1).await;
    assert_eq!(callbacks[0].method, "POST");
    let transaction = &callbacks[0].body["transaction"];
    assert_eq!(transaction["id"], "order-1");
    assert_eq!(transaction["status_code"], "TS");
    let money_id = transaction["airtel_money_id"]
        .as_str()
        .expect("id")
        .to_string();
    assert!(money_id.starts_with("MP"));
    let message = transaction["message"].as_str().expect("message");
    assert!(message.starts_with("Paid UGX 5,000 to "), "{message}");
    assert!(callbacks[0].body.get("hash").is_none());

    let (status, body) = enquiry(&simulator, &token, "order-1").await;
    assert_eq!(status, 200);
    assert_eq!(body["data"]["transaction"]["status"], "TS");
    assert_eq!(
        body["data"]["transaction"]["airtel_money_id"],
        money_id.as_str()
    );
    assert_eq!(body["status"]["response_code"], "DP00800001001");

    // Refund: the documented sample's `success: false` beside "SUCCESS".
    let (status, body) = refund(&simulator, &token, &money_id).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["transaction"]["status"], "SUCCESS");
    assert_eq!(
        body["data"]["transaction"]["airtel_money_id"],
        money_id.as_str()
    );
    assert_eq!(body["status"]["result_code"], "ESB000010");
    assert_eq!(body["status"]["success"], json!(false));
    let (status, body) = refund(&simulator, &token, &money_id).await;
    assert_eq!(status, 400, "{body}");
    let (status, body) = refund(&simulator, &token, "MP000000.0000.X00000").await;
    assert_eq!(status, 404);
    assert_eq!(body["status"]["response_code"], "DP00800001025");
}

#[tokio::test]
async fn headers_and_bodies_are_checked() {
    let simulator = simulator(Provider::Airtel).await;
    let token = token(&simulator).await;
    let (status, body) = answer(
        client()
            .post(format!("{}/merchant/v1/payments/", simulator.base_url()))
            .bearer_auth(&token)
            .header("X-Currency", "UGX")
            .json(&collection("h-1", "752000001", json!(100)))
            .send()
            .await
            .expect("collect"),
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(body["status"]["result_code"], "ESB000034");
    assert_eq!(body["status"]["success"], json!(false));
    let (status, body) = answer(
        client()
            .post(format!("{}/merchant/v1/payments/", simulator.base_url()))
            .bearer_auth(&token)
            .header("X-Country", "UG")
            .header("X-Currency", "KES")
            .json(&collection("h-2", "752000001", json!(100)))
            .send()
            .await
            .expect("collect"),
    )
    .await;
    assert_eq!(
        (status, body["status"]["result_code"].clone()),
        (400, json!("ESB000035"))
    );
    let (status, body) = collect(
        &simulator,
        &token,
        &collection("h-3", "256752000001", json!(100)),
    )
    .await;
    assert_eq!(
        (status, body["status"]["result_code"].clone()),
        (400, json!("ESB000036")),
        "msisdn goes without country code"
    );
    let (status, body) = collect(
        &simulator,
        &token,
        &collection("h-4", "752000001", json!("100")),
    )
    .await;
    assert_eq!(
        (status, body["status"]["result_code"].clone()),
        (400, json!("ESB000008"))
    );
    let (status, _) = collect(
        &simulator,
        &token,
        &collection("h-5", "752000001", json!(100)),
    )
    .await;
    assert_eq!(status, 200);
    let (status, body) = collect(
        &simulator,
        &token,
        &collection("h-5", "752000001", json!(100)),
    )
    .await;
    assert_eq!(
        (status, body["status"]["result_code"].clone()),
        (400, json!("ESB000041"))
    );
    let (status, body) = enquiry(&simulator, &token, "unknown").await;
    assert_eq!(
        (status, body["status"]["result_code"].clone()),
        (404, json!("ESB000045"))
    );
}

#[tokio::test]
async fn msisdn_endings_choose_failures_ambiguity_and_delivery_quirks() {
    let simulator = simulator(Provider::Airtel).await;
    let receiver = Receiver::start().await;
    simulator
        .set_callback_url(&receiver.url("/cb"))
        .expect("url");
    let token = token(&simulator).await;
    let cases = [
        ("f-2", "752000002", "TF", "DP00800001007"),
        ("f-4", "752000004", "TF", "DP00800001008"),
        ("f-6", "752000006", "TF", "DP00800001002"),
        ("f-7", "752000007", "TF", "DP00800001024"),
        ("f-8", "752000008", "TA", "DP00800001000"),
        ("f-5", "752000005", "TIP", "DP00800001006"),
        ("f-9", "752000009", "TS", "DP00800001001"),
        ("f-10", "752000010", "TS", "DP00800001001"),
    ];
    for (id, msisdn, _, _) in cases {
        let (status, body) =
            collect(&simulator, &token, &collection(id, msisdn, json!(1000))).await;
        assert_eq!(status, 200, "{body}");
    }
    // 4 failures once each, 0009 lost, 0010 twice; 0005 and 0008 silent.
    let callbacks = receiver.assert_exactly(6).await;
    for (id, _, status_code, response_code) in cases {
        let (_, body) = enquiry(&simulator, &token, id).await;
        assert_eq!(
            body["data"]["transaction"]["status"], status_code,
            "{id}: {body}"
        );
        assert_eq!(body["status"]["response_code"], response_code, "{id}");
        let sent = callbacks
            .iter()
            .filter(|callback| callback.body["transaction"]["id"] == id)
            .count();
        let expected = match id {
            "f-5" | "f-8" | "f-9" => 0,
            "f-10" => 2,
            _ => 1,
        };
        assert_eq!(sent, expected, "{id}");
        if expected > 0 && status_code == "TF" {
            let callback = callbacks
                .iter()
                .find(|callback| callback.body["transaction"]["id"] == id)
                .expect("callback");
            assert_eq!(callback.body["transaction"]["status_code"], "TF");
        }
    }
}

#[tokio::test]
async fn callback_hash_when_callback_authentication_is_on() {
    let config = SimulatorConfig {
        airtel: AirtelConfig {
            callback_hash_key: Some("airtel-private-key".into()),
            ..AirtelConfig::default()
        },
        ..SimulatorConfig::for_tests(DELAY_MS)
    };
    let simulator = simulator_with(Provider::Airtel, config).await;
    let receiver = Receiver::start().await;
    // Through the control endpoint this time.
    let response = client()
        .put(format!("{}/simulate/callback-url", simulator.base_url()))
        .json(&json!({"url": receiver.url("/hashed")}))
        .send()
        .await
        .expect("control");
    assert_eq!(response.status().as_u16(), 204);
    let token = token(&simulator).await;
    collect(
        &simulator,
        &token,
        &collection("hash-1", "752000001", json!(1000)),
    )
    .await;
    let callbacks = receiver.wait_for(1).await;
    let body = &callbacks[0].body;
    let mut mac = Hmac::<Sha256>::new_from_slice(b"airtel-private-key").expect("key");
    mac.update(body["transaction"].to_string().as_bytes());
    let expected = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
    assert_eq!(body["hash"], expected.as_str());
}
