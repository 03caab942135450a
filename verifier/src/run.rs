//! One gate run, start to end: environment → plan → preflight → load (with the fault
//! timeline beside it) → measurements and read-backs → checks → verdict → reports →
//! environment down. Every stage is bounded in time.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use crate::check::{self, WindowWatch};
use crate::contract::conformance::Conformance;
use crate::drill::{self, Drill};
use crate::effects::{AckLog, AckTap};
use crate::env::EnvironmentSpec;
use crate::exit_codes;
use crate::load::{self, Collector, Stop, StopReason};
use crate::plan::PlanOptions;
use crate::record::Recorder;
use crate::report::{self, GeneratorReport, Report, RunFacts, progress};
use crate::scenario::{Load, ScenarioError};
use crate::shard::{Shard, ShardReport};
use crate::steady::Phases;
use crate::verdict::Verdict;

pub struct RunOptions {
    pub scenario: PathBuf,
    pub target: Option<String>,
    pub baseline_target: Option<String>,
    pub report_dir: PathBuf,
    pub progress: progress::Mode,
    /// Run one shard of the scenario (`--shard I/N --start-at T`); `None` runs all of it.
    pub shard: Option<ShardRun>,
}

/// One shard of a run split over many generators.
#[derive(Debug, Clone, Copy)]
pub struct ShardRun {
    pub shard: Shard,
    /// Every shard starts its schedule at this instant, so that windows align.
    pub start_at: SystemTime,
    /// Beginning later than this after `start_at` makes the shard inconclusive.
    pub tolerance: Duration,
}

pub struct RunOutput {
    pub report: Report,
    pub files: Vec<PathBuf>,
}

