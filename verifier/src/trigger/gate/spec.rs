//! The `triggers:` section of a scenario: its shape, the checks that need only the scenario, and
//! the trigger file it names, loaded with every expectation's trigger found in it.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use schemars::JsonSchema;
use serde::Deserialize;

use super::{HEALTHY, k};
use crate::scenario::locate::Seg;
use crate::scenario::{Dur, FieldError, ScenarioError};
use crate::trigger::Loaded;
use crate::trigger::promql::num;

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

/// Checks of the section that need only the scenario (fault names, shapes); trigger names are
/// checked against the file in [`Gate::prepare`](super::Gate::prepare). Paths are relative to
/// the section.
pub fn validate_spec(
    spec: &TriggerSpec,
    faults: &[crate::fault::plan::Fault],
) -> Result<(), FieldError> {
    if spec.every.0 < Duration::from_millis(200) {
        return Err(FieldError::at("every", "must be at least 200ms"));
    }
    if let Some(p) = &spec.prometheus
        && p != "start"
        && !(p.starts_with("http://") || p.starts_with("https://"))
    {
        return Err(FieldError::at(
            "prometheus",
            format!("`{p}` is neither `start` nor an http:// URL"),
        ));
    }
    for (name, e) in &spec.expect {
        let path = |f: &str| vec![k("expect"), k(name), k(f)];
        if name != HEALTHY && !faults.iter().any(|f| &f.name == name) {
            let mut known: Vec<&str> = faults.iter().map(|f| f.name.as_str()).collect();
            known.push(HEALTHY);
            return Err(FieldError::new(
                vec![k("expect"), k(name)],
                format!("no fault is named `{name}` (known: {})", known.join(", ")),
            ));
        }
        if name == HEALTHY && !e.fire.is_empty() {
            return Err(FieldError::new(
                path("fire"),
                "nothing must fire in the healthy phase; list triggers under `quiet`",
            ));
        }
        if !e.fire.is_empty() && e.within.is_none() {
            return Err(FieldError::new(
                path("within"),
                "triggers that must fire need a detection time, e.g. `within: 20s`",
            ));
        }
        if let Some(w) = e.within
            && w.0 < spec.every.0
        {
            return Err(FieldError::new(
                path("within"),
                format!(
                    "{} is shorter than the evaluation interval `every` ({}): no trigger is looked at that soon",
                    crate::scenario::Dur(w.0),
                    crate::scenario::Dur(spec.every.0)
                ),
            ));
        }
        if let Some(t) = e.fire.iter().find(|t| e.quiet.contains(t)) {
            return Err(FieldError::new(
                path("quiet"),
                format!("`{t}` cannot both fire and stay quiet"),
            ));
        }
    }
    Ok(())
}

/// The trigger file `spec` names (relative to `scenario_file`), parsed, with every trigger the
/// scenario's `expect` lists found in it. What needs no service: `verifier validate` runs it too.
pub fn load_checked(spec: &TriggerSpec, scenario_file: &Path) -> Result<Loaded, ScenarioError> {
    let file = scenario_file
        .parent()
        .unwrap_or(Path::new("."))
        .join(&spec.file);
    let loaded = crate::trigger::load_file(&file)?;
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
    // A trigger fires only after its condition held for its (scaled) `for`: a detection time
    // shorter than that can never be met.
    let defs = &loaded.defs;
    let too_soon = spec.expect.iter().find_map(|(fault, e)| {
        let within = e.within?.0;
        e.fire.iter().enumerate().find_map(|(i, name)| {
            let t = defs.triggers.iter().find(|t| &t.name == name)?;
            let hold = defs.scaled_hold(t);
            (hold > within).then_some((
                fault,
                i,
                name,
                t.hold.0,
                hold,
                within,
                defs.time_scale_of(t),
            ))
        })
    });
    if let Some((fault, _, name, hold, scaled, within, time_scale)) = too_soon {
        let text = crate::scenario::read_file(scenario_file)?;
        let message = format!(
            "{} is shorter than the {} `{name}` must hold its condition before it fires (its `for: {}` divided by time_scale {}); it could never be met",
            crate::scenario::Dur(within),
            crate::scenario::Dur(scaled),
            crate::scenario::Dur(hold),
            num(time_scale)
        );
        return Err(FieldError::new(vec![k(fault), k("within")], message)
            .under(&["triggers", "expect"])
            .locate(scenario_file, &text));
    }
    if let Some((fault, field, i, name)) = unknown {
        let text = crate::scenario::read_file(scenario_file)?;
        let message = format!(
            "no trigger is named `{name}` in {} (known: {})",
            file.display(),
            known.iter().copied().collect::<Vec<_>>().join(", ")
        );
        return Err(
            FieldError::new(vec![k(fault), k(field), Seg::Index(i)], message)
                .under(&["triggers", "expect"])
                .locate(scenario_file, &text),
        );
    }
    Ok(loaded)
}
