//! Observability acceptance checks against an instrumented stand-in: each check passes when the
//! stand-in behaves, and fails when the one thing it watches is broken (a metric of the wrong
//! type or without a label, a histogram that disagrees with the client, a traceparent not
//! continued, plain-text log lines, access lines without ids, an email in clear). The real
//! reference service passes them in `shipped_scenarios.rs` (scenarios/smoke.yaml).

mod instrumented;
mod support;

use std::sync::atomic::Ordering;
use std::time::Instant;

use verifier::observe::{ObservabilitySpec, Observer};
use verifier::record::{Outcome, Recorder};
use verifier::rule::{RuleResult, Status};

const SPEC: &str = r#"
metrics:
  http_server_requests_total: {type: counter, labels: [route, method, code_class]}
  http_server_request_duration_seconds: {type: histogram, labels: [route, method, code_class]}
  outbox_backlog_events: {type: gauge}
histogram:
  metric: http_server_request_duration_seconds
  endpoint: get-order
  labels: {route: "GET /v1/orders/{id}"}
  quantile: 0.99
  tolerance: 30ms
trace:
  path: /v1/orders?limit=1
logs: {}
"#;

/// Sends some traffic (creates with an email in the body, reads timed by the client) and runs the
/// checks over it; returns the rules by id.
async fn checks(s: &instrumented::Standin) -> Vec<RuleResult> {
    let spec: ObservabilitySpec = serde_norway::from_str(SPEC).unwrap();
    let obs = Observer::before(
        &spec,
        &s.url,
        Some(s.state.logs.clone()),
        vec![("authorization".into(), "Bearer t".into())],
    )
    .await;
    let http = reqwest::Client::new();
    let origin = Instant::now();
    let mut rec = Recorder::new(
        origin,
        vec!["get-order".into(), "create-order".into()],
        None,
    );
    for i in 0..60 {
        let create = http
            .post(format!("{}/v1/orders", s.url))
            .body(format!(r#"{{"customer_email":"obs-{i}@example.com"}}"#));
        timed(&mut rec, 1, create).await;
        timed(
            &mut rec,
            0,
            http.get(format!("{}/v1/orders/ord-{i}", s.url)),
        )
        .await;
    }
    let (m, _) = rec.finish(Instant::now());
    obs.after(&m).await.0
}

/// Sends `req` and records its status and client-side time under endpoint index `endpoint`.
async fn timed(rec: &mut Recorder, endpoint: usize, req: reqwest::RequestBuilder) {
    let t = Instant::now();
    let r = req.send().await.unwrap();
    rec.record(
        endpoint,
        Instant::now(),
        t.elapsed(),
        Outcome::from_status(r.status().as_u16(), &[]),
    );
}

fn status(rules: &[RuleResult], id: &str) -> Status {
    rules
        .iter()
        .find(|r| r.id == id)
        .unwrap_or_else(|| panic!("no rule {id}: {rules:#?}"))
        .status
}

fn only_failure(rules: &[RuleResult], id: &str) {
    for r in rules {
        let want = if r.id == id {
            Status::Fail
        } else {
            Status::Pass
        };
        assert_eq!(r.status, want, "{id} broken, but {}: {r:#?}", r.id);
    }
    let r = rules.iter().find(|r| r.id == id).unwrap();
    assert!(!r.evidence.is_empty() || !r.detail.is_empty(), "{r:#?}");
}

#[tokio::test]
async fn a_well_behaved_service_passes_every_check() {
    let s = instrumented::start().await;
    s.state.delay_ms.store(20, Ordering::SeqCst);
    let rules = checks(&s).await;
    assert_eq!(rules.len(), 8, "{rules:#?}");
    for r in &rules {
        assert_eq!(r.status, Status::Pass, "{r:#?}");
    }
}

#[tokio::test]
async fn each_broken_signal_fails_its_own_check() {
    // The broken metric: declared with the wrong type, then without a label.
    let s = instrumented::start().await;
    *s.state.metrics.lock().unwrap() = instrumented::Metrics::WrongType;
    let rules = checks(&s).await;
    only_failure(&rules, "observability.metric.http_server_requests_total");

    let s = instrumented::start().await;
    *s.state.metrics.lock().unwrap() = instrumented::Metrics::MissingLabel;
    let rules = checks(&s).await;
    for id in [
        "observability.metric.http_server_requests_total",
        "observability.metric.http_server_request_duration_seconds",
    ] {
        assert_eq!(status(&rules, id), Status::Fail, "{rules:#?}");
        let r = rules.iter().find(|r| r.id == id).unwrap();
        assert!(r.detail.contains("code_class"), "{r:#?}");
    }

    // A histogram that says 0.5 ms while requests take 60 ms.
    let s = instrumented::start().await;
    s.state.delay_ms.store(60, Ordering::SeqCst);
    *s.state.report_ms.lock().unwrap() = Some(0.5);
    let rules = checks(&s).await;
    only_failure(&rules, "observability.histogram.get-order.p99");

    // A fresh trace instead of the caller's; then no trace context at all.
    let s = instrumented::start().await;
    *s.state.trace.lock().unwrap() = instrumented::Trace::Fresh;
    only_failure(&checks(&s).await, "observability.trace");
    let s = instrumented::start().await;
    *s.state.trace.lock().unwrap() = instrumented::Trace::Nothing;
    only_failure(&checks(&s).await, "observability.trace");

    // Logs: plain text beside JSON, access lines without a request id, an email in clear.
    let s = instrumented::start().await;
    s.state.text_logs.store(true, Ordering::SeqCst);
    only_failure(&checks(&s).await, "observability.logs.json");
    let s = instrumented::start().await;
    s.state.no_request_id.store(true, Ordering::SeqCst);
    only_failure(&checks(&s).await, "observability.logs.ids");
    let s = instrumented::start().await;
    s.state.leak_email.store(true, Ordering::SeqCst);
    let rules = checks(&s).await;
    only_failure(&rules, "observability.logs.pii");
    let r = rules
        .iter()
        .find(|r| r.id == "observability.logs.pii")
        .unwrap();
    assert!(r.evidence[0].contains("obs-0@example.com"), "{r:#?}");
}

#[tokio::test]
async fn logs_the_verifier_cannot_see_are_inconclusive_not_passed() {
    let s = instrumented::start().await;
    let spec: ObservabilitySpec = serde_norway::from_str("logs: {}").unwrap();
    let obs = Observer::before(&spec, &s.url, None, Vec::new()).await;
    let (m, _) = Recorder::new(Instant::now(), vec!["x".into()], None).finish(Instant::now());
    let rules = obs.after(&m).await.0;
    assert_eq!(rules.len(), 3);
    assert!(
        rules.iter().all(|r| r.status == Status::Inconclusive),
        "{rules:#?}"
    );
}
