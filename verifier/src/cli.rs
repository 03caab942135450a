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
    /// Judge two saved runs (report.json of the baseline, then of the candidate): a regression,
    /// no regression, or inconclusive per endpoint and statistic. Weaker evidence than a paired
    /// run (`run --baseline-target`), and the report says so.
    Compare(CompareArgs),
    /// Write a starter scenario from a service's OpenAPI 3.x document: journeys from its
    /// operations, bodies from its schemas, the contract check, conservative budgets (measured
    /// ones with --calibrate), every section explained in comments.
    Init(InitArgs),
    /// Render a saved report.json again without running anything: the terminal summary, and
    /// report.html and summary.md where asked. Exit 0 once rendered (the run's verdict is in the
    /// report, not re-issued); 2 for a file that is not a report of this schema; 3 for an output
    /// that cannot be written.
    Report(ReportArgs),
    /// Merge the shard reports of one run split over many generators (`run --shard`) into the
    /// report of that run, judged on the merged measurements; exits with its verdict.
    Merge(MergeArgs),
}

#[derive(Debug, clap::Args)]
pub struct MergeArgs {
    /// report.json of every shard, each exactly once.
    #[arg(required = true)]
    pub reports: Vec<PathBuf>,
    /// Where the merged report.json, junit.xml and summary.md go.
    #[arg(long, env = "VERIFIER_REPORT_DIR", default_value = "verifier-report")]
    pub report_dir: PathBuf,
}

#[derive(Debug, clap::Args)]
pub struct InitArgs {
    /// The service's OpenAPI 3.x document (YAML or JSON).
    #[arg(long, value_name = "FILE")]
    pub openapi: PathBuf,
    /// Base URL of the service: written as the scenario's `target`, and what --calibrate loads.
    #[arg(long, env = "VERIFIER_TARGET")]
    pub target: Option<String>,
    /// Run the starter load against --target for this long (1s to 10m) and set the latency
    /// budgets from what it measured (p99 × 3, rounded up).
    #[arg(long, value_name = "DURATION", value_parser = parse_duration_arg)]
    pub calibrate: Option<std::time::Duration>,
    /// Where the scenario goes; `-` prints it.
    #[arg(long, short, value_name = "FILE", default_value = "scenario.yaml")]
    pub output: PathBuf,
    /// Replace the output file if it exists.
    #[arg(long)]
    pub force: bool,
}

fn parse_duration_arg(s: &str) -> Result<std::time::Duration, String> {
    crate::scenario::parse_duration(s)
}

#[derive(Debug, clap::Args)]
pub struct ReportArgs {
    /// The report.json of a run.
    pub report: PathBuf,
    /// Write the HTML report here.
    #[arg(long, value_name = "FILE")]
    pub html: Option<PathBuf>,
    /// Write the Markdown summary here.
    #[arg(long, value_name = "FILE")]
    pub md: Option<PathBuf>,
    /// Print only the verdict line.
    #[arg(long, short)]
    pub quiet: bool,
}

/// The summary for stderr: colour only on a terminal and without `NO_COLOR`; `quiet` keeps the
/// verdict line alone.
fn summary(r: &crate::report::Report, quiet: bool) -> String {
    use std::io::IsTerminal;
    let color = std::io::stderr().is_terminal()
        && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    if quiet {
        crate::report::verdict_line(r, color)
    } else {
        crate::report::terminal_styled(r, color)
    }
}

#[derive(Debug, clap::Args)]
pub struct CompareArgs {
    /// The baseline run's report.json.
    pub baseline: PathBuf,
    /// The candidate run's report.json.
    pub candidate: PathBuf,
    /// Allowed change per statistic, e.g. `--allow p50=+5% --allow error_rate=+0.5pp`
    /// (default: p50 +5%, p99 +10%, error_rate +0.5pp). Statistics: p50, p90, p95, p99, mean,
    /// error_rate, throughput.
    #[arg(long = "allow", value_name = "STAT=CHANGE")]
    pub allow: Vec<String>,
    /// Confidence of each interval.
    #[arg(long, default_value_t = 0.95)]
    pub confidence: f64,
    /// Seed of the resampling.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Where comparison.json and summary.md go; nothing is written without it.
    #[arg(long)]
    pub report_dir: Option<PathBuf>,
}

