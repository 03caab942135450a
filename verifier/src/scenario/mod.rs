//! The scenario file's vocabulary: the core sections every scenario has (defaults, journeys,
//! load, budgets), durations and templates, and the located errors every section reports. A leaf:
//! each feature owns its own section's types and validation, and `plan` assembles the document.

pub mod locate;
pub mod spans;
pub mod template;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use schemars::JsonSchema;
use serde::{Deserialize, Deserializer, Serialize};

pub use template::{Template, TemplateContext};

/// The core sections every scenario has, borrowed from the document `plan` assembles: what the
/// load engines need.
#[derive(Debug, Clone, Copy)]
pub struct Core<'a> {
    pub name: &'a str,
    pub target: Option<&'a str>,
    pub defaults: &'a Defaults,
    pub journeys: &'a [Journey],
    pub load: &'a Load,
}

/// Settings shared by every request.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Defaults {
    /// Whole-request deadline, from the intended send time to the last body byte.
    #[serde(default = "default_timeout")]
    pub timeout: Dur,
    /// Deadline for opening a TCP connection; a target that does not answer within it is down.
    #[serde(default = "default_connect_timeout")]
    pub connect_timeout: Dur,
    /// Headers sent with every request; values are templates (e.g. `Bearer ${env.TOKEN}`).
    #[serde(default)]
    pub headers: BTreeMap<String, Template>,
}

impl Default for Defaults {
    fn default() -> Self {
        Defaults {
            timeout: default_timeout(),
            connect_timeout: default_connect_timeout(),
            headers: BTreeMap::new(),
        }
    }
}

fn default_timeout() -> Dur {
    Dur(Duration::from_secs(5))
}
fn default_connect_timeout() -> Dur {
    Dur(Duration::from_secs(2))
}

/// A sequence of requests one user performs in order.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Journey {
    pub name: String,
    /// Relative share of users or arrivals that run this journey.
    #[serde(default = "one")]
    pub weight: std::num::NonZeroU32,
    /// Pause between consecutive steps, not after the last one (closed model only: open-model
    /// arrivals never wait, and a one-step journey has nothing to pause between).
    #[serde(default)]
    pub think_time: Option<Dur>,
    pub steps: Vec<Step>,
}

fn one() -> std::num::NonZeroU32 {
    std::num::NonZeroU32::MIN
}

/// One HTTP request.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Step {
    /// Endpoint name: the key budgets and reports use. Steps sharing a name share histograms.
    pub name: String,
    pub method: Method,
    /// Path template, e.g. `/v1/orders/${order_id}`.
    pub path: Template,
    #[serde(default)]
    pub headers: BTreeMap<String, Template>,
    #[serde(default)]
    pub body: Option<Body>,
    /// Values taken from the response and usable as `${name}` in later steps of the journey.
    #[serde(default)]
    pub capture: BTreeMap<String, Capture>,
    /// Statuses that count as success; by default any 2xx or 3xx.
    #[serde(default)]
    pub expect_status: Vec<u16>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "UPPERCASE")]
pub enum Method {
    Get,
    Post,
    Put,
    Patch,
    Delete,
    Head,
}

impl Method {
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Post => "POST",
            Method::Put => "PUT",
            Method::Patch => "PATCH",
            Method::Delete => "DELETE",
            Method::Head => "HEAD",
        }
    }
}

/// Request body. Strings inside a JSON body are templates; a string that is exactly
/// `${seq}` or `${random(a,b)}` becomes a JSON number.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
pub enum Body {
    Json(serde_json::Value),
    Text(Template),
}

/// Where a captured value comes from.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
pub enum Capture {
    /// JSON Pointer (RFC 6901) into the response body, e.g. `/id`.
    Json(String),
    /// Response header name, e.g. `Location`.
    Header(String),
}

/// The load model.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
pub enum Load {
    /// Arrival rate: requests start on a schedule whatever the target does (wrk2 style).
    Open(OpenLoad),
    /// Virtual users: each runs journeys back to back with think time (goose).
    Closed(ClosedLoad),
}

#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct OpenLoad {
    pub phases: Vec<RatePhase>,
    /// Cap on requests in flight; an arrival that finds the cap reached counts as the
    /// generator falling behind, which makes the result inconclusive.
    #[serde(default = "default_max_in_flight")]
    pub max_in_flight: u32,
}

fn default_max_in_flight() -> u32 {
    512
}

