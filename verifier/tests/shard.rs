//! One scenario sharded over many generators: four shard processes of the real binary against
//! a loopback target, merged, against a single run of the same plan; the merge's arithmetic
//! against the union of the shards' samples; and the inputs both commands must refuse.

mod support;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use rand::{Rng, SeedableRng};
use verifier::record::{Outcome, Recorder, decode_histogram, new_histogram};
use verifier::report::{GeneratorReport, Report, RunFacts};
use verifier::rule::{RuleKind, RuleResult, Status};
use verifier::shard::{SEQ_SPAN, ShardReport, scenario_sha256};
use verifier::verdict::Verdict;

const BIN: &str = env!("CARGO_BIN_EXE_verifier");

const SCENARIO: &str = r#"
name: sharded
journeys:
  - name: read
    steps:
      - { name: ping, method: GET, path: "/ping?n=${seq}" }
load:
  open:
    phases:
      - steady: { rate: 120, duration: 3s }
budgets:
  min_samples: 50
  error_rate: 0.0
  window: 1s
  endpoints:
    ping: { p50: 50ms, p99: 200ms }
"#;

fn rfc3339(t: SystemTime) -> String {
    humantime::format_rfc3339_millis(t).to_string()
}

fn read_report(p: &Path) -> Report {
    serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
}

fn rule<'a>(r: &'a Report, id: &str) -> &'a RuleResult {
    r.verdict
        .rules
        .iter()
        .find(|x| x.id == id)
        .unwrap_or_else(|| panic!("no rule {id} in {:#?}", r.verdict.rules))
}

