//! Rollback triggers: declared once in a YAML file, used three ways — the verifier evaluates them
//! during a run (over its own measurements and over PromQL), Prometheus evaluates the rendered
//! alerting rules in production, and the chaos drill proves they fire when they should.
//!
//! Windows are written at production length. A drill runs for minutes, not days, so every window
//! and `for` is divided by the file's `time_scale` when evaluating a short run; the rendered rules
//! state both lengths.
//!
//! A run uses them in three steps: [`load_file`] (and, with a Prometheus, `eval::preflight` and
//! `eval::exported_families` + [`Loaded::check_exported`]) before load starts, so a bad definition
//! is exit 2; then per closed time slice, [`evaluate`] each trigger over [`Source::Own`] (slices
//! built with [`OwnSlice::from_stats`]) and/or [`Source::Prometheus`], feeding each result to that
//! trigger's [`Analysis`]; at the end, `Analysis::phase` (a `rule::Status` via `From`) is the
//! trigger's result and `Analysis::fired_at` its detection time.

pub mod cli;
pub mod eval;
pub mod gate;
pub mod promql;

// Scenario files and trigger files share the YAML locator (field path → line and column).
use crate::scenario::locate;

use std::collections::BTreeSet;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Deserializer};

pub use eval::{Analysis, Measurement, OwnMeasurements, OwnSlice, Phase, Source, evaluate};

use crate::scenario::ParseVisitor;
use locate::Seg;

/// One trigger file: the service's metric vocabulary, its SLO, and the triggers.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Definitions {
    pub service: Service,
    pub slo: Slo,
    /// Windows and `for` are divided by this in a drill (60: 1h becomes 1m).
    pub time_scale: f64,
    /// No scaled window is shorter than this: a `rate()` needs several scrapes inside its window.
    #[serde(default = "default_min_scaled_window")]
    pub min_scaled_window: Win,
    pub triggers: Vec<Trigger>,
}

fn default_min_scaled_window() -> Win {
    Win(Duration::from_secs(5))
}

/// Which series carry the service's traffic.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Service {
    /// Names the service in rule groups and recording-rule names.
    pub name: String,
    /// Label matchers put on every series, e.g. `job="orders-service"`.
    #[serde(default)]
    pub selector: Matchers,
    /// Counter of served requests.
    pub requests: String,
    /// Matchers that pick the failed requests out of `requests`, e.g. `code_class="5xx"`.
    pub errors: Matchers,
    /// Matchers that keep only real traffic (not probes or scrapes) in `requests` and `latency`.
    #[serde(default)]
    pub traffic: Matchers,
    /// Histogram (base name) of request durations in seconds.
    pub latency: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Slo {
    /// Availability objective as a fraction, e.g. 0.999.
    pub target: f64,
}