/// An arrival-rate phase. Rates are journeys started per second.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
pub enum RatePhase {
    /// Rate changes linearly from `from` to `to`.
    Ramp { from: f64, to: f64, duration: Dur },
    /// Constant rate.
    Steady { rate: f64, duration: Dur },
    /// Constant rate, reported separately as a spike.
    Spike { rate: f64, duration: Dur },
}

#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ClosedLoad {
    pub phases: Vec<UserPhase>,
}

/// A virtual-user phase.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
pub enum UserPhase {
    /// Users change linearly from the current count to `users`.
    Ramp { users: u32, duration: Dur },
    /// The current count holds.
    Steady { duration: Dur },
    /// Jump to `users` at once, hold, then return to the previous count.
    Spike { users: u32, duration: Dur },
}

/// Gate rules.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Budgets {
    /// Fewer samples than this makes a latency rule inconclusive.
    #[serde(default = "default_min_samples")]
    pub min_samples: u64,
    /// Error-rate ceiling as a fraction (0.01 = 1 %); errors are timeouts, connection
    /// failures, resets and unexpected statuses.
    #[serde(default)]
    pub error_rate: Option<f64>,
    /// Minimum achieved throughput over the whole run, requests per second.
    #[serde(default)]
    pub min_throughput: Option<f64>,
    /// Latency budgets per endpoint name; `"*"` means all requests together.
    #[serde(default)]
    pub endpoints: BTreeMap<String, LatencyBudget>,
    /// Also check the latency and error-rate budgets over every sliding window of this size.
    #[serde(default)]
    pub window: Option<Dur>,
    /// Stop the load as soon as a sliding window breaches a budget.
    #[serde(default)]
    pub abort_on_breach: bool,
}

fn default_min_samples() -> u64 {
    100
}

/// Latency ceilings; any subset may be given.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LatencyBudget {
    pub p50: Option<Dur>,
    pub p90: Option<Dur>,
    pub p95: Option<Dur>,
    pub p99: Option<Dur>,
    pub p999: Option<Dur>,
    pub max: Option<Dur>,
}

impl LatencyBudget {
    /// (label, quantile, ceiling); `max` is quantile 1.0.
    pub fn rules(&self) -> Vec<(&'static str, f64, Duration)> {
        [
            ("p50", 0.50, self.p50),
            ("p90", 0.90, self.p90),
            ("p95", 0.95, self.p95),
            ("p99", 0.99, self.p99),
            ("p99.9", 0.999, self.p999),
            ("max", 1.0, self.max),
        ]
        .into_iter()
        .filter_map(|(l, q, d)| d.map(|d| (l, q, d.0)))
        .collect()
    }
}

/// A duration written the human way: `250ms`, `1.5s`, `2m`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dur(pub Duration);

/// Written back the way a person writes it (`2s`, `250ms`), so the schema's defaults and
/// anything serialized from a scenario parse again as durations.
impl Serialize for Dur {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// The largest unit that writes the duration exactly: `1h`, `2m`, `2s`, `250ms`, `10us`.
impl fmt::Display for Dur {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let d = self.0;
        let (secs, nanos) = (d.as_secs(), d.subsec_nanos());
        if nanos == 0 {
            match secs {
                0 => f.write_str("0s"),
                s if s.is_multiple_of(3600) => write!(f, "{}h", s / 3600),
                s if s.is_multiple_of(60) => write!(f, "{}m", s / 60),
                s => write!(f, "{s}s"),
            }
        } else if nanos.is_multiple_of(1_000_000) {
            write!(f, "{}ms", d.as_millis())
        } else if nanos.is_multiple_of(1_000) {
            write!(f, "{}us", d.as_micros())
        } else {
            // Below a microsecond only seconds with a fraction say it exactly.
            write!(f, "{secs}.{nanos:09}s")
        }
    }
}

impl<'de> Deserialize<'de> for Dur {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_str(ParseVisitor(DURATION_EXPECTED, |s: &str| {
            parse_duration(s).map(Dur)
        }))
    }
}

/// What a duration field expects, in a type error (`duration: 10` is not a duration).
const DURATION_EXPECTED: &str = "a duration with its unit: us (or µs), ms, s, m or h, e.g. 250ms";

