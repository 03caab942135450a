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
//!
//! By stage: `spec` (the section and its validation), `observer` (the scrapes and the trace
//! probe around the load), one file per check (`metrics`, `histogram`, `trace`, `logs`), and
//! `report` (the report section and its summary.md lines).

mod histogram;
mod logs;
mod metrics;
mod observer;
mod report;
mod spec;
mod trace;

use crate::rule::{RuleKind, RuleResult, Status};

pub use histogram::{agreement_rule, bucket_quantile};
pub use logs::{log_rules, unmasked_emails};
pub use metrics::metric_rule;
pub use observer::{Observer, probe_headers};
pub use report::{AgreementReport, ObservabilityReport, TraceReport, markdown};
pub use spec::{
    HistogramAgreement, LogChecks, MetricRequirement, MetricType, ObservabilitySpec, TraceProbe,
    validate_spec,
};
pub use trace::trace_rule;

/// A passing rule of this section; each check changes what it finds wrong.
fn rule(id: impl Into<String>, scope: impl Into<String>, budget: impl Into<String>) -> RuleResult {
    RuleResult::new(id, RuleKind::Observability, Status::Pass)
        .scope(scope)
        .budget(budget)
}