#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// Scenario file (YAML).
    pub scenario: PathBuf,
    /// Base URL of the service under test; overrides the scenario's `target`.
    #[arg(long, env = "VERIFIER_TARGET")]
    pub target: Option<String>,
    /// Compare the target (the candidate) with this service (the baseline) in one paired run:
    /// adds the scenario's `compare:` section with default allowances if it has none.
    #[arg(long, env = "VERIFIER_BASELINE_TARGET")]
    pub baseline_target: Option<String>,
    /// Where report.json, junit.xml, summary.md and report.html go.
    #[arg(long, env = "VERIFIER_REPORT_DIR", default_value = "verifier-report")]
    pub report_dir: PathBuf,
    /// Live progress: a bar on a terminal, plain lines otherwise.
    #[arg(long, value_enum, default_value_t = ProgressArg::Auto)]
    pub progress: ProgressArg,
    /// Print only the verdict line (no progress, no summary); the reports are written as always.
    #[arg(long, short)]
    pub quiet: bool,
    /// Run shard INDEX of COUNT (`0/4` .. `3/4`): every COUNT-th arrival of the open model's
    /// schedule from INDEX, or 1/COUNT of the closed model's users. Shard 0 also runs what
    /// happens once per run (functional checks, security, faults, observability, triggers).
    /// Needs --start-at; merge the shards' reports with `verifier merge`, which gives the
    /// verdict: a shard exits 0 once its report is written.
    #[arg(long, env = "VERIFIER_SHARD", value_name = "INDEX/COUNT", value_parser = parse_shard)]
    pub shard: Option<crate::shard::Shard>,
    /// The instant (RFC 3339, UTC: 2026-12-05T22:00:00Z) every shard starts its schedule at.
    #[arg(
        long,
        env = "VERIFIER_START_AT",
        value_name = "INSTANT",
        requires = "shard"
    )]
    pub start_at: Option<String>,
    /// How late after --start-at a shard may begin and still count as aligned; later, it is
    /// inconclusive. A --start-at further in the past than this is refused.
    #[arg(
        long,
        env = "VERIFIER_START_TOLERANCE",
        default_value = "1s",
        value_name = "DURATION"
    )]
    pub start_tolerance: String,
}

fn parse_shard(s: &str) -> Result<crate::shard::Shard, String> {
    crate::shard::Shard::parse(s)
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
    /// The baseline the run would be given with `--baseline-target`.
    #[arg(long, env = "VERIFIER_BASELINE_TARGET")]
    pub baseline_target: Option<String>,
}

#[derive(Debug, clap::Args)]
pub struct PlanArgs {
    /// Scenario file (YAML).
    pub scenario: PathBuf,
    /// Base URL of the service under test, as `run --target` takes it.
    #[arg(long, env = "VERIFIER_TARGET")]
    pub target: Option<String>,
    /// The baseline, as `run --baseline-target` takes it.
    #[arg(long, env = "VERIFIER_BASELINE_TARGET")]
    pub baseline_target: Option<String>,
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
            return ExitCode::from(validate(
                &args.files,
                crate::plan::PlanOptions {
                    target: args.target.as_deref(),
                    baseline_target: args.baseline_target.as_deref(),
                },
            ));
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
        Command::Compare(args) => return ExitCode::from(compare(args)),
        Command::Report(args) => return ExitCode::from(rerender(args)),
        Command::Merge(args) => return ExitCode::from(merge(args)),
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
            Command::Init(args) => init(args).await,
            Command::Validate(_)
            | Command::Plan(_)
            | Command::Schema(_)
            | Command::Triggers(_)
            | Command::Compare(_)
            | Command::Report(_)
            | Command::Merge(_) => exit_codes::USAGE,
        }
    });
    ExitCode::from(code)
}

fn getenv(k: &str) -> Option<String> {
    std::env::var(k).ok()
}

