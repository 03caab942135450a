//! After the load: the tracks and the drill's fault records into rules and the report section.
//! Without expectations each trigger is its own analysis over the run; with them, each trigger
//! must have fired within its detection time for the faults that should fire it and stayed quiet
//! for the others and the healthy phase.

use std::time::Duration;

use super::{
    Detection, Gate, HEALTHY, PointState, QUIET_TAIL, Track, Tracks, TriggerReport, TriggerTrack,
};
use crate::fault::timeline::FaultRecord;
use crate::rule::{RuleKind, RuleResult, Status};
use crate::trigger::Definitions;
use crate::trigger::promql::{Scale, duration, num};

impl Gate {
    /// Rules and the report section from the tracks and the drill's fault records.
    pub fn results(
        &self,
        tracks: &Tracks,
        faults: &[FaultRecord],
    ) -> (Vec<RuleResult>, TriggerReport) {
        let defs = &self.loaded.defs;
        let triggers = tracks.0.iter().map(|tr| track_report(defs, tr)).collect();
        let (rules, detections) = if self.spec.expect.is_empty() {
            let rules = tracks.0.iter().map(|tr| analysis_rule(self, tr)).collect();
            (rules, Vec::new())
        } else {
            expectation_rules(self, tracks, faults)
        };
        let report = TriggerReport {
            file: self.loaded.file.display().to_string(),
            prometheus: self.prom.as_ref().map(|c| c.base_url().to_owned()),
            every_s: self.spec.every.0.as_secs_f64(),
            triggers,
            untested: untested(self, tracks, faults, &detections),
            unwatched: unwatched(self),
            detections,
        };
        (rules, report)
    }
}

fn secs(d: Duration) -> f64 {
    (d.as_secs_f64() * 10.0).round() / 10.0
}

fn firing_spans(points: &[(Duration, PointState)]) -> Vec<(f64, f64)> {
    let mut out = Vec::new();
    let mut open: Option<Duration> = None;
    let mut last = Duration::ZERO;
    for (at, s) in points {
        match (s, open) {
            (PointState::Firing, None) => open = Some(*at),
            (PointState::Firing, Some(_)) => {}
            (_, Some(from)) => {
                out.push((secs(from), secs(last)));
                open = None;
            }
            _ => {}
        }
        last = *at;
    }
    if let Some(from) = open {
        out.push((secs(from), secs(last)));
    }
    out
}

/// The rule id's ending for a source: none for the verifier's own measurements.
fn suffix(source: &str) -> String {
    if source == "own" {
        String::new()
    } else {
        format!(".{source}")
    }
}

fn source_words(source: &str) -> &'static str {
    if source == "prometheus" {
        "PromQL"
    } else {
        "the verifier's measurements"
    }
}

/// What a person runs to see what the trigger measured over `source`.
fn queries(defs: &Definitions, name: &str, source: &str) -> Vec<String> {
    let Some(t) = defs.triggers.iter().find(|t| t.name == name) else {
        return Vec::new();
    };
    if source == "prometheus" {
        defs.value_queries(t, Scale::Drill)
            .into_iter()
            .map(|(what, q)| format!("{what}: {q}"))
            .collect()
    } else {
        vec![format!(
            "alert (drill scale): {}",
            defs.alert_expr(t, Scale::Drill)
        )]
    }
}

/// One track as the report shows it.
fn track_report(defs: &Definitions, tr: &Track) -> TriggerTrack {
    let t = defs.triggers.iter().find(|t| t.name == tr.trigger);
    TriggerTrack {
        name: tr.trigger.clone(),
        source: tr.source.to_owned(),
        windows: t.map(|t| defs.scaling_note(t)).unwrap_or_default(),
        result: tr.status(),
        fired_at_s: tr
            .points
            .iter()
            .find(|(_, s)| *s == PointState::Firing)
            .map(|(at, _)| secs(*at)),
        firing_s: firing_spans(&tr.points),
        evaluations: tr.points.len() as u32,
        inconclusive: tr.analysis.inconclusive,
    }
}

