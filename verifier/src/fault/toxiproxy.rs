//! A typed async client for Toxiproxy's HTTP API (2.x). The public Rust clients are stale
//! (reqwest 0.11, no `reset_peer`), so the verifier carries its own. Every call has a deadline.
//!
//! API facts this relies on (toxiproxy 2.12 `api.go`): errors come back as
//! `{"error": "...", "status": N}`; `POST /proxies` answers 201 or 409; `PATCH /proxies/{p}` with
//! `enabled: false` takes a proxy down (refuses new and drops existing connections); `POST /reset`
//! re-enables every proxy and removes every toxic. Toxiproxy rejects `User-Agent: Mozilla/*`.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde::{Deserialize, Serialize, de::DeserializeOwned};

/// Default deadline for one API call: the control plane is local and answers in milliseconds.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
pub enum ToxiproxyError {
    #[error("toxiproxy at {url} did not answer: {source}")]
    Unreachable {
        url: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("toxiproxy {method} {path} answered {status}: {message}")]
    Api {
        method: Method,
        path: String,
        status: StatusCode,
        message: String,
    },
    #[error(
        "toxiproxy {method} {path} answered with a body that is not what the API documents: {source}"
    )]
    Decode {
        method: Method,
        path: String,
        #[source]
        source: reqwest::Error,
    },
}

impl ToxiproxyError {
    /// The HTTP status of an API error, if the server answered at all.
    pub fn status(&self) -> Option<StatusCode> {
        match self {
            Self::Api { status, .. } => Some(*status),
            _ => None,
        }
    }
}

/// Which direction of a proxied connection a toxic acts on. Toxiproxy's default is downstream
/// (server → client).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default, schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Stream {
    Upstream,
    #[default]
    Downstream,
}

/// A toxic's kind with its attributes, in Toxiproxy's own units.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", content = "attributes", rename_all = "snake_case")]
pub enum ToxicKind {
    /// Delay every chunk of data by `latency` ± `jitter` milliseconds.
    Latency { latency: u64, jitter: u64 },
    /// Limit the rate to `rate` KB/s.
    Bandwidth { rate: u64 },
    /// Delay closing the connection by `delay` ms.
    SlowClose { delay: u64 },
    /// Stop all data and close the connection after `timeout` ms (0: hold it open until removed).
    Timeout { timeout: u64 },
    /// Reset the connection (TCP RST) after `timeout` ms.
    ResetPeer { timeout: u64 },
    /// Slice data into pieces of `average_size` ± `size_variation` bytes, `delay` µs apart.
    Slicer {
        average_size: u64,
        size_variation: u64,
        delay: u64,
    },
    /// Close the connection after `bytes` bytes.
    LimitData { bytes: u64 },
}

/// A toxic as sent to and returned by the API.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Toxic {
    pub name: String,
    #[serde(default)]
    pub stream: Stream,
    /// Probability, drawn once per connection, that the toxic applies to it.
    pub toxicity: f32,
    #[serde(flatten)]
    pub kind: ToxicKind,
}

/// A proxy as returned by the API.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Proxy {
    pub name: String,
    pub listen: String,
    pub upstream: String,
    pub enabled: bool,
    #[serde(default)]
    pub toxics: Vec<Toxic>,
}

#[derive(Serialize)]
struct NewProxy<'a> {
    name: &'a str,
    listen: &'a str,
    upstream: &'a str,
    enabled: bool,
}

#[derive(Deserialize)]
struct ApiErrorBody {
    error: String,
}

#[derive(Deserialize)]
struct VersionBody {
    version: String,
}

/// Client for one Toxiproxy server.
#[derive(Debug, Clone)]
pub struct Client {
    base: String,
    http: reqwest::Client,
}

impl Client {
    /// `base` is the API URL, e.g. `http://127.0.0.1:8474`.
    pub fn new(base: impl Into<String>) -> Result<Self, reqwest::Error> {
        Self::with_timeout(base, DEFAULT_TIMEOUT)
    }

