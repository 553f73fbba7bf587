//! What the connector tests against simulators share.

#![allow(dead_code, clippy::unwrap_used)]

use malipo_connectors::{ConnectorError, PaymentOutcome};
use malipo_core::objects::Customer;
use std::collections::BTreeMap;
use std::time::Duration;

/// A client that ignores proxy settings and gives up after 5 s.
pub fn client() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap()
}

pub fn credentials(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(key, value)| (key.to_string(), value.to_string()))
        .collect()
}

pub fn customer(phone: &str) -> Customer {
    Customer {
        phone: Some(phone.into()),
        ..Customer::default()
    }
}

/// Asks `status` until the payment is no longer processing (at most 3 s).
pub async fn settled<F, Fut>(mut status: F) -> PaymentOutcome
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<PaymentOutcome, ConnectorError>>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(3);
    loop {
        let outcome = status().await.unwrap();
        if !matches!(outcome, PaymentOutcome::Processing { .. })
            || tokio::time::Instant::now() >= deadline
        {
            return outcome;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}
