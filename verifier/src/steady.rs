//! The steady-state hypothesis of a chaos drill (Chaos Toolkit's idea): what must hold before the
//! faults (the baseline), what may be tolerated while each fault is active, and that the baseline
//! holds again within a recovery-time objective after each fault ends. Each becomes a rule in the
//! verdict, measured over that phase's own requests.
//!
//! Phases are time ranges known before the run (from the fault plan), so each keeps one merged
//! histogram and its counts: memory stays flat however long the run.

use std::collections::BTreeMap;
use std::time::Duration;

use schemars::JsonSchema;
use serde::Deserialize;

use crate::fault::plan::Fault;
use crate::record::{Outcome, Stats};
use crate::rule::{RuleKind, RuleResult, Status};
use crate::scenario::Dur;

/// The `steady_state:` section of a scenario.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SteadyState {
    /// What must hold before the first fault, and again after each recovery.
    pub baseline: Tolerance,
    /// Per fault name: what must hold while that fault is active.
    #[serde(default)]
    pub during: BTreeMap<String, Tolerance>,
    /// After a fault ends, the baseline must hold again from this long after its end until the
    /// next fault starts (or the load ends).
    pub recovery_within: Dur,
    /// A phase with fewer requests than this cannot support a rule: inconclusive.
    #[serde(default = "default_min_requests")]
    pub min_requests: u64,
}

fn default_min_requests() -> u64 {
    20
}

/// Ceilings over a phase's requests, all endpoints together; any subset may be given.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Tolerance {
    pub p50: Option<Dur>,
    pub p99: Option<Dur>,
    /// Fraction, e.g. 0.05 for 5 %.
    pub error_rate: Option<f64>,
}

/// One phase: a named time range of the load.
#[derive(Debug, Clone)]
pub struct Phase {
    pub id: String,
    pub label: String,
    pub from: Duration,
    pub to: Duration,
    pub tolerance: Tolerance,
    pub stats: Stats,
}

/// The phases of a run, fed every request.
#[derive(Debug, Clone)]
pub struct Phases {
    phases: Vec<Phase>,
    min_requests: u64,
}

fn secs(d: Duration) -> String {
    format!("{:.0}s", d.as_secs_f64())
}

impl crate::record::DueSink for Phases {
    fn record_due(&mut self, due: Duration, latency: Duration, outcome: Outcome) {
        self.record(due, latency, outcome);
    }
}

impl Phases {
    /// Lays out the phases from the plan: the baseline before the first fault, one per fault
    /// with a declared tolerance, and one recovery phase after each fault.
    pub fn plan(ss: &SteadyState, faults: &[Fault], run: Duration) -> Self {
        let mut faults: Vec<&Fault> = faults.iter().collect();
        faults.sort_by_key(|f| f.start.0);
        let first = faults.first().map_or(run, |f| f.start.0);
        let mut phases = vec![Phase {
            id: "steady.baseline".into(),
            label: format!("before faults ({}–{})", secs(Duration::ZERO), secs(first)),
            from: Duration::ZERO,
            to: first,
            tolerance: ss.baseline.clone(),
            stats: Stats::new(),
        }];
        for (i, f) in faults.iter().enumerate() {
            // Every fault gets its phase, so reports can show what it did to latency and errors;
            // only a declared tolerance makes rules of it.
            phases.push(Phase {
                id: format!("steady.during.{}", f.name),
                label: format!("during {} ({}–{})", f.name, secs(f.start.0), secs(f.end())),
                from: f.start.0,
                to: f.end().min(run),
                tolerance: ss.during.get(&f.name).cloned().unwrap_or_default(),
                stats: Stats::new(),
            });
            let next = faults.get(i + 1).map_or(run, |n| n.start.0);
            let from = f.end() + ss.recovery_within.0;
            phases.push(Phase {
                id: format!("steady.recovered.{}", f.name),
                label: format!(
                    "{} after {} ended ({}–{})",
                    secs(ss.recovery_within.0),
                    f.name,
                    secs(from.min(next)),
                    secs(next)
                ),
                from,
                to: next,
                tolerance: ss.baseline.clone(),
                stats: Stats::new(),
            });
        }
        Self {
            phases,
            min_requests: ss.min_requests,
        }
    }

