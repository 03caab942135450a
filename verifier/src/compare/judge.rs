//! The regression judge: per endpoint and statistic, the candidate's change from the baseline
//! with a confidence interval from a block bootstrap over time windows, and a decision.
//!
//! Paired (one run, both sides interleaved): window `i` of the baseline and window `i` of the
//! candidate saw the same instants of the same machine, so they are resampled together — the
//! drift and interference both sides shared cancels in the ratio. Unpaired (two runs made at
//! different times): each side's windows are resampled on their own; the interval then also
//! carries whatever changed on the machine between the runs. Why a bootstrap and not a rank test:
//! `docs/adr/0005-regression-judge.md`.

use super::assign::SplitMix;
use super::spec::{Change, Statistic};
use crate::record::series::{Series, Window};

/// How the two sides' windows relate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pairing {
    /// One run, both sides interleaved: window `i` of one side pairs with window `i` of the other.
    Paired,
    /// Two runs: windows do not pair.
    Unpaired,
}

/// The judge's settings.
#[derive(Debug, Clone, Copy)]
pub struct Settings {
    pub confidence: f64,
    pub resamples: u32,
    pub seed: u64,
    pub pairing: Pairing,
}

/// Fewest windows with answers, per side, before anything is decided.
pub const MIN_WINDOWS: usize = 5;
/// Fewest answers per side before anything is decided.
pub const MIN_REQUESTS: u64 = 50;

/// What the judge decided about one statistic.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Decision {
    /// The whole interval lies beyond the allowed change.
    Regression,
    /// The whole interval lies within the allowed change.
    NoRegression,
    /// The whole interval lies on the better side of no change at all.
    Improvement,
    /// The interval straddles the allowed change, or there is too little data.
    Inconclusive,
}

/// One statistic of one endpoint, judged.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, schemars::JsonSchema)]
pub struct Judgement {
    pub endpoint: String,
    pub statistic: Statistic,
    /// The statistic on each side over the whole run: latency in µs, error rate as a fraction,
    /// throughput in answers per second.
    #[serde(with = "nan_as_null")]
    #[schemars(with = "Option<f64>")]
    pub baseline: f64,
    #[serde(with = "nan_as_null")]
    #[schemars(with = "Option<f64>")]
    pub candidate: f64,
    /// The change, candidate against baseline: a fraction of the baseline (0.05 = +5 %), or for
    /// `error_rate` a difference of rates (0.005 = +0.5 percentage points).
    #[serde(with = "nan_as_null")]
    #[schemars(with = "Option<f64>")]
    pub change: f64,
    /// The change's confidence interval (`null` when undecided for lack of data).
    #[serde(with = "nan_as_null")]
    #[schemars(with = "Option<f64>")]
    pub low: f64,
    #[serde(with = "nan_as_null")]
    #[schemars(with = "Option<f64>")]
    pub high: f64,
    /// The allowed change, as written (`+5%`, `+0.5pp`).
    pub allowed: String,
    pub decision: Decision,
    /// Inconclusive: roughly how many times this run's load would settle it (`null`: more load
    /// will not, the change sits at the limit).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "opt_nan_as_null"
    )]
    #[schemars(with = "Option<f64>")]
    pub more_load: Option<f64>,
    /// Why, when the decision is not from the interval alone (too little data).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// Windows and answers behind each side.
    pub windows: usize,
    pub baseline_requests: u64,
    pub candidate_requests: u64,
}

/// Undecided numbers are NaN in memory and `null` in JSON.
mod nan_as_null {
    use serde::{Deserialize, Deserializer, Serializer};
    pub fn serialize<S: Serializer>(v: &f64, s: S) -> Result<S::Ok, S::Error> {
        if v.is_finite() {
            s.serialize_f64(*v)
        } else {
            s.serialize_none()
        }
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
        Ok(Option::<f64>::deserialize(d)?.unwrap_or(f64::NAN))
    }
}

mod opt_nan_as_null {
    use serde::{Deserialize, Deserializer, Serializer};
    pub fn serialize<S: Serializer>(v: &Option<f64>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            Some(x) if x.is_finite() => s.serialize_f64(*x),
            _ => s.serialize_none(),
        }
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<f64>, D::Error> {
        Ok(Some(
            Option::<f64>::deserialize(d)?.unwrap_or(f64::INFINITY),
        ))
    }
}

impl Judgement {
    /// Half the interval's width: the smallest change this run resolves for this statistic.
    pub fn resolution(&self) -> f64 {
        (self.high - self.low) / 2.0
    }
}

