//! `onad`: score a stream for anomalies from the command line.
//!
//! `onad run` with no arguments scores the built-in SHUTTLE data set with the default model (mstream) and prints
//! rows, speed, anomalies and ROC-AUC / PR-AUC. See `onad run --help` and `onad models`.
//!
//! Exit codes: 0 success; 2 a usage or configuration error (unknown model, bad parameter, missing file or
//! column), reported before any row is read; 1 a failure while running (a bad row under
//! `--on-bad-row fail`, an output write error).

mod datasets;
mod eval;
mod inspect;
mod legacy;
mod models;
mod progress;
mod report;
mod run;
mod spec;
#[cfg(feature = "kafka")]
mod worker;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Online anomaly detection on streams: learn one row at a time, score every row.
#[derive(Debug, Parser)]
#[command(name = "onad", version, about, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Score a stream end to end (with no arguments: the built-in SHUTTLE data set).
    Run(Box<run::RunArgs>),
    /// List the registered models with their parameters and defaults.
    Models(models::ModelsArgs),
    /// List the built-in and downloadable data sets, or fetch one into the cache.
    Datasets(datasets::DatasetsArgs),
    /// Prequential evaluation of models on data sets: ROC-AUC, PR-AUC, windowed AUC, rows/s and peak
    /// memory per pair, as a table.
    Eval(eval::EvalArgs),
    /// Draw a self-contained HTML page about a run from its scored output: score over time with the
    /// threshold, flagged rows and labels, score distributions, ROC and PR curves, windowed ROC-AUC.
    Report(report::ReportArgs),
    /// Work with config files of `onad run --config`.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Join a group of workers on a Kafka topic: score and learn the partitions this worker owns, with
    /// model state that follows the partitions (snapshot, then commit; restore on assignment).
    #[cfg(feature = "kafka")]
    Worker(Box<worker::WorkerArgs>),
    /// Look into checkpoints.
    #[command(subcommand)]
    Checkpoint(CheckpointCommand),
    /// Print a shell completion script, generated from this CLI's definition
    /// (`onad completions bash > /etc/bash_completion.d/onad`).
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
    /// Print the man page in roff, generated from this CLI's definition (`onad man > onad.1`).
    Man,
}

#[derive(Debug, Subcommand)]
enum CheckpointCommand {
    /// What a checkpoint holds: generation, format, model and parameters, rows, position, threshold,
    /// input columns, outputs and their positions, per-key models, size.
    Inspect(inspect::InspectArgs),
}

#[derive(Debug, Subcommand)]
enum ConfigCommand {
    /// Check a config file without running it: syntax, keys, values, the model's names and parameters.
    /// Errors name the line and column.
    Check {
        /// The TOML file.
        file: std::path::PathBuf,
    },
}

fn config_check(file: &std::path::Path) -> Result<(), Failure> {
    let text = std::fs::read_to_string(file)
        .map_err(|e| Failure::Usage(anyhow::anyhow!("cannot read config file {}: {e}", file.display())))?;
    let args = run::parse_config(&text).map_err(|e| Failure::Usage(anyhow::anyhow!("{}: {e}", file.display())))?;
    run::check_options(&args).map_err(|e| Failure::Usage(e.context(format!("{}", file.display()))))?;
    println!("{}: ok", file.display());
    Ok(())
}

/// Sends the library crates' log events (connector reconnections, checkpoint writes and resumes, per-key
/// evictions) to stderr: warnings and errors by default, also info with `-v`, only errors with `-q`;
/// `ONAD_LOG=error|warn|info|debug|trace` sets the level and `ONAD_LOG_FORMAT=json` writes one JSON object
/// per event (time, level, target, message and the event's fields) for log collectors.
pub fn init_logs(verbose: bool, quiet: bool) {
    use tracing::Level;
    let level = match std::env::var("ONAD_LOG").ok().as_deref().map(str::to_ascii_lowercase).as_deref() {
        Some("error") => Level::ERROR,
        Some("warn") => Level::WARN,
        Some("info") => Level::INFO,
        Some("debug") => Level::DEBUG,
        Some("trace") => Level::TRACE,
        _ if quiet => Level::ERROR,
        _ if verbose => Level::INFO,
        _ => Level::WARN,
    };
    let builder = tracing_subscriber::fmt().with_max_level(level).with_writer(std::io::stderr).with_target(false);
    // Already set (a second call): the first one stands.
    let _ = if std::env::var("ONAD_LOG_FORMAT").is_ok_and(|f| f.eq_ignore_ascii_case("json")) {
        builder.json().try_init()
    } else {
        builder.with_ansi(false).try_init()
    };
}

