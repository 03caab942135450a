//! One rule's probes: how many were sent, which were wrong, and the first offending requests as
//! `curl` lines with their answers.

use std::time::Instant;

use super::probe::Probe;
use crate::load::exchange::Exchange;
use crate::rule::{RuleKind, RuleResult, Status};

/// Collects one rule's probes: how many, which failed, and the evidence of the first ones.
pub(super) struct Check {
    id: String,
    budget: String,
    pub(super) sent: u32,
    pub(super) failed: u32,
    pub(super) evidence: Vec<String>,
    pub(super) notes: Vec<String>,
    started: Instant,
    pub(super) keep_auth: bool,
}

/// Offending probes kept as evidence per rule.
const EXAMPLES: usize = 3;

impl Check {
    pub(super) fn new(id: &str, budget: &str) -> Check {
        Check {
            id: id.into(),
            budget: budget.into(),
            sent: 0,
            failed: 0,
            evidence: Vec::new(),
            notes: Vec::new(),
            started: Instant::now(),
            keep_auth: false,
        }
    }

    /// Records one probe's outcome; `problem` is what is wrong with it, if anything.
    pub(super) fn record(&mut self, ex: &Exchange, problem: Option<String>) {
        self.sent += 1;
        if let Some(why) = problem {
            self.failed += 1;
            if self.evidence.len() < EXAMPLES * 3 {
                self.evidence.push(ex.curl(self.keep_auth));
                self.evidence.push(if ex.status == 0 {
                    "→ no answer".into()
                } else {
                    ex.answer_line()
                });
                self.evidence.push(format!("✗ {why}"));
            }
        }
    }

    /// Records a probe's answer as `judge` sees it, or its lack of one as a failure.
    pub(super) fn sent_or_failed(
        &mut self,
        probe: &Probe,
        base: &str,
        r: Result<Exchange, String>,
        judge: impl FnOnce(&Exchange) -> Option<String>,
    ) -> Option<Exchange> {
        match r {
            Ok(ex) => {
                let p = judge(&ex);
                self.record(&ex, p);
                Some(ex)
            }
            Err(e) => {
                self.record(&probe.unsent(base), Some(format!("no answer: {e}")));
                None
            }
        }
    }

    /// The rule: failed if any probe was wrong, inconclusive if none was sent.
    pub(super) fn finish(self, observed: String) -> RuleResult {
        let mut detail = format!(
            "{} probes in {:.2} s",
            self.sent,
            self.started.elapsed().as_secs_f64()
        );
        for n in &self.notes {
            detail.push_str("; ");
            detail.push_str(n);
        }
        let status = if self.failed > 0 {
            Status::Fail
        } else if self.sent == 0 {
            Status::Inconclusive
        } else {
            Status::Pass
        };
        RuleResult::new(self.id, RuleKind::Security, status)
            .scope("security pass")
            .budget(self.budget)
            .observed(observed)
            .detail(detail)
            .evidence(self.evidence)
    }

    /// [`Check::finish`] observing how many probes were wrong.
    pub(super) fn finish_counted(self) -> RuleResult {
        let observed = format!("{} of {} probes wrong", self.failed, self.sent);
        self.finish(observed)
    }
}
