//! The Relworx connector, and MTN MoMo / Airtel Money carried through it,
//! against the local Relworx simulator, over HTTP.

#![allow(clippy::unwrap_used)]

mod support;

use malipo_connectors::mtn_momo::MtnMomoConnector;
use malipo_connectors::relworx::{RelworxConnector, ViaRelworx, parse_webhook};
use malipo_connectors::{
    CallbackClaim, Connector, ConnectorAccount, ConnectorError, PaymentOutcome, PaymentRequest,
    RefundRequest, StatusRequest,
};
use malipo_core::objects::{Customer, NextAction};
use malipo_core::payment::PaymentMethod;
use malipo_simulators::{Provider, RunningSimulator, SimulatorConfig, spawn};
use std::sync::Arc;
use std::time::Duration;

/// An MTN Uganda number ending in 0001: succeeds.
const PHONE: &str = "256772340001";
const WEBHOOK_URL: &str = "http://127.0.0.1:9/v1/hooks/relworx/acct_1";
const PAYMENT_ID: &str = "pay_01JTESTPAYMENT000000000001";

async fn simulator() -> RunningSimulator {
    let simulator = spawn(Provider::Relworx, SimulatorConfig::for_tests(150))
        .await
        .unwrap();
    simulator.set_callback_url(WEBHOOK_URL).unwrap();
    simulator
}

use support::{client, customer};

fn connector() -> RelworxConnector {
    RelworxConnector::with_client(client())
}

fn account_with_key(simulator: &RunningSimulator, api_key: &str) -> ConnectorAccount {
    let credentials = support::credentials(&[
        ("api_key", api_key),
        ("account_no", &simulator.config().relworx.account_no),
        ("base_url", simulator.base_url()),
    ]);
    ConnectorAccount {
        id: "acct_1".into(),
        provider: "relworx".into(),
        credentials,
        callback_url: Some(WEBHOOK_URL.into()),
    }
}

fn account(simulator: &RunningSimulator) -> ConnectorAccount {
    let key = simulator.config().relworx.api_key.clone();
    account_with_key(simulator, &key)
}

fn payment<'a>(
    account: &'a ConnectorAccount,
    customer: &'a Customer,
    payment_id: &'a str,
) -> PaymentRequest<'a> {
    PaymentRequest {
        payment_id,
        amount: 5_000,
        currency: "ugx",
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

async fn start(
    connector: &dyn Connector,
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
            assert_eq!(reference.len(), 32, "{reference}");
            reference
        }
        other => panic!("expected processing, got {other:?}"),
    }
}

async fn status(
    connector: &dyn Connector,
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
    connector: &dyn Connector,
    account: &ConnectorAccount,
    customer: &Customer,
    reference: &str,
) -> PaymentOutcome {
    support::settled(|| status(connector, account, customer, Some(reference))).await
}

#[tokio::test]
async fn a_payment_succeeds_after_pending_and_the_signed_webhook_names_it() {
    let simulator = simulator().await;
    let connector = connector();
    let account = account(&simulator);
    let customer = customer(PHONE);
    let reference = start(&connector, &account, &customer, PAYMENT_ID).await;
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

    let request = simulator
        .requests()
        .into_iter()
        .find(|request| request.path == "/mobile-money/request-payment")
        .unwrap();
    assert_eq!(request.header("accept"), Some("application/vnd.relworx.v2"));
    assert_eq!(
        request.header("authorization"),
        Some("Bearer malipo-relworx-api-key")
    );
    let body = request.json().unwrap();
    assert_eq!(body["account_no"], "RELJH012BV45P");
    assert_eq!(body["reference"], PAYMENT_ID);
    assert_eq!(body["msisdn"], "+256772340001");
    assert_eq!(body["currency"], "UGX");
    assert_eq!(body["amount"], 5_000);
    assert_eq!(body["description"], "Test order");

    let webhooks = simulator
        .wait_for_callbacks(1, Duration::from_secs(3))
        .await
        .unwrap();
    assert!(
        webhooks[0]
            .header("relworx-signature")
            .is_some_and(|signature| signature.starts_with("t="))
    );
    assert_eq!(
        connector.parse_callback(webhooks[0].body.as_bytes()),
        Some(CallbackClaim {
            provider_reference: reference.clone(),
            payment_id: Some(PAYMENT_ID.into()),
            outcome: PaymentOutcome::Succeeded {
                provider_reference: Some(reference)
            },
        })
    );
}

