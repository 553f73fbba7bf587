//! Vouchers end to end: batches (codes shown once), validation, paying with
//! a voucher (partial use), concurrency, expiry, refunds back onto the
//! voucher, and guessing limits.

use crate::both_backends;
use crate::helpers::{Receiver, TestApp};
use serde_json::{Value, json};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_secs() as i64
}

async fn issue(app: &TestApp, body: Value) -> Value {
    app.post("/v1/admin/vouchers/batches", &app.operator_token, &body)
        .await
        .expect(200)
}

fn codes(batch: &Value) -> Vec<String> {
    batch["vouchers"]
        .as_array()
        .expect("vouchers in the creation response")
        .iter()
        .map(|voucher| voucher["code"].as_str().expect("code").to_owned())
        .collect()
}

fn is_grouped_code(code: &str) -> bool {
    let groups: Vec<&str> = code.split('-').collect();
    groups.len() == 4
        && groups.iter().all(|group| {
            group.len() == 4
                && group
                    .bytes()
                    .all(|b| b"23456789ABCDEFGHJKMNPQRSTUVWXYZ".contains(&b))
        })
}

async fn validate(app: &TestApp, key: &str, code: &str) -> Value {
    app.post("/v1/vouchers/validate", key, &json!({"code": code}))
        .await
        .expect(200)
}

async fn pay(
    app: &TestApp,
    key: &str,
    amount: u64,
    currency: &str,
    code: &str,
) -> crate::helpers::Response {
    app.post(
        "/v1/payments",
        key,
        &json!({"amount": amount, "currency": currency, "method": "voucher", "voucher": {"code": code}}),
    )
    .await
}

/// (debits posted, credits posted) of a platform ledger account.
async fn platform_account(app: &TestApp, mode: &str, asset: &str, name: &str) -> (u128, u128) {
    let mut reader = app.gateway().store().reader().await.expect("reader");
    let accounts = reader
        .conn()
        .ledger_accounts_with_prefix(&format!("{mode}/platform/{asset}/{name}"))
        .await
        .expect("accounts");
    accounts
        .first()
        .map(|account| (account.debits_posted, account.credits_posted))
        .unwrap_or((0, 0))
}

/// Outstanding voucher liability: credits minus debits.
async fn outstanding(app: &TestApp, asset: &str) -> u128 {
    let (debits, credits) = platform_account(app, "test", asset, "vouchers_outstanding").await;
    credits - debits
}

