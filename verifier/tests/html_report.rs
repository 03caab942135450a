//! `report.html` in a real browser: Debian's `chromium`, headless, with networking disabled,
//! loads each page from disk. A test fails on a script or resource error, a console error, a
//! missing plot, a plot of zero size, or a plot whose drawn series differ from what it meant to
//! draw (the page writes what it finds into `#render-check`, read here with `--dump-dom`).
//! A PNG screenshot is saved next to each report. The reports are built from synthetic runs:
//! a passing smoke run, a failing one, a drill with faults and triggers, a paired comparison, and
//! a one-hour run whose page must stay under 2 MB.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, UNIX_EPOCH};

use verifier::compare::{ComparisonReport, Pairing, Settings, Statistic};
use verifier::drill::{FaultEffect, FaultReport, InvariantReport};
use verifier::load::EngineReport;
use verifier::record::series::{Series, window_for};
use verifier::record::{Outcome, Recorder, Stats};
use verifier::report::{self, EndpointReport, GeneratorReport, Report, RunFacts};
use verifier::rule::{RuleKind, RuleResult, Status};
use verifier::scenario::spans::LoadSpan;
use verifier::trigger::gate::{Detection, TriggerReport, TriggerTrack};
use verifier::verdict::Verdict;

/// A synthetic run: `endpoints` at `rate` requests per second each for `secs`; `latency_us` and
/// `outcome` give each request's latency and outcome from (endpoint, second, index).
struct Synthetic<'a> {
    endpoints: &'a [&'a str],
    secs: u64,
    rate: u64,
    latency_us: &'a dyn Fn(usize, u64, u64) -> u64,
    outcome: &'a dyn Fn(usize, u64, u64) -> Outcome,
}

fn engine() -> EngineReport {
    EngineReport {
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
    }
}

fn measure(s: &Synthetic<'_>) -> verifier::record::Measurements {
    let t0 = Instant::now();
    let names: Vec<String> = s.endpoints.iter().map(|e| (*e).to_owned()).collect();
    let planned = Duration::from_secs(s.secs);
    let mut rec = Recorder::new(t0, names, Some(Duration::from_secs(10)))
        .with_series_window(window_for(planned));
    for sec in 0..s.secs {
        for i in 0..s.rate {
            let due = Duration::from_secs(sec) + Duration::from_micros(i * 1_000_000 / s.rate);
            for e in 0..s.endpoints.len() {
                let lat = Duration::from_micros((s.latency_us)(e, sec, i));
                let _ = rec.record(e, t0 + due + lat, lat, (s.outcome)(e, sec, i));
            }
        }
    }
    rec.finish(t0 + planned).0
}

fn build(name: &str, s: &Synthetic<'_>, rules: Vec<RuleResult>) -> Report {
    let m = measure(s);
    let facts = RunFacts {
        scenario: name,
        scenario_file: "scenarios/synthetic.yaml",
        target: "http://127.0.0.1:8080",
        started_at: UNIX_EPOCH + Duration::from_secs(1_795_000_000),
        planned: Duration::from_secs(s.secs),
    };
    let verdict = Verdict::decide(rules, false, None);
    Report::new(
        &facts,
        &m,
        verdict,
        GeneratorReport::new(&engine(), 24 << 20),
    )
}

fn rule(id: &str, kind: RuleKind, status: Status) -> RuleResult {
    RuleResult::new(id, kind, status)
        .budget("p95 <= 50 ms")
        .observed("12.0 ms")
}

fn passing_rules() -> Vec<RuleResult> {
    let mut v = vec![
        rule("latency.create-order.p95", RuleKind::Latency, Status::Pass),
        rule("latency.get-order.p95", RuleKind::Latency, Status::Pass),
        rule("error_rate", RuleKind::ErrorRate, Status::Pass),
    ];
    for i in 0..9 {
        v.push(rule(
            &format!("contract.op{i}"),
            RuleKind::Contract,
            Status::Pass,
        ));
    }
    v
}

fn smooth(e: usize, sec: u64, i: u64) -> u64 {
    2_000 + 1_500 * e as u64 + (sec * 7919 + i * 104_729) % 6_000
}

fn smoke() -> Report {
    build(
        "smoke",
        &Synthetic {
            endpoints: &["create-order", "get-order"],
            secs: 60,
            rate: 40,
            latency_us: &smooth,
            outcome: &|_, _, _| Outcome::Ok,
        },
        passing_rules(),
    )
}

