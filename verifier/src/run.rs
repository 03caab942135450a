//! One gate run, start to end: plan → preflight → load → measurements → checks →
//! verdict → reports. Every stage is bounded in time.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use crate::check::{self, WindowWatch};
use crate::exit_codes;
use crate::load::{self, Collector, Plan, Stop, StopReason};
use crate::record::Recorder;
use crate::report::{self, GeneratorReport, Report, RunFacts, progress};
use crate::scenario::{self, Load, ScenarioError};
use crate::verdict::Verdict;

pub struct RunOptions {
    pub scenario: PathBuf,
    pub target: Option<String>,
    pub report_dir: PathBuf,
    pub progress: progress::Mode,
}

pub struct RunOutput {
    pub report: Report,
    pub files: Vec<PathBuf>,
}

/// Why a run produced no verdict. Each maps to one exit code.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("{0}")]
    Scenario(#[from] ScenarioError),
    #[error("{file}: {source}")]
    Plan {
        file: String,
        source: load::PlanError,
    },
    #[error("{0}")]
    Unreachable(String),
    #[error("load engine failed: {0}")]
    Engine(String),
    #[error("cannot write reports into {dir}: {source}")]
    Report { dir: String, source: std::io::Error },
}

impl RunError {
    pub fn exit_code(&self) -> u8 {
        match self {
            RunError::Scenario(_) | RunError::Plan { .. } => exit_codes::USAGE,
            RunError::Unreachable(_) | RunError::Engine(_) | RunError::Report { .. } => {
                exit_codes::ENVIRONMENT
            }
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
    let scenario = scenario::load_file(&opts.scenario)?;
    let file = opts.scenario.display().to_string();
    let plan =
        Plan::new(&scenario, opts.target.as_deref(), getenv).map_err(|source| RunError::Plan {
            file: file.clone(),
            source,
        })?;
    load::preflight(&plan.target, plan.connect_timeout)
        .await
        .map_err(RunError::Unreachable)?;

    let plan = Arc::new(plan);
    let budgets = scenario.budgets.clone();
    let watch = Arc::new(Mutex::new(WindowWatch::new(
        &budgets,
        plan.endpoints.clone(),
    )));
    let started_at = SystemTime::now();
    let origin = Instant::now();
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
    let recorder = Recorder::new(origin, plan.endpoints.clone(), budgets.window.map(|d| d.0));
    let collector = Collector::new(recorder, on_window);

    let done = Stop::new();
    let progress = tokio::spawn(progress::run(
        opts.progress,
        collector.clone(),
        plan.planned,
        origin,
        done.clone(),
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
    let engine = {
        let (plan, collector, stop) = (plan.clone(), collector.clone(), stop.clone());
        async move {
            match &plan.load {
                Load::Open(_) => Ok(load::open::run(plan, collector, stop, origin).await),
                Load::Closed(_) => load::closed::run(plan, collector, stop).await,
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
    if let Some(w) = watch.lock().unwrap_or_else(|p| p.into_inner()).as_ref() {
        rules.extend(w.results());
    }
    let verdict = Verdict::decide(rules, interrupted, aborted);
    let generator = GeneratorReport::new(&engine_report, load::cpu::peak_rss_bytes());
    let facts = RunFacts {
        scenario: &plan.name,
        scenario_file: &file,
        target: &plan.target.base,
        started_at,
        planned: plan.planned,
    };
    let report = Report::new(&facts, &measurements, verdict, generator);
    let files =
        report::write_all(&opts.report_dir, &report).map_err(|source| RunError::Report {
            dir: opts.report_dir.display().to_string(),
            source,
        })?;
    Ok(RunOutput { report, files })
}
