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
    /// Check scenario files without running them: everything `run` would refuse before load
    /// starts is refused here, with the same message and exit 2.
    Validate(ValidateArgs),
    /// Print what a run of the scenario will do (phases, journeys, environment, faults, rules,
    /// memory), without running anything.
    Plan(PlanArgs),
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
    /// Base URL the run would be given with `--target`; checked as `run` checks it.
    #[arg(long, env = "VERIFIER_TARGET")]
    pub target: Option<String>,
}

#[derive(Debug, clap::Args)]
pub struct PlanArgs {
    /// Scenario file (YAML).
    pub scenario: PathBuf,
    /// Base URL of the service under test, as `run --target` takes it.
    #[arg(long, env = "VERIFIER_TARGET")]
    pub target: Option<String>,
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
    /// The bounds of every number a scenario holds, as a Markdown table.
    Bounds,
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
        Command::Validate(args) => {
            return ExitCode::from(validate(&args.files, args.target.as_deref()));
        }
        Command::Plan(args) => return ExitCode::from(plan(args)),
        Command::Schema(args) => {
            print!(
                "{}",
                match args.which {
                    SchemaKind::Scenario => crate::plan::json_schema(),
                    SchemaKind::Report => crate::report::json_schema(),
                    SchemaKind::Bounds => crate::plan::bounds::markdown(),
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
            Command::Validate(_) | Command::Plan(_) | Command::Schema(_) | Command::Triggers(_) => {
                exit_codes::USAGE
            }
        }
    });
    ExitCode::from(code)
}

fn getenv(k: &str) -> Option<String> {
    std::env::var(k).ok()
}

/// `verifier validate`: every file is planned as `run` would plan it; the first line of each
/// result names it.
pub fn validate(files: &[PathBuf], target: Option<&str>) -> u8 {
    let mut code = exit_codes::PASS;
    for f in files {
        match crate::plan::build(f, crate::plan::PlanOptions { target }, &getenv) {
            Ok(p) => {
                let s = &p.scenario;
                let journeys = s.journeys.len();
                let endpoints = s.endpoints().len();
                println!(
                    "{}: ok ({} model, {journeys} {}, {endpoints} {}, {:.0} s of load{})",
                    f.display(),
                    match s.load {
                        crate::scenario::Load::Open(_) => "open",
                        crate::scenario::Load::Closed(_) => "closed",
                    },
                    if journeys == 1 { "journey" } else { "journeys" },
                    if endpoints == 1 {
                        "endpoint"
                    } else {
                        "endpoints"
                    },
                    s.planned_duration().as_secs_f64(),
                    p.triggers
                        .map_or_else(String::new, |n| format!(", {n} triggers"))
                );
            }
            Err(e) => {
                eprintln!("{e}");
                code = exit_codes::USAGE;
            }
        }
    }
    code
}

/// `verifier plan`: the plan as text, or the error `run` would give.
fn plan(args: &PlanArgs) -> u8 {
    let opts = crate::plan::PlanOptions {
        target: args.target.as_deref(),
    };
    match crate::plan::build(&args.scenario, opts, &getenv) {
        Ok(p) => {
            print!("{}", crate::plan::show::render(&p));
            exit_codes::PASS
        }
        Err(e) => {
            eprintln!("{e}");
            exit_codes::USAGE
        }
    }
}

async fn run(args: RunArgs) -> u8 {
    use crate::load::{Stop, StopReason};
    use crate::report::progress::Mode;
    silence_stdout();
    let stop = Stop::new();
    // SIGINT (Ctrl-C), SIGTERM (what CI runners and Kubernetes send) and SIGHUP stop the load;
    // the run then writes its partial report and exits with the verdict so far. Installed before
    // goose runs, so goose's own handler (which exits on a second Ctrl-C without a report) is
    // never installed.
    let first = std::sync::atomic::AtomicBool::new(false);
    let handler_stop = stop.clone();
    let _ = ctrlc::set_handler(move || {
        if first.swap(true, std::sync::atomic::Ordering::SeqCst) {
            eprintln!("verifier: second stop signal, exiting without a report");
            std::process::exit(130);
        }
        eprintln!(
            "verifier: stop signal: stopping load and writing a partial report (send it again to \
             quit now)"
        );
        handler_stop.trigger(StopReason::Interrupted);
        goose::trigger_killswitch("stop signal");
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

/// `run` writes nothing to stdout: progress, the summary and errors go to stderr, the reports to
/// files. goose prints `N users launched.` with `println!` whatever its quiet setting, so the
/// run's stdout is pointed at /dev/null rather than let an embedded library's chatter reach a
/// pipeline that reads it.
fn silence_stdout() {
    use std::io::Write;
    let _ = std::io::stdout().flush();
    if let Ok(null) = std::fs::OpenOptions::new().write(true).open("/dev/null") {
        let _ = nix::unistd::dup2_stdout(&null);
    }
}
