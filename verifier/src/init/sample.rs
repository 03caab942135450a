//! Request values from JSON Schemas: one JSON value per schema whose strings may be scenario
//! templates (`${uuid}`, `${seq}`, `${choice(..)}`, `${random(a,b)}`), so every request the
//! load sends differs where the schema lets it and stays valid where it does not.
//!
//! Precedence for a leaf: `const`, then `enum` (a `${choice}`), then the formats that are safe
//! to vary (uuid, email), then an example the document gives (the schema's own `example`, or the
//! request's example at the same place), then the schema's bounds and simple patterns. An
//! example beats a generated value because a document's example is the one value its authors
//! vouch for: a card number with a check digit (`format: luhn`) cannot be made from its pattern.

use rand010::rngs::StdRng;
use rand010::{RngExt, SeedableRng};
use serde_json::{Map, Number, Value};

/// Deepest nesting followed; recursive schemas stop here.
const MAX_DEPTH: usize = 8;
/// Most items generated for an array, whatever its `minItems`.
const MAX_ITEMS: u64 = 10;
/// Longest string generated from `minLength` alone.
const MAX_LEN: u64 = 256;
/// Most values generated for one body: wide recursive schemas stop here, not at memory's end.
const MAX_NODES: usize = 2000;

pub struct Sampler<'a> {
    doc: &'a Value,
    rng: StdRng,
    /// Values left to generate for the current body.
    left: usize,
    /// Fields whose value a person should check, by JSON path: a format the generator cannot
    /// honour and no example to fall back on.
    pub unsure: Vec<String>,
}

impl<'a> Sampler<'a> {
    /// A fixed seed: the same document always gives the same scenario.
    pub fn new(doc: &'a Value) -> Sampler<'a> {
        Sampler {
            doc,
            rng: StdRng::seed_from_u64(17),
            left: MAX_NODES,
            unsure: Vec::new(),
        }
    }

    /// Follows local `$ref`s, bounded so a reference cycle cannot hang.
    pub fn resolve<'v>(&self, mut v: &'v Value) -> &'v Value
    where
        'a: 'v,
    {
        for _ in 0..16 {
            match v
                .get("$ref")
                .and_then(Value::as_str)
                .and_then(|r| r.strip_prefix('#'))
                .and_then(|p| self.doc.pointer(p))
            {
                Some(next) => v = next,
                None => break,
            }
        }
        v
    }

    /// A value for `schema`; `example` is the document's example for the same place, if any.
    pub fn value(&mut self, schema: &Value, example: Option<&Value>, path: &str) -> Value {
        self.left = MAX_NODES;
        self.at(schema, example, path, 0)
    }

    fn at(&mut self, schema: &Value, example: Option<&Value>, path: &str, depth: usize) -> Value {
        let s = self.resolve(schema);
        if self.left == 0 {
            return Value::Null;
        }
        self.left -= 1;
        if depth > MAX_DEPTH {
            return example.cloned().map(literal).unwrap_or(Value::Null);
        }
        if let Some(c) = s.get("const") {
            return literal(c.clone());
        }
        // allOf: the union of the parts' properties; oneOf/anyOf: the first alternative.
        if let Some(parts) = s.get("allOf").and_then(Value::as_array) {
            let mut merged = Map::new();
            let mut required = Vec::new();
            let mut props = Map::new();
            for p in parts.iter().take(16) {
                let p = self.resolve(p);
                if let Some(r) = p.get("required").and_then(Value::as_array) {
                    required.extend(r.iter().cloned());
                }
                if let Some(o) = p.get("properties").and_then(Value::as_object) {
                    props.extend(o.clone());
                }
            }
            merged.insert("type".into(), Value::String("object".into()));
            merged.insert("required".into(), Value::Array(required));
            merged.insert("properties".into(), Value::Object(props));
            return self.object(&Value::Object(merged), example, path, depth);
        }
        for key in ["oneOf", "anyOf"] {
            if let Some(first) = s.get(key).and_then(Value::as_array).and_then(|a| a.first()) {
                return self.at(first, example, path, depth + 1);
            }
        }
        if let Some(values) = s.get("enum").and_then(Value::as_array)
            && let Some(v) = choice(values)
        {
            return v;
        }
        let example = own_example(s).or(example);
        match kind(s) {
            "object" => self.object(s, example, path, depth),
            "array" => self.array(s, example, path, depth),
            "integer" => self.integer(s, example),
            "number" => match example.filter(|e| e.is_number()) {
                Some(e) => e.clone(),
                None => self.integer(s, None),
            },
            "boolean" => example
                .filter(|e| e.is_boolean())
                .cloned()
                .unwrap_or(Value::Bool(true)),
            "null" => Value::Null,
            _ => self.string(s, example, path),
        }
    }

