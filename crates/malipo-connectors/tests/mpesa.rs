//! The M-Pesa connector against the local Daraja simulator, over HTTP.

#![allow(clippy::unwrap_used)]

use malipo_connectors::mpesa::{
    C2B_ACCEPT, C2B_INVALID_ACCOUNT_NUMBER, MpesaConnector, c2b_validation_answer,
    parse_c2b_notification, parse_result, parse_stk_callback, reversal_outcome,
};
use malipo_connectors::{
    Connector, ConnectorAccount, ConnectorError, PaymentOutcome, PaymentRequest, RefundCheck,
    RefundOutcome, RefundRequest, StatusRequest,
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
        capture_method: malipo_core::payment::CaptureMethod::Automatic,
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
            amount: 0,
            currency: "",
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

/// The first callback of `kind` the simulator sent, as JSON.
async fn callback_of(simulator: &RunningSimulator, kind: &str) -> serde_json::Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(3);
    loop {
        if let Some(callback) = simulator
            .callbacks_sent()
            .into_iter()
            .find(|callback| callback.kind == kind)
        {
            return callback.json().unwrap();
        }
        assert!(tokio::time::Instant::now() < deadline, "no {kind} callback");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn reversal_account(simulator: &RunningSimulator) -> ConnectorAccount {
    let mut account = account(simulator);
    for (key, value) in [
        ("initiator", "testapi"),
        ("security_credential", "c2VjcmV0LXBhc3N3b3Jk"),
    ] {
        account.credentials.insert(key.into(), value.into());
    }
    account
}

fn reversal<'a>(
    account: &'a ConnectorAccount,
    receipt: Option<&'a str>,
    amount: u64,
) -> RefundRequest<'a> {
    RefundRequest {
        refund_id: "re_01JTESTREFUND0000001",
        payment_id: "pay_01JTESTPAYMENT000001",
        provider_reference: Some("ws_CO_1"),
        provider_receipt: receipt,
        amount,
        payment_amount: 100,
        currency: "kes",
        account,
        livemode: false,
    }
}

#[tokio::test]
async fn a_refund_is_a_reversal_completed_by_its_result() {
    let simulator = simulator().await;
    let connector = connector();
    let account = reversal_account(&simulator);
    let customer = customer();
    let reference = start(&connector, &account, &customer, 100).await;
    let callback = callback_of(&simulator, "stk_callback").await;
    let details = connector
        .parse_paid_details(callback.to_string().as_bytes())
        .unwrap();
    assert_eq!(details.provider_reference, reference);
    assert_eq!(details.amount, Some(100));
    assert_eq!(details.phone.as_deref(), Some(PHONE));
    let receipt = details.receipt.unwrap();

    let outcome = connector
        .refund(&reversal(&account, Some(&receipt), 100))
        .await
        .unwrap();
    let RefundOutcome::Pending {
        provider_reference: Some(conversation_id),
    } = outcome
    else {
        panic!("a reversal is answered later, got {outcome:?}");
    };
    assert!(conversation_id.starts_with("AG_"), "{conversation_id}");
    let request = simulator
        .requests()
        .into_iter()
        .find(|request| request.path == "/mpesa/reversal/v1/request")
        .unwrap();
    let body: serde_json::Value = serde_json::from_str(&request.body).unwrap();
    assert_eq!(body["CommandID"], "TransactionReversal");
    assert_eq!(body["TransactionID"], receipt.as_str());
    assert_eq!(body["Amount"], "1", "whole shillings");
    assert_eq!(body["RecieverIdentifierType"], "11", "Daraja's spelling");
    assert_eq!(body["ReceiverParty"], DARAJA_SANDBOX_SHORTCODE);
    assert_eq!(body["ResultURL"], CALLBACK_URL);
    assert_eq!(body["Initiator"], "testapi");

    let result = callback_of(&simulator, "reversal_result").await;
    let claim = connector
        .parse_refund_callback(result.to_string().as_bytes())
        .unwrap();
    assert_eq!(claim.provider_reference, conversation_id);
    assert_eq!(
        claim.original_transaction.as_deref(),
        Some(receipt.as_str())
    );
    assert_eq!(
        claim.outcome,
        RefundOutcome::Succeeded {
            provider_reference: Some(conversation_id.clone())
        }
    );
    // The STK callback is not a refund result, nor the reverse.
    assert_eq!(
        connector.parse_refund_callback(callback.to_string().as_bytes()),
        None
    );
    assert_eq!(
        connector.parse_paid_details(result.to_string().as_bytes()),
        None
    );
}

