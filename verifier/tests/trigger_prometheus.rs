//! The checked-in triggers evaluated against a real Prometheus (Debian's package on loopback)
//! scraping an in-process target that exports the service's metric names: every trigger passes
//! while the series are healthy, fails once they breach, and is inconclusive — never passed — once
//! Prometheus is gone. Expressions Prometheus refuses, and metrics nobody exports, are definition
//! errors.

mod common;

use std::fmt::Write as _;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use verifier::prom::Client;
use verifier::trigger::eval::{PreflightError, exported_families, preflight};
use verifier::trigger::promql::Scale;
use verifier::trigger::{self, Analysis, Loaded, Phase, Source, evaluate};

#[derive(Default)]
struct Series {
    ok: u64,
    errors: u64,
    fast: u64,
    slow: u64,
    backlog: f64,
    oldest_age: f64,
    breaker: f64,
    breaching: bool,
}

impl Series {
    /// 100 ms of traffic at 200 requests a second.
    fn tick(&mut self) {
        if self.breaching {
            self.ok += 14;
            self.errors += 6;
            self.slow += 20;
            (self.backlog, self.oldest_age, self.breaker) = (5000.0, 300.0, 2.0);
        } else {
            self.ok += 20;
            self.fast += 20;
            (self.backlog, self.oldest_age, self.breaker) = (3.0, 0.5, 0.0);
        }
    }

    fn exposition(&self) -> String {
        let l = r#"route="POST /v1/orders",method="POST""#;
        let mut b = String::new();
        let _ = writeln!(b, "# TYPE http_server_requests_total counter");
        let _ = writeln!(
            b,
            "http_server_requests_total{{{l},code_class=\"2xx\"}} {}",
            self.ok
        );
        let _ = writeln!(
            b,
            "http_server_requests_total{{{l},code_class=\"5xx\"}} {}",
            self.errors
        );
        // Probes fail all along: the triggers must not count them as traffic.
        let _ = writeln!(
            b,
            "http_server_requests_total{{route=\"GET /readyz\",method=\"GET\",code_class=\"5xx\"}} {}",
            self.ok * 10
        );
        let _ = writeln!(b, "# TYPE http_server_request_duration_seconds histogram");
        let n = self.fast + self.slow;
        for (le, v) in [
            ("0.05", self.fast),
            ("0.5", self.fast),
            ("1", n),
            ("+Inf", n),
        ] {
            let _ = writeln!(
                b,
                "http_server_request_duration_seconds_bucket{{{l},code_class=\"2xx\",le=\"{le}\"}} {v}"
            );
        }
        let _ = writeln!(
            b,
            "http_server_request_duration_seconds_sum{{{l},code_class=\"2xx\"}} {}",
            self.fast as f64 * 0.02 + self.slow as f64 * 0.8
        );
        let _ = writeln!(
            b,
            "http_server_request_duration_seconds_count{{{l},code_class=\"2xx\"}} {n}"
        );
        for (name, v) in [
            ("outbox_backlog_events", self.backlog),
            ("outbox_oldest_event_age_seconds", self.oldest_age),
            ("payments_client_breaker_state", self.breaker),
        ] {
            let _ = writeln!(b, "# TYPE {name} gauge\n{name} {v}");
        }
        b
    }
}

/// Serves `/metrics` from `series`, which a task advances every 100 ms.
async fn metrics_target(series: Arc<Mutex<Series>>) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let ticking = series.clone();
    tokio::spawn(async move {
        let mut every = tokio::time::interval(Duration::from_millis(100));
        loop {
            every.tick().await;
            ticking.lock().unwrap().tick();
        }
    });
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            let body = series.lock().unwrap().exposition();
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                let _ = s.read(&mut buf).await;
                let resp = format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = s.write_all(resp.as_bytes()).await;
            });
        }
    });
    addr
}