impl Slo {
    pub fn error_budget(&self) -> f64 {
        1.0 - self.target
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Trigger {
    /// Alert name, e.g. `OrdersErrorBudgetFastBurn`.
    pub name: String,
    pub severity: Severity,
    /// One line a person paged at night understands.
    pub summary: String,
    /// How long the condition must hold before the trigger fires (production length).
    #[serde(rename = "for", default)]
    pub hold: Win,
    /// Failed measurements tolerated before the analysis fails (Argo Rollouts `failureLimit`).
    #[serde(default)]
    pub failure_limit: u32,
    /// Inconclusive measurements tolerated before the analysis is inconclusive.
    #[serde(default)]
    pub inconclusive_limit: u32,
    /// This trigger's own divisor in a drill, for windows too long for a drill at the file's
    /// `time_scale` (a 6 h slow burn is 6 min at 60, longer than a drill). Stated beside the
    /// production windows in the rendered rules and in every report.
    #[serde(default)]
    pub drill_time_scale: Option<f64>,
    #[serde(with = "serde_norway::with::singleton_map")]
    pub condition: Condition,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// Roll back now; wake someone.
    Page,
    /// Needs attention within a working day.
    Ticket,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Page => "page",
            Severity::Ticket => "ticket",
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
pub enum Condition {
    /// Failed share of requests over `window` above `max`.
    ErrorRatio {
        max: f64,
        window: Win,
        #[serde(default)]
        matchers: Matchers,
    },
    /// A quantile of the latency histogram over `window` above `max`.
    Latency {
        quantile: f64,
        max: Win,
        window: Win,
        #[serde(default)]
        matchers: Matchers,
    },
    /// Error-budget burn rate above `factor` over both the long and the short window (the SRE
    /// workbook's multi-window alert: the long window gives significance, the short one makes the
    /// alert stop soon after the burn stops).
    BurnRate { factor: f64, long: Win, short: Win },
    /// An aggregate of a gauge compared with a threshold (outbox backlog, breaker open).
    Saturation {
        gauge: String,
        #[serde(default)]
        aggregate: Aggregate,
        op: Op,
        threshold: f64,
        /// The threshold in a drill, where windows and `for` are divided by `time_scale`: for a
        /// gauge that measures time (an age in seconds) or grows with time (a backlog), the
        /// production threshold could not be reached in minutes. Production rules keep
        /// `threshold`; the scaling is stated in every report that judges the trigger.
        #[serde(default)]
        drill_threshold: Option<f64>,
        #[serde(default)]
        matchers: Matchers,
    },
}

/// The threshold a saturation trigger is judged against at `scale`.
pub fn saturation_threshold(threshold: f64, drill: Option<f64>, scale: promql::Scale) -> f64 {
    match (scale, drill) {
        (promql::Scale::Drill, Some(d)) => d,
        _ => threshold,
    }
}

impl Condition {
    pub fn kind(&self) -> &'static str {
        match self {
            Condition::ErrorRatio { .. } => "error_ratio",
            Condition::Latency { .. } => "latency",
            Condition::BurnRate { .. } => "burn_rate",
            Condition::Saturation { .. } => "saturation",
        }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Aggregate {
    #[default]
    Max,
    Min,
    Sum,
    Avg,
}

impl Aggregate {
    /// This aggregate of `vals`, or `None` when there are none.
    pub fn of(self, vals: &[f64]) -> Option<f64> {
        if vals.is_empty() {
            return None;
        }
        Some(match self {
            Aggregate::Max => vals.iter().copied().fold(f64::NEG_INFINITY, f64::max),
            Aggregate::Min => vals.iter().copied().fold(f64::INFINITY, f64::min),
            Aggregate::Sum => vals.iter().sum(),
            Aggregate::Avg => vals.iter().sum::<f64>() / vals.len() as f64,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Aggregate::Max => "max",
            Aggregate::Min => "min",
            Aggregate::Sum => "sum",
            Aggregate::Avg => "avg",
        }
    }
}

/// The comparison that means "breached".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum Op {
    #[serde(rename = ">")]
    Gt,
    #[serde(rename = ">=")]
    Ge,
    #[serde(rename = "<")]
    Lt,
    #[serde(rename = "<=")]
    Le,
}

impl Op {
    pub fn as_str(self) -> &'static str {
        match self {
            Op::Gt => ">",
            Op::Ge => ">=",
            Op::Lt => "<",
            Op::Le => "<=",
        }
    }
    pub fn breached(self, value: f64, threshold: f64) -> bool {
        match self {
            Op::Gt => value > threshold,
            Op::Ge => value >= threshold,
            Op::Lt => value < threshold,
            Op::Le => value <= threshold,
        }
    }
}

/// A window or hold time, written the way PromQL writes durations: `5m`, `1h`, `30s`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct Win(pub Duration);

impl<'de> Deserialize<'de> for Win {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        // Parsing inside the visit keeps the scalar's position in the error.
        d.deserialize_str(ParseVisitor("a duration such as 5m", |s: &str| {
            parse_win(s).map(Win)
        }))
    }
}

fn parse_win(s: &str) -> Result<Duration, String> {
    let t = s.trim();
    let split = t
        .find(|c: char| !c.is_ascii_digit())
        .ok_or_else(|| format!("duration `{s}` has no unit (use ms, s, m, h or d)"))?;
    let (num, unit) = t.split_at(split);
    if unit.starts_with('.') {
        return Err(format!(
            "duration `{s}` must be a whole number and a unit, e.g. 90m (PromQL has no fractions)"
        ));
    }
    let n: u64 = num
        .parse()
        .map_err(|_| format!("duration `{s}` must be a whole number and a unit, e.g. 5m"))?;
    let ms = match unit {
        "ms" => 1,
        "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        other => {
            return Err(format!(
                "duration `{s}` has unknown unit `{other}` (use ms, s, m, h or d)"
            ));
        }
    };
    Ok(Duration::from_millis(n.saturating_mul(ms)))
}

impl fmt::Display for Win {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&promql::duration(self.0))
    }
}

