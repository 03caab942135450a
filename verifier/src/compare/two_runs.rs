//! `verifier compare BASELINE/report.json CANDIDATE/report.json`: two runs made at different
//! times, judged unpaired. Reads only what it needs from each report (its schema version, its
//! scenario, its series), so any report this verifier writes can be compared.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::{Change, ComparisonReport, Pairing, Settings, Statistic};
use crate::record::series::{Series, SeriesReport};

/// Largest report read: a day-long run of 100 endpoints stays well below.
pub const MAX_REPORT_BYTES: u64 = 256 * 1024 * 1024;
/// The first `report.json` schema that carries per-window series.
pub const FIRST_SCHEMA_WITH_SERIES: u32 = 2;

/// What a comparison needs from a saved run.
#[derive(Debug, Deserialize)]
pub struct SavedRun {
    pub schema_version: u32,
    pub scenario: String,
    #[serde(default)]
    pub partial: bool,
    #[serde(default)]
    pub series: Option<SeriesReport>,
}

/// Why two reports cannot be compared; each names the file.
#[derive(Debug, thiserror::Error)]
pub enum CompareError {
    #[error("{file}: {message}")]
    Input { file: PathBuf, message: String },
    #[error(
        "the reports are of different scenarios: {baseline} is `{a}`, {candidate} is `{b}`; \
         compare runs of one scenario"
    )]
    Scenario {
        baseline: PathBuf,
        candidate: PathBuf,
        a: String,
        b: String,
    },
}

fn input(file: &Path, message: impl Into<String>) -> CompareError {
    CompareError::Input {
        file: file.to_owned(),
        message: message.into(),
    }
}

/// Reads and checks one saved run.
/// `newest` is the report schema this verifier writes.
pub fn read(file: &Path, newest: u32) -> Result<(SavedRun, Series), CompareError> {
    let meta = std::fs::metadata(file).map_err(|e| input(file, format!("cannot read: {e}")))?;
    if meta.len() > MAX_REPORT_BYTES {
        return Err(input(
            file,
            format!(
                "{} bytes: larger than any report this verifier writes ({} MiB at most)",
                meta.len(),
                MAX_REPORT_BYTES >> 20
            ),
        ));
    }
    let text =
        std::fs::read_to_string(file).map_err(|e| input(file, format!("cannot read: {e}")))?;
    let run: SavedRun = serde_json::from_str(&text).map_err(|e| {
        input(
            file,
            format!("not a verifier report.json ({e}); give the report.json of a run"),
        )
    })?;
    if run.schema_version < FIRST_SCHEMA_WITH_SERIES {
        return Err(input(
            file,
            format!(
                "written with report schema {}, which has no per-window series; schema {} or \
                 later is needed: run it again with this verifier",
                run.schema_version, FIRST_SCHEMA_WITH_SERIES
            ),
        ));
    }
    if run.schema_version > newest {
        return Err(input(
            file,
            format!(
                "written with report schema {}, newer than this verifier's {}: use a newer verifier",
                run.schema_version, newest
            ),
        ));
    }
    let series = run
        .series
        .as_ref()
        .ok_or_else(|| input(file, "the report has no `series`: nothing to compare"))?;
    let series = Series::from_report(series).map_err(|e| input(file, format!("series: {e}")))?;
    Ok((run, series))
}

/// Judges two saved runs.
pub fn compare_files(
    baseline: &Path,
    candidate: &Path,
    allow: &[(Statistic, Change)],
    settings: Settings,
    newest_schema: u32,
) -> Result<ComparisonReport, CompareError> {
    let (a, sa) = read(baseline, newest_schema)?;
    let (b, sb) = read(candidate, newest_schema)?;
    if a.scenario != b.scenario {
        return Err(CompareError::Scenario {
            baseline: baseline.to_owned(),
            candidate: candidate.to_owned(),
            a: a.scenario,
            b: b.scenario,
        });
    }
    let spec = super::CompareSpec {
        allow: allow.iter().copied().collect(),
        ..super::CompareSpec::for_baseline("http://unused:1")
    };
    let wanted = spec.allowances(&sb.endpoints);
    let mut report = ComparisonReport::judge(
        &sa,
        &sb,
        &wanted,
        Settings {
            pairing: Pairing::Unpaired,
            ..settings
        },
        (
            &baseline.display().to_string(),
            &candidate.display().to_string(),
        ),
    );
    for (side, run, file) in [("baseline", &a, baseline), ("candidate", &b, candidate)] {
        if run.partial {
            report.notes.push(format!(
                "the {side} run ({}) was partial: it stopped before its plan ended",
                file.display()
            ));
        }
    }
    Ok(report)
}
