//! Evaluating a trigger: one measurement from one source, three-valued like Argo Rollouts'
//! analysis, and an [`Analysis`] that folds measurements over a run into the trigger's result
//! under its `for`, failure limit and inconclusive limit.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use hdrhistogram::Histogram;
use serde::Serialize;

use super::promql::{Scale, duration, num};
use super::{Condition, Definitions, Trigger};
use crate::prom::{Client, PromError};
use crate::record::{Stats, new_histogram};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    Successful,
    Inconclusive,
    Failed,
}

impl From<Phase> for crate::rule::Status {
    fn from(p: Phase) -> Self {
        match p {
            Phase::Successful => crate::rule::Status::Pass,
            Phase::Inconclusive => crate::rule::Status::Inconclusive,
            Phase::Failed => crate::rule::Status::Fail,
        }
    }
}

/// One evaluation of one trigger.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Measurement {
    pub phase: Phase,
    /// The number the trigger compares: a ratio, seconds, a burn rate (the lower of the two
    /// windows, the one that must exceed the factor) or a gauge. Absent when nothing was measured.
    pub value: Option<f64>,
    pub detail: String,
}

impl Measurement {
    fn inconclusive(detail: impl Into<String>) -> Self {
        Measurement {
            phase: Phase::Inconclusive,
            value: None,
            detail: detail.into(),
        }
    }
    fn judged(breached: bool, value: f64, detail: String) -> Self {
        Measurement {
            phase: if breached {
                Phase::Failed
            } else {
                Phase::Successful
            },
            value: Some(value),
            detail,
        }
    }
}

/// A trigger whose PromQL Prometheus refused: a definition error (exit 2), never a result.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("trigger `{trigger}`: {message}")]
pub struct BadDefinition {
    pub trigger: String,
    pub message: String,
}

/// The verifier's own measurements over one time slice of the run.
#[derive(Debug, Clone)]
pub struct OwnSlice {
    /// From the start of load.
    pub start: Duration,
    pub len: Duration,
    pub requests: u64,
    pub errors: u64,
    /// Client-side latencies in microseconds (the recorder's histogram).
    pub latency_us: Histogram<u64>,
    /// Gauges the caller read from the service at the end of the slice, already aggregated the
    /// way the saturation trigger says (e.g. the max of `outbox_backlog_events`). Matchers are not
    /// applied: the caller reads one service.
    pub gauges: BTreeMap<String, f64>,
}

impl OwnSlice {
    pub fn new(start: Duration, len: Duration) -> Self {
        OwnSlice {
            start,
            len,
            requests: 0,
            errors: 0,
            latency_us: new_histogram(),
            gauges: BTreeMap::new(),
        }
    }

    /// A slice from the recorder's statistics; errors are what the recorder counts as errors.
    pub fn from_stats(start: Duration, len: Duration, stats: &Stats) -> Self {
        OwnSlice {
            start,
            len,
            requests: stats.counts.total(),
            errors: stats.counts.errors(),
            latency_us: stats.hist.clone(),
            gauges: BTreeMap::new(),
        }
    }

    fn end(&self) -> Duration {
        self.start + self.len
    }
}

/// Consecutive slices, oldest first; evaluation looks back from the end of the last one.
#[derive(Debug, Clone, Default)]
pub struct OwnMeasurements {
    pub slices: Vec<OwnSlice>,
}

struct Window {
    requests: u64,
    errors: u64,
    latency_us: Histogram<u64>,
}

impl OwnMeasurements {
    pub fn push(&mut self, slice: OwnSlice) {
        self.slices.push(slice);
    }

    /// The last `len` of the run, or why it cannot be had.
    fn window(&self, len: Duration) -> Result<Window, String> {
        let Some(last) = self.slices.last() else {
            return Err("no measurements yet".into());
        };
        let end = last.end();
        let covered = end.saturating_sub(self.slices[0].start);
        // A slice boundary need not fall exactly on the window's start.
        if covered + Duration::from_millis(1) < len {
            return Err(format!(
                "only {} measured, the window needs {}",
                duration(Duration::from_secs(covered.as_secs())),
                duration(len)
            ));
        }
        let from = end.saturating_sub(len);
        let mut w = Window {
            requests: 0,
            errors: 0,
            latency_us: new_histogram(),
        };
        // A caller's histogram with wider bounds than the recorder's must still add.
        w.latency_us.auto(true);
        for s in self
            .slices
            .iter()
            .filter(|s| s.start + Duration::from_millis(1) > from)
        {
            w.requests += s.requests;
            w.errors += s.errors;
            let _ = w.latency_us.add(&s.latency_us);
        }
        Ok(w)
    }

