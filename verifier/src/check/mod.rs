//! Checks: the scenario's budgets held against measurements, over the whole run and over
//! sliding windows. A check reads measurements; it never starts load.

use std::time::Duration;

use crate::load::EngineReport;
use crate::record::{Measurements, Stats, WindowView};
use crate::rule::{RuleKind, RuleResult, Status, fmt_us};
use crate::scenario::Budgets;

/// Share of arrivals the scheduler may dispatch late (for its own reasons) before the
/// run cannot vouch for its latencies. A brief preemption of the scheduler thread makes a
/// few arrivals late; falling behind is sustained.
pub const MAX_LATE_SHARE: f64 = 0.05;
/// Average busy cores, as a share of the machine, above which the generator counts as
/// saturated.
pub const MAX_CPU_SHARE: f64 = 0.9;

fn fmt_dur(d: Duration) -> String {
    fmt_us(u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
}

fn fmt_pct(r: f64) -> String {
    format!("{:.2} %", r * 100.0)
}

fn quantile_us(s: &Stats, q: f64) -> u64 {
    if q >= 1.0 {
        s.hist.max()
    } else {
        s.hist.value_at_quantile(q)
    }
}

/// One latency budget line: endpoint, label, quantile, ceiling.
#[derive(Debug, Clone)]
struct LatencyRule {
    endpoint: String,
    label: &'static str,
    q: f64,
    ceiling: Duration,
}

fn latency_rules(b: &Budgets) -> Vec<LatencyRule> {
    b.endpoints
        .iter()
        .flat_map(|(ep, lb)| {
            lb.rules()
                .into_iter()
                .map(move |(label, q, ceiling)| LatencyRule {
                    endpoint: ep.clone(),
                    label,
                    q,
                    ceiling,
                })
        })
        .collect()
}

/// The rules the budgets will judge, as `(id, budget)`, in the order `whole_run` and the
/// windows judge them: what `verifier plan` lists before anything runs.
pub fn planned(b: &Budgets) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = latency_rules(b)
        .into_iter()
        .map(|r| {
            (
                format!("latency.{}.{}", r.endpoint, r.label),
                format!("{} <= {}", r.label, fmt_dur(r.ceiling)),
            )
        })
        .collect();
    if let Some(max) = b.error_rate {
        out.push((
            "error_rate".into(),
            format!("error rate <= {}", fmt_pct(max)),
        ));
    }
    if let Some(min) = b.min_throughput {
        out.push(("throughput".into(), format!("throughput >= {min:.1} req/s")));
    }
    out.push((
        "generator".into(),
        "kept its schedule and had CPU to spare".into(),
    ));
    if let Some(w) = b.window {
        let windowed: Vec<(String, String)> = out
            .iter()
            .filter(|(id, _)| id.starts_with("latency.") || id == "error_rate")
            .map(|(id, budget)| {
                (
                    format!("window.{id}"),
                    format!("{budget} in every {} window", fmt_dur(w.0)),
                )
            })
            .collect();
        out.extend(windowed);
    }
    out
}

fn stats_for(endpoints: &[String], per: &[Stats], name: &str) -> Option<Stats> {
    if name == "*" {
        let mut all = Stats::new();
        per.iter().for_each(|s| all.merge(s));
        return Some(all);
    }
    endpoints
        .iter()
        .position(|e| e == name)
        .map(|i| per[i].clone())
}