/// Parses a string inside the deserializer's visit, so errors carry the scalar's position.
pub struct ParseVisitor<F>(pub &'static str, pub F);

impl<'de, T, F: FnOnce(&str) -> Result<T, String>> serde::de::Visitor<'de> for ParseVisitor<F> {
    type Value = T;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<T, E> {
        (self.1)(v).map_err(E::custom)
    }
}

/// The longest duration any field takes; fields have tighter bounds of their own (`plan`'s
/// bounds table). Past it, arithmetic on durations could overflow.
pub const MAX_DURATION: Duration = Duration::from_secs(30 * 24 * 3600);

/// Parses `250ms`, `1.5s`, `2m`, `1h`, `10us`; refuses what no field could take (negative,
/// not finite, beyond [`MAX_DURATION`]) instead of panicking on it.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    const UNITS: &str = "use us (or µs), ms, s, m or h, e.g. 250ms";
    let t = s.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .ok_or_else(|| format!("duration `{s}` has no unit ({UNITS})"))?;
    let (num, unit) = t.split_at(split);
    let n: f64 = num
        .parse()
        .map_err(|_| format!("duration `{s}` does not start with a number ({UNITS})"))?;
    let secs = match unit.trim() {
        "us" | "µs" => n / 1e6,
        "ms" => n / 1e3,
        "s" => n,
        "m" => n * 60.0,
        "h" => n * 3600.0,
        other => {
            return Err(format!(
                "duration `{s}` has unknown unit `{other}` ({UNITS})"
            ));
        }
    };
    match Duration::try_from_secs_f64(secs) {
        Ok(d) if d <= MAX_DURATION => Ok(d),
        _ => Err(format!(
            "duration `{s}` is longer than any field takes (at most 30 days)"
        )),
    }
}

impl JsonSchema for Dur {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Duration".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "string",
            "pattern": "^[0-9]+(\\.[0-9]+)?(us|µs|ms|s|m|h)$",
            "description": "A duration: a number and its unit, us (or µs), ms, s, m or h, e.g. 250us, 250ms, 1.5s, 2m, 1h"
        })
    }
}

/// A field that fails validation: its path in the document and why. Each section's validation
/// returns it; `plan` turns it into a located [`ScenarioError`] (file, line, column).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}: {message}", locate::display_path(path))]
pub struct FieldError {
    pub path: Vec<Seg>,
    pub message: String,
}

impl FieldError {
    /// `path` as keys and indices, e.g. `[k("load"), k("open"), Seg::Index(0)]`.
    pub fn new(path: Vec<Seg>, message: impl Into<String>) -> FieldError {
        FieldError {
            path,
            message: message.into(),
        }
    }

    /// A path written as dotted keys, e.g. `defaults.timeout`.
    pub fn at(dotted: &str, message: impl Into<String>) -> FieldError {
        FieldError::new(
            dotted.split('.').map(|s| Seg::Key(s.to_owned())).collect(),
            message,
        )
    }

    /// The same error with `prefix` put in front of its path (a section's validation names
    /// fields relative to the section).
    pub fn under(mut self, prefix: &[&str]) -> FieldError {
        let mut p: Vec<Seg> = prefix.iter().map(|s| Seg::Key((*s).to_owned())).collect();
        p.append(&mut self.path);
        self.path = p;
        self
    }

    /// Located in `text` (the file's content) for the person to fix.
    pub fn locate(self, file: &Path, text: &str) -> ScenarioError {
        let (line, column) = locate::locate(text, &self.path).unzip();
        ScenarioError {
            file: file.to_owned(),
            line,
            column,
            field: locate::display_path(&self.path),
            message: self.message,
        }
    }
}

impl From<(Vec<Seg>, String)> for FieldError {
    fn from((path, message): (Vec<Seg>, String)) -> FieldError {
        FieldError { path, message }
    }
}

/// A scenario file that cannot be used, with where and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ScenarioError {
    pub file: PathBuf,
    pub line: Option<usize>,
    pub column: Option<usize>,
    /// Dotted path of the field, e.g. `journeys[0].steps[1].method`; empty for the whole file.
    pub field: String,
    pub message: String,
}

impl fmt::Display for ScenarioError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let (Some(l), Some(c)) = (self.line, self.column) {
            write!(f, ":{l}:{c}")?;
        }
        if !self.field.is_empty() {
            write!(f, ": field `{}`", self.field)?;
        }
        write!(f, ": {}", self.message)
    }
}

