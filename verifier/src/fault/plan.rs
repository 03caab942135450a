//! Faults are data: `{target dependency, kind, attributes, start, duration}`. The same plan runs
//! against containers started by testcontainers and against a Toxiproxy in front of staging; the
//! provider decides which kinds it can honour, and a plan it cannot honour is rejected before
//! anything starts.

use std::collections::BTreeSet;
use std::fmt;
use std::time::Duration;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::toxiproxy::{Stream, ToxicKind};
use crate::scenario::Dur;

/// One fault in the timeline.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Fault {
    /// Unique name; also the name of the Toxiproxy toxic that carries it.
    pub name: String,
    /// The dependency it hits, by name: with `environment: external`, a key of its `proxies`
    /// (any name you gave a proxy, the service's own included); with `testcontainers`, one of
    /// its `dependencies` (`postgres`, `redis`, `nats`, `payments`).
    pub target: String,
    /// When it starts, from the start of the load.
    pub start: Dur,
    /// How long it lasts; it is reverted after this, or when the run ends, whichever is first.
    pub duration: Dur,
    /// `down`, `pause`, `stop`, `restart`, or a toxic with its attributes, e.g.
    /// `{latency: {delay: 800ms}}`.
    #[serde(with = "serde_norway::with::singleton_map")]
    #[schemars(with = "FaultKind")]
    pub fault: FaultKind,
    /// Probability that a connection is affected (Toxiproxy draws it once per connection, not per
    /// request: with pooled connections use 1.0).
    #[serde(default = "one")]
    pub toxicity: f32,
    /// Which direction a toxic acts on: `downstream` (dependency → service, the default) or
    /// `upstream`.
    #[serde(default)]
    pub stream: Stream,
    /// What the service is expected to do meanwhile, in words; shown beside the fault in reports.
    #[serde(default)]
    pub expect: Option<String>,
}

fn one() -> f32 {
    1.0
}

/// What the fault does.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
pub enum FaultKind {
    /// Delay data by `delay` ± `jitter`.
    Latency {
        delay: Dur,
        #[serde(default = "zero")]
        jitter: Dur,
    },
    /// Limit throughput to `kb_per_second`.
    Bandwidth { kb_per_second: u64 },
    /// Stop passing data; close the connection after `after` (0: hold it open, a black hole).
    Timeout {
        #[serde(default = "zero")]
        after: Dur,
    },
    /// Reset connections (TCP RST) after `after`.
    ResetPeer {
        #[serde(default = "zero")]
        after: Dur,
    },
    /// Delay closing connections by `delay`.
    SlowClose { delay: Dur },
    /// Slice data into `average_size` ± `size_variation` byte pieces, `delay` apart.
    Slicer {
        average_size: u64,
        #[serde(default)]
        size_variation: u64,
        #[serde(default = "zero")]
        delay: Dur,
    },
    /// Close connections after `bytes` bytes.
    LimitData { bytes: u64 },
    /// The proxy refuses new connections and drops existing ones.
    Down,
    /// Freeze the dependency's container (SIGSTOP): connections hang. testcontainers only.
    Pause,
    /// Stop the dependency's container, start it again when the fault ends. testcontainers only.
    Stop,
    /// Restart the dependency's container at `start`; `duration` is how long it may take to come
    /// back before the fault counts as failed. testcontainers only.
    Restart,
}

fn zero() -> Dur {
    Dur(Duration::ZERO)
}

impl FaultKind {
    /// The Toxiproxy toxic that carries this fault, if it is one.
    pub fn toxic(&self) -> Option<ToxicKind> {
        let ms = |d: &Dur| d.0.as_millis() as u64;
        Some(match self {
            Self::Latency { delay, jitter } => ToxicKind::Latency {
                latency: ms(delay),
                jitter: ms(jitter),
            },
            Self::Bandwidth { kb_per_second } => ToxicKind::Bandwidth {
                rate: *kb_per_second,
            },
            Self::Timeout { after } => ToxicKind::Timeout { timeout: ms(after) },
            Self::ResetPeer { after } => ToxicKind::ResetPeer { timeout: ms(after) },
            Self::SlowClose { delay } => ToxicKind::SlowClose { delay: ms(delay) },
            Self::Slicer {
                average_size,
                size_variation,
                delay,
            } => ToxicKind::Slicer {
                average_size: *average_size,
                size_variation: *size_variation,
                delay: delay.0.as_micros() as u64,
            },
            Self::LimitData { bytes } => ToxicKind::LimitData { bytes: *bytes },
            Self::Down | Self::Pause | Self::Stop | Self::Restart => return None,
        })
    }

