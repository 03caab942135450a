//! PromQL for each trigger, at production length (the rendered alerting rules) or scaled for a
//! drill (what the verifier asks Prometheus during a short run), and the rules file itself.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::time::Duration;

use serde::Serialize;

use super::{Condition, Definitions, Loaded, Matchers, Trigger};

/// Which window lengths to render.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scale {
    /// As written: what production Prometheus evaluates.
    Production,
    /// Divided by `time_scale`: what a drill of a few minutes can measure.
    Drill,
}

/// A duration as PromQL writes it, in the largest unit that divides it exactly.
pub fn duration(d: Duration) -> String {
    let ms = d.as_millis();
    if ms == 0 {
        return "0s".into();
    }
    for (unit, size) in [
        ("d", 86_400_000),
        ("h", 3_600_000),
        ("m", 60_000),
        ("s", 1_000),
    ] {
        if ms.is_multiple_of(size) {
            return format!("{}{unit}", ms / size);
        }
    }
    format!("{ms}ms")
}

/// A number without float noise (1 - 0.999 is 0.0010000000000000009).
pub fn num(v: f64) -> String {
    let s = format!("{v:.9}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    if s.is_empty() || s == "-" {
        "0".into()
    } else {
        s.to_owned()
    }
}

fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// `{a="x",b=~"y"}` from several matcher lists, or nothing when all are empty.
pub fn selector(parts: &[&Matchers]) -> String {
    let all: Vec<String> = parts
        .iter()
        .flat_map(|m| m.0.iter())
        .map(|m| format!("{}{}\"{}\"", m.label, m.op, escape(&m.value)))
        .collect();
    if all.is_empty() {
        String::new()
    } else {
        format!("{{{}}}", all.join(","))
    }
}

impl Definitions {
    /// Failed share of requests over `window` (as evaluated: production or already scaled). A
    /// service that never failed has no error series yet, so the numerator falls back to 0
    /// rather than making the ratio vanish.
    pub fn error_ratio_expr(&self, extra: &Matchers, window: Duration) -> String {
        let s = &self.service;
        let w = duration(window);
        format!(
            "(sum(rate({req}{errs}[{w}])) or vector(0)) / sum(rate({req}{all}[{w}]))",
            req = s.requests,
            errs = selector(&[&s.selector, &s.traffic, &s.errors, extra]),
            all = selector(&[&s.selector, &s.traffic, extra]),
        )
    }

    /// The latency quantile in seconds over `window` (as evaluated), from the histogram's buckets.
    pub fn latency_expr(&self, quantile: f64, extra: &Matchers, window: Duration) -> String {
        let s = &self.service;
        format!(
            "histogram_quantile({q}, sum by (le) (rate({h}_bucket{sel}[{w}])))",
            q = num(quantile),
            h = s.latency,
            sel = selector(&[&s.selector, &s.traffic, extra]),
            w = duration(window),
        )
    }

    pub fn gauge_expr(&self, trigger: &Trigger) -> Option<String> {
        match &trigger.condition {
            Condition::Saturation {
                gauge,
                aggregate,
                matchers,
                ..
            } => Some(format!(
                "{}({gauge}{})",
                aggregate.as_str(),
                selector(&[&self.service.selector, matchers])
            )),
            _ => None,
        }
    }

    /// The recorded series holding the error ratio over `window` (production length).
    pub fn recorded_ratio(&self, window: Duration) -> String {
        format!(
            "{}:http_error_ratio:rate{}",
            self.service.name.replace('-', "_"),
            duration(window)
        )
    }

    /// The error ratio a burn rate of `factor` means.
    pub fn burn_threshold(&self, factor: f64) -> String {
        format!("{} * {}", num(factor), num(self.slo.error_budget()))
    }

