//! The verifier: runs load scenarios against an HTTP service, injects faults into its
//! dependencies, and decides whether the release may ship. Modules follow the data flow
//! described in `docs/architecture.md`.

pub mod cli;
pub mod envinfo;
pub mod exit_codes;
pub mod fault;
