//! Reports: the same run rendered for a person at a terminal, for machines (JSON), for
//! CI test views (JUnit) and for pull requests (Markdown). A report renders a verdict; it
//! never computes one.

pub mod comparison;
pub mod files;
pub mod html;
pub mod saved;

pub mod progress;

use std::fmt::Write as _;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::drill::{FaultReport, InvariantReport};
use crate::load::EngineReport;
use crate::record::{Counts, Measurements, SliceSummary, Stats, encode_histogram};
use crate::rule::Status;
use crate::rule::fmt_us;
use crate::verdict::Verdict;

/// 2: per-endpoint time series (`series`) and the comparison (`comparison`).
pub const SCHEMA_VERSION: u32 = 2;

/// `report.json`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct Report {
    pub schema_version: u32,
    pub scenario: String,
    pub scenario_file: String,
    pub target: String,
    /// `open` or `closed`.
    pub model: String,
    /// RFC 3339, UTC.
    pub started_at: String,
    pub planned_s: f64,
    pub elapsed_s: f64,
    /// Load stopped before the plan ended; the numbers cover only what ran.
    pub partial: bool,
    pub verdict: Verdict,
    /// The process exit code for this verdict.
    pub exit_code: u8,
    pub throughput_rps: f64,
    pub overall: EndpointReport,
    pub endpoints: Vec<EndpointReport>,
    /// Per-slice totals, in order.
    pub timeline: Vec<SliceSummary>,
    /// The load's phases as planned, seconds from the start of load (drawn under the plots).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub load_phases: Vec<crate::scenario::spans::LoadSpan>,
    /// Every endpoint in every window of the run (histograms and counts), by due time: what a
    /// later comparison, merge or plot needs. Absent in schema 1 reports.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub series: Option<crate::record::series::SeriesReport>,
    pub generator: GeneratorReport,
    /// The drill's faults, as planned and as they happened.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub faults: Vec<FaultReport>,
    /// The nothing-lost read-backs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub invariants: Option<InvariantReport>,
    /// Rollback triggers: per trigger and source, and per fault of a drill when they fired.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub triggers: Option<crate::trigger::gate::TriggerReport>,
    /// Observability acceptance: histogram agreement, trace probe, logs checked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observability: Option<crate::observe::ObservabilityReport>,
    /// What went wrong bringing the environment down (containers left, toxics not removed).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub environment_problems: Vec<String>,
    /// A paired run: the candidate (this report's target) against its baseline.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comparison: Option<crate::compare::ComparisonReport>,
    /// One shard of a run split over many generators (`run --shard`): what `verifier merge`
    /// checks and judges.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shard: Option<crate::shard::ShardReport>,
    /// A run merged from shards (`verifier merge`): which, and how each did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub merged: Option<crate::shard::MergedReport>,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct EndpointReport {
    pub name: String,
    pub requests: u64,
    pub errors: u64,
    pub error_rate: f64,
    pub counts: Counts,
    pub p50_us: u64,
    pub p90_us: u64,
    pub p95_us: u64,
    pub p99_us: u64,
    pub p999_us: u64,
    pub max_us: u64,
    pub mean_us: f64,
    /// HdrHistogram of latencies in µs, V2 + DEFLATE, base64: merge shards exactly.
    pub histogram: String,
}

