//! One HTTP exchange on the open model's hot path: plain hyper HTTP/1.1 over a keep-alive
//! connection that each worker owns and drives itself (no pool, no connection task), classified
//! into an [`Outcome`].
//!
//! A keep-alive connection idles between a worker's requests, and servers close idle
//! connections on their own schedule (Go's `IdleTimeout`, Node's and uvicorn's 5 s, gunicorn's
//! 2 s). Nothing polls a connection while it idles, so the close is only seen when the next
//! request goes out on it. Such a request is the generator's own doing, not the target's: when a
//! reused connection ends before one byte of the answer arrived, the request is sent once more on
//! a new connection ([`Client::reconnects`] counts these) and timed from the same start. See
//! [`Client::send`] for exactly which requests are sent again.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use std::future::Future;
use std::pin::Pin;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::{PlannedStep, Target};
use crate::record::Outcome;
use crate::scenario::{Capture, Method};

#[derive(Clone)]
pub struct Client {
    target: Target,
    timeout: Duration,
    connect_timeout: Duration,
    /// Requests sent again because their reused connection had been closed by the target.
    reconnects: Arc<AtomicU64>,
}

type Connection = http1::Connection<TokioIo<Heard>, Full<Bytes>>;
type Request = http::Request<Full<Bytes>>;

/// One worker's keep-alive connection; opened on first use and again after it breaks.
#[derive(Default)]
pub struct Conn {
    sender: Option<http1::SendRequest<Full<Bytes>>>,
    driver: Option<Pin<Box<Connection>>>,
    /// Set when a byte arrives on the connection; cleared as each request is handed over.
    heard: Arc<AtomicBool>,
}

impl Conn {
    /// Runs `fut` while driving the connection's reads and writes in the same task.
    async fn drive<F: Future>(&mut self, fut: F) -> F::Output {
        tokio::pin!(fut);
        loop {
            let Some(driver) = self.driver.as_mut() else {
                return fut.await;
            };
            tokio::select! {
                biased;
                out = &mut fut => return out,
                _ = driver => {
                    // The connection ended (closed by the peer, or broken); what `fut` still
                    // waits for fails or completes on its own.
                    self.close();
                }
            }
        }
    }

    fn close(&mut self) {
        self.sender = None;
        self.driver = None;
    }
}

/// The TCP stream under a connection, noting whether anything was read from it since
/// [`Conn::heard`] was last cleared: that tells a connection that ended before its answer began
/// from one that broke in the middle of it. One relaxed store per read that got bytes.
struct Heard {
    stream: tokio::net::TcpStream,
    heard: Arc<AtomicBool>,
}

impl AsyncRead for Heard {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let polled = Pin::new(&mut this.stream).poll_read(cx, buf);
        if buf.filled().len() > before {
            this.heard.store(true, Ordering::Relaxed);
        }
        polled
    }
}

