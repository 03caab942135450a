//! Tenant isolation: tenant B creates a resource; tenant A reads, changes and lists by its id
//! and must find nothing, see none of B's data, and change nothing of it.

use serde_json::Value;

use super::check::Check;
use super::generate::{Generator, Mode};
use super::probe::{Prober, scalar};
use super::spec::IsolationSpec;
use super::token;
use crate::contract::Operation;
use crate::load::exchange::Exchange;
use crate::rule::{RuleKind, RuleResult, Status};
use crate::scenario::Method;

pub(super) async fn isolation(
    p: &Prober,
    minter: &token::Minter,
    spec: &IsolationSpec,
    a: &str,
    b: &str,
) -> Vec<RuleResult> {
    let (ta, tb) = (minter.valid(a), minter.valid(b));
    let Some(create) = p.contract.by_id(&spec.create) else {
        return Vec::new();
    };
    let mut g = Generator::new(&p.contract, 23);
    let family = format!("{}/{{", create.path.trim_end_matches('/'));
    let probes: Vec<&Operation> = p
        .operations()
        .filter(|o| o.path.starts_with(&family) && o.path.matches('{').count() == 1)
        .collect();
    let list = p
        .operations()
        .find(|o| o.method == Method::Get && o.path == create.path);
    let read = probes.iter().copied().find(|o| o.method == Method::Get);

    // Tenant B's resource, and how it reads before A tries anything.
    let made = p.canonical(&mut g, create, None).with_token(Some(&tb));
    let created = p.send(&made).await;
    let setup_failed = |why: String, ex: Option<&Exchange>| {
        let mut ev = vec![ex.map_or_else(|| made.unsent(&p.base).curl(false), |e| e.curl(false))];
        if let Some(e) = ex {
            ev.push(e.answer_line());
        }
        vec![
            RuleResult::new(
                "security.isolation",
                RuleKind::Security,
                Status::Inconclusive,
            )
            .scope("security pass")
            .budget("another tenant's resource is not found and never shown")
            .observed("not tested")
            .detail(why)
            .evidence(ev),
        ]
    };
    let created = match created {
        Err(e) => return setup_failed(format!("tenant B could not create: {e}"), None),
        Ok(ex) if !(200..300).contains(&ex.status) => {
            return setup_failed(
                format!("tenant B's {} answered {}", create.id, ex.status),
                Some(&ex),
            );
        }
        Ok(ex) => ex,
    };
    let body: Value = serde_json::from_slice(&created.body).unwrap_or(Value::Null);
    let Some(id) = body.pointer(&spec.id).map(scalar) else {
        return setup_failed(
            format!("the create answer has no id at `{}`", spec.id),
            Some(&created),
        );
    };
    // What must never reach tenant A: the longer strings B sent and got back. The id is
    // among them only for the listing: an answer to a request by id may echo the path.
    let mut secrets = Vec::new();
    if let Some(b) = &made.body
        && let Ok(v) = serde_json::from_slice::<Value>(b)
    {
        strings(&v, &mut secrets);
    }
    strings(&body, &mut secrets);
    secrets.retain(|s| *s != id);
    secrets.sort();
    secrets.dedup();
    let read_b = read.map(|op| p.canonical(&mut g, op, Some(&id)).with_token(Some(&tb)));
    let before = match &read_b {
        Some(r) => p.send(r).await.ok().map(|e| e.body),
        None => None,
    };

    let leaks = |ex: &Exchange, with_id: bool| -> Option<String> {
        let text = String::from_utf8_lossy(&ex.body);
        secrets
            .iter()
            .chain(with_id.then_some(&id))
            .find(|s| text.contains(s.as_str()))
            .map(|s| format!("the answer shows tenant B's `{s}`"))
    };
    let mut out = Vec::new();
    for op in &probes {
        let mut check = Check::new(
            &format!("security.isolation.{}", op.id),
            "tenant A using tenant B's id → 404, none of B's data",
        );
        let probe = p.canonical(&mut g, op, Some(&id)).with_token(Some(&ta));
        let r = p.send(&probe).await;
        check.sent_or_failed(&probe, &p.base, r, |ex| {
            leaks(ex, false)
                .or_else(|| (ex.status != 404).then(|| format!("answered {}, not 404", ex.status)))
        });
        out.push((op.method, check));
    }
    if let Some(op) = list {
        let mut check = Check::new(
            &format!("security.isolation.{}", op.id),
            "tenant A's listing shows none of tenant B's data",
        );
        let probe = p
            .request(&mut g, op, Mode::Valid, None)
            .with_token(Some(&ta));
        let r = p.send(&probe).await;
        check.sent_or_failed(&probe, &p.base, r, |ex| leaks(ex, true));
        out.push((op.method, check));
    }
    // A's attempts must have changed nothing of B's.
    if let (Some(before), Some(r)) = (before, &read_b) {
        match p.send(r).await {
            Ok(after) if after.body != before => {
                // Reads cannot have changed it; the changing probes did.
                for (_, check) in out.iter_mut().filter(|(m, _)| *m != Method::Get) {
                    check.failed += 1;
                    check.evidence.push(after.curl(false));
                    check.evidence.push(format!(
                        "✗ tenant B's resource changed: before {} / after {}",
                        crate::load::exchange::excerpt(&before, 300),
                        crate::load::exchange::excerpt(&after.body, 300)
                    ));
                }
            }
            Ok(_) => {
                for (_, check) in out.iter_mut() {
                    check
                        .notes
                        .push("tenant B's resource read back unchanged".into());
                }
            }
            Err(e) => {
                for (_, check) in out.iter_mut() {
                    check
                        .notes
                        .push(format!("tenant B's read-back failed: {e}"));
                }
            }
        }
    }
    out.into_iter().map(|(_, c)| c.finish_counted()).collect()
}

fn strings(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::String(s) if s.len() >= 8 => out.push(s.clone()),
        Value::Array(a) => a.iter().for_each(|x| strings(x, out)),
        Value::Object(o) => o.values().for_each(|x| strings(x, out)),
        _ => {}
    }
}