/// The checked-in triggers, pointed at the test Prometheus's job.
fn triggers(edit: impl Fn(String) -> String) -> Loaded {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../dashboards/triggers.yaml");
    let text = std::fs::read_to_string(&path)
        .unwrap()
        .replace(r#"job="orders-service""#, r#"job="svc""#);
    trigger::parse(&path, &edit(text)).expect("the edited triggers parse")
}

/// Evaluates every trigger each second until all reach `want`, at most `limit`. Returns, per
/// trigger, when its drill analysis fired (for breaches) and the last measurement's detail.
async fn until_all(
    l: &Loaded,
    client: &Client,
    want: Phase,
    limit: Duration,
) -> Vec<(String, Option<Duration>, String)> {
    let d = &l.defs;
    let start = Instant::now();
    let mut analyses: Vec<Analysis> = d
        .triggers
        .iter()
        .map(|t| Analysis::new(d, t, Scale::Drill))
        .collect();
    loop {
        let mut all = true;
        let mut report = Vec::new();
        for (t, a) in d.triggers.iter().zip(analyses.iter_mut()) {
            let m = evaluate(d, t, Source::Prometheus { client, at: None }, Scale::Drill)
                .await
                .expect("the checked-in expressions are valid PromQL");
            let raw = m.phase;
            // A breach counts once the analysis fired (after `for`, past the failure limit).
            let phase = a.record(start.elapsed(), m.clone());
            all &= if want == Phase::Failed {
                phase == want
            } else {
                raw == want
            };
            report.push((
                t.name.clone(),
                a.fired_at,
                format!("{:?}: {}", m.phase, m.detail),
            ));
        }
        if all {
            return report;
        }
        assert!(
            start.elapsed() < limit,
            "not every trigger reached {want:?} within {limit:?}:\n{report:#?}"
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn triggers_pass_when_healthy_fail_on_breach_and_are_inconclusive_without_prometheus() {
    let series = Arc::new(Mutex::new(Series::default()));
    let target = metrics_target(series.clone()).await;
    let mut prom = common::prometheus(&[target]).await;
    let client = Client::new(&prom.url, Duration::from_secs(2)).unwrap();
    let l = triggers(|t| t);

    let healthy = until_all(&l, &client, Phase::Successful, Duration::from_secs(45)).await;
    for (name, fired, _) in &healthy {
        assert_eq!(*fired, None, "{name} fired on healthy series");
    }
    preflight(&l.defs, &client, Scale::Drill)
        .await
        .expect("Prometheus accepts every expression");
    let found = exported_families(&l.defs, &client, Duration::from_secs(60))
        .await
        .unwrap();
    l.check_exported(&found)
        .expect("every metric the triggers read is scraped");

    series.lock().unwrap().breaching = true;
    let breached = until_all(&l, &client, Phase::Failed, Duration::from_secs(45)).await;
    for (name, fired, detail) in &breached {
        let fired = fired.unwrap_or_else(|| panic!("{name} never fired: {detail}"));
        println!(
            "{name}: fired {:.1} s after the breach began ({detail})",
            fired.as_secs_f64()
        );
    }

    prom.kill();
    for t in &l.defs.triggers {
        let m = evaluate(
            &l.defs,
            t,
            Source::Prometheus {
                client: &client,
                at: None,
            },
            Scale::Drill,
        )
        .await
        .unwrap();
        assert_eq!(m.phase, Phase::Inconclusive, "{}: {m:?}", t.name);
        assert!(m.detail.contains("could not be asked"), "{}", m.detail);
    }
    assert!(matches!(
        preflight(&l.defs, &client, Scale::Drill).await,
        Err(PreflightError::Unavailable(_))
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_expressions_and_unexported_metrics_are_definition_errors() {
    let series = Arc::new(Mutex::new(Series::default()));
    let target = metrics_target(series).await;
    let prom = common::prometheus(&[target]).await;
    let client = Client::new(&prom.url, Duration::from_secs(2)).unwrap();

    // The matcher syntax is fine; the regular expression inside is not, which only the server
    // can tell.
    let bad = triggers(|t| {
        t.replace(
            r#"matchers: 'route="POST /v1/orders"'"#,
            r#"matchers: 'route=~"(("'"#,
        )
    });
    let latency = bad
        .defs
        .triggers
        .iter()
        .find(|t| t.name == "OrdersCreateLatencyP99")
        .unwrap();
    let e = evaluate(
        &bad.defs,
        latency,
        Source::Prometheus {
            client: &client,
            at: None,
        },
        Scale::Drill,
    )
    .await
    .expect_err("a refused expression is a definition error, not a measurement");
    assert_eq!(e.trigger, "OrdersCreateLatencyP99");
    match preflight(&bad.defs, &client, Scale::Drill).await {
        Err(PreflightError::Definition(d)) => {
            assert_eq!(d.trigger, "OrdersCreateLatencyP99");
            assert!(d.message.contains("(("), "{d}");
        }
        other => panic!("preflight must refuse the expression: {other:?}"),
    }

    let missing =
        triggers(|t| t.replace("gauge: outbox_backlog_events", "gauge: db_pool_exhausted"));
    // Families are asked one by one, so the first scrape can land between two questions: wait
    // until every family the target does export is seen, not just one of them.
    let mut exported = missing.defs.metric_families();
    assert!(exported.remove("db_pool_exhausted"));
    let deadline = Instant::now() + Duration::from_secs(20);
    let found = loop {
        let found = exported_families(&missing.defs, &client, Duration::from_secs(60))
            .await
            .unwrap();
        if found.is_superset(&exported) {
            break found;
        }
        assert!(
            Instant::now() < deadline,
            "prometheus has {found:?} of the target's {exported:?}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    let e = missing.check_exported(&found).unwrap_err();
    assert!(e.to_string().contains("triggers.yaml:"), "{e}");
    assert!(
        e.to_string()
            .contains("metric `db_pool_exhausted` is not exported"),
        "{e}"
    );
    assert_eq!(e.field, "triggers[4].condition.saturation.gauge");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn triggers_check_reports_definition_errors_with_their_line() {
    const BIN: &str = env!("CARGO_BIN_EXE_verifier");
    let series = Arc::new(Mutex::new(Series::default()));
    let target = metrics_target(series).await;
    let prom = common::prometheus(&[target]).await;
    let url = prom.url.clone();
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, edit: &dyn Fn(String) -> String| {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../dashboards/triggers.yaml");
        let text = std::fs::read_to_string(path)
            .unwrap()
            .replace(r#"job="orders-service""#, r#"job="svc""#);
        let file = dir.path().join(name);
        std::fs::write(&file, edit(text)).unwrap();
        file
    };
    let check = |file: &Path| {
        let out = std::process::Command::new(BIN)
            .args(["triggers", "check"])
            .arg(file)
            .args(["--prometheus", &url, "--lookback", "1m"])
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };

    let good = write("good.yaml", &|t| t);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (code, err) = check(&good);
        if code == Some(0) {
            break;
        }
        // Until the first scrape lands, the metrics are not there yet.
        assert!(Instant::now() < deadline, "{code:?}: {err}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }

    let regex = write("regex.yaml", &|t| {
        t.replace(
            r#"matchers: 'route="POST /v1/orders"'"#,
            r#"matchers: 'route=~"(("'"#,
        )
    });
    let (code, err) = check(&regex);
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("regex.yaml:") && err.contains("triggers[3].condition.latency"),
        "{err}"
    );

    let missing = write("missing.yaml", &|t| {
        t.replace(
            "gauge: payments_client_breaker_state",
            "gauge: db_pool_exhausted",
        )
    });
    let (code, err) = check(&missing);
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("metric `db_pool_exhausted` is not exported"),
        "{err}"
    );

    drop(prom);
    let (code, err) = check(&good);
    assert_eq!(
        code,
        Some(3),
        "an unreachable Prometheus is an environment error: {err}"
    );
}
