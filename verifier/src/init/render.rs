//! The draft as a scenario file a newcomer can read: every section opens with a comment saying
//! what it is for and how its values were chosen.

use std::fmt::Write;
use std::time::Duration;

use serde_json::Value;

use super::draft::{Draft, JourneyDraft, StepDraft};

/// Latency budget of a step before anything was measured.
pub const STARTING_P99: Duration = Duration::from_secs(1);
/// Calibrated budget: the measured p99 times this factor...
pub const FACTOR: u64 = 3;
/// ...and never below this, so a fast endpoint's budget survives a busy CI runner.
pub const FLOOR: Duration = Duration::from_millis(50);
/// The request timeout unless calibration measured something slower.
pub const TIMEOUT: Duration = Duration::from_secs(5);
/// The load's phases: a ramp, then a steady rate.
pub const RAMP: Duration = Duration::from_secs(10);
pub const STEADY: Duration = Duration::from_secs(30);

/// What a calibration run measured for one step.
#[derive(Debug, Clone)]
pub struct Measured {
    pub name: String,
    pub requests: u64,
    pub errors: u64,
    /// The p99 of the step's latencies, when any answer came back.
    pub p99: Option<Duration>,
}

/// How the budgets were chosen.
#[derive(Debug, Clone)]
pub enum Budgets {
    Starting,
    Calibrated {
        target: String,
        duration: Duration,
        rate: f64,
        steps: Vec<Measured>,
    },
}

/// Journeys started per second: two per journey so each is seen often enough in a short run,
/// at least 5 and at most 20 (a modest load for any service that serves users at all).
pub fn rate(journeys: usize) -> f64 {
    (2 * journeys).clamp(5, 20) as f64
}

/// Arrivals each journey can expect over the ramp and the steady phase.
fn per_journey(journeys: usize) -> f64 {
    let r = rate(journeys);
    (r * STEADY.as_secs_f64() + r / 2.0 * RAMP.as_secs_f64()) / journeys.max(1) as f64
}

/// Fewer samples than this makes a step's latency rule inconclusive: half of what each journey
/// expects, between 5 and 50.
pub fn min_samples(journeys: usize) -> u64 {
    ((per_journey(journeys) / 2.0).floor() as u64).clamp(5, 50)
}

/// `p99 × FACTOR`, rounded up (10 ms below 1 s, 100 ms below 10 s, whole seconds above), at
/// least [`FLOOR`].
pub fn calibrated(p99: Duration) -> Duration {
    let x = p99.saturating_mul(FACTOR as u32).max(FLOOR);
    let ms = x.as_millis().min(u128::from(u32::MAX)) as u64;
    let step = if ms < 1000 {
        10
    } else if ms < 10_000 {
        100
    } else {
        1000
    };
    Duration::from_millis(ms.div_ceil(step) * step)
}

