//! The Consul Registrar against the Consul API double.

mod common;

use sdkit_core::Backoff;
use std::time::{Duration, Instant};

use common::{client, eventually};
use sdkit_consul::{CheckConfig, Registrar, RegistrarConfig};
use sdkit_core::registrar::RegistrationStatus;
use sdkit_core::{Registrar as _, RegistrarError};
use sdkit_testkit::ConsulDouble;
use sdkit_testkit::consul::Fault;

const PASS: &str = "/v1/agent/check/pass/";
const REGISTER: &str = "/v1/agent/service/register";

fn fast(config: RegistrarConfig) -> RegistrarConfig {
    config
        .with_backoff(Backoff::new(
            Duration::from_millis(50),
            Duration::from_millis(200),
        ))
        .with_deregister_timeout(Duration::from_secs(2))
}

#[tokio::test]
async fn registers_heartbeats_every_half_ttl_and_deregisters() {
    let consul = ConsulDouble::start().await.unwrap();
    let registrar = Registrar::new(
        &client(&consul),
        fast(
            RegistrarConfig::new("web", 8080)
                .with_address("10.0.0.1")
                .with_ttl(Duration::from_millis(300)),
        ),
    )
    .unwrap();
    assert_eq!(registrar.service_id(), "web-10.0.0.1-8080");
    registrar.register().await.unwrap();
    assert_eq!(registrar.status(), RegistrationStatus::Registered);
    assert_eq!(consul.service_ids("web"), ["web-10.0.0.1-8080"]);
    assert_eq!(
        consul.check_status("service:web-10.0.0.1-8080").as_deref(),
        Some("passing"),
        "registered passing"
    );
    let reg = consul.last_request(REGISTER).unwrap();
    assert_eq!(reg.method, "PUT");
    assert_eq!(reg.param("replace-existing-checks"), Some("true"));

    // Several TTLs pass: heartbeats (every 150 ms) keep the check passing.
    eventually("five heartbeats", || consul.request_count(PASS) >= 5).await;
    assert_eq!(
        consul.check_status("service:web-10.0.0.1-8080").as_deref(),
        Some("passing")
    );
    assert_eq!(
        consul.request_count(REGISTER),
        1,
        "no needless re-registration"
    );

    let t = Instant::now();
    registrar.deregister().await.unwrap();
    assert!(t.elapsed() < Duration::from_secs(2));
    assert!(consul.service_ids("web").is_empty());
    registrar.deregister().await.unwrap(); // idempotent
    let passes = consul.request_count(PASS);
    assert!(matches!(
        registrar.register().await,
        Err(RegistrarError::Deregistered)
    ));
    assert_eq!(
        consul.request_count(PASS),
        passes,
        "no heartbeat after deregister"
    );
}

#[tokio::test]
async fn registers_again_when_the_agent_forgets_the_service() {
    let consul = ConsulDouble::start().await.unwrap();
    let registrar = Registrar::new(
        &client(&consul),
        fast(
            RegistrarConfig::new("web", 80)
                .with_id("web-1")
                .with_ttl(Duration::from_millis(300)),
        ),
    )
    .unwrap();
    registrar.register().await.unwrap();
    // The agent restarts without its state: the check is unknown, the heartbeat gets 404.
    assert!(consul.remove_service("web-1"));
    eventually("re-registration", || consul.service_ids("web") == ["web-1"]).await;
    assert!(consul.request_count(REGISTER) >= 2);
    eventually("passing again", || {
        consul.check_status("service:web-1").as_deref() == Some("passing")
    })
    .await;
    registrar.deregister().await.unwrap();
}

#[tokio::test]
async fn a_reaped_critical_service_is_registered_again_after_an_outage() {
    let consul = ConsulDouble::start().await.unwrap();
    let registrar = Registrar::new(
        &client(&consul),
        fast(
            RegistrarConfig::new("web", 80)
                .with_id("web-1")
                .with_ttl(Duration::from_millis(300))
                .with_deregister_critical_after(Duration::from_millis(400)),
        ),
    )
    .unwrap();
    registrar.register().await.unwrap();
    let body = consul
        .requests()
        .into_iter()
        .find(|r| r.path == REGISTER)
        .unwrap();
    assert_eq!(body.method, "PUT");

    // Heartbeats fail: the TTL lapses, the check goes critical, and the agent reaps the service
    // after DeregisterCriticalServiceAfter.
    consul.inject(PASS, Fault::Status(503));
    eventually("the service to be reaped", || {
        consul.service_ids("web").is_empty()
    })
    .await;
    // The outage ends: the heartbeat finds no check and the registrar registers again.
    consul.clear_faults();
    eventually("re-registration", || consul.service_ids("web") == ["web-1"]).await;
    registrar.deregister().await.unwrap();
}

