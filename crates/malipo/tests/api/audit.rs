//! The audit log: every operator and key-management action and every
//! configuration change, recorded with its effect, readable by operators
//! only, and never holding a secret.

use crate::both_backends;
use crate::helpers::TestApp;
use serde_json::{Value, json};

/// Every entry of the audit log, oldest first, walking the pages.
async fn whole_log(app: &TestApp, query: &str) -> Vec<Value> {
    let mut entries: Vec<Value> = Vec::new();
    let mut cursor = String::new();
    loop {
        let page = app
            .get(
                &format!("/v1/admin/audit?limit=3{query}{cursor}"),
                &app.operator_token,
            )
            .await
            .expect(200);
        assert_eq!(page["object"], "list");
        let data = page["data"].as_array().expect("data");
        entries.extend(data.iter().cloned());
        if page["has_more"] != true {
            break;
        }
        let last = data.last().expect("a full page")["id"]
            .as_str()
            .expect("id");
        cursor = format!("&starting_after={last}");
    }
    entries.reverse();
    entries
}

fn actions(entries: &[Value]) -> Vec<&str> {
    entries
        .iter()
        .map(|entry| entry["action"].as_str().expect("action"))
        .collect()
}

fn prefix_of(secret: &str) -> &str {
    &secret[..12]
}