#[tokio::test]
async fn failures_are_read_from_the_message() {
    let simulator = simulator().await;
    let connector = connector();
    let account = account(&simulator);
    for (phone, payment_id, code) in [
        ("256772340002", "pay_insufficient0001", "insufficient_funds"),
        ("256772340004", "pay_declined00000001", "cancelled_by_user"),
    ] {
        let customer = customer(phone);
        let reference = start(&connector, &account, &customer, payment_id).await;
        match settled(&connector, &account, &customer, &reference).await {
            PaymentOutcome::Failed { failure, .. } => {
                assert_eq!(failure.code, code, "{failure:?}")
            }
            other => panic!("expected a failure, got {other:?}"),
        }
    }
    let webhooks = simulator
        .wait_for_callbacks(2, Duration::from_secs(3))
        .await
        .unwrap();
    for webhook in webhooks {
        let claim = connector.parse_callback(webhook.body.as_bytes()).unwrap();
        assert!(matches!(claim.outcome, PaymentOutcome::Failed { .. }));
    }
}

#[tokio::test]
async fn never_answered_stays_pending_and_a_lost_webhook_is_polled() {
    let simulator = simulator().await;
    let connector = connector();
    let account = account(&simulator);
    let never = customer("256772340005");
    let lost = customer("256772340009");
    let never_reference = start(&connector, &account, &never, "pay_neveranswered01").await;
    let lost_reference = start(&connector, &account, &lost, "pay_lostwebhook0001").await;
    assert!(matches!(
        settled(&connector, &account, &lost, &lost_reference).await,
        PaymentOutcome::Succeeded { .. }
    ));
    assert!(matches!(
        status(&connector, &account, &never, Some(&never_reference)).await,
        Ok(PaymentOutcome::Processing { .. })
    ));
    // Without Relworx's reference there is nothing to ask: the webhook tells.
    assert!(matches!(
        status(&connector, &account, &never, None).await,
        Err(ConnectorError::Rejected(_))
    ));
}

#[tokio::test]
async fn a_wrong_api_key_is_rejected() {
    let simulator = simulator().await;
    let connector = connector();
    let account = account_with_key(&simulator, "not-the-key");
    match connector
        .start_payment(&payment(&account, &customer(PHONE), PAYMENT_ID))
        .await
    {
        Err(ConnectorError::Rejected(message)) => {
            assert!(message.contains("API key"), "{message}")
        }
        other => panic!("expected a rejection, got {other:?}"),
    }
    let mut missing = self::account(&simulator);
    missing.credentials.remove("account_no");
    assert_eq!(
        connector
            .start_payment(&payment(&missing, &customer(PHONE), PAYMENT_ID))
            .await,
        Err(ConnectorError::Rejected(
            "missing credential `account_no`".into()
        ))
    );
    assert_eq!(
        connector
            .refund(&RefundRequest {
                refund_id: "re_1",
                payment_id: PAYMENT_ID,
                provider_reference: None,
                provider_receipt: None,
                payment_amount: 1,
                livemode: false,
                amount: 1,
                currency: "ugx",
                account: &missing,
            })
            .await,
        Err(ConnectorError::Unsupported("a Relworx refund"))
    );
}

