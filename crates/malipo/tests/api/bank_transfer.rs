//! Bank transfers end to end: instructions with a checked deposit
//! reference, operator confirmation (exact amount, once, four eyes),
//! expiry, statement reconciliation, and refunds refused.

use crate::both_backends;
use crate::helpers::{Receiver, Response, TestApp};
use crate::mtn_momo::balance;
use malipo_core::reference::DepositReference;
use serde_json::{Value, json};
use std::time::{SystemTime, UNIX_EPOCH};

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_secs() as i64
}

fn account_body() -> Value {
    json!({"currency": "kes", "bank_name": "Equity Bank", "account_name": "Duka Ltd",
        "account_number": "0150 2939 4455", "branch": "Westlands", "swift": "equbkena"})
}

/// A merchant whose (test key) configured a KES bank account itself.
async fn merchant_with_account(app: &TestApp) -> (String, String) {
    let (merchant, key, _) = app.merchant().await;
    let account = app
        .post("/v1/bank_accounts", &key, &account_body())
        .await
        .expect(200);
    assert_eq!(account["object"], "bank_account");
    assert_eq!(account["swift"], "EQUBKENA");
    assert_eq!(account["configured_by"]["type"], "api_key");
    (merchant, key)
}

async fn pay(app: &TestApp, key: &str, amount: u64, currency: &str) -> Response {
    app.post(
        "/v1/payments",
        key,
        &json!({"amount": amount, "currency": currency, "method": "bank_transfer",
            "reference": "order-7"}),
    )
    .await
}

/// The deposit of a payment, from the operator's list.
async fn deposit_of(app: &TestApp, payment: &Value) -> Value {
    let list = app
        .get("/v1/admin/bank_deposits?limit=100", &app.operator_token)
        .await
        .expect(200);
    list["data"]
        .as_array()
        .expect("list")
        .iter()
        .find(|deposit| deposit["payment"] == payment["id"])
        .cloned()
        .expect("a deposit for the payment")
}

async fn confirm(
    app: &TestApp,
    token: &str,
    deposit: &Value,
    amount: u64,
    bank_reference: &str,
) -> Response {
    app.post(
        &format!(
            "/v1/admin/bank_deposits/{}/confirm",
            deposit["id"].as_str().expect("id")
        ),
        token,
        &json!({"amount_received": amount, "bank_reference": bank_reference}),
    )
    .await
}