async fn batches_show_codes_once(app: &TestApp) {
    let (merchant, key, live_key) = app.merchant().await;
    let batch = app
        .post(
            "/v1/admin/vouchers/batches",
            &app.operator_token,
            &json!({"mode": "test", "currency": "KES", "face_value": 5_000, "count": 3,
                "expires_at": now() + 3_600, "description": "Launch promo"}),
        )
        .await;
    assert_eq!(
        batch
            .headers
            .get("cache-control")
            .and_then(|v| v.to_str().ok()),
        Some("no-store")
    );
    let batch = batch.expect(200);
    assert!(batch["id"].as_str().expect("id").starts_with("vb_"));
    assert_eq!(batch["object"], "voucher_batch");
    assert_eq!(batch["currency"], "kes");
    assert_eq!(batch["count"], 3);
    assert_eq!(batch["merchant"], Value::Null);
    let issued = codes(&batch);
    assert_eq!(issued.len(), 3);
    assert!(
        issued.iter().all(|code| is_grouped_code(code)),
        "{issued:?}"
    );
    assert_ne!(issued[0], issued[1]);
    assert_eq!(
        outstanding(app, "kes").await,
        15_000,
        "the batch is a liability"
    );

    // Never shown again: not in listings, not in the audit log.
    let batch_id = batch["id"].as_str().expect("id");
    let listed = app
        .get(
            &format!("/v1/admin/vouchers?batch={batch_id}"),
            &app.operator_token,
        )
        .await
        .expect(200);
    assert_eq!(listed["data"].as_array().expect("list").len(), 3);
    assert_eq!(listed["data"][0]["remaining"], 5_000);
    assert_eq!(listed["data"][0]["status"], "active");
    let batches = app
        .get("/v1/admin/vouchers/batches", &app.operator_token)
        .await
        .expect(200);
    assert_eq!(batches["data"][0]["id"], batch_id);
    assert!(batches["data"][0].get("vouchers").is_none());
    let audit = app
        .get(
            "/v1/admin/audit?action=voucher_batch.create",
            &app.operator_token,
        )
        .await
        .expect(200);
    assert_eq!(audit["data"][0]["object_id"], batch_id);
    for text in [listed.to_string(), batches.to_string(), audit.to_string()] {
        for code in &issued {
            assert!(!text.contains(code.as_str()) && !text.contains(&code.replace('-', "")));
        }
    }

    // CSV, by query or by Accept.
    let body = json!({"mode": "test", "currency": "ugx", "face_value": 1_000, "count": 2,
        "expires_at": now() + 3_600});
    for (path, headers) in [
        ("/v1/admin/vouchers/batches?format=csv", vec![]),
        ("/v1/admin/vouchers/batches", vec![("Accept", "text/csv")]),
    ] {
        let csv = app
            .request(
                reqwest::Method::POST,
                path,
                &app.operator_token,
                Some(&body),
                &headers,
            )
            .await;
        assert_eq!(csv.status, 200);
        assert!(
            csv.headers["content-type"]
                .to_str()
                .expect("type")
                .starts_with("text/csv"),
            "{:?}",
            csv.headers
        );
        let text = csv.body.as_str().expect("csv text");
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "id,code,currency,face_value,expires_at");
        assert_eq!(lines.len(), 3);
        let fields: Vec<&str> = lines[1].split(',').collect();
        assert!(fields[0].starts_with("vch_") && is_grouped_code(fields[1]) && fields[2] == "ugx");
    }

    // Validation: any case, with or without dashes.
    let valid = validate(app, &key, &issued[0]).await;
    assert_eq!(valid["status"], "valid");
    assert_eq!(valid["currency"], "kes");
    assert_eq!(valid["remaining"], 5_000);
    let sloppy = issued[0].replace('-', "").to_ascii_lowercase();
    assert_eq!(validate(app, &key, &sloppy).await["status"], "valid");
    // Unknown, malformed, wrong mode: the same answer, nothing more.
    let unknown = validate(app, &key, "2345-6789-ABCD-EFGH").await;
    let malformed = validate(app, &key, "not a code").await;
    let live = validate(app, &live_key, &issued[0]).await;
    assert_eq!(
        unknown,
        json!({"object": "voucher_validation", "status": "invalid",
        "currency": null, "remaining": null, "expires_at": null})
    );
    assert_eq!(malformed, unknown);
    assert_eq!(live, unknown);
    let missing = app.post("/v1/vouchers/validate", &key, &json!({})).await;
    assert_eq!(missing.status, 400);
    assert_eq!(missing.error_param(), Some("code"));

    // A batch for one merchant is invalid everywhere else.
    let own = issue(
        app,
        json!({"mode": "test", "currency": "kes", "face_value": 100, "count": 1,
        "expires_at": now() + 3_600, "merchant": merchant}),
    )
    .await;
    assert_eq!(own["merchant"], merchant.as_str());
    let own_code = &codes(&own)[0];
    let other_key = app.test_key().await;
    assert_eq!(validate(app, &other_key, own_code).await, unknown);
    assert_eq!(validate(app, &key, own_code).await["status"], "valid");

    // Bad batches name the field and issue nothing.
    let later = now() + 3_600;
    for (body, param) in [
        (
            json!({"mode": "test", "currency": "kes", "face_value": 1, "count": 10_001, "expires_at": later}),
            "count",
        ),
        (
            json!({"mode": "test", "currency": "kes", "face_value": 1, "count": 0, "expires_at": later}),
            "count",
        ),
        (
            json!({"mode": "test", "currency": "kes", "face_value": 0, "count": 1, "expires_at": later}),
            "face_value",
        ),
        (
            json!({"mode": "test", "currency": "xyz", "face_value": 1, "count": 1, "expires_at": later}),
            "currency",
        ),
        (
            json!({"mode": "test", "currency": "kes", "face_value": 1, "count": 1, "expires_at": now() - 1}),
            "expires_at",
        ),
        (
            json!({"mode": "test", "currency": "kes", "face_value": 1, "count": 1, "expires_at": later,
            "merchant": "mch_nobody"}),
            "merchant",
        ),
        (
            json!({"currency": "kes", "face_value": 1, "count": 1, "expires_at": later}),
            "mode",
        ),
    ] {
        let refused = app
            .post("/v1/admin/vouchers/batches", &app.operator_token, &body)
            .await;
        assert_eq!(refused.status, 400, "{body}");
        assert_eq!(refused.error_param(), Some(param), "{body}");
    }
    let format = app
        .post(
            "/v1/admin/vouchers/batches?format=xml",
            &app.operator_token,
            &body,
        )
        .await;
    assert_eq!(format.error_param(), Some("format"));
    let batches = app
        .get("/v1/admin/vouchers/batches?limit=100", &app.operator_token)
        .await
        .expect(200);
    assert_eq!(batches["data"].as_array().expect("list").len(), 4);
    assert_eq!(app.verify_ledger().await["ok"], true);
}
both_backends!(batches_show_codes_once);