/// Whole-run rules.
pub fn whole_run(
    b: &Budgets,
    m: &Measurements,
    engine: &EngineReport,
    cores: usize,
    partial: bool,
) -> Vec<RuleResult> {
    let scope = "whole run".to_owned();
    let mut out = Vec::new();
    for r in latency_rules(b) {
        let s = stats_for(&m.endpoints, &m.per_endpoint, &r.endpoint).unwrap_or_default();
        let n = s.hist.len();
        let budget = format!("{} <= {}", r.label, fmt_dur(r.ceiling));
        let id = format!("latency.{}.{}", r.endpoint, r.label);
        if n < b.min_samples {
            // Few samples: undecided, unless the breach is already certain.
            let ceiling_us = u64::try_from(r.ceiling.as_micros()).unwrap_or(u64::MAX);
            let above = if n == 0 {
                0
            } else {
                n - s.hist.count_between(0, ceiling_us.min(s.hist.high()))
            };
            let certain =
                r.q < 1.0 && n > 0 && wilson_lower(above, n) > 1.0 - r.q || r.q >= 1.0 && above > 0;
            let detail = if certain {
                format!(
                    "{n} samples, fewer than min_samples {}, but {above} of them exceed the ceiling: \
                     at {:.0} % confidence the {} is above it whatever the rest would show",
                    b.min_samples,
                    CONFIDENCE * 100.0,
                    r.label
                )
            } else {
                format!("{n} samples, fewer than min_samples {}", b.min_samples)
            };
            out.push(
                RuleResult::new(
                    id,
                    RuleKind::Latency,
                    if certain {
                        Status::Fail
                    } else {
                        Status::Inconclusive
                    },
                )
                .endpoint(r.endpoint)
                .budget(budget)
                .observed(if n == 0 {
                    "no samples".into()
                } else {
                    fmt_us(quantile_us(&s, r.q))
                })
                .detail(detail),
            );
            continue;
        }
        let v = quantile_us(&s, r.q);
        let ok = Duration::from_micros(v) <= r.ceiling;
        out.push(
            RuleResult::new(
                id,
                RuleKind::Latency,
                if ok { Status::Pass } else { Status::Fail },
            )
            .scope(scope.clone())
            .endpoint(r.endpoint)
            .budget(budget)
            .observed(fmt_us(v))
            .detail(format!("{n} samples")),
        );
    }
    let all = m.overall();
    if let Some(max) = b.error_rate {
        let (n, rate) = (all.counts.total(), all.counts.error_rate());
        let errors = all.counts.errors();
        // Below min_samples the rate is open, unless even its most favourable reading at the
        // stated confidence breaches the budget: then more samples cannot save it.
        let certain = n > 0 && wilson_lower(errors, n) > max;
        let status = if n < b.min_samples && !certain {
            Status::Inconclusive
        } else if rate <= max {
            Status::Pass
        } else {
            Status::Fail
        };
        let mut detail = error_detail(&all);
        if n < b.min_samples {
            detail.push_str(&if certain {
                format!(
                    "; fewer than min_samples {}, but at {:.0} % confidence the error rate is at \
                     least {} whatever the rest would show",
                    b.min_samples,
                    CONFIDENCE * 100.0,
                    fmt_pct(wilson_lower(errors, n))
                )
            } else {
                format!("; fewer than min_samples {}", b.min_samples)
            });
        }
        out.push(
            RuleResult::new("error_rate", RuleKind::ErrorRate, status)
                .endpoint("*")
                .budget(format!("errors <= {}", fmt_pct(max)))
                .observed(fmt_pct(rate))
                .detail(detail),
        );
    }
    if let Some(min) = b.min_throughput {
        let t = m.throughput();
        // A run stopped early never reached its planned rate.
        let status = if partial {
            Status::Inconclusive
        } else if t >= min {
            Status::Pass
        } else {
            Status::Fail
        };
        out.push(
            RuleResult::new("throughput", RuleKind::Throughput, status)
                .scope(scope.clone())
                .endpoint("*")
                .budget(format!("throughput >= {min:.1} req/s"))
                .observed(format!("{t:.1} req/s"))
                .detail(format!(
                    "{} requests in {:.1} s{}",
                    all.counts.total(),
                    m.elapsed.as_secs_f64(),
                    if partial {
                        "; the run stopped early"
                    } else {
                        ""
                    }
                )),
        );
    }
    out.push(generator_rule(engine, cores));
    out
}

/// The confidence at which a rule with fewer than `min_samples` samples is decided anyway: a
/// one-sided 99 % Wilson score bound with continuity correction (z = 2.326) on the share of
/// bad samples.
pub const CONFIDENCE: f64 = 0.99;
const Z: f64 = 2.326_347_874;

/// The lower end of the one-sided Wilson score interval with continuity correction for `k`
/// bad samples in `n`: the true share is at least this at [`CONFIDENCE`]. The continuity
/// correction keeps it conservative at small `k`, where the plain Wilson bound claims too much
/// (1 error in 10 would read as "at least 1.4 %"; corrected 0.4 %, the exact Clopper-Pearson
/// bound 0.1 %) (Newcombe 1998, method 4).
pub fn wilson_lower(k: u64, n: u64) -> f64 {
    if n == 0 || k == 0 {
        return 0.0;
    }
    let (k, n) = (k.min(n) as f64, n as f64);
    let p = k / n;
    let z2 = Z * Z;
    let inner = z2 - 2.0 - 1.0 / n + 4.0 * p * (n * (1.0 - p) + 1.0);
    let lower = (2.0 * n * p + z2 - 1.0 - Z * inner.max(0.0).sqrt()) / (2.0 * (n + z2));
    lower.clamp(0.0, 1.0)
}

