//! The assertion shared by the tests that break the stand-in on purpose
//! (`contract_conformance.rs`, `security_checks.rs`).

use crate::standin::{Break, rule, run};
use verifier::rule::{RuleResult, Status};

/// Runs with `b` and asserts `id` failed with evidence that replays it (a `curl` line) and
/// says `why`; returns the rule for checks of its own.
pub async fn caught(b: Break, id: &str, why: &str) -> RuleResult {
    let r = run(&[b]).await;
    let x = rule(&r, id);
    assert_eq!(x.status, Status::Fail, "{b:?} not caught by {id}: {x:?}");
    assert!(
        x.evidence.iter().any(|e| e.starts_with("curl ")),
        "{id} has no curl line: {:?}",
        x.evidence
    );
    assert!(
        x.evidence.iter().any(|e| e.contains(why)),
        "{id} does not say `{why}`: {:?}",
        x.evidence
    );
    x.clone()
}
