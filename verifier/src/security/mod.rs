//! The API security pass, run once before the load: authentication (no token, a bad
//! signature, an expired token, `alg: none`), tenant isolation, the rate limit, malformed
//! bodies, and a bounded generative pass over the contract's request schemas. Each check is
//! its own rule with the offending requests as `curl` lines.
//!
//! The verifier mints its own HS256 tokens from the scenario's secret, one fresh tenant per
//! purpose (A and B for isolation, one for the rate limit, one for the generative pass), so
//! the probes neither see the load's data nor spend its tenant's rate budget. Every response
//! is also judged for contract conformance.

pub mod generate;
pub mod token;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::Value;

use crate::contract::conformance::Conformance;
use crate::contract::{Contract, Operation};
use crate::load::exchange::Exchange;
use crate::rule::{RuleKind, RuleResult, Status};
use crate::scenario::locate::Seg;
use crate::scenario::{Dur, Method};
use generate::{Generator, Mode};

/// The scenario's `security:` section.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SecuritySpec {
    /// How the verifier signs the tokens of its own tenants.
    pub jwt: token::JwtSpec,
    /// Tenant isolation: tenant B creates with this operation, tenant A then reads, changes and
    /// lists by the new id and must find nothing.
    #[serde(default)]
    pub isolation: Option<IsolationSpec>,
    /// The rate limit: one tenant calls an operation until it is refused with 429.
    #[serde(default)]
    pub rate_limit: Option<RateLimitSpec>,
    #[serde(default)]
    pub malformed: MalformedSpec,
    #[serde(default)]
    pub generative: GenerativeSpec,
    /// operationIds no probe calls (e.g. administrative switches).
    #[serde(default)]
    pub skip: Vec<String>,
    /// The whole pass must end within this; a service too slow for it fails `security.pass`.
    #[serde(default = "default_budget")]
    pub budget: Dur,
}

fn default_budget() -> Dur {
    Dur(Duration::from_secs(120))
}

#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct IsolationSpec {
    /// operationId that creates a resource; the operations under its path that take one path
    /// parameter are probed with the new resource's id.
    pub create: String,
    /// JSON Pointer to the new resource's id in the create response.
    #[serde(default = "default_id")]
    pub id: String,
}

fn default_id() -> String {
    "/id".into()
}

#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RateLimitSpec {
    /// operationId to call until the service answers 429.
    pub operation: String,
    /// Give up (and fail) after this many requests without a 429.
    #[serde(default = "default_max_requests")]
    pub max_requests: u32,
    /// Requests in flight at once.
    #[serde(default = "default_concurrency")]
    pub concurrency: u32,
}

fn default_max_requests() -> u32 {
    1000
}
fn default_concurrency() -> u32 {
    16
}

#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MalformedSpec {
    /// Size of the oversized body, bytes.
    #[serde(default = "default_oversized")]
    pub oversized_bytes: usize,
}

fn default_oversized() -> usize {
    1 << 20
}

impl Default for MalformedSpec {
    fn default() -> Self {
        MalformedSpec {
            oversized_bytes: default_oversized(),
        }
    }
}

#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct GenerativeSpec {
    /// Requests of the generative pass (0 switches it off).
    #[serde(default = "default_requests")]
    pub requests: u32,
    /// Seed of the generator: the same seed sends the same requests.
    #[serde(default = "default_seed")]
    pub seed: u64,
}

fn default_requests() -> u32 {
    200
}
fn default_seed() -> u64 {
    1
}

impl Default for GenerativeSpec {
    fn default() -> Self {
        GenerativeSpec {
            requests: default_requests(),
            seed: default_seed(),
        }
    }
}

