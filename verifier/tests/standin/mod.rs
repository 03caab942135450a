//! An in-process stand-in of the orders API on 127.0.0.1:0 that follows the shipped OpenAPI
//! document, with switches that break it in one known way each: the contract and security
//! checks must pass against it intact and catch every break.
#![allow(dead_code)]

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use serde_json::{Value, json};

use super::support;

pub const SECRET: &str = "stand-in-secret-0123456789abcdef0123456789";

/// Each break is one deliberate defect.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Break {
    /// createOrder answers 202, which the contract does not declare.
    UndeclaredStatus,
    /// getOrder answers `text/plain`.
    WrongContentType,
    /// Orders carry `amount_minor` as a string.
    BodyNotSchema,
    /// Errors other than 401 are `application/json`, not problem details.
    ErrorNotProblem,
    /// A request without a token is served.
    NoTokenAccepted,
    /// A token's signature is not checked.
    AnySignature,
    /// `exp` is not checked.
    ExpiryIgnored,
    /// `alg: none` tokens are accepted.
    AlgNoneAccepted,
    /// getOrder does not scope by tenant.
    ReadLeaksTenant,
    /// cancelOrder does not scope by tenant.
    CancelAnyTenant,
    /// 429 without `Retry-After`.
    NoRetryAfter,
    /// No rate limit at all.
    NoRateLimit,
    /// A body that is not JSON is a 500.
    MalformedIs500,
    /// An item quantity of exactly 1000 (the contract's maximum) is a 500.
    BoundaryIs500,
    /// listOrders lists every tenant's orders.
    ListLeaksTenant,
    /// A field of the wrong type (a non-string `currency`) is a 500.
    WrongTypeIs500,
    /// A body over the limit is a 500 instead of 413.
    OversizedIs500,
    /// Every answer takes 300 ms (and the scenario gives the security pass 1 s).
    Slow,
}

struct Order {
    tenant: String,
    json: Value,
}

struct State {
    breaks: HashSet<Break>,
    orders: Mutex<HashMap<String, Order>>,
    /// Per tenant: (window start, requests in it).
    windows: Mutex<HashMap<String, (Instant, u32)>>,
    limit_per_second: u32,
}

pub struct StandIn {
    pub url: String,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for StandIn {
    fn drop(&mut self) {
        self.task.abort();
    }
}

pub async fn start(breaks: &[Break]) -> StandIn {
    let st = Arc::new(State {
        breaks: breaks.iter().copied().collect(),
        orders: Mutex::new(HashMap::new()),
        windows: Mutex::new(HashMap::new()),
        limit_per_second: 150,
    });
    let (url, task) = support::serve(move |req| respond(st.clone(), req)).await;
    StandIn { url, task }
}

/// An HS256 token for `tenant`, valid for an hour.
pub fn token(tenant: &str) -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let input = format!(
        "{}.{}",
        B64.encode(json!({"alg": "HS256", "typ": "JWT"}).to_string()),
        B64.encode(json!({"tenant_id": tenant, "sub": "t", "exp": now + 3600}).to_string())
    );
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, SECRET.as_bytes());
    let tag = ring::hmac::sign(&key, input.as_bytes());
    format!("{input}.{}", B64.encode(tag.as_ref()))
}

struct Req {
    method: String,
    path: String,
    query: String,
    headers: HashMap<String, String>,
    body: Vec<u8>,
}

