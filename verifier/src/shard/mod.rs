//! One scenario split over many generators: which part of the load a shard takes (`--shard
//! I/N`), when every shard starts (`--start-at`), and what a shard writes beside its report so
//! that `verifier merge` can check the shards belong together and judge them as one run.
//!
//! The split is by arrival number, not by time or by rate: shard `I` of `N` takes arrivals
//! `I, I+N, I+2N, ...` of the one global schedule, so the union of the shards is exactly the
//! schedule a single generator would run, journey mix included (the journey of arrival `n` is
//! picked from the global `n`).

use std::time::{Duration, SystemTime};

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::scenario::UserPhase;

/// Most shards one run may be split into.
pub const MAX_SHARDS: u32 = 1024;
/// Each shard's `${seq}` counter starts at `index × SEQ_SPAN`: disjoint for any run shorter than
/// 2^40 (about 10^12) rendered values per shard.
pub const SEQ_SPAN: u64 = 1 << 40;
/// Default for how late a shard may begin its schedule after `--start-at` and still count as
/// aligned with the others.
pub const DEFAULT_TOLERANCE: Duration = Duration::from_secs(1);
/// Longest `--start-tolerance`.
pub const MAX_TOLERANCE: Duration = Duration::from_secs(600);
/// Furthest in the future `--start-at` may lie.
pub const MAX_LEAD: Duration = Duration::from_secs(24 * 3600);

/// Shard `index` of `count`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    pub index: u32,
    pub count: u32,
}

impl Shard {
    /// A run that is not split: the whole schedule.
    pub const WHOLE: Shard = Shard { index: 0, count: 1 };

    /// `I/N` with `0 <= I < N <= MAX_SHARDS`.
    pub fn parse(s: &str) -> Result<Shard, String> {
        let (i, n) = s
            .split_once('/')
            .ok_or_else(|| format!("--shard {s}: write INDEX/COUNT, e.g. 0/4"))?;
        let index: u32 = i
            .trim()
            .parse()
            .map_err(|_| format!("--shard {s}: the index `{i}` is not a whole number"))?;
        let count: u32 = n
            .trim()
            .parse()
            .map_err(|_| format!("--shard {s}: the count `{n}` is not a whole number"))?;
        if count == 0 || count > MAX_SHARDS {
            return Err(format!(
                "--shard {s}: the count must be between 1 and {MAX_SHARDS}"
            ));
        }
        if index >= count {
            return Err(format!(
                "--shard {s}: the index counts from 0, so it must be below the count {count} \
                 (the last shard of {count} is {}/{count})",
                count - 1
            ));
        }
        Ok(Shard { index, count })
    }

    /// Shard 0 runs what happens once per run: functional checks, the security pass, faults,
    /// observability, triggers, invariants.
    pub fn is_leader(&self) -> bool {
        self.index == 0
    }

    /// Whether global arrival `n` is this shard's.
    pub fn takes(&self, n: u64) -> bool {
        n % u64::from(self.count.max(1)) == u64::from(self.index)
    }

    /// How many of the first `total` arrivals are this shard's.
    pub fn share_of(&self, total: u64) -> u64 {
        let (i, n) = (u64::from(self.index), u64::from(self.count.max(1)));
        if total <= i {
            0
        } else {
            (total - i).div_ceil(n)
        }
    }

    /// This shard's part of `users` closed-model users: `users / N`, and one more for the first
    /// `users % N` shards.
    pub fn users(&self, users: u32) -> u32 {
        let n = self.count.max(1);
        users / n + u32::from(self.index < users % n)
    }

    /// The closed model's phases with this shard's part of every user count.
    pub fn closed_phases(&self, phases: &[UserPhase]) -> Vec<UserPhase> {
        phases
            .iter()
            .map(|p| match p {
                UserPhase::Ramp { users, duration } => UserPhase::Ramp {
                    users: self.users(*users),
                    duration: *duration,
                },
                UserPhase::Spike { users, duration } => UserPhase::Spike {
                    users: self.users(*users),
                    duration: *duration,
                },
                UserPhase::Steady { duration } => UserPhase::Steady {
                    duration: *duration,
                },
            })
            .collect()
    }

    /// Where this shard's `${seq}` counter starts.
    pub fn seq_start(&self) -> u64 {
        u64::from(self.index) * SEQ_SPAN
    }
}

impl std::fmt::Display for Shard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

