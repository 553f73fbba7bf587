//! M-Pesa Daraja: OAuth, STK push / query, C2B, B2C, reversal.

use crate::support::{
    DELAY_MS, PENDING_WINDOW_MS, Receiver, answer, client, closed_port_url, simulator,
    simulator_with,
};
use base64::Engine;
use malipo_simulators::{
    C2bPayment, C2bValidation, DARAJA_SANDBOX_PASSKEY, MpesaConfig, Provider, RunningSimulator,
    SimulatorConfig,
};
use serde_json::{Value, json};
use std::time::Duration;

const KEY: &str = "malipo-simulator-consumer-key";
const SECRET: &str = "malipo-simulator-consumer-secret";
/// Safaricom's own STK example: this timestamp and its published password.
const VECTOR_TIMESTAMP: &str = "20210628092408";
const VECTOR_PASSWORD: &str = "MTc0Mzc5YmZiMjc5ZjlhYTliZGJjZjE1OGU5N2RkNzFhNDY3Y2QyZTBjODkzMDU5YjEwZjc4ZTZiNzJhZGExZWQyYzkxOTIwMjEwNjI4MDkyNDA4";

fn basic(key: &str, secret: &str) -> String {
    let encoded = base64::engine::general_purpose::STANDARD.encode(format!("{key}:{secret}"));
    format!("Basic {encoded}")
}

async fn token(simulator: &RunningSimulator) -> String {
    let response = client()
        .get(format!(
            "{}/oauth/v1/generate?grant_type=client_credentials",
            simulator.base_url()
        ))
        .header("Authorization", basic(KEY, SECRET))
        .send()
        .await
        .expect("oauth");
    let (status, body) = answer(response).await;
    assert_eq!(status, 200, "{body}");
    body["access_token"].as_str().expect("token").to_string()
}

async fn post(simulator: &RunningSimulator, token: &str, path: &str, body: &Value) -> (u16, Value) {
    let response = client()
        .post(format!("{}{path}", simulator.base_url()))
        .bearer_auth(token)
        .json(body)
        .send()
        .await
        .expect("request");
    answer(response).await
}

fn stk_body(amount: Value, callback_url: &str) -> Value {
    json!({
        "BusinessShortCode": 174379,
        "Password": VECTOR_PASSWORD,
        "Timestamp": VECTOR_TIMESTAMP,
        "TransactionType": "CustomerPayBillOnline",
        "Amount": amount,
        "PartyA": 254708374149u64,
        "PartyB": 174379,
        "PhoneNumber": 254708374149u64,
        "CallBackURL": callback_url,
        "AccountReference": "accountref",
        "TransactionDesc": "txndesc",
    })
}

async fn stk_push(
    simulator: &RunningSimulator,
    token: &str,
    amount: u64,
    callback_url: &str,
) -> String {
    let (status, body) = post(
        simulator,
        token,
        "/mpesa/stkpush/v1/processrequest",
        &stk_body(json!(amount), callback_url),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    body["CheckoutRequestID"].as_str().expect("id").to_string()
}

async fn stk_query(
    simulator: &RunningSimulator,
    token: &str,
    checkout_request_id: &str,
) -> (u16, Value) {
    post(
        simulator,
        token,
        "/mpesa/stkpushquery/v1/query",
        &json!({
            "BusinessShortCode": "174379",
            "Password": VECTOR_PASSWORD,
            "Timestamp": VECTOR_TIMESTAMP,
            "CheckoutRequestID": checkout_request_id,
        }),
    )
    .await
}

fn assert_daraja_error(status: u16, body: &Value, expected_status: u16, code: &str, message: &str) {
    assert_eq!(status, expected_status, "{body}");
    assert_eq!(body["errorCode"], code, "{body}");
    assert_eq!(body["errorMessage"], message, "{body}");
    assert!(
        body["requestId"].as_str().is_some_and(|id| !id.is_empty()),
        "{body}"
    );
}

fn metadata_item<'a>(callback: &'a Value, name: &str) -> Option<&'a Value> {
    callback["Body"]["stkCallback"]["CallbackMetadata"]["Item"]
        .as_array()?
        .iter()
        .find(|item| item["Name"] == name)
}

#[tokio::test]
async fn oauth_issues_tokens_and_rejects_bad_credentials_like_daraja() {
    let simulator = simulator(Provider::Mpesa).await;
    let url = format!(
        "{}/oauth/v1/generate?grant_type=client_credentials",
        simulator.base_url()
    );
    let (status, body) = answer(
        client()
            .get(&url)
            .header("Authorization", basic(KEY, SECRET))
            .send()
            .await
            .expect("oauth"),
    )
    .await;
    assert_eq!(status, 200);
    // expires_in as the string "3599", as older live responses send it.
    assert_eq!(body["expires_in"], json!("3599"));
    let token = body["access_token"].as_str().expect("token");
    assert_eq!(token.len(), 28);

    // Wrong secret: HTTP 400 with an empty body.
    let response = client()
        .get(&url)
        .header("Authorization", basic(KEY, "wrong"))
        .send()
        .await
        .expect("oauth");
    assert_eq!(response.status().as_u16(), 400);
    assert_eq!(response.text().await.expect("body"), "");

    let (status, body) = answer(
        client()
            .get(&url)
            .header("Authorization", "Bearer something")
            .send()
            .await
            .expect("oauth"),
    )
    .await;
    assert_daraja_error(
        status,
        &body,
        400,
        "400.008.01",
        "Invalid Authentication passed",
    );

    let (status, body) = answer(
        client()
            .get(format!(
                "{}/oauth/v1/generate?grant_type=password",
                simulator.base_url()
            ))
            .header("Authorization", basic(KEY, SECRET))
            .send()
            .await
            .expect("oauth"),
    )
    .await;
    assert_daraja_error(
        status,
        &body,
        400,
        "400.008.02",
        "Invalid grant type passed",
    );

    let (status, body) = answer(client().post(&url).send().await.expect("oauth")).await;
    assert_daraja_error(status, &body, 405, "405.001", "Method Not Allowed");
}