/// A run without expectations: the trigger's own analysis over the run is its rule.
fn analysis_rule(gate: &Gate, tr: &Track) -> RuleResult {
    let defs = &gate.loaded.defs;
    let t = defs.triggers.iter().find(|t| t.name == tr.trigger);
    let windows = t.map(|t| defs.scaling_note(t)).unwrap_or_default();
    let last = tr.analysis.last.as_ref();
    let mut evidence = queries(defs, &tr.trigger, tr.source);
    evidence.extend(tr.notes.iter().cloned());
    evidence.extend(tr.never.iter().cloned());
    RuleResult::new(
        format!("trigger.{}{}", tr.trigger, suffix(tr.source)),
        RuleKind::Trigger,
        tr.status(),
    )
    .scope(format!(
        "every {} over {}",
        duration(gate.spec.every.0),
        source_words(tr.source)
    ))
    .budget(t.map_or_else(String::new, |t| {
        format!(
            "does not fire ({}; failure limit {}, inconclusive limit {})",
            t.summary, t.failure_limit, t.inconclusive_limit
        )
    }))
    .observed(format!(
        "{} ok, {} pending, {} firing, {} inconclusive; last: {}",
        tr.analysis.successful,
        tr.analysis.pending,
        tr.analysis.failed,
        tr.analysis.inconclusive,
        last.and_then(|m| m.value)
            .map_or_else(|| "-".to_owned(), num)
    ))
    .detail(format!(
        "{windows}{}",
        last.map(|m| format!("; last measurement: {}", m.detail))
            .unwrap_or_default()
    ))
    .evidence(evidence)
}

/// The part of the run an expectation covers.
struct Span {
    from: Duration,
    to: Duration,
    /// When the fault took effect; none for the healthy phase.
    applied: Option<Duration>,
}

/// The span of `fault` (or of the healthy phase, up to the first fault), or why there is none.
fn expectation_span(fault: &str, faults: &[FaultRecord]) -> Result<Span, String> {
    if fault == HEALTHY {
        let end = faults
            .iter()
            .map(|f| f.applied_at.unwrap_or(f.planned_start))
            .min()
            .unwrap_or(Duration::MAX);
        return Ok(Span {
            from: Duration::ZERO,
            to: end,
            applied: None,
        });
    }
    match faults.iter().find(|f| f.name == fault) {
        Some(FaultRecord {
            applied_at: Some(a),
            reverted_at,
            planned_end,
            ..
        }) => Ok(Span {
            from: *a,
            to: reverted_at.unwrap_or(*planned_end),
            applied: Some(*a),
        }),
        Some(r) => Err(r
            .error
            .clone()
            .unwrap_or_else(|| "the fault was never applied".into())),
        None => Err("the fault did not run".into()),
    }
}

