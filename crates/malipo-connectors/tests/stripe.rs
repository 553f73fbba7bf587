//! The Stripe connector against the local Stripe simulator, over HTTP:
//! PaymentIntents confirmed with test tokens (form-encoded), declines,
//! 3-D Secure redirects, signed webhooks, refunds, refusals.

#![allow(clippy::unwrap_used)]

mod support;

use malipo_connectors::stripe::StripeConnector;
use malipo_connectors::{
    Connector, ConnectorAccount, ConnectorError, PaymentOutcome, PaymentRequest, RefundOutcome,
    RefundRequest, StatusRequest,
};
use malipo_core::objects::{Customer, NextAction};
use malipo_core::payment::PaymentMethod;
use malipo_simulators::{Provider, RunningSimulator, SimulatorConfig, spawn};
use std::time::Duration;

const WEBHOOK_URL: &str = "http://127.0.0.1:9/v1/hooks/stripe/acct_1";
const RETURN_URL: &str = "https://shop.example/orders/42/done";

async fn simulator() -> RunningSimulator {
    let simulator = spawn(Provider::Stripe, SimulatorConfig::for_tests(50))
        .await
        .unwrap();
    simulator.set_callback_url(WEBHOOK_URL).unwrap();
    simulator
}

fn connector() -> StripeConnector {
    StripeConnector::with_client(support::client())
}

fn account_with_key(simulator: &RunningSimulator, key: &str) -> ConnectorAccount {
    ConnectorAccount {
        id: "acct_1".into(),
        provider: "stripe".into(),
        credentials: support::credentials(&[
            ("secret_key", key),
            ("base_url", simulator.base_url()),
        ]),
        callback_url: Some(WEBHOOK_URL.into()),
    }
}

fn account(simulator: &RunningSimulator) -> ConnectorAccount {
    let key = simulator.config().stripe.secret_key.clone();
    account_with_key(simulator, &key)
}

fn payment<'a>(
    account: &'a ConnectorAccount,
    customer: &'a Customer,
    payment_id: &'a str,
    token: Option<&'a str>,
) -> PaymentRequest<'a> {
    PaymentRequest {
        payment_id,
        amount: 5_000,
        currency: "usd",
        method: PaymentMethod::Card,
        customer,
        reference: Some("INV-42"),
        description: Some("Test order"),
        return_url: Some(RETURN_URL),
        payment_method: token,
        capture_method: malipo_core::payment::CaptureMethod::Automatic,
        account,
        livemode: false,
    }
}

async fn start(
    simulator: &RunningSimulator,
    id: &str,
    token: &str,
) -> Result<PaymentOutcome, ConnectorError> {
    let account = account(simulator);
    let customer = Customer::default();
    connector()
        .start_payment(&payment(&account, &customer, id, Some(token)))
        .await
}

async fn status(
    simulator: &RunningSimulator,
    reference: &str,
    next_action: Option<&NextAction>,
) -> PaymentOutcome {
    connector()
        .payment_status(&StatusRequest {
            payment_id: "pay_x",
            provider_reference: Some(reference),
            customer: &Customer::default(),
            started_ms: 0,
            now_ms: 0,
            next_action,
            amount: 0,
            currency: "",
            account: &account(simulator),
        })
        .await
        .unwrap()
}

fn reference_of(outcome: &PaymentOutcome) -> String {
    match outcome {
        PaymentOutcome::Succeeded { provider_reference }
        | PaymentOutcome::Failed {
            provider_reference, ..
        }
        | PaymentOutcome::Processing {
            provider_reference, ..
        }
        | PaymentOutcome::RequiresAction {
            provider_reference, ..
        }
        | PaymentOutcome::Authorized {
            provider_reference, ..
        } => provider_reference.clone().unwrap(),
    }
}