impl EndpointReport {
    pub fn from_stats(name: &str, s: &Stats) -> EndpointReport {
        let h = &s.hist;
        EndpointReport {
            name: name.to_owned(),
            requests: s.counts.total(),
            errors: s.counts.errors(),
            error_rate: s.counts.error_rate(),
            counts: s.counts,
            p50_us: h.value_at_quantile(0.5),
            p90_us: h.value_at_quantile(0.9),
            p95_us: h.value_at_quantile(0.95),
            p99_us: h.value_at_quantile(0.99),
            p999_us: h.value_at_quantile(0.999),
            max_us: h.max(),
            mean_us: (h.mean() * 10.0).round() / 10.0,
            histogram: encode_histogram(h),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct GeneratorReport {
    pub model: String,
    pub journeys_started: u64,
    pub late_dispatches: u64,
    pub dispatch_lag_p50_us: u64,
    pub dispatch_lag_p99_us: u64,
    pub dispatch_lag_max_us: u64,
    pub in_flight_waits: u64,
    pub missed_arrivals: u64,
    /// Requests sent again on a new connection because the target had closed the idle
    /// keep-alive connection they went out on before answering; not errors (open model).
    #[serde(default)]
    pub reconnects: u64,
    pub cpu_seconds: f64,
    pub cpu_cores_used: f64,
    pub peak_rss_bytes: u64,
}

impl GeneratorReport {
    pub fn new(e: &EngineReport, peak_rss_bytes: u64) -> GeneratorReport {
        GeneratorReport {
            model: e.model.clone(),
            journeys_started: e.started,
            late_dispatches: e.late_dispatches,
            dispatch_lag_p50_us: e.dispatch_lag_p50_us,
            dispatch_lag_p99_us: e.dispatch_lag_p99_us,
            dispatch_lag_max_us: e.dispatch_lag_max_us,
            in_flight_waits: e.in_flight_waits,
            missed_arrivals: e.missed_arrivals,
            reconnects: e.reconnects,
            cpu_seconds: (e.cpu_seconds * 1000.0).round() / 1000.0,
            cpu_cores_used: (e.cpu_cores_used * 1000.0).round() / 1000.0,
            peak_rss_bytes,
        }
    }
}

/// The facts a report needs beside measurements and verdict.
pub struct RunFacts<'a> {
    pub scenario: &'a str,
    pub scenario_file: &'a str,
    pub target: &'a str,
    pub started_at: std::time::SystemTime,
    pub planned: std::time::Duration,
}

impl Report {
    pub fn new(
        facts: &RunFacts<'_>,
        m: &Measurements,
        verdict: Verdict,
        generator: GeneratorReport,
    ) -> Report {
        let overall = EndpointReport::from_stats("*", &m.overall());
        Report {
            schema_version: SCHEMA_VERSION,
            scenario: facts.scenario.to_owned(),
            scenario_file: facts.scenario_file.to_owned(),
            target: facts.target.to_owned(),
            model: generator.model.clone(),
            started_at: humantime::format_rfc3339_seconds(facts.started_at).to_string(),
            planned_s: facts.planned.as_secs_f64(),
            elapsed_s: (m.elapsed.as_secs_f64() * 1000.0).round() / 1000.0,
            partial: verdict.partial,
            exit_code: verdict.status.exit_code(),
            verdict,
            throughput_rps: (m.throughput() * 10.0).round() / 10.0,
            overall,
            endpoints: m
                .endpoints
                .iter()
                .zip(&m.per_endpoint)
                .map(|(n, s)| EndpointReport::from_stats(n, s))
                .collect(),
            timeline: m.timeline.clone(),
            load_phases: Vec::new(),
            series: Some(m.series.to_report()),
            generator,
            faults: Vec::new(),
            invariants: None,
            triggers: None,
            observability: None,
            environment_problems: Vec::new(),
            comparison: None,
            shard: None,
            merged: None,
        }
    }
}

/// The family a rule belongs to, as summaries group passing rules (`contract 9/9 pass`).
pub fn rule_family(kind: crate::rule::RuleKind) -> &'static str {
    use crate::rule::RuleKind as K;
    match kind {
        K::Latency => "latency",
        K::ErrorRate => "errors",
        K::Throughput => "throughput",
        K::Generator => "generator",
        K::Fault => "fault",
        K::Invariant => "nothing-lost",
        K::Functional => "functional",
        K::Contract => "contract",
        K::Security => "security",
        K::Trigger => "trigger",
        K::Observability => "observability",
        K::Regression => "regression",
    }
}

/// Per family, in the order families first appear: (family, passing rules, all rules).
pub fn family_counts(rules: &[crate::rule::RuleResult]) -> Vec<(&'static str, usize, usize)> {
    let mut out: Vec<(&'static str, usize, usize)> = Vec::new();
    for r in rules {
        let f = rule_family(r.kind);
        let i = match out.iter().position(|x| x.0 == f) {
            Some(i) => i,
            None => {
                out.push((f, 0, 0));
                out.len() - 1
            }
        };
        out[i].2 += 1;
        if r.status == Status::Pass {
            out[i].1 += 1;
        }
    }
    out
}

fn mark(s: Status) -> &'static str {
    match s {
        Status::Pass => "pass",
        Status::Fail => "FAIL",
        Status::Inconclusive => "????",
    }
}

/// Widest line of the terminal summary.
pub const TERMINAL_WIDTH: usize = 100;

/// Word-wraps `text` into lines of at most `width` characters, each starting with `indent`;
/// a word longer than a line is cut.
fn wrap(text: &str, indent: &str, width: usize) -> Vec<String> {
    let room = width.saturating_sub(indent.chars().count()).max(10);
    let mut out = Vec::new();
    for para in text.lines() {
        let mut line = String::new();
        for word in para.split_whitespace() {
            let mut word: Vec<char> = word.chars().collect();
            while !word.is_empty() {
                let have = line.chars().count();
                let sep = usize::from(have > 0);
                if have + sep + word.len() <= room {
                    if sep == 1 {
                        line.push(' ');
                    }
                    line.extend(word.drain(..));
                } else if have > 0 {
                    out.push(format!("{indent}{}", std::mem::take(&mut line)));
                } else {
                    line.extend(word.drain(..room));
                    out.push(format!("{indent}{}", std::mem::take(&mut line)));
                }
            }
        }
        if !line.is_empty() {
            out.push(format!("{indent}{line}"));
        }
    }
    out
}

/// Cuts `s` to `width` characters, marking the cut with `…`.
fn cut(s: &str, width: usize) -> String {
    if s.chars().count() <= width {
        s.to_owned()
    } else {
        let mut o: String = s.chars().take(width.saturating_sub(1)).collect();
        o.push('…');
        o
    }
}

/// ANSI colours for a terminal, or none.
#[derive(Debug, Clone, Copy)]
struct Paint(bool);

impl Paint {
    fn status(self, s: Status, text: &str) -> String {
        if !self.0 {
            return text.to_owned();
        }
        let code = match s {
            Status::Pass => "32",
            Status::Fail => "1;31",
            Status::Inconclusive => "1;33",
        };
        format!("\x1b[{code}m{text}\x1b[0m")
    }
}

/// The verdict line alone (what `--quiet` prints).
pub fn verdict_line(r: &Report, color: bool) -> String {
    let word = r.verdict.status.as_str().to_uppercase();
    let head = cut(
        &format!(
            "{word}: {} ({} model against {}){}",
            r.scenario,
            r.model,
            r.target,
            if r.partial { " [PARTIAL]" } else { "" }
        ),
        TERMINAL_WIDTH,
    );
    format!(
        "{}{}\n",
        Paint(color).status(r.verdict.status, &word),
        &head[word.len()..]
    )
}

/// The terminal summary without colour.
pub fn terminal(r: &Report) -> String {
    terminal_styled(r, false)
}

/// The terminal summary, at most [`TERMINAL_WIDTH`] columns: the verdict and its reason, the
/// endpoint table with p95, the rules that did not pass in full, the passing ones counted per
/// family. `color` adds ANSI colours (a terminal, without `NO_COLOR`).
pub fn terminal_styled(r: &Report, color: bool) -> String {
    let paint = Paint(color);
    let mut o = verdict_line(r, color);
    for l in wrap(&r.verdict.reason, "  ", TERMINAL_WIDTH) {
        let _ = writeln!(o, "{l}");
    }
    let _ = writeln!(
        o,
        "  {} requests in {:.1} s = {:.1} req/s, errors {:.2} %",
        r.overall.requests,
        r.elapsed_s,
        r.throughput_rps,
        r.overall.error_rate * 100.0
    );
    let _ = writeln!(o);
    // 2 + name + 10 + 8 + 4 × 11 = 64 + name: names beyond 36 characters are cut.
    let w = r
        .endpoints
        .iter()
        .map(|e| e.name.chars().count())
        .max()
        .unwrap_or(8)
        .clamp(8, TERMINAL_WIDTH - 64);
    let _ = writeln!(
        o,
        "  {:<w$} {:>9} {:>7} {:>10} {:>10} {:>10} {:>10}",
        "endpoint", "requests", "errors", "p50", "p95", "p99", "max"
    );
    for e in r.endpoints.iter().chain(std::iter::once(&r.overall)) {
        let name = if e.name == "*" {
            "all".to_owned()
        } else {
            cut(&e.name, w)
        };
        let _ = writeln!(
            o,
            "  {:<w$} {:>9} {:>6.2}% {:>10} {:>10} {:>10} {:>10}",
            name,
            e.requests,
            e.error_rate * 100.0,
            fmt_us(e.p50_us),
            fmt_us(e.p95_us),
            fmt_us(e.p99_us),
            fmt_us(e.max_us)
        );
    }
    if let Some(c) = &r.comparison {
        let _ = writeln!(o);
        for l in comparison::table(c).lines() {
            let _ = writeln!(o, "{}", cut(l, TERMINAL_WIDTH));
        }
    }
    let mut open: Vec<&crate::rule::RuleResult> = r
        .verdict
        .rules
        .iter()
        .filter(|x| x.status != Status::Pass)
        .collect();
    open.sort_by_key(|x| std::cmp::Reverse(x.status));
    if !open.is_empty() {
        let _ = writeln!(o);
    }
    for rule in open {
        let m = format!("[{}]", mark(rule.status));
        let head = format!(
            "{m} {} ({}): {}, observed {}",
            rule.id, rule.scope, rule.budget, rule.observed
        );
        for (i, l) in wrap(&head, "  ", TERMINAL_WIDTH).into_iter().enumerate() {
            if i == 0 {
                let _ = writeln!(o, "{}", l.replacen(&m, &paint.status(rule.status, &m), 1));
            } else {
                let _ = writeln!(o, "  {l}");
            }
        }
        for l in wrap(&rule.detail, "         ", TERMINAL_WIDTH) {
            let _ = writeln!(o, "{l}");
        }
        for e in &rule.evidence {
            for l in wrap(e, "         | ", TERMINAL_WIDTH) {
                let _ = writeln!(o, "{l}");
            }
        }
    }
    let families: Vec<String> = family_counts(&r.verdict.rules)
        .into_iter()
        .filter(|f| f.1 > 0)
        .map(|(f, pass, total)| format!("{f} {pass}/{total} pass"))
        .collect();
    if !families.is_empty() {
        let _ = writeln!(o);
        for l in wrap(
            &format!("passing: {}", families.join(", ")),
            "  ",
            TERMINAL_WIDTH,
        ) {
            let _ = writeln!(o, "{l}");
        }
    }
    if !r.faults.is_empty() {
        let _ = writeln!(o);
        for f in &r.faults {
            let seen = f.observed.as_ref().map_or(String::new(), |x| {
                format!(
                    ": {} requests, {:.2} % errors, p99 {}",
                    x.requests,
                    x.error_rate * 100.0,
                    fmt_us(x.p99_us)
                )
            });
            let line = format!(
                "fault {} ({} on {}, {:.0}–{:.0} s){seen}",
                f.name, f.kind, f.target, f.planned_start_s, f.planned_end_s
            );
            for l in wrap(&line, "  ", TERMINAL_WIDTH) {
                let _ = writeln!(o, "{l}");
            }
        }
    }
    for p in &r.environment_problems {
        for l in wrap(&format!("environment: {p}"), "  ", TERMINAL_WIDTH) {
            let _ = writeln!(o, "{l}");
        }
    }
    let _ = writeln!(o);
    let _ = writeln!(o, "exit {} ({})", r.exit_code, r.verdict.status.as_str());
    o
}

fn xml_escape(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&apos;"),
            c if (c as u32) < 0x20 && c != '\n' && c != '\t' => {}
            c => o.push(c),
        }
    }
    o
}

