//! Every number a scenario can hold has a bound, checked here before anything starts, with the
//! full path of the field. The table is the one place the bounds are written; `verifier schema
//! bounds` prints it as the Markdown table in `verifier/README.md` (a test keeps the two equal).
//!
//! The check walks the document as YAML values, so a pattern is the path a person writes:
//! `load.open.phases.*.*.rate` matches `load.open.phases[0].steady.rate`. `*` stands for any key
//! or index. Beside the table: every float anywhere must be finite, and a count bound limits a
//! list's or map's length.

use std::time::Duration;

use serde_norway::Value;

use crate::scenario::locate::Seg;
use crate::scenario::{FieldError, parse_duration};

/// What a bound limits.
#[derive(Debug, Clone, Copy)]
pub enum Limit {
    /// A whole number in `min..=max`.
    Int(u64, u64),
    /// A number in `min..=max`.
    Float(f64, f64),
    /// A duration in `min..=max`.
    Dur(Duration, Duration),
    /// A list or map with `min..=max` entries.
    Count(usize, usize),
}

/// One row: the field pattern, its limit, and why the limit is where it is.
#[derive(Debug, Clone, Copy)]
pub struct Bound {
    pub pattern: &'static str,
    pub limit: Limit,
    pub why: &'static str,
}

const fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}
const fn s(n: u64) -> Duration {
    Duration::from_secs(n)
}
const H: u64 = 3600;

/// The longest load a scenario plans: the sum of its phases.
pub const MAX_PLANNED: Duration = s(24 * H);
/// Most requests in flight the open model may hold, and most virtual users the closed model may
/// run: each costs memory (buffers, a task, a socket), and the plan's memory bound counts them.
pub const MAX_IN_FLIGHT: u64 = 10_000;
pub const MAX_USERS: u64 = 5_000;
/// Most distinct endpoints (step names): each keeps its own histograms.
pub const MAX_ENDPOINTS: usize = 100;

