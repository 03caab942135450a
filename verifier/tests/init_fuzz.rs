//! No document crashes `verifier init`, and every scenario it agrees to write plans: mutated
//! copies of the reference service's OpenAPI document (values swapped for extremes and for
//! schema keywords that break generators, lines deleted, duplicated or cut, bytes flipped) go
//! through the generator; each must come back as a scenario that `plan::parse` accepts or as a
//! document error, never as a panic or an invalid file. The seed is fixed and the loop bounded
//! in count and time.

use std::path::Path;
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use verifier::init::{Budgets, InitError, prepare, text};

const EXTREMES: &[&str] = &[
    "0",
    "-1",
    "18446744073709551616",
    "1e308",
    ".nan",
    "\"\"",
    "[]",
    "{}",
    "~",
    "true",
    "'2.0'",
    "'${uuid}'",
    "'${order_id}'",
    "'a: b #c'",
    "\"/a b/{x}/${y}\"",
    "{$ref: '#/components/schemas/Order'}",
    "{$ref: '#/paths'}",
    "{$ref: '#/nowhere'}",
    "{$ref: 'other.yaml#/x'}",
    "[integer, 'null']",
    "{type: array, minItems: 1000000, items: {$ref: '#/components/schemas/CreateOrderRequest'}}",
    "{type: integer, minimum: 10, maximum: 1}",
    "{type: integer, exclusiveMinimum: 9.5, multipleOf: 7}",
    "{type: string, pattern: '(a|b'}",
    "{type: string, pattern: '^[\\x00-\\x1f]{3}$'}",
    "{type: string, minLength: 100000000}",
    "{type: string, format: luhn}",
    "{enum: ['a,b', 'c}', '']}",
    "{allOf: [{$ref: '#/components/schemas/Item'}, {required: [x]}]}",
    "{oneOf: []}",
    "[{name: 'bad header', in: header, required: true}]",
    "[{name: id, in: path, required: true, example: '../${x}'}]",
    "{'201': {description: x, links: {a: {operationId: getOrder, parameters: {id: '$response.body#/no'}}}}}",
];

fn mutate(rng: &mut StdRng, text: &str) -> String {
    let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
    for _ in 0..rng.random_range(1..5) {
        if lines.is_empty() {
            break;
        }
        let i = rng.random_range(0..lines.len());
        match rng.random_range(0..7) {
            0..=2 => {
                if let Some(c) = lines[i].find(": ") {
                    let x = EXTREMES[rng.random_range(0..EXTREMES.len())];
                    lines[i] = format!("{}: {x}", &lines[i][..c]);
                }
            }
            3 => {
                lines.remove(i);
            }
            4 => {
                let l = lines[i].clone();
                lines.insert(i, l);
            }
            5 => {
                let cut = rng.random_range(0..=lines[i].len());
                let cut = (0..=cut)
                    .rev()
                    .find(|c| lines[i].is_char_boundary(*c))
                    .unwrap_or(0);
                lines[i].truncate(cut);
            }
            _ => {
                let mut b = lines[i].clone().into_bytes();
                if !b.is_empty() {
                    let j = rng.random_range(0..b.len());
                    b[j] = b"{}[]:,&*!|>'\"#-?$ 9\t"[rng.random_range(0..20)];
                }
                lines[i] = String::from_utf8_lossy(&b).into_owned();
            }
        }
    }
    lines.join("\n") + "\n"
}

#[test]
fn mutated_documents_give_a_valid_scenario_or_a_document_error() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let original =
        std::fs::read_to_string(root.join("reference-service/api/openapi.yaml")).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let doc = tmp.path().join("openapi.yaml");
    let out = tmp.path().join("scenario.yaml");
    let mut rng = StdRng::seed_from_u64(0x1417);
    let started = Instant::now();
    let (mut written, mut refused, mut cases) = (0, 0, 0);
    while cases < 400 && started.elapsed() < Duration::from_secs(90) {
        cases += 1;
        let mutated = mutate(&mut rng, &original);
        std::fs::write(&doc, &mutated).unwrap();
        match prepare(&doc, &out, None).and_then(|p| text(&p, &Budgets::Starting)) {
            Ok(_) => written += 1,
            Err(InitError::Document { .. }) => refused += 1,
            Err(e @ InitError::Generated { .. }) => {
                panic!("case {cases}: {e}\n--- document:\n{mutated}")
            }
            Err(e) => panic!("case {cases}: unexpected error {e}"),
        }
    }
    eprintln!("{cases} cases: {written} scenarios written, {refused} documents refused");
    // The mutations are small: most documents still give a scenario, some are refused.
    assert!(cases >= 100, "only {cases} cases in the time bound");
    assert!(written > cases / 3, "{written} of {cases} written");
    assert!(refused > 0, "no mutation was refused");
}