/// JUnit XML: one test case per rule. A failed rule is a `<failure>`; an inconclusive
/// one is `<skipped>`, which CI systems show without failing the suite by themselves.
pub fn junit(r: &Report) -> String {
    junit_rules(&r.scenario, &r.started_at, r.elapsed_s, &r.verdict.rules)
}

/// JUnit XML of `rules` as one suite called `suite`.
pub fn junit_rules(
    suite: &str,
    timestamp: &str,
    elapsed_s: f64,
    rules: &[crate::rule::RuleResult],
) -> String {
    let failures = rules.iter().filter(|x| x.status == Status::Fail).count();
    let skipped = rules
        .iter()
        .filter(|x| x.status == Status::Inconclusive)
        .count();
    let mut o = String::new();
    let _ = writeln!(o, r#"<?xml version="1.0" encoding="UTF-8"?>"#);
    let _ = writeln!(
        o,
        r#"<testsuites name="verifier" tests="{}" failures="{failures}" skipped="{skipped}" time="{:.3}">"#,
        rules.len(),
        elapsed_s
    );
    let _ = writeln!(
        o,
        r#"  <testsuite name="{}" tests="{}" failures="{failures}" skipped="{skipped}" time="{:.3}" timestamp="{}">"#,
        xml_escape(suite),
        rules.len(),
        elapsed_s,
        xml_escape(timestamp)
    );
    for rule in rules {
        let _ = write!(
            o,
            r#"    <testcase classname="{}.{}" name="{}">"#,
            xml_escape(suite),
            xml_escape(&rule.scope.replace(' ', "_")),
            xml_escape(&rule.id)
        );
        let mut text = format!(
            "budget: {}; observed: {}; {}",
            rule.budget, rule.observed, rule.detail
        );
        for e in &rule.evidence {
            text.push('\n');
            text.push_str(e);
        }
        match rule.status {
            Status::Pass => {
                let _ = writeln!(
                    o,
                    "<system-out>{}</system-out></testcase>",
                    xml_escape(&text)
                );
            }
            Status::Fail => {
                let _ = writeln!(
                    o,
                    r#"<failure message="{}" type="budget">{}</failure></testcase>"#,
                    xml_escape(&format!("{} observed {}", rule.budget, rule.observed)),
                    xml_escape(&text)
                );
            }
            Status::Inconclusive => {
                let _ = writeln!(
                    o,
                    r#"<skipped message="{}"/></testcase>"#,
                    xml_escape(&text)
                );
            }
        }
    }
    let _ = writeln!(o, "  </testsuite>");
    let _ = writeln!(o, "</testsuites>");
    o
}

pub(crate) fn md_cell(s: &str) -> String {
    s.replace('|', "\\|").replace('\n', " ")
}

/// Markdown for a PR comment or `$GITHUB_STEP_SUMMARY`.
pub fn markdown(r: &Report) -> String {
    let mut o = String::new();
    let icon = match r.verdict.status {
        Status::Pass => "✅",
        Status::Fail => "❌",
        Status::Inconclusive => "⚠️",
    };
    let _ = writeln!(
        o,
        "## {icon} {}: {}{}\n",
        md_cell(&r.scenario),
        r.verdict.status.as_str(),
        if r.partial { " (partial run)" } else { "" }
    );
    let _ = writeln!(o, "{}\n", md_cell(&r.verdict.reason));
    let _ = writeln!(
        o,
        "{} model against `{}`: {} requests in {:.1} s ({:.1} req/s), errors {:.2} %.\n",
        r.model,
        r.target,
        r.overall.requests,
        r.elapsed_s,
        r.throughput_rps,
        r.overall.error_rate * 100.0
    );
    let rule_table = |o: &mut String, rules: &[&crate::rule::RuleResult]| {
        let _ = writeln!(o, "| rule | scope | budget | observed | result |");
        let _ = writeln!(o, "|---|---|---|---|---|");
        for rule in rules {
            let _ = writeln!(
                o,
                "| `{}` | {} | {} | {} | {} |",
                md_cell(&rule.id),
                md_cell(&rule.scope),
                md_cell(&rule.budget),
                md_cell(&rule.observed),
                mark(rule.status)
            );
        }
    };
    let mut open: Vec<&crate::rule::RuleResult> = r
        .verdict
        .rules
        .iter()
        .filter(|x| x.status != Status::Pass)
        .collect();
    open.sort_by_key(|x| std::cmp::Reverse(x.status));
    if !open.is_empty() {
        let _ = writeln!(o, "### Rules that did not pass\n");
        rule_table(&mut o, &open);
    }
    // Evidence of the rules that did not pass: what a person replays first.
    for rule in &open {
        if rule.evidence.is_empty() {
            continue;
        }
        let _ = writeln!(
            o,
            "\n<details><summary><code>{}</code>: {}</summary>\n\n```",
            md_cell(&rule.id),
            md_cell(&rule.detail)
        );
        for e in &rule.evidence {
            let _ = writeln!(o, "{}", e.replace("```", "'''"));
        }
        let _ = writeln!(o, "```\n</details>");
    }
    let passing: Vec<&crate::rule::RuleResult> = r
        .verdict
        .rules
        .iter()
        .filter(|x| x.status == Status::Pass)
        .collect();
    if !passing.is_empty() {
        let families: Vec<String> = family_counts(&r.verdict.rules)
            .into_iter()
            .filter(|f| f.1 > 0)
            .map(|(f, pass, total)| format!("{f} {pass}/{total}"))
            .collect();
        let _ = writeln!(
            o,
            "\n<details><summary>{} passing rules: {}</summary>\n",
            passing.len(),
            families.join(", ")
        );
        rule_table(&mut o, &passing);
        let _ = writeln!(o, "\n</details>");
    }
    let _ = writeln!(
        o,
        "\n| endpoint | requests | errors | p50 | p90 | p95 | p99 | p99.9 | max |"
    );
    let _ = writeln!(o, "|---|---:|---:|---:|---:|---:|---:|---:|---:|");
    for e in r.endpoints.iter().chain(std::iter::once(&r.overall)) {
        let _ = writeln!(
            o,
            "| {} | {} | {:.2} % | {} | {} | {} | {} | {} | {} |",
            if e.name == "*" {
                "**all**".to_owned()
            } else {
                md_cell(&e.name)
            },
            e.requests,
            e.error_rate * 100.0,
            fmt_us(e.p50_us),
            fmt_us(e.p90_us),
            fmt_us(e.p95_us),
            fmt_us(e.p99_us),
            fmt_us(e.p999_us),
            fmt_us(e.max_us)
        );
    }
    if let Some(c) = &r.comparison {
        o.push('\n');
        o.push_str(&comparison::markdown(c));
    }
    if !r.faults.is_empty() {
        let _ = writeln!(
            o,
            "\n| fault | on | planned | happened | requests | errors | p99 | expected |"
        );
        let _ = writeln!(o, "|---|---|---|---|---:|---:|---:|---|");
        for f in &r.faults {
            let (req, err, p99) = match &f.observed {
                Some(x) => (
                    x.requests.to_string(),
                    format!("{:.2} %", x.error_rate * 100.0),
                    fmt_us(x.p99_us),
                ),
                None => ("-".into(), "-".into(), "-".into()),
            };
            let happened = match (&f.error, f.applied_at_s, f.reverted_at_s) {
                (Some(e), _, _) => md_cell(e),
                (None, Some(a), Some(v)) => format!("{a:.1}–{v:.1} s"),
                (None, Some(a), None) => format!("{a:.1} s – not reverted"),
                (None, None, _) => "not applied".into(),
            };
            let _ = writeln!(
                o,
                "| `{}` | {} {} | {:.0}–{:.0} s | {} | {} | {} | {} | {} |",
                md_cell(&f.name),
                md_cell(&f.kind),
                md_cell(&f.target),
                f.planned_start_s,
                f.planned_end_s,
                happened,
                req,
                err,
                p99,
                md_cell(f.expect.as_deref().unwrap_or(""))
            );
        }
    }
    if let Some(inv) = &r.invariants {
        let _ = writeln!(o);
        match &inv.inconclusive {
            Some(why) => {
                let _ = writeln!(
                    o,
                    "Nothing-lost read-backs could not be made: {}",
                    md_cell(why)
                );
            }
            None => {
                let _ = writeln!(
                    o,
                    "Nothing lost: {} acknowledged and {} uncertain effect-creating requests read back; {} violations.",
                    inv.acknowledged,
                    inv.uncertain,
                    inv.violations.len()
                );
                for v in inv.violations.iter().take(20) {
                    let _ = writeln!(
                        o,
                        "- `{}` key `{}` id `{}`: {}",
                        v.rule,
                        md_cell(v.key.as_deref().unwrap_or("-")),
                        md_cell(v.id.as_deref().unwrap_or("-")),
                        md_cell(&v.detail)
                    );
                }
            }
        }
    }
    if let Some(t) = &r.triggers {
        crate::trigger::gate::markdown(&mut o, t);
    }
    if let Some(x) = &r.observability {
        crate::observe::markdown(&mut o, x);
    }
    for p in &r.environment_problems {
        let _ = writeln!(o, "\n**Environment:** {}", md_cell(p));
    }
    let _ = writeln!(
        o,
        "\nThe plots of this run (latency, throughput and errors over time, the percentile \
         spectrum) are in `report.html` beside this summary in the report directory."
    );
    o
}

/// Writes `report.json`, `junit.xml`, `summary.md` and `report.html` into `dir` (see [`files`]).
pub use files::write_all;

/// The JSON Schema of `report.json`, as checked in under `verifier/schema/`.
pub fn json_schema() -> String {
    let schema = schemars::schema_for!(Report);
    let mut s = serde_json::to_string_pretty(&schema).expect("schema serializes");
    s.push('\n');
    s
}