async fn pay_and_confirm(app: &TestApp) {
    let (_, key) = merchant_with_account(app).await;
    let receiver = Receiver::start(vec![]).await;
    app.post(
        "/v1/webhook_endpoints",
        &key,
        &json!({"url": receiver.url, "enabled_events": ["payment.succeeded"]}),
    )
    .await
    .expect(200);

    let payment = pay(app, &key, 150_050, "KES").await.expect(200);
    assert_eq!(payment["status"], "processing");
    assert_eq!(payment["method"], "bank_transfer");
    assert_eq!(payment["connector"], "bank_transfer");
    let action = &payment["next_action"];
    assert_eq!(action["type"], "bank_transfer");
    let reference = action["reference"].as_str().expect("reference");
    assert_eq!(reference.len(), 11, "XXXXX-XXXXX: {reference}");
    let parsed = DepositReference::parse(reference).expect("a valid reference");
    assert_eq!(parsed.grouped(), reference);
    assert_eq!(action["bank_name"], "Equity Bank");
    assert_eq!(action["account_name"], "Duka Ltd");
    assert_eq!(action["account_number"], "0150 2939 4455");
    assert_eq!(action["branch"], "Westlands");
    assert_eq!(action["swift"], "EQUBKENA");
    assert_eq!(action["amount"], 150_050);
    assert_eq!(action["amount_decimal"], "1500.50");
    assert_eq!(action["currency"], "kes");
    let expires_at = action["expires_at"].as_i64().expect("expires_at");
    assert!((now() + 72 * 3600 - 60..=now() + 72 * 3600).contains(&expires_at));
    assert_eq!(payment["expires_at"], expires_at);
    // In flight: pending in the merchant's balance, not available.
    let net = payment["net"].as_i64().expect("net");
    assert_eq!(payment["fee"].as_i64().expect("fee") + net, 150_050);
    assert_eq!(balance(app, &key, "kes").await, (0, net));

    // Operators see it pending.
    let deposit = deposit_of(app, &payment).await;
    assert_eq!(deposit["object"], "bank_deposit");
    assert_eq!(deposit["status"], "pending");
    assert_eq!(deposit["reference"], reference);
    assert_eq!(deposit["amount"], 150_050);
    let pending = app
        .get(
            "/v1/admin/bank_deposits?status=pending",
            &app.operator_token,
        )
        .await
        .expect(200);
    assert_eq!(pending["data"].as_array().expect("list").len(), 1);
    let bad_filter = app
        .get("/v1/admin/bank_deposits?status=paid", &app.operator_token)
        .await;
    assert_eq!(bad_filter.status, 400);
    assert_eq!(bad_filter.error_param(), Some("status"));
    // Merchants can't confirm.
    assert_eq!(
        confirm(app, &key, &deposit, 150_050, "FT1").await.status,
        401
    );

    let confirmed = confirm(app, &app.operator_token, &deposit, 150_050, " ft26001abc ")
        .await
        .expect(200);
    assert_eq!(confirmed["status"], "confirmed");
    assert_eq!(confirmed["amount_received"], 150_050);
    assert_eq!(confirmed["bank_reference"], "FT26001ABC");
    assert!(confirmed["confirmed_by"].is_string());
    let paid = app
        .get(
            &format!("/v1/payments/{}", payment["id"].as_str().expect("id")),
            &key,
        )
        .await
        .expect(200);
    assert_eq!(paid["status"], "succeeded");
    assert_eq!(paid["amount_received"], 150_050);
    assert_eq!(paid["next_action"], Value::Null);
    assert_eq!(balance(app, &key, "kes").await, (net, 0));
    assert_eq!(app.verify_ledger().await["ok"], true);
    let delivered = receiver.wait_until(|received| !received.is_empty()).await;
    assert_eq!(receiver.event_types(), ["payment.succeeded"]);
    assert!(
        delivered[0]
            .body
            .contains(payment["id"].as_str().expect("id"))
    );

    // Never twice.
    let again = confirm(app, &app.operator_token, &deposit, 150_050, "FT26001XYZ").await;
    assert_eq!(again.status, 409);
    assert_eq!(again.body["error"]["code"], "deposit_already_confirmed");
    assert_eq!(balance(app, &key, "kes").await, (net, 0));

    // The operator's action is in the audit log.
    let audit = app
        .get(
            "/v1/admin/audit?action=bank_deposit.confirm",
            &app.operator_token,
        )
        .await
        .expect(200);
    let entries = audit["data"].as_array().expect("list");
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0]["actor"]["type"], "operator");
    assert_eq!(entries[0]["object_id"], deposit["id"]);

    // Refunds are refused up front, naming the payment; nothing moves.
    let refund = app
        .post("/v1/refunds", &key, &json!({"payment": payment["id"]}))
        .await;
    assert_eq!(refund.status, 400, "{}", refund.body);
    assert_eq!(refund.error_param(), Some("payment"));
    assert_eq!(balance(app, &key, "kes").await, (net, 0));
    assert_eq!(app.verify_ledger().await["ok"], true);
}
both_backends!(pay_and_confirm);

