//! Measurements: an HdrHistogram (µs, 3 significant digits) and outcome counts per
//! endpoint, kept for the whole run and for a short ring of recent time slices.
//!
//! Memory is flat: the whole-run histograms have fixed size, the ring holds a bounded
//! number of slices, and the per-slice timeline keeps only a few numbers per slice.

pub mod series;

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use hdrhistogram::serialization::{Deserializer, Serializer, V2DeflateSerializer};
use serde::{Deserialize, Serialize};

/// Latencies above this are recorded as this: no request outlives its timeout, and the
/// bound keeps each histogram at a fixed ~140 KB.
pub const HIGHEST_US: u64 = 120_000_000;
/// Most slices the ring keeps; the slice length grows instead, so a long sliding window
/// costs no more memory than a short one.
pub const MAX_RING: usize = 10;

pub fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, HIGHEST_US, 3).expect("static histogram bounds are valid")
}

/// Something fed every request by when it was due (from the start of load), beside the
/// recorder: a drill's steady-state phases.
pub trait DueSink: Send {
    fn record_due(&mut self, due: Duration, latency: Duration, outcome: Outcome);
}

/// How one request ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Expected status.
    Ok,
    /// No complete response before the request's deadline.
    Timeout,
    /// The TCP connection could not be opened.
    Connect,
    /// The connection was reset or closed mid-exchange.
    Reset,
    /// A 4xx the step did not expect.
    Status4xx,
    /// A 5xx the step did not expect.
    Status5xx,
    /// Any other unexpected status, or a failure that fits no class above.
    Other,
}

impl Outcome {
    pub const ALL: [Outcome; 7] = [
        Outcome::Ok,
        Outcome::Timeout,
        Outcome::Connect,
        Outcome::Reset,
        Outcome::Status4xx,
        Outcome::Status5xx,
        Outcome::Other,
    ];

    pub fn from_status(status: u16, expected: &[u16]) -> Outcome {
        let ok = if expected.is_empty() {
            (200..400).contains(&status)
        } else {
            expected.contains(&status)
        };
        match status {
            _ if ok => Outcome::Ok,
            400..=499 => Outcome::Status4xx,
            500..=599 => Outcome::Status5xx,
            _ => Outcome::Other,
        }
    }
}

/// Outcome counts by class.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema,
)]
pub struct Counts {
    pub ok: u64,
    pub timeout: u64,
    pub connect: u64,
    pub reset: u64,
    pub status_4xx: u64,
    pub status_5xx: u64,
    pub other: u64,
}

impl Counts {
    fn slot(&mut self, o: Outcome) -> &mut u64 {
        match o {
            Outcome::Ok => &mut self.ok,
            Outcome::Timeout => &mut self.timeout,
            Outcome::Connect => &mut self.connect,
            Outcome::Reset => &mut self.reset,
            Outcome::Status4xx => &mut self.status_4xx,
            Outcome::Status5xx => &mut self.status_5xx,
            Outcome::Other => &mut self.other,
        }
    }
    pub fn add(&mut self, o: Outcome, n: u64) {
        *self.slot(o) += n;
    }
    pub fn merge(&mut self, other: &Counts) {
        for o in Outcome::ALL {
            let n = *other.clone().slot(o);
            self.add(o, n);
        }
    }
    pub fn total(&self) -> u64 {
        self.ok + self.errors()
    }
    pub fn errors(&self) -> u64 {
        self.timeout + self.connect + self.reset + self.status_4xx + self.status_5xx + self.other
    }
    pub fn error_rate(&self) -> f64 {
        let t = self.total();
        if t == 0 {
            0.0
        } else {
            self.errors() as f64 / t as f64
        }
    }
}

/// One endpoint's measurements over some span.
#[derive(Debug, Clone)]
pub struct Stats {
    pub hist: Histogram<u64>,
    pub counts: Counts,
}

impl Stats {
    pub fn new() -> Stats {
        Stats {
            hist: new_histogram(),
            counts: Counts::default(),
        }
    }
    pub fn merge(&mut self, other: &Stats) {
        // Same bounds on both sides, so adding cannot fail.
        let _ = self.hist.add(&other.hist);
        self.counts.merge(&other.counts);
    }
    pub(crate) fn record(&mut self, latency: Duration, outcome: Outcome) {
        // Connection failures have no response time worth ranking with real responses.
        if outcome != Outcome::Connect {
            let us = u64::try_from(latency.as_micros())
                .unwrap_or(u64::MAX)
                .max(1);
            self.hist.saturating_record(us.min(HIGHEST_US));
        }
        self.counts.add(outcome, 1);
    }
    fn clear(&mut self) {
        self.hist.reset();
        self.counts = Counts::default();
    }
}

