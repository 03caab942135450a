//! `verifier merge`: the shard reports of one run split over many generators (`run --shard`)
//! turned into the report of that run, judged once on the merged measurements.
//!
//! The shards must belong together — the same scenario bytes (by hash), the same count, each
//! index exactly once, the same start instant — or nothing is merged. Histograms and counts are
//! summed, which is exact: HdrHistograms of the same layout add bucket by bucket, so the merged
//! histogram is the one a single generator recording every request would hold. Then every rule
//! the budgets define is judged again on the sum, over the whole run and over sliding windows of
//! the merged per-window series. What ran once, on the leader (shard 0) — functional checks,
//! security, faults, triggers, observability, invariants, steady-state phases — is taken from the
//! leader's report as it judged it. A shard whose generator fell behind or saturated, or started
//! late, makes the merged verdict inconclusive and is named.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::check::{self, WindowWatch};
use crate::load::EngineReport;
use crate::record::series::{MAX_WINDOWS, Series, Window};
use crate::record::{Measurements, SliceSummary, Stats, WindowView, decode_histogram};
use crate::report::{GeneratorReport, Report, RunFacts, SCHEMA_VERSION};
use crate::rule::{RuleKind, RuleResult, Status};
use crate::scenario::Budgets;
use crate::shard::{MAX_SHARDS, MergedReport, MergedShard, ShardReport, scenario_sha256};
use crate::verdict::Verdict;

/// Largest shard report read.
pub const MAX_REPORT_BYTES: u64 = 512 * 1024 * 1024;
/// Most endpoints a shard report may name.
pub const MAX_ENDPOINTS: usize = 10_000;

/// Reads every file and merges them; each error names the file and what disagrees.
pub fn merge_files(paths: &[PathBuf]) -> Result<Report, String> {
    if paths.is_empty() {
        return Err("give the shard reports to merge (report.json of every shard)".into());
    }
    if paths.len() > MAX_SHARDS as usize {
        return Err(format!(
            "{} reports given; a run has at most {MAX_SHARDS} shards",
            paths.len()
        ));
    }
    let mut shards = Vec::new();
    for p in paths {
        shards.push((p.display().to_string(), read(p)?));
    }
    merge_reports(shards)
}

fn read(p: &Path) -> Result<Report, String> {
    let name = p.display();
    let len = std::fs::metadata(p)
        .map_err(|e| format!("{name}: cannot read it: {e}"))?
        .len();
    if len > MAX_REPORT_BYTES {
        return Err(format!(
            "{name}: {len} bytes, more than a shard report may hold ({MAX_REPORT_BYTES})"
        ));
    }
    let text = std::fs::read_to_string(p).map_err(|e| format!("{name}: cannot read it: {e}"))?;
    serde_json::from_str(&text).map_err(|e| format!("{name}: not a verifier report.json: {e}"))
}

/// The shards, checked to belong together and ordered by index.
fn check_together(shards: Vec<(String, Report)>) -> Result<Vec<(String, Report)>, String> {
    let Some((file0, r0)) = shards.first() else {
        return Err("give the shard reports to merge".into());
    };
    let shard_of = |file: &str, r: &Report| -> Result<ShardReport, String> {
        r.shard.clone().ok_or_else(|| {
            format!(
                "{file}: not a shard report: it has no `shard` section (shard reports come from \
                 `verifier run --shard I/N --start-at T`)"
            )
        })
    };
    let s0 = shard_of(file0, r0)?;
    let (file0, count) = (file0.clone(), s0.count);
    let names0: Vec<String> = r0.endpoints.iter().map(|e| e.name.clone()).collect();
    if count == 0 || count > MAX_SHARDS {
        return Err(format!(
            "{file0}: shard count {count} is not between 1 and {MAX_SHARDS}"
        ));
    }
    let mut slots: Vec<Option<(String, Report)>> = (0..count).map(|_| None).collect();
    for (file, r) in shards {
        let s = shard_of(&file, &r)?;
        if r.schema_version != SCHEMA_VERSION {
            return Err(format!(
                "{file}: report schema {} but this verifier merges schema {SCHEMA_VERSION}",
                r.schema_version
            ));
        }
        if s.count != count {
            return Err(format!(
                "{file} is shard {}/{} but {file0} is shard {}/{count}: the reports come from runs \
                 split {} and {count} ways",
                s.index, s.count, s0.index, s.count
            ));
        }
        if s.scenario_sha256 != s0.scenario_sha256 {
            return Err(format!(
                "{file}: scenario sha256 {} differs from {file0}'s {}: the shards ran different \
                 versions of the scenario",
                short(&s.scenario_sha256),
                short(&s0.scenario_sha256)
            ));
        }
        if scenario_sha256(s.scenario_source.as_bytes()) != s.scenario_sha256 {
            return Err(format!(
                "{file}: its scenario text does not hash to its scenario_sha256: the report was \
                 altered"
            ));
        }
        if s.start_at != s0.start_at {
            return Err(format!(
                "{file}: start instant {} differs from {file0}'s {}: not shards of the same run",
                s.start_at, s0.start_at
            ));
        }
        if s.index >= count {
            return Err(format!(
                "{file}: shard index {} is not below the count {count}",
                s.index
            ));
        }
        let names: Vec<String> = r.endpoints.iter().map(|e| e.name.clone()).collect();
        if names != names0 {
            return Err(format!(
                "{file}: endpoints {names:?} differ from {file0}'s {names0:?}"
            ));
        }
        let slot = &mut slots[s.index as usize];
        if let Some((other, _)) = slot {
            return Err(format!(
                "shard {}/{count} given twice: {other} and {file}",
                s.index
            ));
        }
        *slot = Some((file, r));
    }
    let missing: Vec<String> = slots
        .iter()
        .enumerate()
        .filter(|(_, s)| s.is_none())
        .map(|(i, _)| format!("{i}/{count}"))
        .collect();
    if !missing.is_empty() {
        return Err(format!(
            "shard{} {} missing: a merge needs every shard of the run exactly once",
            if missing.len() == 1 { "" } else { "s" },
            missing.join(", ")
        ));
    }
    Ok(slots.into_iter().flatten().collect())
}