async fn pay_with_a_voucher(app: &TestApp) {
    let key = app.test_key().await;
    let receiver = Receiver::start(vec![]).await;
    app.post(
        "/v1/webhook_endpoints",
        &key,
        &json!({"url": receiver.url, "enabled_events": ["payment.succeeded"]}),
    )
    .await
    .expect(200);
    let batch = issue(
        app,
        json!({"mode": "test", "currency": "kes", "face_value": 10_000, "count": 2,
        "expires_at": now() + 3_600}),
    )
    .await;
    let code = codes(&batch)[0].clone();
    assert_eq!(outstanding(app, "kes").await, 20_000);

    // Partial use: the remainder stays on the voucher.
    let first = pay(app, &key, 4_000, "KES", &code.to_ascii_lowercase())
        .await
        .expect(200);
    assert_eq!(first["status"], "succeeded");
    assert_eq!(first["method"], "voucher");
    assert_eq!(first["connector"], "voucher");
    assert_eq!(first["fee"], 116);
    assert_eq!(first["net"], 3_884);
    assert!(!first.to_string().contains(&code));
    let left = validate(app, &key, &code).await;
    assert_eq!(left["status"], "valid");
    assert_eq!(left["remaining"], 6_000);
    assert_eq!(
        outstanding(app, "kes").await,
        16_000,
        "the liability went down"
    );

    // (Refunds go back onto the voucher: see voucher_refunds_go_back_onto_the_voucher.)

    // Refusals name the field and change nothing.
    let too_much = pay(app, &key, 7_000, "kes", &code).await;
    assert_eq!(too_much.status, 400);
    assert_eq!(too_much.error_param(), Some("amount"));
    assert_eq!(too_much.body["error"]["code"], "voucher_insufficient_value");
    let currency = pay(app, &key, 6_000, "ugx", &code).await;
    assert_eq!(currency.error_param(), Some("currency"));
    let unknown = pay(app, &key, 100, "kes", "2345-6789-ABCD-EFGH").await;
    assert_eq!(unknown.status, 400);
    assert_eq!(unknown.error_param(), Some("voucher[code]"));
    assert_eq!(unknown.body["error"]["code"], "voucher_invalid");
    let malformed = pay(app, &key, 100, "kes", "0000").await;
    assert_eq!(
        malformed.body, unknown.body,
        "malformed answers like unknown"
    );
    let missing = app
        .post(
            "/v1/payments",
            &key,
            &json!({"amount": 100, "currency": "kes", "method": "voucher"}),
        )
        .await;
    assert_eq!(missing.error_param(), Some("voucher[code]"));
    let stray = app
        .post(
            "/v1/payments",
            &key,
            &json!({"amount": 100, "currency": "kes", "method": "sandbox",
            "voucher": {"code": code}}),
        )
        .await;
    assert_eq!(stray.error_param(), Some("voucher"));
    assert_eq!(validate(app, &key, &code).await["remaining"], 6_000);

    // The rest, exactly: the voucher is used up.
    let second = pay(app, &key, 6_000, "kes", &code).await.expect(200);
    assert_eq!(second["status"], "succeeded");
    assert_eq!(validate(app, &key, &code).await["status"], "used");
    let used = pay(app, &key, 1, "kes", &code).await;
    assert_eq!(used.status, 400);
    assert_eq!(used.error_param(), Some("voucher[code]"));
    assert_eq!(used.body["error"]["code"], "voucher_used");

    // Merchant credited the net of both; liability down by both amounts.
    let balance = app.get("/v1/balance", &key).await.expect(200);
    assert_eq!(
        balance["available"],
        json!([{"currency": "kes", "amount": 3_884 + 5_826}])
    );
    assert_eq!(outstanding(app, "kes").await, 10_000);
    let vouchers = app
        .get(
            &format!(
                "/v1/admin/vouchers?batch={}&status=used",
                batch["id"].as_str().expect("id")
            ),
            &app.operator_token,
        )
        .await
        .expect(200);
    assert_eq!(vouchers["data"].as_array().expect("list").len(), 1);
    assert_eq!(vouchers["data"][0]["remaining"], 0);
    assert_eq!(app.verify_ledger().await["ok"], true);

    // Merchants hear of it like any payment.
    let received = receiver.wait_until(|received| received.len() >= 2).await;
    let paid: Vec<Value> = received
        .iter()
        .map(|r| serde_json::from_str(&r.body).expect("event"))
        .collect();
    assert!(
        paid.iter()
            .all(|event| event["type"] == "payment.succeeded")
    );
    assert_eq!(paid.len(), 2);
    let ids: Vec<&Value> = paid
        .iter()
        .map(|event| &event["data"]["object"]["id"])
        .collect();
    assert!(ids.contains(&&first["id"]) && ids.contains(&&second["id"]));
}
both_backends!(pay_with_a_voucher);

