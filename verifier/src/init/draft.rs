//! From an OpenAPI document to a draft scenario: which operations become steps, how they chain
//! into journeys, what each request carries. Nothing here writes YAML ([`super::render`]) or
//! sends a request ([`super::calibrate`]).
//!
//! The rules a person can predict:
//! - a `POST` on a path without parameters is a *create*: it starts a journey; when its success
//!   response's schema has an `id` (or the operation's `links` name a body field), the value is
//!   captured;
//! - a `GET` whose path parameter the create's capture fills (`/things` → `/things/{id}...`, or
//!   an OpenAPI link) is read in the create's journey; any other `GET` is a journey of its own,
//!   its parameters taken from the document's examples;
//! - left out, each with its reason in the file: `PUT`/`PATCH`/`DELETE` and `POST`s on an
//!   existing resource (they change state a starter load should not guess about), operations
//!   that document 403 (the token may lack their role), health and metrics endpoints.

use std::collections::BTreeSet;

use serde_json::Value;

use crate::contract::{Contract, Operation, escape_pointer};
use crate::scenario::Method;

use super::sample::{Sampler, literal};

/// Where the load's token goes.
#[derive(Debug, Clone, PartialEq)]
pub struct Auth {
    pub header: String,
    pub value: String,
    /// The security scheme's name and kind, for the comment.
    pub scheme: String,
}

