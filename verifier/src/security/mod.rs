//! The API security pass, run once before the load: authentication (no token, a bad
//! signature, an expired token, `alg: none`), tenant isolation, the rate limit, malformed
//! bodies, and a bounded generative pass over the contract's request schemas. Each check is
//! its own rule with the offending requests as `curl` lines.
//!
//! The verifier mints its own HS256 tokens from the scenario's secret, one fresh tenant per
//! purpose (A and B for isolation, one for the rate limit, one for the generative pass), so
//! the probes neither see the load's data nor spend its tenant's rate budget. Every response
//! is also judged for contract conformance.
//!
//! By stage: `spec` (the section and its validation), `probe` (sending requests built from
//! the contract), `check` (one rule's probes and evidence), then one file per probe family:
//! `auth`, `isolation`, `rate_limit`, `malformed` and `generative` (requests from [`generate`]).

mod auth;
mod check;
pub mod generate;
mod generative;
mod isolation;
mod malformed;
mod probe;
mod rate_limit;
mod spec;
pub mod token;

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::contract::Contract;
use crate::contract::conformance::Conformance;
use crate::rule::{RuleKind, RuleResult, Status};
use probe::Prober;

pub use spec::{
    GenerativeSpec, IsolationSpec, MalformedSpec, RateLimitSpec, SecuritySpec, validate,
};

/// What the pass needs from the run.
pub struct Pass<'a> {
    pub spec: &'a SecuritySpec,
    pub contract: Arc<Contract>,
    /// `http://host:port/prefix`.
    pub base: String,
    pub timeout: Duration,
    pub conformance: Option<Arc<Conformance>>,
    /// Made from `spec.jwt` when the run is planned, so an unset secret stops the run before
    /// anything is sent.
    pub minter: token::Minter,
}

/// Runs every check within the section's budget.
pub async fn run(pass: Pass<'_>) -> Result<Vec<RuleResult>, String> {
    let minter = &pass.minter;
    let http = reqwest::Client::builder()
        .timeout(pass.timeout)
        .connect_timeout(pass.timeout)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|e| format!("http client: {e}"))?;
    let run_id = &uuid::Uuid::new_v4().simple().to_string()[..8];
    let p = Prober {
        http,
        base: pass.base.clone(),
        contract: pass.contract.clone(),
        conformance: pass.conformance.clone(),
        skip: pass.spec.skip.clone(),
    };
    let budget = pass.spec.budget.0;
    let started = Instant::now();
    match tokio::time::timeout(budget, checks(&p, minter, pass.spec, run_id)).await {
        Ok(rules) => Ok(rules),
        Err(_) => Ok(vec![
            RuleResult::new("security.pass", RuleKind::Security, Status::Fail)
                .scope("security pass")
                .budget(format!("the pass ends within {} s", budget.as_secs()))
                .observed(format!(
                    "cut off after {:.0} s",
                    started.elapsed().as_secs_f64()
                ))
                .detail("the service answered the probes too slowly to finish the pass"),
        ]),
    }
}

async fn checks(
    p: &Prober,
    minter: &token::Minter,
    spec: &SecuritySpec,
    run_id: &str,
) -> Vec<RuleResult> {
    let tenant = |role: &str| format!("vsec-{run_id}-{role}");
    let mut rules = Vec::new();
    rules.extend(auth::auth(p, minter, &tenant("auth")).await);
    if let Some(iso) = &spec.isolation {
        rules.extend(isolation::isolation(p, minter, iso, &tenant("a"), &tenant("b")).await);
    }
    if let Some(rl) = &spec.rate_limit {
        rules.push(rate_limit::rate_limit(p, &minter.valid(&tenant("rate")), rl).await);
    }
    rules.extend(malformed::malformed(p, &minter.valid(&tenant("bad")), &spec.malformed).await);
    if spec.generative.requests > 0 {
        rules
            .push(generative::generative(p, &minter.valid(&tenant("gen")), &spec.generative).await);
    }
    rules
}
