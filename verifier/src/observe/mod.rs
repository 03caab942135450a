//! Observability acceptance: what the service must emit for production to see it. Each check is
//! its own rule (`RuleKind::Observability`) with evidence:
//!
//! - required metric families exist on `/metrics` with the declared type and labels;
//! - the service's latency histogram agrees with the verifier's client-side measurement of the
//!   same route (server quantile from bucket deltas over the run);
//! - a `traceparent` the verifier sends is continued (same trace id in the response's
//!   `traceresponse` header, or in the service's log lines);
//! - log lines are JSON, request lines carry the trace and request ids;
//! - no unmasked email address appears in the logs.
//!
//! [`Observer::before`] takes a baseline scrape before load; [`Observer::after`] probes, scrapes
//! again and judges. Logs come from the environment's capture of the service process.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::env::containers::{Captured, LogCapture};
use crate::prom::expo::{self, Exposition};
use crate::record::Measurements;
use crate::rule::{RuleKind, RuleResult, Status};
use crate::scenario::Dur;

/// The `observability:` section of a scenario.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ObservabilitySpec {
    /// Path of the service's Prometheus metrics.
    #[serde(default = "default_metrics_path")]
    pub metrics_path: String,
    /// Metric families that must be exported, by name, with their type and labels.
    #[serde(default)]
    pub metrics: BTreeMap<String, MetricRequirement>,
    /// The service's latency histogram must agree with the verifier's measurement.
    #[serde(default)]
    pub histogram: Option<HistogramAgreement>,
    /// A `traceparent` sent on one request must be continued by the service.
    #[serde(default)]
    pub trace: Option<TraceProbe>,
    /// Checks of the service's log lines (needs a service the verifier started).
    #[serde(default)]
    pub logs: Option<LogChecks>,
}

fn default_metrics_path() -> String {
    "/metrics".into()
}

#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MetricRequirement {
    #[serde(rename = "type")]
    pub kind: MetricType,
    /// Labels every series of the family must carry (`le` of histogram buckets is implied).
    #[serde(default)]
    pub labels: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum MetricType {
    Counter,
    Gauge,
    Histogram,
    Summary,
}

impl MetricType {
    pub fn as_str(self) -> &'static str {
        match self {
            MetricType::Counter => "counter",
            MetricType::Gauge => "gauge",
            MetricType::Histogram => "histogram",
            MetricType::Summary => "summary",
        }
    }
}

/// The server-side quantile of `metric` over the run, for the series matching `labels`, must lie
/// within `tolerance` of the bucket that holds the verifier's quantile for `endpoint`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HistogramAgreement {
    /// Histogram base name, e.g. `http_server_request_duration_seconds`.
    pub metric: String,
    /// The scenario's step name whose client-side latencies are compared.
    pub endpoint: String,
    /// Exact label values picking the endpoint's series, e.g. `{route: "GET /v1/orders/{id}"}`.
    pub labels: BTreeMap<String, String>,
    #[serde(default = "default_quantile")]
    pub quantile: f64,
    /// How far beyond the server's bucket the client's value may lie: what the client measures
    /// and the server does not (network, connection handling, the generator's own queueing).
    pub tolerance: Dur,
}

fn default_quantile() -> f64 {
    0.99
}

#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TraceProbe {
    /// A GET path answered with the scenario's default headers, e.g. `/v1/orders?limit=1`.
    pub path: String,
    /// Response header that carries the continued trace context.
    #[serde(default = "default_trace_header")]
    pub header: String,
}

fn default_trace_header() -> String {
    "traceresponse".into()
}

#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LogChecks {
    /// `msg` of the per-request access line, which must carry every id of `ids`.
    #[serde(default = "default_request_message")]
    pub request_message: String,
    #[serde(default = "default_ids")]
    pub ids: Vec<String>,
    /// No unmasked email address may appear in any line.
    #[serde(default = "yes")]
    pub no_emails: bool,
}

fn default_request_message() -> String {
    "request".into()
}
fn default_ids() -> Vec<String> {
    vec!["trace_id".into(), "request_id".into()]
}
fn yes() -> bool {
    true
}