async fn every_change_is_recorded_without_secrets(app: &TestApp) {
    // The first start created the operator token: recorded as the system.
    let log = whole_log(app, "").await;
    assert_eq!(actions(&log), ["operator_token.create"]);
    assert_eq!(log[0]["actor"]["type"], "system");
    assert_eq!(log[0]["source_ip"], Value::Null);

    // An operator onboards a merchant (and its two keys) and adds a key.
    let created = app
        .post(
            "/v1/admin/merchants",
            &app.operator_token,
            &json!({"name": "Duka Ltd"}),
        )
        .await
        .expect(200);
    let merchant = created["merchant"]["id"].as_str().expect("id").to_owned();
    let key = created["test_secret_key"]["secret"]
        .as_str()
        .expect("secret")
        .to_owned();
    let live_secret = created["live_secret_key"]["secret"]
        .as_str()
        .expect("secret")
        .to_owned();
    let extra = app
        .post(
            &format!("/v1/admin/merchants/{merchant}/api_keys"),
            &app.operator_token,
            &json!({"mode": "test", "scopes": ["read_only"]}),
        )
        .await
        .expect(200);

    // The merchant manages its own keys, once under an Idempotency-Key
    // (the replay records nothing more).
    let own = app
        .post_idempotent("/v1/api_keys", &key, &json!({"name": "reporting"}), "key-1")
        .await
        .expect(200);
    let replay = app
        .post_idempotent("/v1/api_keys", &key, &json!({"name": "reporting"}), "key-1")
        .await;
    assert_eq!(replay.headers["idempotent-replayed"], "true");
    let replayed = replay.expect(200);
    assert_eq!(replayed["id"], own["id"]);
    assert!(replayed.get("secret").is_none(), "secrets are never stored");
    let own_id = own["id"].as_str().expect("id");
    app.post(&format!("/v1/api_keys/{own_id}/revoke"), &key, &json!({}))
        .await
        .expect(200);

    // Webhook endpoint: create, update, roll its secret, delete.
    let endpoint = app
        .post(
            "/v1/webhook_endpoints",
            &key,
            &json!({"url": "https://shop.example/hooks", "enabled_events": ["*"]}),
        )
        .await
        .expect(200);
    let endpoint_id = endpoint["id"].as_str().expect("id").to_owned();
    app.post(
        &format!("/v1/webhook_endpoints/{endpoint_id}"),
        &key,
        &json!({"url": "https://shop.example/v2/hooks", "description": "v2"}),
    )
    .await
    .expect(200);
    let rolled = app
        .post(
            &format!("/v1/webhook_endpoints/{endpoint_id}/roll_secret"),
            &key,
            &json!({"expires_in_seconds": 60}),
        )
        .await
        .expect(200);
    app.request(
        reqwest::Method::DELETE,
        &format!("/v1/webhook_endpoints/{endpoint_id}"),
        &key,
        None,
        &[],
    )
    .await
    .expect(200);

    // A provider account with credentials and a webhook secret.
    let account = app
        .post(
            "/v1/connector_accounts",
            &key,
            &json!({"provider": "stripe", "webhook_secret": "whsec_provider_s3cret",
                    "credentials": {"api_key": "rk_test_verysecret", "account": "acct_1"}}),
        )
        .await
        .expect(200);

    // Refused actions change nothing and record nothing.
    assert_eq!(
        app.post(
            "/v1/webhook_endpoints",
            &key,
            &json!({"url": "ftp://x", "enabled_events": ["*"]})
        )
        .await
        .status,
        400
    );
    assert_eq!(
        app.post("/v1/api_keys/key_missing/revoke", &key, &json!({}))
            .await
            .status,
        404
    );

    let log = whole_log(app, "").await;
    assert_eq!(
        actions(&log),
        [
            "operator_token.create",
            "merchant.create",
            "api_key.create",
            "api_key.create",
            "api_key.create",
            "api_key.create",
            "api_key.revoke",
            "webhook_endpoint.create",
            "webhook_endpoint.update",
            "webhook_endpoint.roll_secret",
            "webhook_endpoint.delete",
            "connector_account.create",
        ]
    );

    // Who, from where, in which request.
    for entry in &log[1..] {
        assert_eq!(entry["object"], "audit_entry");
        assert!(entry["id"].as_str().expect("id").starts_with("aud_"));
        assert_eq!(entry["source_ip"], "127.0.0.1");
        assert!(
            entry["request_id"]
                .as_str()
                .expect("request id")
                .starts_with("req_")
        );
        assert_eq!(entry["merchant"], merchant.as_str());
        assert!(entry["created"].is_i64());
    }
    for entry in &log[1..5] {
        assert_eq!(entry["actor"]["type"], "operator");
        assert_eq!(
            entry["actor"]["prefix"],
            prefix_of(&app.operator_token),
            "{entry}"
        );
    }
    let test_key_id = created["test_secret_key"]["id"].as_str().expect("id");
    for entry in &log[5..] {
        assert_eq!(entry["actor"]["type"], "api_key");
        assert_eq!(entry["actor"]["id"], test_key_id);
        assert_eq!(entry["actor"]["prefix"], prefix_of(&key));
    }

    // Which object, before and after.
    assert_eq!(log[1]["object_type"], "merchant");
    assert_eq!(log[1]["after"]["name"], "Duka Ltd");
    assert_eq!(log[1]["before"], Value::Null);
    assert_eq!(log[4]["object_id"], extra["id"]);
    assert_eq!(log[4]["after"]["scopes"], json!(["read_only"]));
    assert_eq!(log[6]["object_id"], own_id);
    assert_eq!(log[6]["before"]["revoked"], Value::Null);
    assert!(log[6]["after"]["revoked"].is_i64());
    let update = &log[8];
    assert_eq!(update["object_id"], endpoint_id.as_str());
    assert_eq!(update["before"]["url"], "https://shop.example/hooks");
    assert_eq!(update["after"]["url"], "https://shop.example/v2/hooks");
    assert_eq!(update["livemode"], false);
    let roll = &log[9];
    assert_eq!(roll["before"]["previous_secret_expires_at"], Value::Null);
    assert!(roll["after"]["previous_secret_expires_at"].is_i64());
    assert_eq!(log[10]["after"], Value::Null);
    assert_eq!(log[10]["before"]["id"], endpoint_id.as_str());
    let connector = &log[11];
    assert_eq!(connector["object_id"], account["id"]);
    assert_eq!(connector["after"]["has_webhook_secret"], true);
    assert_eq!(
        connector["after"]["credential_names"],
        json!(["account", "api_key"])
    );

    // No secret anywhere in the log.
    let text = serde_json::to_string(&log).expect("json");
    for secret in [
        app.operator_token.as_str(),
        key.as_str(),
        live_secret.as_str(),
        extra["secret"].as_str().expect("secret"),
        own["secret"].as_str().expect("secret"),
        endpoint["secret"].as_str().expect("secret"),
        rolled["secret"].as_str().expect("secret"),
        "whsec_provider_s3cret",
        "rk_test_verysecret",
    ] {
        assert!(!text.contains(secret), "the audit log holds a secret");
    }

    // Filters: by action, by object.
    let revokes = whole_log(app, "&action=api_key.revoke").await;
    assert_eq!(revokes.len(), 1);
    assert_eq!(revokes[0]["object_id"], own_id);
    let endpoint_history = whole_log(app, &format!("&object_id={endpoint_id}")).await;
    assert_eq!(
        actions(&endpoint_history),
        [
            "webhook_endpoint.create",
            "webhook_endpoint.update",
            "webhook_endpoint.roll_secret",
            "webhook_endpoint.delete",
        ]
    );
    let none = app
        .get("/v1/admin/audit?action=payment.create", &app.operator_token)
        .await
        .expect(200);
    assert_eq!(none["data"], json!([]));
    // Newer entries: ending_before walks back towards the newest.
    let newest_two = app
        .get(
            &format!(
                "/v1/admin/audit?limit=2&ending_before={}",
                log[9]["id"].as_str().expect("id")
            ),
            &app.operator_token,
        )
        .await
        .expect(200);
    assert_eq!(newest_two["data"][0]["id"], log[11]["id"]);
    assert_eq!(newest_two["data"][1]["id"], log[10]["id"]);
}
both_backends!(every_change_is_recorded_without_secrets);

async fn only_operators_read_the_log(app: &TestApp) {
    let key = app.test_key().await;
    let refused = app.get("/v1/admin/audit", &key).await;
    assert_eq!(refused.status, 401);
    assert_eq!(refused.body["error"]["type"], "authentication_error");
    let bad = app
        .get("/v1/admin/audit?action=", &app.operator_token)
        .await;
    assert_eq!(bad.status, 400);
    assert_eq!(bad.error_param(), Some("action"));
    let bad = app
        .get("/v1/admin/audit?limit=101", &app.operator_token)
        .await;
    assert_eq!(bad.error_param(), Some("limit"));
    // The endpoint is in the OpenAPI document.
    let spec = app.get("/openapi.json", "").await.expect(200);
    assert!(spec["paths"]["/v1/admin/audit"]["get"].is_object());
    assert!(spec["components"]["schemas"]["AuditEntry"].is_object());
}
both_backends!(only_operators_read_the_log);
