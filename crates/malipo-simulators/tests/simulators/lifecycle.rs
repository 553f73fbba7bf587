//! Starting, inspecting and stopping simulators.

use crate::support::{Receiver, client, simulator};
use malipo_simulators::{C2bPayment, Error, Provider, SimulatorConfig, spawn};
use std::time::Duration;

#[tokio::test]
async fn providers_parse_from_their_command_line_names() {
    for provider in Provider::ALL {
        assert_eq!(provider.name().parse::<Provider>().ok(), Some(provider));
    }
    assert_eq!("MTN_MOMO".parse::<Provider>().ok(), Some(Provider::MtnMomo));
    assert_eq!("daraja".parse::<Provider>().ok(), Some(Provider::Mpesa));
    assert!("paypal".parse::<Provider>().is_err());
}

#[tokio::test]
async fn requests_are_journaled_and_control_paths_are_not() {
    let simulator = simulator(Provider::Relworx).await;
    let response = client()
        .post(format!(
            "{}/api/mobile-money/request-payment",
            simulator.base_url()
        ))
        .header("X-Test", "journal")
        .body("{}")
        .send()
        .await
        .expect("request");
    assert_eq!(response.status().as_u16(), 401);
    client()
        .put(format!("{}/simulate/callback-url", simulator.base_url()))
        .body(r#"{"url": "http://127.0.0.1:9/hook"}"#)
        .send()
        .await
        .expect("control");
    let requests = simulator.requests();
    assert_eq!(requests.len(), 1, "{requests:?}");
    assert_eq!(requests[0].method, "POST");
    assert_eq!(requests[0].path, "/api/mobile-money/request-payment");
    assert_eq!(requests[0].header("x-test"), Some("journal"));
    assert_eq!(requests[0].body, "{}");
}

#[tokio::test]
async fn provider_specific_operations_refuse_other_providers() {
    let momo = simulator(Provider::MtnMomo).await;
    assert!(matches!(
        momo.simulate_c2b_payment(C2bPayment::paybill("600984", 1, "x"))
            .await,
        Err(Error::WrongProvider { .. })
    ));
    assert!(matches!(
        momo.set_callback_url("http://127.0.0.1:9/"),
        Err(Error::WrongProvider { .. })
    ));
    let airtel = simulator(Provider::Airtel).await;
    assert!(matches!(
        airtel.set_callback_url("ftp://example.com"),
        Err(Error::InvalidRequest(_))
    ));
    let mpesa = simulator(Provider::Mpesa).await;
    let mut bad = C2bPayment::paybill("600984", 1, "x");
    bad.msisdn = "0708374149".into();
    assert!(matches!(
        mpesa.simulate_c2b_payment(bad).await,
        Err(Error::InvalidRequest(_))
    ));
    assert!(matches!(
        mpesa.wait_for_callbacks(1, Duration::from_millis(20)).await,
        Err(Error::CallbackTimeout {
            expected: 1,
            seen: 0,
            ..
        })
    ));
}

#[tokio::test]
async fn shutdown_stops_serving_and_cancels_pending_callbacks() {
    let receiver = Receiver::start().await;
    let simulator = spawn(Provider::Airtel, SimulatorConfig::for_tests(300))
        .await
        .expect("spawn");
    simulator
        .set_callback_url(&receiver.url("/cb"))
        .expect("url");
    let base_url = simulator.base_url().to_string();
    let token = client()
        .post(format!("{base_url}/auth/oauth2/token"))
        .json(&serde_json::json!({
            "client_id": "malipo-airtel-client-id",
            "client_secret": "malipo-airtel-client-secret",
            "grant_type": "client_credentials",
        }))
        .send()
        .await
        .expect("token")
        .json::<serde_json::Value>()
        .await
        .expect("json")["access_token"]
        .as_str()
        .expect("token")
        .to_string();
    let response = client()
        .post(format!("{base_url}/merchant/v1/payments/"))
        .bearer_auth(&token)
        .header("X-Country", "UG")
        .header("X-Currency", "UGX")
        .json(&serde_json::json!({
            "reference": "r",
            "subscriber": {"country": "UG", "currency": "UGX", "msisdn": "752000001"},
            "transaction": {"amount": 1000, "country": "UG", "currency": "UGX", "id": "stop-1"},
        }))
        .send()
        .await
        .expect("collect");
    assert_eq!(response.status().as_u16(), 200);
    simulator.shutdown().await;
    // Fresh client: no pooled connection to the stopped server.
    assert!(client().get(format!("{base_url}/")).send().await.is_err());
    receiver.assert_exactly(0).await;
}

#[tokio::test]
async fn binding_a_taken_port_is_an_error() {
    let first = simulator(Provider::Mpesa).await;
    let config = SimulatorConfig::on_port(first.local_addr().port());
    assert!(matches!(
        spawn(Provider::Mpesa, config).await,
        Err(Error::Bind { .. })
    ));
}

#[tokio::test]
async fn bodies_and_transactions_are_bounded() {
    let config = SimulatorConfig {
        request_body_bytes_max: 1024,
        transactions_max: 1,
        ..SimulatorConfig::for_tests(20)
    };
    let simulator = spawn(Provider::Relworx, config).await.expect("spawn");
    let url = format!("{}/api/mobile-money/request-payment", simulator.base_url());
    let response = client()
        .post(&url)
        .body("x".repeat(2048))
        .send()
        .await
        .expect("request");
    assert_eq!(response.status().as_u16(), 413);
    let payment = |reference: &str| {
        serde_json::json!({"account_no": "RELJH012BV45P", "reference": reference,
            "msisdn": "+256701345672", "currency": "UGX", "amount": 500})
    };
    let send = |body: serde_json::Value| {
        client()
            .post(&url)
            .bearer_auth("malipo-relworx-api-key")
            .header("Accept", "application/vnd.relworx.v2")
            .json(&body)
            .send()
    };
    let first = send(payment("bounded-0001")).await.expect("first");
    assert_eq!(first.status().as_u16(), 200);
    let second = send(payment("bounded-0002")).await.expect("second");
    assert_eq!(second.status().as_u16(), 503, "past transactions_max");
}
