//! Contract conformance over a whole run: every exchange the verifier judges is tallied per
//! operation, and the tally becomes one rule per operation (`contract.<operationId>`) plus
//! `contract.undeclared` for requests the document does not know.
//!
//! The load engines do not judge on the request path. A [`Sampler`] on each step decides
//! with one atomic add whether a response is kept (the first `first` per step and status,
//! then one in `every`); kept exchanges go through a bounded channel to one validating
//! thread. A full channel drops the sample and counts it, so validation can never slow the
//! load down. Probes (security, functional) are few and are judged at once with
//! [`Conformance::observe`].

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use schemars::JsonSchema;
use serde::Deserialize;

use super::judge::Judge;
use crate::load::exchange::Exchange;
use crate::rule::{RuleKind, RuleResult, Status};

/// How many load responses are validated: the first `first` of every step and status,
/// then one in `every`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Sampling {
    /// Responses validated per step and status before sampling thins out.
    #[serde(default = "default_first")]
    pub first: u64,
    /// After the first ones, one response in this many is validated (1 = all).
    #[serde(default = "default_every")]
    pub every: u64,
    /// Offending exchanges kept as evidence per rule.
    #[serde(default = "default_examples")]
    pub examples: usize,
}

fn default_first() -> u64 {
    20
}
fn default_every() -> u64 {
    50
}
fn default_examples() -> usize {
    3
}

impl Default for Sampling {
    fn default() -> Self {
        Sampling {
            first: default_first(),
            every: default_every(),
            examples: default_examples(),
        }
    }
}

/// Samples waiting for the validating thread; beyond this they are dropped and counted.
const QUEUE: usize = 1024;

#[derive(Debug, Default, Clone)]
struct Tally {
    validated: u64,
    failed: u64,
    statuses: BTreeMap<u16, u64>,
    examples: Vec<String>,
}

/// The run's conformance record.
pub struct Conformance {
    judge: Judge,
    sampling: Sampling,
    tallies: Mutex<BTreeMap<Option<String>, Tally>>,
    /// Every sampler's per-status counts: summed, the responses the samplers saw, sampled or
    /// not. Kept here rather than as one shared total so the hot path touches only its own
    /// step's counters.
    seen: Mutex<Vec<Arc<[AtomicU64]>>>,
    /// Samples lost to a full queue.
    dropped: AtomicU64,
    /// Samples queued and not judged yet.
    pending: AtomicU64,
    queue: Mutex<Option<SyncSender<Exchange>>>,
}

impl Conformance {
    /// Starts the validating thread.
    pub fn start(contract: Arc<super::Contract>, sampling: Sampling) -> Arc<Conformance> {
        let (tx, rx) = std::sync::mpsc::sync_channel::<Exchange>(QUEUE);
        let c = Arc::new(Conformance {
            judge: Judge::new(contract),
            sampling,
            tallies: Mutex::new(BTreeMap::new()),
            seen: Mutex::new(Vec::new()),
            dropped: AtomicU64::new(0),
            pending: AtomicU64::new(0),
            queue: Mutex::new(Some(tx)),
        });
        let weak = Arc::downgrade(&c);
        // Detached: it ends when the last sampler (and so the last sender) is dropped.
        let _ = std::thread::Builder::new()
            .name("conformance".into())
            .spawn(move || {
                while let Ok(ex) = rx.recv() {
                    match weak.upgrade() {
                        Some(c) => {
                            c.observe(&ex);
                            c.pending.fetch_sub(1, Ordering::Relaxed);
                        }
                        None => break,
                    }
                }
            });
        c
    }

    pub fn judge(&self) -> &Judge {
        &self.judge
    }

    /// A tap for one load step.
    pub fn sampler(self: &Arc<Self>) -> Arc<Sampler> {
        let tx = self.queue.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let counts: Arc<[AtomicU64]> = (0..600).map(|_| AtomicU64::new(0)).collect();
        self.seen
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(counts.clone());
        Arc::new(Sampler {
            conformance: self.clone(),
            tx,
            counts,
        })
    }