#[derive(Debug, Clone)]
pub struct Draft {
    pub title: String,
    pub journeys: Vec<JourneyDraft>,
    /// Operations left out, with why: `(operationId, METHOD path, reason)`.
    pub skipped: Vec<(String, String, String)>,
    pub auth: Option<Auth>,
    /// Security the generator could not turn into a header, said in the file.
    pub auth_note: Option<String>,
    /// Body fields a person should check (see [`Sampler::unsure`]).
    pub unsure: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct JourneyDraft {
    pub name: String,
    /// One line on what it does.
    pub about: String,
    pub steps: Vec<StepDraft>,
}

#[derive(Debug, Clone)]
pub struct StepDraft {
    pub name: String,
    pub operation: String,
    pub method: Method,
    /// A template: literals percent-encoded, parameters as `${capture}` or example values.
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: Option<Value>,
    /// `(name, JSON pointer)` of the value captured for the steps after it.
    pub capture: Option<(String, String)>,
    pub expect: Vec<u16>,
}

/// Last path segments of endpoints that are for operators, not users.
const PROBES: &[&str] = &[
    "metrics", "livez", "readyz", "healthz", "health", "ready", "live", "ping",
];

/// Builds the draft; `Err` names why the document gives nothing to load.
pub fn draft(c: &Contract) -> Result<Draft, String> {
    if c.operations.is_empty() {
        return Err("it declares no operations (its `paths` are empty)".into());
    }
    let mut sampler = Sampler::new(&c.doc);
    let mut skipped = Vec::new();
    let mut creates: Vec<&Operation> = Vec::new();
    let mut reads: Vec<&Operation> = Vec::new();
    for op in &c.operations {
        let label = format!("{} {}", op.method.as_str(), op.path);
        let why = leave_out(c, op);
        match why {
            Some(w) => skipped.push((op.id.clone(), label, w)),
            None if op.method == Method::Post => creates.push(op),
            None => reads.push(op),
        }
    }
    let mut names = BTreeSet::new();
    let mut journeys = Vec::new();
    let mut linked: BTreeSet<String> = BTreeSet::new();
    for op in &creates {
        let step = match step_for(c, &mut sampler, op, &[], &mut names) {
            Ok(s) => s,
            Err(w) => {
                skipped.push((
                    op.id.clone(),
                    format!("{} {}", op.method.as_str(), op.path),
                    w,
                ));
                continue;
            }
        };
        let mut steps = vec![step];
        let capture = id_pointer(c, op).map(|ptr| (capture_name(&op.path), ptr));
        if let Some((cap, ptr)) = &capture {
            for r in &reads {
                if linked.contains(&r.id) {
                    continue;
                }
                let Some(param) = linked_param(c, op, r, ptr) else {
                    continue;
                };
                if let Ok(s) = step_for(c, &mut sampler, r, &[(param, cap.clone())], &mut names) {
                    linked.insert(r.id.clone());
                    steps.push(s);
                }
            }
            steps[0].capture = capture.clone();
        }
        let about = if steps.len() > 1 {
            let read: Vec<&str> = steps[1..].iter().map(|s| s.operation.as_str()).collect();
            format!(
                "{} creates one, then {} reads it back through the captured `{}`.",
                op.id,
                read.join(", "),
                capture.as_ref().map_or("", |c| c.0.as_str())
            )
        } else {
            format!(
                "{} alone: nothing in the document reads back what it creates.",
                op.id
            )
        };
        let name = unique(&mut names, &format!("{}-journey", steps[0].name));
        if steps.len() == 1 {
            steps[0].capture = None;
        }
        journeys.push(JourneyDraft { name, about, steps });
    }
    for r in &reads {
        if linked.contains(&r.id) {
            continue;
        }
        match step_for(c, &mut sampler, r, &[], &mut names) {
            Ok(s) => {
                let name = unique(&mut names, &format!("{}-journey", s.name));
                journeys.push(JourneyDraft {
                    name,
                    about: if r.path.contains('{') {
                        format!(
                            "{} on its own; its path parameters are the document's examples, \
                             which must exist on the target.",
                            r.id
                        )
                    } else {
                        format!("{} on its own.", r.id)
                    },
                    steps: vec![s],
                });
            }
            Err(w) => skipped.push((r.id.clone(), format!("GET {}", r.path), w)),
        }
    }
    if journeys.is_empty() {
        let reasons: Vec<String> = skipped
            .iter()
            .map(|(id, _, why)| format!("{id}: {why}"))
            .collect();
        return Err(format!(
            "none of its {} operations can start a journey ({})",
            c.operations.len(),
            reasons.join("; ")
        ));
    }
    let (auth, auth_note) = auth(c, &journeys);
    Ok(Draft {
        title: c
            .doc
            .pointer("/info/title")
            .and_then(Value::as_str)
            .unwrap_or("the service")
            .to_owned(),
        journeys,
        skipped,
        auth,
        auth_note,
        unsure: sampler.unsure,
    })
}

/// Why an operation is not loaded, or `None` when it is.
fn leave_out(c: &Contract, op: &Operation) -> Option<String> {
    let last = op
        .path
        .trim_end_matches('/')
        .rsplit('/')
        .next()
        .unwrap_or("");
    if PROBES.contains(&last.to_ascii_lowercase().as_str()) {
        return Some("a health or metrics endpoint, for operators rather than users".into());
    }
    match op.method {
        Method::Get | Method::Post => {}
        m => {
            return Some(format!(
                "{} changes an existing resource; a starter load does not guess which state it \
                 may change",
                m.as_str()
            ));
        }
    }
    if op.method == Method::Post && op.path.contains('{') {
        return Some(
            "acts on an existing resource, whose state decides the answer (add it to a journey \
             once you know which state it needs)"
                .into(),
        );
    }
    if c.declared_statuses(op).iter().any(|s| s == "403") {
        return Some(
            "documents 403: it needs a permission the load's token may not have (add it with a \
             token that has it)"
                .into(),
        );
    }
    None
}

/// The success statuses an operation declares (`2XX` as 200); 200 when it declares none.
fn expect(c: &Contract, op: &Operation) -> Vec<u16> {
    let mut out: Vec<u16> = c
        .declared_statuses(op)
        .iter()
        .filter_map(|s| match s.parse::<u16>() {
            Ok(n) if (200..300).contains(&n) => Some(n),
            Err(_) if s.eq_ignore_ascii_case("2XX") => Some(200),
            _ => None,
        })
        .collect();
    out.sort_unstable();
    out.dedup();
    if out.is_empty() {
        out.push(200);
    }
    out
}

/// The JSON pointer of the id a create returns: an OpenAPI link's `$response.body#/x`, else a
/// top-level `id` in its first success response's schema.
fn id_pointer(c: &Contract, op: &Operation) -> Option<String> {
    for status in expect(c, op) {
        let Some((at, resp)) = c.response_for(op, status) else {
            continue;
        };
        if let Some(links) = resp.get("links").and_then(Value::as_object) {
            for link in links.values() {
                let link = c.resolve_value(link);
                if let Some(p) = link
                    .get("parameters")
                    .and_then(Value::as_object)
                    .and_then(|p| {
                        p.values()
                            .find_map(|v| v.as_str()?.strip_prefix("$response.body#"))
                    })
                    .filter(|p| p.starts_with('/'))
                {
                    return Some(p.to_owned());
                }
            }
        }
        let Some(content) = resp.get("content").and_then(Value::as_object) else {
            continue;
        };
        for media in content.keys() {
            if !crate::contract::judge::is_json(media) {
                continue;
            }
            let (_, schema) = c.resolve(&format!("{at}/content/{}/schema", escape_pointer(media)));
            if schema.pointer("/properties/id").is_some() {
                return Some("/id".into());
            }
        }
    }
    None
}

/// The path parameter of `read` that the create's captured id fills, if they are linked: an
/// OpenAPI link from the create to `read` naming the pointer, or `read`'s path is the create's
/// path followed by `/{param}` (and perhaps more literal segments).
fn linked_param(c: &Contract, create: &Operation, read: &Operation, ptr: &str) -> Option<String> {
    let params = path_params(&read.path);
    for status in expect(c, create) {
        let Some((_, resp)) = c.response_for(create, status) else {
            continue;
        };
        let Some(links) = resp.get("links").and_then(Value::as_object) else {
            continue;
        };
        for link in links.values() {
            let link = c.resolve_value(link);
            if link.get("operationId").and_then(Value::as_str) != Some(read.id.as_str()) {
                continue;
            }
            let from = format!("$response.body#{ptr}");
            if let Some((name, _)) = link
                .get("parameters")
                .and_then(Value::as_object)
                .and_then(|p| p.iter().find(|(_, v)| v.as_str() == Some(from.as_str())))
            {
                let name = name.rsplit('.').next().unwrap_or(name);
                if params.len() == 1 && params[0] == name {
                    return Some(name.to_owned());
                }
            }
        }
    }
    let base = create.path.trim_end_matches('/');
    let rest = read.path.strip_prefix(base)?.strip_prefix('/')?;
    let first = rest.split('/').next()?;
    let name = first.strip_prefix('{')?.strip_suffix('}')?;
    (params.len() == 1).then(|| name.to_owned())
}

fn path_params(path: &str) -> Vec<&str> {
    path.split('/')
        .filter_map(|s| s.strip_prefix('{')?.strip_suffix('}'))
        .collect()
}

/// One step for `op`; `filled` are path parameters given by captures, `(param, capture name)`.
fn step_for(
    c: &Contract,
    sampler: &mut Sampler<'_>,
    op: &Operation,
    filled: &[(String, String)],
    names: &mut BTreeSet<String>,
) -> Result<StepDraft, String> {
    let op_doc = c.operation_doc(op);
    let params = parameters(c, op);
    let mut path = String::new();
    for (i, seg) in op.path.split('/').enumerate() {
        if i > 0 {
            path.push('/');
        }
        match seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
            Some(p) => {
                if let Some((_, cap)) = filled.iter().find(|(n, _)| n == p) {
                    path.push_str(&format!("${{{cap}}}"));
                    continue;
                }
                let example = params
                    .iter()
                    .find(|q| {
                        q.get("in").and_then(Value::as_str) == Some("path")
                            && q.get("name").and_then(Value::as_str) == Some(p)
                    })
                    .and_then(|q| param_example(c, q));
                match example {
                    Some(v) => path.push_str(&encode(&text(&v))),
                    None => {
                        return Err(format!(
                            "needs path parameter `{p}`, which no create in the document returns \
                             and no example gives"
                        ));
                    }
                }
            }
            None => path.push_str(&encode(seg)),
        }
    }
    if !path.starts_with('/') {
        path.insert(0, '/');
    }
    let mut query = Vec::new();
    let mut headers = Vec::new();
    for q in &params {
        let required = q.get("required").and_then(Value::as_bool).unwrap_or(false);
        let name = q.get("name").and_then(Value::as_str).unwrap_or("");
        let place = q.get("in").and_then(Value::as_str).unwrap_or("");
        if !required || name.is_empty() {
            continue;
        }
        match place {
            "query" => {
                let v = param_value(c, sampler, q, &format!("query {name}"));
                query.push(format!("{}={}", encode(name), encode_value(&v)));
            }
            "header" => {
                let lower = name.to_ascii_lowercase();
                if [
                    "authorization",
                    "content-type",
                    "accept",
                    "content-length",
                    "host",
                ]
                .contains(&lower.as_str())
                    || !is_token(name)
                {
                    continue;
                }
                // A fresh key per request: the document's example key would replay one answer.
                let v = if lower == "idempotency-key" {
                    "${uuid}".to_owned()
                } else {
                    let v = param_value(c, sampler, q, &format!("header {name}"));
                    header_safe(&v)
                };
                headers.push((name.to_owned(), v));
            }
            _ => {}
        }
    }
    if !query.is_empty() {
        path.push('?');
        path.push_str(&query.join("&"));
    }
    let body = body(c, sampler, op, op_doc)?;
    let name = unique(names, &kebab(&op.id));
    Ok(StepDraft {
        name,
        operation: op.id.clone(),
        method: op.method,
        path,
        headers,
        body,
        capture: None,
        expect: expect(c, op),
    })
}