    fn object(&mut self, s: &Value, example: Option<&Value>, path: &str, depth: usize) -> Value {
        let props = s.get("properties").and_then(Value::as_object);
        let required: Vec<&str> = s
            .get("required")
            .and_then(Value::as_array)
            .map(|r| r.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        // Without properties the example is the best a generator can do.
        if props.is_none()
            && let Some(e) = example.filter(|e| e.is_object())
        {
            return literal(e.clone());
        }
        let mut out = Map::new();
        for name in required {
            if out.contains_key(name) {
                continue;
            }
            let ex = example.and_then(|e| e.get(name));
            let sub = props.and_then(|p| p.get(name)).unwrap_or(&Value::Null);
            let v = self.at(sub, ex, &format!("{path}.{name}"), depth + 1);
            out.insert(name.to_owned(), v);
        }
        Value::Object(out)
    }

    fn array(&mut self, s: &Value, example: Option<&Value>, path: &str, depth: usize) -> Value {
        let n = s
            .get("minItems")
            .and_then(Value::as_u64)
            .unwrap_or(1)
            .clamp(1, MAX_ITEMS);
        let items = s.get("items").unwrap_or(&Value::Null);
        let ex = example.and_then(Value::as_array).and_then(|a| a.first());
        (0..n)
            .map(|i| self.at(items, ex, &format!("{path}[{i}]"), depth + 1))
            .collect()
    }

    fn integer(&mut self, s: &Value, example: Option<&Value>) -> Value {
        if let Some(e) = example.filter(|e| e.is_number()) {
            return e.clone();
        }
        let (lo, hi) = bounds(s);
        if let Some(m) = s
            .get("multipleOf")
            .and_then(Value::as_i64)
            .filter(|m| *m > 0)
        {
            // One valid multiple, written out: `${random}` cannot step.
            let first = lo.div_euclid(m) * m + if lo.rem_euclid(m) == 0 { 0 } else { m };
            return Value::Number(Number::from(first));
        }
        // A narrow range of ordinary values: the schema's extremes are for another test.
        let hi = hi.min(lo.saturating_add(99));
        if lo == hi {
            Value::Number(Number::from(lo))
        } else {
            Value::String(format!("${{random({lo},{hi})}}"))
        }
    }

    fn string(&mut self, s: &Value, example: Option<&Value>, path: &str) -> Value {
        let min = s.get("minLength").and_then(Value::as_u64).unwrap_or(0);
        let max = s.get("maxLength").and_then(Value::as_u64);
        let fits = |v: &str| {
            let n = v.chars().count() as u64;
            n >= min && max.is_none_or(|m| n <= m)
        };
        let format = s.get("format").and_then(Value::as_str).unwrap_or("");
        match format {
            "uuid" => return Value::String("${uuid}".into()),
            // A fresh address per request, as different customers would send.
            "email" if fits("init-000000@example.com") => {
                return Value::String("init-${seq}@example.com".into());
            }
            _ => {}
        }
        if let Some(e) = example {
            return literal(e.clone());
        }
        match format {
            "date-time" => return Value::String("2026-01-01T00:00:00Z".into()),
            "date" => return Value::String("2026-01-01".into()),
            "uri" | "url" => return Value::String("https://example.com/".into()),
            "" | "byte" | "password" | "binary" | "hostname" | "ipv4" | "email" => {}
            other => self
                .unsure
                .push(format!("{path} (format `{other}`, no example)")),
        }
        if let Some(v) = s
            .get("pattern")
            .and_then(Value::as_str)
            .and_then(|p| self.pattern(p, &fits))
        {
            return Value::String(v);
        }
        let n = min.clamp(1, MAX_LEN);
        let n = max.map_or(n, |m| n.min(m));
        Value::String("x".repeat(n as usize))
    }

    /// A sample of a simple pattern (short, compiles for the sampler, fits the length bounds).
    fn pattern(&mut self, p: &str, fits: &dyn Fn(&str) -> bool) -> Option<String> {
        if p.len() > 200 {
            return None;
        }
        // JSON Schema patterns are unanchored; the sampler knows no anchors.
        let core = p.strip_prefix('^').unwrap_or(p);
        let core = core.strip_suffix('$').unwrap_or(core);
        let re = rand_regex::Regex::compile(core, 8).ok()?;
        (0..8)
            .map(|_| self.rng.sample::<String, _>(&re))
            .find(|v| fits(v) && !v.contains("${"))
    }
}

/// The type a schema is generated as: its `type` (the first non-null of a list), else what its
/// keywords imply.
fn kind(s: &Value) -> &str {
    match s.get("type") {
        Some(Value::String(t)) => t,
        Some(Value::Array(ts)) => ts
            .iter()
            .filter_map(Value::as_str)
            .find(|t| *t != "null")
            .unwrap_or("null"),
        _ if s.get("properties").is_some() => "object",
        _ if s.get("items").is_some() => "array",
        _ => "string",
    }
}

fn own_example(s: &Value) -> Option<&Value> {
    s.get("example")
        .or_else(|| s.get("examples").and_then(Value::as_array)?.first())
        .or_else(|| s.get("default"))
}

/// Inclusive integer bounds; `exclusiveMinimum` as OpenAPI 3.0 (a flag) and 3.1 (a number).
fn bounds(s: &Value) -> (i64, i64) {
    let num = |k: &str| s.get(k).and_then(Value::as_f64).filter(|f| f.is_finite());
    let flag = |k: &str| s.get(k).and_then(Value::as_bool).unwrap_or(false);
    let clamp = |f: f64| f.clamp(-1e15, 1e15) as i64;
    let mut lo = num("minimum").map(|f| clamp(f.ceil()));
    if flag("exclusiveMinimum") {
        lo = lo.map(|l| l.saturating_add(1));
    }
    if let Some(x) = num("exclusiveMinimum") {
        lo = Some(
            lo.unwrap_or(i64::MIN)
                .max(clamp(x.floor()).saturating_add(1)),
        );
    }
    let mut hi = num("maximum").map(|f| clamp(f.floor()));
    if flag("exclusiveMaximum") {
        hi = hi.map(|h| h.saturating_sub(1));
    }
    if let Some(x) = num("exclusiveMaximum") {
        hi = Some(
            hi.unwrap_or(i64::MAX)
                .min(clamp(x.ceil()).saturating_sub(1)),
        );
    }
    match (lo, hi) {
        (Some(l), Some(h)) if l <= h => (l, h),
        // Contradictory bounds: no value is valid; write the lower one and let the run show it.
        (Some(l), Some(_)) => (l, l),
        (Some(l), None) => (l, l.saturating_add(99)),
        // Positive values when the bound allows them: counts and prices usually start at 1.
        (None, Some(h)) if h >= 1 => (1, h),
        (None, Some(h)) => (h.saturating_sub(99), h),
        (None, None) => (1, 100),
    }
}

/// An enum as `${choice(a,b)}` when every value is a plain word the template can carry, else
/// its first value.
fn choice(values: &[Value]) -> Option<Value> {
    let plain = |s: &str| {
        !s.is_empty()
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || "_-.:/@+".contains(c))
    };
    let words: Vec<&str> = values.iter().filter_map(Value::as_str).collect();
    if words.len() == values.len() && words.len() > 1 && words.iter().all(|w| plain(w)) {
        return Some(Value::String(format!("${{choice({})}}", words.join(","))));
    }
    values
        .iter()
        .find(|v| !v.is_null())
        .or(values.first())
        .cloned()
        .map(literal)
}

