//! The Paystack connector against the local Paystack simulator, over HTTP:
//! initialize -> redirect to the hosted page -> the customer pays there ->
//! the signed webhook and verify agree; declines, refunds, refusals.

#![allow(clippy::unwrap_used)]

mod support;

use malipo_connectors::paystack::{PaystackConnector, parse_webhook};
use malipo_connectors::{
    Connector, ConnectorAccount, ConnectorError, PaymentOutcome, PaymentRequest, RefundOutcome,
    RefundRequest, StatusRequest,
};
use malipo_core::objects::{Customer, NextAction};
use malipo_core::payment::PaymentMethod;
use malipo_simulators::paystack::{CARD_INSUFFICIENT_FUNDS, CARD_SUCCESS};
use malipo_simulators::{Provider, RunningSimulator, SimulatorConfig, spawn};
use std::time::Duration;

const WEBHOOK_URL: &str = "http://127.0.0.1:9/v1/hooks/paystack/acct_1";
const RETURN_URL: &str = "https://shop.example/orders/42/done";

async fn simulator() -> RunningSimulator {
    let simulator = spawn(Provider::Paystack, SimulatorConfig::for_tests(100))
        .await
        .unwrap();
    simulator.set_callback_url(WEBHOOK_URL).unwrap();
    simulator
}

fn connector() -> PaystackConnector {
    PaystackConnector::with_client(support::client())
}

fn account_with_key(simulator: &RunningSimulator, key: &str) -> ConnectorAccount {
    ConnectorAccount {
        id: "acct_1".into(),
        provider: "paystack".into(),
        credentials: support::credentials(&[
            ("secret_key", key),
            ("base_url", simulator.base_url()),
        ]),
        callback_url: Some(WEBHOOK_URL.into()),
    }
}

fn account(simulator: &RunningSimulator) -> ConnectorAccount {
    let key = simulator.config().paystack.secret_key.clone();
    account_with_key(simulator, &key)
}

fn customer() -> Customer {
    Customer {
        email: Some("ada@example.com".into()),
        ..Customer::default()
    }
}

fn payment<'a>(
    account: &'a ConnectorAccount,
    customer: &'a Customer,
    payment_id: &'a str,
) -> PaymentRequest<'a> {
    PaymentRequest {
        payment_id,
        amount: 1_050_075,
        currency: "ngn",
        method: PaymentMethod::Card,
        customer,
        reference: Some("INV-42"),
        description: Some("Test order"),
        return_url: Some(RETURN_URL),
        payment_method: None,
        capture_method: malipo_core::payment::CaptureMethod::Automatic,
        account,
        livemode: false,
    }
}

/// Starts a payment: the hosted page's URL and the provider reference.
async fn start(
    connector: &PaystackConnector,
    account: &ConnectorAccount,
    id: &str,
) -> (String, String) {
    let customer = customer();
    match connector
        .start_payment(&payment(account, &customer, id))
        .await
        .unwrap()
    {
        PaymentOutcome::RequiresAction {
            provider_reference: Some(reference),
            next_action: NextAction::Redirect { url, return_url },
            ..
        } => {
            assert_eq!(return_url.as_deref(), Some(RETURN_URL));
            assert_eq!(reference, id.replace('_', "-"));
            (url, reference)
        }
        other => panic!("expected requires_action, got {other:?}"),
    }
}

async fn status(
    connector: &PaystackConnector,
    account: &ConnectorAccount,
    id: &str,
    reference: &str,
    next_action: Option<&NextAction>,
) -> Result<PaymentOutcome, ConnectorError> {
    connector
        .payment_status(&StatusRequest {
            payment_id: id,
            provider_reference: Some(reference),
            customer: &customer(),
            started_ms: 0,
            now_ms: 0,
            next_action,
            amount: 0,
            currency: "",
            account,
        })
        .await
}

