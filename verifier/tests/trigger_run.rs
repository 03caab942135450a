//! Rollback triggers inside `verifier run`, against an instrumented stand-in and Debian's real
//! `prometheus` on loopback: bad definitions stop the run before load (exit 2), a trigger fires
//! over both sources when the target fails, a healthy one passes, and Prometheus going away
//! mid-run makes its triggers inconclusive, never passed.

mod common;
mod instrumented;
mod support;

use std::path::Path;
use std::sync::atomic::Ordering;
use std::time::Duration;

use verifier::load::Stop;
use verifier::report::progress;
use verifier::rule::Status;
use verifier::run::{RunError, RunOptions, run};

const TRIGGERS: &str = r#"
service:
  name: standin
  selector: 'job="JOB"'
  requests: http_server_requests_total
  errors: 'code_class="5xx"'
  latency: http_server_request_duration_seconds
slo: {target: 0.999}
time_scale: 60
min_scaled_window: 4s
triggers:
  - name: HighErrorRatio
    severity: page
    summary: More than 5 % of requests fail.
    condition:
      error_ratio: {max: 0.05, window: 4m}
  - name: SlowReads
    severity: page
    summary: p99 above 500 ms.
    condition:
      latency: {quantile: 0.99, max: 500ms, window: 4m}
  - name: Backlog
    severity: ticket
    summary: Outbox backlog.
    condition:
      saturation: {gauge: GAUGE, op: ">", threshold: 100}
"#;

fn write(
    dir: &Path,
    target: &str,
    job: &str,
    gauge: &str,
    extra: &str,
    secs: u32,
) -> std::path::PathBuf {
    std::fs::write(
        dir.join("triggers.yaml"),
        TRIGGERS.replace("JOB", job).replace("GAUGE", gauge),
    )
    .unwrap();
    let scenario = format!(
        r#"
name: trigger-run
target: {target}
journeys:
  - name: read
    steps:
      - name: get-order
        method: GET
        path: /v1/orders/ord-1
load:
  open:
    phases:
      - steady: {{ rate: 40, duration: {secs}s }}
budgets:
  min_samples: 10
triggers:
  file: triggers.yaml
  every: 1s
{extra}
"#
    );
    let p = dir.join("scenario.yaml");
    std::fs::write(&p, scenario).unwrap();
    p
}

async fn go(scenario: &Path, dir: &Path) -> Result<verifier::report::Report, RunError> {
    let opts = RunOptions {
        scenario: scenario.to_owned(),
        target: None,
        baseline_target: None,
        report_dir: dir.join("report"),
        progress: progress::Mode::Off,
        shard: None,
    };
    run(&opts, Stop::new(), &|_| None).await.map(|o| o.report)
}

fn rule<'a>(r: &'a verifier::report::Report, id: &str) -> &'a verifier::rule::RuleResult {
    r.verdict
        .rules
        .iter()
        .find(|x| x.id == id)
        .unwrap_or_else(|| panic!("no rule {id} in {:#?}", r.verdict.rules))
}

#[tokio::test]
async fn bad_definitions_stop_the_run_before_load() {
    let s = instrumented::start().await;
    let dir = tempfile::tempdir().unwrap();

    // A gauge the service does not export.
    let p = write(dir.path(), &s.url, "standin", "orders_missing_gauge", "", 2);
    let e = go(&p, dir.path()).await.unwrap_err();
    assert_eq!(e.exit_code(), 2, "{e}");
    let msg = e.to_string();
    assert!(
        msg.contains("triggers.yaml") && msg.contains("`orders_missing_gauge` is not exported"),
        "{msg}"
    );
    assert!(
        msg.contains("triggers[2].condition.saturation.gauge"),
        "{msg}"
    );

    // An expectation naming a trigger the file does not have, located in the scenario.
    let p = write(
        dir.path(),
        &s.url,
        "standin",
        "outbox_backlog_events",
        "  expect:\n    healthy: {quiet: [HighErrorRatio, NoSuchTrigger]}",
        2,
    );
    let e = go(&p, dir.path()).await.unwrap_err();
    assert_eq!(e.exit_code(), 2, "{e}");
    let msg = e.to_string();
    assert!(
        msg.contains("scenario.yaml:")
            && msg.contains("triggers.expect.healthy.quiet[1]")
            && msg.contains("NoSuchTrigger"),
        "{msg}"
    );

    // PromQL that parses as matchers but not as a regular expression: only Prometheus can tell.
    std::fs::write(
        dir.path().join("scenario.yaml"),
        std::fs::read_to_string(&p).unwrap().replace(
            "  expect:\n    healthy: {quiet: [HighErrorRatio, NoSuchTrigger]}",
            "  prometheus: start",
        ),
    )
    .unwrap();
    let t = std::fs::read_to_string(dir.path().join("triggers.yaml")).unwrap();
    std::fs::write(
        dir.path().join("triggers.yaml"),
        t.replace(
            "latency: {quantile: 0.99, max: 500ms, window: 4m}",
            "latency: {quantile: 0.99, max: 500ms, window: 4m, matchers: 'route=~\"GET (\"'}",
        ),
    )
    .unwrap();
    let e = go(&p, dir.path()).await.unwrap_err();
    assert_eq!(e.exit_code(), 2, "{e}");
    let msg = e.to_string();
    assert!(
        msg.contains("triggers[1].condition.latency") && msg.contains("does not parse"),
        "{msg}"
    );

    assert_eq!(
        s.state.served.load(Ordering::SeqCst),
        0,
        "no load may start after a bad definition"
    );
}

