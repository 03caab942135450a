//! The regression judge alone, on simulated runs: the same shifts as `bench_judge` (log-normal
//! service times, median 15 ms, σ 0.4; +5 % everywhere, or the slowest 3 % 10 % slower) and a
//! drift both sides share, recorded into per-window series and judged. No network and no clock:
//! it separates what the judge's method costs from what the machine adds, in seconds.
//! `cargo run --release --example judge_sim`; prints a table.
//!
//! Environment: SIM_RATE (answers per second, both sides, default 600), SIM_SECS (default 15),
//! SIM_TRIALS (per shift, default 200), SIM_WINDOW_MS (the series' window, default 1000),
//! SIM_DRIFT (shared drift amplitude, default 0.15).

use std::time::Duration;

use verifier::compare::assign::Assignment;
use verifier::compare::{Change, Decision, Pairing, Settings, Statistic};
use verifier::record::Outcome;
use verifier::record::series::Series;

fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

fn unit(x: u64) -> f64 {
    ((x >> 11) as f64 + 0.5) / (1u64 << 53) as f64
}

#[derive(Clone, Copy, PartialEq)]
enum Shape {
    Same,
    P50,
    P99,
}

fn env<T: std::str::FromStr>(k: &str, d: T) -> T {
    std::env::var(k)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(d)
}

/// One simulated paired run: both sides' series.
fn run(shape: Shape, seed: u64, rate: f64, secs: f64, window: Duration, drift: f64) -> [Series; 2] {
    let mut s = [
        Series::new(vec!["e".into()], window),
        Series::new(vec!["e".into()], window),
    ];
    let route = Assignment::new(seed, 8);
    let n = (rate * secs) as u64;
    for i in 0..n {
        let t = i as f64 / rate;
        let side = route.side(i);
        let (u1, u2) = (unit(mix(seed ^ i)), unit(mix(seed ^ i ^ 0x5555_5555)));
        let z = (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos();
        let shared = 1.0 + drift * (t / 7.0).sin();
        let mut ms = 15.0 * (0.4 * z).exp() * shared;
        if side == 1 {
            match shape {
                Shape::Same => {}
                Shape::P50 => ms *= 1.05,
                Shape::P99 if z > 1.88 => ms *= 1.10,
                Shape::P99 => {}
            }
        }
        s[side].record(
            0,
            Duration::from_secs_f64(t),
            Duration::from_secs_f64(ms / 1000.0),
            Outcome::Ok,
        );
    }
    s
}

fn main() {
    let rate: f64 = env("SIM_RATE", 600.0);
    let secs: f64 = env("SIM_SECS", 15.0);
    let trials: u64 = env("SIM_TRIALS", 200);
    let window = Duration::from_millis(env("SIM_WINDOW_MS", 1000));
    let drift: f64 = env("SIM_DRIFT", 0.15);
    let wanted = vec![
        (
            "e".to_owned(),
            Statistic::P50,
            Change::parse("+1%").unwrap(),
        ),
        (
            "e".to_owned(),
            Statistic::P99,
            Change::parse("+2%").unwrap(),
        ),
    ];
    println!(
        "judge_sim: {rate}/s x {secs} s, window {} ms, {trials} trials per shift, allow p50 +1% p99 +2%",
        window.as_millis()
    );
    println!("shape  stat  regression  inconclusive  mean half-width");
    let started = std::time::Instant::now();
    for shape in [Shape::Same, Shape::P50, Shape::P99] {
        let mut reg = [0u64; 2];
        let mut inc = [0u64; 2];
        let mut half = [0f64; 2];
        for t in 0..trials {
            let seed = mix(t * 31 + shape as u64);
            let [a, b] = run(shape, seed, rate, secs, window, drift);
            let j = verifier::compare::judge::judge(
                &a,
                &b,
                &wanted,
                Settings {
                    confidence: 0.95,
                    resamples: 1000,
                    seed: 1,
                    pairing: Pairing::Paired,
                },
            );
            for (k, j) in j.iter().enumerate() {
                match j.decision {
                    Decision::Regression => reg[k] += 1,
                    Decision::Inconclusive => inc[k] += 1,
                    _ => {}
                }
                half[k] += j.resolution();
            }
        }
        let name = match shape {
            Shape::Same => "A/A",
            Shape::P50 => "p50+5%",
            Shape::P99 => "p99+10%",
        };
        for (k, stat) in ["p50", "p99"].iter().enumerate() {
            println!(
                "{name:<7} {stat}  {:>4}/{trials}  {:>4}/{trials}  {:.2} %",
                reg[k],
                inc[k],
                100.0 * half[k] / trials as f64
            );
        }
    }
    eprintln!("judge_sim: {:.1} s", started.elapsed().as_secs_f64());
}
