//! The chaos side of a run: the environment, the fault timeline running beside the load, and the
//! read-backs after it. `run` calls these in order; each step is bounded in time.
//!
//! ```text
//! Drill::up ─► (load runs; Drill::start_faults beside it) ─► Drill::stop_faults ─► Drill::read_back ─► Drill::down
//! ```

use std::collections::BTreeMap;
use std::time::Duration;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::effects::{self, AckLog, InvariantSpec, MAX_ACKS, Violation, probe};
use crate::env::{EnvError, Environment, EnvironmentSpec, spec::expand};
use crate::fault::plan::Fault;
use crate::fault::timeline::{self, FaultRecord};

/// One fault of the drill. Times are seconds from the start of load.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct FaultReport {
    pub name: String,
    pub target: String,
    pub kind: String,
    pub planned_start_s: f64,
    pub planned_end_s: f64,
    pub applied_at_s: Option<f64>,
    pub reverted_at_s: Option<f64>,
    /// What the service is expected to do meanwhile, from the scenario.
    pub expect: Option<String>,
    pub error: Option<String>,
    /// What the load saw while it was active (requests due in its window), when the scenario
    /// declares a steady state.
    pub observed: Option<FaultEffect>,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct FaultEffect {
    pub requests: u64,
    pub error_rate: f64,
    pub p99_us: u64,
}

/// What the read-backs found.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct InvariantReport {
    /// Effect-creating requests answered with a 2xx.
    pub acknowledged: usize,
    /// Effect-creating requests answered with a 5xx or not at all.
    pub uncertain: usize,
    pub violations: Vec<ViolationReport>,
    /// Why the invariants could not be decided, if they could not.
    pub inconclusive: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct ViolationReport {
    pub rule: String,
    pub key: Option<String>,
    pub id: Option<String>,
    pub detail: String,
}

/// The outcome of the invariants.
#[derive(Debug, Clone)]
pub enum InvariantOutcome {
    /// Read back and compared: the violations (empty = nothing lost).
    Checked {
        acknowledged: usize,
        uncertain: usize,
        violations: Vec<Violation>,
    },
    /// Could not be decided, and why.
    Inconclusive(String),
}

pub struct Drill {
    pub env: Environment,
    faults: Vec<Fault>,
    cancel: Option<watch::Sender<bool>>,
    timeline: Option<JoinHandle<Vec<FaultRecord>>>,
}

impl Drill {
    /// Brings the environment up (exit 3 on failure, with everything started removed).
    /// `baseline`: a paired comparison's baseline service, started beside the one under test.
    pub async fn up(
        spec: &EnvironmentSpec,
        faults: Vec<Fault>,
        baseline: Option<&crate::env::ServiceSpec>,
    ) -> Result<Self, EnvError> {
        Ok(Self {
            env: Environment::up_with(spec, baseline).await?,
            faults,
            cancel: None,
            timeline: None,
        })
    }

    /// Starts the fault timeline at `t0` (the start of load). No-op without faults.
    pub fn start_faults(&mut self, t0: tokio::time::Instant) {
        let Some(injector) = self.env.injector.clone() else {
            return;
        };
        if self.faults.is_empty() {
            return;
        }
        let (tx, rx) = watch::channel(false);
        self.cancel = Some(tx);
        self.timeline = Some(tokio::spawn(timeline::run(
            injector,
            std::mem::take(&mut self.faults),
            t0,
            rx,
        )));
    }

    /// Ends the timeline (reverting whatever is still active) and returns its records.
    pub async fn stop_faults(&mut self) -> Vec<FaultRecord> {
        if let Some(tx) = self.cancel.take() {
            let _ = tx.send(true);
        }
        let broken = |error: &str| {
            vec![FaultRecord {
                name: "timeline".into(),
                target: String::new(),
                kind: "timeline",
                planned_start: Duration::ZERO,
                planned_end: Duration::ZERO,
                applied_at: None,
                reverted_at: None,
                error: Some(error.to_owned()),
            }]
        };
        match self.timeline.take() {
            // Reverts are a handful of local API calls; a minute means something is wedged.
            Some(handle) => match tokio::time::timeout(Duration::from_secs(60), handle).await {
                Ok(Ok(records)) => records,
                Ok(Err(e)) => broken(&format!("the fault timeline died: {e}")),
                Err(_) => broken(
                    "the fault timeline did not finish reverting within 60 s; check the proxies \
                     by hand",
                ),
            },
            None => Vec::new(),
        }
    }

