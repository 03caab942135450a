//! How good the regression judge is, on this machine: the power (share of runs that call a
//! planted regression) and the false-alarm rate (A/A runs called a regression), for paired runs
//! and for two separate runs. Servers on loopback with log-normal service times (median 15 ms,
//! σ 0.4); the candidate either equals the baseline, is 5 % slower everywhere (a p50 shift), or
//! has its slowest 3 % 10 % slower (a p99 shift). `make bench-judge`; prints a table.
//!
//! Environment: BENCH_JUDGE_RUNS (A/A paired runs, default 40), BENCH_JUDGE_SECS (seconds of load
//! per run, default 10), BENCH_JUDGE_RATE (arrivals per second, both sides together, default 300),
//! BENCH_JUDGE_UNPAIRED (rounds of separate runs, default half of BENCH_JUDGE_RUNS).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use verifier::compare::{Change, Decision, Pairing, Settings, Statistic};
use verifier::load::Stop;
use verifier::report::progress::Mode;
use verifier::run::{RunOptions, run};

#[derive(Clone, Copy)]
enum Shape {
    Same,
    P50,
    P99,
}

fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

fn unit(x: u64) -> f64 {
    ((x >> 11) as f64 + 0.5) / (1u64 << 53) as f64
}

/// Service time of request `i` of a server seeded `seed`, in ms.
fn service_ms(shape: Shape, seed: u64, i: u64) -> f64 {
    let (u1, u2) = (unit(mix(seed ^ i)), unit(mix(seed ^ i ^ 0x5555_5555)));
    let z = (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos();
    let ms = 15.0 * (0.4 * z).exp();
    match shape {
        Shape::Same => ms,
        Shape::P50 => ms * 1.05,
        // z above 1.88: the slowest 3 %.
        Shape::P99 if z > 1.88 => ms * 1.10,
        Shape::P99 => ms,
    }
}

/// A keep-alive HTTP/1.1 server on loopback answering every request after its service time.
async fn server(shape: Shape, seed: u64) -> (String, tokio::task::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let n = Arc::new(AtomicU64::new(0));
    let task = tokio::spawn(async move {
        loop {
            let Ok((mut sock, _)) = listener.accept().await else {
                return;
            };
            let n = n.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                loop {
                    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                        match sock.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(k) => buf.extend_from_slice(&chunk[..k]),
                        }
                    }
                    let end = buf.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
                    buf.drain(..end);
                    let i = n.fetch_add(1, Ordering::Relaxed);
                    let ms = service_ms(shape, seed, i);
                    // tokio's timer ticks in whole milliseconds: a 15.4 ms service time would
                    // sleep 16 ms and every latency would sit on a 1 ms step (7 % of the median),
                    // hiding a 5 % shift. A blocking sleep keeps the drawn time to ~0.1 ms.
                    let d = Duration::from_secs_f64(ms / 1000.0);
                    let _ = tokio::task::spawn_blocking(move || std::thread::sleep(d)).await;
                    let body = "{}";
                    let resp = format!(
                        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
                        body.len()
                    );
                    if sock.write_all(resp.as_bytes()).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    (url, task)
}

const ALLOW: &str = "{ p50: +1%, p99: +2% }";

fn scenario(dir: &std::path::Path, rate: u32, secs: u32, paired: bool) -> std::path::PathBuf {
    let p = dir.join(if paired { "paired.yaml" } else { "single.yaml" });
    let compare = if paired {
        format!("compare:\n  baseline: {{ target: \"http://127.0.0.1:1\" }}\n  allow: {ALLOW}\n")
    } else {
        String::new()
    };
    let rate = if paired { rate } else { rate / 2 };
    std::fs::write(
        &p,
        format!(
            "name: bench-judge\njourneys:\n  - name: read\n    steps:\n      - {{ name: get, method: GET, path: /x }}\nload:\n  open:\n    max_in_flight: 128\n    phases:\n      - steady: {{ rate: {rate}, duration: {secs}s }}\n{compare}"
        ),
    )
    .unwrap();
    p
}

async fn one_run(
    file: &std::path::Path,
    dir: &std::path::Path,
    target: &str,
    baseline: Option<&str>,
) -> verifier::report::Report {
    let opts = RunOptions {
        scenario: file.to_owned(),
        target: Some(target.to_owned()),
        baseline_target: baseline.map(str::to_owned),
        report_dir: dir.to_owned(),
        progress: Mode::Off,
        shard: None,
    };
    run(&opts, Stop::new(), &|k| std::env::var(k).ok())
        .await
        .expect("bench run")
        .report
}

#[derive(Default, Clone, Copy)]
struct Tally {
    runs: u32,
    regression: u32,
    inconclusive: u32,
    /// Sums over runs, for the means: the measured change and the interval's half-width.
    change: f64,
    half: f64,
}

fn tally(t: &mut Tally, judgements: &[verifier::compare::Judgement], stat: Statistic) {
    t.runs += 1;
    let Some(j) = judgements.iter().find(|j| j.statistic == stat) else {
        return;
    };
    match j.decision {
        Decision::Regression => t.regression += 1,
        Decision::Inconclusive => t.inconclusive += 1,
        _ => {}
    }
    if j.change.is_finite() && j.resolution().is_finite() {
        t.change += j.change;
        t.half += j.resolution();
    }
}

fn env_u32(k: &str, d: u32) -> u32 {
    std::env::var(k)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(d)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let aa_runs = env_u32("BENCH_JUDGE_RUNS", 40);
    let secs = env_u32("BENCH_JUDGE_SECS", 10);
    let rate = env_u32("BENCH_JUDGE_RATE", 300);
    let power_runs = (aa_runs / 2).max(1);
    let dir = tempfile::tempdir().unwrap();
    let paired_file = scenario(dir.path(), rate, secs, true);
    let single_file = scenario(dir.path(), rate, secs, false);
    eprintln!(
        "bench-judge: {aa_runs} A/A and 2x{power_runs} shifted paired runs, {} unpaired runs; \
         {secs} s at {rate}/s each; allow {ALLOW}, 95 % intervals",
        4 * env_u32("BENCH_JUDGE_UNPAIRED", power_runs)
    );
    let started = Instant::now();
    // Paired: A/A, +5 % at p50, +10 % at p99 (slowest 3 %), interleaved run by run.
    let mut aa = [Tally::default(); 2];
    let mut p50 = Tally::default();
    let mut p99 = Tally::default();
    for i in 0..aa_runs {
        let plan: Vec<Shape> = if i < power_runs {
            vec![Shape::Same, Shape::P50, Shape::P99]
        } else {
            vec![Shape::Same]
        };
        for shape in plan {
            let seed = mix(u64::from(i) * 7 + shape as u64);
            let (a, ta) = server(Shape::Same, seed).await;
            let (b, tb) = server(shape, seed ^ 0xABCD).await;
            let r = one_run(&paired_file, &dir.path().join("r"), &b, Some(&a)).await;
            ta.abort();
            tb.abort();
            let j = &r
                .comparison
                .expect("paired run has a comparison")
                .judgements;
            match shape {
                Shape::Same => {
                    tally(&mut aa[0], j, Statistic::P50);
                    tally(&mut aa[1], j, Statistic::P99);
                }
                Shape::P50 => tally(&mut p50, j, Statistic::P50),
                Shape::P99 => tally(&mut p99, j, Statistic::P99),
            }
        }
        eprintln!(
            "  paired round {}/{aa_runs} done ({:.0} s)",
            i + 1,
            started.elapsed().as_secs_f64()
        );
    }
    // Unpaired: separate runs of A, then of B, judged by `verifier compare`'s code.
    let mut u_aa = [Tally::default(); 2];
    let mut u50 = Tally::default();
    let mut u99 = Tally::default();
    let settings = Settings {
        confidence: 0.95,
        resamples: 1000,
        seed: 1,
        pairing: Pairing::Unpaired,
    };
    let allow = [
        (Statistic::P50, Change::parse("+1%").unwrap()),
        (Statistic::P99, Change::parse("+2%").unwrap()),
    ];
    let unpaired_rounds = env_u32("BENCH_JUDGE_UNPAIRED", power_runs);
    for i in 0..unpaired_rounds {
        let mut files = Vec::new();
        for (k, shape) in [Shape::Same, Shape::Same, Shape::P50, Shape::P99]
            .into_iter()
            .enumerate()
        {
            let (u, t) = server(shape, mix(1000 + u64::from(i) * 11 + k as u64)).await;
            let out = dir.path().join(format!("u{i}-{k}"));
            let _ = one_run(&single_file, &out, &u, None).await;
            t.abort();
            files.push(out.join("report.json"));
        }
        let judge = |b: usize| {
            verifier::compare::two_runs::compare_files(
                &files[0],
                &files[b],
                &allow,
                settings,
                verifier::report::SCHEMA_VERSION,
            )
            .expect("two-run compare")
            .judgements
        };
        let j = judge(1);
        tally(&mut u_aa[0], &j, Statistic::P50);
        tally(&mut u_aa[1], &j, Statistic::P99);
        tally(&mut u50, &judge(2), Statistic::P50);
        tally(&mut u99, &judge(3), Statistic::P99);
        eprintln!(
            "  unpaired round {}/{power_runs} done ({:.0} s)",
            i + 1,
            started.elapsed().as_secs_f64()
        );
    }
    let pct = |n: u32, d: u32| 100.0 * f64::from(n) / f64::from(d.max(1));
    println!(
        "\nregression judge on this machine ({secs} s of load per run at {rate}/s; allow {ALLOW}; 95 % intervals)\n"
    );
    println!(
        "| mode | case | runs | called regression | inconclusive | mean change | mean half-width |"
    );
    println!("|---|---|---:|---:|---:|---:|---:|");
    let row = |mode: &str, case: &str, t: Tally| {
        let n = f64::from(t.runs.max(1));
        println!(
            "| {mode} | {case} | {} | {} ({:.0} %) | {} | {:+.1} % | {:.1} % |",
            t.runs,
            t.regression,
            pct(t.regression, t.runs),
            t.inconclusive,
            100.0 * t.change / n,
            100.0 * t.half / n
        );
    };
    row("paired", "+5 % at p50 (power)", p50);
    row("paired", "+10 % at p99 (power)", p99);
    row("paired", "A/A, p50 (false alarms)", aa[0]);
    row("paired", "A/A, p99 (false alarms)", aa[1]);
    row("two runs", "+5 % at p50 (power)", u50);
    row("two runs", "+10 % at p99 (power)", u99);
    row("two runs", "A/A, p50 (false alarms)", u_aa[0]);
    row("two runs", "A/A, p99 (false alarms)", u_aa[1]);
    println!("\n{:.0} s in all", started.elapsed().as_secs_f64());
}