/// When every request failed, the sentence that says so and names the dominant error class;
/// `None` otherwise. Leads the verdict's reason: "every request failed" is the news.
pub fn all_failed(m: &Measurements) -> Option<String> {
    let c = m.overall().counts;
    let n = c.total();
    if n == 0 || c.errors() < n {
        return None;
    }
    let classes = [
        (
            c.timeout,
            "timeouts: the target accepted connections but did not answer in time",
        ),
        (
            c.connect,
            "connection failures: nothing accepted the connection",
        ),
        (
            c.reset,
            "resets: the target closed connections mid-exchange",
        ),
        (c.status_4xx, "unexpected 4xx statuses"),
        (c.status_5xx, "5xx statuses"),
        (c.other, "other failures"),
    ];
    let (count, what) = classes.iter().max_by_key(|(k, _)| *k).copied()?;
    Some(format!(
        "every request failed ({n} of {n}; {count} of them {what})"
    ))
}

fn error_detail(s: &Stats) -> String {
    let c = &s.counts;
    format!(
        "{} of {} failed (timeout {}, connect {}, reset {}, 4xx {}, 5xx {}, other {})",
        c.errors(),
        c.total(),
        c.timeout,
        c.connect,
        c.reset,
        c.status_4xx,
        c.status_5xx,
        c.other
    )
}

/// Whether the generator, not the target, limited the run.
pub fn generator_rule(e: &EngineReport, cores: usize) -> RuleResult {
    let late_share = if e.started == 0 {
        0.0
    } else {
        e.late_dispatches as f64 / e.started as f64
    };
    let cpu_share = e.cpu_cores_used / cores.max(1) as f64;
    let planned = e.started + e.missed_arrivals;
    let missed_share = if planned == 0 {
        0.0
    } else {
        e.missed_arrivals as f64 / planned as f64
    };
    // Arrivals held at the in-flight cap until the plan ended are the target's doing (it
    // kept every slot busy); the latency and throughput rules judge that.
    let behind =
        late_share > MAX_LATE_SHARE || (missed_share > MAX_LATE_SHARE && e.in_flight_waits == 0);
    let saturated = cpu_share >= MAX_CPU_SHARE;
    let status = if behind || saturated {
        Status::Inconclusive
    } else {
        Status::Pass
    };
    let mut detail = format!(
        "{} journeys; scheduler lag p50 {} p99 {}; CPU {:.2} s",
        e.started,
        fmt_us(e.dispatch_lag_p50_us),
        fmt_us(e.dispatch_lag_p99_us),
        e.cpu_seconds
    );
    if behind {
        detail.push_str("; the scheduler fell behind");
    }
    if e.missed_arrivals > 0 {
        detail.push_str(&format!("; {} arrivals never sent", e.missed_arrivals));
    }
    if e.reconnects > 0 {
        detail.push_str(&format!(
            "; {} requests sent again after the target closed an idle connection",
            e.reconnects
        ));
    }
    if saturated {
        detail.push_str("; the generator used nearly every core");
    }
    RuleResult::new("generator", RuleKind::Generator, status)
        .budget(format!(
            "late <= {}, CPU < {:.0} % of {cores} cores",
            fmt_pct(MAX_LATE_SHARE),
            MAX_CPU_SHARE * 100.0
        ))
        .observed(format!(
            "late {}, CPU {:.0} %",
            fmt_pct(late_share),
            cpu_share * 100.0
        ))
        .detail(detail)
}

/// The worst a rule did over the windows seen so far.
#[derive(Debug, Clone)]
struct WindowState {
    id: String,
    kind: RuleKind,
    endpoint: String,
    budget: String,
    judged: u64,
    breaches: u64,
    worst: Option<(f64, String, Duration)>,
}

/// Watches sliding windows as the recorder closes them; remembers each rule's worst
/// window, and says when one breaches (for early abort).
#[derive(Debug, Clone)]
pub struct WindowWatch {
    endpoints: Vec<String>,
    min_samples: u64,
    window: Duration,
    latency: Vec<(LatencyRule, WindowState)>,
    error_rate: Option<(f64, WindowState)>,
}

