//! `verifier init`: a starter scenario from a service's OpenAPI document, for the person writing
//! their first one. The document is read with [`crate::contract`]; [`draft`] decides journeys,
//! steps and bodies ([`sample`] makes the values); [`render`] writes the commented YAML;
//! [`calibrate`] measures the target with the verifier's own run to set the latency budgets.
//!
//! What it writes must validate: the text is planned as `validate` plans it before anything is
//! written, and nothing already on disk is replaced without `--force`.

pub mod calibrate;
pub mod draft;
pub mod render;
pub mod sample;

use std::io::Write;
use std::path::{Component, Path, PathBuf};
use std::time::Duration;

use crate::contract::Contract;
use crate::exit_codes;
use crate::run::RunError;

pub use render::Budgets;

/// The command line of `verifier init`.
#[derive(Debug, Clone)]
pub struct InitOptions {
    pub openapi: PathBuf,
    pub target: Option<String>,
    pub calibrate: Option<Duration>,
    /// `-` writes to stdout.
    pub output: PathBuf,
    pub force: bool,
}

/// Shortest and longest calibration run.
pub const CALIBRATE_MIN: Duration = Duration::from_secs(1);
pub const CALIBRATE_MAX: Duration = Duration::from_secs(600);
/// Largest document read.
const MAX_DOCUMENT_BYTES: u64 = 8 << 20;
/// Where the target goes when neither `--target` nor the document's `servers` give one.
const DEFAULT_TARGET: &str = "http://127.0.0.1:8080";