    /// Puts a sampler on every step of the plan.
    pub fn attach(self: &Arc<Self>, plan: &mut crate::load::Plan) {
        for step in plan.journeys.iter_mut().flat_map(|j| j.steps.iter_mut()) {
            step.conformance = Some(self.sampler());
        }
    }

    /// Judges one exchange now and tallies it.
    pub fn observe(&self, ex: &Exchange) -> super::judge::Judgement {
        let j = self.judge.judge(ex);
        let mut t = self.tallies.lock().unwrap_or_else(|p| p.into_inner());
        let tally = t.entry(j.operation.clone()).or_default();
        tally.validated += 1;
        *tally.statuses.entry(ex.status).or_default() += 1;
        if !j.violations.is_empty() {
            tally.failed += 1;
            if tally.examples.len() < self.sampling.examples * 3 {
                tally.examples.push(ex.curl(false));
                tally.examples.push(ex.answer_line());
                let why: Vec<String> = j
                    .violations
                    .iter()
                    .map(|v| match &v.schema_path {
                        Some(p) => format!("{} (contract: {p})", v.message),
                        None => v.message.clone(),
                    })
                    .collect();
                tally.examples.push(format!("✗ {}", why.join("; ")));
            }
        }
        j
    }

    /// Waits (bounded) for the queued samples to be judged. The thread ends once every
    /// sampler is dropped with its plan; stragglers queued after this are not counted.
    pub fn finish(&self, within: Duration) {
        drop(self.queue.lock().unwrap_or_else(|p| p.into_inner()).take());
        let deadline = std::time::Instant::now() + within;
        loop {
            let pending = self.pending.load(Ordering::Relaxed);
            if pending == 0 || std::time::Instant::now() >= deadline {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Totals for the report: (responses seen by samplers, judged, dropped).
    pub fn counts(&self) -> (u64, u64, u64) {
        let judged = self
            .tallies
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .map(|t| t.validated)
            .sum();
        let seen = self
            .seen
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .flat_map(|c| c.iter())
            .map(|n| n.load(Ordering::Relaxed))
            .sum();
        (seen, judged, self.dropped.load(Ordering::Relaxed))
    }

    /// One rule per operation that answered, and `contract.undeclared`.
    pub fn rules(&self) -> Vec<RuleResult> {
        let (seen, judged, dropped) = self.counts();
        let t = self
            .tallies
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let sampling = format!(
            "load responses sampled: first {} per step and status, then 1 in {}; {judged} judged in all, {seen} load responses seen{}",
            self.sampling.first,
            self.sampling.every,
            if dropped > 0 {
                format!(", {dropped} samples dropped (validation fell behind)")
            } else {
                String::new()
            }
        );
        let mut out = Vec::new();
        for (op, tally) in &t {
            let Some(op) = op else { continue };
            let statuses: Vec<String> = tally
                .statuses
                .iter()
                .map(|(s, n)| format!("{s}×{n}"))
                .collect();
            let status = if tally.failed == 0 {
                Status::Pass
            } else {
                Status::Fail
            };
            out.push(
                RuleResult::new(format!("contract.{op}"), RuleKind::Contract, status)
                    .endpoint(op.clone())
                    .budget("status, content type and body as the contract declares")
                    .observed(format!(
                        "{} of {} responses violate it",
                        tally.failed, tally.validated
                    ))
                    .detail(format!("statuses {}; {sampling}", statuses.join(", ")))
                    .evidence(tally.examples.clone()),
            );
        }
        let unknown = t.get(&None).cloned().unwrap_or_default();
        let status = if unknown.validated == 0 {
            Status::Pass
        } else {
            Status::Fail
        };
        out.push(
            RuleResult::new("contract.undeclared", RuleKind::Contract, status)
                .budget("every request is an operation of the contract")
                .observed(format!(
                    "{} requests to undeclared operations",
                    unknown.validated
                ))
                .detail(format!(
                    "contract {}; {sampling}",
                    self.judge.contract().file.display()
                ))
                .evidence(unknown.examples),
        );
        out
    }
}

/// The hot-path tap of one load step.
pub struct Sampler {
    conformance: Arc<Conformance>,
    tx: Option<SyncSender<Exchange>>,
    /// Responses seen per status code (shared with [`Conformance`] for its totals).
    counts: Arc<[AtomicU64]>,
}

impl std::fmt::Debug for Sampler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Sampler")
    }
}

impl crate::load::ExchangeSampler for Sampler {
    /// Whether this response (by status) is to be judged: one atomic add.
    fn wants(&self, status: u16) -> bool {
        let c = &self.conformance;
        let slot = &self.counts[usize::from(status).min(self.counts.len() - 1)];
        let n = slot.fetch_add(1, Ordering::Relaxed);
        n < c.sampling.first || (n - c.sampling.first).is_multiple_of(c.sampling.every.max(1))
    }

