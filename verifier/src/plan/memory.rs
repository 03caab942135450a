//! The most memory a plan will hold, estimated before anything starts from what its bounds let
//! grow: histograms per endpoint, the per-second timeline, requests in flight or virtual users,
//! the acknowledgements kept for the invariants, the service's captured logs. The figures are
//! upper estimates of the structures' sizes (an HdrHistogram over 1 µs–120 s at 3 digits is
//! ~140 KB); `verifier plan` prints them, and a plan above [`MAX_BYTES`] is refused.

use crate::scenario::Load;

use super::Scenario;

/// A plan that would hold more than this is refused with its largest part named.
pub const MAX_BYTES: u64 = 4 << 30;

const HISTOGRAM: u64 = 140 << 10;
/// Whole run, the sliding-window ring (at most 10 slices), two spares and the open slice.
const HISTOGRAMS_PER_ENDPOINT: u64 = 1 + 10 + 2 + 1;
/// A request in flight in the open model: its task, the connection, the read buffer.
const IN_FLIGHT: u64 = 48 << 10;
/// A closed-model virtual user: goose's user with its own HTTP client and pool.
const USER: u64 = 160 << 10;
/// One second of the timeline, per endpoint and overall: counts and a few percentiles.
const TIMELINE_SLICE: u64 = 128;
/// One acknowledgement kept for the nothing-lost read-back (key, id, status).
const ACK: u64 = 128;
const MAX_ACKS: u64 = crate::effects::MAX_ACKS as u64;
/// The service's output kept by the testcontainers environment.
const LOG_CAPTURE: u64 = 64 << 20;
/// The program itself, its runtime and the parsed contract.
const BASE: u64 = 64 << 20;

/// Parts of the estimate, each with what it is for.
#[derive(Debug, Clone)]
pub struct Estimate {
    pub parts: Vec<(&'static str, u64)>,
}

impl Estimate {
    pub fn of(s: &Scenario) -> Estimate {
        let endpoints = s.endpoints().len() as u64 + 1;
        let secs = s.planned_duration().as_secs().saturating_add(1);
        let mut parts = vec![
            ("the verifier itself", BASE),
            (
                "histograms per endpoint",
                endpoints * HISTOGRAMS_PER_ENDPOINT * HISTOGRAM,
            ),
            (
                "the per-second timeline",
                secs.saturating_mul(endpoints)
                    .saturating_mul(TIMELINE_SLICE),
            ),
        ];
        let planned = s.planned_duration();
        let windows = planned
            .as_secs()
            .div_ceil(crate::record::series::window_for(planned).as_secs())
            .saturating_add(1);
        let sides = if s.compare.is_some() { 2 } else { 1 };
        parts.push((
            "the per-window series (each side of a comparison)",
            windows
                .saturating_mul(endpoints)
                .saturating_mul(crate::record::series::WINDOW_BYTES)
                .saturating_mul(sides),
        ));
        if s.compare.is_some() {
            parts.push((
                "the baseline's histograms",
                endpoints * HISTOGRAMS_PER_ENDPOINT * HISTOGRAM,
            ));
        }
        match &s.load {
            Load::Open(o) => parts.push((
                "requests in flight",
                u64::from(o.max_in_flight).saturating_mul(IN_FLIGHT),
            )),
            Load::Closed(c) => {
                let users = c
                    .phases
                    .iter()
                    .map(|p| match p {
                        crate::scenario::UserPhase::Ramp { users, .. }
                        | crate::scenario::UserPhase::Spike { users, .. } => u64::from(*users),
                        crate::scenario::UserPhase::Steady { .. } => 0,
                    })
                    .max()
                    .unwrap_or(0);
                parts.push(("virtual users", users.saturating_mul(USER)));
            }
        }
        if s.invariants.is_some() {
            parts.push(("acknowledgements for the invariants", MAX_ACKS * ACK));
        }
        if matches!(
            s.environment,
            crate::env::EnvironmentSpec::Testcontainers(_)
        ) {
            parts.push(("the service's captured logs", LOG_CAPTURE));
        }
        Estimate { parts }
    }

    pub fn total(&self) -> u64 {
        self.parts
            .iter()
            .fold(0u64, |a, (_, b)| a.saturating_add(*b))
    }

    pub fn largest(&self) -> (&'static str, u64) {
        self.parts
            .iter()
            .copied()
            .max_by_key(|(_, b)| *b)
            .unwrap_or(("nothing", 0))
    }
}

/// `1.5 GiB`, `140 MiB`, `12 KiB`.
pub fn fmt_bytes(b: u64) -> String {
    const UNITS: [&str; 4] = ["B", "KiB", "MiB", "GiB"];
    let mut v = b as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 || v >= 100.0 {
        format!("{v:.0} {}", UNITS[u])
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_largest_plan_the_bounds_allow_fits() {
        // 100 endpoints, 24 h, 10 000 in flight, invariants and logs: the worst case of every
        // bound together must stay under the ceiling, or the bounds are wrong.
        let worst = (64u64 << 20)
            + 101 * HISTOGRAMS_PER_ENDPOINT * HISTOGRAM
            + (24 * 3600 + 1) * 101 * TIMELINE_SLICE
            + 10_000 * IN_FLIGHT
            + MAX_ACKS * ACK
            + LOG_CAPTURE;
        assert!(worst < MAX_BYTES, "{}", fmt_bytes(worst));
        let users = 5_000 * USER;
        assert!(users < IN_FLIGHT * 10_000 * 2);
    }

    #[test]
    fn bytes_read_as_a_person_reads_them() {
        assert_eq!(fmt_bytes(512), "512 B");
        assert_eq!(fmt_bytes(140 << 10), "140 KiB");
        assert_eq!(fmt_bytes(3 << 29), "1.5 GiB");
    }
}
