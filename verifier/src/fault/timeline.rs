//! Runs a fault plan on the clock: each fault is applied at its start and reverted at its end,
//! concurrently with the load. Whatever happens — the plan finishing, the run being cancelled
//! (Ctrl-C, an early abort), an injection failing or a task panicking — everything that was
//! applied is reverted before `run` returns, and what could not be reverted is reported.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Serialize;
use tokio::sync::watch;
use tokio::time::Instant;

use super::plan::{Fault, FaultKind};
use super::toxiproxy::{self, Toxic};

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Container actions for the testcontainers provider; the environment module implements it over
/// the containers it started.
pub trait ContainerControl: Send + Sync {
    fn pause<'a>(&'a self, dependency: &'a str) -> BoxFuture<'a, anyhow::Result<()>>;
    fn unpause<'a>(&'a self, dependency: &'a str) -> BoxFuture<'a, anyhow::Result<()>>;
    fn stop<'a>(&'a self, dependency: &'a str) -> BoxFuture<'a, anyhow::Result<()>>;
    fn start<'a>(&'a self, dependency: &'a str) -> BoxFuture<'a, anyhow::Result<()>>;
}

/// Where faults land: a Toxiproxy with one proxy per dependency, and optionally containers.
pub struct Injector {
    pub toxiproxy: toxiproxy::Client,
    /// Dependency name → proxy name.
    pub proxies: BTreeMap<String, String>,
    pub containers: Option<Arc<dyn ContainerControl>>,
}

/// What happened to one fault, in offsets from the start of the timeline.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct FaultRecord {
    pub name: String,
    pub target: String,
    pub kind: &'static str,
    pub planned_start: Duration,
    pub planned_end: Duration,
    /// When it took effect; `None` if it never did.
    pub applied_at: Option<Duration>,
    /// When it was undone; `None` if it was never applied or could not be undone.
    pub reverted_at: Option<Duration>,
    /// Why it could not be applied or reverted.
    pub error: Option<String>,
}

/// Reverts still owed; shared so a panicking task's debt is still paid.
#[derive(Default)]
struct Ledger {
    owed: Mutex<BTreeMap<String, Fault>>,
}

impl Injector {
    fn proxy(&self, f: &Fault) -> anyhow::Result<&str> {
        self.proxies
            .get(&f.target)
            .map(String::as_str)
            .ok_or_else(|| anyhow::anyhow!("no proxy stands in front of `{}`", f.target))
    }

    fn containers(&self) -> anyhow::Result<&dyn ContainerControl> {
        self.containers
            .as_deref()
            .ok_or_else(|| anyhow::anyhow!("this environment controls no containers"))
    }

    async fn apply(&self, f: &Fault) -> anyhow::Result<()> {
        match &f.fault {
            FaultKind::Down => {
                self.toxiproxy.set_enabled(self.proxy(f)?, false).await?;
            }
            FaultKind::Pause => self.containers()?.pause(&f.target).await?,
            FaultKind::Stop => self.containers()?.stop(&f.target).await?,
            FaultKind::Restart => {
                let c = self.containers()?;
                c.stop(&f.target).await?;
                c.start(&f.target).await?;
            }
            kind => {
                let toxic = Toxic {
                    name: f.name.clone(),
                    stream: f.stream,
                    toxicity: f.toxicity,
                    kind: kind.toxic().expect("every other kind is a toxic"),
                };
                self.toxiproxy.add_toxic(self.proxy(f)?, &toxic).await?;
            }
        }
        Ok(())
    }

    async fn revert(&self, f: &Fault) -> anyhow::Result<()> {
        match &f.fault {
            FaultKind::Down => {
                self.toxiproxy.set_enabled(self.proxy(f)?, true).await?;
            }
            FaultKind::Pause => self.containers()?.unpause(&f.target).await?,
            FaultKind::Stop => self.containers()?.start(&f.target).await?,
            FaultKind::Restart => {}
            _ => match self.toxiproxy.remove_toxic(self.proxy(f)?, &f.name).await {
                // Already gone (e.g. someone called /reset): the debt is paid.
                Err(e) if e.status().map(|s| s.as_u16()) == Some(404) => {}
                other => other?,
            },
        }
        Ok(())
    }
}

