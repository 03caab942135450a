//! An instrumented stand-in for the orders service on 127.0.0.1:0: it answers `/v1/orders...`,
//! counts what it served in Prometheus metrics the way the reference service names them, writes
//! JSON access lines into a [`LogCapture`], and continues `traceparent`. Each of those can be
//! broken on purpose, so the checks that watch them can be shown to fail.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use verifier::env::containers::LogCapture;

use super::support;

pub const BUCKETS: [f64; 13] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Metrics {
    #[default]
    Good,
    /// `http_server_requests_total` declared a gauge.
    WrongType,
    /// `code_class` left off every request series.
    MissingLabel,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Trace {
    #[default]
    Continue,
    /// A fresh trace id for every request, whatever arrived.
    Fresh,
    /// No `traceresponse` header, and log lines with a fresh trace id.
    Nothing,
}

/// (route, method, code_class).
type SeriesKey = (String, String, String);
/// (count, per-bucket counts, sum of seconds).
type Series = (u64, [u64; 13], f64);

#[derive(Default)]
pub struct State {
    /// Answer 500 to every `/v1` request while set.
    pub failing: AtomicBool,
    /// Real service time of every `/v1` request, ms.
    pub delay_ms: AtomicU64,
    /// When set, the histogram observes this many ms instead of the real time (a lying
    /// histogram: wrong unit, wrong clock).
    pub report_ms: Mutex<Option<f64>>,
    pub metrics: Mutex<Metrics>,
    pub trace: Mutex<Trace>,
    /// Log the request body's `customer_email` in clear.
    pub leak_email: AtomicBool,
    /// Write a plain-text line per request besides the JSON one.
    pub text_logs: AtomicBool,
    /// Leave the request id off access lines.
    pub no_request_id: AtomicBool,
    /// Requests other than `/metrics`.
    pub served: AtomicU64,
    series: Mutex<BTreeMap<SeriesKey, Series>>,
    pub logs: Arc<LogCapture>,
}

pub struct Standin {
    pub url: String,
    pub state: Arc<State>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Standin {
    fn drop(&mut self) {
        self.task.abort();
    }
}

pub async fn start() -> Standin {
    let state = Arc::new(State::default());
    let st = state.clone();
    let (url, task) = support::serve(move |req| respond(st.clone(), req)).await;
    Standin { url, state, task }
}

fn hex(n: usize) -> String {
    let mut s = String::new();
    while s.len() < n {
        let _ = write!(s, "{:032x}", uuid::Uuid::new_v4().as_u128());
    }
    s.truncate(n);
    s
}

fn metrics_text(st: &State) -> String {
    let mode = *st.metrics.lock().unwrap();
    let series = st.series.lock().unwrap();
    let mut o = String::new();
    let kind = if mode == Metrics::WrongType {
        "gauge"
    } else {
        "counter"
    };
    let labels = |route: &str, method: &str, class: &str| {
        if mode == Metrics::MissingLabel {
            format!("method=\"{method}\",route=\"{route}\"")
        } else {
            format!("code_class=\"{class}\",method=\"{method}\",route=\"{route}\"")
        }
    };
    let _ = writeln!(o, "# HELP http_server_requests_total Requests.");
    let _ = writeln!(o, "# TYPE http_server_requests_total {kind}");
    for ((r, m, c), (n, _, _)) in series.iter() {
        let _ = writeln!(o, "http_server_requests_total{{{}}} {n}", labels(r, m, c));
    }
    let _ = writeln!(o, "# TYPE http_server_request_duration_seconds histogram");
    for ((r, m, c), (n, b, sum)) in series.iter() {
        let l = labels(r, m, c);
        let mut cum = 0;
        for (i, le) in BUCKETS.iter().enumerate() {
            cum += b[i];
            let _ = writeln!(
                o,
                "http_server_request_duration_seconds_bucket{{{l},le=\"{le}\"}} {cum}"
            );
        }
        let _ = writeln!(
            o,
            "http_server_request_duration_seconds_bucket{{{l},le=\"+Inf\"}} {n}"
        );
        let _ = writeln!(o, "http_server_request_duration_seconds_sum{{{l}}} {sum}");
        let _ = writeln!(o, "http_server_request_duration_seconds_count{{{l}}} {n}");
    }
    for g in [
        "outbox_backlog_events",
        "outbox_oldest_event_age_seconds",
        "payments_client_breaker_state",
    ] {
        let _ = writeln!(o, "# TYPE {g} gauge\n{g} 0");
    }
    o
}

/// The answer to one request: `/metrics`, or an order route served, counted and logged.
async fn respond(st: Arc<State>, req: support::Request) -> Option<String> {
    let body = String::from_utf8_lossy(&req.body).to_string();
    let method = req.method.clone();
    let path = req.target.split('?').next().unwrap_or("").to_owned();

    let mut extra = String::new();
    let (status, body) = if path == "/metrics" {
        (200, metrics_text(&st))
    } else {
        let start = Instant::now();
        st.served.fetch_add(1, Ordering::SeqCst);
        let delay = st.delay_ms.load(Ordering::SeqCst);
        if delay > 0 {
            tokio::time::sleep(Duration::from_millis(delay)).await;
        }
        let status: u16 = if st.failing.load(Ordering::SeqCst) {
            500
        } else if method == "POST" {
            201
        } else {
            200
        };
        let route = if let Some(rest) = path.strip_prefix("/v1/orders/") {
            let _ = rest;
            format!("{method} /v1/orders/{{id}}")
        } else {
            format!("{method} {path}")
        };
        let took = st
            .report_ms
            .lock()
            .unwrap()
            .map_or_else(|| start.elapsed().as_secs_f64(), |ms| ms / 1000.0);
        {
            let mut s = st.series.lock().unwrap();
            let e = s
                .entry((route.clone(), method.clone(), format!("{}xx", status / 100)))
                .or_insert((0, [0; 13], 0.0));
            e.0 += 1;
            e.2 += took;
            if let Some(i) = BUCKETS.iter().position(|le| took <= *le) {
                e.1[i] += 1;
            }
        }
        let sent = req
            .header("traceparent")
            .and_then(|t| t.split('-').nth(1))
            .filter(|t| t.len() == 32)
            .map(str::to_owned);
        let trace_mode = *st.trace.lock().unwrap();
        let trace_id = match (trace_mode, sent) {
            (Trace::Continue, Some(t)) => t,
            _ => hex(32),
        };
        if trace_mode != Trace::Nothing {
            let _ = write!(extra, "traceresponse: 00-{trace_id}-{}-01\r\n", hex(16));
        }
        let request_id = if st.no_request_id.load(Ordering::SeqCst) {
            String::new()
        } else {
            hex(16)
        };
        let mut line = format!(
            r#"{{"time":"2026-01-01T00:00:00Z","level":"INFO","msg":"request","route":"{route}","status":{status},"trace_id":"{trace_id}","request_id":"{request_id}""#
        );
        if st.leak_email.load(Ordering::SeqCst)
            && let Some(i) = body.find("\"customer_email\":\"")
        {
            let rest = &body[i + 18..];
            let email = &rest[..rest.find('"').unwrap_or(0)];
            let _ = write!(line, r#","customer_email":"{email}""#);
        }
        line.push('}');
        st.logs.push(&line);
        if st.text_logs.load(Ordering::SeqCst) {
            st.logs.push(&format!("INFO request {route} {status}"));
        }
        (
            status,
            if status == 201 {
                format!(r#"{{"id":"ord-{}"}}"#, hex(8))
            } else {
                r#"{"ok":true}"#.to_owned()
            },
        )
    };
    let resp = format!(
        "HTTP/1.1 {status} X\r\ncontent-type: text/plain\r\n{extra}content-length: {}\r\n\r\n{body}",
        body.len()
    );
    Some(resp)
}
