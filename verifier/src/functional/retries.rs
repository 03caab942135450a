//! Retry discipline of the service itself: while a downstream fails (5xx from its fault switch,
//! or answers held back by a Toxiproxy toxic so the service's attempts time out), the downstream's
//! call log must show no more attempts per request than the service's configured budget.
//!
//! Each fault is sampled over several requests; between two samples the fault is lifted and a
//! healthy request goes through, so a breaker the fault tripped closes and every sample sees the
//! service's full retry policy. From the log's two times per call (`started_at` when the attempt
//! arrived, `at` when it ended: its answer decided or its caller gone) come:
//! - under a switch fault, the idle time from the end of one attempt to the start of the next
//!   (`min_backoff`), each retry's wait against the declared backoff (`backoff`: initial, factor,
//!   cap, jitter) and the spread of the n-th waits across requests (jitter);
//! - under a toxic fault (the downstream answers at once, the toxic holds the answer, so the log
//!   does not see the attempt end), each attempt's span against the service's request budget
//!   (`request_budget`): the service gives up within it and starts no attempt past it.
//!
//! Separately, requests the downstream refuses (`no_retry`: the operation's body with fields
//! replaced, e.g. a declining card) must reach it exactly once.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, SystemTime};

use schemars::JsonSchema;
use serde::Deserialize;

use super::Context;
use super::client::{self, Answer};
use super::idempotency;
use super::probe::read_calls;
use crate::env::spec::expand;
use crate::fault::toxiproxy::{Stream, Toxic, ToxicKind};
use crate::rule::{RuleKind, RuleResult, Status};
use crate::scenario::locate::Seg;
use crate::scenario::{Dur, FieldError};

const CONTROL_TIMEOUT: Duration = Duration::from_secs(5);

/// Name of the toxic that holds a dependency's answers back.
pub const LATENCY_TOXIC: &str = "functional-retries";

/// The `functional.retry_discipline` section.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RetryDiscipline {
    /// An operation of `functional.idempotency`: its request is the one sent.
    pub operation: String,
    /// The downstream's call log, where every attempt of the service shows.
    pub calls: AttemptLog,
    /// The service's configured attempts per request (first try plus retries), e.g. its
    /// `ORDERS_PAYMENTS_MAX_ATTEMPTS`.
    pub max_attempts: u32,
    /// Least idle time from the end of one attempt (the log's `at`) to the start of the next
    /// (`started_at`), judged under `switch` faults: rule `retries.<fault>.idle`.
    #[serde(default)]
    pub min_backoff: Option<Dur>,
    /// Requests sampled under each fault (a fault's own `requests` overrides it).
    #[serde(default = "default_requests")]
    pub requests: u32,
    /// The service's declared backoff, judged under `switch` faults: each retry's wait inside its
    /// window (`retries.<fault>.backoff`) and the waits spread across requests
    /// (`retries.<fault>.jitter`, when `jitter` is above 0).
    #[serde(default)]
    pub backoff: Option<Backoff>,
    /// The service's budget for one request, e.g. its `ORDERS_REQUEST_BUDGET`, judged under
    /// `toxic` faults: every attempt starts and ends within it (`retries.<fault>.budget`).
    #[serde(default)]
    pub request_budget: Option<Dur>,
    /// The ways the downstream fails; each is its own rule.
    pub faults: Vec<DownstreamFault>,
    /// Requests the downstream refuses (a 4xx such as a declined card): each must reach it
    /// exactly once. Each is its own rule, `retries.<name>`.
    #[serde(default)]
    pub no_retry: Vec<NoRetry>,
    /// Deadline of each request: longer than the service's own request budget, so that the
    /// service, not the verifier, decides when to stop retrying.
    #[serde(default = "default_request_timeout")]
    pub timeout: Dur,
}

fn default_request_timeout() -> Dur {
    Dur(Duration::from_secs(10))
}

fn default_requests() -> u32 {
    3
}

/// A call log over HTTP.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AttemptLog {
    /// URL of the log; may use `${payments.control}`.
    pub url: String,
    /// JSON Pointer to the array of calls, oldest first.
    #[serde(default = "super::probe::default_calls")]
    pub calls: String,
    /// JSON Pointer, in one call, to the RFC 3339 time the attempt ended (its answer decided, or
    /// its caller gone).
    #[serde(default = "super::probe::default_at")]
    pub at: String,
    /// JSON Pointer, in one call, to the RFC 3339 time the attempt arrived.
    #[serde(default = "default_started_at")]
    pub started_at: String,
    /// JSON Pointer, in one call, to the HTTP status the downstream answered.
    #[serde(default = "default_status")]
    pub status: String,
}

fn default_started_at() -> String {
    "/started_at".into()
}

fn default_status() -> String {
    "/status".into()
}

/// A capped exponential backoff with jitter: retry `n` (1 for the first) waits
/// `min(initial × factor^(n-1), max)`, randomized by ± `jitter` of itself.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Backoff {
    /// The first retry's wait before jitter.
    pub initial: Dur,
    /// Growth per retry.
    #[serde(default = "default_factor")]
    pub factor: f64,
    /// Cap on the wait before jitter; none when absent.
    #[serde(default)]
    pub max: Option<Dur>,
    /// Randomization, a fraction of the wait either way (0.5: ±50 %); 0 for none.
    #[serde(default)]
    pub jitter: f64,
    /// How far a measured wait may stray from the service's timer (the network, scheduling):
    /// each window widens by it, and waits closer than it count as equal.
    #[serde(default = "default_tolerance")]
    pub tolerance: Dur,
}

fn default_factor() -> f64 {
    2.0
}