    /// Hands a sampled exchange to the validating thread, or drops it when the queue is full.
    fn offer(&self, ex: Exchange) {
        let Some(tx) = &self.tx else { return };
        self.conformance.pending.fetch_add(1, Ordering::Relaxed);
        if let Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) = tx.try_send(ex) {
            self.conformance.pending.fetch_sub(1, Ordering::Relaxed);
            self.conformance.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::load::ExchangeSampler;
    use crate::scenario::Method;
    use bytes::Bytes;

    fn conformance(sampling: Sampling) -> Arc<Conformance> {
        let doc = serde_json::json!({"openapi": "3.1.0", "paths": {"/ok": {"get": {
            "operationId": "ok",
            "responses": {"200": {"description": "ok", "content": {"application/json": {"schema": {"type": "object"}}}}}
        }}}});
        let c = super::super::Contract::from_doc("c.yaml".into(), doc).unwrap();
        Conformance::start(Arc::new(c), sampling)
    }

    fn ex(path: &str, status: u16) -> Exchange {
        Exchange {
            method: Method::Get,
            base: "http://127.0.0.1:1".into(),
            path: path.into(),
            request_headers: vec![],
            request_body: None,
            status,
            response_headers: vec![("content-type".into(), "application/json".into())],
            body: Bytes::from_static(b"{}"),
        }
    }

    #[test]
    fn samplers_take_the_first_ones_then_one_in_every() {
        let c = conformance(Sampling {
            first: 3,
            every: 10,
            examples: 1,
        });
        let s = c.sampler();
        let taken: Vec<u64> = (0..40).filter(|_| s.wants(200)).map(|_| 1).collect();
        // 3 first, then the 1st, 11th, 21st, 31st of the rest... of 37: 4.
        assert_eq!(taken.len(), 3 + 4);
        // Each status counts on its own.
        assert!(s.wants(503));
        assert_eq!(c.counts().0, 41);
    }

    #[test]
    fn sampled_exchanges_are_judged_off_the_request_path_and_become_rules() {
        let c = conformance(Sampling::default());
        let s = c.sampler();
        for _ in 0..5 {
            s.offer(ex("/ok", 200));
        }
        s.offer(ex("/nope", 200));
        s.offer(ex("/ok", 418));
        c.finish(Duration::from_secs(5));
        let rules = c.rules();
        let ok = rules.iter().find(|r| r.id == "contract.ok").unwrap();
        assert_eq!(ok.status, Status::Fail);
        assert_eq!(ok.observed, "1 of 6 responses violate it");
        assert!(
            ok.evidence[2].contains("status 418 is not declared"),
            "{:?}",
            ok.evidence
        );
        let un = rules
            .iter()
            .find(|r| r.id == "contract.undeclared")
            .unwrap();
        assert_eq!(un.status, Status::Fail);
        assert!(un.evidence[0].starts_with("curl -sS -i -X GET 'http://127.0.0.1:1/nope'"));
    }
}
