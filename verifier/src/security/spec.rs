//! The scenario's `security:` section: what each probe family needs, and its validation
//! against the contract.

use std::time::Duration;

use schemars::JsonSchema;
use serde::Deserialize;

use super::token;
use crate::contract::Contract;
use crate::scenario::locate::Seg;
use crate::scenario::{Dur, FieldError};

/// The scenario's `security:` section.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SecuritySpec {
    /// How the verifier signs the tokens of its own tenants.
    pub jwt: token::JwtSpec,
    /// Tenant isolation: tenant B creates with this operation, tenant A then reads, changes and
    /// lists by the new id and must find nothing.
    #[serde(default)]
    pub isolation: Option<IsolationSpec>,
    /// The rate limit: one tenant calls an operation until it is refused with 429.
    #[serde(default)]
    pub rate_limit: Option<RateLimitSpec>,
    #[serde(default)]
    pub malformed: MalformedSpec,
    #[serde(default)]
    pub generative: GenerativeSpec,
    /// operationIds no probe calls (e.g. administrative switches).
    #[serde(default)]
    pub skip: Vec<String>,
    /// The whole pass must end within this; a service too slow for it fails `security.pass`.
    #[serde(default = "default_budget")]
    pub budget: Dur,
}

fn default_budget() -> Dur {
    Dur(Duration::from_secs(120))
}

#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct IsolationSpec {
    /// operationId that creates a resource; the operations under its path that take one path
    /// parameter are probed with the new resource's id.
    pub create: String,
    /// JSON Pointer to the new resource's id in the create response.
    #[serde(default = "default_id")]
    pub id: String,
}

fn default_id() -> String {
    "/id".into()
}

#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RateLimitSpec {
    /// operationId to call until the service answers 429.
    pub operation: String,
    /// Give up (and fail) after this many requests without a 429.
    #[serde(default = "default_max_requests")]
    pub max_requests: u32,
    /// Requests in flight at once.
    #[serde(default = "default_concurrency")]
    pub concurrency: u32,
}

fn default_max_requests() -> u32 {
    1000
}
fn default_concurrency() -> u32 {
    16
}

#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MalformedSpec {
    /// Size of the oversized body, bytes.
    #[serde(default = "default_oversized")]
    pub oversized_bytes: usize,
}

fn default_oversized() -> usize {
    1 << 20
}

impl Default for MalformedSpec {
    fn default() -> Self {
        MalformedSpec {
            oversized_bytes: default_oversized(),
        }
    }
}

#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct GenerativeSpec {
    /// Requests of the generative pass (0 switches it off).
    #[serde(default = "default_requests")]
    pub requests: u32,
    /// Seed of the generator: the same seed sends the same requests.
    #[serde(default = "default_seed")]
    pub seed: u64,
}

fn default_requests() -> u32 {
    200
}
fn default_seed() -> u64 {
    1
}

impl Default for GenerativeSpec {
    fn default() -> Self {
        GenerativeSpec {
            requests: default_requests(),
            seed: default_seed(),
        }
    }
}

/// Checks the section against the contract; errors name the field to blame, relative to the
/// section.
pub fn validate(s: &SecuritySpec, c: &Contract) -> Result<(), FieldError> {
    // Why `id` is not an operation of the contract, if it is not.
    let unknown = |id: &str| {
        c.by_id(id).is_none().then(|| {
            format!(
                "`{id}` is not an operationId of {} (known: {})",
                c.file.display(),
                c.operations
                    .iter()
                    .map(|o| o.id.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        })
    };
    if let Some(i) = &s.isolation {
        if let Some(m) = unknown(&i.create) {
            return Err(FieldError::at("isolation.create", m));
        }
        if !i.id.starts_with('/') {
            return Err(FieldError::at(
                "isolation.id",
                format!("JSON pointer `{}` must start with `/`", i.id),
            ));
        }
    }
    if let Some(r) = &s.rate_limit {
        if let Some(m) = unknown(&r.operation) {
            return Err(FieldError::at("rate_limit.operation", m));
        }
        if r.max_requests == 0 || r.concurrency == 0 {
            return Err(FieldError::at(
                "rate_limit",
                "max_requests and concurrency must be at least 1",
            ));
        }
    }
    for (i, id) in s.skip.iter().enumerate() {
        if let Some(m) = unknown(id) {
            return Err(FieldError::new(
                vec![Seg::Key("skip".into()), Seg::Index(i)],
                m,
            ));
        }
    }
    if s.generative.requests > 10_000 {
        return Err(FieldError::at(
            "generative.requests",
            "at most 10000 requests",
        ));
    }
    Ok(())
}