pub const BOUNDS: &[Bound] = &[
    Bound {
        pattern: "defaults.timeout",
        limit: Limit::Dur(ms(1), s(600)),
        why: "a request's whole deadline",
    },
    Bound {
        pattern: "defaults.connect_timeout",
        limit: Limit::Dur(ms(1), s(60)),
        why: "opening a TCP connection",
    },
    Bound {
        pattern: "defaults.headers",
        limit: Limit::Count(0, 100),
        why: "headers sent with every request",
    },
    Bound {
        pattern: "journeys",
        limit: Limit::Count(1, 1_000),
        why: "journeys of one scenario",
    },
    Bound {
        pattern: "journeys.*.weight",
        limit: Limit::Int(1, 1_000_000),
        why: "relative share of a journey",
    },
    Bound {
        pattern: "journeys.*.think_time",
        limit: Limit::Dur(Duration::ZERO, s(H)),
        why: "pause between steps (closed model)",
    },
    Bound {
        pattern: "journeys.*.steps",
        limit: Limit::Count(1, 100),
        why: "steps of one journey",
    },
    Bound {
        pattern: "journeys.*.steps.*.headers",
        limit: Limit::Count(0, 100),
        why: "headers of one step",
    },
    Bound {
        pattern: "journeys.*.steps.*.capture",
        limit: Limit::Count(0, 100),
        why: "values captured by one step",
    },
    Bound {
        pattern: "journeys.*.steps.*.expect_status.*",
        limit: Limit::Int(100, 599),
        why: "an HTTP status code",
    },
    Bound {
        pattern: "load.open.phases",
        limit: Limit::Count(1, 1_000),
        why: "phases of the open model",
    },
    Bound {
        pattern: "load.open.phases.*.*.rate",
        limit: Limit::Float(0.0, 1_000_000.0),
        why: "journeys started per second",
    },
    Bound {
        pattern: "load.open.phases.*.*.from",
        limit: Limit::Float(0.0, 1_000_000.0),
        why: "journeys started per second",
    },
    Bound {
        pattern: "load.open.phases.*.*.to",
        limit: Limit::Float(0.0, 1_000_000.0),
        why: "journeys started per second",
    },
    Bound {
        pattern: "load.open.phases.*.*.duration",
        limit: Limit::Dur(ms(1), MAX_PLANNED),
        why: "one phase; all phases together at most 24 h",
    },
    Bound {
        pattern: "load.open.max_in_flight",
        limit: Limit::Int(1, MAX_IN_FLIGHT),
        why: "requests in flight, each with its buffers and socket",
    },
    Bound {
        pattern: "load.closed.phases",
        limit: Limit::Count(1, 1_000),
        why: "phases of the closed model",
    },
    Bound {
        pattern: "load.closed.phases.*.*.users",
        limit: Limit::Int(0, MAX_USERS),
        why: "virtual users, each with its own client",
    },
    Bound {
        pattern: "load.closed.phases.*.*.duration",
        limit: Limit::Dur(s(1), MAX_PLANNED),
        why: "one phase, whole seconds; all phases together at most 24 h",
    },
    Bound {
        pattern: "budgets.min_samples",
        limit: Limit::Int(1, 1_000_000_000),
        why: "samples a latency rule needs before it can pass",
    },
    Bound {
        pattern: "budgets.error_rate",
        limit: Limit::Float(0.0, 1.0),
        why: "a fraction: 0.01 is 1 %",
    },
    Bound {
        pattern: "budgets.min_throughput",
        limit: Limit::Float(0.0, 10_000_000.0),
        why: "requests per second",
    },
    Bound {
        pattern: "budgets.endpoints.*.*",
        limit: Limit::Dur(Duration::from_micros(1), s(120)),
        why: "a latency ceiling within what the histograms record (120 s)",
    },
    Bound {
        pattern: "budgets.window",
        limit: Limit::Dur(s(1), s(H)),
        why: "sliding window for budgets",
    },
    Bound {
        pattern: "faults",
        limit: Limit::Count(0, 1_000),
        why: "faults of one drill",
    },
    Bound {
        pattern: "faults.*.start",
        limit: Limit::Dur(Duration::ZERO, MAX_PLANNED),
        why: "from the start of load",
    },
    Bound {
        pattern: "faults.*.duration",
        limit: Limit::Dur(ms(1), MAX_PLANNED),
        why: "how long a fault lasts",
    },
    Bound {
        pattern: "faults.*.toxicity",
        limit: Limit::Float(0.0, 1.0),
        why: "share of connections a toxic applies to",
    },
    Bound {
        pattern: "faults.*.fault.*.delay",
        limit: Limit::Dur(Duration::ZERO, s(600)),
        why: "added latency or delay",
    },
    Bound {
        pattern: "faults.*.fault.*.jitter",
        limit: Limit::Dur(Duration::ZERO, s(600)),
        why: "latency jitter",
    },
    Bound {
        pattern: "faults.*.fault.*.after",
        limit: Limit::Dur(Duration::ZERO, s(600)),
        why: "time before a timeout or reset",
    },
    Bound {
        pattern: "faults.*.fault.*.kb_per_second",
        limit: Limit::Int(1, 10_000_000),
        why: "bandwidth limit",
    },
    Bound {
        pattern: "faults.*.fault.*.average_size",
        limit: Limit::Int(1, 1 << 30),
        why: "slicer chunk size, bytes",
    },
    Bound {
        pattern: "faults.*.fault.*.size_variation",
        limit: Limit::Int(0, 1 << 30),
        why: "slicer chunk size variation, bytes",
    },
    Bound {
        pattern: "faults.*.fault.*.bytes",
        limit: Limit::Int(0, 1 << 40),
        why: "bytes before the connection is closed",
    },
    Bound {
        pattern: "steady_state.recovery_within",
        limit: Limit::Dur(Duration::ZERO, s(H)),
        why: "time the service has to recover after a fault",
    },
    Bound {
        pattern: "steady_state.min_requests",
        limit: Limit::Int(1, 1_000_000_000),
        why: "requests a phase needs to be judged",
    },
    Bound {
        pattern: "steady_state.*.error_rate",
        limit: Limit::Float(0.0, 1.0),
        why: "a fraction",
    },
    Bound {
        pattern: "steady_state.*.*.error_rate",
        limit: Limit::Float(0.0, 1.0),
        why: "a fraction",
    },
    Bound {
        pattern: "steady_state.*.p50",
        limit: Limit::Dur(Duration::from_micros(1), s(120)),
        why: "a latency tolerance within what the histograms record",
    },
    Bound {
        pattern: "steady_state.*.p99",
        limit: Limit::Dur(Duration::from_micros(1), s(120)),
        why: "a latency tolerance within what the histograms record",
    },
    Bound {
        pattern: "steady_state.*.*.p50",
        limit: Limit::Dur(Duration::from_micros(1), s(120)),
        why: "a latency tolerance within what the histograms record",
    },
    Bound {
        pattern: "steady_state.*.*.p99",
        limit: Limit::Dur(Duration::from_micros(1), s(120)),
        why: "a latency tolerance within what the histograms record",
    },
    Bound {
        pattern: "invariants.timeout",
        limit: Limit::Dur(ms(1), s(600)),
        why: "each read-back",
    },
    Bound {
        pattern: "invariants.settle",
        limit: Limit::Dur(Duration::ZERO, s(600)),
        why: "wait before reading effects back",
    },
    Bound {
        pattern: "contract.conformance.first",
        limit: Limit::Int(0, 1_000_000),
        why: "responses per status always judged",
    },
    Bound {
        pattern: "contract.conformance.every",
        limit: Limit::Int(1, 1_000_000),
        why: "then one response in this many",
    },
    Bound {
        pattern: "contract.conformance.examples",
        limit: Limit::Int(0, 100),
        why: "failing examples kept per operation",
    },
    Bound {
        pattern: "functional.timeout",
        limit: Limit::Dur(ms(1), s(H)),
        why: "the whole functional pass",
    },
    Bound {
        pattern: "functional.idempotency",
        limit: Limit::Count(0, 100),
        why: "operations checked",
    },
    Bound {
        pattern: "functional.idempotency.*.concurrency",
        limit: Limit::Int(2, 64),
        why: "concurrent duplicates sent",
    },
    Bound {
        pattern: "functional.idempotency.*.settle_within",
        limit: Limit::Dur(Duration::ZERO, s(600)),
        why: "time for effects to appear",
    },
    Bound {
        pattern: "functional.retry_discipline.max_attempts",
        limit: Limit::Int(1, 100),
        why: "attempts the service may make",
    },
    Bound {
        pattern: "functional.retry_discipline.requests",
        limit: Limit::Int(1, 1_000),
        why: "requests sampled",
    },
    Bound {
        pattern: "functional.retry_discipline.min_backoff",
        limit: Limit::Dur(Duration::ZERO, s(60)),
        why: "least wait between attempts",
    },
    Bound {
        pattern: "functional.retry_discipline.faults.*.requests",
        limit: Limit::Int(1, 1_000),
        why: "requests sampled under one fault",
    },
    Bound {
        pattern: "functional.retry_discipline.backoff.initial",
        limit: Limit::Dur(Duration::ZERO, s(60)),
        why: "the first retry's declared wait",
    },
    Bound {
        pattern: "functional.retry_discipline.backoff.max",
        limit: Limit::Dur(Duration::ZERO, s(600)),
        why: "the declared cap on a wait",
    },
    Bound {
        pattern: "functional.retry_discipline.backoff.factor",
        limit: Limit::Float(1.0, 10.0),
        why: "declared growth per retry",
    },
    Bound {
        pattern: "functional.retry_discipline.backoff.jitter",
        limit: Limit::Float(0.0, 1.0),
        why: "declared randomization, a fraction either way",
    },
    Bound {
        pattern: "functional.retry_discipline.backoff.tolerance",
        limit: Limit::Dur(Duration::ZERO, s(10)),
        why: "measurement slack on each wait",
    },
    Bound {
        pattern: "functional.retry_discipline.request_budget",
        limit: Limit::Dur(ms(1), s(600)),
        why: "the service's budget for one request",
    },
    Bound {
        pattern: "functional.retry_discipline.no_retry",
        limit: Limit::Count(0, 20),
        why: "refused requests checked",
    },
    Bound {
        pattern: "functional.retry_discipline.timeout",
        limit: Limit::Dur(ms(1), s(600)),
        why: "one sampled request",
    },
    Bound {
        pattern: "security.budget",
        limit: Limit::Dur(ms(1), s(H)),
        why: "the whole security pass",
    },
    Bound {
        pattern: "security.*.max_requests",
        limit: Limit::Int(1, 100_000),
        why: "requests a rate-limit probe may send",
    },
    Bound {
        pattern: "security.*.concurrency",
        limit: Limit::Int(1, 256),
        why: "concurrent probe requests",
    },
    Bound {
        pattern: "security.*.oversized_bytes",
        limit: Limit::Int(1, 64 << 20),
        why: "size of the oversized body sent",
    },
    Bound {
        pattern: "security.*.requests",
        limit: Limit::Int(1, 100_000),
        why: "generated requests",
    },
    Bound {
        pattern: "triggers.every",
        limit: Limit::Dur(ms(100), s(600)),
        why: "how often triggers are evaluated",
    },
    Bound {
        pattern: "triggers.expect.*.within",
        limit: Limit::Dur(ms(1), s(H)),
        why: "detection time a trigger must meet",
    },
    Bound {
        pattern: "observability.histogram.quantile",
        limit: Limit::Float(0.0, 1.0),
        why: "a quantile",
    },
    Bound {
        pattern: "observability.histogram.tolerance",
        limit: Limit::Dur(Duration::ZERO, s(60)),
        why: "agreement tolerance",
    },
    Bound {
        pattern: "environment.*.startup_timeout",
        limit: Limit::Dur(s(1), s(H)),
        why: "bringing the containers up",
    },
    Bound {
        pattern: "environment.*.service.shutdown_grace",
        limit: Limit::Dur(Duration::ZERO, s(600)),
        why: "SIGTERM to SIGKILL",
    },
    Bound {
        pattern: "compare.confidence",
        limit: Limit::Float(0.5, 0.999),
        why: "each interval's confidence; above 0.999 the bootstrap's tails are too thin to trust",
    },
    Bound {
        pattern: "compare.block",
        limit: Limit::Int(2, 1000),
        why: "arrivals per balanced block (even)",
    },
    Bound {
        pattern: "compare.resamples",
        limit: Limit::Int(200, 20_000),
        why: "bootstrap resamples per endpoint: fewer make the interval's ends noisy, more only cost time",
    },
    Bound {
        pattern: "compare.seed",
        limit: Limit::Int(0, u64::MAX),
        why: "any whole number",
    },
    Bound {
        pattern: "compare.allow",
        limit: Limit::Count(0, 7),
        why: "one allowance per statistic",
    },
    Bound {
        pattern: "compare.endpoints",
        limit: Limit::Count(0, MAX_ENDPOINTS),
        why: "one entry per endpoint",
    },
    Bound {
        pattern: "compare.baseline.service.command",
        limit: Limit::Count(1, 256),
        why: "program and arguments",
    },
];

