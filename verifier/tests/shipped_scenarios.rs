//! The shipped smoke scenario end to end, through the real CLI: it brings up PostgreSQL, Redis,
//! NATS and the payments stand-in as containers behind Toxiproxy, starts the orders service built
//! from this repository, runs 45 s of load and must pass. This is the CI smoke gate of the kit
//! itself, and what `make demo` does.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

mod support;

const SECRET: &str = "shipped-scenario-test-secret-0123456789abcdef";

#[test]
fn smoke_passes_against_the_reference_service() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let tmp = tempfile::tempdir().unwrap();
    let service = tmp.path().join("service");
    let devtoken = tmp.path().join("devtoken");
    support::go_build(&root, &service, "./cmd/service");
    support::go_build(&root, &devtoken, "./cmd/devtoken");

    // The shipped file, with the service binary this test built (the scenario's path is
    // relative to where `make` runs) and the contract where the copy can find it.
    let shipped = std::fs::read_to_string(root.join("scenarios/smoke.yaml")).unwrap();
    assert!(shipped.contains("command: [target/bin/service]"));
    let scenario = tmp.path().join("smoke.yaml");
    let contract = root.join("reference-service/api/openapi.yaml");
    std::fs::write(
        &scenario,
        shipped
            .replace(
                "command: [target/bin/service]",
                &format!("command: [\"{}\"]", service.display()),
            )
            // The contract path is relative to the scenario file, which moved.
            .replace(
                "openapi: ../reference-service/api/openapi.yaml",
                &format!("openapi: \"{}\"", contract.display()),
            ),
    )
    .unwrap();

    let token = Command::new(&devtoken)
        .args(["-tenant", "smoke"])
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
        .spawn()
        .unwrap();
    // 45 s of load plus bring-up and teardown; bounded.
    let status = support::wait_bounded(
        &mut child,
        std::time::Instant::now(),
        Duration::from_secs(300),
        "the smoke run",
    );
    let summary = std::fs::read_to_string(report_dir.join("summary.md")).unwrap_or_default();
    assert_eq!(status.code(), Some(0), "smoke did not pass:\n{summary}");
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(report_dir.join("report.json")).unwrap()).unwrap();
    assert_eq!(report["verdict"]["status"], "pass");
    assert!(
        report["overall"]["requests"].as_u64().unwrap() > 1_000,
        "{summary}"
    );
    let functional: Vec<&serde_json::Value> = report["verdict"]["rules"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["kind"] == "functional")
        .collect();
    assert!(functional.len() >= 6, "the functional pass ran: {summary}");
    // The security pass and contract conformance ran against the real service and held.
    let rules = report["verdict"]["rules"].as_array().unwrap();
    for prefix in [
        "security.auth.",
        "security.isolation.",
        "security.malformed.",
        "contract.",
    ] {
        assert!(
            rules
                .iter()
                .any(|r| r["id"].as_str().unwrap().starts_with(prefix)),
            "no {prefix}* rule:\n{summary}"
        );
    }
    for id in [
        "security.rate_limit",
        "security.generative",
        "contract.createOrder",
        "contract.undeclared",
    ] {
        assert!(
            rules.iter().any(|r| r["id"] == id && r["status"] == "pass"),
            "{id} did not pass:\n{summary}"
        );
    }
    // The observability acceptance checks ran against the real service, each its own rule.
    let observability: Vec<&serde_json::Value> = rules
        .iter()
        .filter(|r| r["kind"] == "observability")
        .collect();
    for id in [
        "observability.metric.http_server_request_duration_seconds",
        "observability.histogram.get-order.p99",
        "observability.trace",
        "observability.logs.json",
        "observability.logs.ids",
        "observability.logs.pii",
    ] {
        let r = observability
            .iter()
            .find(|r| r["id"] == id)
            .unwrap_or_else(|| panic!("no rule {id}:\n{summary}"));
        assert_eq!(r["status"], "pass", "{id}: {r}");
    }
    let h = &report["observability"]["histogram"];
    eprintln!(
        "get-order p99: server {} s (bucket {}), client {} s",
        h["server_s"], h["bucket_s"], h["client_s"]
    );
    assert!(report["observability"]["log_lines"].as_u64().unwrap() > 1_000);
    assert!(
        report.get("environment_problems").is_none(),
        "teardown problems: {}",
        report["environment_problems"]
    );
}