fn default_tolerance() -> Dur {
    Dur(Duration::from_millis(10))
}

impl Backoff {
    /// The wait of retry `n` (1-based) before jitter, in ms.
    fn nominal_ms(&self, n: usize) -> f64 {
        let exp = i32::try_from(n.saturating_sub(1)).unwrap_or(i32::MAX);
        let d = self.initial.0.as_secs_f64() * 1e3 * self.factor.powi(exp);
        match self.max {
            Some(m) => d.min(m.0.as_secs_f64() * 1e3),
            None => d,
        }
    }

    /// The window a measured wait of retry `n` must fall in, in ms.
    fn window_ms(&self, n: usize) -> (f64, f64) {
        let d = self.nominal_ms(n);
        let tol = self.tolerance.0.as_secs_f64() * 1e3;
        (
            (d * (1.0 - self.jitter) - tol).max(0.0),
            d * (1.0 + self.jitter) + tol,
        )
    }
}

/// One way to make the downstream fail.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DownstreamFault {
    /// Names the rule: `retries.<name>`.
    pub name: String,
    /// The downstream's own fault switch: `GET url` answers its setting, `PUT url` with `set`
    /// changes it; the setting read first is put back after.
    #[serde(default)]
    pub switch: Option<Switch>,
    /// A latency toxic on the Toxiproxy proxy in front of a dependency: its answers come too late
    /// and the service's attempts time out.
    #[serde(default)]
    pub toxic: Option<LatencyToxic>,
    /// Requests sampled under this fault, instead of the section's `requests`.
    #[serde(default)]
    pub requests: Option<u32>,
}

#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Switch {
    /// May use `${payments.control}`.
    pub url: String,
    pub set: serde_json::Value,
}

#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LatencyToxic {
    /// A dependency of `environment.testcontainers`.
    pub target: String,
    pub latency: Dur,
}

/// A request the downstream refuses: the operation's JSON body with some fields replaced.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NoRetry {
    /// Names the rule: `retries.<name>`.
    pub name: String,
    /// JSON Pointer in the operation's body → the value put there, e.g.
    /// `{ /card_number: "4000000000000002" }` for the stand-in's declining card.
    pub set: BTreeMap<String, serde_json::Value>,
}

impl RetryDiscipline {
    /// Checks of the section that need only the scenario; paths are relative to the section.
    pub fn validate(&self) -> Result<(), FieldError> {
        let k = |s: &str| Seg::Key(s.to_owned());
        if self.max_attempts == 0 {
            return Err(FieldError::at("max_attempts", "must be at least 1"));
        }
        if !(1..=20).contains(&self.requests) {
            return Err(FieldError::at("requests", "must be between 1 and 20"));
        }
        if self.faults.is_empty() {
            return Err(FieldError::at("faults", "names no fault"));
        }
        let mut names = BTreeSet::new();
        for (i, f) in self.faults.iter().enumerate() {
            let at = |f: &str| vec![k("faults"), Seg::Index(i), k(f)];
            if f.switch.is_some() == f.toxic.is_some() {
                return Err(FieldError::new(
                    vec![k("faults"), Seg::Index(i)],
                    "give exactly one of `switch` and `toxic`",
                ));
            }
            if !names.insert(f.name.as_str()) {
                return Err(FieldError::new(
                    at("name"),
                    format!("`{}` names another fault too; rule ids must differ", f.name),
                ));
            }
        }
        for (i, n) in self.no_retry.iter().enumerate() {
            let at = |f: &str| vec![k("no_retry"), Seg::Index(i), k(f)];
            if !names.insert(n.name.as_str()) {
                return Err(FieldError::new(
                    at("name"),
                    format!(
                        "`{}` names a fault or another entry too; rule ids must differ",
                        n.name
                    ),
                ));
            }
            if n.set.is_empty() {
                return Err(FieldError::new(at("set"), "replaces no field of the body"));
            }
            if let Some(p) = n.set.keys().find(|p| !p.starts_with('/')) {
                return Err(FieldError::new(
                    vec![k("no_retry"), Seg::Index(i), k("set"), k(p)],
                    "not a JSON Pointer: it starts with `/`, e.g. `/card_number`",
                ));
            }
        }
        let switches = self.faults.iter().any(|f| f.switch.is_some());
        let toxics = self.faults.iter().any(|f| f.toxic.is_some());
        if self.min_backoff.is_some() && !switches {
            return Err(FieldError::at(
                "min_backoff",
                "is judged under `switch` faults (the log sees when an attempt ends), and none is given",
            ));
        }
        if let Some(b) = &self.backoff {
            if !switches {
                return Err(FieldError::at(
                    "backoff",
                    "is judged under `switch` faults (the log sees when an attempt ends), and none is given",
                ));
            }
            if b.initial.0.is_zero() {
                return Err(FieldError::at("backoff.initial", "must be more than 0s"));
            }
            if !(b.factor.is_finite() && (1.0..=10.0).contains(&b.factor)) {
                return Err(FieldError::at("backoff.factor", "must be between 1 and 10"));
            }
            if !(b.jitter.is_finite() && (0.0..=1.0).contains(&b.jitter)) {
                return Err(FieldError::at(
                    "backoff.jitter",
                    "must be between 0 and 1 (a fraction of the wait either way)",
                ));
            }
            if let Some(m) = b.max
                && m.0 < b.initial.0
            {
                return Err(FieldError::at(
                    "backoff.max",
                    "must not be shorter than `backoff.initial`",
                ));
            }
        }
        if let Some(b) = self.request_budget {
            if b.0.is_zero() {
                return Err(FieldError::at("request_budget", "must be more than 0s"));
            }
            if !toxics {
                return Err(FieldError::at(
                    "request_budget",
                    "is judged under `toxic` faults (attempts that time out), and none is given",
                ));
            }
            if b.0 >= self.timeout.0 {
                return Err(FieldError::at(
                    "request_budget",
                    "must be shorter than `timeout`, so the service, not the verifier, ends a request",
                ));
            }
        }
        Ok(())
    }
}

