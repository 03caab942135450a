//! Every file in `scenarios/` plans as `verifier validate` plans it, with the variables the
//! shipped scenarios bind set; the staging example keeps the shape its comments promise.

use std::path::{Path, PathBuf};

use verifier::env::EnvironmentSpec;

fn scenario_files() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml" || x == "yml"))
        .collect();
    files.sort();
    files
}

fn getenv(name: &str) -> Option<String> {
    match name {
        "VERIFIER_TOKEN" => Some("token".into()),
        "ORDERS_JWT_SECRET" => Some("a-secret-for-the-security-pass-0123456789".into()),
        _ => None,
    }
}

#[test]
fn every_scenario_file_validates() {
    let files = scenario_files();
    assert!(files.len() >= 4, "{files:?}");
    let mut failed = Vec::new();
    for f in &files {
        if let Err(e) = verifier::plan::build(f, verifier::plan::PlanOptions::default(), &getenv) {
            failed.push(e.to_string());
        }
    }
    assert!(failed.is_empty(), "{}", failed.join("\n"));
}

/// The staging example: an external environment, faults on named proxies (the service's own
/// included), and a steady state for each fault.
#[test]
fn the_staging_example_faults_named_proxies() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios/staging-external.yaml");
    let plan = verifier::plan::build(&path, verifier::plan::PlanOptions::default(), &getenv)
        .unwrap_or_else(|e| panic!("{e}"));
    let s = &plan.scenario;
    let EnvironmentSpec::External(ext) = &s.environment else {
        panic!("not an external environment");
    };
    assert!(!s.faults.is_empty());
    for f in &s.faults {
        assert!(
            ext.proxies.contains_key(&f.target),
            "fault {} targets {}, not a key of proxies",
            f.name,
            f.target
        );
    }
    assert!(
        s.faults.iter().any(|f| f.target == "orders"),
        "the service's own proxy carries a fault"
    );
    let steady = s.steady_state.as_ref().expect("steady_state");
    for f in &s.faults {
        assert!(steady.during.contains_key(&f.name), "{}", f.name);
    }
    assert!(!ext.reset, "a shared Toxiproxy is never reset");
}