    /// The expressions whose values decide the trigger, each with a name for reports. One for
    /// every kind but burn rate, which has its long and short window.
    pub fn value_queries(&self, t: &Trigger, scale: Scale) -> Vec<(&'static str, String)> {
        match &t.condition {
            Condition::ErrorRatio {
                window, matchers, ..
            } => vec![(
                "error ratio",
                self.error_ratio_expr(matchers, self.length(t, window.0, scale)),
            )],
            Condition::Latency {
                quantile,
                window,
                matchers,
                ..
            } => vec![(
                "latency",
                self.latency_expr(*quantile, matchers, self.length(t, window.0, scale)),
            )],
            Condition::BurnRate { long, short, .. } => vec![
                (
                    "long window",
                    self.error_ratio_expr(&Matchers::default(), self.length(t, long.0, scale)),
                ),
                (
                    "short window",
                    self.error_ratio_expr(&Matchers::default(), self.length(t, short.0, scale)),
                ),
            ],
            Condition::Saturation { .. } => {
                vec![("gauge", self.gauge_expr(t).unwrap_or_default())]
            }
        }
    }

    /// The alerting expression. Burn rates read the recorded ratios, as the SRE workbook's
    /// rules do; in a drill there are no recording rules at scaled windows, so the raw ratios
    /// stand in.
    pub fn alert_expr(&self, t: &Trigger, scale: Scale) -> String {
        match &t.condition {
            Condition::ErrorRatio { max, .. } => {
                format!("{} > {}", self.value_queries(t, scale)[0].1, num(*max))
            }
            Condition::Latency { max, .. } => format!(
                "{} > {}",
                self.value_queries(t, scale)[0].1,
                num(max.0.as_secs_f64())
            ),
            Condition::BurnRate {
                factor,
                long,
                short,
            } => {
                let th = self.burn_threshold(*factor);
                match scale {
                    Scale::Production => format!(
                        "{} > {th} and {} > {th}",
                        self.recorded_ratio(long.0),
                        self.recorded_ratio(short.0)
                    ),
                    Scale::Drill => {
                        let q = self.value_queries(t, scale);
                        format!("({}) > {th} and ({}) > {th}", q[0].1, q[1].1)
                    }
                }
            }
            Condition::Saturation {
                op,
                threshold,
                drill_threshold,
                ..
            } => format!(
                "{} {} {}",
                self.gauge_expr(t).unwrap_or_default(),
                op.as_str(),
                num(super::saturation_threshold(
                    *threshold,
                    *drill_threshold,
                    scale
                ))
            ),
        }
    }

    /// Every window a trigger uses, at production length.
    pub fn windows(&self, t: &Trigger) -> Vec<Duration> {
        match &t.condition {
            Condition::ErrorRatio { window, .. } | Condition::Latency { window, .. } => {
                vec![window.0]
            }
            Condition::BurnRate { long, short, .. } => vec![long.0, short.0],
            Condition::Saturation { .. } => Vec::new(),
        }
    }

    /// "1h and 5m, for 2m; drill: 1m and 5s, for 2s" — the scaling stated where it applies.
    pub fn scaling_note(&self, t: &Trigger) -> String {
        let list = |ws: Vec<String>| {
            if ws.is_empty() {
                "instant".to_owned()
            } else {
                ws.join(" and ")
            }
        };
        let ws = self.windows(t);
        let thresholds = match &t.condition {
            Condition::Saturation {
                threshold,
                drill_threshold: Some(d),
                ..
            } => (
                format!(", threshold {}", num(*threshold)),
                format!(", threshold {}", num(*d)),
            ),
            _ => (String::new(), String::new()),
        };
        format!(
            "production {}, for {}{}; drill (time_scale {}) {}, for {}{}",
            list(ws.iter().map(|w| duration(*w)).collect()),
            duration(t.hold.0),
            thresholds.0,
            num(self.time_scale_of(t)),
            list(ws.iter().map(|w| duration(self.scaled(t, *w))).collect()),
            duration(self.scaled_hold(t)),
            thresholds.1,
        )
    }
}

#[derive(Serialize)]
struct RuleFile {
    groups: Vec<Group>,
}

#[derive(Serialize)]
struct Group {
    name: String,
    rules: Vec<Rule>,
}