/// The section with its URLs resolved.
pub struct Prepared {
    spec: RetryDiscipline,
    log_url: String,
    switches: Vec<Option<String>>,
    http: reqwest::Client,
    /// The switch setting to put back, while a fault is engaged: [`Prepared::restore`] puts it
    /// back if the pass is cut off in between.
    owed: std::sync::Mutex<Option<(String, serde_json::Value)>>,
}

impl Prepared {
    pub fn new(
        spec: &RetryDiscipline,
        endpoints: &BTreeMap<String, String>,
    ) -> Result<Self, (String, String)> {
        let log_url = expand(&spec.calls.url, endpoints).map_err(|m| ("calls.url".into(), m))?;
        let mut switches = Vec::new();
        for (i, f) in spec.faults.iter().enumerate() {
            switches.push(match &f.switch {
                Some(s) => Some(
                    expand(&s.url, endpoints)
                        .map_err(|m| (format!("faults[{i}].switch.url"), m))?,
                ),
                None => None,
            });
        }
        Ok(Self {
            spec: spec.clone(),
            log_url,
            switches,
            http: client::http(CONTROL_TIMEOUT),
            owed: std::sync::Mutex::new(None),
        })
    }

    /// The call log and every switch answer: a probe that does not is named.
    pub async fn check(&self) -> Result<(), (String, String)> {
        read_calls(&self.http, &self.log_url, &self.spec.calls.calls)
            .await
            .map_err(|m| {
                (
                    "calls".to_owned(),
                    format!("the call log at {} did not answer: {m}", self.log_url),
                )
            })?;
        for (i, url) in self.switches.iter().enumerate() {
            if let Some(url) = url {
                self.read_switch(url).await.map_err(|m| {
                    (
                        format!("faults[{i}].switch"),
                        format!("the fault switch at {url} did not answer: {m}"),
                    )
                })?;
            }
        }
        Ok(())
    }

    async fn read_switch(&self, url: &str) -> Result<serde_json::Value, String> {
        let resp = self.http.get(url).send().await.map_err(|e| e.to_string())?;
        if !resp.status().is_success() {
            return Err(format!("GET answered {}", resp.status()));
        }
        resp.json().await.map_err(|e| e.to_string())
    }

    async fn put_switch(&self, url: &str, v: &serde_json::Value) -> Result<(), String> {
        let resp = self
            .http
            .put(url)
            .json(v)
            .send()
            .await
            .map_err(|e| e.to_string())?;
        if !resp.status().is_success() {
            return Err(format!(
                "PUT {url} answered {}: {}",
                resp.status(),
                resp.text().await.unwrap_or_default()
            ));
        }
        Ok(())
    }

    async fn calls(&self) -> Result<Vec<serde_json::Value>, String> {
        read_calls(&self.http, &self.log_url, &self.spec.calls.calls).await
    }

    /// Puts back a switch setting a cut-off pass left engaged; the problem, if that fails.
    pub async fn restore(&self) -> Option<String> {
        let owed = self.owed.lock().unwrap_or_else(|p| p.into_inner()).take();
        let (url, before) = owed?;
        self.put_switch(&url, &before)
            .await
            .err()
            .map(|e| format!("the fault switch at {url} could not be put back: {e}"))
    }

    /// The rules of each fault, then one per `no_retry` entry.
    pub async fn run(&self, op: &idempotency::Prepared, ctx: &Context<'_>) -> Vec<RuleResult> {
        let mut rules = Vec::new();
        for (fault, switch) in self.spec.faults.iter().zip(&self.switches) {
            rules.extend(self.fault(fault, switch.as_deref(), op, ctx).await);
        }
        for n in &self.spec.no_retry {
            rules.push(self.no_retry(n, op).await);
        }
        rules
    }

    async fn engage(
        &self,
        fault: &DownstreamFault,
        switch: Option<&str>,
        ctx: &Context<'_>,
    ) -> Result<Engaged, String> {
        match (switch, &fault.toxic) {
            (Some(url), _) => {
                let before = self.read_switch(url).await?;
                let set = &fault.switch.as_ref().expect("a switch fault").set;
                self.put_switch(url, set).await?;
                *self.owed.lock().unwrap_or_else(|p| p.into_inner()) =
                    Some((url.to_owned(), before.clone()));
                Ok(Engaged::Switch(url.to_owned(), before))
            }
            (None, Some(t)) => {
                let Some((inj, proxy)) = ctx
                    .injector
                    .as_ref()
                    .and_then(|i| i.proxies.get(&t.target).map(|p| (i, p)))
                else {
                    return Err(format!(
                        "`{}` has no Toxiproxy proxy in this environment",
                        t.target
                    ));
                };
                inj.toxiproxy
                    .add_toxic(
                        proxy,
                        &Toxic {
                            name: LATENCY_TOXIC.into(),
                            stream: Stream::Downstream,
                            toxicity: 1.0,
                            kind: ToxicKind::Latency {
                                latency: u64::try_from(t.latency.0.as_millis()).unwrap_or(u64::MAX),
                                jitter: 0,
                            },
                        },
                    )
                    .await
                    .map(|_| Engaged::Toxic(proxy.clone()))
                    .map_err(|e| e.to_string())
            }
            (None, None) => Err("no fault given".into()),
        }
    }

