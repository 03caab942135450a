//! The security pass against an in-process stand-in of the orders API: intact, every
//! security rule passes; each deliberate defect is caught by the rule made for it, with a
//! `curl` line to replay it. (The reference service itself passes them in
//! `shipped_scenarios.rs`.)

mod contract_common;
mod standin;
mod support;

use contract_common::caught;
use standin::{Break, failing, rule, run};
use verifier::rule::Status;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_intact_service_passes_every_security_and_contract_rule() {
    let r = run(&[]).await;
    assert_eq!(failing(&r), Vec::<String>::new());
    for id in [
        "security.auth.no_token",
        "security.auth.bad_signature",
        "security.auth.expired",
        "security.auth.alg_none",
        "security.isolation.getOrder",
        "security.isolation.cancelOrder",
        "security.isolation.listOrders",
        "security.rate_limit",
        "security.malformed.not_json",
        "security.malformed.wrong_types",
        "security.malformed.missing_required",
        "security.malformed.oversized",
        "security.generative",
        "contract.createOrder",
        "contract.getOrder",
        "contract.cancelOrder",
        "contract.listOrders",
        "contract.undeclared",
    ] {
        assert_eq!(rule(&r, id).status, Status::Pass, "{id}");
    }
    let g = rule(&r, "security.generative");
    assert!(g.observed.contains("of 120 probes"), "{g:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_or_bad_token_that_is_served_is_caught() {
    caught(Break::NoTokenAccepted, "security.auth.no_token", "not 401").await;
    caught(
        Break::AnySignature,
        "security.auth.bad_signature",
        "not 401",
    )
    .await;
    caught(Break::ExpiryIgnored, "security.auth.expired", "not 401").await;
    caught(Break::AlgNoneAccepted, "security.auth.alg_none", "not 401").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_tenants_order_read_or_cancelled_is_caught() {
    caught(
        Break::ReadLeaksTenant,
        "security.isolation.getOrder",
        "the answer shows tenant B's",
    )
    .await;
    caught(
        Break::ListLeaksTenant,
        "security.isolation.listOrders",
        "the answer shows tenant B's",
    )
    .await;
    // The cancel went through: B's order reads back changed, which is said too.
    caught(
        Break::CancelAnyTenant,
        "security.isolation.cancelOrder",
        "tenant B's resource changed",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_rate_limit_or_retry_after_is_caught() {
    caught(
        Break::NoRetryAfter,
        "security.rate_limit",
        "429 without Retry-After",
    )
    .await;
    caught(
        Break::NoRateLimit,
        "security.rate_limit",
        "no 429 after 400 requests",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_bodies_answered_with_5xx_or_no_problem_are_caught() {
    caught(
        Break::MalformedIs500,
        "security.malformed.not_json",
        "answered 500, not 4xx",
    )
    .await;
    caught(
        Break::ErrorNotProblem,
        "security.malformed.missing_required",
        "not application/problem+json",
    )
    .await;
    caught(
        Break::WrongTypeIs500,
        "security.malformed.wrong_types",
        "answered 500, not 4xx",
    )
    .await;
    caught(
        Break::OversizedIs500,
        "security.malformed.oversized",
        "answered 500, not 4xx",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_generative_pass_finds_a_5xx_at_a_boundary() {
    let r = run(&[Break::BoundaryIs500]).await;
    let x = rule(&r, "security.generative");
    assert_eq!(x.status, Status::Fail, "{x:?}");
    assert!(
        x.evidence
            .iter()
            .any(|e| e.contains("createOrder (boundary) answered 500")),
        "{:?}",
        x.evidence
    );
    // The hand-written malformed probes do not reach this defect: only generation does.
    assert_eq!(
        rule(&r, "security.malformed.wrong_types").status,
        Status::Pass
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pass_the_service_is_too_slow_to_finish_fails_within_its_budget() {
    let t0 = std::time::Instant::now();
    let r = run(&[Break::Slow]).await;
    let x = rule(&r, "security.pass");
    assert_eq!(x.status, Status::Fail, "{x:?}");
    assert!(
        x.observed.starts_with("cut off after 1 s"),
        "{}",
        x.observed
    );
    // 1 s of pass, 1 s of load at 300 ms per answer, bring-up: far below the 200 probes' 60 s.
    assert!(
        t0.elapsed() < std::time::Duration::from_secs(20),
        "{:?}",
        t0.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unset_secret_is_exit_2_before_anything_is_sent() {
    let dir = tempfile::tempdir().unwrap();
    let opts = verifier::run::RunOptions {
        scenario: standin::scenario(dir.path()),
        // Nothing listens here: the run must stop before its preflight would notice.
        target: Some("http://127.0.0.1:9".into()),
        baseline_target: None,
        report_dir: dir.path().join("report"),
        progress: verifier::report::progress::Mode::Off,
        shard: None,
    };
    let getenv = |k: &str| (k == "LOAD_TOKEN").then(|| "t".to_owned());
    let e = match verifier::run::run(&opts, verifier::load::Stop::new(), &getenv).await {
        Ok(_) => panic!("ran without the secret"),
        Err(e) => e,
    };
    assert_eq!(e.exit_code(), 2, "{e}");
    assert!(
        e.to_string().contains(
            "field `security.jwt.secret`: environment variable `STANDIN_SECRET` is not set"
        ),
        "{e}"
    );
}
