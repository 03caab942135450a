//! Before and during the load: [`Gate::prepare`] loads the trigger file and checks it against
//! the service and the Prometheus; [`Gate::watch`] evaluates every trigger every `every` over
//! the verifier's own measurements and over Prometheus, and once more at the end.

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::{Gate, LocalPrometheus, PROM_TIMEOUT, Track, Tracks, TriggerSpec, k, load_checked};
use crate::load::Stop;
use crate::prom::Client;
use crate::prom::expo;
use crate::record::Stats;
use crate::scenario::ScenarioError;
use crate::trigger::eval::{
    Analysis, Measurement, OwnMeasurements, OwnSlice, Phase, PreflightError,
};
use crate::trigger::promql::{Scale, duration};
use crate::trigger::{Condition, Loaded};

/// Why triggers could not be prepared: a definition error (exit 2) or an environment one.
#[derive(Debug, thiserror::Error)]
pub enum PrepareError {
    #[error("{0}")]
    Definition(#[from] ScenarioError),
    #[error("{0}")]
    Environment(String),
}

/// The job label the service's series carry, from the selector (`job="x"`), else the name.
fn job_of(loaded: &Loaded) -> String {
    loaded
        .defs
        .service
        .selector
        .0
        .iter()
        .find(|m| m.label == "job" && m.op == "=")
        .map_or_else(|| loaded.defs.service.name.clone(), |m| m.value.clone())
}

impl Gate {
    /// Loads and checks the triggers of `spec` (from `scenario_file`) against the service at
    /// `target` (a base URL whose `/metrics` is read).
    pub async fn prepare(
        spec: &TriggerSpec,
        scenario_file: &Path,
        target: &str,
    ) -> Result<Gate, PrepareError> {
        let loaded = load_checked(spec, scenario_file)?;
        let metrics_url = format!("{}/metrics", target.trim_end_matches('/'));
        let http = reqwest::Client::new();
        let exposition = expo::scrape(&http, &metrics_url, Duration::from_secs(5))
            .await
            .map_err(|e| {
                PrepareError::Environment(format!(
                    "the service's metrics, needed to check the triggers, cannot be read: {e}"
                ))
            })?;
        let exported: BTreeSet<String> = exposition.keys().cloned().collect();
        loaded.check_exported(&exported)?;

        let (prom, local) = match spec.prometheus.as_deref() {
            None => (None, None),
            Some(p) => {
                let (url, local) = if p == "start" {
                    let host = target
                        .trim_start_matches("http://")
                        .trim_end_matches('/')
                        .to_owned();
                    let lp =
                        LocalPrometheus::start(&host, &job_of(&loaded), Duration::from_secs(30))
                            .await
                            .map_err(PrepareError::Environment)?;
                    (lp.url.clone(), Some(Arc::new(Mutex::new(lp))))
                } else {
                    (p.to_owned(), None)
                };
                let client = Client::new(url, PROM_TIMEOUT)
                    .map_err(|e| PrepareError::Environment(format!("Prometheus client: {e}")))?;
                preflight(&loaded, &client).await?;
                (Some(client), local)
            }
        };
        Ok(Gate {
            loaded,
            spec: spec.clone(),
            metrics_url,
            prom,
            local,
        })
    }

    /// Evaluates every trigger every `every` from `origin` until `done`, and once more after.
    /// `totals` gives the run's cumulative measurements so far (all endpoints).
    pub fn watch(
        self: &Arc<Self>,
        origin: Instant,
        totals: impl Fn() -> Option<Stats> + Send + 'static,
        done: Stop,
    ) -> tokio::task::JoinHandle<Tracks> {
        let gate = self.clone();
        tokio::spawn(async move {
            let mut w = Watcher::new(&gate);
            let mut next = tokio::time::Instant::from_std(origin) + gate.spec.every.0;
            loop {
                tokio::select! {
                    () = done.stopped() => break,
                    () = tokio::time::sleep_until(next) => {}
                }
                next += gate.spec.every.0;
                w.step(&gate, origin.elapsed(), totals(), false).await;
            }
            // The end of the run: one last evaluation over everything measured.
            w.step(&gate, origin.elapsed(), totals(), true).await;
            w.tracks
        })
    }

    /// Sources the gate evaluates, in report order.
    fn sources(&self) -> Vec<&'static str> {
        let mut s = vec!["own"];
        if self.prom.is_some() {
            s.push("prometheus");
        }
        s
    }
}

