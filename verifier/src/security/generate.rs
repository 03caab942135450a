//! Request values generated from the contract's schemas, deterministically from a seed: valid
//! ones, boundary ones (valid, at the edges: longest strings, extreme numbers, fullest arrays)
//! and invalid ones (one rule of the schema broken, and which one said).

use rand010::rngs::StdRng;
use rand010::{RngExt, SeedableRng};
use serde_json::{Map, Value, json};

use crate::contract::Contract;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Valid,
    Boundary,
}

/// Deeper schemas than this get their minimal value: recursion in a contract must not recurse
/// here.
const MAX_DEPTH: usize = 8;

pub struct Generator<'a> {
    contract: &'a Contract,
    pub rng: StdRng,
}

impl<'a> Generator<'a> {
    pub fn new(contract: &'a Contract, seed: u64) -> Generator<'a> {
        Generator {
            contract,
            rng: StdRng::seed_from_u64(seed),
        }
    }

    /// The schema itself, `$ref`s followed (local ones only) and the first `allOf` member
    /// merged in.
    pub fn schema(&self, s: &'a Value) -> &'a Value {
        let mut s = s;
        for _ in 0..16 {
            match s
                .get("$ref")
                .and_then(|r| r.as_str())
                .and_then(|r| r.strip_prefix('#'))
                .and_then(|p| self.contract.doc.pointer(p))
            {
                Some(n) => s = n,
                None => break,
            }
        }
        s
    }

    fn ty(&mut self, s: &Value) -> String {
        match s.get("type") {
            Some(Value::String(t)) => t.clone(),
            Some(Value::Array(ts)) => ts
                .iter()
                .filter_map(|t| t.as_str())
                .find(|t| *t != "null")
                .unwrap_or("null")
                .to_owned(),
            _ if s.get("properties").is_some() => "object".into(),
            _ if s.get("items").is_some() => "array".into(),
            _ => "string".into(),
        }
    }

    pub fn value(&mut self, schema: &'a Value, mode: Mode, depth: usize) -> Value {
        let s = self.schema(schema);
        if let Some(c) = s.get("const") {
            return c.clone();
        }
        if let Some(Value::Array(e)) = s.get("enum")
            && !e.is_empty()
        {
            let i = self.rng.random_range(0..e.len());
            return e[i].clone();
        }
        for k in ["oneOf", "anyOf"] {
            if let Some(Value::Array(alts)) = s.get(k)
                && !alts.is_empty()
            {
                let i = self.rng.random_range(0..alts.len());
                return self.value(&alts[i], mode, depth + 1);
            }
        }
        if let Some(Value::Array(all)) = s.get("allOf")
            && let Some(first) = all.first()
        {
            return self.value(first, mode, depth + 1);
        }
        match self.ty(s).as_str() {
            "object" => self.object(s, mode, depth),
            "array" => {
                let min = uint(s, "minItems").unwrap_or(0);
                let max = uint(s, "maxItems").unwrap_or(min + 3).min(min.max(50));
                let n = if depth >= MAX_DEPTH {
                    min
                } else if mode == Mode::Boundary {
                    if self.rng.random_bool(0.5) { max } else { min }
                } else {
                    self.rng
                        .random_range(min.max(1).min(max)..=max.min(min.max(1) + 2))
                };
                let item = s.get("items").unwrap_or(&Value::Null);
                (0..n).map(|_| self.value(item, mode, depth + 1)).collect()
            }
            "integer" | "number" => {
                let int = self.ty(s) == "integer";
                let (lo, hi) = bounds(s, int);
                let v = if mode == Mode::Boundary {
                    if self.rng.random_bool(0.5) { hi } else { lo }
                } else {
                    self.rng.random_range(lo..=hi.min(lo + 1000.0))
                };
                if int {
                    json!(v.round() as i64)
                } else {
                    json!(v)
                }
            }
            "boolean" => json!(self.rng.random_bool(0.5)),
            "null" => Value::Null,
            _ => Value::String(self.string(s, mode)),
        }
    }

    fn object(&mut self, s: &'a Value, mode: Mode, depth: usize) -> Value {
        let mut out = Map::new();
        let required: Vec<&str> = s
            .get("required")
            .and_then(|r| r.as_array())
            .map(|r| r.iter().filter_map(|x| x.as_str()).collect())
            .unwrap_or_default();
        if let Some(props) = s.get("properties").and_then(|p| p.as_object()) {
            for (name, ps) in props {
                let take = required.contains(&name.as_str())
                    || (depth < MAX_DEPTH && (mode == Mode::Boundary || self.rng.random_bool(0.5)));
                if take {
                    out.insert(name.clone(), self.value(ps, mode, depth + 1));
                }
            }
        }
        Value::Object(out)
    }

    pub fn string(&mut self, s: &Value, mode: Mode) -> String {
        let min = uint(s, "minLength").unwrap_or(0);
        let max = uint(s, "maxLength");
        let fmt = s.get("format").and_then(|f| f.as_str()).unwrap_or("");
        let n: u32 = self.rng.random();
        match fmt {
            "uuid" => return self.uuid(),
            "email" => return format!("sec{n}@example.com"),
            "date-time" => return "2026-11-24T05:00:00Z".into(),
            "date" => return "2026-11-24".into(),
            "uri" => return format!("https://example.com/{n}"),
            _ => {}
        }
        // JSON Schema patterns are unanchored; the sampler knows no anchors, so a pattern
        // anchored at both ends loses them and an unanchored one is sampled as it is.
        if let Some(p) = s.get("pattern").and_then(|p| p.as_str())
            && let Ok(re) = rand_regex::Regex::compile(
                p.strip_prefix('^')
                    .unwrap_or(p)
                    .strip_suffix('$')
                    .unwrap_or(p.strip_prefix('^').unwrap_or(p)),
                8,
            )
        {
            // A few tries for a sample that also fits the length bounds.
            for _ in 0..8 {
                let v: String = self.rng.sample(&re);
                let len = v.chars().count();
                if len >= min && max.is_none_or(|m| len <= m) {
                    return v;
                }
            }
        }
        let len = match (mode, max) {
            (Mode::Boundary, Some(m)) => m.min(4096),
            (Mode::Boundary, None) => min.max(256),
            (Mode::Valid, m) => {
                let hi = m.unwrap_or(min + 12).min(min + 12).max(min);
                self.rng.random_range(min.max(1).min(hi)..=hi)
            }
        };
        (0..len)
            .map(|_| {
                let c = self.rng.random_range(0..36u8);
                char::from(if c < 10 { b'0' + c } else { b'a' + c - 10 })
            })
            .collect()
    }

    pub fn uuid(&mut self) -> String {
        let b: [u8; 16] = self.rng.random();
        uuid::Builder::from_random_bytes(b).into_uuid().to_string()
    }

    /// A valid value with exactly one rule of its schema broken somewhere inside it, and which.
    pub fn invalid(&mut self, schema: &'a Value) -> (Value, String) {
        let mut v = self.value(schema, Mode::Valid, 0);
        let mut sites = Vec::new();
        self.sites(schema, &v, String::new(), &mut sites, 0);
        if sites.is_empty() {
            return (
                json!([]),
                "the body is an array, not what the schema allows".into(),
            );
        }
        let i = self.rng.random_range(0..sites.len());
        let (ptr, s) = sites.swap_remove(i);
        let (bad, what) = self.break_one(s);
        let what = format!("{} at `{}`", what, if ptr.is_empty() { "/" } else { &ptr });
        match bad {
            Broken::Replace(b) => match v.pointer_mut(&ptr) {
                Some(slot) => *slot = b,
                None => v = b,
            },
            Broken::Remove(field) => {
                if let Some(Value::Object(o)) = v.pointer_mut(&ptr) {
                    o.remove(&field);
                }
            }
            Broken::Add(field) => {
                if let Some(Value::Object(o)) = v.pointer_mut(&ptr) {
                    o.insert(field, json!("unexpected"));
                }
            }
        }
        (v, what)
    }

    /// Every place in `v` with the schema that governs it.
    fn sites(
        &self,
        schema: &'a Value,
        v: &Value,
        ptr: String,
        out: &mut Vec<(String, &'a Value)>,
        depth: usize,
    ) {
        let s = self.schema(schema);
        out.push((ptr.clone(), s));
        if depth >= MAX_DEPTH {
            return;
        }
        match v {
            Value::Object(o) => {
                if let Some(props) = s.get("properties").and_then(|p| p.as_object()) {
                    for (k, child) in o {
                        if let Some(ps) = props.get(k) {
                            self.sites(ps, child, format!("{ptr}/{k}"), out, depth + 1);
                        }
                    }
                }
            }
            Value::Array(a) => {
                if let Some(is) = s.get("items") {
                    for (i, child) in a.iter().enumerate().take(2) {
                        self.sites(is, child, format!("{ptr}/{i}"), out, depth + 1);
                    }
                }
            }
            _ => {}
        }
    }

    /// One way to break `s`, picked from the ways its keywords allow.
    fn break_one(&mut self, s: &Value) -> (Broken, String) {
        let mut options: Vec<(Broken, String)> = Vec::new();
        let ty = self.ty(s);
        options.push(match ty.as_str() {
            "string" => (
                Broken::Replace(json!(12345)),
                "a number where a string belongs".into(),
            ),
            "object" => (
                Broken::Replace(json!("text")),
                "a string where an object belongs".into(),
            ),
            "array" => (
                Broken::Replace(json!({"a": 1})),
                "an object where an array belongs".into(),
            ),
            _ => (
                Broken::Replace(json!("text")),
                format!("a string where {ty} belongs"),
            ),
        });
        if s.get("type").and_then(|t| t.as_array()).is_none() {
            options.push((
                Broken::Replace(Value::Null),
                "null where it is not allowed".into(),
            ));
        }
        if let Some(m) = s.get("maximum").and_then(|m| m.as_f64()) {
            options.push((
                Broken::Replace(json!(m as i64 + 1)),
                format!("{} above the maximum", m as i64 + 1),
            ));
        }
        if let Some(m) = s.get("minimum").and_then(|m| m.as_f64()) {
            options.push((
                Broken::Replace(json!(m as i64 - 1)),
                format!("{} below the minimum", m as i64 - 1),
            ));
        }
        if let Some(m) = uint(s, "maxLength") {
            options.push((
                Broken::Replace(json!("x".repeat(m + 1))),
                format!("a string of {} characters, longer than allowed", m + 1),
            ));
        }
        if let Some(m) = uint(s, "minLength").filter(|m| *m > 0) {
            options.push((
                Broken::Replace(json!("")),
                format!("an empty string where at least {m} characters are required"),
            ));
        }
        if s.get("pattern").is_some() {
            options.push((
                Broken::Replace(json!("~ not matching ~")),
                "a string that does not match the pattern".into(),
            ));
        }
        if s.get("enum").is_some() {
            options.push((
                Broken::Replace(json!("not-one-of-the-values")),
                "a value outside the enum".into(),
            ));
        }
        if let Some(m) = uint(s, "minItems").filter(|m| *m > 0) {
            options.push((
                Broken::Replace(json!([])),
                format!("an empty array where at least {m} items are required"),
            ));
        }
        if let Some(req) = s.get("required").and_then(|r| r.as_array())
            && !req.is_empty()
        {
            let i = self.rng.random_range(0..req.len());
            if let Some(f) = req[i].as_str() {
                options.push((
                    Broken::Remove(f.to_owned()),
                    format!("required `{f}` left out"),
                ));
            }
        }
        if s.get("additionalProperties") == Some(&Value::Bool(false)) {
            options.push((
                Broken::Add("not_in_the_contract".into()),
                "an unknown property".into(),
            ));
        }
        let i = self.rng.random_range(0..options.len());
        options.swap_remove(i)
    }
}

enum Broken {
    Replace(Value),
    Remove(String),
    Add(String),
}

fn uint(s: &Value, k: &str) -> Option<usize> {
    s.get(k).and_then(|v| v.as_u64()).map(|v| v as usize)
}

/// Inclusive numeric bounds, exclusive ones moved inwards.
fn bounds(s: &Value, int: bool) -> (f64, f64) {
    let step = if int { 1.0 } else { 0.001 };
    let lo = s
        .get("minimum")
        .and_then(|v| v.as_f64())
        .or_else(|| {
            s.get("exclusiveMinimum")
                .and_then(|v| v.as_f64())
                .map(|v| v + step)
        })
        .unwrap_or(0.0);
    let hi = s
        .get("maximum")
        .and_then(|v| v.as_f64())
        .or_else(|| {
            s.get("exclusiveMaximum")
                .and_then(|v| v.as_f64())
                .map(|v| v - step)
        })
        .unwrap_or(lo + 1_000_000.0);
    (lo, hi.max(lo))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shipped() -> Contract {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios/smoke.yaml");
        Contract::load(
            &root,
            &crate::contract::ContractSpec {
                openapi: "../reference-service/api/openapi.yaml".into(),
                conformance: Default::default(),
            },
        )
        .unwrap()
    }

    fn validator(c: &Contract, ptr: &str) -> std::sync::Arc<Result<jsonschema::Validator, String>> {
        crate::contract::judge::Judge::new(std::sync::Arc::new(c.clone())).compiled(ptr)
    }

    #[test]
    fn valid_and_boundary_values_satisfy_the_schema_and_invalid_ones_do_not() {
        let c = shipped();
        let ptr = c.request_schema(c.by_id("createOrder").unwrap()).unwrap();
        let v = validator(&c, &ptr);
        let v = v.as_ref().as_ref().unwrap();
        let schema = c.doc.pointer(&ptr).unwrap();
        let mut g = Generator::new(&c, 7);
        for i in 0..60 {
            let mode = if i % 2 == 0 {
                Mode::Valid
            } else {
                Mode::Boundary
            };
            let x = g.value(schema, mode, 0);
            let errs: Vec<String> = v.iter_errors(&x).map(|e| e.to_string()).collect();
            assert!(errs.is_empty(), "{mode:?} {x}: {errs:?}");
            let (bad, what) = g.invalid(schema);
            assert!(!v.is_valid(&bad), "still valid after {what}: {bad}");
        }
    }

    #[test]
    fn the_same_seed_gives_the_same_values() {
        let c = shipped();
        let ptr = c.request_schema(c.by_id("createOrder").unwrap()).unwrap();
        let schema = c.doc.pointer(&ptr).unwrap();
        let a: Vec<Value> = {
            let mut g = Generator::new(&c, 42);
            (0..5).map(|_| g.invalid(schema).0).collect()
        };
        let mut g = Generator::new(&c, 42);
        let b: Vec<Value> = (0..5).map(|_| g.invalid(schema).0).collect();
        assert_eq!(a, b);
    }
}
