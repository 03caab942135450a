//! The testcontainers provider end to end: PostgreSQL, Redis, NATS and the payments stand-in as
//! containers behind their own Toxiproxy proxies, the real orders service as a process wired to
//! those proxies, and faults from the timeline reaching the service through them.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use tokio::sync::watch;
use verifier::env::{Environment, EnvironmentSpec};
use verifier::fault::plan::{self, Fault, FaultKind};
use verifier::fault::timeline;
use verifier::fault::toxiproxy::Stream;
use verifier::scenario::Dur;

/// Builds the orders service from this repository (Go's build cache makes repeats cheap).
fn build_service() -> PathBuf {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let out = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("orders-service");
    let status = std::process::Command::new("go")
        .args(["build", "-o"])
        .arg(&out)
        .arg("./cmd/service")
        .current_dir(root.join("reference-service"))
        .status()
        .expect("go is installed (Go 1.26)");
    assert!(status.success(), "go build ./cmd/service failed");
    out
}

fn spec(service: &std::path::Path) -> EnvironmentSpec {
    let yaml = format!(
        r#"
testcontainers:
  dependencies: [postgres, redis, nats, payments]
  startup_timeout: 90s
  service:
    command: ["{}"]
    ready_path: /readyz
    shutdown_grace: 10s
    env:
      ORDERS_HTTP_ADDR: ${{service.addr}}
      ORDERS_DATABASE_URL: postgres://kit:kit@${{postgres.addr}}/kit?sslmode=disable
      ORDERS_REDIS_ADDR: ${{redis.addr}}
      ORDERS_NATS_URL: nats://${{nats.addr}}
      ORDERS_PAYMENTS_URL: http://${{payments.addr}}
      ORDERS_JWT_SECRET: an-hs256-secret-of-at-least-32-bytes!
      ORDERS_DRAIN_DELAY: 0s
"#,
        service.display()
    );
    // A scenario reads `environment:` the same way: a one-key map names the provider.
    serde_norway::with::singleton_map::deserialize(serde_norway::Deserializer::from_str(&yaml))
        .expect("environment spec parses")
}

async fn readyz(target: &str) -> (u16, Duration) {
    let start = Instant::now();
    let status = reqwest::Client::new()
        .get(format!("{target}/readyz"))
        .timeout(Duration::from_secs(3))
        .send()
        .await
        .map(|r| r.status().as_u16())
        .unwrap_or(0);
    (status, start.elapsed())
}

fn fault(name: &str, start_ms: u64, dur_ms: u64, kind: FaultKind) -> Fault {
    Fault {
        name: name.into(),
        target: "postgres".into(),
        start: Dur(Duration::from_millis(start_ms)),
        duration: Dur(Duration::from_millis(dur_ms)),
        fault: kind,
        toxicity: 1.0,
        stream: Stream::Downstream,
        expect: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_service_runs_behind_proxies_and_feels_their_faults() {
    let binary = build_service();
    let spec = spec(&binary);
    let caps = Environment::capabilities(&spec);
    let plan = vec![
        fault(
            "pg-slow",
            0,
            1_500,
            FaultKind::Latency {
                delay: Dur(Duration::from_millis(300)),
                jitter: Dur(Duration::ZERO),
            },
        ),
        fault("pg-down", 2_000, 2_500, FaultKind::Down),
    ];
    plan::validate(&plan, &caps, Duration::from_secs(10)).expect("a plan the provider can honour");

    let env = Environment::up(&spec)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let target = env.target.clone().expect("the provider knows the target");
    assert_eq!(readyz(&target).await.0, 200, "ready before any fault");

    let (_tx, rx) = watch::channel(false);
    let t0 = tokio::time::Instant::now();
    let run = tokio::spawn(timeline::run(
        env.injector.clone().expect("an injector"),
        plan,
        t0,
        rx,
    ));

    tokio::time::sleep_until(t0 + Duration::from_millis(400)).await;
    let (slow_status, slow_took) = readyz(&target).await;
    tokio::time::sleep_until(t0 + Duration::from_millis(3_000)).await;
    let (down_status, _) = readyz(&target).await;
    let records = run.await.expect("timeline");
    // Back after the fault: the pool reconnects through the re-enabled proxy.
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut after = readyz(&target).await.0;
    while after != 200 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(200)).await;
        after = readyz(&target).await.0;
    }

    let problems = env.down().await;
    eprintln!(
        "slow: {slow_status} in {slow_took:?}; down: {down_status}; after: {after}\n{records:#?}"
    );
    // Slow is not down: the service keeps idle connections, so its probe pays the toxic on a
    // ping or two, not on a three-round-trip handshake that would outlast its 1 s timeout.
    assert_eq!(slow_status, 200, "a 300 ms slow database is still ready");
    assert!(
        slow_took >= Duration::from_millis(300),
        "a 300 ms toxic on postgres slows the readiness check's ping: {slow_took:?}"
    );
    assert_eq!(
        down_status, 503,
        "postgres down through its proxy makes the service unready"
    );
    assert_eq!(after, 200, "the service recovers after the fault");
    assert!(records.iter().all(|r| r.error.is_none()), "{records:?}");
    assert!(problems.is_empty(), "teardown: {problems:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_that_cannot_start_fails_with_its_last_words() {
    let mut spec = spec(std::path::Path::new("/bin/sh"));
    if let EnvironmentSpec::Testcontainers(c) = &mut spec {
        c.dependencies = vec![verifier::env::Dependency::Redis];
        c.service.command = vec![
            "/bin/sh".into(),
            "-c".into(),
            "echo 'config: ORDERS_DATABASE_URL is required' >&2; exit 3".into(),
        ];
        c.service.env.clear();
    }
    let started = Instant::now();
    let err = match Environment::up(&spec).await {
        Ok(_) => panic!("a service that exits cannot be ready"),
        Err(e) => e.to_string(),
    };
    assert!(err.contains("exited before it was ready"), "{err}");
    assert!(err.contains("ORDERS_DATABASE_URL is required"), "{err}");
    assert!(started.elapsed() < Duration::from_secs(60));
}
