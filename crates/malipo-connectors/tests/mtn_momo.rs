//! The MTN MoMo connector against the local MoMo simulator, over HTTP.

#![allow(clippy::unwrap_used)]

mod support;

use malipo_connectors::mtn_momo::MtnMomoConnector;
use malipo_connectors::{
    CallbackClaim, Connector, ConnectorAccount, ConnectorError, PaymentOutcome, PaymentRequest,
    RefundRequest, StatusRequest,
};
use malipo_core::objects::{Customer, Failure, NextAction};
use malipo_core::payment::PaymentMethod;
use malipo_simulators::mtn_momo::{
    TEST_NUMBER_CALLBACK_LOST, TEST_NUMBER_FAILED, TEST_NUMBER_ONGOING, TEST_NUMBER_PENDING,
    TEST_NUMBER_REJECTED, TEST_NUMBER_TIMEOUT,
};
use malipo_simulators::{
    CallbackMethod, MomoReasonFormat, Provider, RunningSimulator, SimulatorConfig, spawn,
};
use std::time::Duration;

const PHONE: &str = "46733123499";
/// Nothing listens there: callbacks fail fast, but the simulator records
/// what it sent, which is what the callback tests read.
const CALLBACK_URL: &str = "http://127.0.0.1:9/v1/hooks/mtn_momo/acct_1";
const PAYMENT_ID: &str = "pay_01JTESTPAYMENT000000000001";

async fn simulator_with(config: SimulatorConfig) -> RunningSimulator {
    spawn(Provider::MtnMomo, config).await.unwrap()
}

async fn simulator() -> RunningSimulator {
    simulator_with(SimulatorConfig::for_tests(20)).await
}

fn connector() -> MtnMomoConnector {
    MtnMomoConnector::with_client(support::client())
}

fn account(simulator: &RunningSimulator) -> ConnectorAccount {
    let momo = &simulator.config().mtn_momo;
    let credentials = support::credentials(&[
        ("api_user", &momo.api_user),
        ("api_key", &momo.api_key),
        ("subscription_key", &momo.collection_subscription_key),
        ("target_environment", "sandbox"),
        ("base_url", simulator.base_url()),
    ]);
    ConnectorAccount {
        id: "acct_1".into(),
        provider: "mtn_momo".into(),
        credentials,
        callback_url: Some(CALLBACK_URL.into()),
    }
}

use support::customer;

fn payment<'a>(
    account: &'a ConnectorAccount,
    customer: &'a Customer,
    cents: u64,
) -> PaymentRequest<'a> {
    PaymentRequest {
        payment_id: PAYMENT_ID,
        amount: cents,
        currency: "eur",
        method: PaymentMethod::MtnMomo,
        customer,
        reference: Some("INV-42"),
        description: Some("Test order"),
        return_url: None,
        payment_method: None,
        capture_method: malipo_core::payment::CaptureMethod::Automatic,
        account,
        livemode: false,
    }
}

/// Starts a payment and returns its X-Reference-Id.
async fn start(
    connector: &MtnMomoConnector,
    account: &ConnectorAccount,
    customer: &Customer,
) -> String {
    match connector
        .start_payment(&payment(account, customer, 1_050))
        .await
        .unwrap()
    {
        PaymentOutcome::Processing {
            provider_reference: Some(reference),
            next_action: Some(NextAction::PhonePrompt { phone, .. }),
            poll_after_ms,
        } => {
            assert!(uuid::Uuid::parse_str(&reference).is_ok(), "{reference}");
            assert_eq!(Some(phone), customer.phone.clone());
            assert!(poll_after_ms > 0);
            reference
        }
        other => panic!("expected processing, got {other:?}"),
    }
}

async fn status_at(
    connector: &MtnMomoConnector,
    account: &ConnectorAccount,
    customer: &Customer,
    reference: &str,
    started_ms: i64,
) -> Result<PaymentOutcome, ConnectorError> {
    connector
        .payment_status(&StatusRequest {
            payment_id: PAYMENT_ID,
            provider_reference: Some(reference),
            customer,
            started_ms,
            now_ms: 0,
            next_action: None,
            amount: 0,
            currency: "",
            account,
        })
        .await
}

async fn settled(
    connector: &MtnMomoConnector,
    account: &ConnectorAccount,
    customer: &Customer,
    reference: &str,
) -> PaymentOutcome {
    support::settled(|| status_at(connector, account, customer, reference, 0)).await
}

