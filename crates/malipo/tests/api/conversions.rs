//! Currencies, rates and conversion payments end to end: the asset table,
//! rates from a static table and from the HTTP source against its
//! simulator, stale rates refused, locked quotes with their rounding, a
//! KES payment credited in USD with the ledger balanced in both assets,
//! expired and reused quotes refused.

use crate::both_backends;
use crate::helpers::{Backend, TestApp, spawn_app_with, test_config};
use malipo::config::Config;
use malipo_gateway::rates::{RateSourceConfig, RateSourceKind};
use malipo_simulators::{Provider, SimulatorConfig};
use serde_json::{Value, json};
use std::time::Duration;

pub(crate) fn static_source(
    name: &str,
    rates: &[(&str, &str)],
    as_of: i64,
    max_age: u64,
) -> RateSourceConfig {
    RateSourceConfig {
        name: name.into(),
        kind: RateSourceKind::Static,
        base: "usd".into(),
        rates: rates
            .iter()
            .map(|(code, rate)| ((*code).to_owned(), (*rate).to_owned()))
            .collect(),
        as_of,
        url: String::new(),
        max_age_seconds: max_age,
        refresh_ms: 0,
        timeout_ms: 2_000,
    }
}

/// A fresh static table (units per USD), and an "old" source whose TZS
/// rate went stale long ago.
fn conversion_config() -> Config {
    Config {
        rate_sources: vec![
            static_source(
                "static",
                &[
                    ("kes", "129.5"),
                    ("ugx", "3700"),
                    ("btc", "0.0000105"),
                    ("eth", "0.00025"),
                ],
                0,
                0,
            ),
            static_source("old", &[("tzs", "2650")], 1_000_000, 60),
        ],
        conversion_spread_basis_points: 100,
        ..test_config()
    }
}

fn short_quotes_config() -> Config {
    Config {
        conversion_quote_lifetime_seconds: 1,
        ..conversion_config()
    }
}

async fn quote(app: &TestApp, key: &str, body: Value) -> crate::helpers::Response {
    app.post("/v1/conversions/quote", key, &body).await
}

/// A merchant's available balance in `currency`.
async fn available(app: &TestApp, key: &str, currency: &str) -> i64 {
    crate::mtn_momo::balance(app, key, currency).await.0
}

/// (debits, credits) posted on an account.
async fn account(app: &TestApp, id: &str) -> (u128, u128) {
    let mut reader = app.gateway().store().reader().await.expect("reader");
    let accounts = reader
        .conn()
        .ledger_accounts_with_prefix(id)
        .await
        .expect("accounts");
    accounts
        .iter()
        .find(|account| account.id == id)
        .map(|account| (account.debits_posted, account.credits_posted))
        .unwrap_or((0, 0))
}

async fn currencies_are_listed(app: &TestApp) {
    let key = app.test_key().await;
    let list = app.get("/v1/currencies", &key).await.expect(200);
    assert_eq!(list["object"], "list");
    assert_eq!(list["has_more"], false);
    let data = list["data"].as_array().expect("data");
    let find = |code: &str| -> Value {
        data.iter()
            .find(|currency| currency["code"] == code)
            .cloned()
            .unwrap_or_else(|| panic!("{code} listed"))
    };
    for (code, kind, exponent) in [
        ("kes", "fiat", 2),
        ("ugx", "fiat", 0),
        ("jpy", "fiat", 0),
        ("kwd", "fiat", 3),
        ("usd", "fiat", 2),
        ("btc", "crypto", 8),
        ("eth", "crypto", 18),
        ("sol", "crypto", 9),
        ("trx", "crypto", 6),
        ("usdt", "crypto", 6),
        ("mtt", "crypto", 18),
    ] {
        let currency = find(code);
        assert_eq!(currency["object"], "currency");
        assert_eq!(currency["kind"], kind, "{code}");
        assert_eq!(currency["exponent"], exponent, "{code}");
    }
    assert_eq!(find("usd")["maximum"], "99999900");
    assert_eq!(find("eth")["maximum"], "10000000000000000000");
    assert!(data.len() > 150, "every ISO 4217 currency: {}", data.len());
    // A code the table knows is accepted by payments.
    let payment = app
        .post(
            "/v1/payments",
            &key,
            &json!({"amount": 1_000, "currency": "JPY", "method": "sandbox",
                "customer": {"phone": "254700000000"}}),
        )
        .await
        .expect(200);
    assert_eq!(payment["currency"], "jpy");
}
both_backends!(currencies_are_listed);

