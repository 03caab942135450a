//! The comparison table (endpoint, statistic, baseline, candidate, change, interval, allowed,
//! decision) for the terminal and Markdown, and the files of `verifier compare`.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::compare::{ComparisonReport, Decision, fmt_change, fmt_value};
use crate::verdict::Verdict;

fn decision(d: Decision) -> &'static str {
    match d {
        Decision::Regression => "REGRESSION",
        Decision::NoRegression => "no regression",
        Decision::Improvement => "improvement",
        Decision::Inconclusive => "inconclusive",
    }
}

fn interval(j: &crate::compare::Judgement) -> String {
    if j.low.is_finite() && j.high.is_finite() {
        format!(
            "[{}, {}]",
            fmt_change(j.statistic, j.low),
            fmt_change(j.statistic, j.high)
        )
    } else {
        "-".into()
    }
}

fn conf(c: &ComparisonReport) -> String {
    let v = format!("{:.1}", c.confidence * 100.0);
    v.trim_end_matches(".0").to_owned()
}

/// The table for a terminal.
pub fn table(c: &ComparisonReport) -> String {
    let mut o = String::new();
    let _ = writeln!(
        o,
        "  comparison ({}): baseline {} vs candidate {}, {}% intervals",
        c.mode,
        c.baseline,
        c.candidate,
        conf(c)
    );
    let w = c
        .judgements
        .iter()
        .map(|j| j.endpoint.len())
        .max()
        .unwrap_or(8)
        .max(8);
    let _ = writeln!(
        o,
        "  {:<w$} {:<10} {:>10} {:>10} {:>8} {:>20} {:>8}  decision",
        "endpoint", "statistic", "baseline", "candidate", "change", "interval", "allowed"
    );
    for j in &c.judgements {
        let mut line = format!(
            "  {:<w$} {:<10} {:>10} {:>10} {:>8} {:>20} {:>8}  {}",
            j.endpoint,
            j.statistic.name(),
            fmt_value(j.statistic, j.baseline),
            fmt_value(j.statistic, j.candidate),
            fmt_change(j.statistic, j.change),
            interval(j),
            j.allowed,
            decision(j.decision)
        );
        if j.decision == Decision::Inconclusive {
            match j.more_load {
                Some(f) if f.is_finite() => {
                    let _ = write!(line, " (about {f:.0}x the load would settle it)");
                }
                Some(_) => line.push_str(" (at the allowed limit)"),
                None => {}
            }
        }
        let _ = writeln!(o, "{line}");
    }
    let _ = writeln!(o, "  {}", c.caveat);
    for n in &c.notes {
        let _ = writeln!(o, "  note: {n}");
    }
    o
}

/// The table as Markdown.
pub fn markdown(c: &ComparisonReport) -> String {
    use super::md_cell;
    let mut o = String::new();
    let _ = writeln!(
        o,
        "### Comparison ({}): `{}` (baseline) vs `{}` (candidate)\n",
        c.mode,
        md_cell(&c.baseline),
        md_cell(&c.candidate)
    );
    let _ = writeln!(
        o,
        "{}% intervals, {}. {}.\n",
        conf(c),
        md_cell(&c.method),
        md_cell(&c.caveat)
    );
    let _ = writeln!(
        o,
        "| endpoint | statistic | baseline | candidate | change | interval | allowed | decision |"
    );
    let _ = writeln!(o, "|---|---|---:|---:|---:|---|---:|---|");
    for j in &c.judgements {
        let _ = writeln!(
            o,
            "| {} | {} | {} | {} | {} | {} | {} | {} |",
            md_cell(&j.endpoint),
            j.statistic.name(),
            fmt_value(j.statistic, j.baseline),
            fmt_value(j.statistic, j.candidate),
            fmt_change(j.statistic, j.change),
            interval(j),
            md_cell(&j.allowed),
            md_cell(&crate::compare::explain(j, c.confidence))
        );
    }
    for n in &c.notes {
        let _ = writeln!(o, "\n> note: {}", md_cell(n));
    }
    o
}

/// The outcome of `verifier compare`: the comparison and the verdict over its rules.
#[derive(Debug, Serialize)]
pub struct Standalone {
    pub verdict: Verdict,
    pub exit_code: u8,
    pub comparison: ComparisonReport,
}

impl Standalone {
    pub fn new(comparison: ComparisonReport) -> Standalone {
        let verdict = Verdict::decide(comparison.rules(), false, None);
        Standalone {
            exit_code: verdict.status.exit_code(),
            verdict,
            comparison,
        }
    }

    pub fn terminal(&self) -> String {
        let mut o = format!(
            "{}: comparison of two runs\n  {}\n\n",
            self.verdict.status.as_str().to_uppercase(),
            self.verdict.reason
        );
        o.push_str(&table(&self.comparison));
        let _ = writeln!(
            o,
            "\nexit {} ({})",
            self.exit_code,
            self.verdict.status.as_str()
        );
        o
    }

    /// Writes `comparison.json`, `junit.xml` and `summary.md` into `dir`, each atomically.
    pub fn write(&self, dir: &Path) -> std::io::Result<Vec<PathBuf>> {
        std::fs::create_dir_all(dir)?;
        let mut md = format!(
            "## {}: comparison of two runs\n\n{}\n\n",
            self.verdict.status.as_str(),
            super::md_cell(&self.verdict.reason)
        );
        md.push_str(&markdown(&self.comparison));
        let bodies = [
            (
                "comparison.json",
                serde_json::to_string_pretty(self).map_err(std::io::Error::other)? + "\n",
            ),
            (
                "junit.xml",
                super::junit_rules("comparison", "", 0.0, &self.verdict.rules),
            ),
            ("summary.md", md),
        ];
        let mut out = Vec::new();
        for (name, body) in bodies {
            let p = dir.join(name);
            super::files::write_atomically(&p, body.as_bytes())?;
            out.push(p);
        }
        Ok(out)
    }
}
