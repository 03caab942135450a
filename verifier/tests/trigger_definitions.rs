//! Trigger definitions: the checked-in file parses, every way a file can be wrong is reported with
//! its line and field, the PromQL is pinned by snapshots (`cargo insta review` after an intended
//! change), and every metric the rules and the dashboard read is one the service registers.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use verifier::trigger::promql::{Scale, metric_names, render_rules};
use verifier::trigger::{self, DefinitionError, Loaded};

const BIN: &str = env!("CARGO_BIN_EXE_verifier");

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn checked_in() -> Loaded {
    trigger::load_file(&repo().join("dashboards/triggers.yaml")).expect("the checked-in triggers")
}

const BASE: &str = r#"service:
  name: svc
  selector: 'job="svc"'
  requests: http_server_requests_total
  errors: 'code_class="5xx"'
  latency: http_server_request_duration_seconds
slo:
  target: 0.999
time_scale: 60
triggers:
  - name: FastBurn
    severity: page
    summary: s
    for: 2m
    condition:
      burn_rate: {factor: 14.4, long: 1h, short: 5m}
  - name: Ratio
    severity: page
    summary: s
    condition:
      error_ratio: {max: 0.05, window: 5m}
  - name: Latency
    severity: ticket
    summary: s
    condition:
      latency: {quantile: 0.99, max: 500ms, window: 5m, matchers: 'route="POST /v1/orders"'}
  - name: Backlog
    severity: page
    summary: s
    condition:
      saturation: {gauge: outbox_backlog_events, op: ">", threshold: 1000}
"#;

fn parse_with(from: &str, to: &str) -> Result<Loaded, DefinitionError> {
    assert!(BASE.contains(from), "the base file contains `{from}`");
    trigger::parse(Path::new("t.yaml"), &BASE.replacen(from, to, 1))
}

#[track_caller]
fn fails(from: &str, to: &str, line: usize, field: &str, message: &str) {
    let e = parse_with(from, to).expect_err("a bad definition is refused");
    assert_eq!(e.file, Path::new("t.yaml"));
    assert_eq!(e.line, Some(line), "{e}");
    assert_eq!(e.field, field, "{e}");
    assert!(e.message.contains(message), "`{message}` not in: {e}");
}

#[test]
fn base_and_checked_in_files_parse() {
    let l = parse_with("", "").unwrap();
    assert_eq!(l.defs.triggers.len(), 4);
    let c = checked_in();
    let kinds: BTreeSet<&str> = c.defs.triggers.iter().map(|t| t.condition.kind()).collect();
    assert_eq!(
        kinds,
        BTreeSet::from(["burn_rate", "error_ratio", "latency", "saturation"]),
        "the reference service has a trigger of every kind"
    );
    assert_eq!(c.defs.time_scale, 60.0);
}

#[test]
fn syntax_errors_name_line_and_field() {
    fails(
        "time_scale: 60",
        "time_scale: 60\nservce: x",
        10,
        "servce",
        "unknown field `servce`",
    );
    fails(
        "short: 5m}",
        "short: 5m, extra: 1}",
        16,
        "triggers[0].condition.burn_rate.extra",
        "unknown field `extra`",
    );
    fails(
        "error_ratio: {max",
        "error_rate: {max",
        21,
        "triggers[1].condition.error_rate",
        "unknown variant `error_rate`",
    );
    fails(
        "severity: ticket",
        "severity: critical",
        23,
        "triggers[2].severity",
        "unknown variant `critical`",
    );
    fails(
        "window: 5m}",
        "window: 5 minutes}",
        21,
        "triggers[1].condition.error_ratio.window",
        "unknown unit ` minutes`",
    );
    fails(
        "long: 1h",
        "long: 1.5h",
        16,
        "triggers[0].condition.burn_rate.long",
        "must be a whole number and a unit",
    );
    fails(
        "op: \">\"",
        "op: \"=>\"",
        31,
        "triggers[3].condition.saturation.op",
        "unknown variant `=>`",
    );
    fails("slo:\n  target: 0.999\n", "", 1, "", "missing field `slo`");
}