/// The operation's parameters with the path item's, resolved; the operation's win by name and
/// place, as OpenAPI says.
fn parameters<'c>(c: &'c Contract, op: &Operation) -> Vec<&'c Value> {
    let mut out: Vec<&Value> = Vec::new();
    let item_ptr = op.pointer.rsplit_once('/').map_or("", |(p, _)| p);
    for list in [
        c.operation_doc(op).get("parameters"),
        c.doc.pointer(&format!("{item_ptr}/parameters")),
    ] {
        for p in list
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .take(64)
        {
            let p = c.resolve_value(p);
            let key = |v: &Value| (v.get("name").cloned(), v.get("in").cloned());
            if !out.iter().any(|o| key(o) == key(p)) {
                out.push(p);
            }
        }
    }
    out
}

fn param_example(c: &Contract, p: &Value) -> Option<Value> {
    let schema = p.get("schema").map(|s| c.resolve_value(s));
    p.get("example")
        .or_else(|| {
            p.get("examples")
                .and_then(Value::as_object)?
                .values()
                .next()
                .map(|e| c.resolve_value(e))?
                .get("value")
        })
        .or_else(|| schema?.get("example"))
        .or_else(|| schema?.get("default"))
        .filter(|v| !v.is_null())
        .cloned()
        .map(literal)
}