#[tokio::test]
async fn expires_in_as_a_number_and_tokens_revoked_on_reissue_when_configured() {
    let config = SimulatorConfig {
        mpesa: MpesaConfig {
            expires_in_as_string: false,
            new_token_revokes_previous: true,
            invalid_token_http_status: 401,
            ..MpesaConfig::default()
        },
        ..SimulatorConfig::for_tests(DELAY_MS)
    };
    let simulator = simulator_with(Provider::Mpesa, config).await;
    let (_, body) = answer(
        client()
            .get(format!(
                "{}/oauth/v1/generate?grant_type=client_credentials",
                simulator.base_url()
            ))
            .header("Authorization", basic(KEY, SECRET))
            .send()
            .await
            .expect("oauth"),
    )
    .await;
    assert_eq!(body["expires_in"], json!(3599));
    let first = body["access_token"].as_str().expect("token").to_string();
    let _second = token(&simulator).await;
    let receiver = Receiver::start().await;
    let (status, body) = post(
        &simulator,
        &first,
        "/mpesa/stkpush/v1/processrequest",
        &stk_body(json!(1), &receiver.url("/stk")),
    )
    .await;
    assert_daraja_error(status, &body, 401, "404.001.03", "Invalid Access Token");
}

#[tokio::test]
async fn api_calls_need_a_bearer_token_from_oauth() {
    let simulator = simulator(Provider::Mpesa).await;
    let receiver = Receiver::start().await;
    let body = stk_body(json!(1), &receiver.url("/stk"));
    let (status, answer_body) = answer(
        client()
            .post(format!(
                "{}/mpesa/stkpush/v1/processrequest",
                simulator.base_url()
            ))
            .json(&body)
            .send()
            .await
            .expect("push"),
    )
    .await;
    assert_daraja_error(
        status,
        &answer_body,
        404,
        "404.001.04",
        "Invalid Authentication passed",
    );
    let (status, answer_body) = post(
        &simulator,
        "not-a-token",
        "/mpesa/stkpush/v1/processrequest",
        &body,
    )
    .await;
    assert_daraja_error(
        status,
        &answer_body,
        404,
        "404.001.03",
        "Invalid Access Token",
    );
}

#[tokio::test]
async fn stk_push_succeeds_with_the_callback_types_daraja_sends_and_the_query_agrees() {
    let simulator = simulator(Provider::Mpesa).await;
    let receiver = Receiver::start().await;
    let token = token(&simulator).await;
    let (status, body) = post(
        &simulator,
        &token,
        "/mpesa/stkpush/v1/processrequest",
        &stk_body(json!(1), &receiver.url("/stk/callback")),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["ResponseCode"], json!("0"));
    assert_eq!(
        body["ResponseDescription"],
        "Success. Request accepted for processing"
    );
    assert_eq!(
        body["CustomerMessage"],
        "Success. Request accepted for processing"
    );
    let checkout_request_id = body["CheckoutRequestID"].as_str().expect("id");
    assert!(checkout_request_id.starts_with("ws_CO_"));
    let merchant_request_id = body["MerchantRequestID"].as_str().expect("id");

    let callbacks = receiver.wait_for(1).await;
    let callback = &callbacks[0];
    assert_eq!(callback.method, "POST");
    assert_eq!(callback.path, "/stk/callback");
    let stk = &callback.body["Body"]["stkCallback"];
    assert_eq!(stk["MerchantRequestID"], merchant_request_id);
    assert_eq!(stk["CheckoutRequestID"], checkout_request_id);
    assert!(stk["ResultCode"].is_u64(), "ResultCode is a number: {stk}");
    assert_eq!(stk["ResultCode"], json!(0));
    assert_eq!(
        stk["ResultDesc"],
        "The service request is processed successfully."
    );
    let amount = metadata_item(&callback.body, "Amount").expect("Amount");
    assert!(
        amount["Value"].is_f64(),
        "Amount is a float number: {amount}"
    );
    assert_eq!(amount["Value"].as_f64(), Some(1.0));
    let receipt = metadata_item(&callback.body, "MpesaReceiptNumber").expect("receipt");
    let receipt = receipt["Value"].as_str().expect("receipt is a string");
    assert_eq!(receipt.len(), 10);
    let balance = metadata_item(&callback.body, "Balance").expect("Balance");
    assert!(
        balance.get("Value").is_none(),
        "Balance has no Value: {balance}"
    );
    let date = metadata_item(&callback.body, "TransactionDate").expect("date");
    assert!(
        date["Value"].is_u64(),
        "TransactionDate is an integer: {date}"
    );
    assert_eq!(
        date["Value"].as_u64().map(|value| value.to_string().len()),
        Some(14)
    );
    let phone = metadata_item(&callback.body, "PhoneNumber").expect("phone");
    assert_eq!(phone["Value"], json!(254708374149u64));

    let (status, body) = stk_query(&simulator, &token, checkout_request_id).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["ResponseCode"], json!("0"));
    assert_eq!(
        body["ResultCode"],
        json!("0"),
        "the query's ResultCode is a string"
    );
    assert_eq!(
        body["ResponseDescription"],
        "The service request has been accepted successsfully"
    );
    assert_eq!(body["MerchantRequestID"], merchant_request_id);
    assert_eq!(
        body["ResultDesc"],
        "The service request is processed successfully."
    );
    assert!(body.get("MpesaReceiptNumber").is_none());

    let delivered = simulator.callbacks_sent();
    assert_eq!(delivered.len(), 1);
    assert!(delivered[0].delivered());
    assert_eq!(delivered[0].kind, "stk_callback");
}

