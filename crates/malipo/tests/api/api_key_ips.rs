//! Per-key address allow-lists: a secret key with `allowed_ips` is
//! accepted only from those addresses and blocks (403
//! `api_key_ip_not_allowed` otherwise, naming nothing secret, changing
//! nothing); the list is set when the key is created, replaced by the
//! merchant or an operator, validated at the edge, and audited.

use crate::both_backends;
use crate::helpers::{Response, TestApp, test_config};
use malipo::config::Config;
use serde_json::{Value, json};

#[track_caller]
fn assert_refused_here(response: &Response, secret: &str) {
    assert_eq!(response.status, 403, "{}", response.body);
    assert_eq!(response.error_param(), None);
    let error = &response.body["error"];
    assert_eq!(error["type"], "permission_error");
    assert_eq!(error["code"], "api_key_ip_not_allowed");
    let message = error["message"].as_str().expect("message");
    assert!(
        message.contains("127.0.0.1") && message.contains("allowed_ips"),
        "{message}"
    );
    // Neither the key nor its list is repeated to the caller.
    assert!(!response.body.to_string().contains(secret));
    assert!(!message.contains("10.0.0.0") && !message.contains("192.0.2"));
}

fn secret(key: &Value) -> String {
    key["secret"].as_str().expect("secret").to_owned()
}

