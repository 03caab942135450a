//! Malformed bodies: not JSON, fields of the wrong type, required fields left out, an oversized
//! body; each must be refused with a 4xx problem, never a 5xx.

use bytes::Bytes;
use serde_json::Value;

use super::check::Check;
use super::generate::Generator;
use super::probe::{Probe, Prober, is_problem};
use super::spec::MalformedSpec;
use crate::contract::Operation;
use crate::load::exchange::Exchange;
use crate::rule::RuleResult;

/// Expects a 4xx problem, never a 5xx.
fn expect_4xx_problem(ex: &Exchange) -> Option<String> {
    if !(400..500).contains(&ex.status) {
        Some(format!("answered {}, not 4xx", ex.status))
    } else if !is_problem(ex) {
        Some(format!(
            "{} answered with `{}`, not application/problem+json",
            ex.status,
            ex.media_type().unwrap_or_default()
        ))
    } else {
        None
    }
}

pub(super) async fn malformed(p: &Prober, tok: &str, spec: &MalformedSpec) -> Vec<RuleResult> {
    let c = p.contract.clone();
    let mut g = Generator::new(&c, 47);
    let with_body: Vec<(&Operation, &Value)> = p
        .operations()
        .filter_map(|o| {
            let ptr = c.request_schema(o)?;
            Some((o, c.doc.pointer(&ptr)?))
        })
        .collect();
    let mut not_json = Check::new(
        "security.malformed.not_json",
        "a body that is not JSON → 4xx problem+json",
    );
    let mut types = Check::new(
        "security.malformed.wrong_types",
        "a field of the wrong type → 4xx problem+json",
    );
    let mut missing = Check::new(
        "security.malformed.missing_required",
        "a required field left out → 4xx problem+json",
    );
    let mut big = Check::new(
        "security.malformed.oversized",
        &format!("a {} byte body → 4xx problem+json", spec.oversized_bytes),
    );
    for (op, schema) in &with_body {
        let base = p.canonical(&mut g, op, None).with_token(Some(tok));
        let valid: Value = base
            .body
            .as_ref()
            .and_then(|b| serde_json::from_slice(b).ok())
            .unwrap_or(Value::Null);
        let send = |probe: Probe| async move {
            let r = p.send(&probe).await;
            (probe, r)
        };
        let fresh = |mut probe: Probe, g: &mut Generator<'_>| {
            // A new idempotency key per probe, so no probe is answered by another's replay.
            for (n, v) in probe.headers.iter_mut() {
                if n.eq_ignore_ascii_case("idempotency-key") {
                    *v = g.uuid();
                }
            }
            probe
        };
        let (pr, r) =
            send(fresh(base.clone(), &mut g).with_body(Bytes::from_static(b"{\"items\": ["))).await;
        not_json.sent_or_failed(&pr, &p.base, r, expect_4xx_problem);

        let s = g.schema(schema);
        let props: Vec<String> = s
            .get("properties")
            .and_then(|p| p.as_object())
            .map(|o| o.keys().cloned().collect())
            .unwrap_or_default();
        for name in props.iter().take(10) {
            let mut v = valid.clone();
            let prop_schema = g.schema(&s["properties"][name]);
            let wrong = match prop_schema.get("type").and_then(|t| t.as_str()) {
                Some("string") => serde_json::json!({"not": "a string"}),
                _ => serde_json::json!("not the declared type"),
            };
            if let Value::Object(o) = &mut v {
                o.insert(name.clone(), wrong);
            }
            let (pr, r) =
                send(fresh(base.clone(), &mut g).with_body(Bytes::from(v.to_string()))).await;
            types.sent_or_failed(&pr, &p.base, r, expect_4xx_problem);
        }
        let required: Vec<String> = s
            .get("required")
            .and_then(|r| r.as_array())
            .map(|a| {
                a.iter()
                    .filter_map(|x| x.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default();
        for name in required.iter().take(10) {
            let mut v = valid.clone();
            if let Value::Object(o) = &mut v {
                o.remove(name);
            }
            let (pr, r) =
                send(fresh(base.clone(), &mut g).with_body(Bytes::from(v.to_string()))).await;
            missing.sent_or_failed(&pr, &p.base, r, expect_4xx_problem);
        }
        // Valid JSON, too large: one long string inside an otherwise valid body.
        let mut v = valid.clone();
        if let Value::Object(o) = &mut v {
            o.insert(
                "padding".into(),
                Value::String("x".repeat(spec.oversized_bytes)),
            );
        } else {
            v = Value::String("x".repeat(spec.oversized_bytes));
        }
        let (pr, r) = send(fresh(base.clone(), &mut g).with_body(Bytes::from(v.to_string()))).await;
        big.sent_or_failed(&pr, &p.base, r, expect_4xx_problem);
    }
    let mut out = Vec::new();
    for mut c in [not_json, types, missing, big] {
        if with_body.is_empty() {
            c.notes
                .push("no operation of the contract takes a JSON body".into());
        }
        out.push(c.finish_counted());
    }
    out
}