/// Label matchers in PromQL syntax, without braces: `route="POST /v1/orders", code_class!="4xx"`.
/// Parsed when the file is read, so a typo is a definition error before any run.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Matchers(pub Vec<Matcher>);

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Matcher {
    pub label: String,
    pub op: &'static str,
    pub value: String,
}

impl<'de> Deserialize<'de> for Matchers {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_str(ParseVisitor("PromQL label matchers", |s: &str| {
            parse_matchers(s).map(Matchers)
        }))
    }
}

fn is_ident(s: &str, colon: bool) -> bool {
    let mut chars = s.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || (colon && c == ':'))
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || (colon && c == ':'))
}

/// Parses `label op "value", ...`; values are double-quoted with `\"` and `\\` escapes.
pub fn parse_matchers(s: &str) -> Result<Vec<Matcher>, String> {
    let mut out = Vec::new();
    let mut rest = s.trim();
    while !rest.is_empty() {
        let end = rest
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(rest.len());
        let label = &rest[..end];
        if !is_ident(label, false) {
            return Err(format!(
                "PromQL label matchers `{s}` do not parse: expected a label name at `{rest}`"
            ));
        }
        rest = rest[end..].trim_start();
        let op = ["=~", "!~", "!=", "="]
            .into_iter()
            .find(|op| rest.starts_with(op))
            .ok_or_else(|| {
                format!(
                    "PromQL label matchers `{s}` do not parse: expected =, !=, =~ or !~ after `{label}`"
                )
            })?;
        rest = rest[op.len()..].trim_start();
        let mut value = String::new();
        let mut chars = rest.char_indices();
        if !matches!(chars.next(), Some((_, '"'))) {
            return Err(format!(
                "PromQL label matchers `{s}` do not parse: the value of `{label}` must be double-quoted"
            ));
        }
        let mut closed = None;
        while let Some((i, c)) = chars.next() {
            match c {
                '\\' => match chars.next() {
                    Some((_, e @ ('"' | '\\'))) => value.push(e),
                    Some((_, 'n')) => value.push('\n'),
                    _ => {
                        return Err(format!(
                            "PromQL label matchers `{s}` do not parse: bad escape in the value of `{label}`"
                        ));
                    }
                },
                '"' => {
                    closed = Some(i);
                    break;
                }
                c => value.push(c),
            }
        }
        let close = closed.ok_or_else(|| {
            format!("PromQL label matchers `{s}` do not parse: unterminated string after `{label}`")
        })?;
        out.push(Matcher {
            label: label.to_owned(),
            op,
            value,
        });
        rest = rest[close + 1..].trim_start();
        if let Some(r) = rest.strip_prefix(',') {
            rest = r.trim_start();
        } else if !rest.is_empty() {
            return Err(format!(
                "PromQL label matchers `{s}` do not parse: expected `,` before `{rest}`"
            ));
        }
    }
    Ok(out)
}

/// A trigger file that cannot be used, with where and why (exit 2 before any run): the same
/// located error a scenario file gets, so both print `file:line:col: field `path`: message`.
pub use crate::scenario::ScenarioError as DefinitionError;

/// A loaded file together with its text, so later checks (metrics the service does not export,
/// expressions Prometheus refuses) can still point at a line.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub file: PathBuf,
    pub text: String,
    pub defs: Definitions,
}

impl Loaded {
    /// An error at `path` (e.g. `["triggers", 2, "condition"]`) of this file.
    fn error_at(&self, path: &[Seg], message: String) -> DefinitionError {
        let (line, column) = locate::locate(&self.text, path).unzip();
        DefinitionError {
            file: self.file.clone(),
            line,
            column,
            field: locate::display_path(path),
            message,
        }
    }

    /// The field path of a trigger's condition, for errors found by evaluating it.
    fn condition_error(&self, index: usize, message: String) -> DefinitionError {
        let t = &self.defs.triggers[index];
        self.error_at(
            &[
                k("triggers"),
                Seg::Index(index),
                k("condition"),
                k(t.condition.kind()),
            ],
            message,
        )
    }