/// A side's windows of one endpoint, on a grid shared by both sides.
struct Side {
    /// Per window: (grid index, count) of every recorded latency bucket.
    hist: Vec<Vec<(u32, u64)>>,
    ok: Vec<u64>,
    errors: Vec<u64>,
}

impl Side {
    fn of(windows: &[&Window], grid: &[u64]) -> Side {
        let mut hist = Vec::with_capacity(windows.len());
        for w in windows {
            let mut sparse = Vec::new();
            for v in w.hist.iter_recorded() {
                let at = grid.partition_point(|&g| g < v.value_iterated_to());
                sparse.push((at as u32, v.count_at_value()));
            }
            hist.push(sparse);
        }
        Side {
            hist,
            ok: windows.iter().map(|w| w.counts.ok).collect(),
            errors: windows.iter().map(|w| w.counts.errors()).collect(),
        }
    }

    fn answered(&self) -> usize {
        self.ok
            .iter()
            .zip(&self.errors)
            .filter(|(o, e)| **o + **e > 0)
            .count()
    }

    fn requests(&self) -> u64 {
        self.ok.iter().sum::<u64>() + self.errors.iter().sum::<u64>()
    }
}

/// Scratch space for one side's statistics over a multiset of windows.
struct Acc {
    dense: Vec<u64>,
}

impl Acc {
    /// Every wanted statistic over `picks` (window indices, repeats allowed).
    fn stats(
        &mut self,
        side: &Side,
        picks: &[usize],
        grid: &[u64],
        wanted: &[Statistic],
        window_s: f64,
    ) -> Vec<Option<f64>> {
        self.dense.iter_mut().for_each(|c| *c = 0);
        let (mut ok, mut err) = (0u64, 0u64);
        for &w in picks {
            for &(i, c) in &side.hist[w] {
                self.dense[i as usize] += c;
            }
            ok += side.ok[w];
            err += side.errors[w];
        }
        let n: u64 = self.dense.iter().sum();
        wanted
            .iter()
            .map(|s| match s {
                Statistic::ErrorRate => (ok + err > 0).then(|| err as f64 / (ok + err) as f64),
                Statistic::Throughput => Some(ok as f64 / (picks.len().max(1) as f64 * window_s)),
                Statistic::Mean => (n > 0).then(|| {
                    let sum: f64 = self
                        .dense
                        .iter()
                        .zip(grid)
                        .map(|(c, v)| *c as f64 * *v as f64)
                        .sum();
                    sum / n as f64
                }),
                q => (n > 0).then(|| {
                    let q = q.quantile().unwrap_or(0.5);
                    // The same rank HdrHistogram's value_at_quantile uses.
                    let rank = ((q * n as f64).ceil() as u64).clamp(1, n);
                    let mut seen = 0u64;
                    for (c, v) in self.dense.iter().zip(grid) {
                        seen += c;
                        if seen >= rank {
                            return *v as f64;
                        }
                    }
                    grid.last().copied().unwrap_or(0) as f64
                }),
            })
            .collect()
    }
}

fn change(stat: Statistic, base: f64, cand: f64) -> Option<f64> {
    if stat.in_points() {
        Some(cand - base)
    } else if base > 0.0 {
        Some(cand / base - 1.0)
    } else {
        None
    }
}

/// Indices of a moving-block bootstrap resample of `n` windows with blocks of `len`.
fn resample(rng: &mut SplitMix, n: usize, len: usize, out: &mut Vec<usize>) {
    out.clear();
    let len = len.clamp(1, n.max(1));
    while out.len() < n {
        let start = rng.below(n - len + 1);
        for i in start..start + len {
            if out.len() == n {
                break;
            }
            out.push(i);
        }
    }
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let idx = (p * (sorted.len() - 1) as f64).round() as usize;
    sorted[idx.min(sorted.len() - 1)]
}

/// Judges every `(endpoint, statistic, allowed)` of `wanted` over the two series. Endpoints are
/// matched by name; one missing on either side is judged inconclusive with a note.
pub fn judge(
    baseline: &Series,
    candidate: &Series,
    wanted: &[(String, Statistic, Change)],
    settings: Settings,
) -> Vec<Judgement> {
    let mut out = Vec::new();
    let mut endpoints: Vec<&String> = wanted.iter().map(|(e, _, _)| e).collect();
    endpoints.dedup();
    for (ei, endpoint) in endpoints.into_iter().enumerate() {
        let rows: Vec<(Statistic, Change)> = wanted
            .iter()
            .filter(|(e, _, _)| e == endpoint)
            .map(|(_, s, c)| (*s, *c))
            .collect();
        out.extend(judge_endpoint(
            baseline,
            candidate,
            endpoint,
            &rows,
            Settings {
                seed: settings.seed ^ (ei as u64 + 1).wrapping_mul(0xA24B_AED4_963E_E407),
                ..settings
            },
        ));
    }
    out
}