impl AsyncWrite for Heard {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_shutdown(cx)
    }
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
    pub fn new(target: Target, timeout: Duration, connect_timeout: Duration) -> Client {
        Client {
            target,
            timeout,
            connect_timeout,
            reconnects: Arc::new(AtomicU64::new(0)),
        }
    }

    /// Requests so far that found their reused connection closed by the target and were sent
    /// again on a new one (not counted as errors).
    pub fn reconnects(&self) -> u64 {
        self.reconnects.load(Ordering::Relaxed)
    }

    /// Makes `conn` ready for a request, connecting first when it has no connection or its
    /// connection is known to be closed or busy. True when the connection is an existing one.
    async fn ready(&self, conn: &mut Conn) -> Result<bool, Outcome> {
        let usable = conn
            .sender
            .as_ref()
            .is_some_and(|s| !s.is_closed() && s.is_ready());
        if usable {
            return Ok(true);
        }
        conn.close();
        let stream = tokio::time::timeout(
            self.connect_timeout,
            tokio::net::TcpStream::connect(&self.target.authority),
        )
        .await
        .map_err(|_| Outcome::Connect)?
        .map_err(|_| Outcome::Connect)?;
        let _ = stream.set_nodelay(true);
        let io = Heard {
            stream,
            heard: conn.heard.clone(),
        };
        let (sender, driver) = http1::Builder::new()
            .writev(false)
            .read_buf_exact_size(Some(8192))
            .handshake(TokioIo::new(io))
            .await
            .map_err(|_| Outcome::Connect)?;
        conn.sender = Some(sender);
        conn.driver = Some(Box::pin(driver));
        Ok(false)
    }

    /// Sends `req` on `conn` and waits for the response head.
    ///
    /// When the connection was an existing one and ended before one byte of the answer came,
    /// the request is sent once more on a new connection, and the target is not blamed:
    /// - always when hyper hands the request back unwritten: it saw the connection closed
    ///   before writing (it reads an idle connection before writing on it, so a close that came
    ///   while the connection idled is found here, which is nearly every stale connection);
    /// - when the request was written, only if `again` gives it back, which it does for
    ///   requests that may be repeated ([`replayable`]): the target may have closed just as it
    ///   arrived, or may have acted on it and then died, and a client cannot tell which.
    ///
    /// A new connection that fails, or one that fails after part of the answer, is the
    /// target's doing and counts.
    async fn send(
        &self,
        conn: &mut Conn,
        req: Request,
        again: impl FnOnce() -> Option<Request>,
    ) -> Result<http::Response<hyper::body::Incoming>, Outcome> {
        let reused = self.ready(conn).await?;
        conn.heard.store(false, Ordering::Relaxed);
        let sender = conn.sender.as_mut().ok_or(Outcome::Connect)?;
        let pending = sender.try_send_request(req);
        let mut failed = match conn.drive(pending).await {
            Ok(resp) => return Ok(resp),
            Err(e) => e,
        };
        let retry = match failed.take_message() {
            Some(req) if reused => Some(req),
            None if reused
                && !conn.heard.load(Ordering::Relaxed)
                && classify_chain(failed.error()) == Outcome::Reset =>
            {
                again()
            }
            _ => None,
        };
        let Some(req) = retry else {
            return Err(classify_hyper(failed.into_error()));
        };
        self.reconnects.fetch_add(1, Ordering::Relaxed);
        conn.close();
        self.ready(conn).await?;
        let sender = conn.sender.as_mut().ok_or(Outcome::Connect)?;
        let pending = sender.send_request(req);
        conn.drive(pending).await.map_err(classify_hyper)
    }

    /// A request rendered for this send.
    fn build(
        &self,
        step: &PlannedStep,
        path: &str,
        headers: &[(http::HeaderName, http::HeaderValue)],
        body: &Option<(Bytes, &'static str)>,
    ) -> Result<http::Request<Full<Bytes>>, http::Error> {
        // Origin form: the connection is already to the target; Host names it.
        let mut b = http::Request::builder()
            .method(step.method.as_str())
            .uri(format!("{}{}", self.target.prefix, path))
            .header(http::header::HOST, self.target.authority.as_str());
        for (n, v) in headers {
            b = b.header(n, v);
        }
        let payload = match body {
            Some((bytes, ctype)) => {
                b = b.header(http::header::CONTENT_TYPE, *ctype);
                bytes.clone()
            }
            None => Bytes::new(),
        };
        b.body(Full::new(payload))
    }

    /// Sends one step and stores its captures into `vars`. `start` is when the clock starts
    /// (the intended send time for the first step of an open-model arrival).
    pub async fn execute(
        &self,
        conn: &mut Conn,
        step: &PlannedStep,
        seq: &AtomicU64,
        vars: &mut HashMap<String, String>,
        start: Instant,
    ) -> StepResult {
        let rendered;
        let (path, headers, body) = match &step.fixed {
            Some(f) => (&f.rendered.0, &f.rendered.1, &f.rendered.2),
            None => {
                rendered = step.render(seq, vars);
                (&rendered.0, &rendered.1, &rendered.2)
            }
        };
        let effect_key = step
            .effect
            .as_ref()
            .and_then(|t| t.key_of(headers, body.as_ref().map(|(b, _)| &b[..])));
        let sent = Sent::keep(step, path, headers, body);
        let make = || match &step.fixed {
            Some(f) => {
                let mut req = http::Request::new(Full::new(
                    f.rendered
                        .2
                        .as_ref()
                        .map(|(b, _)| b.clone())
                        .unwrap_or_default(),
                ));
                *req.method_mut() = f.method.clone();
                *req.uri_mut() = f.uri.clone();
                *req.headers_mut() = f.headers.clone();
                Ok(req)
            }
            None => self.build(step, path, headers, body),
        };
        let Ok(req) = make() else {
            let end = Instant::now();
            return StepResult {
                outcome: Outcome::Other,
                end,
                latency: end - start,
                status: None,
            };
        };
        let need_body = step.effect.is_some()
            || step
                .captures
                .iter()
                .any(|(_, c)| matches!(c, Capture::Json(_)));
        let exchange = async {
            // A request sent again keeps `start`: its latency still runs from when it was due.
            let again = || {
                replayable(step.method, headers)
                    .then(make)
                    .and_then(Result::ok)
            };
            let resp = self.send(conn, req, again).await?;
            let status = resp.status().as_u16();
            let header_caps = capture_headers(&step.captures, resp.headers());
            let sampled = sent.as_ref().and_then(|s| s.sample(status, resp.headers()));
            // The body is always read to the end: the latency is to the last byte, and an
            // unread body would keep the connection from the next request.
            let bytes = if need_body || sampled.is_some() {
                conn.drive(resp.into_body().collect())
                    .await
                    .map_err(classify_hyper)?
                    .to_bytes()
            } else {
                // Nothing reads it: drop each chunk as it comes, without gathering them.
                let mut body = resp.into_body();
                while let Some(frame) = conn.drive(body.frame()).await {
                    frame.map_err(classify_hyper)?;
                }
                Bytes::new()
            };
            if let (Some(sent), Some(resp_headers)) = (&sent, sampled) {
                sent.offer(&self.target.base, status, resp_headers, &bytes);
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

/// A request as sent, kept while its answer is awaited for a conformance sample (only when the
/// step has a sampler; the header values and body are reference-counted, so keeping them is
/// cheap). Both engines use it.
pub struct Sent<'s> {
    step: &'s PlannedStep,
    sampler: &'s dyn super::ExchangeSampler,
    path: String,
    headers: Vec<(http::HeaderName, http::HeaderValue)>,
    body: Option<(Bytes, &'static str)>,
}

impl<'s> Sent<'s> {
    /// `None` when the step is not judged against a contract.
    pub fn keep(
        step: &'s PlannedStep,
        path: &str,
        headers: &[(http::HeaderName, http::HeaderValue)],
        body: &Option<(Bytes, &'static str)>,
    ) -> Option<Sent<'s>> {
        step.conformance.as_deref().map(|sampler| Sent {
            step,
            sampler,
            path: path.to_owned(),
            headers: headers.to_vec(),
            body: body.clone(),
        })
    }

    /// The response headers to keep when the sampler wants this answer (by status).
    pub fn sample(&self, status: u16, headers: &http::HeaderMap) -> Option<Vec<(String, String)>> {
        self.sampler.wants(status).then(|| shown_headers(headers))
    }

    /// Hands the sampled exchange to the validating thread.
    pub fn offer(
        &self,
        base: &str,
        status: u16,
        response_headers: Vec<(String, String)>,
        body: &Bytes,
    ) {
        self.sampler.offer(super::Exchange {
            method: self.step.method,
            base: base.to_owned(),
            path: self.path.clone(),
            request_headers: sent_headers(&self.headers, self.body.as_ref().map(|(_, c)| *c)),
            request_body: self.body.as_ref().map(|(b, _)| b.clone()),
            status,
            response_headers,
            body: body.clone(),
        });
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
fn sent_headers(
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

/// Whether a request that reached the target may be sent again without asking: its method is
/// idempotent (RFC 9110, 9.2.2), or it carries an `Idempotency-Key` for the target to recognise
/// the repeat by. The rule of Go's `net/http` transport for the same case.
fn replayable(method: Method, headers: &[(http::HeaderName, http::HeaderValue)]) -> bool {
    matches!(
        method,
        Method::Get | Method::Head | Method::Put | Method::Delete
    ) || headers
        .iter()
        .any(|(n, _)| n.as_str().eq_ignore_ascii_case("idempotency-key"))
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::load::Plan;

    fn plan(steps: &str) -> Plan {
        let yaml = format!(
            "name: t\njourneys:\n  - name: j\n    steps:\n{steps}\nload:\n  open:\n    phases: [{{ steady: {{ rate: 1, duration: 1s }} }}]\n"
        );
        let s = crate::plan::parse(std::path::Path::new("t.yaml"), &yaml).unwrap();
        Plan::new(s.core(), Some("http://127.0.0.1:9/base"), &|_| {
            Some("tok".into())
        })
        .unwrap()
    }

    #[test]
    fn a_fixed_request_is_the_rendered_one() {
        let p = plan(
            r#"      - name: a
        method: POST
        path: /orders
        headers: { Authorization: "Bearer ${env.T}", X-Tag: fixed }
        body: { json: { sku: A-1, qty: [1, 2] } }"#,
        );
        let step = &p.journeys[0].steps[0];
        let fixed = step.fixed.as_ref().expect("nothing in the step varies");
        let client = Client::new(
            p.target.clone(),
            Duration::from_secs(1),
            Duration::from_secs(1),
        );
        let (path, headers, body) = &fixed.rendered;
        let built = client.build(step, path, headers, body).unwrap();
        assert_eq!(fixed.method, built.method());
        assert_eq!(fixed.uri, *built.uri());
        assert_eq!(fixed.uri, "/base/orders");
        assert_eq!(&fixed.headers, built.headers());
        assert_eq!(fixed.headers["host"], "127.0.0.1:9");
        assert_eq!(fixed.headers["authorization"], "Bearer tok");
        assert_eq!(fixed.headers["content-type"], "application/json");
        assert_eq!(
            body.as_ref().unwrap().0,
            &br#"{"qty":[1,2],"sku":"A-1"}"#[..]
        );
    }

    #[test]
    fn a_step_with_anything_to_render_is_rendered_per_request() {
        let p = plan(
            r#"      - { name: a, method: GET, path: "/orders/${seq}" }
      - { name: b, method: GET, path: /x, headers: { Idempotency-Key: "${uuid}" } }
      - { name: c, method: POST, path: /x, body: { json: { n: "${seq}" } } }
      - { name: d, method: GET, path: /x }"#,
        );
        let fixed: Vec<bool> = p.journeys[0]
            .steps
            .iter()
            .map(|s| s.fixed.is_some())
            .collect();
        assert_eq!(fixed, [false, false, false, true]);
    }
}
