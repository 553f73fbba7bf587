//! Relworx: request / send payment, status, signed webhooks.

use crate::support::{
    DELAY_MS, PENDING_WINDOW_MS, Receiver, answer, client, simulator, simulator_with,
};
use hmac::{Hmac, KeyInit, Mac};
use malipo_simulators::{Provider, RelworxConfig, RunningSimulator, SimulatorConfig};
use serde_json::{Value, json};
use sha2::Sha256;

const API_KEY: &str = "malipo-relworx-api-key";
const ACCOUNT: &str = "RELJH012BV45P";

fn payment(reference: &str, msisdn: &str) -> Value {
    json!({
        "account_no": ACCOUNT,
        "reference": reference,
        "msisdn": msisdn,
        "currency": "UGX",
        "amount": 500.0,
        "description": "Payment Request.",
    })
}

async fn call(simulator: &RunningSimulator, path: &str, body: &Value) -> (u16, Value) {
    answer(
        client()
            .post(format!("{}{path}", simulator.base_url()))
            .bearer_auth(API_KEY)
            .header("Accept", "application/vnd.relworx.v2")
            .json(body)
            .send()
            .await
            .expect("request"),
    )
    .await
}

async fn status(simulator: &RunningSimulator, internal_reference: &str) -> (u16, Value) {
    answer(
        client()
            .get(format!(
                "{}/api/mobile-money/check-request-status?internal_reference={internal_reference}&account_no={ACCOUNT}",
                simulator.base_url()
            ))
            .bearer_auth(API_KEY)
            .header("Accept", "application/vnd.relworx.v2")
            .send()
            .await
            .expect("status"),
    )
    .await
}

