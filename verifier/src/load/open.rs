//! Open model: journeys start on a schedule whatever the target does, and each first
//! request is timed from its intended start (wrk2's method). A target that stalls for a
//! second therefore shows a second of latency for every arrival scheduled in the stall,
//! instead of one slow request (coordinated omission).
//!
//! The schedule runs on its own OS thread and sleeps with `nanosleep`, whose slack is
//! tens of microseconds, not tokio's 1 ms timer wheel. Due arrivals go into a bounded queue
//! that `max_in_flight` long-lived workers drain, each running journeys back to back. The
//! scheduler's own lateness is measured and reported.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::Notify;

use super::cpu::CpuMark;
use super::request::Conn;
use super::{Client, Collector, EngineReport, Plan, Stop};
use crate::record::Outcome;
use crate::scenario::{Load, RatePhase};
use crate::shard::Shard;

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
    /// The part of the schedule this generator takes (`--shard`); the whole by default.
    shard: Shard,
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
            shard: Shard::WHOLE,
        }
    }

    /// Only the arrivals of `shard`: every `count`-th of the global schedule from `index`.
    pub fn for_shard(mut self, shard: Shard) -> Schedule {
        self.shard = shard;
        self
    }

    /// Arrivals this generator runs: its shard's part of the plan.
    pub fn shard_arrivals(&self) -> u64 {
        self.shard.share_of(self.planned_arrivals())
    }

    /// This shard's next arrival: its number in the global schedule and its offset.
    pub fn next_numbered(&mut self) -> Option<(u64, Duration)> {
        loop {
            let n = self.next;
            let offset = self.next_arrival()?;
            if self.shard.takes(n) {
                return Some((n, offset));
            }
        }
    }

    /// Total arrivals the plan asks for.
    pub fn planned_arrivals(&self) -> u64 {
        self.phases
            .last()
            .map(|&(_, d, a, b, before)| (before + (a + b) / 2.0 * d).floor() as u64)
            .unwrap_or(0)
    }

    /// The next arrival's offset in the global schedule, or `None` when the plan is over.
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

/// Arrivals that are due and wait for a worker. Workers take them without any hand-off
/// while the target keeps them busy, so a saturated run costs no wakeups per request; an
/// idle worker is woken only when one is idle.
///
/// Idle workers are woken last-parked-first. Each worker keeps its own keep-alive connection,
/// so this makes the idle connections a LIFO pool: a modest rate keeps reusing the few
/// connections it needs, hot, instead of taking turns over all `max_in_flight` of them (512
/// workers at 50/s would leave each connection idle ~10 s, past most servers' idle timeouts).
/// The connections of workers left cold after a burst age out on the server's side, and the
/// request that next finds one closed is sent again on a new connection (`request.rs`).
/// Chosen over a shared pool of connections, which would cost a lock to take and return a
/// connection on every request, and over closing connections after an idle limit of our own,
/// which would have to guess each server's timeout and would reconnect for nothing on servers
/// that keep connections longer.
struct Queue {
    state: Mutex<QueueState>,
    /// The scheduler waits here while the queue is full.
    space: Condvar,
    /// Idle workers wait here.
    work: Notify,
    idle: AtomicUsize,
    cap: usize,
}

#[derive(Default)]
struct QueueState {
    items: VecDeque<(u64, Instant)>,
    closed: bool,
    scheduler_waiting: bool,
}

enum Pop {
    Item(u64, Instant),
    Empty,
    Closed,
}

