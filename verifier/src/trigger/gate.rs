//! Triggers inside a gate run. A scenario's `triggers:` section names a trigger file and,
//! optionally, a Prometheus (a URL, or `start` for a local one scraping the service on loopback).
//! Before load, [`Gate::prepare`] makes every bad definition exit 2: a file that does not parse,
//! a metric the service does not export, an expression Prometheus refuses, an expectation naming
//! an unknown trigger. During the load, [`Gate::watch`] evaluates every trigger every `every`
//! with the drill-scaled windows, over the verifier's own measurements and over Prometheus, and
//! once more at the end. [`Gate::results`] turns the tracks into rules: each trigger's analysis
//! in an ordinary run; in a drill with `expect`, whether each trigger fired within its detection
//! time for the faults that should fire it and stayed quiet for the others and the healthy phase.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::eval::{Analysis, Measurement, OwnMeasurements, OwnSlice, Phase, PreflightError};
use super::promql::{Scale, duration, num};
use super::{Condition, Loaded};
use crate::fault::timeline::FaultRecord;
use crate::load::Stop;
use crate::prom::Client;
use crate::prom::expo;
use crate::record::Stats;
use crate::rule::{RuleKind, RuleResult, Status};
use crate::scenario::{Dur, ScenarioError, locate};

/// The `triggers:` section of a scenario.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TriggerSpec {
    /// Trigger definitions, relative to the scenario file (e.g. `../dashboards/triggers.yaml`).
    pub file: PathBuf,
    /// A Prometheus that scrapes the service: its base URL, or `start` to run Debian's
    /// `prometheus` on loopback scraping the service every second for the length of the run.
    /// Without it triggers are evaluated over the verifier's own measurements only.
    #[serde(default)]
    pub prometheus: Option<String>,
    /// How often triggers are evaluated during the load.
    #[serde(default = "default_every")]
    pub every: Dur,
    /// Chaos-drill expectations by fault name; `healthy` is the time before the first fault.
    /// With any expectation, triggers are judged by them instead of by their own analysis.
    #[serde(default)]
    pub expect: BTreeMap<String, Expectation>,
}

fn default_every() -> Dur {
    Dur(Duration::from_secs(1))
}

/// What a fault (or the healthy phase) must do to the triggers.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Expectation {
    /// Triggers that must fire within `within` of the fault taking effect.
    #[serde(default)]
    pub fire: Vec<String>,
    /// Detection time: how long after the fault took effect a trigger of `fire` may take.
    #[serde(default)]
    pub within: Option<Dur>,
    /// Triggers that must not fire from the fault's start until `within` (or 5 s) after its end.
    #[serde(default)]
    pub quiet: Vec<String>,
}

pub const HEALTHY: &str = "healthy";
const QUIET_TAIL: Duration = Duration::from_secs(5);
/// Prometheus reads: as long as a measurement may take before it counts as inconclusive.
const PROM_TIMEOUT: Duration = Duration::from_secs(2);

/// Checks of the section that need only the scenario (fault names, shapes); trigger names are
/// checked against the file in [`Gate::prepare`].
pub fn validate_spec(
    spec: &TriggerSpec,
    faults: &[crate::fault::plan::Fault],
) -> Result<(), (Vec<String>, String)> {
    if spec.every.0 < Duration::from_millis(200) {
        return Err((vec!["every".into()], "must be at least 200ms".into()));
    }
    if let Some(p) = &spec.prometheus
        && p != "start"
        && !(p.starts_with("http://") || p.starts_with("https://"))
    {
        return Err((
            vec!["prometheus".into()],
            format!("`{p}` is neither `start` nor an http:// URL"),
        ));
    }
    for (name, e) in &spec.expect {
        let path = |f: &str| vec!["expect".into(), name.clone(), f.into()];
        if name != HEALTHY && !faults.iter().any(|f| &f.name == name) {
            let mut known: Vec<&str> = faults.iter().map(|f| f.name.as_str()).collect();
            known.push(HEALTHY);
            return Err((
                vec!["expect".into(), name.clone()],
                format!("no fault is named `{name}` (known: {})", known.join(", ")),
            ));
        }
        if name == HEALTHY && !e.fire.is_empty() {
            return Err((
                path("fire"),
                "nothing must fire in the healthy phase; list triggers under `quiet`".into(),
            ));
        }
        if !e.fire.is_empty() && e.within.is_none() {
            return Err((
                path("within"),
                "triggers that must fire need a detection time, e.g. `within: 20s`".into(),
            ));
        }
        if let Some(t) = e.fire.iter().find(|t| e.quiet.contains(t)) {
            return Err((
                path("quiet"),
                format!("`{t}` cannot both fire and stay quiet"),
            ));
        }
    }
    Ok(())
}

