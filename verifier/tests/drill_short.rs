//! The short chaos drill (`scenarios/chaos-drill-short.yaml`) under test: the service built from
//! this repository, its PostgreSQL, Redis, NATS and payments stand-in as containers behind
//! Toxiproxy, every fault class of the full drill once. It must pass as shipped, with every
//! steady-state phase, trigger expectation and nothing-lost invariant judged; and it must fail
//! against the same service started with its outbox relay off (no NATS URL: accepted orders'
//! events never leave the outbox), naming the lost events and the outbox triggers that fired
//! before any fault.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

mod support;

const SECRET: &str = "drill-short-test-secret-0123456789abcdef";

struct Run {
    code: Option<i32>,
    summary: String,
    rules: Vec<serde_json::Value>,
    /// The report's `triggers` section.
    triggers: serde_json::Value,
}

impl Run {
    fn status(&self, id: &str) -> &str {
        self.rules
            .iter()
            .find(|r| r["id"] == id)
            .and_then(|r| r["status"].as_str())
            .unwrap_or("absent")
    }

    fn ids(&self, status: &str) -> Vec<&str> {
        self.rules
            .iter()
            .filter(|r| r["status"] == status)
            .filter_map(|r| r["id"].as_str())
            .collect()
    }
}

/// A drill under way.
struct Started {
    name: String,
    child: std::process::Child,
    report_dir: PathBuf,
    started: Instant,
}

/// Starts the short drill with `edit` applied to its text, the service and the files it names
/// made absolute.
fn start(tmp: &Path, name: &str, edit: impl Fn(String) -> String) -> Started {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .canonicalize()
        .unwrap();
    let service = tmp.join("service");
    let devtoken = tmp.join("devtoken");
    if !service.exists() {
        support::go_build(&root, &service, "./cmd/service");
        support::go_build(&root, &devtoken, "./cmd/devtoken");
    }
    let text = std::fs::read_to_string(root.join("scenarios/chaos-drill-short.yaml")).unwrap();
    assert!(text.contains("command: [target/bin/service]"));
    let text = text
        .replace(
            "command: [target/bin/service]",
            &format!("command: [\"{}\"]", service.display()),
        )
        .replace(
            "../reference-service/",
            &format!("{}/reference-service/", root.display()),
        )
        .replace("../dashboards/", &format!("{}/dashboards/", root.display()));
    let scenario = tmp.join(format!("{name}.yaml"));
    std::fs::write(&scenario, edit(text)).unwrap();

    let token = Command::new(&devtoken)
        .args(["-tenant", "demo"])
        .env("ORDERS_JWT_SECRET", SECRET)
        .output()
        .unwrap();
    assert!(token.status.success());
    let token = String::from_utf8(token.stdout).unwrap().trim().to_owned();

    let report_dir = tmp.join(format!("{name}-report"));
    let child = Command::new(env!("CARGO_BIN_EXE_verifier"))
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
    Started {
        name: name.to_owned(),
        child,
        report_dir,
        started: Instant::now(),
    }
}

