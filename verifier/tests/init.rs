//! `verifier init`: the starter scenario from the reference service's document plans as `run`
//! plans it; documents it cannot use, an existing output and a silent target are refused with
//! their exit codes; calibration against a loopback server sets the budgets from measurement.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use verifier::init::{InitOptions, init};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn reference_doc() -> PathBuf {
    root().join("reference-service/api/openapi.yaml")
}

fn token(k: &str) -> Option<String> {
    (k == "VERIFIER_TOKEN").then(|| "test-token".to_owned())
}

fn verifier(args: &[&str], dir: &Path) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_verifier"))
        .args(args)
        .current_dir(dir)
        .env("VERIFIER_TOKEN", "test-token")
        .env_remove("VERIFIER_TARGET")
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn reference_document_gives_a_scenario_that_plans() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("orders.yaml");
    let p = verifier::init::prepare(&reference_doc(), &out, None).unwrap();
    let text = verifier::init::text(&p, &verifier::init::Budgets::Starting).unwrap();
    std::fs::write(&out, &text).unwrap();

    let plan = verifier::plan::build(&out, Default::default(), &token).unwrap();
    let s = &plan.scenario;
    let journeys: Vec<(&str, Vec<&str>)> = s
        .journeys
        .iter()
        .map(|j| {
            (
                j.name.as_str(),
                j.steps.iter().map(|st| st.name.as_str()).collect(),
            )
        })
        .collect();
    assert_eq!(
        journeys,
        vec![
            ("create-order-journey", vec!["create-order", "get-order"]),
            ("list-orders-journey", vec!["list-orders"]),
        ]
    );
    let create = &s.journeys[0].steps[0];
    assert_eq!(create.expect_status, vec![201]);
    assert!(create.capture.contains_key("order_id"));
    assert!(create.headers.contains_key("Idempotency-Key"));
    // The read uses the captured id; the auth header comes from the environment.
    assert!(text.contains("path: /v1/orders/${order_id}"), "{text}");
    assert!(
        text.contains("Authorization: \"Bearer ${env.VERIFIER_TOKEN}\""),
        "{text}"
    );
    // The example's card (a Luhn check digit no pattern gives) and a fresh email per order.
    assert!(text.contains("card_number: '4242424242424242'"), "{text}");
    assert!(
        text.contains("customer_email: init-${seq}@example.com"),
        "{text}"
    );
    assert!(s.contract.is_some() && s.openapi.is_some());
    for step in ["create-order", "get-order", "list-orders"] {
        assert!(
            s.budgets.endpoints.contains_key(step),
            "no budget for {step}"
        );
    }
    // Every operation left out is named with its reason.
    for id in [
        "cancelOrder",
        "setKillSwitches",
        "getKillSwitches",
        "livez",
        "readyz",
        "metrics",
    ] {
        assert!(
            text.contains(&format!("#   {id} (")),
            "{id} not listed:\n{text}"
        );
    }
    // The same document always gives the same file.
    let again = verifier::init::text(
        &verifier::init::prepare(&reference_doc(), &out, None).unwrap(),
        &verifier::init::Budgets::Starting,
    )
    .unwrap();
    assert_eq!(text, again);
}

#[test]
fn the_command_writes_a_file_validate_accepts_and_names_the_document_relatively() {
    let tmp = tempfile::tempdir().unwrap();
    let svc = tmp.path().join("svc");
    std::fs::create_dir_all(svc.join("api")).unwrap();
    std::fs::copy(reference_doc(), svc.join("api/openapi.yaml")).unwrap();
    std::fs::create_dir(tmp.path().join("scenarios")).unwrap();
    let (code, err) = verifier(
        &[
            "init",
            "--openapi",
            "svc/api/openapi.yaml",
            "--output",
            "scenarios/orders.yaml",
        ],
        tmp.path(),
    );
    assert_eq!(code, 0, "{err}");
    let text = std::fs::read_to_string(tmp.path().join("scenarios/orders.yaml")).unwrap();
    assert!(text.contains("openapi: ../svc/api/openapi.yaml"), "{text}");
    let (code, err) = verifier(&["validate", "scenarios/orders.yaml"], tmp.path());
    assert_eq!(code, 0, "{err}");
}

#[test]
fn documents_it_cannot_use_are_exit_2_with_the_reason() {
    let tmp = tempfile::tempdir().unwrap();
    let cases = [
        (
            "swagger.yaml",
            "swagger: '2.0'\ninfo: {title: x, version: '1'}\npaths: {/a: {get: {responses: {'200': {description: ok}}}}}\n",
            "Swagger 2.0 document",
        ),
        (
            "garbage.yaml",
            "{ this is: [not yaml\n",
            "neither YAML nor JSON",
        ),
        (
            "empty.yaml",
            "openapi: 3.0.3\ninfo: {title: x, version: '1'}\npaths: {}\n",
            "declares no operations",
        ),
        (
            "only-deletes.json",
            r#"{"openapi": "3.1.0", "info": {"title": "x", "version": "1"},
                "paths": {"/a/{id}": {"delete": {"responses": {"204": {"description": "gone"}}}}}}"#,
            "none of its 1 operations can start a journey",
        ),
        ("missing.yaml", "", "cannot read it"),
    ];
    for (name, body, why) in cases {
        if !body.is_empty() {
            std::fs::write(tmp.path().join(name), body).unwrap();
        }
        let (code, err) = verifier(
            &["init", "--openapi", name, "--output", "out.yaml"],
            tmp.path(),
        );
        assert_eq!(code, 2, "{name}: {err}");
        assert!(err.contains(name) && err.contains(why), "{name}: {err}");
        assert!(!tmp.path().join("out.yaml").exists(), "{name} wrote a file");
    }
}