impl Default for Stats {
    fn default() -> Self {
        Stats::new()
    }
}

/// A few numbers per slice, for the report's timeline.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
pub struct SliceSummary {
    /// Slice start, seconds from the start of load.
    pub start_s: f64,
    pub requests: u64,
    pub errors: u64,
    pub p50_us: u64,
    pub p99_us: u64,
    pub max_us: u64,
}

/// Measurements of every endpoint over one sliding window, handed to the checks.
#[derive(Debug, Clone)]
pub struct WindowView {
    pub start: Duration,
    pub end: Duration,
    pub per_endpoint: Vec<Stats>,
}

impl WindowView {
    pub fn overall(&self) -> Stats {
        let mut all = Stats::new();
        self.per_endpoint.iter().for_each(|s| all.merge(s));
        all
    }
}

struct Slice {
    start: Duration,
    per_endpoint: Vec<Stats>,
}

/// The recorder. One per run; the load engines call `record` from their tasks.
pub struct Recorder {
    origin: Instant,
    endpoints: Vec<String>,
    slice: Duration,
    ring_len: usize,
    totals: Vec<Stats>,
    current: Slice,
    ring: VecDeque<Slice>,
    spare: Vec<Slice>,
    timeline: Vec<SliceSummary>,
    series: series::Series,
}

impl Recorder {
    /// `window` is the sliding-window size the checks use; slices are at most 1 s long and
    /// at least `window / MAX_RING`.
    pub fn new(origin: Instant, endpoints: Vec<String>, window: Option<Duration>) -> Recorder {
        let (slice, ring_len) = match window {
            Some(w) if !w.is_zero() => {
                let slice = Duration::from_secs(1).max(w / MAX_RING as u32);
                let n = (w.as_secs_f64() / slice.as_secs_f64()).ceil().max(1.0) as usize;
                (slice, n.min(MAX_RING))
            }
            _ => (Duration::from_secs(1), 1),
        };
        let n = endpoints.len();
        Recorder {
            origin,
            series: series::Series::new(endpoints.clone(), Duration::from_secs(1)),
            endpoints,
            slice,
            ring_len,
            totals: (0..n).map(|_| Stats::new()).collect(),
            current: Slice {
                start: Duration::ZERO,
                per_endpoint: (0..n).map(|_| Stats::new()).collect(),
            },
            ring: VecDeque::new(),
            spare: Vec::new(),
            timeline: Vec::new(),
        }
    }

    /// Keeps the run's time series in windows of `window` (see [`series::window_for`]).
    pub fn with_series_window(mut self, window: Duration) -> Recorder {
        self.series = series::Series::new(self.endpoints.clone(), window);
        self
    }

    pub fn origin(&self) -> Instant {
        self.origin
    }
    pub fn endpoints(&self) -> &[String] {
        &self.endpoints
    }
    pub fn slice_len(&self) -> Duration {
        self.slice
    }

    /// Requests and errors recorded so far, all endpoints.
    pub fn totals_counts(&self) -> (u64, u64) {
        self.totals.iter().fold((0, 0), |(r, e), s| {
            (r + s.counts.total(), e + s.counts.errors())
        })
    }

    /// The p99 of the last slice that closed with answers in it (all endpoints), for progress.
    pub fn recent_p99_us(&self) -> Option<u64> {
        self.timeline
            .iter()
            .rev()
            .find(|s| s.requests > 0)
            .map(|s| s.p99_us)
    }

    /// Everything recorded so far, all endpoints together.
    pub fn totals(&self) -> Stats {
        let mut all = Stats::new();
        self.totals.iter().for_each(|s| all.merge(s));
        all
    }

    /// Records one request that ended at `end` after `latency` (timed from its intended
    /// send time in the open model). Returns sliding windows that closed on the way.
    pub fn record(
        &mut self,
        endpoint: usize,
        end: Instant,
        latency: Duration,
        outcome: Outcome,
    ) -> Vec<WindowView> {
        let closed = self.advance(end);
        if let Some(t) = self.totals.get_mut(endpoint) {
            t.record(latency, outcome);
            self.current.per_endpoint[endpoint].record(latency, outcome);
            // Latency runs from the intended send time, so this is when the request was due.
            let due = end
                .saturating_duration_since(self.origin)
                .saturating_sub(latency);
            self.series.record(endpoint, due, latency, outcome);
        }
        closed
    }

