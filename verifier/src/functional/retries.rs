//! Retry discipline of the service itself: while a downstream fails (5xx from its fault switch,
//! or answers held back by a Toxiproxy toxic so the service's attempts time out), the downstream's
//! call log must show no more attempts per request than the service's configured budget. The
//! spacing between attempts (the service's backoff) is measured from the log and reported.

use std::collections::BTreeMap;
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
    /// Shortest gap allowed between two attempts for one request (no back-to-back hammering).
    #[serde(default)]
    pub min_backoff: Option<Dur>,
    /// Requests sent one after another under each fault.
    #[serde(default = "one")]
    pub requests: u32,
    /// The ways the downstream fails; each is its own rule.
    pub faults: Vec<DownstreamFault>,
    /// Deadline of each request: longer than the service's own request budget, so that the
    /// service, not the verifier, decides when to stop retrying.
    #[serde(default = "default_request_timeout")]
    pub timeout: Dur,
}

fn default_request_timeout() -> Dur {
    Dur(Duration::from_secs(10))
}

fn one() -> u32 {
    1
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
    /// JSON Pointer, in one call, to its RFC 3339 time.
    #[serde(default = "super::probe::default_at")]
    pub at: String,
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

impl RetryDiscipline {
    /// Checks of the section that need only the scenario; paths are relative to the section.
    pub fn validate(&self) -> Result<(), FieldError> {
        if self.max_attempts == 0 {
            return Err(FieldError::at("max_attempts", "must be at least 1"));
        }
        if !(1..=20).contains(&self.requests) {
            return Err(FieldError::at("requests", "must be between 1 and 20"));
        }
        if self.faults.is_empty() {
            return Err(FieldError::at("faults", "names no fault"));
        }
        for (i, f) in self.faults.iter().enumerate() {
            if f.switch.is_some() == f.toxic.is_some() {
                return Err(FieldError::new(
                    vec![Seg::Key("faults".into()), Seg::Index(i)],
                    "give exactly one of `switch` and `toxic`",
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

    /// One rule per fault.
    pub async fn run(&self, op: &idempotency::Prepared, ctx: &Context<'_>) -> Vec<RuleResult> {
        let mut rules = Vec::new();
        for (fault, switch) in self.spec.faults.iter().zip(&self.switches) {
            rules.push(self.one(fault, switch.as_deref(), op, ctx).await);
        }
        rules
    }

    async fn one(
        &self,
        fault: &DownstreamFault,
        switch: Option<&str>,
        op: &idempotency::Prepared,
        ctx: &Context<'_>,
    ) -> RuleResult {
        let mut r = RuleResult::new(
            format!("retries.{}", fault.name),
            RuleKind::Functional,
            Status::Pass,
        )
        .scope("functional pass, before load")
        .endpoint(op.spec.operation.clone())
        .budget(format!(
            "at most {} downstream attempt(s) per request{}",
            self.spec.max_attempts,
            self.spec
                .min_backoff
                .map(|d| format!(", at least {} ms apart", d.0.as_millis()))
                .unwrap_or_default()
        ));
        // Engage the fault.
        let engaged: Result<Engaged, String> = match (switch, &fault.toxic) {
            (Some(url), _) => match self.read_switch(url).await {
                Ok(before) => self
                    .put_switch(url, &fault.switch.as_ref().expect("switch").set)
                    .await
                    .map(|()| {
                        *self.owed.lock().unwrap_or_else(|p| p.into_inner()) =
                            Some((url.to_owned(), before.clone()));
                        Engaged::Switch(url.to_owned(), before)
                    }),
                Err(e) => Err(e),
            },
            (None, Some(t)) => match ctx
                .injector
                .as_ref()
                .and_then(|i| i.proxies.get(&t.target).map(|p| (i, p)))
            {
                Some((inj, proxy)) => inj
                    .toxiproxy
                    .add_toxic(
                        proxy,
                        &Toxic {
                            name: LATENCY_TOXIC.into(),
                            stream: Stream::Downstream,
                            toxicity: 1.0,
                            kind: ToxicKind::Latency {
                                latency: t.latency.0.as_millis() as u64,
                                jitter: 0,
                            },
                        },
                    )
                    .await
                    .map(|_| Engaged::Toxic(proxy.clone()))
                    .map_err(|e| e.to_string()),
                None => Err(format!(
                    "`{}` has no Toxiproxy proxy in this environment",
                    t.target
                )),
            },
            (None, None) => Err("no fault given".into()),
        };
        let engaged = match engaged {
            Ok(e) => e,
            Err(e) => {
                return super::inconclusive(r, "the fault could not be engaged", e);
            }
        };
        let http = client::http(self.spec.timeout.0);
        let mut per_request: Vec<(Answer, Vec<SystemTime>)> = Vec::new();
        let mut problem = None;
        for _ in 0..self.spec.requests {
            let before = match self.calls().await {
                Ok(c) => c.len(),
                Err(e) => {
                    problem = Some(e);
                    break;
                }
            };
            let (req, _) = op.render(&uuid::Uuid::new_v4().to_string());
            let answer = client::send(&http, &req).await;
            if r.evidence.is_empty() {
                r.evidence.push(req.curl());
            }
            // Late attempts of a request that gave up land in the log after its answer.
            tokio::time::sleep(Duration::from_millis(200)).await;
            match self.calls().await {
                Ok(c) => {
                    let times = c
                        .get(before..)
                        .unwrap_or(&[])
                        .iter()
                        .map(|call| {
                            call.pointer(&self.spec.calls.at)
                                .and_then(|v| v.as_str())
                                .and_then(|s| humantime::parse_rfc3339_weak(s).ok())
                                .unwrap_or(SystemTime::UNIX_EPOCH)
                        })
                        .collect();
                    per_request.push((answer, times));
                }
                Err(e) => {
                    problem = Some(e);
                    break;
                }
            }
        }
        let restored = match engaged {
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
        };
        if let Err(e) = restored {
            r.status = Status::Fail;
            r.observed = "the fault could not be removed".into();
            r.detail = format!("the downstream still fails; the run cannot go on: {e}");
            return r;
        }
        if let Some(e) = problem {
            return super::inconclusive(r, "the call log could not be read", e);
        }
        // The service must take requests again once the downstream is back.
        let (req, _) = op.render(&uuid::Uuid::new_v4().to_string());
        let recovery = recover(&http, &req, op).await;

        let mut worst = 0usize;
        let mut gaps_ms: Vec<Vec<u128>> = Vec::new();
        for (answer, times) in &per_request {
            worst = worst.max(times.len());
            let gaps = times
                .windows(2)
                .map(|w| w[1].duration_since(w[0]).unwrap_or_default().as_millis())
                .collect::<Vec<_>>();
            r.evidence.push(format!(
                "answered {} in {} ms after {} attempt(s), gaps {:?} ms",
                answer.summary(),
                answer.took.as_millis(),
                times.len(),
                gaps
            ));
            gaps_ms.push(gaps);
        }
        let all_gaps: Vec<u128> = gaps_ms.iter().flatten().copied().collect();
        let spacing = if all_gaps.is_empty() {
            "no retries".to_owned()
        } else {
            format!(
                "gaps between attempts {} ms",
                gaps_ms
                    .iter()
                    .map(|g| g.iter().map(u128::to_string).collect::<Vec<_>>().join(", "))
                    .collect::<Vec<_>>()
                    .join(" | ")
            )
        };
        r.observed = format!(
            "at most {worst} attempt(s) per request over {} request(s); {spacing}",
            per_request.len()
        );
        let mut wrong = Vec::new();
        if worst > self.spec.max_attempts as usize {
            wrong.push(format!(
                "{worst} attempts for one request, over the budget of {}: a retry storm",
                self.spec.max_attempts
            ));
        }
        if let Some(min) = self.spec.min_backoff
            && let Some(g) = all_gaps.iter().find(|g| **g < min.0.as_millis())
        {
            wrong.push(format!(
                "attempts {g} ms apart, closer than {} ms: no backoff",
                min.0.as_millis()
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
        } else {
            r.detail = format!("recovered after the fault: {}", recovery.1);
        }
        r
    }
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
