//! Load engines. Both turn a [`Plan`] into requests and feed one [`Collector`]:
//! `open` schedules arrivals at a rate (wrk2's model, on hyper), `closed` runs virtual
//! users through journeys (goose).

pub mod closed;
pub mod cpu;
pub mod exchange;
pub mod open;
mod request;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderName, HeaderValue};

use crate::record::{DueSink, Outcome, Recorder, WindowView};
use crate::scenario::locate::Seg;
use crate::scenario::template::JsonTemplate;
use crate::scenario::{self, Body, Capture, Core, FieldError, Method, Template, TemplateContext};

pub use exchange::Exchange;
pub use request::{
    Client, Sent, StepResult, capture_headers, capture_json, preflight, shown_headers,
};

/// A scenario made ready to run: target resolved, environment bound, endpoints numbered.
#[derive(Debug, Clone)]
pub struct Plan {
    pub name: String,
    pub target: Target,
    pub endpoints: Vec<String>,
    pub journeys: Vec<PlannedJourney>,
    pub timeout: Duration,
    pub connect_timeout: Duration,
    pub load: scenario::Load,
    pub planned: Duration,
}

#[derive(Debug, Clone)]
pub struct Target {
    /// `http://host:port` without a trailing slash.
    pub base: String,
    /// `host:port` for connecting and for the Host header.
    pub authority: String,
    /// Path prefix from the target URL, prepended to every step path.
    pub prefix: String,
}

impl Target {
    pub fn parse(url: &str) -> Result<Target, String> {
        scenario::check_target(url)?;
        let rest = &url["http://".len()..];
        let (authority, prefix) = match rest.find('/') {
            Some(i) => (&rest[..i], rest[i..].trim_end_matches('/')),
            None => (rest, ""),
        };
        let authority = if authority.contains(':') && !authority.ends_with(']') {
            authority.to_owned()
        } else {
            format!("{authority}:80")
        };
        Ok(Target {
            base: format!("http://{authority}{prefix}"),
            authority,
            prefix: prefix.to_owned(),
        })
    }
}

#[derive(Debug, Clone)]
pub struct PlannedJourney {
    pub name: String,
    pub weight: u32,
    pub think_time: Option<Duration>,
    pub steps: Vec<PlannedStep>,
}

#[derive(Debug, Clone)]
pub struct PlannedStep {
    pub endpoint: usize,
    pub method: Method,
    pub path: Template,
    pub headers: Vec<(HeaderName, Template)>,
    pub body: Option<PlannedBody>,
    pub captures: Vec<(String, Capture)>,
    pub expect_status: Vec<u16>,
    /// Set on the step whose requests create the effects the invariants read back.
    pub effect: Option<Arc<dyn EffectTap>>,
    /// Samples responses for contract conformance, when the scenario names a contract.
    pub conformance: Option<Arc<dyn ExchangeSampler>>,
    /// The request, rendered once at planning, when nothing in the step varies.
    pub fixed: Option<Arc<FixedRequest>>,
}

/// A step's request with nothing to render: what the open engine sends is cloned from it, so
/// a fixed step costs no template rendering, URI parsing or header map building per request.
#[derive(Debug)]
pub struct FixedRequest {
    pub rendered: RenderedRequest,
    pub method: http::Method,
    /// The origin-form URI, with the target's path prefix.
    pub uri: http::Uri,
    /// Host, the step's headers and the body's content type.
    pub headers: http::HeaderMap,
}

impl FixedRequest {
    fn of(step: &PlannedStep, target: &Target) -> Option<FixedRequest> {
        let body_fixed = match &step.body {
            None => true,
            Some(PlannedBody::Json(j)) => j.is_fixed(),
            Some(PlannedBody::Text(t)) => t.is_literal(),
        };
        if !(step.path.is_literal()
            && step.headers.iter().all(|(_, t)| t.is_literal())
            && body_fixed)
        {
            return None;
        }
        let rendered = step.render(&AtomicU64::new(0), &HashMap::new());
        let uri = http::Uri::try_from(format!("{}{}", target.prefix, rendered.0)).ok()?;
        let mut headers = http::HeaderMap::new();
        headers.insert(
            http::header::HOST,
            HeaderValue::try_from(&target.authority).ok()?,
        );
        for (n, v) in &rendered.1 {
            headers.append(n.clone(), v.clone());
        }
        if let Some((_, ctype)) = &rendered.2 {
            headers.append(http::header::CONTENT_TYPE, HeaderValue::from_static(ctype));
        }
        Some(FixedRequest {
            method: http::Method::from_bytes(step.method.as_str().as_bytes()).ok()?,
            rendered,
            uri,
            headers,
        })
    }
}