fn short(h: &str) -> &str {
    h.get(..12).unwrap_or(h)
}

/// The budgets section of the scenario the shards ran.
fn budgets(source: &str) -> Result<Budgets, String> {
    let doc: serde_norway::Value = serde_norway::from_str(source)
        .map_err(|e| format!("the shards' scenario does not parse: {e}"))?;
    let section = doc
        .get("budgets")
        .cloned()
        .unwrap_or_else(|| serde_norway::Value::Mapping(Default::default()));
    serde_norway::from_value(section).map_err(|e| format!("the shards' scenario: budgets: {e}"))
}

/// Merges shard reports already read; see the module's description.
pub fn merge_reports(shards: Vec<(String, Report)>) -> Result<Report, String> {
    let shards = check_together(shards)?;
    let (_, leader) = &shards[0];
    let info = leader
        .shard
        .clone()
        .ok_or("the leader has no shard section")?;
    let budgets = budgets(&info.scenario_source)?;
    let endpoints: Vec<String> = leader.endpoints.iter().map(|e| e.name.clone()).collect();
    if endpoints.len() > MAX_ENDPOINTS {
        return Err(format!(
            "{} endpoints, more than {MAX_ENDPOINTS}",
            endpoints.len()
        ));
    }

    // Whole-run histograms and counts, per endpoint.
    let mut per_endpoint: Vec<Stats> = endpoints.iter().map(|_| Stats::new()).collect();
    for (file, r) in &shards {
        for (acc, e) in per_endpoint.iter_mut().zip(&r.endpoints) {
            let h = decode_histogram(&e.histogram)
                .map_err(|x| format!("{file}: endpoint {}: {x}", e.name))?;
            acc.hist.add(&h).map_err(|x| {
                format!(
                    "{file}: endpoint {}: histogram does not fit the verifier's range: {x:?}",
                    e.name
                )
            })?;
            acc.counts.merge(&e.counts);
        }
    }
    let series = merged_series(&shards, &endpoints)?;
    let elapsed = shards
        .iter()
        .filter_map(|(_, r)| Duration::try_from_secs_f64(r.elapsed_s).ok())
        .max()
        .unwrap_or_default();
    let m = Measurements {
        timeline: timeline(&series),
        endpoints: endpoints.clone(),
        per_endpoint,
        elapsed,
        series,
    };

    let partial = shards.iter().any(|(_, r)| r.partial);
    let interrupted = shards.iter().any(|(_, r)| {
        r.verdict
            .stopped_by
            .as_deref()
            .is_some_and(|s| s.starts_with("interrupted"))
    });
    let aborted = shards.iter().find_map(|(_, r)| {
        let s = r.shard.as_ref()?;
        let why = r
            .verdict
            .stopped_by
            .as_deref()?
            .strip_prefix("early abort: ")?;
        Some(format!("shard {}/{}: {why}", s.index, s.count))
    });

    // Re-judged on the merged data: the budgets, whole run and windows.
    let mut rules: Vec<RuleResult> =
        check::whole_run(&budgets, &m, &EngineReport::default(), 1, partial)
            .into_iter()
            .filter(|r| r.kind != RuleKind::Generator)
            .collect();
    rules.push(generator_rule(&shards));
    rules.push(start_rule(&shards));
    if let Some(mut watch) = WindowWatch::new(&budgets, endpoints.clone()) {
        for w in sliding(&m.series, budgets.window.map(|d| d.0).unwrap_or_default()) {
            watch.observe(&w);
        }
        rules.extend(watch.results());
    }
    // Taken from the leader as it judged them: everything the merge does not judge again.
    let rejudged: Vec<String> = check::planned(&budgets)
        .into_iter()
        .map(|(id, _)| id)
        .chain(["generator".to_owned(), "shard.start".to_owned()])
        .collect();
    rules.extend(
        leader
            .verdict
            .rules
            .iter()
            .filter(|r| !rejudged.contains(&r.id))
            .cloned(),
    );
    let mut verdict = Verdict::decide(rules, interrupted, aborted);
    if let Some(news) = check::all_failed(&m) {
        verdict.lead_with(&news);
    }

    let generator = merged_generator(&shards);
    let started_at = humantime::parse_rfc3339_weak(&info.start_at)
        .map_err(|e| format!("start instant {}: {e}", info.start_at))?;
    let facts = RunFacts {
        scenario: &leader.scenario,
        scenario_file: &leader.scenario_file,
        target: &leader.target,
        started_at,
        planned: Duration::try_from_secs_f64(leader.planned_s).unwrap_or_default(),
    };
    let mut report = Report::new(&facts, &m, verdict, generator);
    report.faults = leader.faults.clone();
    report.invariants = leader.invariants.clone();
    report.triggers = leader.triggers.clone();
    report.observability = leader.observability.clone();
    report.environment_problems = shards
        .iter()
        .flat_map(|(_, r)| {
            let i = r.shard.as_ref().map_or(0, |s| s.index);
            r.environment_problems
                .iter()
                .map(move |p| format!("shard {i}: {p}"))
        })
        .collect();
    report.merged = Some(MergedReport {
        count: info.count,
        start_at: info.start_at.clone(),
        scenario_sha256: info.scenario_sha256.clone(),
        shards: shards
            .iter()
            .map(|(file, r)| {
                let s = r.shard.as_ref();
                MergedShard {
                    index: s.map_or(0, |s| s.index),
                    file: file.clone(),
                    requests: r.overall.requests,
                    started_late_ms: s.map_or(0, |s| s.started_late_ms),
                    generator: own_generator(r)
                        .map_or_else(|| "no generator rule".into(), describe),
                }
            })
            .collect(),
    });
    Ok(report)
}