async fn refusals_change_nothing(app: &TestApp) {
    let (_, key) = merchant_with_account(app).await;
    // No account in that currency, no delayed start, no manual capture.
    let no_account = pay(app, &key, 1_000, "usd").await;
    assert_eq!(no_account.status, 400);
    assert_eq!(no_account.error_param(), Some("currency"));
    let unconfirmed = app
        .post(
            "/v1/payments",
            &key,
            &json!({"amount": 1_000, "currency": "kes",
            "method": "bank_transfer", "confirm": false}),
        )
        .await;
    assert_eq!(unconfirmed.error_param(), Some("confirm"));
    let manual = app
        .post(
            "/v1/payments",
            &key,
            &json!({"amount": 1_000, "currency": "kes",
            "method": "bank_transfer", "capture_method": "manual"}),
        )
        .await;
    assert_eq!(manual.error_param(), Some("capture_method"));
    for (body, param) in [
        (
            json!({"currency": "kes", "account_name": "A", "account_number": "1"}),
            "bank_name",
        ),
        (
            json!({"currency": "kes", "bank_name": "B", "account_name": "A", "account_number": "1;DROP"}),
            "account_number",
        ),
        (
            json!({"currency": "kes", "bank_name": "B", "account_name": "A", "account_number": "1", "swift": "ABC"}),
            "swift",
        ),
        (
            json!({"currency": "xyz", "bank_name": "B", "account_name": "A", "account_number": "1"}),
            "currency",
        ),
        (
            json!({"currency": "kes", "bank_name": "B", "account_name": "A", "account_number": "1", "mode": "live"}),
            "mode",
        ),
    ] {
        let refused = app.post("/v1/bank_accounts", &key, &body).await;
        assert_eq!(refused.status, 400, "{body}");
        assert_eq!(refused.error_param(), Some(param));
    }

    // A retried request answers the same payment and deposit reference.
    let body = json!({"amount": 5_000, "currency": "kes", "method": "bank_transfer"});
    let first = app
        .post_idempotent("/v1/payments", &key, &body, "bank-order-1")
        .await
        .expect(200);
    let replay = app
        .post_idempotent("/v1/payments", &key, &body, "bank-order-1")
        .await
        .expect(200);
    assert_eq!(replay, first);
    let second = pay(app, &key, 7_000, "kes").await.expect(200);
    assert_ne!(
        first["next_action"]["reference"],
        second["next_action"]["reference"]
    );
    let deposits = app
        .get("/v1/admin/bank_deposits", &app.operator_token)
        .await
        .expect(200);
    assert_eq!(deposits["data"].as_array().expect("list").len(), 2);
    let first_deposit = deposit_of(app, &first).await;
    let second_deposit = deposit_of(app, &second).await;

    // Another amount is refused, naming it: nothing unpaid is credited.
    let short = confirm(app, &app.operator_token, &first_deposit, 4_999, "FT100").await;
    assert_eq!(short.status, 400);
    assert_eq!(short.error_param(), Some("amount_received"));
    assert_eq!(short.body["error"]["code"], "amount_mismatch");
    let over = confirm(app, &app.operator_token, &first_deposit, 5_001, "FT100").await;
    assert_eq!(over.error_param(), Some("amount_received"));
    let missing = app
        .post(
            &format!(
                "/v1/admin/bank_deposits/{}/confirm",
                first_deposit["id"].as_str().expect("id")
            ),
            &app.operator_token,
            &json!({"amount_received": 5_000}),
        )
        .await;
    assert_eq!(missing.error_param(), Some("bank_reference"));
    let bad_reference = confirm(app, &app.operator_token, &first_deposit, 5_000, "FT 100").await;
    assert_eq!(bad_reference.error_param(), Some("bank_reference"));
    let unknown = app
        .post(
            "/v1/admin/bank_deposits/bdep_nope/confirm",
            &app.operator_token,
            &json!({"amount_received": 5_000, "bank_reference": "FT100"}),
        )
        .await;
    assert_eq!(unknown.status, 404);
    assert_eq!(deposit_of(app, &first).await["status"], "pending");
    assert_eq!(balance(app, &key, "kes").await.0, 0);

    // One bank transaction confirms one deposit.
    confirm(app, &app.operator_token, &first_deposit, 5_000, "FT100")
        .await
        .expect(200);
    let reused = confirm(app, &app.operator_token, &second_deposit, 7_000, "ft100").await;
    assert_eq!(reused.status, 409);
    assert_eq!(reused.body["error"]["code"], "bank_reference_used");
    assert_eq!(reused.error_param(), Some("bank_reference"));
    assert_eq!(deposit_of(app, &second).await["status"], "pending");
    assert_eq!(app.verify_ledger().await["ok"], true);
}
both_backends!(refusals_change_nothing);