#[test]
fn unparsable_promql_matchers_are_definition_errors() {
    fails(
        r#"matchers: 'route="POST /v1/orders"'"#,
        r#"matchers: 'route="POST /v1/orders'"#,
        26,
        "triggers[2].condition.latency.matchers",
        "unterminated string after `route`",
    );
    fails(
        r#"matchers: 'route="POST /v1/orders"'"#,
        r#"matchers: 'route=POST'"#,
        26,
        "triggers[2].condition.latency.matchers",
        "the value of `route` must be double-quoted",
    );
    fails(
        r#"matchers: 'route="POST /v1/orders"'"#,
        r#"matchers: 'route="a" code="b"'"#,
        26,
        "triggers[2].condition.latency.matchers",
        "expected `,` before `code=\"b\"`",
    );
    fails(
        r#"errors: 'code_class="5xx"'"#,
        r#"errors: 'code_class=="5xx"'"#,
        5,
        "service.errors",
        "the value of `code_class` must be double-quoted",
    );
    fails(
        r#"selector: 'job="svc"'"#,
        r#"selector: '1job="svc"'"#,
        3,
        "service.selector",
        "expected a label name",
    );
}

#[test]
fn semantic_errors_name_line_and_field() {
    fails(
        "target: 0.999",
        "target: 99.9",
        8,
        "slo.target",
        "SLO target 99.9 is not a fraction",
    );
    fails(
        "time_scale: 60",
        "time_scale: 0.5",
        9,
        "time_scale",
        "must be 1 or more",
    );
    fails(
        "    for: 2m\n",
        "    for: 2m\n    drill_time_scale: .nan\n",
        15,
        "triggers[0].drill_time_scale",
        "drill_time_scale NaN must be 1 or more",
    );
    fails(
        "short: 5m}",
        "short: 2h}",
        16,
        "triggers[0].condition.burn_rate.short",
        "must be shorter than the long window 1h",
    );
    fails(
        "factor: 14.4",
        "factor: 1000",
        16,
        "triggers[0].condition.burn_rate.factor",
        "it can never fire",
    );
    fails(
        "name: Ratio",
        "name: FastBurn",
        17,
        "triggers[1].name",
        "`FastBurn` is used twice",
    );
    fails(
        "name: Ratio",
        "name: Error-Ratio",
        17,
        "triggers[1].name",
        "it becomes the alert name",
    );
    fails(
        "{max: 0.05",
        "{max: 5",
        21,
        "triggers[1].condition.error_ratio.max",
        "error ratio 5 is not a fraction",
    );
    fails(
        "quantile: 0.99",
        "quantile: 99",
        26,
        "triggers[2].condition.latency.quantile",
        "quantile 99 is not a fraction",
    );
    fails(
        "max: 500ms",
        "max: 0ms",
        26,
        "triggers[2].condition.latency.max",
        "greater than zero",
    );
    fails(
        "window: 5m}",
        "window: 500ms}",
        21,
        "triggers[1].condition.error_ratio.window",
        "whole seconds",
    );
    fails(
        "gauge: outbox_backlog_events",
        "gauge: outbox-backlog",
        31,
        "triggers[3].condition.saturation.gauge",
        "not a Prometheus metric name",
    );
    fails(
        "requests: http_server_requests_total",
        "requests: http.requests",
        4,
        "service.requests",
        "not a Prometheus metric name",
    );
    fails(
        r#"errors: 'code_class="5xx"'"#,
        "errors: ''",
        5,
        "service.errors",
        "at least one matcher",
    );
    let no_triggers = trigger::parse(
        Path::new("t.yaml"),
        &format!("{}triggers: []\n", &BASE[..BASE.find("triggers:").unwrap()]),
    )
    .unwrap_err();
    assert_eq!(no_triggers.field, "triggers");
    assert!(
        no_triggers.message.contains("at least one trigger"),
        "{no_triggers}"
    );
}

#[test]
fn a_metric_the_service_does_not_export_is_a_definition_error() {
    let l = parse_with("gauge: outbox_backlog_events", "gauge: db_pool_exhausted").unwrap();
    let exported: BTreeSet<String> = [
        "http_server_requests_total",
        "http_server_request_duration_seconds",
        "outbox_backlog_events",
    ]
    .map(String::from)
    .into();
    let e = l.check_exported(&exported).unwrap_err();
    assert_eq!(e.line, Some(31));
    assert_eq!(e.field, "triggers[3].condition.saturation.gauge");
    assert_eq!(
        e.to_string(),
        "t.yaml:31:27: field `triggers[3].condition.saturation.gauge`: metric `db_pool_exhausted` is not exported by the service"
    );
    parse_with("", "")
        .unwrap()
        .check_exported(&exported)
        .unwrap();
}

