//! The binary as CI runs it: exit codes, messages, and stop signals (Ctrl-C, SIGTERM).

mod support;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_verifier");

fn scenarios() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios")
}

/// `verifier validate FILES` with the variables the shipped scenarios bind set, as a run has
/// them: exit code, stdout, stderr.
fn validate(files: &[std::path::PathBuf]) -> (Option<i32>, String, String) {
    validate_env(
        files,
        &[("ORDERS_JWT_SECRET", "s"), ("VERIFIER_TOKEN", "t")],
    )
}

fn validate_env(
    files: &[std::path::PathBuf],
    vars: &[(&str, &str)],
) -> (Option<i32>, String, String) {
    let out = Command::new(BIN)
        .arg("validate")
        .args(files)
        .env_remove("ORDERS_JWT_SECRET")
        .env_remove("VERIFIER_TOKEN")
        .envs(vars.iter().copied())
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn validate_accepts_the_shipped_scenarios() {
    let (code, stdout, stderr) = validate(&[
        scenarios().join("smoke.yaml"),
        scenarios().join("acceptance.yaml"),
    ]);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stdout.contains("smoke.yaml: ok (open model"), "{stdout}");
}

/// What `run` refuses before load starts, `validate` refuses with the same message and exit 2:
/// here a variable the service's environment binds.
#[test]
fn validate_refuses_what_run_would_refuse() {
    let (code, _, stderr) = validate_env(&[scenarios().join("smoke.yaml")], &[]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains("smoke.yaml:")
            && stderr.contains("field `environment.testcontainers.service.env.ORDERS_JWT_SECRET`")
            && stderr.contains("ORDERS_JWT_SECRET, which is not set"),
        "{stderr}"
    );
    let out = Command::new(BIN)
        .args(["run", "--report-dir"])
        .arg(tempfile::tempdir().unwrap().path())
        .arg(scenarios().join("smoke.yaml"))
        .env_remove("ORDERS_JWT_SECRET")
        .output()
        .unwrap();
    let run_err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{run_err}");
    let line = stderr.lines().next().unwrap_or_default();
    assert!(
        run_err.contains(line),
        "run said {run_err}, validate said {line}"
    );
}

#[test]
fn validate_rejects_a_bad_file_with_exit_2_and_a_position() {
    let (_dir, path) = support::scenario_file("name: x\njourneys: []\nload: {}\n");
    let (code, _, stderr) = validate(&[path]);
    assert_eq!(code, Some(2));
    assert!(
        stderr.contains("scenario.yaml:3:7: field `load`"),
        "{stderr}"
    );
}

#[test]
fn validate_checks_the_trigger_file_a_scenario_names() {
    let (code, stdout, stderr) = validate(&[scenarios().join("chaos-drill.yaml")]);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stdout.contains("triggers)"), "{stdout}");

    let dir = tempfile::tempdir().unwrap();
    let scenario = |triggers: &str| {
        let p = dir.path().join("scenario.yaml");
        std::fs::write(
            &p,
            format!(
                "name: x\ntarget: http://127.0.0.1:9\njourneys:\n  - name: j\n    steps:\n      \
                 - {{name: s, method: GET, path: /}}\nload:\n  open:\n    phases:\n      \
                 - steady: {{rate: 1, duration: 1s}}\ntriggers:\n{triggers}\n"
            ),
        )
        .unwrap();
        let (code, _, stderr) = validate(&[p]);
        (code, stderr)
    };

    // The file is missing.
    let (code, stderr) = scenario("  file: nowhere.yaml");
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("nowhere.yaml"), "{stderr}");

    // The file has a definition error: named with its position in the trigger file.
    let triggers = |max: &str| {
        format!(
            "service: {{name: s, selector: 'job=\"s\"', requests: r_total, errors: 'code=\"5\"', \
             latency: l}}\nslo: {{target: 0.999}}\ntime_scale: 60\ntriggers:\n  - name: A\n    \
             severity: page\n    summary: a\n    condition: {{error_ratio: {{max: {max}, window: 5m}}}}\n"
        )
    };
    std::fs::write(dir.path().join("t.yaml"), triggers("2")).unwrap();
    let (code, stderr) = scenario("  file: t.yaml");
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains("t.yaml:") && stderr.contains("error_ratio"),
        "{stderr}"
    );

    // The scenario expects a trigger the file does not define: located in the scenario.
    std::fs::write(dir.path().join("t.yaml"), triggers("0.05")).unwrap();
    let (code, stderr) = scenario("  file: t.yaml\n  expect:\n    healthy: {quiet: [A, Nope]}");
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains("scenario.yaml:")
            && stderr.contains("triggers.expect.healthy.quiet[1]")
            && stderr.contains("`Nope`"),
        "{stderr}"
    );
    let (code, stderr) = scenario("  file: t.yaml\n  expect:\n    healthy: {quiet: [A]}");
    assert_eq!(code, Some(0), "{stderr}");
}

