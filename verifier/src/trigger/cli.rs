//! `verifier triggers render FILE [--out DIR] [--check]`: writes the Prometheus rules generated
//! from a trigger file, or (with `--check`) fails when the checked-in rules drifted from it.
//! `verifier triggers check FILE [--prometheus URL]`: the definition errors a run would meet.

use std::path::{Path, PathBuf};

use crate::exit_codes;

#[derive(Debug, clap::Args)]
pub struct TriggersArgs {
    #[command(subcommand)]
    pub command: TriggersCommand,
}

#[derive(Debug, clap::Subcommand)]
pub enum TriggersCommand {
    /// Write Prometheus recording and alerting rules (rules.yml) from a trigger file.
    Render(RenderArgs),
    /// Check a trigger file before a run: exit 2 when it is wrong. With --prometheus, also when
    /// Prometheus refuses an expression or has no series of a metric the triggers read.
    Check(CheckArgs),
}

#[derive(Debug, clap::Args)]
pub struct CheckArgs {
    /// Trigger definitions (YAML).
    pub file: PathBuf,
    /// Prometheus base URL that scrapes the service, e.g. http://127.0.0.1:9090.
    #[arg(long, env = "VERIFIER_PROMETHEUS")]
    pub prometheus: Option<String>,
    /// How far back a metric's series may have last been seen.
    #[arg(long, default_value = "15m", value_parser = humantime::parse_duration)]
    pub lookback: std::time::Duration,
}

#[derive(Debug, clap::Args)]
pub struct RenderArgs {
    /// Trigger definitions (YAML), e.g. dashboards/triggers.yaml.
    pub file: PathBuf,
    /// Directory for rules.yml; defaults to `prometheus/` beside FILE.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Write nothing; exit 1 with a diff when the existing rules.yml differs (CI drift check).
    #[arg(long)]
    pub check: bool,
}

pub const RULES_FILE: &str = "rules.yml";

/// Runs a `triggers` subcommand; returns the exit code (2 for a bad trigger file).
pub fn run(args: &TriggersArgs) -> u8 {
    match &args.command {
        TriggersCommand::Render(a) => render(a),
        TriggersCommand::Check(a) => check(a),
    }
}

fn check(a: &CheckArgs) -> u8 {
    let loaded = match super::load_file(&a.file) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("{e}");
            return exit_codes::USAGE;
        }
    };
    let Some(url) = &a.prometheus else {
        println!(
            "{}: ok ({} triggers; metrics and PromQL not checked without --prometheus)",
            a.file.display(),
            loaded.defs.triggers.len()
        );
        return exit_codes::PASS;
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("verifier: cannot start the async runtime: {e}");
            return exit_codes::ENVIRONMENT;
        }
    };
    runtime.block_on(check_against(&loaded, url, a.lookback))
}

async fn check_against(loaded: &super::Loaded, url: &str, lookback: std::time::Duration) -> u8 {
    use super::eval::{PreflightError, exported_families, preflight};
    use super::promql::Scale;
    let client = match crate::prom::Client::new(url, crate::prom::DEFAULT_TIMEOUT) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("verifier: Prometheus client: {e}");
            return exit_codes::ENVIRONMENT;
        }
    };
    // Both scales: production rules and drill queries must each be acceptable.
    for scale in [Scale::Production, Scale::Drill] {
        match preflight(&loaded.defs, &client, scale).await {
            Ok(()) => {}
            Err(PreflightError::Definition(d)) => {
                eprintln!("{}", loaded.bad_definition(d));
                return exit_codes::USAGE;
            }
            Err(PreflightError::Unavailable(e)) => {
                eprintln!("verifier: {e}");
                return exit_codes::ENVIRONMENT;
            }
        }
    }
    let found = match exported_families(&loaded.defs, &client, lookback).await {
        Ok(f) => f,
        Err(e) => {
            eprintln!("verifier: {e}");
            return exit_codes::ENVIRONMENT;
        }
    };
    if let Err(e) = loaded.check_exported(&found) {
        eprintln!(
            "{e} (no series in the last {})",
            humantime::format_duration(lookback)
        );
        return exit_codes::USAGE;
    }
    println!(
        "{}: ok ({} triggers; Prometheus at {url} accepts every expression and has every metric)",
        loaded.file.display(),
        loaded.defs.triggers.len()
    );
    exit_codes::PASS
}