#[test]
fn an_existing_output_is_kept_unless_forced() {
    let tmp = tempfile::tempdir().unwrap();
    let doc = reference_doc();
    let doc = doc.to_str().unwrap();
    std::fs::write(tmp.path().join("mine.yaml"), "my own scenario\n").unwrap();
    let (code, err) = verifier(
        &["init", "--openapi", doc, "--output", "mine.yaml"],
        tmp.path(),
    );
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("exists") && err.contains("--force"), "{err}");
    assert_eq!(
        std::fs::read_to_string(tmp.path().join("mine.yaml")).unwrap(),
        "my own scenario\n"
    );
    let (code, err) = verifier(
        &["init", "--openapi", doc, "--output", "mine.yaml", "--force"],
        tmp.path(),
    );
    assert_eq!(code, 0, "{err}");
    let text = std::fs::read_to_string(tmp.path().join("mine.yaml")).unwrap();
    assert!(
        text.starts_with("# A starter scenario for Orders API"),
        "{text}"
    );
    // No temporary file left beside it.
    let names: Vec<_> = std::fs::read_dir(tmp.path()).unwrap().collect();
    assert_eq!(names.len(), 1);
}

#[tokio::test]
async fn a_target_that_does_not_answer_is_exit_3_and_writes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("s.yaml");
    let dead = support::dead_url().await;
    let opts = InitOptions {
        openapi: reference_doc(),
        target: Some(dead.clone()),
        calibrate: Some(Duration::from_secs(2)),
        output: out.clone(),
        force: false,
    };
    let e = init(&opts, &token).await.unwrap_err();
    assert_eq!(e.exit_code(), 3, "{e}");
    assert!(e.to_string().contains(&dead), "{e}");
    assert!(!out.exists());
    // Without the token the document's scheme needs, nothing is sent: a usage error.
    let e = init(&opts, &|_| None).await.unwrap_err();
    assert_eq!(e.exit_code(), 2, "{e}");
    assert!(e.to_string().contains("VERIFIER_TOKEN"), "{e}");
    // --calibrate without a target, and a bad duration, are usage errors.
    let e = init(
        &InitOptions {
            target: None,
            ..opts.clone()
        },
        &token,
    )
    .await
    .unwrap_err();
    assert_eq!(e.exit_code(), 2, "{e}");
    let e = init(
        &InitOptions {
            calibrate: Some(Duration::from_secs(3600)),
            ..opts
        },
        &token,
    )
    .await
    .unwrap_err();
    assert_eq!(e.exit_code(), 2, "{e}");
}

/// Create and read on the loopback test server (which answers in microseconds): calibration
/// measures both steps and sets budgets from them; the result plans.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calibration_sets_budgets_from_the_measured_p99() {
    let _serial = support::SERIAL.lock().await;
    let server = support::start(Duration::from_millis(30)).await;
    let tmp = tempfile::tempdir().unwrap();
    let doc = tmp.path().join("api.yaml");
    std::fs::write(
        &doc,
        r#"openapi: 3.0.3
info: {title: Test orders, version: '1'}
paths:
  /v1/orders:
    post:
      operationId: createOrder
      requestBody:
        required: true
        content:
          application/json:
            schema:
              type: object
              required: [sku]
              properties: {sku: {type: string, pattern: '^[A-Z]{3}-[0-9]{2}$'}}
      responses:
        '201':
          description: created
          content:
            application/json:
              schema: {type: object, properties: {id: {type: string}, status: {type: string}}}
  /v1/orders/{id}:
    get:
      operationId: getOrder
      parameters: [{name: id, in: path, required: true, schema: {type: string}}]
      responses: {'200': {description: ok}}
"#,
    )
    .unwrap();
    let out = tmp.path().join("s.yaml");
    let summary = init(
        &InitOptions {
            openapi: doc,
            target: Some(server.url.clone()),
            calibrate: Some(Duration::from_secs(2)),
            output: out.clone(),
            force: false,
        },
        &token,
    )
    .await
    .unwrap();
    assert!(summary.contains("calibrated"), "{summary}");
    let text = std::fs::read_to_string(&out).unwrap();
    assert!(text.contains("measured p99 × 3"), "{text}");
    // 30 ms of service time: p99 ≈ 30-40 ms, × 3 rounded up to 10 ms.
    let budget = |step: &str| -> Duration {
        let line = text
            .lines()
            .find(|l| l.trim_start().starts_with(&format!("{step}: {{ p99:")))
            .unwrap_or_else(|| panic!("no budget line for {step}:\n{text}"));
        let v = line
            .split("p99:")
            .nth(1)
            .unwrap()
            .trim()
            .trim_end_matches('}')
            .trim();
        verifier::scenario::parse_duration(v).unwrap()
    };
    for step in ["create-order", "get-order"] {
        let b = budget(step);
        assert!(
            b >= Duration::from_millis(90) && b <= Duration::from_millis(600),
            "{step}: {b:?}\n{text}"
        );
        assert_eq!(b.as_millis() % 10, 0);
    }
    assert!(
        server
            .state
            .requests
            .load(std::sync::atomic::Ordering::SeqCst)
            >= 10
    );
    verifier::plan::build(&out, Default::default(), &token).unwrap();
}