/// The drill's bad inputs, each refused by `validate` (exit 2) before anything starts, naming
/// the field: a trigger the file lacks, a fault on a dependency the environment does not start,
/// a detection time shorter than the evaluation interval or than the trigger's own `for`.
#[test]
fn validate_refuses_drill_expectations_that_cannot_be_met() {
    // A copy outside the tree, the files it names made absolute.
    let root = scenarios().join("..").canonicalize().unwrap();
    let text = std::fs::read_to_string(scenarios().join("chaos-drill-short.yaml"))
        .unwrap()
        .replace("../", &format!("{}/", root.display()));
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("drill.yaml");
    let check = |from: &str, to: &str, says: &[&str]| {
        assert!(text.contains(from), "{from}");
        std::fs::write(&p, text.replacen(from, to, 1)).unwrap();
        let (code, _, stderr) = validate(std::slice::from_ref(&p));
        assert_eq!(code, Some(2), "{from} -> {to}: {stderr}");
        for s in says {
            assert!(stderr.contains(s), "{from} -> {to}: want {s:?} in {stderr}");
        }
    };
    check(
        "fire: [OrdersHighErrorRatio]",
        "fire: [OrdersHighErrorRatioo]",
        &[
            "triggers.expect.pg-down.fire[0]",
            "no trigger is named `OrdersHighErrorRatioo`",
        ],
    );
    check(
        "dependencies: [postgres, redis, nats, payments]",
        "dependencies: [postgres, nats, payments]",
        &["`${redis.addr}` is not known here"],
    );
    let without_redis = "dependencies: [postgres, nats, payments]";
    let text2 = text
        .replacen(
            "dependencies: [postgres, redis, nats, payments]",
            without_redis,
            1,
        )
        .lines()
        .filter(|l| !l.contains("ORDERS_REDIS_ADDR"))
        .collect::<Vec<_>>()
        .join("\n");
    std::fs::write(&p, text2).unwrap();
    let (code, _, stderr) = validate(std::slice::from_ref(&p));
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains("field `faults[2].target`: unknown dependency `redis`"),
        "{stderr}"
    );
    check(
        "    within: 10s",
        "    within: 500ms",
        &["within`: 500ms is shorter than the evaluation interval `every` (1s)"],
    );
    check(
        "    within: 10s",
        "    within: 1500ms",
        &[
            "within`: 1500ms is shorter than the 2s `OrdersHighErrorRatio` must hold",
            "`for: 2m` divided by time_scale 60",
        ],
    );
}