/// The file's text. `contract` is the document's path as the scenario will name it (relative to
/// the scenario file when it can be), `source` as the user gave it.
pub fn render(d: &Draft, target: &str, contract: &str, source: &str, b: &Budgets) -> String {
    let mut o = String::new();
    let j = d.journeys.len();
    let _ = writeln!(
        o,
        "# A starter scenario for {}, written by `verifier init` from {source}.",
        one_line(&d.title)
    );
    o.push_str(
        "# Read it top to bottom and change what does not fit the service, then check and run it:\n\
         #   verifier validate THIS_FILE\n\
         #   VERIFIER_TOKEN=... verifier run THIS_FILE --target http://127.0.0.1:8080\n\
         # Exit codes: 0 pass, 1 a budget was breached, 2 the file is wrong, 3 the target did not\n\
         # answer, 4 inconclusive (too few samples).\n",
    );
    let _ = writeln!(o, "name: {}", y(&slug(&d.title)));
    let _ = writeln!(
        o,
        "description: {}",
        y(&format!(
            "Starter load for {}: {j} {} from its OpenAPI document.",
            one_line(&d.title),
            if j == 1 { "journey" } else { "journeys" }
        ))
    );
    o.push_str(
        "\n# Where the requests go; `--target URL` on the command line replaces it. The load goes \
         to\n# whatever answers here, so point it at a service you may load.\n",
    );
    let _ = writeln!(o, "target: {}", y(target));

    o.push_str(
        "\n# Every response (a sample of them under load) is judged against the OpenAPI document:\n\
         # declared status, content type, body schema. A mismatch is a failed rule in the verdict.\n\
         # The path is relative to this file.\n",
    );
    let _ = writeln!(o, "contract:\n  openapi: {}", y(contract));

    o.push_str("\n# What every request shares: its time limits and headers.\n");
    match &d.auth {
        Some(a) => {
            let _ = writeln!(
                o,
                "# The token comes from the environment variable VERIFIER_TOKEN (security scheme {}),\n# so the file holds no secret; `validate` and `run` refuse to start when it is unset.",
                one_line(&a.scheme)
            );
        }
        None => o.push_str("# The document asks for no credentials on the operations below.\n"),
    }
    if let Some(n) = &d.auth_note {
        let _ = writeln!(o, "# Not generated: {}.", one_line(n));
    }
    let timeout = match b {
        Budgets::Calibrated { steps, .. } => steps
            .iter()
            .filter_map(|s| s.p99)
            .map(|p| calibrated(p) * 2)
            .max()
            .unwrap_or(TIMEOUT)
            .max(TIMEOUT),
        Budgets::Starting => TIMEOUT,
    };
    let _ = writeln!(
        o,
        "defaults:\n  timeout: {}\n  connect_timeout: 2s\n  headers:\n    Accept: application/json",
        dur(timeout)
    );
    if let Some(a) = &d.auth {
        let _ = writeln!(o, "    {}: {}", y(&a.header), y(&a.value));
    }

    o.push_str(
        "\n# Journeys: each arrival of the load picks one (by weight) and runs its steps in order.\n\
         # A step's name is its endpoint in the report and in the budgets below. In paths, \
         headers\n# and bodies, ${uuid}, ${seq}, ${random(a,b)} and ${choice(a,b)} vary per \
         request; `capture`\n# keeps a value of an answer for the journey's later steps. \
         Bodies hold the schema's\n# required fields: the document's examples where it gives \
         them, else values made to fit\n# the schema (formats, enums, bounds, patterns). \
         `expect_status` lists the success\n# statuses the document declares; anything else \
         counts as an error.\n",
    );
    if !d.unsure.is_empty() {
        o.push_str(
            "# Check these values by hand: the document gives no example and the generator \
             cannot\n# honour their format:\n",
        );
        for u in &d.unsure {
            let _ = writeln!(o, "#   {}", one_line(u));
        }
    }
    o.push_str("journeys:\n");
    for jd in &d.journeys {
        journey(&mut o, jd);
    }
    if !d.skipped.is_empty() {
        o.push_str("\n# Left out of the load (add them by hand once you know what they need):\n");
        for (id, label, why) in &d.skipped {
            let _ = writeln!(
                o,
                "#   {} ({}): {}",
                one_line(id),
                one_line(label),
                one_line(why)
            );
        }
    }

    let r = rate(j);
    let _ = writeln!(
        o,
        "\n# The load: the open model starts journeys on a schedule whatever the service does, as\n\
         # real users arrive, so a slow answer shows as latency instead of slowing the test down.\n\
         # A short, modest run: {} s of ramp, then {} s at {r} journeys per second (two per\n\
         # journey, between 5 and 20). `max_in_flight` caps open requests; reaching it makes\n\
         # the run inconclusive, not failed.\n\
         load:\n  open:\n    phases:\n      - ramp: {{ from: 1, to: {r}, duration: {} }}\n      \
         - steady: {{ rate: {r}, duration: {} }}\n    max_in_flight: 64",
        RAMP.as_secs(),
        STEADY.as_secs(),
        dur(RAMP),
        dur(STEADY),
    );

    o.push('\n');
    match b {
        Budgets::Starting => {
            let _ = writeln!(
                o,
                "# The gate. These budgets were chosen without measuring anything: p99 under {} \
                 for\n# every step and under 1 % errors pass a healthy service on a busy CI \
                 runner and fail a\n# broken or stalled one. Tighten them from a real run, or \
                 let `verifier init --calibrate 30s\n# --target URL` measure the service and \
                 set them.",
                dur(STARTING_P99)
            );
        }
        Budgets::Calibrated {
            target,
            duration,
            rate,
            steps,
        } => {
            let _ = writeln!(
                o,
                "# The gate. Latency budgets come from a calibration run: {} at {rate} journeys \
                 per\n# second against {}. Each step's p99 budget is its measured p99 × {FACTOR}, \
                 rounded up\n# (10 ms steps below 1 s, 100 ms below 10 s), at least {}: room for \
                 a busier machine, tight\n# enough to catch a regression several times the \
                 normal latency. Measured:",
                dur(*duration),
                one_line(target),
                dur(FLOOR)
            );
            for s in steps {
                let _ = writeln!(
                    o,
                    "#   {}: {} requests, {} errors, p99 {}",
                    s.name,
                    s.requests,
                    s.errors,
                    s.p99.map_or_else(
                        || "none (no answer)".into(),
                        |p| format!("{:.1} ms", p.as_secs_f64() * 1e3)
                    )
                );
                if s.p99.is_none() {
                    let _ = writeln!(
                        o,
                        "#   (no answer to measure: {} keeps the starting {} budget)",
                        s.name,
                        dur(STARTING_P99)
                    );
                } else if s.requests < 100 {
                    let _ = writeln!(
                        o,
                        "#   (the p99 of {} requests is close to their maximum: a longer \
                         --calibrate gives a steadier budget)",
                        s.requests
                    );
                } else if s.requests > 0 && s.errors * 100 > s.requests {
                    let _ = writeln!(
                        o,
                        "#   ({} failed {:.0} % of its requests while calibrating: find out why \
                         before trusting this file)",
                        s.name,
                        s.errors as f64 * 100.0 / s.requests as f64
                    );
                }
            }
        }
    }
    let _ = writeln!(
        o,
        "# min_samples: fewer requests than this makes a step's latency rule inconclusive (half\n\
         # of what each journey is expected to see in this load).\n\
         budgets:\n  min_samples: {}\n  error_rate: 0.01\n  endpoints:",
        min_samples(j)
    );
    let mut seen = std::collections::BTreeSet::new();
    for s in d.journeys.iter().flat_map(|j| &j.steps) {
        if !seen.insert(s.name.as_str()) {
            continue;
        }
        let p99 = match b {
            Budgets::Starting => STARTING_P99,
            Budgets::Calibrated { steps, .. } => steps
                .iter()
                .find(|m| m.name == s.name)
                .and_then(|m| m.p99)
                .map_or(STARTING_P99, calibrated),
        };
        let _ = writeln!(o, "    {}: {{ p99: {} }}", y(&s.name), dur(p99));
    }
    o
}