/// A hook on the step whose requests create effects (a drill's nothing-lost invariants): it
/// keys each request and notes how it ended. The engines call it; what it keeps is its own.
pub trait EffectTap: Send + Sync + std::fmt::Debug {
    /// The request's correlation value, from what is about to be sent.
    fn key_of(&self, headers: &[(HeaderName, HeaderValue)], body: Option<&[u8]>) -> Option<String>;
    /// How the request ended; `body` is the answer's, read only for a 2xx.
    fn record(&self, key: Option<String>, status: Option<u16>, body: Option<&[u8]>);
}

/// A hook that samples exchanges for judging (the contract's conformance): asked per answer
/// whether it wants it, then handed the sampled exchange. Must be cheap: it sits on the hot path.
pub trait ExchangeSampler: Send + Sync + std::fmt::Debug {
    fn wants(&self, status: u16) -> bool;
    fn offer(&self, exchange: Exchange);
}

#[derive(Debug, Clone)]
pub enum PlannedBody {
    Json(JsonTemplate),
    Text(Template),
}

impl Plan {
    /// `target` from the command line wins over the scenario's; `getenv` binds `${env.X}`. Every
    /// request a step can send is checked here, so a header, path or body the engines could not
    /// send is a field error before anything starts, not an error rate after the load.
    pub fn new(
        s: Core<'_>,
        target: Option<&str>,
        getenv: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Plan, FieldError> {
        let url = target.or(s.target).ok_or_else(|| {
            FieldError::at(
                "target",
                "no target: give --target or `target:` in the scenario",
            )
        })?;
        let target = Target::parse(url).map_err(|m| FieldError::at("target", m))?;
        let endpoints = scenario::endpoints(s.journeys);
        let mut journeys = Vec::new();
        for (ji, j) in s.journeys.iter().enumerate() {
            let mut steps = Vec::new();
            for (si, st) in j.steps.iter().enumerate() {
                let at = |f: &[&str], m: String| {
                    let mut p = vec![
                        Seg::Key("journeys".into()),
                        Seg::Index(ji),
                        Seg::Key("steps".into()),
                        Seg::Index(si),
                    ];
                    p.extend(f.iter().map(|k| Seg::Key((*k).to_owned())));
                    FieldError::new(p, m)
                };
                let mut headers = Vec::new();
                // Step headers override defaults of the same name.
                let defaults = s
                    .defaults
                    .headers
                    .iter()
                    .filter(|(k, _)| !st.headers.keys().any(|h| h.eq_ignore_ascii_case(k)))
                    .map(|(k, t)| (k, t, true));
                let own = st.headers.iter().map(|(k, t)| (k, t, false));
                for (name, t, from_defaults) in defaults.chain(own) {
                    let blame = |m: String| {
                        if from_defaults {
                            FieldError::new(
                                vec![
                                    Seg::Key("defaults".into()),
                                    Seg::Key("headers".into()),
                                    Seg::Key(name.clone()),
                                ],
                                m,
                            )
                        } else {
                            at(&["headers", name], m)
                        }
                    };
                    let hn = HeaderName::from_bytes(name.as_bytes())
                        .map_err(|_| blame(format!("`{name}` is not a valid header name")))?;
                    let bound = t.bind_env(getenv).map_err(&blame)?;
                    let sample = bound.render(&TemplateContext {
                        seq: &AtomicU64::new(0),
                        vars: &HashMap::new(),
                    });
                    if HeaderValue::try_from(sample.as_str()).is_err() {
                        return Err(blame(format!(
                            "`{}` is not a valid header value (control characters or line breaks)",
                            sample.escape_debug()
                        )));
                    }
                    headers.push((hn, bound));
                }
                let body = match &st.body {
                    None => None,
                    Some(Body::Text(t)) => Some(PlannedBody::Text(
                        t.bind_env(getenv).map_err(|m| at(&["body"], m))?,
                    )),
                    Some(Body::Json(v)) => {
                        let c = JsonTemplate::compile(v).map_err(|m| at(&["body"], m))?;
                        Some(PlannedBody::Json(
                            c.bind_env(getenv).map_err(|m| at(&["body"], m))?,
                        ))
                    }
                };
                let path = st.path.bind_env(getenv).map_err(|m| at(&["path"], m))?;
                let sample = path.render(&TemplateContext {
                    seq: &AtomicU64::new(0),
                    vars: &HashMap::new(),
                });
                if http::uri::PathAndQuery::try_from(format!("{}{sample}", target.prefix)).is_err()
                {
                    return Err(at(
                        &["path"],
                        format!(
                            "`{sample}` is not a valid request path (spaces and other characters \
                             outside a URI must be percent-encoded, e.g. %20)"
                        ),
                    ));
                }
                steps.push(PlannedStep {
                    endpoint: endpoints.iter().position(|e| *e == st.name).unwrap_or(0),
                    method: st.method,
                    path,
                    headers,
                    body,
                    captures: st
                        .capture
                        .iter()
                        .map(|(k, v)| (k.clone(), v.clone()))
                        .collect(),
                    expect_status: st.expect_status.clone(),
                    effect: None,
                    conformance: None,
                    fixed: None,
                });
                let last = steps.len() - 1;
                steps[last].fixed = FixedRequest::of(&steps[last], &target).map(Arc::new);
            }
            journeys.push(PlannedJourney {
                name: j.name.clone(),
                weight: j.weight.get(),
                think_time: j.think_time.map(|d| d.0),
                steps,
            });
        }
        Ok(Plan {
            name: s.name.to_owned(),
            target,
            endpoints,
            journeys,
            timeout: s.defaults.timeout.0,
            connect_timeout: s.defaults.connect_timeout.0,
            load: s.load.clone(),
            planned: s.load.planned_duration(),
        })
    }

    /// Picks the journey for arrival `n` by smooth weighted round robin, so short runs
    /// still honour the weights exactly and tests are deterministic.
    pub fn journey_for(&self, n: u64) -> &PlannedJourney {
        let total: u64 = self.journeys.iter().map(|j| u64::from(j.weight)).sum();
        let mut slot = n % total.max(1);
        for j in &self.journeys {
            if slot < u64::from(j.weight) {
                return j;
            }
            slot -= u64::from(j.weight);
        }
        &self.journeys[0]
    }
}

/// Path, headers, and body with its content type, ready to send.
pub type RenderedRequest = (
    String,
    Vec<(HeaderName, HeaderValue)>,
    Option<(Bytes, &'static str)>,
);

impl PlannedStep {
    pub fn render(&self, seq: &AtomicU64, vars: &HashMap<String, String>) -> RenderedRequest {
        let ctx = TemplateContext { seq, vars };
        let path = self.path.render(&ctx);
        let headers = self
            .headers
            .iter()
            .filter_map(|(n, t)| {
                HeaderValue::try_from(t.render(&ctx))
                    .ok()
                    .map(|v| (n.clone(), v))
            })
            .collect();
        let body = self.body.as_ref().map(|b| match b {
            PlannedBody::Json(j) => (
                Bytes::from(serde_json::to_vec(&j.render(&ctx)).unwrap_or_default()),
                "application/json",
            ),
            PlannedBody::Text(t) => (Bytes::from(t.render(&ctx)), "text/plain; charset=utf-8"),
        });
        (path, headers, body)
    }
}

/// Why load stopped before its plan ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StopReason {
    Interrupted,
    Aborted(String),
}

/// Shared stop switch: Ctrl-C and early abort set it; engines poll or await it.
#[derive(Debug, Clone, Default)]
pub struct Stop(Arc<StopInner>);

#[derive(Debug, Default)]
struct StopInner {
    flag: AtomicBool,
    reason: Mutex<Option<StopReason>>,
    notify: tokio::sync::Notify,
}

impl Stop {
    pub fn new() -> Stop {
        Stop::default()
    }
    /// The first reason wins.
    pub fn trigger(&self, reason: StopReason) {
        let mut r = self.0.reason.lock().unwrap_or_else(|p| p.into_inner());
        if r.is_none() {
            *r = Some(reason);
        }
        self.0.flag.store(true, Ordering::SeqCst);
        self.0.notify.notify_waiters();
    }
    pub fn is_stopped(&self) -> bool {
        self.0.flag.load(Ordering::Relaxed)
    }
    pub fn reason(&self) -> Option<StopReason> {
        self.0
            .reason
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
    pub async fn stopped(&self) {
        loop {
            let notified = self.0.notify.notified();
            if self.is_stopped() {
                return;
            }
            notified.await;
        }
    }
}

/// Where engines deliver results. Closed sliding windows go to `on_window` (the checks'
/// live watch) while the recorder lock is held, so windows arrive in order.
pub struct Collector {
    recorder: Mutex<Option<Recorder>>,
    on_window: Box<dyn Fn(&WindowView) + Send + Sync>,
    /// Also fed every request by when it was due (a drill's steady-state phases). Set once before
    /// load; a run without one pays no lock per request.
    by_due: std::sync::OnceLock<Arc<Mutex<dyn DueSink>>>,
}

impl Collector {
    pub fn new(
        recorder: Recorder,
        on_window: Box<dyn Fn(&WindowView) + Send + Sync>,
    ) -> Arc<Collector> {
        Arc::new(Collector {
            recorder: Mutex::new(Some(recorder)),
            on_window,
            by_due: std::sync::OnceLock::new(),
        })
    }

