//! Contract conformance against an in-process stand-in of the orders API: every response of
//! the load and of the probes is judged against the shipped OpenAPI document, and each
//! deliberate deviation fails the operation's rule with the request, the answer and the
//! place in the document that says otherwise. A scenario whose steps call operations the
//! document lacks is refused before anything starts.

mod contract_common;
mod standin;
mod support;

use standin::{Break, rule, run, run_edited};
use verifier::rule::Status;

/// [`contract_common::caught`], and the evidence shows the answer too.
async fn caught(b: Break, id: &str, why: &str) {
    let x = contract_common::caught(b, id, why).await;
    assert!(
        x.evidence.iter().any(|e| e.starts_with("→ ")),
        "{id} does not show the answer: {:?}",
        x.evidence
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_undeclared_status_is_caught() {
    caught(
        Break::UndeclaredStatus,
        "contract.createOrder",
        "status 202 is not declared for createOrder",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_content_type_is_caught() {
    caught(
        Break::WrongContentType,
        "contract.getOrder",
        "content type `text/plain` is not declared for status 200",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_that_breaks_the_schema_is_caught_with_the_schema_path() {
    caught(
        Break::BodyNotSchema,
        "contract.getOrder",
        "(contract: #/components/schemas/Order/properties/amount_minor/type)",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_error_that_is_not_problem_json_is_caught() {
    caught(
        Break::ErrorNotProblem,
        "contract.getOrder",
        "content type `application/json` is not declared for status 404",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_closed_model_load_is_judged_too() {
    // Without the security pass, so only the goose engine's responses reach the judge.
    let r = run_edited(&[Break::BodyNotSchema], |y| {
        let y = y.replace(
            "  open:\n    phases:\n      - steady: {rate: 10, duration: 1s}",
            "  closed:\n    phases: [{ramp: {users: 2, duration: 1s}}, {steady: {duration: 1s}}]",
        );
        y[..y.find("security:").unwrap()].to_owned()
    })
    .await;
    assert_eq!(r.model, "closed");
    let x = rule(&r, "contract.getOrder");
    assert_eq!(x.status, Status::Fail, "{x:?}");
    assert!(
        x.evidence
            .iter()
            .any(|e| e.contains("#/components/schemas/Order/properties/amount_minor/type")),
        "{:?}",
        x.evidence
    );
    assert!(
        !r.verdict
            .rules
            .iter()
            .any(|x| x.id.starts_with("security.")),
        "no security section, no security rules"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn load_responses_are_sampled_and_said_so() {
    let r = run(&[]).await;
    let x = rule(&r, "contract.getOrder");
    assert_eq!(x.status, Status::Pass, "{x:?}");
    // `first: 5, every: 2` in the stand-in scenario: 10 load arrivals see 10 getOrder 200s,
    // of which 5 + 3 are judged, plus the probes' own.
    assert!(
        x.detail
            .contains("first 5 per step and status, then 1 in 2"),
        "{}",
        x.detail
    );
    let u = rule(&r, "contract.undeclared");
    assert_eq!(u.status, Status::Pass);
    assert!(u.observed.starts_with("0 requests"), "{}", u.observed);
}

fn scenario_error(extra: &str, step_path: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    let p = standin::scenario(dir.path());
    let yaml = std::fs::read_to_string(&p)
        .unwrap()
        .replace("path: /v1/orders?limit=5", &format!("path: {step_path}"))
        + extra;
    std::fs::write(&p, yaml).unwrap();
    verifier::plan::load_file(&p).unwrap_err().to_string()
}

#[test]
fn a_step_outside_the_contract_is_refused_before_load() {
    let e = scenario_error("", "/v1/order-list");
    assert!(
        e.contains("field `journeys[0].steps[3].path`")
            && e.contains("GET /v1/order-list is not an operation of"),
        "{e}"
    );
    assert!(
        e.contains("scenario.yaml:28:15: "),
        "no line and column: {e}"
    );
}

#[test]
fn a_contract_that_does_not_parse_or_a_security_section_naming_no_operation_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let p = standin::scenario(dir.path());
    let yaml = std::fs::read_to_string(&p).unwrap();
    let bad = dir.path().join("bad.yaml");
    std::fs::write(&bad, "openapi: [unclosed").unwrap();
    let with = |y: String| {
        std::fs::write(&p, y).unwrap();
        verifier::plan::load_file(&p).unwrap_err().to_string()
    };
    let e = with(yaml.replace(
        &yaml[yaml.find("  openapi: ").unwrap()..yaml.find("\n  conformance").unwrap()],
        &format!("  openapi: {}", bad.display()),
    ));
    assert!(
        e.contains("field `contract.openapi`") && e.contains("is not YAML or JSON"),
        "{e}"
    );
    let e = with(yaml.replace("create: createOrder", "create: placeOrder"));
    assert!(
        e.contains("field `security.isolation.create`")
            && e.contains("`placeOrder` is not an operationId"),
        "{e}"
    );
    let e = with(yaml.replace("every: 2", "every: 0"));
    assert!(e.contains("field `contract.conformance.every`"), "{e}");
    let no_contract = {
        let start = yaml.find("contract:\n").unwrap();
        let end = yaml.find("security:\n").unwrap();
        format!("{}{}", &yaml[..start], &yaml[end..])
    };
    let e = with(no_contract);
    assert!(
        e.contains("field `security`") && e.contains("add `contract:"),
        "{e}"
    );
}
