//! The Airtel Money connector against the local Airtel simulator, over HTTP.

#![allow(clippy::unwrap_used)]

mod support;

use malipo_connectors::airtel::{AirtelConnector, transaction_id};
use malipo_connectors::{
    CallbackClaim, Connector, ConnectorAccount, ConnectorError, PaymentOutcome, PaymentRequest,
    RefundCheck, RefundOutcome, RefundRequest, StatusRequest,
};
use malipo_core::objects::{Customer, NextAction};
use malipo_core::payment::PaymentMethod;
use malipo_simulators::{Provider, RunningSimulator, SimulatorConfig, spawn};
use std::time::Duration;

/// Ends in 0001: succeeds.
const PHONE: &str = "256752000001";
/// Nothing listens there: callbacks fail fast, but the simulator records
/// what it sent.
const CALLBACK_URL: &str = "http://127.0.0.1:9/v1/hooks/airtel_money/acct_1";
const PAYMENT_ID: &str = "pay_01JTESTPAYMENT000000000001";

async fn simulator() -> RunningSimulator {
    let simulator = spawn(Provider::Airtel, SimulatorConfig::for_tests(150))
        .await
        .unwrap();
    simulator.set_callback_url(CALLBACK_URL).unwrap();
    simulator
}

fn connector() -> AirtelConnector {
    AirtelConnector::with_client(support::client())
}

fn account_with_secret(simulator: &RunningSimulator, secret: &str) -> ConnectorAccount {
    let credentials = support::credentials(&[
        ("client_id", &simulator.config().airtel.client_id),
        ("client_secret", secret),
        ("base_url", simulator.base_url()),
    ]);
    ConnectorAccount {
        id: "acct_1".into(),
        provider: "airtel_money".into(),
        credentials,
        callback_url: Some(CALLBACK_URL.into()),
    }
}

fn account(simulator: &RunningSimulator) -> ConnectorAccount {
    let secret = simulator.config().airtel.client_secret.clone();
    account_with_secret(simulator, &secret)
}

use support::customer;

fn payment<'a>(
    account: &'a ConnectorAccount,
    customer: &'a Customer,
    payment_id: &'a str,
) -> PaymentRequest<'a> {
    PaymentRequest {
        payment_id,
        amount: 5_000,
        currency: "ugx",
        method: PaymentMethod::AirtelMoney,
        customer,
        reference: Some("INV-42"),
        description: None,
        return_url: None,
        payment_method: None,
        capture_method: malipo_core::payment::CaptureMethod::Automatic,
        account,
        livemode: false,
    }
}

async fn start_as(
    connector: &AirtelConnector,
    account: &ConnectorAccount,
    customer: &Customer,
    payment_id: &str,
) -> String {
    match connector
        .start_payment(&payment(account, customer, payment_id))
        .await
        .unwrap()
    {
        PaymentOutcome::Processing {
            provider_reference: Some(reference),
            next_action: Some(NextAction::PhonePrompt { .. }),
            ..
        } => {
            assert_eq!(reference, transaction_id(payment_id));
            reference
        }
        other => panic!("expected processing, got {other:?}"),
    }
}

async fn start(
    connector: &AirtelConnector,
    account: &ConnectorAccount,
    customer: &Customer,
) -> String {
    start_as(connector, account, customer, PAYMENT_ID).await
}

async fn status(
    connector: &AirtelConnector,
    account: &ConnectorAccount,
    customer: &Customer,
    reference: Option<&str>,
) -> Result<PaymentOutcome, ConnectorError> {
    connector
        .payment_status(&StatusRequest {
            payment_id: PAYMENT_ID,
            provider_reference: reference,
            customer,
            started_ms: 0,
            now_ms: 0,
            next_action: None,
            amount: 0,
            currency: "",
            account,
        })
        .await
}

async fn settled(
    connector: &AirtelConnector,
    account: &ConnectorAccount,
    customer: &Customer,
    reference: &str,
) -> PaymentOutcome {
    support::settled(|| status(connector, account, customer, Some(reference))).await
}