async fn rates_show_their_source_and_staleness(app: &TestApp) {
    let key = app.test_key().await;
    let rates = app.get("/v1/rates?base=usd", &key).await.expect(200);
    let find = |code: &str| -> Value {
        rates["data"]
            .as_array()
            .expect("data")
            .iter()
            .find(|rate| rate["currency"] == code)
            .cloned()
            .unwrap_or_else(|| panic!("{code} in {rates}"))
    };
    let kes = find("kes");
    assert_eq!(kes["object"], "rate");
    assert_eq!(kes["base"], "usd");
    assert_eq!(kes["rate"], "129.5");
    assert_eq!(kes["source"], "static");
    assert_eq!(kes["stale"], false);
    let tzs = find("tzs");
    assert_eq!(
        (tzs["source"].clone(), tzs["stale"].clone()),
        (json!("old"), json!(true))
    );
    assert_eq!(tzs["as_of"], 1_000_000);

    // Another base crosses the table; a filter narrows it.
    let in_kes = app
        .get("/v1/rates?base=KES&currencies=ugx,usd", &key)
        .await
        .expect(200);
    let data = in_kes["data"].as_array().expect("data");
    assert_eq!(data.len(), 2, "{in_kes}");
    assert!(data.iter().any(|rate| {
        rate["currency"] == "ugx"
            && rate["rate"]
                .as_str()
                .expect("rate")
                .starts_with("28.571428")
    }));
    let bad = app.get("/v1/rates?base=xyz", &key).await;
    assert_eq!(bad.status, 400);
    assert_eq!(bad.error_param(), Some("base"));

    // A stale rate is shown, never quoted.
    let stale = quote(
        app,
        &key,
        json!({"from_currency": "usd", "to_currency": "tzs", "amount": 1_000}),
    )
    .await;
    assert_eq!(stale.status, 503, "{}", stale.body);
    assert_eq!(stale.body["error"]["code"], "rate_stale");
    // A pair no source prices names the currency.
    let unknown = quote(
        app,
        &key,
        json!({"from_currency": "kes", "to_currency": "zmw", "amount": 1_000}),
    )
    .await;
    assert_eq!(unknown.status, 400);
    assert_eq!(unknown.body["error"]["code"], "rate_unavailable");
    assert_eq!(unknown.error_param(), Some("to_currency"));
}
both_backends!(
    rates_show_their_source_and_staleness,
    super::conversion_config()
);

async fn quotes_are_validated(app: &TestApp) {
    let key = app.test_key().await;
    for (body, param) in [
        (
            json!({"to_currency": "usd", "amount": 100}),
            "from_currency",
        ),
        (
            json!({"from_currency": "kes", "to_currency": "xyz", "amount": 100}),
            "to_currency",
        ),
        (
            json!({"from_currency": "kes", "to_currency": "kes", "amount": 100}),
            "to_currency",
        ),
        (
            json!({"from_currency": "kes", "to_currency": "usd"}),
            "amount",
        ),
        (
            json!({"from_currency": "kes", "to_currency": "usd", "amount": 0}),
            "amount",
        ),
        (
            json!({"from_currency": "kes", "to_currency": "usd", "amount": 100, "to_amount": 1}),
            "to_amount",
        ),
        // KES 1.00 buys less than a US cent.
        (
            json!({"from_currency": "kes", "to_currency": "usd", "amount": 100}),
            "amount",
        ),
        (
            json!({"from_currency": "kes", "to_currency": "usd", "amount": 10_000_000_001u64}),
            "amount",
        ),
        // More ETH than one payment may credit (10 ETH).
        (
            json!({"from_currency": "usd", "to_currency": "eth", "amount": 9_000_000}),
            "amount",
        ),
        // More USD than one KES payment may carry.
        (
            json!({"from_currency": "kes", "to_currency": "usd", "to_amount": 10_000_000_000u64}),
            "to_amount",
        ),
    ] {
        let refused = quote(app, &key, body.clone()).await;
        assert_eq!(refused.status, 400, "{body}: {}", refused.body);
        assert_eq!(refused.error_param(), Some(param), "{body}");
    }
    let missing = app.get("/v1/conversions/quotes/cq_nope", &key).await;
    assert_eq!(missing.status, 404);
}
both_backends!(quotes_are_validated, super::conversion_config());

