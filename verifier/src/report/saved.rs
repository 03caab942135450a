//! `verifier report REPORT.json`: a saved `report.json` read back for rendering again (an
//! archived run, a merged sharded run). Every way the file can be wrong is named with the file:
//! unreadable, truncated or not JSON, another schema version, not a report, a series whose
//! histograms do not decode. Output paths are checked before anything is rendered.

use std::path::{Path, PathBuf};

use super::{Report, SCHEMA_VERSION};
use crate::compare::two_runs::MAX_REPORT_BYTES;

#[derive(Debug, thiserror::Error)]
#[error("{}: {message}", file.display())]
pub struct SavedError {
    pub file: PathBuf,
    pub message: String,
}

fn err(file: &Path, message: impl Into<String>) -> SavedError {
    SavedError {
        file: file.to_owned(),
        message: message.into(),
    }
}

/// Reads and checks a saved report.
pub fn read(file: &Path) -> Result<Report, SavedError> {
    let meta = std::fs::metadata(file).map_err(|e| err(file, format!("cannot read: {e}")))?;
    if meta.is_dir() {
        return Err(err(file, "is a directory; give the report.json inside it"));
    }
    if meta.len() > MAX_REPORT_BYTES {
        return Err(err(
            file,
            format!(
                "{} bytes: larger than any report this verifier writes ({} MiB at most)",
                meta.len(),
                MAX_REPORT_BYTES >> 20
            ),
        ));
    }
    let text = std::fs::read(file).map_err(|e| err(file, format!("cannot read: {e}")))?;
    let value: serde_json::Value = serde_json::from_slice(&text).map_err(|e| {
        let what = if e.is_eof() {
            "truncated: the JSON ends early"
        } else {
            "not JSON"
        };
        err(
            file,
            format!("{what} ({e}); give the report.json a run wrote"),
        )
    })?;
    let Some(obj) = value.as_object() else {
        return Err(err(
            file,
            "not a verifier report: the JSON is not an object",
        ));
    };
    match obj.get("schema_version").map(|v| v.as_u64()) {
        None => {
            return Err(err(
                file,
                "not a verifier report: it has no `schema_version`",
            ));
        }
        Some(None) => {
            return Err(err(
                file,
                "not a verifier report: `schema_version` is not a whole number",
            ));
        }
        Some(Some(v)) if v != u64::from(SCHEMA_VERSION) => {
            let advice = if v < u64::from(SCHEMA_VERSION) {
                "render it with the verifier that wrote it, or run the scenario again"
            } else {
                "use a newer verifier"
            };
            return Err(err(
                file,
                format!(
                    "written with report schema {v}; this verifier renders schema {SCHEMA_VERSION}: {advice}"
                ),
            ));
        }
        Some(Some(_)) => {}
    }
    let report: Report = serde_json::from_value(value)
        .map_err(|e| err(file, format!("not a verifier report: {e}")))?;
    if let Some(s) = &report.series {
        crate::record::series::Series::from_report(s)
            .map_err(|e| err(file, format!("series: {e}")))?;
    }
    for e in report
        .endpoints
        .iter()
        .chain(std::iter::once(&report.overall))
    {
        crate::record::decode_histogram(&e.histogram)
            .map_err(|x| err(file, format!("endpoint `{}`: histogram: {x}", e.name)))?;
    }
    Ok(report)
}

/// Checks that `path` can be written, before anything is rendered: its directory exists and
/// takes a new file, and the path is not a directory. Leaves nothing behind.
pub fn check_writable(path: &Path) -> Result<(), SavedError> {
    if path.is_dir() {
        return Err(err(path, "is a directory; give a file name"));
    }
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let probe = dir.join(format!(
        ".{}.{}.probe",
        path.file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
        std::process::id()
    ));
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&probe)
    {
        Ok(_) => {
            let _ = std::fs::remove_file(&probe);
        }
        Err(e) => return Err(err(path, format!("cannot be written: {e}"))),
    }
    if path.exists() {
        std::fs::OpenOptions::new()
            .write(true)
            .open(path)
            .map_err(|e| err(path, format!("cannot be written: {e}")))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, body: &str) -> PathBuf {
        let p = dir.join("report.json");
        std::fs::write(&p, body).unwrap();
        p
    }

    #[test]
    fn bad_inputs_are_named() {
        let t = tempfile::tempdir().unwrap();
        let cases = [
            ("{\"schema_version\": 2, \"scen", "truncated"),
            ("hello", "not JSON"),
            ("[1, 2]", "not an object"),
            ("{\"name\": \"x\"}", "no `schema_version`"),
            ("{\"schema_version\": 1}", "report schema 1"),
            ("{\"schema_version\": 9}", "newer verifier"),
            (
                "{\"schema_version\": 2}",
                "not a verifier report: missing field",
            ),
        ];
        for (body, want) in cases {
            let p = write(t.path(), body);
            let e = read(&p).unwrap_err().to_string();
            assert!(e.contains(want), "{body}: {e}");
            assert!(e.starts_with(&p.display().to_string()), "{e}");
        }
        let e = read(&t.path().join("missing.json"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("missing.json: cannot read"), "{e}");
    }

    #[test]
    fn unwritable_outputs_are_refused() {
        let t = tempfile::tempdir().unwrap();
        check_writable(&t.path().join("out.html")).unwrap();
        assert_eq!(std::fs::read_dir(t.path()).unwrap().count(), 0);
        let e = check_writable(&t.path().join("no-such-dir/out.html")).unwrap_err();
        assert!(e.to_string().contains("cannot be written"), "{e}");
        let e = check_writable(t.path()).unwrap_err();
        assert!(e.to_string().contains("is a directory"), "{e}");
    }
}
