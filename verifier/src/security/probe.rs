//! Sending probes: requests built from the contract's operations (parameters, a body from the
//! request schema or the operation's own example), each answer judged for conformance on the way.

use std::sync::Arc;

use bytes::Bytes;
use serde_json::Value;

use super::generate::{Generator, Mode};
use crate::contract::conformance::Conformance;
use crate::contract::{Contract, Operation};
use crate::load::exchange::Exchange;
use crate::scenario::Method;

/// Sends probes and judges their answers for conformance on the way.
pub(super) struct Prober {
    pub(super) http: reqwest::Client,
    pub(super) base: String,
    pub(super) contract: Arc<Contract>,
    pub(super) conformance: Option<Arc<Conformance>>,
    pub(super) skip: Vec<String>,
}

/// One probe request.
#[derive(Debug, Clone)]
pub(super) struct Probe {
    pub(super) method: Method,
    pub(super) path: String,
    pub(super) headers: Vec<(String, String)>,
    pub(super) body: Option<Bytes>,
}

impl Probe {
    pub(super) fn with_token(mut self, token: Option<&str>) -> Probe {
        self.headers
            .retain(|(n, _)| !n.eq_ignore_ascii_case("authorization"));
        if let Some(t) = token {
            self.headers
                .push(("Authorization".into(), format!("Bearer {t}")));
        }
        self
    }
    pub(super) fn with_body(mut self, body: Bytes) -> Probe {
        if !self
            .headers
            .iter()
            .any(|(n, _)| n.eq_ignore_ascii_case("content-type"))
        {
            self.headers
                .push(("Content-Type".into(), "application/json".into()));
        }
        self.body = Some(body);
        self
    }
    pub(super) fn unsent(&self, base: &str) -> Exchange {
        Exchange {
            method: self.method,
            base: base.to_owned(),
            path: self.path.clone(),
            request_headers: self.headers.clone(),
            request_body: self.body.clone(),
            status: 0,
            response_headers: Vec::new(),
            body: Bytes::new(),
        }
    }
}

impl Prober {
    pub(super) fn operations(&self) -> impl Iterator<Item = &Operation> {
        self.contract
            .operations
            .iter()
            .filter(|o| !self.skip.contains(&o.id))
    }

    pub(super) async fn send(&self, p: &Probe) -> Result<Exchange, String> {
        let method =
            reqwest::Method::from_bytes(p.method.as_str().as_bytes()).map_err(|e| e.to_string())?;
        let mut rb = self
            .http
            .request(method, format!("{}{}", self.base, p.path));
        for (n, v) in &p.headers {
            rb = rb.header(n, v);
        }
        if let Some(b) = &p.body {
            rb = rb.body(b.clone());
        }
        let resp = rb.send().await.map_err(|e| describe(&e))?;
        let status = resp.status().as_u16();
        let response_headers = crate::load::shown_headers(resp.headers());
        let body = resp.bytes().await.map_err(|e| describe(&e))?;
        let ex = Exchange {
            status,
            response_headers,
            body,
            ..p.unsent(&self.base)
        };
        if let Some(c) = &self.conformance {
            c.observe(&ex);
        }
        Ok(ex)
    }

    /// A request for `op` with path parameters filled from `fill` (else generated), required
    /// header parameters generated, and a body from its request schema.
    pub(super) fn request<'s>(
        &'s self,
        g: &mut Generator<'s>,
        op: &Operation,
        mode: Mode,
        fill: Option<&str>,
    ) -> Probe {
        let c = &*self.contract;
        let mut path = op.path.clone();
        let mut query = Vec::new();
        let mut headers = Vec::new();
        for (_, param) in parameters(c, op) {
            let name = param.get("name").and_then(|n| n.as_str()).unwrap_or("");
            let schema = param.get("schema").unwrap_or(&Value::Null);
            let required = param.get("required").and_then(|r| r.as_bool()) == Some(true);
            match param.get("in").and_then(|i| i.as_str()) {
                Some("path") => {
                    let v = match fill {
                        Some(f) => f.to_owned(),
                        None => scalar(&g.value(schema, mode, 0)),
                    };
                    path = path.replace(&format!("{{{name}}}"), &v);
                }
                Some("query") if required || mode == Mode::Boundary => {
                    query.push(format!("{name}={}", scalar(&g.value(schema, mode, 0))));
                }
                Some("header") if required => {
                    headers.push((name.to_owned(), scalar(&g.value(schema, Mode::Valid, 0))));
                }
                _ => {}
            }
        }
        if !query.is_empty() {
            path = format!("{path}?{}", query.join("&"));
        }
        let mut probe = Probe {
            method: op.method,
            path,
            headers,
            body: None,
        };
        if let Some(ptr) = c.request_schema(op)
            && let Some(schema) = c.doc.pointer(&ptr)
        {
            let v = g.value(schema, mode, 0);
            probe = probe.with_body(Bytes::from(v.to_string()));
        }
        probe
    }
}

impl Prober {
    /// A request the service should accept: the contract's own example body where the
    /// operation documents one (schemas rarely say everything, e.g. a card's check digit),
    /// else a generated valid one.
    pub(super) fn canonical<'s>(
        &'s self,
        g: &mut Generator<'s>,
        op: &Operation,
        fill: Option<&str>,
    ) -> Probe {
        let mut probe = self.request(g, op, Mode::Valid, fill);
        if let Some(ex) = example_body(&self.contract, op) {
            probe.body = Some(Bytes::from(ex.to_string()));
        }
        probe
    }
}

/// The first example of the operation's JSON request body (`example`, or the first of
/// `examples`, `$ref`s followed).
fn example_body(c: &Contract, op: &Operation) -> Option<Value> {
    let ptr = c.request_schema(op)?;
    let media_ptr = ptr.strip_suffix("/schema")?;
    let media = c.doc.pointer(media_ptr)?;
    if let Some(e) = media.get("example") {
        return Some(e.clone());
    }
    let (name, _) = media.get("examples")?.as_object()?.iter().next()?;
    let (_, ex) = c.resolve(&format!(
        "{media_ptr}/examples/{}",
        crate::contract::escape_pointer(name)
    ));
    ex.get("value").cloned()
}

/// The operation's parameters (path-item ones first), `$ref`s resolved; an operation's own
/// parameter overrides the path item's of the same name and place.
fn parameters<'c>(c: &'c Contract, op: &Operation) -> Vec<(String, &'c Value)> {
    let item_ptr = op.pointer.rsplit_once('/').map(|(p, _)| p).unwrap_or("");
    let mut out: Vec<(String, &Value)> = Vec::new();
    for base in [
        format!("{item_ptr}/parameters"),
        format!("{}/parameters", op.pointer),
    ] {
        let n = c
            .doc
            .pointer(&base)
            .and_then(|v| v.as_array())
            .map(|a| a.len())
            .unwrap_or(0);
        for i in 0..n {
            let (_, p) = c.resolve(&format!("{base}/{i}"));
            let key = format!(
                "{}:{}",
                p.get("in").and_then(|v| v.as_str()).unwrap_or(""),
                p.get("name").and_then(|v| v.as_str()).unwrap_or("")
            );
            out.retain(|(k, _)| *k != key);
            out.push((key, p));
        }
    }
    out
}

pub(super) fn scalar(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn describe(e: &reqwest::Error) -> String {
    let mut s = e.to_string();
    let mut cur = std::error::Error::source(e);
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

pub(super) fn is_problem(ex: &Exchange) -> bool {
    ex.media_type().as_deref() == Some("application/problem+json")
}
