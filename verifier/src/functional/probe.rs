//! Effect probes for the functional checks: count what a request did by asking the database,
//! the API, or the downstream's call log, never its answer. Each read has a deadline.

use std::collections::BTreeMap;
use std::time::Duration;

use schemars::JsonSchema;
use serde::Deserialize;

use crate::env::spec::expand;

/// Deadline of one probe read.
const PROBE_TIMEOUT: Duration = Duration::from_secs(5);

/// Effects counted in PostgreSQL.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DatabaseCount {
    /// Connection URL; may use `${postgres.url}` (the direct, unproxied address).
    pub url: String,
    /// SQL taking the correlation value as `$1` (text) and returning one row per effect, its id
    /// (text) first, e.g. `SELECT id::text FROM orders WHERE customer_email = $1`.
    pub query: String,
}

/// Effects counted through the API.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HttpCount {
    /// URL or path (relative to the target) answering the effects for `${key}`, the correlation
    /// value; sent with `defaults.headers`.
    pub url: String,
    /// JSON Pointer to the array of effects in the answer, e.g. `/items`.
    pub items: String,
    /// JSON Pointer to an effect's id inside one item, e.g. `/id`.
    #[serde(default = "default_id")]
    pub id: String,
}

fn default_id() -> String {
    "/id".into()
}

/// A downstream's call log, read over HTTP (the payments stand-in's `GET /v1/calls`).
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CallLog {
    /// URL of the log; may use `${payments.control}`.
    pub url: String,
    /// JSON Pointer to the array of calls.
    #[serde(default = "default_calls")]
    pub calls: String,
    /// JSON Pointer, in one call, to the effect id it is for, e.g. `/order_id`.
    pub correlate: String,
    /// JSON Pointer, in one call, to its HTTP status: only a 2xx call can be effective.
    #[serde(default = "default_status")]
    pub status: String,
    /// Further conditions for a call to be effective: pointer → value, e.g. `/replayed: false`.
    #[serde(default)]
    pub effective: BTreeMap<String, serde_json::Value>,
    /// JSON Pointer, in one call, to its RFC 3339 time (for backoff spacing).
    #[serde(default = "default_at")]
    pub at: String,
}

pub(super) fn default_calls() -> String {
    "/calls".into()
}
fn default_status() -> String {
    "/status".into()
}
pub(super) fn default_at() -> String {
    "/at".into()
}

impl CallLog {
    /// True when a call counts as an effective one.
    pub fn is_effective(&self, call: &serde_json::Value) -> bool {
        let ok = call
            .pointer(&self.status)
            .and_then(serde_json::Value::as_u64)
            .is_some_and(|s| (200..300).contains(&s));
        ok && self
            .effective
            .iter()
            .all(|(p, want)| call.pointer(p) == Some(want))
    }

    pub fn correlation(&self, call: &serde_json::Value) -> Option<String> {
        Some(match call.pointer(&self.correlate)? {
            serde_json::Value::String(s) => s.clone(),
            other => other.to_string(),
        })
    }
}

/// The probes of one operation, with their URLs resolved against the environment.
pub struct Probes {
    database: Option<(String, String)>,
    http: Option<(HttpCount, String)>,
    downstream: Option<(CallLog, String)>,
    events: Option<(crate::effects::EventProbe, String)>,
    headers: Vec<(String, String)>,
    client: reqwest::Client,
}

impl Probes {
    /// Resolves placeholders; an unknown one is named with the field that holds it.
    pub fn new(
        spec: &super::EffectSpec,
        target: &str,
        endpoints: &BTreeMap<String, String>,
        headers: Vec<(String, String)>,
    ) -> Result<Self, (String, String)> {
        let database = match &spec.database {
            Some(d) => Some((
                expand(&d.url, endpoints).map_err(|m| ("effect.database.url".to_owned(), m))?,
                d.query.clone(),
            )),
            None => None,
        };
        let http = match &spec.http {
            Some(h) => {
                let url = if h.url.starts_with('/') {
                    format!("{target}{}", h.url)
                } else {
                    h.url.clone()
                };
                // Environment placeholders now; `${key}` stays for each read.
                let mut vars = endpoints.clone();
                vars.insert("key".into(), "${key}".into());
                let url = expand(&url, &vars).map_err(|m| ("effect.http.url".to_owned(), m))?;
                Some((h.clone(), url))
            }
            None => None,
        };
        let downstream = match &spec.downstream {
            Some(c) => Some((
                c.clone(),
                expand(&c.url, endpoints).map_err(|m| ("effect.downstream.url".to_owned(), m))?,
            )),
            None => None,
        };
        let events = match &spec.events {
            Some(e) => Some((
                e.clone(),
                expand(&e.url, endpoints).map_err(|m| ("effect.events.url".to_owned(), m))?,
            )),
            None => None,
        };
        Ok(Self {
            database,
            http,
            downstream,
            events,
            headers,
            client: super::client::http(PROBE_TIMEOUT),
        })
    }

    /// Asks every probe once, for a value no request used: a probe that does not answer, or
    /// answers in a shape the spec does not describe, is named.
    pub async fn check(&self) -> Result<(), (String, String)> {
        let nobody = format!("verifier-probe-{}", uuid::Uuid::new_v4());
        if let Some((url, _)) = &self.database {
            self.read_database(&nobody).await.map_err(|m| {
                (
                    "effect.database".to_owned(),
                    format!("the effect probe at {} did not answer: {m}", mask(url)),
                )
            })?;
        }
        if let Some((_, url)) = &self.http {
            self.read_http(&nobody).await.map_err(|m| {
                (
                    "effect.http".to_owned(),
                    format!("the effect probe at {url} did not answer: {m}"),
                )
            })?;
        }
        if let Some((_, url)) = &self.downstream {
            self.calls().await.map_err(|m| {
                (
                    "effect.downstream".to_owned(),
                    format!("the call log at {url} did not answer: {m}"),
                )
            })?;
        }
        if let Some((_, url)) = &self.events {
            async_nats::ConnectOptions::new()
                .connection_timeout(PROBE_TIMEOUT)
                .connect(url.as_str())
                .await
                .map_err(|e| {
                    (
                        "effect.events".to_owned(),
                        format!("the event stream at {url} did not answer: {e}"),
                    )
                })?;
        }
        Ok(())
    }