/// An operator configures the merchant's account; with four eyes on (the
/// default) that operator can't confirm deposits to it, another can.
async fn four_eyes_on(app: &TestApp) {
    let (merchant, key, _) = app.merchant().await;
    let mut body = account_body();
    body["mode"] = json!("test");
    let account = app
        .post(
            &format!("/v1/admin/merchants/{merchant}/bank_accounts"),
            &app.operator_token,
            &body,
        )
        .await
        .expect(200);
    assert_eq!(account["configured_by"]["type"], "operator");
    let payment = pay(app, &key, 10_000, "kes").await.expect(200);
    let deposit = deposit_of(app, &payment).await;

    let refused = confirm(app, &app.operator_token, &deposit, 10_000, "FT200").await;
    assert_eq!(refused.status, 403, "{}", refused.body);
    assert_eq!(refused.body["error"]["code"], "four_eyes_required");
    assert_eq!(deposit_of(app, &payment).await["status"], "pending");
    // The same rule holds for a statement's matches.
    let statement = upload(
        app,
        &format!(
            "date,reference,amount,currency,bank_reference\n2026-11-20,{},100,kes,FT200\n",
            payment["next_action"]["reference"]
                .as_str()
                .expect("reference")
        ),
    )
    .await
    .expect(200);
    let done = app
        .post(
            &format!(
                "/v1/admin/bank_statements/{}/confirm",
                statement["id"].as_str().expect("id")
            ),
            &app.operator_token,
            &json!({}),
        )
        .await
        .expect(200);
    assert_eq!(done["matched"][0]["result"], "four_eyes_required");
    assert_eq!(deposit_of(app, &payment).await["status"], "pending");

    let colleague = app.gateway().create_operator_token().await.expect("token");
    confirm(app, &colleague, &deposit, 10_000, "FT200")
        .await
        .expect(200);
    assert_eq!(app.verify_ledger().await["ok"], true);
}
both_backends!(four_eyes_on);

async fn four_eyes_off(app: &TestApp) {
    let (merchant, key, _) = app.merchant().await;
    let mut body = account_body();
    body["mode"] = json!("test");
    app.post(
        &format!("/v1/admin/merchants/{merchant}/bank_accounts"),
        &app.operator_token,
        &body,
    )
    .await
    .expect(200);
    let payment = pay(app, &key, 10_000, "kes").await.expect(200);
    let deposit = deposit_of(app, &payment).await;
    confirm(app, &app.operator_token, &deposit, 10_000, "FT300")
        .await
        .expect(200);
}
both_backends!(
    four_eyes_off,
    malipo::config::Config {
        bank_four_eyes: false,
        ..crate::helpers::test_config()
    }
);

/// Unconfirmed, the worker expires the payment and releases the
/// reservation; a late confirmation is refused.
async fn unconfirmed_transfers_expire(app: &TestApp) {
    let (_, key) = merchant_with_account(app).await;
    let payment = pay(app, &key, 10_000, "kes").await.expect(200);
    let id = payment["id"].as_str().expect("id");
    let expired = app
        .wait_for_payment(&key, id, |payment| payment["status"] == "expired")
        .await;
    assert_eq!(expired["status"], "expired");
    assert_eq!(expired["failure"]["code"], "expired");
    assert_eq!(expired["next_action"], Value::Null);
    let deposit = deposit_of(app, &payment).await;
    assert_eq!(deposit["status"], "expired");
    let late = confirm(app, &app.operator_token, &deposit, 10_000, "FT400").await;
    assert_eq!(late.status, 409);
    assert_eq!(late.body["error"]["code"], "deposit_expired");
    assert_eq!(balance(app, &key, "kes").await, (0, 0));
    assert_eq!(app.verify_ledger().await["ok"], true);
}
both_backends!(
    unconfirmed_transfers_expire,
    malipo::config::Config {
        bank_transfer_expiry_seconds: 1,
        ..crate::helpers::test_config()
    }
);