fn param_value(c: &Contract, sampler: &mut Sampler<'_>, p: &Value, at: &str) -> Value {
    if let Some(v) = param_example(c, p) {
        return v;
    }
    sampler.value(p.get("schema").unwrap_or(&Value::Null), None, at)
}

/// The request body, from the JSON schema and the document's example of it.
fn body(
    c: &Contract,
    sampler: &mut Sampler<'_>,
    op: &Operation,
    op_doc: &Value,
) -> Result<Option<Value>, String> {
    let Some(rb) = op_doc.get("requestBody").map(|b| c.resolve_value(b)) else {
        return Ok(None);
    };
    let content = rb.get("content").and_then(Value::as_object);
    let Some((_, m)) = content
        .into_iter()
        .flatten()
        .find(|(m, _)| crate::contract::judge::is_json(m))
    else {
        let required = rb.get("required").and_then(Value::as_bool).unwrap_or(false);
        let kinds: Vec<&str> = content
            .into_iter()
            .flatten()
            .map(|(k, _)| k.as_str())
            .collect();
        return if required {
            Err(format!(
                "its body is {}, and the generator writes JSON bodies only",
                if kinds.is_empty() {
                    "undescribed".into()
                } else {
                    kinds.join(", ")
                }
            ))
        } else {
            Ok(None)
        };
    };
    let example = m.get("example").cloned().or_else(|| {
        m.get("examples")
            .and_then(Value::as_object)?
            .values()
            .next()
            .map(|e| c.resolve_value(e))?
            .get("value")
            .cloned()
    });
    let schema = m.get("schema").unwrap_or(&Value::Null);
    let v = sampler.value(schema, example.as_ref(), &format!("{} body", op.id));
    Ok(Some(v))
}