    async fn disengage(&self, engaged: Engaged, ctx: &Context<'_>) -> Result<(), String> {
        match engaged {
            Engaged::Switch(url, before) => {
                let put = self.put_switch(&url, &before).await;
                if put.is_ok() {
                    self.owed.lock().unwrap_or_else(|p| p.into_inner()).take();
                }
                put
            }
            Engaged::Toxic(proxy) => match &ctx.injector {
                Some(inj) => inj
                    .toxiproxy
                    .remove_toxic(&proxy, LATENCY_TOXIC)
                    .await
                    .map_err(|e| e.to_string()),
                None => Ok(()),
            },
        }
    }

    /// Sends `req` and reads back the attempts it caused in the log.
    async fn sample(
        &self,
        http: &reqwest::Client,
        req: &client::Request,
    ) -> Result<Sample, String> {
        let before = self.calls().await?.len();
        let sent = SystemTime::now();
        let answer = client::send(http, req).await;
        // Late attempts of a request that gave up land in the log after its answer.
        tokio::time::sleep(Duration::from_millis(200)).await;
        let calls = self.calls().await?;
        let log = &self.spec.calls;
        let time = |call: &serde_json::Value, ptr: &str| {
            call.pointer(ptr)
                .and_then(|v| v.as_str())
                .and_then(|s| humantime::parse_rfc3339_weak(s).ok())
        };
        let attempts = calls
            .get(before..)
            .unwrap_or(&[])
            .iter()
            .map(|call| Attempt {
                start: time(call, &log.started_at),
                end: time(call, &log.at),
                status: call.pointer(&log.status).and_then(|v| v.as_u64()),
            })
            .collect();
        Ok(Sample {
            answer,
            sent,
            attempts,
        })
    }

    /// Samples one fault over its requests, lifting it between them, and judges the samples.
    async fn fault(
        &self,
        fault: &DownstreamFault,
        switch: Option<&str>,
        op: &idempotency::Prepared,
        ctx: &Context<'_>,
    ) -> Vec<RuleResult> {
        let mut r = RuleResult::new(
            format!("retries.{}", fault.name),
            RuleKind::Functional,
            Status::Pass,
        )
        .scope("functional pass, before load")
        .endpoint(op.spec.operation.clone())
        .budget(format!(
            "at most {} downstream attempt(s) per request",
            self.spec.max_attempts
        ));
        let http = client::http(self.spec.timeout.0);
        let mut samples: Vec<Sample> = Vec::new();
        let mut problem = None;
        let mut recovery = (true, String::new());
        for _ in 0..fault.requests.unwrap_or(self.spec.requests) {
            let engaged = match self.engage(fault, switch, ctx).await {
                Ok(e) => e,
                Err(e) if samples.is_empty() => {
                    return vec![super::inconclusive(r, "the fault could not be engaged", e)];
                }
                Err(e) => {
                    problem = Some(format!("the fault could not be engaged again: {e}"));
                    break;
                }
            };
            let (req, _) = op.render(&uuid::Uuid::new_v4().to_string());
            if r.evidence.is_empty() {
                r.evidence.push(req.curl());
            }
            let sampled = self.sample(&http, &req).await;
            if let Err(e) = self.disengage(engaged, ctx).await {
                r.status = Status::Fail;
                r.observed = "the fault could not be removed".into();
                r.detail = format!("the downstream still fails; the run cannot go on: {e}");
                return vec![r];
            }
            match sampled {
                Ok(s) => samples.push(s),
                Err(e) => {
                    problem = Some(format!("the call log could not be read: {e}"));
                    break;
                }
            }
            // The service must take requests again once the downstream is back; the success also
            // closes a breaker the fault tripped, so the next sample meets the full policy.
            let (req, _) = op.render(&uuid::Uuid::new_v4().to_string());
            recovery = recover(&http, &req, op).await;
            if !recovery.0 {
                break;
            }
        }
        if let Some(e) = &problem
            && samples.is_empty()
        {
            return vec![super::inconclusive(r, "no request was sampled", e)];
        }
        let tag = |i: usize| format!("request {}", i + 1);
        let mut worst = 0usize;
        for (i, s) in samples.iter().enumerate() {
            worst = worst.max(s.attempts.len());
            r.evidence.push(format!("{}: {}", tag(i), s.describe()));
        }
        r.observed = format!(
            "at most {worst} attempt(s) per request over {} request(s)",
            samples.len()
        );
        let mut wrong = Vec::new();
        if worst > self.spec.max_attempts as usize {
            wrong.push(format!(
                "{worst} attempts for one request, over the budget of {}: a retry storm",
                self.spec.max_attempts
            ));
        }
        if !recovery.0 {
            wrong.push(format!(
                "after the fault was removed the request still ended with {}",
                recovery.1
            ));
        }
        if !wrong.is_empty() {
            r.status = Status::Fail;
            r.detail = wrong.join("; ");
        } else if worst == 0 {
            r.status = Status::Inconclusive;
            r.detail = "no attempt reached the downstream's log; nothing was counted".into();
        } else if let Some(e) = &problem {
            r.status = Status::Inconclusive;
            r.detail = format!("sampling stopped early: {e}");
        } else {
            r.detail = format!("recovered after each request: {}", recovery.1);
        }
        let curl = r.evidence.first().cloned().unwrap_or_default();
        let mut rules = vec![r];
        let base = |suffix: &str, budget: String| {
            RuleResult::new(
                format!("retries.{}.{suffix}", fault.name),
                RuleKind::Functional,
                Status::Pass,
            )
            .scope("functional pass, before load")
            .endpoint(op.spec.operation.clone())
            .budget(budget)
        };
        if fault.switch.is_some() {
            let idle = idle_per_sample(&samples);
            if let Some(min) = self.spec.min_backoff {
                rules.push(judge_idle(
                    base(
                        "idle",
                        format!(
                            "at least {} ms idle from the end of one attempt to the start of the next",
                            min.0.as_millis()
                        ),
                    ),
                    &idle,
                    min,
                    &curl,
                ));
            }
            if let Some(b) = &self.spec.backoff {
                rules.push(judge_backoff(
                    base("backoff", backoff_budget(b, self.spec.max_attempts)),
                    &idle,
                    b,
                    &curl,
                ));
                if b.jitter > 0.0 {
                    rules.push(judge_jitter(
                        base(
                            "jitter",
                            format!(
                                "the n-th retries of different requests wait more than {} ms apart at least once",
                                b.tolerance.0.as_millis()
                            ),
                        ),
                        &idle,
                        b,
                        &curl,
                    ));
                }
            }
        }
        if fault.toxic.is_some()
            && let Some(budget) = self.spec.request_budget
        {
            rules.push(judge_budget(
                base(
                    "budget",
                    format!(
                        "every attempt starts and ends within the {} ms request budget (+{} ms slack), none after the answer",
                        budget.0.as_millis(),
                        slack(budget).as_millis()
                    ),
                ),
                &samples,
                budget,
                &curl,
            ));
        }
        rules
    }

