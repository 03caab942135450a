//! The idempotent-retry matrix for one operation. Every case uses its own key and its own
//! correlation value, and counts effects through the probes:
//!
//! - `sequential-replay`: same key and body twice → same status and body, one effect;
//! - `payload-mismatch`: same key, different body → the contract's error, no new effect;
//! - `concurrent-duplicates`: N copies released together behind a barrier → one effect, every
//!   answer the first's or the conflict;
//! - `lost-response`: the answer is cut on its way back, the client retries → one effect;
//! - `dependency-fault`: a dependency's connections are cut while the request writes, the client
//!   retries → one effect;
//! - `downstream-once`: the downstream's call log holds at most one effective call per effect;
//! - `events-once`: the event stream holds exactly one event per effect.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::{Duration, Instant};

use super::client::{self, Answer, Request};
use super::probe::Probes;
use super::{Context, IdempotentOperation};
use crate::fault::toxiproxy::{Stream, Toxic, ToxicKind};
use crate::rule::{RuleKind, RuleResult, Status};
use crate::scenario::template::JsonTemplate;
use crate::scenario::{Body, Method, Template, TemplateContext};

/// Name of the toxic that cuts a dependency mid-write.
pub const CUT_TOXIC: &str = "functional-cut";

/// An operation made ready: its request renders, its probes resolve.
pub struct Prepared {
    pub spec: IdempotentOperation,
    pub probes: Probes,
    method: reqwest::Method,
    url: String,
    headers: Vec<(String, Template, String)>,
    body: PreparedBody,
    seq: AtomicU64,
}

enum PreparedBody {
    Json(JsonTemplate),
    Text(Template),
}

/// One case's result and the effect ids it saw, for the downstream check.
struct CaseResult {
    rule: RuleResult,
    ids: Vec<String>,
}

impl CaseResult {
    /// A case that ended before its effects were read: it names none.
    fn unread(rule: RuleResult) -> Self {
        Self { rule, ids: vec![] }
    }
}

