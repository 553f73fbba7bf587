use crate::both_backends;
use crate::helpers::TestApp;

async fn health_readiness_metrics_and_docs(app: &TestApp) {
    assert_eq!(app.get("/healthz", "").await.expect(200)["status"], "ok");
    assert_eq!(app.get("/readyz", "").await.expect(200)["status"], "ready");
    let key = app.test_key().await;
    app.pay(&key, 1000, "254700000000").await;
    let metrics = app.get("/metrics", "").await.expect(200);
    let text = metrics.as_str().expect("prometheus text");
    assert!(text.contains("malipo_http_requests_total"), "{text}");
    assert!(text.contains("malipo_payments_by_status"), "{text}");
    assert!(text.contains("malipo_ledger_transfers_total"), "{text}");
    let openapi = app.get("/openapi.json", "").await.expect(200);
    assert!(
        openapi["openapi"]
            .as_str()
            .expect("version")
            .starts_with("3.1")
    );
    assert!(openapi["paths"]["/v1/payments"]["post"].is_object());
    assert!(openapi["paths"]["/v1/refunds"]["post"].is_object());
    assert!(openapi["paths"]["/v1/payments/{id}/capture"]["post"].is_object());
    let schemas = &openapi["components"]["schemas"];
    assert!(schemas["CreatePayment"]["properties"]["capture_method"].is_object());
    assert!(schemas["CapturePayment"]["properties"]["amount_to_capture"].is_object());
    assert!(schemas["Payment"]["properties"]["amount_capturable"].is_object());
    assert!(openapi["paths"]["/v1/conversions/quote"]["post"].is_object());
    assert!(openapi["paths"]["/v1/rates"]["get"].is_object());
    assert!(openapi["paths"]["/v1/currencies"]["get"].is_object());
    for (path, method) in [
        ("/v1/trading/prices", "get"),
        ("/v1/trading/quotes", "post"),
        ("/v1/trading/buy", "post"),
        ("/v1/trading/sell", "post"),
        ("/v1/trading/trades", "get"),
        ("/v1/trading/trades/{id}", "get"),
        ("/v1/trading/trades/{id}/cancel", "post"),
        ("/v1/admin/trading/reserves", "post"),
        ("/v1/admin/trading/reserves", "get"),
    ] {
        assert!(
            openapi["paths"][path][method].is_object(),
            "{method} {path}"
        );
    }
    assert!(schemas["CreatePayment"]["properties"]["conversion_quote"].is_object());
    assert!(schemas["ConversionQuote"]["properties"]["rate"].is_object());
    assert!(schemas["PaymentConversion"]["properties"]["to_amount"].is_object());
    assert!(schemas["CreateTrade"]["properties"]["payment"].is_object());
    for field in ["payment", "next_action", "expires_at", "failure_code"] {
        assert!(schemas["Trade"]["properties"][field].is_object(), "{field}");
    }
    let docs = app
        .client
        .get(format!("{}/docs/", app.base))
        .send()
        .await
        .expect("docs");
    assert_eq!(docs.status(), 200);
    assert!(
        docs.text().await.expect("html").contains("swagger"),
        "docs UI served from the binary"
    );
}
both_backends!(health_readiness_metrics_and_docs);

async fn unknown_routes_answer_the_error_shape(app: &TestApp) {
    let response = app.get("/v1/nothing", "").await;
    assert_eq!(response.status, 404);
    assert_eq!(response.body["error"]["code"], "route_missing");
}
both_backends!(unknown_routes_answer_the_error_shape);