#[derive(Debug, thiserror::Error)]
pub enum InitError {
    /// The document cannot be used: unreadable, not YAML or JSON, not OpenAPI 3.x, nothing to load.
    #[error("{file}: {why}")]
    Document { file: String, why: String },
    /// The command line is wrong, or the output exists.
    #[error("{0}")]
    Usage(String),
    /// What the generator wrote does not plan: a document it handles badly.
    #[error("{output}: the scenario generated from {source_doc} does not validate ({message})")]
    Generated {
        output: String,
        source_doc: String,
        message: String,
    },
    #[error("calibration against {target}: {source}")]
    Calibration {
        target: String,
        #[source]
        source: Box<RunError>,
    },
    /// The target took connections but answered nothing the budgets could be set from.
    #[error("calibration against {target}: {message}")]
    NoAnswer { target: String, message: String },
    #[error("cannot write {path}: {source}")]
    Write {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

impl InitError {
    pub fn exit_code(&self) -> u8 {
        match self {
            InitError::Document { .. } | InitError::Usage(_) | InitError::Generated { .. } => {
                exit_codes::USAGE
            }
            InitError::Calibration { source, .. } => source.exit_code(),
            InitError::NoAnswer { .. } | InitError::Write { .. } => exit_codes::ENVIRONMENT,
        }
    }
}

/// A draft ready to render: what the document gives, where the file goes, how it names the
/// document.
pub struct Prepared {
    pub draft: draft::Draft,
    pub target: String,
    /// The document as the scenario's `contract.openapi` names it: relative to the output file.
    pub contract: String,
    /// The document's absolute path (what calibration's own scenario names).
    pub document: PathBuf,
    /// Where the scenario will be, absolute (a name in the working directory for stdout).
    pub output: PathBuf,
    pub source: String,
}

/// Reads the document and drafts the scenario; writes nothing.
pub fn prepare(openapi: &Path, output: &Path, target: Option<&str>) -> Result<Prepared, InitError> {
    let shown = openapi.display().to_string();
    let doc_err = |why: String| InitError::Document {
        file: shown.clone(),
        why,
    };
    if let Some(t) = target {
        crate::scenario::check_target(t).map_err(|m| InitError::Usage(format!("--target: {m}")))?;
    }
    let contract = load(openapi).map_err(doc_err)?;
    let d = draft::draft(&contract).map_err(|why| doc_err(format!("nothing to load: {why}")))?;
    let target = match target {
        Some(t) => t.trim_end_matches('/').to_owned(),
        None => server(&contract.doc).unwrap_or_else(|| DEFAULT_TARGET.to_owned()),
    };
    let cwd = std::env::current_dir()
        .map_err(|e| InitError::Usage(format!("cannot read the working directory: {e}")))?;
    let output_abs = if output == Path::new("-") {
        cwd.join("scenario.yaml")
    } else {
        cwd.join(output)
    };
    let out_dir = output_abs.parent().unwrap_or(&cwd).to_owned();
    let out_dir = out_dir.canonicalize().map_err(|e| {
        InitError::Usage(format!(
            "--output {}: its directory {} cannot be used: {e}",
            output.display(),
            out_dir.display()
        ))
    })?;
    let document = cwd
        .join(openapi)
        .canonicalize()
        .map_err(|e| doc_err(format!("cannot read it: {e}")))?;
    // Relative when the two share more than the root (the scenario and the document move
    // together with their repository); absolute otherwise.
    let rel = if shared(&out_dir, &document) > 1 {
        relative(&out_dir, &document)
    } else {
        document.clone()
    };
    let Some(contract_path) = rel.to_str().map(str::to_owned) else {
        return Err(doc_err(
            "its path is not UTF-8, which a scenario file cannot name".into(),
        ));
    };
    Ok(Prepared {
        draft: d,
        target,
        contract: contract_path,
        document,
        output: out_dir.join(output_abs.file_name().unwrap_or_default()),
        source: shown,
    })
}

/// The scenario text with these budgets, checked as `validate` checks a file (its environment
/// variables aside: the token is bound when the scenario runs).
pub fn text(p: &Prepared, budgets: &Budgets) -> Result<String, InitError> {
    let text = render::render(&p.draft, &p.target, &p.contract, &p.source, budgets);
    crate::plan::parse(&p.output, &text).map_err(|e| InitError::Generated {
        output: p.output.display().to_string(),
        source_doc: p.source.clone(),
        message: e.to_string(),
    })?;
    Ok(text)
}

/// `verifier init`: prepare, calibrate if asked, write. Returns a line for the terminal.
pub async fn init(
    opts: &InitOptions,
    getenv: &dyn Fn(&str) -> Option<String>,
) -> Result<String, InitError> {
    let to_stdout = opts.output == Path::new("-");
    // Refused before anything is measured; `create_new` below closes the race.
    if !to_stdout && !opts.force && opts.output.exists() {
        return Err(exists(&opts.output));
    }
    if let Some(d) = opts.calibrate {
        if !(CALIBRATE_MIN..=CALIBRATE_MAX).contains(&d) {
            return Err(InitError::Usage(format!(
                "--calibrate {}: give a duration from 1s to 10m, e.g. 30s",
                render::dur(d)
            )));
        }
        if opts.target.is_none() {
            return Err(InitError::Usage(
                "--calibrate measures a running service: give it with --target URL".into(),
            ));
        }
    }
    let p = prepare(&opts.openapi, &opts.output, opts.target.as_deref())?;
    // The starting text is checked before any load: a document the generator cannot turn into
    // a valid scenario is refused without touching the target.
    let mut out = text(&p, &Budgets::Starting)?;
    if let Some(d) = opts.calibrate {
        // The run would refuse it too, but naming a scratch file the user never sees.
        if p.draft.auth.is_some() && getenv("VERIFIER_TOKEN").is_none() {
            return Err(InitError::Usage(
                "--calibrate sends the document's credentials from the environment variable \
                 VERIFIER_TOKEN, which is not set"
                    .into(),
            ));
        }
        let budgets = calibrate::calibrate(&p, &out, d, getenv).await?;
        out = text(&p, &budgets)?;
    }
    let journeys = p.draft.journeys.len();
    let steps: usize = p.draft.journeys.iter().map(|j| j.steps.len()).sum();
    let summary = format!(
        "{journeys} {}, {steps} {}, {} operation(s) left out (listed in the file){}",
        if journeys == 1 { "journey" } else { "journeys" },
        if steps == 1 { "step" } else { "steps" },
        p.draft.skipped.len(),
        if opts.calibrate.is_some() {
            ", latency budgets calibrated"
        } else {
            ""
        }
    );
    if to_stdout {
        print!("{out}");
        return Ok(summary);
    }
    write(&opts.output, &out, opts.force)?;
    Ok(format!("{}: {summary}", opts.output.display()))
}

fn exists(path: &Path) -> InitError {
    InitError::Usage(format!(
        "--output {} exists; pass --force to replace it (nothing was written)",
        path.display()
    ))
}

/// Writes `text` to `path`: a new file only, unless `force`, which replaces it atomically.
fn write(path: &Path, text: &str, force: bool) -> Result<(), InitError> {
    let err = |source| InitError::Write {
        path: path.display().to_string(),
        source,
    };
    if !force {
        let mut f = match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(path)
        {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => return Err(exists(path)),
            Err(e) => return Err(err(e)),
        };
        return f.write_all(text.as_bytes()).map_err(err);
    }
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(format!(".{}.tmp", std::process::id()));
    let tmp = PathBuf::from(tmp);
    std::fs::write(&tmp, text).map_err(err)?;
    std::fs::rename(&tmp, path).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        err(e)
    })
}