impl WindowWatch {
    /// `None` when the budgets define no window.
    pub fn new(b: &Budgets, endpoints: Vec<String>) -> Option<WindowWatch> {
        let window = b.window?.0;
        let state = |id: String, kind, endpoint: &str, budget: String| WindowState {
            id,
            kind,
            endpoint: endpoint.to_owned(),
            budget,
            judged: 0,
            breaches: 0,
            worst: None,
        };
        let latency = latency_rules(b)
            .into_iter()
            .map(|r| {
                let s = state(
                    format!("window.latency.{}.{}", r.endpoint, r.label),
                    RuleKind::Latency,
                    &r.endpoint,
                    format!("{} <= {} in every window", r.label, fmt_dur(r.ceiling)),
                );
                (r, s)
            })
            .collect();
        let error_rate = b.error_rate.map(|max| {
            (
                max,
                state(
                    "window.error_rate".into(),
                    RuleKind::ErrorRate,
                    "*",
                    format!("errors <= {} in every window", fmt_pct(max)),
                ),
            )
        });
        Some(WindowWatch {
            endpoints,
            min_samples: b.min_samples,
            window,
            latency,
            error_rate,
        })
    }

    /// Judges one window; returns a description of the first breach in it.
    pub fn observe(&mut self, w: &WindowView) -> Option<String> {
        let mut breach = None;
        for (r, st) in &mut self.latency {
            let Some(s) = stats_for(&self.endpoints, &w.per_endpoint, &r.endpoint) else {
                continue;
            };
            if s.hist.len() < self.min_samples {
                continue;
            }
            let v = quantile_us(&s, r.q);
            st.judged += 1;
            if st.worst.as_ref().is_none_or(|(x, _, _)| v as f64 > *x) {
                st.worst = Some((v as f64, fmt_us(v), w.start));
            }
            if Duration::from_micros(v) > r.ceiling {
                st.breaches += 1;
                breach.get_or_insert_with(|| {
                    format!(
                        "{} {} was {} over {}–{} s (budget {})",
                        r.endpoint,
                        r.label,
                        fmt_us(v),
                        w.start.as_secs(),
                        w.end.as_secs(),
                        fmt_dur(r.ceiling)
                    )
                });
            }
        }
        if let Some((max, st)) = &mut self.error_rate {
            let all = w.overall();
            if all.counts.total() >= self.min_samples {
                let rate = all.counts.error_rate();
                st.judged += 1;
                if st.worst.as_ref().is_none_or(|(x, _, _)| rate > *x) {
                    st.worst = Some((rate, fmt_pct(rate), w.start));
                }
                if rate > *max {
                    st.breaches += 1;
                    breach.get_or_insert_with(|| {
                        format!(
                            "error rate was {} over {}–{} s (budget {})",
                            fmt_pct(rate),
                            w.start.as_secs(),
                            w.end.as_secs(),
                            fmt_pct(*max)
                        )
                    });
                }
            }
        }
        breach
    }

