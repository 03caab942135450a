//! Open model: journeys start on a schedule whatever the target does, and each first
//! request is timed from its intended start (wrk2's method). A target that stalls for a
//! second therefore shows a second of latency for every arrival scheduled in the stall,
//! instead of one slow request (coordinated omission).
//!
//! The schedule runs on its own OS thread and sleeps with `nanosleep`, whose slack is
//! tens of microseconds, not tokio's 1 ms timer wheel; arrivals are spawned onto the
//! runtime. The scheduler's own lateness is measured and reported.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::{Duration, Instant};

use tokio::sync::Semaphore;

use super::cpu::CpuMark;
use super::{Client, Collector, EngineReport, Plan, Stop};
use crate::record::Outcome;
use crate::scenario::{Load, RatePhase};

/// Lateness past which a dispatch counts as the generator falling behind; below it is
/// ordinary OS scheduling jitter, which the lag percentiles in the report still show.
pub const LATE: Duration = Duration::from_millis(5);

/// Arrival times of an open-model plan, as offsets from the start of load.
#[derive(Debug, Clone)]
pub struct Schedule {
    /// (start offset s, duration s, rate at start, rate at end, arrivals before phase)
    phases: Vec<(f64, f64, f64, f64, f64)>,
    next: u64,
    phase: usize,
}

impl Schedule {
    pub fn new(phases: &[RatePhase]) -> Schedule {
        let mut out = Vec::new();
        let (mut start, mut before) = (0.0, 0.0);
        for p in phases {
            let (a, b, d) = match p {
                RatePhase::Ramp { from, to, duration } => (*from, *to, duration.0.as_secs_f64()),
                RatePhase::Steady { rate, duration } | RatePhase::Spike { rate, duration } => {
                    (*rate, *rate, duration.0.as_secs_f64())
                }
            };
            out.push((start, d, a, b, before));
            start += d;
            before += (a + b) / 2.0 * d;
        }
        Schedule {
            phases: out,
            next: 0,
            phase: 0,
        }
    }

    /// Total arrivals the plan asks for.
    pub fn planned_arrivals(&self) -> u64 {
        self.phases
            .last()
            .map(|&(_, d, a, b, before)| (before + (a + b) / 2.0 * d).floor() as u64)
            .unwrap_or(0)
    }

    /// The next arrival's offset, or `None` when the plan is over.
    pub fn next_arrival(&mut self) -> Option<Duration> {
        let i = self.next as f64;
        while let Some(&(start, d, a, b, before)) = self.phases.get(self.phase) {
            let m = i - before;
            // Arrivals happen when the integral of the rate reaches each whole number.
            let tau = if (b - a).abs() < 1e-12 {
                if a <= 0.0 { f64::INFINITY } else { m / a }
            } else {
                let k = (b - a) / (2.0 * d);
                let disc = a * a + 4.0 * k * m;
                if disc < 0.0 {
                    f64::INFINITY
                } else {
                    (-a + disc.sqrt()) / (2.0 * k)
                }
            };
            if tau.is_finite() && tau >= 0.0 && tau < d {
                self.next += 1;
                return Some(Duration::from_secs_f64(start + tau));
            }
            self.phase += 1;
        }
        None
    }
}

/// Runs the open model until the schedule ends or `stop` fires. Load starts at `origin`.
pub async fn run(
    plan: Arc<Plan>,
    collector: Arc<Collector>,
    stop: Stop,
    origin: Instant,
) -> EngineReport {
    let Load::Open(open) = &plan.load else {
        return EngineReport {
            model: "open".into(),
            ..Default::default()
        };
    };
    let max_in_flight = open.max_in_flight as usize;
    let client = Client::new(
        plan.target.clone(),
        plan.timeout,
        plan.connect_timeout,
        max_in_flight,
    );
    let sem = Arc::new(Semaphore::new(max_in_flight));
    let seq = Arc::new(AtomicU64::new(0));
    let schedule = Schedule::new(&open.phases);
    let cpu = CpuMark::now();
    let handle = tokio::runtime::Handle::current();

    let sched = {
        let (plan, collector, stop, sem) =
            (plan.clone(), collector.clone(), stop.clone(), sem.clone());
        tokio::task::spawn_blocking(move || {
            schedule_loop(
                schedule, origin, &handle, &plan, &collector, &stop, &sem, &client, &seq,
            )
        })
    };
    let mut report = sched.await.unwrap_or_default();

    // Let requests in flight finish; each is bounded by the request timeout.
    let drain = plan.timeout + Duration::from_secs(1);
    let _ = tokio::time::timeout(drain, sem.acquire_many(max_in_flight as u32)).await;
    let (cpu_s, cores) = cpu.since();
    report.cpu_seconds = cpu_s;
    report.cpu_cores_used = cores;
    report
}