async fn a_kes_payment_credits_the_merchant_in_usd(app: &TestApp) {
    let (merchant, key, _) = app.merchant().await;
    let locked = quote(
        app,
        &key,
        json!({"from_currency": "KES", "to_currency": "usd", "amount": 150_000}),
    )
    .await
    .expect(200);
    assert_eq!(locked["object"], "conversion_quote");
    assert!(locked["id"].as_str().expect("id").starts_with("cq_"));
    // Mid 1/129.5 less 1%, cut to 12 digits; KES 1,500.00 buys
    // USD 11.46718... -> 1146 cents (rounded down).
    assert_eq!(locked["rate"], "0.00764478764478");
    assert!(
        locked["mid_rate"]
            .as_str()
            .expect("mid")
            .starts_with("0.0077220077220077")
    );
    assert_eq!(locked["spread_basis_points"], 100);
    assert_eq!(
        (locked["from_amount"].clone(), locked["to_amount"].clone()),
        (json!(150_000), json!(1_146))
    );
    assert_eq!(locked["source"], "static");
    assert_eq!(locked["payment"], Value::Null);
    let created = locked["created"].as_i64().expect("created");
    assert_eq!(locked["expires_at"].as_i64().expect("expiry") - created, 60);

    // The quote's amount and currency need not be repeated.
    let paid = app
        .post(
            "/v1/payments",
            &key,
            &json!({"method": "sandbox", "customer": {"phone": "254700000000"},
                "conversion_quote": locked["id"]}),
        )
        .await
        .expect(200);
    assert_eq!(paid["status"], "succeeded");
    assert_eq!(
        (paid["amount"].clone(), paid["currency"].clone()),
        (json!(150_000), json!("kes"))
    );
    assert_eq!(paid["fee"], 0);
    let conversion = &paid["conversion"];
    assert_eq!(conversion["quote"], locked["id"]);
    assert_eq!(conversion["to_currency"], "usd");
    assert_eq!(conversion["rate"], "0.00764478764478");
    // 2.9% of 1146 cents = 33.23 -> 33; the merchant nets 1113 cents.
    assert_eq!(
        (
            conversion["to_amount"].clone(),
            conversion["fee"].clone(),
            conversion["net"].clone()
        ),
        (json!(1_146), json!(33), json!(1_113))
    );

    // The merchant has USD, no KES; the balance transaction is in USD.
    assert_eq!(available(app, &key, "usd").await, 1_113);
    assert_eq!(available(app, &key, "kes").await, 0);
    let transactions = app.get("/v1/balance_transactions", &key).await.expect(200);
    let transaction = &transactions["data"][0];
    assert_eq!(
        (
            transaction["currency"].clone(),
            transaction["amount"].clone(),
            transaction["fee"].clone()
        ),
        (json!("usd"), json!(1_146), json!(33))
    );

    // Both legs in the ledger, each asset balanced: KES from the sandbox's
    // clearing account into the platform's KES FX position, USD out of
    // its USD FX position to the merchant and the fees.
    assert_eq!(account(app, "test/platform/kes/fx").await, (0, 150_000));
    assert_eq!(account(app, "test/platform/usd/fx").await, (1_146, 0));
    assert_eq!(
        account(app, &format!("test/merchant/{merchant}/usd/available")).await,
        (0, 1_113)
    );
    let report = app.verify_ledger().await;
    assert_eq!(report["ok"], true, "{report}");
    for asset in ["kes", "usd"] {
        let totals = report["assets"]
            .as_array()
            .expect("assets")
            .iter()
            .find(|totals| totals["asset"] == asset)
            .unwrap_or_else(|| panic!("{asset} in {report}"))
            .clone();
        assert_eq!(totals["balanced"], true, "{totals}");
    }

    // The quote is used: it names the payment, and pays once.
    let used = app
        .get(
            &format!(
                "/v1/conversions/quotes/{}",
                locked["id"].as_str().expect("id")
            ),
            &key,
        )
        .await
        .expect(200);
    assert_eq!(used["payment"], paid["id"]);
    let again = app
        .post(
            "/v1/payments",
            &key,
            &json!({"method": "sandbox", "customer": {"phone": "254700000000"},
                "conversion_quote": locked["id"]}),
        )
        .await;
    assert_eq!(again.status, 400);
    assert_eq!(again.error_param(), Some("conversion_quote"));
    assert_eq!(again.body["error"]["code"], "conversion_quote_used");

    // Refunds of conversion payments are refused, and change nothing.
    let refund = app
        .post("/v1/refunds", &key, &json!({"payment": paid["id"]}))
        .await;
    assert_eq!(refund.status, 409);
    assert_eq!(
        refund.body["error"]["code"],
        "conversion_refund_unsupported"
    );
    assert_eq!(available(app, &key, "usd").await, 1_113);

    // A quote for what the merchant gets: USD 10.00 costs KES 1,308.09
    // (rounded up); a payment must match its amount and currency.
    let by_target = quote(
        app,
        &key,
        json!({"from_currency": "kes", "to_currency": "usd", "to_amount": 1_000}),
    )
    .await
    .expect(200);
    assert_eq!(
        (
            by_target["from_amount"].clone(),
            by_target["to_amount"].clone()
        ),
        (json!(130_809), json!(1_000))
    );
    for (body, param) in [
        (
            json!({"amount": 130_808, "method": "sandbox", "conversion_quote": by_target["id"]}),
            "amount",
        ),
        (
            json!({"currency": "ugx", "method": "sandbox", "conversion_quote": by_target["id"]}),
            "currency",
        ),
        (
            json!({"method": "sandbox", "conversion_quote": "cq_00000000000000000000000000"}),
            "conversion_quote",
        ),
        (
            json!({"method": "sandbox", "conversion_quote": by_target["id"], "capture_method": "manual"}),
            "capture_method",
        ),
        (
            json!({"method": "sandbox", "conversion_quote": by_target["id"],
                "customer_id": "cus_00000000000000000000000000", "credit_customer": true}),
            "conversion_quote",
        ),
    ] {
        let refused = app.post("/v1/payments", &key, &body).await;
        assert_eq!(refused.status, 400, "{body}: {}", refused.body);
        assert_eq!(refused.error_param(), Some(param), "{body}");
    }
    // Another merchant can't use it.
    let other = app.test_key().await;
    let foreign = app
        .post(
            "/v1/payments",
            &other,
            &json!({"method": "sandbox", "conversion_quote": by_target["id"]}),
        )
        .await;
    assert_eq!(foreign.error_param(), Some("conversion_quote"));
    // A payment that fails releases nothing it never took, and the quote
    // is spent (it named a payment).
    let failed = app
        .post(
            "/v1/payments",
            &key,
            &json!({"method": "sandbox", "customer": {"phone": "254700000002"},
                "conversion_quote": by_target["id"]}),
        )
        .await
        .expect(200);
    assert_eq!(failed["status"], "failed");
    assert_eq!(available(app, &key, "usd").await, 1_113);
    assert_eq!(app.verify_ledger().await["ok"], true);
}
both_backends!(
    a_kes_payment_credits_the_merchant_in_usd,
    super::conversion_config()
);

