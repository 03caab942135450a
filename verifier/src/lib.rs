//! The verifier: runs load scenarios against an HTTP service, injects faults into its
//! dependencies, and decides whether the release may ship. Modules follow the data flow
//! described in `docs/architecture.md`.

// Printing to a pipe whose reader has gone (`verifier run ... 2>&1 | head`) must not end a run:
// std's print macros panic on EPIPE, and a panic mid-run would leave no report. These shadow
// them in every module of the crate (textual scope comes before the prelude) and drop what the
// closed stream can no longer take.
macro_rules! eprintln {
    ($($t:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr(), $($t)*);
    }};
}
macro_rules! eprint {
    ($($t:tt)*) => {{
        use std::io::Write as _;
        let _ = write!(std::io::stderr(), $($t)*);
    }};
}
macro_rules! println {
    ($($t:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout(), $($t)*);
    }};
}
macro_rules! print {
    ($($t:tt)*) => {{
        use std::io::Write as _;
        let _ = write!(std::io::stdout(), $($t)*);
    }};
}

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
pub mod init;
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
