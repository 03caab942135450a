//! Effects: what the service actually did, read back independently of its answers. The
//! "nothing lost" invariants compare what the service acknowledged during a run with what its
//! database and its event stream hold afterwards — never trusting a status code:
//!
//! - every effect acknowledged with a 2xx exists exactly once;
//! - every effect that exists has exactly one event on the stream;
//! - an effect answered with a 5xx or a timeout is absent or present once, never twice.
//!
//! The scenario says how to observe effects (`invariants:`): which step creates them, which value
//! of a request identifies its effect (the idempotency key, or a field of the body that is unique
//! per request and stored with the effect), where the id is in the answer, SQL that counts effects
//! by id and finds them by that value, and the stream that carries their events.

pub mod probe;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::scenario::Dur;

/// The `invariants:` section of a scenario.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct InvariantSpec {
    /// The step (endpoint name) whose requests create effects, e.g. `create-order`.
    pub step: String,
    /// The value of a request that identifies its effect; the database is asked for effects by it.
    #[serde(with = "serde_norway::with::singleton_map")]
    #[schemars(with = "KeySource")]
    pub key: KeySource,
    /// JSON Pointer to the effect's id in a 2xx answer, e.g. `/id`.
    pub id_pointer: String,
    pub database: DatabaseProbe,
    #[serde(default)]
    pub events: Option<EventProbe>,
    /// Deadline for all read-backs together.
    #[serde(default = "default_budget")]
    pub timeout: Dur,
    /// How long to wait after the load for asynchronous effects (an outbox draining) to land.
    #[serde(default = "default_settle")]
    pub settle: Dur,
}

fn default_budget() -> Dur {
    Dur(std::time::Duration::from_secs(60))
}

fn default_settle() -> Dur {
    Dur(std::time::Duration::from_secs(10))
}

/// Where a request's correlation value comes from.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
pub enum KeySource {
    /// A request header, e.g. `Idempotency-Key`: right when the database stores the key with the
    /// effect in a way that could hold it twice.
    Header(String),
    /// A JSON Pointer into the request body, e.g. `/customer_email` when the load makes it unique
    /// per request: the effect is found by what it stored, independently of the idempotency
    /// machinery under test.
    Json(String),
}

impl KeySource {
    /// The value for one request, from its headers and body.
    pub fn extract<'a>(
        &self,
        headers: impl IntoIterator<Item = (&'a str, &'a str)>,
        body: Option<&[u8]>,
    ) -> Option<String> {
        match self {
            Self::Header(name) => headers
                .into_iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.to_owned()),
            Self::Json(pointer) => {
                let v: serde_json::Value = serde_json::from_slice(body?).ok()?;
                match v.pointer(pointer)? {
                    serde_json::Value::String(s) => Some(s.clone()),
                    other => Some(other.to_string()),
                }
            }
        }
    }
}

/// Read-backs from a PostgreSQL database, over a direct connection (not through a fault).
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DatabaseProbe {
    /// Connection URL; may use environment placeholders such as `${postgres.url}`.
    pub url: String,
    /// SQL taking the ids as `$1` (a text array) and returning rows `(id text, count bigint)`.
    pub count_by_id: String,
    /// SQL taking the correlation values as `$1` (a text array) and returning rows
    /// `(key text, id text)`, one per effect found for a value.
    pub ids_by_key: String,
}

/// Read-back of a NATS JetStream stream.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EventProbe {
    /// NATS URL; may use placeholders such as `${nats.url}`.
    pub url: String,
    pub stream: String,
    /// Only events on this subject count, e.g. `orders.created`.
    pub subject: String,
    /// JSON Pointer to the effect's id in an event's payload, e.g. `/order_id`.
    pub id_pointer: String,
}

/// How one effect-creating request ended, as the load saw it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Ack {
    pub key: String,
    /// HTTP status; `None` for a timeout or transport error.
    pub status: Option<u16>,
    /// The id from a 2xx answer.
    pub id: Option<String>,
}

impl Ack {
    pub fn acknowledged(&self) -> bool {
        matches!(self.status, Some(s) if (200..300).contains(&s))
    }

    /// An answer that leaves the effect unknown: a 5xx or no answer at all.
    pub fn uncertain(&self) -> bool {
        matches!(self.status, None | Some(500..=599))
    }
}