    /// Faults that act on a container rather than on a proxy.
    pub fn is_container_action(&self) -> bool {
        matches!(self, Self::Pause | Self::Stop | Self::Restart)
    }

    /// Faults that own their target while active: nothing else can be honoured on it meanwhile
    /// (a toxic on a stopped container's proxy tests nothing; a second `down` would be undone by
    /// the first one's revert).
    pub fn is_exclusive(&self) -> bool {
        matches!(self, Self::Down | Self::Pause | Self::Stop | Self::Restart)
    }

    pub fn label(&self) -> &'static str {
        match self {
            Self::Latency { .. } => "latency",
            Self::Bandwidth { .. } => "bandwidth",
            Self::Timeout { .. } => "timeout",
            Self::ResetPeer { .. } => "reset_peer",
            Self::SlowClose { .. } => "slow_close",
            Self::Slicer { .. } => "slicer",
            Self::LimitData { .. } => "limit_data",
            Self::Down => "down",
            Self::Pause => "pause",
            Self::Stop => "stop",
            Self::Restart => "restart",
        }
    }
}

impl Fault {
    pub fn end(&self) -> Duration {
        self.start.0 + self.duration.0
    }
}

/// What a provider can do, for validation before anything starts.
#[derive(Debug, Clone)]
pub struct Capabilities {
    /// Dependency names faults may target.
    pub dependencies: BTreeSet<String>,
    /// Whether container actions (pause, stop, restart) are possible.
    pub container_actions: bool,
    /// Provider name for messages, e.g. `external`.
    pub provider: &'static str,
}

/// A fault the plan cannot honour: which one (index into the list), which field, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlanError {
    pub index: usize,
    pub field: &'static str,
    pub message: String,
}

impl fmt::Display for PlanError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "faults[{}].{}: {}", self.index, self.field, self.message)
    }
}