    /// The error ratio over a burn rate's long window, which may be longer than the run so far:
    /// the run had no traffic before its start, so the ratio over what it measured is the ratio
    /// over the window (Prometheus' `rate()` reads it the same way). With the measured length
    /// when that is shorter than `len`. Slices older than the longest window are dropped during
    /// a run, so a first slice still at the start means the run is younger than the window.
    fn long_ratio(&self, len: Duration) -> Result<(f64, u64, Option<Duration>), String> {
        let young = self
            .slices
            .first()
            .is_some_and(|s| s.start <= Duration::from_millis(1));
        match self.ratio(len) {
            Err(_) if young => {
                let covered = self.slices.last().map(OwnSlice::end).unwrap_or_default();
                let (r, n) = self.ratio(covered)?;
                Ok((r, n, Some(covered)))
            }
            other => other.map(|(r, n)| (r, n, None)),
        }
    }

    fn ratio(&self, len: Duration) -> Result<(f64, u64), String> {
        let w = self.window(len)?;
        if w.requests == 0 {
            return Err(format!("no requests in the last {}", duration(len)));
        }
        Ok((w.errors as f64 / w.requests as f64, w.requests))
    }
}

/// Where a measurement comes from.
#[derive(Debug, Clone, Copy)]
pub enum Source<'a> {
    /// The verifier's own measurements.
    Own(&'a OwnMeasurements),
    /// PromQL against a Prometheus scraping the service, evaluated at `at` (now if `None`).
    Prometheus {
        client: &'a Client,
        at: Option<SystemTime>,
    },
}

/// Evaluates `trigger` once. `scale` picks production or drill windows. A Prometheus that cannot
/// be asked gives an inconclusive measurement; an expression it refuses is a [`BadDefinition`].
pub async fn evaluate(
    defs: &Definitions,
    trigger: &Trigger,
    source: Source<'_>,
    scale: Scale,
) -> Result<Measurement, BadDefinition> {
    match source {
        Source::Own(m) => Ok(evaluate_own(defs, trigger, m, scale)),
        Source::Prometheus { client, at } => evaluate_prom(defs, trigger, client, at, scale).await,
    }
}

fn win(defs: &Definitions, t: &Trigger, d: Duration, scale: Scale) -> Duration {
    defs.length(t, d, scale)
}

/// Evaluates `trigger` over the verifier's own measurements.
pub fn evaluate_own(
    defs: &Definitions,
    trigger: &Trigger,
    m: &OwnMeasurements,
    scale: Scale,
) -> Measurement {
    match &trigger.condition {
        Condition::ErrorRatio { max, window, .. } => {
            let w = win(defs, trigger, window.0, scale);
            match m.ratio(w) {
                Ok((r, n)) => Measurement::judged(
                    r > *max,
                    r,
                    format!(
                        "error ratio {} over the last {} ({n} requests), ceiling {}",
                        num(r),
                        duration(w),
                        num(*max)
                    ),
                ),
                Err(why) => Measurement::inconclusive(why),
            }
        }
        Condition::Latency {
            quantile,
            max,
            window,
            ..
        } => {
            let w = win(defs, trigger, window.0, scale);
            match m.window(w) {
                Ok(data) if data.latency_us.is_empty() => {
                    Measurement::inconclusive(format!("no latencies in the last {}", duration(w)))
                }
                Ok(data) => {
                    let secs = data.latency_us.value_at_quantile(*quantile) as f64 / 1e6;
                    Measurement::judged(
                        secs > max.0.as_secs_f64(),
                        secs,
                        format!(
                            "p{} {} s over the last {} ({} samples), ceiling {} s",
                            num(quantile * 100.0),
                            num(secs),
                            duration(w),
                            data.latency_us.len(),
                            num(max.0.as_secs_f64())
                        ),
                    )
                }
                Err(why) => Measurement::inconclusive(why),
            }
        }
        Condition::BurnRate {
            factor,
            long,
            short,
        } => {
            let (lw, sw) = (
                win(defs, trigger, long.0, scale),
                win(defs, trigger, short.0, scale),
            );
            match (m.long_ratio(lw), m.ratio(sw)) {
                (Ok((lr, _, young)), Ok((sr, _))) => {
                    let mut b = burn(defs, *factor, (lw, lr), (sw, sr));
                    if let Some(covered) = young {
                        b.detail.push_str(&format!(
                            "; the run is younger than the long window: it holds the {:.0} s measured so far",
                            covered.as_secs_f64()
                        ));
                    }
                    b
                }
                (Err(why), _) | (_, Err(why)) => Measurement::inconclusive(why),
            }
        }
        Condition::Saturation {
            gauge,
            op,
            threshold,
            drill_threshold,
            ..
        } => match m.slices.last().and_then(|s| s.gauges.get(gauge)) {
            Some(v) if v.is_finite() => saturation(
                gauge,
                *op,
                super::saturation_threshold(*threshold, *drill_threshold, scale),
                *v,
            ),
            _ => Measurement::inconclusive(format!("gauge `{gauge}` was not sampled")),
        },
    }
}