    /// Also feeds every request to `sink`, by when it was due. The caller keeps its own handle
    /// to read what the sink gathered.
    pub fn feed_by_due(&self, sink: Arc<Mutex<dyn DueSink>>) {
        let _ = self.by_due.set(sink);
    }

    pub fn record(&self, endpoint: usize, end: Instant, latency: Duration, outcome: Outcome) {
        let mut g = self.recorder.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(r) = g.as_mut() {
            if let Some(sink) = self.by_due.get() {
                // Latency runs from the intended send time, so this is when the request was due.
                let due = end
                    .saturating_duration_since(r.origin())
                    .saturating_sub(latency);
                sink.lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .record_due(due, latency, outcome);
            }
            for w in r.record(endpoint, end, latency, outcome) {
                (self.on_window)(&w);
            }
        }
    }

    /// Closes slices with no traffic in them, so a silent target still moves the windows.
    pub fn tick(&self, now: Instant) {
        let mut g = self.recorder.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(r) = g.as_mut() {
            for w in r.advance(now) {
                (self.on_window)(&w);
            }
        }
    }

    /// Takes the recorder out; records after this are dropped (late stragglers after stop).
    pub fn finish(&self, end: Instant) -> Option<crate::record::Measurements> {
        let r = self
            .recorder
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()?;
        let (m, windows) = r.finish(end);
        for w in windows {
            (self.on_window)(&w);
        }
        Some(m)
    }

