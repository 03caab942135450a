//! `--calibrate`: a short open-model run of the starter scenario against the target, through the
//! verifier's own [`crate::run`], whose measurements set the latency budgets. The run uses a
//! copy of the scenario in a directory of its own (one steady phase of the given length, no
//! budgets, the document by absolute path), removed afterwards.

use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};

use super::render::{self, Budgets, Measured};
use super::{InitError, Prepared};
use crate::load::Stop;
use crate::report::progress::Mode;
use crate::run::RunOptions;

/// A directory removed when dropped.
struct Scratch(PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Runs `text` (the starter scenario) at its steady rate for `duration` and returns budgets
/// from what each step measured.
pub async fn calibrate(
    p: &Prepared,
    text: &str,
    duration: Duration,
    getenv: &dyn Fn(&str) -> Option<String>,
) -> Result<Budgets, InitError> {
    let target = p.target.clone();
    let rate = render::rate(p.draft.journeys.len());
    let scenario =
        calibration_scenario(text, p, rate, duration).map_err(|m| InitError::Generated {
            output: p.output.display().to_string(),
            source_doc: p.source.clone(),
            message: m,
        })?;
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let dir = std::env::temp_dir().join(format!("verifier-init-{}-{nanos}", std::process::id()));
    let io = |source| InitError::Write {
        path: dir.display().to_string(),
        source,
    };
    std::fs::create_dir(&dir).map_err(io)?;
    let scratch = Scratch(dir.clone());
    let file = scratch.0.join("calibration.yaml");
    std::fs::write(&file, scenario).map_err(io)?;
    eprintln!(
        "verifier: calibrating: {} at {rate} journeys/s against {target}",
        render::dur(duration)
    );
    let opts = RunOptions {
        scenario: file,
        target: Some(target.clone()),
        baseline_target: None,
        report_dir: scratch.0.join("report"),
        progress: Mode::Off,
        shard: None,
    };
    let out = crate::run::run(&opts, Stop::new(), getenv)
        .await
        .map_err(|source| InitError::Calibration {
            target: target.clone(),
            source: Box::new(source),
        })?;
    let steps: Vec<Measured> = out
        .report
        .endpoints
        .iter()
        .map(|e| Measured {
            name: e.name.clone(),
            requests: e.requests,
            errors: e.errors,
            p99: (e.requests > e.errors).then(|| Duration::from_micros(e.p99_us)),
        })
        .collect();
    let answered: u64 = steps
        .iter()
        .map(|s| s.requests - s.errors.min(s.requests))
        .sum();
    if answered == 0 {
        let sent: u64 = steps.iter().map(|s| s.requests).sum();
        return Err(InitError::NoAnswer {
            target,
            message: format!(
                "none of its {sent} requests succeeded ({}); nothing to set budgets from",
                out.report.verdict.reason
            ),
        });
    }
    Ok(Budgets::Calibrated {
        target,
        duration,
        rate,
        steps,
    })
}

/// The starter scenario with one steady phase, no budgets, and the document by absolute path.
fn calibration_scenario(
    text: &str,
    p: &Prepared,
    rate: f64,
    duration: Duration,
) -> Result<String, String> {
    let mut doc: Value = serde_norway::from_str(text).map_err(|e| e.to_string())?;
    let obj = doc
        .as_object_mut()
        .ok_or_else(|| "not a mapping".to_owned())?;
    obj.insert(
        "load".into(),
        json!({"open": {"phases": [{"steady": {"rate": rate, "duration": render::dur(duration)}}],
                        "max_in_flight": 64}}),
    );
    obj.remove("budgets");
    obj.insert(
        "contract".into(),
        json!({"openapi": p.document.display().to_string()}),
    );
    serde_norway::to_string(&doc).map_err(|e| e.to_string())
}
