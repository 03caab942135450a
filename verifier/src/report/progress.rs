//! Live progress while load runs: a bar on a terminal, a plain line every few seconds
//! otherwise (CI logs keep every line, so a bar's redraws would be noise there).

use std::io::IsTerminal;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::load::{Collector, Stop};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Auto,
    Bar,
    Lines,
    Off,
}

/// Runs until `done` fires; returns when it has drawn its last update.
pub async fn run(
    mode: Mode,
    collector: Arc<Collector>,
    planned: Duration,
    origin: Instant,
    done: Stop,
    load: Option<crate::scenario::Load>,
) {
    let mode = match mode {
        Mode::Auto if std::io::stderr().is_terminal() => Mode::Bar,
        Mode::Auto => Mode::Lines,
        m => m,
    };
    run_with(
        mode,
        collector,
        planned,
        origin.elapsed(),
        done,
        load.as_ref(),
        &mut |line| eprintln!("{line}"),
    )
    .await
}

/// The loop behind [`run`]; plain lines go to `sink`. Time is tokio's, so tests can
/// run it on a paused clock. `already` is how long load has been running at the call.
pub async fn run_with(
    mode: Mode,
    collector: Arc<Collector>,
    planned: Duration,
    already: Duration,
    done: Stop,
    load: Option<&crate::scenario::Load>,
    sink: &mut (dyn FnMut(String) + Send),
) {
    if matches!(mode, Mode::Off | Mode::Auto) {
        done.stopped().await;
        return;
    }
    let start = tokio::time::Instant::now();
    let planned_ms = planned.as_millis().max(1) as u64;
    let bar = (mode == Mode::Bar).then(|| {
        let b = indicatif::ProgressBar::new(planned_ms);
        b.set_style(
            indicatif::ProgressStyle::with_template(
                "{elapsed_precise} [{bar:30}] {percent:>3}% {msg}",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
            .progress_chars("=> "),
        );
        b
    });
    let every = if bar.is_some() {
        Duration::from_millis(250)
    } else {
        Duration::from_secs(5)
    };
    let mut last = (0u64, start);
    loop {
        tokio::select! {
            _ = done.stopped() => break,
            _ = tokio::time::sleep(every) => {}
        }
        let (req, err) = collector.progress();
        let now = tokio::time::Instant::now();
        let rate =
            (req - last.0.min(req)) as f64 / now.duration_since(last.1).as_secs_f64().max(1e-3);
        last = (req, now);
        let elapsed = already + now.duration_since(start);
        // What the plan asks for now beside what was achieved, and the last second's p99.
        let target = load
            .and_then(|l| l.target_at(elapsed.as_secs_f64()))
            .map_or_else(String::new, |t| format!(" ({t})"));
        let p99 = collector
            .recent_p99_us()
            .map_or_else(|| "-".to_owned(), crate::rule::fmt_us);
        let msg = format!("{req} requests, {rate:.0} req/s{target}, p99 {p99}, {err} errors");
        match &bar {
            Some(b) => {
                b.set_position((elapsed.as_millis() as u64).min(planned_ms));
                b.set_message(msg);
            }
            None => sink(format!(
                "verifier: {:>5.1}s / {:.0}s  {msg}",
                elapsed.as_secs_f64(),
                planned.as_secs_f64()
            )),
        }
    }
    if let Some(b) = bar {
        b.finish_and_clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::load::StopReason;
    use crate::record::{Outcome, Recorder};

    #[tokio::test(start_paused = true)]
    async fn plain_lines_every_five_seconds_with_the_recent_rate() {
        let t0 = Instant::now();
        let load = crate::scenario::Load::Open(crate::scenario::OpenLoad {
            phases: vec![crate::scenario::RatePhase::Steady {
                rate: 10.0,
                duration: crate::scenario::Dur(Duration::from_secs(60)),
            }],
            max_in_flight: 10,
        });
        let collector = Collector::new(Recorder::new(t0, vec!["a".into()], None), Box::new(|_| {}));
        let done = Stop::new();
        let lines = Arc::new(std::sync::Mutex::new(Vec::new()));
        let task = {
            let (collector, done, lines) = (collector.clone(), done.clone(), lines.clone());
            tokio::spawn(async move {
                let mut sink = |l: String| lines.lock().unwrap().push(l);
                run_with(
                    Mode::Lines,
                    collector,
                    Duration::from_secs(60),
                    Duration::ZERO,
                    done,
                    Some(&load),
                    &mut sink,
                )
                .await
            })
        };
        tokio::time::sleep(Duration::from_secs(6)).await;
        for _ in 0..50 {
            collector.record(0, t0, Duration::from_millis(1), Outcome::Ok);
        }
        collector.record(0, t0, Duration::from_millis(1), Outcome::Status5xx);
        // The slice they fell in closes: its p99 is the progress line's.
        collector.tick(t0 + Duration::from_secs(2));
        tokio::time::sleep(Duration::from_secs(6)).await;
        done.trigger(StopReason::Interrupted);
        task.await.unwrap();
        let lines = lines.lock().unwrap();
        assert_eq!(
            *lines,
            [
                "verifier:   5.0s / 60s  0 requests, 0 req/s (target 10 journeys/s), p99 -, 0 errors",
                "verifier:  10.0s / 60s  51 requests, 10 req/s (target 10 journeys/s), p99 1.0 ms, 1 errors",
            ]
        );
    }
}
