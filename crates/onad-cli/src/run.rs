//! `onad run`: open a source, build the model pipeline, stream every row through it, write scores and a
//! summary.

use std::fs::File;
use std::io::Write;
use std::path::PathBuf;

use anyhow::{Context, anyhow, bail};
use clap::{Args, ValueEnum};
use onad_core::{BadRowPolicy, Sink, Source};

use crate::progress;
use onad_models::{AnyPipeline, PipelineSpec};
use onad_pipeline::job::{
    CheckpointPolicy, Evaluation, Job, JobError, JobReport, Keyed, MemoryLimit, ReportEvery, StopOnSignals, memory_mib,
};
use onad_pipeline::sinks::{AlertsOnly, CsvSink, JsonlSink, Target};
use onad_pipeline::{AnyThreshold, Order};
use onad_sources::{KeyPolicy, LabelColumn, NonNumericColumns, SourceOptions};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::Failure;
use crate::datasets::{self, BuiltIn};
use crate::spec::{Wrappers, build_wrapped_spec};

/// The model `onad run` uses when `--model` is not given: the detector with the best mean ROC-AUC over the
/// labelled sets among those at 1M rows/s or more on 10 features (`scripts/bench/default_eval.toml`,
/// docs/benchmarks.md, "The default model"). It reads every feature, raw.
pub const DEFAULT_MODEL: &str = "mstream";

