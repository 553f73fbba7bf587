use crate::both_backends;
use crate::helpers::TestApp;
use serde_json::json;

async fn operators_onboard_merchants_and_read_any_payment(app: &TestApp) {
    let created = app
        .post(
            "/v1/admin/merchants",
            &app.operator_token,
            &json!({"name": "Mama Mboga", "fee_schedules": {"sandbox": {"basis_points": 150, "fixed": 10}}}),
        )
        .await
        .expect(200);
    let merchant_id = created["merchant"]["id"].as_str().expect("id");
    let key = created["test_secret_key"]["secret"]
        .as_str()
        .expect("secret");
    assert!(
        created["live_secret_key"]["secret"]
            .as_str()
            .expect("live")
            .starts_with("sk_live_")
    );

    // The merchant's own fee schedule applies: 1.5% of 10,000 + 10.
    let payment = app.pay(key, 10_000, "254700000000").await;
    assert_eq!(payment["fee"], 160);
    assert_eq!(payment["net"], 9_840);

    let fetched = app
        .get(
            &format!("/v1/admin/merchants/{merchant_id}"),
            &app.operator_token,
        )
        .await
        .expect(200);
    assert_eq!(fetched["name"], "Mama Mboga");
    let listed = app
        .get("/v1/admin/merchants?limit=100", &app.operator_token)
        .await
        .expect(200);
    assert!(
        listed["data"]
            .as_array()
            .expect("list")
            .iter()
            .any(|merchant| merchant["id"] == merchant_id)
    );

    let id = payment["id"].as_str().expect("id");
    let seen = app
        .get(&format!("/v1/admin/payments/{id}"), &app.operator_token)
        .await
        .expect(200);
    assert_eq!(seen["id"], id);

    let live_key = app
        .post(
            &format!("/v1/admin/merchants/{merchant_id}/api_keys"),
            &app.operator_token,
            &json!({"mode": "live", "scopes": ["read_only"]}),
        )
        .await
        .expect(200);
    assert!(
        live_key["secret"]
            .as_str()
            .expect("secret")
            .starts_with("sk_live_")
    );
    assert_eq!(live_key["scopes"], json!(["read_only"]));

    let bad = app
        .post(
            "/v1/admin/merchants",
            &app.operator_token,
            &json!({"name": ""}),
        )
        .await;
    assert_eq!(bad.status, 400);
    assert_eq!(bad.error_param(), Some("name"));
    let missing = app
        .get("/v1/admin/merchants/mch_nope", &app.operator_token)
        .await;
    assert_eq!(missing.status, 404);
}
both_backends!(operators_onboard_merchants_and_read_any_payment);
