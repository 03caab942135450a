//! The plan stage: the scenario document assembled from every feature's section, parsed and
//! validated before anything starts. Every error names the file, line, column and field.

use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

use schemars::JsonSchema;
use serde::Deserialize;

use crate::scenario::locate::Seg;
use crate::scenario::{
    Budgets, Defaults, FieldError, Journey, Load, ScenarioError, deserialize_located, read_file,
    validate_core,
};

pub mod bounds;
mod build;
pub mod memory;
pub mod show;

pub use build::{ComparePlan, Plan, PlanOptions, build};

fn k(s: &str) -> Seg {
    Seg::Key(s.to_owned())
}

/// Bounds before meaning: every number within its documented range (`bounds`), the phases
/// together within [`bounds::MAX_PLANNED`], the endpoints within [`bounds::MAX_ENDPOINTS`].
fn check_sizes(file: &Path, text: &str, s: &Scenario) -> Result<(), ScenarioError> {
    // The typed parse succeeded, so the text is a YAML mapping; its plain view is what the
    // bounds table's paths walk.
    let doc: serde_norway::Value = serde_norway::from_str(text).map_err(|e| ScenarioError {
        file: file.to_owned(),
        line: None,
        column: None,
        field: String::new(),
        message: format!("cannot read the document as plain YAML: {e}"),
    })?;
    bounds::check(&doc).map_err(|e| e.locate(file, text))?;
    let phases = match &s.load {
        Load::Open(o) => o.phases.len(),
        Load::Closed(c) => c.phases.len(),
    };
    let total = s.load.planned_duration();
    if total > bounds::MAX_PLANNED {
        let kind = if matches!(s.load, Load::Open(_)) {
            "open"
        } else {
            "closed"
        };
        return Err(crate::scenario::FieldError::new(
            vec![k("load"), k(kind), k("phases")],
            format!(
                "the {phases} phases last {:.0} h together: a scenario plans at most 24 h of load",
                total.as_secs_f64() / 3600.0
            ),
        )
        .locate(file, text));
    }
    let endpoints = s.endpoints().len();
    if endpoints > bounds::MAX_ENDPOINTS {
        return Err(crate::scenario::FieldError::new(
            vec![k("journeys")],
            format!(
                "{endpoints} distinct step names: at most {} (each keeps its own histograms)",
                bounds::MAX_ENDPOINTS
            ),
        )
        .locate(file, text));
    }
    Ok(())
}

/// One scenario file.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    /// Short name shown in reports.
    pub name: String,
    /// What the scenario is for; shown in reports.
    #[serde(default)]
    pub description: Option<String>,
    /// Base URL of the target; `--target` overrides it.
    #[serde(default)]
    pub target: Option<String>,
    /// Timeouts and headers shared by every request.
    #[serde(default)]
    pub defaults: Defaults,
    /// User journeys; each virtual user or arrival picks one by weight.
    pub journeys: Vec<Journey>,
    /// The load model and its phases.
    pub load: Load,
    /// The gate rules; a scenario without budgets only records.
    #[serde(default)]
    pub budgets: Budgets,
    /// Where the target and its dependencies come from: `none` (the default: just a target),
    /// `external` (staging behind a Toxiproxy), or `testcontainers`.
    #[serde(default)]
    pub environment: crate::env::EnvironmentSpec,
    /// Faults injected into dependencies while the load runs.
    #[serde(default)]
    pub faults: Vec<crate::fault::plan::Fault>,
    /// What must hold before, during and after the faults.
    #[serde(default)]
    pub steady_state: Option<crate::steady::SteadyState>,
    /// Nothing lost: effects read back after the run and compared with what was acknowledged.
    #[serde(default)]
    pub invariants: Option<crate::effects::InvariantSpec>,
    /// The service's OpenAPI document, for functional checks and response conformance.
    #[serde(default)]
    pub contract: Option<crate::contract::ContractSpec>,
    /// The document `contract` names, read once when the scenario is parsed.
    #[serde(skip)]
    #[schemars(skip)]
    pub openapi: Option<std::sync::Arc<crate::contract::Contract>>,
    /// Functional checks run before load: idempotent retries, the service's retry discipline.
    #[serde(default)]
    pub functional: Option<crate::functional::FunctionalSpec>,
    /// The API security pass before the load (needs `contract`).
    #[serde(default)]
    pub security: Option<crate::security::SecuritySpec>,
    /// Rollback triggers evaluated during the run (and, in a drill, proven by the faults).
    #[serde(default)]
    pub triggers: Option<crate::trigger::gate::TriggerSpec>,
    /// Observability acceptance: metrics, histogram agreement, trace context, logs.
    #[serde(default)]
    pub observability: Option<crate::observe::ObservabilitySpec>,
    /// Performance acceptance against a baseline: the baseline and the candidate driven by one
    /// schedule in one run (each journey to one side, seeded and balanced), then judged per
    /// endpoint and statistic against the allowed change.
    #[serde(default)]
    pub compare: Option<crate::compare::CompareSpec>,
}

