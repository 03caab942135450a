//! The verifier's exit codes: a documented contract that CI systems and release tooling branch on.
//! The README lists the same table; change both together.

/// The gate passed: every rule held.
pub const PASS: u8 = 0;
/// The gate failed: at least one rule was breached.
pub const GATE_FAILED: u8 = 1;
/// Usage or scenario error: the command line or a scenario file is wrong. Nothing was started.
pub const USAGE: u8 = 2;
/// The environment could not be brought up, or the target was unreachable.
pub const ENVIRONMENT: u8 = 3;
/// Inconclusive: the run could not support a verdict (too few samples, generator saturated, ...).
pub const INCONCLUSIVE: u8 = 4;