    pub fn with_timeout(
        base: impl Into<String>,
        timeout: Duration,
    ) -> Result<Self, reqwest::Error> {
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout)
            .user_agent(concat!("deliverykit-verifier/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Self {
            base: base.into().trim_end_matches('/').to_owned(),
            http,
        })
    }

    pub fn base_url(&self) -> &str {
        &self.base
    }

    async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<&(impl Serialize + ?Sized)>,
    ) -> Result<reqwest::Response, ToxiproxyError> {
        let url = format!("{}{}", self.base, path);
        let mut req = self.http.request(method.clone(), &url);
        if let Some(body) = body {
            req = req.json(body);
        }
        let resp = req
            .send()
            .await
            .map_err(|source| ToxiproxyError::Unreachable {
                url: self.base.clone(),
                source,
            })?;
        let status = resp.status();
        if status.is_success() {
            return Ok(resp);
        }
        let text = resp.text().await.unwrap_or_default();
        let message = serde_json::from_str::<ApiErrorBody>(&text)
            .map(|b| b.error)
            .unwrap_or(text);
        Err(ToxiproxyError::Api {
            method,
            path: path.to_owned(),
            status,
            message,
        })
    }

    async fn json<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<&(impl Serialize + ?Sized)>,
    ) -> Result<T, ToxiproxyError> {
        self.send(method.clone(), path, body)
            .await?
            .json()
            .await
            .map_err(|source| ToxiproxyError::Decode {
                method,
                path: path.to_owned(),
                source,
            })
    }

    /// The server's version, e.g. "2.12.0"; doubles as a readiness probe.
    pub async fn version(&self) -> Result<String, ToxiproxyError> {
        let body: VersionBody = self.json(Method::GET, "/version", None::<&()>).await?;
        Ok(body.version)
    }

    pub async fn proxies(&self) -> Result<Vec<Proxy>, ToxiproxyError> {
        let map: std::collections::BTreeMap<String, Proxy> =
            self.json(Method::GET, "/proxies", None::<&()>).await?;
        Ok(map.into_values().collect())
    }

    pub async fn proxy(&self, name: &str) -> Result<Proxy, ToxiproxyError> {
        self.json(Method::GET, &format!("/proxies/{name}"), None::<&()>)
            .await
    }

    /// Creates an enabled proxy listening on `listen` (e.g. `0.0.0.0:8666`) towards `upstream`.
    /// Fails with status 409 when a proxy of that name exists.
    pub async fn create_proxy(
        &self,
        name: &str,
        listen: &str,
        upstream: &str,
    ) -> Result<Proxy, ToxiproxyError> {
        let body = NewProxy {
            name,
            listen,
            upstream,
            enabled: true,
        };
        self.json(Method::POST, "/proxies", Some(&body)).await
    }

    pub async fn delete_proxy(&self, name: &str) -> Result<(), ToxiproxyError> {
        self.send(Method::DELETE, &format!("/proxies/{name}"), None::<&()>)
            .await
            .map(drop)
    }

    /// Enables or disables a proxy; disabled is Toxiproxy's "down": new connections are refused
    /// and existing ones dropped.
    pub async fn set_enabled(&self, name: &str, enabled: bool) -> Result<Proxy, ToxiproxyError> {
        let body = serde_json::json!({ "enabled": enabled });
        self.json(Method::PATCH, &format!("/proxies/{name}"), Some(&body))
            .await
    }

    pub async fn add_toxic(&self, proxy: &str, toxic: &Toxic) -> Result<Toxic, ToxiproxyError> {
        self.json(
            Method::POST,
            &format!("/proxies/{proxy}/toxics"),
            Some(toxic),
        )
        .await
    }

    pub async fn remove_toxic(&self, proxy: &str, toxic: &str) -> Result<(), ToxiproxyError> {
        self.send(
            Method::DELETE,
            &format!("/proxies/{proxy}/toxics/{toxic}"),
            None::<&()>,
        )
        .await
        .map(drop)
    }

    pub async fn toxics(&self, proxy: &str) -> Result<Vec<Toxic>, ToxiproxyError> {
        self.json(
            Method::GET,
            &format!("/proxies/{proxy}/toxics"),
            None::<&()>,
        )
        .await
    }

    /// Re-enables every proxy and removes every toxic: the clean slate between scenarios.
    pub async fn reset(&self) -> Result<(), ToxiproxyError> {
        self.send(Method::POST, "/reset", None::<&()>)
            .await
            .map(drop)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn toxic_serializes_in_the_api_shape() {
        let t = Toxic {
            name: "pg_latency".into(),
            stream: Stream::Downstream,
            toxicity: 1.0,
            kind: ToxicKind::Latency {
                latency: 200,
                jitter: 0,
            },
        };
        let v = serde_json::to_value(&t).unwrap();
        assert_eq!(
            v,
            serde_json::json!({
                "name": "pg_latency", "stream": "downstream", "toxicity": 1.0,
                "type": "latency", "attributes": {"latency": 200, "jitter": 0}
            })
        );
        let back: Toxic = serde_json::from_value(v).unwrap();
        assert_eq!(back, t);
    }

    #[test]
    fn reset_peer_uses_the_api_type_name() {
        let v = serde_json::to_value(ToxicKind::ResetPeer { timeout: 0 }).unwrap();
        assert_eq!(v["type"], "reset_peer");
    }
}