/// Options of `onad run`. The same struct is filled by the command line and by a config file
/// (`--config job.toml`, keys spelled as the flags: `checkpoint-every = 50000`); a flag given on the
/// command line overrides the file. Values that are not given take the defaults shown in `--help`.
#[derive(Debug, Default, Args, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct RunArgs {
    /// Read the options from this TOML file (flags given too override it). `onad config check FILE`
    /// checks one without running it.
    #[arg(long, value_name = "FILE")]
    #[serde(skip)]
    pub config: Option<PathBuf>,

    /// Input: a file (.csv, .tsv, .parquet, .jsonl, .ndjson), `-` for standard input (with --format), or a
    /// URL: `sqlite://PATH?query=SELECT...`, `redis://HOST:PORT/stream/NAME?...`, `kafka://HOST:PORT/TOPIC?...`.
    /// Without it, a built-in data set is scored.
    #[arg(long, short)]
    #[serde(skip_serializing_if = "Option::is_none")]
    input: Option<String>,

    /// The input's format when its name does not tell (standard input, a file without an extension):
    /// csv, tsv, jsonl or parquet.
    #[arg(long, value_name = "FORMAT")]
    #[serde(skip_serializing_if = "Option::is_none")]
    format: Option<String>,

    /// Built-in data set to score (see `onad datasets`) [default: shuttle].
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    dataset: Option<String>,

    /// Model, or a pipeline of transformers ending in a detector: `standard_scaler|moving_average`. In a
    /// config file also a table (`[model]`, see docs/guide.md). Default: mstream on every feature (the
    /// best mean ROC-AUC over the labelled sets at 1M rows/s or more; docs/benchmarks.md).
    #[arg(long, short, value_parser = parse_model_arg)]
    #[serde(skip_serializing_if = "Option::is_none")]
    model: Option<ModelArg>,

    /// Set a model parameter (Python onad names): `--set window_size=50`; `stage.name=value` when several
    /// stages have the parameter; or a path through the model tree (`protect.model.detector.window_size`,
    /// `transformers.0.with_std`, `protect.rule`). Repeatable.
    #[arg(long = "set", value_name = "NAME=VALUE")]
    #[serde(rename = "set", default, skip_serializing_if = "Vec::is_empty")]
    sets: Vec<String>,

    /// Name of the label column (default: the last column).
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    label_column: Option<String>,

    /// The input has no label column: every column is a feature.
    #[arg(long)]
    #[serde(default, skip_serializing_if = "is_false")]
    no_label: bool,

    /// Write every scored row here: `.parquet` as Parquet and `.jsonl`/`.ndjson` as JSON Lines (row,
    /// score, threshold, anomaly, label, key), anything else as CSV (`row,score,anomaly`, then `label`,
    /// `key` when there are); `-` is standard output (CSV); `kafka://HOST:PORT/TOPIC` (one JSON message
    /// per row, keyed by row id) or `redis://HOST:PORT/stream/NAME[?maxlen=N]` (one entry per row).
    /// Repeatable.
    #[arg(long, short, value_name = "PATH")]
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    output: Vec<String>,

    /// Write only the flagged rows here (same forms as --output). Repeatable.
    #[arg(long, value_name = "PATH")]
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    alerts: Vec<String>,

    /// Write the run summary as JSON to this file.
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    summary_json: Option<PathBuf>,

    /// Write a self-contained HTML report of the run to this file (score over time with the threshold,
    /// flags and labels, score distributions, ROC and PR curves, windowed ROC-AUC, the summary), as
    /// `onad report` draws from a run's output. Not with --checkpoint: a report draws one run's rows.
    #[arg(long, value_name = "PAGE.html")]
    #[serde(skip_serializing_if = "Option::is_none")]
    report: Option<PathBuf>,

    /// Do not learn rows the model itself flags: `X` (score above X) or `quantile:Q[:WINDOW]` (score above
    /// the Q quantile of the last WINDOW scores, default 1000).
    #[arg(long, value_name = "RULE")]
    #[serde(default, with = "as_text", skip_serializing_if = "Option::is_none")]
    protect: Option<onad_models::Protect>,

    /// Calibrate the model's scores against its recent scores: `conformal[:WINDOW]` (1 - the conformal
    /// p-value among the last WINDOW scores, in [0, 1)) or `zscore[:WINDOW]` (running z-score); WINDOW
    /// 1000 when left out. Goes around --protect, which sees the raw scores.
    #[arg(long, value_name = "METHOD")]
    #[serde(default, with = "as_text", skip_serializing_if = "Option::is_none")]
    calibrate: Option<onad_models::Calibration>,

    /// Watch the model's scores with a drift detector (`adwin`, `kswin` or `page_hinkley`, at its defaults;
    /// `--set drift.detector.NAME=..` for others) and replace the model by a fresh one at each change:
    /// `DETECTOR` or `DETECTOR:reset`, or `DETECTOR:rewarm:N` (the fresh model learns the last N rows).
    /// Goes around --protect, inside --calibrate.
    #[arg(long, value_name = "DETECTOR[:rewarm:N]")]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    drift: Option<String>,

    /// Anomaly threshold: a number (fixed: score > X), `adaptive[:WINDOW[:K]]` (mean + K std of the last
    /// WINDOW scores), `quantile:Q[:WINDOW]` (above the Q quantile of the last WINDOW scores), `p:A` (a
    /// false-alarm rate: p-values at most A, with --calibrate conformal), or `none` [default:
    /// adaptive:1000:3].
    #[arg(long)]
    #[serde(default, with = "as_text", skip_serializing_if = "Option::is_none")]
    threshold: Option<AnyThreshold>,

    /// Score each row before learning it (prequential) or after [default: score-then-learn].
    #[arg(long, value_enum)]
    #[serde(skip_serializing_if = "Option::is_none")]
    order: Option<OrderArg>,

    /// What to do with rows that cannot be read as numbers: skip and count them, keep their place as a
    /// missing row (every feature NaN) and count them, or stop [default: missing for models of one series
    /// at a fixed cadence (a shifted row would misplace every later one in time), skip otherwise].
    #[arg(long, value_enum)]
    #[serde(skip_serializing_if = "Option::is_none")]
    on_bad_row: Option<BadRowArg>,

    /// Read only these input columns as features (comma-separated; the label is read besides).
    /// Parquet decodes only these columns.
    #[arg(long, value_name = "COL,...", value_delimiter = ',')]
    #[serde(skip_serializing_if = "Option::is_none")]
    columns: Option<Vec<String>>,

    /// Leave these input columns out (comma-separated): ids, timestamps, free text.
    #[arg(long, value_name = "COL,...", value_delimiter = ',')]
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    exclude: Vec<String>,

    /// Read these columns as ids (comma-separated): account names, IP addresses, integers of any size.
    /// Each value becomes a 52-bit hash of its text, exact in a float, so models compare ids for
    /// equality without rounding (graph detectors, categorical aspects; `--key` on a text column). Read
    /// even when --columns does not list them.
    #[arg(long, value_name = "COL,...", value_delimiter = ',')]
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    ids: Vec<String>,

    /// Columns that do not hold numbers: `reject` (each row with text there is a bad row) or `exclude`
    /// (left out, judged on the first row when opening) [default: reject].
    #[arg(long, value_enum)]
    #[serde(skip_serializing_if = "Option::is_none")]
    non_numeric: Option<NonNumericArg>,

    /// JSON input (JSON Lines, Redis, Kafka) whose objects differ in keys: `fixed` (every object has the
    /// first object's keys; a missing or unknown key is a bad row) or `evolving` (features come and go:
    /// --columns may list every feature, a missing one is a missing value, an unknown key is read past
    /// and counted) [default: fixed].
    #[arg(long, value_enum)]
    #[serde(skip_serializing_if = "Option::is_none")]
    keys: Option<KeysArg>,

    /// Write the model's explanation of each score as extra output columns (a matrix profile's matching
    /// subsequence and distances, a forecaster's forecast and residual); rows then go one at a time.
    /// A model without explanations writes none. Runs of one model only (not with --key).
    #[arg(long)]
    #[serde(default, skip_serializing_if = "is_false")]
    explain: bool,

    /// A column that must not decrease (a time): a row whose value there is below an earlier row's is a
    /// bad row `time_went_back`, handled by --on-bad-row [default: the model's time column, for edge
    /// detectors with a `time_key`; none otherwise].
    #[arg(long, value_name = "COL")]
    #[serde(skip_serializing_if = "Option::is_none")]
    ordered_by: Option<String>,

    /// Directory for crash-safe checkpoints (model, threshold, source position, where each output stands).
    #[arg(long, value_name = "DIR")]
    #[serde(skip_serializing_if = "Option::is_none")]
    checkpoint: Option<PathBuf>,

    /// Write a checkpoint every N rows (at batch boundaries), at the end, and on SIGTERM / Ctrl-C
    /// [default: 100000].
    #[arg(long, value_name = "N")]
    #[serde(skip_serializing_if = "Option::is_none")]
    checkpoint_every: Option<u64>,

    /// Also write a checkpoint when this many seconds have passed since the last one.
    #[arg(long, value_name = "SECONDS")]
    #[serde(skip_serializing_if = "Option::is_none")]
    checkpoint_seconds: Option<f64>,

    /// Checkpoint generations kept (a corrupt newest one falls back to the previous) [default: 3].
    #[arg(long, value_name = "K")]
    #[serde(skip_serializing_if = "Option::is_none")]
    checkpoint_keep: Option<usize>,

    /// Continue from the newest valid checkpoint in --checkpoint DIR (start fresh when there is none).
    #[arg(long)]
    #[serde(default, skip_serializing_if = "is_false")]
    resume: bool,

    /// Stop when the share of bad rows among the rows read passes this (0.01 = 1 %), judged after 100 rows.
    #[arg(long, value_name = "RATE")]
    #[serde(skip_serializing_if = "Option::is_none")]
    max_error_rate: Option<f64>,

    /// Print progress to stderr every N rows: rows, resident memory and its growth since the start, rate
    /// (the guide's memory monitoring).
    #[arg(long, value_name = "N")]
    #[serde(skip_serializing_if = "Option::is_none")]
    report_every: Option<u64>,

    /// Stop (after a final checkpoint, when checkpointing) once resident memory exceeds this many MiB.
    #[arg(long, value_name = "MIB")]
    #[serde(skip_serializing_if = "Option::is_none")]
    memory_limit_mb: Option<f64>,

    /// Entity column: one model per distinct value of this column (which is then not a feature).
    #[arg(long, value_name = "COLUMN")]
    #[serde(skip_serializing_if = "Option::is_none")]
    key: Option<String>,

    /// Worker threads for per-key models (with --key); the output is the same for any number [default: 1].
    #[arg(long, value_name = "N")]
    #[serde(skip_serializing_if = "Option::is_none")]
    workers: Option<usize>,

    /// Threads a model may use inside one batch (tree ensembles such as half_space_trees split their trees
    /// among them; the scores are the same for any number); per-key runs divide them among --workers
    /// [default: every core].
    #[arg(long, value_name = "N")]
    #[serde(skip_serializing_if = "Option::is_none")]
    threads: Option<usize>,

    /// Most per-key models kept (least recently used are dropped and counted), with --key.
    #[arg(long, value_name = "N")]
    #[serde(skip_serializing_if = "Option::is_none")]
    max_keys: Option<usize>,

    /// Skip the overall ROC-AUC / PR-AUC, which keeps every (score, label) pair (16 bytes per labelled row):
    /// for unbounded streams, use --eval-window instead.
    #[arg(long)]
    #[serde(default, skip_serializing_if = "is_false")]
    no_eval: bool,

    /// Also evaluate ROC-AUC / PR-AUC over consecutive windows of N labelled rows (prequential), reported
    /// per window in the JSON summary.
    #[arg(long, value_name = "N")]
    #[serde(skip_serializing_if = "Option::is_none")]
    eval_window: Option<usize>,

    /// Rows per batch read from the source [default: 4096].
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    batch_size: Option<usize>,

    /// Print nothing but errors.
    #[arg(long, short)]
    #[serde(default, skip_serializing_if = "is_false")]
    quiet: bool,

    /// Progress as plain lines every 5 s with memory, also on a terminal (where a live bar is the
    /// default; without a terminal the lines come every 30 s), and info log events (checkpoint writes,
    /// resumes; `ONAD_LOG=LEVEL` and `ONAD_LOG_FORMAT=json` tune the logs).
    #[arg(long, short)]
    #[serde(default, skip_serializing_if = "is_false")]
    verbose: bool,
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// `--model`: a `|`-separated pipeline as typed, or (config files) a spec table.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum ModelArg {
    /// `standard_scaler|moving_average`.
    Text(String),
    /// A spec written as a table.
    Spec(Box<PipelineSpec>),
}