/// Reads a YAML file the verifier takes as input; an unreadable one is a located error too.
pub fn read_file(path: &Path) -> Result<String, ScenarioError> {
    use std::io::Read;
    let fail = |message: String| ScenarioError {
        file: path.to_owned(),
        line: None,
        column: None,
        field: String::new(),
        message,
    };
    let f = std::fs::File::open(path).map_err(|e| fail(format!("cannot read: {e}")))?;
    let mut text = String::new();
    // One byte past the limit tells a file at the limit from a larger one without reading it all.
    f.take(MAX_INPUT_BYTES as u64 + 1)
        .read_to_string(&mut text)
        .map_err(|e| fail(format!("cannot read: {e}")))?;
    check_input_size(&text).map_err(fail)?;
    Ok(text)
}

/// The most an input file (a scenario, a trigger file) may hold.
pub const MAX_INPUT_BYTES: usize = 4 << 20;

/// Refuses text larger than [`MAX_INPUT_BYTES`] before any parser sees it.
pub fn check_input_size(text: &str) -> Result<(), String> {
    if text.len() > MAX_INPUT_BYTES {
        return Err(format!(
            "larger than {} MiB: not a scenario a person wrote",
            MAX_INPUT_BYTES >> 20
        ));
    }
    Ok(())
}

/// Deserializes YAML into `T`, naming file, line, column and field in errors. Scenario and
/// trigger files share it.
pub fn deserialize_located<T: serde::de::DeserializeOwned>(
    file: &Path,
    text: &str,
) -> Result<T, ScenarioError> {
    // A text that is not YAML at all fails here, before any field is walked: the path the typed
    // parse had reached when the scanner gave up names no field that is wrong.
    if let Err(e) = serde_norway::from_str::<serde::de::IgnoredAny>(text) {
        let at = e.location().map(|l| (l.line(), l.column()));
        return Err(ScenarioError {
            file: file.to_owned(),
            line: at.map(|a| a.0),
            column: at.map(|a| a.1),
            field: String::new(),
            message: syntax_message(&e.to_string(), text, at),
        });
    }
    let de = serde_norway::Deserializer::from_str(text);
    let mut track = serde_path_to_error::Track::new();
    let tracked = serde_path_to_error::Deserializer::new(de, &mut track);
    // Enums are written as one-key maps (`steady: {..}`), the form compose files and
    // Kubernetes manifests use, rather than YAML tags (`!steady`).
    let parsed: Result<T, serde_norway::Error> =
        serde_norway::with::singleton_map_recursive::deserialize(tracked);
    parsed.map_err(|inner| {
        let field = track.path().to_string();
        let field = if field == "." { String::new() } else { field };
        let loc = inner.location();
        let mut message = strip_location(&inner.to_string());
        // serde_norway prefixes the path it knows, which may stop short of the field.
        if let Some((prefix, rest)) = message.split_once(": ")
            && !prefix.contains(' ')
            && field.starts_with(prefix)
        {
            message = rest.to_owned();
        }
        let mut at = loc.as_ref().map(|l| (l.line(), l.column()));
        let mut field = field;
        // The parser reports a duplicate key at its mapping's start; point at the key itself.
        if let Some(key) = message
            .strip_prefix("duplicate field `")
            .or_else(|| message.strip_prefix("duplicate entry with key `"))
            .and_then(|r| r.split('`').next())
        {
            let path = locate::parse_path(&field);
            if let Some(pos) = locate::locate_duplicate(text, &path, key) {
                at = Some(pos);
                field = if field.is_empty() {
                    key.to_owned()
                } else {
                    format!("{field}.{key}")
                };
            }
        }
        if let Some(h) = number_hint(&field, &message) {
            message = format!("{message}; {h}");
        }
        ScenarioError {
            file: file.to_owned(),
            line: at.map(|a| a.0),
            column: at.map(|a| a.1),
            field,
            message,
        }
    })
}

/// The form a number field takes, for a value written with its unit (`rate: 200/s`,
/// `error_rate: 1%`): the type error alone does not say how to write it.
fn number_hint(field: &str, message: &str) -> Option<String> {
    if !message.starts_with("invalid type: string") {
        return None;
    }
    let key = field.rsplit('.').next().unwrap_or(field);
    let key = key.split('[').next().unwrap_or(key);
    Some(match key {
        "rate" | "from" | "to" if field.starts_with("load.open.") => format!(
            "write journeys started per second as a plain number, e.g. `{key}: 200` for 200/s"
        ),
        "error_rate" => {
            "write an error rate as a fraction from 0 to 1, e.g. `error_rate: 0.01` for 1 %".into()
        }
        "min_throughput" => {
            "write requests per second as a plain number, e.g. `min_throughput: 60`".into()
        }
        _ => return None,
    })
}