#[tokio::test]
async fn a_payment_intent_confirmed_with_a_token_succeeds_and_the_signed_webhook_names_it() {
    let simulator = simulator().await;
    let id = "pay_01JTESTSTRIPE000000000000001";
    let outcome = start(&simulator, id, "pm_card_visa").await.unwrap();
    let reference = reference_of(&outcome);
    assert!(reference.starts_with("pi_"), "{reference}");
    assert_eq!(
        outcome,
        PaymentOutcome::Succeeded {
            provider_reference: Some(reference.clone())
        }
    );
    // Form-encoded with bracket notation; the payment id as Idempotency-Key.
    let request = &simulator.requests()[0];
    assert_eq!(
        request.header("content-type"),
        Some("application/x-www-form-urlencoded")
    );
    assert_eq!(request.header("idempotency-key"), Some(id));
    for pair in [
        "amount=5000",
        "currency=usd",
        "confirm=true",
        "payment_method=pm_card_visa",
        "metadata%5Bmalipo_payment%5D=pay_01JTESTSTRIPE000000000000001",
    ] {
        assert!(request.body.contains(pair), "{pair} in {}", request.body);
    }
    // A retry (same payment id) gets the same intent back.
    assert_eq!(
        reference_of(&start(&simulator, id, "pm_card_visa").await.unwrap()),
        reference
    );

    let webhook = simulator
        .wait_for_callbacks(1, Duration::from_secs(5))
        .await
        .unwrap()
        .remove(0);
    let definition = malipo_hooks::ProviderRegistry::builtin()
        .get("stripe")
        .unwrap()
        .clone();
    let verdict = malipo_hooks::verify(
        &definition,
        simulator.config().stripe.webhook_secret.as_bytes(),
        &malipo_hooks::InboundRequest {
            headers: &webhook.headers,
            raw_body: webhook.body.as_bytes(),
            url: WEBHOOK_URL,
            now_unix: webhook.sent_at_ms / 1000,
        },
    );
    assert_eq!(verdict, malipo_hooks::Verdict::Verified);
    let claim = connector().parse_callback(webhook.body.as_bytes()).unwrap();
    assert_eq!(claim.payment_id.as_deref(), Some(id));
    assert_eq!(claim.provider_reference, reference);
    assert!(matches!(claim.outcome, PaymentOutcome::Succeeded { .. }));
    simulator.shutdown().await;
}

#[tokio::test]
async fn declines_map_to_clear_failure_codes() {
    let simulator = simulator().await;
    for (n, (token, code)) in [
        ("pm_card_chargeDeclined", "card_declined"),
        (
            "pm_card_chargeDeclinedInsufficientFunds",
            "insufficient_funds",
        ),
        ("pm_card_chargeDeclinedExpiredCard", "expired_card"),
        ("pm_card_chargeDeclinedIncorrectCvc", "incorrect_cvc"),
    ]
    .into_iter()
    .enumerate()
    {
        let id = format!("pay_01JTESTSTRIPE00000000000001{n}");
        match start(&simulator, &id, token).await.unwrap() {
            PaymentOutcome::Failed {
                provider_reference: Some(reference),
                failure,
            } => {
                assert_eq!(failure.code, code, "{token}");
                assert!(!failure.message.is_empty());
                // The poll agrees.
                assert!(matches!(
                    status(&simulator, &reference, None).await,
                    PaymentOutcome::Failed { failure: polled, .. } if polled.code == code
                ));
            }
            other => panic!("{token}: expected failed, got {other:?}"),
        }
    }
    simulator.shutdown().await;
}

#[tokio::test]
async fn three_d_secure_is_a_redirect_then_the_intent_settles() {
    let simulator = simulator().await;
    let client = reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    for (n, (outcome, expected)) in [("complete", "succeeded"), ("fail", "failed")]
        .into_iter()
        .enumerate()
    {
        let id = format!("pay_01JTESTSTRIPE00000000000002{n}");
        let started = start(&simulator, &id, "pm_card_authenticationRequired")
            .await
            .unwrap();
        let PaymentOutcome::RequiresAction {
            provider_reference: Some(reference),
            next_action,
            ..
        } = started
        else {
            panic!("expected requires_action, got {started:?}");
        };
        let NextAction::Redirect { url, return_url } = &next_action else {
            panic!("expected a redirect, got {next_action:?}");
        };
        assert_eq!(return_url.as_deref(), Some(RETURN_URL));
        assert!(matches!(
            status(&simulator, &reference, Some(&next_action)).await,
            PaymentOutcome::RequiresAction { .. }
        ));
        let page = client.get(url).send().await.unwrap().text().await.unwrap();
        assert!(page.contains("Complete authentication"));
        let answer = client
            .post(url)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(format!(
                "outcome={outcome}&simulate_webhook=before_redirect"
            ))
            .send()
            .await
            .unwrap();
        let location = answer.headers()["location"].to_str().unwrap().to_string();
        assert!(location.starts_with(&format!("{RETURN_URL}?payment_intent={reference}")));
        assert!(location.ends_with(&format!("redirect_status={expected}")));
        match (status(&simulator, &reference, None).await, expected) {
            (PaymentOutcome::Succeeded { .. }, "succeeded") => {}
            (PaymentOutcome::Failed { failure, .. }, "failed") => {
                assert_eq!(failure.code, "authentication_failed");
            }
            (other, _) => panic!("{outcome}: got {other:?}"),
        }
    }
    simulator.shutdown().await;
}

#[tokio::test]
async fn refunds_are_exact_and_bounded() {
    let simulator = simulator().await;
    let id = "pay_01JTESTSTRIPE000000000000030";
    let reference = reference_of(&start(&simulator, id, "pm_card_visa").await.unwrap());
    let account = account(&simulator);
    let refund = |amount: u64, refund_id: &'static str| RefundRequest {
        refund_id,
        payment_id: id,
        provider_reference: Some(&reference),
        provider_receipt: None,
        amount,
        payment_amount: 5_000,
        currency: "usd",
        account: &account,
        livemode: false,
    };
    assert!(matches!(
        connector().refund(&refund(1_000, "re_1")).await.unwrap(),
        RefundOutcome::Succeeded { provider_reference: Some(re) } if re.starts_with("re_")
    ));
    assert!(matches!(
        connector().refund(&refund(4_001, "re_2")).await.unwrap(),
        RefundOutcome::Failed { failure } if failure.message.contains("greater than unrefunded")
    ));
    simulator.shutdown().await;
}