#[tokio::test]
async fn register_retries_forever_while_the_agent_fails() {
    let consul = ConsulDouble::start().await.unwrap();
    consul.inject(REGISTER, Fault::Status(503));
    let registrar = Registrar::new(
        &client(&consul),
        fast(RegistrarConfig::new("web", 80).with_id("web-1")),
    )
    .unwrap();
    let register = registrar.register();
    tokio::pin!(register);
    let mut attempts_seen = false;
    let deadline = tokio::time::Instant::now() + common::EVENTUALLY;
    while !attempts_seen {
        tokio::select! {
            r = &mut register => panic!("registered while the agent fails: {r:?}"),
            _ = tokio::time::sleep(Duration::from_millis(20)) => {
                attempts_seen = consul.request_count(REGISTER) >= 4;
            }
        }
        assert!(tokio::time::Instant::now() < deadline, "too few attempts");
    }
    consul.clear_faults();
    tokio::time::timeout(common::EVENTUALLY, register)
        .await
        .expect("registered after the outage")
        .unwrap();
    assert_eq!(consul.service_ids("web"), ["web-1"]);
    registrar.deregister().await.unwrap();
}

#[tokio::test]
async fn deregistration_is_bounded_when_the_agent_hangs() {
    let consul = ConsulDouble::start().await.unwrap();
    let registrar = Registrar::new(
        &client(&consul),
        RegistrarConfig::new("web", 80)
            .with_id("web-1")
            .with_deregister_timeout(Duration::from_millis(300)),
    )
    .unwrap();
    registrar.register().await.unwrap();
    consul.inject("/v1/agent/service/deregister/", Fault::Hang);
    let t = Instant::now();
    let result = registrar.deregister().await;
    assert!(
        matches!(result, Err(RegistrarError::Timeout(_))),
        "{result:?}"
    );
    assert!(
        t.elapsed() < Duration::from_secs(2),
        "took {:?}",
        t.elapsed()
    );
}

#[tokio::test]
async fn dropping_the_registrar_deregisters_in_the_background() {
    let consul = ConsulDouble::start().await.unwrap();
    let registrar = Registrar::new(
        &client(&consul),
        fast(RegistrarConfig::new("web", 80).with_id("web-1")),
    )
    .unwrap();
    registrar.register().await.unwrap();
    drop(registrar);
    eventually("deregistration", || consul.service_ids("web").is_empty()).await;
}

#[tokio::test]
async fn an_http_check_replaces_the_ttl_check() {
    let consul = ConsulDouble::start().await.unwrap();
    let registrar = Registrar::new(
        &client(&consul),
        fast(
            RegistrarConfig::new("web", 8080)
                .with_id("web-1")
                .with_check(CheckConfig::Http {
                    url: "http://127.0.0.1:8080/health".into(),
                    interval: Duration::from_secs(10),
                    timeout: Duration::from_secs(1),
                })
                .with_verify_interval(Duration::from_millis(100)),
        ),
    )
    .unwrap();
    registrar.register().await.unwrap();
    // Consul starts agent-run checks critical until the first probe passes.
    assert_eq!(
        consul.check_status("service:web-1").as_deref(),
        Some("critical")
    );
    // No TTL heartbeats: the registrar only verifies that the agent knows the service.
    eventually("verifications", || {
        consul.request_count("/v1/agent/service/web-1") >= 2
    })
    .await;
    assert_eq!(consul.request_count(PASS), 0);
    assert!(consul.remove_service("web-1"));
    eventually("re-registration", || consul.service_ids("web") == ["web-1"]).await;
    registrar.deregister().await.unwrap();
    assert!(consul.service_ids("web").is_empty());
}

#[tokio::test]
async fn a_bad_registration_is_rejected_at_construction() {
    let consul = ConsulDouble::start().await.unwrap();
    assert!(Registrar::new(&client(&consul), RegistrarConfig::new("", 80)).is_err());
    assert!(
        Registrar::new(
            &client(&consul),
            RegistrarConfig::new("web", 80).with_weights(0, 1)
        )
        .is_err()
    );
    assert!(
        Registrar::new(
            &client(&consul),
            RegistrarConfig::new("web", 80).with_ttl(Duration::ZERO)
        )
        .is_err()
    );
}

/// Issue #15: a failing deregistration is retried within the bound (one 500 used to leave the
/// service registered until `DeregisterCriticalServiceAfter`).
#[tokio::test]
async fn deregistration_is_retried_within_its_bound() {
    const DEREGISTER: &str = "/v1/agent/service/deregister/";
    let consul = ConsulDouble::start().await.unwrap();
    let registrar = Registrar::new(
        &client(&consul),
        fast(RegistrarConfig::new("web", 80).with_id("web-1"))
            .with_deregister_timeout(Duration::from_secs(10)),
    )
    .unwrap();
    registrar.register().await.unwrap();
    assert_eq!(consul.service_ids("web"), ["web-1"]);
    consul.inject_times(DEREGISTER, Fault::Status(500), 2);
    registrar.deregister().await.unwrap();
    assert!(consul.service_ids("web").is_empty());
    assert_eq!(consul.request_count(DEREGISTER), 3);
}