#[tokio::test]
async fn stk_password_is_checked_against_the_published_test_vector() {
    let simulator = simulator(Provider::Mpesa).await;
    let receiver = Receiver::start().await;
    let token = token(&simulator).await;
    // The published vector is accepted (string or number shortcode, string amount).
    let mut body = stk_body(json!("10"), &receiver.url("/stk"));
    body["BusinessShortCode"] = json!("174379");
    let (status, answer_body) = post(
        &simulator,
        &token,
        "/mpesa/stkpush/v1/processrequest",
        &body,
    )
    .await;
    assert_eq!(status, 200, "{answer_body}");
    // The second vector row, computed the same way.
    let mut body = stk_body(json!(10), &receiver.url("/stk"));
    body["Timestamp"] = json!("20240101120000");
    body["Password"] = json!(
        "MTc0Mzc5YmZiMjc5ZjlhYTliZGJjZjE1OGU5N2RkNzFhNDY3Y2QyZTBjODkzMDU5YjEwZjc4ZTZiNzJhZGExZWQyYzkxOTIwMjQwMTAxMTIwMDAw"
    );
    let (status, answer_body) = post(
        &simulator,
        &token,
        "/mpesa/stkpushquery/v1/query",
        &json!({
        "BusinessShortCode": 174379, "Password": body["Password"], "Timestamp": "20240101120000",
        "CheckoutRequestID": "ws_CO_unknown"}),
    )
    .await;
    assert_daraja_error(
        status,
        &answer_body,
        400,
        "400.002.02",
        "Bad Request - Invalid CheckoutRequestID",
    );
    let (status, answer_body) = post(
        &simulator,
        &token,
        "/mpesa/stkpush/v1/processrequest",
        &body,
    )
    .await;
    assert_eq!(status, 200, "{answer_body}");

    // A password made with another timestamp than the one sent.
    let mut wrong = stk_body(json!(10), &receiver.url("/stk"));
    wrong["Timestamp"] = json!("20210628092409");
    let (status, answer_body) = post(
        &simulator,
        &token,
        "/mpesa/stkpush/v1/processrequest",
        &wrong,
    )
    .await;
    assert_daraja_error(
        status,
        &answer_body,
        500,
        "500.001.1001",
        "Wrong credentials",
    );
    // A shortcode the simulator does not know.
    let mut other = stk_body(json!(10), &receiver.url("/stk"));
    other["BusinessShortCode"] = json!(600999);
    other["PartyB"] = json!(600999);
    let (status, answer_body) = post(
        &simulator,
        &token,
        "/mpesa/stkpush/v1/processrequest",
        &other,
    )
    .await;
    assert_daraja_error(
        status,
        &answer_body,
        500,
        "500.001.1001",
        "Merchant does not exist",
    );
    // Our own computation of the password agrees with the vector.
    let computed = base64::engine::general_purpose::STANDARD
        .encode(format!("174379{DARAJA_SANDBOX_PASSKEY}{VECTOR_TIMESTAMP}"));
    assert_eq!(computed, VECTOR_PASSWORD);
    assert_eq!(
        malipo_simulators::mpesa::stk_password("174379", DARAJA_SANDBOX_PASSKEY, VECTOR_TIMESTAMP),
        VECTOR_PASSWORD
    );
}