/// A string is a `--model` text, a table a [`PipelineSpec`] (whose own errors name what is wrong in it).
impl<'de> Deserialize<'de> for ModelArg {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visit;
        impl<'de> serde::de::Visitor<'de> for Visit {
            type Value = ModelArg;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a model as text (\"standard_scaler|moving_average\") or a [model] table")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<ModelArg, E> {
                Ok(ModelArg::Text(v.to_owned()))
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, map: A) -> Result<ModelArg, A::Error> {
                let spec = PipelineSpec::deserialize(serde::de::value::MapAccessDeserializer::new(map))?;
                Ok(ModelArg::Spec(Box::new(spec)))
            }
        }
        d.deserialize_any(Visit)
    }
}

fn parse_model_arg(text: &str) -> Result<ModelArg, String> {
    Ok(ModelArg::Text(text.to_owned()))
}

/// Serde through the text forms of `FromStr` / `Display` (thresholds, protect rules): a config file
/// writes `threshold = "quantile:0.99"`, exactly as the flag.
pub(crate) mod as_text {
    use std::fmt::Display;
    use std::str::FromStr;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<T: Display, S: Serializer>(value: &Option<T>, s: S) -> Result<S::Ok, S::Error> {
        match value {
            Some(v) => s.collect_str(v),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, T, D>(d: D) -> Result<Option<T>, D::Error>
    where
        T: FromStr,
        T::Err: Display,
        D: Deserializer<'de>,
    {
        let text = String::deserialize(d)?;
        text.parse().map(Some).map_err(serde::de::Error::custom)
    }
}

impl RunArgs {
    /// The options of `file` (TOML) with every flag of `self` given on the command line on top.
    pub fn over_file(self, file: &std::path::Path) -> anyhow::Result<RunArgs> {
        let text =
            std::fs::read_to_string(file).with_context(|| format!("cannot read config file {}", file.display()))?;
        let from_file = parse_config(&text).map_err(|e| anyhow!("{}: {e}", file.display()))?;
        let mut merged = serde_json::to_value(&from_file)?;
        let flags = serde_json::to_value(&self)?;
        if let (Some(m), serde_json::Value::Object(f)) = (merged.as_object_mut(), flags) {
            m.extend(f);
        }
        let mut args: RunArgs =
            serde_json::from_value(merged).context("cannot merge the config file with the flags")?;
        args.config = self.config;
        Ok(args)
    }
}

/// Parses a config file; errors (one line) name the line and column of the mistake and what is wrong there.
pub fn parse_config(text: &str) -> Result<RunArgs, String> {
    parse_toml(text)
}

/// Parses TOML into any options struct; errors (one line) name the line and column of the mistake.
pub(crate) fn parse_toml<T: serde::de::DeserializeOwned>(text: &str) -> Result<T, String> {
    toml::from_str(text).map_err(|e| {
        let message = e.message().trim().replace('\n', "; ");
        match e.span() {
            Some(span) => {
                let (line, column) = line_column(text, span.start);
                let source = text.lines().nth(line - 1).unwrap_or("").trim();
                format!("line {line}, column {column} ({source}): {message}")
            }
            None => message,
        }
    })
}

/// 1-based line and column (in characters) of a byte offset.
fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
enum OrderArg {
    ScoreThenLearn,
    LearnThenScore,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
enum BadRowArg {
    Skip,
    Missing,
    Fail,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
enum NonNumericArg {
    Reject,
    Exclude,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
enum KeysArg {
    Fixed,
    Evolving,
}

/// Where rows come from, for messages.
enum Input {
    File(PathBuf),
    Stdin,
    BuiltIn(&'static BuiltIn),
}

impl Input {
    fn describe(&self) -> String {
        match self {
            Input::File(p) => p.display().to_string(),
            Input::Stdin => "standard input".into(),
            Input::BuiltIn(d) => format!("{} (built-in)", d.name),
        }
    }
}

fn open_source(
    input: &Input,
    format: Option<onad_sources::Format>,
    options: SourceOptions,
) -> anyhow::Result<Box<dyn Source + Send>> {
    match (input, format) {
        (Input::Stdin, Some(f)) => Ok(onad_sources::open_stdin(f, options)?),
        (Input::Stdin, None) => {
            bail!("--input - reads standard input, which has no extension to go by: add --format csv|tsv|jsonl|parquet")
        }
        (Input::File(path), Some(f)) => Ok(onad_sources::open_as(path, f, options)?),
        (Input::File(path), None) => Ok(onad_sources::open_url(&path.to_string_lossy(), options)?),
        (Input::BuiltIn(_), Some(_)) => bail!("--format applies to --input; the built-in data sets are Parquet"),
        (Input::BuiltIn(d), None) => open_built_in(d, options),
    }
}

#[cfg(feature = "parquet")]
fn open_built_in(d: &BuiltIn, options: SourceOptions) -> anyhow::Result<Box<dyn Source + Send>> {
    Ok(Box::new(onad_sources::ParquetSource::from_static(d.name, d.bytes, options)?))
}

#[cfg(not(feature = "parquet"))]
fn open_built_in(_d: &BuiltIn, _options: SourceOptions) -> anyhow::Result<Box<dyn Source + Send>> {
    bail!("the built-in data sets are Parquet files, and this build has no parquet connector (cargo feature 'parquet')")
}

/// A sink named on the command line: a broker URL (`kafka://HOSTS/TOPIC`, `redis://HOST:PORT/stream/NAME`),
/// else a file by extension: Parquet, JSON Lines, else CSV (`-`: CSV on standard output).
fn sink_for(text: &str) -> anyhow::Result<Box<dyn Sink>> {
    if onad_sources::sink_url_connector(text).is_some() {
        return Ok(onad_sources::open_sink_url(text)?);
    }
    let target = Target::parse(text);
    let ext = match &target {
        Target::File(p) => p.extension().map(|e| e.to_string_lossy().to_ascii_lowercase()).unwrap_or_default(),
        Target::Stdout => String::new(),
    };
    Ok(match ext.as_str() {
        "jsonl" | "ndjson" => Box::new(JsonlSink::new(target)),
        "parquet" => parquet_sink(text)?,
        _ => Box::new(CsvSink::new(target)),
    })
}

#[cfg(feature = "parquet")]
fn parquet_sink(path: &str) -> anyhow::Result<Box<dyn Sink>> {
    Ok(Box::new(onad_sources::ParquetSink::new(path)))
}

#[cfg(not(feature = "parquet"))]
fn parquet_sink(path: &str) -> anyhow::Result<Box<dyn Sink>> {
    bail!("{path}: writing Parquet needs the cargo feature 'parquet', which this build does not have")
}

/// The names builds before model trees gave this model in checkpoints: they left out learn protection
/// (`protect(a|b)` was `a|b`), so an older protected run's checkpoint can still be resumed.
fn older_kinds(name: &str) -> Vec<String> {
    let mut inner = name;
    while let Some(i) = inner.strip_prefix("protect(").and_then(|r| r.strip_suffix(')')) {
        inner = i;
    }
    if inner == name { Vec::new() } else { vec![inner.to_owned()] }
}

/// What `onad run` prints besides the job's report.
struct Shown {
    /// The rows `--report` draws, collected as the run goes.
    report: Option<crate::report::Collect>,
    input: String,
    spec: PipelineSpec,
    order: Order,
    threshold: String,
    workers: Option<usize>,
    /// The bad-row policy in force: under `Missing` the bad rows counted were scored as missing rows.
    bad_rows: BadRowPolicy,
}

/// The wrapper flags of a run.
fn wrappers(args: &RunArgs) -> Wrappers<'_> {
    Wrappers { protect: args.protect.as_ref(), drift: args.drift.as_deref(), calibrate: args.calibrate.as_ref() }
}

/// The model of `--model` (text or a config file's `[model]` table) with `--protect`, `--drift` and
/// `--calibrate` around it and `--set` applied.
fn model_spec(model: &ModelArg, args: &RunArgs) -> anyhow::Result<PipelineSpec> {
    match model {
        ModelArg::Text(m) => build_wrapped_spec(m, wrappers(args), &args.sets),
        ModelArg::Spec(spec) => {
            let mut spec = crate::spec::wrap((**spec).clone(), wrappers(args))?;
            crate::spec::apply_sets(&mut spec, &args.sets)?;
            Ok(spec)
        }
    }
}

/// Every check that needs no input: the rules between options (checked after a config file is merged in,
/// so they cannot be clap's), the model's names and parameters, value ranges. `onad config check` runs
/// just these.
pub fn check_options(args: &RunArgs) -> anyhow::Result<()> {
    if args.input.is_some() && args.dataset.is_some() {
        bail!("--input and --dataset name two inputs: give one");
    }
    if args.label_column.is_some() && args.no_label {
        bail!("--label-column and --no-label contradict each other: give one");
    }
    if args.key.is_none() && (args.workers.is_some() || args.max_keys.is_some()) {
        bail!("--workers and --max-keys apply to per-key models: give --key COLUMN too");
    }
    if args.resume && args.checkpoint.is_none() {
        bail!("--resume continues from checkpoints: give --checkpoint DIR too");
    }
    if args.report.is_some() && args.checkpoint.is_some() {
        bail!(
            "--report draws the rows of one run, and a checkpointed run may be resumed: write an --output and \
             draw the report from it with onad report OUTPUT --out PAGE.html"
        );
    }
    let conformal = match &args.model {
        Some(model) => model_spec(model, args)?.scores_are_conformal(),
        None => args.calibrate.is_some_and(|c| c.is_conformal()),
    };
    if matches!(args.threshold, Some(AnyThreshold::PValue(_))) && !conformal {
        bail!(
            "--threshold p:A reads scores as 1 - conformal p-values: add --calibrate conformal[:WINDOW] (around an \
             ensemble too), or give the threshold as a score"
        );
    }
    for (name, value) in [("--batch-size", args.batch_size), ("--workers", args.workers)] {
        if value == Some(0) {
            bail!("{name} must be at least 1");
        }
    }
    if args.checkpoint_every == Some(0) {
        bail!("--checkpoint-every must be at least 1");
    }
    if let Some(f) = &args.format {
        f.parse::<onad_sources::Format>().map_err(|e| anyhow!("--format: {e}"))?;
    }
    if let Some(r) = args.max_error_rate
        && !(0.0..=1.0).contains(&r)
    {
        bail!("--max-error-rate must be between 0 and 1, got {r}");
    }
    if let Some(t) = args.checkpoint_seconds
        && std::time::Duration::try_from_secs_f64(t).is_err()
    {
        bail!("--checkpoint-seconds must be a number of seconds, 0 or more (0: after every batch), got {t}");
    }
    if args.max_keys == Some(0) {
        bail!("--max-keys must be at least 1");
    }
    // Outputs are parsed here (nothing is opened or contacted), so a config check finds a bad URL too.
    for o in args.output.iter().chain(&args.alerts) {
        sink_for(o).with_context(|| format!("output {o}"))?;
    }
    Ok(())
}

fn setup(args: &RunArgs) -> anyhow::Result<(Job<PipelineSpec, AnyPipeline>, Shown)> {
    check_options(args)?;
    let input = match &args.input {
        Some(p) if p == "-" => Input::Stdin,
        Some(p) => Input::File(PathBuf::from(p)),
        None => {
            let name = args.dataset.as_deref().unwrap_or("shuttle");
            Input::BuiltIn(datasets::find(name).ok_or_else(|| {
                let names: Vec<&str> = datasets::BUILT_IN.iter().map(|d| d.name).collect();
                anyhow!("unknown data set '{name}' (built-in: {})", names.join(", "))
            })?)
        }
    };
    let batch_size = args.batch_size.unwrap_or(4096);
    let workers = args.workers.unwrap_or(1);
    let label = if args.no_label {
        LabelColumn::None
    } else if let Some(name) = &args.label_column {
        LabelColumn::Named(name.clone())
    } else {
        match &input {
            Input::BuiltIn(d) => LabelColumn::Named(d.label.to_owned()),
            Input::File(_) | Input::Stdin => LabelColumn::Last,
        }
    };
    let spec = match &args.model {
        Some(model) => model_spec(model, args)?,
        None => build_wrapped_spec(DEFAULT_MODEL, wrappers(args), &args.sets)?,
    };
    let default_bad_rows = if spec.reads_series() { BadRowArg::Missing } else { BadRowArg::Skip };
    let bad_rows = match args.on_bad_row.unwrap_or(default_bad_rows) {
        BadRowArg::Skip => BadRowPolicy::Skip,
        BadRowArg::Missing => BadRowPolicy::Missing,
        BadRowArg::Fail => BadRowPolicy::Fail,
    };
    let options = SourceOptions {
        label,
        bad_rows,
        batch_size,
        columns: args.columns.clone(),
        exclude: args.exclude.clone(),
        ids: args.ids.clone(),
        non_numeric: match args.non_numeric.unwrap_or(NonNumericArg::Reject) {
            NonNumericArg::Reject => NonNumericColumns::Reject,
            NonNumericArg::Exclude => NonNumericColumns::Exclude,
        },
        keys: match args.keys.unwrap_or(KeysArg::Fixed) {
            KeysArg::Fixed => KeyPolicy::Fixed,
            KeysArg::Evolving => KeyPolicy::Evolving,
        },
        ordered_by: args.ordered_by.clone().or_else(|| spec.ordered_column()),
    };
    let format = args.format.as_deref().map(str::parse).transpose().map_err(|e| anyhow!("--format: {e}"))?;
    let source = open_source(&input, format, options)?;
    let schema = source.schema().clone();
    if let Some(k) = &args.key
        && !schema.is_empty()
    {
        // The job checks this too; here it is a usage error before anything else is opened. (A broker with
        // nothing new has no columns: then nothing is run.)
        onad_pipeline::job::without_column(&schema, k, &input.describe())?;
    }

    match args.threads {
        Some(0) => bail!("--threads 0: give at least 1"),
        Some(n) => onad_core::threads::set_model_threads(n),
        None => {}
    }
    let threshold = match &args.threshold {
        Some(t) => t.clone(),
        None => "adaptive:1000:3".parse().expect("the default threshold parses"),
    };
    let order = match args.order.unwrap_or(OrderArg::ScoreThenLearn) {
        OrderArg::ScoreThenLearn => Order::ScoreThenLearn,
        OrderArg::LearnThenScore => Order::LearnThenScore,
    };
    let shown = Shown {
        report: args.report.as_ref().map(|_| crate::report::Collect::default()),
        input: input.describe(),
        spec: spec.clone(),
        order,
        threshold: threshold.to_string(),
        workers: args.key.as_ref().map(|_| workers),
        bad_rows,
    };
    let build = {
        let spec = spec.clone();
        move |schema: &onad_core::SchemaRef| spec.build(schema).map_err(Into::into)
    };
    let mut job = Job::new(source, spec.clone(), spec.name(), build)
        .input_name(input.describe())
        .threshold(threshold)
        .order(order)
        .max_error_rate(args.max_error_rate)
        .bad_rows(bad_rows)
        .explain(args.explain)
        .evaluation(Evaluation { overall: !args.no_eval, window: args.eval_window })
        .protected_rows(|m: &AnyPipeline| m.protected_rows())
        .drift_resets(|m: &AnyPipeline| m.drift_resets())
        .older_kinds(older_kinds(&spec.name()))
        .migrate(crate::legacy::decoder(
            args.output.first().map(|o| Target::parse(o).to_string()),
            order,
            args.max_keys,
        ));
    if let Some(k) = &args.key {
        job = job.keyed(Keyed { column: k.clone(), workers, max_keys: args.max_keys, depth: 4 });
    }
    if let Some(kill) = onad_pipeline::sinks::Failpoint::from_env() {
        job = job.sink(kill);
    }
    for o in &args.output {
        job = job.boxed_sink(sink_for(o)?);
    }
    if let Some(collect) = &shown.report {
        job = job.sink(collect.clone());
    }
    for a in &args.alerts {
        job = job.boxed_sink(Box::new(AlertsOnly::new(sink_for(a)?)));
    }
    if let Some(dir) = &args.checkpoint {
        let every = args.checkpoint_every.unwrap_or(100_000);
        let keep = args.checkpoint_keep.unwrap_or(3);
        let mut policy = CheckpointPolicy::new(dir).keep(keep).every_rows(every).resume(args.resume);
        if let Some(t) = args.checkpoint_seconds {
            policy = policy.every(std::time::Duration::try_from_secs_f64(t)?);
        }
        job = job.checkpoints(policy);
    }
    if args.checkpoint.is_some() || !args.output.is_empty() || !args.alerts.is_empty() {
        // SIGTERM / Ctrl-C: finish the batch, write a final checkpoint, stop cleanly.
        job = job.monitor(StopOnSignals::install().context("cannot install the signal handlers")?);
    }
    if let Some(every) = args.report_every {
        job = job.monitor(ReportEvery::new(every, |line: &str| eprintln!("{line}")));
    }
    if !args.quiet {
        use std::io::IsTerminal as _;
        let mode = if args.verbose {
            progress::Mode::Lines { every: std::time::Duration::from_secs(5) }
        } else if std::io::stderr().is_terminal() {
            progress::Mode::Live
        } else {
            progress::Mode::Lines { every: std::time::Duration::from_secs(30) }
        };
        job = job.monitor(progress::Progress::new(mode));
    }
    if let Some(mib) = args.memory_limit_mb {
        job = job.monitor(MemoryLimit { mib });
    }
    if let Some(p) = &args.summary_json {
        // Fail now, not after the whole stream, when the summary cannot be written.
        File::create(p).with_context(|| format!("cannot create summary file {}", p.display()))?;
    }
    Ok((job, shown))
}

/// Runs `onad run`.
pub fn run(args: RunArgs) -> Result<(), Failure> {
    let args = match args.config.clone() {
        Some(file) => args.over_file(&file).map_err(Failure::Usage)?,
        None => args,
    };
    crate::init_logs(args.verbose, args.quiet);
    let (job, shown) = setup(&args).map_err(Failure::Usage)?;
    let prepared = job.prepare().map_err(|e| Failure::Usage(e.into()))?;
    for w in prepared.warnings() {
        eprintln!("warning: skipped a damaged checkpoint: {w}");
    }
    if let Some(r) = prepared.resumed()
        && !args.quiet
    {
        eprintln!("resuming from {} at {} ({} rows done)", r.path.display(), r.position, r.rows);
    }
    let report = prepared.run().map_err(|e| match e {
        JobError::Run { .. } | JobError::Sink(_) | JobError::Checkpoint(_) => Failure::Run(e.into()),
        other => Failure::Usage(other.into()),
    })?;
    finish(&args, &shown, &report).map_err(Failure::Run)
}

fn finish(args: &RunArgs, shown: &Shown, report: &JobReport) -> anyhow::Result<()> {
    if let Some(reason) = &report.stop_reason {
        let resume = if args.checkpoint.is_some() { "; a checkpoint was written, continue with --resume" } else { "" };
        eprintln!("stopped after {} rows: {reason}{resume}", report.rows);
    }
    let stats = &report.stats;
    let skipped: serde_json::Map<String, serde_json::Value> =
        report.skipped.iter().map(|(k, v)| (k.to_owned(), json!(v))).collect();
    let memory = memory_mib();
    // Under the missing policy the bad rows counted by reason were scored, as rows of NaN.
    let missing = shown.bad_rows == BadRowPolicy::Missing;
    let summary = json!({
        "input": shown.input,
        "model": shown.spec.name(),
        "params": shown.spec,
        "order": shown.order,
        "threshold": shown.threshold,
        "rows": report.rows,
        "rows_this_run": stats.rows,
        "resumed": report.resumed.is_some(),
        "stopped_early": stats.stopped_early,
        "bad_rows": match shown.bad_rows {
            BadRowPolicy::Skip => "skip",
            BadRowPolicy::Missing => "missing",
            BadRowPolicy::Fail => "fail",
        },
        "skipped": if missing { 0 } else { report.skipped.total() },
        "missing_rows": if missing { report.skipped.total() } else { 0 },
        "skipped_by_reason": skipped,
        "ignored_keys": stats.ignored_keys,
        "anomalies": report.anomalies,
        "protected_rows": report.protected_rows,
        "drift_resets": report.drift_resets,
        "workers": shown.workers,
        "keyed_models": report.keyed.as_ref().map(|k| json!({"created": k.models_created, "evicted": k.evictions, "live": k.live_models})),
        "elapsed_sec": stats.elapsed.as_secs_f64(),
        "rows_per_sec": stats.rows_per_sec(),
        "memory_rss_mib": memory.map(|m| m.0),
        "memory_peak_mib": memory.map(|m| m.1),
        "roc_auc": report.roc_auc,
        "pr_auc": report.pr_auc,
        "windowed": report.prequential.as_ref().map(|p| json!({
            "window": args.eval_window,
            "mean_roc_auc": p.mean_roc_auc(),
            "mean_pr_auc": p.mean_pr_auc(),
            "windows": p.windows(),
        })),
    });
    if let Some(p) = &args.summary_json {
        let text = serde_json::to_string_pretty(&summary)?;
        std::fs::write(p, text + "\n").with_context(|| format!("cannot write summary file {}", p.display()))?;
    }
    if let (Some(page), Some(collect)) = (&args.report, &shown.report) {
        let data = collect.0.lock().unwrap_or_else(|p| p.into_inner());
        let title = format!("onad run: {} on {}", shown.spec.name(), shown.input);
        crate::report::write_page(page, &crate::report::render(&title, &data, Some(&summary), args.eval_window))?;
    }
    if !args.quiet {
        print_summary(shown, report);
    }
    Ok(())
}

pub(crate) fn thousands(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// A rate as people read it: `4.02M`, `25.6k`, `256`, `0.5`.
pub(crate) fn rate(rows_per_sec: f64) -> String {
    match rows_per_sec {
        r if r >= 1e6 => format!("{:.2}M", r / 1e6),
        r if r >= 1e4 => format!("{:.1}k", r / 1e3),
        r if r >= 10.0 => format!("{r:.0}"),
        r => format!("{r:.1}"),
    }
}

fn print_summary(shown: &Shown, report: &JobReport) {
    let stats = &report.stats;
    let params = serde_json::to_string(&shown.spec).unwrap_or_default();
    // Printing to a closed pipe (onad run | head) must not panic.
    let mut out = std::io::stdout().lock();
    let mut lines = vec![
        format!("input      {}", shown.input),
        format!("model      {}  {params}", shown.spec.name()),
        format!("order      {}; threshold {}", shown.order, shown.threshold),
        format!(
            "rows       {} scored, {}{}",
            thousands(report.rows),
            if shown.bad_rows == BadRowPolicy::Missing {
                format!("{} of them bad rows read as missing", thousands(report.skipped.total()))
            } else {
                format!("{} skipped", thousands(report.skipped.total()))
            },
            if report.resumed.is_some() {
                format!(" ({} in this run, after a resume)", thousands(stats.rows))
            } else if report.empty_source {
                " (the source has no columns: nothing new to read)".to_owned()
            } else {
                String::new()
            }
        ),
    ];
    for (reason, n) in stats.skipped.iter() {
        lines.push(format!("             {reason}: {}", thousands(n)));
    }
    if stats.ignored_keys > 0 {
        let n = thousands(stats.ignored_keys);
        lines.push(format!("keys       {n} values of keys that are not columns read past (--keys evolving)"));
    }
    lines.push(format!("speed      {} rows/s ({:.3} s)", rate(stats.rows_per_sec()), stats.elapsed.as_secs_f64()));
    let pct = if report.rows > 0 { 100.0 * report.anomalies as f64 / report.rows as f64 } else { 0.0 };
    lines.push(format!("anomalies  {} flagged ({pct:.2} %)", thousands(report.anomalies)));
    if let Some(p) = report.protected_rows {
        lines.push(format!("protected  {} rows not learned (--protect)", thousands(p)));
    }
    if let Some(d) = report.drift_resets {
        lines.push(format!("drift      {} changes found, the model replaced each time", thousands(d)));
    }
    let metric = |m: Option<f64>| m.map_or("n/a (no labels or one class only)".to_owned(), |v| format!("{v:.4}"));
    lines.push(format!("ROC-AUC    {}", metric(report.roc_auc)));
    lines.push(format!("PR-AUC     {}", metric(report.pr_auc)));
    for l in lines {
        if writeln!(out, "{l}").is_err() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::rate;

    #[test]
    fn older_builds_named_protected_models_without_protect() {
        assert_eq!(super::older_kinds("protect(standard_scaler|moving_average)"), ["standard_scaler|moving_average"]);
        assert_eq!(super::older_kinds("protect(protect(null_model))"), ["null_model"]);
        assert!(super::older_kinds("moving_average").is_empty());
    }

    #[test]
    fn small_rates_print_as_they_are() {
        assert_eq!(rate(256.0), "256");
        assert_eq!(rate(0.5), "0.5");
        assert_eq!(rate(25_600.0), "25.6k");
        assert_eq!(rate(4_020_000.0), "4.02M");
    }
}
