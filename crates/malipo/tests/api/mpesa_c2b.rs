//! M-Pesa C2B end to end against the Daraja simulator: the merchant
//! registers its URLs, customers pay the paybill, validation answers by
//! the account's rule, confirmation records the payment once.

use crate::both_backends;
use crate::helpers::TestApp;
use crate::mpesa_reversal::{mpesa_merchant, mpesa_simulator};
use crate::mtn_momo::{balance, event_for};
use malipo_simulators::{C2bOutcome, C2bPayment, C2bValidation, RunningSimulator};
use serde_json::{Value, json};

/// Registers the account's C2B URLs; asserts what Daraja was sent.
async fn register(app: &TestApp, key: &str, account: &str, simulator: &RunningSimulator) {
    let registration = app
        .post(
            &format!("/v1/connector_accounts/{account}/c2b/register"),
            key,
            &json!({}),
        )
        .await
        .expect(200);
    assert_eq!(registration["object"], "c2b_registration");
    let request = simulator
        .requests()
        .into_iter()
        .rfind(|request| request.path == "/mpesa/c2b/v1/registerurl")
        .expect("RegisterURL called");
    let body: Value = serde_json::from_str(&request.body).expect("json");
    assert_eq!(body["ShortCode"], registration["shortcode"]);
    let validation_url = body["ValidationURL"].as_str().expect("url");
    assert!(
        validation_url.contains(&format!("/v1/hooks/daraja/{account}?c2b=validation&token=")),
        "{validation_url}"
    );
    // The secret token is never shown, not even to the merchant.
    assert!(!registration.to_string().contains("token"));
}

async fn pay_paybill(
    simulator: &RunningSimulator,
    shortcode: &str,
    shillings: u64,
    bill: &str,
) -> C2bOutcome {
    simulator
        .simulate_c2b_payment(C2bPayment::paybill(shortcode, shillings, bill))
        .await
        .expect("a C2B payment")
}

async fn payments_count(app: &TestApp, key: &str) -> usize {
    app.get("/v1/payments?limit=100", key).await.expect(200)["data"]
        .as_array()
        .expect("list")
        .len()
}

async fn c2b_validation_by_reference_then_confirmation(app: &TestApp) {
    let simulator = mpesa_simulator().await;
    let (key, account, receiver) = mpesa_merchant(
        app,
        &simulator,
        json!({"c2b_shortcode": "600984", "c2b_validation": "reference"}),
    )
    .await;
    register(app, &key, &account, &simulator).await;
    // An invoice waiting to be paid at the paybill.
    let invoice = app
        .post(
            "/v1/payments",
            &key,
            &json!({"amount": 25_000, "currency": "kes", "method": "mpesa", "confirm": false,
                    "reference": "INV-7", "customer": {"phone": "254708374149"}}),
        )
        .await
        .expect(200);
    assert_eq!(invoice["status"], "requires_confirmation");

    // An account number nobody issued: C2B00012, the money never moves.
    let unknown = pay_paybill(&simulator, "600984", 250, "INV-404").await;
    assert_eq!(
        unknown.validation,
        C2bValidation::Rejected {
            result_code: "C2B00012".into()
        }
    );
    assert!(!unknown.completed);
    // The right invoice for the wrong amount: C2B00013.
    let wrong_amount = pay_paybill(&simulator, "600984", 300, "INV-7").await;
    assert_eq!(
        wrong_amount.validation,
        C2bValidation::Rejected {
            result_code: "C2B00013".into()
        }
    );
    assert_eq!(payments_count(app, &key).await, 1);
    assert_eq!(balance(app, &key, "kes").await, (0, 0));

    // The invoice, paid: accepted with the payment's id, then confirmed.
    let paid = pay_paybill(&simulator, "600984", 250, "INV-7").await;
    assert_eq!(
        paid.validation,
        C2bValidation::Accepted {
            third_party_trans_id: invoice["id"].as_str().map(str::to_owned)
        }
    );
    assert!(paid.completed && paid.confirmation_delivered, "{paid:?}");
    let done = app
        .get(
            &format!("/v1/payments/{}", invoice["id"].as_str().expect("id")),
            &key,
        )
        .await
        .expect(200);
    assert_eq!(done["status"], "succeeded", "{done}");
    assert_eq!(
        event_for(&receiver, "payment.succeeded", &invoice).await["reference"],
        "INV-7"
    );
    assert_eq!(payments_count(app, &key).await, 1);
    // 250 KES less 2.9% (725 cents).
    assert_eq!(balance(app, &key, "kes").await, (24_275, 0));
    assert_eq!(app.verify_ledger().await["ok"], true);
    simulator.shutdown().await;
}
both_backends!(c2b_validation_by_reference_then_confirmation);

