//! The M-Pesa connector against the local Daraja simulator, over HTTP.

#![allow(clippy::unwrap_used)]

use malipo_connectors::mpesa::{MpesaConnector, parse_stk_callback};
use malipo_connectors::{
    Connector, ConnectorAccount, ConnectorError, PaymentOutcome, PaymentRequest, RefundRequest,
    StatusRequest,
};
use malipo_core::objects::{Customer, NextAction};
use malipo_core::payment::PaymentMethod;
use malipo_simulators::{
    DARAJA_SANDBOX_PASSKEY, DARAJA_SANDBOX_SHORTCODE, Provider, RunningSimulator, SimulatorConfig,
    spawn,
};
use std::collections::BTreeMap;
use std::time::Duration;

const PHONE: &str = "254708374149";
/// Nothing listens there: callbacks fail fast, which is harmless (the
/// status query is what these tests exercise).
const CALLBACK_URL: &str = "http://127.0.0.1:9/v1/hooks/mpesa/acct_1";

async fn simulator() -> RunningSimulator {
    let _ = rustls::crypto::ring::default_provider().install_default();
    spawn(Provider::Mpesa, SimulatorConfig::for_tests(20))
        .await
        .unwrap()
}

fn connector() -> MpesaConnector {
    let client = reqwest_client();
    MpesaConnector::with_client(client)
}

fn reqwest_client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap()
}

fn account(simulator: &RunningSimulator) -> ConnectorAccount {
    account_with_secret(simulator, "malipo-simulator-consumer-secret")
}

fn account_with_secret(simulator: &RunningSimulator, secret: &str) -> ConnectorAccount {
    let credentials: BTreeMap<String, String> = [
        ("consumer_key", "malipo-simulator-consumer-key"),
        ("consumer_secret", secret),
        ("shortcode", DARAJA_SANDBOX_SHORTCODE),
        ("passkey", DARAJA_SANDBOX_PASSKEY),
        ("base_url", simulator.base_url()),
    ]
    .into_iter()
    .map(|(key, value)| (key.to_string(), value.to_string()))
    .collect();
    ConnectorAccount {
        id: "acct_1".into(),
        provider: "mpesa".into(),
        credentials,
        callback_url: Some(CALLBACK_URL.into()),
    }
}

fn customer() -> Customer {
    Customer {
        phone: Some(PHONE.into()),
        ..Customer::default()
    }
}

fn payment<'a>(
    account: &'a ConnectorAccount,
    customer: &'a Customer,
    cents: u64,
) -> PaymentRequest<'a> {
    PaymentRequest {
        payment_id: "pay_01JTESTPAYMENT000001",
        amount: cents,
        currency: "kes",
        method: PaymentMethod::Mpesa,
        customer,
        reference: Some("INV-42"),
        description: Some("Test order"),
        return_url: None,
        payment_method: None,
        account,
        livemode: false,
    }
}

/// Starts a payment and returns its CheckoutRequestID.
async fn start(
    connector: &MpesaConnector,
    account: &ConnectorAccount,
    customer: &Customer,
    cents: u64,
) -> String {
    match connector
        .start_payment(&payment(account, customer, cents))
        .await
        .unwrap()
    {
        PaymentOutcome::Processing {
            provider_reference: Some(reference),
            next_action: Some(NextAction::PhonePrompt { phone, .. }),
            poll_after_ms,
        } => {
            assert!(reference.starts_with("ws_CO_"), "{reference}");
            assert_eq!(phone, PHONE);
            assert!(poll_after_ms > 0);
            reference
        }
        other => panic!("expected processing, got {other:?}"),
    }
}

async fn status(
    connector: &MpesaConnector,
    account: &ConnectorAccount,
    customer: &Customer,
    reference: &str,
) -> Result<PaymentOutcome, ConnectorError> {
    connector
        .payment_status(&StatusRequest {
            payment_id: "pay_01JTESTPAYMENT000001",
            provider_reference: Some(reference),
            customer,
            started_ms: 0,
            now_ms: 0,
            next_action: None,
            account,
        })
        .await
}

