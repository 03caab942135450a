//! The closed model on embedded goose: virtual users run journeys with captures, and
//! every step lands in the same recorder and verdict as the open model.

mod support;

use std::time::{Duration, Instant};

use verifier::load::Stop;
use verifier::report::progress::Mode;
use verifier::rule::Status;
use verifier::run::{RunOptions, run};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_run_journeys_with_captures_and_think_time() {
    let _serial = support::SERIAL.lock().await;
    let srv = support::start(Duration::from_millis(10)).await;
    let (dir, path) = support::scenario_file(
        r#"
name: closed
journeys:
  - name: place-and-read
    think_time: 50ms
    steps:
      - name: create
        method: POST
        path: /v1/orders
        headers: { Idempotency-Key: "${uuid}" }
        body: { json: { n: "${seq}" } }
        expect_status: [201]
        capture: { order_id: { json: /id } }
      - { name: read, method: GET, path: "/v1/orders/${order_id}", expect_status: [200] }
load:
  closed:
    phases:
      - ramp: { users: 4, duration: 1s }
      - steady: { duration: 2s }
budgets:
  min_samples: 20
  error_rate: 0.0
  endpoints:
    create: { p50: 50ms }
"#,
    );
    let opts = RunOptions {
        scenario: path,
        target: Some(srv.url.clone()),
        baseline_target: None,
        report_dir: dir.path().join("report"),
        progress: Mode::Off,
    };
    let t0 = Instant::now();
    let out = run(&opts, Stop::new(), &|_| None).await.unwrap();
    assert!(
        t0.elapsed() < Duration::from_secs(10),
        "took {:?}",
        t0.elapsed()
    );
    let r = &out.report;
    assert_eq!(r.model, "closed");
    let create = r.endpoints.iter().find(|e| e.name == "create").unwrap();
    let read = r.endpoints.iter().find(|e| e.name == "read").unwrap();
    // Each user iteration takes about 10 + 50 + 10 + 50 ms: 4 users for ~2.5 s is
    // on the order of 80 journeys; think time keeps it far below an unpaced loop.
    assert!(
        create.requests >= 30 && create.requests <= 200,
        "create {}",
        create.requests
    );
    assert!(
        read.requests + 4 >= create.requests,
        "read {} create {}",
        read.requests,
        create.requests
    );
    assert_eq!(read.errors, 0, "reads used the captured order ids");
    assert!(
        create.p50_us >= 10_000 && create.p50_us < 50_000,
        "p50 {}",
        create.p50_us
    );
    assert_eq!(
        r.verdict.status,
        Status::Pass,
        "{}",
        verifier::report::terminal(r)
    );
}