    pub fn results(&self) -> Vec<RuleResult> {
        let scope = format!(
            "sliding {} windows",
            fmt_dur(self.window).replace(".00 s", " s")
        );
        let states = self
            .latency
            .iter()
            .map(|(_, s)| s)
            .chain(self.error_rate.iter().map(|(_, s)| s));
        states
            .map(|st| {
                let status = if st.judged == 0 {
                    Status::Inconclusive
                } else if st.breaches > 0 {
                    Status::Fail
                } else {
                    Status::Pass
                };
                let (observed, detail) = match &st.worst {
                    Some((_, text, at)) => (
                        format!("worst {text}"),
                        format!(
                            "worst window starts at {} s; {} of {} windows breached",
                            at.as_secs(),
                            st.breaches,
                            st.judged
                        ),
                    ),
                    None => (
                        "no window judged".into(),
                        format!("no window had min_samples {} requests", self.min_samples),
                    ),
                };
                RuleResult::new(st.id.clone(), st.kind, status)
                    .scope(scope.clone())
                    .endpoint(st.endpoint.clone())
                    .budget(st.budget.clone())
                    .observed(observed)
                    .detail(detail)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::{Outcome, Recorder};

    /// `n` requests to endpoint `a`, each `latency` long and ending as `outcome`.
    fn measured(n: u32, latency: Duration, outcome: Outcome) -> Measurements {
        let origin = std::time::Instant::now();
        let mut r = Recorder::new(origin, vec!["a".into()], None);
        for i in 0..n {
            let end = origin + latency + Duration::from_millis(u64::from(i));
            let _ = r.record(0, end, latency, outcome);
        }
        r.finish(origin + Duration::from_secs(10)).0
    }

    fn budgets(yaml: &str) -> Budgets {
        serde_norway::from_str(yaml).unwrap()
    }

    #[test]
    fn wilson_bounds_are_sound_at_the_edges() {
        assert_eq!(wilson_lower(0, 0), 0.0);
        assert_eq!(wilson_lower(0, 50), 0.0);
        // 50 of 50 failed: at 99 % the failure share is above 85 %.
        assert!(wilson_lower(50, 50) > 0.85, "{}", wilson_lower(50, 50));
        // 1 of 10: nothing is certain at a 1 % budget... but 10 % is not excluded either.
        assert!(wilson_lower(1, 10) < 0.01);
        assert!(wilson_lower(500, 1000) > 0.46 && wilson_lower(500, 1000) < 0.5);
    }

    #[test]
    fn a_certain_breach_fails_below_min_samples_and_an_open_one_stays_inconclusive() {
        let b = budgets("min_samples: 100\nerror_rate: 0.01\nendpoints: {a: {p99: 100ms}}\n");
        let e = EngineReport::default();
        // 50 of 50 timed out at 3 s: both breaches are certain whatever the rest would show.
        let m = measured(50, Duration::from_secs(3), Outcome::Timeout);
        let rules = whole_run(&b, &m, &e, 2, false);
        let status = |id: &str| rules.iter().find(|r| r.id == id).unwrap().status;
        assert_eq!(status("error_rate"), Status::Fail);
        assert_eq!(status("latency.a.p99"), Status::Fail);
        // 50 healthy answers: below min_samples nothing is certain either way.
        let m = measured(50, Duration::from_millis(5), Outcome::Ok);
        let rules = whole_run(&b, &m, &e, 2, false);
        let status = |id: &str| rules.iter().find(|r| r.id == id).unwrap().status;
        assert_eq!(status("error_rate"), Status::Inconclusive);
        assert_eq!(status("latency.a.p99"), Status::Inconclusive);
        // One slow answer of 50 leaves p99 open.
        let mut m = measured(49, Duration::from_millis(5), Outcome::Ok);
        let slow = measured(1, Duration::from_secs(1), Outcome::Ok);
        m.per_endpoint[0].merge(&slow.per_endpoint[0]);
        let rules = whole_run(&b, &m, &e, 2, false);
        let r = rules.iter().find(|r| r.id == "latency.a.p99").unwrap();
        assert_eq!(r.status, Status::Inconclusive, "{}", r.detail);
    }

    #[test]
    fn every_request_failing_is_named_with_its_class() {
        let m = measured(20, Duration::from_secs(3), Outcome::Timeout);
        let s = all_failed(&m).unwrap();
        assert!(
            s.starts_with("every request failed (20 of 20; 20 of them timeouts"),
            "{s}"
        );
        assert!(all_failed(&measured(20, Duration::from_millis(1), Outcome::Ok)).is_none());
    }

    #[test]
    fn formats_latency_for_people() {
        assert_eq!(fmt_us(850), "850 µs");
        assert_eq!(fmt_us(183_400), "183.4 ms");
        assert_eq!(fmt_us(1_020_000), "1.02 s");
    }

    #[test]
    fn idle_generator_passes_and_busy_one_is_inconclusive() {
        let mut e = EngineReport {
            started: 1000,
            cpu_cores_used: 0.2,
            ..Default::default()
        };
        assert_eq!(generator_rule(&e, 2).status, Status::Pass);
        e.late_dispatches = 60;
        assert_eq!(generator_rule(&e, 2).status, Status::Inconclusive);
        e.late_dispatches = 0;
        e.missed_arrivals = 100;
        assert_eq!(generator_rule(&e, 2).status, Status::Inconclusive);
        e.in_flight_waits = 500;
        assert_eq!(
            generator_rule(&e, 2).status,
            Status::Pass,
            "arrivals held at the cap are the target's doing"
        );
        e.missed_arrivals = 0;
        e.cpu_cores_used = 1.9;
        assert_eq!(generator_rule(&e, 2).status, Status::Inconclusive);
    }
}
