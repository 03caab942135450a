//! The `observability:` section of a scenario and the checks of it that need only the scenario.

use std::collections::{BTreeMap, BTreeSet};

use schemars::JsonSchema;
use serde::Deserialize;

use crate::scenario::{Dur, FieldError};

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

/// Checks of the section that need only the scenario; paths are relative to the section.
pub fn validate_spec(
    spec: &ObservabilitySpec,
    endpoints: &BTreeSet<String>,
) -> Result<(), FieldError> {
    if !spec.metrics_path.starts_with('/') {
        return Err(FieldError::at("metrics_path", "path must start with `/`"));
    }
    if let Some(h) = &spec.histogram {
        if !endpoints.contains(h.endpoint.as_str()) {
            return Err(FieldError::at(
                "histogram.endpoint",
                format!(
                    "no step is named `{}` (known: {})",
                    h.endpoint,
                    endpoints.iter().cloned().collect::<Vec<_>>().join(", ")
                ),
            ));
        }
        if !(h.quantile > 0.0 && h.quantile < 1.0) {
            return Err(FieldError::at(
                "histogram.quantile",
                format!("quantile {} is not between 0 and 1", h.quantile),
            ));
        }
        if h.labels.is_empty() {
            return Err(FieldError::at(
                "histogram.labels",
                "name the endpoint's series, e.g. `{route: \"GET /v1/orders/{id}\"}`",
            ));
        }
    }
    if let Some(t) = &spec.trace
        && !t.path.starts_with('/')
    {
        return Err(FieldError::at("trace.path", "path must start with `/`"));
    }
    if let Some(l) = &spec.logs
        && l.ids.is_empty()
        && !l.no_emails
    {
        return Err(FieldError::at("logs", "checks nothing"));
    }
    Ok(())
}