/// Runs `faults` from `t0`. Returns when every fault has ended, or soon after `cancel` turns true;
/// in both cases with everything reverted that could be. One record per fault, in plan order.
pub async fn run(
    injector: Arc<Injector>,
    faults: Vec<Fault>,
    t0: Instant,
    cancel: watch::Receiver<bool>,
) -> Vec<FaultRecord> {
    let ledger = Arc::new(Ledger::default());
    let records: Arc<Mutex<Vec<FaultRecord>>> = Arc::new(Mutex::new(
        faults
            .iter()
            .map(|f| FaultRecord {
                name: f.name.clone(),
                target: f.target.clone(),
                kind: f.fault.label(),
                planned_start: f.start.0,
                planned_end: f.end(),
                applied_at: None,
                reverted_at: None,
                error: None,
            })
            .collect(),
    ));

    let mut tasks = tokio::task::JoinSet::new();
    for (i, f) in faults.into_iter().enumerate() {
        let (inj, led, recs, mut cancel) = (
            injector.clone(),
            ledger.clone(),
            records.clone(),
            cancel.clone(),
        );
        tasks.spawn(async move {
            let set = |update: &dyn Fn(&mut FaultRecord)| {
                update(&mut recs.lock().expect("records lock")[i]);
            };
            if !sleep_or_cancel(t0 + f.start.0, &mut cancel).await {
                return;
            }
            // Owed before the call: a fault that half-applied (or whose task dies mid-call) is
            // still reverted at the end.
            led.owed
                .lock()
                .expect("ledger lock")
                .insert(f.name.clone(), f.clone());
            match inj.apply(&f).await {
                Ok(()) => set(&|r| r.applied_at = Some(t0.elapsed())),
                Err(e) => {
                    set(&|r| r.error = Some(format!("could not apply: {e:#}")));
                    return;
                }
            }
            sleep_or_cancel(t0 + f.end(), &mut cancel).await;
            let owed = led.owed.lock().expect("ledger lock").remove(&f.name);
            if owed.is_some() {
                match inj.revert(&f).await {
                    Ok(()) => set(&|r| r.reverted_at = Some(t0.elapsed())),
                    Err(e) => set(&|r| r.error = Some(format!("could not revert: {e:#}"))),
                }
            }
        });
    }

    // Tasks watch the cancel signal themselves and revert what they applied; this loop only
    // reaps them and reports panics.
    drop(cancel);
    while let Some(joined) = tasks.join_next().await {
        if let Err(e) = joined
            && e.is_panic()
        {
            eprintln!("verifier: a fault task panicked ({e}); its fault is reverted below");
        }
    }

    // Whatever is still owed belongs to a task that died (panic) or was cut short: pay it now.
    let leftovers: Vec<Fault> = std::mem::take(&mut *ledger.owed.lock().expect("ledger lock"))
        .into_values()
        .collect();
    let mut recs = records.lock().expect("records lock").clone();
    for f in leftovers {
        let r = recs
            .iter_mut()
            .find(|r| r.name == f.name)
            .expect("a record per fault");
        match injector.revert(&f).await {
            Ok(()) => r.reverted_at = Some(t0.elapsed()),
            Err(e) => r.error = Some(format!("could not revert: {e:#}")),
        }
    }
    recs
}

/// Sleeps until `deadline`; false if cancelled first.
async fn sleep_or_cancel(deadline: Instant, cancel: &mut watch::Receiver<bool>) -> bool {
    if *cancel.borrow() {
        return false;
    }
    tokio::select! {
        () = tokio::time::sleep_until(deadline) => true,
        cancelled = async { cancel.wait_for(|c| *c).await.map(|_| ()) } => match cancelled {
            Ok(()) => false,
            // The sender is gone: nobody can cancel any more, which is not a cancellation.
            Err(_) => {
                tokio::time::sleep_until(deadline).await;
                true
            }
        },
    }
}