/// Whether one track did as `expected` (`fire` or `quiet`) over `span`: the status, what was
/// observed, and how long after the fault took effect it fired.
fn judge_track(
    tr: &Track,
    fault: &str,
    expected: &str,
    within: Option<Duration>,
    span: &Span,
) -> (Status, String, Option<Duration>) {
    let Span { from, to, applied } = *span;
    let until = if expected == "fire" {
        from + within.unwrap_or_default()
    } else if fault == HEALTHY {
        to
    } else {
        to + within.unwrap_or(QUIET_TAIL)
    };
    let view = tr.in_span(from, until);
    let (first, unknown, n) = (view.onset, view.all_unknown, view.evaluations);
    let after = first.map(|f| f.saturating_sub(applied.unwrap_or(from)));
    let span_words = format!(
        "{:.1}–{:.1} s",
        from.as_secs_f64(),
        until.min(Duration::from_secs(86_400)).as_secs_f64()
    );
    let (status, observed) = match (expected, first) {
        ("fire", Some(_)) => (
            Status::Pass,
            format!(
                "fired {:.1} s after the fault took effect",
                secs(after.unwrap_or_default())
            ),
        ),
        ("fire", None) if view.firing_since.is_some() => (
            Status::Inconclusive,
            format!(
                "already firing since {:.1} s when the fault began; no onset of its own",
                view.firing_since.unwrap_or_default().as_secs_f64()
            ),
        ),
        ("fire", None) if unknown => (
            Status::Inconclusive,
            format!("{n} evaluations in {span_words}, none conclusive"),
        ),
        ("fire", None) => (Status::Fail, format!("did not fire in {span_words}")),
        (_, Some(at)) => (Status::Fail, format!("fired at {:.1} s", at.as_secs_f64())),
        (_, None) if view.firing_since.is_some() && !view.cleared => (
            Status::Inconclusive,
            format!(
                "firing since {:.1} s, before the span began, and throughout {span_words}",
                view.firing_since.unwrap_or_default().as_secs_f64()
            ),
        ),
        (_, None) if unknown => (
            Status::Inconclusive,
            format!("{n} evaluations in {span_words}, none conclusive"),
        ),
        (_, None) => (
            Status::Pass,
            match view.firing_since {
                Some(since) => format!(
                    "no onset in {span_words}; still firing from {:.1} s at its start, then cleared",
                    since.as_secs_f64()
                ),
                None => format!("quiet over {n} evaluations in {span_words}"),
            },
        ),
    };
    (status, observed, after)
}

/// A drill with expectations: per fault, expected outcome, trigger and source, a rule and a
/// detection.
fn expectation_rules(
    gate: &Gate,
    tracks: &Tracks,
    faults: &[FaultRecord],
) -> (Vec<RuleResult>, Vec<Detection>) {
    let defs = &gate.loaded.defs;
    let mut rules = Vec::new();
    let mut detections = Vec::new();
    // In the order of the run: the healthy phase, then the faults as they started.
    let mut order: Vec<(&String, &super::Expectation)> = gate.spec.expect.iter().collect();
    order.sort_by_key(|(fault, _)| {
        (
            fault.as_str() != HEALTHY,
            faults
                .iter()
                .find(|f| &f.name == *fault)
                .map_or(Duration::MAX, |f| f.planned_start),
        )
    });
    for (fault, exp) in order {
        let span = expectation_span(fault, faults);
        let within = exp.within.map(|d| d.0);
        let during = if fault == HEALTHY {
            "before the first fault".to_owned()
        } else {
            format!("fault {fault}")
        };
        for (expected, list) in [("fire", &exp.fire), ("quiet", &exp.quiet)] {
            for name in list {
                for tr in tracks.0.iter().filter(|t| &t.trigger == name) {
                    let (status, observed, detected) = match &span {
                        Err(why) => (Status::Inconclusive, why.clone(), None),
                        Ok(span) => judge_track(tr, fault, expected, within, span),
                    };
                    let mut evidence = queries(defs, name, tr.source);
                    evidence.extend(tr.notes.iter().cloned());
                    rules.push(
                        RuleResult::new(
                            format!("trigger.{fault}.{expected}.{name}{}", suffix(tr.source)),
                            RuleKind::Trigger,
                            status,
                        )
                        .scope(format!("{during} over {}", source_words(tr.source)))
                        .budget(match (expected, within) {
                            ("fire", Some(w)) => format!("fires within {}", duration(w)),
                            _ => "stays quiet".to_owned(),
                        })
                        .observed(observed)
                        .detail(
                            defs.triggers
                                .iter()
                                .find(|t| &t.name == name)
                                .map(|t| defs.scaling_note(t))
                                .unwrap_or_default(),
                        )
                        .evidence(evidence),
                    );
                    detections.push(Detection {
                        fault: fault.clone(),
                        trigger: name.clone(),
                        source: tr.source.to_owned(),
                        expected: expected.to_owned(),
                        detected_after_s: detected.map(secs),
                        within_s: within.filter(|_| expected == "fire").map(secs),
                        status,
                    });
                }
            }
        }
    }
    (rules, detections)
}

