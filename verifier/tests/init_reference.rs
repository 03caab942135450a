//! The scenario `verifier init` writes from the reference service's OpenAPI document passes
//! against the reference service: built from this repository, started by the verifier's
//! testcontainers environment (PostgreSQL, Redis, NATS and the payments stand-in as containers),
//! with the generated journeys, contract check and starting budgets unchanged. Only the
//! environment section is added (the generated file aims at a `target` the user runs).

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

mod support;

const SECRET: &str = "init-reference-test-secret-0123456789abcdef";

/// The `environment:` section of the shipped smoke scenario, as text.
fn smoke_environment(root: &std::path::Path, service: &std::path::Path) -> String {
    let smoke = std::fs::read_to_string(root.join("scenarios/smoke.yaml")).unwrap();
    let mut out = String::new();
    let mut inside = false;
    for line in smoke.lines() {
        if line.starts_with("environment:") {
            inside = true;
        } else if inside && !line.is_empty() && !line.starts_with([' ', '#']) {
            break;
        }
        if inside {
            out.push_str(line);
            out.push('\n');
        }
    }
    assert!(out.contains("command: [target/bin/service]"), "{out}");
    out.replace(
        "command: [target/bin/service]",
        &format!("command: [\"{}\"]", service.display()),
    )
}

#[test]
fn generated_scenario_passes_against_the_reference_service() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let tmp = tempfile::tempdir().unwrap();
    let service = tmp.path().join("service");
    let devtoken = tmp.path().join("devtoken");
    support::go_build(&root, &service, "./cmd/service");
    support::go_build(&root, &devtoken, "./cmd/devtoken");

    let generated = tmp.path().join("generated.yaml");
    let out = Command::new(env!("CARGO_BIN_EXE_verifier"))
        .arg("init")
        .arg("--openapi")
        .arg(root.join("reference-service/api/openapi.yaml"))
        .arg("--output")
        .arg(&generated)
        .env_remove("VERIFIER_TARGET")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = std::fs::read_to_string(&generated).unwrap();
    // The environment starts the service and knows its address: the generated target goes.
    let scenario = tmp.path().join("with-environment.yaml");
    let body: String = text
        .lines()
        .filter(|l| !l.starts_with("target:"))
        .map(|l| format!("{l}\n"))
        .collect();
    std::fs::write(&scenario, body + "\n" + &smoke_environment(&root, &service)).unwrap();

    let token = Command::new(&devtoken)
        .args(["-tenant", "demo"])
        .env("ORDERS_JWT_SECRET", SECRET)
        .output()
        .unwrap();
    assert!(token.status.success());
    let token = String::from_utf8(token.stdout).unwrap().trim().to_owned();

    let report_dir = tmp.path().join("report");
    let mut child = Command::new(env!("CARGO_BIN_EXE_verifier"))
        .arg("run")
        .arg(&scenario)
        .arg("--report-dir")
        .arg(&report_dir)
        .args(["--progress", "off"])
        .env("ORDERS_JWT_SECRET", SECRET)
        .env("VERIFIER_TOKEN", token)
        .env_remove("VERIFIER_TARGET")
        .spawn()
        .unwrap();
    // 40 s of load plus bring-up and teardown; bounded.
    let status = support::wait_bounded(
        &mut child,
        std::time::Instant::now(),
        Duration::from_secs(300),
        "the run",
    );
    let summary = std::fs::read_to_string(report_dir.join("summary.md")).unwrap_or_default();
    assert_eq!(
        status.code(),
        Some(0),
        "the generated scenario did not pass:\n{summary}"
    );
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(report_dir.join("report.json")).unwrap()).unwrap();
    assert_eq!(report["verdict"]["status"], "pass");
    let rules = report["verdict"]["rules"].as_array().unwrap();
    // The generated contract section ran and held on the operations the journeys call.
    for id in [
        "contract.createOrder",
        "contract.getOrder",
        "contract.listOrders",
    ] {
        assert!(
            rules.iter().any(|r| r["id"] == id && r["status"] == "pass"),
            "{id} did not pass:\n{summary}"
        );
    }
    let endpoints: Vec<&str> = report["endpoints"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["name"].as_str().unwrap())
        .collect();
    assert_eq!(endpoints, ["create-order", "get-order", "list-orders"]);
    assert!(
        report["overall"]["requests"].as_u64().unwrap() > 150,
        "{summary}"
    );
}
