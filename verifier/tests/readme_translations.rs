//! `README.zh-CN.md` is the README in Chinese, kept in step with the English one: both name the
//! same `make` commands, the same exit codes, the same layout rows and as many sections, and
//! each links the other.

use std::collections::BTreeSet;
use std::path::Path;

fn read(name: &str) -> String {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(name);
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// `make demo`, `make test-ci-templates`, ...: every `make` followed by a target.
fn make_commands(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for (i, _) in text.match_indices("make ") {
        // Not the tail of another word (`cmake `).
        if text[..i]
            .chars()
            .next_back()
            .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        {
            continue;
        }
        let target: String = text[i + 5..]
            .chars()
            .take_while(|c| c.is_ascii_lowercase() || *c == '-')
            .collect();
        if !target.is_empty() {
            out.insert(format!("make {target}"));
        }
    }
    out
}

/// The first cells of the exit-code table's rows (`| 0 | ... |`).
fn exit_codes(text: &str) -> BTreeSet<u8> {
    text.lines()
        .filter_map(|l| l.strip_prefix('|'))
        .filter_map(|l| l.split('|').next()?.trim().parse().ok())
        .collect()
}

/// The first cells of the layout table's rows (`| `path/` | ... |`).
fn layout_rows(text: &str) -> BTreeSet<String> {
    text.lines()
        .filter_map(|l| l.strip_prefix("| `"))
        .filter_map(|l| l.split('`').next().map(str::to_owned))
        .collect()
}

fn sections(text: &str) -> usize {
    text.lines().filter(|l| l.starts_with("## ")).count()
}

#[test]
fn both_readmes_name_the_same_commands_exit_codes_and_layout() {
    let en = read("README.md");
    let zh = read("README.zh-CN.md");

    let commands = make_commands(&en);
    for c in [
        "make demo",
        "make test",
        "make drill",
        "make test-ci-templates",
    ] {
        assert!(commands.contains(c), "README.md lacks {c}: {commands:?}");
    }
    assert_eq!(make_commands(&zh), commands, "make commands");

    let codes = exit_codes(&en);
    let contract: BTreeSet<u8> = [
        verifier::exit_codes::PASS,
        verifier::exit_codes::GATE_FAILED,
        verifier::exit_codes::USAGE,
        verifier::exit_codes::ENVIRONMENT,
        verifier::exit_codes::INCONCLUSIVE,
    ]
    .into();
    assert_eq!(codes, contract, "README.md's exit codes");
    assert_eq!(exit_codes(&zh), codes, "exit codes");

    let layout = layout_rows(&en);
    assert!(layout.len() >= 10, "{layout:?}");
    assert_eq!(layout_rows(&zh), layout, "layout rows");

    assert_eq!(sections(&zh), sections(&en), "sections");
    assert!(
        en.contains("(README.zh-CN.md)"),
        "the English README links the Chinese one"
    );
    assert!(
        zh.contains("(README.md)"),
        "the Chinese README links the English one"
    );
}

#[test]
fn the_extractors_see_a_difference() {
    assert_ne!(
        make_commands("run `make demo` and `make test`"),
        make_commands("run `make demo`")
    );
    assert_eq!(exit_codes("| 0 | pass |\n| 4 | x |\n"), [0, 4].into());
    assert_eq!(
        layout_rows("| `a/` | x |\n| b | y |\n"),
        ["a/".to_owned()].into()
    );
}
