use crate::both_backends;
use crate::helpers::TestApp;
use serde_json::{Value, json};

async fn post_hook(
    app: &TestApp,
    url: &str,
    body: &str,
    headers: &[(&str, String)],
) -> (u16, String) {
    let mut request = app
        .client
        .post(url)
        .header("content-type", "application/json")
        .body(body.to_owned());
    for (name, value) in headers {
        request = request.header(*name, value);
    }
    let response = request.send().await.expect("callback sent");
    let status = response.status().as_u16();
    (status, response.text().await.expect("body"))
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs() as i64
}

async fn inbound_log(app: &TestApp, query: &str) -> Vec<Value> {
    let list = app
        .get(
            &format!("/v1/admin/webhooks/inbound?limit=100&{query}"),
            &app.operator_token,
        )
        .await
        .expect(200);
    list["data"].as_array().expect("data").clone()
}

async fn sandbox_outcomes_arrive_by_signed_callback(app: &TestApp) {
    let key = app.test_key().await;
    let later = app.pay(&key, 1_000, "254700000003").await;
    let id = later["id"].as_str().expect("id");
    let done = app
        .wait_for_payment(&key, id, |payment| payment["status"] != "processing")
        .await;
    assert_eq!(done["status"], "succeeded");
    let refused = app.pay(&key, 1_000, "254700000004").await;
    let refused = app
        .wait_for_payment(&key, refused["id"].as_str().expect("id"), |p| {
            p["status"] != "processing"
        })
        .await;
    assert_eq!(refused["failure"]["code"], "cancelled_by_user");

    let log = inbound_log(app, "provider=sandbox").await;
    assert_eq!(log.len(), 2, "{log:?}");
    for entry in &log {
        assert_eq!(entry["verdict"], "verified");
        assert_eq!(entry["outcome"], "processed", "{entry}");
        assert_eq!(entry["decided_by"], "signature");
        let signature = entry["headers"]
            .as_array()
            .expect("headers")
            .iter()
            .find(|pair| pair[0] == "malipo-sandbox-signature");
        assert_eq!(signature.expect("signature header kept")[1], "[redacted]");
    }
    let accounts = app.get("/v1/connector_accounts", &key).await.expect(200);
    let sandbox = &accounts["data"][0];
    assert_eq!(sandbox["provider"], "sandbox");
    assert!(
        sandbox["callback_url"]
            .as_str()
            .expect("url")
            .contains("/v1/hooks/sandbox/ca_")
    );
    assert_eq!(sandbox["has_webhook_secret"], true);
    assert!(sandbox.get("webhook_secret").is_none());
}
both_backends!(sandbox_outcomes_arrive_by_signed_callback);