async fn parallel_redemptions(app: &TestApp) {
    let key = app.test_key().await;
    let batch = issue(
        app,
        json!({"mode": "test", "currency": "kes", "face_value": 1_000, "count": 2,
        "expires_at": now() + 3_600}),
    )
    .await;
    let codes = codes(&batch);

    // 100 payments of the whole value at once: exactly one succeeds.
    let attempts = (0..100).map(|_| pay(app, &key, 1_000, "kes", &codes[0]));
    let answers = futures::future::join_all(attempts).await;
    let succeeded = answers.iter().filter(|answer| answer.status == 200).count();
    assert_eq!(succeeded, 1);
    for answer in answers.iter().filter(|answer| answer.status != 200) {
        assert_eq!(answer.status, 400, "{}", answer.body);
        assert_eq!(answer.error_param(), Some("voucher[code]"));
        assert_eq!(answer.body["error"]["code"], "voucher_used");
    }

    // 30 payments of a tenth at once: exactly ten succeed, never more.
    let other_key = app.test_key().await;
    let attempts = (0..30).map(|_| pay(app, &other_key, 100, "kes", &codes[1]));
    let answers = futures::future::join_all(attempts).await;
    let succeeded: u64 = answers
        .iter()
        .filter(|answer| answer.status == 200)
        .map(|answer| answer.body["amount"].as_u64().expect("amount"))
        .sum();
    assert_eq!(succeeded, 1_000, "the sum redeemed is the face value");
    assert!(
        answers
            .iter()
            .all(|answer| answer.status == 200 || answer.status == 400)
    );

    assert_eq!(outstanding(app, "kes").await, 0);
    let balance = app.get("/v1/balance", &key).await.expect(200);
    assert_eq!(
        balance["available"],
        json!([{"currency": "kes", "amount": 971}])
    );
    let payments = app.get("/v1/payments?limit=100", &key).await.expect(200);
    assert_eq!(payments["data"].as_array().expect("list").len(), 1);
    assert_eq!(app.verify_ledger().await["ok"], true);
}
both_backends!(parallel_redemptions);