async fn failure_for(phone: &str, reason_format: MomoReasonFormat) -> Failure {
    let mut config = SimulatorConfig::for_tests(20);
    config.mtn_momo.reason_format = reason_format;
    let simulator = simulator_with(config).await;
    let connector = connector();
    let account = account(&simulator);
    let customer = customer(phone);
    let reference = start(&connector, &account, &customer).await;
    match settled(&connector, &account, &customer, &reference).await {
        PaymentOutcome::Failed {
            provider_reference,
            failure,
        } => {
            assert_eq!(provider_reference.as_deref(), Some(reference.as_str()));
            // The callback claims the same failure.
            let callbacks = simulator
                .wait_for_callbacks(1, Duration::from_secs(3))
                .await
                .unwrap();
            match connector.parse_callback(callbacks[0].body.as_bytes()) {
                Some(CallbackClaim {
                    provider_reference: claimed,
                    payment_id: None,
                    outcome:
                        PaymentOutcome::Failed {
                            failure: claimed_failure,
                            ..
                        },
                }) => {
                    assert_eq!(claimed, reference);
                    assert_eq!(claimed_failure, failure);
                }
                other => panic!("expected a failure claim, got {other:?}"),
            }
            failure
        }
        other => panic!("expected a failure, got {other:?}"),
    }
}

#[tokio::test]
async fn a_payment_succeeds_after_the_customer_approves() {
    let simulator = simulator().await;
    let connector = connector();
    let account = account(&simulator);
    let customer = customer(PHONE);
    let reference = start(&connector, &account, &customer).await;
    assert_eq!(
        settled(&connector, &account, &customer, &reference).await,
        PaymentOutcome::Succeeded {
            provider_reference: Some(reference.clone())
        }
    );

    // The RequestToPay carried MTN's documented headers and body.
    let request = simulator
        .requests()
        .into_iter()
        .find(|request| request.path == "/collection/v1_0/requesttopay")
        .unwrap();
    assert_eq!(request.header("x-reference-id"), Some(reference.as_str()));
    assert_eq!(request.header("x-target-environment"), Some("sandbox"));
    assert_eq!(request.header("x-callback-url"), Some(CALLBACK_URL));
    assert_eq!(
        request.header("ocp-apim-subscription-key"),
        Some("malipo-collection-subscription-key")
    );
    assert!(
        request
            .header("authorization")
            .is_some_and(|value| value.starts_with("Bearer "))
    );
    let body = request.json().unwrap();
    assert_eq!(body["amount"], "10.50", "a string, exact");
    assert_eq!(body["currency"], "EUR");
    assert_eq!(body["externalId"], reference.as_str());
    assert_eq!(body["payer"]["partyIdType"], "MSISDN");
    assert_eq!(body["payer"]["partyId"], PHONE);
    assert_eq!(body["payerMessage"], "Test order");
    assert_eq!(body["payeeNote"], PAYMENT_ID);

    // The simulator's real callback (a PUT by default) claims the same.
    let callbacks = simulator
        .wait_for_callbacks(1, Duration::from_secs(3))
        .await
        .unwrap();
    assert_eq!(callbacks[0].method, "PUT");
    assert_eq!(
        connector.parse_callback(callbacks[0].body.as_bytes()),
        Some(CallbackClaim {
            provider_reference: reference.clone(),
            payment_id: None,
            outcome: PaymentOutcome::Succeeded {
                provider_reference: Some(reference)
            },
        })
    );
}

#[tokio::test]
async fn a_callback_sent_by_post_reads_the_same() {
    let mut config = SimulatorConfig::for_tests(20);
    config.mtn_momo.callback_method = CallbackMethod::Post;
    let simulator = simulator_with(config).await;
    let connector = connector();
    let account = account(&simulator);
    let reference = start(&connector, &account, &customer(PHONE)).await;
    let callbacks = simulator
        .wait_for_callbacks(1, Duration::from_secs(3))
        .await
        .unwrap();
    assert_eq!(callbacks[0].method, "POST");
    let claim = connector
        .parse_callback(callbacks[0].body.as_bytes())
        .unwrap();
    assert_eq!(claim.provider_reference, reference);
    assert!(matches!(claim.outcome, PaymentOutcome::Succeeded { .. }));
}

