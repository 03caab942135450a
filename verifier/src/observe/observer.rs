//! Around the load: [`Observer::before`] takes the baseline scrape; [`Observer::after`] sends the
//! trace probe, scrapes again, reads the captured logs and runs every check of the section.

use std::sync::Arc;
use std::time::Duration;

use super::trace::trace_rule;
use super::{
    ObservabilityReport, ObservabilitySpec, TraceProbe, agreement_rule, log_rules, metric_rule,
};
use crate::env::containers::LogCapture;
use crate::prom::expo::{self, Exposition};
use crate::record::Measurements;
use crate::rule::RuleResult;

/// The checks of one run.
pub struct Observer {
    spec: ObservabilitySpec,
    base: String,
    http: reqwest::Client,
    before: Result<Exposition, String>,
    capture: Option<Arc<LogCapture>>,
    headers: Vec<(String, String)>,
}

const IO_TIMEOUT: Duration = Duration::from_secs(5);

impl Observer {
    /// Takes the baseline scrape. `headers` go on the trace probe (e.g. the bearer token);
    /// `capture` is the service's output when the verifier started it.
    pub async fn before(
        spec: &ObservabilitySpec,
        target: &str,
        capture: Option<Arc<LogCapture>>,
        headers: Vec<(String, String)>,
    ) -> Observer {
        let http = reqwest::Client::new();
        let base = target.trim_end_matches('/').to_owned();
        let before = expo::scrape(&http, &format!("{base}{}", spec.metrics_path), IO_TIMEOUT).await;
        Observer {
            spec: spec.clone(),
            base,
            http,
            before,
            capture,
            headers,
        }
    }

    /// Probes, scrapes again and judges every check.
    pub async fn after(self, m: &Measurements) -> (Vec<RuleResult>, ObservabilityReport) {
        let mut rules = Vec::new();
        let mut report = ObservabilityReport::default();
        let probe = match &self.spec.trace {
            Some(t) => Some(self.trace_probe(t).await),
            None => None,
        };
        // The service writes its access line after the response; give the reader a moment.
        if probe.is_some() && self.capture.is_some() {
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
        let url = format!("{}{}", self.base, self.spec.metrics_path);
        let after = expo::scrape(&self.http, &url, IO_TIMEOUT).await;
        let logs = self.capture.as_ref().map(|c| c.snapshot());
        if let Some(c) = &logs {
            report.log_lines = (c.stdout.len() + c.stderr.len()) as u64;
            report.log_lines_dropped = c.dropped;
        }
        for (name, req) in &self.spec.metrics {
            rules.push(metric_rule(name, req, &after, &url));
        }
        if let Some(h) = &self.spec.histogram {
            let (rule, agreement) = agreement_rule(h, &self.before, &after, m);
            rules.push(rule);
            report.histogram = agreement;
        }
        if let Some((sent, header)) = probe {
            let lines = logs.as_ref().map(|c| c.stdout.as_slice());
            let (rule, tr) = trace_rule(&self.spec, &sent, header, lines);
            rules.push(rule);
            report.trace = Some(tr);
        }
        if let Some(l) = &self.spec.logs {
            rules.extend(log_rules(l, logs.as_ref()));
        }
        (rules, report)
    }

    /// Sends one GET with a fresh `traceparent`; returns the trace id sent and the response
    /// header (or why there is none).
    async fn trace_probe(&self, t: &TraceProbe) -> (String, Result<Option<String>, String>) {
        let trace_id = format!("{:032x}", uuid::Uuid::new_v4().as_u128());
        let span_id = format!("{:016x}", (uuid::Uuid::new_v4().as_u128() as u64) | 1);
        let mut req = self
            .http
            .get(format!("{}{}", self.base, t.path))
            .timeout(IO_TIMEOUT)
            .header("traceparent", format!("00-{trace_id}-{span_id}-01"));
        for (k, v) in &self.headers {
            req = req.header(k, v);
        }
        let header = match req.send().await {
            Ok(resp) => Ok(resp
                .headers()
                .get(&t.header)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)),
            Err(e) => Err(format!("GET {}: {e}", t.path)),
        };
        (trace_id, header)
    }
}

/// The scenario's default headers (e.g. the bearer token) for the trace probe; a header whose
/// environment variable is unset is left out (the load plan has already refused such a run).
pub fn probe_headers(
    headers: &std::collections::BTreeMap<String, crate::scenario::Template>,
    getenv: &dyn Fn(&str) -> Option<String>,
) -> Vec<(String, String)> {
    let seq = std::sync::atomic::AtomicU64::new(0);
    let vars = std::collections::HashMap::new();
    let ctx = crate::scenario::TemplateContext {
        seq: &seq,
        vars: &vars,
    };
    headers
        .iter()
        .filter_map(|(k, t)| Some((k.clone(), t.bind_env(getenv).ok()?.render(&ctx))))
        .collect()
}