    /// Closes every slice that ended before `now`; returns one sliding window per closed
    /// slice, so the checks see every window position.
    pub fn advance(&mut self, now: Instant) -> Vec<WindowView> {
        let at = now.saturating_duration_since(self.origin);
        let mut out = Vec::new();
        while at >= self.current.start + self.slice {
            let next_start = self.current.start + self.slice;
            let fresh = self.spare.pop().map(|mut s| {
                s.start = next_start;
                s.per_endpoint.iter_mut().for_each(Stats::clear);
                s
            });
            let fresh = fresh.unwrap_or_else(|| Slice {
                start: next_start,
                per_endpoint: (0..self.endpoints.len()).map(|_| Stats::new()).collect(),
            });
            let done = std::mem::replace(&mut self.current, fresh);
            self.timeline.push(summarize(&done, self.slice));
            self.ring.push_back(done);
            if self.ring.len() > self.ring_len
                && let Some(old) = self.ring.pop_front()
            {
                self.spare.push(old);
            }
            if self.ring.len() == self.ring_len {
                out.push(self.window_view());
            }
            // A long silence (a stalled target with no completions) closes many empty
            // slices; only the last few can matter to a window.
            if out.len() > self.ring_len {
                out.remove(0);
            }
        }
        out
    }

    fn window_view(&self) -> WindowView {
        let mut per_endpoint: Vec<Stats> =
            (0..self.endpoints.len()).map(|_| Stats::new()).collect();
        for s in &self.ring {
            for (acc, st) in per_endpoint.iter_mut().zip(&s.per_endpoint) {
                acc.merge(st);
            }
        }
        let start = self.ring.front().map(|s| s.start).unwrap_or_default();
        let end = self
            .ring
            .back()
            .map(|s| s.start + self.slice)
            .unwrap_or_default();
        WindowView {
            start,
            end,
            per_endpoint,
        }
    }

    /// Ends recording: closes the open slice and hands over the whole-run measurements.
    pub fn finish(mut self, end: Instant) -> (Measurements, Vec<WindowView>) {
        let closed = self.advance(end);
        let at = end.saturating_duration_since(self.origin);
        let mut closed = closed;
        let partial_has_data = self
            .current
            .per_endpoint
            .iter()
            .any(|s| s.counts.total() > 0);
        if partial_has_data {
            let elapsed_in_slice = at.saturating_sub(self.current.start);
            self.timeline
                .push(summarize(&self.current, elapsed_in_slice));
            let cur = std::mem::replace(
                &mut self.current,
                Slice {
                    start: Duration::ZERO,
                    per_endpoint: Vec::new(),
                },
            );
            self.ring.push_back(cur);
            if self.ring.len() > self.ring_len {
                self.ring.pop_front();
            }
            // A run shorter than one window still gets judged over what it has.
            if closed.is_empty() {
                closed.push(self.window_view());
            }
        }
        let m = Measurements {
            endpoints: self.endpoints,
            per_endpoint: self.totals,
            elapsed: at,
            timeline: self.timeline,
            series: self.series,
        };
        (m, closed)
    }
}

fn summarize(s: &Slice, _len: Duration) -> SliceSummary {
    let mut all = Stats::new();
    s.per_endpoint.iter().for_each(|e| all.merge(e));
    SliceSummary {
        start_s: s.start.as_secs_f64(),
        requests: all.counts.total(),
        errors: all.counts.errors(),
        p50_us: all.hist.value_at_quantile(0.5),
        p99_us: all.hist.value_at_quantile(0.99),
        max_us: all.hist.max(),
    }
}

/// Whole-run measurements.
#[derive(Debug, Clone)]
pub struct Measurements {
    pub endpoints: Vec<String>,
    pub per_endpoint: Vec<Stats>,
    pub elapsed: Duration,
    pub timeline: Vec<SliceSummary>,
    /// Every endpoint in every window of the run, by due time.
    pub series: series::Series,
}

impl Measurements {
    /// Nothing measured, for a run that ended before its load began.
    pub fn empty(endpoints: Vec<String>) -> Measurements {
        Measurements {
            per_endpoint: endpoints.iter().map(|_| Stats::new()).collect(),
            series: series::Series::new(endpoints.clone(), Duration::from_secs(1)),
            endpoints,
            elapsed: Duration::ZERO,
            timeline: Vec::new(),
        }
    }

