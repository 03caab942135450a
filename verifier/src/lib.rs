//! The verifier: runs load scenarios against an HTTP service, injects faults into its
//! dependencies, and decides whether the release may ship. Modules follow the data flow
//! described in `docs/architecture.md`.

pub mod check;
pub mod cli;
pub mod compare;
pub mod contract;
pub mod drill;
pub mod effects;
pub mod env;
pub mod envinfo;
pub mod exit_codes;
pub mod fault;
pub mod functional;
pub mod load;
pub mod logging;
pub mod merge;
pub mod observe;
pub mod plan;
pub mod prom;
pub mod record;
pub mod report;
pub mod rule;
pub mod run;
pub mod scenario;
pub mod security;
pub mod shard;
pub mod steady;
pub mod trigger;
pub mod verdict;
