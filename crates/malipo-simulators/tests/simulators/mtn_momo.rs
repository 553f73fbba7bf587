//! MTN MoMo: provisioning, tokens, RequestToPay, Transfer, test numbers.

use crate::support::{
    DELAY_MS, PENDING_WINDOW_MS, Receiver, answer, client, simulator, simulator_with,
};
use base64::Engine;
use malipo_simulators::{
    CallbackMethod, MomoReasonFormat, MtnMomoConfig, Provider, RunningSimulator, SimulatorConfig,
};
use serde_json::{Value, json};
use std::time::Duration;

const API_USER: &str = "0b7f7bb5-5c3e-4d4c-9a5c-4e2a6d1f0a11";
const API_KEY: &str = "5b2a4f0c9d8e4b7fa1c3d5e7f9a0b2c4";
const COLLECTION_KEY: &str = "malipo-collection-subscription-key";
const DISBURSEMENT_KEY: &str = "malipo-disbursement-subscription-key";

fn basic(user: &str, key: &str) -> String {
    let encoded = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{key}"));
    format!("Basic {encoded}")
}

async fn token_for(
    simulator: &RunningSimulator,
    product: &str,
    subscription_key: &str,
    user: &str,
    key: &str,
) -> (u16, Value) {
    answer(
        client()
            .post(format!("{}/{product}/token/", simulator.base_url()))
            .header("Ocp-Apim-Subscription-Key", subscription_key)
            .header("Authorization", basic(user, key))
            .send()
            .await
            .expect("token"),
    )
    .await
}

async fn collection_token(simulator: &RunningSimulator) -> String {
    let (status, body) =
        token_for(simulator, "collection", COLLECTION_KEY, API_USER, API_KEY).await;
    assert_eq!(status, 200, "{body}");
    body["access_token"].as_str().expect("token").to_string()
}

fn payment(party_id: &str, amount: Value) -> Value {
    json!({
        "amount": amount,
        "currency": "EUR",
        "externalId": "6353636",
        "payer": {"partyIdType": "MSISDN", "partyId": party_id},
        "payerMessage": "Pay for product a",
        "payeeNote": "payer note",
    })
}

async fn request_to_pay(
    simulator: &RunningSimulator,
    token: &str,
    reference: &str,
    body: &Value,
    callback_url: Option<&str>,
) -> (u16, Value) {
    let mut request = client()
        .post(format!(
            "{}/collection/v1_0/requesttopay",
            simulator.base_url()
        ))
        .bearer_auth(token)
        .header("X-Reference-Id", reference)
        .header("X-Target-Environment", "sandbox")
        .header("Ocp-Apim-Subscription-Key", COLLECTION_KEY)
        .json(body);
    if let Some(url) = callback_url {
        request = request.header("X-Callback-Url", url);
    }
    answer(request.send().await.expect("requesttopay")).await
}

async fn status(simulator: &RunningSimulator, token: &str, reference: &str) -> (u16, Value) {
    answer(
        client()
            .get(format!(
                "{}/collection/v1_0/requesttopay/{reference}",
                simulator.base_url()
            ))
            .bearer_auth(token)
            .header("X-Target-Environment", "sandbox")
            .header("Ocp-Apim-Subscription-Key", COLLECTION_KEY)
            .send()
            .await
            .expect("status"),
    )
    .await
}

fn reference() -> String {
    uuid::Uuid::new_v4().to_string()
}

