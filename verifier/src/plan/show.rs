//! `verifier plan FILE`: what a run of the plan will do, printed before anything starts — the
//! load phases with their planned arrivals, journeys and weights, the environment, the fault
//! timeline, every rule that will be judged, and the memory the run holds at most.

use std::fmt::Write as _;
use std::time::Duration;

use crate::env::EnvironmentSpec;
use crate::scenario::{Load, RatePhase, UserPhase};

use super::{Plan, memory};

fn secs(d: Duration) -> String {
    let s = d.as_secs_f64();
    if s >= 120.0 {
        format!("{:.1} min", s / 60.0)
    } else if s.fract() == 0.0 {
        format!("{s:.0} s")
    } else {
        format!("{s:.3} s")
    }
}

/// The plan as text, one section per stage.
pub fn render(p: &Plan) -> String {
    let s = &p.scenario;
    let mut o = String::new();
    let _ = writeln!(o, "plan of {} ({})", s.name, p.file.display());
    if let Some(d) = &s.description {
        let _ = writeln!(o, "  {d}");
    }
    for n in &p.notes {
        let _ = writeln!(o, "  note: {n}");
    }
    let target = if p.target_from_environment {
        "the service the environment starts".to_owned()
    } else {
        p.load.target.base.clone()
    };
    let _ = writeln!(o, "\ntarget: {target}");
    let _ = writeln!(
        o,
        "timeouts: {} per request, {} to connect",
        secs(p.load.timeout),
        secs(p.load.connect_timeout)
    );

    let _ = writeln!(o, "\nload ({} planned):", secs(s.planned_duration()));
    match &s.load {
        Load::Open(open) => {
            let mut at = Duration::ZERO;
            let mut total = 0.0;
            for ph in &open.phases {
                let (kind, from, to, d) = match ph {
                    RatePhase::Ramp { from, to, duration } => ("ramp", *from, *to, duration.0),
                    RatePhase::Steady { rate, duration } => ("steady", *rate, *rate, duration.0),
                    RatePhase::Spike { rate, duration } => ("spike", *rate, *rate, duration.0),
                };
                let arrivals = (from + to) / 2.0 * d.as_secs_f64();
                total += arrivals;
                let rate = if from == to {
                    format!("{from}/s")
                } else {
                    format!("{from}/s → {to}/s")
                };
                let _ = writeln!(
                    o,
                    "  {:>9} – {:<9} {kind:<6} {rate:<18} {:>10.0} arrivals",
                    secs(at),
                    secs(at + d),
                    arrivals
                );
                at += d;
            }
            let _ = writeln!(
                o,
                "  open model: {total:.0} journeys planned, at most {} requests in flight",
                open.max_in_flight
            );
        }
        Load::Closed(closed) => {
            let mut at = Duration::ZERO;
            let mut users = 0u32;
            for ph in &closed.phases {
                let (kind, line, d) = match ph {
                    UserPhase::Ramp { users: u, duration } => {
                        let l = format!("{users} → {u} users");
                        users = *u;
                        ("ramp", l, duration.0)
                    }
                    UserPhase::Steady { duration } => {
                        ("steady", format!("{users} users"), duration.0)
                    }
                    UserPhase::Spike { users: u, duration } => (
                        "spike",
                        format!("{u} users, then back to {users}"),
                        duration.0,
                    ),
                };
                let _ = writeln!(
                    o,
                    "  {:>9} – {:<9} {kind:<6} {line}",
                    secs(at),
                    secs(at + d)
                );
                at += d;
            }
            let _ = writeln!(o, "  closed model: virtual users run journeys back to back");
        }
    }
    let total_weight: u64 = s.journeys.iter().map(|j| u64::from(j.weight.get())).sum();
    let _ = writeln!(o, "\njourneys:");
    for j in &s.journeys {
        let steps: Vec<String> = j
            .steps
            .iter()
            .map(|st| format!("{} {}", st.method.as_str(), st.name))
            .collect();
        let _ = writeln!(
            o,
            "  {:<20} weight {} ({:.0} %): {}",
            j.name,
            j.weight,
            f64::from(j.weight.get()) * 100.0 / total_weight.max(1) as f64,
            steps.join(" → ")
        );
    }

    let _ = writeln!(o, "\nenvironment: {}", environment(&p.environment));
    if !s.faults.is_empty() {
        let _ = writeln!(o, "\nfaults:");
        for f in &s.faults {
            let _ = writeln!(
                o,
                "  {:>9} – {:<9} {:<20} {} on {}",
                secs(f.start.0),
                secs(f.start.0 + f.duration.0),
                f.name,
                f.fault.label(),
                f.target
            );
        }
    }

    if let Some(c) = &p.compare {
        let baseline = if c.baseline_from_environment {
            "a second service the environment starts".to_owned()
        } else {
            c.baseline.target.base.clone()
        };
        let _ = writeln!(
            o,
            "\ncomparison (paired): baseline {baseline}, candidate the target above; each journey \
             to one side, seed {}, balanced blocks of {} arrivals (each side gets half the \
             schedule); {}% intervals, {} bootstrap resamples",
            c.spec.seed,
            c.spec.block,
            c.spec.confidence * 100.0,
            c.spec.resamples
        );
        for (e, stat, allowed) in &c.wanted {
            let _ = writeln!(o, "  compare.{e}.{stat}: change <= {allowed}");
        }
    }
    let _ = writeln!(o, "\nrules that will be judged:");
    for (id, budget) in crate::check::planned(&s.budgets) {
        let _ = writeln!(o, "  {id:<40} {budget}");
    }
    if let Some(ss) = &s.steady_state {
        let _ = writeln!(
            o,
            "  {:<40} the steady state before any fault",
            "steady.baseline"
        );
        for f in &s.faults {
            if ss.during.contains_key(&f.name) {
                let _ = writeln!(
                    o,
                    "  {:<40} while the fault is active",
                    format!("steady.during.{}", f.name)
                );
            }
            let _ = writeln!(
                o,
                "  {:<40} back to baseline within {}",
                format!("steady.recovered.{}", f.name),
                secs(ss.recovery_within.0)
            );
        }
    }
    for f in &s.faults {
        let _ = writeln!(
            o,
            "  {:<40} applied and reverted as planned",
            format!("fault.{}", f.name)
        );
    }
    if let Some(inv) = &s.invariants {
        let _ = writeln!(
            o,
            "  {:<40} every acknowledged `{}` is stored{}",
            "invariants",
            inv.step,
            if inv.events.is_some() {
                " and published"
            } else {
                ""
            }
        );
    }
    if let Some(f) = &s.functional {
        for op in &f.idempotency {
            let _ = writeln!(
                o,
                "  {:<40} idempotent retries",
                format!("functional.idempotency.{}", op.operation)
            );
        }
        if f.retry_discipline.is_some() {
            let _ = writeln!(
                o,
                "  {:<40} the service's own retries",
                "functional.retry_discipline"
            );
        }
    }
    if let Some(c) = &s.openapi {
        let _ = writeln!(
            o,
            "  {:<40} responses against {} ({} operations)",
            "contract.<operation>",
            c.file.display(),
            c.operations.len()
        );
    }
    if s.security.is_some() {
        let _ = writeln!(
            o,
            "  {:<40} authentication, isolation, rate limits, malformed input",
            "security.*"
        );
    }
    if let (Some(t), Some(n)) = (&s.triggers, p.triggers) {
        let _ = writeln!(
            o,
            "  {:<40} {n} triggers from {} every {}{}",
            "trigger.*",
            t.file.display(),
            secs(t.every.0),
            if t.expect.is_empty() {
                String::new()
            } else {
                format!(", {} expectations", t.expect.len())
            }
        );
    }
    if s.observability.is_some() {
        let _ = writeln!(
            o,
            "  {:<40} metrics, histogram agreement, traces, logs",
            "observability.*"
        );
    }

    let _ = writeln!(
        o,
        "\nmemory, at most {}:",
        memory::fmt_bytes(p.memory.total())
    );
    for (what, b) in &p.memory.parts {
        let _ = writeln!(o, "  {:>10}  {what}", memory::fmt_bytes(*b));
    }
    o
}

fn environment(e: &EnvironmentSpec) -> String {
    match e {
        EnvironmentSpec::None => "none (the target runs already; no faults)".into(),
        EnvironmentSpec::External(x) => format!(
            "external: Toxiproxy at {}, proxies for {}",
            x.toxiproxy,
            x.proxies.keys().cloned().collect::<Vec<_>>().join(", ")
        ),
        EnvironmentSpec::Testcontainers(c) => format!(
            "testcontainers: {} as containers behind Toxiproxy, the service started as `{}`",
            c.dependencies
                .iter()
                .map(|d| d.name())
                .collect::<Vec<_>>()
                .join(", "),
            c.service.command.join(" ")
        ),
    }
}
