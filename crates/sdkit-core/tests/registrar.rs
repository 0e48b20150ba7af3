//! The shared keep-alive driver, against a scripted in-memory registration.

mod support;

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sdkit_core::registrar::{
    BoxFuture, KeepAlive, KeepAliveConfig, Registration, RegistrationStatus, Renewal,
};
use sdkit_core::{Backoff, BoxError, Registrar, RegistrarError};
use support::wait::wait_until;

/// Each step pops its next scripted outcome (or succeeds when the script is empty).
#[derive(Default)]
struct Scripted {
    register_script: Mutex<VecDeque<Result<(), String>>>,
    renew_script: Mutex<VecDeque<Result<Renewal, String>>>,
    hang_deregister: bool,
    registers: AtomicU32,
    renews: AtomicU32,
    deregisters: AtomicU32,
}

impl Registration for Scripted {
    fn register(&self) -> BoxFuture<'_, Result<(), BoxError>> {
        Box::pin(async move {
            self.registers.fetch_add(1, Ordering::SeqCst);
            match self.register_script.lock().unwrap().pop_front() {
                Some(Err(e)) => Err(e.into()),
                _ => Ok(()),
            }
        })
    }
    fn renew(&self) -> BoxFuture<'_, Result<Renewal, BoxError>> {
        Box::pin(async move {
            self.renews.fetch_add(1, Ordering::SeqCst);
            match self.renew_script.lock().unwrap().pop_front() {
                Some(Err(e)) => Err(e.into()),
                Some(Ok(r)) => Ok(r),
                None => Ok(Renewal::Renewed),
            }
        })
    }
    fn deregister(&self) -> BoxFuture<'_, Result<(), BoxError>> {
        Box::pin(async move {
            self.deregisters.fetch_add(1, Ordering::SeqCst);
            if self.hang_deregister {
                std::future::pending::<()>().await;
            }
            Ok(())
        })
    }
}

fn config() -> KeepAliveConfig {
    KeepAliveConfig::new(Duration::from_secs(10))
        .with_backoff(Backoff::new(
            Duration::from_millis(100),
            Duration::from_secs(1),
        ))
        .with_deregister_timeout(Duration::from_secs(2))
}

/// Waits for `cond` within a (virtual) deadline.
async fn wait_for(cond: impl Fn() -> bool) {
    wait_until(
        Duration::from_secs(600),
        "the condition (virtual deadline)",
        cond,
    )
    .await;
}

#[tokio::test(start_paused = true)]
async fn register_retries_until_the_registry_accepts() {
    let steps = Arc::new(Scripted::default());
    steps.register_script.lock().unwrap().extend([
        Err("down".into()),
        Err("down".into()),
        Err("down".into()),
    ]);
    let registrar = KeepAlive::new(steps.clone(), config());
    registrar.register().await.unwrap();
    assert_eq!(steps.registers.load(Ordering::SeqCst), 4);
    assert_eq!(registrar.status(), RegistrationStatus::Registered);
}

#[tokio::test(start_paused = true)]
async fn a_lost_registration_is_registered_again() {
    let steps = Arc::new(Scripted::default());
    steps
        .renew_script
        .lock()
        .unwrap()
        .extend([Ok(Renewal::Renewed), Ok(Renewal::Lost)]);
    let registrar = KeepAlive::new(steps.clone(), config());
    registrar.register().await.unwrap();
    wait_for(|| steps.registers.load(Ordering::SeqCst) == 2).await;
    wait_for(|| steps.renews.load(Ordering::SeqCst) >= 3).await;
    assert_eq!(registrar.status(), RegistrationStatus::Registered);
}

