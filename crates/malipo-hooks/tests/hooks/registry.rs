//! The registry as configuration: serde round trips, validation, and a
//! provider added without code.

use crate::helpers::{NOW, URL, round_trip};
use malipo_hooks::{
    DefinitionError, ProviderDefinition, ProviderRegistry, SignatureScheme, Verdict,
    builtin_providers,
};

#[test]
fn builtin_registry_round_trips_through_json() {
    let registry = ProviderRegistry::builtin();
    assert_eq!(registry.len(), 9);
    let json = serde_json::to_string_pretty(&registry).unwrap();
    let back: ProviderRegistry = serde_json::from_str(&json).unwrap();
    assert_eq!(back, registry);

    let definitions = builtin_providers();
    let json = serde_json::to_value(&definitions).unwrap();
    let back: Vec<ProviderDefinition> = serde_json::from_value(json).unwrap();
    assert_eq!(back, definitions);
}

#[test]
fn builtin_schemes_serialize_with_a_kind_tag() {
    let registry = ProviderRegistry::builtin();
    let paystack = serde_json::to_value(&registry.get("paystack").unwrap().scheme).unwrap();
    assert_eq!(
        paystack,
        serde_json::json!({
            "kind": "hmac_body",
            "algorithm": "sha512",
            "encoding": "hex",
            "header": "x-paystack-signature"
        })
    );
    let mpesa = serde_json::to_value(&registry.get("mpesa").unwrap().scheme).unwrap();
    assert_eq!(mpesa, serde_json::json!({"kind": "none"}));
}

/// A new provider with a known scheme is configuration: defaults fill in
/// methods and the rate limit, and it signs and verifies like a built-in.
#[test]
fn a_provider_is_added_from_configuration() {
    let json = r#"[{
        "name": "acme_pay",
        "display_name": "Acme Pay",
        "scheme": {"kind": "hmac_body", "algorithm": "sha256", "encoding": "base64",
                   "header": "x-acme-signature", "prefix": "v1="},
        "event_id": [["/event_id"]],
        "success_response": {"status": 200, "content_type": "text/plain", "body": "OK"},
        "published_source_ips": ["203.0.113.0/24"]
    }]"#;
    let registry: ProviderRegistry = serde_json::from_str(json).unwrap();
    let acme = registry.get("acme_pay").unwrap();
    assert_eq!(acme.methods, ["POST"]);
    assert_eq!(
        acme.rate_limit_per_minute,
        malipo_hooks::RATE_LIMIT_PER_MINUTE_DEFAULT
    );
    assert!(acme.accepts_method("post"));
    assert!(
        acme.published_source_ips
            .contains("203.0.113.9".parse().unwrap())
    );
    assert_eq!(
        round_trip(acme, b"k", br#"{"event_id":"e1"}"#),
        Verdict::Verified
    );
    assert_eq!(
        malipo_hooks::event_key(acme, br#"{"event_id":"e1"}"#),
        "id:e1"
    );

    let mut registry = ProviderRegistry::builtin();
    registry.insert(acme.clone()).unwrap();
    assert_eq!(registry.len(), 10);
}

#[test]
fn configuration_typos_and_unsafe_definitions_are_refused() {
    let base = serde_json::json!({
        "name": "acme",
        "display_name": "Acme",
        "scheme": {"kind": "stripe_timestamped", "header": "acme-signature", "tolerance_seconds": 300},
        "success_response": {"status": 200}
    });
    let parse = |value: serde_json::Value| {
        serde_json::from_value::<ProviderRegistry>(serde_json::Value::Array(vec![value]))
    };
    assert!(parse(base.clone()).is_ok());

    let mut typo = base.clone();
    typo["scheme"]["tolerence_seconds"] = 5.into();
    assert!(parse(typo).is_err(), "unknown scheme field");
    let mut typo = base.clone();
    typo["sucess_response"] = serde_json::json!({"status": 200});
    assert!(parse(typo).is_err(), "unknown definition field");
    let mut unknown = base.clone();
    unknown["scheme"] = serde_json::json!({"kind": "rsa"});
    assert!(parse(unknown).is_err(), "unknown kind");

    let mut bad_name = base.clone();
    bad_name["name"] = "Acme Pay".into();
    assert!(parse(bad_name).is_err());
    let mut not_2xx = base.clone();
    not_2xx["success_response"]["status"] = 500.into();
    assert!(parse(not_2xx).is_err());
    let mut pointer = base.clone();
    pointer["event_id"] = serde_json::json!([["id"]]);
    assert!(parse(pointer).is_err());
    let mut no_header = base.clone();
    no_header["scheme"]["header"] = "".into();
    assert!(parse(no_header).is_err());
    let mut zero_rate = base.clone();
    zero_rate["rate_limit_per_minute"] = 0.into();
    assert!(parse(zero_rate).is_err());
    let mut bad_ip = base.clone();
    bad_ip["published_source_ips"] = serde_json::json!(["10.0.0.1/8"]);
    assert!(parse(bad_ip).is_err());

    // An unsigned alternative inside any_of would make a signed provider
    // accept anything.
    let mut sneaky = base.clone();
    sneaky["scheme"] = serde_json::json!({"kind": "any_of", "schemes": [
        {"kind": "shared_secret_header", "header": "x-token"}, {"kind": "none"}]});
    assert!(parse(sneaky).is_err());
    let mut empty = base.clone();
    empty["scheme"] = serde_json::json!({"kind": "any_of", "schemes": []});
    assert!(parse(empty).is_err());

    let twice = serde_json::from_value::<ProviderRegistry>(serde_json::json!([base, base]));
    assert!(twice.is_err());
    let definition: ProviderDefinition = serde_json::from_value(base).unwrap();
    assert_eq!(
        ProviderRegistry::from_definitions(vec![definition.clone(), definition]),
        Err(DefinitionError::Duplicate("acme".to_owned()))
    );
}

#[test]
fn an_unvalidated_any_of_with_none_still_fails_closed() {
    let definition = ProviderDefinition {
        scheme: SignatureScheme::AnyOf {
            schemes: vec![SignatureScheme::None],
        },
        ..builtin_providers().remove(0)
    };
    assert!(definition.validate().is_err());
    let request = malipo_hooks::InboundRequest {
        headers: &[],
        raw_body: b"{}",
        url: URL,
        now_unix: NOW,
    };
    assert_eq!(definition.verify(b"k", &request), Verdict::MissingSignature);
}