/// The customer submits the hosted page with `card`: answers the
/// redirect's `Location`, if any.
async fn pay_on_page(url: &str, card: &str) -> Option<String> {
    let client = reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let page = client.get(url).send().await.unwrap().text().await.unwrap();
    assert!(page.contains(CARD_SUCCESS), "the page lists the test cards");
    let response = client
        .post(url)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!(
            "card_number={card}&simulate_webhook=before_redirect"
        ))
        .send()
        .await
        .unwrap();
    response
        .headers()
        .get("location")
        .map(|location| location.to_str().unwrap().to_string())
}

#[tokio::test]
async fn a_card_paid_on_the_hosted_page_is_verified_and_the_signed_webhook_names_it() {
    let simulator = simulator().await;
    let connector = connector();
    let account = account(&simulator);
    let id = "pay_01JTESTCARD0000000000000001";
    let (url, reference) = start(&connector, &account, id).await;

    // The initialize call: amount in kobo as given, uppercase currency.
    let initialize = simulator.requests()[0].json().unwrap();
    assert_eq!(initialize["amount"], 1_050_075);
    assert_eq!(initialize["currency"], "NGN");
    assert_eq!(initialize["callback_url"], RETURN_URL);
    assert_eq!(initialize["email"], "ada@example.com");

    // Before the customer pays: still waiting, the page kept.
    let redirect = NextAction::Redirect {
        url: url.clone(),
        return_url: Some(RETURN_URL.into()),
    };
    assert!(matches!(
        status(&connector, &account, id, &reference, Some(&redirect)).await,
        Ok(PaymentOutcome::RequiresAction { next_action, .. }) if next_action == redirect
    ));

    let location = pay_on_page(&url, CARD_SUCCESS).await.unwrap();
    assert_eq!(
        location,
        format!("{RETURN_URL}?trxref={reference}&reference={reference}")
    );
    assert_eq!(
        status(&connector, &account, id, &reference, Some(&redirect))
            .await
            .unwrap(),
        PaymentOutcome::Succeeded {
            provider_reference: Some(reference.clone())
        }
    );

    // The webhook: signed as malipo-hooks checks it, naming the payment.
    let webhook = simulator
        .wait_for_callbacks(1, Duration::from_secs(5))
        .await
        .unwrap()
        .remove(0);
    let definition = malipo_hooks::ProviderRegistry::builtin()
        .get("paystack")
        .unwrap()
        .clone();
    let verdict = malipo_hooks::verify(
        &definition,
        simulator.config().paystack.secret_key.as_bytes(),
        &malipo_hooks::InboundRequest {
            headers: &webhook.headers,
            raw_body: webhook.body.as_bytes(),
            url: WEBHOOK_URL,
            now_unix: 0,
        },
    );
    assert_eq!(verdict, malipo_hooks::Verdict::Verified);
    let claim = connector.parse_callback(webhook.body.as_bytes()).unwrap();
    assert_eq!(claim.payment_id.as_deref(), Some(id));
    assert_eq!(claim.provider_reference, reference);
    simulator.shutdown().await;
}

#[tokio::test]
async fn a_declined_card_fails_with_a_clear_code_and_no_webhook() {
    let simulator = simulator().await;
    let connector = connector();
    let account = account(&simulator);
    let id = "pay_01JTESTCARD0000000000000002";
    let (url, reference) = start(&connector, &account, id).await;
    pay_on_page(&url, CARD_INSUFFICIENT_FUNDS).await.unwrap();
    match status(&connector, &account, id, &reference, None)
        .await
        .unwrap()
    {
        PaymentOutcome::Failed { failure, .. } => {
            assert_eq!(failure.code, "insufficient_funds");
            assert_eq!(failure.message, "Insufficient Funds");
        }
        other => panic!("expected failed, got {other:?}"),
    }
    let (url, reference) = start(&connector, &account, "pay_01JTESTCARD0000000000000003").await;
    pay_on_page(&url, "4000000000000002").await.unwrap();
    assert!(matches!(
        status(&connector, &account, "pay_01JTESTCARD0000000000000003", &reference, None).await,
        Ok(PaymentOutcome::Failed { failure, .. }) if failure.code == "card_declined"
    ));
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        simulator.callbacks_sent().is_empty(),
        "Paystack sends no failure webhook"
    );
    simulator.shutdown().await;
}

