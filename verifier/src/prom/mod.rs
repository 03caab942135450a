//! A PromQL client for Prometheus's HTTP API (`/api/v1/query`, `/api/v1/series`): the second
//! source of rollback-trigger measurements, beside the verifier's own. Every call has a deadline;
//! errors say whether the expression was wrong (a definition error, exit 2 before a run) or
//! Prometheus could not be asked (the affected triggers become inconclusive, never passed).

pub mod expo;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Deserialize;

pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
pub enum PromError {
    /// Prometheus refused the expression (`bad_data`): the definition is wrong.
    #[error("PromQL `{expr}` does not parse or evaluate: {message}")]
    BadQuery { expr: String, message: String },
    /// No answer, or an answer that is not Prometheus's.
    #[error("Prometheus at {url} could not be asked: {message}")]
    Unavailable { url: String, message: String },
}

impl PromError {
    pub fn is_unavailable(&self) -> bool {
        matches!(self, Self::Unavailable { .. })
    }
}

/// One sample of an instant vector (or the scalar, with no labels).
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub labels: std::collections::BTreeMap<String, String>,
    pub value: f64,
}

#[derive(Deserialize)]
struct Envelope<T> {
    status: String,
    data: Option<T>,
    #[serde(rename = "errorType")]
    error_type: Option<String>,
    error: Option<String>,
}

#[derive(Deserialize)]
#[serde(tag = "resultType", content = "result", rename_all = "lowercase")]
enum QueryData {
    Vector(Vec<VectorItem>),
    Scalar((f64, String)),
    Matrix(serde::de::IgnoredAny),
    String(serde::de::IgnoredAny),
}

#[derive(Deserialize)]
struct VectorItem {
    metric: std::collections::BTreeMap<String, String>,
    value: (f64, String),
}

#[derive(Debug, Clone)]
pub struct Client {
    base: String,
    http: reqwest::Client,
}

fn parse_value(s: &str) -> f64 {
    // Prometheus writes NaN and ±Inf as strings.
    match s {
        "NaN" => f64::NAN,
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        _ => s.parse().unwrap_or(f64::NAN),
    }
}

impl Client {
    pub fn new(base: impl Into<String>, timeout: Duration) -> Result<Self, reqwest::Error> {
        Ok(Self {
            base: base.into().trim_end_matches('/').to_owned(),
            http: reqwest::Client::builder()
                .timeout(timeout)
                .connect_timeout(timeout)
                .build()?,
        })
    }

    pub fn base_url(&self) -> &str {
        &self.base
    }

    fn unavailable(&self, message: impl ToString) -> PromError {
        PromError::Unavailable {
            url: self.base.clone(),
            message: message.to_string(),
        }
    }

    async fn get<T: serde::de::DeserializeOwned>(
        &self,
        path: &str,
        params: &[(&str, String)],
        expr: &str,
    ) -> Result<T, PromError> {
        let resp = self
            .http
            .get(format!("{}{path}", self.base))
            .query(params)
            .send()
            .await
            .map_err(|e| self.unavailable(e))?;
        let status = resp.status();
        let env: Envelope<T> = resp.json().await.map_err(|e| {
            self.unavailable(format!("answer {status} is not Prometheus's API: {e}"))
        })?;
        if env.status == "success" {
            return env
                .data
                .ok_or_else(|| self.unavailable("a success without data"));
        }
        let message = env.error.unwrap_or_default();
        match env.error_type.as_deref() {
            Some("bad_data") => Err(PromError::BadQuery {
                expr: expr.to_owned(),
                message,
            }),
            other => Err(self.unavailable(format!("{}: {message}", other.unwrap_or("error")))),
        }
    }

    /// Evaluates `expr` at `at` (now if `None`). A scalar comes back as one sample with no labels.
    pub async fn query(
        &self,
        expr: &str,
        at: Option<SystemTime>,
    ) -> Result<Vec<Sample>, PromError> {
        let mut params = vec![("query", expr.to_owned())];
        if let Some(t) = at {
            let secs = t
                .duration_since(UNIX_EPOCH)
                .unwrap_or_default()
                .as_secs_f64();
            params.push(("time", format!("{secs:.3}")));
        }
        let data: QueryData = self.get("/api/v1/query", &params, expr).await?;
        match data {
            QueryData::Vector(items) => Ok(items
                .into_iter()
                .map(|i| Sample {
                    labels: i.metric,
                    value: parse_value(&i.value.1),
                })
                .collect()),
            QueryData::Scalar((_, v)) => Ok(vec![Sample {
                labels: Default::default(),
                value: parse_value(&v),
            }]),
            QueryData::Matrix(_) | QueryData::String(_) => Err(PromError::BadQuery {
                expr: expr.to_owned(),
                message: "a trigger needs an instant vector or a scalar, not a range or a string"
                    .into(),
            }),
        }
    }

    /// Whether any series matches `selector` (e.g. a metric name) in the last `lookback`.
    pub async fn series_exist(
        &self,
        selector: &str,
        lookback: Duration,
    ) -> Result<bool, PromError> {
        let now = SystemTime::now();
        let start = now - lookback;
        let ts = |t: SystemTime| {
            format!(
                "{:.3}",
                t.duration_since(UNIX_EPOCH)
                    .unwrap_or_default()
                    .as_secs_f64()
            )
        };
        let data: Vec<serde_json::Value> = self
            .get(
                "/api/v1/series",
                &[
                    ("match[]", selector.to_owned()),
                    ("start", ts(start)),
                    ("end", ts(now)),
                ],
                selector,
            )
            .await?;
        Ok(!data.is_empty())
    }
}