struct Resp {
    status: u16,
    ctype: &'static str,
    headers: Vec<(&'static str, String)>,
    body: String,
}

fn problem(st: &State, status: u16, code: &str) -> Resp {
    let ctype = if st.breaks.contains(&Break::ErrorNotProblem) && status != 401 {
        "application/json"
    } else {
        "application/problem+json"
    };
    Resp {
        status,
        ctype,
        headers: Vec::new(),
        body: json!({
            "type": format!("https://example.com/problems/{code}"),
            "title": code,
            "status": status,
            "code": code,
        })
        .to_string(),
    }
}

fn ok(status: u16, v: &Value) -> Resp {
    Resp {
        status,
        ctype: "application/json",
        headers: Vec::new(),
        body: v.to_string(),
    }
}

/// Parses one request into a [`Req`] and answers it.
async fn respond(st: Arc<State>, req: support::Request) -> Option<String> {
    let headers: HashMap<String, String> = req
        .head
        .split("\r\n")
        .skip(1)
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let (path, query) = match req.target.split_once('?') {
        Some((p, q)) => (p.to_owned(), q.to_owned()),
        None => (req.target.clone(), String::new()),
    };
    let req = Req {
        method: req.method,
        path,
        query,
        headers,
        body: req.body,
    };
    if st.breaks.contains(&Break::Slow) {
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    }
    let r = handle(&st, &req);
    let mut out = format!(
        "HTTP/1.1 {} X\r\ncontent-type: {}\r\ncontent-length: {}\r\n",
        r.status,
        r.ctype,
        r.body.len()
    );
    for (n, v) in &r.headers {
        out.push_str(&format!("{n}: {v}\r\n"));
    }
    out.push_str("\r\n");
    out.push_str(&r.body);
    Some(out)
}

/// The tenant of a valid token, as the service's rules say (with the breaks applied).
fn authenticate(st: &State, req: &Req) -> Option<String> {
    let Some(raw) = req
        .headers
        .get("authorization")
        .and_then(|a| a.strip_prefix("Bearer "))
    else {
        return st
            .breaks
            .contains(&Break::NoTokenAccepted)
            .then(|| "anonymous".to_owned());
    };
    let parts: Vec<&str> = raw.split('.').collect();
    if parts.len() != 3 {
        return None;
    }
    let header: Value = serde_json::from_slice(&B64.decode(parts[0]).ok()?).ok()?;
    let claims: Value = serde_json::from_slice(&B64.decode(parts[1]).ok()?).ok()?;
    match header["alg"].as_str() {
        Some("HS256") => {
            let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, SECRET.as_bytes());
            let sig = B64.decode(parts[2]).ok()?;
            let input = format!("{}.{}", parts[0], parts[1]);
            if ring::hmac::verify(&key, input.as_bytes(), &sig).is_err()
                && !st.breaks.contains(&Break::AnySignature)
            {
                return None;
            }
        }
        Some("none") if st.breaks.contains(&Break::AlgNoneAccepted) => {}
        _ => return None,
    }
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    if claims["exp"].as_i64().unwrap_or(0) < now && !st.breaks.contains(&Break::ExpiryIgnored) {
        return None;
    }
    claims["tenant_id"].as_str().map(str::to_owned)
}

fn limited(st: &State, tenant: &str) -> bool {
    if st.breaks.contains(&Break::NoRateLimit) {
        return false;
    }
    let mut w = st.windows.lock().unwrap();
    let e = w.entry(tenant.to_owned()).or_insert((Instant::now(), 0));
    if e.0.elapsed().as_secs_f64() >= 1.0 {
        *e = (Instant::now(), 0);
    }
    e.1 += 1;
    e.1 > st.limit_per_second
}

fn handle(st: &State, req: &Req) -> Resp {
    let segs: Vec<&str> = req.path.trim_start_matches('/').split('/').collect();
    match (req.method.as_str(), segs.as_slice()) {
        ("GET", ["livez"]) | ("GET", ["readyz"]) => return ok(200, &json!({"status": "ok"})),
        ("GET", ["metrics"]) => {
            return Resp {
                status: 200,
                ctype: "text/plain; version=0.0.4",
                headers: Vec::new(),
                body: "requests_total 1\n".into(),
            };
        }
        _ => {}
    }
    let known = matches!(
        (req.method.as_str(), segs.as_slice()),
        ("POST" | "GET", ["v1", "orders"])
            | ("GET", ["v1", "orders", _])
            | ("POST", ["v1", "orders", _, "cancel"])
            | ("GET" | "PUT", ["admin", "kill-switches"])
    );
    if !known {
        return problem(st, 404, "not-found");
    }
    let Some(tenant) = authenticate(st, req) else {
        let mut r = problem(st, 401, "unauthorized");
        r.headers.push(("www-authenticate", "Bearer".into()));
        return r;
    };
    if limited(st, &tenant) {
        let mut r = problem(st, 429, "rate-limited");
        if !st.breaks.contains(&Break::NoRetryAfter) {
            r.headers.push(("retry-after", "1".into()));
        }
        return r;
    }
    match (req.method.as_str(), segs.as_slice()) {
        (_, ["admin", _]) => problem(st, 403, "forbidden"),
        ("POST", ["v1", "orders"]) => create(st, req, &tenant),
        ("GET", ["v1", "orders"]) => {
            for kv in req.query.split('&').filter(|s| !s.is_empty()) {
                let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
                if k == "limit" && !matches!(v.parse::<u32>(), Ok(1..=100)) {
                    return problem(st, 400, "invalid-request");
                }
                if k == "cursor" && (v.len() > 200 || v.contains('%')) {
                    return problem(st, 400, "invalid-request");
                }
            }
            let orders = st.orders.lock().unwrap();
            let items: Vec<&Value> = orders
                .values()
                .filter(|o| o.tenant == tenant || st.breaks.contains(&Break::ListLeaksTenant))
                .map(|o| &o.json)
                .collect();
            ok(200, &json!({"items": items, "next_cursor": null}))
        }
        ("GET", ["v1", "orders", id]) => {
            let orders = st.orders.lock().unwrap();
            match orders.get(*id) {
                Some(o) if o.tenant == tenant || st.breaks.contains(&Break::ReadLeaksTenant) => {
                    if st.breaks.contains(&Break::WrongContentType) {
                        Resp {
                            status: 200,
                            ctype: "text/plain",
                            headers: Vec::new(),
                            body: o.json.to_string(),
                        }
                    } else {
                        ok(200, &o.json)
                    }
                }
                _ => problem(st, 404, "order-not-found"),
            }
        }
        ("POST", ["v1", "orders", id, "cancel"]) => {
            let mut orders = st.orders.lock().unwrap();
            match orders.get_mut(*id) {
                Some(o) if o.tenant == tenant || st.breaks.contains(&Break::CancelAnyTenant) => {
                    o.json["status"] = json!("cancelled");
                    o.json["version"] = json!(o.json["version"].as_i64().unwrap_or(1) + 1);
                    ok(200, &o.json)
                }
                _ => problem(st, 404, "order-not-found"),
            }
        }
        _ => problem(st, 404, "not-found"),
    }
}