#[test]
fn scaled_windows_follow_time_scale_with_a_floor() {
    let d = checked_in().defs;
    let fast = d
        .triggers
        .iter()
        .find(|t| t.name == "OrdersErrorBudgetFastBurn")
        .unwrap();
    let s = |secs| {
        d.scaled(fast, std::time::Duration::from_secs(secs))
            .as_secs()
    };
    assert_eq!(s(3600), 60, "1h is 1m in a drill");
    assert_eq!(s(6 * 3600), 360);
    assert_eq!(s(1800), 30);
    assert_eq!(s(300), 5);
    assert_eq!(s(60), 5, "no window below min_scaled_window");
    assert_eq!(d.scaled_hold(fast).as_secs(), 2, "for: 2m is 2s");
    // The slow burn's own drill_time_scale: its 6 h window would outlast any drill at 60.
    let slow = d
        .triggers
        .iter()
        .find(|t| t.name == "OrdersErrorBudgetSlowBurn")
        .unwrap();
    assert_eq!(d.time_scale_of(slow), 360.0);
    let s = |secs| {
        d.scaled(slow, std::time::Duration::from_secs(secs))
            .as_secs()
    };
    assert_eq!(s(6 * 3600), 60, "6h is 1m at 360");
    assert_eq!(s(1800), 5, "30m is 5s at 360");
    assert_eq!(
        d.scaled_hold(slow).as_secs(),
        3,
        "for: 15m is 2.5s, rounded up"
    );
    assert!(
        d.scaling_note(slow)
            .contains("drill (time_scale 360) 1m and 5s, for 3s"),
        "{}",
        d.scaling_note(slow)
    );
}

#[test]
fn promql_production_and_drill_snapshots() {
    // The test's own file, so editing dashboards/triggers.yaml (pinned by the drift check)
    // does not churn these snapshots.
    let l = parse_with("", "").unwrap();
    let d = &l.defs;
    let mut out = String::new();
    for t in &d.triggers {
        out.push_str(&format!("## {} ({})\n", t.name, d.scaling_note(t)));
        for scale in [Scale::Production, Scale::Drill] {
            for (what, q) in d.value_queries(t, scale) {
                out.push_str(&format!("{scale:?} {what}: {q}\n"));
            }
            out.push_str(&format!("{scale:?} alert: {}\n", d.alert_expr(t, scale)));
        }
    }
    insta::assert_snapshot!(out);
}

#[test]
fn rendered_rules_snapshot() {
    insta::assert_snapshot!(render_rules(&parse_with("", "").unwrap(), "t.yaml"));
}

fn go_series() -> BTreeSet<String> {
    let go =
        std::fs::read_to_string(repo().join("reference-service/internal/telemetry/metrics.go"))
            .expect("metrics.go");
    let metrics = trigger::go_metrics(&go);
    assert_eq!(
        metrics.get("http_server_request_duration_seconds"),
        Some(&"histogram")
    );
    assert_eq!(metrics.get("outbox_backlog_events"), Some(&"gauge"));
    assert_eq!(metrics.get("http_server_requests_total"), Some(&"counter"));
    trigger::exported_series(&metrics)
}

/// A series the service exports: registered in metrics.go (histograms as `_bucket`, `_sum`,
/// `_count`), or from the Go and process collectors metrics.go registers.
fn exported(series: &str, names: &BTreeSet<String>) -> bool {
    names.contains(series) || series.starts_with("go_") || series.starts_with("process_")
}

fn family(series: &str) -> &str {
    series.strip_suffix("_bucket").unwrap_or(series)
}

fn recorded_in_rules() -> BTreeSet<String> {
    let rules = std::fs::read_to_string(repo().join("dashboards/prometheus/rules.yml")).unwrap();
    rules
        .lines()
        .filter_map(|l| l.trim().strip_prefix("- record: "))
        .map(str::to_owned)
        .collect()
}