/// `verifier validate`: every file is planned as `run` would plan it; the first line of each
/// result names it.
pub fn validate(files: &[PathBuf], opts: crate::plan::PlanOptions<'_>) -> u8 {
    let mut code = exit_codes::PASS;
    for f in files {
        match crate::plan::build(f, opts, &getenv) {
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
                        + &p.compare.as_ref().map_or_else(String::new, |c| format!(
                            ", compared with a baseline on {} statistics",
                            c.wanted.len()
                        ))
                );
                for n in &p.notes {
                    eprintln!("{}: note: {n}", f.display());
                }
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
        baseline_target: args.baseline_target.as_deref(),
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
    let shard = match shard_run(&args) {
        Ok(s) => s,
        Err(m) => {
            eprintln!("verifier: {m}");
            return exit_codes::USAGE;
        }
    };
    let opts = crate::run::RunOptions {
        scenario: args.scenario,
        target: args.target,
        baseline_target: args.baseline_target,
        report_dir: args.report_dir,
        progress: match args.progress {
            _ if args.quiet => Mode::Off,
            ProgressArg::Auto => Mode::Auto,
            ProgressArg::Bar => Mode::Bar,
            ProgressArg::Lines => Mode::Lines,
            ProgressArg::Off => Mode::Off,
        },
        shard,
    };
    match crate::run::run(&opts, stop, &|k| std::env::var(k).ok()).await {
        Ok(out) => {
            if args.quiet {
                eprint!("{}", summary(&out.report, true));
            } else {
                eprint!("\n{}", summary(&out.report, false));
                let names: Vec<String> =
                    out.files.iter().map(|p| p.display().to_string()).collect();
                eprintln!("reports: {}", names.join(", "));
            }
            match &out.report.shard {
                // One shard's budgets see a part of the samples: its verdict is not the run's.
                // It exits 0 once its report is written, and `verifier merge` gives the verdict.
                Some(s) => {
                    eprintln!(
                        "verifier: shard {}/{} done; the run's verdict is `verifier merge`'s over \
                         every shard's report.json",
                        s.index, s.count
                    );
                    exit_codes::PASS
                }
                None => out.report.exit_code,
            }
        }
        Err(e) => {
            eprintln!("verifier: {e}");
            e.exit_code()
        }
    }
}

/// `verifier init`: the scenario to its file (or stdout), the summary and errors to stderr.
async fn init(args: InitArgs) -> u8 {
    let opts = crate::init::InitOptions {
        openapi: args.openapi,
        target: args.target,
        calibrate: args.calibrate,
        output: args.output,
        force: args.force,
    };
    match crate::init::init(&opts, &getenv).await {
        Ok(summary) => {
            eprintln!("verifier: wrote {summary}");
            exit_codes::PASS
        }
        Err(e) => {
            eprintln!("verifier: init: {e}");
            e.exit_code()
        }
    }
}

/// `verifier report`: a saved run rendered again. The input is checked first (exit 2), then
/// every output path (exit 3), and only then is anything rendered or written.
fn rerender(args: &ReportArgs) -> u8 {
    let report = match crate::report::saved::read(&args.report) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("verifier: {e}");
            return exit_codes::USAGE;
        }
    };
    let outputs: Vec<&PathBuf> = args.html.iter().chain(args.md.iter()).collect();
    for p in &outputs {
        if let Err(e) = crate::report::saved::check_writable(p) {
            eprintln!("verifier: {e}");
            return exit_codes::ENVIRONMENT;
        }
    }
    eprint!("{}", summary(&report, args.quiet));
    let mut written = Vec::new();
    for (path, body) in [
        (&args.html, crate::report::html::render as fn(&_) -> String),
        (&args.md, crate::report::markdown),
    ] {
        let Some(path) = path else { continue };
        if let Err(e) = crate::report::files::write_atomically(path, body(&report).as_bytes()) {
            eprintln!("verifier: {}: cannot be written: {e}", path.display());
            return exit_codes::ENVIRONMENT;
        }
        written.push(path.display().to_string());
    }
    if !written.is_empty() && !args.quiet {
        eprintln!("reports: {}", written.join(", "));
    }
    exit_codes::PASS
}