fn journey(o: &mut String, j: &JourneyDraft) {
    let _ = writeln!(o, "  # {}", one_line(&j.about));
    let _ = writeln!(o, "  - name: {}\n    weight: 1\n    steps:", y(&j.name));
    for s in &j.steps {
        step(o, s);
    }
}

fn step(o: &mut String, s: &StepDraft) {
    let _ = writeln!(o, "      - name: {}", y(&s.name));
    let _ = writeln!(o, "        # operationId {}", one_line(&s.operation));
    let _ = writeln!(o, "        method: {}", s.method.as_str());
    let _ = writeln!(o, "        path: {}", y(&s.path));
    if !s.headers.is_empty() {
        o.push_str("        headers:\n");
        for (k, v) in &s.headers {
            let _ = writeln!(o, "          {}: {}", y(k), y(v));
        }
    }
    if let Some(b) = &s.body {
        o.push_str("        body:\n          json:");
        match b {
            Value::Object(m) if m.is_empty() => o.push_str(" {}\n"),
            Value::Array(a) if a.is_empty() => o.push_str(" []\n"),
            Value::Object(_) | Value::Array(_) => {
                o.push('\n');
                let text = serde_norway::to_string(b).unwrap_or_else(|_| "{}".into());
                for line in text.lines() {
                    let _ = writeln!(o, "            {line}");
                }
            }
            scalar => {
                let text = serde_norway::to_string(scalar).unwrap_or_else(|_| "null".into());
                let _ = writeln!(o, " {}", text.trim_end());
            }
        }
    }
    let codes: Vec<String> = s.expect.iter().map(u16::to_string).collect();
    let _ = writeln!(o, "        expect_status: [{}]", codes.join(", "));
    if let Some((name, ptr)) = &s.capture {
        let _ = writeln!(
            o,
            "        capture:\n          {name}:\n            json: {}",
            y(ptr)
        );
    }
}

