//! Command line: parse arguments, run the chosen command, map its outcome to an exit code.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::exit_codes;

#[derive(Debug, Parser)]
#[command(
    name = "verifier",
    version,
    about = "Load and chaos verifier: the release gate"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Print the verifier's version and the environment it finds (Docker engine, images).
    Env(EnvArgs),
}

#[derive(Debug, clap::Args)]
pub struct EnvArgs {
    /// Docker engine to probe; defaults to the local socket.
    #[arg(long, env = "DOCKER_HOST")]
    pub docker_host: Option<String>,
}

/// Parses argv and runs. clap's own errors (usage) exit 2, as the exit-code contract says.
pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let code = if e.use_stderr() {
                exit_codes::USAGE
            } else {
                exit_codes::PASS
            };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("verifier: cannot start the async runtime: {e}");
            return ExitCode::from(exit_codes::ENVIRONMENT);
        }
    };
    let code = runtime.block_on(async move {
        match cli.command {
            Command::Env(args) => crate::envinfo::print(args).await,
        }
    });
    ExitCode::from(code)
}