async fn keys_allowed_only_from_their_list(app: &TestApp) {
    let (merchant, full_key, _) = app.merchant().await;

    // Created with a list that excludes this test (it calls from 127.0.0.1).
    let fenced = app
        .post(
            "/v1/api_keys",
            &full_key,
            &json!({"name": "office", "allowed_ips": ["10.0.0.0/8", "2001:db8::/32"]}),
        )
        .await
        .expect(200);
    assert_eq!(
        fenced["allowed_ips"],
        json!(["10.0.0.0/8", "2001:db8::/32"])
    );
    let fenced_secret = secret(&fenced);
    assert_refused_here(
        &app.get("/v1/balance", &fenced_secret).await,
        &fenced_secret,
    );
    // A refused write changes nothing.
    let payment = app
        .post(
            "/v1/payments",
            &fenced_secret,
            &json!({"amount": 1_000, "currency": "kes", "method": "sandbox",
                    "customer": {"phone": "254700000000"}}),
        )
        .await;
    assert_refused_here(&payment, &fenced_secret);
    let payments = app.get("/v1/payments", &full_key).await.expect(200);
    assert_eq!(payments["data"], json!([]));

    // A list holding this address (entries in canonical form) lets it in.
    let local = app
        .post(
            "/v1/api_keys",
            &full_key,
            &json!({"allowed_ips": ["::ffff:127.0.0.1", "::1", "127.0.0.1"]}),
        )
        .await
        .expect(200);
    assert_eq!(local["allowed_ips"], json!(["127.0.0.1", "::1"]));
    app.get("/v1/balance", &secret(&local)).await.expect(200);
    // Keys without a list (the merchant's first keys) work from anywhere.
    assert_eq!(
        app.get("/v1/api_keys?limit=100", &full_key)
            .await
            .expect(200)["data"]
            .as_array()
            .expect("keys")
            .iter()
            .filter(|key| key["allowed_ips"] == json!([]))
            .count(),
        1,
        "the default test key has an empty list"
    );

    // The merchant replaces a list: `[]` opens the key, a list closes it.
    let id = fenced["id"].as_str().expect("id");
    let opened = app
        .post(
            &format!("/v1/api_keys/{id}"),
            &full_key,
            &json!({"allowed_ips": []}),
        )
        .await
        .expect(200);
    assert_eq!(opened["allowed_ips"], json!([]));
    assert!(opened.get("secret").is_none(), "{opened}");
    app.get("/v1/balance", &fenced_secret).await.expect(200);
    app.post(
        &format!("/v1/api_keys/{id}"),
        &full_key,
        &json!({"allowed_ips": ["192.0.2.0/24"]}),
    )
    .await
    .expect(200);
    assert_refused_here(
        &app.get("/v1/balance", &fenced_secret).await,
        &fenced_secret,
    );
    // A key that refuses this address can't change its own list from here.
    assert_refused_here(
        &app.post(
            &format!("/v1/api_keys/{id}"),
            &fenced_secret,
            &json!({"allowed_ips": []}),
        )
        .await,
        &fenced_secret,
    );

    // The operator can too (e.g. for a merchant that locked itself out).
    let unlocked = app
        .post(
            &format!("/v1/admin/merchants/{merchant}/api_keys/{id}"),
            &app.operator_token,
            &json!({"allowed_ips": ["127.0.0.0/8"]}),
        )
        .await
        .expect(200);
    assert_eq!(unlocked["allowed_ips"], json!(["127.0.0.0/8"]));
    app.get("/v1/balance", &fenced_secret).await.expect(200);
    let created = app
        .post(
            &format!("/v1/admin/merchants/{merchant}/api_keys"),
            &app.operator_token,
            &json!({"mode": "live", "allowed_ips": ["198.51.100.7"]}),
        )
        .await
        .expect(200);
    assert_eq!(created["allowed_ips"], json!(["198.51.100.7"]));
    assert_refused_here(
        &app.get("/v1/balance", &secret(&created)).await,
        &secret(&created),
    );

    // Every change is in the audit log, before and after, without secrets.
    let audit = app
        .get(
            &format!("/v1/admin/audit?action=api_key.update&object_id={id}"),
            &app.operator_token,
        )
        .await
        .expect(200);
    let entries = audit["data"].as_array().expect("entries");
    assert_eq!(entries.len(), 3, "{audit}");
    // Newest first: the operator's change, then the merchant's two.
    assert_eq!(entries[0]["actor"]["type"], "operator");
    assert_eq!(entries[0]["before"]["allowed_ips"], json!(["192.0.2.0/24"]));
    assert_eq!(entries[0]["after"]["allowed_ips"], json!(["127.0.0.0/8"]));
    assert_eq!(entries[1]["actor"]["type"], "api_key");
    assert_eq!(entries[1]["source_ip"], "127.0.0.1");
    assert_eq!(entries[1]["before"]["allowed_ips"], json!([]));
    assert_eq!(entries[1]["after"]["allowed_ips"], json!(["192.0.2.0/24"]));
    assert_eq!(entries[2]["merchant"], merchant.as_str());
    assert_eq!(
        entries[2]["before"]["allowed_ips"],
        json!(["10.0.0.0/8", "2001:db8::/32"])
    );
    let created_entry = app
        .get(
            &format!("/v1/admin/audit?action=api_key.create&object_id={id}"),
            &app.operator_token,
        )
        .await
        .expect(200);
    assert_eq!(
        created_entry["data"][0]["after"]["allowed_ips"],
        json!(["10.0.0.0/8", "2001:db8::/32"])
    );
    let log = app
        .get("/v1/admin/audit?limit=100", &app.operator_token)
        .await
        .expect(200)
        .to_string();
    assert!(!log.contains(&fenced_secret) && !log.contains(&secret(&local)));
}
both_backends!(keys_allowed_only_from_their_list);