fn render(a: &RenderArgs) -> u8 {
    let loaded = match super::load_file(&a.file) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("{e}");
            return exit_codes::USAGE;
        }
    };
    let out_dir = a
        .out
        .clone()
        .unwrap_or_else(|| a.file.parent().unwrap_or(Path::new(".")).join("prometheus"));
    let target = out_dir.join(RULES_FILE);
    // The file name only: the header must not change with the directory CI runs from.
    let source = a.file.file_name().map_or_else(
        || a.file.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    );
    let rendered = super::promql::render_rules(&loaded, &source);
    if a.check {
        let current = match std::fs::read_to_string(&target) {
            Ok(s) => s,
            Err(e) => {
                eprintln!(
                    "{}: cannot read ({e}); run `verifier triggers render {}`",
                    target.display(),
                    a.file.display()
                );
                return exit_codes::GATE_FAILED;
            }
        };
        if current == rendered {
            println!("{}: up to date with {}", target.display(), a.file.display());
            return exit_codes::PASS;
        }
        eprintln!(
            "{} differs from what {} renders (- checked in, + rendered); run `verifier triggers render {}`:",
            target.display(),
            a.file.display(),
            a.file.display()
        );
        eprint!("{}", line_diff(&current, &rendered, 60));
        return exit_codes::GATE_FAILED;
    }
    if let Err(e) =
        std::fs::create_dir_all(&out_dir).and_then(|()| std::fs::write(&target, &rendered))
    {
        eprintln!("{}: cannot write: {e}", target.display());
        return exit_codes::ENVIRONMENT;
    }
    println!(
        "{}: {} triggers from {}",
        target.display(),
        loaded.defs.triggers.len(),
        a.file.display()
    );
    exit_codes::PASS
}

/// A unified-style line diff (longest common subsequence), at most `limit` changed lines shown,
/// each with its line number in the old or new text.
pub fn line_diff(old: &str, new: &str, limit: usize) -> String {
    let a: Vec<&str> = old.lines().collect();
    let b: Vec<&str> = new.lines().collect();
    // Rule files are a few hundred lines; the quadratic table is small.
    let mut lcs = vec![vec![0u32; b.len() + 1]; a.len() + 1];
    for i in (0..a.len()).rev() {
        for j in (0..b.len()).rev() {
            lcs[i][j] = if a[i] == b[j] {
                lcs[i + 1][j + 1] + 1
            } else {
                lcs[i + 1][j].max(lcs[i][j + 1])
            };
        }
    }
    let (mut i, mut j, mut shown, mut hidden) = (0, 0, 0usize, 0usize);
    let mut out = String::new();
    let mut emit = |line: String| {
        if shown < limit {
            out.push_str(&line);
            out.push('\n');
            shown += 1;
        } else {
            hidden += 1;
        }
    };
    while i < a.len() || j < b.len() {
        if i < a.len() && j < b.len() && a[i] == b[j] {
            i += 1;
            j += 1;
        } else if i < a.len() && (j == b.len() || lcs[i + 1][j] >= lcs[i][j + 1]) {
            emit(format!("-{:>4} {}", i + 1, a[i]));
            i += 1;
        } else {
            emit(format!("+{:>4} {}", j + 1, b[j]));
            j += 1;
        }
    }
    if hidden > 0 {
        out.push_str(&format!("... and {hidden} more changed lines\n"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::line_diff;

    #[test]
    fn diff_names_changed_lines() {
        let d = line_diff("a\nb\nc\n", "a\nB\nc\nd\n", 10);
        assert_eq!(d, "-   2 b\n+   2 B\n+   4 d\n");
        assert_eq!(line_diff("x\n", "x\n", 10), "");
        assert!(line_diff("", "1\n2\n3\n", 1).ends_with("... and 2 more changed lines\n"));
    }
}
