//! String templates: literal text with `${...}` expressions, parsed once when the scenario
//! is read so that rendering on the hot path is a walk over ready parts.
//!
//! Expressions: `${uuid}`, `${seq}` (run-wide counter), `${choice(a,b,c)}`,
//! `${random(1,100)}`, `${env.NAME}` or `${env.NAME:-default}`, and `${name}` for a value
//! captured by an earlier step.

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};

use rand::Rng;
use schemars::JsonSchema;
use serde::{Deserialize, Deserializer};

#[derive(Debug, Clone, PartialEq)]
pub enum Part {
    Lit(String),
    Uuid,
    Seq,
    Choice(Vec<String>),
    Random(i64, i64),
    Env {
        name: String,
        default: Option<String>,
    },
    Var(String),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Template {
    parts: Vec<Part>,
}

/// What rendering needs: the run-wide sequence and the journey's captured values.
pub struct TemplateContext<'a> {
    pub seq: &'a AtomicU64,
    pub vars: &'a HashMap<String, String>,
}

impl Template {
    pub fn parse(s: &str) -> Result<Template, String> {
        let mut parts = Vec::new();
        let mut rest = s;
        while let Some(start) = rest.find("${") {
            if start > 0 {
                parts.push(Part::Lit(rest[..start].to_owned()));
            }
            let after = &rest[start + 2..];
            let end = after
                .find('}')
                .ok_or_else(|| format!("unclosed `${{` in `{s}`"))?;
            parts.push(parse_expr(after[..end].trim())?);
            rest = &after[end + 1..];
        }
        if !rest.is_empty() {
            parts.push(Part::Lit(rest.to_owned()));
        }
        Ok(Template { parts })
    }

    pub fn literal(s: &str) -> Template {
        Template {
            parts: vec![Part::Lit(s.to_owned())],
        }
    }

    pub fn parts(&self) -> &[Part] {
        &self.parts
    }

    /// True when nothing in it varies between renders.
    pub fn is_literal(&self) -> bool {
        self.parts.iter().all(|p| matches!(p, Part::Lit(_)))
    }

    pub fn starts_with_slash(&self) -> bool {
        matches!(self.parts.first(), Some(Part::Lit(l)) if l.starts_with('/'))
    }

    /// Names of captured values this template reads.
    pub fn captures(&self) -> impl Iterator<Item = &str> {
        self.parts.iter().filter_map(|p| match p {
            Part::Var(v) => Some(v.as_str()),
            _ => None,
        })
    }

    /// Replaces `${env.NAME}` by its value now, so a missing variable is a scenario error
    /// before any load starts rather than a failed request later.
    pub fn bind_env(&self, getenv: &dyn Fn(&str) -> Option<String>) -> Result<Template, String> {
        let mut parts = Vec::with_capacity(self.parts.len());
        for p in &self.parts {
            parts.push(match p {
                Part::Env { name, default } => match (getenv(name), default) {
                    (Some(v), _) => Part::Lit(v),
                    (None, Some(d)) => Part::Lit(d.clone()),
                    (None, None) => {
                        return Err(format!("environment variable `{name}` is not set"));
                    }
                },
                other => other.clone(),
            });
            // Keep literals merged, so a fully bound template is one literal.
            if let [.., Part::Lit(a), Part::Lit(b)] = parts.as_mut_slice() {
                let b = std::mem::take(b);
                a.push_str(&b);
                parts.pop();
            }
        }
        Ok(Template { parts })
    }

    pub fn render(&self, ctx: &TemplateContext<'_>) -> String {
        let mut out = String::new();
        self.render_into(ctx, &mut out);
        out
    }

    pub fn render_into(&self, ctx: &TemplateContext<'_>, out: &mut String) {
        use std::fmt::Write;
        for p in &self.parts {
            match p {
                Part::Lit(s) => out.push_str(s),
                Part::Uuid => {
                    let _ = write!(out, "{}", uuid::Uuid::new_v4());
                }
                Part::Seq => {
                    let _ = write!(out, "{}", ctx.seq.fetch_add(1, Ordering::Relaxed));
                }
                Part::Choice(c) => out.push_str(&c[rand::rng().random_range(0..c.len())]),
                Part::Random(a, b) => {
                    let _ = write!(out, "{}", rand::rng().random_range(*a..=*b));
                }
                // Unbound env parts only exist before planning; render them empty.
                Part::Env { .. } => {}
                Part::Var(v) => {
                    if let Some(val) = ctx.vars.get(v) {
                        out.push_str(val);
                    }
                }
            }
        }
    }

