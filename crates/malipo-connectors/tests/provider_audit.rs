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