/// A document's value made safe to write as a body: a string holding `${` would be read back as
/// a template, so its `$` is doubled out of the way.
pub fn literal(v: Value) -> Value {
    match v {
        Value::String(s) if s.contains("${") => Value::String(s.replace("${", "$ {")),
        Value::Array(a) => Value::Array(a.into_iter().map(literal).collect()),
        Value::Object(o) => Value::Object(o.into_iter().map(|(k, v)| (k, literal(v))).collect()),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn formats_enums_bounds_and_examples() {
        let doc = json!({});
        let mut s = Sampler::new(&doc);
        let schema = json!({
            "type": "object",
            "required": ["id", "email", "kind", "n", "card", "code", "opt_out"],
            "properties": {
                "id": {"type": "string", "format": "uuid"},
                "email": {"type": "string", "format": "email"},
                "kind": {"type": "string", "enum": ["a", "b"]},
                "n": {"type": "integer", "minimum": 1, "maximum": 5},
                "card": {"type": "string", "format": "luhn", "pattern": "^[0-9]{12,19}$"},
                "code": {"type": "string", "pattern": "^[A-Z]{3}$"},
                "opt_out": {"type": "boolean"},
                "ignored": {"type": "string"}
            }
        });
        let v = s.value(&schema, Some(&json!({"card": "4242424242424242"})), "body");
        assert_eq!(v["id"], "${uuid}");
        assert_eq!(v["email"], "init-${seq}@example.com");
        assert_eq!(v["kind"], "${choice(a,b)}");
        assert_eq!(v["n"], "${random(1,5)}");
        assert_eq!(v["card"], "4242424242424242");
        let code = v["code"].as_str().unwrap();
        assert!(
            code.len() == 3 && code.chars().all(|c| c.is_ascii_uppercase()),
            "{code}"
        );
        assert_eq!(v["opt_out"], true);
        assert!(v.get("ignored").is_none(), "optional fields are left out");
        assert!(s.unsure.is_empty(), "{:?}", s.unsure);
    }

    #[test]
    fn unknown_format_without_example_is_flagged() {
        let doc = json!({});
        let mut s = Sampler::new(&doc);
        s.value(
            &json!({"type": "string", "format": "luhn"}),
            None,
            "body.card",
        );
        assert_eq!(s.unsure, vec!["body.card (format `luhn`, no example)"]);
    }

    #[test]
    fn recursive_refs_and_arrays_stay_bounded() {
        let doc = json!({"components": {"schemas": {"Node": {
            "type": "object", "required": ["children"],
            "properties": {"children": {"type": "array", "minItems": 100000,
                "items": {"$ref": "#/components/schemas/Node"}}}
        }}}});
        let mut s = Sampler::new(&doc);
        let v = s.value(&json!({"$ref": "#/components/schemas/Node"}), None, "body");
        assert_eq!(v["children"].as_array().unwrap().len(), MAX_ITEMS as usize);
        let text = serde_json::to_string(&v).unwrap();
        assert!(text.len() < 10_000_000);
    }

    #[test]
    fn exclusive_bounds_both_dialects() {
        assert_eq!(
            bounds(&json!({"minimum": 0, "exclusiveMinimum": true})),
            (1, 100)
        );
        assert_eq!(
            bounds(&json!({"exclusiveMinimum": 0, "maximum": 3})),
            (1, 3)
        );
        assert_eq!(bounds(&json!({"maximum": 10})), (1, 10));
        assert_eq!(bounds(&json!({"maximum": -10})), (-109, -10));
    }

    #[test]
    fn document_text_holding_a_template_is_not_a_template() {
        assert_eq!(
            literal(json!({"a": ["${uuid}"]})),
            json!({"a": ["$ {uuid}"]})
        );
    }
}