/// Triggers the drill cannot vouch for. With expectations: those no fault was seen to fire as
/// expected (no passed `fire` rule in any source) — a trigger that fired where nobody expected it
/// proves nothing about its detection time. Without: those no fault fired at all.
fn untested(
    gate: &Gate,
    tracks: &Tracks,
    faults: &[FaultRecord],
    detections: &[Detection],
) -> Vec<String> {
    if faults.is_empty() {
        return Vec::new();
    }
    if !gate.spec.expect.is_empty() {
        return gate
            .loaded
            .defs
            .triggers
            .iter()
            .filter(|t| {
                !detections.iter().any(|d| {
                    d.trigger == t.name && d.expected == "fire" && d.status == Status::Pass
                })
            })
            .map(|t| t.name.clone())
            .collect();
    }
    let fired_by_some_fault = |name: &str| {
        faults.iter().any(|f| {
            let (Some(a), end) = (f.applied_at, f.reverted_at.unwrap_or(f.planned_end)) else {
                return false;
            };
            let tail = gate
                .spec
                .expect
                .get(&f.name)
                .and_then(|e| e.within)
                .map_or(QUIET_TAIL, |d| d.0);
            tracks
                .0
                .iter()
                .filter(|tr| tr.trigger == name)
                .any(|tr| tr.in_span(a, end + tail).onset.is_some())
        })
    };
    gate.loaded
        .defs
        .triggers
        .iter()
        .filter(|t| !fired_by_some_fault(&t.name))
        .map(|t| t.name.clone())
        .collect()
}

