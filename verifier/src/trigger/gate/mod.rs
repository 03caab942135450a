//! Triggers inside a gate run. A scenario's `triggers:` section names a trigger file and,
//! optionally, a Prometheus (a URL, or `start` for a local one scraping the service on loopback).
//! Before load, [`Gate::prepare`] makes every bad definition exit 2: a file that does not parse,
//! a metric the service does not export, an expression Prometheus refuses, an expectation naming
//! an unknown trigger. During the load, [`Gate::watch`] evaluates every trigger every `every`
//! with the drill-scaled windows, over the verifier's own measurements and over Prometheus, and
//! once more at the end. [`Gate::results`] turns the tracks into rules: each trigger's analysis
//! in an ordinary run; in a drill with `expect`, whether each trigger fired within its detection
//! time for the faults that should fire it and stayed quiet for the others and the healthy phase.
//!
//! By stage: `spec` (the section, its validation and the trigger file it names),
//! `prometheus` (a local Prometheus for `prometheus: start`), `watch` (preparing and
//! evaluating during the load), `track` (one trigger's evaluations over the run), `judge`
//! (tracks and fault records into rules) and `report` (the report section).

mod judge;
mod prometheus;
mod report;
mod spec;
mod track;
mod watch;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::Loaded;
use crate::prom::Client;
use crate::scenario::locate;

pub use prometheus::LocalPrometheus;
pub use report::{Detection, TriggerReport, TriggerTrack, markdown};
pub use spec::{Expectation, TriggerSpec, load_checked, validate_spec};
pub use track::{PointState, Track, Tracks};
pub use watch::PrepareError;

/// The name under `expect` of the time before the first fault.
pub const HEALTHY: &str = "healthy";
/// How long after a fault's end its `quiet` triggers must stay quiet when it names no `within`.
const QUIET_TAIL: Duration = Duration::from_secs(5);
/// Prometheus reads: as long as a measurement may take before it counts as inconclusive.
const PROM_TIMEOUT: Duration = Duration::from_secs(2);

/// Triggers ready to be watched during a run.
pub struct Gate {
    pub loaded: Loaded,
    spec: TriggerSpec,
    metrics_url: String,
    prom: Option<Client>,
    /// Kept alive for the run; `Arc<Mutex<..>>` so a test can kill it mid-run.
    pub local: Option<Arc<Mutex<LocalPrometheus>>>,
}

fn k(s: &str) -> locate::Seg {
    locate::Seg::Key(s.to_owned())
}