/// Waits for the stand-in's first request, then `delay`. Bounded: a run that never sends load
/// fails the test instead of leaving it waiting.
async fn after_first_request(st: &instrumented::State, delay: Duration) {
    tokio::time::timeout(Duration::from_secs(60), async {
        while st.served.load(Ordering::SeqCst) == 0 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("the run sent no request within 60 s");
    tokio::time::sleep(delay).await;
}

#[tokio::test]
async fn a_failing_target_fires_the_trigger_over_both_sources() {
    let s = instrumented::start().await;
    let dir = tempfile::tempdir().unwrap();
    let p = write(
        dir.path(),
        &s.url,
        "standin",
        "outbox_backlog_events",
        "  prometheus: start",
        11,
    );
    // Fail from 3 s to 7 s of the load (preparing Prometheus comes first; count from the first
    // request).
    let st = s.state.clone();
    let flip = tokio::spawn(async move {
        after_first_request(&st, Duration::from_secs(3)).await;
        st.failing.store(true, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_secs(4)).await;
        st.failing.store(false, Ordering::SeqCst);
    });
    let r = go(&p, dir.path()).await.expect("run");
    flip.await.unwrap();
    for id in [
        "trigger.HighErrorRatio",
        "trigger.HighErrorRatio.prometheus",
    ] {
        let x = rule(&r, id);
        assert_eq!(x.status, Status::Fail, "{x:#?}");
        assert!(x.evidence.iter().any(|e| e.contains("breached")), "{x:#?}");
    }
    assert!(
        rule(&r, "trigger.HighErrorRatio.prometheus")
            .evidence
            .iter()
            .any(|e| e.contains("http_server_requests_total") && e.contains("[4s]")),
        "the PromQL, at the scaled window, is evidence"
    );
    for id in ["trigger.Backlog", "trigger.Backlog.prometheus"] {
        assert_eq!(rule(&r, id).status, Status::Pass, "{:#?}", rule(&r, id));
    }
    assert_eq!(r.verdict.status, Status::Fail);
    let t = r.triggers.as_ref().expect("trigger report");
    let fired = t
        .triggers
        .iter()
        .find(|x| x.name == "HighErrorRatio" && x.source == "own")
        .and_then(|x| x.fired_at_s)
        .expect("fired");
    assert!((3.0..=9.0).contains(&fired), "fired at {fired}");
    let md = std::fs::read_to_string(dir.path().join("report/summary.md")).unwrap();
    assert!(
        md.contains("Rollback triggers") && md.contains("`HighErrorRatio`"),
        "{md}"
    );
}

#[tokio::test]
async fn prometheus_going_away_mid_run_makes_its_triggers_inconclusive() {
    let s = instrumented::start().await;
    let mut prom = common::prometheus(&[s.url.trim_start_matches("http://").to_owned()]).await;
    let dir = tempfile::tempdir().unwrap();
    let p = write(
        dir.path(),
        &s.url,
        "svc",
        "outbox_backlog_events",
        &format!("  prometheus: {}", prom.url),
        10,
    );
    let st = s.state.clone();
    let killer = tokio::spawn(async move {
        after_first_request(&st, Duration::from_secs(6)).await;
        prom.kill();
    });
    let r = go(&p, dir.path()).await.expect("run");
    killer.await.unwrap();
    for name in ["HighErrorRatio", "SlowReads", "Backlog"] {
        let own = rule(&r, &format!("trigger.{name}"));
        assert_eq!(own.status, Status::Pass, "{own:#?}");
        let prom = rule(&r, &format!("trigger.{name}.prometheus"));
        assert_eq!(prom.status, Status::Inconclusive, "{prom:#?}");
        assert!(
            prom.evidence
                .iter()
                .any(|e| e.contains("could not be asked")),
            "{prom:#?}"
        );
    }
    assert_eq!(
        r.verdict.status,
        Status::Inconclusive,
        "{}",
        r.verdict.reason
    );
}

#[test]
fn the_shipped_drill_expects_triggers_the_trigger_file_defines() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios");
    let s = verifier::plan::load_file(&root.join("chaos-drill.yaml")).unwrap();
    let spec = s.triggers.expect("the drill proves the triggers");
    let defs = verifier::trigger::load_file(&root.join(&spec.file)).unwrap();
    let names: Vec<&str> = defs.defs.triggers.iter().map(|t| t.name.as_str()).collect();
    assert!(spec.expect.contains_key("healthy"));
    for (fault, e) in &spec.expect {
        for t in e.fire.iter().chain(&e.quiet) {
            assert!(names.contains(&t.as_str()), "{fault}: {t} not in {names:?}");
        }
    }
}