fn matches(pattern: &str, path: &[Seg]) -> bool {
    let parts: Vec<&str> = pattern.split('.').collect();
    parts.len() == path.len()
        && parts.iter().zip(path).all(|(p, seg)| match seg {
            _ if *p == "*" => true,
            Seg::Key(k) => k == p,
            Seg::Index(_) => false,
        })
}

fn fmt_dur(d: Duration) -> String {
    if d.is_zero() {
        "0s".into()
    } else if d.subsec_nanos() == 0 && d.as_secs().is_multiple_of(3600) {
        format!("{}h", d.as_secs() / 3600)
    } else if d.subsec_nanos() == 0 && d.as_secs().is_multiple_of(60) && d.as_secs() >= 600 {
        format!("{}m", d.as_secs() / 60)
    } else if d.subsec_nanos() == 0 {
        format!("{}s", d.as_secs())
    } else if d.subsec_nanos().is_multiple_of(1_000_000) {
        format!("{}ms", d.as_millis())
    } else {
        format!("{}us", d.as_micros())
    }
}

impl Limit {
    /// `1 to 10000`, `1ms to 10m`, `1 to 100 entries`.
    pub fn describe(&self) -> String {
        match *self {
            Limit::Int(a, b) => format!("{a} to {b}"),
            Limit::Float(a, b) => format!("{a} to {b}"),
            Limit::Dur(a, b) => format!("{} to {}", fmt_dur(a), fmt_dur(b)),
            Limit::Count(a, b) => format!("{a} to {b} entries"),
        }
    }