fn windows_of<'a>(s: &'a Series, endpoint: &str) -> Option<Vec<&'a Window>> {
    let e = s.endpoints.iter().position(|n| n == endpoint)?;
    Some(s.windows.iter().map(|w| &w[e]).collect())
}

fn judge_endpoint(
    baseline: &Series,
    candidate: &Series,
    endpoint: &str,
    rows: &[(Statistic, Change)],
    settings: Settings,
) -> Vec<Judgement> {
    let undecided = |note: String, wa: usize, ra: u64, rb: u64| -> Vec<Judgement> {
        rows.iter()
            .map(|(stat, allowed)| Judgement {
                endpoint: endpoint.to_owned(),
                statistic: *stat,
                baseline: f64::NAN,
                candidate: f64::NAN,
                change: f64::NAN,
                low: f64::NAN,
                high: f64::NAN,
                allowed: allowed.to_string(),
                decision: Decision::Inconclusive,
                more_load: None,
                note: Some(note.clone()),
                windows: wa,
                baseline_requests: ra,
                candidate_requests: rb,
            })
            .collect()
    };
    let (Some(mut wa), Some(mut wb)) = (
        windows_of(baseline, endpoint),
        windows_of(candidate, endpoint),
    ) else {
        return undecided(
            format!("`{endpoint}` was not recorded on both sides"),
            0,
            0,
            0,
        );
    };
    match settings.pairing {
        Pairing::Paired => {
            // Pairs by position in time; a window past either side's end pairs with nothing.
            let n = wa.len().min(wb.len());
            wa.truncate(n);
            wb.truncate(n);
            // Windows where neither side answered carry nothing.
            let keep: Vec<bool> = wa
                .iter()
                .zip(&wb)
                .map(|(a, b)| a.counts.total() + b.counts.total() > 0)
                .collect();
            let mut it = keep.iter();
            wa.retain(|_| *it.next().unwrap_or(&false));
            let mut it = keep.iter();
            wb.retain(|_| *it.next().unwrap_or(&false));
        }
        Pairing::Unpaired => {
            wa.retain(|w| w.counts.total() > 0);
            wb.retain(|w| w.counts.total() > 0);
        }
    }
    let mut grid: Vec<u64> = wa
        .iter()
        .chain(&wb)
        .flat_map(|w| w.hist.iter_recorded().map(|v| v.value_iterated_to()))
        .collect();
    grid.sort_unstable();
    grid.dedup();
    let (sa, sb) = (Side::of(&wa, &grid), Side::of(&wb, &grid));
    let (ra, rb) = (sa.requests(), sb.requests());
    if sa.answered() < MIN_WINDOWS
        || sb.answered() < MIN_WINDOWS
        || ra < MIN_REQUESTS
        || rb < MIN_REQUESTS
    {
        let mut j = undecided(
            format!(
                "too little data: {} and {} windows with answers, {ra} and {rb} answers (at least \
                 {MIN_WINDOWS} windows and {MIN_REQUESTS} answers per side)",
                sa.answered(),
                sb.answered()
            ),
            wa.len().min(wb.len()),
            ra,
            rb,
        );
        let factor = (MIN_REQUESTS as f64 / ra.min(rb).max(1) as f64)
            .max(MIN_WINDOWS as f64 / sa.answered().min(sb.answered()).max(1) as f64);
        j.iter_mut().for_each(|j| j.more_load = Some(factor.ceil()));
        return j;
    }
    let window_s = baseline.window.as_secs_f64();
    let wanted: Vec<Statistic> = rows.iter().map(|(s, _)| *s).collect();
    let mut acc = Acc {
        dense: vec![0; grid.len()],
    };
    let all_a: Vec<usize> = (0..wa.len()).collect();
    let all_b: Vec<usize> = (0..wb.len()).collect();
    let point_a = acc.stats(&sa, &all_a, &grid, &wanted, window_s);
    let point_b = acc.stats(&sb, &all_b, &grid, &wanted, window_s);

    // Block length ~ n^(1/3): long enough to keep neighbouring windows' dependence, short
    // enough for many distinct resamples.
    let block = |n: usize| ((n as f64).cbrt().round() as usize).max(1);
    let mut rng = SplitMix(settings.seed);
    let mut samples: Vec<Vec<f64>> =
        vec![Vec::with_capacity(settings.resamples as usize); rows.len()];
    let (mut pa, mut pb) = (Vec::new(), Vec::new());
    for _ in 0..settings.resamples {
        match settings.pairing {
            Pairing::Paired => {
                resample(&mut rng, wa.len(), block(wa.len()), &mut pa);
                pb.clone_from(&pa);
            }
            Pairing::Unpaired => {
                resample(&mut rng, wa.len(), block(wa.len()), &mut pa);
                resample(&mut rng, wb.len(), block(wb.len()), &mut pb);
            }
        }
        let a = acc.stats(&sa, &pa, &grid, &wanted, window_s);
        let b = acc.stats(&sb, &pb, &grid, &wanted, window_s);
        for (i, (stat, _)) in rows.iter().enumerate() {
            if let (Some(x), Some(y)) = (a[i], b[i])
                && let Some(c) = change(*stat, x, y)
            {
                samples[i].push(c);
            }
        }
    }

    let alpha = (1.0 - settings.confidence.clamp(0.5, 0.9999)) / 2.0;
    rows.iter()
        .enumerate()
        .map(|(i, (stat, allowed))| {
            let (base, cand) = (
                point_a[i].unwrap_or(f64::NAN),
                point_b[i].unwrap_or(f64::NAN),
            );
            let est = match (point_a[i], point_b[i]) {
                (Some(x), Some(y)) => change(*stat, x, y),
                _ => None,
            };
            let s = &mut samples[i];
            s.sort_by(f64::total_cmp);
            let enough = s.len() as f64 >= 0.9 * f64::from(settings.resamples);
            let mut j = Judgement {
                endpoint: endpoint.to_owned(),
                statistic: *stat,
                baseline: base,
                candidate: cand,
                change: est.unwrap_or(f64::NAN),
                low: percentile(s, alpha),
                high: percentile(s, 1.0 - alpha),
                allowed: allowed.to_string(),
                decision: Decision::Inconclusive,
                more_load: None,
                note: None,
                windows: wa.len().min(wb.len()),
                baseline_requests: ra,
                candidate_requests: rb,
            };
            match est {
                Some(e) if enough => decide(&mut j, *stat, allowed, e),
                _ => {
                    j.note = Some(format!(
                        "the baseline's {stat} is zero or missing in too many resamples; no ratio"
                    ));
                }
            }
            j
        })
        .collect()
}