#[tokio::test]
async fn the_payment_fails_internally() {
    let failure = failure_for(TEST_NUMBER_FAILED, MomoReasonFormat::Text).await;
    assert_eq!(failure.code, "declined");
    assert_eq!(failure.message, "MTN MoMo reason INTERNAL_PROCESSING_ERROR");
}

#[tokio::test]
async fn the_customer_rejects() {
    let failure = failure_for(TEST_NUMBER_REJECTED, MomoReasonFormat::Text).await;
    assert_eq!(failure.code, "cancelled_by_user");
}

#[tokio::test]
async fn the_customer_never_approves_in_time() {
    let failure = failure_for(TEST_NUMBER_TIMEOUT, MomoReasonFormat::Text).await;
    assert_eq!(failure.code, "expired");
}

#[tokio::test]
async fn a_reason_written_as_an_object_is_read() {
    let failure = failure_for(TEST_NUMBER_REJECTED, MomoReasonFormat::Object).await;
    assert_eq!(failure.code, "cancelled_by_user");
    assert_eq!(
        failure.message,
        "The customer rejected the approval request. (APPROVAL_REJECTED)"
    );
}

#[tokio::test]
async fn pending_then_successful() {
    let mut config = SimulatorConfig::for_tests(20);
    config.mtn_momo.ongoing_duration_ms = 400;
    let simulator = simulator_with(config).await;
    let connector = connector();
    let account = account(&simulator);
    let customer = customer(TEST_NUMBER_ONGOING);
    let reference = start(&connector, &account, &customer).await;
    match status_at(&connector, &account, &customer, &reference, 0)
        .await
        .unwrap()
    {
        PaymentOutcome::Processing {
            provider_reference,
            next_action: Some(NextAction::PhonePrompt { .. }),
            ..
        } => assert_eq!(provider_reference, Some(reference.clone())),
        other => panic!("expected processing, got {other:?}"),
    }
    assert_eq!(
        settled(&connector, &account, &customer, &reference).await,
        PaymentOutcome::Succeeded {
            provider_reference: Some(reference)
        }
    );
}

#[tokio::test]
async fn a_lost_callback_is_found_by_polling_and_pending_stays_processing() {
    let simulator = simulator().await;
    let connector = connector();
    let account = account(&simulator);
    let lost = customer(TEST_NUMBER_CALLBACK_LOST);
    let reference = start(&connector, &account, &lost).await;
    assert!(matches!(
        settled(&connector, &account, &lost, &reference).await,
        PaymentOutcome::Succeeded { .. }
    ));
    let pending = customer(TEST_NUMBER_PENDING);
    let reference = start(&connector, &account, &pending).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(matches!(
        status_at(&connector, &account, &pending, &reference, 0).await,
        Ok(PaymentOutcome::Processing { .. })
    ));
}

#[tokio::test]
async fn an_unknown_reference_is_processing_at_first_then_failed() {
    let simulator = simulator().await;
    let connector = connector();
    let account = account(&simulator);
    let customer = customer(PHONE);
    let unknown = "0b7f7bb5-0000-4000-8000-000000000000";
    assert!(matches!(
        status_at(&connector, &account, &customer, unknown, 0).await,
        Ok(PaymentOutcome::Processing { .. })
    ));
    match status_at(&connector, &account, &customer, unknown, -120_000).await {
        Ok(PaymentOutcome::Failed { failure, .. }) => {
            assert_eq!(failure.code, "provider_error");
            assert!(
                failure.message.contains("RESOURCE_NOT_FOUND"),
                "{failure:?}"
            );
        }
        other => panic!("expected a failure, got {other:?}"),
    }
}