/// A YAML scalar: plain when that reads back as the same string, else double-quoted (JSON's
/// quoting is valid YAML).
pub fn y(s: &str) -> String {
    let plain = !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "_-./@${}(),=+:".contains(c))
        && !s.starts_with(|c: char| "-:@{}(),=+".contains(c))
        && !s.contains(": ")
        && !s.ends_with(':')
        && !s.contains(",")
        && serde_norway::from_str::<Value>(s).ok() == Some(Value::String(s.to_owned()));
    if plain {
        s.to_owned()
    } else {
        serde_json::to_string(s).unwrap_or_else(|_| "\"\"".into())
    }
}

/// Text for a comment: one line, no control characters.
fn one_line(s: &str) -> String {
    let t: String = s
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(200)
        .collect();
    t.trim().to_owned()
}

/// `Orders API` → `orders-api`.
fn slug(s: &str) -> String {
    let mut out = String::new();
    for c in s.chars().take(60) {
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_lowercase());
        } else if !out.ends_with('-') {
            out.push('-');
        }
    }
    let out = out.trim_matches('-');
    if out.is_empty() {
        "starter".into()
    } else {
        format!("{out}-starter")
    }
}

/// A duration as the scenario format writes it: `50ms`, `1.2s`, `30s`.
pub fn dur(d: Duration) -> String {
    let ms = d.as_millis();
    if ms.is_multiple_of(1000) {
        format!("{}s", ms / 1000)
    } else {
        format!("{ms}ms")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calibrated_budgets_round_up_with_a_floor() {
        assert_eq!(
            calibrated(Duration::from_millis(3)),
            Duration::from_millis(50)
        );
        assert_eq!(
            calibrated(Duration::from_micros(21_100)),
            Duration::from_millis(70)
        );
        assert_eq!(
            calibrated(Duration::from_millis(400)),
            Duration::from_millis(1200)
        );
        assert_eq!(
            calibrated(Duration::from_millis(4010)),
            Duration::from_secs(13)
        );
    }

    #[test]
    fn scalars_read_back_as_written() {
        for s in [
            "true",
            "1",
            "",
            "a: b",
            "- x",
            "${uuid}",
            "/v1/x?a=1",
            "#x",
            "null",
            "a #b",
            "x,y",
        ] {
            let line = format!("k: {}", y(s));
            let v: Value = serde_norway::from_str(&line).unwrap();
            assert_eq!(v["k"], Value::String(s.into()), "{line}");
        }
        assert_eq!(y("/v1/orders/${order_id}"), "/v1/orders/${order_id}");
    }

    #[test]
    fn rate_and_samples() {
        assert_eq!(rate(1), 5.0);
        assert_eq!(rate(30), 20.0);
        assert_eq!(min_samples(2), 43);
        assert_eq!(min_samples(200), 5);
    }
}