/// Checks the section against the contract; errors carry the field to blame.
pub fn validate(s: &SecuritySpec, c: &Contract) -> Result<(), (Vec<Seg>, String)> {
    let key = |k: &str| Seg::Key(k.to_owned());
    let known = |id: &str, field: Vec<Seg>| {
        if c.by_id(id).is_some() {
            Ok(())
        } else {
            Err((
                field,
                format!(
                    "`{id}` is not an operationId of {} (known: {})",
                    c.file.display(),
                    c.operations
                        .iter()
                        .map(|o| o.id.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            ))
        }
    };
    if let Some(i) = &s.isolation {
        known(&i.create, vec![key("isolation"), key("create")])?;
        if !i.id.starts_with('/') {
            return Err((
                vec![key("isolation"), key("id")],
                format!("JSON pointer `{}` must start with `/`", i.id),
            ));
        }
    }
    if let Some(r) = &s.rate_limit {
        known(&r.operation, vec![key("rate_limit"), key("operation")])?;
        if r.max_requests == 0 || r.concurrency == 0 {
            return Err((
                vec![key("rate_limit")],
                "max_requests and concurrency must be at least 1".into(),
            ));
        }
    }
    for (i, id) in s.skip.iter().enumerate() {
        known(id, vec![key("skip"), Seg::Index(i)])?;
    }
    if s.generative.requests > 10_000 {
        return Err((
            vec![key("generative"), key("requests")],
            "at most 10000 requests".into(),
        ));
    }
    Ok(())
}

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
        Err(_) => Ok(vec![RuleResult {
            id: "security.pass".into(),
            kind: RuleKind::Security,
            scope: "security pass".into(),
            endpoint: None,
            budget: format!("the pass ends within {} s", budget.as_secs()),
            observed: format!("cut off after {:.0} s", started.elapsed().as_secs_f64()),
            status: Status::Fail,
            detail: "the service answered the probes too slowly to finish the pass".into(),
            evidence: Vec::new(),
        }]),
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
    rules.extend(auth(p, minter, &tenant("auth")).await);
    if let Some(iso) = &spec.isolation {
        rules.extend(isolation(p, minter, iso, &tenant("a"), &tenant("b")).await);
    }
    if let Some(rl) = &spec.rate_limit {
        rules.push(rate_limit(p, &minter.valid(&tenant("rate")), rl).await);
    }
    rules.extend(malformed(p, &minter.valid(&tenant("bad")), &spec.malformed).await);
    if spec.generative.requests > 0 {
        rules.push(generative(p, &minter.valid(&tenant("gen")), &spec.generative).await);
    }
    rules
}

/// Sends probes and judges their answers for conformance on the way.
struct Prober {
    http: reqwest::Client,
    base: String,
    contract: Arc<Contract>,
    conformance: Option<Arc<Conformance>>,
    skip: Vec<String>,
}

/// One probe request.
#[derive(Debug, Clone)]
struct Probe {
    method: Method,
    path: String,
    headers: Vec<(String, String)>,
    body: Option<Bytes>,
}

impl Probe {
    fn with_token(mut self, token: Option<&str>) -> Probe {
        self.headers
            .retain(|(n, _)| !n.eq_ignore_ascii_case("authorization"));
        if let Some(t) = token {
            self.headers
                .push(("Authorization".into(), format!("Bearer {t}")));
        }
        self
    }
    fn with_body(mut self, body: Bytes) -> Probe {
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
    fn unsent(&self, base: &str) -> Exchange {
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
    fn operations(&self) -> impl Iterator<Item = &Operation> {
        self.contract
            .operations
            .iter()
            .filter(|o| !self.skip.contains(&o.id))
    }

    async fn send(&self, p: &Probe) -> Result<Exchange, String> {
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
    fn request<'s>(
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
    fn canonical<'s>(&'s self, g: &mut Generator<'s>, op: &Operation, fill: Option<&str>) -> Probe {
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

fn scalar(v: &Value) -> String {
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

fn is_problem(ex: &Exchange) -> bool {
    ex.media_type().as_deref() == Some("application/problem+json")
}

/// Collects one rule's probes: how many, which failed, and the evidence of the first ones.
struct Check {
    id: String,
    budget: String,
    sent: u32,
    failed: u32,
    evidence: Vec<String>,
    notes: Vec<String>,
    started: Instant,
    keep_auth: bool,
}

const EXAMPLES: usize = 3;

impl Check {
    fn new(id: &str, budget: &str) -> Check {
        Check {
            id: id.into(),
            budget: budget.into(),
            sent: 0,
            failed: 0,
            evidence: Vec::new(),
            notes: Vec::new(),
            started: Instant::now(),
            keep_auth: false,
        }
    }

    /// Records one probe's outcome; `problem` is what is wrong with it, if anything.
    fn record(&mut self, ex: &Exchange, problem: Option<String>) {
        self.sent += 1;
        if let Some(why) = problem {
            self.failed += 1;
            if self.evidence.len() < EXAMPLES * 3 {
                self.evidence.push(ex.curl(self.keep_auth));
                self.evidence.push(if ex.status == 0 {
                    "→ no answer".into()
                } else {
                    ex.answer_line()
                });
                self.evidence.push(format!("✗ {why}"));
            }
        }
    }

    /// Records a probe's answer as `judge` sees it, or its lack of one as a failure.
    fn sent_or_failed(
        &mut self,
        probe: &Probe,
        base: &str,
        r: Result<Exchange, String>,
        judge: impl FnOnce(&Exchange) -> Option<String>,
    ) -> Option<Exchange> {
        match r {
            Ok(ex) => {
                let p = judge(&ex);
                self.record(&ex, p);
                Some(ex)
            }
            Err(e) => {
                self.record(&probe.unsent(base), Some(format!("no answer: {e}")));
                None
            }
        }
    }

    fn finish(self, observed: String) -> RuleResult {
        let mut detail = format!(
            "{} probes in {:.2} s",
            self.sent,
            self.started.elapsed().as_secs_f64()
        );
        for n in &self.notes {
            detail.push_str("; ");
            detail.push_str(n);
        }
        RuleResult {
            id: self.id,
            kind: RuleKind::Security,
            scope: "security pass".into(),
            endpoint: None,
            budget: self.budget,
            observed,
            status: if self.failed > 0 {
                Status::Fail
            } else if self.sent == 0 {
                Status::Inconclusive
            } else {
                Status::Pass
            },
            detail,
            evidence: self.evidence,
        }
    }

    fn finish_counted(self) -> RuleResult {
        let observed = format!("{} of {} probes wrong", self.failed, self.sent);
        self.finish(observed)
    }
}

/// Expects a 401 problem; anything else is what is wrong.
fn expect_401(ex: &Exchange) -> Option<String> {
    if ex.status != 401 {
        Some(format!("answered {}, not 401", ex.status))
    } else if !is_problem(ex) {
        Some(format!(
            "401 answered with `{}`, not application/problem+json",
            ex.media_type().unwrap_or_default()
        ))
    } else {
        None
    }
}

async fn auth(p: &Prober, minter: &token::Minter, tenant: &str) -> Vec<RuleResult> {
    let valid = minter.valid(tenant);
    let variants: [(&str, &str, Option<String>); 4] = [
        (
            "security.auth.no_token",
            "no Authorization header → 401 problem+json",
            None,
        ),
        (
            "security.auth.bad_signature",
            "a token with a forged signature → 401 problem+json",
            Some(token::forge_signature(&valid)),
        ),
        (
            "security.auth.expired",
            "a correctly signed token that expired an hour ago → 401 problem+json",
            Some(minter.expired(tenant)),
        ),
        (
            "security.auth.alg_none",
            "an unsigned token (`alg: none`) → 401 problem+json",
            Some(token::alg_none(&valid)),
        ),
    ];
    let mut g = Generator::new(&p.contract, 11);
    let secured: Vec<&Operation> = p
        .operations()
        .filter(|o| p.contract.is_secured(o))
        .collect();
    let mut out = Vec::new();
    for (id, budget, tok) in variants {
        let mut check = Check::new(id, budget);
        // The bad token itself is what a person replays.
        check.keep_auth = true;
        for op in &secured {
            let probe = p
                .request(&mut g, op, Mode::Valid, None)
                .with_token(tok.as_deref());
            let r = p.send(&probe).await;
            check.sent_or_failed(&probe, &p.base, r, expect_401);
        }
        if secured.is_empty() {
            check
                .notes
                .push("the contract declares no secured operation".into());
        }
        out.push(check.finish_counted());
    }
    out
}

async fn isolation(
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
        vec![RuleResult {
            id: "security.isolation".into(),
            kind: RuleKind::Security,
            scope: "security pass".into(),
            endpoint: None,
            budget: "another tenant's resource is not found and never shown".into(),
            observed: "not tested".into(),
            status: Status::Inconclusive,
            detail: why,
            evidence: ev,
        }]
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

/// `Retry-After` is delta-seconds or an HTTP-date (RFC 9110 §10.2.3).
fn retry_after_ok(v: &str) -> bool {
    let v = v.trim();
    v.parse::<u64>().is_ok() || (v.len() >= 29 && v.ends_with("GMT") && v.contains(','))
}

async fn rate_limit(p: &Prober, tok: &str, spec: &RateLimitSpec) -> RuleResult {
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

async fn malformed(p: &Prober, tok: &str, spec: &MalformedSpec) -> Vec<RuleResult> {
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

async fn generative(p: &Prober, tok: &str, spec: &GenerativeSpec) -> RuleResult {
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
