//! The rate limit: one tenant calls an operation until it is refused with a 429 problem that
//! says when to come back.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use super::check::Check;
use super::generate::{Generator, Mode};
use super::probe::{Prober, is_problem};
use super::spec::RateLimitSpec;
use crate::load::exchange::Exchange;
use crate::rule::RuleResult;

/// `Retry-After` is delta-seconds or an HTTP-date (RFC 9110 §10.2.3).
fn retry_after_ok(v: &str) -> bool {
    let v = v.trim();
    v.parse::<u64>().is_ok() || (v.len() >= 29 && v.ends_with("GMT") && v.contains(','))
}

pub(super) async fn rate_limit(p: &Prober, tok: &str, spec: &RateLimitSpec) -> RuleResult {
    let mut check = Check::new(
        "security.rate_limit",
        "over the limit → 429 problem+json with Retry-After",
    );
    let Some(op) = p.contract.by_id(&spec.operation) else {
        return check.finish("no such operation".into());
    };
    let mut g = Generator::new(&p.contract, 31);
    let probe = p
        .request(&mut g, op, Mode::Valid, None)
        .with_token(Some(tok));
    // Bounded in count and time: a service without a limit fails the check, it does not hang it.
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut sent = 0u32;
    let mut limited: Option<Exchange> = None;
    let mut statuses: BTreeMap<u16, u32> = BTreeMap::new();
    let mut errors = 0u32;
    while limited.is_none() && sent < spec.max_requests && Instant::now() < deadline {
        let n = spec.concurrency.min(spec.max_requests - sent);
        let batch = (0..n).map(|_| p.send(&probe));
        for r in futures::future::join_all(batch).await {
            sent += 1;
            match r {
                Ok(ex) => {
                    *statuses.entry(ex.status).or_default() += 1;
                    if ex.status == 429 && limited.is_none() {
                        limited = Some(ex);
                    }
                }
                Err(_) => errors += 1,
            }
        }
    }
    check.sent = sent;
    let seen: Vec<String> = statuses.iter().map(|(s, n)| format!("{s}×{n}")).collect();
    check.notes.push(format!(
        "statuses {}{}",
        seen.join(", "),
        if errors > 0 {
            format!(", {errors} without answer")
        } else {
            String::new()
        }
    ));
    match limited {
        None => {
            check.failed = 1;
            check.evidence.push(probe.unsent(&p.base).curl(false));
            check.evidence.push(format!(
                "✗ no 429 after {sent} requests at {} in flight",
                spec.concurrency
            ));
            check.finish(format!("no 429 in {sent} requests"))
        }
        Some(ex) => {
            let after = ex.header("retry-after").map(str::to_owned);
            let why = match &after {
                None => Some("429 without Retry-After".to_owned()),
                Some(v) if !retry_after_ok(v) => Some(format!(
                    "Retry-After `{v}` is neither seconds nor an HTTP-date"
                )),
                _ if !is_problem(&ex) => Some(format!(
                    "429 answered with `{}`, not application/problem+json",
                    ex.media_type().unwrap_or_default()
                )),
                _ => None,
            };
            check.sent -= 1;
            check.record(&ex, why);
            let observed = format!(
                "429 after {sent} requests, Retry-After {}",
                after.as_deref().unwrap_or("missing")
            );
            check.finish(observed)
        }
    }
}
