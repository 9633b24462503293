//! `onad run`: open a source, build the model pipeline, stream every row through it, write scores and a
//! summary.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::{Context, anyhow, bail};
use clap::{Args, ValueEnum};
use onad_core::{BadRowPolicy, SkipCounts, Source};
use onad_models::{AnyPipeline, PipelineSpec};
use onad_pipeline::Flow;
use onad_pipeline::checkpoint::{Checkpoint, CheckpointDir};
use onad_pipeline::metrics::{Prequential, pr_auc, roc_auc};
use onad_pipeline::{
    AnyThreshold, FixedThreshold, KeyedAction, KeyedConfig, KeyedModel, NoThreshold, Order, QuantileThreshold,
    RunConfig, WindowedThreshold,
};
use onad_sources::{LabelColumn, NonNumericColumns, SourceOptions};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::Failure;
use crate::datasets::{self, BuiltIn};
use crate::spec::build_spec;

/// The model `onad run` uses when `--model` is not given.
pub const DEFAULT_MODEL: &str = "standard_scaler|moving_average";
/// Parameters of the default model; `key` is set to the first feature of the input.
pub const DEFAULT_SETS: &[&str] = &["window_size=100"];

/// Options of `onad run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// Input: a file (.csv, .tsv, .parquet, .jsonl, .ndjson) or `sqlite://PATH?query=SELECT...` (URL-encoded
    /// query). Without it, a built-in data set is scored.
    #[arg(long, short, conflicts_with = "dataset")]
    input: Option<PathBuf>,

    /// Built-in data set to score (see `onad datasets`).
    #[arg(long, default_value = "shuttle")]
    dataset: String,

    /// Model, or a pipeline of transformers ending in a detector: `standard_scaler|moving_average`.
    /// Default: standard_scaler|moving_average with window_size=100 on the first feature.
    #[arg(long, short)]
    model: Option<String>,

    /// Set a model parameter (Python onad names): `--set window_size=50`; `stage.name=value` when several
    /// stages have the parameter. Repeatable.
    #[arg(long = "set", value_name = "NAME=VALUE")]
    sets: Vec<String>,

    /// Name of the label column (default: the last column).
    #[arg(long, conflicts_with = "no_label")]
    label_column: Option<String>,

    /// The input has no label column: every column is a feature.
    #[arg(long)]
    no_label: bool,

    /// Write one line per row (`row,score,anomaly` and `label` when there is one) to this CSV file
    /// (`-` for standard output).
    #[arg(long, short)]
    output: Option<PathBuf>,

    /// Write the run summary as JSON to this file.
    #[arg(long)]
    summary_json: Option<PathBuf>,

    /// Do not learn rows the model itself flags: `X` (score above X) or `quantile:Q[:WINDOW]` (score above
    /// the Q quantile of the last WINDOW scores, default 1000).
    #[arg(long, value_name = "RULE")]
    protect: Option<String>,

    /// Anomaly threshold: a number (fixed: score > X), `adaptive[:WINDOW[:K]]` (mean + K std of the last
    /// WINDOW scores), `quantile:Q[:WINDOW]` (above the Q quantile of the last WINDOW scores), or `none`.
    #[arg(long, default_value = "adaptive:1000:3")]
    threshold: String,

    /// Score each row before learning it (prequential) or after.
    #[arg(long, value_enum, default_value_t = OrderArg::ScoreThenLearn)]
    order: OrderArg,

    /// What to do with rows that cannot be read as numbers: skip and count them, or stop.
    #[arg(long, value_enum, default_value_t = BadRowArg::Skip)]
    on_bad_row: BadRowArg,

    /// Read only these input columns as features (comma-separated; the label is read besides).
    /// Parquet decodes only these columns.
    #[arg(long, value_name = "COL,...", value_delimiter = ',')]
    columns: Option<Vec<String>>,

    /// Leave these input columns out (comma-separated): ids, timestamps, free text.
    #[arg(long, value_name = "COL,...", value_delimiter = ',')]
    exclude: Vec<String>,

    /// Columns that do not hold numbers: `reject` (each row with text there is a bad row) or `exclude`
    /// (left out, judged on the first row when opening).
    #[arg(long, value_enum, default_value_t = NonNumericArg::Reject)]
    non_numeric: NonNumericArg,

    /// Directory for crash-safe checkpoints (model, threshold, source position, output length).
    #[arg(long, value_name = "DIR")]
    checkpoint: Option<PathBuf>,

    /// Write a checkpoint every N rows (at batch boundaries), at the end, and on SIGTERM / Ctrl-C.
    #[arg(long, value_name = "N", default_value_t = 100_000)]
    checkpoint_every: u64,

    /// Also write a checkpoint when this many seconds have passed since the last one.
    #[arg(long, value_name = "SECONDS")]
    checkpoint_seconds: Option<f64>,

    /// Checkpoint generations kept (a corrupt newest one falls back to the previous).
    #[arg(long, value_name = "K", default_value_t = 3)]
    checkpoint_keep: usize,

    /// Continue from the newest valid checkpoint in --checkpoint DIR (start fresh when there is none).
    #[arg(long, requires = "checkpoint")]
    resume: bool,

    /// Stop when the share of bad rows among the rows read passes this (0.01 = 1 %), judged after 100 rows.
    #[arg(long, value_name = "RATE")]
    max_error_rate: Option<f64>,

    /// Print progress to stderr every N rows: rows, resident memory and its growth since the start, rate
    /// (the guide's memory monitoring).
    #[arg(long, value_name = "N")]
    report_every: Option<u64>,

    /// Stop (after a final checkpoint, when checkpointing) once resident memory exceeds this many MiB.
    #[arg(long, value_name = "MIB")]
    memory_limit_mb: Option<f64>,

    /// Entity column: one model per distinct value of this column (which is then not a feature).
    #[arg(long, value_name = "COLUMN")]
    key: Option<String>,

    /// Worker threads for per-key models (with --key); the output is the same for any number.
    #[arg(long, value_name = "N", default_value_t = 1, requires = "key")]
    workers: usize,

    /// Most per-key models kept (least recently used are dropped and counted), with --key.
    #[arg(long, value_name = "N", requires = "key")]
    max_keys: Option<usize>,

    /// Skip the overall ROC-AUC / PR-AUC, which keeps every (score, label) pair (16 bytes per labelled row):
    /// for unbounded streams, use --eval-window instead.
    #[arg(long)]
    no_eval: bool,

    /// Also evaluate ROC-AUC / PR-AUC over consecutive windows of N labelled rows (prequential), reported
    /// per window in the JSON summary.
    #[arg(long, value_name = "N")]
    eval_window: Option<usize>,

    /// Rows per batch read from the source.
    #[arg(long, default_value_t = 4096)]
    batch_size: usize,

    /// Print nothing but errors.
    #[arg(long, short)]
    quiet: bool,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum OrderArg {
    ScoreThenLearn,
    LearnThenScore,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum BadRowArg {
    Skip,
    Fail,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum NonNumericArg {
    Reject,
    Exclude,
}

fn parse_threshold(text: &str) -> anyhow::Result<(AnyThreshold, String)> {
    let t = text.trim();
    if t == "none" {
        return Ok((AnyThreshold::None(NoThreshold), "none".into()));
    }
    if let Ok(v) = t.parse::<f64>() {
        if v.is_nan() {
            bail!("--threshold must not be NaN");
        }
        return Ok((AnyThreshold::Fixed(FixedThreshold(v)), format!("fixed: score > {v}")));
    }
    let mut parts = t.split(':');
    let kind = parts.next();
    if kind == Some("quantile") {
        let q = parts.next().ok_or_else(|| anyhow!("--threshold quantile needs a value, for example quantile:0.99"))?;
        let q = q.parse::<f64>().map_err(|_| anyhow!("--threshold: quantile '{q}' is not a number"))?;
        let window = match parts.next() {
            Some(w) => w.parse::<usize>().map_err(|_| anyhow!("--threshold: window '{w}' is not a whole number"))?,
            None => 1000,
        };
        if parts.next().is_some() {
            bail!("--threshold '{t}' has too many parts (quantile:Q:WINDOW)");
        }
        let threshold = QuantileThreshold::new(q, window).map_err(|e| anyhow!("--threshold: {e}"))?;
        return Ok((
            AnyThreshold::Quantile(threshold),
            format!("quantile: above the {q} quantile of the last {window} scores"),
        ));
    }
    if kind != Some("adaptive") {
        bail!("--threshold '{t}' is not a number, 'adaptive[:WINDOW[:K]]', 'quantile:Q[:WINDOW]' or 'none'");
    }
    let window = match parts.next() {
        Some(w) => w.parse::<usize>().map_err(|_| anyhow!("--threshold: window '{w}' is not a whole number"))?,
        None => 1000,
    };
    let k = match parts.next() {
        Some(k) => k.parse::<f64>().map_err(|_| anyhow!("--threshold: k '{k}' is not a number"))?,
        None => 3.0,
    };
    if parts.next().is_some() {
        bail!("--threshold '{t}' has too many parts (adaptive:WINDOW:K)");
    }
    let threshold = WindowedThreshold::new(window, k).map_err(|e| anyhow!("--threshold: {e}"))?;
    Ok((AnyThreshold::Windowed(threshold), format!("adaptive: mean + {k} std of the last {window} scores")))
}

fn parse_protect(text: &str) -> anyhow::Result<onad_models::Protect> {
    let t = text.trim();
    if let Ok(threshold) = t.parse::<f64>() {
        return Ok(onad_models::Protect::Above { threshold });
    }
    let mut parts = t.split(':');
    if parts.next() != Some("quantile") {
        bail!("--protect '{t}' is not a number or 'quantile:Q[:WINDOW]'");
    }
    let quantile = parts
        .next()
        .ok_or_else(|| anyhow!("--protect quantile needs a value, for example quantile:0.95"))?
        .parse::<f64>()
        .map_err(|_| anyhow!("--protect: the quantile in '{t}' is not a number"))?;
    let window_size = match parts.next() {
        Some(w) => w.parse::<usize>().map_err(|_| anyhow!("--protect: window '{w}' is not a whole number"))?,
        None => 1000,
    };
    Ok(onad_models::Protect::Quantile { quantile, window_size })
}

/// Where rows come from, for messages.
enum Input {
    File(PathBuf),
    BuiltIn(&'static BuiltIn),
}

impl Input {
    fn describe(&self) -> String {
        match self {
            Input::File(p) => p.display().to_string(),
            Input::BuiltIn(d) => format!("{} (built-in)", d.name),
        }
    }
}

fn open_source(input: &Input, options: SourceOptions) -> anyhow::Result<Box<dyn Source + Send>> {
    match input {
        Input::File(path) => Ok(onad_sources::open_url(&path.to_string_lossy(), options)?),
        Input::BuiltIn(d) => open_built_in(d, options),
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

struct Job {
    input: Input,
    source: Box<dyn Source + Send>,
    spec: PipelineSpec,
    model: onad_models::AnyPipeline,
    threshold: AnyThreshold,
    threshold_text: String,
    order: Order,
    output: Option<Output>,
    checkpoints: Option<CheckpointDir>,
    /// Counters carried over from the checkpoint this run resumed from.
    resumed: Option<Carried>,
    /// Per-key models over worker threads (`--key`).
    keyed: Option<KeyedConfig>,
    /// Per-key models restored from a checkpoint.
    keyed_models: Vec<KeyedModel<AnyPipeline>>,
    /// The checkpoint's model kind: the pipeline's name, prefixed `keyed:COLUMN:` for per-key runs.
    checkpoint_kind: String,
}

fn setup(args: &RunArgs) -> anyhow::Result<Job> {
    let input = match &args.input {
        Some(p) => Input::File(p.clone()),
        None => Input::BuiltIn(datasets::find(&args.dataset).ok_or_else(|| {
            let names: Vec<&str> = datasets::BUILT_IN.iter().map(|d| d.name).collect();
            anyhow!("unknown data set '{}' (built-in: {})", args.dataset, names.join(", "))
        })?),
    };
    if args.batch_size == 0 {
        bail!("--batch-size must be at least 1");
    }
    let label = if args.no_label {
        LabelColumn::None
    } else if let Some(name) = &args.label_column {
        LabelColumn::Named(name.clone())
    } else {
        match &input {
            Input::BuiltIn(d) => LabelColumn::Named(d.label.to_owned()),
            Input::File(_) => LabelColumn::Last,
        }
    };
    let bad_rows = match args.on_bad_row {
        BadRowArg::Skip => BadRowPolicy::Skip,
        BadRowArg::Fail => BadRowPolicy::Fail,
    };
    let options = SourceOptions {
        label,
        bad_rows,
        batch_size: args.batch_size,
        columns: args.columns.clone(),
        exclude: args.exclude.clone(),
        non_numeric: match args.non_numeric {
            NonNumericArg::Reject => NonNumericColumns::Reject,
            NonNumericArg::Exclude => NonNumericColumns::Exclude,
        },
    };
    let source = open_source(&input, options)?;
    let source_schema = source.schema().clone();
    // With --key, the models see every feature but the key.
    let (schema, key_column) = match &args.key {
        None => (source_schema.clone(), None),
        Some(k) => {
            let i = source_schema.index_of(k).ok_or_else(|| {
                anyhow!(
                    "{}: key column '{k}' not found (columns: {})",
                    input.describe(),
                    source_schema.names().join(", ")
                )
            })?;
            let rest = source_schema.names().iter().enumerate().filter(|(j, _)| *j != i).map(|(_, n)| n.clone());
            (onad_core::Schema::shared(rest)?, Some(i))
        }
    };
    if args.workers == 0 {
        bail!("--workers must be at least 1");
    }

    let mut spec = match &args.model {
        Some(m) => build_spec(m, &args.sets)?,
        None => {
            let first =
                schema.name(0).ok_or_else(|| anyhow!("{}: the input has no feature columns", input.describe()))?;
            let mut sets: Vec<String> = DEFAULT_SETS.iter().map(|s| (*s).to_owned()).collect();
            sets.push(format!("key={first}"));
            sets.extend(args.sets.iter().cloned());
            build_spec(DEFAULT_MODEL, &sets)?
        }
    };
    if let Some(rule) = &args.protect {
        spec.protect = Some(parse_protect(rule)?);
    }
    let model =
        spec.build(&schema).with_context(|| format!("cannot build {} for {}", spec.name(), input.describe()))?;
    let (threshold, threshold_text) = parse_threshold(&args.threshold)?;
    let order = match args.order {
        OrderArg::ScoreThenLearn => Order::ScoreThenLearn,
        OrderArg::LearnThenScore => Order::LearnThenScore,
    };
    if let Some(r) = args.max_error_rate
        && !(0.0..=1.0).contains(&r)
    {
        bail!("--max-error-rate must be between 0 and 1, got {r}");
    }
    let mut job = Job {
        input,
        source,
        spec,
        model,
        threshold,
        threshold_text,
        order,
        output: None,
        checkpoints: None,
        resumed: None,
        keyed: key_column.map(|key_column| KeyedConfig {
            key_column,
            workers: args.workers,
            max_keys: args.max_keys,
            depth: 4,
            order,
            snapshot_at_end: args.checkpoint.is_some(),
        }),
        keyed_models: Vec::new(),
        checkpoint_kind: String::new(),
    };
    job.checkpoint_kind = match (&args.key, key_column) {
        (Some(k), Some(_)) => format!("keyed:{k}:{}", job.spec.name()),
        _ => job.spec.name(),
    };
    let mut output_len = None;
    if let Some(dir) = &args.checkpoint {
        if args.checkpoint_every == 0 {
            bail!("--checkpoint-every must be at least 1");
        }
        let cd = CheckpointDir::new(dir, args.checkpoint_keep)?;
        let loaded = if job.keyed.is_some() {
            cd.load_latest::<KeyedRunState>(&job.checkpoint_kind)?.map(|(c, path, warnings)| {
                let c = Checkpoint {
                    model_kind: c.model_kind,
                    rows_seen: c.rows_seen,
                    position: c.position,
                    state: (c.state.common, c.state.models),
                };
                (c, path, warnings)
            })
        } else {
            cd.load_latest::<RunState>(&job.checkpoint_kind)?.map(|(c, path, warnings)| {
                let c = Checkpoint {
                    model_kind: c.model_kind,
                    rows_seen: c.rows_seen,
                    position: c.position,
                    state: (c.state, Vec::new()),
                };
                (c, path, warnings)
            })
        };
        match loaded {
            None => {}
            Some(_) if !args.resume => bail!(
                "{} holds checkpoints of an earlier run: pass --resume to continue it, or remove them to start over",
                dir.display()
            ),
            Some((c, path, warnings)) => {
                for w in warnings {
                    eprintln!("warning: skipped a damaged checkpoint: {w}");
                }
                let Checkpoint { position, rows_seen, state: (state, models), .. } = c;
                job.keyed_models = models;
                let c = Checkpoint { model_kind: String::new(), rows_seen, position, state };
                if c.state.spec != job.spec {
                    bail!(
                        "{}: the checkpoint was made with other model parameters ({}); use the same --model/--set",
                        path.display(),
                        serde_json::to_string(&c.state.spec)?
                    );
                }
                job.source.seek(&c.position).with_context(|| format!("cannot resume from {}", path.display()))?;
                if !args.quiet {
                    eprintln!("resuming from {} at {} ({} rows done)", path.display(), c.position, c.rows_seen);
                }
                job.model = c.state.model;
                job.threshold = c.state.threshold;
                output_len = c.state.output_bytes;
                job.resumed =
                    Some(Carried { rows: c.state.rows, anomalies: c.state.anomalies, skipped: c.state.skipped });
            }
        }
        job.checkpoints = Some(cd);
    }
    job.output = match &args.output {
        None => None,
        Some(p) if p.as_os_str() == "-" => Some(Output::stdout()),
        Some(p) => Some(Output::file(p, output_len)?),
    };
    if let Some(p) = &args.summary_json {
        // Fail now, not after the whole stream, when the summary cannot be written.
        File::create(p).with_context(|| format!("cannot create summary file {}", p.display()))?;
    }
    Ok(job)
}

/// Counters of the rows before a resume.
#[derive(Debug, Clone, Default)]
struct Carried {
    rows: u64,
    anomalies: u64,
    skipped: SkipCounts,
}

/// What a checkpoint of `onad run` holds (field order is the format: `RunStateRef` must match it).
#[derive(Debug, Deserialize)]
struct RunState {
    spec: PipelineSpec,
    model: AnyPipeline,
    threshold: AnyThreshold,
    rows: u64,
    anomalies: u64,
    skipped: SkipCounts,
    output_bytes: Option<u64>,
}

/// A per-key run's checkpoint: the common state (its model is the prototype) and every live model.
#[derive(Debug, Deserialize)]
struct KeyedRunState {
    common: RunState,
    models: Vec<KeyedModel<AnyPipeline>>,
}

/// [`KeyedRunState`] by reference.
#[derive(Debug, Serialize)]
struct KeyedRunStateRef<'a> {
    common: RunStateRef<'a>,
    models: &'a [KeyedModel<AnyPipeline>],
}

/// [`RunState`] by reference, for writing without cloning the model.
#[derive(Debug, Serialize)]
struct RunStateRef<'a> {
    spec: &'a PipelineSpec,
    model: &'a AnyPipeline,
    threshold: &'a AnyThreshold,
    rows: u64,
    anomalies: u64,
    skipped: SkipCounts,
    output_bytes: Option<u64>,
}

impl<'a> RunStateRef<'a> {
    /// The state to checkpoint at `progress`, after flushing and fsyncing the output so the checkpoint
    /// can record how much of it is covered.
    fn at(
        spec: &'a PipelineSpec,
        model: &'a AnyPipeline,
        threshold: &'a AnyThreshold,
        carried: &Carried,
        progress: &onad_pipeline::Progress<'_>,
        output: &mut Option<Output>,
    ) -> std::io::Result<RunStateRef<'a>> {
        let output_bytes = match output.as_mut() {
            Some(o) if o.file.is_some() => Some(o.sync()?),
            _ => None,
        };
        let mut skipped = carried.skipped.clone();
        skipped.merge(progress.skipped);
        Ok(RunStateRef {
            spec,
            model,
            threshold,
            rows: carried.rows + progress.stats.rows,
            anomalies: carried.anomalies + progress.stats.anomalies,
            skipped,
            output_bytes,
        })
    }
}

/// The `--output` sink: counts the bytes written so a checkpoint can record how much of the file it
/// covers, and can be flushed to disk before a checkpoint is written.
struct Output {
    writer: BufWriter<Box<dyn Write>>,
    file: Option<File>,
    written: u64,
}

impl Output {
    fn stdout() -> Output {
        Output { writer: BufWriter::new(Box::new(std::io::stdout())), file: None, written: 0 }
    }

    /// Creates the file, or, when resuming, cuts it back to what the checkpoint covered and appends.
    fn file(path: &std::path::Path, resume_at: Option<u64>) -> anyhow::Result<Output> {
        let open = || -> std::io::Result<(File, u64)> {
            match resume_at {
                Some(len) => {
                    let f = std::fs::OpenOptions::new().write(true).open(path)?;
                    let actual = f.metadata()?.len();
                    if actual < len {
                        return Err(std::io::Error::other(format!(
                            "it has {actual} bytes but the checkpoint covers {len}: it was changed or replaced since"
                        )));
                    }
                    f.set_len(len)?;
                    Ok((f, len))
                }
                None => Ok((File::create(path)?, 0)),
            }
        };
        let (file, written) = open().with_context(|| format!("cannot open output file {}", path.display()))?;
        let mut handle = file.try_clone().with_context(|| format!("cannot open output file {}", path.display()))?;
        use std::io::Seek;
        handle.seek(std::io::SeekFrom::Start(written))?;
        Ok(Output { writer: BufWriter::with_capacity(1 << 16, Box::new(handle)), file: Some(file), written })
    }

    fn write_str(&mut self, s: &str) -> std::io::Result<()> {
        self.writer.write_all(s.as_bytes())?;
        self.written += s.len() as u64;
        Ok(())
    }

    /// Flushes and fsyncs; returns the length of the file the data reached.
    fn sync(&mut self) -> std::io::Result<u64> {
        self.writer.flush()?;
        if let Some(f) = &self.file {
            f.sync_data()?;
        }
        Ok(self.written)
    }
}

/// The guide's monitoring, checked after every batch: progress reports (`--report-every`), the memory limit
/// and stop signals. Returns why the run should stop, if it should.
struct Monitor {
    report_every: Option<u64>,
    memory_limit_mb: Option<f64>,
    stop: Arc<AtomicBool>,
    start: std::time::Instant,
    start_rss: f64,
    reported: u64,
}

impl Monitor {
    fn new(args: &RunArgs, stop: Arc<AtomicBool>) -> Monitor {
        Monitor {
            report_every: args.report_every,
            memory_limit_mb: args.memory_limit_mb,
            stop,
            start: std::time::Instant::now(),
            start_rss: memory_mib().map_or(0.0, |m| m.0),
            reported: 0,
        }
    }

    fn check(&mut self, carried_rows: u64, rows: u64) -> Option<String> {
        if let Some(every) = self.report_every
            && rows / every.max(1) > self.reported
        {
            self.reported = rows / every.max(1);
            let (rss, peak) = memory_mib().unwrap_or((f64::NAN, f64::NAN));
            let secs = self.start.elapsed().as_secs_f64();
            eprintln!(
                "rows {}: resident {rss:.1} MiB (+{:.1} MiB since start, peak {peak:.1} MiB), {:.0} rows/s",
                carried_rows + rows,
                rss - self.start_rss,
                rows as f64 / secs.max(1e-9)
            );
        }
        if self.stop.load(Ordering::Relaxed) {
            return Some("interrupted by a signal".into());
        }
        match (self.memory_limit_mb, memory_mib()) {
            (Some(limit), Some((rss, _))) if rss > limit => {
                Some(format!("resident memory {rss:.0} MiB passed --memory-limit-mb {limit}"))
            }
            _ => None,
        }
    }
}

/// Resident and peak memory of this process in MiB (Linux; `None` elsewhere).
fn memory_mib() -> Option<(f64, f64)> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let field = |name: &str| -> Option<f64> {
        let line = status.lines().find(|l| l.starts_with(name))?;
        let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
        Some(kb / 1024.0)
    };
    Some((field("VmRSS:")?, field("VmHWM:")?))
}

/// Test hooks for the crash tests (never set in normal use): `ONAD_FAILPOINT=kill-at-row:N` makes the
/// process SIGKILL itself when it writes row N; `term-at-row:N` sends itself SIGTERM there and goes on.
fn failpoint_row(kind: &str) -> Option<u64> {
    std::env::var("ONAD_FAILPOINT").ok()?.strip_prefix(kind)?.strip_prefix(':')?.parse().ok()
}

fn signal_self(signal: &str) {
    let pid = std::process::id().to_string();
    let _ = std::process::Command::new("kill").args([signal, &pid]).status();
}

fn kill_self() -> ! {
    signal_self("-9");
    std::thread::sleep(std::time::Duration::from_secs(10));
    std::process::abort()
}

/// Runs `onad run`.
pub fn run(args: RunArgs) -> Result<(), Failure> {
    let job = setup(&args).map_err(Failure::Usage)?;
    execute(job, &args).map_err(Failure::Run)
}

fn execute(mut job: Job, args: &RunArgs) -> anyhow::Result<()> {
    let has_labels = job.source.has_labels();
    let (mut scores, mut labels) = (Vec::new(), Vec::new());
    let mut prequential = match args.eval_window {
        Some(w) if has_labels => Some(Prequential::new(w).map_err(|e| anyhow!("--eval-window: {e}"))?),
        _ => None,
    };
    if let Some(out) = job.output.as_mut()
        && out.written == 0
    {
        let header = if has_labels { "row,score,anomaly,label\n" } else { "row,score,anomaly\n" };
        out.write_str(header).context("cannot write output")?;
    }
    // SIGTERM / Ctrl-C: finish the batch, write a final checkpoint, stop cleanly.
    let stop = Arc::new(AtomicBool::new(false));
    if job.checkpoints.is_some() || args.output.is_some() {
        for signal in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
            signal_hook::flag::register(signal, Arc::clone(&stop)).context("cannot install the signal handler")?;
        }
    }
    let carried = job.resumed.clone().unwrap_or_default();
    let config = RunConfig { order: job.order, max_error_rate: args.max_error_rate };
    let kill_at = failpoint_row("kill-at-row");
    let term_at = failpoint_row("term-at-row");
    let Job { source, model, threshold, output, checkpoints, spec, keyed, keyed_models, checkpoint_kind, .. } =
        &mut job;
    let mut since_checkpoint = 0u64;
    let mut last_checkpoint = std::time::Instant::now();
    let monitor = std::cell::RefCell::new(Monitor::new(args, Arc::clone(&stop)));
    let mut last_rows = 0u64;
    let mut stop_reason: Option<String> = None;
    let mut line = String::with_capacity(64);
    let output_cell = std::cell::RefCell::new(output);
    let mut sink = |scored: &onad_pipeline::Scored<'_>| -> Result<(), onad_pipeline::BoxError> {
        if has_labels {
            if !args.no_eval {
                scores.extend_from_slice(scored.scores);
                labels.extend_from_slice(scored.batch.labels().unwrap_or(&[]));
            }
            if let (Some(p), Some(l)) = (prequential.as_mut(), scored.batch.labels()) {
                for (s, l) in scored.scores.iter().zip(l) {
                    p.update(*s, *l);
                }
            }
        }
        if let Some(out) = output_cell.borrow_mut().as_mut() {
            let labels = scored.batch.labels();
            for (i, ((id, s), f)) in scored.row_ids().iter().zip(scored.scores).zip(scored.flags).enumerate() {
                if kill_at == Some(*id) {
                    kill_self();
                }
                if term_at == Some(*id) {
                    signal_self("-TERM");
                }
                line.clear();
                use std::fmt::Write as _;
                let _ = write!(line, "{id},{s},{}", u8::from(*f));
                let _ = match labels {
                    Some(l) => writeln!(line, ",{}", l[i]),
                    None => writeln!(line),
                };
                out.write_str(&line)?;
            }
        }
        Ok(())
    };
    let mut keyed_stats = None;
    let result = if let Some(cfg) = keyed.as_ref() {
        let pending = std::cell::Cell::new((0u64, 0u64, std::time::Instant::now()));
        let hook = |progress: &onad_pipeline::Progress<'_>| -> Result<KeyedAction, onad_pipeline::BoxError> {
            let (since, last, at) = pending.get();
            let since = since + progress.stats.rows - last;
            pending.set((since, progress.stats.rows, at));
            if let Some(reason) = monitor.borrow_mut().check(carried.rows, progress.stats.rows) {
                stop_reason = Some(reason);
            }
            let due = since >= args.checkpoint_every
                || args.checkpoint_seconds.is_some_and(|t| at.elapsed().as_secs_f64() >= t);
            Ok(match (checkpoints.is_some(), stop_reason.is_some(), due) {
                (true, true, _) => KeyedAction::SnapshotAndStop,
                (false, true, _) => KeyedAction::Stop,
                (true, false, true) => KeyedAction::Snapshot,
                _ => KeyedAction::Continue,
            })
        };
        let on_snapshot = |threshold: &AnyThreshold,
                           models: Vec<KeyedModel<AnyPipeline>>,
                           progress: &onad_pipeline::Progress<'_>|
         -> Result<(), onad_pipeline::BoxError> {
            let Some(cd) = checkpoints.as_ref() else { return Ok(()) };
            let common = RunStateRef::at(spec, model, threshold, &carried, progress, &mut output_cell.borrow_mut())?;
            let rows_seen = common.rows;
            let state = KeyedRunStateRef { common, models: &models };
            let c = Checkpoint {
                model_kind: checkpoint_kind.clone(),
                rows_seen,
                position: progress.position.clone(),
                state,
            };
            cd.write(&c)?;
            pending.set((0, progress.stats.rows, std::time::Instant::now()));
            Ok(())
        };
        let initial = std::mem::take(keyed_models);
        onad_pipeline::run_keyed(source.as_mut(), &*model, threshold, cfg, initial, &mut sink, hook, on_snapshot).map(
            |(stats, k)| {
                keyed_stats = Some(k);
                stats
            },
        )
    } else {
        onad_pipeline::run_with(source.as_mut(), model, threshold, &config, &mut sink, |model, threshold, progress| {
            since_checkpoint += progress.stats.rows - last_rows;
            last_rows = progress.stats.rows;
            if let Some(reason) = monitor.borrow_mut().check(carried.rows, progress.stats.rows) {
                stop_reason = Some(reason);
            }
            if let Some(cd) = checkpoints.as_ref()
                && (since_checkpoint >= args.checkpoint_every
                    || args.checkpoint_seconds.is_some_and(|t| last_checkpoint.elapsed().as_secs_f64() >= t)
                    || stop_reason.is_some())
            {
                let state = RunStateRef::at(spec, model, threshold, &carried, progress, &mut output_cell.borrow_mut())?;
                let c = Checkpoint {
                    model_kind: spec.name(),
                    rows_seen: state.rows,
                    position: progress.position.clone(),
                    state,
                };
                cd.write(&c)?;
                since_checkpoint = 0;
                last_checkpoint = std::time::Instant::now();
            }
            Ok(if stop_reason.is_some() { Flow::Stop } else { Flow::Continue })
        })
    };
    let stats = result.with_context(|| format!("while scoring {}", job.input.describe()))?;
    if let Some(out) = job.output.as_mut() {
        out.sync().context("cannot write output")?;
    }
    // A final checkpoint at the end of the stream, so a later --resume has nothing left to redo.
    if let (Some(cd), false, None) = (job.checkpoints.as_ref(), stats.stopped_early, job.keyed.as_ref()) {
        let position = Source::position(job.source.as_ref());
        let progress = onad_pipeline::Progress { position, stats: &stats, skipped: &stats.skipped };
        let state = RunStateRef::at(&job.spec, &job.model, &job.threshold, &carried, &progress, &mut job.output)?;
        let c = Checkpoint {
            model_kind: job.spec.name(),
            rows_seen: state.rows,
            position: progress.position.clone(),
            state,
        };
        cd.write(&c)?;
    }
    if let Some(reason) = &stop_reason {
        let resume = if job.checkpoints.is_some() { "; a checkpoint was written, continue with --resume" } else { "" };
        eprintln!("stopped after {} rows: {reason}{resume}", carried.rows + stats.rows);
    }

    let (roc, pr) =
        if has_labels && !args.no_eval { (roc_auc(&scores, &labels), pr_auc(&scores, &labels)) } else { (None, None) };
    let mut all_skipped = carried.skipped.clone();
    all_skipped.merge(&stats.skipped);
    let skipped: serde_json::Map<String, serde_json::Value> =
        all_skipped.iter().map(|(k, v)| (k.to_owned(), json!(v))).collect();
    let memory = memory_mib();
    let summary = json!({
        "input": job.input.describe(),
        "model": job.spec.name(),
        "params": job.spec,
        "order": job.order,
        "threshold": job.threshold_text,
        "rows": carried.rows + stats.rows,
        "rows_this_run": stats.rows,
        "resumed": job.resumed.is_some(),
        "stopped_early": stats.stopped_early,
        "skipped": all_skipped.total(),
        "skipped_by_reason": skipped,
        "anomalies": carried.anomalies + stats.anomalies,
        "protected_rows": job.model.guard().map(|g| g.protected()),
        "workers": job.keyed.as_ref().map(|k| k.workers),
        "keyed_models": keyed_stats.as_ref().map(|k| json!({"created": k.models_created, "evicted": k.evictions, "live": k.live_models})),
        "elapsed_sec": stats.elapsed.as_secs_f64(),
        "rows_per_sec": stats.rows_per_sec(),
        "memory_rss_mib": memory.map(|m| m.0),
        "memory_peak_mib": memory.map(|m| m.1),
        "roc_auc": roc,
        "pr_auc": pr,
        "windowed": prequential.as_ref().map(|p| json!({
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
    if !args.quiet {
        print_summary(&job, &stats, &carried, roc, pr);
    }
    Ok(())
}

fn thousands(n: u64) -> String {
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

fn print_summary(job: &Job, stats: &onad_pipeline::RunStats, carried: &Carried, roc: Option<f64>, pr: Option<f64>) {
    let rate = stats.rows_per_sec();
    let rate = if rate >= 1e6 { format!("{:.2}M", rate / 1e6) } else { format!("{:.0}k", rate / 1e3) };
    let order = match job.order {
        Order::ScoreThenLearn => "score-then-learn",
        Order::LearnThenScore => "learn-then-score",
    };
    let params = serde_json::to_string(&job.spec).unwrap_or_default();
    // Printing to a closed pipe (onad run | head) must not panic.
    let mut out = std::io::stdout().lock();
    let mut lines = vec![
        format!("input      {}", job.input.describe()),
        format!("model      {}  {params}", job.spec.name()),
        format!("order      {order}; threshold {}", job.threshold_text),
        format!(
            "rows       {} scored, {} skipped{}",
            thousands(carried.rows + stats.rows),
            thousands(carried.skipped.total() + stats.skipped.total()),
            if job.resumed.is_some() {
                format!(" ({} in this run, after a resume)", thousands(stats.rows))
            } else {
                String::new()
            }
        ),
    ];
    for (reason, n) in stats.skipped.iter() {
        lines.push(format!("             {reason}: {}", thousands(n)));
    }
    lines.push(format!("speed      {rate} rows/s ({:.3} s)", stats.elapsed.as_secs_f64()));
    let (rows, anomalies) = (carried.rows + stats.rows, carried.anomalies + stats.anomalies);
    let pct = if rows > 0 { 100.0 * anomalies as f64 / rows as f64 } else { 0.0 };
    lines.push(format!("anomalies  {} flagged ({pct:.2} %)", thousands(anomalies)));
    if let Some(g) = job.model.guard() {
        lines.push(format!("protected  {} rows not learned (--protect)", thousands(g.protected())));
    }
    let metric = |m: Option<f64>| m.map_or("n/a (no labels or one class only)".to_owned(), |v| format!("{v:.4}"));
    lines.push(format!("ROC-AUC    {}", metric(roc)));
    lines.push(format!("PR-AUC     {}", metric(pr)));
    for l in lines {
        if writeln!(out, "{l}").is_err() {
            return;
        }
    }
}