#[tokio::test]
async fn stk_bad_input_gets_daraja_error_bodies() {
    let simulator = simulator(Provider::Mpesa).await;
    let token = token(&simulator).await;
    let good = stk_body(json!(1), "http://127.0.0.1:9/stk");
    let cases: Vec<(&str, Value, &str)> = vec![
        ("Amount", json!(1.5), "Bad Request - Invalid Amount"),
        ("Amount", json!("ten"), "Bad Request - Invalid Amount"),
        ("Amount", json!(0), "Bad Request - Invalid Amount"),
        (
            "PhoneNumber",
            json!("0708374149"),
            "Bad Request - Invalid PhoneNumber",
        ),
        (
            "PartyA",
            json!(256708374149u64),
            "Bad Request - Invalid PartyA",
        ),
        (
            "Timestamp",
            json!("2021-06-28 09:24:08"),
            "Bad Request - Invalid Timestamp",
        ),
        (
            "TransactionType",
            json!("PayBill"),
            "Bad Request - Invalid TransactionType",
        ),
        (
            "CallBackURL",
            json!("not a url"),
            "Bad Request - Invalid CallBackURL",
        ),
        (
            "BusinessShortCode",
            json!("17"),
            "Bad Request - Invalid BusinessShortCode",
        ),
        (
            "AccountReference",
            Value::Null,
            "Bad Request - Invalid AccountReference",
        ),
    ];
    for (field, value, message) in cases {
        let mut body = good.clone();
        body[field] = value;
        let (status, answer_body) = post(
            &simulator,
            &token,
            "/mpesa/stkpush/v1/processrequest",
            &body,
        )
        .await;
        assert_daraja_error(status, &answer_body, 400, "400.002.02", message);
    }
    let mut body = good.clone();
    body.as_object_mut().expect("object").remove("Amount");
    let (status, answer_body) = post(
        &simulator,
        &token,
        "/mpesa/stkpush/v1/processrequest",
        &body,
    )
    .await;
    assert_daraja_error(
        status,
        &answer_body,
        400,
        "400.002.02",
        "Bad Request - Invalid Amount",
    );

    let (status, answer_body) = answer(
        client()
            .post(format!(
                "{}/mpesa/stkpush/v1/processrequest",
                simulator.base_url()
            ))
            .bearer_auth(&token)
            .header("content-type", "application/json")
            .body("{not json")
            .send()
            .await
            .expect("push"),
    )
    .await;
    assert_daraja_error(
        status,
        &answer_body,
        400,
        "400.002.05",
        "Invalid request payload",
    );

    let (status, answer_body) = answer(
        client()
            .get(format!(
                "{}/mpesa/stkpush/v1/processrequest",
                simulator.base_url()
            ))
            .bearer_auth(&token)
            .send()
            .await
            .expect("get"),
    )
    .await;
    assert_daraja_error(status, &answer_body, 405, "405.001", "Method Not Allowed");
    let (status, answer_body) = post(&simulator, &token, "/mpesa/stkpush/v2/nothing", &good).await;
    assert_daraja_error(
        status,
        &answer_body,
        404,
        "404.001.01",
        "Resource not found",
    );
    // Nothing was accepted, so nothing is ever sent.
    tokio::time::sleep(Duration::from_millis(DELAY_MS * 3)).await;
    assert!(simulator.callbacks_sent().is_empty());
}

#[tokio::test]
async fn stk_failure_codes_are_chosen_by_amount() {
    let simulator = simulator(Provider::Mpesa).await;
    let receiver = Receiver::start().await;
    let token = token(&simulator).await;
    let cases = [
        (1032u64, 1032u64, "Request cancelled by user"),
        (1037, 1037, "DS timeout user cannot be reached"),
        (2001, 2001, "The initiator information is invalid."),
        (9001, 1, "The balance is insufficient for the transaction."),
        (
            1001,
            1001,
            "Unable to lock subscriber, a transaction is already in process for the current subscriber",
        ),
    ];
    let mut pushes = Vec::new();
    for (amount, code, description) in cases {
        let path = format!("/stk/{amount}");
        let id = stk_push(&simulator, &token, amount, &receiver.url(&path)).await;
        pushes.push((id, path, code, description));
    }
    let callbacks = receiver.wait_for(cases.len()).await;
    for (id, path, code, description) in pushes {
        let callback = callbacks
            .iter()
            .find(|callback| callback.path == path)
            .expect("callback");
        let stk = &callback.body["Body"]["stkCallback"];
        assert_eq!(stk["ResultCode"], json!(code), "{stk}");
        assert_eq!(stk["ResultDesc"], description);
        assert!(
            stk.get("CallbackMetadata").is_none(),
            "failures carry no metadata: {stk}"
        );
        let (status, body) = stk_query(&simulator, &token, &id).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["ResultCode"], json!(code.to_string()), "{body}");
        assert_eq!(body["ResultDesc"], description);
    }
}

#[tokio::test]
async fn paybill_to_another_party_b_fails_with_2028() {
    let simulator = simulator(Provider::Mpesa).await;
    let receiver = Receiver::start().await;
    let token = token(&simulator).await;
    let mut body = stk_body(json!(5), &receiver.url("/stk"));
    body["PartyB"] = json!(600000);
    let (status, answer_body) = post(
        &simulator,
        &token,
        "/mpesa/stkpush/v1/processrequest",
        &body,
    )
    .await;
    assert_eq!(status, 200, "{answer_body}");
    let callbacks = receiver.wait_for(1).await;
    assert_eq!(
        callbacks[0].body["Body"]["stkCallback"]["ResultCode"],
        json!(2028)
    );
}