/// Queries until the payment is no longer processing (at most 3 s).
async fn settled(
    connector: &MpesaConnector,
    account: &ConnectorAccount,
    customer: &Customer,
    reference: &str,
) -> PaymentOutcome {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(3);
    loop {
        let outcome = status(connector, account, customer, reference)
            .await
            .unwrap();
        if !matches!(outcome, PaymentOutcome::Processing { .. })
            || tokio::time::Instant::now() >= deadline
        {
            return outcome;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

async fn failure_code_for(cents: u64) -> String {
    let simulator = simulator().await;
    let connector = connector();
    let account = account(&simulator);
    let customer = customer();
    let reference = start(&connector, &account, &customer, cents).await;
    match settled(&connector, &account, &customer, &reference).await {
        PaymentOutcome::Failed {
            provider_reference,
            failure,
        } => {
            assert_eq!(provider_reference.as_deref(), Some(reference.as_str()));
            assert!(!failure.message.is_empty());
            failure.code
        }
        other => panic!("expected a failure, got {other:?}"),
    }
}

#[tokio::test]
async fn a_payment_succeeds_after_the_customer_approves() {
    let simulator = simulator().await;
    let connector = connector();
    let account = account(&simulator);
    let customer = customer();
    let reference = start(&connector, &account, &customer, 100).await;
    assert_eq!(
        settled(&connector, &account, &customer, &reference).await,
        PaymentOutcome::Succeeded {
            provider_reference: Some(reference.clone())
        }
    );

    // The push carried the documented body.
    let push = simulator
        .requests()
        .into_iter()
        .find(|request| request.path == "/mpesa/stkpush/v1/processrequest")
        .unwrap();
    let body: serde_json::Value = serde_json::from_str(&push.body).unwrap();
    assert_eq!(body["BusinessShortCode"], 174_379);
    assert_eq!(body["Amount"], 1);
    assert_eq!(body["PartyA"], 254_708_374_149_u64);
    assert_eq!(body["PartyB"], 174_379);
    assert_eq!(body["PhoneNumber"], 254_708_374_149_u64);
    assert_eq!(body["TransactionType"], "CustomerPayBillOnline");
    assert_eq!(body["CallBackURL"], CALLBACK_URL);
    assert_eq!(body["AccountReference"], "INV-42");
    assert_eq!(body["TransactionDesc"], "Test order");
    assert_eq!(body["Timestamp"].as_str().unwrap().len(), 14);

    // The simulator's real callback parses to the same outcome.
    let callbacks = simulator
        .wait_for_callbacks(1, Duration::from_secs(3))
        .await
        .unwrap();
    let callback = parse_stk_callback(callbacks[0].body.as_bytes()).unwrap();
    assert_eq!(callback.checkout_request_id, reference);
    assert_eq!(callback.amount, Some(100));
    assert_eq!(callback.phone.as_deref(), Some(PHONE));
    assert!(callback.receipt_number.is_some());
    assert_eq!(callback.transaction_date.as_deref().map(str::len), Some(14));
    assert_eq!(
        callback.outcome(),
        PaymentOutcome::Succeeded {
            provider_reference: Some(reference)
        }
    );
}

#[tokio::test]
async fn a_lost_callback_is_found_by_the_query() {
    let simulator = simulator().await;
    let connector = connector();
    let account = account(&simulator);
    let customer = customer();
    let reference = start(&connector, &account, &customer, 700_100).await;
    assert!(matches!(
        settled(&connector, &account, &customer, &reference).await,
        PaymentOutcome::Succeeded { .. }
    ));
}

#[tokio::test]
async fn the_customer_cancels() {
    assert_eq!(failure_code_for(103_200).await, "cancelled_by_user");
}

#[tokio::test]
async fn the_customer_enters_a_wrong_pin() {
    assert_eq!(failure_code_for(200_100).await, "wrong_pin");
}

#[tokio::test]
async fn the_customer_has_insufficient_funds() {
    assert_eq!(failure_code_for(900_100).await, "insufficient_funds");
}

#[tokio::test]
async fn a_prompt_never_answered_stays_processing() {
    let simulator = simulator().await;
    let connector = connector();
    let account = account(&simulator);
    let customer = customer();
    let reference = start(&connector, &account, &customer, 700_300).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    for _ in 0..2 {
        match status(&connector, &account, &customer, &reference)
            .await
            .unwrap()
        {
            PaymentOutcome::Processing {
                provider_reference, ..
            } => assert_eq!(provider_reference, Some(reference.clone())),
            other => panic!("expected processing, got {other:?}"),
        }
    }
}

#[tokio::test]
async fn a_wrong_consumer_secret_is_rejected() {
    let simulator = simulator().await;
    let connector = connector();
    let account = account_with_secret(&simulator, "not-the-secret");
    let customer = customer();
    let error = connector
        .start_payment(&payment(&account, &customer, 100))
        .await
        .unwrap_err();
    assert!(matches!(error, ConnectorError::Rejected(_)), "{error:?}");
    assert!(
        simulator
            .requests()
            .iter()
            .all(|request| request.path == "/oauth/v1/generate")
    );
}

#[tokio::test]
async fn the_token_is_reused_across_payments() {
    let simulator = simulator().await;
    let connector = connector();
    let account = account(&simulator);
    let customer = customer();
    let first = start(&connector, &account, &customer, 100).await;
    let second = start(&connector, &account, &customer, 200).await;
    assert_ne!(first, second);
    status(&connector, &account, &customer, &first)
        .await
        .unwrap();
    let requests = simulator.requests();
    let oauth_calls = requests
        .iter()
        .filter(|request| request.path == "/oauth/v1/generate")
        .count();
    assert_eq!(oauth_calls, 1);
    assert_eq!(
        requests
            .iter()
            .filter(|request| request.path == "/mpesa/stkpush/v1/processrequest")
            .count(),
        2
    );
    let push = requests
        .iter()
        .find(|request| request.path == "/mpesa/stkpush/v1/processrequest")
        .unwrap();
    assert!(
        push.header("authorization")
            .is_some_and(|value| value.starts_with("Bearer "))
    );
}

#[tokio::test]
async fn amounts_that_are_not_whole_shillings_are_refused() {
    let simulator = simulator().await;
    let connector = connector();
    let account = account(&simulator);
    let customer = customer();
    let error = connector
        .start_payment(&payment(&account, &customer, 150))
        .await
        .unwrap_err();
    assert!(matches!(error, ConnectorError::Rejected(_)), "{error:?}");
    // Refused before any call to Daraja.
    assert!(simulator.requests().is_empty());
}

#[tokio::test]
async fn missing_credentials_and_callback_url_are_refused() {
    let simulator = simulator().await;
    let connector = connector();
    let customer = customer();
    let mut account = account(&simulator);
    account.credentials.remove("passkey");
    let error = connector
        .start_payment(&payment(&account, &customer, 100))
        .await
        .unwrap_err();
    assert_eq!(
        error,
        ConnectorError::Rejected("missing credential `passkey`".into())
    );

    let mut account = self::account(&simulator);
    account.callback_url = None;
    assert!(matches!(
        connector
            .start_payment(&payment(&account, &customer, 100))
            .await,
        Err(ConnectorError::Rejected(_))
    ));
}

#[tokio::test]
async fn a_wrong_passkey_is_rejected_with_darajas_code() {
    let simulator = simulator().await;
    let connector = connector();
    let customer = customer();
    let mut account = account(&simulator);
    account
        .credentials
        .insert("passkey".into(), "not-the-passkey".into());
    match connector
        .start_payment(&payment(&account, &customer, 100))
        .await
    {
        Err(ConnectorError::Rejected(message)) => {
            assert!(message.starts_with("500.001.1001"), "{message}")
        }
        other => panic!("expected a rejection, got {other:?}"),
    }
}

#[tokio::test]
async fn an_unreachable_daraja_is_unavailable() {
    let simulator = simulator().await;
    let connector = connector();
    let customer = customer();
    let mut account = account(&simulator);
    account
        .credentials
        .insert("base_url".into(), "http://127.0.0.1:9".into());
    assert!(matches!(
        connector
            .start_payment(&payment(&account, &customer, 100))
            .await,
        Err(ConnectorError::Unavailable(_))
    ));
}

#[tokio::test]
async fn refunds_are_not_supported_yet() {
    let simulator = simulator().await;
    let connector = connector();
    let account = account(&simulator);
    assert_eq!(connector.name(), "mpesa");
    assert_eq!(connector.payment_expiry_seconds(), 120);
    let error = connector
        .refund(&RefundRequest {
            refund_id: "re_1",
            payment_id: "pay_1",
            provider_reference: Some("ws_CO_1"),
            amount: 100,
            currency: "kes",
            account: &account,
        })
        .await
        .unwrap_err();
    assert_eq!(error, ConnectorError::Unsupported("M-Pesa reversal"));
}
