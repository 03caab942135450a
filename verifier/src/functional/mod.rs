//! Functional checks, run once before load: the idempotent-retry matrix of every operation the
//! scenario declares idempotent ([`idempotency`]) and the service's own retry discipline towards a
//! failing downstream ([`retries`]). Each case is its own rule, with the requests as `curl` lines.
//!
//! Effects are counted independently of the answers: a SQL read-back, an API read-back or the
//! downstream's call log ([`probe`]), never the status code.

pub mod client;
pub mod idempotency;
pub mod probe;
pub mod proxy;
pub mod retries;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use schemars::JsonSchema;
use serde::Deserialize;

use crate::effects::KeySource;
use crate::rule::RuleResult;
use crate::scenario::locate::Seg;
use crate::scenario::{Body, Defaults, Dur, FieldError, Template};

/// The scenario's `functional:` section.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FunctionalSpec {
    /// Operations that must be idempotent; each goes through the retry matrix.
    #[serde(default)]
    pub idempotency: Vec<IdempotentOperation>,
    /// The service's own retries towards a failing downstream.
    #[serde(default)]
    pub retry_discipline: Option<retries::RetryDiscipline>,
    /// Deadline for the whole functional pass.
    #[serde(default = "default_pass_timeout")]
    pub timeout: Dur,
}

fn default_pass_timeout() -> Dur {
    Dur(Duration::from_secs(120))
}

/// One operation that must be idempotent, and how to see its effect.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct IdempotentOperation {
    /// The contract's `operationId`, e.g. `createOrder`.
    pub operation: String,
    /// The request header carrying the key.
    #[serde(default = "default_key_header")]
    pub key_header: String,
    /// Request path; defaults to the operation's path in the contract (which must then have no
    /// parameters).
    #[serde(default)]
    pub path: Option<Template>,
    /// Headers besides `defaults.headers` and the key.
    #[serde(default)]
    pub headers: BTreeMap<String, Template>,
    /// The request body. It must render differently each time (use `${uuid}` or `${seq}` in the
    /// value `effect.correlate` names), so that every case has its own effect to count.
    pub body: Body,
    /// The answers the contract promises.
    pub expect: Expectations,
    pub effect: EffectSpec,
    /// Duplicates released together in the concurrency case.
    #[serde(default = "default_concurrency")]
    pub concurrency: u32,
    /// Cut the response on its way back (a Toxiproxy `limit_data` toxic between verifier and
    /// service), then retry with the same key. Needs a target on loopback and a Docker engine.
    #[serde(default)]
    pub lost_response: bool,
    /// Cut a dependency's connections while the request writes (Toxiproxy `limit_data` on the
    /// proxy in front of it: the write may land, its answer does not), then retry with the same
    /// key. Names a dependency of `environment.testcontainers`.
    #[serde(default)]
    pub dependency_fault: Option<String>,
    /// How long a retry after a fault keeps trying while the service answers the conflict status
    /// or 503 (honouring `Retry-After`): at least the service's idempotency lease.
    #[serde(default = "default_settle_within")]
    pub settle_within: Dur,
}

fn default_key_header() -> String {
    "Idempotency-Key".into()
}
fn default_concurrency() -> u32 {
    8
}
fn default_settle_within() -> Dur {
    Dur(Duration::from_secs(15))
}

/// What the contract says the service answers.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Expectations {
    /// Statuses of a successful first request, e.g. `[201]`.
    pub success: Vec<u16>,
    /// Headers a replayed answer carries, e.g. `Idempotent-Replayed: "true"`.
    #[serde(default)]
    pub replay_headers: BTreeMap<String, String>,
    /// Same key, different body.
    pub mismatch: ProblemExpectation,
    /// Same key while the first request is still in flight.
    pub conflict: ProblemExpectation,
}

/// An error answer: its status and, optionally, the problem+json `type`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ProblemExpectation {
    pub status: u16,
    #[serde(default, rename = "type")]
    pub problem_type: Option<String>,
}

