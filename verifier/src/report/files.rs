//! The report directory a run owns. Claimed before anything starts, so an unwritable directory
//! or a second run aimed at the same one is refused at once, not after the whole load:
//!
//! - a lock file (`.verifier.lock`, holding the run's process id) is created exclusively; a lock
//!   whose process is gone (a run killed with SIGKILL) is taken over, a live one refuses the run;
//! - the previous run's reports move to `previous/` (one generation kept), so a run that dies
//!   before it writes never leaves the last run's verdict behind for CI to publish;
//! - every report is written under a unique temporary name in the same directory and renamed into
//!   place, so a reader never sees half a file and two writers never share a temporary file.

use std::fs::OpenOptions;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use crate::exit_codes;

use super::Report;

/// The files a run writes, in the order it writes them.
pub const REPORT_FILES: [&str; 4] = ["report.json", "junit.xml", "summary.md", "report.html"];
const LOCK: &str = ".verifier.lock";

/// Why a report directory cannot be claimed.
#[derive(Debug, thiserror::Error)]
pub enum DirError {
    #[error("cannot write reports into {}: {source}", dir.display())]
    Unwritable {
        dir: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "another run (process {pid}) is writing into {}; wait for it, or give this one its own --report-dir",
        dir.display()
    )]
    Busy { dir: PathBuf, pid: u32 },
}

impl DirError {
    /// An unwritable directory is the machine's (3); two runs at one directory is how the
    /// verifier was called (2).
    pub fn exit_code(&self) -> u8 {
        match self {
            DirError::Unwritable { .. } => exit_codes::ENVIRONMENT,
            DirError::Busy { .. } => exit_codes::USAGE,
        }
    }
}

/// A claimed report directory; the claim ends when this is dropped.
#[derive(Debug)]
pub struct ReportDir {
    dir: PathBuf,
    lock: PathBuf,
}

fn alive(pid: u32) -> bool {
    let Ok(pid) = i32::try_from(pid) else {
        return false;
    };
    // Signal 0 checks that the process exists without touching it; EPERM means it exists too.
    match nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None) {
        Ok(()) => true,
        Err(e) => e == nix::errno::Errno::EPERM,
    }
}

impl ReportDir {
    /// Creates the directory if needed, takes its lock, and moves the previous reports aside.
    pub fn claim(dir: &Path) -> Result<ReportDir, DirError> {
        let unwritable = |source| DirError::Unwritable {
            dir: dir.to_owned(),
            source,
        };
        std::fs::create_dir_all(dir).map_err(unwritable)?;
        let lock = dir.join(LOCK);
        // Two tries: the second after removing a lock its dead owner left behind.
        for _ in 0..2 {
            match OpenOptions::new().write(true).create_new(true).open(&lock) {
                Ok(mut f) => {
                    write!(f, "{}", std::process::id()).map_err(unwritable)?;
                    let claimed = ReportDir {
                        dir: dir.to_owned(),
                        lock,
                    };
                    claimed.set_previous_aside().map_err(unwritable)?;
                    return Ok(claimed);
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    let owner = std::fs::read_to_string(&lock)
                        .ok()
                        .and_then(|s| s.trim().parse::<u32>().ok());
                    match owner {
                        Some(pid) if alive(pid) => {
                            return Err(DirError::Busy {
                                dir: dir.to_owned(),
                                pid,
                            });
                        }
                        // Dead, or a lock being written this instant: a dead owner's lock is
                        // removed; an unreadable one is treated as dead after one retry.
                        _ => {
                            let _ = std::fs::remove_file(&lock);
                        }
                    }
                }
                Err(e) => return Err(unwritable(e)),
            }
        }
        Err(unwritable(std::io::Error::other(
            "its lock file could not be taken over",
        )))
    }

