//! One HTTP exchange on the open model's hot path: plain hyper over a pooled
//! keep-alive client, classified into an [`Outcome`].

use std::collections::HashMap;
use std::sync::atomic::AtomicU64;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client as HyperClient;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

use super::{PlannedStep, Target};
use crate::record::Outcome;
use crate::scenario::Capture;

#[derive(Clone)]
pub struct Client {
    inner: HyperClient<HttpConnector, Full<Bytes>>,
    target: Target,
    timeout: Duration,
}

/// Result of one step; `latency` runs from the given start (intended or actual) to the
/// last body byte.
#[derive(Debug)]
pub struct StepResult {
    pub outcome: Outcome,
    pub end: Instant,
    pub latency: Duration,
    pub status: Option<u16>,
}

impl Client {
    pub fn new(
        target: Target,
        timeout: Duration,
        connect_timeout: Duration,
        max_idle: usize,
    ) -> Client {
        let mut http = HttpConnector::new();
        http.set_connect_timeout(Some(connect_timeout));
        http.set_nodelay(true);
        let inner = HyperClient::builder(TokioExecutor::new())
            .pool_max_idle_per_host(max_idle)
            .pool_idle_timeout(Duration::from_secs(30))
            // A retry would hide a reset from the error counts.
            .retry_canceled_requests(false)
            .build(http);
        Client {
            inner,
            target,
            timeout,
        }
    }

    /// Sends one step and stores its captures into `vars`. `start` is when the clock starts
    /// (the intended send time for the first step of an open-model arrival).
    pub async fn execute(
        &self,
        step: &PlannedStep,
        seq: &AtomicU64,
        vars: &mut HashMap<String, String>,
        start: Instant,
    ) -> StepResult {
        let (path, headers, body) = step.render(seq, vars);
        let effect_key = step
            .effect
            .as_ref()
            .and_then(|t| t.key_of(&headers, body.as_ref().map(|(b, _)| &b[..])));
        // The request as sent, kept for the conformance sample's evidence (cheap clones: the
        // header values and body are reference-counted).
        let sent = step.conformance.as_ref().map(|_| {
            (
                path.clone(),
                headers.clone(),
                body.as_ref().map(|(b, c)| (b.clone(), *c)),
            )
        });
        let uri = format!("{}{}", self.target.base, path);
        let mut b = http::Request::builder()
            .method(step.method.as_str())
            .uri(uri);
        for (n, v) in headers {
            b = b.header(n, v);
        }
        let payload = match body {
            Some((bytes, ctype)) => {
                b = b.header(http::header::CONTENT_TYPE, ctype);
                bytes
            }
            None => Bytes::new(),
        };
        let req = match b.body(Full::new(payload)) {
            Ok(r) => r,
            Err(_) => {
                let end = Instant::now();
                return StepResult {
                    outcome: Outcome::Other,
                    end,
                    latency: end - start,
                    status: None,
                };
            }
        };
        let need_body = step.effect.is_some()
            || step
                .captures
                .iter()
                .any(|(_, c)| matches!(c, Capture::Json(_)));
        let exchange = async {
            let resp = self.inner.request(req).await.map_err(classify_client)?;
            let status = resp.status().as_u16();
            let header_caps = capture_headers(&step.captures, resp.headers());
            let sampled = step
                .conformance
                .as_ref()
                .filter(|s| s.wants(status))
                .map(|_| shown_headers(resp.headers()));
            // The body is always read to the end: the latency is to the last byte, and an
            // unread body would stop the connection going back to the pool.
            let bytes = resp
                .into_body()
                .collect()
                .await
                .map_err(classify_hyper)?
                .to_bytes();
            if let (Some(sampler), Some(resp_headers), Some((path, headers, body))) =
                (&step.conformance, sampled, &sent)
            {
                sampler.offer(crate::contract::judge::Exchange {
                    method: step.method,
                    base: self.target.base.clone(),
                    path: path.clone(),
                    request_headers: sent_headers(headers, body.as_ref().map(|(_, c)| *c)),
                    request_body: body.as_ref().map(|(b, _)| b.clone()),
                    status,
                    response_headers: resp_headers,
                    body: bytes.clone(),
                });
            }
            Ok::<_, Outcome>((
                status,
                header_caps,
                if need_body { Some(bytes) } else { None },
            ))
        };
        let result = tokio::time::timeout(self.timeout, exchange).await;
        let end = Instant::now();
        let latency = end.saturating_duration_since(start);
        if let Some(tap) = &step.effect {
            match &result {
                Ok(Ok((status, _, body))) => tap.record(effect_key, Some(*status), body.as_deref()),
                _ => tap.record(effect_key, None, None),
            }
        }
        match result {
            Err(_) => StepResult {
                outcome: Outcome::Timeout,
                end,
                latency,
                status: None,
            },
            Ok(Err(o)) => StepResult {
                outcome: o,
                end,
                latency,
                status: None,
            },
            Ok(Ok((status, header_caps, body))) => {
                let outcome = Outcome::from_status(status, &step.expect_status);
                if outcome == Outcome::Ok {
                    vars.extend(header_caps);
                    if let Some(body) = body {
                        capture_json(&step.captures, &body, vars);
                    }
                }
                StepResult {
                    outcome,
                    end,
                    latency,
                    status: Some(status),
                }
            }
        }
    }
}