#[derive(Serialize)]
struct Rule {
    #[serde(skip_serializing_if = "Option::is_none")]
    record: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    alert: Option<String>,
    expr: String,
    #[serde(rename = "for", skip_serializing_if = "Option::is_none")]
    hold: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    labels: Option<std::collections::BTreeMap<&'static str, String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    annotations: Option<std::collections::BTreeMap<&'static str, String>>,
}

/// Prometheus recording and alerting rules for the definitions: the production form, with each
/// alert's drill scaling stated in its annotations and in the header.
pub fn render_rules(l: &Loaded, source_name: &str) -> String {
    let d = &l.defs;
    let svc = &d.service.name;
    let mut burn_windows = BTreeSet::new();
    for t in &d.triggers {
        if let Condition::BurnRate { long, short, .. } = &t.condition {
            burn_windows.insert(long.0);
            burn_windows.insert(short.0);
        }
    }
    let recordings: Vec<Rule> = burn_windows
        .iter()
        .map(|w| Rule {
            record: Some(d.recorded_ratio(*w)),
            alert: None,
            expr: d.error_ratio_expr(&Matchers::default(), *w),
            hold: None,
            labels: None,
            annotations: None,
        })
        .collect();
    let alerts: Vec<Rule> = d
        .triggers
        .iter()
        .map(|t| Rule {
            record: None,
            alert: Some(t.name.clone()),
            expr: d.alert_expr(t, Scale::Production),
            hold: (!t.hold.0.is_zero()).then(|| duration(t.hold.0)),
            labels: Some(
                [
                    ("severity", t.severity.as_str().to_owned()),
                    ("service", svc.clone()),
                    ("trigger_kind", t.condition.kind().to_owned()),
                ]
                .into(),
            ),
            annotations: Some(
                [
                    ("summary", t.summary.clone()),
                    ("windows", d.scaling_note(t)),
                ]
                .into(),
            ),
        })
        .collect();
    let mut groups = Vec::new();
    if !recordings.is_empty() {
        groups.push(Group {
            name: format!("{svc}-slo-error-ratios"),
            rules: recordings,
        });
    }
    groups.push(Group {
        name: format!("{svc}-rollback-triggers"),
        rules: alerts,
    });
    let body =
        serde_norway::to_string(&RuleFile { groups }).expect("rule structs always serialize");
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# Generated from {source_name} by `verifier triggers render`; do not edit by hand."
    );
    let _ = writeln!(
        out,
        "# CI renders it again and fails on any difference (`verifier triggers render --check`)."
    );
    let _ = writeln!(
        out,
        "# SLO target {}; error budget {}.",
        num(d.slo.target),
        num(d.slo.error_budget())
    );
    let _ = writeln!(
        out,
        "# Windows below are production lengths. In a drill the verifier divides every window and"
    );
    let _ = writeln!(
        out,
        "# `for` by time_scale {} or the trigger's own drill_time_scale (no window below {}):",
        num(d.time_scale),
        duration(d.min_scaled_window.0)
    );
    for t in &d.triggers {
        let _ = writeln!(out, "#   {}: {}", t.name, d.scaling_note(t));
    }
    out.push_str(&body);
    out
}

const KEYWORDS: &[&str] = &[
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "bool",
    "and",
    "or",
    "unless",
    "offset",
    "inf",
    "nan",
    // Aggregation operators are keywords too; `sum by (le) (...)` puts them before `by`.
    "sum",
    "min",
    "max",
    "avg",
    "group",
    "stddev",
    "stdvar",
    "count",
    "count_values",
    "bottomk",
    "topk",
    "quantile",
];