async fn a_processing_conversion_payment_settles_later(app: &TestApp) {
    let key = app.test_key().await;
    let locked = quote(
        app,
        &key,
        json!({"from_currency": "ugx", "to_currency": "usd", "amount": 370_000}),
    )
    .await
    .expect(200);
    // UGX 370,000 at 1/3700 less 1%: the rate is cut to 12 digits
    // (0.000267567567567), so USD 98.99999... -> 9899 cents, not 9900.
    assert_eq!(locked["rate"], "0.000267567567567");
    assert_eq!(locked["to_amount"], 9_899);
    // `0003`: processing, then succeeds about a second later.
    let payment = app
        .post(
            "/v1/payments",
            &key,
            &json!({"method": "sandbox", "customer": {"phone": "254700000003"},
                "conversion_quote": locked["id"]}),
        )
        .await
        .expect(200);
    assert_eq!(payment["status"], "processing");
    assert_eq!(crate::mtn_momo::balance(app, &key, "usd").await, (0, 9_612));
    let done = app
        .wait_for_payment(&key, payment["id"].as_str().expect("id"), |p| {
            p["status"] == "succeeded"
        })
        .await;
    assert_eq!(done["status"], "succeeded", "{done}");
    assert_eq!(crate::mtn_momo::balance(app, &key, "usd").await, (9_612, 0));
    assert_eq!(app.verify_ledger().await["ok"], true);
}
both_backends!(
    a_processing_conversion_payment_settles_later,
    super::conversion_config()
);