fn create(st: &State, req: &Req, tenant: &str) -> Resp {
    if req.body.len() > 65536 {
        if st.breaks.contains(&Break::OversizedIs500) {
            return problem(st, 500, "internal");
        }
        return problem(st, 413, "body-too-large");
    }
    if !req
        .headers
        .get("content-type")
        .is_some_and(|c| c.starts_with("application/json"))
    {
        return problem(st, 415, "unsupported-media-type");
    }
    if req
        .headers
        .get("idempotency-key")
        .is_none_or(|k| k.is_empty())
    {
        return problem(st, 400, "idempotency-key-missing");
    }
    let v: Value = match serde_json::from_slice(&req.body) {
        Ok(v) => v,
        Err(_) if st.breaks.contains(&Break::MalformedIs500) => {
            return problem(st, 500, "internal");
        }
        Err(_) => return problem(st, 400, "malformed-json"),
    };
    if st.breaks.contains(&Break::WrongTypeIs500)
        && v.get("currency").is_some_and(|c| !c.is_string())
    {
        return problem(st, 500, "internal");
    }
    if st.breaks.contains(&Break::BoundaryIs500)
        && v["items"]
            .as_array()
            .is_some_and(|a| a.iter().any(|i| i["quantity"] == json!(1000)))
    {
        return problem(st, 500, "internal");
    }
    if let Err(code) = valid_order(&v) {
        return problem(st, 400, code);
    }
    let id = uuid::Uuid::new_v4().to_string();
    let card = v["card_number"].as_str().unwrap_or("");
    let amount: i64 = v["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["quantity"].as_i64().unwrap_or(0) * i["unit_price_minor"].as_i64().unwrap_or(0))
        .sum();
    let order = json!({
        "id": id,
        "status": "paid",
        "customer_email": v["customer_email"],
        "currency": v["currency"],
        "amount_minor": if st.breaks.contains(&Break::BodyNotSchema) { json!(amount.to_string()) } else { json!(amount) },
        "items": v["items"],
        "card_last4": &card[card.len().saturating_sub(4)..],
        "payment_id": "ch_1",
        "version": 1,
        "created_at": "2026-11-24T05:00:00Z",
        "updated_at": "2026-11-24T05:00:00Z",
    });
    st.orders.lock().unwrap().insert(
        id,
        Order {
            tenant: tenant.to_owned(),
            json: order.clone(),
        },
    );
    let status = if st.breaks.contains(&Break::UndeclaredStatus) {
        202
    } else {
        201
    };
    ok(status, &order)
}

/// The request schema's rules, checked by hand.
fn valid_order(v: &Value) -> Result<(), &'static str> {
    let o = v.as_object().ok_or("invalid-request")?;
    let allowed = ["customer_email", "currency", "card_number", "items"];
    if o.keys().any(|k| !allowed.contains(&k.as_str())) {
        return Err("unknown-field");
    }
    let s = |k: &str| o.get(k).and_then(|x| x.as_str()).ok_or("invalid-request");
    let email = s("customer_email")?;
    if !email.contains('@') || email.len() > 254 {
        return Err("invalid-request");
    }
    let cur = s("currency")?;
    if cur.len() != 3 || !cur.bytes().all(|b| b.is_ascii_uppercase()) {
        return Err("invalid-request");
    }
    let card = s("card_number")?;
    if !(12..=19).contains(&card.len()) || !card.bytes().all(|b| b.is_ascii_digit()) {
        return Err("invalid-request");
    }
    let items = o
        .get("items")
        .and_then(|x| x.as_array())
        .ok_or("invalid-request")?;
    if items.is_empty() || items.len() > 50 {
        return Err("invalid-request");
    }
    for i in items {
        let io = i.as_object().ok_or("invalid-request")?;
        if io
            .keys()
            .any(|k| !["sku", "quantity", "unit_price_minor"].contains(&k.as_str()))
        {
            return Err("unknown-field");
        }
        let sku = io
            .get("sku")
            .and_then(|x| x.as_str())
            .ok_or("invalid-request")?;
        let sku_ok = !sku.is_empty()
            && sku.len() <= 64
            && sku.as_bytes()[0].is_ascii_alphanumeric()
            && sku
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
        let q = io
            .get("quantity")
            .and_then(|x| x.as_i64())
            .ok_or("invalid-request")?;
        let p = io
            .get("unit_price_minor")
            .and_then(|x| x.as_i64())
            .ok_or("invalid-request")?;
        if !sku_ok || !(1..=1000).contains(&q) || !(1..=100_000_000).contains(&p) {
            return Err("invalid-request");
        }
    }
    Ok(())
}

