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
    let scenario = parse(file, &text)?;
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
    let target = if target_from_environment {
        Some(STAND_IN)
    } else {
        opts.target
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
    })
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