    /// `None` when `v` is within; the message otherwise.
    fn check(&self, v: &Value) -> Option<String> {
        let out_of_range = |shown: String| {
            Some(format!(
                "{shown} is out of range: must be {}",
                self.describe()
            ))
        };
        let count = |n: usize, a: usize, b: usize| {
            if n < a && n == 0 {
                Some(format!("is empty: at least {a} required"))
            } else if n < a {
                Some(format!("has {n} entries: at least {a} required"))
            } else if n > b {
                Some(format!("has {n} entries: at most {b}"))
            } else {
                None
            }
        };
        match (*self, v) {
            (Limit::Int(a, b), Value::Number(n)) => match n.as_u64() {
                Some(x) if (a..=b).contains(&x) => None,
                _ => out_of_range(n.to_string()),
            },
            (Limit::Float(a, b), Value::Number(n)) => match n.as_f64() {
                Some(x) if (a..=b).contains(&x) => None,
                _ => out_of_range(n.to_string()),
            },
            (Limit::Dur(a, b), Value::String(t)) => match parse_duration(t) {
                Ok(d) if (a..=b).contains(&d) => None,
                Ok(_) => out_of_range(format!("duration `{t}`")),
                Err(e) => Some(e),
            },
            (Limit::Count(a, b), Value::Sequence(xs)) => count(xs.len(), a, b),
            (Limit::Count(a, b), Value::Mapping(m)) => count(m.len(), a, b),
            // Wrong types are the typed parse's to report; it ran first.
            _ => None,
        }
    }
}