#[tokio::test]
async fn refunds_are_queued_then_processed_with_a_signed_webhook() {
    let simulator = simulator().await;
    let connector = connector();
    let account = account(&simulator);
    let id = "pay_01JTESTCARD0000000000000004";
    let (url, reference) = start(&connector, &account, id).await;
    pay_on_page(&url, CARD_SUCCESS).await.unwrap();
    let refund = |amount: u64, refund_id: &'static str| RefundRequest {
        refund_id,
        payment_id: id,
        provider_reference: Some(&reference),
        provider_receipt: None,
        amount,
        payment_amount: 1_050_075,
        currency: "ngn",
        account: &account,
        livemode: false,
    };
    let outcome = connector.refund(&refund(50_075, "re_1")).await.unwrap();
    assert!(
        matches!(&outcome, RefundOutcome::Pending { provider_reference: Some(id) } if !id.is_empty()),
        "{outcome:?}"
    );
    let request = simulator.requests().last().unwrap().json().unwrap();
    assert_eq!(request["transaction"], reference.as_str());
    assert_eq!(request["amount"], 50_075);
    // More than what is left is refused, with Paystack's message.
    assert!(matches!(
        connector.refund(&refund(1_000_001, "re_2")).await.unwrap(),
        RefundOutcome::Failed { failure } if failure.message.contains("cannot be greater")
    ));
    // Each webhook is tried up to three times (nobody listens here).
    let attempts = simulator.config().callback_attempts_max as usize;
    let webhooks = simulator
        .wait_for_callbacks(2 * attempts, Duration::from_secs(5))
        .await
        .unwrap();
    let processed = parse_webhook(webhooks[attempts].body.as_bytes()).unwrap();
    assert_eq!(processed.event, "refund.processed");
    assert_eq!(processed.reference.as_deref(), Some(reference.as_str()));
    simulator.shutdown().await;
}

#[tokio::test]
async fn refusals_name_what_is_wrong() {
    let simulator = simulator().await;
    let connector = connector();
    let customer = customer();
    // A wrong key.
    let wrong = account_with_key(&simulator, "sk_test_wrong");
    let refused = connector
        .start_payment(&payment(
            &wrong,
            &customer,
            "pay_01JTESTCARD0000000000000005",
        ))
        .await
        .unwrap_err();
    assert!(refused.to_string().contains("Invalid key"), "{refused}");
    // The same payment twice: Paystack's duplicate reference.
    let account = account(&simulator);
    start(&connector, &account, "pay_01JTESTCARD0000000000000006").await;
    let duplicate = connector
        .start_payment(&payment(
            &account,
            &customer,
            "pay_01JTESTCARD0000000000000006",
        ))
        .await
        .unwrap_err();
    assert!(duplicate.to_string().contains("Duplicate"), "{duplicate}");
    // A live payment with a test key.
    let live = PaymentRequest {
        livemode: true,
        ..payment(&account, &customer, "pay_01JTESTCARD0000000000000007")
    };
    assert!(matches!(
        connector.start_payment(&live).await,
        Err(ConnectorError::Rejected(message)) if message.contains("test key")
    ));
    // Checked before anything is written: currency, then the email.
    let mut nobody = Customer::default();
    assert_eq!(
        connector
            .check_payment(&mut nobody.clone(), "ugx", 100)
            .unwrap_err()
            .param,
        "currency"
    );
    assert_eq!(
        connector
            .check_payment(&mut nobody, "kes", 100)
            .unwrap_err()
            .param,
        "customer[email]"
    );
    assert!(
        connector
            .check_payment(&mut customer.clone(), "KES", 100)
            .is_ok()
    );
    // Debug never shows the key.
    assert!(!format!("{account:?}").contains("sk_test"));
    simulator.shutdown().await;
}