#[test]
fn every_metric_in_rules_and_dashboard_is_registered_by_the_service() {
    let names = go_series();
    let recorded = recorded_in_rules();
    assert!(!recorded.is_empty());
    let mut used = Vec::new();

    let rules: serde_json::Value = serde_norway::from_str(
        &std::fs::read_to_string(repo().join("dashboards/prometheus/rules.yml")).unwrap(),
    )
    .unwrap();
    for g in rules["groups"].as_array().unwrap() {
        for r in g["rules"].as_array().unwrap() {
            used.push(("rules.yml", r["expr"].as_str().unwrap().to_owned()));
        }
    }
    let dash: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(repo().join("dashboards/grafana/orders-service.json")).unwrap(),
    )
    .unwrap();
    let mut exprs = Vec::new();
    collect_exprs(&dash, &mut exprs);
    assert!(
        exprs.len() >= 20,
        "the dashboard has its panels' queries: {}",
        exprs.len()
    );
    used.extend(exprs.into_iter().map(|e| ("orders-service.json", e)));

    let mut seen = BTreeSet::new();
    for (file, expr) in &used {
        let metrics = metric_names(expr);
        assert!(!metrics.is_empty(), "{file}: `{expr}` reads no metric");
        for m in metrics {
            let ok = if m.contains(':') {
                recorded.contains(&m)
            } else {
                exported(&m, &names)
            };
            assert!(
                ok,
                "{file}: `{m}` in `{expr}` is not registered in metrics.go (nor recorded in rules.yml)"
            );
            seen.insert(family(&m).to_owned());
        }
    }
    // The dashboard covers the service's metrics, not a sample of them.
    for must in [
        "http_server_requests_total",
        "http_server_request_duration_seconds",
        "payments_client_calls_total",
        "payments_client_attempts_total",
        "payments_client_retries_total",
        "payments_client_breaker_state",
        "cache_requests_total",
        "cache_degraded",
        "outbox_backlog_events",
        "outbox_oldest_event_age_seconds",
        "orders_idempotency_outcomes_total",
        "db_query_duration_seconds",
        "db_pool_acquired_connections",
        "db_pool_idle_connections",
        "db_pool_empty_acquires_total",
    ] {
        assert!(seen.contains(must), "nothing reads `{must}`");
    }
}

#[test]
fn a_name_the_service_does_not_register_is_caught() {
    let names = go_series();
    assert!(!exported("http_requests_total", &names));
    assert!(exported(
        "http_server_request_duration_seconds_bucket",
        &names
    ));
    assert!(
        !exported("outbox_backlog_events_bucket", &names),
        "a gauge has no buckets"
    );
}

/// Panel queries (`expr`) and templating queries (`label_values(<selector>, <label>)`).
fn collect_exprs(v: &serde_json::Value, out: &mut Vec<String>) {
    match v {
        serde_json::Value::Object(m) => {
            for (k, v) in m {
                match (k.as_str(), v.as_str()) {
                    ("expr", Some(s)) => out.push(s.to_owned()),
                    ("definition", Some(s)) => {
                        let inner = s
                            .strip_prefix("label_values(")
                            .expect("a label_values query");
                        out.push(inner[..inner.rfind(',').expect("a label")].to_owned());
                    }
                    _ => collect_exprs(v, out),
                }
            }
        }
        serde_json::Value::Array(a) => a.iter().for_each(|v| collect_exprs(v, out)),
        _ => {}
    }
}

#[test]
fn dashboard_is_valid_for_a_current_grafana() {
    let dash: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(repo().join("dashboards/grafana/orders-service.json")).unwrap(),
    )
    .unwrap();
    assert!(dash["schemaVersion"].as_u64().unwrap() >= 39);
    assert!(
        dash["uid"]
            .as_str()
            .is_some_and(|u| !u.is_empty() && u.len() <= 40)
    );
    let panels = dash["panels"].as_array().unwrap();
    let mut ids = BTreeSet::new();
    for p in panels {
        assert!(
            ids.insert(p["id"].as_u64().unwrap()),
            "panel ids are unique"
        );
        let g = &p["gridPos"];
        assert!(g["w"].as_u64().unwrap() <= 24 && g["h"].as_u64().unwrap() > 0);
        if p["type"] != "row" {
            assert!(
                !p["targets"].as_array().unwrap().is_empty(),
                "{}",
                p["title"]
            );
            assert_eq!(p["datasource"]["uid"], "${datasource}");
        }
    }
}

