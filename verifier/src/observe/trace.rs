//! Trace context: a `traceparent` the verifier sends must be continued, in the response header
//! or in the service's log lines.

use super::{ObservabilitySpec, TraceReport, rule};
use crate::rule::{RuleResult, Status};

fn trace_id_of(traceparent: &str) -> Option<&str> {
    let mut parts = traceparent.trim().split('-');
    let _version = parts.next()?;
    let id = parts.next()?;
    (id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit())).then_some(id)
}

/// The sent trace id must come back in the response header or in the logs.
pub fn trace_rule(
    spec: &ObservabilitySpec,
    sent: &str,
    header: Result<Option<String>, String>,
    logs: Option<&[String]>,
) -> (RuleResult, TraceReport) {
    let t = spec.trace.as_ref().expect("trace probe configured");
    let mut r = rule(
        "observability.trace",
        format!("GET {}", t.path),
        format!(
            "trace {sent} continued (`{}` header or log lines)",
            t.header
        ),
    );
    let in_logs = logs.map(|ls| {
        ls.iter()
            .filter(|l| {
                serde_json::from_str::<serde_json::Value>(l)
                    .ok()
                    .and_then(|v| {
                        v.get("trace_id")
                            .and_then(|x| x.as_str())
                            .map(|x| x == sent)
                    })
                    .unwrap_or(false)
            })
            .count() as u64
    });
    let report = TraceReport {
        sent_trace_id: sent.to_owned(),
        response_header: header.as_ref().ok().cloned().flatten(),
        log_lines_with_trace: in_logs.unwrap_or(0),
    };
    r.evidence.push(format!(
        "curl -H 'traceparent: 00-{sent}-<span>-01' <target>{}",
        t.path
    ));
    let header = match header {
        Ok(h) => h,
        Err(e) => {
            r.status = Status::Inconclusive;
            r.observed = "probe failed".into();
            r.detail = e;
            return (r, report);
        }
    };
    let header_id = header.as_deref().and_then(trace_id_of);
    r.evidence.push(format!(
        "{}: {}",
        t.header,
        header.as_deref().unwrap_or("(absent)")
    ));
    match (header_id, in_logs) {
        (Some(id), _) if id != sent => {
            r.status = Status::Fail;
            r.observed = format!("a new trace {id} was started instead");
        }
        (Some(_), logs) => {
            r.observed = format!(
                "continued in the `{}` header{}",
                t.header,
                logs.map(|n| format!(", {n} log line(s)"))
                    .unwrap_or_default()
            );
        }
        (None, Some(n)) if n > 0 => {
            r.observed = format!("continued in {n} log line(s)");
        }
        (None, _) => {
            r.status = Status::Fail;
            r.observed = "not continued".into();
            r.detail = format!(
                "no `{}` header with the trace id{}",
                t.header,
                if logs.is_some() {
                    ", and no log line carries it"
                } else {
                    " (the service's logs are not visible)"
                }
            );
        }
    }
    (r, report)
}