#[tokio::test]
async fn reversal_failures_come_by_result_code() {
    let simulator = simulator().await;
    let connector = connector();
    let account = reversal_account(&simulator);
    // A receipt Daraja never issued: accepted, then R000002 in the Result.
    let outcome = connector
        .refund(&reversal(&account, Some("NOTAREAL01"), 100))
        .await
        .unwrap();
    assert!(matches!(outcome, RefundOutcome::Pending { .. }));
    let result = callback_of(&simulator, "reversal_result").await;
    assert_eq!(result["Result"]["ResultCode"], "R000002");
    let claim = connector
        .parse_refund_callback(result.to_string().as_bytes())
        .unwrap();
    match claim.outcome {
        RefundOutcome::Failed { failure } => {
            assert_eq!(failure.code, "invalid_transaction");
            assert!(failure.message.contains("R000002"), "{}", failure.message);
        }
        other => panic!("{other:?}"),
    }

    // Missing initiator credentials: refused before any call.
    let plain = account_with_secret(&simulator, "malipo-simulator-consumer-secret");
    assert!(matches!(
        connector.refund(&reversal(&plain, Some("NOTAREAL01"), 100)).await,
        Err(ConnectorError::Rejected(message)) if message.contains("initiator")
    ));
}

#[test]
fn partial_reversals_and_payments_without_receipts_are_refused() {
    let connector = MpesaConnector::default();
    let check = |amount, receipt| {
        connector.check_refund(&RefundCheck {
            amount,
            payment_amount: 10_000,
            provider_receipt: receipt,
        })
    };
    assert_eq!(
        check(5_000, Some("NLJ7RT61SV")).unwrap_err().param,
        "amount"
    );
    assert_eq!(check(10_000, None).unwrap_err().param, "payment");
    assert_eq!(check(10_000, Some("NLJ7RT61SV")), Ok(()));
}

