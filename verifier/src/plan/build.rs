//! From a file to a [`Plan`]: parse → resolve (the environment's variables, the contract, the
//! trigger file, the target) → validate → one immutable value that `run` executes and `validate`
//! and `verifier plan` show. Whatever `run` would refuse before load starts is refused here, with
//! the same message and exit 2.

use std::path::{Path, PathBuf};

use crate::env::EnvironmentSpec;
use crate::scenario::locate::Seg;
use crate::scenario::{FieldError, ScenarioError, read_file};

use super::{Scenario, memory, parse};

/// What the command line adds to a file.
#[derive(Debug, Clone, Copy, Default)]
pub struct PlanOptions<'a> {
    /// `--target`: the service to load, overriding the scenario's `target` and replacing a
    /// `testcontainers` environment.
    pub target: Option<&'a str>,
    /// `--baseline-target`: compare against this service (adds a `compare:` section with its
    /// defaults when the scenario has none, replaces its baseline otherwise).
    pub baseline_target: Option<&'a str>,
}

/// The paired comparison of a plan.
pub struct ComparePlan {
    pub spec: crate::compare::CompareSpec,
    /// The requests compiled against the baseline (a stand-in address when the environment
    /// starts the baseline service; see [`Plan::load_for`]).
    pub baseline: crate::load::Plan,
    pub baseline_from_environment: bool,
    /// Every (endpoint, statistic, allowed change) the judge decides.
    pub wanted: Vec<(String, crate::compare::Statistic, crate::compare::Change)>,
    /// Allowances below the calibrated noise floor, said before the run.
    pub notes: Vec<String>,
}

/// A scenario made ready to run. Built once; nothing in it changes during the run.
pub struct Plan {
    pub file: PathBuf,
    pub scenario: Scenario,
    /// The environment the run brings up: the scenario's, or `none` when `--target` replaces a
    /// `testcontainers` one.
    pub environment: EnvironmentSpec,
    /// The requests compiled. When the environment starts the service, its address is known only
    /// once it runs: the plan is compiled against a stand-in and [`Plan::load_for`] re-targets it.
    pub load: crate::load::Plan,
    pub target_from_environment: bool,
    /// Trigger definitions loaded from the file the scenario names.
    pub triggers: Option<usize>,
    /// The security pass's token minter, its secret bound from the environment.
    pub minter: Option<crate::security::token::Minter>,
    /// What the run will hold in memory at most.
    pub memory: memory::Estimate,
    /// Things a person should know before the run, e.g. that `--target` replaced the environment.
    pub notes: Vec<String>,
    /// The baseline of a paired comparison, when the scenario or `--baseline-target` asks.
    pub compare: Option<ComparePlan>,
}

/// A stand-in address for compiling requests before the environment has started the service.
const STAND_IN: &str = "http://127.0.0.1:9";

fn k(s: &str) -> Seg {
    Seg::Key(s.to_owned())
}

/// Builds the plan of `file`; `getenv` binds `${env.X}` everywhere.
pub fn build(
    file: &Path,
    opts: PlanOptions<'_>,
    getenv: &dyn Fn(&str) -> Option<String>,
) -> Result<Plan, ScenarioError> {
    let text = read_file(file)?;
    let mut scenario = parse(file, &text)?;
    let at = |e: FieldError| e.locate(file, &text);
    // Errors about the command line, not the file.
    let cli = |message: String| ScenarioError {
        file: file.to_owned(),
        line: None,
        column: None,
        field: String::new(),
        message,
    };
    let mut notes = Vec::new();
    let mut environment = scenario.environment.clone();
    if let Some(t) = opts.target {
        crate::scenario::check_target(t).map_err(|m| cli(format!("--target: {m}")))?;
        if matches!(environment, EnvironmentSpec::Testcontainers(_)) {
            if !scenario.faults.is_empty() || scenario.invariants.is_some() {
                return Err(at(FieldError::new(
                    vec![k("environment")],
                    "--target points the run at a service of yours, but this scenario's faults \
                     and invariants need the environment it starts itself; drop --target",
                )));
            }
            notes.push(
                "--target given; the scenario's testcontainers environment is not started".into(),
            );
            environment = EnvironmentSpec::None;
        }
    }
    if let EnvironmentSpec::Testcontainers(c) = &environment {
        crate::env::spec::check_env_vars(c, getenv).map_err(|(key, m)| {
            at(FieldError::new(
                vec![
                    k("environment"),
                    k("testcontainers"),
                    k("service"),
                    k("env"),
                    k(&key),
                ],
                m,
            ))
        })?;
    }
    let target_from_environment =
        opts.target.is_none() && matches!(environment, EnvironmentSpec::Testcontainers(_));
    let candidate_target = scenario
        .compare
        .as_ref()
        .and_then(|c| c.candidate.as_ref())
        .and_then(|c| c.target.clone());
    let target = if target_from_environment {
        Some(STAND_IN)
    } else {
        opts.target.or(candidate_target.as_deref())
    };
    let load = crate::load::Plan::new(scenario.core(), target, getenv).map_err(|e| {
        if opts.target.is_some() && e.path == [k("target")] {
            cli(format!("--target: {}", e.message))
        } else {
            at(e)
        }
    })?;
    let triggers = scenario
        .triggers
        .as_ref()
        .map(|t| crate::trigger::gate::load_checked(t, file))
        .transpose()?
        .map(|l| l.defs.triggers.len());
    let minter = scenario
        .security
        .as_ref()
        .map(|sec| {
            crate::security::token::Minter::new(&sec.jwt, getenv).map_err(|m| {
                // The minter names its field in its message (`security.jwt.secret: ...`).
                let m = m
                    .strip_prefix("security.jwt.secret: ")
                    .map(str::to_owned)
                    .unwrap_or(m);
                at(FieldError::new(
                    vec![k("security"), k("jwt"), k("secret")],
                    m,
                ))
            })
        })
        .transpose()?;
    let compare = plan_compare(file, &text, &mut scenario, &opts, &load, getenv, &mut notes)?;
    if compare
        .as_ref()
        .is_some_and(|c| c.baseline_from_environment)
        && !target_from_environment
    {
        return Err(cli(
            "--target replaces the environment that would start the comparison's baseline \
             service: give --baseline-target too"
                .into(),
        ));
    }
    let memory = memory::Estimate::of(&scenario);
    if memory.total() > memory::MAX_BYTES {
        return Err(at(FieldError::new(
            vec![k("load")],
            format!(
                "this plan would hold about {} in memory (most of it {}); at most {}",
                memory::fmt_bytes(memory.total()),
                memory.largest().0,
                memory::fmt_bytes(memory::MAX_BYTES)
            ),
        )));
    }
    Ok(Plan {
        file: file.to_owned(),
        scenario,
        environment,
        load,
        target_from_environment,
        triggers,
        minter,
        memory,
        notes,
        compare,
    })
}

