//! The reports, rendered from a fixed run, compared with reviewed snapshots
//! (`cargo insta review` after an intended change).

use std::time::{Duration, Instant, UNIX_EPOCH};

use verifier::check;
use verifier::load::EngineReport;
use verifier::plan::parse;
use verifier::record::{Outcome, Recorder, decode_histogram};
use verifier::report::{self, GeneratorReport, Report, RunFacts};
use verifier::verdict::Verdict;

const SCENARIO: &str = r#"
name: orders-smoke
journeys:
  - name: place
    steps:
      - { name: create-order, method: POST, path: /v1/orders }
      - { name: get-order, method: GET, path: /v1/orders/1 }
load:
  open:
    phases: [{ steady: { rate: 100, duration: 10s } }]
budgets:
  min_samples: 50
  error_rate: 0.01
  min_throughput: 150
  window: 5s
  endpoints:
    create-order: { p50: 20ms, p99: 100ms }
    get-order: { p99: 10ms, max: 1s }
"#;

/// A 10 s run: create-order takes 5..25 ms, get-order 1..3 ms with a 40 ms tail late in
/// the run, and two 503s on create-order.
fn fixed_report(interrupted: bool) -> Report {
    let scenario = parse(std::path::Path::new("orders-smoke.yaml"), SCENARIO).unwrap();
    let t0 = Instant::now();
    let mut rec = Recorder::new(
        t0,
        scenario.endpoints(),
        scenario.budgets.window.map(|d| d.0),
    );
    let mut watch = check::WindowWatch::new(&scenario.budgets, scenario.endpoints()).unwrap();
    for i in 0..1000u64 {
        let at = t0 + Duration::from_millis(i * 10);
        let create = Duration::from_micros(5_000 + (i * 7919) % 20_000);
        let outcome = if i % 500 == 7 {
            Outcome::Status5xx
        } else {
            Outcome::Ok
        };
        for w in rec.record(0, at, create, outcome) {
            watch.observe(&w);
        }
        let get = if i > 900 && i % 20 == 0 {
            Duration::from_millis(40)
        } else {
            Duration::from_micros(1_000 + (i * 31) % 2_000)
        };
        for w in rec.record(1, at + create, get, Outcome::Ok) {
            watch.observe(&w);
        }
    }
    let (m, last) = rec.finish(t0 + Duration::from_secs(10));
    for w in last {
        watch.observe(&w);
    }
    let engine = EngineReport {
        model: "open".into(),
        started: 1000,
        late_dispatches: 0,
        dispatch_lag_p50_us: 62,
        dispatch_lag_p99_us: 180,
        dispatch_lag_max_us: 950,
        in_flight_waits: 0,
        missed_arrivals: 0,
        reconnects: 0,
        cpu_seconds: 0.41,
        cpu_cores_used: 0.041,
    };
    let mut rules = check::whole_run(&scenario.budgets, &m, &engine, 2, interrupted);
    rules.extend(watch.results());
    let verdict = Verdict::decide(rules, interrupted, None);
    let facts = RunFacts {
        scenario: "orders-smoke",
        scenario_file: "scenarios/orders-smoke.yaml",
        target: "http://127.0.0.1:8080",
        started_at: UNIX_EPOCH + Duration::from_secs(1_795_000_000),
        planned: Duration::from_secs(10),
    };
    let mut r = Report::new(
        &facts,
        &m,
        verdict,
        GeneratorReport::new(&engine, 24 * 1024 * 1024),
    );
    r.load_phases = scenario.load.spans();
    r
}

#[test]
fn terminal_summary() {
    insta::assert_snapshot!(report::terminal(&fixed_report(false)));
}

#[test]
fn junit_one_testcase_per_rule() {
    let r = fixed_report(false);
    let xml = report::junit(&r);
    assert_eq!(xml.matches("<testcase ").count(), r.verdict.rules.len());
    insta::assert_snapshot!(xml);
}

#[test]
fn markdown_summary() {
    insta::assert_snapshot!(report::markdown(&fixed_report(false)));
}

#[test]
fn partial_run_is_marked() {
    let r = fixed_report(true);
    assert!(r.partial);
    insta::assert_snapshot!(report::terminal(&r));
}

#[test]
fn json_report() {
    let r = fixed_report(false);
    let mut v = serde_json::to_value(&r).unwrap();
    // The histograms are checked by decoding, not byte for byte: DEFLATE output may
    // differ between compressor versions while meaning the same.
    let decoded = decode_histogram(v["endpoints"][0]["histogram"].as_str().unwrap()).unwrap();
    assert_eq!(decoded.len(), r.endpoints[0].requests);
    assert_eq!(decoded.value_at_quantile(0.99), r.endpoints[0].p99_us);
    for e in v["endpoints"].as_array_mut().unwrap() {
        e["histogram"] = "[histogram]".into();
    }
    v["overall"]["histogram"] = "[histogram]".into();
    for e in v["series"]["endpoints"].as_array_mut().unwrap() {
        for w in e["windows"].as_array_mut().unwrap() {
            w["hist"] = "[histogram]".into();
        }
    }
    insta::assert_json_snapshot!(v);
}

#[test]
fn reports_are_written_to_the_report_dir() {
    let dir = tempfile::tempdir().unwrap();
    let files = report::write_all(&dir.path().join("out"), &fixed_report(false)).unwrap();
    let names: Vec<String> = files
        .iter()
        .map(|f| f.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        names,
        ["report.json", "junit.xml", "summary.md", "report.html"]
    );
    let back: Report = serde_json::from_str(&std::fs::read_to_string(&files[0]).unwrap()).unwrap();
    assert_eq!(back.verdict, fixed_report(false).verdict);
}