fn merged_series(shards: &[(String, Report)], endpoints: &[String]) -> Result<Series, String> {
    let mut merged: Option<Series> = None;
    for (file, r) in shards {
        let Some(sr) = &r.series else {
            return Err(format!(
                "{file}: no per-window series: written by a verifier too old to shard"
            ));
        };
        if sr.endpoints.len() != endpoints.len()
            || sr
                .endpoints
                .iter()
                .any(|e| e.windows.len() as u64 > 2 * MAX_WINDOWS + 1)
        {
            return Err(format!(
                "{file}: its series does not match its endpoints or holds more than {} windows",
                2 * MAX_WINDOWS + 1
            ));
        }
        let s = Series::from_report(sr).map_err(|e| format!("{file}: series: {e}"))?;
        match &mut merged {
            None => merged = Some(s),
            Some(m) => m.merge(&s).map_err(|e| format!("{file}: series: {e}"))?,
        }
    }
    merged.ok_or_else(|| "no shards".into())
}

/// The report's timeline, one entry per series window.
fn timeline(s: &Series) -> Vec<SliceSummary> {
    s.windows
        .iter()
        .enumerate()
        .map(|(i, w)| {
            let all = stats(w.iter());
            SliceSummary {
                start_s: i as f64 * s.window.as_secs_f64(),
                requests: all.counts.total(),
                errors: all.counts.errors(),
                p50_us: all.hist.value_at_quantile(0.5),
                p99_us: all.hist.value_at_quantile(0.99),
                max_us: all.hist.max(),
            }
        })
        .collect()
}

fn stats<'a>(ws: impl Iterator<Item = &'a Window>) -> Stats {
    let mut s = Stats::new();
    for w in ws {
        // The window histograms (two significant digits) fit the whole-run layout's range.
        let _ = s.hist.add(&w.hist);
        s.counts.merge(&w.counts);
    }
    s
}

