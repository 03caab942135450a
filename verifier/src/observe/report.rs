//! The observability part of the report, and its summary.md lines.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

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