/// The header the load's token goes in, from the first security scheme a loaded operation
/// needs; the token itself always comes from `VERIFIER_TOKEN`.
fn auth(c: &Contract, journeys: &[JourneyDraft]) -> (Option<Auth>, Option<String>) {
    let secured = journeys
        .iter()
        .flat_map(|j| &j.steps)
        .filter_map(|s| c.by_id(&s.operation))
        .find(|op| c.is_secured(op));
    let Some(op) = secured else {
        return (None, None);
    };
    let reqs = c
        .operation_doc(op)
        .get("security")
        .or_else(|| c.doc.get("security"))
        .and_then(Value::as_array);
    let Some(name) = reqs
        .into_iter()
        .flatten()
        .filter_map(Value::as_object)
        .find_map(|r| r.keys().next())
    else {
        return (None, None);
    };
    let Some(scheme) = c
        .doc
        .pointer(&format!(
            "/components/securitySchemes/{}",
            escape_pointer(name)
        ))
        .map(|s| c.resolve_value(s))
    else {
        return (
            None,
            Some(format!(
                "security scheme `{name}` is not in components.securitySchemes"
            )),
        );
    };
    let kind = scheme.get("type").and_then(Value::as_str).unwrap_or("");
    let http_scheme = scheme
        .get("scheme")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_ascii_lowercase();
    let token = "${env.VERIFIER_TOKEN}";
    let bearer = || Auth {
        header: "Authorization".into(),
        value: format!("Bearer {token}"),
        scheme: format!("`{name}`, {kind} {http_scheme}")
            .trim_end()
            .to_owned(),
    };
    match (kind, http_scheme.as_str()) {
        ("http", "bearer") | ("oauth2", _) | ("openIdConnect", _) => (Some(bearer()), None),
        ("http", "basic") => (
            Some(Auth {
                header: "Authorization".into(),
                value: format!("Basic {token}"),
                scheme: format!("`{name}`, http basic: VERIFIER_TOKEN is base64 of user:password"),
            }),
            None,
        ),
        ("apiKey", _) => {
            let key = scheme.get("name").and_then(Value::as_str).unwrap_or("");
            match scheme.get("in").and_then(Value::as_str) {
                Some("header") if is_token(key) => (
                    Some(Auth {
                        header: key.to_owned(),
                        value: token.into(),
                        scheme: format!("`{name}`, apiKey in header {key}"),
                    }),
                    None,
                ),
                Some("cookie") if is_token(key) => (
                    Some(Auth {
                        header: "Cookie".into(),
                        value: format!("{key}={token}"),
                        scheme: format!("`{name}`, apiKey in cookie {key}"),
                    }),
                    None,
                ),
                _ => (
                    None,
                    Some(format!(
                        "security scheme `{name}` puts its key in the query; add \
                         `{key}=${{env.VERIFIER_TOKEN}}` to each step's path"
                    )),
                ),
            }
        }
        _ => (
            None,
            Some(format!(
                "security scheme `{name}` ({kind} {http_scheme}) is not one the generator knows; \
                 add its header under defaults.headers"
            )),
        ),
    }
}