#[tokio::test]
async fn wrong_credentials_are_rejected() {
    let simulator = simulator().await;
    let connector = connector();
    let customer = customer(PHONE);
    let mut wrong_key = account(&simulator);
    wrong_key
        .credentials
        .insert("api_key".into(), "not-the-key".into());
    match connector
        .start_payment(&payment(&wrong_key, &customer, 100))
        .await
    {
        Err(ConnectorError::Rejected(message)) => {
            assert!(message.contains("login_failed"), "{message}")
        }
        other => panic!("expected a rejection, got {other:?}"),
    }
    let mut wrong_subscription = account(&simulator);
    wrong_subscription
        .credentials
        .insert("subscription_key".into(), "not-the-subscription".into());
    match connector
        .start_payment(&payment(&wrong_subscription, &customer, 100))
        .await
    {
        Err(ConnectorError::Rejected(message)) => {
            assert!(message.contains("subscription key"), "{message}")
        }
        other => panic!("expected a rejection, got {other:?}"),
    }
    // Nothing but token calls reached MTN.
    assert!(
        simulator
            .requests()
            .iter()
            .all(|request| request.path == "/collection/token/")
    );
    let mut missing = account(&simulator);
    missing.credentials.remove("subscription_key");
    assert_eq!(
        connector
            .start_payment(&payment(&missing, &customer, 100))
            .await,
        Err(ConnectorError::Rejected(
            "missing credential `subscription_key`".into()
        ))
    );
}

#[tokio::test]
async fn the_token_is_reused_across_calls() {
    let simulator = simulator().await;
    let connector = connector();
    let account = account(&simulator);
    let customer = customer(PHONE);
    let first = start(&connector, &account, &customer).await;
    let second = start(&connector, &account, &customer).await;
    assert_ne!(first, second, "a fresh X-Reference-Id each time");
    status_at(&connector, &account, &customer, &first, 0)
        .await
        .unwrap();
    let tokens = simulator
        .requests()
        .iter()
        .filter(|request| request.path == "/collection/token/")
        .count();
    assert_eq!(tokens, 1);
}

#[tokio::test]
async fn live_payments_on_the_sandbox_and_wrong_currencies_are_refused() {
    let simulator = simulator().await;
    let connector = connector();
    let account = account(&simulator);
    let customer = customer(PHONE);
    let live = PaymentRequest {
        livemode: true,
        ..payment(&account, &customer, 100)
    };
    assert!(matches!(
        connector.start_payment(&live).await,
        Err(ConnectorError::Rejected(message)) if message.contains("target_environment")
    ));
    let uganda = customer_in_uganda();
    let shillings = PaymentRequest {
        currency: "ugx",
        ..payment(&account, &uganda, 500)
    };
    assert!(matches!(
        connector.start_payment(&shillings).await,
        Err(ConnectorError::Rejected(message)) if message.contains("takes EUR")
    ));
    assert!(simulator.requests().is_empty());
}

fn customer_in_uganda() -> Customer {
    customer("256772123456")
}

#[test]
fn phones_are_normalised_and_refused_naming_the_field() {
    let connector = MtnMomoConnector::default();
    let mut sandbox = customer("+46 733 123 450");
    connector.check_payment(&mut sandbox, "EUR", 100).unwrap();
    assert_eq!(sandbox.phone.as_deref(), Some("46733123450"));
    let mut ugandan = customer("0772 123456");
    connector.check_payment(&mut ugandan, "ugx", 500).unwrap();
    assert_eq!(ugandan.phone.as_deref(), Some("256772123456"));
    let mut ghanaian = customer("024 123 4567");
    connector.check_payment(&mut ghanaian, "ghs", 500).unwrap();
    assert_eq!(ghanaian.phone.as_deref(), Some("233241234567"));

    let mut kenyan = customer("254708374149");
    let error = connector
        .check_payment(&mut kenyan, "ugx", 500)
        .unwrap_err();
    assert_eq!(error.param, "customer[phone]");
    assert!(error.message.contains("Ugandan"), "{}", error.message);
    let error = connector
        .check_payment(&mut Customer::default(), "ugx", 500)
        .unwrap_err();
    assert_eq!(error.param, "customer[phone]");
    let error = connector
        .check_payment(&mut customer_in_uganda(), "kes", 500)
        .unwrap_err();
    assert_eq!(error.param, "currency");
    assert!(error.message.contains("UGX"), "{}", error.message);
}