#[tokio::test]
async fn tokens_need_the_products_subscription_key_and_basic_credentials() {
    let simulator = simulator(Provider::MtnMomo).await;
    let (status, body) = answer(
        client()
            .post(format!("{}/collection/token/", simulator.base_url()))
            .header("Authorization", basic(API_USER, API_KEY))
            .send()
            .await
            .expect("token"),
    )
    .await;
    assert_eq!(status, 401);
    assert_eq!(body["statusCode"], json!(401));
    assert!(
        body["message"]
            .as_str()
            .expect("message")
            .contains("missing subscription key")
    );

    let (status, body) = token_for(
        &simulator,
        "collection",
        DISBURSEMENT_KEY,
        API_USER,
        API_KEY,
    )
    .await;
    assert_eq!(status, 401);
    assert!(
        body["message"]
            .as_str()
            .expect("message")
            .contains("invalid subscription key")
    );

    let (status, body) =
        token_for(&simulator, "collection", COLLECTION_KEY, API_USER, "wrong").await;
    assert_eq!((status, body), (401, json!({"error": "login_failed"})));

    let (status, body) =
        token_for(&simulator, "collection", COLLECTION_KEY, API_USER, API_KEY).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["token_type"], "access_token");
    assert_eq!(
        body["expires_in"],
        json!(3600),
        "expires_in is a number here"
    );
    assert_eq!(
        body["access_token"]
            .as_str()
            .expect("jwt")
            .split('.')
            .count(),
        3
    );
    let collection = body["access_token"].as_str().expect("jwt").to_string();

    // A Collection token does not open Disbursement.
    let (status, body) = answer(
        client()
            .get(format!(
                "{}/disbursement/v1_0/account/balance",
                simulator.base_url()
            ))
            .bearer_auth(&collection)
            .header("X-Target-Environment", "sandbox")
            .header("Ocp-Apim-Subscription-Key", DISBURSEMENT_KEY)
            .send()
            .await
            .expect("balance"),
    )
    .await;
    assert_eq!(status, 401, "{body}");
    assert_eq!(
        body["message"],
        "Unauthorized. Access token is missing or invalid."
    );

    let (status, body) = answer(
        client()
            .get(format!(
                "{}/collection/v1_0/account/balance",
                simulator.base_url()
            ))
            .bearer_auth(&collection)
            .header("X-Target-Environment", "sandbox")
            .header("Ocp-Apim-Subscription-Key", COLLECTION_KEY)
            .send()
            .await
            .expect("balance"),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(
        body,
        json!({"availableBalance": "1000000", "currency": "EUR"})
    );
}

#[tokio::test]
async fn request_to_pay_is_accepted_empty_then_called_back_and_queried() {
    // Long enough that the GET right after the request still sees PENDING.
    let simulator = simulator_with(
        Provider::MtnMomo,
        SimulatorConfig::for_tests(PENDING_WINDOW_MS),
    )
    .await;
    let receiver = Receiver::start().await;
    let token = collection_token(&simulator).await;
    let reference = reference();
    let response = client()
        .post(format!(
            "{}/collection/v1_0/requesttopay",
            simulator.base_url()
        ))
        .bearer_auth(&token)
        .header("X-Reference-Id", &reference)
        .header("X-Target-Environment", "sandbox")
        .header("Ocp-Apim-Subscription-Key", COLLECTION_KEY)
        .header("X-Callback-Url", receiver.url("/momo/callback"))
        .json(&payment("256772123456", json!("500")))
        .send()
        .await
        .expect("requesttopay");
    assert_eq!(response.status().as_u16(), 202);
    assert_eq!(
        response.text().await.expect("body"),
        "",
        "202 has an empty body"
    );

    let (code, body) = status(&simulator, &token, &reference).await;
    assert_eq!(code, 200);
    assert_eq!(body["status"], "PENDING");
    assert!(body.get("financialTransactionId").is_none());

    let callbacks = receiver.wait_for(1).await;
    assert_eq!(
        callbacks[0].method, "PUT",
        "the sandbox calls back with PUT"
    );
    assert_eq!(callbacks[0].path, "/momo/callback");
    let callback = &callbacks[0].body;
    assert_eq!(callback["status"], "SUCCESSFUL");
    assert_eq!(callback["amount"], json!("500"), "amount is a string");
    assert_eq!(callback["currency"], "EUR");
    assert_eq!(callback["externalId"], "6353636");
    assert_eq!(
        callback["payer"],
        json!({"partyIdType": "MSISDN", "partyId": "256772123456"})
    );
    assert_eq!(callback["payerMessage"], "Pay for product a");
    assert!(callback["financialTransactionId"].is_string());
    assert!(callback.get("reason").is_none());

    let (code, body) = status(&simulator, &token, &reference).await;
    assert_eq!(code, 200);
    assert_eq!(&body, callback, "the GET and the callback agree");
}