impl Queue {
    fn new(cap: usize) -> Queue {
        Queue {
            state: Mutex::new(QueueState::default()),
            space: Condvar::new(),
            work: Notify::new(),
            idle: AtomicUsize::new(0),
            cap: cap.max(1),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, QueueState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn pop(&self) -> Pop {
        let mut st = self.lock();
        match st.items.pop_front() {
            Some((n, due)) => {
                // Wake the scheduler once half the room is free: one wakeup per batch.
                if st.scheduler_waiting && st.items.len() <= self.cap / 2 {
                    st.scheduler_waiting = false;
                    self.space.notify_one();
                }
                Pop::Item(n, due)
            }
            None if st.closed => Pop::Closed,
            None => Pop::Empty,
        }
    }

    fn close(&self) {
        self.lock().closed = true;
        self.work.notify_waiters();
    }

    /// The next arrival for a worker, or `None` when the schedule is over and drained.
    async fn next(&self, stop: &Stop) -> Option<(u64, Instant)> {
        loop {
            if stop.is_stopped() {
                return None;
            }
            let notified = self.work.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            // Idle before looking, so a push after this look sees the worker and wakes it.
            self.idle.fetch_add(1, Ordering::SeqCst);
            match self.pop() {
                Pop::Item(n, due) => {
                    self.idle.fetch_sub(1, Ordering::SeqCst);
                    return Some((n, due));
                }
                Pop::Closed => {
                    self.idle.fetch_sub(1, Ordering::SeqCst);
                    return None;
                }
                Pop::Empty => {}
            }
            tokio::select! {
                _ = &mut notified => {}
                _ = stop.stopped() => {}
            }
            self.idle.fetch_sub(1, Ordering::SeqCst);
            if stop.is_stopped() {
                return None;
            }
        }
    }
}

/// Runs the open model until the schedule ends or `stop` fires. Load starts at `origin`.
pub async fn run(
    plan: Arc<Plan>,
    collector: Arc<Collector>,
    stop: Stop,
    origin: Instant,
) -> EngineReport {
    run_routed(Routes::single(plan, collector), stop, origin).await
}

/// Several targets under one schedule: arrival `n` goes to side `route(n)`, whose plan (the
/// same journeys aimed at its target) it runs and whose collector records it. Both sides thus
/// see the same load shape at the same instants (a paired comparison).
pub struct Routes {
    pub sides: Vec<(Arc<Plan>, Arc<Collector>)>,
    pub route: Arc<dyn Fn(u64) -> usize + Send + Sync>,
}

impl Routes {
    pub fn single(plan: Arc<Plan>, collector: Arc<Collector>) -> Routes {
        Routes {
            sides: vec![(plan, collector)],
            route: Arc::new(|_| 0),
        }
    }
}

/// One side of a routed run: its plan, its collector, its client.
type Side = (Arc<Plan>, Arc<Collector>, Client);

/// [`run`] over [`Routes`]: the schedule, timeout and `max_in_flight` are the first side's.
pub async fn run_routed(routes: Routes, stop: Stop, origin: Instant) -> EngineReport {
    run_shard(routes, stop, origin, Shard::WHOLE).await
}

/// [`run_routed`] for one shard of the schedule: its arrivals, its `${seq}` space.
pub async fn run_shard(routes: Routes, stop: Stop, origin: Instant, shard: Shard) -> EngineReport {
    let Some((plan, _)) = routes.sides.first() else {
        return EngineReport {
            model: "open".into(),
            ..Default::default()
        };
    };
    let plan = plan.clone();
    let Load::Open(open) = &plan.load else {
        return EngineReport {
            model: "open".into(),
            ..Default::default()
        };
    };
    let max_in_flight = open.max_in_flight as usize;
    let sides: Arc<Vec<Side>> = Arc::new(
        routes
            .sides
            .iter()
            .map(|(p, c)| {
                let client = Client::new(p.target.clone(), p.timeout, p.connect_timeout);
                (p.clone(), c.clone(), client)
            })
            .collect(),
    );
    let route = routes.route.clone();
    // Room for a backlog of at least a few hundred arrivals, so that a saturated run wakes
    // the scheduler once per batch; what waits there is timed from its due time all the same.
    let queue = Arc::new(Queue::new((2 * max_in_flight).max(256)));
    let seq = Arc::new(AtomicU64::new(shard.seq_start()));
    let started = Arc::new(AtomicU64::new(0));
    let schedule = Schedule::new(&open.phases).for_shard(shard);
    let planned = schedule.shard_arrivals();
    let end = origin + plan.planned;
    // Past this an arrival due before `end` is missed; before it, scheduling jitter (below
    // `LATE`) on the last arrivals does not make it so.
    let cutoff = end + LATE;
    let cpu = CpuMark::now();

    // One worker per in-flight slot, each running journeys back to back.
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..max_in_flight.max(1) {
        let (queue, sides, route, seq, started, stop) = (
            queue.clone(),
            sides.clone(),
            route.clone(),
            seq.clone(),
            started.clone(),
            stop.clone(),
        );
        workers.spawn(async move {
            // One keep-alive connection per side.
            let mut conns: Vec<Conn> = sides.iter().map(|_| Conn::default()).collect();
            while let Some((n, due)) = queue.next(&stop).await {
                // An arrival still waiting when the plan's time is over is missed, as in wrk2.
                if Instant::now() >= cutoff && due < end {
                    continue;
                }
                started.fetch_add(1, Ordering::Relaxed);
                let side = route(n).min(sides.len() - 1);
                let (plan, collector, client) = &sides[side];
                let conn = &mut conns[side];
                let journey = plan.journey_for(n);
                let mut vars = HashMap::new();
                let mut start = due;
                for step in &journey.steps {
                    let r = client.execute(conn, step, &seq, &mut vars, start).await;
                    collector.record(step.endpoint, r.end, r.latency, r.outcome);
                    if r.outcome != Outcome::Ok {
                        // Later steps depend on this one's captures.
                        break;
                    }
                    start = Instant::now();
                }
            }
        });
    }

    let sched = {
        let (queue, stop) = (queue.clone(), stop.clone());
        tokio::task::spawn_blocking(move || schedule_loop(schedule, origin, end, &queue, &stop))
    };
    let mut report = sched.await.unwrap_or_default();
    queue.close();

    // Let requests in flight finish; each is bounded by the request timeout.
    let drain = plan.timeout + Duration::from_secs(1);
    let drained = tokio::time::timeout(drain, async {
        while workers.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        workers.abort_all();
    }
    report.started = started.load(Ordering::Relaxed);
    report.reconnects = sides.iter().map(|(_, _, c)| c.reconnects()).sum();
    if !stop.is_stopped() {
        report.missed_arrivals = planned.saturating_sub(report.started);
    }
    let (cpu_s, cores) = cpu.since();
    report.cpu_seconds = cpu_s;
    report.cpu_cores_used = cores;
    report
}

/// Puts each arrival into the queue at its due time; returns the scheduler's own figures.
fn schedule_loop(
    mut schedule: Schedule,
    origin: Instant,
    end: Instant,
    queue: &Queue,
    stop: &Stop,
) -> EngineReport {
    let mut lag = crate::record::new_histogram();
    let mut report = EngineReport {
        model: "open".into(),
        ..Default::default()
    };
    let mut cap_released = origin;
    let cutoff = end + LATE;
    let mut next = schedule.next_numbered();
    while let Some((n, offset)) = next {
        let due = origin + offset;
        // A generator that falls behind does not run past the plan: what it has not sent
        // by the plan's end (and `LATE` of jitter past it) is missed, as in wrk2, and the run
        // says so.
        if Instant::now() >= cutoff && due < end {
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
        let mut st = queue.lock();
        if st.items.len() >= queue.cap {
            // Every slot is busy and the backlog is full: the target holds arrivals back.
            st.scheduler_waiting = true;
            while st.items.len() >= queue.cap {
                if stop.is_stopped() || Instant::now() >= end {
                    return finish(report, &lag);
                }
                st = queue
                    .space
                    .wait_timeout(st, Duration::from_millis(20))
                    .unwrap_or_else(|p| p.into_inner())
                    .0;
            }
            st.scheduler_waiting = false;
            cap_released = Instant::now();
        }
        // This arrival and every later one already due go in under one lock: a backlog
        // drains in batches, not one hand-off per arrival.
        let now = Instant::now();
        let idle = queue.idle.load(Ordering::SeqCst);
        let mut pushed = 0usize;
        let (mut n, mut due) = (n, due);
        loop {
            let own_lag = now.saturating_duration_since(due.max(cap_released));
            lag.saturating_record(
                u64::try_from(own_lag.as_micros())
                    .unwrap_or(u64::MAX)
                    .max(1),
            );
            if own_lag > LATE {
                report.late_dispatches += 1;
            }
            if pushed >= idle {
                report.in_flight_waits += 1;
            }
            st.items.push_back((n, due));
            pushed += 1;
            next = schedule.next_numbered();
            match next {
                Some((k, o)) if origin + o <= now && st.items.len() < queue.cap => {
                    (n, due) = (k, origin + o);
                }
                _ => break,
            }
        }
        drop(st);
        for _ in 0..pushed.min(idle) {
            queue.work.notify_last();
        }
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
    fn shards_partition_the_global_schedule_exactly() {
        let phases = [
            RatePhase::Ramp {
                from: 10.0,
                to: 300.0,
                duration: secs(3.0),
            },
            RatePhase::Steady {
                rate: 300.0,
                duration: secs(1.0),
            },
        ];
        let whole: Vec<(u64, Duration)> = {
            let mut s = Schedule::new(&phases);
            std::iter::from_fn(|| s.next_numbered()).collect()
        };
        for count in [1u32, 2, 3, 4, 7] {
            let mut union = Vec::new();
            for index in 0..count {
                let shard = Shard { index, count };
                let mut s = Schedule::new(&phases).for_shard(shard);
                let planned = s.shard_arrivals();
                let mine: Vec<(u64, Duration)> = std::iter::from_fn(|| s.next_numbered()).collect();
                assert!(mine.iter().all(|(n, _)| shard.takes(*n)));
                assert!((mine.len() as i64 - planned as i64).abs() <= 1, "{shard}");
                union.extend(mine);
            }
            union.sort();
            assert_eq!(union, whole, "{count} shards");
        }
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