#[allow(clippy::too_many_arguments)]
fn schedule_loop(
    mut schedule: Schedule,
    origin: Instant,
    handle: &tokio::runtime::Handle,
    plan: &Arc<Plan>,
    collector: &Arc<Collector>,
    stop: &Stop,
    sem: &Arc<Semaphore>,
    client: &Client,
    seq: &Arc<AtomicU64>,
) -> EngineReport {
    let mut lag = crate::record::new_histogram();
    let mut report = EngineReport {
        model: "open".into(),
        ..Default::default()
    };
    let mut cap_released = origin;
    let planned = schedule.planned_arrivals();
    // A generator that falls behind does not run past the plan: what it has not sent by
    // the plan's end is missed, as in wrk2, and the run says so.
    let end = origin + plan.planned;
    while let Some(offset) = schedule.next_arrival() {
        let due = origin + offset;
        if Instant::now() >= end && due < end {
            report.missed_arrivals = planned.saturating_sub(report.started);
            break;
        }
        loop {
            if stop.is_stopped() {
                return finish(report, &lag);
            }
            let now = Instant::now();
            if now >= due {
                break;
            }
            // Short sleeps keep Ctrl-C and abort responsive during slow ramps.
            std::thread::sleep((due - now).min(Duration::from_millis(50)));
        }
        let now = Instant::now();
        let own_lag = now.saturating_duration_since(due.max(cap_released));
        lag.saturating_record(
            u64::try_from(own_lag.as_micros())
                .unwrap_or(u64::MAX)
                .max(1),
        );
        if own_lag > LATE {
            report.late_dispatches += 1;
        }
        let permit = match sem.clone().try_acquire_owned() {
            Ok(p) => p,
            Err(_) => {
                report.in_flight_waits += 1;
                let got = handle.block_on(async {
                    tokio::select! {
                        p = sem.clone().acquire_owned() => p.ok(),
                        _ = stop.stopped() => None,
                        _ = tokio::time::sleep_until(end.into()) => None,
                    }
                });
                cap_released = Instant::now();
                match got {
                    Some(p) => p,
                    None => {
                        if !stop.is_stopped() {
                            report.missed_arrivals = planned.saturating_sub(report.started);
                        }
                        return finish(report, &lag);
                    }
                }
            }
        };
        let n = report.started;
        report.started += 1;
        let (plan, collector, client, seq) =
            (plan.clone(), collector.clone(), client.clone(), seq.clone());
        handle.spawn(async move {
            let _permit = permit;
            let journey = plan.journey_for(n);
            let mut vars = HashMap::new();
            let mut start = due;
            for step in &journey.steps {
                let r = client.execute(step, &seq, &mut vars, start).await;
                collector.record(step.endpoint, r.end, r.latency, r.outcome);
                if r.outcome != Outcome::Ok {
                    // Later steps depend on this one's captures.
                    break;
                }
                start = Instant::now();
            }
        });
    }
    finish(report, &lag)
}

fn finish(mut report: EngineReport, lag: &hdrhistogram::Histogram<u64>) -> EngineReport {
    report.dispatch_lag_p50_us = lag.value_at_quantile(0.5);
    report.dispatch_lag_p99_us = lag.value_at_quantile(0.99);
    report.dispatch_lag_max_us = lag.max();
    report
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::Dur;

    fn secs(s: f64) -> Dur {
        Dur(Duration::from_secs_f64(s))
    }

    #[test]
    fn constant_rate_is_evenly_spaced() {
        let mut s = Schedule::new(&[RatePhase::Steady {
            rate: 4.0,
            duration: secs(1.0),
        }]);
        let got: Vec<u128> = std::iter::from_fn(|| s.next_arrival())
            .map(|d| d.as_millis())
            .collect();
        assert_eq!(got, vec![0, 250, 500, 750]);
    }

    #[test]
    fn ramp_integrates_the_rate() {
        let phases = [
            RatePhase::Ramp {
                from: 0.0,
                to: 100.0,
                duration: secs(10.0),
            },
            RatePhase::Steady {
                rate: 100.0,
                duration: secs(2.0),
            },
            RatePhase::Spike {
                rate: 400.0,
                duration: secs(0.5),
            },
        ];
        let mut s = Schedule::new(&phases);
        assert_eq!(s.planned_arrivals(), 500 + 200 + 200);
        let all: Vec<Duration> = std::iter::from_fn(|| s.next_arrival()).collect();
        assert!((all.len() as i64 - 900).abs() <= 2, "{}", all.len());
        assert!(all.windows(2).all(|w| w[0] <= w[1]), "monotonic");
        // Half the ramp's 500 arrivals fall in its last 2.93 s (rate grows linearly).
        let late_ramp = all
            .iter()
            .filter(|d| d.as_secs_f64() >= 10.0 / 2f64.sqrt() && d.as_secs_f64() < 10.0)
            .count();
        assert!((late_ramp as i64 - 250).abs() <= 2, "{late_ramp}");
        assert!(all.last().unwrap().as_secs_f64() < 12.5);
    }

    #[test]
    fn zero_rate_phase_is_a_pause() {
        let phases = [
            RatePhase::Steady {
                rate: 0.0,
                duration: secs(5.0),
            },
            RatePhase::Steady {
                rate: 2.0,
                duration: secs(1.0),
            },
        ];
        let mut s = Schedule::new(&phases);
        let got: Vec<u128> = std::iter::from_fn(|| s.next_arrival())
            .map(|d| d.as_millis())
            .collect();
        assert_eq!(got, vec![5000, 5500]);
    }
}
