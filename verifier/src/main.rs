//! Thin entry point: build the runtime, call the library, map the outcome to an exit code.

use std::process::ExitCode;

fn main() -> ExitCode {
    verifier::cli::main()
}
