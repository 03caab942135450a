//! No input crashes the plan stage: mutated copies of the shipped scenarios go through parse →
//! plan, and each must come back as a plan or a located error, without a panic and in bounded
//! time. The mutations aim where parsers break: numbers swapped for extremes (huge, negative,
//! fractional, `.inf`, `.nan`), durations at and past their limits, lines deleted, duplicated or
//! cut, bytes flipped. The seed is fixed, so CI runs exactly the cases run here; the loop is
//! bounded in count and in time.

use std::path::Path;
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

const EXTREMES: &[&str] = &[
    "0",
    "-1",
    "4000000000",
    "18446744073709551616",
    "1e308",
    ".inf",
    "-.inf",
    ".nan",
    "0.5",
    "0s",
    "1us",
    "100000h",
    "99999999999999999999h",
    "1.5",
    "\"\"",
    "[]",
    "{}",
    "~",
    "${env.UNSET_FUZZ}",
    "http://127.0.0.1:99999",
    "/a b",
    "&a [*a, *a]",
];

fn mutate(rng: &mut StdRng, text: &str) -> String {
    let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
    for _ in 0..rng.random_range(1..4) {
        if lines.is_empty() {
            break;
        }
        let i = rng.random_range(0..lines.len());
        match rng.random_range(0..6) {
            // A value swapped for an extreme.
            0 | 1 => {
                if let Some(c) = lines[i].rfind(": ") {
                    let x = EXTREMES[rng.random_range(0..EXTREMES.len())];
                    lines[i] = format!("{}: {x}", &lines[i][..c]);
                }
            }
            2 => {
                lines.remove(i);
            }
            3 => {
                let l = lines[i].clone();
                lines.insert(i, l);
            }
            4 => {
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
                    b[j] = b"{}[]:,&*!|>'\"#-? 9\t"[rng.random_range(0..19)];
                }
                lines[i] = String::from_utf8_lossy(&b).into_owned();
            }
        }
    }
    lines.join("\n") + "\n"
}

#[test]
fn mutated_scenarios_never_panic_the_plan() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios");
    let seeds: Vec<(std::path::PathBuf, String)> =
        ["smoke.yaml", "acceptance.yaml", "chaos-drill.yaml"]
            .iter()
            .map(|n| {
                let p = root.join(n);
                let t = std::fs::read_to_string(&p).unwrap();
                (p, t)
            })
            .collect();
    let mut rng = StdRng::seed_from_u64(0x005e_ed0f_91a4);
    let started = Instant::now();
    let (mut cases, mut refused, mut slowest) = (0u32, 0u32, Duration::ZERO);
    // Bounded in count and in time, whichever ends first.
    while cases < 3000 && started.elapsed() < Duration::from_secs(40) {
        let (path, text) = &seeds[rng.random_range(0..seeds.len())];
        let yaml = mutate(&mut rng, text);
        let t0 = Instant::now();
        // Parsed, then compiled into requests as `run` compiles them.
        let out = std::panic::catch_unwind(|| {
            verifier::plan::parse(path, &yaml).map(|s| {
                verifier::load::Plan::new(s.core(), Some("http://127.0.0.1:9"), &|_| {
                    Some("x".into())
                })
                .is_ok()
            })
        });
        let took = t0.elapsed();
        slowest = slowest.max(took);
        match out {
            Err(_) => panic!("the plan stage panicked on:\n{yaml}"),
            Ok(Err(e)) => {
                refused += 1;
                assert!(
                    !e.message.is_empty(),
                    "an error without a message for:\n{yaml}"
                );
            }
            Ok(Ok(_)) => {}
        }
        assert!(took < Duration::from_secs(2), "took {took:?} on:\n{yaml}");
        cases += 1;
    }
    assert!(cases >= 200, "only {cases} cases ran");
    assert!(
        refused > 0,
        "no mutation was refused: the mutator does nothing"
    );
    eprintln!("{cases} mutated scenarios, {refused} refused, slowest {slowest:?}");
}
