//! Generated artefacts are checked in; these fail when the types and the files disagree.
//! Regenerate with:
//!   cargo run -p verifier -- schema scenario > verifier/schema/scenario.schema.json
//!   cargo run -p verifier -- schema report > verifier/schema/report.schema.json

use std::path::Path;

fn check(file: &str, generated: String) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("schema")
        .join(file);
    let on_disk = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        on_disk == generated,
        "{} is stale: regenerate it with `cargo run -p verifier -- schema {}` (see this file's header)",
        path.display(),
        file.split('.').next().unwrap_or_default()
    );
}

#[test]
fn scenario_schema_is_current() {
    check("scenario.schema.json", verifier::plan::json_schema());
}

#[test]
fn report_schema_is_current() {
    check("report.schema.json", verifier::report::json_schema());
}

#[test]
fn shipped_scenarios_are_valid() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios");
    for name in ["smoke.yaml", "acceptance.yaml"] {
        let s = verifier::plan::load_file(&dir.join(name)).unwrap_or_else(|e| panic!("{e}"));
        let planned = s.planned_duration().as_secs();
        match name {
            "smoke.yaml" => assert!(
                planned < 60,
                "smoke must stay under 60 s of load, has {planned}"
            ),
            _ => assert!(!s.budgets.endpoints.is_empty()),
        }
        // The bearer token comes from the environment, never from the file.
        let auth = s
            .defaults
            .headers
            .get("Authorization")
            .expect("Authorization header");
        assert!(
            auth.parts()
                .iter()
                .any(|p| matches!(p, verifier::scenario::template::Part::Env { .. }))
        );
    }
}

#[test]
fn the_readme_lists_every_bound() {
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap();
    let table = readme
        .split("<!-- bounds:begin -->\n")
        .nth(1)
        .and_then(|r| r.split("<!-- bounds:end -->").next())
        .unwrap_or_default();
    assert_eq!(
        table,
        verifier::plan::bounds::markdown(),
        "verifier/README.md's bounds table is stale: paste `cargo run -p verifier -- schema bounds`"
    );
}

/// Every `default` the scenario schema offers is a value its own property accepts: an editor
/// that fills a default in must not write an invalid file (durations are `2s`, not
/// `{"secs": 2, "nanos": 0}`).
#[test]
fn scenario_schema_defaults_are_valid_values() {
    let schema: serde_json::Value = serde_json::from_str(&verifier::plan::json_schema()).unwrap();
    let defs = schema["$defs"].clone();
    let mut checked = 0;
    let mut bad = Vec::new();
    let mut stack = vec![(String::new(), &schema)];
    while let Some((at, node)) = stack.pop() {
        match node {
            serde_json::Value::Object(m) => {
                if let Some(default) = m.get("default") {
                    let mut sub = m.clone();
                    sub.remove("default");
                    sub.insert("$defs".into(), defs.clone());
                    let v = jsonschema::options()
                        .with_draft(jsonschema::Draft::Draft202012)
                        .build(&serde_json::Value::Object(sub))
                        .unwrap_or_else(|e| panic!("{at}: {e}"));
                    if !v.is_valid(default) {
                        bad.push(format!("{at}: default {default}"));
                    }
                    checked += 1;
                }
                for (k, v) in m {
                    stack.push((format!("{at}/{k}"), v));
                }
            }
            serde_json::Value::Array(a) => {
                for (i, v) in a.iter().enumerate() {
                    stack.push((format!("{at}/{i}"), v));
                }
            }
            _ => {}
        }
    }
    assert!(checked > 30, "only {checked} defaults found");
    assert!(
        bad.is_empty(),
        "defaults the schema refuses:\n{}",
        bad.join("\n")
    );
    // The duration defaults in particular, as a person writes them.
    let timeout = &schema["$defs"]["Defaults"]["properties"]["timeout"]["default"];
    assert_eq!(timeout, "5s");
}

/// A fault's target is any dependency name, a key of the external environment's `proxies`
/// included: the schema must not suggest only the testcontainers names.
#[test]
fn fault_target_is_described_as_a_dependency_name() {
    let schema: serde_json::Value = serde_json::from_str(&verifier::plan::json_schema()).unwrap();
    let d = schema["$defs"]["Fault"]["properties"]["target"]["description"]
        .as_str()
        .unwrap();
    assert!(d.contains("a key of its `proxies`"), "{d}");
}