/// Checks of the section that need only the scenario.
pub fn validate_spec(
    spec: &ObservabilitySpec,
    endpoints: &BTreeSet<String>,
) -> Result<(), (Vec<String>, String)> {
    if !spec.metrics_path.starts_with('/') {
        return Err((
            vec!["metrics_path".into()],
            "path must start with `/`".into(),
        ));
    }
    if let Some(h) = &spec.histogram {
        let p = |f: &str| vec!["histogram".into(), f.into()];
        if !endpoints.contains(h.endpoint.as_str()) {
            return Err((
                p("endpoint"),
                format!(
                    "no step is named `{}` (known: {})",
                    h.endpoint,
                    endpoints.iter().cloned().collect::<Vec<_>>().join(", ")
                ),
            ));
        }
        if !(h.quantile > 0.0 && h.quantile < 1.0) {
            return Err((
                p("quantile"),
                format!("quantile {} is not between 0 and 1", h.quantile),
            ));
        }
        if h.labels.is_empty() {
            return Err((
                p("labels"),
                "name the endpoint's series, e.g. `{route: \"GET /v1/orders/{id}\"}`".into(),
            ));
        }
    }
    if let Some(t) = &spec.trace
        && !t.path.starts_with('/')
    {
        return Err((
            vec!["trace".into(), "path".into()],
            "path must start with `/`".into(),
        ));
    }
    if let Some(l) = &spec.logs
        && l.ids.is_empty()
        && !l.no_emails
    {
        return Err((vec!["logs".into()], "checks nothing".into()));
    }
    Ok(())
}