#[test]
fn reversal_results_parse_as_documented() {
    let success = r#"{"Result": {
      "ResultType": 0, "ResultCode": 0,
      "ResultDesc": "The service request is processed successfully.",
      "OriginatorConversationID": "dad6-4c34-8787-c8cb963a496d1268232",
      "ConversationID": "AG_20211114_201018edbbf9f1582eaa",
      "TransactionID": "SKE52PAWR9",
      "ResultParameters": {"ResultParameter": [
         {"Key": "DebitAccountBalance", "Value": "Utility Account|KES|7722179.62|7722179.62|0.00|0.00"},
         {"Key": "Amount", "Value": 1.00},
         {"Key": "TransCompletedTime", "Value": 20211114132711},
         {"Key": "OriginalTransactionID", "Value": "SKC82PACB8"},
         {"Key": "Charge", "Value": 0.00},
         {"Key": "CreditPartyPublicName", "Value": "254705912645 - NAME"},
         {"Key": "DebitPartyPublicName", "Value": "600992 - Safaricom Daraja 992"}]},
      "ReferenceData": {"ReferenceItem": {"Key": "QueueTimeoutURL",
         "Value": "https://internalsandbox.safaricom.co.ke/mpesa/reversalresults/v1/submit"}}}}"#;
    let result = parse_result(success.as_bytes()).unwrap();
    assert_eq!(result.result_code, "0");
    assert_eq!(result.conversation_id, "AG_20211114_201018edbbf9f1582eaa");
    assert_eq!(result.transaction_id.as_deref(), Some("SKE52PAWR9"));
    assert_eq!(result.original_transaction_id(), Some("SKC82PACB8"));
    assert_eq!(result.amount(), Some(100));
    let failure = r#"{"Result": {"ResultType": 0, "ResultCode": "R000002",
      "ResultDesc": "The OriginalTransactionID is invalid.",
      "OriginatorConversationID": "1", "ConversationID": "AG_2",
      "ResultParameters": {"ResultParameter": {"Key": "OriginalTransactionID", "Value": "X1"}}}}"#;
    let result = parse_result(failure.as_bytes()).unwrap();
    assert_eq!(result.result_code, "R000002");
    assert_eq!(
        result.original_transaction_id(),
        Some("X1"),
        "one object, not an array"
    );
    let code = |code: &str| match reversal_outcome("AG_1", code, "") {
        RefundOutcome::Failed { failure } => failure.code,
        other => panic!("{other:?}"),
    };
    assert_eq!(code("R000001"), "already_reversed");
    assert_eq!(code("R000002"), "invalid_transaction");
    assert_eq!(code("1"), "insufficient_funds");
    assert_eq!(code("2001"), "invalid_initiator");
    assert_eq!(code("8006"), "credential_locked");
    assert_eq!(code("9"), "declined");
    assert!(parse_result(b"{}").is_err());
    assert!(parse_result(br#"{"Result": {"ResultCode": 0}}"#).is_err());
}

#[tokio::test]
async fn c2b_urls_are_registered_and_notifications_read() {
    let simulator = simulator().await;
    let connector = connector();
    let mut account = account(&simulator);
    account
        .credentials
        .insert("c2b_shortcode".into(), "600984".into());
    connector
        .register_customer_payment_urls(
            &account,
            "http://127.0.0.1:9/v1/hooks/daraja/acct_1?c2b=validation",
            "http://127.0.0.1:9/v1/hooks/daraja/acct_1?c2b=confirmation",
        )
        .await
        .unwrap();
    let request = simulator
        .requests()
        .into_iter()
        .find(|request| request.path == "/mpesa/c2b/v1/registerurl")
        .unwrap();
    let body: serde_json::Value = serde_json::from_str(&request.body).unwrap();
    assert_eq!(body["ShortCode"], "600984");
    assert_eq!(body["ResponseType"], "Completed");
    // Daraja refuses URLs naming M-Pesa.
    assert!(matches!(
        connector
            .register_customer_payment_urls(
                &account,
                "http://127.0.0.1:9/v1/hooks/mpesa/acct_1",
                "http://127.0.0.1:9/v1/hooks/mpesa/acct_1",
            )
            .await,
        Err(ConnectorError::Rejected(message)) if message.contains("Invalid ConfirmationURL")
    ));

    let outcome = simulator
        .simulate_c2b_payment(malipo_simulators::C2bPayment::paybill(
            "600984", 250, "INV-7",
        ))
        .await
        .unwrap();
    let validation = callback_of(&simulator, "c2b_validation").await;
    let notification = parse_c2b_notification(validation.to_string().as_bytes()).unwrap();
    assert_eq!(notification.trans_id, outcome.trans_id);
    assert_eq!(notification.amount, 25_000, "KES cents");
    assert_eq!(notification.shortcode, "600984");
    assert_eq!(notification.bill_ref_number.as_deref(), Some("INV-7"));
    assert_eq!(notification.transaction_type, "Pay Bill");

    let documented = r#"{"TransactionType": "Pay Bill", "TransID": "RKTQDM7W6S",
      "TransTime": "20191122063845", "TransAmount": "10.00", "BusinessShortCode": "600638",
      "BillRefNumber": "invoice008", "InvoiceNumber": "", "OrgAccountBalance": "",
      "ThirdPartyTransID": "", "MSISDN": "2547 ***** 126",
      "FirstName": "John", "MiddleName": "", "LastName": "Doe"}"#;
    let notification = parse_c2b_notification(documented.as_bytes()).unwrap();
    assert_eq!(notification.amount, 1_000);
    assert_eq!(notification.msisdn.as_deref(), Some("2547 ***** 126"));
    assert_eq!(notification.name.as_deref(), Some("John Doe"));
    assert_eq!(notification.third_party_trans_id, None);
    assert!(parse_c2b_notification(br#"{"TransID": "X", "TransAmount": "ten"}"#).is_err());
    assert_eq!(
        c2b_validation_answer(C2B_ACCEPT),
        r#"{"ResultCode":"0","ResultDesc":"Accepted"}"#
    );
    assert_eq!(
        c2b_validation_answer(C2B_INVALID_ACCOUNT_NUMBER),
        r#"{"ResultCode":"C2B00012","ResultDesc":"Rejected"}"#
    );
}