async fn expired_quotes_are_refused(app: &TestApp) {
    let key = app.test_key().await;
    let locked = quote(
        app,
        &key,
        json!({"from_currency": "usd", "to_currency": "btc", "amount": 10_000}),
    )
    .await
    .expect(200);
    // USD 100.00 at 0.0000105 less 1% = 0.00103950 BTC.
    assert_eq!(locked["to_amount"], 103_950);
    let expires_at = locked["expires_at"].as_i64().expect("expiry");
    // Wait until the quote's second has passed.
    while std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs() as i64
        <= expires_at
    {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let late = app
        .post(
            "/v1/payments",
            &key,
            &json!({"method": "sandbox", "customer": {"phone": "254700000000"},
                "conversion_quote": locked["id"]}),
        )
        .await;
    assert_eq!(late.status, 400, "{}", late.body);
    assert_eq!(late.error_param(), Some("conversion_quote"));
    assert_eq!(late.body["error"]["code"], "conversion_quote_expired");
    assert_eq!(available(app, &key, "btc").await, 0);
    let payments = app.get("/v1/payments", &key).await.expect(200);
    assert_eq!(payments["data"].as_array().expect("data").len(), 0);
}
both_backends!(expired_quotes_are_refused, super::short_quotes_config());

/// The HTTP rate source against the rates simulator: rates as it sets
/// them, stale when its timestamp is old, and still stale (not silently
/// fresh) when it stops answering.
async fn http_rate_source(backend: Backend) {
    let simulator = malipo_simulators::spawn(Provider::Rates, SimulatorConfig::for_tests(0))
        .await
        .expect("simulator");
    let config = Config {
        rate_sources: vec![RateSourceConfig {
            name: "simulated".into(),
            kind: RateSourceKind::Http,
            base: "usd".into(),
            rates: Default::default(),
            as_of: 0,
            url: format!("{}/rates", simulator.base_url()),
            max_age_seconds: 60,
            refresh_ms: 0,
            timeout_ms: 2_000,
        }],
        ..test_config()
    };
    let Some(app) = spawn_app_with(backend, config).await else {
        return;
    };
    let key = app.test_key().await;
    let locked = quote(
        &app,
        &key,
        json!({"from_currency": "usd", "to_currency": "kes", "amount": 100}),
    )
    .await
    .expect(200);
    // 129.5 less 1% = 128.205: USD 1.00 -> KES 128.20 (rounded down).
    assert_eq!(
        (
            locked["rate"].clone(),
            locked["to_amount"].clone(),
            locked["source"].clone()
        ),
        (json!("128.205"), json!(12_820), json!("simulated"))
    );
    let request = simulator.requests();
    assert!(
        request
            .iter()
            .any(|r| r.path == "/rates" && r.query.as_deref() == Some("base=usd")),
        "{request:?}"
    );

    simulator
        .set_rates(Some(&[("kes", "140"), ("ugx", "3800")]), None)
        .expect("set");
    let moved = quote(
        &app,
        &key,
        json!({"from_currency": "usd", "to_currency": "kes", "amount": 100}),
    )
    .await
    .expect(200);
    assert_eq!(
        (moved["rate"].clone(), moved["to_amount"].clone()),
        (json!("138.6"), json!(13_860))
    );
    let rates = app.get("/v1/rates", &key).await.expect(200);
    assert!(
        rates["data"]
            .as_array()
            .expect("data")
            .iter()
            .any(|rate| rate["currency"] == "ugx"
                && rate["rate"] == "3800"
                && rate["stale"] == false),
        "{rates}"
    );

    // The source says its rates are two minutes old: stale, refused.
    let old = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs() as i64
        - 120;
    simulator.set_rates(None, Some(old)).expect("set");
    let stale = quote(
        &app,
        &key,
        json!({"from_currency": "usd", "to_currency": "kes", "amount": 100}),
    )
    .await;
    assert_eq!(stale.status, 503, "{}", stale.body);
    assert_eq!(stale.body["error"]["code"], "rate_stale");
    let rates = app.get("/v1/rates?currencies=kes", &key).await.expect(200);
    assert_eq!(rates["data"][0]["stale"], true, "{rates}");
    assert_eq!(rates["data"][0]["as_of"], old);

    // The source goes away: its last table stays, and stays stale.
    simulator.shutdown().await;
    let down = quote(
        &app,
        &key,
        json!({"from_currency": "usd", "to_currency": "kes", "amount": 100}),
    )
    .await;
    assert_eq!(down.status, 503, "{}", down.body);
    assert_eq!(down.body["error"]["code"], "rate_stale");
}

mod http_rate_source {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sqlite() {
        super::http_rate_source(super::Backend::Sqlite).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres() {
        super::http_rate_source(super::Backend::Postgres).await;
    }
}

async fn a_quote_pays_once_under_concurrency(app: &TestApp) {
    let key = app.test_key().await;
    let locked = quote(
        app,
        &key,
        json!({"from_currency": "kes", "to_currency": "usd", "amount": 150_000}),
    )
    .await
    .expect(200);
    let body = json!({"method": "sandbox", "customer": {"phone": "254700000000"},
        "conversion_quote": locked["id"]});
    let attempts = (0..10).map(|_| app.post("/v1/payments", &key, &body));
    let answers = futures::future::join_all(attempts).await;
    let paid: Vec<_> = answers
        .iter()
        .filter(|answer| answer.status == 200)
        .collect();
    assert_eq!(paid.len(), 1, "exactly one payment uses the quote");
    for refused in answers.iter().filter(|answer| answer.status != 200) {
        assert_eq!(refused.status, 400, "{}", refused.body);
        assert_eq!(refused.error_param(), Some("conversion_quote"));
        assert_eq!(refused.body["error"]["code"], "conversion_quote_used");
    }
    assert_eq!(available(app, &key, "usd").await, 1_113);
    let payments = app.get("/v1/payments", &key).await.expect(200);
    assert_eq!(payments["data"].as_array().expect("data").len(), 1);
    assert_eq!(app.verify_ledger().await["ok"], true);
}
both_backends!(
    a_quote_pays_once_under_concurrency,
    super::conversion_config()
);