/// The observability part of the report.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
pub struct ObservabilityReport {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub histogram: Option<AgreementReport>,
    /// Trace id the verifier sent, and what came back.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace: Option<TraceReport>,
    /// Service log lines captured, and dropped past the capture's bounds.
    pub log_lines: u64,
    pub log_lines_dropped: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct AgreementReport {
    pub endpoint: String,
    pub quantile: f64,
    /// Interpolated server-side quantile, seconds (as `histogram_quantile` computes it).
    pub server_s: f64,
    /// The bucket holding it: (lower, upper) seconds.
    pub bucket_s: (f64, f64),
    pub client_s: f64,
    pub tolerance_s: f64,
    pub server_count: u64,
    pub client_count: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct TraceReport {
    pub sent_trace_id: String,
    pub response_header: Option<String>,
    pub log_lines_with_trace: u64,
}

/// The checks of one run.
pub struct Observer {
    spec: ObservabilitySpec,
    base: String,
    http: reqwest::Client,
    before: Result<Exposition, String>,
    capture: Option<Arc<LogCapture>>,
    headers: Vec<(String, String)>,
}

const IO_TIMEOUT: Duration = Duration::from_secs(5);

impl Observer {
    /// Takes the baseline scrape. `headers` go on the trace probe (e.g. the bearer token);
    /// `capture` is the service's output when the verifier started it.
    pub async fn before(
        spec: &ObservabilitySpec,
        target: &str,
        capture: Option<Arc<LogCapture>>,
        headers: Vec<(String, String)>,
    ) -> Observer {
        let http = reqwest::Client::new();
        let base = target.trim_end_matches('/').to_owned();
        let before = expo::scrape(&http, &format!("{base}{}", spec.metrics_path), IO_TIMEOUT).await;
        Observer {
            spec: spec.clone(),
            base,
            http,
            before,
            capture,
            headers,
        }
    }

    /// Probes, scrapes again and judges every check.
    pub async fn after(self, m: &Measurements) -> (Vec<RuleResult>, ObservabilityReport) {
        let mut rules = Vec::new();
        let mut report = ObservabilityReport::default();
        let probe = match &self.spec.trace {
            Some(t) => Some(self.trace_probe(t).await),
            None => None,
        };
        // The service writes its access line after the response; give the reader a moment.
        if probe.is_some() && self.capture.is_some() {
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
        let url = format!("{}{}", self.base, self.spec.metrics_path);
        let after = expo::scrape(&self.http, &url, IO_TIMEOUT).await;
        let logs = self.capture.as_ref().map(|c| c.snapshot());
        if let Some(c) = &logs {
            report.log_lines = (c.stdout.len() + c.stderr.len()) as u64;
            report.log_lines_dropped = c.dropped;
        }
        for (name, req) in &self.spec.metrics {
            rules.push(metric_rule(name, req, &after, &url));
        }
        if let Some(h) = &self.spec.histogram {
            let (rule, agreement) = agreement_rule(h, &self.before, &after, m);
            rules.push(rule);
            report.histogram = agreement;
        }
        if let Some((sent, header)) = probe {
            let lines = logs.as_ref().map(|c| c.stdout.as_slice());
            let (rule, tr) = trace_rule(&self.spec, &sent, header, lines);
            rules.push(rule);
            report.trace = Some(tr);
        }
        if let Some(l) = &self.spec.logs {
            rules.extend(log_rules(l, logs.as_ref()));
        }
        (rules, report)
    }

    /// Sends one GET with a fresh `traceparent`; returns the trace id sent and the response
    /// header (or why there is none).
    async fn trace_probe(&self, t: &TraceProbe) -> (String, Result<Option<String>, String>) {
        let trace_id = format!("{:032x}", uuid::Uuid::new_v4().as_u128());
        let span_id = format!("{:016x}", (uuid::Uuid::new_v4().as_u128() as u64) | 1);
        let mut req = self
            .http
            .get(format!("{}{}", self.base, t.path))
            .timeout(IO_TIMEOUT)
            .header("traceparent", format!("00-{trace_id}-{span_id}-01"));
        for (k, v) in &self.headers {
            req = req.header(k, v);
        }
        let header = match req.send().await {
            Ok(resp) => Ok(resp
                .headers()
                .get(&t.header)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)),
            Err(e) => Err(format!("GET {}: {e}", t.path)),
        };
        (trace_id, header)
    }
}

fn rule(id: String, scope: &str, budget: String) -> RuleResult {
    RuleResult {
        id,
        kind: RuleKind::Observability,
        scope: scope.to_owned(),
        endpoint: None,
        budget,
        observed: String::new(),
        status: Status::Pass,
        detail: String::new(),
        evidence: Vec::new(),
    }
}

/// One required family: present, of the declared type, every series with the labels.
pub fn metric_rule(
    name: &str,
    req: &MetricRequirement,
    scraped: &Result<Exposition, String>,
    url: &str,
) -> RuleResult {
    let mut r = rule(
        format!("observability.metric.{name}"),
        "after the run",
        format!(
            "{} with labels [{}]",
            req.kind.as_str(),
            req.labels.join(", ")
        ),
    );
    let exp = match scraped {
        Ok(e) => e,
        Err(e) => {
            r.status = Status::Fail;
            r.observed = "metrics unreadable".into();
            r.detail = e.clone();
            return r;
        }
    };
    let Some(f) = exp.get(name) else {
        r.status = Status::Fail;
        r.observed = "not exported".into();
        r.detail = format!("{url} has no family `{name}`");
        return r;
    };
    if f.kind != req.kind.as_str() {
        r.status = Status::Fail;
        r.observed = format!("type {}", f.kind);
        r.detail = format!(
            "`{name}` is a {}, the checks need a {}",
            f.kind,
            req.kind.as_str()
        );
        r.evidence = f.samples.iter().take(3).map(sample_line).collect();
        return r;
    }
    if f.samples.is_empty() {
        r.status = Status::Fail;
        r.observed = "no series".into();
        r.detail = format!("`{name}` is declared but has no series");
        return r;
    }
    let missing: Vec<&expo::Sample> = f
        .samples
        .iter()
        .filter(|s| req.labels.iter().any(|l| !s.labels.contains_key(l)))
        .collect();
    if missing.is_empty() {
        r.observed = format!("{} with {} series", f.kind, f.samples.len());
    } else {
        r.status = Status::Fail;
        r.observed = format!(
            "{} of {} series lack a label",
            missing.len(),
            f.samples.len()
        );
        let lacking: BTreeSet<&str> = req
            .labels
            .iter()
            .filter(|l| missing.iter().any(|s| !s.labels.contains_key(*l)))
            .map(String::as_str)
            .collect();
        r.detail = format!(
            "missing label(s): {}",
            lacking.into_iter().collect::<Vec<_>>().join(", ")
        );
        r.evidence = missing.iter().take(3).map(|s| sample_line(s)).collect();
    }
    r
}

fn sample_line(s: &expo::Sample) -> String {
    let labels: Vec<String> = s.labels.iter().map(|(k, v)| format!("{k}={v:?}")).collect();
    format!("{}{{{}}} {}", s.name, labels.join(","), s.value)
}

/// Cumulative bucket counts (`le` → count) of `metric`'s series matching `labels`, summed.
fn buckets(
    exp: &Exposition,
    metric: &str,
    labels: &BTreeMap<String, String>,
) -> BTreeMap<u64, (f64, f64)> {
    // Keyed by the bit pattern of `le` so +Inf sorts last among positive floats.
    let mut out: BTreeMap<u64, (f64, f64)> = BTreeMap::new();
    let Some(f) = exp.get(metric) else {
        return out;
    };
    let bucket = format!("{metric}_bucket");
    for s in f.samples.iter().filter(|s| s.name == bucket) {
        if labels.iter().any(|(k, v)| s.labels.get(k) != Some(v)) {
            continue;
        }
        let Some(le) = s.labels.get("le").and_then(|v| match v.as_str() {
            "+Inf" => Some(f64::INFINITY),
            v => v.parse::<f64>().ok(),
        }) else {
            continue;
        };
        out.entry(le.to_bits()).or_insert((le, 0.0)).1 += s.value;
    }
    out
}

/// The quantile of cumulative buckets as Prometheus's `histogram_quantile` computes it (linear
/// within the bucket), with the bucket's bounds; `None` without observations.
pub fn bucket_quantile(q: f64, cumulative: &[(f64, f64)]) -> Option<(f64, f64, f64)> {
    let total = cumulative.last()?.1;
    if total <= 0.0 {
        return None;
    }
    let rank = q * total;
    let mut prev = (0.0, 0.0);
    for &(le, count) in cumulative {
        if count >= rank {
            if le.is_infinite() {
                // Prometheus answers the highest finite bound; the value lies above it.
                return Some((prev.0, prev.0, f64::INFINITY));
            }
            let within = if count > prev.1 {
                (rank - prev.1) / (count - prev.1)
            } else {
                0.0
            };
            return Some((prev.0 + (le - prev.0) * within, prev.0, le));
        }
        prev = (le, count);
    }
    None
}

/// Server-side quantile from bucket deltas over the run, against the client's.
pub fn agreement_rule(
    h: &HistogramAgreement,
    before: &Result<Exposition, String>,
    after: &Result<Exposition, String>,
    m: &Measurements,
) -> (RuleResult, Option<AgreementReport>) {
    let label = crate::trigger::promql::num(h.quantile * 100.0);
    let tol = h.tolerance.0.as_secs_f64();
    let mut r = rule(
        format!("observability.histogram.{}.p{label}", h.endpoint),
        "whole run",
        format!(
            "client p{label} within the server bucket of its p{label} ± {} ms",
            crate::trigger::promql::num(tol * 1000.0)
        ),
    );
    r.endpoint = Some(h.endpoint.clone());
    r.detail = "the server knows only which bucket a request fell in, so its quantile is exact \
                only to the bucket; the client's latency also holds the network, connection \
                handling and the generator's queueing, which the tolerance allows for"
        .into();
    let (after, before) = match (after, before) {
        (Ok(a), Ok(b)) => (a, b),
        (Err(e), _) | (_, Err(e)) => {
            r.status = Status::Inconclusive;
            r.observed = "metrics unreadable".into();
            r.evidence = vec![e.clone()];
            return (r, None);
        }
    };
    let start = buckets(before, &h.metric, &h.labels);
    let end = buckets(after, &h.metric, &h.labels);
    let deltas: Vec<(f64, f64)> = end
        .values()
        .map(|(le, c)| (*le, c - start.get(&le.to_bits()).map_or(0.0, |x| x.1)))
        .collect();
    let Some(client) = m.stats(&h.endpoint).filter(|s| !s.hist.is_empty()) else {
        r.status = Status::Inconclusive;
        r.observed = format!("no client latencies for `{}`", h.endpoint);
        return (r, None);
    };
    let client_s = client.hist.value_at_quantile(h.quantile) as f64 / 1e6;
    let server_count = deltas.last().map_or(0.0, |d| d.1) as u64;
    r.evidence = deltas
        .iter()
        .map(|(le, c)| format!("{}_bucket{{le=\"{le}\"}} +{c}", h.metric))
        .collect();
    r.evidence.insert(
        0,
        format!(
            "series {:?}: {server_count} observations over the run; client {} requests",
            h.labels,
            client.counts.total()
        ),
    );
    let Some((server_s, lo, hi)) = bucket_quantile(h.quantile, &deltas) else {
        r.status = Status::Fail;
        r.observed = format!(
            "the server observed no {} requests (client sent {})",
            h.endpoint,
            client.counts.total()
        );
        return (r, None);
    };
    let ok = client_s >= lo - tol && client_s <= hi + tol;
    r.status = if ok { Status::Pass } else { Status::Fail };
    let ms = |s: f64| format!("{:.1} ms", s * 1000.0);
    r.observed = format!(
        "server p{label} {} (bucket {}–{}), client p{label} {}",
        ms(server_s),
        ms(lo),
        if hi.is_finite() {
            ms(hi)
        } else {
            "+Inf".into()
        },
        ms(client_s)
    );
    let report = AgreementReport {
        endpoint: h.endpoint.clone(),
        quantile: h.quantile,
        server_s: (server_s * 1e6).round() / 1e6,
        bucket_s: (lo, hi.min(f64::MAX)),
        client_s,
        tolerance_s: tol,
        server_count,
        client_count: client.counts.total(),
    };
    (r, Some(report))
}

fn trace_id_of(traceparent: &str) -> Option<&str> {
    let mut parts = traceparent.trim().split('-');
    let _version = parts.next()?;
    let id = parts.next()?;
    (id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit())).then_some(id)
}

/// The sent trace id must come back in the response header or in the logs.
pub fn trace_rule(
    spec: &ObservabilitySpec,
    sent: &str,
    header: Result<Option<String>, String>,
    logs: Option<&[String]>,
) -> (RuleResult, TraceReport) {
    let t = spec.trace.as_ref().expect("trace probe configured");
    let mut r = rule(
        "observability.trace".into(),
        &format!("GET {}", t.path),
        format!(
            "trace {sent} continued (`{}` header or log lines)",
            t.header
        ),
    );
    let in_logs = logs.map(|ls| {
        ls.iter()
            .filter(|l| {
                serde_json::from_str::<serde_json::Value>(l)
                    .ok()
                    .and_then(|v| {
                        v.get("trace_id")
                            .and_then(|x| x.as_str())
                            .map(|x| x == sent)
                    })
                    .unwrap_or(false)
            })
            .count() as u64
    });
    let report = TraceReport {
        sent_trace_id: sent.to_owned(),
        response_header: header.as_ref().ok().cloned().flatten(),
        log_lines_with_trace: in_logs.unwrap_or(0),
    };
    r.evidence.push(format!(
        "curl -H 'traceparent: 00-{sent}-<span>-01' <target>{}",
        t.path
    ));
    let header = match header {
        Ok(h) => h,
        Err(e) => {
            r.status = Status::Inconclusive;
            r.observed = "probe failed".into();
            r.detail = e;
            return (r, report);
        }
    };
    let header_id = header.as_deref().and_then(trace_id_of);
    r.evidence.push(format!(
        "{}: {}",
        t.header,
        header.as_deref().unwrap_or("(absent)")
    ));
    match (header_id, in_logs) {
        (Some(id), _) if id != sent => {
            r.status = Status::Fail;
            r.observed = format!("a new trace {id} was started instead");
        }
        (Some(_), logs) => {
            r.observed = format!(
                "continued in the `{}` header{}",
                t.header,
                logs.map(|n| format!(", {n} log line(s)"))
                    .unwrap_or_default()
            );
        }
        (None, Some(n)) if n > 0 => {
            r.observed = format!("continued in {n} log line(s)");
        }
        (None, _) => {
            r.status = Status::Fail;
            r.observed = "not continued".into();
            r.detail = format!(
                "no `{}` header with the trace id{}",
                t.header,
                if logs.is_some() {
                    ", and no log line carries it"
                } else {
                    " (the service's logs are not visible)"
                }
            );
        }
    }
    (r, report)
}

/// An email address in clear: a non-empty local part right before `@` and a dotted domain.
/// Masked forms (`s***@example.com`) have `*` before the `@` and do not count.
pub fn unmasked_emails(line: &str) -> Vec<String> {
    let local = |c: char| c.is_ascii_alphanumeric() || "._%+-".contains(c);
    let dom = |c: char| c.is_ascii_alphanumeric() || c == '.' || c == '-';
    let mut out = Vec::new();
    for (i, _) in line.match_indices('@') {
        let start = line[..i]
            .char_indices()
            .rev()
            .take_while(|(_, c)| local(*c))
            .last()
            .map(|(j, _)| j);
        let end = line[i + 1..]
            .char_indices()
            .take_while(|(_, c)| dom(*c))
            .last()
            .map(|(j, c)| i + 1 + j + c.len_utf8());
        if let (Some(s), Some(e)) = (start, end) {
            let domain = line[i + 1..e].trim_end_matches('.');
            if domain.contains('.') && !line[s..i].chars().all(|c| c == '.') {
                out.push(line[s..i + 1 + domain.len()].to_owned());
            }
        }
    }
    out
}

/// JSON lines and ids on request lines in the log stream (stdout; stderr is for what comes
/// before the logger, such as the configuration banner, and for crashes), no emails in clear on
/// either.
pub fn log_rules(spec: &LogChecks, logs: Option<&Captured>) -> Vec<RuleResult> {
    let mut json = rule(
        "observability.logs.json".into(),
        "service log lines",
        "every line a JSON object".into(),
    );
    let mut ids = rule(
        "observability.logs.ids".into(),
        "service log lines",
        format!(
            "`{}` lines carry {}",
            spec.request_message,
            spec.ids.join(", ")
        ),
    );
    let mut pii = rule(
        "observability.logs.pii".into(),
        "service log lines",
        "no email address in clear".into(),
    );
    let Some(captured) = logs else {
        let mut out = vec![json, ids];
        if spec.no_emails {
            out.push(pii);
        }
        for r in &mut out {
            r.status = Status::Inconclusive;
            r.observed = "logs not visible".into();
            r.detail = "the verifier did not start the service, so it cannot read its logs".into();
        }
        return out;
    };
    let mut not_json = Vec::new();
    let mut request_lines = 0u64;
    let mut lacking = Vec::new();
    let mut leaks = Vec::new();
    let lines = &captured.stdout;
    if spec.no_emails {
        for line in &captured.stderr {
            for e in unmasked_emails(line) {
                leaks.push(format!("{e} in (stderr): {line}"));
            }
        }
    }
    for line in lines {
        match serde_json::from_str::<serde_json::Value>(line) {
            Ok(serde_json::Value::Object(o)) => {
                if o.get("msg").and_then(|m| m.as_str()) == Some(spec.request_message.as_str()) {
                    request_lines += 1;
                    let missing: Vec<&str> = spec
                        .ids
                        .iter()
                        .filter(|id| {
                            o.get(id.as_str())
                                .and_then(|v| v.as_str())
                                .is_none_or(str::is_empty)
                        })
                        .map(String::as_str)
                        .collect();
                    if !missing.is_empty() {
                        lacking.push(format!("lacks {}: {line}", missing.join(", ")));
                    }
                }
            }
            _ => not_json.push(line.clone()),
        }
        if spec.no_emails {
            for e in unmasked_emails(line) {
                leaks.push(format!("{e} in: {line}"));
            }
        }
    }
    let n = lines.len();
    if n == 0 {
        json.status = Status::Inconclusive;
        json.observed = "no log lines".into();
    } else if not_json.is_empty() {
        json.observed = format!("{n} lines, all JSON");
        json.detail = format!(
            "stdout, the log stream; {} stderr line(s) not held to it",
            captured.stderr.len()
        );
    } else {
        json.status = Status::Fail;
        json.observed = format!("{} of {n} lines are not JSON objects", not_json.len());
        json.evidence = not_json.into_iter().take(5).collect();
    }
    if request_lines == 0 {
        ids.status = Status::Inconclusive;
        ids.observed = format!("no `{}` lines among {n}", spec.request_message);
        ids.detail = "the service's log level may hide its access lines".into();
    } else if lacking.is_empty() {
        ids.observed = format!("{request_lines} request lines, all with ids");
    } else {
        ids.status = Status::Fail;
        ids.observed = format!(
            "{} of {request_lines} request lines lack an id",
            lacking.len()
        );
        ids.evidence = lacking.into_iter().take(5).collect();
    }
    let mut out = vec![json, ids];
    if spec.no_emails {
        if n + captured.stderr.len() == 0 {
            pii.status = Status::Inconclusive;
            pii.observed = "no log lines".into();
        } else if leaks.is_empty() {
            pii.observed = format!("none in {} lines", n + captured.stderr.len());
        } else {
            pii.status = Status::Fail;
            pii.observed = format!("{} email address(es) in clear", leaks.len());
            pii.evidence = leaks.into_iter().take(5).collect();
        }
        out.push(pii);
    }
    out
}

/// The summary.md lines.
pub fn markdown(o: &mut String, r: &ObservabilityReport) {
    use std::fmt::Write as _;
    if let Some(h) = &r.histogram {
        let _ = writeln!(
            o,
            "\nServer vs client p{} of `{}`: server {:.1} ms (bucket {:.1}–{} ms, {} observations), client {:.1} ms ({} requests), tolerance {:.0} ms.",
            crate::trigger::promql::num(h.quantile * 100.0),
            h.endpoint,
            h.server_s * 1e3,
            h.bucket_s.0 * 1e3,
            if h.bucket_s.1 >= f64::MAX {
                "+Inf".to_owned()
            } else {
                format!("{:.1}", h.bucket_s.1 * 1e3)
            },
            h.server_count,
            h.client_s * 1e3,
            h.client_count,
            h.tolerance_s * 1e3
        );
    }
    if r.log_lines > 0 || r.log_lines_dropped > 0 {
        let _ = writeln!(
            o,
            "\nService log lines checked: {} ({} past the capture bound, not checked).",
            r.log_lines, r.log_lines_dropped
        );
    }
}

/// The scenario's default headers (e.g. the bearer token) for the trace probe; a header whose
/// environment variable is unset is left out (the load plan has already refused such a run).
pub fn probe_headers(
    headers: &std::collections::BTreeMap<String, crate::scenario::Template>,
    getenv: &dyn Fn(&str) -> Option<String>,
) -> Vec<(String, String)> {
    let seq = std::sync::atomic::AtomicU64::new(0);
    let vars = std::collections::HashMap::new();
    let ctx = crate::scenario::TemplateContext {
        seq: &seq,
        vars: &vars,
    };
    headers
        .iter()
        .filter_map(|(k, t)| Some((k.clone(), t.bind_env(getenv).ok()?.render(&ctx))))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantile_interpolates_like_prometheus() {
        // 100 observations: 50 ≤ 10 ms, 99 ≤ 50 ms, all ≤ 100 ms.
        let b = [
            (0.01, 50.0),
            (0.05, 99.0),
            (0.1, 100.0),
            (f64::INFINITY, 100.0),
        ];
        let (v, lo, hi) = bucket_quantile(0.99, &b).unwrap();
        assert!((v - 0.05).abs() < 1e-9 && lo == 0.01 && hi == 0.05, "{v}");
        let (v, _, _) = bucket_quantile(0.5, &b).unwrap();
        assert!((v - 0.01).abs() < 1e-9);
        assert_eq!(bucket_quantile(0.5, &[(f64::INFINITY, 0.0)]), None);
    }

    #[test]
    fn emails_in_clear_are_found_and_masked_ones_are_not() {
        assert_eq!(
            unmasked_emails(r#"{"customer_email":"smoke-1@example.com"}"#),
            vec!["smoke-1@example.com"]
        );
        assert!(unmasked_emails(r#"{"customer_email":"s***@example.com"}"#).is_empty());
        assert!(unmasked_emails("user@localhost and @example.com").is_empty());
    }
}
