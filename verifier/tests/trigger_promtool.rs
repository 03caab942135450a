//! The checked-in rules pass `promtool check rules`, and their unit tests (`rules_test.yml`, each
//! alert firing on a breaching series and quiet otherwise) pass `promtool test rules`; the
//! compose stack's Prometheus configuration, which loads those rules, passes `promtool check config`.

use std::path::{Path, PathBuf};
use std::process::Command;

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../dashboards/prometheus")
}

fn promtool(args: &[&str]) -> String {
    let out = Command::new("promtool")
        .args(args)
        .current_dir(dir())
        .output()
        .expect("promtool is installed (Debian package `prometheus`)");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "promtool {}:\n{text}", args.join(" "));
    text
}

#[test]
fn promtool_check_rules() {
    let out = promtool(&["check", "rules", "rules.yml"]);
    assert!(out.contains("SUCCESS"), "{out}");
}

#[test]
fn promtool_test_rules() {
    let out = promtool(&["test", "rules", "rules_test.yml"]);
    assert!(out.contains("SUCCESS"), "{out}");
}

#[test]
fn promtool_check_compose_config() {
    let out = promtool(&["check", "config", "prometheus.yml"]);
    assert!(
        out.contains("SUCCESS") && out.contains("rules.yml"),
        "{out}"
    );
}
