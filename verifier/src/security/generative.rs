//! The generative pass: a bounded number of valid, boundary and invalid requests generated
//! (by [`generate`](super::generate)) from the contract's schemas, in turn over every operation;
//! no answer may be a 5xx or a status the operation does not declare.

use std::collections::BTreeMap;

use bytes::Bytes;

use super::check::Check;
use super::generate::{Generator, Mode};
use super::probe::Prober;
use super::spec::GenerativeSpec;
use crate::contract::Operation;
use crate::rule::RuleResult;

pub(super) async fn generative(p: &Prober, tok: &str, spec: &GenerativeSpec) -> RuleResult {
    let mut check = Check::new(
        "security.generative",
        "generated valid, boundary and invalid requests → no 5xx, only declared statuses",
    );
    let ops: Vec<&Operation> = p.operations().collect();
    if ops.is_empty() {
        return check.finish("no operations".into());
    }
    let mut g = Generator::new(&p.contract, spec.seed);
    let mut classes: BTreeMap<String, u32> = BTreeMap::new();
    for i in 0..spec.requests as usize {
        let op = ops[i % ops.len()];
        let kind = (i / ops.len()) % 3;
        let mut probe = p
            .request(
                &mut g,
                op,
                if kind == 1 {
                    Mode::Boundary
                } else {
                    Mode::Valid
                },
                None,
            )
            .with_token(Some(tok));
        let mut what = if kind == 1 { "boundary" } else { "valid" }.to_owned();
        if kind == 2 {
            if let Some(ptr) = p.contract.request_schema(op)
                && let Some(schema) = p.contract.doc.pointer(&ptr)
            {
                let (bad, why) = g.invalid(schema);
                probe.body = Some(Bytes::from(bad.to_string()));
                what = format!("invalid: {why}");
            } else if probe.path.contains('?') || op.path.contains('{') {
                // No body to break: break the parameters instead.
                probe.path = format!(
                    "{}?limit=-1&cursor=%00",
                    probe.path.split('?').next().unwrap_or("")
                );
                what = "invalid query parameters".into();
            }
        }
        let r = p.send(&probe).await;
        let contract = p.contract.clone();
        check.sent_or_failed(&probe, &p.base, r, |ex| {
            let class = format!("{}xx", ex.status / 100);
            *classes.entry(class).or_default() += 1;
            if ex.status >= 500 {
                Some(format!("{} ({what}) answered {}", op.id, ex.status))
            } else if contract.response_for(op, ex.status).is_none() {
                Some(format!(
                    "{} ({what}) answered undeclared {}",
                    op.id, ex.status
                ))
            } else {
                None
            }
        });
    }
    let seen: Vec<String> = classes.iter().map(|(c, n)| format!("{c}×{n}")).collect();
    check.notes.push(format!(
        "seed {}, {} operations, answers {}",
        spec.seed,
        ops.len(),
        seen.join(", ")
    ));
    check.finish_counted()
}
