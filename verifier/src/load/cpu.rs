//! The generator's own resource use (getrusage of this process), so a run can tell a
//! slow target from a saturated generator.

use std::time::{Duration, Instant};

use nix::sys::resource::{UsageWho, getrusage};
use nix::sys::time::TimeValLike;

#[derive(Debug, Clone, Copy)]
pub struct CpuMark {
    at: Instant,
    cpu: Duration,
}

/// CPU (user + system) consumed by this process so far.
pub fn process_cpu() -> Duration {
    match getrusage(UsageWho::RUSAGE_SELF) {
        Ok(u) => {
            let us = u.user_time().num_microseconds() + u.system_time().num_microseconds();
            Duration::from_micros(u64::try_from(us).unwrap_or(0))
        }
        Err(_) => Duration::ZERO,
    }
}

/// Peak resident set size of this process, bytes.
pub fn peak_rss_bytes() -> u64 {
    // Linux reports ru_maxrss in KiB.
    getrusage(UsageWho::RUSAGE_SELF)
        .map(|u| u64::try_from(u.max_rss()).unwrap_or(0) * 1024)
        .unwrap_or(0)
}

impl CpuMark {
    pub fn now() -> CpuMark {
        CpuMark {
            at: Instant::now(),
            cpu: process_cpu(),
        }
    }

    /// (CPU seconds, cores busy on average) since the mark.
    pub fn since(&self) -> (f64, f64) {
        let cpu = process_cpu().saturating_sub(self.cpu).as_secs_f64();
        let wall = self.at.elapsed().as_secs_f64();
        (cpu, if wall > 0.0 { cpu / wall } else { 0.0 })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn busy_loop_shows_as_cpu() {
        let mark = CpuMark::now();
        let until = Instant::now() + Duration::from_millis(60);
        let mut x = 0u64;
        while Instant::now() < until {
            x = x.wrapping_add(std::hint::black_box(1));
        }
        let (cpu, cores) = mark.since();
        assert!(x > 0);
        assert!(cpu > 0.03, "cpu {cpu}");
        assert!(cores > 0.4, "cores {cores}");
    }
}