/// Why triggers could not be prepared: a definition error (exit 2) or an environment one.
#[derive(Debug, thiserror::Error)]
pub enum PrepareError {
    #[error("{0}")]
    Definition(#[from] ScenarioError),
    #[error("{0}")]
    Environment(String),
}

/// A `prometheus` process on loopback scraping the service; killed and its data removed on drop.
pub struct LocalPrometheus {
    pub url: String,
    child: std::process::Child,
    dir: PathBuf,
}

impl Drop for LocalPrometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl LocalPrometheus {
    /// Starts Prometheus scraping `target` (host:port) every second under job `job`; waits up to
    /// `budget` for it to be ready.
    pub async fn start(target: &str, job: &str, budget: Duration) -> Result<Self, String> {
        Self::start_program("prometheus", target, job, budget).await
    }

    /// [`LocalPrometheus::start`] with the executable named (tests use a stand-in).
    pub async fn start_program(
        program: &str,
        target: &str,
        job: &str,
        budget: Duration,
    ) -> Result<Self, String> {
        let dir = std::env::temp_dir().join(format!(
            "verifier-prometheus-{}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap_or_default()
                .subsec_nanos()
        ));
        std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        // JSON strings are YAML double-quoted scalars: any job name or target stays one value.
        let (job, target) = (
            serde_json::Value::from(job).to_string(),
            serde_json::Value::from(target).to_string(),
        );
        let config = format!(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\n\
             scrape_configs:\n  - job_name: {job}\n    static_configs:\n      - targets: [{target}]\n"
        );
        let cfg = dir.join("prometheus.yml");
        std::fs::write(&cfg, config).map_err(|e| format!("{}: {e}", cfg.display()))?;
        let log_path = dir.join("prometheus.log");
        let log =
            std::fs::File::create(&log_path).map_err(|e| format!("{}: {e}", log_path.display()))?;
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(|e| format!("no free loopback port: {e}"))?
            .port();
        let child = std::process::Command::new(program)
            .arg(format!("--config.file={}", cfg.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg("--log.level=warn")
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(log)
            .spawn()
            .map_err(|e| {
                let _ = std::fs::remove_dir_all(&dir);
                format!(
                    "cannot start `{program}` ({e}); install Debian's `prometheus` package or \
                     give `triggers.prometheus` a URL"
                )
            })?;
        let mut me = LocalPrometheus {
            url: format!("http://127.0.0.1:{port}"),
            child,
            dir,
        };
        let http = reqwest::Client::new();
        let deadline = Instant::now() + budget;
        loop {
            let ready = http
                .get(format!("{}/-/ready", me.url))
                .timeout(Duration::from_secs(1))
                .send()
                .await
                .is_ok_and(|r| r.status().is_success());
            if ready {
                return Ok(me);
            }
            // A Prometheus that exited (a taken port, a bad flag) will never be ready: say why now.
            if let Ok(Some(status)) = me.child.try_wait() {
                let text = std::fs::read_to_string(&log_path).unwrap_or_default();
                let last = text.lines().rev().find(|l| !l.trim().is_empty());
                return Err(format!(
                    "prometheus exited before it was ready ({status}){}",
                    last.map_or_else(String::new, |l| format!(": {l}"))
                ));
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "prometheus on {} was not ready within {budget:?}",
                    me.url
                ));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Kills the process (tests use it to take Prometheus away mid-run).
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

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

/// The job label the service's series carry, from the selector (`job="x"`), else the name.
fn job_of(loaded: &Loaded) -> String {
    loaded
        .defs
        .service
        .selector
        .0
        .iter()
        .find(|m| m.label == "job" && m.op == "=")
        .map_or_else(|| loaded.defs.service.name.clone(), |m| m.value.clone())
}

/// The trigger file `spec` names (relative to `scenario_file`), parsed, with every trigger the
/// scenario's `expect` lists found in it. What needs no service: `verifier validate` runs it too.
pub fn load_checked(spec: &TriggerSpec, scenario_file: &Path) -> Result<Loaded, ScenarioError> {
    let file = scenario_file
        .parent()
        .unwrap_or(Path::new("."))
        .join(&spec.file);
    let loaded = super::load_file(&file)?;
    let known: BTreeSet<&str> = loaded
        .defs
        .triggers
        .iter()
        .map(|t| t.name.as_str())
        .collect();
    let unknown = spec.expect.iter().find_map(|(fault, e)| {
        [("fire", &e.fire), ("quiet", &e.quiet)]
            .into_iter()
            .find_map(|(field, list)| {
                let i = list.iter().position(|n| !known.contains(n.as_str()))?;
                Some((fault, field, i, &list[i]))
            })
    });
    if let Some((fault, field, i, name)) = unknown {
        let text = crate::scenario::read_file(scenario_file)?;
        let path = [
            k("triggers"),
            k("expect"),
            k(fault),
            k(field),
            locate::Seg::Index(i),
        ];
        let (line, column) = locate::locate(&text, &path).unzip();
        return Err(ScenarioError {
            file: scenario_file.to_owned(),
            line,
            column,
            field: locate::display_path(&path),
            message: format!(
                "no trigger is named `{name}` in {} (known: {})",
                file.display(),
                known.iter().copied().collect::<Vec<_>>().join(", ")
            ),
        });
    }
    Ok(loaded)
}

impl Gate {
    /// Loads and checks the triggers of `spec` (from `scenario_file`) against the service at
    /// `target` (a base URL whose `/metrics` is read).
    pub async fn prepare(
        spec: &TriggerSpec,
        scenario_file: &Path,
        target: &str,
    ) -> Result<Gate, PrepareError> {
        let loaded = load_checked(spec, scenario_file)?;
        let metrics_url = format!("{}/metrics", target.trim_end_matches('/'));
        let http = reqwest::Client::new();
        let exposition = expo::scrape(&http, &metrics_url, Duration::from_secs(5))
            .await
            .map_err(|e| {
                PrepareError::Environment(format!(
                    "the service's metrics, needed to check the triggers, cannot be read: {e}"
                ))
            })?;
        let exported: BTreeSet<String> = exposition.keys().cloned().collect();
        loaded.check_exported(&exported)?;

        let (prom, local) = match spec.prometheus.as_deref() {
            None => (None, None),
            Some(p) => {
                let (url, local) = if p == "start" {
                    let host = target
                        .trim_start_matches("http://")
                        .trim_end_matches('/')
                        .to_owned();
                    let lp =
                        LocalPrometheus::start(&host, &job_of(&loaded), Duration::from_secs(30))
                            .await
                            .map_err(PrepareError::Environment)?;
                    (lp.url.clone(), Some(Arc::new(Mutex::new(lp))))
                } else {
                    (p.to_owned(), None)
                };
                let client = Client::new(url, PROM_TIMEOUT)
                    .map_err(|e| PrepareError::Environment(format!("Prometheus client: {e}")))?;
                preflight(&loaded, &client).await?;
                (Some(client), local)
            }
        };
        Ok(Gate {
            loaded,
            spec: spec.clone(),
            metrics_url,
            prom,
            local,
        })
    }

    /// Evaluates every trigger every `every` from `origin` until `done`, and once more after.
    /// `totals` gives the run's cumulative measurements so far (all endpoints).
    pub fn watch(
        self: &Arc<Self>,
        origin: Instant,
        totals: impl Fn() -> Option<Stats> + Send + 'static,
        done: Stop,
    ) -> tokio::task::JoinHandle<Tracks> {
        let gate = self.clone();
        tokio::spawn(async move {
            let mut w = Watcher::new(&gate);
            let mut next = tokio::time::Instant::from_std(origin) + gate.spec.every.0;
            loop {
                tokio::select! {
                    () = done.stopped() => break,
                    () = tokio::time::sleep_until(next) => {}
                }
                next += gate.spec.every.0;
                w.step(&gate, origin.elapsed(), totals(), false).await;
            }
            // The end of the run: one last evaluation over everything measured.
            w.step(&gate, origin.elapsed(), totals(), true).await;
            w.tracks
        })
    }

    /// Sources the gate evaluates, in report order.
    fn sources(&self) -> Vec<&'static str> {
        let mut s = vec!["own"];
        if self.prom.is_some() {
            s.push("prometheus");
        }
        s
    }

    /// Rules and the report section from the tracks and the drill's fault records.
    pub fn results(
        &self,
        tracks: &Tracks,
        faults: &[FaultRecord],
    ) -> (Vec<RuleResult>, TriggerReport) {
        results(self, tracks, faults)
    }
}

/// Every expression of every trigger must be accepted by Prometheus (exit 2 otherwise), and every
/// metric the triggers read must have a series there once it has scraped the service.
async fn preflight(loaded: &Loaded, client: &Client) -> Result<(), PrepareError> {
    match super::eval::preflight(&loaded.defs, client, Scale::Drill).await {
        Ok(()) => {}
        Err(PreflightError::Definition(d)) => {
            return Err(PrepareError::Definition(loaded.bad_definition(d)));
        }
        Err(PreflightError::Unavailable(e)) => {
            return Err(PrepareError::Environment(e.to_string()));
        }
    }
    // The service's /metrics was checked directly; what is left is whether this Prometheus
    // scrapes it under the file's selector. A fresh one has not scraped yet: give it a few
    // scrape intervals.
    let up = format!(
        "up{}",
        super::promql::selector(&[&loaded.defs.service.selector])
    );
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let samples = client
            .query(&up, None)
            .await
            .map_err(|e| PrepareError::Environment(e.to_string()))?;
        if samples.iter().any(|s| s.value == 1.0) {
            return Ok(());
        }
        if Instant::now() > deadline {
            let path = [k("service"), k("selector")];
            let (line, column) = locate::locate(&loaded.text, &path).unzip();
            return Err(PrepareError::Definition(ScenarioError {
                file: loaded.file.clone(),
                line,
                column,
                field: locate::display_path(&path),
                message: format!(
                    "Prometheus at {} has no healthy `{up}` series: it does not scrape the \
                     service under this selector",
                    client.base_url()
                ),
            }));
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// What one evaluation said about one trigger, with the `for` and limits applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum PointState {
    /// The condition does not hold.
    Ok,
    /// The condition holds, but not yet for `for`.
    Pending,
    /// The condition has held for `for`: the alert fires.
    Firing,
    /// Nothing could be measured (no traffic, too short a run, Prometheus away).
    Unknown,
}

/// One trigger over one source through the run.
#[derive(Debug, Clone)]
pub struct Track {
    pub trigger: String,
    pub source: &'static str,
    pub analysis: Analysis,
    /// (seconds from the start of load, state) per evaluation.
    pub points: Vec<(Duration, PointState)>,
    /// A few failed or inconclusive measurements, for evidence.
    pub notes: Vec<String>,
    /// Why the trigger was never evaluated (a run shorter than its window).
    pub never: Option<String>,
}

impl Track {
    /// The trigger's result: its analysis, or inconclusive when it was never evaluated.
    pub fn status(&self) -> Status {
        if self.points.is_empty() {
            Status::Inconclusive
        } else {
            self.analysis.phase().into()
        }
    }
}

/// The longest window a trigger reads, scaled for a run; zero for instant gauges.
fn warmup(defs: &super::Definitions, t: &super::Trigger) -> Duration {
    defs.windows(t)
        .into_iter()
        .map(|w| defs.scaled(w))
        .max()
        .unwrap_or_default()
}

const MAX_NOTES: usize = 6;

impl Track {
    fn record(&mut self, at: Duration, m: Measurement) {
        let failed = self.analysis.failed;
        let phase = m.phase;
        if phase != Phase::Successful && self.notes.len() < MAX_NOTES {
            self.notes.push(format!(
                "at {:.1}s: {} {}",
                at.as_secs_f64(),
                match phase {
                    Phase::Failed => "breached:",
                    _ => "inconclusive:",
                },
                m.detail
            ));
        }
        self.analysis.record(at, m);
        let state = match phase {
            Phase::Successful => PointState::Ok,
            Phase::Inconclusive => PointState::Unknown,
            Phase::Failed if self.analysis.failed > failed => PointState::Firing,
            Phase::Failed => PointState::Pending,
        };
        self.points.push((at, state));
    }

    /// What the evaluations in `[from, to]` say. Only an onset (firing after not firing) is
    /// the span's own: an alert still firing from before it began belongs to what came before.
    fn in_span(&self, from: Duration, to: Duration) -> SpanView {
        let firing = |i: usize| self.points[i].1 == PointState::Firing;
        let idx: Vec<usize> = (0..self.points.len())
            .filter(|&i| self.points[i].0 >= from && self.points[i].0 <= to)
            .collect();
        let mut v = SpanView {
            onset: None,
            firing_since: None,
            cleared: false,
            all_unknown: idx.iter().all(|&i| self.points[i].1 == PointState::Unknown),
            evaluations: idx.len(),
        };
        if let Some(&first) = idx.first()
            && firing(first)
            && first > 0
            && firing(first - 1)
        {
            let mut start = first;
            while start > 0 && firing(start - 1) {
                start -= 1;
            }
            v.firing_since = Some(self.points[start].0);
        }
        for &i in &idx {
            let onset = firing(i) && (i == 0 || !firing(i - 1));
            if onset && !(v.firing_since.is_some() && i == idx[0]) {
                v.onset = Some(self.points[i].0);
                break;
            }
            if matches!(self.points[i].1, PointState::Ok | PointState::Pending) {
                v.cleared = true;
            }
        }
        v
    }
}

struct SpanView {
    /// The first evaluation at which the alert started firing inside the span.
    onset: Option<Duration>,
    /// Already firing when the span began, since this time.
    firing_since: Option<Duration>,
    /// A conclusive not-firing evaluation came before any onset.
    cleared: bool,
    all_unknown: bool,
    evaluations: usize,
}

/// All tracks of a run.
#[derive(Debug, Clone, Default)]
pub struct Tracks(pub Vec<Track>);

struct Watcher {
    own: OwnMeasurements,
    last: Option<(Duration, Stats)>,
    http: reqwest::Client,
    tracks: Tracks,
}

impl Watcher {
    fn new(gate: &Gate) -> Self {
        let mut tracks = Vec::new();
        for t in &gate.loaded.defs.triggers {
            for source in gate.sources() {
                tracks.push(Track {
                    trigger: t.name.clone(),
                    source,
                    analysis: Analysis::new(&gate.loaded.defs, t, Scale::Drill),
                    points: Vec::new(),
                    notes: Vec::new(),
                    never: None,
                });
            }
        }
        Watcher {
            own: OwnMeasurements::default(),
            last: None,
            http: reqwest::Client::new(),
            tracks: Tracks(tracks),
        }
    }

    async fn step(&mut self, gate: &Gate, at: Duration, totals: Option<Stats>, last: bool) {
        let defs = &gate.loaded.defs;
        // The slice since the last evaluation: cumulative totals minus the previous ones.
        let (start, prev) = match self.last.take() {
            Some((t, s)) => (t, Some(s)),
            None => (Duration::ZERO, None),
        };
        let now_totals = totals.unwrap_or_default();
        let mut delta = now_totals.clone();
        if let Some(p) = &prev {
            let c = &mut delta.counts;
            for (x, y) in [
                (&mut c.ok, p.counts.ok),
                (&mut c.timeout, p.counts.timeout),
                (&mut c.connect, p.counts.connect),
                (&mut c.reset, p.counts.reset),
                (&mut c.status_4xx, p.counts.status_4xx),
                (&mut c.status_5xx, p.counts.status_5xx),
                (&mut c.other, p.counts.other),
            ] {
                *x = x.saturating_sub(y);
            }
            let _ = delta.hist.subtract(&p.hist);
        }
        let mut slice = OwnSlice::from_stats(start, at.saturating_sub(start), &delta);
        self.last = Some((at, now_totals));
        // Saturation gauges come from the service's own /metrics at the end of the slice.
        let gauges: Vec<(&String, super::Aggregate)> = defs
            .triggers
            .iter()
            .filter_map(|t| match &t.condition {
                Condition::Saturation {
                    gauge, aggregate, ..
                } => Some((gauge, *aggregate)),
                _ => None,
            })
            .collect();
        if !gauges.is_empty()
            && let Ok(e) = expo::scrape(&self.http, &gate.metrics_url, PROM_TIMEOUT).await
        {
            for (g, agg) in gauges {
                if let Some(v) = agg.of(&expo::gauge_values(&e, g)) {
                    slice.gauges.insert(g.clone(), v);
                }
            }
        }
        self.own.push(slice);
        // Older slices than the longest scaled window are never read again.
        let keep = defs
            .triggers
            .iter()
            .flat_map(|t| defs.windows(t))
            .map(|w| defs.scaled(w))
            .max()
            .unwrap_or_default()
            + gate.spec.every.0 * 2;
        while self
            .own
            .slices
            .first()
            .is_some_and(|s| s.start + s.len + keep < at)
        {
            self.own.slices.remove(0);
        }
        for track in &mut self.tracks.0 {
            let Some(t) = defs.triggers.iter().find(|t| t.name == track.trigger) else {
                continue;
            };
            // Like Argo Rollouts' initial delay: a window that does not yet hold a full span of
            // the run measures nothing (Prometheus would extrapolate a rate from a fraction).
            let warmup = warmup(defs, t);
            if at + Duration::from_millis(100) < warmup {
                if last && track.points.is_empty() {
                    track.never = Some(format!(
                        "never evaluated: the load lasted {:.0} s, the trigger's longest window (scaled) is {}",
                        at.as_secs_f64(),
                        duration(warmup)
                    ));
                }
                continue;
            }
            let m = match (track.source, &gate.prom) {
                ("prometheus", Some(client)) => {
                    match super::eval::evaluate_prom(defs, t, client, None, Scale::Drill).await {
                        Ok(m) => m,
                        Err(bad) => Measurement {
                            phase: Phase::Inconclusive,
                            value: None,
                            detail: bad.to_string(),
                        },
                    }
                }
                _ => super::eval::evaluate_own(defs, t, &self.own, Scale::Drill),
            };
            track.record(at, m);
        }
    }
}

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
    /// Triggers no fault of the drill fired (in any source).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub untested: Vec<String>,
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

fn results(
    gate: &Gate,
    tracks: &Tracks,
    faults: &[FaultRecord],
) -> (Vec<RuleResult>, TriggerReport) {
    let defs = &gate.loaded.defs;
    let mut rules = Vec::new();
    let suffix = |source: &str| {
        if source == "own" {
            String::new()
        } else {
            format!(".{source}")
        }
    };
    let queries = |name: &str, source: &str| -> Vec<String> {
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
    };
    let judged_by_expectations = !gate.spec.expect.is_empty();
    let mut report_tracks = Vec::new();
    for tr in &tracks.0 {
        let t = defs.triggers.iter().find(|t| t.name == tr.trigger);
        let status = tr.status();
        let windows = t.map(|t| defs.scaling_note(t)).unwrap_or_default();
        report_tracks.push(TriggerTrack {
            name: tr.trigger.clone(),
            source: tr.source.to_owned(),
            windows: windows.clone(),
            result: status,
            fired_at_s: tr
                .points
                .iter()
                .find(|(_, s)| *s == PointState::Firing)
                .map(|(at, _)| secs(*at)),
            firing_s: firing_spans(&tr.points),
            evaluations: tr.points.len() as u32,
            inconclusive: tr.analysis.inconclusive,
        });
        if judged_by_expectations {
            continue;
        }
        let mut evidence = queries(&tr.trigger, tr.source);
        evidence.extend(tr.notes.iter().cloned());
        evidence.extend(tr.never.iter().cloned());
        rules.push(RuleResult {
            id: format!("trigger.{}{}", tr.trigger, suffix(tr.source)),
            kind: RuleKind::Trigger,
            scope: format!(
                "every {} over {}",
                duration(gate.spec.every.0),
                source_words(tr.source)
            ),
            endpoint: None,
            budget: t.map_or_else(String::new, |t| {
                format!(
                    "does not fire ({}; failure limit {}, inconclusive limit {})",
                    t.summary, t.failure_limit, t.inconclusive_limit
                )
            }),
            observed: format!(
                "{} ok, {} pending, {} firing, {} inconclusive; last: {}",
                tr.analysis.successful,
                tr.analysis.pending,
                tr.analysis.failed,
                tr.analysis.inconclusive,
                tr.analysis
                    .last
                    .as_ref()
                    .and_then(|m| m.value)
                    .map_or_else(|| "-".to_owned(), num)
            ),
            status,
            detail: format!(
                "{windows}{}",
                tr.analysis
                    .last
                    .as_ref()
                    .map(|m| format!("; last measurement: {}", m.detail))
                    .unwrap_or_default()
            ),
            evidence,
        });
    }

    let mut detections = Vec::new();
    for (fault, exp) in &gate.spec.expect {
        // The span the expectation covers.
        let span = if fault == HEALTHY {
            let end = faults
                .iter()
                .map(|f| f.applied_at.unwrap_or(f.planned_start))
                .min()
                .unwrap_or(Duration::MAX);
            Ok((Duration::ZERO, end, None))
        } else {
            match faults.iter().find(|f| &f.name == fault) {
                Some(FaultRecord {
                    applied_at: Some(a),
                    reverted_at,
                    planned_end,
                    ..
                }) => Ok((*a, reverted_at.unwrap_or(*planned_end), Some(*a))),
                Some(r) => Err(r
                    .error
                    .clone()
                    .unwrap_or_else(|| "the fault was never applied".into())),
                None => Err("the fault did not run".into()),
            }
        };
        let within = exp.within.map(|d| d.0);
        for (expected, list) in [("fire", &exp.fire), ("quiet", &exp.quiet)] {
            for name in list {
                for tr in tracks.0.iter().filter(|t| &t.trigger == name) {
                    let id = format!("trigger.{fault}.{expected}.{name}{}", suffix(tr.source));
                    let (status, observed, detected, mut evidence) = match &span {
                        Err(why) => (Status::Inconclusive, why.clone(), None, Vec::new()),
                        Ok((from, to, applied)) => {
                            let until = if expected == "fire" {
                                *from + within.unwrap_or_default()
                            } else if fault == HEALTHY {
                                *to
                            } else {
                                *to + within.unwrap_or(QUIET_TAIL)
                            };
                            let view = tr.in_span(*from, until);
                            let (first, unknown, n) =
                                (view.onset, view.all_unknown, view.evaluations);
                            let after = first.map(|f| f.saturating_sub(applied.unwrap_or(*from)));
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
                                ("fire", None) => {
                                    (Status::Fail, format!("did not fire in {span_words}"))
                                }
                                (_, Some(at)) => {
                                    (Status::Fail, format!("fired at {:.1} s", at.as_secs_f64()))
                                }
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
                                        None => {
                                            format!("quiet over {n} evaluations in {span_words}")
                                        }
                                    },
                                ),
                            };
                            (status, observed, after, Vec::new())
                        }
                    };
                    evidence.extend(queries(name, tr.source));
                    evidence.extend(tr.notes.iter().cloned());
                    rules.push(RuleResult {
                        id,
                        kind: RuleKind::Trigger,
                        scope: format!(
                            "{} over {}",
                            if fault == HEALTHY {
                                "before the first fault".to_owned()
                            } else {
                                format!("fault {fault}")
                            },
                            source_words(tr.source)
                        ),
                        endpoint: None,
                        budget: match (expected, within) {
                            ("fire", Some(w)) => format!("fires within {}", duration(w)),
                            _ => "stays quiet".to_owned(),
                        },
                        observed,
                        status,
                        detail: defs
                            .triggers
                            .iter()
                            .find(|t| &t.name == name)
                            .map(|t| defs.scaling_note(t))
                            .unwrap_or_default(),
                        evidence,
                    });
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

    // A trigger no fault fired is untested: the drill cannot vouch for it.
    let mut untested = Vec::new();
    if !faults.is_empty() {
        for t in &defs.triggers {
            let fired_by_some_fault = faults.iter().any(|f| {
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
                    .filter(|tr| tr.trigger == t.name)
                    .any(|tr| tr.in_span(a, end + tail).onset.is_some())
            });
            if !fired_by_some_fault {
                untested.push(t.name.clone());
            }
        }
    }
    let report = TriggerReport {
        file: gate.loaded.file.display().to_string(),
        prometheus: gate.prom.as_ref().map(|c| c.base_url().to_owned()),
        every_s: gate.spec.every.0.as_secs_f64(),
        triggers: report_tracks,
        detections,
        untested,
    };
    (rules, report)
}

fn source_words(source: &str) -> &'static str {
    if source == "prometheus" {
        "PromQL"
    } else {
        "the verifier's measurements"
    }
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
    let _ = writeln!(o, "| trigger | source | result | first fired | firing |");
    let _ = writeln!(o, "|---|---|---|---:|---|");
    for t in &r.triggers {
        let _ = writeln!(
            o,
            "| `{}` | {} | {} | {} | {} |",
            t.name,
            t.source,
            t.result.as_str(),
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
            "\nUntested (no fault fired them): {}",
            r.untested
                .iter()
                .map(|n| format!("`{n}`"))
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
            loaded: super::super::parse(Path::new("t.yaml"), FILE).unwrap(),
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
        assert!(report.untested.is_empty(), "{:?}", report.untested);

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