/// Runs the binary to its end, bounded; returns exit code and stderr.
async fn verifier(args: &[&str]) -> (i32, String) {
    let child = tokio::process::Command::new(BIN)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let out = tokio::time::timeout(Duration::from_secs(90), child.wait_with_output())
        .await
        .expect("the verifier ends within its bound")
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_shard_processes_merge_into_the_single_run() {
    let _serial = support::SERIAL.lock().await;
    let seen: Arc<Mutex<Vec<u64>>> = Arc::default();
    let (url, _task) = {
        let seen = seen.clone();
        support::serve(move |req| {
            let seen = seen.clone();
            async move {
                if let Some(n) = req.target.split("n=").nth(1).and_then(|n| n.parse().ok()) {
                    seen.lock().unwrap().push(n);
                }
                tokio::time::sleep(Duration::from_millis(2)).await;
                Some("HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok".to_owned())
            }
        })
        .await
    };
    let (dir, scenario) = support::scenario_file(SCENARIO);
    let scenario = scenario.display().to_string();
    // Contention on a shared machine can make a generator fall behind (an inconclusive shard,
    // rightly); the arithmetic below holds on every attempt.
    support::with_retries(|| async {
        seen.lock().unwrap().clear();
        shards_then_single(dir.path(), &scenario, &url, &seen).await
    })
    .await;
}

async fn shards_then_single(
    dir: &Path,
    scenario: &str,
    url: &str,
    seen: &Mutex<Vec<u64>>,
) -> Result<(), String> {
    let attempt = tempfile::tempdir_in(dir).unwrap();
    let dir = attempt.path();
    let start_at = rfc3339(SystemTime::now() + Duration::from_secs(4));
    let runs: Vec<_> = (0..4)
        .map(|i| {
            let report_dir = dir.join(format!("shard-{i}"));
            let (scenario, url, start_at) = (scenario.to_owned(), url.to_owned(), start_at.clone());
            tokio::spawn(async move {
                let shard = format!("{i}/4");
                let rd = report_dir.display().to_string();
                let args = [
                    "run",
                    &scenario,
                    "--target",
                    &url,
                    "--shard",
                    &shard,
                    "--start-at",
                    &start_at,
                    "--report-dir",
                    &rd,
                    "--progress",
                    "off",
                ];
                (verifier(&args).await, report_dir.join("report.json"))
            })
        })
        .collect();
    let mut files: Vec<PathBuf> = Vec::new();
    for r in runs {
        let ((code, err), file) = r.await.unwrap();
        assert_eq!(code, 0, "a shard exits 0 once its report is written: {err}");
        files.push(file);
    }
    let shards: Vec<Report> = files.iter().map(|f| read_report(f)).collect();
    let mut seqs = std::mem::take(&mut *seen.lock().unwrap());
    for (i, r) in shards.iter().enumerate() {
        let s = r.shard.as_ref().unwrap();
        assert_eq!((s.index, s.count), (i as u32, 4));
        assert_eq!(s.scenario_sha256, scenario_sha256(SCENARIO.as_bytes()));
        let g = rule(r, "generator");
        ensure!(g.status == Status::Pass, "shard {i}: {g:?}");
        ensure!(
            rule(r, "shard.start").status == Status::Pass,
            "shard {i} started late"
        );
    }

    // The union of the shards is the single schedule: 3 s at 120/s, every arrival sent once,
    // each shard a quarter of it, its ${seq} values in its own space.
    // A shard that missed an arrival under contention (its generator rule may still pass, below
    // 5 % late) is imperfect, rightly: try again rather than judge the arithmetic on it.
    let per_shard: Vec<u64> = shards.iter().map(|r| r.overall.requests).collect();
    ensure!(
        per_shard == vec![90; 4],
        "per-shard requests {per_shard:?}, want 90 each"
    );
    seqs.sort_unstable();
    let distinct: BTreeSet<u64> = seqs.iter().copied().collect();
    assert_eq!(distinct.len(), 360, "every ${{seq}} value is used once");
    for i in 0..4u64 {
        let mine = seqs
            .iter()
            .filter(|&&n| n >= i * SEQ_SPAN && n < (i + 1) * SEQ_SPAN)
            .count();
        assert_eq!(mine, 90, "shard {i}'s seq space");
    }

    let merged_dir = dir.join("merged");
    let mut args: Vec<String> = vec!["merge".into()];
    args.extend(files.iter().map(|f| f.display().to_string()));
    args.extend(["--report-dir".into(), merged_dir.display().to_string()]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let (code, err) = verifier(&args).await;
    ensure!(code == 0, "merge exit {code}: {err}");
    let merged = read_report(&merged_dir.join("report.json"));
    assert!(merged_dir.join("junit.xml").exists() && merged_dir.join("summary.md").exists());
    assert_eq!(merged.overall.requests, 360);
    assert_eq!(merged.merged.as_ref().unwrap().shards.len(), 4);
    // The merged histogram is the sum of the shards', exactly.
    let mut sum = new_histogram();
    for r in &shards {
        sum.add(decode_histogram(&r.endpoints[0].histogram).unwrap())
            .unwrap();
    }
    assert_eq!(
        decode_histogram(&merged.endpoints[0].histogram).unwrap(),
        sum
    );
    assert_eq!(merged.endpoints[0].p99_us, sum.value_at_quantile(0.99));
    for id in [
        "latency.ping.p50",
        "latency.ping.p99",
        "error_rate",
        "window.latency.ping.p99",
        "window.error_rate",
        "generator",
        "shard.start",
    ] {
        ensure!(
            rule(&merged, id).status == Status::Pass,
            "{id}: {:?}",
            rule(&merged, id)
        );
    }
    let windows: u64 = merged.timeline.iter().map(|s| s.requests).sum();
    assert_eq!(windows, 360, "the per-window series adds up too");

    // One generator running the same plan: the same count, the same verdict, the same rules,
    // percentiles of the same order (two runs on a shared machine differ in noise only).
    let single_dir = dir.join("single");
    let sd = single_dir.display().to_string();
    let (code, err) = verifier(&[
        "run",
        scenario,
        "--target",
        url,
        "--report-dir",
        &sd,
        "--progress",
        "off",
    ])
    .await;
    ensure!(code == 0, "single run exit {code}: {err}");
    let single = read_report(&single_dir.join("report.json"));
    assert_eq!(single.overall.requests, merged.overall.requests);
    assert_eq!(single.verdict.status, merged.verdict.status);
    let ids = |r: &Report| -> BTreeSet<String> {
        r.verdict
            .rules
            .iter()
            .filter(|x| x.id != "shard.start")
            .map(|x| x.id.clone())
            .collect()
    };
    assert_eq!(ids(&single), ids(&merged));
    let (a, b) = (single.overall.p50_us as f64, merged.overall.p50_us as f64);
    ensure!(
        (a - b).abs() <= 0.5 * a.max(b),
        "p50 single {a} µs, merged {b} µs"
    );
    Ok(())
}

/// A shard report as `run --shard` writes it, from samples `(endpoint, due ms, latency µs,
/// outcome)`.
fn shard_report(
    index: u32,
    count: u32,
    source: &str,
    start_at: &str,
    samples: &[(usize, u64, u64, Outcome)],
) -> Report {
    let m = measure(samples);
    let generator = RuleResult::new("generator", RuleKind::Generator, Status::Pass);
    let mut r = Report::new(
        &facts(),
        &m,
        Verdict::decide(vec![generator], false, None),
        GeneratorReport::new(&Default::default(), 0),
    );
    r.shard = Some(ShardReport {
        index,
        count,
        start_at: start_at.into(),
        started_late_ms: 0,
        tolerance_ms: 1000,
        scenario_sha256: scenario_sha256(source.as_bytes()),
        scenario_source: source.into(),
    });
    r
}

fn facts() -> RunFacts<'static> {
    RunFacts {
        scenario: "prop",
        scenario_file: "prop.yaml",
        target: "http://127.0.0.1:1",
        started_at: SystemTime::UNIX_EPOCH,
        planned: Duration::from_secs(10),
    }
}

fn measure(samples: &[(usize, u64, u64, Outcome)]) -> verifier::record::Measurements {
    let t0 = Instant::now();
    let mut rec = Recorder::new(
        t0,
        vec!["a".into(), "b".into()],
        Some(Duration::from_secs(2)),
    )
    .with_series_window(Duration::from_secs(1));
    let mut sorted = samples.to_vec();
    sorted.sort_by_key(|s| s.1 * 1000 + s.2 / 1000);
    for &(e, due_ms, us, o) in &sorted {
        let lat = Duration::from_micros(us);
        rec.record(e, t0 + Duration::from_millis(due_ms) + lat, lat, o);
    }
    rec.finish(t0 + Duration::from_secs(10)).0
}

const PROP_SOURCE: &str = "name: prop\nbudgets:\n  min_samples: 5\n  error_rate: 0.2\n  window: 2s\n  endpoints:\n    a: { p99: 80ms }\n    \"*\": { p50: 10ms }\n";
const START: &str = "2026-12-05T22:00:00.000Z";

/// Merged histograms equal the union of the shards' samples exactly, whatever the split: every
/// endpoint's whole-run numbers, every window's counts and histogram, and the rules judged on
/// them.
#[test]
fn merged_histograms_equal_the_union_of_the_samples() {
    let mut rng = rand::rngs::StdRng::seed_from_u64(16);
    for case in 0..40 {
        let count = rng.random_range(1..=6u32);
        let n = rng.random_range(0..3000usize);
        let all: Vec<(usize, u64, u64, Outcome)> = (0..n)
            .map(|_| {
                // Log-uniform latencies from 1 µs to 10 s, so every bucket magnitude is hit.
                let us = 10f64.powf(rng.random_range(0.0..7.0)) as u64;
                let o = Outcome::ALL[rng.random_range(0..Outcome::ALL.len())];
                (
                    rng.random_range(0..2),
                    rng.random_range(0..9000),
                    us.max(1),
                    o,
                )
            })
            .collect();
        let mut parts: Vec<Vec<_>> = (0..count).map(|_| Vec::new()).collect();
        for s in &all {
            parts[rng.random_range(0..count as usize)].push(*s);
        }
        let shards: Vec<(String, Report)> = parts
            .iter()
            .enumerate()
            .map(|(i, p)| {
                (
                    format!("shard-{i}"),
                    shard_report(i as u32, count, PROP_SOURCE, START, p),
                )
            })
            .collect();
        let merged = verifier::merge::merge_reports(shards).unwrap();
        let whole = measure(&all);
        let single = Report::new(
            &facts(),
            &whole,
            Verdict::decide(vec![], false, None),
            GeneratorReport::new(&Default::default(), 0),
        );
        let json = |x: &verifier::report::EndpointReport| serde_json::to_value(x).unwrap();
        for (m, s) in merged.endpoints.iter().zip(&single.endpoints) {
            assert_eq!(json(m), json(s), "case {case}: endpoint {}", s.name);
            assert_eq!(
                decode_histogram(&m.histogram).unwrap(),
                decode_histogram(&s.histogram).unwrap()
            );
        }
        assert_eq!(json(&merged.overall), json(&single.overall), "case {case}");
        let (ms, ss) = (
            merged.series.as_ref().unwrap(),
            single.series.as_ref().unwrap(),
        );
        for (me, se) in ms.endpoints.iter().zip(&ss.endpoints) {
            let live: Vec<_> = se.windows.iter().filter(|w| w.counts.total() > 0).collect();
            let got: Vec<_> = me.windows.iter().filter(|w| w.counts.total() > 0).collect();
            assert_eq!(got.len(), live.len(), "case {case}");
            for (g, l) in got.iter().zip(live) {
                assert_eq!(g.counts, l.counts);
                assert_eq!(g.start_s, l.start_s);
                assert_eq!(
                    decode_histogram(&g.hist).unwrap(),
                    decode_histogram(&l.hist).unwrap()
                );
            }
        }
        // The whole-run rules, judged on the merge, say what they say of the union.
        let budgets: verifier::scenario::Budgets =
            serde_norway::from_str("min_samples: 5\nerror_rate: 0.2\nendpoints:\n  a: { p99: 80ms }\n  \"*\": { p50: 10ms }\n").unwrap();
        let expect = verifier::check::whole_run(&budgets, &whole, &Default::default(), 1, false);
        for e in expect.iter().filter(|r| r.kind != RuleKind::Generator) {
            let got = rule(&merged, &e.id);
            assert_eq!(
                (got.status, &got.observed),
                (e.status, &e.observed),
                "case {case}"
            );
        }
    }
}

fn write(dir: &Path, name: &str, r: &Report) -> String {
    let p = dir.join(name);
    std::fs::write(&p, serde_json::to_string(r).unwrap()).unwrap();
    p.display().to_string()
}

#[tokio::test]
async fn merge_refuses_shards_that_do_not_belong_together() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let samples = [(0, 10, 1000, Outcome::Ok)];
    let a0 = write(
        d,
        "a0.json",
        &shard_report(0, 2, PROP_SOURCE, START, &samples),
    );
    let a1 = write(
        d,
        "a1.json",
        &shard_report(1, 2, PROP_SOURCE, START, &samples),
    );
    let v2 = format!("{PROP_SOURCE}# v2\n");
    let other_version = write(d, "v2.json", &shard_report(1, 2, &v2, START, &samples));
    let three = write(
        d,
        "n3.json",
        &shard_report(1, 3, PROP_SOURCE, START, &samples),
    );
    let later = write(
        d,
        "later.json",
        &shard_report(1, 2, PROP_SOURCE, "2026-12-05T22:05:00.000Z", &samples),
    );
    let mut plain = shard_report(1, 2, PROP_SOURCE, START, &samples);
    plain.shard = None;
    let plain = write(d, "plain.json", &plain);
    let out = d.join("out").display().to_string();
    let cases: [(&[&str], &[&str]); 6] = [
        (
            &[&a0, &other_version],
            &["v2.json", "different versions of the scenario"],
        ),
        (&[&a0, &three], &["n3.json", "split 3 and 2 ways"]),
        (&[&a0], &["shard 1/2 missing"]),
        (&[&a0, &a0, &a1], &["given twice", "a0.json"]),
        (&[&a0, &later], &["later.json", "start instant"]),
        (&[&a0, &plain], &["plain.json", "not a shard report"]),
    ];
    for (files, want) in cases {
        let mut args = vec!["merge"];
        args.extend(files);
        args.extend(["--report-dir", &out]);
        let (code, err) = verifier(&args).await;
        assert_eq!(code, 2, "{files:?}: {err}");
        for w in want {
            assert!(err.contains(w), "{files:?}: `{w}` not in: {err}");
        }
    }
    // The same two shards, together, merge.
    let (code, err) = verifier(&["merge", &a0, &a1, "--report-dir", &out]).await;
    assert_ne!(code, 2, "{err}");
}

