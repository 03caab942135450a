//! One request of a functional check, sent with a deadline, kept with its answer and written as
//! a `curl` line a person can replay.

use std::time::{Duration, Instant};

use crate::load::exchange::shell_quote;
use crate::scenario::Template;
use crate::scenario::template::Part;

/// A request ready to send.
#[derive(Debug, Clone)]
pub struct Request {
    pub method: reqwest::Method,
    /// Base URL plus path.
    pub url: String,
    /// (name, value sent, value shown in the `curl` line).
    pub headers: Vec<(String, String, String)>,
    pub body: Option<Vec<u8>>,
}

/// What came back.
#[derive(Debug, Clone)]
pub struct Answer {
    /// `None`: no complete answer (transport error, cut response, timeout).
    pub status: Option<u16>,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// Why there was no complete answer.
    pub error: Option<String>,
    pub took: Duration,
}

impl Answer {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> Option<serde_json::Value> {
        serde_json::from_slice(&self.body).ok()
    }

    /// `201`, `409 .../idempotency-key-in-flight`, or `no answer: ...`, for evidence lines.
    pub fn summary(&self) -> String {
        match self.status {
            None => format!(
                "no answer after {} ms: {}",
                self.took.as_millis(),
                self.error.as_deref().unwrap_or("?")
            ),
            Some(s) => match self.json().and_then(|v| v.get("type").cloned()) {
                Some(serde_json::Value::String(t)) => format!("{s} {t}"),
                _ => s.to_string(),
            },
        }
    }

    /// Seconds the answer asks to wait before retrying, within reason.
    pub fn retry_after(&self) -> Option<Duration> {
        let secs: u64 = self.header("retry-after")?.trim().parse().ok()?;
        Some(Duration::from_secs(secs.min(30)))
    }
}

impl Request {
    /// The request as a shell command. Secrets bound from the environment stay `$NAME`.
    pub fn curl(&self) -> String {
        let mut s = format!("curl -sS -i -X {} {}", self.method, shell_quote(&self.url));
        for (k, _, shown) in &self.headers {
            if shown.contains('$') {
                s.push_str(&format!(" -H \"{k}: {shown}\""));
            } else {
                s.push_str(&format!(" -H {}", shell_quote(&format!("{k}: {shown}"))));
            }
        }
        if let Some(b) = &self.body {
            s.push_str(&format!(
                " --data-raw {}",
                shell_quote(&String::from_utf8_lossy(b))
            ));
        }
        s
    }

    /// The same request with the header `name` set to `value`.
    pub fn with_header(mut self, name: &str, value: &str) -> Self {
        self.headers
            .retain(|(k, _, _)| !k.eq_ignore_ascii_case(name));
        self.headers
            .push((name.to_owned(), value.to_owned(), value.to_owned()));
        self
    }

    /// The same request sent to another base URL (the proxy in front of the service).
    pub fn via(&self, from_base: &str, to_base: &str) -> Self {
        let mut r = self.clone();
        if let Some(rest) = r.url.strip_prefix(from_base) {
            r.url = format!("{to_base}{rest}");
        }
        r
    }
}

/// The unbound text of a template, with `${env.X}` as `$X` so a `curl` line does not carry
/// a secret. Other generators show as their expression.
pub fn shell_text(t: &Template) -> String {
    let mut out = String::new();
    for p in t.parts() {
        match p {
            Part::Lit(s) => out.push_str(s),
            Part::Env { name, .. } => out.push_str(&format!("${{{name}}}")),
            Part::Uuid => out.push_str("<uuid>"),
            Part::Seq => out.push_str("<seq>"),
            Part::Choice(c) => out.push_str(&c[0]),
            Part::Random(a, _) => out.push_str(&a.to_string()),
            Part::Var(v) => out.push_str(&format!("<{v}>")),
        }
    }
    out
}

/// A client for functional requests. No connection pooling: every request opens its own
/// connection, so a toxic on one never leaks into the next.
pub fn http(timeout: Duration) -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(timeout.min(Duration::from_secs(5)))
        .pool_max_idle_per_host(0)
        .user_agent(concat!("deliverykit-verifier/", env!("CARGO_PKG_VERSION")))
        .build()
        .expect("a TLS-free reqwest client builds")
}

/// Sends one request; every failure becomes an answer without a status.
pub async fn send(client: &reqwest::Client, req: &Request) -> Answer {
    let start = Instant::now();
    let mut rb = client.request(req.method.clone(), &req.url);
    for (k, v, _) in &req.headers {
        rb = rb.header(k, v);
    }
    if let Some(b) = &req.body {
        rb = rb.body(b.clone());
    }
    let fail = |e: String, start: Instant| Answer {
        status: None,
        headers: Vec::new(),
        body: Vec::new(),
        error: Some(e),
        took: start.elapsed(),
    };
    let resp = match rb.send().await {
        Ok(r) => r,
        Err(e) => return fail(error_chain(&e), start),
    };
    let status = resp.status().as_u16();
    let headers = resp
        .headers()
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_owned(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    match resp.bytes().await {
        Ok(b) => Answer {
            status: Some(status),
            headers,
            body: b.to_vec(),
            error: None,
            took: start.elapsed(),
        },
        // Headers came, the body did not: the answer was cut.
        Err(e) => fail(
            format!("{status} with its body cut: {}", error_chain(&e)),
            start,
        ),
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(c) = src {
        s.push_str(": ");
        s.push_str(&c.to_string());
        src = c.source();
    }
    s
}