#[tokio::test]
async fn reference_ids_headers_and_bodies_are_checked() {
    let simulator = simulator(Provider::MtnMomo).await;
    let token = collection_token(&simulator).await;
    let reference = reference();
    let (code, _) = request_to_pay(
        &simulator,
        &token,
        &reference,
        &payment("256772123456", json!("5")),
        None,
    )
    .await;
    assert_eq!(code, 202);
    let (code, body) = request_to_pay(
        &simulator,
        &token,
        &reference,
        &payment("256772123456", json!("5")),
        None,
    )
    .await;
    assert_eq!(code, 409);
    assert_eq!(
        body,
        json!({"code": "RESOURCE_ALREADY_EXIST", "message": "Duplicated reference id. Creation of resource failed."})
    );
    let (code, body) = request_to_pay(
        &simulator,
        &token,
        "not-a-uuid",
        &payment("256772123456", json!("5")),
        None,
    )
    .await;
    assert_eq!((code, body), (400, json!("")));
    let (code, body) = request_to_pay(
        &simulator,
        &token,
        &crate::mtn_momo::reference(),
        &payment("256772123456", json!(5)),
        None,
    )
    .await;
    assert_eq!(
        (code, body),
        (400, json!("")),
        "a numeric amount is refused"
    );
    let mut wrong_currency = payment("256772123456", json!("5"));
    wrong_currency["currency"] = json!("UGX");
    let (code, body) = request_to_pay(
        &simulator,
        &token,
        &crate::mtn_momo::reference(),
        &wrong_currency,
        None,
    )
    .await;
    assert_eq!(code, 400);
    assert_eq!(body["code"], "INVALID_CURRENCY");
    let (code, body) = answer(
        client()
            .post(format!(
                "{}/collection/v1_0/requesttopay",
                simulator.base_url()
            ))
            .bearer_auth(&token)
            .header("X-Reference-Id", crate::mtn_momo::reference())
            .header("X-Target-Environment", "mtnuganda")
            .header("Ocp-Apim-Subscription-Key", COLLECTION_KEY)
            .json(&payment("256772123456", json!("5")))
            .send()
            .await
            .expect("requesttopay"),
    )
    .await;
    assert_eq!(code, 403);
    assert_eq!(body["code"], "NOT_ALLOWED_TARGET_ENVIRONMENT");
    let (code, body) = status(&simulator, &token, &crate::mtn_momo::reference()).await;
    assert_eq!(code, 404);
    assert_eq!(body["code"], "RESOURCE_NOT_FOUND");
    let (code, _) = request_to_pay(
        &simulator,
        "bogus",
        &crate::mtn_momo::reference(),
        &payment("256772123456", json!("5")),
        None,
    )
    .await;
    assert_eq!(code, 401);
}