    /// A trigger Prometheus refused, located at that trigger's condition.
    pub fn bad_definition(&self, bad: eval::BadDefinition) -> DefinitionError {
        let index = self
            .defs
            .triggers
            .iter()
            .position(|t| t.name == bad.trigger)
            .unwrap_or_default();
        self.condition_error(index, bad.message)
    }

    /// Every metric family the triggers read must be among `exported` (names as the service
    /// registers them: histogram base names, not `_bucket`).
    pub fn check_exported(&self, exported: &BTreeSet<String>) -> Result<(), DefinitionError> {
        for (path, name) in self.defs.metric_uses() {
            if !exported.contains(&name) {
                return Err(self.error_at(
                    &path,
                    format!("metric `{name}` is not exported by the service"),
                ));
            }
        }
        Ok(())
    }
}

fn k(s: &str) -> Seg {
    Seg::Key(s.to_owned())
}

impl Definitions {
    /// Each metric family the definitions read, with the field that names it.
    fn metric_uses(&self) -> Vec<(Vec<Seg>, String)> {
        let mut out = vec![
            (
                vec![k("service"), k("requests")],
                self.service.requests.clone(),
            ),
            (
                vec![k("service"), k("latency")],
                self.service.latency.clone(),
            ),
        ];
        for (i, t) in self.triggers.iter().enumerate() {
            if let Condition::Saturation { gauge, .. } = &t.condition {
                out.push((
                    vec![
                        k("triggers"),
                        Seg::Index(i),
                        k("condition"),
                        k("saturation"),
                        k("gauge"),
                    ],
                    gauge.clone(),
                ));
            }
        }
        out
    }

    /// Metric families (as registered) the triggers read.
    pub fn metric_families(&self) -> BTreeSet<String> {
        self.metric_uses().into_iter().map(|(_, n)| n).collect()
    }

    /// What `t`'s windows and `for` are divided by in a drill: its own `drill_time_scale`, else
    /// the file's `time_scale`.
    pub fn time_scale_of(&self, t: &Trigger) -> f64 {
        t.drill_time_scale.unwrap_or(self.time_scale)
    }

    /// The length one of `t`'s windows has in a drill: divided by its time scale, rounded up to
    /// whole seconds, never below `min_scaled_window`.
    pub fn scaled(&self, t: &Trigger, d: Duration) -> Duration {
        if d.is_zero() {
            return d;
        }
        let secs = (d.as_secs_f64() / self.time_scale_of(t)).ceil();
        Duration::from_secs_f64(secs).max(self.min_scaled_window.0)
    }

    /// `t`'s `for` in a drill: scaled like a window, but zero stays zero and no floor applies
    /// beyond one second.
    pub fn scaled_hold(&self, t: &Trigger) -> Duration {
        let d = t.hold.0;
        if d.is_zero() {
            return d;
        }
        Duration::from_secs_f64((d.as_secs_f64() / self.time_scale_of(t)).ceil().max(1.0))
    }

    /// A window of `t` as `scale` evaluates it.
    pub fn length(&self, t: &Trigger, d: Duration, scale: promql::Scale) -> Duration {
        match scale {
            promql::Scale::Production => d,
            promql::Scale::Drill => self.scaled(t, d),
        }
    }
}

/// Reads and validates a trigger file.
pub fn load_file(path: &Path) -> Result<Loaded, DefinitionError> {
    parse(path, &crate::scenario::read_file(path)?)
}

/// Parses and validates trigger definitions; `file` only names them in errors.
pub fn parse(file: &Path, text: &str) -> Result<Loaded, DefinitionError> {
    let defs: Definitions = crate::scenario::deserialize_located(file, text)?;
    let loaded = Loaded {
        file: file.to_owned(),
        text: text.to_owned(),
        defs,
    };
    validate(&loaded.defs).map_err(|(path, message)| loaded.error_at(&path, message))?;
    Ok(loaded)
}

fn check_fraction(v: f64, what: &str) -> Result<(), String> {
    if v.is_finite() && v > 0.0 && v < 1.0 {
        Ok(())
    } else {
        Err(format!(
            "{what} {v} is not a fraction strictly between 0 and 1"
        ))
    }
}