/// What the read-backs found.
#[derive(Debug, Clone, Default)]
pub struct Readback {
    /// Effects per id, for the acknowledged ids (absent = 0).
    pub count_by_id: BTreeMap<String, u64>,
    /// Effect ids per key, for the uncertain keys.
    pub ids_by_key: BTreeMap<String, Vec<String>>,
    /// Events per effect id; `None` when no event probe is configured.
    pub events_by_id: Option<BTreeMap<String, u64>>,
    /// Why the stream held no event at all, when it does not exist (nothing was ever published
    /// to it): said in each missing event's evidence.
    pub events_note: Option<String>,
}

/// One broken invariant, with the ids and keys a person needs to look it up.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Violation {
    pub rule: &'static str,
    pub key: Option<String>,
    pub id: Option<String>,
    pub detail: String,
}

/// Compares acknowledgements with read-backs. Pure: the I/O is in [`probe`].
pub fn nothing_lost(acks: &[Ack], rb: &Readback) -> Vec<Violation> {
    let mut out = Vec::new();
    let mut existing: Vec<(String, Option<String>)> = Vec::new();
    for a in acks.iter().filter(|a| a.acknowledged()) {
        let Some(id) = &a.id else {
            out.push(Violation {
                rule: "acknowledged-has-id",
                key: Some(a.key.clone()),
                id: None,
                detail: "a 2xx answer carried no id".into(),
            });
            continue;
        };
        match rb.count_by_id.get(id).copied().unwrap_or(0) {
            1 => existing.push((id.clone(), Some(a.key.clone()))),
            0 => out.push(Violation {
                rule: "acknowledged-exists",
                key: Some(a.key.clone()),
                id: Some(id.clone()),
                detail: "acknowledged with a 2xx but not in the database".into(),
            }),
            n => out.push(Violation {
                rule: "acknowledged-exists-once",
                key: Some(a.key.clone()),
                id: Some(id.clone()),
                detail: format!("acknowledged once but stored {n} times"),
            }),
        }
    }
    for a in acks.iter().filter(|a| a.uncertain()) {
        let ids = rb.ids_by_key.get(&a.key).map(Vec::as_slice).unwrap_or(&[]);
        match ids {
            [] => {}
            [id] => existing.push((id.clone(), Some(a.key.clone()))),
            many => out.push(Violation {
                rule: "uncertain-at-most-once",
                key: Some(a.key.clone()),
                id: Some(many.join(", ")),
                detail: format!(
                    "answered {} yet stored {} times",
                    a.status
                        .map_or("with a timeout".to_owned(), |s| s.to_string()),
                    many.len()
                ),
            }),
        }
    }
    if let Some(events) = &rb.events_by_id {
        existing.sort();
        existing.dedup_by(|a, b| a.0 == b.0);
        for (id, key) in existing {
            match events.get(&id).copied().unwrap_or(0) {
                1 => {}
                0 => out.push(Violation {
                    rule: "event-published",
                    key,
                    id: Some(id),
                    detail: match &rb.events_note {
                        Some(why) => format!("stored but no event: {why}"),
                        None => "stored but no event on the stream".into(),
                    },
                }),
                n => out.push(Violation {
                    rule: "event-published-once",
                    key,
                    id: Some(id),
                    detail: format!("{n} events on the stream for one effect"),
                }),
            }
        }
    }
    out
}

/// Most acknowledgements kept for the invariants; past this the invariants are inconclusive
/// rather than the verifier's memory growing without bound.
pub const MAX_ACKS: usize = 1_000_000;

/// Where the load engines report how each effect-creating request ended.
#[derive(Debug, Default)]
pub struct AckLog {
    acks: Mutex<Vec<Ack>>,
    overflowed: std::sync::atomic::AtomicBool,
}

impl AckLog {
    pub fn push(&self, ack: Ack) {
        let mut g = self.acks.lock().unwrap_or_else(|p| p.into_inner());
        if g.len() < MAX_ACKS {
            g.push(ack);
        } else {
            self.overflowed
                .store(true, std::sync::atomic::Ordering::Relaxed);
        }
    }