#[test]
fn usage_error_is_exit_2() {
    let out = Command::new(BIN)
        .args(["run", "--no-such-flag"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_target_is_exit_3_with_a_clear_message() {
    let url = support::dead_url().await;
    let dir = tempfile::tempdir().unwrap();
    let t0 = Instant::now();
    let out = tokio::process::Command::new(BIN)
        .arg("run")
        .arg(scenarios().join("smoke.yaml"))
        .args(["--target", &url, "--progress", "off"])
        .arg("--report-dir")
        .arg(dir.path())
        .env("VERIFIER_TOKEN", "t")
        .env(
            "ORDERS_JWT_SECRET",
            "a-secret-for-the-security-pass-0123456789",
        )
        .output()
        .await
        .unwrap();
    assert!(
        t0.elapsed() < Duration::from_secs(3),
        "took {:?}",
        t0.elapsed()
    );
    assert_eq!(out.status.code(), Some(3));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!("target {url} is unreachable")),
        "{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_token_is_exit_2_before_any_load() {
    let srv = support::start(Duration::ZERO).await;
    let out = tokio::process::Command::new(BIN)
        .arg("run")
        .arg(scenarios().join("smoke.yaml"))
        .args(["--target", &srv.url, "--progress", "off"])
        .env_remove("VERIFIER_TOKEN")
        .output()
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("environment variable `VERIFIER_TOKEN` is not set"),
        "{stderr}"
    );
    assert_eq!(
        srv.state.requests.load(std::sync::atomic::Ordering::SeqCst),
        0
    );
}

/// The shipped smoke scenario without its contract, security and functional sections, which a
/// stand-in that only answers `{"ok":true}` would fail.
fn smoke_load_only(dir: &std::path::Path) -> std::path::PathBuf {
    let s = std::fs::read_to_string(scenarios().join("smoke.yaml")).unwrap();
    let mut v: serde_json::Value = serde_norway::from_str(&s).unwrap();
    let top = v.as_object_mut().unwrap();
    for section in ["contract", "security", "functional"] {
        assert!(
            top.remove(section).is_some(),
            "smoke.yaml has no `{section}`"
        );
    }
    let p = dir.join("smoke-load-only.yaml");
    std::fs::write(&p, serde_norway::to_string(&v).unwrap()).unwrap();
    p
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctrl_c_stops_load_and_leaves_a_partial_report() {
    stop_signal_leaves_a_partial_report("-INT").await;
}

/// SIGTERM is what CI runners and Kubernetes send: the same partial report as Ctrl-C.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_stops_load_and_leaves_a_partial_report() {
    stop_signal_leaves_a_partial_report("-TERM").await;
}

async fn stop_signal_leaves_a_partial_report(signal: &str) {
    let _serial = support::SERIAL.lock().await;
    let srv = support::start(Duration::from_millis(1)).await;
    let dir = tempfile::tempdir().unwrap();
    let child = tokio::process::Command::new(BIN)
        .arg("run")
        .arg(smoke_load_only(dir.path()))
        .args(["--target", &srv.url, "--progress", "lines"])
        .arg("--report-dir")
        .arg(dir.path())
        .env("VERIFIER_TOKEN", "t")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let pid = child.id().unwrap();
    let t0 = Instant::now();
    let kill = Command::new("kill")
        .args([signal, &pid.to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let out = tokio::time::timeout(Duration::from_secs(10), child.wait_with_output())
        .await
        .expect("exits after the stop signal")
        .unwrap();
    assert!(
        t0.elapsed() < Duration::from_secs(5),
        "stopped in {:?}",
        t0.elapsed()
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(4), "{stderr}");
    assert!(stderr.contains("[PARTIAL]"), "{stderr}");
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("report.json")).unwrap())
            .unwrap();
    assert_eq!(json["partial"], true);
    assert!(json["overall"]["requests"].as_u64().unwrap() > 0);
    assert!(
        !dir.path().join(".verifier.lock").exists(),
        "the run released its report directory"
    );
}

/// A stop signal while the environment is still coming up leaves a report too: partial, no
/// load sent, inconclusive (exit 4), and whatever had started is stopped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signal_while_the_environment_comes_up_leaves_a_partial_report() {
    let _serial = support::SERIAL.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let scenario = dir.path().join("never-ready.yaml");
    std::fs::write(
        &scenario,
        r#"name: never-ready
environment:
  testcontainers:
    dependencies: []
    startup_timeout: 60s
    service:
      command: ["sleep", "60"]
      ready_path: /readyz
      shutdown_grace: 1s
journeys:
  - name: ping
    steps:
      - { name: ping, method: GET, path: /ping }
load:
  open:
    phases:
      - steady: { rate: 5, duration: 2s }
"#,
    )
    .unwrap();
    let reports = dir.path().join("reports");
    let child = tokio::process::Command::new(BIN)
        .arg("run")
        .arg(&scenario)
        .args(["--progress", "off"])
        .arg("--report-dir")
        .arg(&reports)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    tokio::time::sleep(Duration::from_millis(2000)).await;
    let pid = child.id().unwrap();
    let kill = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let out = tokio::time::timeout(Duration::from_secs(20), child.wait_with_output())
        .await
        .expect("exits after the stop signal")
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(4), "{stderr}");
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(reports.join("report.json")).unwrap())
            .unwrap();
    assert_eq!(json["partial"], true, "{json}");
    assert_eq!(json["overall"]["requests"], 0);
    assert!(
        json["verdict"]["reason"]
            .as_str()
            .unwrap()
            .contains("environment was coming up"),
        "{json}"
    );
    assert!(!reports.join(".verifier.lock").exists());
}

/// `run` writes nothing to stdout: the summary and progress go to stderr, the reports to files.
/// goose prints `N users launched.` on its own, which must not reach a pipeline reading stdout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_closed_model_run_prints_nothing_on_stdout() {
    let _serial = support::SERIAL.lock().await;
    let srv = support::start(Duration::from_millis(1)).await;
    let (dir, path) = support::scenario_file(
        "name: quiet\njourneys:\n  - name: j\n    steps:\n      - { name: a, method: GET, path: /x }\n\
         load:\n  closed:\n    phases:\n      - ramp: { users: 3, duration: 1s }\n      \
         - steady: { duration: 1s }\n",
    );
    let out = tokio::process::Command::new(BIN)
        .arg("run")
        .arg(&path)
        .args(["--target", &srv.url, "--progress", "lines"])
        .arg("--report-dir")
        .arg(dir.path().join("report"))
        .output()
        .await
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    // No budgets: the run records and is inconclusive.
    assert_eq!(out.status.code(), Some(4), "{stderr}");
    assert!(
        srv.state.requests.load(std::sync::atomic::Ordering::SeqCst) > 10,
        "{stderr}"
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), "", "stderr: {stderr}");
    assert!(!stderr.contains("users launched"), "{stderr}");
    assert!(
        stderr.contains("INCONCLUSIVE"),
        "the summary is on stderr: {stderr}"
    );
}

/// A reader that went away (`verifier ... | head`) is not a crash: what cannot be printed is
/// dropped, and the exit code is still the command's own.
#[test]
fn a_closed_output_pipe_is_not_a_crash() {
    for (args, expect) in [
        (vec!["validate", "no-such-file.yaml"], 2),
        (vec!["schema", "scenario"], 0),
    ] {
        let (reader, writer) = std::io::pipe().unwrap();
        drop(reader);
        let writer2 = writer.try_clone().unwrap();
        let out = Command::new(BIN)
            .args(&args)
            .stdin(Stdio::null())
            .stdout(writer)
            .stderr(writer2)
            .status()
            .unwrap();
        assert_eq!(out.code(), Some(expect), "{args:?}: {out:?}");
    }
}