/// Every expression of every trigger must be accepted by Prometheus (exit 2 otherwise), and every
/// metric the triggers read must have a series there once it has scraped the service.
async fn preflight(loaded: &Loaded, client: &Client) -> Result<(), PrepareError> {
    match crate::trigger::eval::preflight(&loaded.defs, client, Scale::Drill).await {
        Ok(()) => {}
        Err(PreflightError::Definition(d)) => {
            return Err(PrepareError::Definition(loaded.bad_definition(d)));
        }
        Err(PreflightError::Unavailable(e)) => {
            return Err(PrepareError::Environment(e.to_string()));
        }
    }
    // The service's /metrics was checked directly; what is left is whether this Prometheus
    // scrapes it under the file's selector. A fresh one has not scraped yet: give it a few
    // scrape intervals.
    let up = format!(
        "up{}",
        crate::trigger::promql::selector(&[&loaded.defs.service.selector])
    );
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let samples = client
            .query(&up, None)
            .await
            .map_err(|e| PrepareError::Environment(e.to_string()))?;
        if samples.iter().any(|s| s.value == 1.0) {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(PrepareError::Definition(loaded.error_at(
                &[k("service"), k("selector")],
                format!(
                    "Prometheus at {} has no healthy `{up}` series: it does not scrape the \
                     service under this selector",
                    client.base_url()
                ),
            )));
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// How much of the run a trigger needs before it is evaluated, scaled for a run: its longest
/// window; a burn rate's short one, since its long window reads the whole run while the run is
/// younger than it (no traffic came before); zero for instant gauges.
fn warmup(defs: &crate::trigger::Definitions, t: &crate::trigger::Trigger) -> Duration {
    if let Condition::BurnRate { short, .. } = &t.condition {
        return defs.scaled(t, short.0);
    }
    defs.windows(t)
        .into_iter()
        .map(|w| defs.scaled(t, w))
        .max()
        .unwrap_or_default()
}

struct Watcher {
    own: OwnMeasurements,
    last: Option<(Duration, Stats)>,
    http: reqwest::Client,
    tracks: Tracks,
}

impl Watcher {
    fn new(gate: &Gate) -> Self {
        let mut tracks = Vec::new();
        for t in &gate.loaded.defs.triggers {
            for source in gate.sources() {
                tracks.push(Track {
                    trigger: t.name.clone(),
                    source,
                    analysis: Analysis::new(&gate.loaded.defs, t, Scale::Drill),
                    points: Vec::new(),
                    notes: Vec::new(),
                    never: None,
                });
            }
        }
        Watcher {
            own: OwnMeasurements::default(),
            last: None,
            http: reqwest::Client::new(),
            tracks: Tracks(tracks),
        }
    }

    async fn step(&mut self, gate: &Gate, at: Duration, totals: Option<Stats>, last: bool) {
        let defs = &gate.loaded.defs;
        // The slice since the last evaluation: cumulative totals minus the previous ones.
        let (start, prev) = match self.last.take() {
            Some((t, s)) => (t, Some(s)),
            None => (Duration::ZERO, None),
        };
        let now_totals = totals.unwrap_or_default();
        let mut delta = now_totals.clone();
        if let Some(p) = &prev {
            let c = &mut delta.counts;
            for (x, y) in [
                (&mut c.ok, p.counts.ok),
                (&mut c.timeout, p.counts.timeout),
                (&mut c.connect, p.counts.connect),
                (&mut c.reset, p.counts.reset),
                (&mut c.status_4xx, p.counts.status_4xx),
                (&mut c.status_5xx, p.counts.status_5xx),
                (&mut c.other, p.counts.other),
            ] {
                *x = x.saturating_sub(y);
            }
            let _ = delta.hist.subtract(&p.hist);
        }
        let mut slice = OwnSlice::from_stats(start, at.saturating_sub(start), &delta);
        self.last = Some((at, now_totals));
        // Saturation gauges come from the service's own /metrics at the end of the slice.
        let gauges: Vec<(&String, crate::trigger::Aggregate)> = defs
            .triggers
            .iter()
            .filter_map(|t| match &t.condition {
                Condition::Saturation {
                    gauge, aggregate, ..
                } => Some((gauge, *aggregate)),
                _ => None,
            })
            .collect();
        if !gauges.is_empty()
            && let Ok(e) = expo::scrape(&self.http, &gate.metrics_url, PROM_TIMEOUT).await
        {
            for (g, agg) in gauges {
                if let Some(v) = agg.of(&expo::gauge_values(&e, g)) {
                    slice.gauges.insert(g.clone(), v);
                }
            }
        }
        self.own.push(slice);
        // Older slices than the longest scaled window are never read again.
        let keep = defs
            .triggers
            .iter()
            .flat_map(|t| defs.windows(t).into_iter().map(move |w| defs.scaled(t, w)))
            .max()
            .unwrap_or_default()
            + gate.spec.every.0 * 2;
        while self
            .own
            .slices
            .first()
            .is_some_and(|s| s.start + s.len + keep < at)
        {
            self.own.slices.remove(0);
        }
        for track in &mut self.tracks.0 {
            let Some(t) = defs.triggers.iter().find(|t| t.name == track.trigger) else {
                continue;
            };
            // Like Argo Rollouts' initial delay: a window that does not yet hold a full span of
            // the run measures nothing (Prometheus would extrapolate a rate from a fraction);
            // a burn rate's long window is the exception (see `warmup`).
            let warmup = warmup(defs, t);
            if at + Duration::from_millis(100) < warmup {
                if last && track.points.is_empty() {
                    track.never = Some(format!(
                        "never evaluated: the load lasted {:.0} s, the trigger's longest window (scaled) is {}",
                        at.as_secs_f64(),
                        duration(warmup)
                    ));
                }
                continue;
            }
            let m = match (track.source, &gate.prom) {
                ("prometheus", Some(client)) => {
                    match crate::trigger::eval::evaluate_prom(defs, t, client, None, Scale::Drill)
                        .await
                    {
                        Ok(m) => m,
                        Err(bad) => Measurement {
                            phase: Phase::Inconclusive,
                            value: None,
                            detail: bad.to_string(),
                        },
                    }
                }
                _ => crate::trigger::eval::evaluate_own(defs, t, &self.own, Scale::Drill),
            };
            track.record(at, m);
        }
    }
}