/// `--shard`, `--start-at` and `--start-tolerance` together, checked against the clock now.
fn shard_run(args: &RunArgs) -> Result<Option<crate::run::ShardRun>, String> {
    let tolerance = crate::shard::parse_tolerance(&args.start_tolerance)?;
    match (args.shard, &args.start_at) {
        (None, _) => Ok(None),
        (Some(s), None) => Err(format!(
            "--shard {s} needs --start-at: every shard starts its schedule at the same instant"
        )),
        (Some(shard), Some(at)) => Ok(Some(crate::run::ShardRun {
            shard,
            start_at: crate::shard::parse_start_at(at, std::time::SystemTime::now(), tolerance)?,
            tolerance,
        })),
    }
}

/// `verifier merge`: the shards of one run, judged as that run.
fn merge(args: &MergeArgs) -> u8 {
    let report = match crate::merge::merge_files(&args.reports) {
        Ok(r) => r,
        Err(m) => {
            eprintln!("verifier: merge: {m}");
            return exit_codes::USAGE;
        }
    };
    let dir = match crate::report::files::ReportDir::claim(&args.report_dir) {
        Ok(d) => d,
        Err(e) => {
            eprintln!("verifier: {e}");
            return e.exit_code();
        }
    };
    eprint!("{}", summary(&report, false));
    match dir.write_all(&report) {
        Ok(files) => {
            let names: Vec<String> = files.iter().map(|p| p.display().to_string()).collect();
            eprintln!("reports: {}", names.join(", "));
        }
        Err(e) => {
            eprintln!(
                "verifier: cannot write reports into {}: {e}",
                args.report_dir.display()
            );
            return exit_codes::ENVIRONMENT;
        }
    }
    report.exit_code
}

/// `verifier compare`: two saved runs, judged unpaired.
fn compare(args: &CompareArgs) -> u8 {
    let mut allow = Vec::new();
    for a in &args.allow {
        let Some((stat, change)) = a.split_once('=') else {
            eprintln!("verifier: --allow {a}: write STAT=CHANGE, e.g. p99=+10%");
            return exit_codes::USAGE;
        };
        let stat: crate::compare::Statistic =
            match serde_json::from_value(serde_json::Value::String(stat.trim().to_owned())) {
                Ok(s) => s,
                Err(_) => {
                    eprintln!(
                        "verifier: --allow {a}: unknown statistic `{stat}` (p50, p90, p95, p99, \
                         mean, error_rate, throughput)"
                    );
                    return exit_codes::USAGE;
                }
            };
        match crate::compare::Change::parse(change) {
            Ok(c) if c.points == stat.in_points() => allow.push((stat, c)),
            Ok(_) if stat.in_points() => {
                eprintln!(
                    "verifier: --allow {a}: error_rate changes in percentage points, e.g. +0.5pp"
                );
                return exit_codes::USAGE;
            }
            Ok(_) => {
                eprintln!("verifier: --allow {a}: {stat} changes by a percentage, e.g. +5%");
                return exit_codes::USAGE;
            }
            Err(m) => {
                eprintln!("verifier: --allow {a}: {m}");
                return exit_codes::USAGE;
            }
        }
    }
    if !(0.5..=0.999).contains(&args.confidence) {
        eprintln!(
            "verifier: --confidence {}: give a confidence between 0.5 and 0.999, e.g. 0.95",
            args.confidence
        );
        return exit_codes::USAGE;
    }
    let settings = crate::compare::Settings {
        confidence: args.confidence,
        resamples: 1000,
        seed: args.seed,
        pairing: crate::compare::Pairing::Unpaired,
    };
    let report = match crate::compare::two_runs::compare_files(
        &args.baseline,
        &args.candidate,
        &allow,
        settings,
        crate::report::SCHEMA_VERSION,
    ) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("verifier: {e}");
            return exit_codes::USAGE;
        }
    };
    let out = crate::report::comparison::Standalone::new(report);
    eprint!("{}", out.terminal());
    if let Some(dir) = &args.report_dir {
        match out.write(dir) {
            Ok(files) => {
                let names: Vec<String> = files.iter().map(|p| p.display().to_string()).collect();
                eprintln!("reports: {}", names.join(", "));
            }
            Err(e) => {
                eprintln!("verifier: cannot write reports into {}: {e}", dir.display());
                return exit_codes::ENVIRONMENT;
            }
        }
    }
    out.verdict.status.exit_code()
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