/// Checks every bound over the document (read as plain YAML values, which keep `.inf` and
/// `.nan` as they are); the first field out of bounds is the error.
pub fn check(doc: &Value) -> Result<(), FieldError> {
    let mut path = Vec::new();
    walk(doc, &mut path)
}

fn walk(v: &Value, path: &mut Vec<Seg>) -> Result<(), FieldError> {
    if let Value::Number(n) = v
        && (n.is_nan() || n.is_infinite())
    {
        return Err(FieldError::new(path.clone(), "must be a finite number"));
    }
    for b in BOUNDS {
        if matches(b.pattern, path)
            && let Some(m) = b.limit.check(v)
        {
            return Err(FieldError::new(path.clone(), format!("{m} ({})", b.why)));
        }
    }
    match v {
        Value::Sequence(xs) => {
            for (i, x) in xs.iter().enumerate() {
                path.push(Seg::Index(i));
                walk(x, path)?;
                path.pop();
            }
        }
        Value::Mapping(m) => {
            for (k, x) in m {
                let key = match k {
                    Value::String(s) => s.clone(),
                    other => serde_norway::to_string(other)
                        .unwrap_or_default()
                        .trim()
                        .to_owned(),
                };
                path.push(Seg::Key(key));
                walk(x, path)?;
                path.pop();
            }
        }
        Value::Tagged(t) => walk(&t.value, path)?,
        _ => {}
    }
    Ok(())
}

/// The table as Markdown, for `verifier/README.md`.
pub fn markdown() -> String {
    let mut out = String::from("| field | bound | what it is |\n|---|---|---|\n");
    for b in BOUNDS {
        out.push_str(&format!(
            "| `{}` | {} | {} |\n",
            b.pattern,
            b.limit.describe(),
            b.why
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc(yaml: &str) -> Value {
        serde_norway::from_str(yaml).unwrap()
    }

    #[test]
    fn a_rate_out_of_range_names_the_full_path() {
        let e = check(&doc(
            "load: {open: {phases: [{steady: {rate: 2000000, duration: 1s}}]}}",
        ))
        .unwrap_err();
        assert_eq!(
            crate::scenario::locate::display_path(&e.path),
            "load.open.phases[0].steady.rate"
        );
        assert!(e.message.contains("1000000"), "{}", e.message);
    }

    #[test]
    fn durations_counts_and_infinities_are_bounded() {
        assert!(check(&doc("defaults: {timeout: 0s}")).is_err());
        assert!(check(&doc("defaults: {timeout: 5s}")).is_ok());
        assert!(check(&doc("budgets: {min_throughput: .inf}")).is_err());
        assert!(check(&doc("journeys: []")).is_err());
        assert!(check(&doc("load: {open: {max_in_flight: 4000000000}}")).is_err());
        assert!(
            check(&doc(
                "load: {closed: {phases: [{ramp: {users: 4000000000, duration: 1s}}]}}"
            ))
            .is_err()
        );
    }

    #[test]
    fn every_pattern_is_reachable_and_documented() {
        let md = markdown();
        for b in BOUNDS {
            assert!(!b.why.is_empty(), "{}", b.pattern);
            assert!(!b.pattern.ends_with('.'), "{}", b.pattern);
        }
        assert_eq!(md.lines().count(), BOUNDS.len() + 2);
    }
}