fn burn(
    defs: &Definitions,
    factor: f64,
    (lw, lr): (Duration, f64),
    (sw, sr): (Duration, f64),
) -> Measurement {
    let budget = defs.slo.error_budget();
    let (lb, sb) = (lr / budget, sr / budget);
    Measurement::judged(
        lb > factor && sb > factor,
        lb.min(sb),
        format!(
            "burn rate {}x over {} and {}x over {} (error budget {}), fires above {}x on both",
            num(lb),
            duration(lw),
            num(sb),
            duration(sw),
            num(budget),
            num(factor)
        ),
    )
}

fn saturation(gauge: &str, op: super::Op, threshold: f64, v: f64) -> Measurement {
    Measurement::judged(
        op.breached(v, threshold),
        v,
        format!(
            "{gauge} is {}, fires when {} {}",
            num(v),
            op.as_str(),
            num(threshold)
        ),
    )
}

/// One value from Prometheus, or the measurement that stands in for it.
async fn prom_value(
    client: &Client,
    trigger: &Trigger,
    expr: &str,
    at: Option<SystemTime>,
) -> Result<Result<f64, Measurement>, BadDefinition> {
    match client.query(expr, at).await {
        Ok(samples) => Ok(match samples.first() {
            None => Err(Measurement::inconclusive(format!(
                "no series answer `{expr}`"
            ))),
            Some(s) if s.value.is_nan() => Err(Measurement::inconclusive(format!(
                "`{expr}` is NaN: no traffic in the window"
            ))),
            Some(s) => Ok(s.value),
        }),
        Err(e @ PromError::BadQuery { .. }) => Err(BadDefinition {
            trigger: trigger.name.clone(),
            message: e.to_string(),
        }),
        Err(e @ PromError::Unavailable { .. }) => Ok(Err(Measurement::inconclusive(e.to_string()))),
    }
}

/// Evaluates `trigger` by asking Prometheus for the values its alert compares.
pub async fn evaluate_prom(
    defs: &Definitions,
    trigger: &Trigger,
    client: &Client,
    at: Option<SystemTime>,
    scale: Scale,
) -> Result<Measurement, BadDefinition> {
    let queries = defs.value_queries(trigger, scale);
    let mut values = Vec::with_capacity(queries.len());
    for (_, expr) in &queries {
        match prom_value(client, trigger, expr, at).await? {
            Ok(v) => values.push(v),
            Err(m) => return Ok(m),
        }
    }
    Ok(match &trigger.condition {
        Condition::ErrorRatio { max, window, .. } => Measurement::judged(
            values[0] > *max,
            values[0],
            format!(
                "error ratio {} over {} (Prometheus), ceiling {}",
                num(values[0]),
                duration(win(defs, trigger, window.0, scale)),
                num(*max)
            ),
        ),
        Condition::Latency {
            quantile,
            max,
            window,
            ..
        } => Measurement::judged(
            values[0] > max.0.as_secs_f64(),
            values[0],
            format!(
                "p{} {} s over {} (Prometheus histogram), ceiling {} s",
                num(quantile * 100.0),
                num(values[0]),
                duration(win(defs, trigger, window.0, scale)),
                num(max.0.as_secs_f64())
            ),
        ),
        Condition::BurnRate {
            factor,
            long,
            short,
        } => burn(
            defs,
            *factor,
            (win(defs, trigger, long.0, scale), values[0]),
            (win(defs, trigger, short.0, scale), values[1]),
        ),
        Condition::Saturation {
            gauge,
            op,
            threshold,
            drill_threshold,
            ..
        } => saturation(
            gauge,
            *op,
            super::saturation_threshold(*threshold, *drill_threshold, scale),
            values[0],
        ),
    })
}