    /// Records a request into every phase whose range holds `sent` (its intended send time,
    /// from the start of load).
    fn record(&mut self, sent: Duration, latency: Duration, outcome: Outcome) {
        for p in &mut self.phases {
            if p.from <= sent && sent < p.to {
                p.stats.record(latency, outcome);
            }
        }
    }

    pub fn phases(&self) -> &[Phase] {
        &self.phases
    }

    /// What happened while fault `name` was active: requests, error rate, p99 in µs.
    pub fn during(&self, name: &str) -> Option<(u64, f64, u64)> {
        let id = format!("steady.during.{name}");
        self.phases.iter().find(|p| p.id == id).map(|p| {
            (
                p.stats.counts.total(),
                p.stats.counts.error_rate(),
                p.stats.hist.value_at_quantile(0.99),
            )
        })
    }

    /// One rule per ceiling per phase.
    pub fn results(&self) -> Vec<RuleResult> {
        let mut out = Vec::new();
        for p in &self.phases {
            let n = p.stats.counts.total();
            let few = n < self.min_requests;
            let short = p.to <= p.from;
            let inconclusive = |what: &str| {
                if short {
                    Some(format!(
                        "the phase is empty: the next fault or the end of load comes before it ({what})"
                    ))
                } else if few {
                    Some(format!(
                        "{n} requests in this phase, fewer than the {} a rule needs",
                        self.min_requests
                    ))
                } else {
                    None
                }
            };
            let mut latency = |label: &str, q: f64, ceiling: &Option<Dur>| {
                let Some(ceiling) = ceiling else { return };
                let observed_us = p.stats.hist.value_at_quantile(q);
                let ceiling_us = ceiling.0.as_micros() as u64;
                let (status, detail) = match inconclusive(label) {
                    Some(why) => (Status::Inconclusive, why),
                    None if observed_us <= ceiling_us => (Status::Pass, String::new()),
                    None => (Status::Fail, format!("{n} requests")),
                };
                out.push(
                    RuleResult::new(format!("{}.{label}", p.id), RuleKind::Latency, status)
                        .scope(p.label.clone())
                        .endpoint("*")
                        .budget(format!("{label} <= {}", crate::rule::fmt_us(ceiling_us)))
                        .observed(if short {
                            "-".into()
                        } else {
                            crate::rule::fmt_us(observed_us)
                        })
                        .detail(detail),
                );
            };
            latency("p50", 0.5, &p.tolerance.p50);
            latency("p99", 0.99, &p.tolerance.p99);
            if let Some(max) = p.tolerance.error_rate {
                let rate = p.stats.counts.error_rate();
                let (status, detail) = match inconclusive("error_rate") {
                    Some(why) => (Status::Inconclusive, why),
                    None if rate <= max => (Status::Pass, String::new()),
                    None => (
                        Status::Fail,
                        format!("{} of {n} requests failed", p.stats.counts.errors()),
                    ),
                };
                out.push(
                    RuleResult::new(format!("{}.error_rate", p.id), RuleKind::ErrorRate, status)
                        .scope(p.label.clone())
                        .endpoint("*")
                        .budget(format!("errors <= {:.2} %", max * 100.0))
                        .observed(if short {
                            "-".into()
                        } else {
                            format!("{:.2} %", rate * 100.0)
                        })
                        .detail(detail),
                );
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fault::plan::FaultKind;
    use crate::fault::toxiproxy::Stream;

    fn fault(name: &str, start: u64, dur: u64) -> Fault {
        Fault {
            name: name.into(),
            target: "redis".into(),
            start: Dur(Duration::from_secs(start)),
            duration: Dur(Duration::from_secs(dur)),
            fault: FaultKind::Down,
            toxicity: 1.0,
            stream: Stream::Downstream,
            expect: None,
        }
    }

    fn ss() -> SteadyState {
        SteadyState {
            baseline: Tolerance {
                p50: None,
                p99: Some(Dur(Duration::from_millis(100))),
                error_rate: Some(0.01),
            },
            during: [(
                "redis-down".to_owned(),
                Tolerance {
                    p50: None,
                    p99: Some(Dur(Duration::from_millis(800))),
                    error_rate: Some(0.05),
                },
            )]
            .into(),
            recovery_within: Dur(Duration::from_secs(5)),
            min_requests: 20,
        }
    }

    /// 100 requests per second of load at `latency`, failing `fail_every`-th.
    fn feed(p: &mut Phases, from: u64, to: u64, latency_ms: u64, fail_every: u64) {
        for i in 0..(to - from) * 100 {
            let at = Duration::from_secs(from) + Duration::from_millis(i * 10);
            let outcome = if fail_every > 0 && i % fail_every == 0 {
                Outcome::Status5xx
            } else {
                Outcome::Ok
            };
            p.record(at, Duration::from_millis(latency_ms), outcome);
        }
    }

    fn status(p: &Phases, id: &str) -> Status {
        let r = p.results();
        r.iter()
            .find(|r| r.id == id)
            .unwrap_or_else(|| {
                panic!(
                    "no rule {id} in {:?}",
                    r.iter().map(|r| &r.id).collect::<Vec<_>>()
                )
            })
            .status
    }

    #[test]
    fn phases_follow_the_fault_plan() {
        let p = Phases::plan(
            &ss(),
            &[fault("redis-down", 10, 10)],
            Duration::from_secs(40),
        );
        let ranges: Vec<_> = p
            .phases()
            .iter()
            .map(|p| (p.id.as_str(), p.from.as_secs(), p.to.as_secs()))
            .collect();
        assert_eq!(
            ranges,
            vec![
                ("steady.baseline", 0, 10),
                ("steady.during.redis-down", 10, 20),
                ("steady.recovered.redis-down", 25, 40),
            ]
        );
    }

    #[test]
    fn a_service_that_absorbs_the_fault_and_recovers_passes() {
        let mut p = Phases::plan(
            &ss(),
            &[fault("redis-down", 10, 10)],
            Duration::from_secs(40),
        );
        feed(&mut p, 0, 10, 20, 0);
        feed(&mut p, 10, 20, 300, 50); // slower, 2 % errors: within the declared tolerance
        feed(&mut p, 20, 25, 900, 2); // the grace before the recovery objective is not judged
        feed(&mut p, 25, 40, 20, 0);
        assert!(
            p.results().iter().all(|r| r.status == Status::Pass),
            "{:#?}",
            p.results()
        );
    }

    #[test]
    fn each_phase_can_fail_on_its_own() {
        let mut p = Phases::plan(
            &ss(),
            &[fault("redis-down", 10, 10)],
            Duration::from_secs(40),
        );
        feed(&mut p, 0, 10, 150, 0); // baseline too slow
        feed(&mut p, 10, 20, 300, 10); // 10 % errors while redis is down
        feed(&mut p, 20, 40, 20, 20); // never back under 1 % errors
        assert_eq!(status(&p, "steady.baseline.p99"), Status::Fail);
        assert_eq!(
            status(&p, "steady.during.redis-down.error_rate"),
            Status::Fail
        );
        assert_eq!(status(&p, "steady.during.redis-down.p99"), Status::Pass);
        assert_eq!(
            status(&p, "steady.recovered.redis-down.error_rate"),
            Status::Fail
        );
    }

    #[test]
    fn an_empty_or_thin_phase_is_inconclusive() {
        // The next fault starts before the recovery objective: nothing to judge.
        let mut p = Phases::plan(
            &ss(),
            &[fault("redis-down", 10, 10), fault("pg-down", 22, 5)],
            Duration::from_secs(40),
        );
        feed(&mut p, 0, 40, 20, 0);
        assert_eq!(
            status(&p, "steady.recovered.redis-down.p99"),
            Status::Inconclusive
        );
        let mut thin = Phases::plan(&ss(), &[], Duration::from_secs(40));
        thin.record(
            Duration::from_secs(1),
            Duration::from_millis(5),
            Outcome::Ok,
        );
        assert_eq!(status(&thin, "steady.baseline.p99"), Status::Inconclusive);
    }
}
