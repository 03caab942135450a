//! Authentication: every secured operation without a token, with a forged signature, with an
//! expired token and with `alg: none` must be refused with a 401 problem.

use super::check::Check;
use super::generate::{Generator, Mode};
use super::probe::{Prober, is_problem};
use super::token;
use crate::contract::Operation;
use crate::load::exchange::Exchange;
use crate::rule::RuleResult;

/// Expects a 401 problem; anything else is what is wrong.
fn expect_401(ex: &Exchange) -> Option<String> {
    if ex.status != 401 {
        Some(format!("answered {}, not 401", ex.status))
    } else if !is_problem(ex) {
        Some(format!(
            "401 answered with `{}`, not application/problem+json",
            ex.media_type().unwrap_or_default()
        ))
    } else {
        None
    }
}

pub(super) async fn auth(p: &Prober, minter: &token::Minter, tenant: &str) -> Vec<RuleResult> {
    let valid = minter.valid(tenant);
    let variants: [(&str, &str, Option<String>); 4] = [
        (
            "security.auth.no_token",
            "no Authorization header → 401 problem+json",
            None,
        ),
        (
            "security.auth.bad_signature",
            "a token with a forged signature → 401 problem+json",
            Some(token::forge_signature(&valid)),
        ),
        (
            "security.auth.expired",
            "a correctly signed token that expired an hour ago → 401 problem+json",
            Some(minter.expired(tenant)),
        ),
        (
            "security.auth.alg_none",
            "an unsigned token (`alg: none`) → 401 problem+json",
            Some(token::alg_none(&valid)),
        ),
    ];
    let mut g = Generator::new(&p.contract, 11);
    let secured: Vec<&Operation> = p
        .operations()
        .filter(|o| p.contract.is_secured(o))
        .collect();
    let mut out = Vec::new();
    for (id, budget, tok) in variants {
        let mut check = Check::new(id, budget);
        // The bad token itself is what a person replays.
        check.keep_auth = true;
        for op in &secured {
            let probe = p
                .request(&mut g, op, Mode::Valid, None)
                .with_token(tok.as_deref());
            let r = p.send(&probe).await;
            check.sent_or_failed(&probe, &p.base, r, expect_401);
        }
        if secured.is_empty() {
            check
                .notes
                .push("the contract declares no secured operation".into());
        }
        out.push(check.finish_counted());
    }
    out
}