#[tokio::test]
async fn run_refuses_a_shard_that_cannot_be() {
    let (dir, scenario) = support::scenario_file(SCENARIO);
    let scenario = scenario.display().to_string();
    let rd = dir.path().join("r").display().to_string();
    let soon = rfc3339(SystemTime::now() + Duration::from_secs(30));
    let past = rfc3339(SystemTime::now() - Duration::from_secs(60));
    let cases: [(&[&str], &str); 5] = [
        (&["--shard", "4/4", "--start-at", &soon], "3/4"),
        (&["--shard", "0/0", "--start-at", &soon], "between 1 and"),
        (&["--shard", "1/4", "--start-at", &past], "in the past"),
        (&["--shard", "1/4"], "needs --start-at"),
        (&["--shard", "1/4", "--start-at", "tomorrow"], "RFC 3339"),
    ];
    for (extra, want) in cases {
        let mut args = vec![
            "run",
            &scenario,
            "--target",
            "http://127.0.0.1:9",
            "--report-dir",
            &rd,
        ];
        args.extend(extra);
        let (code, err) = verifier(&args).await;
        assert_eq!(code, 2, "{extra:?}: {err}");
        assert!(err.contains(want), "{extra:?}: `{want}` not in: {err}");
    }
}

/// The scenario the Kubernetes base ships in its ConfigMap is one `run --shard` accepts.
#[tokio::test]
async fn the_kubernetes_scenario_validates() {
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/kubernetes/base/scenario.yaml");
    let doc: serde_norway::Value =
        serde_norway::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let text = doc["data"]["scenario.yaml"].as_str().unwrap();
    let (_dir, file) = support::scenario_file(text);
    let f = file.display().to_string();
    let (code, err) = verifier(&["validate", &f, "--target", "http://127.0.0.1:8080"]).await;
    assert_eq!(code, 0, "{err}");
}

