use crate::both_backends;
use crate::helpers::TestApp;
use serde_json::json;

async fn keys_authenticate_and_scopes_limit(app: &TestApp) {
    let missing = app.get("/v1/payments", "").await;
    assert_eq!(missing.status, 401);
    assert_eq!(missing.body["error"]["type"], "authentication_error");
    assert_eq!(
        app.get("/v1/payments", "sk_test_notarealkey").await.status,
        401
    );
    assert_eq!(app.get("/v1/payments", "garbage").await.status, 401);

    let key = app.test_key().await;
    let read_only = app
        .post(
            "/v1/api_keys",
            &key,
            &json!({"name": "reporting", "scopes": ["read_only"]}),
        )
        .await
        .expect(200);
    let read_only_secret = read_only["secret"]
        .as_str()
        .expect("secret shown at creation");
    assert!(read_only_secret.starts_with("sk_test_"));
    assert_eq!(app.get("/v1/payments", read_only_secret).await.status, 200);
    let refused = app
        .post(
            "/v1/payments",
            read_only_secret,
            &json!({"amount": 100, "currency": "kes", "method": "sandbox"}),
        )
        .await;
    assert_eq!(refused.status, 403);
    assert_eq!(refused.body["error"]["type"], "permission_error");

    // Listing never shows a secret again.
    let keys = app.get("/v1/api_keys", &key).await.expect(200);
    assert_eq!(keys["data"].as_array().expect("keys").len(), 2);
    assert!(
        keys["data"]
            .as_array()
            .expect("keys")
            .iter()
            .all(|key| key.get("secret").is_none())
    );

    let id = read_only["id"].as_str().expect("id");
    let revoked = app
        .post(&format!("/v1/api_keys/{id}/revoke"), &key, &json!({}))
        .await
        .expect(200);
    assert!(revoked["revoked"].is_i64());
    assert_eq!(app.get("/v1/payments", read_only_secret).await.status, 401);
}
both_backends!(keys_authenticate_and_scopes_limit);

async fn test_and_live_are_separate_worlds(app: &TestApp) {
    let (_, test_key, live_key) = app.merchant().await;
    let payment = app.pay(&test_key, 1000, "254700000000").await;
    assert_eq!(payment["livemode"], false);
    let id = payment["id"].as_str().expect("id");
    assert_eq!(
        app.get(&format!("/v1/payments/{id}"), &live_key)
            .await
            .status,
        404
    );
    assert_eq!(
        app.get("/v1/payments", &live_key).await.expect(200)["data"]
            .as_array()
            .expect("list")
            .len(),
        0
    );
    let live_balance = app.get("/v1/balance", &live_key).await.expect(200);
    assert_eq!(live_balance["available"], json!([]));
    // Another merchant sees nothing either.
    let stranger = app.test_key().await;
    assert_eq!(
        app.get(&format!("/v1/payments/{id}"), &stranger)
            .await
            .status,
        404
    );
}
both_backends!(test_and_live_are_separate_worlds);

async fn operator_endpoints_need_the_operator_token(app: &TestApp) {
    let key = app.test_key().await;
    assert_eq!(app.get("/v1/admin/merchants", &key).await.status, 401);
    assert_eq!(app.get("/v1/admin/merchants", "op_wrong").await.status, 401);
    assert_eq!(
        app.get("/v1/admin/merchants", &app.operator_token)
            .await
            .status,
        200
    );
}
both_backends!(operator_endpoints_need_the_operator_token);
