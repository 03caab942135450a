//! The verdict: each rule's result, and how they combine into pass, fail or inconclusive.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::rule::{RuleKind, RuleResult, Status};

/// The combined result of a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Verdict {
    pub status: Status,
    /// Load stopped before its plan ended (SIGINT, SIGTERM or an early abort).
    pub partial: bool,
    /// Why load stopped early, if it did.
    pub stopped_by: Option<String>,
    /// One sentence explaining the status.
    pub reason: String,
    pub rules: Vec<RuleResult>,
}

impl Verdict {
    /// Any failed rule fails the gate, except latency failures measured while the
    /// generator could not keep its schedule: those latencies may be the generator's own,
    /// so they count as inconclusive. Otherwise any inconclusive rule makes the run
    /// inconclusive. An interrupted run never passes.
    pub fn decide(rules: Vec<RuleResult>, interrupted: bool, aborted: Option<String>) -> Verdict {
        let generator_ok = !rules
            .iter()
            .any(|r| r.kind == RuleKind::Generator && r.status != Status::Pass);
        let effective = |r: &RuleResult| {
            if r.status == Status::Fail && r.kind == RuleKind::Latency && !generator_ok {
                Status::Inconclusive
            } else {
                r.status
            }
        };
        let failed: Vec<&str> = rules
            .iter()
            .filter(|r| effective(r) == Status::Fail)
            .map(|r| r.id.as_str())
            .collect();
        let unsure: Vec<&str> = rules
            .iter()
            .filter(|r| effective(r) == Status::Inconclusive)
            .map(|r| r.id.as_str())
            .collect();
        let (status, reason) = if let Some(why) = &aborted {
            (Status::Fail, format!("aborted early: {why}"))
        } else if !failed.is_empty() {
            // The first few with their numbers, so the one line a person reads says by how much.
            let shown: Vec<String> = rules
                .iter()
                .filter(|r| effective(r) == Status::Fail)
                .take(3)
                .map(|r| {
                    if r.observed.is_empty() {
                        r.id.clone()
                    } else {
                        format!("{} (observed {}; budget {})", r.id, r.observed, r.budget)
                    }
                })
                .collect();
            let more = if failed.len() > shown.len() {
                format!(", and {}", failed[shown.len()..].join(", "))
            } else {
                String::new()
            };
            (
                Status::Fail,
                format!(
                    "{} rule(s) breached: {}{more}",
                    failed.len(),
                    shown.join(", ")
                ),
            )
        } else if interrupted {
            (
                Status::Inconclusive,
                "interrupted before the plan ended; no rule failed so far".to_owned(),
            )
        } else if !unsure.is_empty() {
            let why = if generator_ok {
                ""
            } else {
                " (the generator fell behind its schedule)"
            };
            (
                Status::Inconclusive,
                format!("cannot decide {}{why}", unsure.join(", ")),
            )
        } else if rules.iter().all(|r| r.kind == RuleKind::Generator) {
            (
                Status::Inconclusive,
                "the scenario has no budgets".to_owned(),
            )
        } else {
            (Status::Pass, format!("all {} rules held", rules.len()))
        };
        let stopped_by = if interrupted {
            Some("interrupted (SIGINT or SIGTERM)".to_owned())
        } else {
            aborted.map(|a| format!("early abort: {a}"))
        };
        Verdict {
            status,
            partial: stopped_by.is_some(),
            stopped_by,
            reason,
            rules,
        }
    }
}

impl Verdict {
    /// Puts `news` in front of the reason: a fact that matters more than the rule count, such as
    /// every request having failed.
    pub fn lead_with(&mut self, news: &str) {
        self.reason = format!("{news}; {}", self.reason);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(id: &str, kind: RuleKind, status: Status) -> RuleResult {
        RuleResult::new(id, kind, status)
    }

    #[test]
    fn worst_rule_wins() {
        let v = Verdict::decide(
            vec![
                rule("a", RuleKind::Latency, Status::Pass),
                rule("b", RuleKind::ErrorRate, Status::Inconclusive),
                rule("c", RuleKind::Latency, Status::Fail),
            ],
            false,
            None,
        );
        assert_eq!(v.status, Status::Fail);
        assert_eq!(v.status.exit_code(), 1);
        let v = Verdict::decide(
            vec![
                rule("a", RuleKind::Latency, Status::Pass),
                rule("b", RuleKind::ErrorRate, Status::Inconclusive),
            ],
            false,
            None,
        );
        assert_eq!(v.status, Status::Inconclusive);
        assert_eq!(v.status.exit_code(), 4);
    }

    #[test]
    fn saturated_generator_turns_latency_failures_inconclusive() {
        let v = Verdict::decide(
            vec![
                rule("lat", RuleKind::Latency, Status::Fail),
                rule("gen", RuleKind::Generator, Status::Inconclusive),
            ],
            false,
            None,
        );
        assert_eq!(v.status, Status::Inconclusive);
        assert!(v.reason.contains("generator"), "{}", v.reason);
        // Errors are the target's whatever the generator did.
        let v = Verdict::decide(
            vec![
                rule("err", RuleKind::ErrorRate, Status::Fail),
                rule("gen", RuleKind::Generator, Status::Inconclusive),
            ],
            false,
            None,
        );
        assert_eq!(v.status, Status::Fail);
    }

    #[test]
    fn interrupted_run_never_passes() {
        let v = Verdict::decide(vec![rule("a", RuleKind::Latency, Status::Pass)], true, None);
        assert_eq!(v.status, Status::Inconclusive);
        assert!(v.partial);
        let v = Verdict::decide(
            vec![rule("a", RuleKind::Latency, Status::Pass)],
            false,
            Some("p99".into()),
        );
        assert_eq!(v.status, Status::Fail);
        assert!(v.partial);
    }
}