async fn c2b_confirmation_records_an_unsolicited_payment_once(app: &TestApp) {
    let simulator = mpesa_simulator().await;
    let (key, account, receiver) =
        mpesa_merchant(app, &simulator, json!({"c2b_shortcode": "600985"})).await;
    register(app, &key, &account, &simulator).await;

    // accept_all (the default): any account number is taken.
    let outcome = pay_paybill(&simulator, "600985", 150, "walk-in").await;
    assert_eq!(
        outcome.validation,
        C2bValidation::Accepted {
            third_party_trans_id: None
        }
    );
    assert!(outcome.confirmation_delivered, "{outcome:?}");
    let list = app.get("/v1/payments", &key).await.expect(200);
    let payment = list["data"][0].clone();
    assert_eq!(payment["status"], "succeeded", "{payment}");
    assert_eq!(payment["method"], "mpesa");
    assert_eq!(payment["amount"], 15_000);
    assert_eq!(payment["reference"], "walk-in");
    assert_eq!(payment["metadata"]["mpesa_receipt"], outcome.trans_id);
    assert_eq!(
        event_for(&receiver, "payment.created", &payment).await["amount"],
        15_000
    );
    assert_eq!(
        event_for(&receiver, "payment.succeeded", &payment).await["status"],
        "succeeded"
    );
    // 150 KES less 2.9% (435 cents).
    assert_eq!(balance(app, &key, "kes").await, (14_565, 0));

    // Daraja sends the confirmation again, as is and with another balance:
    // neither changes anything.
    let confirmation = simulator
        .callbacks_sent()
        .into_iter()
        .find(|callback| callback.kind == "c2b_confirmation")
        .expect("the confirmation");
    let mut changed: Value = serde_json::from_str(&confirmation.body).expect("json");
    changed["OrgAccountBalance"] = json!("999.00");
    for body in [confirmation.body.clone(), changed.to_string()] {
        let answer = app
            .client
            .post(&confirmation.url)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .expect("sent");
        assert_eq!(answer.status(), 200);
        let answer: Value = answer.json().await.expect("json");
        assert_eq!(answer["ResultCode"], 0);
    }
    let log = app
        .get(
            "/v1/admin/webhooks/inbound?provider=mpesa&limit=2",
            &app.operator_token,
        )
        .await
        .expect(200);
    assert_eq!(log["data"][0]["outcome"], "ignored", "{log}");
    assert_eq!(log["data"][1]["outcome"], "duplicate", "{log}");
    assert_eq!(payments_count(app, &key).await, 1);
    assert_eq!(balance(app, &key, "kes").await, (14_565, 0));

    // Without the URL's token a notification is refused unread.
    let forged = app
        .client
        .post(format!(
            "{}/v1/hooks/daraja/{account}?c2b=confirmation",
            app.base
        ))
        .header("content-type", "application/json")
        .body(confirmation.body.replace(&outcome.trans_id, "FORGED0001"))
        .send()
        .await
        .expect("sent");
    assert_eq!(forged.status(), 401);
    assert_eq!(payments_count(app, &key).await, 1);

    // A bad rule is refused when the account is created.
    let bad = app
        .post(
            "/v1/connector_accounts",
            &key,
            &json!({"provider": "mpesa", "credentials": {"c2b_validation": "sometimes"}}),
        )
        .await;
    assert_eq!(bad.status, 400);
    assert_eq!(bad.error_param(), Some("credentials[c2b_validation]"));
    assert_eq!(app.verify_ledger().await["ok"], true);
    simulator.shutdown().await;
}
both_backends!(c2b_confirmation_records_an_unsolicited_payment_once);