/// The decision from the interval: positive changes are worse for latency and errors, negative
/// ones for throughput.
fn decide(j: &mut Judgement, stat: Statistic, allowed: &Change, est: f64) {
    let sign = if stat.higher_is_worse() { 1.0 } else { -1.0 };
    let (lo, hi) = {
        let (a, b) = (sign * j.low, sign * j.high);
        (a.min(b), a.max(b))
    };
    let limit = sign * allowed.value;
    let worse = sign * est;
    j.decision = if lo > limit {
        Decision::Regression
    } else if hi < 0.0 && hi <= limit {
        Decision::Improvement
    } else if hi <= limit {
        Decision::NoRegression
    } else {
        // The interval's half-width shrinks as the square root of the load; it settles once it
        // no longer reaches across the limit.
        let half = (hi - lo) / 2.0;
        let gap = (worse - limit).abs();
        j.more_load = Some(if gap > half / 10.0 {
            ((half / gap).powi(2)).ceil().max(2.0)
        } else {
            f64::INFINITY
        });
        Decision::Inconclusive
    };
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::Outcome;
    use std::time::Duration;

    /// A series of one endpoint: `windows` windows, `per` answers each, latency from `f`.
    fn series(windows: usize, per: usize, f: impl Fn(usize, usize) -> f64) -> Series {
        let mut s = Series::new(vec!["e".into()], Duration::from_secs(1));
        for w in 0..windows {
            for i in 0..per {
                let due = Duration::from_secs(w as u64) + Duration::from_millis(i as u64);
                let ms = f(w, i);
                s.record(0, due, Duration::from_secs_f64(ms / 1000.0), Outcome::Ok);
            }
        }
        s
    }

    fn settings(pairing: Pairing) -> Settings {
        Settings {
            confidence: 0.95,
            resamples: 500,
            seed: 3,
            pairing,
        }
    }

    fn want(stat: Statistic, allow: &str) -> Vec<(String, Statistic, Change)> {
        vec![("e".into(), stat, Change::parse(allow).unwrap())]
    }

    /// Latencies spread 10..30 ms with a drift shared by both sides (the machine's).
    fn base(w: usize, i: usize) -> f64 {
        let drift = 1.0 + 0.15 * ((w as f64) / 3.0).sin();
        (10.0 + 20.0 * ((i * 7919) % 100) as f64 / 100.0) * drift
    }

    #[test]
    fn a_ten_percent_slower_p50_is_a_regression() {
        let a = series(20, 100, base);
        let b = series(20, 100, |w, i| base(w, i) * 1.10);
        let j = &judge(
            &a,
            &b,
            &want(Statistic::P50, "+5%"),
            settings(Pairing::Paired),
        )[0];
        assert_eq!(j.decision, Decision::Regression, "{j:?}");
        assert!((j.change - 0.10).abs() < 0.02, "{j:?}");
    }

    #[test]
    fn identical_sides_are_no_regression() {
        let a = series(20, 100, base);
        let b = series(20, 100, base);
        let j = &judge(
            &a,
            &b,
            &want(Statistic::P99, "+5%"),
            settings(Pairing::Paired),
        )[0];
        assert_eq!(j.decision, Decision::NoRegression, "{j:?}");
    }

    #[test]
    fn a_faster_candidate_is_an_improvement() {
        let a = series(20, 100, base);
        let b = series(20, 100, |w, i| base(w, i) * 0.8);
        let j = &judge(
            &a,
            &b,
            &want(Statistic::Mean, "+5%"),
            settings(Pairing::Paired),
        )[0];
        assert_eq!(j.decision, Decision::Improvement, "{j:?}");
    }

    #[test]
    fn too_little_data_is_inconclusive_with_a_factor() {
        let a = series(3, 5, base);
        let b = series(3, 5, base);
        let j = &judge(
            &a,
            &b,
            &want(Statistic::P50, "+5%"),
            settings(Pairing::Paired),
        )[0];
        assert_eq!(j.decision, Decision::Inconclusive);
        assert!(j.note.as_deref().unwrap().contains("too little data"));
        assert!(j.more_load.unwrap() >= 2.0);
    }

    #[test]
    fn a_change_at_the_limit_is_inconclusive() {
        let a = series(20, 100, base);
        let b = series(20, 100, |w, i| base(w, i) * 1.05);
        let j = &judge(
            &a,
            &b,
            &want(Statistic::P50, "+5%"),
            settings(Pairing::Paired),
        )[0];
        assert_eq!(j.decision, Decision::Inconclusive, "{j:?}");
        assert!(j.more_load.is_some());
    }

    #[test]
    fn pairing_cancels_shared_drift() {
        // A strong drift both sides share: paired intervals are narrower than unpaired ones.
        let drift = |w: usize, i: usize| base(w, i) * (1.0 + 0.5 * (w % 4) as f64);
        let a = series(24, 100, drift);
        let b = series(24, 100, |w, i| drift(w, i) * 1.02);
        let p = &judge(
            &a,
            &b,
            &want(Statistic::P50, "+10%"),
            settings(Pairing::Paired),
        )[0];
        let u = &judge(
            &a,
            &b,
            &want(Statistic::P50, "+10%"),
            settings(Pairing::Unpaired),
        )[0];
        assert!(p.resolution() < u.resolution(), "{p:?} {u:?}");
    }

    #[test]
    fn error_rates_change_in_points_and_throughput_downwards() {
        let mut a = series(20, 100, base);
        let mut b = series(20, 100, base);
        for w in 0..20 {
            for i in 0..5 {
                let due = Duration::from_secs(w) + Duration::from_millis(500 + i);
                b.record(0, due, Duration::from_millis(5), Outcome::Status5xx);
                if i == 0 {
                    a.record(0, due, Duration::from_millis(5), Outcome::Status5xx);
                }
            }
        }
        let j = &judge(
            &a,
            &b,
            &want(Statistic::ErrorRate, "+1pp"),
            settings(Pairing::Paired),
        )[0];
        assert_eq!(j.decision, Decision::Regression, "{j:?}");
        assert!(
            (j.change - (5.0 / 105.0 - 1.0 / 101.0)).abs() < 1e-9,
            "{j:?}"
        );
        let j = &judge(
            &a,
            &b,
            &want(Statistic::Throughput, "-10%"),
            settings(Pairing::Paired),
        )[0];
        assert_eq!(j.decision, Decision::NoRegression, "{j:?}");
    }
}