    /// Everything recorded so far, all endpoints together; `None` once finished.
    pub fn totals(&self) -> Option<crate::record::Stats> {
        let g = self.recorder.lock().unwrap_or_else(|p| p.into_inner());
        g.as_ref().map(|r| r.totals())
    }

    /// Requests recorded so far and errors among them, for progress lines.
    pub fn progress(&self) -> (u64, u64) {
        let g = self.recorder.lock().unwrap_or_else(|p| p.into_inner());
        g.as_ref().map(|r| r.totals_counts()).unwrap_or((0, 0))
    }

    /// The p99 of the last closed slice with answers, for progress lines.
    pub fn recent_p99_us(&self) -> Option<u64> {
        let g = self.recorder.lock().unwrap_or_else(|p| p.into_inner());
        g.as_ref().and_then(|r| r.recent_p99_us())
    }
}

/// What an engine reports about itself, beside the measurements.
#[derive(Debug, Clone, Default, serde::Serialize, schemars::JsonSchema)]
pub struct EngineReport {
    /// `open` or `closed`.
    pub model: String,
    /// Journeys started.
    pub started: u64,
    /// Arrivals the open-model scheduler dispatched more than `open::LATE` after their
    /// intended time for reasons of its own (not the in-flight cap).
    pub late_dispatches: u64,
    /// Scheduler lateness, microseconds, p50 / p99 / max.
    pub dispatch_lag_p50_us: u64,
    pub dispatch_lag_p99_us: u64,
    pub dispatch_lag_max_us: u64,
    /// Arrivals the plan asked for that were never sent because the plan's time ran out
    /// while the generator was behind (or held at the in-flight cap).
    pub missed_arrivals: u64,
    /// Arrivals that waited because `max_in_flight` requests were outstanding.
    pub in_flight_waits: u64,
    /// Open model: requests whose reused keep-alive connection had been closed by the target
    /// before any byte of the answer (an idle timeout), sent again once on a new connection and
    /// not counted as errors. The closed model's client does the same for requests it had not
    /// written yet, without telling, so it reports 0.
    pub reconnects: u64,
    /// Generator CPU seconds (user + system) during load.
    pub cpu_seconds: f64,
    /// CPU seconds divided by wall seconds: 1.0 = one core fully busy.
    pub cpu_cores_used: f64,
}
