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
