//! One rule's result: the vocabulary every check speaks and the verdict combines. A leaf: checks
//! produce [`RuleResult`]s, `verdict` decides over them, reports show them.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::exit_codes;

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Pass,
    Inconclusive,
    Fail,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Pass => "pass",
            Status::Inconclusive => "inconclusive",
            Status::Fail => "fail",
        }
    }
    pub fn exit_code(self) -> u8 {
        match self {
            Status::Pass => exit_codes::PASS,
            Status::Fail => exit_codes::GATE_FAILED,
            Status::Inconclusive => exit_codes::INCONCLUSIVE,
        }
    }
}

/// What a rule is about; the verdict treats latency rules specially when the generator
/// could not keep its schedule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum RuleKind {
    Latency,
    ErrorRate,
    Throughput,
    Generator,
    /// A fault of the drill: applied and reverted as planned.
    Fault,
    /// A nothing-lost invariant, from read-backs of what the service stored and published.
    Invariant,
    /// A functional check: idempotent retries, the service's own retry discipline.
    Functional,
    /// Responses against the OpenAPI contract.
    Contract,
    /// Authentication, tenant isolation, rate limits, malformed input.
    Security,
    /// A rollback trigger evaluated during the run.
    Trigger,
    /// Metrics, traces and logs the service must emit.
    Observability,
    /// The candidate against its baseline: the regression judge.
    Regression,
}

/// One rule's result, with the observed value beside its budget.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct RuleResult {
    /// Stable identifier, e.g. `latency.create-order.p99` or `window.error_rate`.
    pub id: String,
    pub kind: RuleKind,
    /// `whole run` or `sliding 10s windows`.
    pub scope: String,
    /// Endpoint name, `*` for all requests, absent for run-wide rules.
    pub endpoint: Option<String>,
    /// The budget as a person reads it, e.g. `p99 <= 200 ms`.
    pub budget: String,
    /// The observed value as a person reads it, e.g. `183.4 ms`.
    pub observed: String,
    pub status: Status,
    /// Why the status is what it is, when that is not obvious.
    pub detail: String,
    /// What a person needs to replay or see the failure: requests as `curl` lines, the first
    /// offending responses, log lines. Empty for most rules.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub evidence: Vec<String>,
}

impl RuleResult {
    /// A rule about the whole run with no budget, observation or detail yet; the builder methods
    /// below fill in what the check knows. The one way rules are made, so a new field has one
    /// default.
    pub fn new(id: impl Into<String>, kind: RuleKind, status: Status) -> RuleResult {
        RuleResult {
            id: id.into(),
            kind,
            scope: "whole run".into(),
            endpoint: None,
            budget: String::new(),
            observed: String::new(),
            status,
            detail: String::new(),
            evidence: Vec::new(),
        }
    }
    pub fn scope(mut self, scope: impl Into<String>) -> Self {
        self.scope = scope.into();
        self
    }
    pub fn endpoint(mut self, endpoint: impl Into<String>) -> Self {
        self.endpoint = Some(endpoint.into());
        self
    }
    /// Sets the endpoint when there is one (run-wide rules have none).
    pub fn endpoint_opt(mut self, endpoint: Option<String>) -> Self {
        self.endpoint = endpoint;
        self
    }
    pub fn budget(mut self, budget: impl Into<String>) -> Self {
        self.budget = budget.into();
        self
    }
    pub fn observed(mut self, observed: impl Into<String>) -> Self {
        self.observed = observed.into();
        self
    }
    pub fn detail(mut self, detail: impl Into<String>) -> Self {
        self.detail = detail.into();
        self
    }
    pub fn evidence(mut self, evidence: Vec<String>) -> Self {
        self.evidence = evidence;
        self
    }
}

/// A latency in microseconds as a person reads it: `850 µs`, `12.3 ms`, `1.50 s`.
pub fn fmt_us(us: u64) -> String {
    if us >= 1_000_000 {
        format!("{:.2} s", us as f64 / 1e6)
    } else if us >= 1_000 {
        format!("{:.1} ms", us as f64 / 1e3)
    } else {
        format!("{us} µs")
    }
}