/// How to count an operation's effects without trusting its answers.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EffectSpec {
    /// The request value that identifies the effect, unique per rendered body, e.g.
    /// `json: /customer_email`.
    #[serde(with = "serde_norway::with::singleton_map")]
    #[schemars(with = "KeySource")]
    pub correlate: KeySource,
    /// SQL read-back.
    #[serde(default)]
    pub database: Option<probe::DatabaseCount>,
    /// API read-back.
    #[serde(default)]
    pub http: Option<probe::HttpCount>,
    /// A downstream's call log: at most one effective call per effect.
    #[serde(default)]
    pub downstream: Option<probe::CallLog>,
    /// The event stream: exactly one event per effect (`url` may use `${nats.url}`).
    #[serde(default)]
    pub events: Option<crate::effects::EventProbe>,
}

/// Why the functional pass cannot run: the scenario is wrong (exit 2, before load).
#[derive(Debug, thiserror::Error)]
#[error("{file}: field `{field}`: {message}")]
pub struct FunctionalError {
    pub file: String,
    pub field: String,
    pub message: String,
}

/// The pass's results.
#[derive(Debug, Default)]
pub struct Outcome {
    pub rules: Vec<RuleResult>,
    pub took: Duration,
}

/// Where the pass runs: the target, the scenario's shared request settings, and what the
/// environment offers (direct addresses for probes; the Toxiproxy in front of dependencies).
pub struct Context<'a> {
    pub target: &'a str,
    pub timeout: Duration,
    /// `defaults.headers`, bound to the environment, with their unbound text for evidence.
    pub headers: Vec<(String, Template, String)>,
    pub endpoints: BTreeMap<String, String>,
    pub injector: Option<std::sync::Arc<crate::fault::timeline::Injector>>,
}

/// The `functional:` section with what its checks need from the rest of the scenario.
#[derive(Debug, Clone, Copy)]
pub struct Section<'a> {
    pub spec: &'a FunctionalSpec,
    pub defaults: &'a Defaults,
    pub contract: Option<&'a crate::contract::Contract>,
    pub environment: &'a crate::env::EnvironmentSpec,
}