    /// Requests the downstream refuses must reach it once.
    async fn no_retry(&self, n: &NoRetry, op: &idempotency::Prepared) -> RuleResult {
        let mut r = RuleResult::new(
            format!("retries.{}", n.name),
            RuleKind::Functional,
            Status::Pass,
        )
        .scope("functional pass, before load")
        .endpoint(op.spec.operation.clone())
        .budget("exactly one downstream attempt for a request the downstream refuses (4xx)");
        let http = client::http(self.spec.timeout.0);
        let mut samples = Vec::new();
        for _ in 0..self.spec.requests {
            let (mut req, _) = op.render(&uuid::Uuid::new_v4().to_string());
            if let Err(e) = patch_body(&mut req, &n.set) {
                return super::inconclusive(r, "the request could not be made", e);
            }
            if r.evidence.is_empty() {
                r.evidence.push(req.curl());
            }
            match self.sample(&http, &req).await {
                Ok(s) => samples.push(s),
                Err(e) => {
                    return super::inconclusive(r, "the call log could not be read", e);
                }
            }
        }
        let mut counts = Vec::new();
        let mut wrong = Vec::new();
        let mut unrefused = Vec::new();
        for (i, s) in samples.iter().enumerate() {
            r.evidence
                .push(format!("request {}: {}", i + 1, s.describe()));
            let statuses: Vec<String> = s
                .attempts
                .iter()
                .map(|a| a.status.map_or("?".into(), |c| c.to_string()))
                .collect();
            counts.push(format!("{} ({})", s.attempts.len(), statuses.join(", ")));
            if s.attempts.len() > 1 {
                wrong.push(format!(
                    "request {} reached the downstream {} times though it answered {}: a refusal is an answer, retrying it only repeats it",
                    i + 1,
                    s.attempts.len(),
                    statuses.first().cloned().unwrap_or_default()
                ));
            }
            if s.attempts.is_empty()
                || !s
                    .attempts
                    .iter()
                    .all(|a| a.status.is_some_and(|c| (400..500).contains(&c)))
            {
                unrefused.push(i + 1);
            }
        }
        r.observed = format!(
            "attempts per request (downstream statuses): {}",
            counts.join(" | ")
        );
        if !wrong.is_empty() {
            r.status = Status::Fail;
            r.detail = wrong.join("; ");
        } else if !unrefused.is_empty() {
            r.status = Status::Inconclusive;
            r.detail = format!(
                "request(s) {unrefused:?} were not refused by the downstream (no 4xx in its log): the case did not bite; check `set`"
            );
        } else {
            r.detail = "each refused request reached the downstream once".into();
        }
        r
    }
}

/// One attempt as the downstream logged it.
struct Attempt {
    start: Option<SystemTime>,
    end: Option<SystemTime>,
    status: Option<u64>,
}

/// One sampled request: its answer, when it was sent, and the attempts it caused.
struct Sample {
    answer: Answer,
    sent: SystemTime,
    attempts: Vec<Attempt>,
}

/// `b - a` in ms, negative when `b` is earlier.
fn ms_between(a: SystemTime, b: SystemTime) -> i64 {
    match b.duration_since(a) {
        Ok(d) => i64::try_from(d.as_millis()).unwrap_or(i64::MAX),
        Err(e) => -i64::try_from(e.duration().as_millis()).unwrap_or(i64::MAX),
    }
}

impl Sample {
    /// `answered 503 in 153 ms after 3 attempt(s); from the send +2..+23, +70..+91, ... ms`.
    fn describe(&self) -> String {
        let spans: Vec<String> = self
            .attempts
            .iter()
            .map(|a| {
                let at = |t: Option<SystemTime>| {
                    t.map_or("?".into(), |t| format!("{:+}", ms_between(self.sent, t)))
                };
                format!("{}..{}", at(a.start), at(a.end))
            })
            .collect();
        format!(
            "answered {} in {} ms after {} attempt(s); attempts from the send {} ms",
            self.answer.summary(),
            self.answer.took.as_millis(),
            self.attempts.len(),
            if spans.is_empty() {
                "none".into()
            } else {
                spans.join(", ")
            }
        )
    }
}