fn failing() -> Report {
    let mut rules = passing_rules();
    rules.push(
        rule("latency.create-order.p99", RuleKind::Latency, Status::Fail)
            .observed("180.0 ms")
            .detail("4 of 2400 answers above the budget")
            .evidence(vec![
                "curl -sS -X POST http://127.0.0.1:8080/v1/orders -H 'Idempotency-Key: k1'".into(),
                format!(
                    "answer: 503 {{\"detail\": \"{}\"}}",
                    "upstream timed out ".repeat(12)
                ),
            ]),
    );
    rules.push(
        rule(
            "contract.getOrder.404",
            RuleKind::Contract,
            Status::Inconclusive,
        )
        .detail("no sampled exchange"),
    );
    build(
        "smoke",
        &Synthetic {
            endpoints: &["create-order", "get-order"],
            secs: 60,
            rate: 40,
            latency_us: &|e, sec, i| {
                if e == 0 && (30..40).contains(&sec) {
                    150_000 + i * 500
                } else {
                    smooth(e, sec, i)
                }
            },
            outcome: &|e, sec, i| match (e, sec, i % 10) {
                (0, 30..=39, 0) => Outcome::Status5xx,
                (1, 35..=37, 1) => Outcome::Timeout,
                _ => Outcome::Ok,
            },
        },
        rules,
    )
}

fn drill() -> Report {
    let mut rules = passing_rules();
    rules.push(rule("fault.redis-down", RuleKind::Fault, Status::Pass));
    rules.push(
        rule(
            "steady.during.redis-down.p99",
            RuleKind::Latency,
            Status::Pass,
        )
        .scope("during redis-down (20 s–35 s)"),
    );
    rules.push(rule(
        "invariant.acknowledged",
        RuleKind::Invariant,
        Status::Pass,
    ));
    let mut r = build(
        "chaos-drill",
        &Synthetic {
            endpoints: &["create-order", "get-order", "list-orders"],
            secs: 90,
            rate: 30,
            latency_us: &|e, sec, i| {
                if (20..35).contains(&sec) {
                    40_000 + smooth(e, sec, i) * 4
                } else {
                    smooth(e, sec, i)
                }
            },
            outcome: &|_, sec, i| {
                if (20..35).contains(&sec) && i % 7 == 0 {
                    Outcome::Status5xx
                } else {
                    Outcome::Ok
                }
            },
        },
        rules,
    );
    r.load_phases = vec![
        LoadSpan {
            kind: "ramp".into(),
            label: "ramp 0→30/s".into(),
            start_s: 0.0,
            end_s: 10.0,
        },
        LoadSpan {
            kind: "steady".into(),
            label: "30/s".into(),
            start_s: 10.0,
            end_s: 90.0,
        },
    ];
    r.faults = vec![
        FaultReport {
            name: "redis-down".into(),
            target: "redis".into(),
            kind: "down".into(),
            planned_start_s: 20.0,
            planned_end_s: 35.0,
            applied_at_s: Some(20.1),
            reverted_at_s: Some(35.0),
            expect: Some("degraded reads".into()),
            error: None,
            observed: Some(FaultEffect {
                requests: 1350,
                error_rate: 0.14,
                p99_us: 80_000,
            }),
        },
        FaultReport {
            name: "postgres-latency".into(),
            target: "postgres".into(),
            kind: "latency".into(),
            planned_start_s: 55.0,
            planned_end_s: 65.0,
            applied_at_s: Some(55.0),
            reverted_at_s: Some(65.1),
            expect: None,
            error: None,
            observed: None,
        },
    ];
    r.invariants = Some(InvariantReport {
        acknowledged: 2700,
        uncertain: 12,
        violations: Vec::new(),
        inconclusive: None,
    });
    r.triggers = Some(TriggerReport {
        file: "dashboards/triggers.yaml".into(),
        prometheus: None,
        every_s: 1.0,
        triggers: vec![TriggerTrack {
            name: "error-ratio".into(),
            source: "own".into(),
            windows: "5m/1m as 5s/1s".into(),
            result: Status::Fail,
            fired_at_s: Some(23.0),
            firing_s: vec![(23.0, 37.0)],
            evaluations: 90,
            inconclusive: 0,
        }],
        detections: vec![Detection {
            fault: "pg-down".into(),
            trigger: "error-ratio".into(),
            source: "own".into(),
            expected: "fire".into(),
            detected_after_s: Some(3.0),
            within_s: Some(10.0),
            status: Status::Pass,
        }],
        untested: vec!["slow-burn".into()],
        unwatched: vec!["latency".into()],
    });
    r
}

