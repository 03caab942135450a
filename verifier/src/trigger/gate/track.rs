//! One trigger over one source through the run: the state at each evaluation, and what a span
//! of the run saw of it. `watch` records them, `judge` reads them.

use std::time::Duration;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::rule::Status;
use crate::trigger::eval::{Analysis, Measurement, Phase};

/// What one evaluation said about one trigger, with the `for` and limits applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum PointState {
    /// The condition does not hold.
    Ok,
    /// The condition holds, but not yet for `for`.
    Pending,
    /// The condition has held for `for`: the alert fires.
    Firing,
    /// Nothing could be measured (no traffic, too short a run, Prometheus away).
    Unknown,
}

/// Failed or inconclusive measurements kept as notes per track.
const MAX_NOTES: usize = 6;

/// One trigger over one source through the run.
#[derive(Debug, Clone)]
pub struct Track {
    pub trigger: String,
    pub source: &'static str,
    pub analysis: Analysis,
    /// (seconds from the start of load, state) per evaluation.
    pub points: Vec<(Duration, PointState)>,
    /// A few failed or inconclusive measurements, for evidence.
    pub notes: Vec<String>,
    /// Why the trigger was never evaluated (a run shorter than its window).
    pub never: Option<String>,
}

impl Track {
    /// The trigger's result: its analysis, or inconclusive when it was never evaluated.
    pub fn status(&self) -> Status {
        if self.points.is_empty() {
            Status::Inconclusive
        } else {
            self.analysis.phase().into()
        }
    }

    /// Records one evaluation; a failed or inconclusive one leaves a note (the first few).
    pub(super) fn record(&mut self, at: Duration, m: Measurement) {
        let failed = self.analysis.failed;
        let phase = m.phase;
        if phase != Phase::Successful && self.notes.len() < MAX_NOTES {
            self.notes.push(format!(
                "at {:.1}s: {} {}",
                at.as_secs_f64(),
                match phase {
                    Phase::Failed => "breached:",
                    _ => "inconclusive:",
                },
                m.detail
            ));
        }
        self.analysis.record(at, m);
        let state = match phase {
            Phase::Successful => PointState::Ok,
            Phase::Inconclusive => PointState::Unknown,
            Phase::Failed if self.analysis.failed > failed => PointState::Firing,
            Phase::Failed => PointState::Pending,
        };
        self.points.push((at, state));
    }

    /// What the evaluations in `[from, to]` say. Only an onset (firing after not firing) is
    /// the span's own: an alert still firing from before it began belongs to what came before.
    pub(super) fn in_span(&self, from: Duration, to: Duration) -> SpanView {
        let firing = |i: usize| self.points[i].1 == PointState::Firing;
        let idx: Vec<usize> = (0..self.points.len())
            .filter(|&i| self.points[i].0 >= from && self.points[i].0 <= to)
            .collect();
        let mut v = SpanView {
            onset: None,
            firing_since: None,
            cleared: false,
            all_unknown: idx.iter().all(|&i| self.points[i].1 == PointState::Unknown),
            evaluations: idx.len(),
        };
        if let Some(&first) = idx.first()
            && firing(first)
            && first > 0
            && firing(first - 1)
        {
            let mut start = first;
            while start > 0 && firing(start - 1) {
                start -= 1;
            }
            v.firing_since = Some(self.points[start].0);
        }
        for &i in &idx {
            let onset = firing(i) && (i == 0 || !firing(i - 1));
            if onset && !(v.firing_since.is_some() && i == idx[0]) {
                v.onset = Some(self.points[i].0);
                break;
            }
            if matches!(self.points[i].1, PointState::Ok | PointState::Pending) {
                v.cleared = true;
            }
        }
        v
    }
}

/// What the evaluations inside one span of the run say about a trigger.
pub(super) struct SpanView {
    /// The first evaluation at which the alert started firing inside the span.
    pub(super) onset: Option<Duration>,
    /// Already firing when the span began, since this time.
    pub(super) firing_since: Option<Duration>,
    /// A conclusive not-firing evaluation came before any onset.
    pub(super) cleared: bool,
    pub(super) all_unknown: bool,
    pub(super) evaluations: usize,
}

/// All tracks of a run.
#[derive(Debug, Clone, Default)]
pub struct Tracks(pub Vec<Track>);