/// The scanner's message with its position said once: the problem's own position is the
/// error's line and column; the context's (where a quoted scalar or a flow began) stays in words.
fn syntax_message(raw: &str, text: &str, at: Option<(usize, usize)>) -> String {
    let mut msg = raw.to_owned();
    if let Some((line, col)) = at {
        msg = msg.replacen(&format!(" at line {line} column {col}"), "", 1);
    }
    // What is left of a position belongs to the context: "while scanning a quoted scalar at
    // line 1 column 7".
    let msg = msg.replace(" at line ", " that starts at line ");
    let hint = match at {
        Some((line, col)) if msg.starts_with("found character that cannot start any token") => {
            let c = text
                .lines()
                .nth(line.saturating_sub(1))
                .and_then(|l| l.chars().nth(col.saturating_sub(1)));
            (c == Some('\t')).then_some(" (YAML indents with spaces, not tabs)")
        }
        _ if msg.starts_with("mapping values are not allowed") => {
            Some(" (check the indentation, or quote a value that contains `: `)")
        }
        _ => None,
    };
    format!("not valid YAML: {msg}{}", hint.unwrap_or(""))
}

/// serde_norway appends " at line L column C"; the location is reported separately.
fn strip_location(msg: &str) -> String {
    match msg.rfind(" at line ") {
        Some(i) => msg[..i].to_owned(),
        None => msg.to_owned(),
    }
}

use locate::Seg;

fn k(s: &str) -> Seg {
    Seg::Key(s.to_owned())
}

/// Endpoint names in first-use order.
pub fn endpoints(journeys: &[Journey]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for j in journeys {
        for s in &j.steps {
            if !out.contains(&s.name) {
                out.push(s.name.clone());
            }
        }
    }
    out
}

impl Load {
    /// Planned duration of the load phases.
    pub fn planned_duration(&self) -> Duration {
        match self {
            Load::Open(o) => o
                .phases
                .iter()
                .map(|p| match p {
                    RatePhase::Ramp { duration, .. }
                    | RatePhase::Steady { duration, .. }
                    | RatePhase::Spike { duration, .. } => duration.0,
                })
                .sum(),
            Load::Closed(c) => c
                .phases
                .iter()
                .map(|p| match p {
                    UserPhase::Ramp { duration, .. }
                    | UserPhase::Steady { duration }
                    | UserPhase::Spike { duration, .. } => duration.0,
                })
                .sum(),
        }
    }
}

