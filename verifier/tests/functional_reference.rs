//! The functional passes of the shipped scenarios against the real reference service: its
//! PostgreSQL, Redis, NATS and payments stand-in as containers behind Toxiproxy, the service built
//! from this repository. Every case of the idempotent-retry matrix and the retry discipline (attempt
//! count, idle time, backoff windows, jitter, request budget, no retry of a decline) must pass,
//! measured by PostgreSQL and the payments call log.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use verifier::env::{Environment, EnvironmentSpec};
use verifier::rule::Status;

const SECRET: &str = "functional-test-secret-0123456789abcdef-xyz";

fn go_build(out: &std::path::Path, pkg: &str) {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../reference-service");
    let status = Command::new("go")
        .args(["build", "-o"])
        .arg(out)
        .arg(pkg)
        .current_dir(root)
        .status()
        .expect("go is installed (Go 1.26)");
    assert!(status.success(), "go build {pkg} failed");
}

/// One environment at a time: two on a 2-core machine would time each other's retries.
static ONE_ENV: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_reference_service_passes_the_smoke_functional_pass() {
    let took = shipped_pass("smoke.yaml").await;
    assert!(took < Duration::from_secs(30), "the pass took {took:?}");
}

/// The drill's budgets: 1 s per request, 300 ms per payments attempt, a 2 s lease.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_reference_service_passes_the_drill_functional_pass() {
    shipped_pass("chaos-drill.yaml").await;
}

/// Runs the shipped file's functional pass; every rule must pass. Returns how long it took.
async fn shipped_pass(name: &str) -> Duration {
    let _one = ONE_ENV.lock().await;
    let tmp = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    let service = tmp.join(format!("functional-service-{name}"));
    let devtoken = tmp.join(format!("functional-devtoken-{name}"));
    go_build(&service, "./cmd/service");
    go_build(&devtoken, "./cmd/devtoken");
    let token = Command::new(&devtoken)
        .args(["-tenant", "functional"])
        .env("ORDERS_JWT_SECRET", SECRET)
        .output()
        .unwrap();
    assert!(token.status.success());
    let token = String::from_utf8(token.stdout).unwrap().trim().to_owned();

    // The shipped file as it stands, with this test's service binary and secret.
    let file = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../scenarios")
        .join(name);
    let text = std::fs::read_to_string(&file)
        .unwrap()
        .replace(
            "command: [target/bin/service]",
            &format!("command: [\"{}\"]", service.display()),
        )
        .replace("${env.ORDERS_JWT_SECRET}", SECRET);
    let scenario = verifier::plan::parse(&file, &text).unwrap_or_else(|e| panic!("{e}"));
    assert!(matches!(
        scenario.environment,
        EnvironmentSpec::Testcontainers(_)
    ));
    let env = Environment::up(&scenario.environment)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let target = env.target.clone().unwrap();
    let getenv = |k: &str| (k == "VERIFIER_TOKEN").then(|| token.clone());
    let outcome = verifier::functional::before_load(
        scenario.functional(),
        &file.display().to_string(),
        &target,
        env.endpoints.clone(),
        env.injector.clone(),
        &getenv,
    )
    .await;
    let problems = env.down().await;
    let outcome = outcome.unwrap_or_else(|e| panic!("{e}"));
    for r in &outcome.rules {
        eprintln!(
            "{} {}: {}\n    {}\n    {}",
            r.status.as_str(),
            r.id,
            r.observed,
            r.detail,
            r.evidence.join("\n    ")
        );
    }
    eprintln!("{name}: functional pass took {:?}", outcome.took);
    let ids: Vec<&str> = outcome.rules.iter().map(|r| r.id.as_str()).collect();
    assert_eq!(
        ids,
        [
            "retries.payments-5xx",
            "retries.payments-5xx.idle",
            "retries.payments-5xx.backoff",
            "retries.payments-5xx.jitter",
            "retries.payments-timeouts",
            "retries.payments-timeouts.budget",
            "retries.payments-decline",
            "idempotency.createOrder.sequential-replay",
            "idempotency.createOrder.payload-mismatch",
            "idempotency.createOrder.concurrent-duplicates",
            "idempotency.createOrder.lost-response",
            "idempotency.createOrder.postgres-cut-mid-write",
            "idempotency.createOrder.downstream-once",
            "idempotency.createOrder.events-once",
        ]
    );
    let failed: Vec<_> = outcome
        .rules
        .iter()
        .filter(|r| r.status != Status::Pass)
        .map(|r| {
            format!(
                "{} {}: {} ({})",
                r.status.as_str(),
                r.id,
                r.observed,
                r.detail
            )
        })
        .collect();
    assert!(failed.is_empty(), "{name}: {failed:#?}");
    assert!(problems.is_empty(), "teardown: {problems:?}");
    outcome.took
}
