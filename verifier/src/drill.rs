//! The chaos side of a run: the environment, the fault timeline running beside the load, and the
//! read-backs after it. `run` calls these in order; each step is bounded in time.
//!
//! ```text
//! Drill::up ─► (load runs; Drill::start_faults beside it) ─► Drill::stop_faults ─► Drill::read_back ─► Drill::down
//! ```

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::effects::{self, Ack, InvariantSpec, Violation, probe};
use crate::env::{EnvError, Environment, EnvironmentSpec, spec::expand};
use crate::fault::plan::Fault;
use crate::fault::timeline::{self, FaultRecord};

/// Most acknowledgements kept for the invariants; past this the invariants are inconclusive
/// rather than the verifier's memory growing without bound.
pub const MAX_ACKS: usize = 1_000_000;

/// Where the load engines report how each effect-creating request ended.
#[derive(Debug, Default)]
pub struct AckLog {
    acks: Mutex<Vec<Ack>>,
    overflowed: std::sync::atomic::AtomicBool,
}

impl AckLog {
    pub fn push(&self, ack: Ack) {
        let mut g = self.acks.lock().unwrap_or_else(|p| p.into_inner());
        if g.len() < MAX_ACKS {
            g.push(ack);
        } else {
            self.overflowed
                .store(true, std::sync::atomic::Ordering::Relaxed);
        }
    }

    pub fn take(&self) -> (Vec<Ack>, bool) {
        let acks = std::mem::take(&mut *self.acks.lock().unwrap_or_else(|p| p.into_inner()));
        (
            acks,
            self.overflowed.load(std::sync::atomic::Ordering::Relaxed),
        )
    }
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
    pub async fn up(spec: &EnvironmentSpec, faults: Vec<Fault>) -> Result<Self, EnvError> {
        Ok(Self {
            env: Environment::up(spec).await?,
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
        match self.timeline.take() {
            // Reverts are a handful of local API calls; a minute means something is wedged.
            Some(handle) => match tokio::time::timeout(Duration::from_secs(60), handle).await {
                Ok(Ok(records)) => records,
                Ok(Err(e)) => vec![FaultRecord {
                    name: "timeline".into(),
                    target: String::new(),
                    kind: "timeline",
                    planned_start: Duration::ZERO,
                    planned_end: Duration::ZERO,
                    applied_at: None,
                    reverted_at: None,
                    error: Some(format!("the fault timeline died: {e}")),
                }],
                Err(_) => vec![FaultRecord {
                    name: "timeline".into(),
                    target: String::new(),
                    kind: "timeline",
                    planned_start: Duration::ZERO,
                    planned_end: Duration::ZERO,
                    applied_at: None,
                    reverted_at: None,
                    error: Some(
                        "the fault timeline did not finish reverting within 60 s; check the \
                         proxies by hand"
                            .into(),
                    ),
                }],
            },
            None => Vec::new(),
        }
    }

    /// Waits for asynchronous effects to settle, reads them back and compares them with the
    /// acknowledgements.
    pub async fn read_back(&self, spec: &InvariantSpec, log: &AckLog) -> InvariantOutcome {
        let (acks, overflowed) = log.take();
        if overflowed {
            return InvariantOutcome::Inconclusive(format!(
                "more than {MAX_ACKS} effect-creating requests; too many to track"
            ));
        }
        let vars: BTreeMap<String, String> = self.env.endpoints.clone();
        let db_url = match expand(&spec.database.url, &vars) {
            Ok(u) => u,
            Err(e) => {
                return InvariantOutcome::Inconclusive(format!("invariants.database.url: {e}"));
            }
        };
        let events_url = match &spec.events {
            Some(ev) => match expand(&ev.url, &vars) {
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

/// Shared handle the engines use.
pub type SharedAckLog = Arc<AckLog>;