    /// True when the template is exactly one numeric generator, so a JSON body can carry a number.
    pub fn is_numeric(&self) -> bool {
        matches!(self.parts.as_slice(), [Part::Seq] | [Part::Random(..)])
    }
}

fn parse_expr(e: &str) -> Result<Part, String> {
    if e == "uuid" {
        return Ok(Part::Uuid);
    }
    if e == "seq" {
        return Ok(Part::Seq);
    }
    if let Some(env) = e.strip_prefix("env.") {
        let (name, default) = match env.split_once(":-") {
            Some((n, d)) => (n, Some(d.to_owned())),
            None => (env, None),
        };
        if !is_ident(name) {
            return Err(format!(
                "`${{{e}}}`: `{name}` is not a valid environment variable name"
            ));
        }
        return Ok(Part::Env {
            name: name.to_owned(),
            default,
        });
    }
    if let Some(args) = call_args(e, "choice") {
        let items: Vec<String> = args.split(',').map(|s| s.trim().to_owned()).collect();
        if items.iter().any(String::is_empty) {
            return Err(format!(
                "`${{{e}}}`: choice needs non-empty values separated by commas"
            ));
        }
        return Ok(Part::Choice(items));
    }
    if let Some(args) = call_args(e, "random") {
        let nums: Vec<Result<i64, _>> = args.split(',').map(|s| s.trim().parse::<i64>()).collect();
        return match nums.as_slice() {
            [Ok(a), Ok(b)] if a <= b => Ok(Part::Random(*a, *b)),
            _ => Err(format!(
                "`${{{e}}}`: random needs two integers, low then high"
            )),
        };
    }
    if is_ident(e) {
        return Ok(Part::Var(e.to_owned()));
    }
    Err(format!(
        "unknown expression `${{{e}}}` (known: uuid, seq, choice(..), random(a,b), env.NAME, a captured name)"
    ))
}

fn call_args<'a>(e: &'a str, name: &str) -> Option<&'a str> {
    e.strip_prefix(name)?
        .trim_start()
        .strip_prefix('(')?
        .strip_suffix(')')
}

fn is_ident(s: &str) -> bool {
    !s.is_empty()
        && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !s.starts_with(|c: char| c.is_ascii_digit())
}

impl<'de> Deserialize<'de> for Template {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        // Failing inside the visitor, not after it, lets the YAML parser attach the
        // scalar's own line and column to the error.
        d.deserialize_str(super::ParseVisitor("a template string", Template::parse))
    }
}

impl JsonSchema for Template {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Template".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "string",
            "description": "Text with ${uuid}, ${seq}, ${choice(a,b)}, ${random(a,b)}, ${env.NAME[:-default]} or ${captured}"
        })
    }
}

/// A JSON body compiled into templates.
#[derive(Debug, Clone)]
pub enum JsonTemplate {
    Fixed(serde_json::Value),
    Str(Template),
    Num(Template),
    Array(Vec<JsonTemplate>),
    Object(Vec<(String, JsonTemplate)>),
}

impl JsonTemplate {
    pub fn compile(v: &serde_json::Value) -> Result<JsonTemplate, String> {
        Ok(match v {
            serde_json::Value::String(s) => {
                let t = Template::parse(s)?;
                if t.is_numeric() {
                    JsonTemplate::Num(t)
                } else if t.parts.iter().all(|p| matches!(p, Part::Lit(_))) {
                    JsonTemplate::Fixed(v.clone())
                } else {
                    JsonTemplate::Str(t)
                }
            }
            serde_json::Value::Array(a) => JsonTemplate::Array(
                a.iter()
                    .map(JsonTemplate::compile)
                    .collect::<Result<_, _>>()?,
            ),
            serde_json::Value::Object(o) => JsonTemplate::Object(
                o.iter()
                    .map(|(k, v)| Ok((k.clone(), JsonTemplate::compile(v)?)))
                    .collect::<Result<_, String>>()?,
            ),
            other => JsonTemplate::Fixed(other.clone()),
        })
    }

    pub fn bind_env(
        &self,
        getenv: &dyn Fn(&str) -> Option<String>,
    ) -> Result<JsonTemplate, String> {
        Ok(match self {
            JsonTemplate::Fixed(v) => JsonTemplate::Fixed(v.clone()),
            JsonTemplate::Str(t) => JsonTemplate::Str(t.bind_env(getenv)?),
            JsonTemplate::Num(t) => JsonTemplate::Num(t.clone()),
            JsonTemplate::Array(a) => JsonTemplate::Array(
                a.iter()
                    .map(|x| x.bind_env(getenv))
                    .collect::<Result<_, _>>()?,
            ),
            JsonTemplate::Object(o) => JsonTemplate::Object(
                o.iter()
                    .map(|(k, v)| Ok((k.clone(), v.bind_env(getenv)?)))
                    .collect::<Result<_, String>>()?,
            ),
        })
    }