#[test]
fn callbacks_of_every_documented_shape_are_read() {
    let connector = MtnMomoConnector::default();
    let claim = |body: &str| connector.parse_callback(body.as_bytes());
    // SUCCESSFUL, with MTN's number-as-string amount.
    let success = claim(
        r#"{"financialTransactionId": "23503452", "externalId": "ref-1", "amount": "100",
            "currency": "UGX", "payer": {"partyIdType": "MSISDN", "partyId": "4656473839"},
            "payerMessage": "m", "payeeNote": "n", "status": "SUCCESSFUL"}"#,
    )
    .unwrap();
    assert_eq!(success.provider_reference, "ref-1");
    assert!(matches!(success.outcome, PaymentOutcome::Succeeded { .. }));
    // FAILED with reason as a string (production) and as an object (swagger).
    for body in [
        r#"{"externalId": "ref-2", "status": "FAILED", "reason": "NOT_ENOUGH_FUNDS"}"#,
        r#"{"externalId": "ref-2", "status": "FAILED", "reason": {"code": "NOT_ENOUGH_FUNDS", "message": "Not enough funds"}}"#,
    ] {
        match claim(body).unwrap().outcome {
            PaymentOutcome::Failed { failure, .. } => {
                assert_eq!(failure.code, "insufficient_funds")
            }
            other => panic!("{other:?}"),
        }
    }
    // FAILED without a reason; PENDING; a lowercase status.
    match claim(r#"{"externalId": "ref-3", "status": "FAILED"}"#)
        .unwrap()
        .outcome
    {
        PaymentOutcome::Failed { failure, .. } => assert_eq!(failure.code, "declined"),
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        claim(r#"{"externalId": "ref-4", "status": "PENDING"}"#)
            .unwrap()
            .outcome,
        PaymentOutcome::Processing { .. }
    ));
    assert!(matches!(
        claim(r#"{"externalId": "ref-5", "status": "successful"}"#)
            .unwrap()
            .outcome,
        PaymentOutcome::Succeeded { .. }
    ));
    // Not a callback this connector can place.
    assert_eq!(claim(r#"{"status": "SUCCESSFUL"}"#), None);
    assert_eq!(claim(r#"{"externalId": "ref-6", "status": "WEIRD"}"#), None);
    assert_eq!(claim("not json"), None);
}

#[tokio::test]
async fn an_unreachable_mtn_is_unavailable_and_refunds_are_unsupported() {
    let simulator = simulator().await;
    let connector = connector();
    let customer = customer(PHONE);
    let mut account = account(&simulator);
    assert_eq!(connector.name(), "mtn_momo");
    assert_eq!(connector.payment_expiry_seconds(), 600);
    assert_eq!(
        connector
            .refund(&RefundRequest {
                refund_id: "re_1",
                payment_id: PAYMENT_ID,
                provider_reference: Some("ref"),
                provider_receipt: None,
                payment_amount: 100,
                livemode: false,
                amount: 100,
                currency: "eur",
                account: &account,
            })
            .await,
        Err(ConnectorError::Unsupported("MTN MoMo refund"))
    );
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

/// The X-Reference-Id is the UUID of the payment's Malipo id: a payment
/// whose answer was never recorded (the process died mid-call) is found by
/// the status poll all the same, and MTN refuses a second RequestToPay for
/// the same payment, so a customer is never asked twice.
#[tokio::test]
async fn a_payment_whose_answer_was_lost_is_found_by_its_id() {
    let simulator = simulator().await;
    let connector = connector();
    let account = account(&simulator);
    let customer = customer(PHONE);
    let id = malipo_core::id::new_id(malipo_core::id::IdKind::Payment);
    let request = PaymentRequest {
        payment_id: &id,
        ..payment(&account, &customer, 1_050)
    };
    let answer = connector.start_payment(&request).await.unwrap();
    let expected = malipo_core::id::uuid_of(malipo_core::id::IdKind::Payment, &id)
        .unwrap()
        .to_string();
    assert!(
        matches!(&answer, PaymentOutcome::Processing { provider_reference: Some(reference), .. } if *reference == expected),
        "{answer:?}"
    );
    // The answer is lost: the poll knows only the payment's id.
    let lost = StatusRequest {
        payment_id: &id,
        provider_reference: None,
        customer: &customer,
        started_ms: 0,
        now_ms: 0,
        next_action: None,
        amount: 0,
        currency: "",
        account: &account,
    };
    let outcome = support::settled(|| connector.payment_status(&lost)).await;
    assert!(
        matches!(&outcome, PaymentOutcome::Succeeded { provider_reference: Some(reference) } if *reference == expected),
        "{outcome:?}"
    );
    assert!(matches!(
        connector.start_payment(&request).await,
        Err(ConnectorError::Rejected(_))
    ));
}