/// Reads and validates a scenario file.
pub fn load_file(path: &Path) -> Result<Scenario, ScenarioError> {
    parse(path, &read_file(path)?)
}

/// Parses and validates scenario text; `file` names it in errors and anchors the relative
/// paths it holds (the contract).
pub fn parse(file: &Path, text: &str) -> Result<Scenario, ScenarioError> {
    crate::scenario::check_input_size(text).map_err(|message| ScenarioError {
        file: file.to_owned(),
        line: None,
        column: None,
        field: String::new(),
        message,
    })?;
    let mut scenario: Scenario = deserialize_located(file, text)?;
    check_sizes(file, text, &scenario)?;
    validate_core(
        scenario.target.as_deref(),
        &scenario.journeys,
        &scenario.load,
        &scenario.budgets,
    )
    .map_err(FieldError::from)
    .and_then(|endpoints| validate_drill(&scenario, &endpoints))
    .and_then(|()| {
        scenario.openapi = scenario
            .contract
            .as_ref()
            .map(|spec| crate::contract::Contract::load(file, spec))
            .transpose()
            .map_err(|e| FieldError::at("contract.openapi", e.message))?
            .map(std::sync::Arc::new);
        Ok(())
    })
    .and_then(|()| match scenario.functional() {
        Some(sec) => crate::functional::validate(&sec).map_err(|e| e.under(&["functional"])),
        None => Ok(()),
    })
    .and_then(|()| validate_contract(&scenario))
    .and_then(|()| match &scenario.compare {
        Some(c) => validate_compare(&scenario, c),
        None => Ok(()),
    })
    .map_err(|e| e.locate(file, text))?;
    Ok(scenario)
}

/// A comparison the run can honour: the open model (one schedule, both sides), two different
/// targets, a baseline service only where the environment starts services.
pub(crate) fn validate_compare(
    s: &Scenario,
    c: &crate::compare::CompareSpec,
) -> Result<(), FieldError> {
    use crate::env::EnvironmentSpec;
    c.validate(&s.endpoints())
        .map_err(|e| e.under(&["compare"]))?;
    if matches!(s.load, Load::Closed(_)) {
        return Err(FieldError::at(
            "compare",
            "a paired comparison needs the open model (`load: {open: ...}`): one arrival schedule \
             split between the two sides, so both see the same load at the same instants",
        ));
    }
    if c.candidate.as_ref().is_some_and(|x| x.service.is_some()) {
        return Err(FieldError::at(
            "compare.candidate.service",
            "the candidate is the service the environment starts \
             (`environment.testcontainers.service`); only the baseline takes a `service`",
        ));
    }
    if c.baseline.service.is_some() && !matches!(s.environment, EnvironmentSpec::Testcontainers(_))
    {
        return Err(FieldError::at(
            "compare.baseline.service",
            "a baseline service is started beside the candidate by the `testcontainers` \
             environment; with another environment give the baseline's `target` URL",
        ));
    }
    let candidate = c
        .candidate
        .as_ref()
        .and_then(|x| x.target.as_deref())
        .or(s.target.as_deref());
    if let (Some(a), Some(b)) = (c.baseline.target.as_deref(), candidate)
        && same_target(a, b)
    {
        return Err(FieldError::at(
            "compare.baseline.target",
            format!(
                "the baseline and the candidate are the same URL ({a}): a comparison needs two \
                 services (for an A/A calibration, start the same build twice)"
            ),
        ));
    }
    Ok(())
}

/// Two target URLs that reach the same service (trailing slashes and default ports aside).
pub fn same_target(a: &str, b: &str) -> bool {
    match (crate::load::Target::parse(a), crate::load::Target::parse(b)) {
        (Ok(x), Ok(y)) => x.authority.eq_ignore_ascii_case(&y.authority) && x.prefix == y.prefix,
        _ => a.trim_end_matches('/') == b.trim_end_matches('/'),
    }
}