/// Rules that span fields; each failure carries the path of the field to blame.
fn validate(d: &Definitions) -> Result<(), (Vec<Seg>, String)> {
    let svc = |f: &str| vec![k("service"), k(f)];
    if !is_ident(&d.service.name.replace('-', "_"), false) {
        return Err((
            svc("name"),
            format!(
                "service name `{}` must be letters, digits, `_` or `-` (it names rule groups and recorded series)",
                d.service.name
            ),
        ));
    }
    for (f, name) in [
        ("requests", &d.service.requests),
        ("latency", &d.service.latency),
    ] {
        if !is_ident(name, false) {
            return Err((svc(f), format!("`{name}` is not a Prometheus metric name")));
        }
    }
    if d.service.errors.0.is_empty() {
        return Err((
            svc("errors"),
            "at least one matcher is needed to tell failed requests apart".into(),
        ));
    }
    check_fraction(d.slo.target, "SLO target").map_err(|m| (vec![k("slo"), k("target")], m))?;
    if !(d.time_scale.is_finite() && d.time_scale >= 1.0) {
        return Err((
            vec![k("time_scale")],
            format!(
                "time_scale {} must be 1 or more (windows are divided by it in a drill)",
                d.time_scale
            ),
        ));
    }
    if d.min_scaled_window.0 < Duration::from_secs(1) {
        return Err((vec![k("min_scaled_window")], "must be at least 1s".into()));
    }
    if d.triggers.is_empty() {
        return Err((
            vec![k("triggers")],
            "at least one trigger is required".into(),
        ));
    }
    let mut names = BTreeSet::new();
    for (i, t) in d.triggers.iter().enumerate() {
        let tp = |f: &[&str]| {
            let mut p = vec![k("triggers"), Seg::Index(i)];
            p.extend(f.iter().map(|s| k(s)));
            p
        };
        if !is_ident(&t.name, false) {
            return Err((
                tp(&["name"]),
                format!(
                    "trigger name `{}` must be letters, digits and `_` (it becomes the alert name)",
                    t.name
                ),
            ));
        }
        if !names.insert(t.name.as_str()) {
            return Err((
                tp(&["name"]),
                format!("trigger name `{}` is used twice", t.name),
            ));
        }
        if let Some(ts) = t.drill_time_scale
            && !(ts.is_finite() && ts >= 1.0)
        {
            return Err((
                tp(&["drill_time_scale"]),
                format!(
                    "drill_time_scale {ts} must be 1 or more (its windows are divided by it in a drill)"
                ),
            ));
        }
        let kind = t.condition.kind();
        let whole = |w: &Win, f: &str| -> Result<(), (Vec<Seg>, String)> {
            if w.0 < Duration::from_secs(1) || w.0.subsec_nanos() != 0 {
                Err((
                    tp(&["condition", kind, f]),
                    format!("window {w} must be whole seconds, at least 1s"),
                ))
            } else {
                Ok(())
            }
        };
        match &t.condition {
            Condition::ErrorRatio { max, window, .. } => {
                check_fraction(*max, "error ratio")
                    .map_err(|m| (tp(&["condition", kind, "max"]), m))?;
                whole(window, "window")?;
            }
            Condition::Latency {
                quantile,
                max,
                window,
                ..
            } => {
                check_fraction(*quantile, "quantile")
                    .map_err(|m| (tp(&["condition", kind, "quantile"]), m))?;
                if max.0.is_zero() {
                    return Err((
                        tp(&["condition", kind, "max"]),
                        "latency ceiling must be greater than zero".into(),
                    ));
                }
                whole(window, "window")?;
            }
            Condition::BurnRate {
                factor,
                long,
                short,
            } => {
                whole(long, "long")?;
                whole(short, "short")?;
                if short >= long {
                    return Err((
                        tp(&["condition", kind, "short"]),
                        format!("short window {short} must be shorter than the long window {long}"),
                    ));
                }
                if !(factor.is_finite() && *factor > 0.0) {
                    return Err((
                        tp(&["condition", kind, "factor"]),
                        format!("burn-rate factor {factor} must be greater than zero"),
                    ));
                }
                let ceiling = factor * d.slo.error_budget();
                if ceiling >= 1.0 {
                    return Err((
                        tp(&["condition", kind, "factor"]),
                        format!(
                            "burn rate {factor}x of a {} error budget needs an error ratio of {}: it can never fire",
                            promql::num(d.slo.error_budget()),
                            promql::num(ceiling)
                        ),
                    ));
                }
            }
            Condition::Saturation {
                gauge,
                threshold,
                drill_threshold,
                ..
            } => {
                if drill_threshold.is_some_and(|d| !d.is_finite()) {
                    return Err((
                        tp(&["condition", kind, "drill_threshold"]),
                        "drill_threshold must be a finite number".into(),
                    ));
                }
                if !is_ident(gauge, false) {
                    return Err((
                        tp(&["condition", kind, "gauge"]),
                        format!("`{gauge}` is not a Prometheus metric name"),
                    ));
                }
                if !threshold.is_finite() {
                    return Err((
                        tp(&["condition", kind, "threshold"]),
                        "threshold must be a finite number".into(),
                    ));
                }
            }
        }
    }
    Ok(())
}