/// A drill with expectations: triggers the healthy phase does not watch stay quiet, so a trigger
/// that fires on a healthy service would go unnoticed.
fn unwatched(gate: &Gate) -> Vec<String> {
    if gate.spec.expect.is_empty() {
        return Vec::new();
    }
    let quiet = gate.spec.expect.get(HEALTHY).map(|e| &e.quiet);
    gate.loaded
        .defs
        .triggers
        .iter()
        .filter(|t| !quiet.is_some_and(|q| q.contains(&t.name)))
        .map(|t| t.name.clone())
        .collect()
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::path::Path;

    use super::*;
    use crate::trigger::eval::Analysis;
    use crate::trigger::gate::TriggerSpec;

    const FILE: &str = r#"
service: {name: s, requests: r_total, errors: 'code="5xx"', latency: l_seconds}
slo: {target: 0.999}
time_scale: 60
triggers:
  - {name: A, severity: page, summary: a, condition: {error_ratio: {max: 0.05, window: 5m}}}
  - {name: B, severity: page, summary: b, condition: {error_ratio: {max: 0.5, window: 5m}}}
"#;

    fn gate(expect: &str) -> Gate {
        let spec: TriggerSpec =
            serde_norway::from_str(&format!("file: t.yaml\nexpect: {expect}")).unwrap();
        Gate {
            loaded: crate::trigger::parse(Path::new("t.yaml"), FILE).unwrap(),
            spec,
            metrics_url: String::new(),
            prom: None,
            local: None,
        }
    }

    fn track(g: &Gate, name: &str, points: &[(u64, PointState)]) -> Track {
        let t = g
            .loaded
            .defs
            .triggers
            .iter()
            .find(|t| t.name == name)
            .unwrap();
        Track {
            trigger: name.into(),
            source: "own",
            analysis: Analysis::new(&g.loaded.defs, t, Scale::Drill),
            points: points
                .iter()
                .map(|(s, p)| (Duration::from_secs(*s), *p))
                .collect(),
            notes: Vec::new(),
            never: None,
        }
    }

    fn fault(name: &str, from: u64, to: u64) -> FaultRecord {
        FaultRecord {
            name: name.into(),
            target: "postgres".into(),
            kind: "down",
            planned_start: Duration::from_secs(from),
            planned_end: Duration::from_secs(to),
            applied_at: Some(Duration::from_secs(from)),
            reverted_at: Some(Duration::from_secs(to)),
            error: None,
        }
    }

    #[test]
    fn expectations_pass_fail_and_stay_undecided_as_the_points_say() {
        use PointState::*;
        let faults = [fault("down", 20, 30), fault("absorbed", 50, 60)];
        let points_a = [
            (10, Ok),
            (22, Pending),
            (26, Firing),
            (31, Firing),
            (40, Ok),
            (55, Ok),
        ];
        let points_b = [(10, Unknown), (26, Unknown), (55, Firing)];
        let run = |expect: &str| {
            let g = gate(expect);
            let tracks = Tracks(vec![track(&g, "A", &points_a), track(&g, "B", &points_b)]);
            let (rules, report) = g.results(&tracks, &faults);
            let by: BTreeMap<String, Status> =
                rules.iter().map(|r| (r.id.clone(), r.status)).collect();
            (by, report)
        };
        let (r, report) = run(
            "{healthy: {quiet: [A, B]}, down: {fire: [A, B], within: 10s}, absorbed: {quiet: [A, B]}}",
        );
        assert_eq!(r["trigger.healthy.quiet.A"], Status::Pass);
        assert_eq!(r["trigger.healthy.quiet.B"], Status::Inconclusive);
        assert_eq!(r["trigger.down.fire.A"], Status::Pass);
        assert_eq!(r["trigger.down.fire.B"], Status::Inconclusive);
        assert_eq!(r["trigger.absorbed.quiet.A"], Status::Pass);
        assert_eq!(r["trigger.absorbed.quiet.B"], Status::Fail);
        let d = report
            .detections
            .iter()
            .find(|d| d.fault == "down" && d.trigger == "A")
            .unwrap();
        assert_eq!(d.detected_after_s, Some(6.0));
        // B fired during `absorbed`, where it was expected quiet, and never where expected to
        // fire: the drill cannot vouch for its detection.
        assert_eq!(report.untested, ["B"]);
        assert!(report.unwatched.is_empty(), "{:?}", report.unwatched);
        let (_, report) = run("{healthy: {quiet: [B]}, down: {fire: [A], within: 10s}}");
        assert_eq!(report.untested, ["B"]);
        assert_eq!(report.unwatched, ["A"]);

        // Too slow for a 5 s detection time; a fault that never fires its trigger.
        let (r, _) = run("{down: {fire: [A], within: 5s}, absorbed: {fire: [A], within: 5s}}");
        assert_eq!(r["trigger.down.fire.A"], Status::Fail);
        assert_eq!(r["trigger.absorbed.fire.A"], Status::Fail);

        // Still firing from the first fault when the second begins: not the second's doing.
        let faults = [fault("down", 20, 30), fault("next", 31, 40)];
        let g = gate("{next: {quiet: [A]}, down: {fire: [A], within: 10s}}");
        let tracks = Tracks(vec![track(&g, "A", &points_a)]);
        let (rules, _) = g.results(&tracks, &faults);
        let next = rules
            .iter()
            .find(|r| r.id == "trigger.next.quiet.A")
            .unwrap();
        assert_eq!(next.status, Status::Pass, "{next:#?}");
        assert!(
            next.observed.contains("still firing from 26.0 s"),
            "{next:#?}"
        );
        let g = gate("{down: {quiet: [A]}}");
        let ongoing = [(10, Firing), (25, Firing), (35, Firing)];
        let tracks = Tracks(vec![track(&g, "A", &ongoing)]);
        let (rules, _) = g.results(&tracks, &faults);
        assert_eq!(rules[0].status, Status::Inconclusive, "{:#?}", rules[0]);

        // Without expectations each trigger is its own analysis.
        let (r, report) = run("{}");
        assert!(
            r.keys().all(|k| k == "trigger.A" || k == "trigger.B"),
            "{r:?}"
        );
        assert_eq!(report.triggers[0].firing_s, vec![(26.0, 31.0)]);
    }
}