/// Metric names (and recorded series, which contain `:`) an expression reads. Label names,
/// functions, keywords, durations, strings and Grafana variables (`$route`) are skipped.
pub fn metric_names(expr: &str) -> BTreeSet<String> {
    let b = expr.as_bytes();
    let mut out = BTreeSet::new();
    let (mut i, mut braces, mut brackets) = (0, 0usize, 0usize);
    // After `by`/`without`/`on`/`ignoring`/`group_*`, the parenthesised list holds labels.
    let mut label_list_next = false;
    let mut in_label_list = false;
    while i < b.len() {
        let c = b[i];
        match c {
            b'"' | b'\'' | b'`' => {
                i += 1;
                while i < b.len() && b[i] != c {
                    if b[i] == b'\\' {
                        i += 1;
                    }
                    i += 1;
                }
                i += 1;
            }
            b'{' => {
                braces += 1;
                i += 1;
            }
            b'}' => {
                braces = braces.saturating_sub(1);
                i += 1;
            }
            b'[' => {
                brackets += 1;
                i += 1;
            }
            b']' => {
                brackets = brackets.saturating_sub(1);
                i += 1;
            }
            b'(' => {
                in_label_list = label_list_next;
                label_list_next = false;
                i += 1;
            }
            b')' => {
                in_label_list = false;
                i += 1;
            }
            b'$' => {
                i += 1;
                while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_') {
                    i += 1;
                }
            }
            c if c.is_ascii_digit() || c == b'.' => {
                // Numbers and durations (`5m`, `1e3`) are one token.
                while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'.') {
                    i += 1;
                }
            }
            c if c.is_ascii_alphabetic() || c == b'_' || c == b':' => {
                let start = i;
                while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_' || b[i] == b':')
                {
                    i += 1;
                }
                let word = &expr[start..i];
                let next = expr[i..].trim_start().bytes().next();
                let lower = word.to_ascii_lowercase();
                if KEYWORDS.contains(&lower.as_str()) {
                    label_list_next = matches!(
                        lower.as_str(),
                        "by" | "without" | "on" | "ignoring" | "group_left" | "group_right"
                    );
                } else if braces > 0 || brackets > 0 || in_label_list || next == Some(b'(') {
                    // a label name, a function, or part of a subquery range
                } else {
                    out.insert(word.to_owned());
                }
            }
            _ => i += 1,
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_use_the_largest_exact_unit() {
        assert_eq!(duration(Duration::from_secs(3600)), "1h");
        assert_eq!(duration(Duration::from_secs(90)), "90s");
        assert_eq!(duration(Duration::from_secs(300)), "5m");
        assert_eq!(duration(Duration::from_millis(1500)), "1500ms");
        assert_eq!(duration(Duration::from_secs(3 * 86_400)), "3d");
    }

    #[test]
    fn numbers_lose_float_noise() {
        assert_eq!(num(1.0 - 0.999), "0.001");
        assert_eq!(num(14.4), "14.4");
        assert_eq!(num(2.0), "2");
        assert_eq!(num(0.0), "0");
    }

    #[test]
    fn metric_names_skip_labels_functions_and_variables() {
        let e = r#"histogram_quantile(0.99, sum by (le, route) (rate(http_server_request_duration_seconds_bucket{job="x",route=~"$route"}[$__rate_interval]))) > on(job) group_left(code) svc:ratio:rate5m offset 5m"#;
        let names: Vec<String> = metric_names(e).into_iter().collect();
        assert_eq!(
            names,
            vec![
                "http_server_request_duration_seconds_bucket".to_owned(),
                "svc:ratio:rate5m".to_owned()
            ]
        );
        assert!(metric_names("sum(rate(a_total{x=\"b{c}\"}[5m])) / 1e3").contains("a_total"));
    }

    /// The shipped outbox triggers: production rules keep their thresholds, a drill uses the
    /// drill thresholds, and the scaling note states both.
    #[test]
    fn a_drill_threshold_replaces_the_threshold_in_drills_only() {
        let path =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../dashboards/triggers.yaml");
        let defs = crate::trigger::load_file(&path).unwrap().defs;
        let t = |name: &str| defs.triggers.iter().find(|t| t.name == name).unwrap();
        let stale = t("OrdersOutboxStale");
        assert!(defs.alert_expr(stale, Scale::Production).ends_with("> 120"));
        assert!(defs.alert_expr(stale, Scale::Drill).ends_with("> 2"));
        assert!(defs.scaling_note(stale).contains("threshold 120; drill"));
        let breaker = t("PaymentsBreakerOpen");
        assert_eq!(
            defs.alert_expr(breaker, Scale::Production),
            defs.alert_expr(breaker, Scale::Drill)
        );
    }
}
