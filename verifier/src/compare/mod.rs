//! Performance acceptance against a baseline: is the candidate slower than what runs in
//! production?
//!
//! - `spec`: the `compare:` section — the two sides, the allowed change per statistic, the
//!   judge's settings.
//! - `assign`: which side each arrival goes to (seeded, balanced blocks), so one schedule drives
//!   both sides at the same instants on the same machine.
//! - `judge`: per endpoint and statistic, the change with a block-bootstrap interval over time
//!   windows, paired (one run) or unpaired (two runs), and the decision.
//! - `two_runs`: `verifier compare BASELINE.json CANDIDATE.json`.
//! - `calibration`: the noise floor of an A/A run, held against `allow` before a run starts.
//!
//! The load engine only routes arrivals; recording per side is two recorders; this module turns
//! the two series into rules and a report section.

pub mod assign;
pub mod calibration;
pub mod judge;
pub mod spec;
pub mod two_runs;

use serde::{Deserialize, Serialize};

use crate::record::series::{Series, SeriesReport};
use crate::rule::{RuleKind, RuleResult, Status};
pub use judge::{Decision, Judgement, Pairing, Settings};
pub use spec::{Change, CompareSpec, Statistic};

/// The comparison in `report.json`.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ComparisonReport {
    /// `paired` (one run, interleaved) or `unpaired` (two runs).
    pub mode: String,
    /// The baseline's target URL (paired) or report file (unpaired).
    pub baseline: String,
    pub candidate: String,
    /// Confidence of every interval, e.g. 0.95.
    pub confidence: f64,
    /// How the intervals were computed, in words.
    pub method: String,
    /// What the mode means for the strength of the evidence.
    pub caveat: String,
    pub judgements: Vec<Judgement>,
    /// Paired runs: the baseline's own series (the candidate's is the report's `series`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub baseline_series: Option<SeriesReport>,
    /// Notes given before the run (an `allow` below the calibrated noise floor).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
}

impl ComparisonReport {
    /// Judges `candidate` against `baseline` and builds the section.
    pub fn judge(
        baseline: &Series,
        candidate: &Series,
        wanted: &[(String, Statistic, Change)],
        settings: Settings,
        sides: (&str, &str),
    ) -> ComparisonReport {
        let judgements = judge::judge(baseline, candidate, wanted, settings);
        let (mode, caveat) = match settings.pairing {
            Pairing::Paired => (
                "paired",
                "both sides ran interleaved in one run on one machine: drift and interference \
                 they shared cancel in the comparison",
            ),
            Pairing::Unpaired => (
                "unpaired",
                "two separate runs: anything that changed on the machine or its neighbours \
                 between them shows up as a difference; weaker evidence than a paired run",
            ),
        };
        ComparisonReport {
            mode: mode.into(),
            baseline: sides.0.to_owned(),
            candidate: sides.1.to_owned(),
            confidence: settings.confidence,
            method: format!(
                "{} moving-block bootstrap over {} s windows ({} resamples, blocks of about \
                 n^(1/3) windows), percentile interval",
                mode,
                trim(baseline.window.as_secs_f64()),
                settings.resamples
            ),
            caveat: caveat.into(),
            judgements,
            baseline_series: None,
            notes: Vec::new(),
        }
    }

    /// One rule per judgement: `compare.<endpoint>.<statistic>`.
    pub fn rules(&self) -> Vec<RuleResult> {
        self.judgements
            .iter()
            .map(|j| {
                let status = match j.decision {
                    Decision::Regression => Status::Fail,
                    Decision::NoRegression | Decision::Improvement => Status::Pass,
                    Decision::Inconclusive => Status::Inconclusive,
                };
                RuleResult::new(
                    format!("compare.{}.{}", j.endpoint, j.statistic),
                    RuleKind::Regression,
                    status,
                )
                .scope(format!("{} comparison", self.mode))
                .endpoint(j.endpoint.clone())
                .budget(format!("{} change <= {}", j.statistic, j.allowed))
                .observed(format!(
                    "{} -> {}: {} [{}, {}]",
                    fmt_value(j.statistic, j.baseline),
                    fmt_value(j.statistic, j.candidate),
                    fmt_change(j.statistic, j.change),
                    fmt_change(j.statistic, j.low),
                    fmt_change(j.statistic, j.high),
                ))
                .detail(explain(j, self.confidence))
            })
            .collect()
    }
}

/// What the decision means, with the next step for an inconclusive one.
pub fn explain(j: &Judgement, confidence: f64) -> String {
    let conf = format!("{}% interval", trim(confidence * 100.0));
    match j.decision {
        Decision::Regression => format!(
            "regression: the whole {conf} lies beyond the allowed {}",
            j.allowed
        ),
        Decision::NoRegression => {
            format!("no regression: the whole {conf} lies within {}", j.allowed)
        }
        Decision::Improvement => format!("improvement: the whole {conf} lies on the better side"),
        Decision::Inconclusive => {
            let why = j
                .note
                .clone()
                .unwrap_or_else(|| format!("the {conf} straddles the allowed {}", j.allowed));
            match j.more_load {
                Some(f) if f.is_finite() => {
                    format!("inconclusive: {why}; about {f:.0}x this run's load would settle it")
                }
                Some(_) => format!(
                    "inconclusive: {why}; the change sits at the allowed limit, more load will not \
                     settle it"
                ),
                None => format!("inconclusive: {why}"),
            }
        }
    }
}

fn trim(v: f64) -> String {
    let s = format!("{v:.2}");
    s.trim_end_matches('0').trim_end_matches('.').to_owned()
}

/// A statistic's value as a person reads it.
pub fn fmt_value(stat: Statistic, v: f64) -> String {
    if !v.is_finite() {
        return "-".into();
    }
    match stat {
        Statistic::ErrorRate => format!("{:.2}%", v * 100.0),
        Statistic::Throughput => format!("{v:.1}/s"),
        _ => crate::rule::fmt_us(v.round() as u64),
    }
}

/// A change as a person reads it: `+10.2%` or `+0.40pp`.
pub fn fmt_change(stat: Statistic, v: f64) -> String {
    if !v.is_finite() {
        return "-".into();
    }
    if stat.in_points() {
        format!("{:+.2}pp", v * 100.0)
    } else {
        format!("{:+.1}%", v * 100.0)
    }
}