/// A scenario against the stand-in: a short open-model load over every orders operation,
/// the shipped contract, and the security pass.
pub fn scenario(dir: &std::path::Path) -> std::path::PathBuf {
    let contract = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../reference-service/api/openapi.yaml");
    let yaml = format!(
        r#"name: stand-in
defaults:
  timeout: 2s
  headers:
    Authorization: Bearer ${{env.LOAD_TOKEN}}
journeys:
  - name: order
    steps:
      - name: create-order
        method: POST
        path: /v1/orders
        headers: {{Idempotency-Key: "${{uuid}}"}}
        body:
          json:
            customer_email: load-${{seq}}@example.com
            currency: EUR
            card_number: "4242424242424242"
            items: [{{sku: SKU-1, quantity: 1, unit_price_minor: 100}}]
        capture: {{order_id: {{json: /id}}}}
      - name: get-order
        method: GET
        path: /v1/orders/${{order_id}}
      - name: cancel-order
        method: POST
        path: /v1/orders/${{order_id}}/cancel
      - name: list-orders
        method: GET
        path: /v1/orders?limit=5
load:
  open:
    phases:
      - steady: {{rate: 10, duration: 1s}}
contract:
  openapi: {}
  conformance: {{first: 5, every: 2}}
security:
  jwt:
    secret: ${{env.STANDIN_SECRET}}
  isolation: {{create: createOrder}}
  rate_limit: {{operation: listOrders, max_requests: 400}}
  malformed: {{oversized_bytes: 70000}}
  generative: {{requests: 120, seed: 3}}
"#,
        contract.display()
    );
    let p = dir.join("scenario.yaml");
    std::fs::write(&p, yaml).unwrap();
    p
}

/// Runs the scenario against a stand-in with these breaks.
pub async fn run(breaks: &[Break]) -> verifier::report::Report {
    run_edited(breaks, |y| y).await
}

/// Runs the scenario, changed by `edit`, against a stand-in with these breaks.
pub async fn run_edited(
    breaks: &[Break],
    edit: impl FnOnce(String) -> String,
) -> verifier::report::Report {
    let s = start(breaks).await;
    let dir = tempfile::tempdir().unwrap();
    let path = scenario(dir.path());
    let mut y = edit(std::fs::read_to_string(&path).unwrap());
    if breaks.contains(&Break::Slow) {
        y.push_str("  budget: 1s\n");
    }
    std::fs::write(&path, y).unwrap();
    let opts = verifier::run::RunOptions {
        scenario: path,
        target: Some(s.url.clone()),
        baseline_target: None,
        report_dir: dir.path().join("report"),
        progress: verifier::report::progress::Mode::Off,
        shard: None,
    };
    let load_token = token("load");
    let getenv = move |k: &str| match k {
        "LOAD_TOKEN" => Some(load_token.clone()),
        "STANDIN_SECRET" => Some(SECRET.to_owned()),
        _ => None,
    };
    verifier::run::run(&opts, verifier::load::Stop::new(), &getenv)
        .await
        .unwrap_or_else(|e| panic!("the run failed: {e}"))
        .report
}

pub fn rule<'a>(r: &'a verifier::report::Report, id: &str) -> &'a verifier::rule::RuleResult {
    r.verdict
        .rules
        .iter()
        .find(|x| x.id == id)
        .unwrap_or_else(|| {
            panic!(
                "no rule {id}; rules: {:?}",
                r.verdict.rules.iter().map(|x| &x.id).collect::<Vec<_>>()
            )
        })
}

/// The rules of these kinds that did not pass, by id.
pub fn failing(r: &verifier::report::Report) -> Vec<String> {
    use verifier::rule::{RuleKind, Status};
    r.verdict
        .rules
        .iter()
        .filter(|x| matches!(x.kind, RuleKind::Contract | RuleKind::Security))
        .filter(|x| x.status != Status::Pass)
        .map(|x| format!("{} ({}: {})", x.id, x.observed, x.evidence.join(" | ")))
        .collect()
}
