//! Retry with a policy: which errors are worth another attempt, the attempt count and time
//! budget, and what a `RetryError` tells you when it gives up. Runnable with nothing installed.
//!
//! Three stand-in backends (their behaviour set by instance metadata): `a` is overloaded
//! (answers "503 unavailable", worth retrying elsewhere), `b` is healthy, `c` is slow. The
//! policy retries 503s and timeouts, and stops at once on a "400 bad request" — sending a bad
//! request to another instance only fails again.
//!
//! ```sh
//! cargo run -p sdkit --example retry_policy
//! ```

use std::time::Duration;

use sdkit::lb::RoundRobin;
use sdkit::retry::{Decision, Retry, RetryConfig, RetryError, RetryLayer};
use sdkit::{Backoff, BalancedService, BoxError, Endpointer, FixedInstancer, Instance};
use tower::{ServiceBuilder, ServiceExt, service_fn};

/// What a backend answered.
#[derive(Debug, thiserror::Error)]
enum CallError {
    #[error("{0}: 503 unavailable")]
    Unavailable(String),
    #[error("{0}: 400 bad request")]
    BadRequest(String),
}

/// Retry what another instance might answer; stop on what every instance would refuse.
fn policy(attempt: u32, error: &BoxError) -> Decision {
    match error.downcast_ref::<CallError>() {
        Some(CallError::BadRequest(_)) => Decision::Stop(Some(
            format!("request rejected at attempt {attempt}: {error}").into(),
        )),
        // 503s, timeouts, "no endpoints", connection errors: try again (within the budget).
        _ => Decision::Retry,
    }
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let instancer = FixedInstancer::new(vec![
        Instance::new("a", "10.0.0.1:80").with_meta("behaviour", "overloaded"),
        Instance::new("b", "10.0.0.2:80").with_meta("behaviour", "healthy"),
        Instance::new("c", "10.0.0.3:80").with_meta("behaviour", "slow"),
    ]);
    let endpointer = Endpointer::new(&instancer, |instance: &Instance| {
        let (id, behaviour) = (
            instance.id().to_owned(),
            instance.meta("behaviour").unwrap_or("healthy").to_owned(),
        );
        Ok::<_, BoxError>(service_fn(move |request: &'static str| {
            let (id, behaviour) = (id.clone(), behaviour.clone());
            async move {
                match (behaviour.as_str(), request) {
                    (_, "bad") => Err(CallError::BadRequest(id)),
                    ("overloaded", _) => Err(CallError::Unavailable(id)),
                    ("slow", _) => {
                        tokio::time::sleep(Duration::from_secs(5)).await;
                        Ok(format!("{id} answered {request} (slowly)"))
                    }
                    _ => Ok(format!("{id} answered {request}")),
                }
            }
        }))
    });
    endpointer.ready(Duration::from_secs(1)).await?;

    // At most 3 attempts, all within 1 s; backoff 20 ms doubling to 200 ms (half jittered).
    let config = RetryConfig::new(3, Duration::from_secs(1)).with_backoff(Backoff::new(
        Duration::from_millis(20),
        Duration::from_millis(200),
    ));
    let retry =
        Retry::balanced(RoundRobin::new(endpointer.endpoint_set()), config).with_policy(policy);

    // 1. Round-robin starts at `a` (503), the retry moves on to `b`.
    println!("1. {}", retry.call("GET /users/1").await?);

    // 2. Next in turn is `c`, slower than the whole budget: the attempt is cut short when the
    //    budget runs out, and the error says so (`BudgetExhausted`) instead of a bare timeout.
    report("2.", retry.call("GET /users/2").await);

    // 3. A bad request: the policy stops after the first attempt and replaces the error.
    report("3.", retry.call("bad").await);

    // The same retry as a tower layer, around a `BalancedService` (one pick per attempt).
    let service = ServiceBuilder::new()
        .layer(RetryLayer::new(config).with_policy(policy))
        .service(BalancedService::new(RoundRobin::new(
            endpointer.endpoint_set(),
        )));
    println!("4. {}", service.oneshot("GET /users/3").await?);

    endpointer.stop();
    Ok(())
}

/// Prints what a failed retry kept: why it gave up, the final error and every attempt's error.
fn report(step: &str, result: Result<String, RetryError>) {
    match result {
        Ok(answer) => println!("{step} {answer}"),
        Err(error) => {
            println!("{step} gave up ({:?}): {error}", error.reason());
            for (n, attempt) in error.errors().iter().enumerate() {
                println!("     attempt {}: {attempt}", n + 1);
            }
        }
    }
}
