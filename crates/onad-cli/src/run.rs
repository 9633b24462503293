//! `onad run`: open a source, build the model pipeline, stream every row through it, write scores and a
//! summary.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::PathBuf;

use anyhow::{Context, anyhow, bail};
use clap::{Args, ValueEnum};
use onad_core::{BadRowPolicy, Source};
use onad_models::PipelineSpec;
use onad_pipeline::metrics::{pr_auc, roc_auc};
use onad_pipeline::{FixedThreshold, NoThreshold, Order, RunConfig, Threshold, WindowedThreshold};
use onad_sources::{LabelColumn, SourceOptions};
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
    /// Input file (.csv, .tsv, .parquet). Without it, a built-in data set is scored.
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
    /// WINDOW scores), or `none`.
    #[arg(long, default_value = "adaptive:1000:3")]
    threshold: String,

    /// Score each row before learning it (prequential) or after.
    #[arg(long, value_enum, default_value_t = OrderArg::ScoreThenLearn)]
    order: OrderArg,

    /// What to do with rows that cannot be read as numbers: skip and count them, or stop.
    #[arg(long, value_enum, default_value_t = BadRowArg::Skip)]
    on_bad_row: BadRowArg,

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

fn parse_threshold(text: &str) -> anyhow::Result<(Box<dyn Threshold>, String)> {
    let t = text.trim();
    if t == "none" {
        return Ok((Box::new(NoThreshold), "none".into()));
    }
    if let Ok(v) = t.parse::<f64>() {
        if v.is_nan() {
            bail!("--threshold must not be NaN");
        }
        return Ok((Box::new(FixedThreshold(v)), format!("fixed: score > {v}")));
    }
    let mut parts = t.split(':');
    if parts.next() != Some("adaptive") {
        bail!("--threshold '{t}' is not a number, 'adaptive[:WINDOW[:K]]' or 'none'");
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
    Ok((Box::new(threshold), format!("adaptive: mean + {k} std of the last {window} scores")))
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
        Input::File(path) => Ok(onad_sources::open(path, options)?),
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
    threshold: Box<dyn Threshold>,
    threshold_text: String,
    order: Order,
    output: Option<Box<dyn Write>>,
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
    let options = SourceOptions { label, bad_rows, batch_size: args.batch_size };
    let source = open_source(&input, options)?;
    let schema = source.schema().clone();

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
    let output: Option<Box<dyn Write>> = match &args.output {
        None => None,
        Some(p) if p.as_os_str() == "-" => Some(Box::new(BufWriter::new(std::io::stdout().lock()))),
        Some(p) => Some(Box::new(BufWriter::with_capacity(
            1 << 16,
            File::create(p).with_context(|| format!("cannot create output file {}", p.display()))?,
        ))),
    };
    if let Some(p) = &args.summary_json {
        // Fail now, not after the whole stream, when the summary cannot be written.
        File::create(p).with_context(|| format!("cannot create summary file {}", p.display()))?;
    }
    Ok(Job { input, source, spec, model, threshold, threshold_text, order, output })
}

/// Runs `onad run`.
pub fn run(args: RunArgs) -> Result<(), Failure> {
    let job = setup(&args).map_err(Failure::Usage)?;
    execute(job, &args).map_err(Failure::Run)
}

fn execute(mut job: Job, args: &RunArgs) -> anyhow::Result<()> {
    let has_labels = job.source.has_labels();
    let (mut scores, mut labels) = (Vec::new(), Vec::new());
    if let Some(out) = job.output.as_mut() {
        let header = if has_labels { "row,score,anomaly,label\n" } else { "row,score,anomaly\n" };
        out.write_all(header.as_bytes()).context("cannot write output")?;
    }
    let config = RunConfig { order: job.order };
    let output = &mut job.output;
    let stats = onad_pipeline::run(job.source.as_mut(), &mut job.model, job.threshold.as_mut(), &config, |scored| {
        if has_labels {
            scores.extend_from_slice(scored.scores);
            labels.extend_from_slice(scored.batch.labels().unwrap_or(&[]));
        }
        if let Some(out) = output.as_mut() {
            let labels = scored.batch.labels();
            for (i, ((id, s), f)) in scored.row_ids().iter().zip(scored.scores).zip(scored.flags).enumerate() {
                write!(out, "{id},{s},{}", u8::from(*f))?;
                match labels {
                    Some(l) => writeln!(out, ",{}", l[i])?,
                    None => writeln!(out)?,
                }
            }
        }
        Ok(())
    })
    .with_context(|| format!("while scoring {}", job.input.describe()))?;
    if let Some(out) = job.output.as_mut() {
        out.flush().context("cannot write output")?;
    }

    let (roc, pr) = if has_labels { (roc_auc(&scores, &labels), pr_auc(&scores, &labels)) } else { (None, None) };
    let skipped: serde_json::Map<String, serde_json::Value> =
        stats.skipped.iter().map(|(k, v)| (k.to_owned(), json!(v))).collect();
    let summary = json!({
        "input": job.input.describe(),
        "model": job.spec.name(),
        "params": job.spec,
        "order": job.order,
        "threshold": job.threshold_text,
        "rows": stats.rows,
        "skipped": stats.skipped.total(),
        "skipped_by_reason": skipped,
        "anomalies": stats.anomalies,
        "protected_rows": job.model.guard().map(|g| g.protected()),
        "elapsed_sec": stats.elapsed.as_secs_f64(),
        "rows_per_sec": stats.rows_per_sec(),
        "roc_auc": roc,
        "pr_auc": pr,
    });
    if let Some(p) = &args.summary_json {
        let text = serde_json::to_string_pretty(&summary)?;
        std::fs::write(p, text + "\n").with_context(|| format!("cannot write summary file {}", p.display()))?;
    }
    if !args.quiet {
        print_summary(&job, &stats, roc, pr);
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

fn print_summary(job: &Job, stats: &onad_pipeline::RunStats, roc: Option<f64>, pr: Option<f64>) {
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
        format!("rows       {} scored, {} skipped", thousands(stats.rows), thousands(stats.skipped.total())),
    ];
    for (reason, n) in stats.skipped.iter() {
        lines.push(format!("             {reason}: {}", thousands(n)));
    }
    lines.push(format!("speed      {rate} rows/s ({:.3} s)", stats.elapsed.as_secs_f64()));
    let pct = if stats.rows > 0 { 100.0 * stats.anomalies as f64 / stats.rows as f64 } else { 0.0 };
    lines.push(format!("anomalies  {} flagged ({pct:.2} %)", thousands(stats.anomalies)));
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