    /// True when nothing in it varies between renders.
    pub fn is_fixed(&self) -> bool {
        match self {
            JsonTemplate::Fixed(_) => true,
            JsonTemplate::Str(_) | JsonTemplate::Num(_) => false,
            JsonTemplate::Array(a) => a.iter().all(JsonTemplate::is_fixed),
            JsonTemplate::Object(o) => o.iter().all(|(_, v)| v.is_fixed()),
        }
    }

    pub fn render(&self, ctx: &TemplateContext<'_>) -> serde_json::Value {
        match self {
            JsonTemplate::Fixed(v) => v.clone(),
            JsonTemplate::Str(t) => serde_json::Value::String(t.render(ctx)),
            JsonTemplate::Num(t) => t
                .render(ctx)
                .parse::<i64>()
                .map(serde_json::Value::from)
                .unwrap_or(serde_json::Value::Null),
            JsonTemplate::Array(a) => a.iter().map(|x| x.render(ctx)).collect(),
            JsonTemplate::Object(o) => serde_json::Value::Object(
                o.iter().map(|(k, v)| (k.clone(), v.render(ctx))).collect(),
            ),
        }
    }

    fn captures<'a>(&'a self, out: &mut Vec<&'a str>) {
        match self {
            JsonTemplate::Str(t) | JsonTemplate::Num(t) => out.extend(t.captures()),
            JsonTemplate::Array(a) => a.iter().for_each(|x| x.captures(out)),
            JsonTemplate::Object(o) => o.iter().for_each(|(_, v)| v.captures(out)),
            JsonTemplate::Fixed(_) => {}
        }
    }
}

/// Checks a JSON body's templates and that every captured name it reads is already known.
pub fn check_json_body(v: &serde_json::Value, known: &BTreeSet<&str>) -> Result<(), String> {
    let t = JsonTemplate::compile(v)?;
    let mut used = Vec::new();
    t.captures(&mut used);
    for u in used {
        if !known.contains(u) {
            return Err(format!(
                "`${{{u}}}` is not captured by an earlier step of the journey"
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_generators_and_captures() {
        let t = Template::parse("/v1/orders/${order_id}?n=${seq}&c=${choice(a, b)}").unwrap();
        let seq = AtomicU64::new(7);
        let vars = HashMap::from([("order_id".to_owned(), "o-1".to_owned())]);
        let out = t.render(&TemplateContext {
            seq: &seq,
            vars: &vars,
        });
        assert!(
            out == "/v1/orders/o-1?n=7&c=a" || out == "/v1/orders/o-1?n=7&c=b",
            "{out}"
        );
        assert_eq!(seq.load(Ordering::Relaxed), 8);
    }

    #[test]
    fn uuid_is_fresh_each_time() {
        let t = Template::parse("${uuid}").unwrap();
        let seq = AtomicU64::new(0);
        let vars = HashMap::new();
        let ctx = TemplateContext {
            seq: &seq,
            vars: &vars,
        };
        let (a, b) = (t.render(&ctx), t.render(&ctx));
        assert_eq!(a.len(), 36);
        assert_ne!(a, b);
    }

    #[test]
    fn env_binds_with_default() {
        let t = Template::parse("Bearer ${env.NOPE_TOKEN:-dev}").unwrap();
        let b = t.bind_env(&|_| None).unwrap();
        assert_eq!(b, Template::literal("Bearer dev"));
        let t = Template::parse("Bearer ${env.NOPE_TOKEN}").unwrap();
        assert_eq!(
            t.bind_env(&|_| None).unwrap_err(),
            "environment variable `NOPE_TOKEN` is not set"
        );
        let b = t
            .bind_env(&|n| (n == "NOPE_TOKEN").then(|| "x".to_owned()))
            .unwrap();
        assert_eq!(b, Template::literal("Bearer x"));
    }

    #[test]
    fn json_numbers_stay_numbers() {
        let v = serde_json::json!({"qty": "${random(3,3)}", "sku": "sku-${seq}", "fixed": 1});
        let t = JsonTemplate::compile(&v).unwrap();
        let seq = AtomicU64::new(5);
        let vars = HashMap::new();
        let out = t.render(&TemplateContext {
            seq: &seq,
            vars: &vars,
        });
        assert_eq!(
            out,
            serde_json::json!({"qty": 3, "sku": "sku-5", "fixed": 1})
        );
    }
}