/// `--start-at`: an RFC 3339 instant in UTC (`2026-12-05T22:00:00Z`), not further in the past
/// than `tolerance` nor more than [`MAX_LEAD`] ahead of `now`.
pub fn parse_start_at(s: &str, now: SystemTime, tolerance: Duration) -> Result<SystemTime, String> {
    let at = humantime::parse_rfc3339_weak(s.trim()).map_err(|e| {
        format!("--start-at {s}: not an RFC 3339 instant in UTC, e.g. 2026-12-05T22:00:00Z ({e})")
    })?;
    if let Ok(past) = now.duration_since(at)
        && past > tolerance
    {
        return Err(format!(
            "--start-at {s}: {:.1} s in the past, beyond the start tolerance of {:.1} s; give \
             every shard the same instant a little ahead, e.g. $(date -u -d '+30 seconds' \
             +%FT%TZ)",
            past.as_secs_f64(),
            tolerance.as_secs_f64()
        ));
    }
    if let Ok(ahead) = at.duration_since(now)
        && ahead > MAX_LEAD
    {
        return Err(format!(
            "--start-at {s}: more than {} h ahead",
            MAX_LEAD.as_secs() / 3600
        ));
    }
    Ok(at)
}

/// `--start-tolerance`: a duration up to [`MAX_TOLERANCE`].
pub fn parse_tolerance(s: &str) -> Result<Duration, String> {
    let d = humantime::parse_duration(s.trim())
        .map_err(|e| format!("--start-tolerance {s}: not a duration, e.g. 1s or 500ms ({e})"))?;
    if d > MAX_TOLERANCE {
        return Err(format!(
            "--start-tolerance {s}: at most {} s",
            MAX_TOLERANCE.as_secs()
        ));
    }
    Ok(d)
}

/// The scenario's content hash: SHA-256 of the file's bytes, hex.
pub fn scenario_sha256(bytes: &[u8]) -> String {
    let d = ring::digest::digest(&ring::digest::SHA256, bytes);
    d.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

/// What a shard's `report.json` carries beside a run's, for `verifier merge`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ShardReport {
    /// This shard's index, from 0.
    pub index: u32,
    /// How many shards the run was split into.
    pub count: u32,
    /// The instant every shard's schedule starts at (`--start-at`), RFC 3339 UTC.
    pub start_at: String,
    /// How late this shard began its schedule after `start_at`, milliseconds.
    pub started_late_ms: u64,
    /// Lateness up to this counted as aligned, milliseconds.
    pub tolerance_ms: u64,
    /// SHA-256 of the scenario file's bytes, hex.
    pub scenario_sha256: String,
    /// The scenario file as the shard read it: the merge judges the budgets it holds.
    pub scenario_source: String,
}

/// What a merged `report.json` says about its shards.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MergedReport {
    /// How many shards were merged.
    pub count: u32,
    pub start_at: String,
    pub scenario_sha256: String,
    /// The shard reports, by index.
    pub shards: Vec<MergedShard>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MergedShard {
    pub index: u32,
    /// The shard's report file as given to the merge.
    pub file: String,
    pub requests: u64,
    pub started_late_ms: u64,
    /// The shard's own generator rule: `pass`, or why not.
    pub generator: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_refuses_what_is_not_a_shard() {
        assert_eq!(Shard::parse("1/4"), Ok(Shard { index: 1, count: 4 }));
        for bad in ["4/4", "0/0", "1", "a/2", "-1/2", "0/1025", "5/3"] {
            assert!(Shard::parse(bad).is_err(), "{bad}");
        }
        assert!(Shard::parse("4/4").unwrap_err().contains("3/4"));
    }

    #[test]
    fn shares_partition_every_count() {
        for n in 1..=7u32 {
            for total in [0u64, 1, 5, 6, 7, 100, 101] {
                let sum: u64 = (0..n)
                    .map(|i| Shard { index: i, count: n }.share_of(total))
                    .sum();
                assert_eq!(sum, total, "{n} shards of {total}");
                let by_takes: u64 = (0..n)
                    .map(|i| {
                        let s = Shard { index: i, count: n };
                        (0..total).filter(|&k| s.takes(k)).count() as u64
                    })
                    .sum();
                assert_eq!(by_takes, total);
            }
            for users in [0u32, 1, 3, 10, 11] {
                let sum: u32 = (0..n)
                    .map(|i| Shard { index: i, count: n }.users(users))
                    .sum();
                assert_eq!(sum, users);
            }
        }
    }

    #[test]
    fn start_at_in_the_past_beyond_tolerance_is_refused() {
        let now = humantime::parse_rfc3339("2026-12-05T22:00:00Z").unwrap();
        let tol = Duration::from_secs(1);
        assert!(parse_start_at("2026-12-05T22:00:30Z", now, tol).is_ok());
        assert!(parse_start_at("2026-12-05T21:59:59.5Z", now, tol).is_ok());
        let e = parse_start_at("2026-12-05T21:59:00Z", now, tol).unwrap_err();
        assert!(e.contains("in the past"), "{e}");
        assert!(parse_start_at("2026-12-07T22:00:00Z", now, tol).is_err());
        assert!(parse_start_at("tomorrow", now, tol).is_err());
    }

    #[test]
    fn seq_spaces_are_disjoint() {
        let a = Shard { index: 1, count: 4 };
        let b = Shard { index: 2, count: 4 };
        assert!(a.seq_start() + SEQ_SPAN <= b.seq_start());
        assert_eq!(Shard::WHOLE.seq_start(), 0);
    }
}