/// Waits for the drill (bounded to 6 minutes from its start) and reads its report.
fn finish(mut s: Started) -> Run {
    let what = format!("the {} drill", s.name);
    let status = support::wait_bounded(&mut s.child, s.started, Duration::from_secs(360), &what);
    let took = s.started.elapsed();
    let name = &s.name;
    let summary = std::fs::read_to_string(s.report_dir.join("summary.md")).unwrap_or_default();
    let report: serde_json::Value = serde_json::from_slice(
        &std::fs::read(s.report_dir.join("report.json"))
            .unwrap_or_else(|e| panic!("{name}: no report.json ({e}); exit {status:?}")),
    )
    .unwrap();
    let rules = report["verdict"]["rules"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    eprintln!(
        "{name} drill: exit {:?} in {:.0} s, {} rules",
        status.code(),
        took.as_secs_f64(),
        rules.len()
    );
    Run {
        code: status.code(),
        summary,
        rules,
        triggers: report["triggers"].clone(),
    }
}

#[test]
fn the_short_drill_passes_and_fails_against_a_service_with_its_relay_off() {
    let tmp = tempfile::tempdir().unwrap();

    // Both drills at once, each with its own containers, service and Prometheus: they spend
    // their time waiting on the fault timeline, not on the CPU (25 journeys/s each).
    let healthy = start(tmp.path(), "healthy", |t| t);
    // The same service without its relay: orders are accepted, their events never published.
    let weak = start(tmp.path(), "relay-off", |t| {
        let t2 = t.replace(
            "ORDERS_NATS_URL: nats://${nats.addr}",
            "ORDERS_NATS_URL: \"\"",
        );
        assert_ne!(t, t2, "the scenario no longer sets ORDERS_NATS_URL");
        t2
    });
    let healthy = finish(healthy);
    let weak = finish(weak);
    assert_eq!(
        healthy.code,
        Some(0),
        "the short drill failed against the service as built:\n{}",
        healthy.summary
    );
    // Every kind of rule of the full drill was judged, for every fault.
    for fault in [
        "pg-slow",
        "pg-down",
        "redis-down",
        "nats-down",
        "payments-slow",
        "payments-reset",
    ] {
        let judged: Vec<&str> = healthy
            .rules
            .iter()
            .filter_map(|r| r["id"].as_str())
            .filter(|id| id.contains(fault))
            .collect();
        assert!(
            judged
                .iter()
                .any(|id| id.starts_with(&format!("trigger.{fault}."))),
            "{fault}: no trigger expectation judged, only {judged:?}"
        );
        assert!(
            judged
                .iter()
                .any(|id| id.starts_with(&format!("steady.recovered.{fault}."))),
            "{fault}: no recovery judged, only {judged:?}"
        );
    }
    // Every trigger of dashboards/triggers.yaml is seen to fire on some fault, both over the
    // verifier's own measurements and over PromQL (the slow burn at its own drill_time_scale),
    // and the report names none as untested or unwatched in the healthy phase.
    let fired: std::collections::BTreeSet<&str> = healthy
        .ids("pass")
        .into_iter()
        .filter(|id| id.contains(".fire."))
        .filter_map(|id| id.split(".fire.").nth(1))
        .map(|t| t.trim_end_matches(".prometheus"))
        .collect();
    assert_eq!(
        fired.into_iter().collect::<Vec<_>>(),
        [
            "OrdersCreateLatencyP99",
            "OrdersErrorBudgetFastBurn",
            "OrdersErrorBudgetSlowBurn",
            "OrdersHighErrorRatio",
            "OrdersOutboxBacklog",
            "OrdersOutboxStale",
            "PaymentsBreakerOpen",
        ]
    );
    for list in ["untested", "unwatched"] {
        assert!(
            healthy.triggers[list]
                .as_array()
                .is_none_or(|l| l.is_empty()),
            "the report lists {list} triggers: {}",
            healthy.triggers[list]
        );
    }
    let quiet_in_healthy = healthy
        .ids("pass")
        .into_iter()
        .filter(|id| id.starts_with("trigger.healthy.quiet.") && !id.ends_with(".prometheus"))
        .count();
    assert_eq!(
        quiet_in_healthy, 7,
        "every trigger watched in the healthy phase"
    );
    for prefix in [
        "invariants.acknowledged-exists",
        "invariants.event-published",
        "steady.during.",
        "trigger.healthy.",
    ] {
        let passed = healthy.ids("pass");
        assert!(
            passed.iter().any(|id| id.starts_with(prefix)),
            "no passing {prefix} rule:\n{}",
            healthy.summary
        );
    }

    assert_eq!(
        weak.code,
        Some(1),
        "the short drill did not fail against a service with its relay off:\n{}",
        weak.summary
    );
    let failed = weak.ids("fail");
    assert!(
        failed.contains(&"invariants.event-published"),
        "the lost events were not named: failed {failed:?}"
    );
    let lost = weak
        .rules
        .iter()
        .find(|r| r["id"] == "invariants.event-published")
        .unwrap();
    assert!(
        lost["detail"]
            .as_str()
            .unwrap_or_default()
            .contains("has no stream `ORDERS`"),
        "{lost}"
    );
    // Without a relay the events pile up from the first order: the outbox triggers fire while
    // the service is still meant to be healthy, before any fault.
    assert!(
        failed
            .iter()
            .any(|id| id.starts_with("trigger.healthy.quiet.OrdersOutbox")),
        "the outbox triggers did not fire in the healthy phase: failed {failed:?}"
    );
    // The orders themselves were stored: the failure is the events, not the writes.
    assert_eq!(weak.status("invariants.acknowledged-exists"), "pass");
}