/// Checks a fault list against what the provider can do and against the run's length. Returns the
/// first problem: the scenario layer turns it into an error with a line and column.
pub fn validate(faults: &[Fault], caps: &Capabilities, run: Duration) -> Result<(), PlanError> {
    let err = |index, field, message: String| {
        Err(PlanError {
            index,
            field,
            message,
        })
    };
    let mut names = BTreeSet::new();
    for (i, f) in faults.iter().enumerate() {
        if f.name.is_empty()
            || !f
                .name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return err(
                i,
                "name",
                format!(
                    "`{}` is not a usable fault name (letters, digits, - and _)",
                    f.name
                ),
            );
        }
        if !names.insert(f.name.as_str()) {
            return err(i, "name", format!("a second fault is named `{}`", f.name));
        }
        if !caps.dependencies.contains(&f.target) {
            let known: Vec<_> = caps.dependencies.iter().map(String::as_str).collect();
            return err(
                i,
                "target",
                format!(
                    "unknown dependency `{}`; the {} environment has: {}",
                    f.target,
                    caps.provider,
                    if known.is_empty() {
                        "none".to_owned()
                    } else {
                        known.join(", ")
                    }
                ),
            );
        }
        if f.fault.is_container_action() && !caps.container_actions {
            return err(
                i,
                "fault",
                format!(
                    "`{}` acts on a container, which the {} provider does not control; use `down` \
                     or a toxic, or the testcontainers provider",
                    f.fault.label(),
                    caps.provider
                ),
            );
        }
        if !(0.0..=1.0).contains(&f.toxicity) {
            return err(
                i,
                "toxicity",
                format!("{} is not a probability between 0 and 1", f.toxicity),
            );
        }
        if f.duration.0.is_zero() {
            return err(i, "duration", "a fault must last longer than 0".to_owned());
        }
        if f.start.0 >= run {
            return err(
                i,
                "start",
                format!(
                    "starts at {:?}, after the load ends at {:?}",
                    f.start.0, run
                ),
            );
        }
    }
    for (i, a) in faults.iter().enumerate() {
        for b in &faults[..i] {
            let overlap = a.start.0 < b.end() && b.start.0 < a.end();
            if a.target == b.target && overlap && (a.fault.is_exclusive() || b.fault.is_exclusive())
            {
                return err(
                    i,
                    "start",
                    format!(
                        "`{}` ({}) overlaps `{}` ({}) on `{}`; a {} fault cannot share its target \
                         with another fault",
                        a.name,
                        a.fault.label(),
                        b.name,
                        b.fault.label(),
                        a.target,
                        if a.fault.is_exclusive() {
                            a.fault.label()
                        } else {
                            b.fault.label()
                        }
                    ),
                );
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fault(name: &str, target: &str, start: u64, dur: u64, kind: FaultKind) -> Fault {
        Fault {
            name: name.into(),
            target: target.into(),
            start: Dur(Duration::from_secs(start)),
            duration: Dur(Duration::from_secs(dur)),
            fault: kind,
            toxicity: 1.0,
            stream: Stream::Downstream,
            expect: None,
        }
    }

    fn caps(container_actions: bool) -> Capabilities {
        Capabilities {
            dependencies: ["postgres", "redis"]
                .iter()
                .map(|s| s.to_string())
                .collect(),
            container_actions,
            provider: if container_actions {
                "testcontainers"
            } else {
                "external"
            },
        }
    }

    const RUN: Duration = Duration::from_secs(60);

    #[test]
    fn parses_the_yaml_shape() {
        let f: Fault = serde_norway::from_str(
            "name: pg-slow\ntarget: postgres\nstart: 5s\nduration: 10s\nfault:\n  latency:\n    delay: 800ms\n",
        )
        .unwrap();
        assert_eq!(
            f.fault.toxic(),
            Some(ToxicKind::Latency {
                latency: 800,
                jitter: 0
            })
        );
        let down: Fault = serde_norway::from_str(
            "name: pg-down\ntarget: postgres\nstart: 5s\nduration: 10s\nfault: down\n",
        )
        .unwrap();
        assert_eq!(down.fault, FaultKind::Down);
        let unknown = serde_norway::from_str::<Fault>(
            "name: x\ntarget: postgres\nstart: 5s\nduration: 1s\nfault: down\ncolour: red\n",
        );
        assert!(unknown.unwrap_err().to_string().contains("colour"));
    }

    #[test]
    fn unknown_dependency_is_named_with_the_known_ones() {
        let e = validate(
            &[fault("a", "mysql", 1, 1, FaultKind::Down)],
            &caps(true),
            RUN,
        )
        .unwrap_err();
        assert_eq!(e.field, "target");
        assert!(
            e.message.contains("`mysql`") && e.message.contains("postgres, redis"),
            "{e}"
        );
    }

    #[test]
    fn container_actions_need_a_provider_that_controls_containers() {
        let plan = [fault("p", "redis", 1, 1, FaultKind::Pause)];
        assert!(validate(&plan, &caps(true), RUN).is_ok());
        let e = validate(&plan, &caps(false), RUN).unwrap_err();
        assert_eq!(e.field, "fault");
        assert!(e.message.contains("external"), "{e}");
    }

    #[test]
    fn exclusive_faults_cannot_overlap_on_one_target() {
        let latency = FaultKind::Latency {
            delay: Dur(Duration::from_millis(100)),
            jitter: Dur(Duration::ZERO),
        };
        // Toxics stack.
        let ok = [
            fault("a", "postgres", 0, 10, latency.clone()),
            fault("b", "postgres", 5, 10, FaultKind::LimitData { bytes: 10 }),
            fault("c", "redis", 5, 10, FaultKind::Down),
        ];
        assert!(validate(&ok, &caps(true), RUN).is_ok());
        // Back to back is not overlap.
        let adjacent = [
            fault("a", "postgres", 0, 10, FaultKind::Down),
            fault("b", "postgres", 10, 10, FaultKind::Stop),
        ];
        assert!(validate(&adjacent, &caps(true), RUN).is_ok());
        let bad = [
            fault("a", "postgres", 0, 10, latency),
            fault("b", "postgres", 9, 10, FaultKind::Down),
        ];
        let e = validate(&bad, &caps(true), RUN).unwrap_err();
        assert_eq!((e.index, e.field), (1, "start"));
        assert!(
            e.message.contains("`b` (down) overlaps `a` (latency)"),
            "{e}"
        );
    }

    #[test]
    fn names_must_be_unique_and_usable() {
        let e = validate(
            &[
                fault("a", "postgres", 0, 1, FaultKind::Down),
                fault("a", "redis", 0, 1, FaultKind::Down),
            ],
            &caps(true),
            RUN,
        )
        .unwrap_err();
        assert!(e.message.contains("second fault"), "{e}");
        let e = validate(
            &[fault("a b", "postgres", 0, 1, FaultKind::Down)],
            &caps(true),
            RUN,
        )
        .unwrap_err();
        assert_eq!(e.field, "name");
    }

    #[test]
    fn a_fault_after_the_load_or_of_no_length_is_refused() {
        let e = validate(
            &[fault("late", "postgres", 60, 1, FaultKind::Down)],
            &caps(true),
            RUN,
        )
        .unwrap_err();
        assert_eq!(e.field, "start");
        let e = validate(
            &[fault("zero", "postgres", 1, 0, FaultKind::Down)],
            &caps(true),
            RUN,
        )
        .unwrap_err();
        assert_eq!(e.field, "duration");
    }
}