/// Per sample, the idle ms before each retry (end of attempt n to start of n+1); `None` when the
/// log lacks a time.
fn idle_per_sample(samples: &[Sample]) -> Option<Vec<Vec<i64>>> {
    samples
        .iter()
        .map(|s| {
            s.attempts
                .windows(2)
                .map(|w| Some(ms_between(w[0].end?, w[1].start?)))
                .collect::<Option<Vec<i64>>>()
        })
        .collect()
}

fn no_times(r: RuleResult) -> RuleResult {
    super::inconclusive(
        r,
        "the call log has no start or end time for an attempt",
        "the idle time needs each call's `started_at` and `at` (`calls.started_at`, `calls.at`); a stand-in without `started_at` cannot tell it",
    )
}

fn ordinal(n: usize) -> String {
    match n {
        1 => "1st".into(),
        2 => "2nd".into(),
        3 => "3rd".into(),
        _ => format!("{n}th"),
    }
}

fn joined(v: &[i64]) -> String {
    v.iter().map(i64::to_string).collect::<Vec<_>>().join(", ")
}

/// `1st retry 48, 30, 70 ms; 2nd retry 80, 97 ms`: the n-th waits across requests.
fn by_retry(idle: &[Vec<i64>]) -> Vec<Vec<i64>> {
    let longest = idle.iter().map(Vec::len).max().unwrap_or(0);
    (0..longest)
        .map(|n| idle.iter().filter_map(|g| g.get(n).copied()).collect())
        .collect()
}

fn describe_by_retry(idle: &[Vec<i64>]) -> String {
    by_retry(idle)
        .iter()
        .enumerate()
        .map(|(n, v)| format!("{} retry {} ms", ordinal(n + 1), joined(v)))
        .collect::<Vec<_>>()
        .join("; ")
}

fn judge_idle(mut r: RuleResult, idle: &Option<Vec<Vec<i64>>>, min: Dur, curl: &str) -> RuleResult {
    let Some(idle) = idle else {
        return no_times(r);
    };
    r.evidence.push(curl.to_owned());
    for (i, g) in idle.iter().enumerate() {
        r.evidence.push(format!(
            "request {}: idle before each retry {} ms",
            i + 1,
            joined(g)
        ));
    }
    let all: Vec<i64> = idle.iter().flatten().copied().collect();
    let Some(least) = all.iter().min() else {
        return super::inconclusive(
            r,
            "no retry was logged",
            "no request was retried; there is no idle time to measure",
        );
    };
    r.observed = format!(
        "least idle {least} ms over {} retries in {} request(s)",
        all.len(),
        idle.len()
    );
    let floor = i64::try_from(min.0.as_millis()).unwrap_or(i64::MAX);
    let short: Vec<String> = idle
        .iter()
        .enumerate()
        .flat_map(|(i, g)| {
            g.iter()
                .enumerate()
                .filter(|(_, v)| **v < floor)
                .map(move |(n, v)| {
                    format!(
                        "request {}'s {} retry came {v} ms after the failed attempt ended",
                        i + 1,
                        ordinal(n + 1)
                    )
                })
        })
        .collect();
    if short.is_empty() {
        r.detail = "every retry waited after the attempt before it ended".into();
    } else {
        r.status = Status::Fail;
        r.detail = format!("{}: less than {floor} ms, no backoff", short.join("; "));
    }
    r
}

fn backoff_budget(b: &Backoff, max_attempts: u32) -> String {
    let windows: Vec<String> = (1..max_attempts.max(2) as usize)
        .take(5)
        .map(|n| {
            let (lo, hi) = b.window_ms(n);
            format!("{} {lo:.0}–{hi:.0} ms", ordinal(n))
        })
        .collect();
    format!(
        "each retry's idle wait inside its window: {} ({} ms × {}^(n-1){}, ±{:.0} % jitter, ±{} ms tolerance)",
        windows.join(", "),
        b.initial.0.as_millis(),
        b.factor,
        b.max
            .map(|m| format!(", capped at {} ms", m.0.as_millis()))
            .unwrap_or_default(),
        b.jitter * 100.0,
        b.tolerance.0.as_millis()
    )
}

fn judge_backoff(
    mut r: RuleResult,
    idle: &Option<Vec<Vec<i64>>>,
    b: &Backoff,
    curl: &str,
) -> RuleResult {
    let Some(idle) = idle else {
        return no_times(r);
    };
    r.evidence.push(curl.to_owned());
    let mut out = Vec::new();
    for (i, g) in idle.iter().enumerate() {
        let mut line = Vec::new();
        for (n, v) in g.iter().enumerate() {
            let (lo, hi) = b.window_ms(n + 1);
            let inside = (*v as f64) >= lo && (*v as f64) <= hi;
            line.push(format!(
                "{} {v} ms in {lo:.0}–{hi:.0}{}",
                ordinal(n + 1),
                if inside { "" } else { " OUTSIDE" }
            ));
            if !inside {
                out.push(format!(
                    "request {}'s {} retry waited {v} ms, outside {lo:.0}–{hi:.0} ms",
                    i + 1,
                    ordinal(n + 1)
                ));
            }
        }
        r.evidence
            .push(format!("request {}: {}", i + 1, line.join(", ")));
    }
    if idle.iter().all(Vec::is_empty) {
        return super::inconclusive(
            r,
            "no retry was logged",
            "no request was retried; there is no backoff to measure",
        );
    }
    r.observed = format!("idle waits: {}", describe_by_retry(idle));
    if out.is_empty() {
        r.detail = "every retry waited as the declared backoff allows".into();
    } else {
        r.status = Status::Fail;
        r.detail = format!("{}: the backoff does not grow as declared", out.join("; "));
    }
    r
}