fn run_render(args: &[&str]) -> std::process::Output {
    Command::new(BIN)
        .args(["triggers", "render"])
        .args(args)
        .output()
        .expect("the verifier binary runs")
}

#[test]
fn render_check_passes_on_the_checked_in_rules_and_fails_on_drift() {
    let file = repo().join("dashboards/triggers.yaml");
    let out = run_render(&[file.to_str().unwrap(), "--check"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "dashboards/prometheus/rules.yml drifted from triggers.yaml: {}",
        String::from_utf8_lossy(&out.stderr)
    );

    let dir = tempfile::tempdir().unwrap();
    let copy = dir.path().join("triggers.yaml");
    std::fs::copy(&file, &copy).unwrap();
    let out = run_render(&[copy.to_str().unwrap()]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rendered = dir.path().join("prometheus/rules.yml");
    assert_eq!(
        std::fs::read_to_string(&rendered).unwrap(),
        std::fs::read_to_string(repo().join("dashboards/prometheus/rules.yml")).unwrap()
    );

    let text = std::fs::read_to_string(&copy)
        .unwrap()
        .replace("factor: 14.4", "factor: 10");
    std::fs::write(&copy, text).unwrap();
    let out = run_render(&[copy.to_str().unwrap(), "--check"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("differs from what"), "{err}");
    assert!(err.contains("- ") || err.contains("-  "), "{err}");
    assert!(
        err.contains("> 14.4 * 0.001") && err.contains("> 10 * 0.001"),
        "{err}"
    );

    let out_dir = dir.path().join("elsewhere");
    let out = run_render(&[copy.to_str().unwrap(), "--out", out_dir.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0));
    assert!(out_dir.join("rules.yml").exists());
}

#[test]
fn render_refuses_a_bad_file_with_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("triggers.yaml");
    std::fs::write(&bad, BASE.replace("factor: 14.4", "factor: -1")).unwrap();
    let out = run_render(&[bad.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("triggers.yaml:16:") && err.contains("triggers[0].condition.burn_rate.factor"),
        "{err}"
    );
    assert!(
        !dir.path().join("prometheus").exists(),
        "nothing is written"
    );
}

#[test]
fn checked_in_triggers_read_only_registered_metrics() {
    let go =
        std::fs::read_to_string(repo().join("reference-service/internal/telemetry/metrics.go"))
            .unwrap();
    let registered: BTreeSet<String> = trigger::go_metrics(&go).into_keys().collect();
    checked_in().check_exported(&registered).unwrap();
}

/// Both shipped drills vouch for every trigger: each is expected to fire on some fault (with a
/// detection time) and to stay quiet in the healthy phase. A trigger added to the file without a
/// drill expectation fails here before any drill runs.
#[test]
fn shipped_drills_fire_every_trigger_and_watch_each_in_the_healthy_phase() {
    let names: Vec<String> = checked_in()
        .defs
        .triggers
        .iter()
        .map(|t| t.name.clone())
        .collect();
    for drill in [
        "scenarios/chaos-drill.yaml",
        "scenarios/chaos-drill-short.yaml",
    ] {
        let text = std::fs::read_to_string(repo().join(drill)).unwrap();
        let doc: serde_json::Value = serde_norway::from_str(&text).unwrap();
        let expect = doc["triggers"]["expect"].as_object().unwrap();
        let listed = |fault: &serde_json::Value, field: &str, name: &str| {
            fault[field]
                .as_array()
                .is_some_and(|l| l.iter().any(|n| n == name))
        };
        for name in &names {
            assert!(
                expect
                    .iter()
                    .any(|(f, e)| f != "healthy" && listed(e, "fire", name)),
                "{drill}: no fault is expected to fire {name}"
            );
            assert!(
                listed(&expect["healthy"], "quiet", name),
                "{drill}: the healthy phase does not watch {name} stay quiet"
            );
        }
    }
}
