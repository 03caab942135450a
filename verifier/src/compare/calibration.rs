//! The noise floor: an A/A run (the same build on both sides) shows how large a change this
//! machine cannot tell from nothing at the declared confidence. A comparison whose `allow` lies
//! below that floor is told so before it starts — it can only end inconclusive or by chance.

use std::path::Path;
use std::time::Duration;

use serde::Deserialize;

use super::{Change, Judgement, Statistic};

#[derive(Debug, Deserialize)]
struct Saved {
    scenario: String,
    planned_s: f64,
    #[serde(default)]
    comparison: Option<SavedComparison>,
}

#[derive(Debug, Deserialize)]
struct SavedComparison {
    mode: String,
    judgements: Vec<Judgement>,
}

/// The floor of one statistic of one endpoint: the largest change the A/A interval admits.
#[derive(Debug, Clone)]
pub struct Floor {
    pub endpoint: String,
    pub statistic: Statistic,
    pub floor: f64,
}

/// Reads the floors from an A/A run's `report.json`, scaled to a run of `planned` (an interval
/// narrows as the square root of the load). Errors name what is wrong with the file.
pub fn floors(file: &Path, scenario: &str, planned: Duration) -> Result<Vec<Floor>, String> {
    let text = std::fs::read_to_string(file).map_err(|e| format!("cannot read: {e}"))?;
    if text.len() as u64 > super::two_runs::MAX_REPORT_BYTES {
        return Err("larger than any report this verifier writes".into());
    }
    let saved: Saved =
        serde_json::from_str(&text).map_err(|e| format!("not a verifier report.json ({e})"))?;
    if saved.scenario != scenario {
        return Err(format!(
            "the calibration run is of scenario `{}`, not `{scenario}`",
            saved.scenario
        ));
    }
    let c = saved.comparison.ok_or_else(|| {
        "the calibration run has no comparison: calibrate with a paired A/A run of this scenario"
            .to_owned()
    })?;
    if c.mode != "paired" {
        return Err("the calibration run is not a paired run".into());
    }
    let scale = if planned.as_secs_f64() > 0.0 && saved.planned_s > 0.0 {
        (saved.planned_s / planned.as_secs_f64()).sqrt()
    } else {
        1.0
    };
    Ok(c.judgements
        .iter()
        .filter(|j| j.low.is_finite() && j.high.is_finite())
        .map(|j| Floor {
            endpoint: j.endpoint.clone(),
            statistic: j.statistic,
            floor: j.low.abs().max(j.high.abs()) * scale,
        })
        .collect())
}

/// A note for each allowance below its floor.
pub fn below_floor(floors: &[Floor], wanted: &[(String, Statistic, Change)]) -> Vec<String> {
    let mut out = Vec::new();
    for (e, s, c) in wanted {
        if let Some(f) = floors
            .iter()
            .find(|f| &f.endpoint == e && f.statistic == *s)
            && c.value.abs() < f.floor
        {
            out.push(format!(
                "compare: `{e}` {s} allows {c}, below this machine's noise floor for this scenario \
                 ({} from the A/A calibration, scaled to this run's length): expect inconclusive \
                 or chance results; allow more or run longer",
                super::fmt_change(*s, f.floor).trim_start_matches('+')
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn aa_report(dir: &Path, scenario: &str, mode: &str) -> std::path::PathBuf {
        let p = dir.join(format!("{scenario}-{mode}.json"));
        let body = serde_json::json!({
            "scenario": scenario,
            "planned_s": 20.0,
            "comparison": {
                "mode": mode,
                "judgements": [{
                    "endpoint": "e", "statistic": "p50", "baseline": 15000.0,
                    "candidate": 15100.0, "change": 0.006, "low": -0.02, "high": 0.03,
                    "allowed": "+5%", "decision": "no_regression", "windows": 20,
                    "baseline_requests": 2000, "candidate_requests": 2000
                }]
            }
        });
        std::fs::write(&p, body.to_string()).unwrap();
        p
    }

    #[test]
    fn an_allowance_below_the_scaled_floor_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let f = aa_report(dir.path(), "s", "paired");
        // The A/A interval reaches 3 % over 20 s; over 80 s it narrows to 1.5 %.
        let floors = floors(&f, "s", Duration::from_secs(80)).unwrap();
        assert!((floors[0].floor - 0.015).abs() < 1e-9, "{floors:?}");
        let wanted = |a: &str| vec![("e".to_owned(), Statistic::P50, Change::parse(a).unwrap())];
        let notes = below_floor(&floors, &wanted("+1%"));
        assert_eq!(notes.len(), 1);
        assert!(
            notes[0].contains("noise floor") && notes[0].contains("1.5%"),
            "{notes:?}"
        );
        assert!(below_floor(&floors, &wanted("+2%")).is_empty());
    }

    #[test]
    fn a_calibration_of_another_scenario_or_unpaired_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let other = aa_report(dir.path(), "other", "paired");
        let e = floors(&other, "s", Duration::from_secs(20)).unwrap_err();
        assert!(e.contains("scenario `other`"), "{e}");
        let unpaired = aa_report(dir.path(), "s", "unpaired");
        let e = floors(&unpaired, "s", Duration::from_secs(20)).unwrap_err();
        assert!(e.contains("not a paired run"), "{e}");
    }
}