#[tokio::test]
async fn sandbox_test_numbers_choose_the_outcome() {
    let config = SimulatorConfig {
        mtn_momo: MtnMomoConfig {
            ongoing_duration_ms: 600,
            ..MtnMomoConfig::default()
        },
        ..SimulatorConfig::for_tests(DELAY_MS)
    };
    let simulator = simulator_with(Provider::MtnMomo, config).await;
    let receiver = Receiver::start().await;
    let token = collection_token(&simulator).await;
    let cases = [
        ("46733123450", "FAILED", Some("INTERNAL_PROCESSING_ERROR")),
        ("46733123451", "FAILED", Some("APPROVAL_REJECTED")),
        ("46733123452", "FAILED", Some("EXPIRED")),
        ("46733123453", "SUCCESSFUL", None),
    ];
    let mut references = Vec::new();
    for (number, _, _) in cases {
        let reference = reference();
        let url = receiver.url(&format!("/cb/{number}"));
        let (code, _) = request_to_pay(
            &simulator,
            &token,
            &reference,
            &payment(number, json!("100")),
            Some(&url),
        )
        .await;
        assert_eq!(code, 202);
        references.push(reference);
    }
    let pending = reference();
    request_to_pay(
        &simulator,
        &token,
        &pending,
        &payment("46733123454", json!("100")),
        Some(&receiver.url("/cb/pending")),
    )
    .await;

    // Shortly after the delay, the ongoing number is still pending.
    tokio::time::sleep(Duration::from_millis(DELAY_MS + 60)).await;
    let (_, ongoing) = status(&simulator, &token, &references[3]).await;
    assert_eq!(ongoing["status"], "PENDING");

    let callbacks = receiver.wait_for(4).await;
    for ((number, expected_status, reason), reference) in cases.iter().zip(&references) {
        let path = format!("/cb/{number}");
        let callback = callbacks
            .iter()
            .find(|callback| callback.path == path)
            .expect("callback");
        assert_eq!(callback.body["status"], *expected_status);
        match reason {
            Some(reason) => {
                assert_eq!(
                    callback.body["reason"],
                    json!(reason),
                    "reason is a plain string"
                );
                assert!(callback.body.get("financialTransactionId").is_none());
            }
            None => assert!(callback.body["financialTransactionId"].is_string()),
        }
        let (_, body) = status(&simulator, &token, reference).await;
        assert_eq!(body["status"], *expected_status);
    }
    let (_, body) = status(&simulator, &token, &pending).await;
    assert_eq!(body["status"], "PENDING");
    receiver.assert_exactly(4).await;
}

#[tokio::test]
async fn lost_and_duplicate_callbacks_and_a_request_without_callback_url() {
    let simulator = simulator(Provider::MtnMomo).await;
    let receiver = Receiver::start().await;
    let token = collection_token(&simulator).await;
    let lost = reference();
    request_to_pay(
        &simulator,
        &token,
        &lost,
        &payment("46733123455", json!("1")),
        Some(&receiver.url("/lost")),
    )
    .await;
    request_to_pay(
        &simulator,
        &token,
        &reference(),
        &payment("46733123456", json!("1")),
        Some(&receiver.url("/dup")),
    )
    .await;
    let silent = reference();
    request_to_pay(
        &simulator,
        &token,
        &silent,
        &payment("256772123456", json!("1")),
        None,
    )
    .await;
    let received = receiver.assert_exactly(2).await;
    assert!(received.iter().all(|callback| callback.path == "/dup"));
    assert_eq!(received[0].raw, received[1].raw);
    for reference in [lost, silent] {
        let (_, body) = status(&simulator, &token, &reference).await;
        assert_eq!(body["status"], "SUCCESSFUL");
    }
}

#[tokio::test]
async fn reason_as_object_and_post_callbacks_when_configured() {
    let config = SimulatorConfig {
        mtn_momo: MtnMomoConfig {
            reason_format: MomoReasonFormat::Object,
            callback_method: CallbackMethod::Post,
            ..MtnMomoConfig::default()
        },
        ..SimulatorConfig::for_tests(DELAY_MS)
    };
    let simulator = simulator_with(Provider::MtnMomo, config).await;
    let receiver = Receiver::start().await;
    let token = collection_token(&simulator).await;
    request_to_pay(
        &simulator,
        &token,
        &reference(),
        &payment("46733123451", json!("1")),
        Some(&receiver.url("/cb")),
    )
    .await;
    let callbacks = receiver.wait_for(1).await;
    assert_eq!(callbacks[0].method, "POST");
    assert_eq!(callbacks[0].body["reason"]["code"], "APPROVAL_REJECTED");
    assert!(callbacks[0].body["reason"]["message"].is_string());
}