async fn failure_code_for(phone: &str) -> String {
    let simulator = simulator().await;
    let connector = connector();
    let account = account(&simulator);
    let customer = customer(phone);
    let reference = start(&connector, &account, &customer).await;
    let failure = match settled(&connector, &account, &customer, &reference).await {
        PaymentOutcome::Failed {
            provider_reference,
            failure,
        } => {
            assert_eq!(provider_reference.as_deref(), Some(reference.as_str()));
            assert!(failure.message.contains("DP008000010"), "{failure:?}");
            failure
        }
        other => panic!("expected a failure, got {other:?}"),
    };
    // The callback claims a failure too (without Airtel's response code,
    // which only the enquiry gives).
    let callbacks = simulator
        .wait_for_callbacks(1, Duration::from_secs(3))
        .await
        .unwrap();
    let claim = connector
        .parse_callback(callbacks[0].body.as_bytes())
        .unwrap();
    assert_eq!(claim.provider_reference, reference);
    assert!(matches!(claim.outcome, PaymentOutcome::Failed { .. }));
    failure.code
}

#[tokio::test]
async fn a_payment_succeeds_after_pending() {
    let simulator = simulator().await;
    let connector = connector();
    let account = account(&simulator);
    let customer = customer(PHONE);
    let reference = start(&connector, &account, &customer).await;
    // In progress (TIP) until the customer answers.
    assert!(matches!(
        status(&connector, &account, &customer, Some(&reference)).await,
        Ok(PaymentOutcome::Processing { .. })
    ));
    assert_eq!(
        settled(&connector, &account, &customer, &reference).await,
        PaymentOutcome::Succeeded {
            provider_reference: Some(reference.clone())
        }
    );

    let push = simulator
        .requests()
        .into_iter()
        .find(|request| request.path == "/merchant/v1/payments/")
        .unwrap();
    assert_eq!(push.header("x-country"), Some("UG"));
    assert_eq!(push.header("x-currency"), Some("UGX"));
    let body = push.json().unwrap();
    assert_eq!(body["reference"], "INV-42");
    assert_eq!(body["subscriber"]["msisdn"], "752000001", "without +256");
    assert_eq!(body["subscriber"]["country"], "UG");
    assert_eq!(body["transaction"]["amount"], 5_000);
    assert_eq!(body["transaction"]["currency"], "UGX");
    assert_eq!(body["transaction"]["id"], reference.as_str());

    let callbacks = simulator
        .wait_for_callbacks(1, Duration::from_secs(3))
        .await
        .unwrap();
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
async fn insufficient_balance() {
    assert_eq!(failure_code_for("256752000002").await, "insufficient_funds");
}

#[tokio::test]
async fn refused_by_the_customer() {
    assert_eq!(failure_code_for("256752000004").await, "cancelled_by_user");
}

#[tokio::test]
async fn incorrect_pin() {
    assert_eq!(failure_code_for("256752000006").await, "wrong_pin");
}

#[tokio::test]
async fn timed_out() {
    assert_eq!(failure_code_for("256752000007").await, "expired");
}

#[tokio::test]
async fn ambiguous_and_unanswered_stay_processing_and_a_lost_callback_is_polled() {
    let simulator = simulator().await;
    let connector = connector();
    let account = account(&simulator);
    let ambiguous = customer("256752000008");
    let never = customer("256752000005");
    let lost = customer("256752000009");
    let ambiguous_reference = start_as(&connector, &account, &ambiguous, "pay_ambiguous0001").await;
    let never_reference = start_as(&connector, &account, &never, "pay_unanswered0001").await;
    let lost_reference = start_as(&connector, &account, &lost, "pay_lostcallback01").await;
    tokio::time::sleep(Duration::from_millis(400)).await;
    for (customer, reference) in [
        (&ambiguous, &ambiguous_reference),
        (&never, &never_reference),
    ] {
        assert!(matches!(
            status(&connector, &account, customer, Some(reference)).await,
            Ok(PaymentOutcome::Processing { .. })
        ));
    }
    assert!(matches!(
        settled(&connector, &account, &lost, &lost_reference).await,
        PaymentOutcome::Succeeded { .. }
    ));
}

#[tokio::test]
async fn the_enquiry_works_without_the_recorded_reference() {
    let simulator = simulator().await;
    let connector = connector();
    let account = account(&simulator);
    let customer = customer(PHONE);
    let reference = start(&connector, &account, &customer).await;
    // The gateway died before recording Airtel's answer: the id is the
    // payment's, so the poll still finds the push.
    match status(&connector, &account, &customer, None).await.unwrap() {
        PaymentOutcome::Processing {
            provider_reference, ..
        }
        | PaymentOutcome::Succeeded { provider_reference } => {
            assert_eq!(provider_reference, Some(reference))
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn wrong_client_credentials_are_rejected() {
    let simulator = simulator().await;
    let connector = connector();
    let account = account_with_secret(&simulator, "not-the-secret");
    let customer = customer(PHONE);
    match connector
        .start_payment(&payment(&account, &customer, PAYMENT_ID))
        .await
    {
        Err(ConnectorError::Rejected(message)) => {
            assert!(message.contains("invalid_client"), "{message}")
        }
        other => panic!("expected a rejection, got {other:?}"),
    }
    assert!(
        simulator
            .requests()
            .iter()
            .all(|request| request.path == "/auth/oauth2/token")
    );
}

#[tokio::test]
async fn the_token_is_cached() {
    let simulator = simulator().await;
    let connector = connector();
    let account = account(&simulator);
    let customer = customer(PHONE);
    start_as(&connector, &account, &customer, "pay_first0000001").await;
    start_as(&connector, &account, &customer, "pay_second000001").await;
    let tokens = simulator
        .requests()
        .iter()
        .filter(|request| request.path == "/auth/oauth2/token")
        .count();
    assert_eq!(tokens, 1, "expires_in is a string (\"180\") and still read");
}

#[tokio::test]
async fn a_successful_transaction_can_be_reversed_once() {
    let simulator = simulator().await;
    let connector = connector();
    let account = account(&simulator);
    let customer = customer(PHONE);
    let reference = start(&connector, &account, &customer).await;
    settled(&connector, &account, &customer, &reference).await;
    let callbacks = simulator
        .wait_for_callbacks(1, Duration::from_secs(3))
        .await
        .unwrap();
    let body = callbacks[0].json().unwrap();
    let money_id = body["transaction"]["airtel_money_id"].as_str().unwrap();
    assert_eq!(
        connector.reverse(&account, "ugx", money_id).await,
        Ok(RefundOutcome::Succeeded {
            provider_reference: Some(money_id.to_string())
        })
    );
    assert!(matches!(
        connector.reverse(&account, "ugx", money_id).await,
        Ok(RefundOutcome::Failed { failure }) if failure.message.contains("already refunded")
    ));
    // Through the Connector trait: a partial refund is refused (naming
    // `amount`) before any call, since Airtel reverses whole transactions.
    let check = |amount| {
        connector.check_refund(&RefundCheck {
            amount,
            payment_amount: 5_000,
            provider_receipt: None,
        })
    };
    assert_eq!(check(1_000).unwrap_err().param, "amount");
    assert_eq!(check(5_000), Ok(()));
    let refund = |amount| RefundRequest {
        refund_id: "re_1",
        payment_id: PAYMENT_ID,
        provider_reference: Some(&reference),
        provider_receipt: None,
        amount,
        payment_amount: 5_000,
        currency: "ugx",
        account: &account,
        livemode: false,
    };
    assert!(matches!(
        connector.refund(&refund(1_000)).await,
        Err(ConnectorError::Rejected(message)) if message.contains("whole transactions")
    ));
    // A whole refund without a recorded receipt asks the enquiry for the
    // airtel_money_id; this one was reversed above already.
    assert!(matches!(
        connector.refund(&refund(5_000)).await,
        Ok(RefundOutcome::Failed { failure }) if failure.message.contains("already refunded")
    ));
    assert!(
        simulator
            .requests()
            .iter()
            .any(|request| request.path == format!("/standard/v1/payments/{reference}"))
    );
}

#[tokio::test]
async fn a_whole_refund_reverses_the_payment_by_its_enquired_money_id() {
    let simulator = simulator().await;
    let connector = connector();
    let account = account(&simulator);
    let customer = customer(PHONE);
    let reference = start(&connector, &account, &customer).await;
    settled(&connector, &account, &customer, &reference).await;
    let outcome = connector
        .refund(&RefundRequest {
            refund_id: "re_1",
            payment_id: PAYMENT_ID,
            provider_reference: Some(&reference),
            provider_receipt: None,
            amount: 5_000,
            payment_amount: 5_000,
            currency: "ugx",
            account: &account,
            livemode: false,
        })
        .await
        .unwrap();
    assert!(
        matches!(&outcome, RefundOutcome::Succeeded { provider_reference: Some(id) } if !id.is_empty()),
        "{outcome:?}"
    );
}

#[test]
fn phones_currencies_and_amounts_are_checked_naming_the_field() {
    let connector = AirtelConnector::default();
    let mut local = customer("0752 000001");
    connector.check_payment(&mut local, "UGX", 5_000).unwrap();
    assert_eq!(local.phone.as_deref(), Some("256752000001"));
    let mut kenyan = customer("+254 733 000001");
    connector.check_payment(&mut kenyan, "kes", 10_000).unwrap();
    assert_eq!(kenyan.phone.as_deref(), Some("254733000001"));

    let error = connector
        .check_payment(&mut customer("254733000001"), "ugx", 5_000)
        .unwrap_err();
    assert_eq!(error.param, "customer[phone]");
    assert!(error.message.contains("Ugandan"), "{}", error.message);
    let error = connector
        .check_payment(&mut customer(PHONE), "eur", 5_000)
        .unwrap_err();
    assert_eq!(error.param, "currency");
    let error = connector
        .check_payment(&mut customer("254733000001"), "kes", 10_050)
        .unwrap_err();
    assert_eq!(error.param, "amount");
}

#[test]
fn callbacks_of_every_documented_shape_are_read() {
    let connector = AirtelConnector::default();
    let claim = |body: &str| connector.parse_callback(body.as_bytes());
    let success = claim(
        r#"{"transaction": {"id": "BBZMiscxy", "message": "Paid UGX 5,000 to MALIPO, Trans ID MP210603.1234.L06941.",
            "status_code": "TS", "airtel_money_id": "MP210603.1234.L06941"}}"#,
    )
    .unwrap();
    assert_eq!(success.provider_reference, "BBZMiscxy");
    assert!(matches!(success.outcome, PaymentOutcome::Succeeded { .. }));
    // With "callback authentication" on, a top-level hash is added.
    let hashed = claim(
        r#"{"transaction": {"id": "t2", "message": "Not enough balance", "status_code": "TF",
            "airtel_money_id": "MP1"}, "hash": "c2lnbmF0dXJl"}"#,
    )
    .unwrap();
    match hashed.outcome {
        PaymentOutcome::Failed { failure, .. } => {
            assert_eq!(failure.code, "declined");
            assert_eq!(failure.message, "Not enough balance");
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        claim(r#"{"transaction": {"id": "t3", "status_code": "ts"}}"#)
            .unwrap()
            .outcome,
        PaymentOutcome::Succeeded { .. }
    ));
    assert_eq!(claim(r#"{"transaction": {"status_code": "TS"}}"#), None);
    assert_eq!(
        claim(r#"{"transaction": {"id": "t4", "status_code": "XX"}}"#),
        None
    );
    assert_eq!(claim(r#"{"id": "t5", "status_code": "TS"}"#), None);
    assert_eq!(claim("[]"), None);
}