#[tokio::test]
async fn mtn_momo_goes_through_relworx_given_a_relworx_account_in_ugx_only() {
    let simulator = simulator().await;
    let via = ViaRelworx::new(
        Arc::new(MtnMomoConnector::with_client(client())),
        Arc::new(connector()),
    );
    assert_eq!(via.name(), "mtn_momo");
    let account = account(&simulator);
    let customer = customer(PHONE);
    let reference = start(&via, &account, &customer, PAYMENT_ID).await;
    assert!(matches!(
        settled(&via, &account, &customer, &reference).await,
        PaymentOutcome::Succeeded { .. }
    ));
    let cedis = PaymentRequest {
        currency: "ghs",
        ..payment(&account, &customer, "pay_ghanaian00001")
    };
    match via.start_payment(&cedis).await {
        Err(ConnectorError::Rejected(message)) => {
            assert!(message.contains("UGX only"), "{message}")
        }
        other => panic!("expected a rejection, got {other:?}"),
    }
    // A direct MTN account goes to MTN (here: no credentials, refused).
    let direct = ConnectorAccount {
        provider: "mtn_momo".into(),
        ..ConnectorAccount::default()
    };
    assert_eq!(
        via.start_payment(&payment(&direct, &customer, PAYMENT_ID))
            .await,
        Err(ConnectorError::Rejected(
            "missing credential `api_user`".into()
        ))
    );
    // Callbacks and checks are MTN's.
    let mut local = self::customer("0772 340001");
    via.check_payment(&mut local, "ugx", 5_000).unwrap();
    assert_eq!(local.phone.as_deref(), Some(PHONE));
    assert_eq!(
        simulator
            .requests()
            .iter()
            .filter(|request| request.path == "/mobile-money/request-payment")
            .count(),
        1
    );
}

#[test]
fn phones_currencies_and_amounts_are_checked_naming_the_field() {
    let connector = RelworxConnector::default();
    let mut local = customer("0772 340001");
    connector.check_payment(&mut local, "UGX", 5_000).unwrap();
    assert_eq!(local.phone.as_deref(), Some(PHONE));
    let error = connector
        .check_payment(&mut customer("254708374149"), "ugx", 5_000)
        .unwrap_err();
    assert_eq!(error.param, "customer[phone]");
    let error = connector
        .check_payment(&mut customer(PHONE), "eur", 5_000)
        .unwrap_err();
    assert_eq!(error.param, "currency");
    let error = connector
        .check_payment(&mut customer("254708374149"), "kes", 10_050)
        .unwrap_err();
    assert_eq!(error.param, "amount");
}

#[test]
fn webhooks_of_every_documented_shape_are_read() {
    let connector = RelworxConnector::default();
    // The documented sample.
    let sample = br#"{"status": "success", "message": "Request payment completed successfully.",
 "customer_reference": "kemist656ehgvcd",
 "internal_reference": "fdd10a4c5d6b459d54ebc5f09d095101",
 "msisdn": "+256773454899", "amount": 500.0, "currency": "UGX",
 "provider": "mtn_mobile_money", "charge": 12.5,
 "completed_at": "2025-04-10T15:12:58.977+03:00"}"#;
    let webhook = parse_webhook(sample).unwrap();
    assert_eq!(webhook.provider.as_deref(), Some("mtn_mobile_money"));
    assert_eq!(webhook.msisdn.as_deref(), Some("+256773454899"));
    let claim = connector.parse_callback(sample).unwrap();
    assert_eq!(claim.payment_id.as_deref(), Some("kemist656ehgvcd"));
    assert_eq!(claim.provider_reference, "fdd10a4c5d6b459d54ebc5f09d095101");
    assert!(matches!(claim.outcome, PaymentOutcome::Succeeded { .. }));
    let failed = br#"{"status": "failed", "message": "Request payment failed: insufficient funds.",
 "customer_reference": "c1", "internal_reference": "i1", "provider": "AIRTEL_UGANDA"}"#;
    match connector.parse_callback(failed).unwrap().outcome {
        PaymentOutcome::Failed { failure, .. } => assert_eq!(failure.code, "insufficient_funds"),
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        connector
            .parse_callback(
                br#"{"status": "pending", "customer_reference": "c1", "internal_reference": "i1"}"#
            )
            .unwrap()
            .outcome,
        PaymentOutcome::Processing { .. }
    ));
    assert_eq!(
        connector.parse_callback(br#"{"status": "success", "customer_reference": "c1"}"#),
        None
    );
    assert_eq!(
        connector.parse_callback(
            br#"{"status": "refunded", "customer_reference": "c1", "internal_reference": "i1"}"#
        ),
        None
    );
    assert_eq!(connector.parse_callback(b"not json"), None);
}