async fn every_check_has_its_verdict(app: &TestApp) {
    let key = app.test_key().await;
    let secret = "whsec_provider_secret";
    let account = app
        .post(
            "/v1/connector_accounts",
            &key,
            &json!({"provider": "stripe", "name": "Cards", "webhook_secret": secret}),
        )
        .await
        .expect(200);
    let url = account["callback_url"]
        .as_str()
        .expect("callback url")
        .to_owned();
    let body =
        r#"{"id":"evt_1","type":"payment_intent.succeeded","data":{"object":{"id":"pi_1"}}}"#;
    let signed = |body: &str, at: i64| {
        malipo_hooks::stripe_signature_header(secret.as_bytes(), at, body.as_bytes())
    };

    assert_eq!(
        post_hook(
            app,
            &url,
            body,
            &[("stripe-signature", signed(body, now()))]
        )
        .await
        .0,
        200
    );
    assert_eq!(
        post_hook(
            app,
            &url,
            body,
            &[("stripe-signature", signed(body, now()))]
        )
        .await
        .0,
        200,
        "a replay is acknowledged"
    );
    let tampered = body.replace("pi_1", "pi_2");
    assert_eq!(
        post_hook(
            app,
            &url,
            &tampered,
            &[("stripe-signature", signed(body, now()))]
        )
        .await
        .0,
        401
    );
    let stale = r#"{"id":"evt_2"}"#;
    assert_eq!(
        post_hook(
            app,
            &url,
            stale,
            &[("stripe-signature", signed(stale, now() - 1_000))]
        )
        .await
        .0,
        401
    );
    assert_eq!(post_hook(app, &url, r#"{"id":"evt_3"}"#, &[]).await.0, 401);
    let unknown_account = url.rsplit_once('/').expect("account").0.to_owned() + "/ca_nope";
    assert_eq!(post_hook(app, &unknown_account, body, &[]).await.0, 404);
    assert_eq!(
        post_hook(
            app,
            &format!("{}/v1/hooks/nobody/ca_x", app.base),
            body,
            &[]
        )
        .await
        .0,
        404
    );

    let fenced = app
        .post("/v1/connector_accounts", &key, &json!({"provider": "stripe", "webhook_secret": secret, "ip_allowlist": ["10.0.0.0/8"]}))
        .await
        .expect(200);
    let fenced_url = fenced["callback_url"].as_str().expect("url");
    assert_eq!(
        post_hook(
            app,
            fenced_url,
            body,
            &[("stripe-signature", signed(body, now()))]
        )
        .await
        .0,
        403
    );

    let log = inbound_log(app, "").await;
    let verdicts: Vec<_> = log
        .iter()
        .rev()
        .map(|entry| entry["verdict"].as_str().expect("verdict").to_owned())
        .collect();
    assert_eq!(
        verdicts,
        [
            "verified",
            "replayed",
            "bad_signature",
            "stale_timestamp",
            "missing_signature",
            "unknown_account",
            "unknown_provider",
            "ip_refused"
        ]
    );
    let outcomes: Vec<_> = log
        .iter()
        .rev()
        .map(|entry| entry["outcome"].as_str().expect("outcome").to_owned())
        .collect();
    assert_eq!(
        outcomes[0], "unmatched",
        "a verified callback nobody processes yet is kept for reconciliation"
    );
    assert_eq!(outcomes[1], "duplicate");
    assert!(outcomes[2..].iter().all(|outcome| outcome == "rejected"));
    assert_eq!(
        log.last().expect("first")["body"],
        body,
        "the raw body is kept"
    );
    let redacted = log.last().expect("first")["headers"]
        .as_array()
        .expect("headers")
        .iter()
        .any(|pair| pair[0] == "stripe-signature" && pair[1] == "[redacted]");
    assert!(redacted);

    let stats = app
        .get("/v1/admin/webhooks/stats?days=7", &app.operator_token)
        .await
        .expect(200);
    let stripe = stats["providers"]
        .as_array()
        .expect("providers")
        .iter()
        .find(|entry| entry["provider"] == "stripe")
        .expect("stripe")
        .clone();
    assert_eq!(stripe["received"], 7);
    assert_eq!(stripe["by_verdict"]["bad_signature"], 1);
    assert_eq!(stripe["accepted"], 2);
    let filtered = inbound_log(app, "verdict=stale_timestamp").await;
    assert_eq!(filtered.len(), 1);
    assert_eq!(
        app.get("/v1/admin/webhooks/stats?days=0", &app.operator_token)
            .await
            .status,
        400
    );
}
both_backends!(every_check_has_its_verdict);

async fn unsigned_providers_wait_for_confirmation(app: &TestApp) {
    let key = app.test_key().await;
    let missing_secret = app
        .post(
            "/v1/connector_accounts",
            &key,
            &json!({"provider": "paystack"}),
        )
        .await;
    assert_eq!(missing_secret.status, 400);
    assert_eq!(missing_secret.error_param(), Some("webhook_secret"));
    let bad_provider = app
        .post(
            "/v1/connector_accounts",
            &key,
            &json!({"provider": "pesapal"}),
        )
        .await;
    assert_eq!(bad_provider.error_param(), Some("provider"));

    let account = app
        .post(
            "/v1/connector_accounts",
            &key,
            &json!({"provider": "mpesa"}),
        )
        .await
        .expect(200);
    let url = account["callback_url"].as_str().expect("url");
    let body = r#"{"Body":{"stkCallback":{"MerchantRequestID":"29115-34620561-1","CheckoutRequestID":"ws_CO_191220191020363925","ResultCode":1032,"ResultDesc":"Request cancelled by user"}}}"#;
    let (status, answer) = post_hook(app, url, body, &[]).await;
    assert_eq!(status, 200);
    let answer: Value = serde_json::from_str(&answer).expect("Daraja's expected answer");
    assert_eq!(answer, json!({"ResultCode": 0, "ResultDesc": "Accepted"}));
    let log = inbound_log(app, "provider=mpesa").await;
    assert_eq!(log[0]["verdict"], "unsigned");
    assert_eq!(log[0]["outcome"], "awaiting_confirmation");
    assert_eq!(log[0]["event_key"], "id:ws_CO_191220191020363925");

    let providers = app
        .get("/v1/admin/webhooks/providers", &app.operator_token)
        .await
        .expect(200);
    let mpesa = providers
        .as_array()
        .expect("list")
        .iter()
        .find(|p| p["name"] == "mpesa")
        .expect("mpesa")
        .clone();
    assert_eq!(mpesa["confirms_by_status_query"], true);
    assert!(
        mpesa["callback_url_template"]
            .as_str()
            .expect("template")
            .ends_with("/v1/hooks/mpesa/{account}")
    );
    let paystack = providers
        .as_array()
        .expect("list")
        .iter()
        .find(|p| p["name"] == "paystack")
        .expect("paystack")
        .clone();
    assert_eq!(
        paystack["signature_headers"],
        json!(["x-paystack-signature"])
    );
    let health = app
        .get("/v1/admin/webhooks/health", &app.operator_token)
        .await
        .expect(200);
    assert!(
        health
            .as_array()
            .expect("list")
            .iter()
            .all(|entry| entry["status"] == "healthy")
    );
}
both_backends!(unsigned_providers_wait_for_confirmation);

fn with_configured_provider() -> malipo::config::Config {
    // Kept for the life of the test process: the app reads it at start.
    let path = std::env::temp_dir().join(format!(
        "malipo-providers-{}.json",
        uuid::Uuid::new_v4().simple()
    ));
    let definition = r#"[{"name": "pesapal", "display_name": "Pesapal",
        "scheme": {"kind": "hmac_body", "algorithm": "sha256", "encoding": "base64", "header": "x-pesapal-signature"},
        "event_id": [["/OrderTrackingId"]], "success_response": {"status": 200, "content_type": "application/json", "body": "{\"status\":200}"}}]"#;
    std::fs::write(&path, definition).expect("write providers file");
    malipo::config::Config {
        providers_file: path.display().to_string(),
        ..crate::helpers::test_config()
    }
}