async fn bad_lists_are_refused_and_change_nothing(app: &TestApp) {
    let (merchant, full_key, _) = app.merchant().await;
    let keys_before = app
        .get("/v1/api_keys?limit=100", &full_key)
        .await
        .expect(200);
    for (list, param) in [
        (json!(["10.0.0.1/8"]), "allowed_ips[0]"),
        (json!(["127.0.0.1", "banana"]), "allowed_ips[1]"),
        (json!(["10.0.0.0/33"]), "allowed_ips[0]"),
        (json!(["' OR 1=1 --"]), "allowed_ips[0]"),
        (json!(vec!["10.0.0.1"; 101]), "allowed_ips"),
    ] {
        let refused = app
            .post("/v1/api_keys", &full_key, &json!({"allowed_ips": list}))
            .await;
        assert_eq!(refused.status, 400, "{list}: {}", refused.body);
        assert_eq!(refused.error_param(), Some(param), "{list}");
    }
    let wrong_type = app
        .post(
            "/v1/api_keys",
            &full_key,
            &json!({"allowed_ips": "10.0.0.0/8"}),
        )
        .await;
    assert_eq!(wrong_type.status, 400, "{}", wrong_type.body);
    assert_eq!(
        app.get("/v1/api_keys?limit=100", &full_key)
            .await
            .expect(200),
        keys_before,
        "no key was created"
    );

    let key = app
        .post(
            "/v1/api_keys",
            &full_key,
            &json!({"allowed_ips": ["127.0.0.1"]}),
        )
        .await
        .expect(200);
    let id = key["id"].as_str().expect("id");
    let refused = app
        .post(
            &format!("/v1/api_keys/{id}"),
            &full_key,
            &json!({"allowed_ips": ["10.0.0.1/8"]}),
        )
        .await;
    assert_eq!(refused.status, 400);
    assert_eq!(refused.error_param(), Some("allowed_ips[0]"));
    let missing = app
        .post(&format!("/v1/api_keys/{id}"), &full_key, &json!({}))
        .await;
    assert_eq!(missing.status, 400, "{}", missing.body);
    assert_eq!(missing.error_param(), Some("allowed_ips"));
    let unknown = app
        .post(
            "/v1/api_keys/key_doesnotexist",
            &full_key,
            &json!({"allowed_ips": []}),
        )
        .await;
    assert_eq!(unknown.status, 404);
    // Another merchant's key is not found either, even by id.
    let (_, other_key, _) = app.merchant().await;
    assert_eq!(
        app.post(
            &format!("/v1/api_keys/{id}"),
            &other_key,
            &json!({"allowed_ips": []})
        )
        .await
        .status,
        404
    );
    // Still unchanged, and nothing was audited for the refusals.
    let listed = app
        .get("/v1/api_keys?limit=100", &full_key)
        .await
        .expect(200);
    let stored = listed["data"]
        .as_array()
        .expect("keys")
        .iter()
        .find(|listed| listed["id"] == id)
        .expect("the key");
    assert_eq!(stored["allowed_ips"], json!(["127.0.0.1"]));
    let audit = app
        .get(
            &format!("/v1/admin/audit?action=api_key.update&object_id={id}"),
            &app.operator_token,
        )
        .await
        .expect(200);
    assert_eq!(audit["data"], json!([]));

    // A revoked key's list can't be changed.
    app.post(&format!("/v1/api_keys/{id}/revoke"), &full_key, &json!({}))
        .await
        .expect(200);
    let revoked = app
        .post(
            &format!("/v1/admin/merchants/{merchant}/api_keys/{id}"),
            &app.operator_token,
            &json!({"allowed_ips": []}),
        )
        .await;
    assert_eq!(revoked.status, 400, "{}", revoked.body);
    assert_eq!(revoked.error_param(), Some("id"));
}
both_backends!(bad_lists_are_refused_and_change_nothing);

fn limited() -> Config {
    Config {
        rate_limit_per_key_per_second: 1,
        rate_limit_per_ip_per_second: 0,
        rate_limit_burst: 5,
        ..test_config()
    }
}

/// Refusals by address are 403s, not 429s, and don't spend the key's rate
/// limit: someone holding a stolen key elsewhere can't use up its owner's
/// budget.
async fn refused_addresses_spend_no_rate_limit(app: &TestApp) {
    let (merchant, _, _) = app.merchant().await;
    let key = app
        .post(
            &format!("/v1/admin/merchants/{merchant}/api_keys"),
            &app.operator_token,
            &json!({"mode": "test", "allowed_ips": ["10.0.0.0/8"]}),
        )
        .await
        .expect(200);
    let key_secret = secret(&key);
    for _ in 0..8 {
        assert_refused_here(&app.get("/v1/balance", &key_secret).await, &key_secret);
    }
    let id = key["id"].as_str().expect("id");
    app.post(
        &format!("/v1/admin/merchants/{merchant}/api_keys/{id}"),
        &app.operator_token,
        &json!({"allowed_ips": ["127.0.0.1"]}),
    )
    .await
    .expect(200);
    // The whole burst of 5 is still there (the operator's calls have
    // their own bucket).
    for _ in 0..5 {
        app.get("/v1/balance", &key_secret).await.expect(200);
    }
    assert_eq!(app.get("/v1/balance", &key_secret).await.status, 429);
}
both_backends!(refused_addresses_spend_no_rate_limit, super::limited());