    fn set_previous_aside(&self) -> std::io::Result<()> {
        let present: Vec<&str> = REPORT_FILES
            .iter()
            .copied()
            .filter(|n| self.dir.join(n).exists())
            .collect();
        if present.is_empty() {
            return Ok(());
        }
        let previous = self.dir.join("previous");
        std::fs::create_dir_all(&previous)?;
        for n in REPORT_FILES {
            let _ = std::fs::remove_file(previous.join(n));
        }
        for n in present {
            std::fs::rename(self.dir.join(n), previous.join(n))?;
        }
        Ok(())
    }

    pub fn path(&self) -> &Path {
        &self.dir
    }

    /// Writes `report.json`, `junit.xml`, `summary.md` and `report.html`, each atomically.
    pub fn write_all(&self, r: &Report) -> std::io::Result<Vec<PathBuf>> {
        write_all(&self.dir, r)
    }
}

impl Drop for ReportDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.lock);
    }
}

/// Writes `report.json`, `junit.xml`, `summary.md` and `report.html` into `dir`, each under a unique temporary
/// name first and then renamed, so a reader never sees half a report.
pub fn write_all(dir: &Path, r: &Report) -> std::io::Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir)?;
    let bodies = [
        serde_json::to_string_pretty(r).map_err(std::io::Error::other)? + "\n",
        super::junit(r),
        super::markdown(r),
        super::html::render(r),
    ];
    let mut out = Vec::new();
    for (name, body) in REPORT_FILES.iter().zip(bodies) {
        let p = dir.join(name);
        write_atomically(&p, body.as_bytes())?;
        out.push(p);
    }
    Ok(out)
}

/// `path` gets `body` whole or not at all.
pub fn write_atomically(path: &Path, body: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned());
    let tmp = dir.join(format!(
        ".{}.{}.{}.tmp",
        name.unwrap_or_default(),
        std::process::id(),
        uuid::Uuid::new_v4().simple()
    ));
    let written = std::fs::write(&tmp, body).and_then(|()| std::fs::rename(&tmp, path));
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_claim_is_refused_while_the_first_holds() {
        let t = tempfile::tempdir().unwrap();
        let first = ReportDir::claim(t.path()).unwrap();
        let e = ReportDir::claim(t.path()).unwrap_err();
        assert!(
            matches!(e, DirError::Busy { pid, .. } if pid == std::process::id()),
            "{e}"
        );
        assert_eq!(e.exit_code(), exit_codes::USAGE);
        drop(first);
        ReportDir::claim(t.path()).unwrap();
    }

    #[test]
    fn a_dead_owners_lock_is_taken_over() {
        let t = tempfile::tempdir().unwrap();
        // Process ids wrap below 2^22 on Linux; this one is never a live process.
        std::fs::write(t.path().join(LOCK), "4194999").unwrap();
        ReportDir::claim(t.path()).unwrap();
    }

    #[test]
    fn previous_reports_move_aside_so_none_is_left_behind() {
        let t = tempfile::tempdir().unwrap();
        std::fs::write(t.path().join("report.json"), "old").unwrap();
        let _d = ReportDir::claim(t.path()).unwrap();
        assert!(!t.path().join("report.json").exists());
        assert_eq!(
            std::fs::read_to_string(t.path().join("previous/report.json")).unwrap(),
            "old"
        );
    }

    #[test]
    fn an_unwritable_directory_is_refused_before_anything_starts() {
        let t = tempfile::tempdir().unwrap();
        let file = t.path().join("a-file");
        std::fs::write(&file, "").unwrap();
        let e = ReportDir::claim(&file.join("reports")).unwrap_err();
        assert!(matches!(e, DirError::Unwritable { .. }), "{e}");
        assert_eq!(e.exit_code(), exit_codes::ENVIRONMENT);
    }

    #[test]
    fn atomic_writes_leave_no_temporary_file() {
        let t = tempfile::tempdir().unwrap();
        let p = t.path().join("x.json");
        write_atomically(&p, b"1").unwrap();
        write_atomically(&p, b"2").unwrap();
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "2");
        assert_eq!(std::fs::read_dir(t.path()).unwrap().count(), 1);
    }
}