/// The signature computed independently of the simulator's code.
fn expected_signature(key: &str, url: &str, timestamp: &str, body: &Value) -> String {
    let signed = format!(
        "{url}{timestamp}customer_reference{}internal_reference{}status{}",
        body["customer_reference"]
            .as_str()
            .expect("customer_reference"),
        body["internal_reference"]
            .as_str()
            .expect("internal_reference"),
        body["status"].as_str().expect("status"),
    );
    let mut mac = Hmac::<Sha256>::new_from_slice(key.as_bytes()).expect("key");
    mac.update(signed.as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

#[tokio::test]
async fn request_payment_then_a_signed_webhook_and_a_consistent_status() {
    // Long enough that the status right after the request still sees pending.
    let simulator = simulator_with(
        Provider::Relworx,
        SimulatorConfig::for_tests(PENDING_WINDOW_MS),
    )
    .await;
    let receiver = Receiver::start().await;
    // The exact URL, query string included, is part of the signature.
    let webhook_url = receiver.url("/relworx/webhook?source=malipo");
    simulator.set_callback_url(&webhook_url).expect("url");
    let (code, body) = call(
        &simulator,
        "/api/mobile-money/request-payment",
        &payment("52750b30ffbc7de3b36", "+256701345672"),
    )
    .await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["success"], json!(true));
    assert_eq!(body["message"], "Request payment in progress.");
    let internal_reference = body["internal_reference"]
        .as_str()
        .expect("reference")
        .to_string();
    assert_eq!(internal_reference.len(), 32);

    let (code, pending) = status(&simulator, &internal_reference).await;
    assert_eq!(code, 200);
    assert_eq!(pending["status"], "pending");
    assert_eq!(pending["completed_at"], Value::Null);

    let webhooks = receiver.wait_for(1).await;
    let webhook = &webhooks[0];
    assert_eq!(webhook.method, "POST");
    let body = &webhook.body;
    assert_eq!(body["status"], "success");
    assert_eq!(body["message"], "Request payment completed successfully.");
    assert_eq!(body["customer_reference"], "52750b30ffbc7de3b36");
    assert_eq!(body["internal_reference"], internal_reference.as_str());
    assert_eq!(body["msisdn"], "+256701345672");
    assert!(body["amount"].is_number(), "amount is a number: {body}");
    assert_eq!(body["amount"].as_f64(), Some(500.0));
    assert_eq!(body["currency"], "UGX");
    assert_eq!(body["provider"], "AIRTEL_UGANDA");
    assert_eq!(body["charge"], json!(12.5));
    let completed_at = body["completed_at"].as_str().expect("completed_at");
    assert!(
        completed_at.ends_with("+03:00") && completed_at.len() == 29,
        "{completed_at}"
    );

    let header = webhook
        .header("relworx-signature")
        .expect("signature header");
    let (timestamp, signature) = header
        .split_once(',')
        .and_then(|(t, v)| Some((t.strip_prefix("t=")?, v.strip_prefix("v=")?)))
        .expect("t=...,v=...");
    assert_eq!(
        signature,
        expected_signature("relworx_webhook_key", &webhook_url, timestamp, body)
    );

    let (code, done) = status(&simulator, &internal_reference).await;
    assert_eq!(code, 200);
    assert_eq!(done["status"], "success");
    assert_eq!(done["request_status"], "success");
    assert_eq!(done["completed_at"], body["completed_at"]);
    assert!(done["provider_transaction_id"].is_string());
}

#[tokio::test]
async fn send_payment_and_the_path_without_api_prefix() {
    let simulator = simulator(Provider::Relworx).await;
    let receiver = Receiver::start().await;
    simulator
        .set_callback_url(&receiver.url("/hook"))
        .expect("url");
    let mut body = payment("payout-0000001", "+254712340002");
    body["currency"] = json!("KES");
    let (code, answer_body) = call(&simulator, "/mobile-money/send-payment", &body).await;
    assert_eq!(code, 200, "{answer_body}");
    assert_eq!(answer_body["message"], "Send payment in progress.");
    let webhooks = receiver.wait_for(1).await;
    assert_eq!(webhooks[0].body["status"], "failed");
    assert_eq!(
        webhooks[0].body["message"],
        "Send payment failed: insufficient funds."
    );
}

#[tokio::test]
async fn auth_accept_header_and_fields_are_checked() {
    let simulator = simulator(Provider::Relworx).await;
    let url = format!("{}/api/mobile-money/request-payment", simulator.base_url());
    let (code, body) = answer(
        client()
            .post(&url)
            .header("Accept", "application/vnd.relworx.v2")
            .json(&payment("reference-001", "+256701345672"))
            .send()
            .await
            .expect("request"),
    )
    .await;
    assert_eq!((code, body["success"].clone()), (401, json!(false)));
    let (code, _) = answer(
        client()
            .post(&url)
            .bearer_auth(API_KEY)
            .json(&payment("reference-002", "+256701345672"))
            .send()
            .await
            .expect("request"),
    )
    .await;
    assert_eq!(code, 400, "the v2 Accept header is required");

    let cases: Vec<(Value, u16)> = vec![
        (payment("short", "+256701345672"), 422),
        (payment("reference-003", "0701345672"), 422),
        (
            json!({"account_no": ACCOUNT, "reference": "reference-004", "msisdn": "+256701345672", "currency": "KES", "amount": 500}),
            422,
        ),
        (
            json!({"account_no": ACCOUNT, "reference": "reference-005", "msisdn": "+256701345672", "currency": "UGX", "amount": "500"}),
            422,
        ),
        (
            json!({"account_no": ACCOUNT, "reference": "reference-006", "msisdn": "+256701345672", "currency": "UGX"}),
            400,
        ),
        (
            json!({"account_no": "OTHER", "reference": "reference-007", "msisdn": "+256701345672", "currency": "UGX", "amount": 5}),
            403,
        ),
    ];
    for (body, expected) in cases {
        let (code, answer_body) =
            call(&simulator, "/api/mobile-money/request-payment", &body).await;
        assert_eq!(code, expected, "{body} -> {answer_body}");
        assert_eq!(answer_body["success"], json!(false));
    }
    let (code, _) = call(
        &simulator,
        "/api/mobile-money/request-payment",
        &payment("reference-008", "+256701345672"),
    )
    .await;
    assert_eq!(code, 200);
    let (code, body) = call(
        &simulator,
        "/api/mobile-money/request-payment",
        &payment("reference-008", "+256701345672"),
    )
    .await;
    assert_eq!(code, 422, "a reused reference: {body}");
    let (code, _) = status(&simulator, "unknown").await;
    assert_eq!(code, 404);
}

#[tokio::test]
async fn msisdn_endings_choose_failures_and_delivery_quirks() {
    let simulator = simulator(Provider::Relworx).await;
    let receiver = Receiver::start().await;
    simulator
        .set_callback_url(&receiver.url("/hook"))
        .expect("url");
    let cases = [
        ("ending-0002", "+256771230002", "failed", 1),
        ("ending-0004", "+256771230004", "failed", 1),
        ("ending-0005", "+256771230005", "pending", 0),
        ("ending-0009", "+256771230009", "success", 0),
        ("ending-0010", "+256771230010", "success", 2),
    ];
    let mut references = Vec::new();
    for (reference, msisdn, _, _) in cases {
        let (code, body) = call(
            &simulator,
            "/api/mobile-money/request-payment",
            &payment(reference, msisdn),
        )
        .await;
        assert_eq!(code, 200, "{body}");
        references.push(
            body["internal_reference"]
                .as_str()
                .expect("reference")
                .to_string(),
        );
    }
    let webhooks = receiver.assert_exactly(4).await;
    for ((reference, _, expected_status, copies), internal) in cases.iter().zip(&references) {
        let (_, body) = status(&simulator, internal).await;
        assert_eq!(body["status"], *expected_status, "{reference}");
        let sent: Vec<_> = webhooks
            .iter()
            .filter(|webhook| webhook.body["customer_reference"] == *reference)
            .collect();
        assert_eq!(sent.len(), *copies, "{reference}");
        if *copies == 2 {
            assert_eq!(sent[0].raw, sent[1].raw);
        }
    }
    assert_eq!(
        webhooks
            .iter()
            .find(|webhook| webhook.body["customer_reference"] == "ending-0004")
            .map(|webhook| webhook.body["message"].clone()),
        Some(json!("Request payment failed: declined by the customer."))
    );
}

#[tokio::test]
async fn webhooks_are_unsigned_without_a_key_and_base64_when_configured() {
    let config = SimulatorConfig {
        relworx: RelworxConfig {
            webhook_key: None,
            ..RelworxConfig::default()
        },
        ..SimulatorConfig::for_tests(DELAY_MS)
    };
    let simulator = simulator_with(Provider::Relworx, config).await;
    let receiver = Receiver::start().await;
    simulator
        .set_callback_url(&receiver.url("/hook"))
        .expect("url");
    call(
        &simulator,
        "/api/mobile-money/request-payment",
        &payment("unsigned-01", "+256701345672"),
    )
    .await;
    let webhooks = receiver.wait_for(1).await;
    assert!(webhooks[0].header("relworx-signature").is_none());

    let config = SimulatorConfig {
        relworx: RelworxConfig {
            signature_encoding: malipo_simulators::RelworxSignatureEncoding::Base64,
            webhook_url: Some(receiver.url("/b64")),
            ..RelworxConfig::default()
        },
        ..SimulatorConfig::for_tests(DELAY_MS)
    };
    let simulator = simulator_with(Provider::Relworx, config).await;
    call(
        &simulator,
        "/api/mobile-money/request-payment",
        &payment("base64-0001", "+256701345672"),
    )
    .await;
    let webhooks = receiver.wait_for(2).await;
    let header = webhooks[1].header("relworx-signature").expect("signature");
    let signature = header.split_once(",v=").map(|(_, v)| v).expect("v=");
    assert_eq!(signature.len(), 44, "base64 of 32 bytes: {signature}");
}