#[tokio::test(start_paused = true)]
async fn failed_renewals_are_retried_with_backoff_forever() {
    let steps = Arc::new(Scripted::default());
    steps
        .renew_script
        .lock()
        .unwrap()
        .extend((0..50).map(|_| Err("timeout".to_string())));
    let registrar = KeepAlive::new(steps.clone(), config());
    let start = tokio::time::Instant::now();
    registrar.register().await.unwrap();
    // 50 failures then a success, without re-registering and without a hot loop: each retry
    // waited at least half its base backoff (≥ 50 ms).
    wait_for(|| steps.renews.load(Ordering::SeqCst) >= 51).await;
    assert_eq!(steps.registers.load(Ordering::SeqCst), 1);
    assert!(start.elapsed() >= Duration::from_secs(10) + Duration::from_millis(50 * 50));
}

#[tokio::test(start_paused = true)]
async fn renew_retries_never_wait_more_than_half_the_renew_interval() {
    let steps = Arc::new(Scripted::default());
    steps
        .renew_script
        .lock()
        .unwrap()
        .extend((0..20).map(|_| Err("timeout".to_string())));
    // A backoff that would grow to 60 s, under a 1 s renew interval (think TTL 2 s).
    let config = KeepAliveConfig::new(Duration::from_secs(1)).with_backoff(Backoff::new(
        Duration::from_millis(100),
        Duration::from_secs(60),
    ));
    let registrar = KeepAlive::new(steps.clone(), config);
    registrar.register().await.unwrap();
    let start = tokio::time::Instant::now();
    wait_for(|| steps.renews.load(Ordering::SeqCst) >= 21).await;
    // First renew after 1 s, then 20 retries at most 500 ms apart.
    assert!(start.elapsed() <= Duration::from_secs(11) + Duration::from_millis(20));
}

#[tokio::test(start_paused = true)]
async fn deregister_stops_renewing_first_and_is_idempotent() {
    let steps = Arc::new(Scripted::default());
    let registrar = KeepAlive::new(steps.clone(), config());
    registrar.register().await.unwrap();
    wait_for(|| steps.renews.load(Ordering::SeqCst) >= 2).await;
    registrar.deregister().await.unwrap();
    registrar.deregister().await.unwrap();
    let renews = steps.renews.load(Ordering::SeqCst);
    tokio::time::sleep(Duration::from_secs(60)).await; // virtual time: would be 6 renewals
    assert_eq!(steps.renews.load(Ordering::SeqCst), renews);
    assert_eq!(steps.deregisters.load(Ordering::SeqCst), 1);
    assert_eq!(registrar.status(), RegistrationStatus::Deregistered);
    assert!(matches!(
        registrar.register().await,
        Err(RegistrarError::Deregistered)
    ));
}

#[tokio::test(start_paused = true)]
async fn deregister_is_bounded_when_the_registry_hangs() {
    let steps = Arc::new(Scripted {
        hang_deregister: true,
        ..Scripted::default()
    });
    let registrar = KeepAlive::new(steps.clone(), config());
    registrar.register().await.unwrap();
    let start = tokio::time::Instant::now();
    let result = registrar.deregister().await;
    assert!(matches!(result, Err(RegistrarError::Timeout(d)) if d == Duration::from_secs(2)));
    assert!(start.elapsed() <= Duration::from_secs(2) + Duration::from_millis(10));
}

#[tokio::test(start_paused = true)]
async fn dropping_the_registrar_deregisters() {
    let steps = Arc::new(Scripted::default());
    let registrar = KeepAlive::new(steps.clone(), config());
    registrar.register().await.unwrap();
    drop(registrar);
    wait_for(|| steps.deregisters.load(Ordering::SeqCst) == 1).await;
}

#[tokio::test(start_paused = true)]
async fn register_while_the_registry_is_down_can_be_abandoned_by_the_caller() {
    let steps = Arc::new(Scripted::default());
    steps
        .register_script
        .lock()
        .unwrap()
        .extend((0..20).map(|_| Err("down".to_string())));
    let registrar = KeepAlive::new(steps.clone(), config());
    // The caller's deadline passes; registration goes on in the background.
    assert!(
        tokio::time::timeout(Duration::from_millis(500), registrar.register())
            .await
            .is_err()
    );
    wait_for(|| registrar.status() == RegistrationStatus::Registered).await;
    assert_eq!(steps.registers.load(Ordering::SeqCst), 21);
}