impl Prepared {
    pub fn new(
        op: &IdempotentOperation,
        method: Method,
        contract_path: &str,
        ctx: &Context<'_>,
        getenv: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Self, (String, String)> {
        let path = match &op.path {
            Some(p) => render(&p.bind_env(getenv).map_err(|m| ("path".to_owned(), m))?),
            None => contract_path.to_owned(),
        };
        let mut headers: Vec<(String, Template, String)> = ctx
            .headers
            .iter()
            .filter(|(k, _, _)| !op.headers.keys().any(|h| h.eq_ignore_ascii_case(k)))
            .cloned()
            .collect();
        for (k, t) in &op.headers {
            let bound = t
                .bind_env(getenv)
                .map_err(|m| (format!("headers.{k}"), m))?;
            headers.push((k.clone(), bound, client::shell_text(t)));
        }
        let body = match &op.body {
            Body::Json(v) => {
                headers.push((
                    "Content-Type".into(),
                    Template::literal("application/json"),
                    "application/json".into(),
                ));
                let t = JsonTemplate::compile(v).map_err(|m| ("body".to_owned(), m))?;
                PreparedBody::Json(t.bind_env(getenv).map_err(|m| ("body".to_owned(), m))?)
            }
            Body::Text(t) => {
                PreparedBody::Text(t.bind_env(getenv).map_err(|m| ("body".to_owned(), m))?)
            }
        };
        let plain: Vec<(String, String)> = ctx
            .headers
            .iter()
            .map(|(k, t, _)| (k.clone(), render(t)))
            .collect();
        let probes = Probes::new(&op.effect, ctx.target, &ctx.endpoints, plain)?;
        let prepared = Self {
            spec: op.clone(),
            probes,
            method: reqwest::Method::from_bytes(method.as_str().as_bytes())
                .expect("a known method"),
            url: format!("{}{path}", ctx.target),
            headers,
            body,
            seq: AtomicU64::new(1),
        };
        // Each case needs a body of its own: two renderings must differ where effects are found.
        let (a, b) = (prepared.render("k"), prepared.render("k"));
        match (a.1, b.1) {
            (Some(x), Some(y)) if x != y => Ok(prepared),
            (None, _) | (_, None) => Err((
                "effect.correlate".into(),
                "the rendered request has no value there".into(),
            )),
            _ => Err((
                "body".into(),
                "renders the same correlation value twice; use ${uuid} or ${seq} in it so each \
                 case has an effect of its own"
                    .into(),
            )),
        }
    }

    /// A fresh request under `key`, and its correlation value.
    pub fn render(&self, key: &str) -> (Request, Option<String>) {
        let vars = HashMap::new();
        let ctx = TemplateContext {
            seq: &self.seq,
            vars: &vars,
        };
        let mut headers: Vec<(String, String, String)> = self
            .headers
            .iter()
            .map(|(k, t, shown)| {
                let v = t.render(&ctx);
                let shown = if shown.contains('$') {
                    shown.clone()
                } else {
                    v.clone()
                };
                (k.clone(), v, shown)
            })
            .collect();
        headers.push((self.spec.key_header.clone(), key.into(), key.into()));
        let body = match &self.body {
            PreparedBody::Json(j) => serde_json::to_vec(&j.render(&ctx)).unwrap_or_default(),
            PreparedBody::Text(t) => t.render(&ctx).into_bytes(),
        };
        let corr = self.spec.effect.correlate.extract(
            headers.iter().map(|(k, v, _)| (k.as_str(), v.as_str())),
            Some(&body),
        );
        (
            Request {
                method: self.method.clone(),
                url: self.url.clone(),
                headers,
                body: Some(body),
            },
            corr,
        )
    }

    /// Runs the cases in order; each is its own rule.
    pub async fn run(&self, ctx: &Context<'_>) -> Vec<RuleResult> {
        let http = client::http(ctx.timeout);
        let mut rules = Vec::new();
        let mut ids = Vec::new();
        let mut push = |c: CaseResult| {
            ids.extend(c.ids);
            rules.push(c.rule);
        };
        push(self.sequential_replay(&http).await);
        push(self.payload_mismatch(&http).await);
        push(self.concurrent_duplicates(&http).await);
        if self.spec.lost_response {
            push(self.lost_response(ctx, &http).await);
        }
        if let Some(dep) = &self.spec.dependency_fault {
            push(self.dependency_fault(ctx, dep, &http).await);
        }
        if self.probes.call_log().is_some() {
            rules.push(self.downstream_once(&ids).await);
        }
        if self.probes.has_events() {
            rules.push(self.events_once(&ids).await);
        }
        rules
    }

    /// Every effect of the matrix has exactly one event. Events travel asynchronously (an
    /// outbox relay), so missing ones are waited for, up to `settle_within`.
    async fn events_once(&self, ids: &[String]) -> RuleResult {
        let mut r = self.rule(
            "events-once",
            "the event stream: exactly one event per effect",
        );
        let deadline = Instant::now() + self.spec.settle_within.0;
        let counts = loop {
            match self.probes.events().await {
                Ok(c) if ids.iter().all(|i| c.contains_key(i)) => break Ok(c),
                Ok(c) if Instant::now() > deadline => break Ok(c),
                Err(e) if Instant::now() > deadline => break Err(e),
                _ => tokio::time::sleep(Duration::from_millis(250)).await,
            }
        };
        let counts = match counts {
            Ok(c) => c,
            Err(e) => {
                return super::inconclusive(r, "the stream was not read", e);
            }
        };
        let of = |id: &String| counts.get(id).copied().unwrap_or(0);
        let missing: Vec<String> = ids.iter().filter(|i| of(i) == 0).cloned().collect();
        let twice: Vec<String> = ids
            .iter()
            .filter(|i| of(i) > 1)
            .map(|i| format!("{i}: {} events", of(i)))
            .collect();
        r.observed = format!(
            "{} effect(s): {} without an event, {} with more than one",
            ids.len(),
            missing.len(),
            twice.len()
        );
        let mut wrong = Vec::new();
        if ids.is_empty() {
            r.status = Status::Inconclusive;
            r.detail = "the matrix left no effect to look for".into();
            return r;
        }
        if !twice.is_empty() {
            wrong.push("an effect was published more than once".to_owned());
            r.evidence.extend(twice.into_iter().take(5));
        }
        if !missing.is_empty() {
            wrong.push(format!(
                "stored but not published within {:?}",
                self.spec.settle_within.0
            ));
            r.evidence.extend(
                missing
                    .into_iter()
                    .take(5)
                    .map(|i| format!("{i}: no event")),
            );
        }
        settle(&mut r, wrong);
        r
    }

    fn rule(&self, case: &str, budget: &str) -> RuleResult {
        RuleResult::new(
            format!("idempotency.{}.{case}", self.spec.operation),
            RuleKind::Functional,
            Status::Pass,
        )
        .scope("functional pass, before load")
        .endpoint(self.spec.operation.clone())
        .budget(budget)
    }

    /// True when `a` is one of the contract's success statuses.
    pub(super) fn success(&self, a: &Answer) -> bool {
        a.status
            .is_some_and(|s| self.spec.expect.success.contains(&s))
    }

    /// Missing replay headers on `a`, as `name: value` lines.
    fn missing_replay_headers(&self, a: &Answer) -> Vec<String> {
        self.spec
            .expect
            .replay_headers
            .iter()
            .filter(|(k, v)| a.header(k) != Some(v.as_str()))
            .map(|(k, v)| format!("{k}: {v}"))
            .collect()
    }

    /// Why `a` is not the expected problem answer, if it is not.
    fn problem_mismatch(a: &Answer, want: &super::ProblemExpectation) -> Option<String> {
        if a.status != Some(want.status) {
            return Some(format!("answered {}, want {}", a.summary(), want.status));
        }
        if let Some(t) = &want.problem_type {
            let got = a
                .json()
                .and_then(|v| v.get("type").and_then(|t| t.as_str()).map(str::to_owned));
            if got.as_deref() != Some(t.as_str()) {
                return Some(format!(
                    "answered {} with problem type {}, want {t}",
                    want.status,
                    got.unwrap_or_else(|| "none".into())
                ));
            }
        }
        None
    }

    /// Counts effects for `corr`; a probe failure makes the case inconclusive.
    async fn count(&self, corr: &str, r: &mut RuleResult) -> Option<Vec<String>> {
        match self.probes.effects(corr).await {
            Ok(ids) => Some(ids),
            Err(e) => {
                r.status = Status::Inconclusive;
                r.detail = format!("the effect probe failed: {e}");
                None
            }
        }
    }

    async fn sequential_replay(&self, http: &reqwest::Client) -> CaseResult {
        let mut r = self.rule(
            "sequential-replay",
            "same key and body twice: same status and body, replay marked, one effect",
        );
        let key = uuid::Uuid::new_v4().to_string();
        let (req, corr) = self.render(&key);
        let corr = corr.unwrap_or_default();
        let first = client::send(http, &req).await;
        let second = client::send(http, &req).await;
        r.evidence = vec![
            req.curl(),
            format!("first: {}", first.summary()),
            format!("again: {}", second.summary()),
        ];
        let Some(ids) = self.count(&corr, &mut r).await else {
            return CaseResult::unread(r);
        };
        r.observed = format!(
            "{} then {}; {} effect(s)",
            first.summary(),
            second.summary(),
            ids.len()
        );
        let mut wrong = Vec::new();
        if !self.success(&first) {
            wrong.push(format!("the first request answered {}", first.summary()));
        } else {
            if second.status != first.status {
                wrong.push(format!(
                    "the replay answered {}, the first {}",
                    second.summary(),
                    first.summary()
                ));
            } else if !same_body(&first.body, &second.body) {
                wrong.push("the replay's body differs from the first answer's".into());
                r.evidence.push(format!(
                    "first body: {}",
                    String::from_utf8_lossy(&first.body)
                ));
                r.evidence.push(format!(
                    "replay body: {}",
                    String::from_utf8_lossy(&second.body)
                ));
            }
            let missing = self.missing_replay_headers(&second);
            if !missing.is_empty() {
                wrong.push(format!("the replay lacks {}", missing.join(", ")));
            }
            if !self.spec.expect.replay_headers.is_empty()
                && self.missing_replay_headers(&first).is_empty()
            {
                wrong.push("the first answer already claims to be a replay".into());
            }
        }
        if ids.len() != 1 {
            wrong.push(format!("{} effects for one key", ids.len()));
        }
        settle(&mut r, wrong);
        CaseResult { rule: r, ids }
    }

    async fn payload_mismatch(&self, http: &reqwest::Client) -> CaseResult {
        let want = &self.spec.expect.mismatch;
        let mut r = self.rule(
            "payload-mismatch",
            &format!(
                "same key, different body: {}{}, no new effect",
                want.status,
                want.problem_type
                    .as_deref()
                    .map(|t| format!(" {t}"))
                    .unwrap_or_default()
            ),
        );
        let key = uuid::Uuid::new_v4().to_string();
        let (first_req, corr1) = self.render(&key);
        let (other_req, corr2) = self.render(&key);
        let first = client::send(http, &first_req).await;
        let other = client::send(http, &other_req).await;
        r.evidence = vec![
            first_req.curl(),
            format!("first: {}", first.summary()),
            other_req.curl(),
            format!("different body: {}", other.summary()),
        ];
        let (Some(ids1), Some(ids2)) = (
            self.count(&corr1.unwrap_or_default(), &mut r).await,
            self.count(&corr2.unwrap_or_default(), &mut r).await,
        ) else {
            return CaseResult::unread(r);
        };
        r.observed = format!(
            "{}; effects: first body {}, different body {}",
            other.summary(),
            ids1.len(),
            ids2.len()
        );
        let mut wrong = Vec::new();
        if !self.success(&first) {
            wrong.push(format!("the first request answered {}", first.summary()));
        }
        if let Some(why) = Self::problem_mismatch(&other, want) {
            wrong.push(format!("the different body {why}"));
        }
        if !ids2.is_empty() {
            wrong.push(format!(
                "the different body took effect ({} effect(s))",
                ids2.len()
            ));
        }
        if ids1.len() != 1 {
            wrong.push(format!("{} effects for the first body", ids1.len()));
        }
        settle(&mut r, wrong);
        let mut ids = ids1;
        ids.extend(ids2);
        CaseResult { rule: r, ids }
    }

    async fn concurrent_duplicates(&self, http: &reqwest::Client) -> CaseResult {
        let n = self.spec.concurrency as usize;
        let conflict = &self.spec.expect.conflict;
        let mut r = self.rule(
            "concurrent-duplicates",
            &format!(
                "{n} duplicates released together: one effect; each answer the first's or {}",
                conflict.status
            ),
        );
        let key = uuid::Uuid::new_v4().to_string();
        let (req, corr) = self.render(&key);
        let barrier = Arc::new(tokio::sync::Barrier::new(n));
        let tasks: Vec<_> = (0..n)
            .map(|_| {
                let (http, req, barrier) = (http.clone(), req.clone(), barrier.clone());
                tokio::spawn(async move {
                    barrier.wait().await;
                    client::send(&http, &req).await
                })
            })
            .collect();
        let mut answers = Vec::new();
        for t in tasks {
            if let Ok(a) = t.await {
                answers.push(a);
            }
        }
        let mut tally: BTreeMap<String, usize> = BTreeMap::new();
        for a in &answers {
            *tally.entry(a.summary()).or_default() += 1;
        }
        let tally_text = tally
            .iter()
            .map(|(k, v)| format!("{v}× {k}"))
            .collect::<Vec<_>>()
            .join(", ");
        r.evidence = vec![
            format!("{n} at once: {}", req.curl()),
            format!("answers: {tally_text}"),
        ];
        let Some(ids) = self.count(&corr.unwrap_or_default(), &mut r).await else {
            return CaseResult::unread(r);
        };
        r.observed = format!("{tally_text}; {} effect(s)", ids.len());
        let mut wrong = Vec::new();
        let successes: Vec<&Answer> = answers.iter().filter(|a| self.success(a)).collect();
        if successes.is_empty() {
            wrong.push("no duplicate succeeded".into());
        }
        if let Some(first) = successes.first()
            && successes
                .iter()
                .any(|a| a.status != first.status || !same_body(&a.body, &first.body))
        {
            wrong.push("the successful answers differ from each other".into());
        }
        let odd: Vec<String> = answers
            .iter()
            .filter(|a| !self.success(a))
            .filter_map(|a| Self::problem_mismatch(a, conflict))
            .collect();
        if let Some(o) = odd.first() {
            wrong.push(format!(
                "{} duplicate(s) neither succeeded nor got the conflict answer: {o}",
                odd.len()
            ));
        }
        if ids.len() != 1 {
            wrong.push(format!("{} effects for one key", ids.len()));
        }
        settle(&mut r, wrong);
        CaseResult { rule: r, ids }
    }

    async fn lost_response(&self, ctx: &Context<'_>, http: &reqwest::Client) -> CaseResult {
        let mut r = self.rule(
            "lost-response",
            "answer cut on its way back, retried with the same key: success, one effect",
        );
        let authority = ctx
            .target
            .strip_prefix("http://")
            .unwrap_or(ctx.target)
            .trim_end_matches('/');
        let proxy = match super::proxy::ServiceProxy::up(authority).await {
            Ok(p) => p,
            Err(e) => {
                return CaseResult::unread(super::inconclusive(
                    r,
                    "no proxy in front of the service",
                    e,
                ));
            }
        };
        let key = uuid::Uuid::new_v4().to_string();
        let (req, corr) = self.render(&key);
        let via = req.via(ctx.target, &proxy.base);
        // A few bytes: the status line starts, the answer never completes.
        let cut = proxy.cut_answers(8).await;
        let first = client::send(http, &via).await;
        let healed = proxy.heal().await;
        let down = proxy.down().await;
        if let Some(e) = [cut, healed].into_iter().find_map(Result::err) {
            return CaseResult::unread(super::inconclusive(
                r,
                "the toxic could not be set or removed",
                e,
            ));
        }
        let corr = corr.unwrap_or_default();
        let landed = self.probes.effects(&corr).await.map(|v| v.len()).ok();
        let retries = retry_until_settled(http, &req, self, self.spec.settle_within.0).await;
        let last = retries.last().cloned().expect("at least one attempt");
        r.evidence = vec![
            format!(
                "through a proxy cutting answers after 8 bytes: {}",
                via.curl()
            ),
            format!("cut: {}", first.summary()),
            format!("retried directly: {}", req.curl()),
            format!(
                "retries: {}",
                retries
                    .iter()
                    .map(Answer::summary)
                    .collect::<Vec<_>>()
                    .join(" → ")
            ),
        ];
        if let Err(e) = down {
            r.evidence.push(e);
        }
        if first.status.is_some() {
            return CaseResult::unread(super::inconclusive(
                r,
                format!("the answer was not cut ({})", first.summary()),
                "the proxy did not cut the answer, so nothing was tested",
            ));
        }
        let Some(ids) = self.count(&corr, &mut r).await else {
            return CaseResult::unread(r);
        };
        r.observed = format!(
            "first answer lost (effects then: {}); retry {} after {} attempt(s); {} effect(s)",
            landed.map_or("?".into(), |n| n.to_string()),
            last.summary(),
            retries.len(),
            ids.len()
        );
        let mut wrong = Vec::new();
        if !self.success(&last) {
            wrong.push(format!("the retry ended with {}", last.summary()));
        } else if landed == Some(1) {
            let missing = self.missing_replay_headers(&last);
            if !missing.is_empty() {
                wrong.push(format!(
                    "the first request had taken effect, yet the retry's answer lacks {}",
                    missing.join(", ")
                ));
            }
        }
        if ids.len() != 1 {
            wrong.push(format!("{} effects for one key", ids.len()));
        }
        settle(&mut r, wrong);
        CaseResult { rule: r, ids }
    }

    async fn dependency_fault(
        &self,
        ctx: &Context<'_>,
        dep: &str,
        http: &reqwest::Client,
    ) -> CaseResult {
        let mut r = self.rule(
            &format!("{dep}-cut-mid-write"),
            &format!(
                "{dep}'s connections cut while the request writes, retried with the same key: \
                 success, one effect"
            ),
        );
        let Some((injector, proxy)) = ctx
            .injector
            .as_ref()
            .and_then(|i| i.proxies.get(dep).map(|p| (i, p.clone())))
        else {
            return CaseResult::unread(super::inconclusive(
                r,
                "no Toxiproxy in front of it",
                format!(
                    "`{dep}` has no proxy in this environment (a run with --target starts none)"
                ),
            ));
        };
        let toxic = Toxic {
            name: CUT_TOXIC.into(),
            stream: Stream::Downstream,
            toxicity: 1.0,
            // One byte of the dependency's answer, then the connection closes: a statement
            // already sent is executed (and may commit), its answer is lost.
            kind: ToxicKind::LimitData { bytes: 1 },
        };
        let key = uuid::Uuid::new_v4().to_string();
        let (req, corr) = self.render(&key);
        let corr = corr.unwrap_or_default();
        let applied = injector.toxiproxy.add_toxic(&proxy, &toxic).await;
        let first = client::send(http, &req).await;
        let removed = injector.toxiproxy.remove_toxic(&proxy, &toxic.name).await;
        if let Some(e) = [applied.map(drop), removed]
            .into_iter()
            .find_map(Result::err)
        {
            return CaseResult::unread(super::inconclusive(
                r,
                "the toxic could not be set or removed",
                e.to_string(),
            ));
        }
        let landed = self.probes.effects(&corr).await.map(|v| v.len()).ok();
        let retries = retry_until_settled(http, &req, self, self.spec.settle_within.0).await;
        let last = retries.last().cloned().expect("at least one attempt");
        r.evidence = vec![
            req.curl(),
            format!("during the cut: {}", first.summary()),
            format!(
                "retries: {}",
                retries
                    .iter()
                    .map(Answer::summary)
                    .collect::<Vec<_>>()
                    .join(" → ")
            ),
        ];
        if self.success(&first) {
            return CaseResult::unread(super::inconclusive(
                r,
                format!(
                    "the request succeeded through the cut ({})",
                    first.summary()
                ),
                format!("the cut did not reach {dep}'s write, so nothing was tested"),
            ));
        }
        let Some(ids) = self.count(&corr, &mut r).await else {
            return CaseResult::unread(r);
        };
        r.observed = format!(
            "during the cut {} (effects then: {}); retry {} after {} attempt(s); {} effect(s)",
            first.summary(),
            landed.map_or("?".into(), |n| n.to_string()),
            last.summary(),
            retries.len(),
            ids.len()
        );
        let mut wrong = Vec::new();
        if !self.success(&last) {
            wrong.push(format!(
                "the retry ended with {} within {:?}",
                last.summary(),
                self.spec.settle_within.0
            ));
        }
        if ids.len() != 1 {
            wrong.push(format!("{} effects for one key", ids.len()));
        }
        settle(&mut r, wrong);
        CaseResult { rule: r, ids }
    }

    async fn downstream_once(&self, ids: &[String]) -> RuleResult {
        let mut r = self.rule(
            "downstream-once",
            "the downstream's call log: at most one effective call per effect",
        );
        let log = self.probes.call_log().expect("checked by the caller");
        let calls = match self.probes.calls().await {
            Ok(c) => c,
            Err(e) => {
                return super::inconclusive(r, "call log not read", e);
            }
        };
        let mut per: BTreeMap<&str, (usize, usize)> =
            ids.iter().map(|i| (i.as_str(), (0, 0))).collect();
        for c in &calls {
            if let Some(id) = log.correlation(c)
                && let Some(e) = per.get_mut(id.as_str())
            {
                e.0 += 1;
                if log.is_effective(c) {
                    e.1 += 1;
                }
            }
        }
        let called = per.values().filter(|(all, _)| *all > 0).count();
        let twice: Vec<String> = per
            .iter()
            .filter(|(_, (_, eff))| *eff > 1)
            .map(|(id, (all, eff))| format!("{id}: {eff} effective of {all} calls"))
            .collect();
        r.observed = format!(
            "{} effect(s), {called} with calls, {} with more than one effective call",
            per.len(),
            twice.len()
        );
        if !twice.is_empty() {
            r.status = Status::Fail;
            r.detail = "an effect was charged more than once downstream".into();
            r.evidence = twice.into_iter().take(5).collect();
        } else if called == 0 {
            r.status = Status::Inconclusive;
            r.detail = "no call in the log belongs to an effect of the matrix; nothing was \
                        compared"
                .into();
        }
        r
    }
}

/// Fails `r` with the first reasons, if any.
fn settle(r: &mut RuleResult, wrong: Vec<String>) {
    if r.status == Status::Inconclusive {
        return;
    }
    if !wrong.is_empty() {
        r.status = Status::Fail;
        r.detail = wrong.join("; ");
    }
}

/// Equal as JSON when both parse, else byte for byte.
fn same_body(a: &[u8], b: &[u8]) -> bool {
    match (
        serde_json::from_slice::<serde_json::Value>(a),
        serde_json::from_slice::<serde_json::Value>(b),
    ) {
        (Ok(x), Ok(y)) => x == y,
        _ => a == b,
    }
}

/// Sends `req` until it ends in something other than "try again": no answer, 503 or the conflict
/// status are retried, honouring `Retry-After`, until `within` has passed.
async fn retry_until_settled(
    http: &reqwest::Client,
    req: &Request,
    op: &Prepared,
    within: Duration,
) -> Vec<Answer> {
    let deadline = Instant::now() + within;
    let mut out = Vec::new();
    loop {
        let a = client::send(http, req).await;
        let again = match a.status {
            None => true,
            Some(s) => s == 503 || s == op.spec.expect.conflict.status,
        };
        let wait = a.retry_after().unwrap_or(Duration::from_millis(250));
        out.push(a);
        if !again || Instant::now() + wait > deadline {
            return out;
        }
        tokio::time::sleep(wait).await;
    }
}

/// Renders a bound template once, outside any case (the path, default headers).
fn render(t: &Template) -> String {
    t.render(&TemplateContext {
        seq: &AtomicU64::new(0),
        vars: &HashMap::new(),
    })
}