    /// Direct addresses of the environment's dependencies, for read-back URLs.
    pub fn endpoints(&self) -> &BTreeMap<String, String> {
        &self.env.endpoints
    }

    /// Tears the environment down; returns the problems met.
    pub async fn down(mut self) -> Vec<String> {
        let mut problems: Vec<String> = self
            .stop_faults()
            .await
            .into_iter()
            .filter_map(|r| r.error.map(|e| format!("fault {}: {e}", r.name)))
            .collect();
        problems.extend(self.env.down().await);
        problems
    }
}

/// Waits for asynchronous effects to settle, reads them back and compares them with the
/// acknowledgements. `endpoints` fill placeholders such as `${postgres.url}` in the probe URLs.
pub async fn read_back(
    spec: &InvariantSpec,
    log: &AckLog,
    endpoints: &BTreeMap<String, String>,
) -> InvariantOutcome {
    let (acks, overflowed) = log.take();
    if overflowed {
        return InvariantOutcome::Inconclusive(format!(
            "more than {MAX_ACKS} effect-creating requests; too many to track"
        ));
    }
    let db_url = match expand(&spec.database.url, endpoints) {
        Ok(u) => u,
        Err(e) => return InvariantOutcome::Inconclusive(format!("invariants.database.url: {e}")),
    };
    let events_url = match &spec.events {
        Some(ev) => match expand(&ev.url, endpoints) {
            Ok(u) => Some(u),
            Err(e) => {
                return InvariantOutcome::Inconclusive(format!("invariants.events.url: {e}"));
            }
        },
        None => None,
    };
    tokio::time::sleep(spec.settle.0).await;
    let events = spec.events.as_ref().zip(events_url.as_deref());
    match probe::read(&acks, &spec.database, &db_url, events, spec.timeout.0).await {
        Ok(rb) => InvariantOutcome::Checked {
            acknowledged: acks.iter().filter(|a| a.acknowledged()).count(),
            uncertain: acks.iter().filter(|a| a.uncertain()).count(),
            violations: effects::nothing_lost(&acks, &rb),
        },
        Err(e) => InvariantOutcome::Inconclusive(e.to_string()),
    }
}

/// Rules and report sections for the faults: a fault that never took effect leaves the drill
/// unable to vouch for what it was meant to test (inconclusive); one that could not be reverted
/// leaves the environment broken (fail).
pub fn fault_results(
    records: &[FaultRecord],
    plan: &[Fault],
    phases: Option<&crate::steady::Phases>,
) -> (Vec<crate::rule::RuleResult>, Vec<FaultReport>) {
    use crate::rule::{RuleKind, RuleResult, Status};
    let s = |d: Duration| (d.as_secs_f64() * 1000.0).round() / 1000.0;
    let mut rules = Vec::new();
    let mut reports = Vec::new();
    for r in records {
        let expect = plan
            .iter()
            .find(|f| f.name == r.name)
            .and_then(|f| f.expect.clone());
        let (status, observed) = match (&r.error, r.applied_at, r.reverted_at) {
            (Some(e), _, _) if e.starts_with("could not revert") => (Status::Fail, e.clone()),
            (Some(e), _, _) => (Status::Inconclusive, e.clone()),
            (None, Some(a), Some(v)) => (
                Status::Pass,
                format!(
                    "applied at {:.1}s, reverted at {:.1}s",
                    a.as_secs_f64(),
                    v.as_secs_f64()
                ),
            ),
            // Cut short before its start (Ctrl-C, early abort): it tested nothing.
            (None, None, _) => (
                Status::Inconclusive,
                "never applied: the load ended first".into(),
            ),
            (None, Some(_), None) => (Status::Fail, "applied but not reverted".into()),
        };
        rules.push(
            RuleResult::new(format!("fault.{}", r.name), RuleKind::Fault, status)
                .scope(format!("{} on {}", r.kind, r.target))
                .budget(format!(
                    "applied at {:.0}s, reverted at {:.0}s",
                    r.planned_start.as_secs_f64(),
                    r.planned_end.as_secs_f64()
                ))
                .observed(observed)
                .detail(expect.clone().unwrap_or_default()),
        );
        reports.push(FaultReport {
            name: r.name.clone(),
            target: r.target.clone(),
            kind: r.kind.to_owned(),
            planned_start_s: s(r.planned_start),
            planned_end_s: s(r.planned_end),
            applied_at_s: r.applied_at.map(s),
            reverted_at_s: r.reverted_at.map(s),
            expect,
            error: r.error.clone(),
            observed: phases.and_then(|p| p.during(&r.name)).map(
                |(requests, error_rate, p99_us)| FaultEffect {
                    requests,
                    error_rate: (error_rate * 1e4).round() / 1e4,
                    p99_us,
                },
            ),
        });
    }
    (rules, reports)
}

