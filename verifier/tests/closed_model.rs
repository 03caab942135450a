//! The closed model on embedded goose: virtual users run journeys with captures, and
//! every step lands in the same recorder and verdict as the open model.

mod support;

use std::sync::{Arc, Mutex};
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
        shard: None,
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
    // Each user iteration takes about 10 + 50 + 10 ms (the pause is between the steps, not
    // after the last): 4 users for ~2.5 s is on the order of 100 journeys; think time keeps it
    // far below an unpaced loop.
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

/// Think time is a pause between a journey's steps, never after its last one: with one user,
/// the server sees `first` → (pause) → `second` → `first` of the next journey at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn think_time_pauses_between_steps_not_after_the_last() {
    let _serial = support::SERIAL.lock().await;
    let seen: Arc<Mutex<Vec<(Instant, String)>>> = Arc::default();
    let log = seen.clone();
    let (url, _task) = support::serve(move |req| {
        log.lock()
            .unwrap()
            .push((Instant::now(), req.target.clone()));
        async { Some("HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}".to_owned()) }
    })
    .await;
    let (dir, path) = support::scenario_file(
        r#"
name: think
journeys:
  - name: two-steps
    think_time: 300ms
    steps:
      - { name: first, method: GET, path: /first }
      - { name: second, method: GET, path: /second }
load:
  closed:
    phases:
      - ramp: { users: 1, duration: 1s }
      - steady: { duration: 2s }
"#,
    );
    let opts = RunOptions {
        scenario: path,
        target: Some(url),
        baseline_target: None,
        report_dir: dir.path().join("report"),
        progress: Mode::Off,
        shard: None,
    };
    run(&opts, Stop::new(), &|_| None).await.unwrap();
    // The preflight's request comes before any journey.
    let seen: Vec<(Instant, String)> = seen
        .lock()
        .unwrap()
        .iter()
        .filter(|(_, p)| p == "/first" || p == "/second")
        .cloned()
        .collect();
    let (mut within, mut between) = (Vec::new(), Vec::new());
    for w in seen.windows(2) {
        let gap = w[1].0 - w[0].0;
        match (w[0].1.as_str(), w[1].1.as_str()) {
            ("/first", "/second") => within.push(gap),
            ("/second", "/first") => between.push(gap),
            other => panic!("out of order: {other:?} in {seen:?}"),
        }
    }
    assert!(
        within.len() >= 3 && between.len() >= 2,
        "{within:?} {between:?}"
    );
    assert!(
        within.iter().all(|g| *g >= Duration::from_millis(280)),
        "the pause between the steps: {within:?}"
    );
    assert!(
        between.iter().all(|g| *g < Duration::from_millis(150)),
        "no pause after the last step: {between:?}"
    );
}