    pub fn overall(&self) -> Stats {
        let mut all = Stats::new();
        self.per_endpoint.iter().for_each(|s| all.merge(s));
        all
    }

    pub fn stats(&self, endpoint: &str) -> Option<Stats> {
        if endpoint == "*" {
            return Some(self.overall());
        }
        let i = self.endpoints.iter().position(|e| e == endpoint)?;
        Some(self.per_endpoint[i].clone())
    }

    pub fn throughput(&self) -> f64 {
        let secs = self.elapsed.as_secs_f64();
        if secs <= 0.0 {
            0.0
        } else {
            self.overall().counts.total() as f64 / secs
        }
    }
}

/// V2 + DEFLATE, base64: the form histograms travel in, so shards from many generators
/// merge into one exact result.
pub fn encode_histogram(h: &Histogram<u64>) -> String {
    use base64::Engine;
    let mut buf = Vec::new();
    V2DeflateSerializer::new()
        .serialize(h, &mut buf)
        .expect("serializing into memory cannot fail");
    base64::engine::general_purpose::STANDARD.encode(buf)
}

#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("histogram is not base64: {0}")]
    Base64(#[from] base64::DecodeError),
    #[error("histogram does not deserialize: {0}")]
    Hdr(String),
}

pub fn decode_histogram(s: &str) -> Result<Histogram<u64>, DecodeError> {
    use base64::Engine;
    let bytes = base64::engine::general_purpose::STANDARD.decode(s.trim())?;
    Deserializer::new()
        .deserialize(&mut bytes.as_slice())
        .map_err(|e| DecodeError::Hdr(format!("{e:?}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_merge_exactly() {
        let (mut a, mut b, mut whole) = (new_histogram(), new_histogram(), new_histogram());
        for v in 1..20_000u64 {
            let us = v * 37 % 500_000 + 1;
            if v % 2 == 0 {
                a.record(us).unwrap()
            } else {
                b.record(us).unwrap()
            }
            whole.record(us).unwrap();
        }
        let mut merged = decode_histogram(&encode_histogram(&a)).unwrap();
        merged
            .add(decode_histogram(&encode_histogram(&b)).unwrap())
            .unwrap();
        assert_eq!(merged, whole);
        assert_eq!(
            merged.value_at_quantile(0.99),
            whole.value_at_quantile(0.99)
        );
    }

    #[test]
    fn slices_rotate_and_windows_slide() {
        let t0 = Instant::now();
        let mut r = Recorder::new(t0, vec!["a".into()], Some(Duration::from_secs(3)));
        let mut windows = Vec::new();
        for s in 0..6u64 {
            let at = t0 + Duration::from_millis(s * 1000 + 500);
            windows.extend(r.record(0, at, Duration::from_millis(s + 1), Outcome::Ok));
        }
        // Slices 0..5 closed up to slice 4; windows of 3 slices end at 3, 4 and 5 s.
        let ends: Vec<u64> = windows.iter().map(|w| w.end.as_secs()).collect();
        assert_eq!(ends, vec![3, 4, 5]);
        assert_eq!(windows[0].per_endpoint[0].counts.ok, 3);
        let (m, last) = r.finish(t0 + Duration::from_millis(5_900));
        assert_eq!(m.per_endpoint[0].counts.ok, 6);
        assert_eq!(m.timeline.len(), 6);
        assert_eq!(last.len(), 1, "the partial last slice is judged too");
    }

    #[test]
    fn ring_memory_is_bounded() {
        let t0 = Instant::now();
        let mut r = Recorder::new(t0, vec!["a".into()], Some(Duration::from_secs(600)));
        assert_eq!(r.slice_len(), Duration::from_secs(60));
        for s in 0..100u64 {
            r.record(
                0,
                t0 + Duration::from_secs(s * 60),
                Duration::from_millis(1),
                Outcome::Ok,
            );
        }
        assert!(r.ring.len() <= MAX_RING && r.spare.len() <= 2);
    }

    #[test]
    fn status_classes() {
        assert_eq!(Outcome::from_status(201, &[]), Outcome::Ok);
        assert_eq!(Outcome::from_status(404, &[]), Outcome::Status4xx);
        assert_eq!(Outcome::from_status(404, &[404]), Outcome::Ok);
        assert_eq!(Outcome::from_status(200, &[201]), Outcome::Other);
        assert_eq!(Outcome::from_status(503, &[]), Outcome::Status5xx);
    }
}
