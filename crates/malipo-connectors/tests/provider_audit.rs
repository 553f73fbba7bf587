//! Every call to a provider leaves an audit line with what was called, the
//! status and the latency, and neither credentials nor the customer's phone.

#![allow(clippy::unwrap_used)]

mod support;

use malipo_connectors::mtn_momo::MtnMomoConnector;
use malipo_connectors::{Connector, ConnectorAccount, PaymentRequest};
use malipo_core::payment::PaymentMethod;
use malipo_simulators::{Provider, SimulatorConfig, spawn};
use std::io::Write;
use std::sync::{Arc, Mutex};

/// Collects everything the subscriber writes.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn provider_calls_are_logged_without_secrets_or_phone_numbers() {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::INFO)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let simulator = spawn(Provider::MtnMomo, SimulatorConfig::for_tests(20))
        .await
        .unwrap();
    let momo = &simulator.config().mtn_momo;
    let (api_user, api_key, subscription_key) = (
        momo.api_user.clone(),
        momo.api_key.clone(),
        momo.collection_subscription_key.clone(),
    );
    let account = ConnectorAccount {
        id: "acct_1".into(),
        provider: "mtn_momo".into(),
        credentials: support::credentials(&[
            ("api_user", &api_user),
            ("api_key", &api_key),
            ("subscription_key", &subscription_key),
            ("target_environment", "sandbox"),
            ("base_url", simulator.base_url()),
        ]),
        callback_url: Some("http://127.0.0.1:9/v1/hooks/mtn_momo/acct_1".into()),
    };
    let phone = "46733123499";
    let customer = support::customer(phone);
    MtnMomoConnector::with_client(support::client())
        .start_payment(&PaymentRequest {
            payment_id: "pay_01JTESTPAYMENT000000000001",
            amount: 1_050,
            currency: "eur",
            method: PaymentMethod::MtnMomo,
            customer: &customer,
            reference: Some("INV-42"),
            description: None,
            return_url: None,
            payment_method: None,
            capture_method: malipo_core::payment::CaptureMethod::Automatic,
            account: &account,
            livemode: false,
        })
        .await
        .unwrap();

    let log = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    let calls: Vec<&str> = log
        .lines()
        .filter(|line| line.contains("provider call"))
        .collect();
    assert!(
        calls.iter().any(|line| line.contains("operation=\"token\"")
            && line.contains("/collection/token/")
            && line.contains("status=200")),
        "{log}"
    );
    assert!(
        calls.iter().any(|line| line.contains("requesttopay")
            && line.contains("status=202")
            && line.contains("result=\"ok\"")
            && line.contains("latency_ms=")),
        "{log}"
    );
    for secret in [&api_user, &api_key, &subscription_key] {
        assert!(
            !log.contains(secret.as_str()),
            "a credential reached the log: {log}"
        );
    }
    assert!(
        !log.contains(phone),
        "the customer's phone reached the log: {log}"
    );
}

/// M-Pesa's calls (OAuth, STK push, B2C) go through the same audited path:
/// each logged with its operation, status and latency, and none of the
/// consumer secret, passkey, security credential or phone number.
#[tokio::test]
async fn mpesa_calls_are_logged_and_timed_without_secrets() {
    use malipo_connectors::PayoutRequest;
    use malipo_connectors::mpesa::MpesaConnector;

    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::INFO)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let simulator = spawn(Provider::Mpesa, SimulatorConfig::for_tests(20))
        .await
        .unwrap();
    let mpesa = simulator.config().mpesa.clone();
    let security_credential = "c2VjcmV0LXBhc3N3b3JkLW5ldmVyLWxvZ2dlZA==";
    let account = ConnectorAccount {
        id: "acct_2".into(),
        provider: "mpesa".into(),
        credentials: support::credentials(&[
            ("consumer_key", &mpesa.consumer_key),
            ("consumer_secret", &mpesa.consumer_secret),
            ("shortcode", &mpesa.stk_shortcode),
            ("passkey", &mpesa.stk_passkey),
            ("initiator", &mpesa.initiator_name),
            ("security_credential", security_credential),
            ("base_url", simulator.base_url()),
        ]),
        callback_url: Some("http://127.0.0.1:9/v1/hooks/mpesa/acct_2".into()),
    };
    let phone = "254708374149";
    let customer = support::customer(phone);
    let connector = MpesaConnector::with_client(support::client());
    connector
        .start_payment(&PaymentRequest {
            payment_id: "pay_01JTESTPAYMENT000000000002",
            amount: 10_000,
            currency: "kes",
            method: PaymentMethod::Mpesa,
            customer: &customer,
            reference: None,
            description: None,
            return_url: None,
            payment_method: None,
            capture_method: malipo_core::payment::CaptureMethod::Automatic,
            account: &account,
            livemode: false,
        })
        .await
        .unwrap();
    connector
        .start_payout(&PayoutRequest {
            payout_id: "po_01JTESTPAYOUT0000000000001",
            amount: 10_000,
            currency: "kes",
            phone,
            description: Some("Seller payout"),
            account: &account,
            livemode: false,
        })
        .await
        .unwrap();

    let log = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    let calls: Vec<&str> = log
        .lines()
        .filter(|line| line.contains("provider call") && line.contains("provider=\"M-Pesa\""))
        .collect();
    for (operation, path) in [
        ("oauth", "/oauth/v1/generate"),
        ("stkpush", "/mpesa/stkpush/v1/processrequest"),
        ("b2c", "/mpesa/b2c/v1/paymentrequest"),
    ] {
        assert!(
            calls
                .iter()
                .any(|line| line.contains(&format!("operation=\"{operation}\""))
                    && line.contains(path)
                    && line.contains("status=200")
                    && line.contains("latency_ms=")),
            "no {operation} line: {log}"
        );
    }
    // The token is fetched once and reused.
    assert_eq!(
        calls
            .iter()
            .filter(|line| line.contains("operation=\"oauth\""))
            .count(),
        1,
        "{log}"
    );
    for secret in [
        mpesa.consumer_secret.as_str(),
        mpesa.stk_passkey.as_str(),
        security_credential,
        "grant_type",
    ] {
        assert!(
            !log.contains(secret),
            "a secret (or the query) reached the log: {log}"
        );
    }
    assert!(!log.contains(phone), "the phone reached the log: {log}");
}