#[tokio::test]
async fn refusals_name_what_is_wrong() {
    let simulator = simulator().await;
    let customer = Customer::default();
    let wrong = account_with_key(&simulator, "sk_test_wrong");
    let refused = connector()
        .start_payment(&payment(&wrong, &customer, "pay_1", Some("pm_card_visa")))
        .await
        .unwrap_err();
    assert!(refused.to_string().contains("Invalid API Key"), "{refused}");
    let account = account(&simulator);
    assert!(matches!(
        connector().start_payment(&payment(&account, &customer, "pay_2", None)).await,
        Err(ConnectorError::Rejected(message)) if message.contains("payment_method")
    ));
    let live = PaymentRequest {
        livemode: true,
        ..payment(&account, &customer, "pay_3", Some("pm_card_visa"))
    };
    assert!(matches!(
        connector().start_payment(&live).await,
        Err(ConnectorError::Rejected(message)) if message.contains("test key")
    ));
    let unknown = connector()
        .start_payment(&payment(&account, &customer, "pay_4", Some("pm_nope")))
        .await
        .unwrap_err();
    assert!(
        unknown.to_string().contains("No such PaymentMethod"),
        "{unknown}"
    );
    assert_eq!(
        connector()
            .check_payment(&mut Customer::default(), "btc", 1)
            .unwrap_err()
            .param,
        "currency"
    );
    assert!(!format!("{account:?}").contains("sk_test"));
    simulator.shutdown().await;
}

#[tokio::test]
async fn manual_capture_authorises_then_captures_part_and_cancel_releases() {
    use malipo_connectors::CaptureRequest;
    use malipo_core::payment::CaptureMethod;
    let simulator = simulator().await;
    let account = account(&simulator);
    let customer = Customer::default();
    let manual = |id| PaymentRequest {
        capture_method: CaptureMethod::Manual,
        ..payment(&account, &customer, id, Some("pm_card_visa"))
    };
    let outcome = connector()
        .start_payment(&manual("pay_01JTESTSTRIPECAPTURE00000001"))
        .await
        .unwrap();
    let PaymentOutcome::Authorized {
        provider_reference: Some(intent),
        amount_capturable,
        expires_after_seconds,
    } = outcome
    else {
        panic!("{outcome:?}");
    };
    assert_eq!(amount_capturable, 5_000);
    assert!(expires_after_seconds < 7 * 24 * 3600);
    let create = &simulator.requests()[0];
    assert!(
        create.body.contains("capture_method=manual"),
        "{}",
        create.body
    );
    let step = |amount| CaptureRequest {
        payment_id: "pay_01JTESTSTRIPECAPTURE00000001",
        provider_reference: Some(&intent),
        amount,
        currency: "usd",
        account: &account,
        livemode: false,
    };
    assert!(matches!(
        connector().capture_payment(&step(3_000)).await,
        Ok(PaymentOutcome::Succeeded { .. })
    ));
    let capture = simulator.requests().pop().unwrap();
    assert!(capture.path.ends_with(&format!("/{intent}/capture")));
    assert_eq!(capture.body, "amount_to_capture=3000");
    assert_eq!(
        capture.header("idempotency-key"),
        Some("pay_01JTESTSTRIPECAPTURE00000001.capture.3000")
    );
    // Captured: Stripe refuses another capture or a cancel (rejections,
    // not outages).
    assert!(matches!(
        connector().capture_payment(&step(1_000)).await,
        Err(ConnectorError::Rejected(_))
    ));
    assert!(matches!(
        connector().cancel_payment(&step(0)).await,
        Err(ConnectorError::Rejected(_))
    ));

    // Another authorisation, released.
    let outcome = connector()
        .start_payment(&manual("pay_01JTESTSTRIPECAPTURE00000002"))
        .await
        .unwrap();
    let PaymentOutcome::Authorized {
        provider_reference: Some(intent),
        ..
    } = outcome
    else {
        panic!("{outcome:?}");
    };
    let cancel = CaptureRequest {
        payment_id: "pay_01JTESTSTRIPECAPTURE00000002",
        provider_reference: Some(&intent),
        amount: 5_000,
        currency: "usd",
        account: &account,
        livemode: false,
    };
    connector().cancel_payment(&cancel).await.unwrap();
    assert!(matches!(
        status(&simulator, &intent, None).await,
        PaymentOutcome::Failed { failure, .. } if failure.code == "canceled"
    ));
    simulator.shutdown().await;
}