async fn configured_providers_are_served(app: &TestApp) {
    let key = app.test_key().await;
    let account = app
        .post(
            "/v1/connector_accounts",
            &key,
            &json!({"provider": "pesapal", "webhook_secret": "pesapal-secret"}),
        )
        .await
        .expect(200);
    let url = account["callback_url"].as_str().expect("url");
    let body = r#"{"OrderTrackingId":"b945e4af-80a5-4ec1-8706-e03f8332fb04","OrderNotificationType":"IPNCHANGE"}"#;
    let signature = malipo_hooks::sign_hmac_body(
        malipo_hooks::HmacAlgorithm::Sha256,
        malipo_hooks::SignatureEncoding::Base64,
        b"pesapal-secret",
        body.as_bytes(),
    );
    let (status, answer) = post_hook(app, url, body, &[("x-pesapal-signature", signature)]).await;
    assert_eq!((status, answer.as_str()), (200, r#"{"status":200}"#));
    assert_eq!(
        post_hook(
            app,
            url,
            body,
            &[("x-pesapal-signature", "bm9wZQ==".into())]
        )
        .await
        .0,
        401
    );
    let log = inbound_log(app, "provider=pesapal").await;
    let verdicts: Vec<_> = log
        .iter()
        .map(|entry| entry["verdict"].as_str().expect("verdict"))
        .collect();
    assert_eq!(verdicts, ["bad_signature", "verified"]);
    assert_eq!(
        log[1]["event_key"],
        "id:b945e4af-80a5-4ec1-8706-e03f8332fb04"
    );
}
both_backends!(
    configured_providers_are_served,
    super::with_configured_provider()
);

async fn provider_credentials_are_encrypted_and_never_shown(app: &TestApp) {
    let key = app.test_key().await;
    let created = app
        .post(
            "/v1/connector_accounts",
            &key,
            &json!({"provider": "mpesa", "name": "Paybill 174379", "credentials": {
                "consumer_key": "ck-visible-nowhere", "consumer_secret": "cs-top-secret-value",
                "shortcode": "174379", "passkey": "pk-top-secret-value"}}),
        )
        .await
        .expect(200);
    assert_eq!(
        created["credential_names"],
        json!(["consumer_key", "consumer_secret", "passkey", "shortcode"])
    );
    let text = created.to_string();
    assert!(
        !text.contains("top-secret") && !text.contains("visible-nowhere"),
        "{text}"
    );
    let listed = app
        .get("/v1/connector_accounts", &key)
        .await
        .expect(200)
        .to_string();
    assert!(!listed.contains("top-secret"));

    // At rest, only ciphertext.
    let id = created["id"].as_str().expect("id");
    let mut reader = app.gateway().store().reader().await.expect("reader");
    let record = reader
        .conn()
        .connector_account(id)
        .await
        .expect("read")
        .expect("exists");
    let sealed = record
        .credentials_encrypted
        .clone()
        .expect("credentials stored");
    assert!(sealed.starts_with("v1:") && !sealed.contains("top-secret"));
    let opened = app
        .gateway()
        .connector_credentials(&record)
        .expect("decrypts");
    assert_eq!(opened["passkey"], "pk-top-secret-value");

    let bad = app
        .post(
            "/v1/connector_accounts",
            &key,
            &json!({"provider": "mpesa", "credentials": {"consumer key": "x"}}),
        )
        .await;
    assert_eq!(bad.status, 400);
    assert_eq!(bad.error_param(), Some("credentials[consumer key]"));
}
both_backends!(provider_credentials_are_encrypted_and_never_shown);