/// Metrics registered in a Go file, by name, with their kind (`counter`, `gauge`, `histogram`,
/// `summary`): every `Name: "..."` inside a `prometheus.*Opts{`, the form
/// `reference-service/internal/telemetry/metrics.go` uses.
pub fn go_metrics(go_source: &str) -> std::collections::BTreeMap<String, &'static str> {
    let mut out = std::collections::BTreeMap::new();
    let mut kind = "";
    let mut rest = go_source;
    loop {
        let next_opts = rest.find("Opts{");
        let next_name = rest.find("Name:");
        match (next_opts, next_name) {
            (Some(o), n) if n.is_none_or(|n| o < n) => {
                let before = &rest[..o];
                kind = ["Counter", "Gauge", "Histogram", "Summary"]
                    .into_iter()
                    .find(|k| before.ends_with(k))
                    .map_or("", |k| match k {
                        "Counter" => "counter",
                        "Gauge" => "gauge",
                        "Histogram" => "histogram",
                        _ => "summary",
                    });
                rest = &rest[o + 5..];
            }
            (_, Some(n)) => {
                rest = rest[n + 5..].trim_start();
                if let Some(r) = rest.strip_prefix('"')
                    && let Some(end) = r.find('"')
                {
                    out.insert(r[..end].to_owned(), kind);
                    rest = &r[end..];
                }
            }
            _ => return out,
        }
    }
}

/// The series names a set of registered metrics exports: histograms and summaries as their
/// `_bucket` (histograms only), `_sum` and `_count` series.
pub fn exported_series(
    metrics: &std::collections::BTreeMap<String, &'static str>,
) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for (name, kind) in metrics {
        match *kind {
            "histogram" | "summary" => {
                if *kind == "histogram" {
                    out.insert(format!("{name}_bucket"));
                }
                out.insert(format!("{name}_sum"));
                out.insert(format!("{name}_count"));
            }
            _ => {
                out.insert(name.clone());
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matchers_keep_escapes_and_render_back() {
        let m = parse_matchers(r#" route="a \"b\" \\c" , code!~"5.." "#).unwrap();
        assert_eq!(m.len(), 2);
        assert_eq!(m[0].value, r#"a "b" \c"#);
        assert_eq!((m[1].label.as_str(), m[1].op), ("code", "!~"));
        assert_eq!(
            promql::selector(&[&Matchers(m)]),
            r#"{route="a \"b\" \\c",code!~"5.."}"#
        );
        assert_eq!(parse_matchers("").unwrap(), vec![]);
        assert!(
            parse_matchers(r#"a="x\q""#)
                .unwrap_err()
                .contains("bad escape")
        );
    }

    #[test]
    fn go_metrics_know_their_kind() {
        let src = r#"f.NewHistogramVec(prometheus.HistogramOpts{
            Name: "h_seconds", Help: "x"}, nil)
        f.NewGauge(prometheus.GaugeOpts{Name: "g"})"#;
        let m = go_metrics(src);
        assert_eq!(m.get("h_seconds"), Some(&"histogram"));
        assert_eq!(m.get("g"), Some(&"gauge"));
        let s = exported_series(&m);
        assert!(s.contains("h_seconds_bucket") && !s.contains("h_seconds") && s.contains("g"));
    }
}