fn judge_jitter(
    mut r: RuleResult,
    idle: &Option<Vec<Vec<i64>>>,
    b: &Backoff,
    curl: &str,
) -> RuleResult {
    let Some(idle) = idle else {
        return no_times(r);
    };
    r.evidence.push(curl.to_owned());
    let tol = i64::try_from(b.tolerance.0.as_millis()).unwrap_or(i64::MAX);
    let columns = by_retry(idle);
    let mut spreads: Vec<(usize, i64, &Vec<i64>)> = Vec::new();
    for (n, v) in columns.iter().enumerate() {
        if v.len() >= 2 {
            let spread = v.iter().max().unwrap_or(&0) - v.iter().min().unwrap_or(&0);
            spreads.push((n + 1, spread, v));
            r.evidence.push(format!(
                "{} retry: {} ms across {} requests, spread {spread} ms",
                ordinal(n + 1),
                joined(v),
                v.len()
            ));
        }
    }
    if spreads.is_empty() {
        return super::inconclusive(
            r,
            "fewer than two requests retried",
            "the spread needs the same retry of at least two requests",
        );
    }
    r.observed = format!(
        "spread of the n-th waits across requests: {}",
        spreads
            .iter()
            .map(|(n, s, _)| format!("{} {s} ms", ordinal(*n)))
            .collect::<Vec<_>>()
            .join(", ")
    );
    if spreads.iter().any(|(_, s, _)| *s > tol) {
        r.detail = "the waits differ from request to request".into();
    } else {
        r.status = Status::Fail;
        r.detail = format!(
            "the n-th retries of different requests wait the same time within {tol} ms ({}): the backoff is not jittered, so requests that failed together retry together",
            spreads
                .iter()
                .map(|(n, _, v)| format!("{} {} ms", ordinal(*n), joined(v)))
                .collect::<Vec<_>>()
                .join("; ")
        );
    }
    r
}

/// Slack on the request budget for what the verifier's clock adds: a tenth of it, at least
/// 100 ms.
fn slack(budget: Dur) -> Duration {
    (budget.0 / 10).max(Duration::from_millis(100))
}

fn judge_budget(mut r: RuleResult, samples: &[Sample], budget: Dur, curl: &str) -> RuleResult {
    r.evidence.push(curl.to_owned());
    let limit = i64::try_from((budget.0 + slack(budget)).as_millis()).unwrap_or(i64::MAX);
    let budget_ms = i64::try_from(budget.0.as_millis()).unwrap_or(i64::MAX);
    let mut wrong = Vec::new();
    let mut took = Vec::new();
    let mut any = false;
    for (i, s) in samples.iter().enumerate() {
        r.evidence
            .push(format!("request {}: {}", i + 1, s.describe()));
        let answered = i64::try_from(s.answer.took.as_millis()).unwrap_or(i64::MAX);
        took.push(answered.to_string());
        any |= !s.attempts.is_empty();
        if s.answer.status.is_none() {
            wrong.push(format!(
                "request {} had no answer ({}): the service did not stop at its budget",
                i + 1,
                s.answer.summary()
            ));
            continue;
        }
        if answered > limit {
            wrong.push(format!(
                "request {} was answered after {answered} ms, past the {budget_ms} ms budget",
                i + 1
            ));
        }
        for (n, a) in s.attempts.iter().enumerate() {
            let Some(start) = a.start.or(a.end) else {
                continue;
            };
            let from = ms_between(s.sent, start);
            // The attempt ends, at the latest, when the next begins or the request is answered.
            let until = s
                .attempts
                .get(n + 1)
                .and_then(|b| b.start.or(b.end))
                .map_or(answered, |t| ms_between(s.sent, t));
            if from > budget_ms {
                wrong.push(format!(
                    "request {}'s attempt {} started {from} ms after the send, past the {budget_ms} ms budget",
                    i + 1,
                    n + 1
                ));
            } else if from > answered {
                wrong.push(format!(
                    "request {}'s attempt {} started {from} ms after the send, after the answer at {answered} ms: retries outlived the request",
                    i + 1,
                    n + 1
                ));
            } else if until > limit {
                wrong.push(format!(
                    "request {}'s attempt {} ran from +{from} to +{until} ms, past the {budget_ms} ms budget: its timeout did not fit in what was left",
                    i + 1,
                    n + 1
                ));
            }
        }
    }
    if samples.is_empty() || !any {
        return super::inconclusive(
            r,
            "no attempt reached the downstream's log",
            "nothing to judge against the budget",
        );
    }
    r.observed = format!(
        "answered after {} ms of a {budget_ms} ms budget",
        took.join(", ")
    );
    if wrong.is_empty() {
        r.detail = "the service gave up within its budget; every attempt fit in it".into();
    } else {
        r.status = Status::Fail;
        r.detail = wrong.join("; ");
    }
    r
}

/// Replaces the fields `set` names in the request's JSON body.
fn patch_body(
    req: &mut client::Request,
    set: &BTreeMap<String, serde_json::Value>,
) -> Result<(), String> {
    let raw = req.body.as_deref().unwrap_or_default();
    let mut body: serde_json::Value = serde_json::from_slice(raw)
        .map_err(|e| format!("the operation's body is not JSON: {e}"))?;
    for (ptr, v) in set {
        let slot = body
            .pointer_mut(ptr)
            .ok_or_else(|| format!("`no_retry.set`: `{ptr}` is not in the operation's body"))?;
        *slot = v.clone();
    }
    req.body = Some(serde_json::to_vec(&body).map_err(|e| e.to_string())?);
    Ok(())
}

enum Engaged {
    Switch(String, serde_json::Value),
    Toxic(String),
}