/// Why a run produced no verdict. Each maps to one exit code; each keeps its cause.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The scenario, or what it refers to, is wrong: the plan refused it.
    #[error("{0}")]
    Scenario(#[from] ScenarioError),
    /// The environment's address for the service could not be planned against.
    #[error("{0}")]
    Retarget(ScenarioError),
    #[error("{0}")]
    Unreachable(String),
    #[error("load engine failed: {0}")]
    Engine(String),
    /// The report directory cannot be claimed: unwritable, or another run writes into it.
    #[error("{0}")]
    ReportDir(#[from] report::files::DirError),
    #[error("cannot write reports into {dir}: {source}")]
    Report {
        dir: String,
        #[source]
        source: std::io::Error,
    },
    /// A functional check's probe could not be made as the scenario asks.
    #[error("{0}")]
    Functional(#[from] crate::functional::FunctionalError),
    #[error("{file}: security pass: {message}")]
    Security { file: String, message: String },
    #[error("{0}")]
    Triggers(#[from] crate::trigger::gate::PrepareError),
    #[error("the environment could not be brought up: {0}")]
    Environment(#[source] crate::env::EnvError),
    /// The scenario cannot be split as `--shard` asks.
    #[error("{0}")]
    Shard(String),
}

impl RunError {
    pub fn exit_code(&self) -> u8 {
        use crate::trigger::gate::PrepareError;
        match self {
            RunError::Scenario(_)
            | RunError::Retarget(_)
            | RunError::Functional(_)
            | RunError::Security { .. }
            | RunError::Triggers(PrepareError::Definition(_))
            | RunError::Shard(_) => exit_codes::USAGE,
            RunError::ReportDir(e) => e.exit_code(),
            RunError::Unreachable(_)
            | RunError::Engine(_)
            | RunError::Report { .. }
            | RunError::Triggers(PrepareError::Environment(_))
            | RunError::Environment(_) => exit_codes::ENVIRONMENT,
        }
    }
}

/// Extra time past the plan before the run is cut off regardless of the engines.
const GRACE: Duration = Duration::from_secs(30);

pub async fn run(
    opts: &RunOptions,
    stop: Stop,
    getenv: &dyn Fn(&str) -> Option<String>,
) -> Result<RunOutput, RunError> {
    // Everything that can be refused is refused before anything starts: the plan, and a report
    // directory this run can own and write.
    let plan = crate::plan::build(
        &opts.scenario,
        PlanOptions {
            target: opts.target.as_deref(),
            baseline_target: opts.baseline_target.as_deref(),
        },
        getenv,
    )?;
    if let Some(s) = &opts.shard {
        check_shardable(&plan, s.shard)?;
    }
    let dir = report::files::ReportDir::claim(&opts.report_dir)?;
    for n in &plan.notes {
        eprintln!("verifier: {n}");
    }
    let mut drill = if matches!(plan.environment, EnvironmentSpec::None) {
        None
    } else {
        eprintln!("verifier: bringing the environment up");
        let baseline = baseline_service(&plan);
        let up = Drill::up(
            &plan.environment,
            plan.scenario.faults.clone(),
            baseline.as_ref(),
        );
        // Ctrl-C while containers start: the half-started ones are removed as the future drops.
        tokio::select! {
            r = up => Some(r.map_err(RunError::Environment)?),
            () = stop.stopped() => {
                // Nothing was measured and nothing failed: the report says so, partial.
                let report = interrupted_before_load(&plan);
                let files = dir.write_all(&report).map_err(|source| RunError::Report {
                    dir: opts.report_dir.display().to_string(),
                    source,
                })?;
                return Ok(RunOutput { report, files });
            }
        }
    };
    let result = run_in(opts, &plan, stop, getenv, drill.as_mut()).await;
    let problems = match drill {
        Some(d) => d.down().await,
        None => Vec::new(),
    };
    for p in &problems {
        eprintln!("verifier: {p}");
    }
    let mut report = result?;
    report.environment_problems = problems;
    let files = dir.write_all(&report).map_err(|source| RunError::Report {
        dir: opts.report_dir.display().to_string(),
        source,
    })?;
    Ok(RunOutput { report, files })
}

/// What a shard cannot be: one of several generators bringing up its own copy of the service,
/// half of a paired comparison, or a closed-model shard left with no users.
fn check_shardable(plan: &crate::plan::Plan, shard: Shard) -> Result<(), RunError> {
    let file = plan.file.display();
    if matches!(plan.environment, EnvironmentSpec::Testcontainers(_)) {
        return Err(RunError::Shard(format!(
            "{file}: --shard {shard}: the shards of a run share one target, and a `testcontainers` \
             environment starts a service per generator; use `environment: external` or none, \
             with --target"
        )));
    }
    if plan.compare.is_some() {
        return Err(RunError::Shard(format!(
            "{file}: --shard {shard}: a paired comparison (`compare:` or --baseline-target) runs on \
             one generator; shard the candidate and the baseline as two runs"
        )));
    }
    if let Load::Closed(c) = &plan.load.load {
        let most = c
            .phases
            .iter()
            .filter_map(|p| match p {
                crate::scenario::UserPhase::Ramp { users, .. }
                | crate::scenario::UserPhase::Spike { users, .. } => Some(*users),
                crate::scenario::UserPhase::Steady { .. } => None,
            })
            .max()
            .unwrap_or(0);
        if shard.users(most) == 0 {
            return Err(RunError::Shard(format!(
                "{file}: --shard {shard}: the closed model's largest phase has {most} users, \
                 fewer than {} shards: this shard would run none",
                shard.count
            )));
        }
    }
    Ok(())
}

/// Waits for `start_at` (or a stop signal); returns the wall-clock start, the load's origin and
/// how late it began. A late shard's origin is put back to `start_at`, so its windows and
/// schedule still line up with the other shards' (the arrivals it missed are dispatched late and
/// say so).
async fn wait_for_start(s: &ShardRun, stop: &Stop) -> (SystemTime, Instant, Duration) {
    // Bounded: `start_at` was checked to lie at most `shard::MAX_LEAD` ahead.
    loop {
        let now = SystemTime::now();
        match s.start_at.duration_since(now) {
            Ok(ahead) if !ahead.is_zero() && !stop.is_stopped() => {
                tokio::select! {
                    () = tokio::time::sleep(ahead.min(Duration::from_millis(20))) => {}
                    () = stop.stopped() => {}
                }
            }
            _ => {
                let late = now.duration_since(s.start_at).unwrap_or_default();
                let origin = Instant::now()
                    .checked_sub(late)
                    .unwrap_or_else(Instant::now);
                return (s.start_at, origin, late);
            }
        }
    }
}

/// The shard's start, judged: late beyond the tolerance, its windows do not line up with the
/// other shards' and the merged result cannot vouch for them.
fn start_rule(s: &ShardRun, late: Duration) -> crate::rule::RuleResult {
    use crate::rule::{RuleKind, RuleResult, Status, fmt_us};
    let us = |d: Duration| u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
    let on_time = late <= s.tolerance;
    RuleResult::new(
        "shard.start",
        RuleKind::Generator,
        if on_time {
            Status::Pass
        } else {
            Status::Inconclusive
        },
    )
    .budget(format!(
        "starts within {} of --start-at",
        fmt_us(us(s.tolerance))
    ))
    .observed(format!("{} late", fmt_us(us(late))))
    .detail(if on_time {
        format!("shard {} started on time", s.shard)
    } else {
        format!(
            "shard {} started {} after --start-at, beyond the tolerance: its windows do not line \
             up with the other shards'",
            s.shard,
            fmt_us(us(late))
        )
    })
}

/// A paired comparison's baseline service: the candidate's service spec with the baseline's
/// command, and its environment over the candidate's.
fn baseline_service(plan: &crate::plan::Plan) -> Option<crate::env::ServiceSpec> {
    let EnvironmentSpec::Testcontainers(c) = &plan.environment else {
        return None;
    };
    let side = plan.compare.as_ref()?.spec.baseline.service.as_ref()?;
    let mut spec = c.service.clone();
    spec.command = side.command.clone();
    spec.env.extend(side.env.clone());
    Some(spec)
}

/// The report of a run interrupted before its load began: no measurements, no rules, an
/// inconclusive verdict marked partial.
fn interrupted_before_load(plan: &crate::plan::Plan) -> Report {
    let measurements = crate::record::Measurements::empty(plan.load.endpoints.clone());
    let mut verdict = Verdict::decide(Vec::new(), true, None);
    verdict.lead_with("interrupted while the environment was coming up; no load was sent");
    let model = match &plan.load.load {
        Load::Open(_) => "open",
        Load::Closed(_) => "closed",
    };
    let engine = load::EngineReport {
        model: model.into(),
        ..Default::default()
    };
    let file = plan.file.display().to_string();
    let facts = RunFacts {
        scenario: &plan.load.name,
        scenario_file: &file,
        target: &plan.load.target.base,
        started_at: SystemTime::now(),
        planned: plan.load.planned,
    };
    Report::new(
        &facts,
        &measurements,
        verdict,
        GeneratorReport::new(&engine, load::cpu::peak_rss_bytes()),
    )
}

/// The run inside its environment; returns the report for `run` to complete and write.
async fn run_in(
    opts: &RunOptions,
    planned: &crate::plan::Plan,
    stop: Stop,
    getenv: &dyn Fn(&str) -> Option<String>,
    mut drill: Option<&mut Drill>,
) -> Result<Report, RunError> {
    let scenario = &planned.scenario;
    let file = planned.file.display().to_string();
    // What happens once per run happens on the leader, shard 0 (or the one generator).
    let leader = opts.shard.is_none_or(|s| s.shard.is_leader());
    let env_target = drill.as_ref().and_then(|d| d.env.target.clone());
    let mut plan = match env_target.filter(|_| planned.target_from_environment) {
        Some(t) => planned.load_for(&t, getenv).map_err(|e| {
            RunError::Retarget(ScenarioError {
                file: planned.file.clone(),
                line: None,
                column: None,
                field: crate::scenario::locate::display_path(&e.path),
                message: e.message,
            })
        })?,
        None => planned.load.clone(),
    };
    if let (Some(s), Load::Closed(c)) = (&opts.shard, &plan.load) {
        plan.load = Load::Closed(crate::scenario::ClosedLoad {
            phases: s.shard.closed_phases(&c.phases),
        });
    }
    let acks = scenario.invariants.as_ref().filter(|_| leader).map(|inv| {
        let log = Arc::new(AckLog::default());
        let tap: Arc<dyn crate::load::EffectTap> = Arc::new(AckTap {
            key: inv.key.clone(),
            id_pointer: inv.id_pointer.clone(),
            log: log.clone(),
        });
        let endpoint = plan.endpoints.iter().position(|e| *e == inv.step);
        for step in plan.journeys.iter_mut().flat_map(|j| j.steps.iter_mut()) {
            if Some(step.endpoint) == endpoint {
                step.effect = Some(tap.clone());
            }
        }
        log
    });
    let contract = scenario.openapi.clone();
    // Responses of the load and of every probe are judged against the contract.
    let conformance = contract
        .as_ref()
        .filter(|_| leader)
        .zip(scenario.contract.as_ref())
        .map(|(c, spec)| {
            let conf = Conformance::start(c.clone(), spec.conformance.clone());
            conf.attach(&mut plan);
            conf
        });
    let minter = planned.minter.clone();
    load::preflight(&plan.target, plan.connect_timeout)
        .await
        .map_err(RunError::Unreachable)?;
    // A paired comparison: the baseline's requests, aimed where it runs, and it answers.
    let baseline = match &planned.compare {
        Some(c) => {
            let b = if c.baseline_from_environment {
                let t = drill
                    .as_ref()
                    .and_then(|d| d.env.baseline_target.clone())
                    .ok_or_else(|| {
                        RunError::Engine("the environment started no baseline service".into())
                    })?;
                planned.load_for(&t, getenv).map_err(|e| {
                    RunError::Retarget(ScenarioError {
                        file: planned.file.clone(),
                        line: None,
                        column: None,
                        field: crate::scenario::locate::display_path(&e.path),
                        message: e.message,
                    })
                })?
            } else {
                c.baseline.clone()
            };
            load::preflight(&b.target, b.connect_timeout)
                .await
                .map_err(|e| RunError::Unreachable(format!("the baseline: {e}")))?;
            Some((c, Arc::new(b)))
        }
        None => None,
    };
    // Bad trigger definitions are exit 2 here, before any load.
    let gate = match scenario.triggers.as_ref().filter(|_| leader) {
        Some(t) => Some(Arc::new(
            crate::trigger::gate::Gate::prepare(t, &planned.file, &plan.target.base).await?,
        )),
        None => None,
    };
    let functional = crate::functional::before_load(
        scenario.functional().filter(|_| leader),
        &file,
        &plan.target.base,
        drill
            .as_ref()
            .map(|d| d.endpoints().clone())
            .unwrap_or_default(),
        drill.as_ref().and_then(|d| d.env.injector.clone()),
        getenv,
    )
    .await?;
    let mut probe_rules = Vec::new();
    if let (Some(sec), Some(c), Some(minter), true) =
        (&scenario.security, &contract, minter, leader)
    {
        eprintln!("verifier: security pass");
        let pass = crate::security::Pass {
            spec: sec,
            contract: c.clone(),
            base: plan.target.base.clone(),
            timeout: plan.timeout,
            conformance: conformance.clone(),
            minter,
        };
        // Ctrl-C ends the pass too; the load then stops at once and the report is partial.
        probe_rules = tokio::select! {
            r = crate::security::run(pass) => {
                r.map_err(|message| RunError::Security { file: file.clone(), message })?
            }
            () = stop.stopped() => Vec::new(),
        };
    }
    // The service's own counters are read right before load, after the passes above.
    let observer = match scenario.observability.as_ref().filter(|_| leader) {
        Some(o) => Some(
            crate::observe::Observer::before(
                o,
                &plan.target.base,
                drill.as_ref().and_then(|d| d.env.service_capture()),
                crate::observe::probe_headers(&scenario.defaults.headers, getenv),
            )
            .await,
        ),
        None => None,
    };

    let plan = Arc::new(plan);
    let budgets = scenario.budgets.clone();
    let watch = Arc::new(Mutex::new(WindowWatch::new(
        &budgets,
        plan.endpoints.clone(),
    )));
    let (started_at, origin, late) = match &opts.shard {
        Some(s) => {
            let (at, origin, late) = wait_for_start(s, &stop).await;
            (at, origin, Some(late))
        }
        None => (SystemTime::now(), Instant::now(), None),
    };
    let on_window = {
        let (watch, stop, abort) = (watch.clone(), stop.clone(), budgets.abort_on_breach);
        Box::new(move |w: &crate::record::WindowView| {
            let mut g = watch.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(watch) = g.as_mut()
                && let Some(breach) = watch.observe(w)
                && abort
            {
                stop.trigger(StopReason::Aborted(breach));
            }
        })
    };
    let series_window = crate::record::series::window_for(plan.planned);
    let recorder = Recorder::new(origin, plan.endpoints.clone(), budgets.window.map(|d| d.0))
        .with_series_window(series_window);
    let collector = Collector::new(recorder, on_window);
    // The baseline's own recorder; the gate's budgets watch the candidate alone.
    let baseline_collector = baseline.as_ref().map(|_| {
        Collector::new(
            Recorder::new(origin, plan.endpoints.clone(), None).with_series_window(series_window),
            Box::new(|_: &crate::record::WindowView| {}),
        )
    });
    let phases = scenario.steady_state.as_ref().filter(|_| leader).map(|ss| {
        let phases = Arc::new(Mutex::new(Phases::plan(ss, &scenario.faults, plan.planned)));
        collector.feed_by_due(phases.clone());
        phases
    });
    if let Some(d) = drill.as_mut().filter(|_| leader) {
        d.start_faults(tokio::time::Instant::from_std(origin));
    }

    let done = Stop::new();
    let gate_task = gate.as_ref().map(|g| {
        let c = collector.clone();
        g.watch(origin, move || c.totals(), done.clone())
    });
    let progress = tokio::spawn(progress::run(
        opts.progress,
        collector.clone(),
        plan.planned,
        origin,
        done.clone(),
        Some(scenario.load.clone()),
    ));
    // Slices close on time even when no request completes (a stalled target).
    let ticker = {
        let (collector, done) = (collector.clone(), done.clone());
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = done.stopped() => break,
                    _ = tokio::time::sleep(Duration::from_millis(250)) => collector.tick(Instant::now()),
                }
            }
        })
    };

    let bound = plan.planned + plan.timeout * 2 + GRACE;
    let routes = match (&baseline, &baseline_collector) {
        (Some((c, b)), Some(bc)) => Some(load::open::Routes {
            sides: vec![(b.clone(), bc.clone()), (plan.clone(), collector.clone())],
            route: crate::compare::assign::Assignment::new(c.spec.seed, c.spec.block).router(),
        }),
        _ => None,
    };
    let shard = opts.shard.map_or(Shard::WHOLE, |s| s.shard);
    let engine = {
        let (plan, collector, stop) = (plan.clone(), collector.clone(), stop.clone());
        async move {
            match (&plan.load, routes) {
                (Load::Open(_), Some(routes)) => {
                    Ok(load::open::run_routed(routes, stop, origin).await)
                }
                (Load::Open(_), None) => Ok(load::open::run_shard(
                    load::open::Routes::single(plan.clone(), collector),
                    stop,
                    origin,
                    shard,
                )
                .await),
                (Load::Closed(_), _) => {
                    load::closed::run_from(plan.clone(), collector, stop, shard.seq_start()).await
                }
            }
        }
    };
    let engine_report = match tokio::time::timeout(bound, engine).await {
        Ok(r) => r,
        Err(_) => {
            stop.trigger(StopReason::Aborted(
                "the run outlived its plan by far and was cut off".into(),
            ));
            Err("the load engine did not finish within its bound".into())
        }
    };
    let end = Instant::now();
    done.trigger(StopReason::Interrupted);
    let _ = progress.await;
    let _ = ticker.await;
    let tracks = match gate_task {
        Some(t) => t.await.unwrap_or_default(),
        None => Default::default(),
    };
    // Faults end with the load, reverted whatever their plan said.
    let fault_records = match drill.as_mut() {
        Some(d) => d.stop_faults().await,
        None => Vec::new(),
    };
    let engine_report = engine_report.map_err(RunError::Engine)?;
    let measurements = collector
        .finish(end)
        .ok_or_else(|| RunError::Engine("measurements were already taken".into()))?;

    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let (interrupted, aborted) = match stop.reason() {
        Some(StopReason::Interrupted) => (true, None),
        Some(StopReason::Aborted(why)) => (false, Some(why)),
        None => (false, None),
    };
    let partial = interrupted || aborted.is_some();
    let mut rules = check::whole_run(&budgets, &measurements, &engine_report, cores, partial);
    let comparison = match (&baseline, &baseline_collector) {
        (Some((c, b)), Some(bc)) => {
            let base = bc
                .finish(end)
                .ok_or_else(|| RunError::Engine("measurements were already taken".into()))?;
            let mut cmp = crate::compare::ComparisonReport::judge(
                &base.series,
                &measurements.series,
                &c.wanted,
                crate::compare::Settings {
                    confidence: c.spec.confidence,
                    resamples: c.spec.resamples,
                    seed: c.spec.seed,
                    pairing: crate::compare::Pairing::Paired,
                },
                (&b.target.base, &plan.target.base),
            );
            cmp.baseline_series = Some(base.series.to_report());
            cmp.notes = c.notes.clone();
            rules.extend(cmp.rules());
            Some(cmp)
        }
        _ => None,
    };
    rules.extend(functional.rules);
    if let Some(w) = watch.lock().unwrap_or_else(|p| p.into_inner()).as_ref() {
        rules.extend(w.results());
    }
    let phases = phases.map(|p| p.lock().unwrap_or_else(|e| e.into_inner()).clone());
    if let Some(p) = &phases {
        rules.extend(p.results());
    }
    let planned_faults: &[crate::fault::plan::Fault] = if leader { &scenario.faults } else { &[] };
    let (fault_rules, fault_reports) =
        drill::fault_results(&fault_records, planned_faults, phases.as_ref());
    rules.extend(fault_rules);
    let trigger_report = gate.as_ref().map(|g| {
        let (r, rep) = g.results(&tracks, &fault_records);
        rules.extend(r);
        rep
    });
    let mut observability_report = None;
    // Ctrl-C asks for a quick stop: no probes after it.
    if let Some(o) = observer.filter(|_| !interrupted) {
        let (r, rep) = o.after(&measurements).await;
        rules.extend(r);
        observability_report = Some(rep);
    }
    let mut invariant_report = None;
    if let (Some(inv), Some(log)) = (&scenario.invariants, &acks) {
        eprintln!(
            "verifier: reading effects back (settling {:?} first)",
            inv.settle.0
        );
        let endpoints = drill
            .as_ref()
            .map(|d| d.endpoints().clone())
            .unwrap_or_default();
        let outcome = drill::read_back(inv, log, &endpoints).await;
        let (inv_rules, inv_report) = drill::invariant_results(&outcome, inv.events.is_some());
        rules.extend(inv_rules);
        invariant_report = Some(inv_report);
    }
    rules.extend(probe_rules);
    if let Some(c) = &conformance {
        c.finish(Duration::from_secs(10));
        rules.extend(c.rules());
    }
    if let (Some(s), Some(late)) = (&opts.shard, late) {
        rules.push(start_rule(s, late));
    }
    let mut verdict = Verdict::decide(rules, interrupted, aborted);
    if let Some(news) = check::all_failed(&measurements) {
        verdict.lead_with(&news);
    }
    let generator = GeneratorReport::new(&engine_report, load::cpu::peak_rss_bytes());
    let facts = RunFacts {
        scenario: &plan.name,
        scenario_file: &file,
        target: &plan.target.base,
        started_at,
        planned: plan.planned,
    };
    let mut report = Report::new(&facts, &measurements, verdict, generator);
    report.load_phases = scenario.load.spans();
    report.faults = fault_reports;
    report.invariants = invariant_report;
    report.triggers = trigger_report;
    report.observability = observability_report;
    report.comparison = comparison;
    if let (Some(s), Some(late)) = (&opts.shard, late) {
        let source = std::fs::read(&planned.file).map_err(|source| RunError::Report {
            dir: file.clone(),
            source,
        })?;
        report.shard = Some(ShardReport {
            index: s.shard.index,
            count: s.shard.count,
            start_at: humantime::format_rfc3339_millis(s.start_at).to_string(),
            started_late_ms: u64::try_from(late.as_millis()).unwrap_or(u64::MAX),
            tolerance_ms: u64::try_from(s.tolerance.as_millis()).unwrap_or(u64::MAX),
            scenario_sha256: crate::shard::scenario_sha256(&source),
            scenario_source: String::from_utf8_lossy(&source).into_owned(),
        });
    }
    Ok(report)
}