async fn upload(app: &TestApp, csv: &str) -> Response {
    let response = app
        .client
        .post(format!("{}/v1/admin/bank_statements", app.base))
        .bearer_auth(&app.operator_token)
        .header("Content-Type", "text/csv")
        .body(csv.to_owned())
        .send()
        .await
        .expect("sent");
    let status = response.status();
    let headers = response.headers().clone();
    let body = serde_json::from_str(&response.text().await.expect("body")).expect("json");
    Response {
        status,
        body,
        headers,
    }
}

fn reasons(statement: &Value) -> Vec<(u64, String)> {
    statement["mismatched"]
        .as_array()
        .expect("mismatched")
        .iter()
        .map(|line| {
            (
                line["line"].as_u64().expect("line"),
                line["reason"].as_str().expect("reason").to_owned(),
            )
        })
        .collect()
}

/// A statement is matched by reference and amount; its matches are
/// confirmed in one action; nothing is confirmed twice, however often
/// statements are uploaded.
async fn statement_reconciliation(app: &TestApp) {
    let (_, key) = merchant_with_account(app).await;
    let a = pay(app, &key, 150_050, "kes").await.expect(200);
    let b = pay(app, &key, 20_000, "kes").await.expect(200);
    let c = pay(app, &key, 30_000, "kes").await.expect(200);
    let d = pay(app, &key, 40_000, "kes").await.expect(200);
    let reference = |payment: &Value| {
        payment["next_action"]["reference"]
            .as_str()
            .expect("reference")
            .to_owned()
    };
    confirm(
        app,
        &app.operator_token,
        &deposit_of(app, &d).await,
        40_000,
        "FT-D",
    )
    .await
    .expect(200);
    // A typo in A's reference: one character changed is caught by the check.
    let mut typo = reference(&a).into_bytes();
    typo[0] = if typo[0] == b'2' { b'3' } else { b'2' };
    let typo = String::from_utf8(typo).expect("ascii");
    let sloppy_a = reference(&a).to_ascii_lowercase().replace('-', " ");
    let csv = format!(
        "date,reference,amount,currency,bank_reference\n\
         2026-11-20,{sloppy_a},1500.50,KES,FT-A\n\
         2026-11-20,{b},200.01,KES,FT-B\n\
         2026-11-20,{c},300,USD,FT-C\n\
         2026-11-20,{d},400.00,KES,FT-D2\n\
         2026-11-20,{typo},1500.50,KES,FT-T\n\
         2026-11-20,23456-789A9,10,KES,FT-U\n\
         2026-11-20,{c},abc,KES,FT-X\n\
         2026-11-20,{a},1500.50,KES,FT-A\n",
        b = reference(&b),
        c = reference(&c),
        d = reference(&d),
        a = reference(&a),
    );
    let statement = upload(app, &csv).await.expect(200);
    assert_eq!(statement["object"], "bank_statement");
    assert_eq!(statement["status"], "uploaded");
    assert_eq!(statement["line_count"], 8);
    let matched = statement["matched"].as_array().expect("matched");
    assert_eq!(matched.len(), 1, "{statement}");
    assert_eq!(matched[0]["line"], 2);
    assert_eq!(matched[0]["payment"], a["id"]);
    assert_eq!(matched[0]["amount"], 150_050);
    assert_eq!(
        reasons(&statement),
        [
            (3, "amount_differs".into()),
            (4, "currency_differs".into()),
            (5, "already_confirmed".into()),
            (6, "unknown_reference".into()),
            (7, "unknown_reference".into()),
            (9, "duplicate".into()),
        ]
    );
    let invalid = statement["invalid_lines"].as_array().expect("invalid");
    assert_eq!(invalid.len(), 1);
    assert_eq!(invalid[0]["line"], 8);
    assert!(
        invalid[0]["message"]
            .as_str()
            .expect("message")
            .contains("amount")
    );
    // Uploading changes nothing.
    assert_eq!(deposit_of(app, &a).await["status"], "pending");

    // An overlapping statement uploaded before the first is confirmed.
    let overlapping = upload(
        app,
        &format!(
            "reference,amount,currency,bank_reference,date\n{},1500.50,kes,FT-A,2026-11-21\n",
            reference(&a)
        ),
    )
    .await
    .expect(200);
    assert_eq!(overlapping["matched"].as_array().expect("matched").len(), 1);

    let id = statement["id"].as_str().expect("id");
    let done = app
        .post(
            &format!("/v1/admin/bank_statements/{id}/confirm"),
            &app.operator_token,
            &json!({}),
        )
        .await
        .expect(200);
    assert_eq!(done["status"], "confirmed");
    assert_eq!(done["matched"][0]["result"], "confirmed");
    let a_deposit = deposit_of(app, &a).await;
    assert_eq!(a_deposit["status"], "confirmed");
    assert_eq!(a_deposit["bank_reference"], "FT-A");
    assert_eq!(a_deposit["statement"], id);
    let paid = app
        .get(
            &format!("/v1/payments/{}", a["id"].as_str().expect("id")),
            &key,
        )
        .await
        .expect(200);
    assert_eq!(paid["status"], "succeeded");
    for other in [&b, &c] {
        assert_eq!(deposit_of(app, other).await["status"], "pending");
    }
    let (available, _) = balance(app, &key, "kes").await;

    // Nothing twice: not the same statement, not an overlapping one, not
    // a re-upload.
    let again = app
        .post(
            &format!("/v1/admin/bank_statements/{id}/confirm"),
            &app.operator_token,
            &json!({}),
        )
        .await;
    assert_eq!(again.status, 409);
    assert_eq!(again.body["error"]["code"], "statement_already_confirmed");
    let overlapping_id = overlapping["id"].as_str().expect("id");
    let late = app
        .post(
            &format!("/v1/admin/bank_statements/{overlapping_id}/confirm"),
            &app.operator_token,
            &json!({}),
        )
        .await
        .expect(200);
    assert_eq!(late["matched"][0]["result"], "deposit_already_confirmed");
    let reuploaded = upload(app, &csv).await.expect(200);
    assert_eq!(reuploaded["matched"].as_array().expect("matched").len(), 0);
    assert_eq!(reasons(&reuploaded)[0], (2, "already_confirmed".into()));
    let stored = app
        .get(
            &format!("/v1/admin/bank_statements/{id}"),
            &app.operator_token,
        )
        .await
        .expect(200);
    assert_eq!(stored["status"], "confirmed");
    assert_eq!(balance(app, &key, "kes").await.0, available);
    assert_eq!(app.verify_ledger().await["ok"], true);

    // A file that isn't a statement is refused as a whole.
    for bad in ["", "date,reference,amount\n2026-01-01,X,1\n"] {
        let refused = upload(app, bad).await;
        assert_eq!(refused.status, 400, "{bad:?}");
        assert_eq!(refused.error_param(), Some("statement"));
    }
}
both_backends!(statement_reconciliation);

async fn documented_in_openapi(app: &TestApp) {
    let spec = app.get("/openapi.json", "").await.expect(200);
    let paths = &spec["paths"];
    for (path, method) in [
        ("/v1/bank_accounts", "post"),
        ("/v1/bank_accounts", "get"),
        ("/v1/admin/merchants/{id}/bank_accounts", "post"),
        ("/v1/admin/bank_deposits", "get"),
        ("/v1/admin/bank_deposits/{id}", "get"),
        ("/v1/admin/bank_deposits/{id}/confirm", "post"),
        ("/v1/admin/bank_statements", "post"),
        ("/v1/admin/bank_statements/{id}", "get"),
        ("/v1/admin/bank_statements/{id}/confirm", "post"),
    ] {
        assert!(paths[path][method].is_object(), "{method} {path}");
    }
    assert!(
        paths["/v1/admin/bank_statements"]["post"]["requestBody"]["content"]["text/csv"]
            .is_object()
    );
}
both_backends!(documented_in_openapi);
