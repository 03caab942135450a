//! The triggers' section of the report: each track over the run, the drill's detections, the
//! triggers no fault fired, and its summary.md lines.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::rule::Status;

/// The triggers' part of the report.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct TriggerReport {
    pub file: String,
    /// The Prometheus asked, if any.
    pub prometheus: Option<String>,
    pub every_s: f64,
    pub triggers: Vec<TriggerTrack>,
    /// Per fault and trigger of the drill's expectations: when it fired.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub detections: Vec<Detection>,
    /// Triggers the drill cannot vouch for: no fault was seen to fire them as expected (with
    /// expectations), or no fault fired them at all (without).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub untested: Vec<String>,
    /// Triggers a drill with expectations does not watch stay quiet in its healthy phase.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unwatched: Vec<String>,
}

/// Names as a list in code style: `A`, `B`.
fn names(list: &[String]) -> String {
    list.iter()
        .map(|n| format!("`{n}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct TriggerTrack {
    pub name: String,
    /// `own` (the verifier's measurements) or `prometheus`.
    pub source: String,
    /// Windows as written and as evaluated.
    pub windows: String,
    /// The analysis over the whole run (failure and inconclusive limits applied).
    pub result: Status,
    /// First evaluation at which the alert fired (its condition held for `for`), seconds from
    /// the start of load.
    pub fired_at_s: Option<f64>,
    /// Spans (start, end) in which it was firing.
    pub firing_s: Vec<(f64, f64)>,
    pub evaluations: u32,
    pub inconclusive: u32,
}

impl TriggerTrack {
    /// The result column: the analysis's pass or fail, or in a drill (where firing is what a
    /// fault should do) what the trigger did: `fired`, `quiet` or `inconclusive`.
    pub fn shown_result(&self, drill: bool) -> &'static str {
        match (drill, self.fired_at_s, self.result) {
            (false, _, r) => r.as_str(),
            (true, Some(_), _) => "fired",
            (true, None, Status::Inconclusive) => "inconclusive",
            (true, None, _) => "quiet",
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct Detection {
    pub fault: String,
    pub trigger: String,
    pub source: String,
    /// `fire` or `quiet`.
    pub expected: String,
    /// Seconds from the fault taking effect to the trigger firing; absent if it did not.
    pub detected_after_s: Option<f64>,
    pub within_s: Option<f64>,
    pub status: Status,
}

/// A table cell: `12.3 s`, or `-` when the trigger did not fire.
fn seconds_or_dash(s: Option<f64>) -> String {
    s.map_or_else(|| "-".into(), |s| format!("{s:.1} s"))
}

/// The summary.md section.
pub fn markdown(o: &mut String, r: &TriggerReport) {
    use std::fmt::Write as _;
    let _ = writeln!(
        o,
        "\n**Rollback triggers** from `{}`, evaluated every {} s{}.\n",
        r.file,
        r.every_s,
        r.prometheus
            .as_deref()
            .map(|p| format!(" over own measurements and Prometheus at {p}"))
            .unwrap_or_default()
    );
    // In a drill the triggers are meant to fire: the table shows what each did, and the
    // expectations below judge it.
    let drill = !r.detections.is_empty();
    let _ = writeln!(
        o,
        "| trigger | source | {} | first fired | firing |",
        if drill { "state" } else { "result" }
    );
    let _ = writeln!(o, "|---|---|---|---:|---|");
    for t in &r.triggers {
        let _ = writeln!(
            o,
            "| `{}` | {} | {} | {} | {} |",
            t.name,
            t.source,
            t.shown_result(drill),
            seconds_or_dash(t.fired_at_s),
            t.firing_s
                .iter()
                .map(|(a, b)| format!("{a:.1}–{b:.1} s"))
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    if !r.detections.is_empty() {
        let _ = writeln!(
            o,
            "\n| fault | trigger | source | expected | detected after | result |"
        );
        let _ = writeln!(o, "|---|---|---|---|---:|---|");
        for d in &r.detections {
            let _ = writeln!(
                o,
                "| `{}` | `{}` | {} | {}{} | {} | {} |",
                d.fault,
                d.trigger,
                d.source,
                d.expected,
                d.within_s
                    .map(|w| format!(" within {w} s"))
                    .unwrap_or_default(),
                seconds_or_dash(d.detected_after_s),
                d.status.as_str()
            );
        }
    }
    if !r.untested.is_empty() {
        let _ = writeln!(
            o,
            "\n**Untested triggers** (no fault was seen to fire them as expected): {}",
            names(&r.untested)
        );
    }
    if !r.unwatched.is_empty() {
        let _ = writeln!(
            o,
            "\n**Not watched in the healthy phase** (a false alarm would go unnoticed): {}",
            names(&r.unwatched)
        );
    }
}
