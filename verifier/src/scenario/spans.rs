//! The load's phases as time spans from the start of load: what a report draws under its plots
//! so that a latency change can be read against the load that caused it.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{Load, RatePhase, UserPhase};

/// One load phase, seconds from the start of load.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct LoadSpan {
    /// `ramp`, `steady` or `spike`.
    pub kind: String,
    /// As a person reads it, e.g. `ramp 10→100/s` or `steady 50 users`.
    pub label: String,
    pub start_s: f64,
    pub end_s: f64,
}

fn rate(r: f64) -> String {
    let s = format!("{r:.1}");
    s.trim_end_matches(".0").to_owned()
}

impl Load {
    /// What the plan asks for `at` seconds into load, for progress lines: `target 120 journeys/s`
    /// (the open model's arrival rate, ramps interpolated: journeys, not requests, since a journey
    /// may send several) or `target 50 users`; `None` past the end.
    pub fn target_at(&self, at: f64) -> Option<String> {
        let mut start = 0.0;
        let mut users = 0u32;
        match self {
            Load::Open(o) => {
                for p in &o.phases {
                    let (secs, r) = match p {
                        RatePhase::Ramp { from, to, duration } => {
                            let d = duration.0.as_secs_f64();
                            let f = if d > 0.0 {
                                ((at - start) / d).clamp(0.0, 1.0)
                            } else {
                                1.0
                            };
                            (d, from + (to - from) * f)
                        }
                        RatePhase::Steady { rate, duration }
                        | RatePhase::Spike { rate, duration } => (duration.0.as_secs_f64(), *rate),
                    };
                    if at < start + secs {
                        return Some(format!("target {} journeys/s", rate(r)));
                    }
                    start += secs;
                }
            }
            Load::Closed(c) => {
                for p in &c.phases {
                    let (secs, now, after) = match p {
                        UserPhase::Ramp { users: u, duration } => {
                            let d = duration.0.as_secs_f64();
                            let f = if d > 0.0 {
                                ((at - start) / d).clamp(0.0, 1.0)
                            } else {
                                1.0
                            };
                            let n = f64::from(users) + (f64::from(*u) - f64::from(users)) * f;
                            (d, n.round() as u32, *u)
                        }
                        UserPhase::Steady { duration } => (duration.0.as_secs_f64(), users, users),
                        UserPhase::Spike { users: u, duration } => {
                            (duration.0.as_secs_f64(), *u, users)
                        }
                    };
                    if at < start + secs {
                        return Some(format!("target {now} users"));
                    }
                    users = after;
                    start += secs;
                }
            }
        }
        None
    }

    /// The phases laid end to end from 0.
    pub fn spans(&self) -> Vec<LoadSpan> {
        let mut at = 0.0;
        let mut users = 0u32;
        let mut out = Vec::new();
        let mut push = |kind: &str, label: String, secs: f64| {
            out.push(LoadSpan {
                kind: kind.into(),
                label,
                start_s: at,
                end_s: at + secs,
            });
            at += secs;
        };
        match self {
            Load::Open(o) => {
                for p in &o.phases {
                    match p {
                        RatePhase::Ramp { from, to, duration } => push(
                            "ramp",
                            format!("ramp {}→{}/s", rate(*from), rate(*to)),
                            duration.0.as_secs_f64(),
                        ),
                        RatePhase::Steady { rate: r, duration } => push(
                            "steady",
                            format!("{}/s", rate(*r)),
                            duration.0.as_secs_f64(),
                        ),
                        RatePhase::Spike { rate: r, duration } => push(
                            "spike",
                            format!("spike {}/s", rate(*r)),
                            duration.0.as_secs_f64(),
                        ),
                    }
                }
            }
            Load::Closed(c) => {
                for p in &c.phases {
                    match p {
                        UserPhase::Ramp { users: u, duration } => {
                            push(
                                "ramp",
                                format!("ramp {users}→{u} users"),
                                duration.0.as_secs_f64(),
                            );
                            users = *u;
                        }
                        UserPhase::Steady { duration } => {
                            push("steady", format!("{users} users"), duration.0.as_secs_f64())
                        }
                        UserPhase::Spike { users: u, duration } => push(
                            "spike",
                            format!("spike {u} users"),
                            duration.0.as_secs_f64(),
                        ),
                    }
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::{ClosedLoad, Dur, OpenLoad};
    use std::time::Duration;

    fn d(s: u64) -> Dur {
        Dur(Duration::from_secs(s))
    }

    #[test]
    fn phases_lie_end_to_end() {
        let open = Load::Open(OpenLoad {
            phases: vec![
                RatePhase::Ramp {
                    from: 0.0,
                    to: 100.0,
                    duration: d(10),
                },
                RatePhase::Steady {
                    rate: 100.0,
                    duration: d(30),
                },
                RatePhase::Spike {
                    rate: 250.5,
                    duration: d(5),
                },
            ],
            max_in_flight: 10,
        });
        assert_eq!(open.target_at(5.0).as_deref(), Some("target 50 journeys/s"));
        assert_eq!(
            open.target_at(42.0).as_deref(),
            Some("target 250.5 journeys/s")
        );
        assert_eq!(open.target_at(45.0), None);
        let s = open.spans();
        assert_eq!(
            s.iter()
                .map(|x| (x.label.as_str(), x.start_s, x.end_s))
                .collect::<Vec<_>>(),
            [
                ("ramp 0→100/s", 0.0, 10.0),
                ("100/s", 10.0, 40.0),
                ("spike 250.5/s", 40.0, 45.0)
            ]
        );
        let closed = Load::Closed(ClosedLoad {
            phases: vec![
                UserPhase::Ramp {
                    users: 20,
                    duration: d(5),
                },
                UserPhase::Steady { duration: d(20) },
            ],
        });
        assert_eq!(closed.target_at(2.5).as_deref(), Some("target 10 users"));
        assert_eq!(closed.target_at(10.0).as_deref(), Some("target 20 users"));
        let s = closed.spans();
        assert_eq!(s[1].label, "20 users");
        assert_eq!(s[1].end_s, 25.0);
    }
}
