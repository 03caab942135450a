//! The regression judge end to end, through the binary: a baseline and a candidate of known
//! latency on loopback, driven by one schedule in a paired run (`run --baseline-target`), and
//! two separate runs judged by `verifier compare`.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_verifier");

/// How a server's service time is drawn: uniform in [10, 20) ms times `scale`, and the slowest
/// `tail` share of requests `tail_factor` times longer.
#[derive(Clone, Copy)]
struct Shape {
    scale: f64,
    tail: f64,
    tail_factor: f64,
}

const SAME: Shape = Shape {
    scale: 1.0,
    tail: 0.0,
    tail_factor: 1.0,
};

async fn server(shape: Shape) -> (String, tokio::task::JoinHandle<()>) {
    let n = Arc::new(AtomicU64::new(0));
    support::serve(move |_req| {
        let i = n.fetch_add(1, Ordering::Relaxed);
        async move {
            // A fixed, well-mixed sequence: the same shape whatever the arrival order.
            let mut x = i.wrapping_mul(0x9E37_79B9_7F4A_7C15);
            x = (x ^ (x >> 29)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            let u = (x >> 11) as f64 / (1u64 << 53) as f64;
            let mut ms = (10.0 + 10.0 * u) * shape.scale;
            if u >= 1.0 - shape.tail {
                ms *= shape.tail_factor;
            }
            tokio::time::sleep(Duration::from_secs_f64(ms / 1000.0)).await;
            let body = r#"{"ok":true}"#;
            Some(format!(
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
                body.len()
            ))
        }
    })
    .await
}

fn scenario(dir: &std::path::Path, rate: u32, secs: u32, allow: &str) -> std::path::PathBuf {
    static N: AtomicU64 = AtomicU64::new(0);
    let p = dir.join(format!(
        "compare-{}.yaml",
        N.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::write(
        &p,
        format!(
            r#"name: compare-test
journeys:
  - name: read
    steps:
      - {{ name: get-thing, method: GET, path: /thing }}
load:
  open:
    max_in_flight: 64
    phases:
      - steady: {{ rate: {rate}, duration: {secs}s }}
compare:
  baseline: {{ target: "http://127.0.0.1:1" }}
  allow: {allow}
"#
        ),
    )
    .unwrap();
    p
}

struct Outcome {
    code: Option<i32>,
    stderr: String,
    report: serde_json::Value,
}

async fn paired(base: Shape, cand: Shape, rate: u32, secs: u32, allow: &str) -> Outcome {
    let (a, ta) = server(base).await;
    let (b, tb) = server(cand).await;
    let dir = tempfile::tempdir().unwrap();
    let file = scenario(dir.path(), rate, secs, allow);
    let out = tokio::process::Command::new(BIN)
        .arg("run")
        .arg(&file)
        .args(["--target", &b, "--baseline-target", &a, "--progress", "off"])
        .arg("--report-dir")
        .arg(dir.path().join("r"))
        .output()
        .await
        .unwrap();
    ta.abort();
    tb.abort();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let report = std::fs::read_to_string(dir.path().join("r/report.json"))
        .map(|t| serde_json::from_str(&t).unwrap())
        .unwrap_or(serde_json::Value::Null);
    Outcome {
        code: out.status.code(),
        stderr,
        report,
    }
}

fn decision(r: &serde_json::Value, stat: &str) -> String {
    r["comparison"]["judgements"]
        .as_array()
        .unwrap_or_else(|| panic!("no comparison in {r}"))
        .iter()
        .find(|j| j["statistic"] == stat)
        .map(|j| j["decision"].as_str().unwrap().to_owned())
        .unwrap_or_else(|| panic!("no {stat} judgement"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_candidate_ten_percent_slower_at_p50_is_a_regression() {
    let _serial = support::SERIAL.lock().await;
    let slower = Shape {
        scale: 1.10,
        ..SAME
    };
    let o = paired(SAME, slower, 200, 8, "{ p50: +3% }").await;
    assert_eq!(o.code, Some(1), "{}", o.stderr);
    assert_eq!(decision(&o.report, "p50"), "regression", "{}", o.stderr);
    assert!(o.stderr.contains("compare.get-thing.p50"), "{}", o.stderr);
    // Each side got about half the arrivals.
    let j = &o.report["comparison"]["judgements"][0];
    let (na, nb) = (
        j["baseline_requests"].as_u64().unwrap(),
        j["candidate_requests"].as_u64().unwrap(),
    );
    assert!(na.abs_diff(nb) <= 8, "{na} vs {nb}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_doubled_slowest_two_percent_is_a_p99_regression_only() {
    let _serial = support::SERIAL.lock().await;
    let tail = Shape {
        tail: 0.02,
        tail_factor: 2.0,
        ..SAME
    };
    let o = paired(SAME, tail, 200, 8, "{ p50: +10%, p99: +10% }").await;
    assert_eq!(o.code, Some(1), "{}", o.stderr);
    assert_eq!(decision(&o.report, "p99"), "regression", "{}", o.stderr);
    assert_eq!(decision(&o.report, "p50"), "no_regression", "{}", o.stderr);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn identical_servers_are_no_regression() {
    let _serial = support::SERIAL.lock().await;
    let o = paired(
        SAME,
        SAME,
        200,
        8,
        "{ p50: +5%, p99: +15%, error_rate: +1pp }",
    )
    .await;
    assert_eq!(o.code, Some(0), "{}", o.stderr);
    for s in ["p50", "p99", "error_rate"] {
        assert_eq!(decision(&o.report, s), "no_regression", "{s}: {}", o.stderr);
    }
    assert!(o.report["comparison"]["baseline_series"].is_object());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn too_little_load_is_inconclusive_and_says_how_much_more() {
    let _serial = support::SERIAL.lock().await;
    let o = paired(SAME, SAME, 4, 3, "{ p50: +5% }").await;
    assert_eq!(o.code, Some(4), "{}", o.stderr);
    assert_eq!(decision(&o.report, "p50"), "inconclusive");
    assert!(o.stderr.contains("would settle it"), "{}", o.stderr);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_faster_candidate_passes_as_an_improvement() {
    let _serial = support::SERIAL.lock().await;
    let faster = Shape { scale: 0.8, ..SAME };
    let o = paired(SAME, faster, 200, 8, "{ p50: +5% }").await;
    assert_eq!(o.code, Some(0), "{}", o.stderr);
    assert_eq!(decision(&o.report, "p50"), "improvement", "{}", o.stderr);
}

/// One run against `url` alone; returns its report.json path.
async fn single(url: &str, dir: &std::path::Path, name: &str) -> std::path::PathBuf {
    let file = dir.join(format!("{name}.yaml"));
    std::fs::write(
        &file,
        "name: compare-test\njourneys:\n  - name: read\n    steps:\n      - { name: get-thing, method: GET, path: /thing }\nload:\n  open:\n    phases:\n      - steady: { rate: 100, duration: 8s }\n",
    )
    .unwrap();
    let out_dir = dir.join(name);
    let out = tokio::process::Command::new(BIN)
        .arg("run")
        .arg(&file)
        .args(["--target", url, "--progress", "off"])
        .arg("--report-dir")
        .arg(&out_dir)
        .output()
        .await
        .unwrap();
    // No budgets: the run records and says so (exit 4); nothing failed.
    assert!(
        matches!(out.status.code(), Some(0 | 4)),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out_dir.join("report.json")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_separate_runs_reach_the_same_decisions_on_clear_cases() {
    let _serial = support::SERIAL.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let (a, ta) = server(SAME).await;
    // Clear cases only: two runs made one after the other on a busy machine drift by several
    // percent (a CI runner saw +6 % between two A runs), which is what makes them weaker evidence.
    let (b, tb) = server(Shape { scale: 2.0, ..SAME }).await;
    let ra = single(&a, dir.path(), "a").await;
    let rb = single(&b, dir.path(), "b").await;
    let ra2 = single(&a, dir.path(), "a2").await;
    ta.abort();
    tb.abort();
    let compare = |x: &std::path::Path, y: &std::path::Path, out: &str| {
        std::process::Command::new(BIN)
            .arg("compare")
            .arg(x)
            .arg(y)
            .args(["--allow", "p50=+25%"])
            .arg("--report-dir")
            .arg(dir.path().join(out))
            .output()
            .unwrap()
    };
    let slower = compare(&ra, &rb, "ab");
    let stderr = String::from_utf8_lossy(&slower.stderr);
    assert_eq!(slower.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("REGRESSION"), "{stderr}");
    assert!(stderr.contains("weaker evidence"), "{stderr}");
    let same = compare(&ra, &ra2, "aa");
    let stderr = String::from_utf8_lossy(&same.stderr);
    assert_eq!(same.status.code(), Some(0), "{stderr}");
    let json: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(dir.path().join("aa/comparison.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(json["comparison"]["mode"], "unpaired");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_comparisons_are_refused_before_any_load() {
    let dir = tempfile::tempdir().unwrap();
    let file = scenario(dir.path(), 10, 1, "{ p50: +5% }");
    let run = |args: &[&str]| {
        let out = std::process::Command::new(BIN)
            .arg("validate")
            .arg(&file)
            .args(args)
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    // The same URL on both sides.
    let (code, err) = run(&[
        "--target",
        "http://127.0.0.1:8080",
        "--baseline-target",
        "http://127.0.0.1:8080/",
    ]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("two services"), "{err}");
    // An allowance for a step the scenario does not have, and one in the wrong unit.
    for (allow, says) in [
        (
            "{ p50: +5% }\n  endpoints: { nope: { p99: +5% } }",
            "no step is called `nope`",
        ),
        ("{ error_rate: +1% }", "percentage points"),
        ("{ p75: +1% }", "p50"),
        ("{ p50: 5 }", "+5%"),
    ] {
        let f = scenario(dir.path(), 10, 1, allow);
        let out = std::process::Command::new(BIN)
            .arg("validate")
            .arg(&f)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{allow}: {err}");
        assert!(err.contains(says), "{allow}: {err}");
        assert!(err.contains("compare"), "{allow}: {err}");
    }
    // An unreachable baseline: exit 3 before load, naming it.
    let (srv, task) = server(SAME).await;
    let out = tokio::process::Command::new(BIN)
        .arg("run")
        .arg(&file)
        .args([
            "--target",
            &srv,
            "--baseline-target",
            "http://127.0.0.1:9",
            "--progress",
            "off",
        ])
        .arg("--report-dir")
        .arg(dir.path().join("r"))
        .output()
        .await
        .unwrap();
    task.abort();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{err}");
    assert!(err.contains("the baseline"), "{err}");
    // A report from an older schema, and one of another scenario.
    let old = dir.path().join("old.json");
    std::fs::write(&old, r#"{"schema_version":1,"scenario":"compare-test"}"#).unwrap();
    let other = dir.path().join("other.json");
    std::fs::write(
        &other,
        r#"{"schema_version":2,"scenario":"another","series":{"window_s":1,"endpoints":[]}}"#,
    )
    .unwrap();
    let mine = dir.path().join("mine.json");
    std::fs::write(
        &mine,
        r#"{"schema_version":2,"scenario":"compare-test","series":{"window_s":1,"endpoints":[]}}"#,
    )
    .unwrap();
    for (a, b, says) in [
        (&old, &mine, "schema 1"),
        (&mine, &other, "different scenarios"),
        (&mine, &dir.path().join("missing.json"), "cannot read"),
    ] {
        let out = std::process::Command::new(BIN)
            .arg("compare")
            .arg(a)
            .arg(b)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{err}");
        assert!(err.contains(says), "{err}");
    }
}