/// A shard whose generator fell behind, or that started late, makes the merged verdict
/// inconclusive and is named; the same shards without that pass.
#[test]
fn a_shard_that_fell_behind_or_started_late_makes_the_merge_inconclusive() {
    let samples: Vec<(usize, u64, u64, Outcome)> = (0..400)
        .map(|i| (0, i * 20, 1000 + i, Outcome::Ok))
        .collect();
    let (a, b): (Vec<_>, Vec<_>) = samples.iter().partition(|s| s.1 % 40 == 0);
    let good = || {
        vec![
            ("s0".to_owned(), shard_report(0, 2, PROP_SOURCE, START, &a)),
            ("s1".to_owned(), shard_report(1, 2, PROP_SOURCE, START, &b)),
        ]
    };
    let merged = verifier::merge::merge_reports(good()).unwrap();
    assert_eq!(merged.verdict.status, Status::Pass, "{:#?}", merged.verdict);

    let mut behind = good();
    behind[1].1.verdict.rules[0] =
        RuleResult::new("generator", RuleKind::Generator, Status::Inconclusive)
            .observed("late 12.00 %, CPU 97 %")
            .detail("the scheduler fell behind");
    let merged = verifier::merge::merge_reports(behind).unwrap();
    assert_eq!(merged.verdict.status, Status::Inconclusive);
    let g = rule(&merged, "generator");
    assert_eq!(g.status, Status::Inconclusive);
    assert!(
        g.detail.contains("shard 1/2 (s1)") && g.detail.contains("fell behind"),
        "{g:?}"
    );

    let mut late = good();
    late[0].1.shard.as_mut().unwrap().started_late_ms = 4000;
    let merged = verifier::merge::merge_reports(late).unwrap();
    assert_eq!(merged.verdict.status, Status::Inconclusive);
    let s = rule(&merged, "shard.start");
    assert!(
        s.detail.contains("shard 0/2 (s0) started 4000 ms late"),
        "{s:?}"
    );
}