/// Checks, before a run, that Prometheus accepts every expression of every trigger. Returns the
/// first refused one; a Prometheus that cannot be asked is the caller's call (inconclusive, or
/// an environment error).
pub async fn preflight(
    defs: &Definitions,
    client: &Client,
    scale: Scale,
) -> Result<(), PreflightError> {
    for t in &defs.triggers {
        for (_, expr) in defs.value_queries(t, scale) {
            match client.query(&expr, None).await {
                Ok(_) => {}
                Err(e @ PromError::BadQuery { .. }) => {
                    return Err(PreflightError::Definition(BadDefinition {
                        trigger: t.name.clone(),
                        message: e.to_string(),
                    }));
                }
                Err(e) => return Err(PreflightError::Unavailable(e)),
            }
        }
    }
    Ok(())
}

#[derive(Debug, thiserror::Error)]
pub enum PreflightError {
    #[error(transparent)]
    Definition(BadDefinition),
    #[error(transparent)]
    Unavailable(PromError),
}

/// Folds one trigger's measurements over a run, as Argo Rollouts folds an analysis: the trigger
/// fails once more than `failure_limit` measurements failed, is inconclusive once more than
/// `inconclusive_limit` were inconclusive, and failure wins. A failed measurement counts only
/// after the condition has held for `for` (scaled in a drill), as a Prometheus alert is pending
/// before it fires.
#[derive(Debug, Clone)]
pub struct Analysis {
    hold: Duration,
    failure_limit: u32,
    inconclusive_limit: u32,
    breach_since: Option<Duration>,
    pub successful: u32,
    /// Failed measurements still inside `for`.
    pub pending: u32,
    pub failed: u32,
    pub inconclusive: u32,
    /// When the analysis first failed (from the start of the run): the detection time.
    pub fired_at: Option<Duration>,
    pub last: Option<Measurement>,
}

impl Analysis {
    pub fn new(defs: &Definitions, trigger: &Trigger, scale: Scale) -> Self {
        Analysis {
            hold: match scale {
                Scale::Production => trigger.hold.0,
                Scale::Drill => defs.scaled_hold(trigger),
            },
            failure_limit: trigger.failure_limit,
            inconclusive_limit: trigger.inconclusive_limit,
            breach_since: None,
            successful: 0,
            pending: 0,
            failed: 0,
            inconclusive: 0,
            fired_at: None,
            last: None,
        }
    }

    /// Adds the measurement taken at `at` (from the start of the run); returns the analysis
    /// result so far.
    pub fn record(&mut self, at: Duration, m: Measurement) -> Phase {
        match m.phase {
            Phase::Successful => {
                self.breach_since = None;
                self.successful += 1;
            }
            // A gap in the data does not restart the clock: a trigger should not be kept from
            // firing by the outage it is about.
            Phase::Inconclusive => self.inconclusive += 1,
            Phase::Failed => {
                let since = *self.breach_since.get_or_insert(at);
                if at.saturating_sub(since) >= self.hold {
                    self.failed += 1;
                } else {
                    self.pending += 1;
                }
            }
        }
        self.last = Some(m);
        let phase = self.phase();
        if phase == Phase::Failed && self.fired_at.is_none() {
            self.fired_at = Some(at);
        }
        phase
    }

    pub fn phase(&self) -> Phase {
        if self.failed > self.failure_limit {
            Phase::Failed
        } else if self.inconclusive > self.inconclusive_limit {
            Phase::Inconclusive
        } else {
            Phase::Successful
        }
    }
}

/// The metric families of `defs` that Prometheus has series for in the last `lookback`; hand the
/// set to [`super::Loaded::check_exported`] to report, with its line, a trigger that reads a metric
/// the service does not export.
pub async fn exported_families(
    defs: &Definitions,
    client: &Client,
    lookback: Duration,
) -> Result<std::collections::BTreeSet<String>, PromError> {
    let mut found = std::collections::BTreeSet::new();
    for family in defs.metric_families() {
        // A histogram exports `_bucket` series, a counter or gauge its own name.
        let selector = format!("{{__name__=~\"{family}|{family}_bucket\"}}");
        if client.series_exist(&selector, lookback).await? {
            found.insert(family);
        }
    }
    Ok(found)
}