fn comparison() -> Report {
    let s = |slow: u64| Synthetic {
        endpoints: &["create-order"],
        secs: 30,
        rate: 40,
        latency_us: if slow == 0 {
            &smooth
        } else {
            &|e, sec, i| smooth(e, sec, i) * 5 / 4
        },
        outcome: &|_, _, _| Outcome::Ok,
    };
    let base = measure(&s(0));
    let mut r = build("compare", &s(1), passing_rules());
    let cand = verifier::record::series::Series::from_report(r.series.as_ref().unwrap()).unwrap();
    let wanted = vec![(
        "create-order".to_owned(),
        Statistic::P99,
        verifier::compare::Change::parse("+10%").unwrap(),
    )];
    let mut c = ComparisonReport::judge(
        &base.series,
        &cand,
        &wanted,
        Settings {
            confidence: 0.95,
            resamples: 200,
            seed: 1,
            pairing: Pairing::Paired,
        },
        ("http://127.0.0.1:8081", "http://127.0.0.1:8080"),
    );
    c.baseline_series = Some(base.series.to_report());
    // The judge's rules join the verdict, as in a paired run.
    let mut rules = r.verdict.rules.clone();
    rules.extend(c.rules());
    r.verdict = Verdict::decide(rules, false, None);
    r.exit_code = r.verdict.status.exit_code();
    r.comparison = Some(c);
    r
}

/// An hour of five endpoints: the page draws from the series, so the series is the hour's
/// (recorded directly: the sliding-window recorder would take a minute of a debug build here).
fn one_hour() -> Report {
    let names = ["create-order", "get-order", "list-orders", "pay", "refund"];
    let mut r = build(
        "acceptance",
        &Synthetic {
            endpoints: &names,
            secs: 10,
            rate: 5,
            latency_us: &smooth,
            outcome: &|_, _, _| Outcome::Ok,
        },
        passing_rules(),
    );
    let hour = Duration::from_secs(3600);
    let mut s = Series::new(
        names.iter().map(|n| (*n).to_owned()).collect(),
        window_for(hour),
    );
    let mut whole: Vec<Stats> = names.iter().map(|_| Stats::new()).collect();
    for sec in 0..3600u64 {
        for i in 0..5u64 {
            let due = Duration::from_secs(sec) + Duration::from_millis(i * 200);
            for (e, w) in whole.iter_mut().enumerate() {
                let outcome = if sec % 600 == 0 && i == 0 {
                    Outcome::Status5xx
                } else {
                    Outcome::Ok
                };
                // A tail: one answer in a thousand is slow, so the spectrum spans its decades.
                let us = if (sec * 5 + i) % 1000 == 999 {
                    250_000
                } else {
                    smooth(e, sec, i)
                };
                s.record(e, due, Duration::from_micros(us), outcome);
                w.hist.saturating_record(us);
                w.counts.add(outcome, 1);
            }
        }
    }
    // The whole-run numbers are the hour's too.
    let mut all = Stats::new();
    for (e, w) in whole.iter().enumerate() {
        r.endpoints[e] = EndpointReport::from_stats(names[e], w);
        all.merge(w);
    }
    r.overall = EndpointReport::from_stats("*", &all);
    r.throughput_rps = all.counts.total() as f64 / 3600.0;
    r.series = Some(s.to_report());
    r.elapsed_s = 3600.0;
    r.planned_s = 3600.0;
    r
}