#[tokio::test]
async fn stk_query_is_pending_until_the_customer_answers() {
    let config = SimulatorConfig::for_tests(PENDING_WINDOW_MS);
    let simulator = simulator_with(Provider::Mpesa, config).await;
    let receiver = Receiver::start().await;
    let token = token(&simulator).await;
    let id = stk_push(&simulator, &token, 1, &receiver.url("/stk")).await;
    let (status, body) = stk_query(&simulator, &token, &id).await;
    assert_daraja_error(
        status,
        &body,
        500,
        "500.001.1001",
        "The transaction is being processed",
    );
    receiver.wait_for(1).await;
    let (status, body) = stk_query(&simulator, &token, &id).await;
    assert_eq!((status, body["ResultCode"].clone()), (200, json!("0")));

    // 7003: never answered, so the query never stops saying "pending".
    let never = stk_push(&simulator, &token, 7003, &receiver.url("/never")).await;
    tokio::time::sleep(Duration::from_millis(600)).await;
    let (status, body) = stk_query(&simulator, &token, &never).await;
    assert_daraja_error(
        status,
        &body,
        500,
        "500.001.1001",
        "The transaction is being processed",
    );
    assert!(
        receiver
            .received()
            .iter()
            .all(|callback| callback.path != "/never")
    );
}

#[tokio::test]
async fn lost_callback_only_the_query_tells() {
    let simulator = simulator(Provider::Mpesa).await;
    let receiver = Receiver::start().await;
    let token = token(&simulator).await;
    let id = stk_push(&simulator, &token, 7001, &receiver.url("/stk")).await;
    receiver.assert_exactly(0).await;
    assert!(simulator.callbacks_sent().is_empty());
    let (status, body) = stk_query(&simulator, &token, &id).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["ResultCode"], json!("0"));
}

#[tokio::test]
async fn duplicate_callback_is_delivered_twice_identically() {
    let simulator = simulator(Provider::Mpesa).await;
    let receiver = Receiver::start().await;
    let token = token(&simulator).await;
    stk_push(&simulator, &token, 7002, &receiver.url("/stk")).await;
    let callbacks = receiver.assert_exactly(2).await;
    assert_eq!(callbacks[0].raw, callbacks[1].raw);
    assert_eq!(
        callbacks[0].body["Body"]["stkCallback"]["ResultCode"],
        json!(0)
    );
}

#[tokio::test]
async fn failed_callback_deliveries_are_retried_a_bounded_number_of_times() {
    let simulator = simulator(Provider::Mpesa).await;
    let receiver = Receiver::start().await;
    receiver.reply("/stk", 500, json!({"error": "down"}));
    let token = token(&simulator).await;
    stk_push(&simulator, &token, 1, &receiver.url("/stk")).await;
    let attempts = simulator
        .wait_for_callbacks(3, Duration::from_secs(5))
        .await
        .expect("three attempts");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let attempts_after = simulator.callbacks_sent();
    assert_eq!(attempts_after.len(), 3, "callback_attempts_max is 3");
    assert_eq!(
        attempts
            .iter()
            .map(|attempt| attempt.attempt)
            .collect::<Vec<_>>(),
        vec![1, 2, 3]
    );
    assert!(attempts.iter().all(|attempt| attempt.status == Some(500)));

    // An unreachable URL is recorded with the error.
    stk_push(&simulator, &token, 1, &closed_port_url("/stk")).await;
    let attempts = simulator
        .wait_for_callbacks(6, Duration::from_secs(5))
        .await
        .expect("three more attempts");
    assert!(
        attempts[3..]
            .iter()
            .all(|attempt| attempt.status.is_none() && attempt.error.is_some())
    );
}

fn register_body(shortcode: &str, response_type: &str, receiver: &Receiver) -> Value {
    json!({
        "ShortCode": shortcode,
        "ResponseType": response_type,
        "ConfirmationURL": receiver.url("/c2b/confirmation"),
        "ValidationURL": receiver.url("/c2b/validation"),
    })
}

