//! The process logger. Installed before goose runs: goose installs its own stdout logger
//! only when none exists, and that one prints a line per failed request.

use log::{Level, LevelFilter, Log, Metadata, Record};

struct StderrLogger;

impl Log for StderrLogger {
    fn enabled(&self, m: &Metadata<'_>) -> bool {
        // Our recorder counts every failure; goose's per-request lines add nothing.
        m.level() <= Level::Warn && !m.target().starts_with("goose")
    }
    fn log(&self, r: &Record<'_>) {
        if self.enabled(r.metadata()) {
            eprintln!(
                "verifier: {}: {}",
                r.level().as_str().to_lowercase(),
                r.args()
            );
        }
    }
    fn flush(&self) {}
}

static LOGGER: StderrLogger = StderrLogger;

/// Idempotent; a logger someone else installed first stays.
pub fn install() {
    if log::set_logger(&LOGGER).is_ok() {
        log::set_max_level(LevelFilter::Warn);
    }
}