    pub fn has_events(&self) -> bool {
        self.events.is_some()
    }

    /// Events per effect id on the configured subject.
    pub async fn events(&self) -> Result<BTreeMap<String, u64>, String> {
        let Some((spec, url)) = &self.events else {
            return Ok(BTreeMap::new());
        };
        tokio::time::timeout(
            PROBE_TIMEOUT * 2,
            crate::effects::probe::read_events(spec, url),
        )
        .await
        .map_err(|_| format!("the stream was not read within {:?}", PROBE_TIMEOUT * 2))?
        .map_err(|e| e.to_string())
    }

    /// Effect ids for one correlation value, from the database if configured, else the API.
    pub async fn effects(&self, key: &str) -> Result<Vec<String>, String> {
        if self.database.is_some() {
            self.read_database(key).await
        } else {
            self.read_http(key).await
        }
    }

    pub fn call_log(&self) -> Option<&CallLog> {
        self.downstream.as_ref().map(|(c, _)| c)
    }

    async fn read_database(&self, key: &str) -> Result<Vec<String>, String> {
        let Some((url, query)) = &self.database else {
            return Ok(Vec::new());
        };
        let work = async {
            let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
                .await
                .map_err(|e| e.to_string())?;
            let conn = tokio::spawn(conn);
            let rows = client
                .query(query.as_str(), &[&key])
                .await
                .map_err(|e| e.to_string());
            drop(client);
            conn.abort();
            rows?
                .iter()
                .map(|r| r.try_get::<_, String>(0).map_err(|e| e.to_string()))
                .collect()
        };
        tokio::time::timeout(PROBE_TIMEOUT, work)
            .await
            .map_err(|_| format!("no answer within {PROBE_TIMEOUT:?}"))?
    }

    async fn read_http(&self, key: &str) -> Result<Vec<String>, String> {
        let Some((spec, url)) = &self.http else {
            return Ok(Vec::new());
        };
        let vars = BTreeMap::from([("key".to_owned(), encode(key))]);
        let url = expand(url, &vars)?;
        let mut rb = self.client.get(&url);
        for (k, v) in &self.headers {
            rb = rb.header(k, v);
        }
        let resp = rb.send().await.map_err(|e| e.to_string())?;
        if !resp.status().is_success() {
            return Err(format!("GET {url} answered {}", resp.status()));
        }
        let v: serde_json::Value = resp.json().await.map_err(|e| e.to_string())?;
        let items = v
            .pointer(&spec.items)
            .and_then(|i| i.as_array())
            .ok_or_else(|| format!("the answer has no array at `{}`", spec.items))?;
        Ok(items
            .iter()
            .map(|i| match i.pointer(&spec.id) {
                Some(serde_json::Value::String(s)) => s.clone(),
                Some(other) => other.to_string(),
                None => "<no id>".into(),
            })
            .collect())
    }

    /// The downstream's calls, oldest first.
    pub async fn calls(&self) -> Result<Vec<serde_json::Value>, String> {
        let Some((spec, url)) = &self.downstream else {
            return Ok(Vec::new());
        };
        read_calls(&self.client, url, &spec.calls).await
    }
}

/// Reads a call log: the array at `pointer` of the JSON at `url`.
pub async fn read_calls(
    client: &reqwest::Client,
    url: &str,
    pointer: &str,
) -> Result<Vec<serde_json::Value>, String> {
    let resp = client
        .get(url)
        .timeout(PROBE_TIMEOUT)
        .send()
        .await
        .map_err(|e| e.to_string())?;
    if !resp.status().is_success() {
        return Err(format!("GET {url} answered {}", resp.status()));
    }
    let v: serde_json::Value = resp.json().await.map_err(|e| e.to_string())?;
    v.pointer(pointer)
        .and_then(|c| c.as_array())
        .cloned()
        .ok_or_else(|| format!("the answer has no array at `{pointer}`"))
}

/// Percent-encodes what cannot stand in a query value as is.
fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~@".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A database URL without its password, for messages.
fn mask(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let creds = &url[s + 3..at];
            match creds.split_once(':') {
                Some((user, _)) => format!("{}{user}:*****{}", &url[..s + 3], &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_effective_call_is_a_2xx_meeting_every_condition() {
        let log = CallLog {
            url: String::new(),
            calls: default_calls(),
            correlate: "/order_id".into(),
            status: default_status(),
            effective: BTreeMap::from([("/replayed".into(), serde_json::json!(false))]),
            at: default_at(),
        };
        let call = |status: u16, replayed: bool| serde_json::json!({"order_id": "o1", "status": status, "replayed": replayed});
        assert!(log.is_effective(&call(201, false)));
        assert!(!log.is_effective(&call(201, true)));
        assert!(!log.is_effective(&call(503, false)));
        assert_eq!(log.correlation(&call(201, false)).as_deref(), Some("o1"));
    }

    #[test]
    fn secrets_and_odd_characters_stay_out_of_urls_and_messages() {
        assert_eq!(
            mask("postgres://kit:secret@127.0.0.1:5/kit"),
            "postgres://kit:*****@127.0.0.1:5/kit"
        );
        assert_eq!(encode("a+b c@x.io"), "a%2Bb%20c@x.io");
    }
}
