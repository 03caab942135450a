//! Required metric families: present on `/metrics`, of the declared type, every series with
//! the declared labels.

use std::collections::BTreeSet;

use super::{MetricRequirement, rule};
use crate::prom::expo::{self, Exposition};
use crate::rule::{RuleResult, Status};

/// One required family: present, of the declared type, every series with the labels.
pub fn metric_rule(
    name: &str,
    req: &MetricRequirement,
    scraped: &Result<Exposition, String>,
    url: &str,
) -> RuleResult {
    let mut r = rule(
        format!("observability.metric.{name}"),
        "after the run",
        format!(
            "{} with labels [{}]",
            req.kind.as_str(),
            req.labels.join(", ")
        ),
    );
    let exp = match scraped {
        Ok(e) => e,
        Err(e) => {
            r.status = Status::Fail;
            r.observed = "metrics unreadable".into();
            r.detail = e.clone();
            return r;
        }
    };
    let Some(f) = exp.get(name) else {
        r.status = Status::Fail;
        r.observed = "not exported".into();
        r.detail = format!("{url} has no family `{name}`");
        return r;
    };
    if f.kind != req.kind.as_str() {
        r.status = Status::Fail;
        r.observed = format!("type {}", f.kind);
        r.detail = format!(
            "`{name}` is a {}, the checks need a {}",
            f.kind,
            req.kind.as_str()
        );
        r.evidence = f.samples.iter().take(3).map(sample_line).collect();
        return r;
    }
    if f.samples.is_empty() {
        r.status = Status::Fail;
        r.observed = "no series".into();
        r.detail = format!("`{name}` is declared but has no series");
        return r;
    }
    let missing: Vec<&expo::Sample> = f
        .samples
        .iter()
        .filter(|s| req.labels.iter().any(|l| !s.labels.contains_key(l)))
        .collect();
    if missing.is_empty() {
        r.observed = format!("{} with {} series", f.kind, f.samples.len());
    } else {
        r.status = Status::Fail;
        r.observed = format!(
            "{} of {} series lack a label",
            missing.len(),
            f.samples.len()
        );
        let lacking: BTreeSet<&str> = req
            .labels
            .iter()
            .filter(|l| missing.iter().any(|s| !s.labels.contains_key(*l)))
            .map(String::as_str)
            .collect();
        r.detail = format!(
            "missing label(s): {}",
            lacking.into_iter().collect::<Vec<_>>().join(", ")
        );
        r.evidence = missing.iter().take(3).map(|s| sample_line(s)).collect();
    }
    r
}

fn sample_line(s: &expo::Sample) -> String {
    let labels: Vec<String> = s.labels.iter().map(|(k, v)| format!("{k}={v:?}")).collect();
    format!("{}{{{}}} {}", s.name, labels.join(","), s.value)
}