async fn expired_vouchers_release_their_liability(app: &TestApp) {
    let key = app.test_key().await;
    let expires_at = now() + 2;
    let batch = issue(
        app,
        json!({"mode": "test", "currency": "ugx", "face_value": 500, "count": 2,
        "expires_at": expires_at}),
    )
    .await;
    let codes = codes(&batch);
    pay(app, &key, 200, "ugx", &codes[0]).await.expect(200);
    assert_eq!(outstanding(app, "ugx").await, 800);

    let path = format!(
        "/v1/admin/vouchers?batch={}&status=expired",
        batch["id"].as_str().expect("id")
    );
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    let expired = loop {
        let list = app.get(&path, &app.operator_token).await.expect(200);
        if list["data"].as_array().expect("list").len() == 2
            || tokio::time::Instant::now() > deadline
        {
            break list;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(
        expired["data"].as_array().expect("list").len(),
        2,
        "{expired}"
    );
    assert!(
        expired["data"]
            .as_array()
            .expect("list")
            .iter()
            .all(|v| v["remaining"] == 0)
    );
    assert_eq!(outstanding(app, "ugx").await, 0, "what was left went back");
    let (funding_debits, funding_credits) =
        platform_account(app, "test", "ugx", "voucher_funding").await;
    assert_eq!((funding_debits, funding_credits), (1_000, 800));

    assert_eq!(validate(app, &key, &codes[1]).await["status"], "expired");
    let late = pay(app, &key, 100, "ugx", &codes[1]).await;
    assert_eq!(late.status, 400);
    assert_eq!(late.error_param(), Some("voucher[code]"));
    assert_eq!(late.body["error"]["code"], "voucher_expired");

    // Running the job again releases nothing twice.
    assert_eq!(
        app.gateway().expire_due_vouchers(100).await.expect("job"),
        0
    );
    assert_eq!(outstanding(app, "ugx").await, 0);
    assert_eq!(app.verify_ledger().await["ok"], true);
}
both_backends!(expired_vouchers_release_their_liability);

async fn guessing_codes_is_limited_per_key(app: &TestApp) {
    let key = app.test_key().await;
    let batch = issue(
        app,
        json!({"mode": "test", "currency": "kes", "face_value": 100, "count": 1,
        "expires_at": now() + 3_600}),
    )
    .await;
    let code = codes(&batch)[0].clone();
    // 30 invalid answers per key per minute; a minute boundary may reset
    // the count once, so the refusal comes within 60 attempts.
    let mut invalid = 0;
    let mut refused = None;
    for attempt in 0..61 {
        let guess = format!("2345-6789-ABCD-{:04}", 2_000 + attempt)
            .replace('0', "2")
            .replace('1', "3");
        let answer = app
            .post("/v1/vouchers/validate", &key, &json!({"code": guess}))
            .await;
        if answer.status == 429 {
            refused = Some(answer);
            break;
        }
        assert_eq!(answer.expect(200)["status"], "invalid");
        invalid += 1;
    }
    let refused = refused.expect("refused after too many invalid codes");
    assert!(invalid >= 30, "{invalid}");
    assert_eq!(refused.body["error"]["type"], "rate_limit_error");
    assert_eq!(refused.body["error"]["code"], "voucher_attempts_limited");
    // The key can't even try a real code now; other keys can.
    assert_eq!(pay(app, &key, 100, "kes", &code).await.status, 429);
    let other = app.test_key().await;
    assert_eq!(validate(app, &other, &code).await["status"], "valid");
}
both_backends!(guessing_codes_is_limited_per_key);

async fn voucher_refunds_go_back_onto_the_voucher(app: &TestApp) {
    let key = app.test_key().await;
    let batch = issue(
        app,
        json!({"mode": "test", "currency": "kes", "face_value": 10_000, "count": 1,
        "expires_at": now() + 3_600}),
    )
    .await;
    let code = codes(&batch)[0].clone();
    let payment = pay(app, &key, 10_000, "kes", &code).await.expect(200);
    assert_eq!(validate(app, &key, &code).await["status"], "used");
    assert_eq!(outstanding(app, "kes").await, 0);
    let (available, _) = crate::mtn_momo::balance(app, &key, "kes").await;
    assert_eq!(available, 9_710, "10,000 less the 2.9% fee");

    // Partial: the voucher holds the refunded value again, the liability
    // is back, the merchant gives back the amount less its fee share.
    let partial = app
        .post(
            "/v1/refunds",
            &key,
            &json!({"payment": payment["id"], "amount": 4_000}),
        )
        .await
        .expect(200);
    assert_eq!(partial["status"], "succeeded");
    let fee_back = partial["fee_refunded"].as_i64().expect("fee share");
    assert_eq!(fee_back, 116, "4,000 / 10,000 of the 290 fee");
    let left = validate(app, &key, &code).await;
    assert_eq!(
        (left["status"].clone(), left["remaining"].clone()),
        (json!("valid"), json!(4_000))
    );
    assert_eq!(outstanding(app, "kes").await, 4_000);
    assert_eq!(
        crate::mtn_momo::balance(app, &key, "kes").await.0,
        9_710 - (4_000 - fee_back)
    );

    // The rest: the voucher is whole again, the merchant's balance is 0.
    let rest = app
        .post("/v1/refunds", &key, &json!({"payment": payment["id"]}))
        .await
        .expect(200);
    assert_eq!(
        (rest["status"].clone(), rest["amount"].clone()),
        (json!("succeeded"), json!(6_000))
    );
    assert_eq!(validate(app, &key, &code).await["remaining"], 10_000);
    assert_eq!(outstanding(app, "kes").await, 10_000);
    assert_eq!(crate::mtn_momo::balance(app, &key, "kes").await, (0, 0));
    let refunded = app
        .get(
            &format!("/v1/payments/{}", payment["id"].as_str().expect("id")),
            &key,
        )
        .await
        .expect(200);
    assert_eq!(refunded["amount_refunded"], 10_000);
    let more = app
        .post("/v1/refunds", &key, &json!({"payment": payment["id"]}))
        .await;
    assert_eq!(more.status, 409);

    // The value spends again.
    pay(app, &key, 2_500, "kes", &code).await.expect(200);
    assert_eq!(validate(app, &key, &code).await["remaining"], 7_500);
    assert_eq!(app.verify_ledger().await["ok"], true);
}
both_backends!(voucher_refunds_go_back_onto_the_voucher);

async fn an_expired_vouchers_payment_is_not_refunded(app: &TestApp) {
    let key = app.test_key().await;
    let batch = issue(
        app,
        json!({"mode": "test", "currency": "ugx", "face_value": 500, "count": 1,
        "expires_at": now() + 2}),
    )
    .await;
    let payment = pay(app, &key, 200, "ugx", &codes(&batch)[0])
        .await
        .expect(200);
    let path = format!(
        "/v1/admin/vouchers?batch={}&status=expired",
        batch["id"].as_str().expect("id")
    );
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    while app.get(&path, &app.operator_token).await.expect(200)["data"]
        .as_array()
        .expect("list")
        .is_empty()
        && tokio::time::Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let balance = crate::mtn_momo::balance(app, &key, "ugx").await;
    // Its unused value was released: a refund can't go back onto it.
    let refund = app
        .post("/v1/refunds", &key, &json!({"payment": payment["id"]}))
        .await;
    assert_eq!(refund.status, 409, "{}", refund.body);
    assert_eq!(refund.body["error"]["code"], "voucher_expired");
    assert_eq!(refund.error_param(), Some("payment"));
    let refunds = app.get("/v1/refunds", &key).await.expect(200);
    assert_eq!(refunds["data"].as_array().expect("data").len(), 0);
    assert_eq!(crate::mtn_momo::balance(app, &key, "ugx").await, balance);
    assert_eq!(outstanding(app, "ugx").await, 0);
    assert_eq!(app.verify_ledger().await["ok"], true);
}
both_backends!(an_expired_vouchers_payment_is_not_refunded);