/// The invariant classes, in the order reports list them.
const INVARIANTS: [(&str, &str); 5] = [
    (
        "acknowledged-exists",
        "every 2xx-acknowledged effect is stored",
    ),
    (
        "acknowledged-exists-once",
        "no acknowledged effect is stored twice",
    ),
    (
        "uncertain-at-most-once",
        "a 5xx or timed-out request took effect at most once",
    ),
    ("event-published", "every stored effect has its event"),
    ("event-published-once", "no effect has two events"),
];

/// One rule per invariant class, with the first offending ids as evidence.
pub fn invariant_results(
    outcome: &InvariantOutcome,
    events_checked: bool,
) -> (Vec<crate::rule::RuleResult>, InvariantReport) {
    use crate::rule::{RuleKind, RuleResult, Status};
    match outcome {
        InvariantOutcome::Inconclusive(why) => (
            vec![
                RuleResult::new("invariants", RuleKind::Invariant, Status::Inconclusive)
                    .scope("after the run")
                    .budget("nothing lost")
                    .observed("not read back")
                    .detail(why.clone()),
            ],
            InvariantReport {
                acknowledged: 0,
                uncertain: 0,
                violations: Vec::new(),
                inconclusive: Some(why.clone()),
            },
        ),
        InvariantOutcome::Checked {
            acknowledged,
            uncertain,
            violations,
        } => {
            let mut rules = Vec::new();
            for (rule, says) in INVARIANTS {
                if rule.starts_with("event") && !events_checked {
                    continue;
                }
                let hits: Vec<&Violation> = violations.iter().filter(|v| v.rule == rule).collect();
                let evidence: Vec<String> = hits
                    .iter()
                    .take(5)
                    .map(|v| {
                        format!(
                            "key {} id {}: {}",
                            v.key.as_deref().unwrap_or("-"),
                            v.id.as_deref().unwrap_or("-"),
                            v.detail
                        )
                    })
                    .collect();
                let status = if hits.is_empty() {
                    Status::Pass
                } else {
                    Status::Fail
                };
                rules.push(
                    RuleResult::new(format!("invariants.{rule}"), RuleKind::Invariant, status)
                        .scope(format!(
                            "{acknowledged} acknowledged, {uncertain} uncertain requests"
                        ))
                        .budget(says)
                        .observed(format!("{} violations", hits.len()))
                        .detail(evidence.join("; ")),
                );
            }
            let report = InvariantReport {
                acknowledged: *acknowledged,
                uncertain: *uncertain,
                violations: violations
                    .iter()
                    .map(|v| ViolationReport {
                        rule: v.rule.to_owned(),
                        key: v.key.clone(),
                        id: v.id.clone(),
                        detail: v.detail.clone(),
                    })
                    .collect(),
                inconclusive: None,
            };
            (rules, report)
        }
    }
}