impl<'a> Context<'a> {
    /// Builds the context from the scenario's defaults; `${env.X}` in headers is bound now.
    pub fn new(
        defaults: &Defaults,
        target: &'a str,
        endpoints: BTreeMap<String, String>,
        injector: Option<std::sync::Arc<crate::fault::timeline::Injector>>,
        getenv: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Self, String> {
        let mut headers = Vec::new();
        for (k, t) in &defaults.headers {
            let bound = t
                .bind_env(getenv)
                .map_err(|m| format!("defaults.headers.{k}: {m}"))?;
            headers.push((k.clone(), bound, client::shell_text(t)));
        }
        Ok(Self {
            target,
            timeout: defaults.timeout.0,
            headers,
            endpoints,
            injector,
        })
    }
}

/// The pass as a gate run calls it, after the target answered and before load: no-op without a
/// `functional:` section.
pub async fn before_load(
    section: Option<Section<'_>>,
    file: &str,
    target: &str,
    endpoints: BTreeMap<String, String>,
    injector: Option<std::sync::Arc<crate::fault::timeline::Injector>>,
    getenv: &dyn Fn(&str) -> Option<String>,
) -> Result<Outcome, FunctionalError> {
    let Some(section) = section else {
        return Ok(Outcome::default());
    };
    if matches!(
        section.environment,
        crate::env::EnvironmentSpec::Testcontainers(_)
    ) && endpoints.is_empty()
    {
        // `--target` replaced the environment whose probes and proxies the checks name.
        eprintln!(
            "verifier: --target given; the functional checks need the scenario's own environment \
             and are skipped"
        );
        return Ok(Outcome::default());
    }
    let ctx = Context::new(section.defaults, target, endpoints, injector, getenv).map_err(|m| {
        FunctionalError {
            file: file.to_owned(),
            field: "defaults.headers".into(),
            message: m,
        }
    })?;
    eprintln!("verifier: functional checks");
    let out = run(&section, file, &ctx, getenv).await?;
    eprintln!(
        "verifier: functional checks done in {:.1} s",
        out.took.as_secs_f64()
    );
    Ok(out)
}

/// Runs the functional pass. A probe that does not answer is a scenario error (exit 2); what
/// the service does wrong becomes failed rules.
pub async fn run(
    section: &Section<'_>,
    file: &str,
    ctx: &Context<'_>,
    getenv: &dyn Fn(&str) -> Option<String>,
) -> Result<Outcome, FunctionalError> {
    let spec = section.spec;
    let started = Instant::now();
    let deadline = spec.timeout.0;
    let err = |field: String, message: String| FunctionalError {
        file: file.to_owned(),
        field,
        message,
    };
    let contract = section.contract;
    let mut ops = Vec::new();
    for (i, op) in spec.idempotency.iter().enumerate() {
        let field = |f: &str| format!("functional.idempotency[{i}].{f}");
        let found = contract
            .as_ref()
            .and_then(|c| c.by_id(&op.operation))
            .ok_or_else(|| {
                err(
                    field("operation"),
                    format!("the contract has no operation `{}`", op.operation),
                )
            })?;
        let prepared = idempotency::Prepared::new(op, found.method, &found.path, ctx, getenv)
            .map_err(|(f, m)| err(field(&f), m))?;
        prepared
            .probes
            .check()
            .await
            .map_err(|(f, m)| err(field(&f), m))?;
        ops.push(prepared);
    }
    let mut discipline = None;
    if let Some(rd) = &spec.retry_discipline {
        let op = ops
            .iter()
            .find(|p| p.spec.operation == rd.operation)
            .ok_or_else(|| {
                err(
                    "functional.retry_discipline.operation".into(),
                    format!(
                        "`{}` is not among `functional.idempotency`; the retry check sends its request",
                        rd.operation
                    ),
                )
            })?;
        let rd_err = |(f, m): (String, String)| err(format!("functional.retry_discipline.{f}"), m);
        let prepared = retries::Prepared::new(rd, &ctx.endpoints).map_err(rd_err)?;
        prepared.check().await.map_err(rd_err)?;
        discipline = Some((prepared, op));
    }

    let work = async {
        let mut rules = Vec::new();
        // Retries first: the matrix's successes after it also close any breaker it tripped.
        if let Some((rd, op)) = &discipline {
            rules.extend(rd.run(op, ctx).await);
        }
        for op in &ops {
            rules.extend(op.run(ctx).await);
        }
        rules
    };
    let rules = match tokio::time::timeout(deadline, work).await {
        Ok(rules) => rules,
        Err(_) => {
            // Whatever fault the cut-off case had engaged must not stay for the load.
            let mut left = Vec::new();
            if let Some((rd, _)) = &discipline {
                left.extend(rd.restore().await);
            }
            if let Some(inj) = &ctx.injector {
                for proxy in inj.proxies.values() {
                    for toxic in [idempotency::CUT_TOXIC, retries::LATENCY_TOXIC] {
                        // Absent is the usual answer; only the removal matters.
                        let _ = inj.toxiproxy.remove_toxic(proxy, toxic).await;
                    }
                }
            }
            let status = if left.is_empty() {
                crate::rule::Status::Inconclusive
            } else {
                crate::rule::Status::Fail
            };
            vec![
                RuleResult::new("functional", crate::rule::RuleKind::Functional, status)
                    .scope("before load")
                    .budget(format!("the functional pass ends within {deadline:?}"))
                    .observed("cut off")
                    .detail(format!(
                        "the functional pass outlived `functional.timeout`{}",
                        left.iter().map(|l| format!("; {l}")).collect::<String>()
                    )),
            ]
        }
    };
    let took = started.elapsed();
    let mut rules = rules;
    for r in &mut rules {
        r.scope = format!(
            "functional pass before load ({:.1} s in all)",
            took.as_secs_f64()
        );
    }
    Ok(Outcome { rules, took })
}

/// `r` marked inconclusive: the check could not be made, for the reason `detail`.
fn inconclusive(
    mut r: RuleResult,
    observed: impl Into<String>,
    detail: impl Into<String>,
) -> RuleResult {
    r.status = crate::rule::Status::Inconclusive;
    r.observed = observed.into();
    r.detail = detail.into();
    r
}

/// Checks that need the contract and the environment section, when the scenario is read. Each
/// failure carries the path of the field to blame, relative to the section.
pub fn validate(s: &Section<'_>) -> Result<(), FieldError> {
    let spec = s.spec;
    let k = |s: &str| Seg::Key(s.to_owned());
    if spec.idempotency.is_empty() && spec.retry_discipline.is_none() {
        return Err(FieldError::new(
            Vec::new(),
            "names no check: give `idempotency` or `retry_discipline`",
        ));
    }
    let Some(contract) = s.contract else {
        return Err(FieldError::new(
            Vec::new(),
            "functional checks look operations up in the contract: add `contract: { openapi: ... }`",
        ));
    };
    let deps: Vec<&str> = match s.environment {
        crate::env::EnvironmentSpec::Testcontainers(c) => {
            c.dependencies.iter().map(|d| d.name()).collect()
        }
        _ => Vec::new(),
    };
    for (i, op) in spec.idempotency.iter().enumerate() {
        let at = |f: &str| vec![k("idempotency"), Seg::Index(i), k(f)];
        let Some(found) = contract.by_id(&op.operation) else {
            let known: Vec<&str> = contract.operations.iter().map(|o| o.id.as_str()).collect();
            return Err(FieldError::new(
                at("operation"),
                format!(
                    "the contract {} has no operation `{}` (known: {})",
                    contract.file.display(),
                    op.operation,
                    known.join(", ")
                ),
            ));
        };
        if op.path.is_none() && found.path.contains('{') {
            return Err(FieldError::new(
                at("path"),
                format!(
                    "operation `{}` has path parameters ({}); give the concrete `path`",
                    op.operation, found.path
                ),
            ));
        }
        if let Some(p) = &op.path
            && !p.starts_with_slash()
        {
            return Err(FieldError::new(at("path"), "path must start with `/`"));
        }
        if !(2..=64).contains(&op.concurrency) {
            return Err(FieldError::new(
                at("concurrency"),
                "must be between 2 and 64",
            ));
        }
        if op.expect.success.is_empty() || op.expect.success.iter().any(|s| !(200..300).contains(s))
        {
            return Err(FieldError::new(
                at("expect"),
                "`success` must list 2xx statuses, e.g. [201]",
            ));
        }
        if op.effect.database.is_none() && op.effect.http.is_none() {
            return Err(FieldError::new(
                at("effect"),
                "needs a way to count effects: `database` or `http`",
            ));
        }
        if let Some(dep) = &op.dependency_fault
            && !deps.contains(&dep.as_str())
        {
            return Err(FieldError::new(
                at("dependency_fault"),
                format!(
                    "`{dep}` is not a dependency this scenario starts behind Toxiproxy (it starts: {})",
                    if deps.is_empty() {
                        "none; use `environment: {testcontainers: ...}`".to_owned()
                    } else {
                        deps.join(", ")
                    }
                ),
            ));
        }
        if let Body::Json(v) = &op.body {
            crate::scenario::template::check_json_body(v, &Default::default())
                .map_err(|m| FieldError::new(at("body"), m))?;
        }
    }
    if let Some(rd) = &spec.retry_discipline {
        let at = |f: &str| vec![k("retry_discipline"), k(f)];
        if !spec.idempotency.iter().any(|o| o.operation == rd.operation) {
            return Err(FieldError::new(
                at("operation"),
                format!(
                    "`{}` is not among `functional.idempotency`; the retry check sends its request",
                    rd.operation
                ),
            ));
        }
        rd.validate().map_err(|e| e.under(&["retry_discipline"]))?;
        let json_body = spec
            .idempotency
            .iter()
            .any(|o| o.operation == rd.operation && matches!(o.body, Body::Json(_)));
        if !rd.no_retry.is_empty() && !json_body {
            return Err(FieldError::new(
                vec![
                    k("retry_discipline"),
                    k("no_retry"),
                    Seg::Index(0),
                    k("set"),
                ],
                format!(
                    "replaces fields of a JSON body, and `{}` sends another kind of body",
                    rd.operation
                ),
            ));
        }
    }
    Ok(())
}