/// The contract parses, every step calls one of its operations, and the security section
/// names operations it has.
fn validate_contract(s: &Scenario) -> Result<(), FieldError> {
    let (Some(spec), Some(c)) = (&s.contract, &s.openapi) else {
        if s.security.is_some() {
            return Err(FieldError::at(
                "security",
                "the security pass probes the operations of a contract: add `contract: {openapi: ...}`",
            ));
        }
        return Ok(());
    };
    c.check_steps(&s.journeys).map_err(|(ji, si, m)| {
        FieldError::new(
            vec![
                k("journeys"),
                Seg::Index(ji),
                k("steps"),
                Seg::Index(si),
                k("path"),
            ],
            m,
        )
    })?;
    if spec.conformance.every == 0 {
        return Err(FieldError::at(
            "contract.conformance.every",
            "must be at least 1 (1 validates every response)",
        ));
    }
    if let Some(sec) = &s.security {
        crate::security::validate(sec, c).map_err(|e| e.under(&["security"]))?;
    }
    Ok(())
}

/// The chaos parts: faults the environment can honour, a steady state that names real faults,
/// invariants on a real step, a service environment whose placeholders exist.
fn validate_drill(s: &Scenario, endpoints: &BTreeSet<String>) -> Result<(), FieldError> {
    use crate::env::EnvironmentSpec;
    if let EnvironmentSpec::Testcontainers(c) = &s.environment {
        crate::env::spec::validate_service_env(c)
            .map_err(|e| e.under(&["environment", "testcontainers"]))?;
    }
    let caps = crate::env::Environment::capabilities(&s.environment);
    if !s.faults.is_empty() && caps.dependencies.is_empty() {
        return Err(FieldError::at(
            "faults",
            "faults need an environment that can inject them: `environment: {external: ...}` or \
             `{testcontainers: ...}`",
        ));
    }
    crate::fault::plan::validate(&s.faults, &caps, s.planned_duration()).map_err(|e| {
        FieldError::new(
            vec![k("faults"), Seg::Index(e.index), k(e.field)],
            e.message,
        )
    })?;
    if let Some(ss) = &s.steady_state {
        for name in ss.during.keys() {
            if !s.faults.iter().any(|f| &f.name == name) {
                return Err(FieldError::new(
                    vec![k("steady_state"), k("during"), k(name)],
                    format!(
                        "no fault is named `{name}` (known: {})",
                        s.faults
                            .iter()
                            .map(|f| f.name.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                ));
            }
        }
    }
    if let Some(t) = &s.triggers {
        crate::trigger::gate::validate_spec(t, &s.faults).map_err(|e| e.under(&["triggers"]))?;
    }
    if let Some(o) = &s.observability {
        crate::observe::validate_spec(o, endpoints).map_err(|e| e.under(&["observability"]))?;
    }
    if let Some(inv) = &s.invariants {
        if !endpoints.contains(&inv.step) {
            return Err(FieldError::at(
                "invariants.step",
                format!(
                    "no step is named `{}` (known: {})",
                    inv.step,
                    endpoints.iter().cloned().collect::<Vec<_>>().join(", ")
                ),
            ));
        }
        if matches!(s.environment, EnvironmentSpec::None)
            && (inv.database.url.contains("${postgres.")
                || inv
                    .events
                    .as_ref()
                    .is_some_and(|e| e.url.contains("${nats.")))
        {
            return Err(FieldError::at(
                "invariants.database.url",
                "`${postgres.*}` and `${nats.*}` exist only with `environment: {testcontainers: ...}`; \
                 give a URL",
            ));
        }
    }
    Ok(())
}

impl Scenario {
    /// The core sections, as the load engines take them.
    pub fn core(&self) -> crate::scenario::Core<'_> {
        crate::scenario::Core {
            name: &self.name,
            target: self.target.as_deref(),
            defaults: &self.defaults,
            journeys: &self.journeys,
            load: &self.load,
        }
    }

    /// The functional section with what its checks need from the rest of the document.
    pub fn functional(&self) -> Option<crate::functional::Section<'_>> {
        self.functional
            .as_ref()
            .map(|spec| crate::functional::Section {
                spec,
                defaults: &self.defaults,
                contract: self.openapi.as_deref(),
                environment: &self.environment,
            })
    }

    /// Endpoint names in first-use order.
    pub fn endpoints(&self) -> Vec<String> {
        crate::scenario::endpoints(&self.journeys)
    }

    /// Planned duration of the load phases.
    pub fn planned_duration(&self) -> Duration {
        self.load.planned_duration()
    }
}

/// The JSON Schema of scenario files, as checked in under `verifier/schema/`.
pub fn json_schema() -> String {
    let schema = schemars::schema_for!(Scenario);
    let mut s = serde_json::to_string_pretty(&schema).expect("schema serializes");
    s.push('\n');
    s
}