/// The comparison: `--baseline-target` merged into the section, the section checked again with
/// it, the baseline's requests compiled, the calibration's floor held against `allow`.
fn plan_compare(
    file: &Path,
    text: &str,
    scenario: &mut Scenario,
    opts: &PlanOptions<'_>,
    load: &crate::load::Plan,
    getenv: &dyn Fn(&str) -> Option<String>,
    notes: &mut Vec<String>,
) -> Result<Option<ComparePlan>, ScenarioError> {
    let at = |e: FieldError| e.locate(file, text);
    let cli = |message: String| ScenarioError {
        file: file.to_owned(),
        line: None,
        column: None,
        field: String::new(),
        message,
    };
    if let Some(url) = opts.baseline_target {
        crate::scenario::check_target(url).map_err(|m| cli(format!("--baseline-target: {m}")))?;
        match &mut scenario.compare {
            Some(c) => {
                c.baseline.target = Some(url.to_owned());
                c.baseline.service = None;
            }
            None => scenario.compare = Some(crate::compare::CompareSpec::for_baseline(url)),
        }
        if super::same_target(url, &load.target.base) {
            return Err(cli(format!(
                "--baseline-target: {url} is the candidate's own target; a comparison needs two \
                 services"
            )));
        }
    }
    let Some(spec) = scenario.compare.clone() else {
        return Ok(None);
    };
    super::validate_compare(scenario, &spec).map_err(at)?;
    if let (Some(b), false) = (&spec.baseline.target, opts.target.is_none())
        && super::same_target(b, &load.target.base)
    {
        return Err(cli(format!(
            "--target {b} is also the comparison's baseline: a comparison needs two services"
        )));
    }
    let baseline_from_environment = spec.baseline.service.is_some();
    let baseline_url = spec.baseline.target.as_deref().unwrap_or(STAND_IN);
    let baseline =
        crate::load::Plan::new(scenario.core(), Some(baseline_url), getenv).map_err(&at)?;
    let wanted = spec.allowances(&load.endpoints);
    let mut cmp_notes = Vec::new();
    if let Some(cal) = &spec.calibration {
        let path = file
            .parent()
            .map(|d| d.join(cal))
            .unwrap_or_else(|| PathBuf::from(cal));
        let floors = crate::compare::calibration::floors(&path, &scenario.name, load.planned)
            .map_err(|m| {
                at(FieldError::new(
                    vec![k("compare"), k("calibration")],
                    format!("{}: {m}", path.display()),
                ))
            })?;
        cmp_notes = crate::compare::calibration::below_floor(&floors, &wanted);
        notes.extend(cmp_notes.iter().cloned());
    }
    Ok(Some(ComparePlan {
        spec,
        baseline,
        baseline_from_environment,
        wanted,
        notes: cmp_notes,
    }))
}

impl Plan {
    /// The compiled requests aimed at `target`, the address the environment gave the service.
    /// The plan compiled against a stand-in with the same templates, so only the target can fail.
    pub fn load_for(
        &self,
        target: &str,
        getenv: &dyn Fn(&str) -> Option<String>,
    ) -> Result<crate::load::Plan, FieldError> {
        crate::load::Plan::new(self.scenario.core(), Some(target), getenv)
    }
}