/// Reads and indexes the document, or says why it is not one `init` can use.
pub fn load(file: &Path) -> Result<Contract, String> {
    let meta = std::fs::metadata(file).map_err(|e| format!("cannot read it: {e}"))?;
    if meta.len() > MAX_DOCUMENT_BYTES {
        return Err(format!(
            "larger than {} MiB; not a document `init` reads",
            MAX_DOCUMENT_BYTES >> 20
        ));
    }
    let text = std::fs::read_to_string(file).map_err(|e| format!("cannot read it: {e}"))?;
    from_text(file, &text)
}

/// [`load`] on text already read.
pub fn from_text(file: &Path, text: &str) -> Result<Contract, String> {
    let doc: serde_json::Value =
        serde_norway::from_str(text).map_err(|e| format!("is neither YAML nor JSON: {e}"))?;
    let Some(top) = doc.as_object() else {
        return Err("is not an OpenAPI document: its top level is not a mapping".into());
    };
    if let Some(v) = top.get("swagger") {
        return Err(format!(
            "is a Swagger {} document; `init` reads OpenAPI 3.x (convert it first, e.g. with \
             swagger2openapi)",
            v.as_str().map_or_else(|| v.to_string(), str::to_owned)
        ));
    }
    if !top.contains_key("openapi") {
        return Err("has no `openapi` field: not an OpenAPI 3.x document".into());
    }
    Contract::from_doc(file.to_owned(), doc).map_err(|m| {
        // from_doc names the file itself; the caller names it once.
        m.strip_prefix(&format!("{} ", file.display()))
            .unwrap_or(&m)
            .to_owned()
    })
}

/// The document's first server, when it is a plain http:// URL without a base path (the
/// scenario's paths are the document's paths).
fn server(doc: &serde_json::Value) -> Option<String> {
    let url = doc
        .pointer("/servers/0/url")?
        .as_str()?
        .trim_end_matches('/');
    let rest = url.strip_prefix("http://")?;
    if rest.contains('/') || rest.contains('{') {
        return None;
    }
    crate::scenario::check_target(url).ok()?;
    Some(url.to_owned())
}

/// How many leading components two paths share.
fn shared(a: &Path, b: &Path) -> usize {
    a.components()
        .zip(b.components())
        .take_while(|(x, y)| x == y)
        .count()
}

/// `to` relative to the directory `from` (both absolute).
fn relative(from: &Path, to: &Path) -> PathBuf {
    let a: Vec<Component> = from.components().collect();
    let b: Vec<Component> = to.components().collect();
    let common = shared(from, to);
    let mut out = PathBuf::new();
    for _ in common..a.len() {
        out.push("..");
    }
    for c in &b[common..] {
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_paths() {
        assert_eq!(
            relative(
                Path::new("/w/scenarios"),
                Path::new("/w/svc/api/openapi.yaml")
            ),
            PathBuf::from("../svc/api/openapi.yaml")
        );
        assert_eq!(
            relative(Path::new("/w"), Path::new("/w/openapi.yaml")),
            PathBuf::from("openapi.yaml")
        );
    }

    #[test]
    fn documents_init_cannot_use_say_why() {
        let f = Path::new("api.yaml");
        let why = |t: &str| from_text(f, t).err().unwrap();
        assert!(why("swagger: '2.0'\npaths: {}\n").contains("Swagger 2.0"));
        assert!(why("{ not: [yaml").contains("neither YAML nor JSON"));
        assert!(why("- a\n- b\n").contains("top level is not a mapping"));
        assert!(why("info: {title: x}\n").contains("no `openapi` field"));
        assert!(why("openapi: 2.5.0\npaths: {}\n").contains("not an OpenAPI 3.x"));
        let empty = from_text(
            f,
            "openapi: 3.0.3\ninfo: {title: x, version: '1'}\npaths: {}\n",
        )
        .unwrap();
        assert!(draft::draft(&empty).unwrap_err().contains("no operations"));
    }

    #[test]
    fn servers_give_the_target_only_when_usable() {
        use serde_json::json;
        assert_eq!(
            server(&json!({"servers": [{"url": "http://127.0.0.1:8080/"}]})).as_deref(),
            Some("http://127.0.0.1:8080")
        );
        assert_eq!(
            server(&json!({"servers": [{"url": "https://api.example.com"}]})),
            None
        );
        assert_eq!(server(&json!({"servers": [{"url": "http://h/api"}]})), None);
    }
}