    pub fn take(&self) -> (Vec<Ack>, bool) {
        let acks = std::mem::take(&mut *self.acks.lock().unwrap_or_else(|p| p.into_inner()));
        (
            acks,
            self.overflowed.load(std::sync::atomic::Ordering::Relaxed),
        )
    }
}

/// Notes how each effect-creating request ended, for the nothing-lost invariants: its
/// correlation value, its status, and the id a 2xx answer carried. The load engines call it
/// through [`crate::load::EffectTap`].
#[derive(Debug)]
pub struct AckTap {
    pub key: KeySource,
    pub id_pointer: String,
    pub log: Arc<AckLog>,
}

impl crate::load::EffectTap for AckTap {
    fn key_of(
        &self,
        headers: &[(http::HeaderName, http::HeaderValue)],
        body: Option<&[u8]>,
    ) -> Option<String> {
        self.key.extract(
            headers
                .iter()
                .filter_map(|(n, v)| v.to_str().ok().map(|v| (n.as_str(), v))),
            body,
        )
    }

    fn record(&self, key: Option<String>, status: Option<u16>, body: Option<&[u8]>) {
        let Some(key) = key else { return };
        let id = match status {
            Some(200..=299) => body
                .and_then(|b| serde_json::from_slice::<serde_json::Value>(b).ok())
                .and_then(|v| v.pointer(&self.id_pointer).cloned())
                .map(|v| match v {
                    serde_json::Value::String(s) => s,
                    other => other.to_string(),
                }),
            _ => None,
        };
        self.log.push(Ack { key, status, id });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ack(key: &str, status: Option<u16>, id: Option<&str>) -> Ack {
        Ack {
            key: key.into(),
            status,
            id: id.map(Into::into),
        }
    }

    #[test]
    fn the_correlation_value_comes_from_a_header_or_the_body() {
        let h = KeySource::Header("Idempotency-Key".into());
        assert_eq!(
            h.extract([("content-type", "x"), ("idempotency-key", "k1")], None),
            Some("k1".into())
        );
        let j = KeySource::Json("/customer/email".into());
        let body = br#"{"customer":{"email":"a@example.com"}}"#;
        assert_eq!(j.extract([], Some(body)), Some("a@example.com".into()));
        assert_eq!(j.extract([], Some(b"not json")), None);
        assert_eq!(j.extract([], None), None);
    }

    #[test]
    fn a_clean_run_has_no_violations() {
        let acks = [
            ack("k1", Some(201), Some("a")),
            ack("k2", Some(503), None),
            ack("k3", None, None),
            ack("k4", Some(422), None),
        ];
        let rb = Readback {
            count_by_id: [("a".into(), 1)].into(),
            // The timed-out k3 did take effect, once: allowed.
            ids_by_key: [("k3".into(), vec!["c".into()])].into(),
            events_by_id: Some([("a".into(), 1), ("c".into(), 1)].into()),
            events_note: None,
        };
        assert_eq!(nothing_lost(&acks, &rb), vec![]);
    }

    #[test]
    fn each_broken_invariant_is_named_with_its_ids() {
        let acks = [
            ack("lost", Some(201), Some("a")),
            ack("twice", Some(201), Some("b")),
            ack("unsure", None, None),
            ack("silent", Some(201), Some("d")),
            ack("noisy", Some(201), Some("e")),
        ];
        let rb = Readback {
            count_by_id: [("b".into(), 2), ("d".into(), 1), ("e".into(), 1)].into(),
            ids_by_key: [("unsure".into(), vec!["c1".into(), "c2".into()])].into(),
            events_by_id: Some([("e".into(), 2)].into()),
            events_note: None,
        };
        let v = nothing_lost(&acks, &rb);
        let rules: Vec<_> = v.iter().map(|v| (v.rule, v.key.as_deref())).collect();
        assert_eq!(
            rules,
            vec![
                ("acknowledged-exists", Some("lost")),
                ("acknowledged-exists-once", Some("twice")),
                ("uncertain-at-most-once", Some("unsure")),
                ("event-published", Some("silent")),
                ("event-published-once", Some("noisy")),
            ]
        );
        assert_eq!(v[2].id.as_deref(), Some("c1, c2"));
        assert!(v[2].detail.contains("timeout"), "{}", v[2].detail);
    }
}
