//! The pipeline templates a team copies: the GitLab job parses and carries what the README
//! promises (JUnit report, the report directory kept, exit 4 allowed to fail and nothing else);
//! the GitHub action and workflow keep their inputs and exit-code policy. actionlint checks the
//! workflow itself (`make test-ci-templates`).

use std::path::Path;

use serde_norway::Value;
use verifier::exit_codes;

fn root() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
}

fn yaml(rel: &str) -> Value {
    let text = std::fs::read_to_string(root().join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"));
    serde_norway::from_str(&text).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

fn strs(v: &Value) -> Vec<String> {
    v.as_sequence()
        .map(|s| {
            s.iter()
                .map(|x| match x {
                    Value::String(s) => s.clone(),
                    Value::Number(n) => n.to_string(),
                    other => panic!("not a scalar: {other:?}"),
                })
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn the_gitlab_job_template_has_its_reports_and_exit_policy() {
    let doc = yaml("ci/gitlab/verifier-gate.gitlab-ci.yml");
    let base = &doc[".verifier-gate"];
    assert!(
        base["image"]
            .as_str()
            .is_some_and(|i| i.starts_with("rust:"))
    );
    let script = strs(&base["script"]).join("\n");
    for needle in [
        "cargo build --release --locked -p verifier",
        "release/verifier\" run \"$VERIFIER_SCENARIO\"",
        "--report-dir \"$VERIFIER_REPORT_DIR\"",
        "--target $VERIFIER_TARGET",
        "exit \"$code\"",
    ] {
        assert!(script.contains(needle), "script lacks {needle}:\n{script}");
    }
    for var in [
        "VERIFIER_SCENARIO",
        "VERIFIER_TARGET",
        "VERIFIER_REPORT_DIR",
        "VERIFIER_REF",
    ] {
        assert!(base["variables"].get(var).is_some(), "no default for {var}");
    }
    let artifacts = &base["artifacts"];
    assert_eq!(
        artifacts["when"].as_str(),
        Some("always"),
        "reports kept on failure"
    );
    assert_eq!(
        artifacts["reports"]["junit"].as_str(),
        Some("$VERIFIER_REPORT_DIR/junit.xml")
    );
    assert!(strs(&artifacts["paths"]).contains(&"$VERIFIER_REPORT_DIR/".to_owned()));
    // Inconclusive shows as a warning; a breached rule, a bad scenario and an unreachable
    // environment fail the job.
    assert_eq!(
        strs(&base["allow_failure"]["exit_codes"]),
        vec![exit_codes::INCONCLUSIVE.to_string()]
    );
    let job = &doc["verifier-gate"];
    assert_eq!(job["extends"].as_str(), Some(".verifier-gate"));
    assert!(job["rules"].as_sequence().is_some_and(|r| !r.is_empty()));
}

#[test]
fn the_github_action_takes_a_scenario_and_a_target_and_gates_on_the_exit_code() {
    let action = yaml(".github/actions/gate/action.yml");
    let inputs = &action["inputs"];
    for name in [
        "scenario",
        "target",
        "report-dir",
        "verifier-ref",
        "verifier-binary",
    ] {
        assert!(inputs.get(name).is_some(), "no input {name}");
    }
    assert_eq!(inputs["scenario"]["required"].as_bool(), Some(true));
    assert_eq!(action["runs"]["using"].as_str(), Some("composite"));
    let steps = action["runs"]["steps"].as_sequence().unwrap();
    let run = steps
        .iter()
        .find(|s| s["id"].as_str() == Some("run"))
        .expect("a step with id `run`");
    let script = run["run"].as_str().unwrap();
    for needle in [
        "GITHUB_STEP_SUMMARY",
        &format!("{})", exit_codes::GATE_FAILED),
        &format!("{})", exit_codes::INCONCLUSIVE),
        "::warning title=Gate inconclusive::",
        "::error title=Gate failed::",
    ] {
        assert!(script.contains(needle), "run step lacks {needle}");
    }
    let uses: Vec<&str> = steps.iter().filter_map(|s| s["uses"].as_str()).collect();
    assert!(
        uses.iter()
            .any(|u| u.starts_with("actions/upload-artifact@"))
    );
    assert!(
        uses.iter()
            .any(|u| u.starts_with("mikepenz/action-junit-report@"))
    );
    assert!(uses.iter().any(|u| u.starts_with("actions/cache@")));
}

/// The job's step that runs the gate action.
fn gate_step(steps: &[Value]) -> &Value {
    steps
        .iter()
        .find(|s| s["uses"].as_str() == Some("./.github/actions/gate"))
        .expect("the gate action")
}

#[test]
fn the_pull_request_workflow_runs_the_smoke_gate_through_the_action() {
    let wf = yaml(".github/workflows/pr-smoke.yml");
    // `on` is a plain key to YAML 1.2 parsers.
    assert!(wf["on"].get("pull_request").is_some());
    let steps = wf["jobs"]["smoke"]["steps"].as_sequence().unwrap();
    let gate = gate_step(steps);
    assert_eq!(
        gate["with"]["scenario"].as_str(),
        Some("scenarios/smoke.yaml")
    );
    let uses: Vec<&str> = steps.iter().filter_map(|s| s["uses"].as_str()).collect();
    assert!(
        uses.iter().any(|u| u.starts_with("actions/setup-go@")),
        "Go build cache"
    );
    assert!(
        uses.iter().any(|u| u.starts_with("Swatinem/rust-cache@")),
        "cargo cache"
    );
}

#[test]
fn the_pull_request_workflow_judges_the_candidate_against_the_target_branch() {
    let wf = yaml(".github/workflows/pr-smoke.yml");
    let steps = wf["jobs"]["regression"]["steps"].as_sequence().unwrap();
    let checkout = &steps[0];
    assert_eq!(
        checkout["with"]["fetch-depth"].as_u64(),
        Some(0),
        "the base commit is fetched"
    );
    let baseline = steps
        .iter()
        .find(|s| {
            s["run"]
                .as_str()
                .is_some_and(|r| r.contains("platform/compare-base.sh"))
        })
        .expect("the baseline built from the target branch");
    assert!(
        baseline["env"]["BASE"]
            .as_str()
            .is_some_and(|b| b.contains("github.base_ref")),
        "{baseline:?}"
    );
    let gate = gate_step(steps);
    assert_eq!(
        gate["with"]["scenario"].as_str(),
        Some("scenarios/compare.yaml")
    );
    let compare = std::fs::read_to_string(root().join("scenarios/compare.yaml")).unwrap();
    assert!(
        compare.contains("target/compare/baseline/service"),
        "compare.yaml's baseline is what compare-base.sh builds"
    );
}