/// Capture name from a collection path: `/v1/orders` → `order_id`.
fn capture_name(path: &str) -> String {
    let noun = path
        .split('/')
        .rev()
        .find(|s| !s.is_empty() && !s.contains('{'))
        .unwrap_or("");
    let noun = noun.strip_suffix('s').unwrap_or(noun);
    let ident: String = noun
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '_'
            }
        })
        .collect();
    let ident = ident.trim_matches('_');
    if ident.is_empty() || ident.starts_with(|c: char| c.is_ascii_digit()) {
        "created_id".into()
    } else {
        format!("{ident}_id")
    }
}

/// `createOrder` → `create-order`; anything else than letters and digits becomes a dash.
fn kebab(id: &str) -> String {
    let mut out = String::new();
    let mut prev_lower = false;
    for ch in id.chars() {
        if ch.is_ascii_uppercase() {
            if prev_lower {
                out.push('-');
            }
            out.push(ch.to_ascii_lowercase());
            prev_lower = false;
        } else if ch.is_ascii_alphanumeric() {
            out.push(ch);
            prev_lower = true;
        } else {
            if !out.ends_with('-') {
                out.push('-');
            }
            prev_lower = false;
        }
    }
    let out = out.trim_matches('-').chars().take(60).collect::<String>();
    if out.is_empty() { "step".into() } else { out }
}

fn unique(names: &mut BTreeSet<String>, want: &str) -> String {
    let mut name = want.to_owned();
    let mut n = 2;
    while !names.insert(name.clone()) {
        name = format!("{want}-{n}");
        n += 1;
    }
    name
}

/// Percent-encodes what a path or query may not carry as is; `$` too, so no literal reads as a
/// template.
fn encode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~!&'()*+,;=:@/".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A query value: templates stay (their output is URL-safe), literals are encoded.
fn encode_value(v: &Value) -> String {
    match v {
        Value::String(s) if s.starts_with("${") && s.ends_with('}') && !s[2..].contains("${") => {
            s.clone()
        }
        Value::String(s) => encode(s),
        other => encode(&text(other)),
    }
}

/// A value as text: a string as it is, anything else as JSON.
fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn header_safe(v: &Value) -> String {
    let s = text(v);
    let s: String = s
        .chars()
        .filter(|c| c.is_ascii_graphic() || *c == ' ')
        .collect();
    let s = s.trim().to_owned();
    if s.is_empty() { "x".into() } else { s }
}

/// An HTTP token (RFC 9110), as header names must be.
fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A read whose id no create returns takes the document's example, and says so; one
    /// without an example is left out with the reason.
    #[test]
    fn unlinked_reads_use_examples_or_are_left_out() {
        let doc = serde_json::json!({
            "openapi": "3.0.3",
            "paths": {
                "/a/{id}": {"get": {"operationId": "getA", "parameters": [
                    {"name": "id", "in": "path", "required": true, "example": "a 1"}],
                    "responses": {"200": {"description": "ok"}}}},
                "/b/{id}": {"get": {"operationId": "getB", "parameters": [
                    {"name": "id", "in": "path", "required": true}],
                    "responses": {"200": {"description": "ok"}}}}
            }
        });
        let c = Contract::from_doc("api.yaml".into(), doc).unwrap();
        let d = draft(&c).unwrap();
        assert_eq!(d.journeys.len(), 1);
        assert_eq!(d.journeys[0].steps[0].path, "/a/a%201");
        assert!(
            d.journeys[0].about.contains("examples"),
            "{}",
            d.journeys[0].about
        );
        assert_eq!(d.skipped.len(), 1);
        assert!(
            d.skipped[0].2.contains("path parameter `id`"),
            "{:?}",
            d.skipped
        );
    }

    #[test]
    fn names() {
        assert_eq!(kebab("createOrder"), "create-order");
        assert_eq!(kebab("GET /v1/x"), "get-v1-x");
        assert_eq!(kebab("éé"), "step");
        assert_eq!(capture_name("/v1/orders"), "order_id");
        assert_eq!(capture_name("/"), "created_id");
        assert_eq!(encode("/a b/${x}"), "/a%20b/%24%7Bx%7D");
    }
}