#[tokio::test]
async fn disbursement_transfer_pays_the_payee() {
    let simulator = simulator(Provider::MtnMomo).await;
    let receiver = Receiver::start().await;
    let (code, body) = token_for(
        &simulator,
        "disbursement",
        DISBURSEMENT_KEY,
        API_USER,
        API_KEY,
    )
    .await;
    assert_eq!(code, 200, "{body}");
    let token = body["access_token"].as_str().expect("token").to_string();
    let reference = reference();
    let transfer = json!({
        "amount": "5.0",
        "currency": "EUR",
        "externalId": "payout-1",
        "payee": {"partyIdType": "MSISDN", "partyId": "46733123450"},
        "payerMessage": "Refund",
        "payeeNote": "Refund",
    });
    let response = client()
        .post(format!(
            "{}/disbursement/v1_0/transfer",
            simulator.base_url()
        ))
        .bearer_auth(&token)
        .header("X-Reference-Id", &reference)
        .header("X-Target-Environment", "sandbox")
        .header("Ocp-Apim-Subscription-Key", DISBURSEMENT_KEY)
        .header("X-Callback-Url", receiver.url("/transfer"))
        .json(&transfer)
        .send()
        .await
        .expect("transfer");
    assert_eq!(response.status().as_u16(), 202);
    let callbacks = receiver.wait_for(1).await;
    assert_eq!(callbacks[0].body["payee"]["partyId"], "46733123450");
    assert_eq!(callbacks[0].body["status"], "FAILED");
    let (code, body) = answer(
        client()
            .get(format!(
                "{}/disbursement/v1_0/transfer/{reference}",
                simulator.base_url()
            ))
            .bearer_auth(&token)
            .header("X-Target-Environment", "sandbox")
            .header("Ocp-Apim-Subscription-Key", DISBURSEMENT_KEY)
            .send()
            .await
            .expect("status"),
    )
    .await;
    assert_eq!(code, 200);
    assert_eq!(body["amount"], "5.0");
    assert_eq!(body["reason"], "INTERNAL_PROCESSING_ERROR");
    // The same reference id under Collection is another resource.
    let collection = collection_token(&simulator).await;
    let (code, _) = status(&simulator, &collection, &reference).await;
    assert_eq!(code, 404);
}

#[tokio::test]
async fn sandbox_provisioning_creates_users_bound_to_their_callback_host() {
    let simulator = simulator(Provider::MtnMomo).await;
    let receiver = Receiver::start().await;
    let user = reference();
    let create = || {
        client()
            .post(format!("{}/v1_0/apiuser", simulator.base_url()))
            .header("X-Reference-Id", &user)
            .header("Ocp-Apim-Subscription-Key", COLLECTION_KEY)
            .json(&json!({"providerCallbackHost": "callbacks.example.com"}))
            .send()
    };
    let response = create().await.expect("apiuser");
    assert_eq!(response.status().as_u16(), 201);
    assert_eq!(response.text().await.expect("body"), "");
    let (code, body) = answer(create().await.expect("apiuser")).await;
    assert_eq!(
        (code, body["code"].clone()),
        (409, json!("RESOURCE_ALREADY_EXIST"))
    );

    let (code, body) = answer(
        client()
            .get(format!("{}/v1_0/apiuser/{user}", simulator.base_url()))
            .header("Ocp-Apim-Subscription-Key", COLLECTION_KEY)
            .send()
            .await
            .expect("get user"),
    )
    .await;
    assert_eq!(code, 200);
    assert_eq!(
        body,
        json!({"providerCallbackHost": "callbacks.example.com", "targetEnvironment": "sandbox"})
    );
    let (code, body) = answer(
        client()
            .post(format!(
                "{}/v1_0/apiuser/{user}/apikey",
                simulator.base_url()
            ))
            .header("Ocp-Apim-Subscription-Key", COLLECTION_KEY)
            .send()
            .await
            .expect("apikey"),
    )
    .await;
    assert_eq!(code, 201);
    let key = body["apiKey"].as_str().expect("apiKey").to_string();
    assert_eq!(key.len(), 32);

    let (code, body) = token_for(&simulator, "collection", COLLECTION_KEY, &user, &key).await;
    assert_eq!(code, 200, "{body}");
    let token = body["access_token"].as_str().expect("token").to_string();
    // 127.0.0.1 is not this user's providerCallbackHost.
    let (code, body) = request_to_pay(
        &simulator,
        &token,
        &reference(),
        &payment("256772123456", json!("1")),
        Some(&receiver.url("/cb")),
    )
    .await;
    assert_eq!(code, 400);
    assert_eq!(body["code"], "INVALID_CALLBACK_URL_HOST");
}