/// The rules of the core sections that span fields: target, journeys and their captures, load
/// phases, budgets. Returns the endpoint names; each failure carries the path of the field to
/// blame.
pub fn validate_core(
    target: Option<&str>,
    journeys: &[Journey],
    load: &Load,
    budgets: &Budgets,
) -> Result<BTreeSet<String>, (Vec<Seg>, String)> {
    if journeys.is_empty() {
        return Err((
            vec![k("journeys")],
            "at least one journey is required".into(),
        ));
    }
    if let Some(t) = target {
        check_target(t).map_err(|m| (vec![k("target")], m))?;
    }
    let mut endpoints = BTreeSet::new();
    for (ji, j) in journeys.iter().enumerate() {
        let jp = || vec![k("journeys"), Seg::Index(ji)];
        if j.steps.is_empty() {
            let mut p = jp();
            p.push(k("steps"));
            return Err((p, format!("journey `{}` has no steps", j.name)));
        }
        let mut known: BTreeSet<&str> = BTreeSet::new();
        for (si, st) in j.steps.iter().enumerate() {
            let sp = |f: &str| {
                let mut p = jp();
                p.extend([k("steps"), Seg::Index(si), k(f)]);
                p
            };
            endpoints.insert(st.name.clone());
            if !st.path.starts_with_slash() {
                return Err((sp("path"), "path must start with `/`".into()));
            }
            let mut templates: Vec<(Vec<Seg>, &Template)> = vec![(sp("path"), &st.path)];
            for (h, t) in &st.headers {
                let mut p = sp("headers");
                p.push(k(h));
                templates.push((p, t));
            }
            if let Some(Body::Text(t)) = &st.body {
                templates.push((sp("body"), t));
            }
            for (p, t) in templates {
                for v in t.captures() {
                    if !known.contains(v) {
                        return Err((
                            p,
                            format!(
                                "`${{{v}}}` is not captured by an earlier step of journey `{}`",
                                j.name
                            ),
                        ));
                    }
                }
            }
            if let Some(Body::Json(v)) = &st.body {
                template::check_json_body(v, &known).map_err(|m| (sp("body"), m))?;
            }
            for (name, c) in &st.capture {
                if let Capture::Json(ptr) = c
                    && !(ptr.is_empty() || ptr.starts_with('/'))
                {
                    let mut p = sp("capture");
                    p.push(k(name));
                    return Err((p, format!("JSON pointer `{ptr}` must start with `/`")));
                }
            }
            known.extend(st.capture.keys().map(String::as_str));
        }
    }
    // Ranges (rates, durations, max_in_flight, error_rate) are `plan`'s bounds table's; these
    // are the rules that span fields.
    let phases_empty = match load {
        Load::Open(o) => {
            if let Some(ji) = journeys.iter().position(|j| j.think_time.is_some()) {
                return Err((
                    vec![k("journeys"), Seg::Index(ji), k("think_time")],
                    "think_time applies to the closed model only: open-model arrivals run their \
                     steps back to back (lower the rate instead)"
                        .into(),
                ));
            }
            o.phases.is_empty()
        }
        Load::Closed(c) => {
            if let Some(ji) = journeys
                .iter()
                .position(|j| j.think_time.is_some() && j.steps.len() == 1)
            {
                return Err((
                    vec![k("journeys"), Seg::Index(ji), k("think_time")],
                    format!(
                        "think_time is a pause between a journey's steps, and journey `{}` has \
                         one step: it would never pause (fewer users lower the load instead)",
                        journeys[ji].name
                    ),
                ));
            }
            for (i, p) in c.phases.iter().enumerate() {
                let (kind, d) = match p {
                    UserPhase::Ramp { duration, .. } => ("ramp", duration.0),
                    UserPhase::Steady { duration } => ("steady", duration.0),
                    UserPhase::Spike { duration, .. } => ("spike", duration.0),
                };
                if d.subsec_nanos() != 0 || d.is_zero() {
                    return Err((
                        vec![
                            k("load"),
                            k("closed"),
                            k("phases"),
                            Seg::Index(i),
                            k(kind),
                            k("duration"),
                        ],
                        "closed-model phases last whole seconds (1s or more)".into(),
                    ));
                }
            }
            c.phases.is_empty()
        }
    };
    if phases_empty {
        return Err((vec![k("load")], "at least one phase is required".into()));
    }
    let b = budgets;
    for name in b.endpoints.keys() {
        if name != "*" && !endpoints.contains(name) {
            return Err((
                vec![k("budgets"), k("endpoints"), k(name)],
                format!(
                    "no step is named `{name}` (known: {})",
                    endpoints.iter().cloned().collect::<Vec<_>>().join(", ")
                ),
            ));
        }
    }
    if b.abort_on_breach && b.window.is_none() {
        return Err((
            vec![k("budgets"), k("abort_on_breach")],
            "abort_on_breach needs `window`: breaches are judged over sliding windows".into(),
        ));
    }
    Ok(endpoints)
}

/// Accepts only an http:// URL with a host and, if given, a port from 1 to 65535; the load
/// engines speak plain HTTP/1.1.
pub fn check_target(t: &str) -> Result<(), String> {
    let rest = t
        .strip_prefix("http://")
        .ok_or_else(|| format!("target `{t}` must start with http://"))?;
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    if authority.is_empty() {
        return Err(format!("target `{t}` has no host"));
    }
    if authority.contains('@') {
        return Err(format!(
            "target `{t}` carries credentials; send them as a header in `defaults.headers`"
        ));
    }
    let (host, port) = match authority.rsplit_once(':') {
        // `[::1]` without a port: the colon is inside the brackets.
        Some((h, p)) if !p.contains(']') => (h, Some(p)),
        _ => (authority, None),
    };
    if host.is_empty() || host.contains(char::is_whitespace) {
        return Err(format!("target `{t}` has no valid host"));
    }
    if let Some(p) = port {
        match p.parse::<u16>() {
            Ok(n) if n > 0 => {}
            _ => {
                return Err(format!(
                    "target `{t}` has port `{p}`: a port is a number from 1 to 65535"
                ));
            }
        }
    }
    if http::Uri::try_from(t).is_err() {
        return Err(format!("target `{t}` is not a valid URL"));
    }
    Ok(())
}