fn out_dir(name: &str) -> PathBuf {
    let d = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("html-report")
        .join(name);
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Runs chromium with `args` and the page, networking disabled, bounded in time.
fn chromium(profile: &Path, args: &[String], page: &Path, name: &str) -> (String, String) {
    let bin = std::env::var("CHROMIUM").unwrap_or_else(|_| "chromium".into());
    let mut cmd = Command::new(&bin);
    cmd.args([
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--no-first-run",
        "--disable-extensions",
        "--disable-background-networking",
        "--disable-sync",
        "--disable-component-update",
        "--disable-default-apps",
        // Nothing may leave the machine: every name resolves nowhere, every proxy is a dead
        // loopback port.
        "--host-resolver-rules=MAP * ~NOTFOUND",
        "--proxy-server=127.0.0.1:9",
        "--enable-logging=stderr",
        "--v=0",
        "--hide-scrollbars",
        "--virtual-time-budget=3000",
    ])
    .arg(format!("--user-data-dir={}", profile.display()))
    .args(args)
    .arg(format!("file://{}", page.display()));
    // Into files, not pipes: a page's DOM outgrows a pipe's buffer, and chromium would block.
    let dir = page.parent().unwrap();
    let (out_path, err_path) = (
        dir.join(format!("{name}.out")),
        dir.join(format!("{name}.log")),
    );
    cmd.stdin(Stdio::null())
        .stdout(std::fs::File::create(&out_path).unwrap())
        .stderr(std::fs::File::create(&err_path).unwrap());
    let mut child = cmd.spawn().unwrap_or_else(|e| {
        panic!(
            "cannot start `{bin}` ({e}): the browser check needs Debian's chromium \
             (platform/tools.sh installs it; or apt-get install chromium)"
        )
    });
    let deadline = Instant::now() + Duration::from_secs(25);
    loop {
        if child.try_wait().unwrap().is_some() {
            break;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("chromium did not finish within 25 s on {}", page.display());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let status = child.wait().unwrap();
    let out = String::from_utf8_lossy(&std::fs::read(&out_path).unwrap()).into_owned();
    let err = String::from_utf8_lossy(&std::fs::read(&err_path).unwrap()).into_owned();
    assert!(
        status.success(),
        "chromium failed on {}: {err}",
        page.display()
    );
    (out, err)
}

/// One plot as the page found it in the DOM.
#[derive(Debug)]
struct Seen {
    id: String,
    series: usize,
    drawn: usize,
    w: u32,
    h: u32,
}

fn html_unescape(s: &str) -> String {
    s.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&amp;", "&")
}

/// Loads the page, checks it, saves a screenshot; returns the plots the page found and the
/// time the page took to load and check itself, in milliseconds.
fn check_in_browser(dir: &Path) -> (Vec<Seen>, f64) {
    let page = dir.join("report.html");
    let profile = tempfile::tempdir().unwrap();
    let (dom, log) = chromium(profile.path(), &["--dump-dom".into()], &page, "dom");
    // Chromium logs what the page wrote to the console as `CONSOLE` lines; an error there (or a
    // refused load) fails the page.
    let console: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("CONSOLE") || l.contains("Refused to") || l.contains("Uncaught"))
        .collect();
    assert!(
        console.is_empty(),
        "{}: console output: {console:#?}",
        page.display()
    );
    let start = dom
        .find(r#"<pre id="render-check">"#)
        .unwrap_or_else(|| panic!("{}: no #render-check in the DOM", page.display()));
    let body = &dom[start + r#"<pre id="render-check">"#.len()..];
    let check = html_unescape(&body[..body.find("</pre>").unwrap()]);
    assert!(
        check.lines().last() == Some("render-check: done"),
        "{}: the page's own check did not pass:\n{check}",
        page.display()
    );
    let mut seen = Vec::new();
    let mut ms = f64::NAN;
    for l in check.lines() {
        if let Some(t) = l.strip_prefix("time ") {
            ms = t.trim_end_matches(" ms").parse().unwrap();
        }
        let Some(rest) = l.strip_prefix("plot ") else {
            continue;
        };
        let f: Vec<&str> = rest.split(' ').collect();
        let num = |k: &str| {
            f.iter()
                .find_map(|x| x.strip_prefix(k))
                .unwrap_or_else(|| panic!("{l}: no {k}"))
                .to_owned()
        };
        let (w, h) = num("size=")
            .split_once('x')
            .map(|(a, b)| (a.parse().unwrap(), b.parse().unwrap()))
            .unwrap();
        seen.push(Seen {
            id: f[0].to_owned(),
            series: num("series=").parse().unwrap(),
            drawn: num("drawn=").parse().unwrap(),
            w,
            h,
        });
    }
    for p in &seen {
        assert!(
            p.w > 0 && p.h > 0,
            "{}: plot {} has zero size",
            page.display(),
            p.id
        );
        assert_eq!(
            p.series,
            p.drawn,
            "{}: plot {} meant to draw {} series, the DOM shows {}",
            page.display(),
            p.id,
            p.series,
            p.drawn
        );
    }
    let shot = dir.join("report.png");
    chromium(
        profile.path(),
        &[
            format!("--screenshot={}", shot.display()),
            "--window-size=1100,2600".into(),
        ],
        &page,
        "screenshot",
    );
    let png = std::fs::read(&shot).unwrap();
    assert!(
        png.len() > 10_000 && png.starts_with(b"\x89PNG"),
        "{}",
        shot.display()
    );
    (seen, ms)
}

/// The series each plot must draw: `(plot id, series)`, in page order.
fn expect(seen: &[Seen], want: &[(&str, usize)]) {
    let got: Vec<(String, usize)> = seen.iter().map(|s| (s.id.clone(), s.drawn)).collect();
    let want: Vec<(String, usize)> = want.iter().map(|(i, n)| ((*i).to_owned(), *n)).collect();
    assert_eq!(got, want);
}

fn write(name: &str, r: &Report) -> PathBuf {
    let dir = out_dir(name);
    report::write_all(&dir, r).unwrap();
    dir
}

#[test]
fn a_passing_smoke_report_renders() {
    let dir = write("smoke-pass", &smoke());
    let html = std::fs::read_to_string(dir.join("report.html")).unwrap();
    assert!(html.contains("<details><summary>contract 9/9 pass</summary>"));
    let (seen, _) = check_in_browser(&dir);
    // Latency: p50, p90, p99, max. Throughput: answers only (no errors). Spectrum: one.
    expect(
        &seen,
        &[
            ("e0-latency", 4),
            ("e0-throughput", 1),
            ("e0-spectrum", 1),
            ("e1-latency", 4),
            ("e1-throughput", 1),
            ("e1-spectrum", 1),
        ],
    );
}

#[test]
fn a_failing_report_leads_with_its_failures() {
    let dir = write("smoke-fail", &failing());
    let html = std::fs::read_to_string(dir.join("report.html")).unwrap();
    let fail = html.find("latency.create-order.p99").unwrap();
    assert!(fail < html.find("Passing rules").unwrap());
    assert!(html.contains("curl -sS -X POST"));
    let (seen, _) = check_in_browser(&dir);
    // create-order: answers and 5xx; get-order: answers and timeouts.
    expect(
        &seen,
        &[
            ("e0-latency", 4),
            ("e0-throughput", 2),
            ("e0-spectrum", 1),
            ("e1-latency", 4),
            ("e1-throughput", 2),
            ("e1-spectrum", 1),
        ],
    );
}

#[test]
fn a_drill_report_shows_faults_triggers_and_nothing_lost() {
    let dir = write("drill", &drill());
    let html = std::fs::read_to_string(dir.join("report.html")).unwrap();
    for s in [
        "<h2>Faults</h2>",
        "<h2>Steady-state phases</h2>",
        "<h2>Nothing lost</h2>",
        "<h2>Rollback triggers</h2>",
        "error-ratio (own) fired at 23.0 s",
        "<h3>Drill expectations</h3>",
        "<td>pg-down</td><td>error-ratio</td><td>own</td><td>fire within 10 s</td><td class=\"n\">3.0 s</td>",
        "no fault was seen to fire them as expected)",
        "<code>slow-burn</code>",
        "Not watched in the healthy phase",
        "<code>latency</code>",
    ] {
        assert!(html.contains(s), "{s}");
    }
    // Two fault bands on each of the six plots over time.
    assert_eq!(html.matches(r#"<g class="band">"#).count(), 2 * 6);
    // Two load phases on each of them, named.
    assert_eq!(html.matches(r#"<g class="phase">"#).count(), 2 * 6);
    assert!(html.contains("ramp 0→30/s"));
    let (seen, _) = check_in_browser(&dir);
    let mut want = Vec::new();
    let ids: Vec<String> = (0..3)
        .flat_map(|e| {
            [
                format!("e{e}-latency"),
                format!("e{e}-throughput"),
                format!("e{e}-spectrum"),
            ]
        })
        .collect();
    for (i, id) in ids.iter().enumerate() {
        want.push((id.as_str(), [4, 2, 1][i % 3]));
    }
    expect(&seen, &want);
}

#[test]
fn a_comparison_overlays_baseline_and_candidate() {
    let dir = write("compare", &comparison());
    let html = std::fs::read_to_string(dir.join("report.html")).unwrap();
    assert!(html.contains("<th class=\"n\">ratio</th>"));
    let (seen, _) = check_in_browser(&dir);
    // Four candidate percentiles and two baseline ones; both sides' throughput; both spectra.
    expect(
        &seen,
        &[("e0-latency", 6), ("e0-throughput", 2), ("e0-spectrum", 2)],
    );
}

#[test]
fn a_one_hour_report_stays_small_and_quick() {
    let dir = write("one-hour", &one_hour());
    let bytes = std::fs::metadata(dir.join("report.html")).unwrap().len();
    eprintln!("one-hour report.html: {bytes} bytes");
    assert!(bytes < 2 * 1024 * 1024, "{bytes} bytes");
    let (seen, ms) = check_in_browser(&dir);
    eprintln!("one-hour report.html: loaded and checked in {ms} ms");
    assert_eq!(seen.len(), 5 * 3);
    assert!(ms < 1000.0, "{ms} ms");
}

fn rerender(args: &[&std::ffi::OsStr]) -> (Option<i32>, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_verifier"))
        .arg("report")
        .args(args)
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn verifier_report_renders_a_saved_run_again() {
    let dir = write("rerender", &failing());
    let json = dir.join("report.json");
    let (html, md) = (dir.join("again.html"), dir.join("again.md"));
    let (code, err) = rerender(&[
        json.as_os_str(),
        "--html".as_ref(),
        html.as_os_str(),
        "--md".as_ref(),
        md.as_os_str(),
    ]);
    assert_eq!(code, Some(0), "{err}");
    assert!(err.contains("latency.create-order.p99"), "{err}");
    // Piped: no colour; every line fits 100 columns, the long evidence wrapped, not cut.
    assert!(!err.contains('\x1b'), "{err}");
    // (The paths written are the machine's, not the summary's.)
    for l in err.lines().filter(|l| !l.starts_with("reports: ")) {
        assert!(
            l.chars().count() <= 100,
            "{} columns: {l}",
            l.chars().count()
        );
    }
    assert_eq!(err.matches("upstream").count(), 12, "{err}");
    assert!(
        err.contains("passing: latency 2/3 pass, errors 1/1 pass, contract 9/10 pass"),
        "{err}"
    );
    let (code, quiet) = rerender(&[json.as_os_str(), "--quiet".as_ref()]);
    assert_eq!(code, Some(0));
    assert_eq!(
        quiet,
        "FAIL: smoke (open model against http://127.0.0.1:8080)\n"
    );
    // The saved report renders to the very page and summary the run wrote.
    assert_eq!(
        std::fs::read_to_string(&html).unwrap(),
        std::fs::read_to_string(dir.join("report.html")).unwrap()
    );
    assert_eq!(
        std::fs::read_to_string(&md).unwrap(),
        std::fs::read_to_string(dir.join("summary.md")).unwrap()
    );
}

#[test]
fn verifier_report_names_bad_input_and_unwritable_outputs() {
    let dir = write("rerender-bad", &smoke());
    let good = std::fs::read_to_string(dir.join("report.json")).unwrap();
    let cases = [
        (
            "truncated.json",
            good[..good.len() / 2].to_owned(),
            "truncated",
        ),
        (
            "old.json",
            good.replacen("\"schema_version\": 2", "\"schema_version\": 1", 1),
            "written with report schema 1",
        ),
        (
            "other.json",
            "{\"name\": \"x\"}".to_owned(),
            "not a verifier report",
        ),
        (
            "partial.json",
            "{\"schema_version\": 2, \"scenario\": \"x\"}".to_owned(),
            "not a verifier report: missing field",
        ),
    ];
    for (name, body, want) in cases {
        let p = dir.join(name);
        std::fs::write(&p, body).unwrap();
        let (code, err) = rerender(&[p.as_os_str()]);
        assert_eq!(code, Some(2), "{name}: {err}");
        assert!(
            err.contains(&p.display().to_string()) && err.contains(want),
            "{name}: {err}"
        );
    }
    // An output that cannot be written is refused before anything is rendered or written.
    let md = dir.join("out.md");
    let html = dir.join("no-such-dir/out.html");
    let (code, err) = rerender(&[
        dir.join("report.json").as_os_str(),
        "--md".as_ref(),
        md.as_os_str(),
        "--html".as_ref(),
        html.as_os_str(),
    ]);
    assert_eq!(code, Some(3), "{err}");
    assert!(
        err.contains("no-such-dir/out.html: cannot be written"),
        "{err}"
    );
    assert!(!md.exists());
    assert!(!err.contains("PASS"), "rendered before refusing: {err}");
}