#[tokio::test]
async fn c2b_payment_calls_validation_then_confirmation() {
    let simulator = simulator(Provider::Mpesa).await;
    let receiver = Receiver::start().await;
    receiver.reply(
        "/c2b/validation",
        200,
        json!({"ResultCode": "0", "ResultDesc": "Accepted", "ThirdPartyTransID": "malipo-123"}),
    );
    let token = token(&simulator).await;
    let (status, body) = post(
        &simulator,
        &token,
        "/mpesa/c2b/v1/registerurl",
        &register_body("600984", "Completed", &receiver),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    // Daraja's own misspelling.
    assert!(body["OriginatorCoversationID"].as_str().is_some(), "{body}");
    assert_eq!(body["ResponseCode"], json!("0"));
    assert_eq!(body["ResponseDescription"], "success");

    let outcome = simulator
        .simulate_c2b_payment(C2bPayment::paybill("600984", 10, "invoice008"))
        .await
        .expect("payment");
    assert!(
        outcome.completed && outcome.confirmation_delivered,
        "{outcome:?}"
    );
    assert_eq!(
        outcome.validation,
        C2bValidation::Accepted {
            third_party_trans_id: Some("malipo-123".into())
        }
    );
    let received = receiver.received();
    assert_eq!(
        received.iter().map(|r| r.path.as_str()).collect::<Vec<_>>(),
        vec!["/c2b/validation", "/c2b/confirmation"]
    );
    let validation = &received[0].body;
    let confirmation = &received[1].body;
    for payload in [validation, confirmation] {
        // Every value is a string on the wire.
        for (key, value) in payload.as_object().expect("object") {
            assert!(value.is_string(), "{key} is a string: {payload}");
        }
        assert_eq!(payload["TransID"], outcome.trans_id.as_str());
        assert_eq!(payload["TransAmount"], "10.00");
        assert_eq!(payload["BusinessShortCode"], "600984");
        assert_eq!(payload["BillRefNumber"], "invoice008");
        assert_eq!(payload["TransactionType"], "Pay Bill");
        assert_eq!(payload["MSISDN"], "254708374149");
        assert_eq!(payload["FirstName"], "John");
        assert_eq!(payload["TransTime"].as_str().map(str::len), Some(14));
    }
    assert_eq!(validation["OrgAccountBalance"], "");
    assert_eq!(validation["ThirdPartyTransID"], "");
    assert_eq!(confirmation["OrgAccountBalance"], "10.00");
    assert_eq!(confirmation["ThirdPartyTransID"], "malipo-123");

    // The C2B receipt can be reversed like any other.
    let receipt = outcome.trans_id.clone();
    let (status, body) = post(
        &simulator,
        &token,
        "/mpesa/reversal/v1/request",
        &reversal_body(&receipt, &receiver),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let received = receiver.wait_for(3).await;
    assert_eq!(received[2].body["Result"]["ResultCode"], json!(0));
}

#[tokio::test]
async fn c2b_rejected_validation_cancels_the_payment() {
    let simulator = simulator(Provider::Mpesa).await;
    let receiver = Receiver::start().await;
    receiver.reply(
        "/c2b/validation",
        200,
        json!({"ResultCode": "C2B00012", "ResultDesc": "Rejected"}),
    );
    let token = token(&simulator).await;
    post(
        &simulator,
        &token,
        "/mpesa/c2b/v1/registerurl",
        &register_body("600999", "Completed", &receiver),
    )
    .await;
    let outcome = simulator
        .simulate_c2b_payment(C2bPayment::paybill("600999", 50, "bad-account"))
        .await
        .expect("payment");
    assert_eq!(
        outcome.validation,
        C2bValidation::Rejected {
            result_code: "C2B00012".into()
        }
    );
    assert!(!outcome.completed && !outcome.confirmation_delivered);
    let received = receiver.assert_exactly(1).await;
    assert_eq!(received[0].path, "/c2b/validation");
}

#[tokio::test]
async fn c2b_unreachable_validation_follows_the_registered_response_type() {
    let simulator = simulator(Provider::Mpesa).await;
    let receiver = Receiver::start().await;
    let token = token(&simulator).await;
    for (shortcode, response_type) in [("600111", "Cancelled"), ("600222", "Completed")] {
        let body = json!({
            "ShortCode": shortcode,
            "ResponseType": response_type,
            "ConfirmationURL": receiver.url(&format!("/confirm/{shortcode}")),
            "ValidationURL": closed_port_url("/validate"),
        });
        let (status, answer_body) =
            post(&simulator, &token, "/mpesa/c2b/v1/registerurl", &body).await;
        assert_eq!(status, 200, "{answer_body}");
    }
    let cancelled = simulator
        .simulate_c2b_payment(C2bPayment::paybill("600111", 5, "acc"))
        .await
        .expect("payment");
    assert_eq!(cancelled.validation, C2bValidation::Unanswered);
    assert!(!cancelled.completed);
    let completed = simulator
        .simulate_c2b_payment(C2bPayment::paybill("600222", 5, "acc"))
        .await
        .expect("payment");
    assert!(
        completed.completed && completed.confirmation_delivered,
        "{completed:?}"
    );
    let received = receiver.assert_exactly(1).await;
    assert_eq!(received[0].path, "/confirm/600222");
}

#[tokio::test]
async fn c2b_v2_masks_the_msisdn_and_darajas_simulate_endpoint_works() {
    let simulator = simulator(Provider::Mpesa).await;
    let receiver = Receiver::start().await;
    let token = token(&simulator).await;
    post(
        &simulator,
        &token,
        "/mpesa/c2b/v2/registerurl",
        &register_body("600638", "Completed", &receiver),
    )
    .await;
    let (status, body) = post(
        &simulator,
        &token,
        "/mpesa/c2b/v1/simulate",
        &json!({"ShortCode": 600638, "CommandID": "CustomerBuyGoodsOnline", "Amount": 25,
                "Msisdn": 254708374149u64, "BillRefNumber": null}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["ResponseDescription"],
        "Accept the service request successfully."
    );
    assert!(body["OriginatorCoversationID"].is_string());
    let received = receiver.wait_for(2).await;
    assert_eq!(received[0].path, "/c2b/validation");
    assert_eq!(received[1].path, "/c2b/confirmation");
    assert_eq!(received[1].body["MSISDN"], "2547 ***** 149");
    assert_eq!(received[1].body["TransactionType"], "Buy Goods");
    assert_eq!(received[1].body["TransAmount"], "25.00");

    // The control endpoint runs a payment and answers its outcome.
    let (status, outcome) = answer(
        client()
            .post(format!("{}/simulate/c2b", simulator.base_url()))
            .json(&json!({"ShortCode": "600638", "Amount": 7, "Msisdn": "254708374149", "BillRefNumber": "x1"}))
            .send()
            .await
            .expect("control"),
    )
    .await;
    assert_eq!(status, 200, "{outcome}");
    assert_eq!(outcome["completed"], json!(true));
    assert_eq!(outcome["validation"]["kind"], "accepted");
    assert_eq!(
        receiver.wait_for(4).await[3].body["OrgAccountBalance"],
        "32.00"
    );
}

#[tokio::test]
async fn c2b_register_rejects_bad_urls_and_response_types() {
    let simulator = simulator(Provider::Mpesa).await;
    let receiver = Receiver::start().await;
    let token = token(&simulator).await;
    let mut body = register_body("600984", "Completed", &receiver);
    body["ConfirmationURL"] = json!(receiver.url("/mpesa/confirmation"));
    let (status, answer_body) = post(&simulator, &token, "/mpesa/c2b/v1/registerurl", &body).await;
    assert_daraja_error(
        status,
        &answer_body,
        400,
        "400.002.02",
        "Bad Request - Invalid ConfirmationURL",
    );
    let body = register_body("600984", "completed", &receiver);
    let (status, answer_body) = post(&simulator, &token, "/mpesa/c2b/v1/registerurl", &body).await;
    assert_daraja_error(
        status,
        &answer_body,
        400,
        "400.002.02",
        "Bad Request - Invalid ResponseType",
    );

    // Production refuses a second registration.
    let config = SimulatorConfig {
        mpesa: MpesaConfig {
            c2b_urls_register_once: true,
            ..MpesaConfig::default()
        },
        ..SimulatorConfig::for_tests(DELAY_MS)
    };
    let production = simulator_with(Provider::Mpesa, config).await;
    let token = crate::mpesa::token(&production).await;
    let body = register_body("600984", "Completed", &receiver);
    let (status, _) = post(&production, &token, "/mpesa/c2b/v1/registerurl", &body).await;
    assert_eq!(status, 200);
    let (status, answer_body) = post(&production, &token, "/mpesa/c2b/v1/registerurl", &body).await;
    assert_daraja_error(
        status,
        &answer_body,
        500,
        "500.003.1001",
        "Urls are already registered",
    );
}

fn b2c_body(amount: u64, initiator: &str, receiver: &Receiver) -> Value {
    json!({
        "InitiatorName": initiator,
        "SecurityCredential": "opaque-rsa-ciphertext",
        "CommandID": "BusinessPayment",
        "Amount": amount,
        "PartyA": 600996,
        "PartyB": 254708374149u64,
        "Remarks": "Refund for order 42",
        "QueueTimeOutURL": receiver.url("/b2c/timeout"),
        "ResultURL": receiver.url("/b2c/result"),
        "Occassion": "",
    })
}

#[tokio::test]
async fn b2c_sends_its_result_to_the_result_url() {
    let simulator = simulator(Provider::Mpesa).await;
    let receiver = Receiver::start().await;
    let token = token(&simulator).await;
    let (status, body) = post(
        &simulator,
        &token,
        "/mpesa/b2c/v1/paymentrequest",
        &b2c_body(150, "testapi", &receiver),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["ResponseCode"], json!("0"));
    assert_eq!(
        body["ResponseDescription"],
        "Accept the service request successfully."
    );
    let conversation_id = body["ConversationID"].as_str().expect("ConversationID");
    assert!(conversation_id.starts_with("AG_"));
    let received = receiver.wait_for(1).await;
    assert_eq!(received[0].path, "/b2c/result");
    let result = &received[0].body["Result"];
    assert_eq!(result["ResultType"], json!(0));
    assert_eq!(result["ResultCode"], json!(0));
    assert_eq!(result["ConversationID"], conversation_id);
    assert_eq!(
        result["OriginatorConversationID"],
        body["OriginatorConversationID"]
    );
    let parameters = result["ResultParameters"]["ResultParameter"]
        .as_array()
        .expect("list");
    let parameter = |key: &str| {
        parameters
            .iter()
            .find(|parameter| parameter["Key"] == key)
            .map(|parameter| parameter["Value"].clone())
            .expect(key)
    };
    assert_eq!(parameter("TransactionAmount"), json!(150));
    assert_eq!(parameter("TransactionReceipt"), result["TransactionID"]);
    assert_eq!(parameter("B2CRecipientIsRegisteredCustomer"), "Y");
    assert!(parameter("B2CUtilityAccountAvailableFunds").is_f64());
    assert!(parameter("TransactionCompletedDateTime").is_string());
    assert_eq!(
        result["ReferenceData"]["ReferenceItem"]["Key"], "QueueTimeoutURL",
        "ReferenceItem is one object"
    );

    // A wrong initiator fails asynchronously with 2001, without parameters.
    post(
        &simulator,
        &token,
        "/mpesa/b2c/v1/paymentrequest",
        &b2c_body(150, "someone", &receiver),
    )
    .await;
    // 9001: insufficient balance.
    post(
        &simulator,
        &token,
        "/mpesa/b2c/v1/paymentrequest",
        &b2c_body(9001, "testapi", &receiver),
    )
    .await;
    let received = receiver.wait_for(3).await;
    let mut codes: Vec<u64> = received[1..]
        .iter()
        .map(|callback| {
            assert!(callback.body["Result"].get("ResultParameters").is_none());
            callback.body["Result"]["ResultCode"]
                .as_u64()
                .expect("numeric code")
        })
        .collect();
    codes.sort_unstable();
    assert_eq!(codes, vec![1, 2001]);

    // v3 takes and echoes the client's OriginatorConversationID.
    let mut body = b2c_body(10, "testapi", &receiver);
    body["OriginatorConversationID"] = json!("malipo-po-1");
    let (status, answer_body) =
        post(&simulator, &token, "/mpesa/b2c/v3/paymentrequest", &body).await;
    assert_eq!(status, 200, "{answer_body}");
    assert_eq!(answer_body["OriginatorConversationID"], "malipo-po-1");
    let received = receiver.wait_for(4).await;
    assert_eq!(
        received[3].body["Result"]["OriginatorConversationID"],
        "malipo-po-1"
    );

    let mut bad = b2c_body(10, "testapi", &receiver);
    bad["CommandID"] = json!("Payout");
    let (status, answer_body) =
        post(&simulator, &token, "/mpesa/b2c/v1/paymentrequest", &bad).await;
    assert_daraja_error(
        status,
        &answer_body,
        400,
        "400.002.02",
        "Bad Request - Invalid CommandID",
    );
}

fn reversal_body(transaction_id: &str, receiver: &Receiver) -> Value {
    json!({
        "Initiator": "testapi",
        "SecurityCredential": "opaque-rsa-ciphertext",
        "CommandID": "TransactionReversal",
        "TransactionID": transaction_id,
        "Amount": "1",
        "ReceiverParty": "174379",
        "RecieverIdentifierType": "11",
        "ResultURL": receiver.url("/reversal/result"),
        "QueueTimeOutURL": receiver.url("/reversal/timeout"),
        "Remarks": "Payment reversal",
        "Occasion": "",
    })
}

#[tokio::test]
async fn reversal_results_reverse_once_and_reject_unknown_ids() {
    let simulator = simulator(Provider::Mpesa).await;
    let receiver = Receiver::start().await;
    let token = token(&simulator).await;
    stk_push(&simulator, &token, 1, &receiver.url("/stk")).await;
    let callbacks = receiver.wait_for(1).await;
    let receipt =
        metadata_item(&callbacks[0].body, "MpesaReceiptNumber").expect("receipt")["Value"]
            .as_str()
            .expect("receipt")
            .to_string();

    let (status, body) = post(
        &simulator,
        &token,
        "/mpesa/reversal/v1/request",
        &reversal_body(&receipt, &receiver),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["ResponseCode"], json!("0"));
    assert!(
        body["ConversationID"]
            .as_str()
            .is_some_and(|id| id.starts_with("AG_"))
    );
    let first = receiver.wait_for(2).await[1].body["Result"].clone();
    assert_eq!(first["ResultCode"], json!(0));
    let parameters = first["ResultParameters"]["ResultParameter"]
        .as_array()
        .expect("list");
    let original = parameters
        .iter()
        .find(|parameter| parameter["Key"] == "OriginalTransactionID")
        .expect("OriginalTransactionID");
    assert_eq!(original["Value"], receipt.as_str());
    let amount = parameters
        .iter()
        .find(|p| p["Key"] == "Amount")
        .expect("Amount");
    assert!(amount["Value"].is_f64());
    assert!(first["ReferenceData"]["ReferenceItem"].is_object());

    post(
        &simulator,
        &token,
        "/mpesa/reversal/v1/request",
        &reversal_body(&receipt, &receiver),
    )
    .await;
    let again = receiver.wait_for(3).await[2].body["Result"].clone();
    assert_eq!(
        again["ResultCode"],
        json!("R000001"),
        "R codes are strings: {again}"
    );
    post(
        &simulator,
        &token,
        "/mpesa/reversal/v1/request",
        &reversal_body("NOTREAL123", &receiver),
    )
    .await;
    let unknown = receiver.wait_for(4).await[3].body["Result"].clone();
    assert_eq!(unknown["ResultCode"], json!("R000002"));
    assert_eq!(
        unknown["ResultDesc"],
        "The OriginalTransactionID is invalid."
    );
    assert!(unknown.get("ResultParameters").is_none());

    // The correctly spelled key is not Daraja's key.
    let mut corrected = reversal_body(&receipt, &receiver);
    let object = corrected.as_object_mut().expect("object");
    object.remove("RecieverIdentifierType");
    object.insert("ReceiverIdentifierType".into(), json!("11"));
    let (status, body) = post(&simulator, &token, "/mpesa/reversal/v1/request", &corrected).await;
    assert_daraja_error(
        status,
        &body,
        400,
        "400.002.02",
        "Bad Request - Invalid RecieverIdentifierType",
    );
}
