//! Command line: parse arguments, run the chosen command, map its outcome to an exit code.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

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
    /// Run a scenario against a target and exit with the verdict (0 pass, 1 fail, 4 inconclusive).
    Run(RunArgs),
    /// Check scenario files without running them.
    Validate(ValidateArgs),
    /// Print the JSON Schema of scenario files or of report.json.
    Schema(SchemaArgs),
    /// Rollback triggers: check definitions, render their Prometheus rules, detect drift.
    Triggers(crate::trigger::cli::TriggersArgs),
}

#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// Scenario file (YAML).
    pub scenario: PathBuf,
    /// Base URL of the service under test; overrides the scenario's `target`.
    #[arg(long, env = "VERIFIER_TARGET")]
    pub target: Option<String>,
    /// Where report.json, junit.xml and summary.md go.
    #[arg(long, env = "VERIFIER_REPORT_DIR", default_value = "verifier-report")]
    pub report_dir: PathBuf,
    /// Live progress: a bar on a terminal, plain lines otherwise.
    #[arg(long, value_enum, default_value_t = ProgressArg::Auto)]
    pub progress: ProgressArg,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum ProgressArg {
    Auto,
    Bar,
    Lines,
    Off,
}

#[derive(Debug, clap::Args)]
pub struct ValidateArgs {
    /// Scenario files (YAML).
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
}

#[derive(Debug, clap::Args)]
pub struct SchemaArgs {
    #[arg(value_enum)]
    pub which: SchemaKind,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum SchemaKind {
    Scenario,
    Report,
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
    crate::logging::install();
    match &cli.command {
        Command::Validate(args) => return ExitCode::from(validate(&args.files)),
        Command::Schema(args) => {
            print!(
                "{}",
                match args.which {
                    SchemaKind::Scenario => crate::plan::json_schema(),
                    SchemaKind::Report => crate::report::json_schema(),
                }
            );
            return ExitCode::from(exit_codes::PASS);
        }
        Command::Triggers(args) => return ExitCode::from(crate::trigger::cli::run(args)),
        _ => {}
    }
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
            Command::Env(args) => crate::envinfo::print(args.docker_host.as_deref()).await,
            Command::Run(args) => run(args).await,
            Command::Validate(_) | Command::Schema(_) | Command::Triggers(_) => exit_codes::USAGE,
        }
    });
    ExitCode::from(code)
}

/// `verifier validate`: every file is checked; the first line of each result names it.
pub fn validate(files: &[PathBuf]) -> u8 {
    let mut code = exit_codes::PASS;
    for f in files {
        // The trigger file a scenario names is part of it: a bad definition there is exit 2
        // here as in `run`, before any load. Checks against the running service stay in `run`.
        let checked = crate::plan::load_file(f).and_then(|s| {
            let triggers = s
                .triggers
                .as_ref()
                .map(|t| crate::trigger::gate::load_checked(t, f))
                .transpose()?;
            Ok((s, triggers.map(|l| l.defs.triggers.len())))
        });
        match checked {
            Ok((s, triggers)) => println!(
                "{}: ok ({} model, {} journeys, {} endpoints, {:.0} s of load{})",
                f.display(),
                match s.load {
                    crate::scenario::Load::Open(_) => "open",
                    crate::scenario::Load::Closed(_) => "closed",
                },
                s.journeys.len(),
                s.endpoints().len(),
                s.planned_duration().as_secs_f64(),
                triggers.map_or_else(String::new, |n| format!(", {n} triggers"))
            ),
            Err(e) => {
                eprintln!("{e}");
                code = exit_codes::USAGE;
            }
        }
    }
    code
}

async fn run(args: RunArgs) -> u8 {
    use crate::load::{Stop, StopReason};
    use crate::report::progress::Mode;
    let stop = Stop::new();
    // Installed before goose runs, so goose's own handler (which exits the process on a
    // second Ctrl-C without a report) is never installed.
    let first = std::sync::atomic::AtomicBool::new(false);
    let handler_stop = stop.clone();
    let _ = ctrlc::set_handler(move || {
        if first.swap(true, std::sync::atomic::Ordering::SeqCst) {
            eprintln!("verifier: second Ctrl-C, exiting without a report");
            std::process::exit(130);
        }
        eprintln!(
            "verifier: Ctrl-C: stopping load and writing a partial report (Ctrl-C again to quit now)"
        );
        handler_stop.trigger(StopReason::Interrupted);
        goose::trigger_killswitch("Ctrl-C");
    });
    let opts = crate::run::RunOptions {
        scenario: args.scenario,
        target: args.target,
        report_dir: args.report_dir,
        progress: match args.progress {
            ProgressArg::Auto => Mode::Auto,
            ProgressArg::Bar => Mode::Bar,
            ProgressArg::Lines => Mode::Lines,
            ProgressArg::Off => Mode::Off,
        },
    };
    match crate::run::run(&opts, stop, &|k| std::env::var(k).ok()).await {
        Ok(out) => {
            eprint!("\n{}", crate::report::terminal(&out.report));
            let names: Vec<String> = out.files.iter().map(|p| p.display().to_string()).collect();
            eprintln!("reports: {}", names.join(", "));
            out.report.exit_code
        }
        Err(e) => {
            eprintln!("verifier: {e}");
            e.exit_code()
        }
    }
}