/// Sliding windows of `len` over the merged series, one per series window they can end on; a
/// run shorter than one window is judged over what it has, as a single run is.
fn sliding(s: &Series, len: Duration) -> Vec<WindowView> {
    let n = s.windows.len();
    if n == 0 || s.endpoints.is_empty() {
        return Vec::new();
    }
    let k = ((len.as_secs_f64() / s.window.as_secs_f64()).ceil() as usize).clamp(1, n);
    (k..=n)
        .map(|end| {
            let span = &s.windows[end - k..end];
            WindowView {
                start: s.window * (end - k) as u32,
                end: s.window * end as u32,
                per_endpoint: (0..s.endpoints.len())
                    .map(|e| stats(span.iter().map(|w| &w[e])))
                    .collect(),
            }
        })
        .collect()
}

fn own_generator(r: &Report) -> Option<&RuleResult> {
    r.verdict.rules.iter().find(|x| x.id == "generator")
}

fn describe(r: &RuleResult) -> String {
    if r.status == Status::Pass {
        "pass".into()
    } else {
        format!("{}: {}; {}", r.status.as_str(), r.observed, r.detail)
    }
}

fn label(r: &Report) -> String {
    r.shard
        .as_ref()
        .map_or_else(|| "?".into(), |s| format!("{}/{}", s.index, s.count))
}

/// Every shard's generator kept its schedule and had CPU to spare, or the shards that did not.
fn generator_rule(shards: &[(String, Report)]) -> RuleResult {
    let bad: Vec<String> = shards
        .iter()
        .filter_map(|(file, r)| match own_generator(r) {
            Some(g) if g.status == Status::Pass => None,
            Some(g) => Some(format!(
                "shard {} ({file}): observed {}; {}",
                label(r),
                g.observed,
                g.detail
            )),
            None => Some(format!("shard {} ({file}): no generator rule", label(r))),
        })
        .collect();
    let status = if bad.is_empty() {
        Status::Pass
    } else {
        Status::Inconclusive
    };
    RuleResult::new("generator", RuleKind::Generator, status)
        .budget("every shard kept its schedule and had CPU to spare")
        .observed(if bad.is_empty() {
            format!("{} of {} shards kept up", shards.len(), shards.len())
        } else {
            format!(
                "{} of {} shards fell behind or saturated",
                bad.len(),
                shards.len()
            )
        })
        .detail(if bad.is_empty() {
            "each shard's own generator rule passed".into()
        } else {
            bad.join("; ")
        })
        .evidence(bad)
}

/// Every shard began within its tolerance of the common start, or the shards that did not.
fn start_rule(shards: &[(String, Report)]) -> RuleResult {
    let late: Vec<String> = shards
        .iter()
        .filter_map(|(file, r)| {
            let s = r.shard.as_ref()?;
            (s.started_late_ms > s.tolerance_ms).then(|| {
                format!(
                    "shard {}/{} ({file}) started {} ms late (tolerance {} ms)",
                    s.index, s.count, s.started_late_ms, s.tolerance_ms
                )
            })
        })
        .collect();
    let worst = shards
        .iter()
        .filter_map(|(_, r)| r.shard.as_ref().map(|s| s.started_late_ms))
        .max()
        .unwrap_or(0);
    RuleResult::new(
        "shard.start",
        RuleKind::Generator,
        if late.is_empty() {
            Status::Pass
        } else {
            Status::Inconclusive
        },
    )
    .budget("every shard starts within its tolerance of --start-at")
    .observed(format!("latest start {worst} ms after --start-at"))
    .detail(if late.is_empty() {
        "the shards' windows line up".into()
    } else {
        late.join("; ")
    })
    .evidence(late)
}

/// The shards' generators together: counts summed, lag and memory the worst shard's.
fn merged_generator(shards: &[(String, Report)]) -> GeneratorReport {
    let mut g = shards[0].1.generator.clone();
    for (_, r) in &shards[1..] {
        let o = &r.generator;
        g.journeys_started += o.journeys_started;
        g.late_dispatches += o.late_dispatches;
        g.dispatch_lag_p50_us = g.dispatch_lag_p50_us.max(o.dispatch_lag_p50_us);
        g.dispatch_lag_p99_us = g.dispatch_lag_p99_us.max(o.dispatch_lag_p99_us);
        g.dispatch_lag_max_us = g.dispatch_lag_max_us.max(o.dispatch_lag_max_us);
        g.in_flight_waits += o.in_flight_waits;
        g.missed_arrivals += o.missed_arrivals;
        g.reconnects += o.reconnects;
        g.cpu_seconds += o.cpu_seconds;
        g.cpu_cores_used += o.cpu_cores_used;
        g.peak_rss_bytes = g.peak_rss_bytes.max(o.peak_rss_bytes);
    }
    g
}