/// Response headers a conformance sample keeps: the ones judging and evidence use.
pub fn shown_headers(h: &http::HeaderMap) -> Vec<(String, String)> {
    const SHOWN: [&str; 4] = [
        "content-type",
        "retry-after",
        "location",
        "www-authenticate",
    ];
    SHOWN
        .iter()
        .filter_map(|n| {
            h.get(*n)
                .and_then(|v| v.to_str().ok())
                .map(|v| ((*n).to_owned(), v.to_owned()))
        })
        .collect()
}

/// Request headers as text, with the body's content type, for a `curl` line.
pub fn sent_headers(
    headers: &[(http::HeaderName, http::HeaderValue)],
    ctype: Option<&str>,
) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = headers
        .iter()
        .filter_map(|(n, v)| v.to_str().ok().map(|v| (n.to_string(), v.to_owned())))
        .collect();
    if let Some(c) = ctype {
        out.push(("content-type".into(), c.to_owned()));
    }
    out
}

/// Header captures from a response, as (variable, value).
pub fn capture_headers(
    captures: &[(String, Capture)],
    headers: &http::HeaderMap,
) -> Vec<(String, String)> {
    captures
        .iter()
        .filter_map(|(name, c)| match c {
            Capture::Header(h) => headers
                .get(h.as_str())
                .and_then(|v| v.to_str().ok())
                .map(|v| (name.clone(), v.to_owned())),
            Capture::Json(_) => None,
        })
        .collect()
}

/// Stores JSON captures; a missing pointer leaves the variable unset, and the later step
/// that uses it renders an empty segment (which the target will answer with an error).
pub fn capture_json(
    captures: &[(String, Capture)],
    body: &[u8],
    vars: &mut HashMap<String, String>,
) {
    let Ok(v) = serde_json::from_slice::<serde_json::Value>(body) else {
        return;
    };
    for (name, c) in captures {
        if let Capture::Json(ptr) = c
            && let Some(x) = v.pointer(ptr)
        {
            let s = match x {
                serde_json::Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            vars.insert(name.clone(), s);
        }
    }
}

fn classify_client(e: hyper_util::client::legacy::Error) -> Outcome {
    if e.is_connect() {
        return Outcome::Connect;
    }
    classify_chain(&e)
}

fn classify_hyper(e: hyper::Error) -> Outcome {
    classify_chain(&e)
}

pub(crate) fn classify_chain(e: &(dyn std::error::Error + 'static)) -> Outcome {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = cur {
        if let Some(io) = err.downcast_ref::<std::io::Error>() {
            use std::io::ErrorKind::*;
            return match io.kind() {
                ConnectionReset | ConnectionAborted | BrokenPipe | UnexpectedEof => Outcome::Reset,
                TimedOut => Outcome::Timeout,
                ConnectionRefused => Outcome::Connect,
                _ => Outcome::Other,
            };
        }
        if let Some(h) = err.downcast_ref::<hyper::Error>()
            && (h.is_incomplete_message() || h.is_closed() || h.is_canceled())
        {
            return Outcome::Reset;
        }
        cur = err.source();
    }
    Outcome::Other
}

/// Opens one TCP connection to the target within the connect timeout: the preflight that
/// turns "target down" into exit code 3 before any load starts.
pub async fn preflight(target: &Target, connect_timeout: Duration) -> Result<(), String> {
    let addr = target.authority.clone();
    match tokio::time::timeout(connect_timeout, tokio::net::TcpStream::connect(&addr)).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => Err(format!("target {} is unreachable: {e}", target.base)),
        Err(_) => Err(format!(
            "target {} did not accept a connection within the connect timeout ({} ms)",
            target.base,
            connect_timeout.as_millis()
        )),
    }
}