/// Writes generated text to standard output (a reader that went away is handled like any other).
fn print_bytes(bytes: &[u8]) -> Result<(), Failure> {
    use std::io::Write as _;
    std::io::stdout().lock().write_all(bytes).map_err(|e| Failure::Run(e.into()))
}

/// A failure and the exit code it maps to.
#[derive(Debug)]
pub enum Failure {
    /// Bad arguments or configuration: exit 2.
    Usage(anyhow::Error),
    /// Failed while running: exit 1.
    Run(anyhow::Error),
}

fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| c.downcast_ref::<std::io::Error>().is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe))
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        // A value a type refused (`--threshold sometimes`): its message already says what is accepted, so
        // it is printed on one line like every other configuration error.
        Err(e) if matches!(e.kind(), clap::error::ErrorKind::ValueValidation) => {
            let text = e.render().to_string();
            eprintln!("{}", text.lines().next().unwrap_or("error: invalid value"));
            return ExitCode::from(2);
        }
        // A value outside a fixed set (`--on-bad-row maybe`): one line with the accepted values.
        Err(e) if matches!(e.kind(), clap::error::ErrorKind::InvalidValue) => {
            let text = e.render().to_string();
            let first = text.lines().next().unwrap_or("error: invalid value");
            match text.lines().find_map(|l| l.trim().strip_prefix("[possible values: ")) {
                Some(values) => eprintln!("{first} (accepted: {})", values.trim_end_matches(']')),
                None => eprintln!("{first}"),
            }
            return ExitCode::from(2);
        }
        Err(e) => e.exit(),
    };
    #[cfg(feature = "kafka")]
    let logs_later = matches!(cli.command, Command::Run(_) | Command::Worker(_));
    #[cfg(not(feature = "kafka"))]
    let logs_later = matches!(cli.command, Command::Run(_));
    if !logs_later {
        init_logs(false, false);
    }
    let result = match cli.command {
        Command::Run(args) => run::run(*args),
        Command::Eval(args) => eval::eval(args),
        #[cfg(feature = "kafka")]
        Command::Worker(args) => worker::run(*args),
        Command::Models(args) => models::list(&args).map_err(Failure::Usage),
        Command::Datasets(args) => datasets::command(args),
        Command::Report(args) => report::run(&args).map_err(Failure::Run),
        Command::Config(ConfigCommand::Check { file }) => config_check(&file),
        Command::Checkpoint(CheckpointCommand::Inspect(args)) => inspect::run(&args).map_err(Failure::Usage),
        // Generated into memory first: the generators panic on a write error (`onad man | head`).
        Command::Completions { shell } => {
            let mut script = Vec::new();
            clap_complete::generate(shell, &mut <Cli as clap::CommandFactory>::command(), "onad", &mut script);
            print_bytes(&script)
        }
        Command::Man => {
            let mut page = Vec::new();
            match clap_mangen::Man::new(<Cli as clap::CommandFactory>::command()).render(&mut page) {
                Ok(()) => print_bytes(&page),
                Err(e) => Err(Failure::Run(e.into())),
            }
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        // `onad models | head`: the reader went away; that is not an error.
        Err(Failure::Usage(e) | Failure::Run(e)) if is_broken_pipe(&e) => ExitCode::SUCCESS,
        Err(Failure::Usage(e)) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
        Err(Failure::Run(e)) => {
            eprintln!("error: {e:#}");
            ExitCode::from(1)
        }
    }
}