/// Sends a fresh request until it succeeds or 10 s pass (a breaker tripped by the fault may
/// hold for a few seconds).
async fn recover(
    http: &reqwest::Client,
    req: &client::Request,
    op: &idempotency::Prepared,
) -> (bool, String) {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let a = client::send(http, req).await;
        let ok = op.success(&a);
        if ok || std::time::Instant::now() > deadline {
            return (ok, a.summary());
        }
        tokio::time::sleep(
            a.retry_after()
                .unwrap_or(Duration::from_millis(250))
                .min(Duration::from_secs(2)),
        )
        .await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BUDGET: Dur = Dur(Duration::from_secs(1));

    fn rule() -> RuleResult {
        RuleResult::new("retries.t.budget", RuleKind::Functional, Status::Pass)
    }

    /// A request sent at `t0`, answered `status` after `took` ms, whose attempts ran over the
    /// given (start, end) ms from the send.
    fn sample(status: Option<u16>, took: u64, attempts: &[(u64, u64)]) -> Sample {
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        let at = |ms: u64| Some(t0 + Duration::from_millis(ms));
        Sample {
            answer: Answer {
                status,
                headers: vec![],
                body: vec![],
                error: status.is_none().then(|| "timed out".to_owned()),
                took: Duration::from_millis(took),
            },
            sent: t0,
            attempts: attempts
                .iter()
                .map(|&(s, e)| Attempt {
                    start: at(s),
                    end: at(e),
                    status: Some(503),
                })
                .collect(),
        }
    }

    #[test]
    fn attempts_that_fit_the_budget_pass() {
        // 300 ms attempt timeouts, the last one cut to what is left.
        let s = [sample(Some(503), 760, &[(2, 302), (350, 650), (700, 755)])];
        let r = judge_budget(rule(), &s, BUDGET, "curl x");
        assert_eq!(r.status, Status::Pass, "{r:?}");
    }

    #[test]
    fn an_attempt_started_past_the_budget_fails() {
        let s = [sample(
            Some(503),
            1050,
            &[(2, 302), (600, 900), (1020, 1040)],
        )];
        let r = judge_budget(rule(), &s, BUDGET, "curl x");
        assert_eq!(r.status, Status::Fail, "{r:?}");
        assert!(
            r.detail.contains("attempt 3 started 1020 ms"),
            "{}",
            r.detail
        );
    }

    #[test]
    fn an_attempt_whose_timeout_outruns_the_budget_fails() {
        // The third attempt keeps its full 800 ms timeout although 400 ms of the budget are left.
        let s = [sample(Some(503), 1400, &[(2, 302), (600, 602)])];
        let r = judge_budget(rule(), &s, BUDGET, "curl x");
        assert_eq!(r.status, Status::Fail, "{r:?}");
        assert!(r.detail.contains("past the 1000 ms budget"), "{}", r.detail);
    }

    #[test]
    fn a_retry_after_the_answer_fails() {
        let s = [sample(Some(503), 400, &[(2, 302), (500, 520)])];
        let r = judge_budget(rule(), &s, BUDGET, "curl x");
        assert_eq!(r.status, Status::Fail, "{r:?}");
        assert!(
            r.detail.contains("retries outlived the request"),
            "{}",
            r.detail
        );
    }

    #[test]
    fn no_answer_within_the_budget_fails_and_no_attempt_is_inconclusive() {
        let r = judge_budget(rule(), &[sample(None, 10_000, &[(2, 302)])], BUDGET, "c");
        assert_eq!(r.status, Status::Fail, "{r:?}");
        let r = judge_budget(rule(), &[sample(Some(503), 5, &[])], BUDGET, "c");
        assert_eq!(r.status, Status::Inconclusive, "{r:?}");
    }

    #[test]
    fn backoff_windows_grow_capped_and_widened_by_jitter_and_tolerance() {
        let b = Backoff {
            initial: Dur(Duration::from_millis(50)),
            factor: 1.5,
            max: Some(Dur(Duration::from_millis(100))),
            jitter: 0.5,
            tolerance: Dur(Duration::from_millis(10)),
        };
        assert_eq!(b.window_ms(1), (15.0, 85.0));
        assert_eq!(b.window_ms(2), (27.5, 122.5));
        assert_eq!(b.window_ms(3), (40.0, 160.0), "capped at 100 ms");
        let idle = Some(vec![vec![40, 80], vec![60, 20]]);
        let r = judge_backoff(rule(), &idle, &b, "c");
        assert_eq!(r.status, Status::Fail, "{r:?}");
        assert!(
            r.detail.contains("request 2's 2nd retry waited 20 ms"),
            "{}",
            r.detail
        );
    }

    #[test]
    fn jitter_needs_two_requests_and_a_spread_beyond_the_tolerance() {
        let b = Backoff {
            initial: Dur(Duration::from_millis(50)),
            factor: 2.0,
            max: None,
            jitter: 0.5,
            tolerance: Dur(Duration::from_millis(10)),
        };
        let same = Some(vec![vec![50, 100], vec![53, 104], vec![48, 99]]);
        assert_eq!(judge_jitter(rule(), &same, &b, "c").status, Status::Fail);
        let spread = Some(vec![vec![50, 100], vec![31, 140]]);
        assert_eq!(judge_jitter(rule(), &spread, &b, "c").status, Status::Pass);
        let one = Some(vec![vec![50, 100]]);
        assert_eq!(
            judge_jitter(rule(), &one, &b, "c").status,
            Status::Inconclusive
        );
        assert_eq!(
            judge_jitter(rule(), &None, &b, "c").status,
            Status::Inconclusive
        );
    }
}
