//! The gRPC service-config parser: valid documents map onto sdkit's policies and retry, and
//! every malformed one is an error naming its field.

use std::time::Duration;

use proptest::prelude::*;
use sdkit_core::lb::BalancerConfig;
use sdkit_grpc::service_config::{LbPolicy, ServiceConfig};
use tonic::Code;

fn field_of(json: &str) -> String {
    match ServiceConfig::parse(json) {
        Ok(config) => panic!("accepted: {json} → {config:?}"),
        Err(e) => {
            assert!(
                e.to_string().contains(e.field()),
                "message names the field: {e}"
            );
            e.field().to_owned()
        }
    }
}

#[test]
fn the_first_supported_policy_wins() {
    let config = ServiceConfig::parse(
        r#"{"loadBalancingConfig": [{"xds_cluster_impl_experimental": {}}, {"pick_first": {"shuffleAddressList": true}}, {"round_robin": {}}]}"#,
    )
    .unwrap();
    assert_eq!(
        config.lb_policy(),
        Some(&LbPolicy::PickFirst { shuffle: true })
    );
    let config = ServiceConfig::parse(
        r#"{"loadBalancingConfig": [{"round_robin": {}}, {"pick_first": {}}]}"#,
    )
    .unwrap();
    assert_eq!(config.lb_policy(), Some(&LbPolicy::RoundRobin));
    // The legacy field, when loadBalancingConfig is absent.
    let config = ServiceConfig::parse(r#"{"loadBalancingPolicy": "ROUND_ROBIN"}"#).unwrap();
    assert_eq!(config.lb_policy(), Some(&LbPolicy::RoundRobin));
    // No policy at all: the channel's own choice applies.
    assert_eq!(ServiceConfig::parse("{}").unwrap().lb_policy(), None);
}

#[test]
fn sdkit_core_balancers_are_policies_too() {
    let config = ServiceConfig::parse(
        r#"{"loadBalancingConfig": [{"p2c_peak_ewma": {"default_rtt": "5ms", "seed": 7}}]}"#,
    )
    .unwrap();
    let Some(LbPolicy::Balancer(BalancerConfig::P2cPeakEwma {
        default_rtt, seed, ..
    })) = config.lb_policy()
    else {
        panic!("{config:?}");
    };
    assert_eq!((*default_rtt, *seed), (Duration::from_millis(5), Some(7)));
    // gRPC's names: least_request maps to p2c; gRPC-specific options of WRR are ignored.
    let config = ServiceConfig::parse(
        r#"{"loadBalancingConfig": [{"least_request_experimental": {"choiceCount": 2}}]}"#,
    )
    .unwrap();
    assert_eq!(config.lb_policy().map(LbPolicy::name), Some("p2c"));
    let config = ServiceConfig::parse(
        r#"{"loadBalancingConfig": [{"weighted_round_robin": {"enableOobLoadReport": false}}]}"#,
    )
    .unwrap();
    assert_eq!(
        config.lb_policy().map(LbPolicy::name),
        Some("weighted_round_robin")
    );
    for name in LbPolicy::names() {
        assert!(LbPolicy::from_name(name).is_some(), "{name}");
    }
}

#[test]
fn ring_hash_experimental_maps_to_the_ring_with_grpc_defaults() {
    let ring = |json: &str| match ServiceConfig::parse(json).unwrap().lb_policy() {
        Some(LbPolicy::Balancer(BalancerConfig::RingHash {
            minimum_ring_size,
            maximum_ring_size,
        })) => (*minimum_ring_size, *maximum_ring_size),
        other => panic!("{other:?}"),
    };
    // gRPC's defaults (gRFC A42): 1024 and 4096.
    assert_eq!(
        ring(r#"{"loadBalancingConfig": [{"ring_hash_experimental": {}}]}"#),
        (1_024, 4_096)
    );
    assert_eq!(
        ring(
            r#"{"loadBalancingConfig": [{"ring_hash_experimental": {"minRingSize": 2048, "maxRingSize": "65536"}}]}"#
        ),
        (2_048, 65_536)
    );
    // sdkit's own name takes sdkit's options and defaults (Envoy's).
    assert_eq!(
        ring(r#"{"loadBalancingConfig": [{"ring_hash": {"minimum_ring_size": 512}}]}"#),
        (512, 8_388_608)
    );
    for bad in [r#""big""#, "-1", "0", "8388609"] {
        let json = format!(
            r#"{{"loadBalancingConfig": [{{"ring_hash_experimental": {{"maxRingSize": {bad}}}}}]}}"#
        );
        let err = ServiceConfig::parse(&json).unwrap_err();
        assert!(
            err.field()
                .starts_with("loadBalancingConfig[0].ring_hash_experimental"),
            "{bad}: {err}"
        );
    }
}

#[test]
fn method_configs_match_exactly_then_by_service_then_by_default() {
    let config = ServiceConfig::parse(
        r#"{"methodConfig": [
            {"name": [{}], "timeout": "10s"},
            {"name": [{"service": "greeter.Greeter"}], "timeout": "2s", "waitForReady": false},
            {"name": [{"service": "greeter.Greeter", "method": "SayHello"}, {"service": "other.Svc", "method": "Get"}],
             "timeout": "0.250s",
             "retryPolicy": {"maxAttempts": 9, "initialBackoff": "0.1s", "maxBackoff": "1.5s",
                             "backoffMultiplier": 1.5, "retryableStatusCodes": ["UNAVAILABLE", "resource_exhausted", 10]}}
        ]}"#,
    )
    .unwrap();
    let exact = config.method("/greeter.Greeter/SayHello").unwrap();
    assert_eq!(exact.timeout(), Some(Duration::from_millis(250)));
    let retry = exact.retry_policy().unwrap();
    assert_eq!(retry.max_attempts(), 5, "capped at 5");
    assert_eq!(
        retry.retryable_status_codes(),
        &[Code::Unavailable, Code::ResourceExhausted, Code::Aborted]
    );
    assert!(retry.is_retryable(Code::Aborted) && !retry.is_retryable(Code::Internal));
    let rc = retry.retry_config(Duration::from_secs(3));
    assert_eq!((rc.max_attempts, rc.timeout), (5, Duration::from_secs(3)));
    assert_eq!(
        (rc.backoff.initial(), rc.backoff.max()),
        (Duration::from_millis(100), Duration::from_millis(1500))
    );
    assert_eq!(
        config.method("/other.Svc/Get").unwrap().timeout(),
        Some(Duration::from_millis(250))
    );

    let service = config.method("/greeter.Greeter/Other").unwrap();
    assert_eq!(
        (service.timeout(), service.wait_for_ready()),
        (Some(Duration::from_secs(2)), Some(false))
    );
    assert!(service.retry_policy().is_none());
    assert_eq!(
        config.method("/x.Y/Z").unwrap().timeout(),
        Some(Duration::from_secs(10))
    );

    let no_default =
        ServiceConfig::parse(r#"{"methodConfig": [{"name": [{"service": "a.B"}]}]}"#).unwrap();
    assert!(no_default.method("/x.Y/Z").is_none());
}

#[test]
fn durations_follow_protobuf_json() {
    let timeout = |t: &str| {
        ServiceConfig::parse(&format!(
            r#"{{"methodConfig":[{{"name":[{{}}],"timeout":"{t}"}}]}}"#
        ))
        .map(|c| c.method("/a.B/C").unwrap().timeout().unwrap())
    };
    assert_eq!(timeout("1s").unwrap(), Duration::from_secs(1));
    assert_eq!(timeout("0.000340s").unwrap(), Duration::from_micros(340));
    assert_eq!(timeout("1.000000001s").unwrap(), Duration::new(1, 1));
    for bad in [
        "1",
        "1.s",
        ".5s",
        "-1s",
        "1.0000000001s",
        "1e3s",
        "s",
        "1ms",
        " 1s",
        "99999999999s",
    ] {
        assert_eq!(
            timeout(bad).unwrap_err().field(),
            "methodConfig[0].timeout",
            "{bad}"
        );
    }
}

#[test]
fn retry_throttling() {
    let config =
        ServiceConfig::parse(r#"{"retryThrottling": {"maxTokens": 10, "tokenRatio": 0.1234}}"#)
            .unwrap();
    let t = config.retry_throttling().unwrap();
    assert_eq!((t.max_tokens(), t.token_ratio()), (10, 0.123));
}

#[test]
fn malformed_configs_name_their_field() {
    let cases: &[(&str, &str)] = &[
        ("not json", ""),
        ("[]", ""),
        (r#"{"loadBalancingConfig": {}}"#, "loadBalancingConfig"),
        (
            r#"{"loadBalancingConfig": [{"round_robin": {}, "pick_first": {}}]}"#,
            "loadBalancingConfig[0]",
        ),
        (
            r#"{"loadBalancingConfig": [{"grpclb": {}}]}"#,
            "loadBalancingConfig",
        ),
        (
            r#"{"loadBalancingConfig": [{"round_robin": []}]}"#,
            "loadBalancingConfig[0].round_robin",
        ),
        (
            r#"{"loadBalancingConfig": [{"pick_first": {"shuffleAddressList": "yes"}}]}"#,
            "loadBalancingConfig[0].pick_first.shuffleAddressList",
        ),
        (
            r#"{"loadBalancingConfig": [{"p2c": {"seeed": 1}}]}"#,
            "loadBalancingConfig[0].p2c",
        ),
        (
            r#"{"loadBalancingPolicy": "grpclb"}"#,
            "loadBalancingPolicy",
        ),
        (r#"{"methodConfig": {}}"#, "methodConfig"),
        (
            r#"{"methodConfig": [{"name": [{"method": "Get"}]}]}"#,
            "methodConfig[0].name[0].service",
        ),
        (
            r#"{"methodConfig": [{"name": [{"service": 5}]}]}"#,
            "methodConfig[0].name[0].service",
        ),
        (
            r#"{"methodConfig": [{"name": [{}]}, {"name": [{}]}]}"#,
            "methodConfig[1].name",
        ),
        (
            r#"{"methodConfig": [{"name": [{}], "waitForReady": "no"}]}"#,
            "methodConfig[0].waitForReady",
        ),
        (
            r#"{"methodConfig": [{"name": [{}], "retryPolicy": {}}]}"#,
            "methodConfig[0].retryPolicy.maxAttempts",
        ),
        (
            r#"{"methodConfig": [{"name": [{}], "retryPolicy": {"maxAttempts": 1, "initialBackoff": "1s", "maxBackoff": "1s", "backoffMultiplier": 2, "retryableStatusCodes": ["UNAVAILABLE"]}}]}"#,
            "methodConfig[0].retryPolicy.maxAttempts",
        ),
        (
            r#"{"methodConfig": [{"name": [{}], "retryPolicy": {"maxAttempts": 2.5, "initialBackoff": "1s", "maxBackoff": "1s", "backoffMultiplier": 2, "retryableStatusCodes": ["UNAVAILABLE"]}}]}"#,
            "methodConfig[0].retryPolicy.maxAttempts",
        ),
        (
            r#"{"methodConfig": [{"name": [{}], "retryPolicy": {"maxAttempts": 3, "initialBackoff": "0s", "maxBackoff": "1s", "backoffMultiplier": 2, "retryableStatusCodes": ["UNAVAILABLE"]}}]}"#,
            "methodConfig[0].retryPolicy.initialBackoff",
        ),
        (
            r#"{"methodConfig": [{"name": [{}], "retryPolicy": {"maxAttempts": 3, "initialBackoff": "1s", "backoffMultiplier": 2, "retryableStatusCodes": ["UNAVAILABLE"]}}]}"#,
            "methodConfig[0].retryPolicy.maxBackoff",
        ),
        (
            r#"{"methodConfig": [{"name": [{}], "retryPolicy": {"maxAttempts": 3, "initialBackoff": "1s", "maxBackoff": "1s", "backoffMultiplier": 0, "retryableStatusCodes": ["UNAVAILABLE"]}}]}"#,
            "methodConfig[0].retryPolicy.backoffMultiplier",
        ),
        (
            r#"{"methodConfig": [{"name": [{}], "retryPolicy": {"maxAttempts": 3, "initialBackoff": "1s", "maxBackoff": "1s", "backoffMultiplier": 2, "retryableStatusCodes": []}}]}"#,
            "methodConfig[0].retryPolicy.retryableStatusCodes",
        ),
        (
            r#"{"methodConfig": [{"name": [{}], "retryPolicy": {"maxAttempts": 3, "initialBackoff": "1s", "maxBackoff": "1s", "backoffMultiplier": 2, "retryableStatusCodes": ["UNAVAILABLE", "NOPE"]}}]}"#,
            "methodConfig[0].retryPolicy.retryableStatusCodes[1]",
        ),
        (
            r#"{"methodConfig": [{"name": [{}], "retryPolicy": {"maxAttempts": 3, "initialBackoff": "1s", "maxBackoff": "1s", "backoffMultiplier": 2, "retryableStatusCodes": [0]}}]}"#,
            "methodConfig[0].retryPolicy.retryableStatusCodes[0]",
        ),
        (
            r#"{"retryThrottling": {"maxTokens": 0, "tokenRatio": 1}}"#,
            "retryThrottling.maxTokens",
        ),
        (
            r#"{"retryThrottling": {"maxTokens": 1001, "tokenRatio": 1}}"#,
            "retryThrottling.maxTokens",
        ),
        (
            r#"{"retryThrottling": {"maxTokens": 10}}"#,
            "retryThrottling.tokenRatio",
        ),
        (
            r#"{"retryThrottling": {"maxTokens": 10, "tokenRatio": 0.0001}}"#,
            "retryThrottling.tokenRatio",
        ),
    ];
    for (json, field) in cases {
        assert_eq!(field_of(json), *field, "{json}");
    }
}

#[test]
fn a_malformed_config_fails_the_channel_build() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let _guard = runtime.enter();
    let instancer = sdkit_core::FixedInstancer::new(Vec::new());
    let err = sdkit_grpc::Channel::new(
        &instancer,
        sdkit_grpc::Config::default().with_service_config(r#"{"methodConfig": 1}"#),
    )
    .unwrap_err();
    assert!(
        err.to_string().contains("methodConfig: must be an array"),
        "{err}"
    );
    let err =
        sdkit_grpc::Channel::new(&instancer, sdkit_grpc::Config::default().with_lb("fastest"))
            .unwrap_err();
    assert!(
        err.to_string()
            .contains("unknown balancing policy `fastest`"),
        "{err}"
    );
}

fn json_value() -> impl Strategy<Value = serde_json::Value> {
    let leaf = prop_oneof![
        Just(serde_json::Value::Null),
        any::<bool>().prop_map(serde_json::Value::from),
        any::<i64>().prop_map(serde_json::Value::from),
        any::<f64>().prop_map(|f| serde_json::Number::from_f64(f)
            .map_or(serde_json::Value::Null, serde_json::Value::Number)),
        prop_oneof![
            Just("1s".to_owned()),
            Just("UNAVAILABLE".to_owned()),
            Just("round_robin".to_owned()),
            Just("greeter.Greeter".to_owned()),
            "[a-zA-Z0-9._]{0,8}"
        ]
        .prop_map(serde_json::Value::from),
    ];
    let keys = prop_oneof![
        Just("loadBalancingConfig"),
        Just("methodConfig"),
        Just("retryThrottling"),
        Just("name"),
        Just("service"),
        Just("method"),
        Just("timeout"),
        Just("retryPolicy"),
        Just("maxAttempts"),
        Just("initialBackoff"),
        Just("maxBackoff"),
        Just("backoffMultiplier"),
        Just("retryableStatusCodes"),
        Just("maxTokens"),
        Just("tokenRatio"),
        Just("pick_first"),
        Just("round_robin"),
        Just("p2c"),
        Just("waitForReady"),
        Just("loadBalancingPolicy"),
    ];
    leaf.prop_recursive(5, 64, 6, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(serde_json::Value::Array),
            prop::collection::vec((keys.clone(), inner), 0..5).prop_map(|kv| {
                serde_json::Value::Object(kv.into_iter().map(|(k, v)| (k.to_owned(), v)).collect())
            }),
        ]
    })
}

proptest! {
    /// Arbitrary documents built from the config's own vocabulary: parsing never panics, and an
    /// error always names a field that exists in the input (or the document itself).
    #[test]
    fn arbitrary_documents_never_panic(value in json_value()) {
        let text = value.to_string();
        if let Err(e) = ServiceConfig::parse(&text) {
            let first = e.field().split(['.', '[']).next().unwrap_or("");
            prop_assert!(first.is_empty() || text.contains(first), "{e} for {text}");
        }
    }

    #[test]
    fn arbitrary_text_never_panics(text in ".{0,200}") {
        let _ = ServiceConfig::parse(&text);
    }
}

#[test]
fn ring_hash_experimental_takes_a_request_hash_header() {
    let header = |json: &str| {
        ServiceConfig::parse(json)
            .unwrap()
            .request_hash_header()
            .map(|h| h.as_str().to_owned())
    };
    assert_eq!(
        header(
            r#"{"loadBalancingConfig": [{"ring_hash_experimental": {"requestHashHeader": "x-user-id"}}]}"#
        ),
        Some("x-user-id".to_owned())
    );
    // Empty means none (gRFC A76), as does an absent one or another policy.
    assert_eq!(
        header(
            r#"{"loadBalancingConfig": [{"ring_hash_experimental": {"requestHashHeader": ""}}]}"#
        ),
        None
    );
    assert_eq!(
        header(r#"{"loadBalancingConfig": [{"ring_hash_experimental": {}}]}"#),
        None
    );
    assert_eq!(
        header(r#"{"loadBalancingConfig": [{"round_robin": {}}]}"#),
        None
    );
    // A binary header, a pseudo-header, an uppercase or malformed name, a non-string: refused,
    // naming the field.
    for bad in [
        r#""x-user-bin""#,
        r#"":path""#,
        r#""X-User""#,
        r#""x user""#,
        "7",
    ] {
        let json = format!(
            r#"{{"loadBalancingConfig": [{{"ring_hash_experimental": {{"requestHashHeader": {bad}}}}}]}}"#
        );
        assert_eq!(
            field_of(&json),
            "loadBalancingConfig[0].ring_hash_experimental.requestHashHeader",
            "{bad}"
        );
    }
}
