//! Histogram agreement: the service's own latency histogram, as bucket deltas over the run,
//! against the verifier's client-side measurement of the same route.

use std::collections::BTreeMap;

use super::{AgreementReport, HistogramAgreement, rule};
use crate::prom::expo::Exposition;
use crate::record::Measurements;
use crate::rule::{RuleResult, Status};

/// Cumulative bucket counts (`le` → count) of `metric`'s series matching `labels`, summed.
fn buckets(
    exp: &Exposition,
    metric: &str,
    labels: &BTreeMap<String, String>,
) -> BTreeMap<u64, (f64, f64)> {
    // Keyed by the bit pattern of `le` so +Inf sorts last among positive floats.
    let mut out: BTreeMap<u64, (f64, f64)> = BTreeMap::new();
    let Some(f) = exp.get(metric) else {
        return out;
    };
    let bucket = format!("{metric}_bucket");
    for s in f.samples.iter().filter(|s| s.name == bucket) {
        if labels.iter().any(|(k, v)| s.labels.get(k) != Some(v)) {
            continue;
        }
        let Some(le) = s.labels.get("le").and_then(|v| match v.as_str() {
            "+Inf" => Some(f64::INFINITY),
            v => v.parse::<f64>().ok(),
        }) else {
            continue;
        };
        out.entry(le.to_bits()).or_insert((le, 0.0)).1 += s.value;
    }
    out
}

/// The quantile of cumulative buckets as Prometheus's `histogram_quantile` computes it (linear
/// within the bucket), with the bucket's bounds; `None` without observations.
pub fn bucket_quantile(q: f64, cumulative: &[(f64, f64)]) -> Option<(f64, f64, f64)> {
    let total = cumulative.last()?.1;
    if total <= 0.0 {
        return None;
    }
    let rank = q * total;
    let mut prev = (0.0, 0.0);
    for &(le, count) in cumulative {
        if count >= rank {
            if le.is_infinite() {
                // Prometheus answers the highest finite bound; the value lies above it.
                return Some((prev.0, prev.0, f64::INFINITY));
            }
            let within = if count > prev.1 {
                (rank - prev.1) / (count - prev.1)
            } else {
                0.0
            };
            return Some((prev.0 + (le - prev.0) * within, prev.0, le));
        }
        prev = (le, count);
    }
    None
}

/// Server-side quantile from bucket deltas over the run, against the client's.
pub fn agreement_rule(
    h: &HistogramAgreement,
    before: &Result<Exposition, String>,
    after: &Result<Exposition, String>,
    m: &Measurements,
) -> (RuleResult, Option<AgreementReport>) {
    let label = crate::trigger::promql::num(h.quantile * 100.0);
    let tol = h.tolerance.0.as_secs_f64();
    let mut r = rule(
        format!("observability.histogram.{}.p{label}", h.endpoint),
        "whole run",
        format!(
            "client p{label} within the server bucket of its p{label} ± {} ms",
            crate::trigger::promql::num(tol * 1000.0)
        ),
    )
    .endpoint(h.endpoint.clone())
    .detail(
        "the server knows only which bucket a request fell in, so its quantile is exact only to \
         the bucket; the client's latency also holds the network, connection handling and the \
         generator's queueing, which the tolerance allows for",
    );
    let (after, before) = match (after, before) {
        (Ok(a), Ok(b)) => (a, b),
        (Err(e), _) | (_, Err(e)) => {
            r.status = Status::Inconclusive;
            r.observed = "metrics unreadable".into();
            r.evidence = vec![e.clone()];
            return (r, None);
        }
    };
    let start = buckets(before, &h.metric, &h.labels);
    let end = buckets(after, &h.metric, &h.labels);
    let deltas: Vec<(f64, f64)> = end
        .values()
        .map(|(le, c)| (*le, c - start.get(&le.to_bits()).map_or(0.0, |x| x.1)))
        .collect();
    let Some(client) = m.stats(&h.endpoint).filter(|s| !s.hist.is_empty()) else {
        r.status = Status::Inconclusive;
        r.observed = format!("no client latencies for `{}`", h.endpoint);
        return (r, None);
    };
    let client_s = client.hist.value_at_quantile(h.quantile) as f64 / 1e6;
    let server_count = deltas.last().map_or(0.0, |d| d.1) as u64;
    r.evidence = deltas
        .iter()
        .map(|(le, c)| format!("{}_bucket{{le=\"{le}\"}} +{c}", h.metric))
        .collect();
    r.evidence.insert(
        0,
        format!(
            "series {:?}: {server_count} observations over the run; client {} requests",
            h.labels,
            client.counts.total()
        ),
    );
    let Some((server_s, lo, hi)) = bucket_quantile(h.quantile, &deltas) else {
        r.status = Status::Fail;
        r.observed = format!(
            "the server observed no {} requests (client sent {})",
            h.endpoint,
            client.counts.total()
        );
        return (r, None);
    };
    let ok = client_s >= lo - tol && client_s <= hi + tol;
    r.status = if ok { Status::Pass } else { Status::Fail };
    let ms = |s: f64| format!("{:.1} ms", s * 1000.0);
    r.observed = format!(
        "server p{label} {} (bucket {}–{}), client p{label} {}",
        ms(server_s),
        ms(lo),
        if hi.is_finite() {
            ms(hi)
        } else {
            "+Inf".into()
        },
        ms(client_s)
    );
    let report = AgreementReport {
        endpoint: h.endpoint.clone(),
        quantile: h.quantile,
        server_s: (server_s * 1e6).round() / 1e6,
        bucket_s: (lo, hi.min(f64::MAX)),
        client_s,
        tolerance_s: tol,
        server_count,
        client_count: client.counts.total(),
    };
    (r, Some(report))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantile_interpolates_like_prometheus() {
        // 100 observations: 50 ≤ 10 ms, 99 ≤ 50 ms, all ≤ 100 ms.
        let b = [
            (0.01, 50.0),
            (0.05, 99.0),
            (0.1, 100.0),
            (f64::INFINITY, 100.0),
        ];
        let (v, lo, hi) = bucket_quantile(0.99, &b).unwrap();
        assert!((v - 0.05).abs() < 1e-9 && lo == 0.01 && hi == 0.05, "{v}");
        let (v, _, _) = bucket_quantile(0.5, &b).unwrap();
        assert!((v - 0.01).abs() < 1e-9);
        assert_eq!(bucket_quantile(0.5, &[(f64::INFINITY, 0.0)]), None);
    }
}
