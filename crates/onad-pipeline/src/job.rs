//! A job: the whole of a scoring run as a library. A source, a model (one, or one per key over worker
//! threads), a threshold, any number of sinks, a checkpoint policy, monitors and evaluation, driven by
//! [`Job::prepare`] (everything that can fail before the first row: locking and loading checkpoints,
//! checking that a resume matches, seeking the source, building the model, opening the sinks) and
//! [`Prepared::run`]. `onad run`, a Rust user's program and the workers all drive this one engine.
//!
//! ```no_run
//! use onad_core::{DetectorParams, SchemaRef};
//! use onad_pipeline::job::{CheckpointPolicy, Job};
//! use onad_pipeline::sinks::{AlertsOnly, CsvSink, JsonlSink, Target};
//! use onad_pipeline::{AnyThreshold, WindowedThreshold};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let source = onad_sources::open("flows.csv".as_ref(), Default::default())?;
//! let params = onad_models::MovingAverageParams { window_size: Some(100), key: Some("bytes".into()), ..Default::default() };
//! let build = {
//!     let params = params.clone();
//!     move |schema: &SchemaRef| params.build(schema).map_err(Into::into)
//! };
//! let report = Job::new(source, params, "moving_average", build)
//!     .threshold(AnyThreshold::Windowed(WindowedThreshold::new(1000, 3.0)?))
//!     .sink(CsvSink::new(Target::parse("scores.csv")))
//!     .sink(AlertsOnly::new(JsonlSink::new(Target::parse("alerts.jsonl"))))
//!     .checkpoints(CheckpointPolicy::new("ckpt").every_rows(100_000).resume(true))
//!     .prepare()?
//!     .run()?;
//! println!("{} rows, {} flagged", report.rows, report.anomalies);
//! # Ok(()) }
//! ```

use std::cell::RefCell;
use std::fmt::Debug;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use onad_core::{
    Detector, Position, Schema, SchemaRef, Scored, Sink, SinkError, SinkLayout, SinkPosition, SkipCounts, Source,
};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::checkpoint::{Checkpoint, CheckpointDir, CheckpointError, DirLock, FORMAT_VERSION};
use crate::keyed::{KeyedAction, KeyedConfig, KeyedModel, KeyedSnapshot, KeyedStats, Tally, run_keyed};
use crate::metrics::{Prequential, pr_auc, roc_auc};
use crate::run::{BoxError, Flow, Order, PipelineError, Progress, RunConfig, RunStats, run_with};
use crate::threshold::{AnyThreshold, WindowedThreshold};

/// Builds the model for the schema it will see (the source's, without the key column in per-key runs).
pub type Builder<D> = Box<dyn FnOnce(&SchemaRef) -> Result<D, BoxError> + Send>;

/// Decodes checkpoint payloads (given the format version) into today's state: older formats, or the
/// current one with better messages; `Ok(None)` leaves a payload to the built-in decoding (the current
/// format only).
pub type Migrate<S, D> = Box<dyn Fn(u16, &[u8]) -> Result<Option<JobState<S, D>>, String> + Send>;

/// When checkpoints are written: every N rows, every T of wall time, when the source ends, and always
/// when a monitor stops the run (a signal, a memory limit), so a stop never loses work.
#[derive(Debug, Clone)]
pub struct CheckpointPolicy {
    /// The directory of generations.
    pub dir: PathBuf,
    /// Generations kept (a damaged newest one falls back to the previous).
    pub keep: usize,
    /// Write after this many rows since the last checkpoint (at a batch boundary).
    pub every_rows: Option<u64>,
    /// Write when this much time has passed since the last checkpoint.
    pub every: Option<Duration>,
    /// Write once more when the source ends, so a later resume has nothing left to redo.
    pub at_end: bool,
    /// Continue from the newest valid checkpoint when the directory has one (otherwise its checkpoints
    /// are an error: they belong to an earlier run).
    pub resume: bool,
}

impl CheckpointPolicy {
    /// Checkpoints into `dir`: three generations, at the end and on stops, no periodic ones, no resume.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        CheckpointPolicy { dir: dir.into(), keep: 3, every_rows: None, every: None, at_end: true, resume: false }
    }

    /// Also every `n` rows.
    pub fn every_rows(mut self, n: u64) -> Self {
        self.every_rows = Some(n);
        self
    }

    /// Also every `t` of wall time.
    pub fn every(mut self, t: Duration) -> Self {
        self.every = Some(t);
        self
    }

    /// Resume from the directory's newest valid checkpoint, if it has one.
    pub fn resume(mut self, resume: bool) -> Self {
        self.resume = resume;
        self
    }

    /// Generations kept.
    pub fn keep(mut self, keep: usize) -> Self {
        self.keep = keep;
        self
    }

    fn due(&self, rows_since: u64, since: Instant) -> bool {
        self.every_rows.is_some_and(|n| rows_since >= n) || self.every.is_some_and(|t| since.elapsed() >= t)
    }
}

/// What a monitor sees after each batch.
#[derive(Debug)]
pub struct Status<'a> {
    /// Rows scored in all, the resumed runs' included.
    pub rows: u64,
    /// Rows scored by this run.
    pub rows_this_run: u64,
    /// Rows skipped by this run.
    pub skipped_this_run: u64,
    /// Time since this run started.
    pub elapsed: Duration,
    /// Where the source stands.
    pub position: &'a Position,
    /// How much of the input is read, in `[0, 1]`, when its size is known (files; not brokers).
    pub fraction_done: Option<f64>,
}

/// Watches a run after each batch and may stop it (after a checkpoint, when the job checkpoints).
pub trait Monitor: Debug + Send {
    /// A reason to stop now, or `None` to go on.
    fn check(&mut self, status: &Status<'_>) -> Option<String>;
}

/// Stops the run at the next batch boundary once SIGTERM or SIGINT (Ctrl-C) arrives.
#[derive(Debug, Clone)]
pub struct StopOnSignals {
    flag: Arc<AtomicBool>,
}

impl StopOnSignals {
    /// Installs the handlers (they only set a flag).
    pub fn install() -> std::io::Result<Self> {
        let flag = Arc::new(AtomicBool::new(false));
        for signal in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
            signal_hook::flag::register(signal, Arc::clone(&flag))?;
        }
        Ok(StopOnSignals { flag })
    }
}

impl Monitor for StopOnSignals {
    fn check(&mut self, _status: &Status<'_>) -> Option<String> {
        self.flag.load(Ordering::Relaxed).then(|| "interrupted by a signal".to_owned())
    }
}

/// Stops the run once resident memory passes a limit (Linux; elsewhere it never stops).
#[derive(Debug, Clone)]
pub struct MemoryLimit {
    /// The limit in MiB.
    pub mib: f64,
}

impl Monitor for MemoryLimit {
    fn check(&mut self, _status: &Status<'_>) -> Option<String> {
        match memory_mib() {
            Some((rss, _)) if rss > self.mib => {
                Some(format!("resident memory {rss:.0} MiB passed the limit of {} MiB", self.mib))
            }
            _ => None,
        }
    }
}

/// Every `every` rows, a progress line with resident memory and its growth since the start, and the rate
/// (the guide's memory monitoring), handed to `line` (`onad run --report-every` prints it to stderr).
/// Never stops the run.
pub struct ReportEvery {
    every: u64,
    reported: u64,
    start_rss: f64,
    line: Box<dyn FnMut(&str) + Send>,
}

impl ReportEvery {
    /// Reports every `every` rows (at least 1) to `line`.
    pub fn new(every: u64, line: impl FnMut(&str) + Send + 'static) -> Self {
        let start_rss = memory_mib().map_or(0.0, |m| m.0);
        ReportEvery { every: every.max(1), reported: 0, start_rss, line: Box::new(line) }
    }
}

impl Debug for ReportEvery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReportEvery").field("every", &self.every).field("reported", &self.reported).finish()
    }
}

impl Monitor for ReportEvery {
    fn check(&mut self, status: &Status<'_>) -> Option<String> {
        if status.rows_this_run / self.every > self.reported {
            self.reported = status.rows_this_run / self.every;
            let (rss, peak) = memory_mib().unwrap_or((f64::NAN, f64::NAN));
            let line = format!(
                "rows {}: resident {rss:.1} MiB (+{:.1} MiB since start, peak {peak:.1} MiB), {:.0} rows/s",
                status.rows,
                rss - self.start_rss,
                status.rows_this_run as f64 / status.elapsed.as_secs_f64().max(1e-9)
            );
            (self.line)(&line);
        }
        None
    }
}

/// Resident and peak memory of this process in MiB (Linux; `None` elsewhere).
pub fn memory_mib() -> Option<(f64, f64)> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let field = |name: &str| -> Option<f64> {
        let line = status.lines().find(|l| l.starts_with(name))?;
        let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
        Some(kb / 1024.0)
    };
    Some((field("VmRSS:")?, field("VmHWM:")?))
}

/// Evaluation against labels, when the input has them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Evaluation {
    /// Overall ROC-AUC and PR-AUC (keeps 16 bytes per labelled row).
    pub overall: bool,
    /// Also prequential figures over consecutive windows of this many labelled rows.
    pub window: Option<usize>,
}

impl Default for Evaluation {
    fn default() -> Self {
        Evaluation { overall: true, window: None }
    }
}

/// One model per entity (a card, a host): the key column, and how the models are spread.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Keyed {
    /// The key column (it is not a feature for the models).
    pub column: String,
    /// Worker threads; the output is the same for any number.
    pub workers: usize,
    /// Most live models (least recently used ones are dropped and counted).
    pub max_keys: Option<usize>,
    /// Batches in flight between the reader and the workers.
    pub depth: usize,
}

impl Keyed {
    /// Per-key models by `column` on one worker, unbounded.
    pub fn by(column: impl Into<String>) -> Self {
        Keyed { column: column.into(), workers: 1, max_keys: None, depth: 4 }
    }
}

/// What a checkpoint of a job holds (format 2). The model is the whole model of a plain run and the
/// prototype of a per-key run, whose models are in `keyed`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct JobState<S, D> {
    /// How the model was built; a resume must be given the same.
    pub spec: S,
    /// The model.
    pub model: D,
    /// The threshold with its state.
    pub threshold: AnyThreshold,
    /// Score-then-learn or learn-then-score.
    pub order: Order,
    /// Rows scored in all.
    pub rows: u64,
    /// Rows flagged in all.
    pub anomalies: u64,
    /// Rows skipped in all, by reason.
    pub skipped: SkipCounts,
    /// Each sink (as it describes itself) and where it resumes.
    pub sinks: Vec<(String, SinkPosition)>,
    /// Per-key models, in per-key runs.
    pub keyed: Option<KeyedState<D>>,
    /// The input the models were built for (`None` in states migrated from formats that did not record
    /// it): a resume over other columns or without the labels would feed the models other data.
    pub input: Option<InputShape>,
}

/// The columns of an input and whether it has labels, as recorded in a checkpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InputShape {
    /// The source's feature columns, in order (the key column included, in per-key runs); a column read
    /// as ids ([`Source::id_features`]) is recorded as `NAME (id)`, so a resume that reads it as numbers
    /// (or the other way round) is refused like one over other columns.
    pub columns: Vec<String>,
    /// Whether rows carry labels.
    pub labels: bool,
}

impl InputShape {
    /// The shape of `source`, whose schema (before any per-key split) is `schema`.
    fn of(source: &dyn Source, schema: &SchemaRef) -> InputShape {
        let ids = source.id_features();
        let columns = schema
            .names()
            .iter()
            .enumerate()
            .map(|(i, n)| if ids.contains(&i) { format!("{n} (id)") } else { n.clone() })
            .collect();
        InputShape { columns, labels: source.has_labels() }
    }
}

/// The per-key part of a [`JobState`].
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct KeyedState<D> {
    /// The model cap in force (a resume must use the same: it decides which models exist).
    pub max_keys: Option<usize>,
    /// Every live model with its key and last-use tick.
    pub models: Vec<KeyedModel<D>>,
    /// The model tally (rows protected, drift resets) of models evicted before the checkpoint.
    pub tally_evicted: Tally,
}

/// [`JobState`] by reference, for writing without copying the model (same fields, same order).
#[derive(Serialize)]
struct JobStateRef<'a, S, D> {
    spec: &'a S,
    model: &'a D,
    threshold: &'a AnyThreshold,
    order: Order,
    rows: u64,
    anomalies: u64,
    skipped: SkipCounts,
    sinks: &'a [(String, SinkPosition)],
    keyed: Option<KeyedStateRef<'a, D>>,
    input: Option<&'a InputShape>,
}

#[derive(Serialize)]
struct KeyedStateRef<'a, D> {
    max_keys: Option<usize>,
    models: &'a [KeyedModel<D>],
    tally_evicted: Tally,
}

/// Why a job could not be prepared or failed while running.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum JobError {
    /// A checkpoint could not be locked, read or written.
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
    /// A resume does not match the checkpointed run, or the job is not consistent.
    #[error("{0}")]
    Config(String),
    /// The model could not be built for the input.
    #[error("cannot build {model} for {input}: {error}")]
    Build {
        /// The model.
        model: String,
        /// The input.
        input: String,
        /// Why.
        error: BoxError,
    },
    /// The source failed to seek.
    #[error("cannot resume from {checkpoint}: {error}")]
    Seek {
        /// The checkpoint file.
        checkpoint: PathBuf,
        /// Why.
        error: Box<onad_core::SourceError>,
    },
    /// A sink failed.
    #[error(transparent)]
    Sink(#[from] SinkError),
    /// The run failed.
    #[error("while scoring {input}: {error}")]
    Run {
        /// The input.
        input: String,
        /// Why.
        error: Box<PipelineError>,
    },
}

/// Where a resumed run started.
#[derive(Debug, Clone)]
pub struct Resumed {
    /// The checkpoint file.
    pub path: PathBuf,
    /// Its source position.
    pub position: Position,
    /// Rows it covered.
    pub rows: u64,
}

/// What a job did.
#[derive(Debug, Clone)]
pub struct JobReport {
    /// This run's counters (rows, anomalies, skipped, time).
    pub stats: RunStats,
    /// Rows scored in all (resumed runs included).
    pub rows: u64,
    /// Rows flagged in all.
    pub anomalies: u64,
    /// Rows skipped in all, by reason.
    pub skipped: SkipCounts,
    /// The checkpoint this run resumed from.
    pub resumed: Option<Resumed>,
    /// Damaged checkpoints passed over when loading.
    pub warnings: Vec<String>,
    /// Why a monitor stopped the run early.
    pub stop_reason: Option<String>,
    /// Checkpoints written by this run.
    pub checkpoints_written: u64,
    /// Overall ROC-AUC of this run's rows (labels, both classes, evaluation on).
    pub roc_auc: Option<f64>,
    /// Overall PR-AUC (average precision) of this run's rows.
    pub pr_auc: Option<f64>,
    /// Windowed figures, with [`Evaluation::window`].
    pub prequential: Option<Prequential>,
    /// Per-key counters, in per-key runs.
    pub keyed: Option<KeyedStats>,
    /// Rows the model (every per-key model) refused to learn, when it protects its learning.
    pub protected_rows: Option<u64>,
    /// Times the model (every per-key model, evicted ones included) was replaced on drift; the count lives
    /// in the models and in checkpoints, so a resumed run reports the total.
    pub drift_resets: Option<u64>,
    /// True when the source has no columns (a broker with nothing new): nothing was built or run.
    pub empty_source: bool,
}

/// A job being set up; see the module docs.
pub struct Job<S, D> {
    input: String,
    source: Box<dyn Source + Send>,
    spec: S,
    kind: String,
    build: Builder<D>,
    threshold: AnyThreshold,
    order: Order,
    max_error_rate: Option<f64>,
    bad_rows: onad_core::BadRowPolicy,
    explain: bool,
    sinks: Vec<Box<dyn Sink>>,
    checkpoints: Option<CheckpointPolicy>,
    keyed: Option<Keyed>,
    monitors: Vec<Box<dyn Monitor>>,
    evaluation: Evaluation,
    tally: fn(&D) -> Option<u64>,
    drift_tally: fn(&D) -> Option<u64>,
    migrate: Option<Migrate<S, D>>,
    older_kinds: Vec<String>,
}

impl<S: Debug, D> Debug for Job<S, D> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Job").field("input", &self.input).field("kind", &self.kind).field("spec", &self.spec).finish()
    }
}

fn no_tally<D>(_: &D) -> Option<u64> {
    None
}

impl<S, D> Job<S, D>
where
    S: Serialize + DeserializeOwned + PartialEq + Debug + Send,
    D: Detector + Clone + Send + Serialize + DeserializeOwned,
{
    /// A job scoring `source` with the model `build` makes; `spec` (how the model is built) and `kind`
    /// (its name) are recorded in checkpoints and checked on resume. Defaults: score-then-learn, the
    /// guide's adaptive threshold (mean + 3 std of the last 1,000 scores), no sinks, no checkpoints.
    pub fn new<B>(source: Box<dyn Source + Send>, spec: S, kind: impl Into<String>, build: B) -> Self
    where
        B: FnOnce(&SchemaRef) -> Result<D, BoxError> + Send + 'static,
    {
        Job {
            input: "the input".into(),
            source,
            spec,
            kind: kind.into(),
            build: Box::new(build),
            threshold: AnyThreshold::Windowed(WindowedThreshold::new(1000, 3.0).expect("valid defaults")),
            order: Order::ScoreThenLearn,
            max_error_rate: None,
            bad_rows: onad_core::BadRowPolicy::Skip,
            explain: false,
            sinks: Vec::new(),
            checkpoints: None,
            keyed: None,
            monitors: Vec::new(),
            evaluation: Evaluation::default(),
            tally: no_tally::<D>,
            drift_tally: no_tally::<D>,
            migrate: None,
            older_kinds: Vec::new(),
        }
    }

    /// The input's name, for messages.
    pub fn input_name(mut self, name: impl Into<String>) -> Self {
        self.input = name.into();
        self
    }

    /// The threshold.
    pub fn threshold(mut self, threshold: AnyThreshold) -> Self {
        self.threshold = threshold;
        self
    }

    /// Score-then-learn (default) or learn-then-score.
    pub fn order(mut self, order: Order) -> Self {
        self.order = order;
        self
    }

    /// Stop with an error when the share of bad rows passes `rate` (judged after 100 rows).
    pub fn max_error_rate(mut self, rate: Option<f64>) -> Self {
        self.max_error_rate = rate;
        self
    }

    /// The bad-row policy of the source, which per-key runs apply to their own empty-row rule (a row of
    /// nothing but its key).
    pub fn bad_rows(mut self, policy: onad_core::BadRowPolicy) -> Self {
        self.bad_rows = policy;
        self
    }

    /// Explain every score ([`onad_core::Detector::explain_one`]): the sinks get the model's explanation
    /// values as extra columns ([`SinkLayout::explanations`]). Runs of one model only; rows then go one
    /// at a time. A model with no explanation is run as without.
    pub fn explain(mut self, on: bool) -> Self {
        self.explain = on;
        self
    }

    /// Adds a sink; every sink receives every scored batch.
    pub fn sink(mut self, sink: impl Sink + 'static) -> Self {
        self.sinks.push(Box::new(sink));
        self
    }

    /// Adds a boxed sink.
    pub fn boxed_sink(mut self, sink: Box<dyn Sink>) -> Self {
        self.sinks.push(sink);
        self
    }

    /// Checkpoints by this policy.
    pub fn checkpoints(mut self, policy: CheckpointPolicy) -> Self {
        self.checkpoints = Some(policy);
        self
    }

    /// One model per key.
    pub fn keyed(mut self, keyed: Keyed) -> Self {
        self.keyed = Some(keyed);
        self
    }

    /// Adds a monitor.
    pub fn monitor(mut self, monitor: impl Monitor + 'static) -> Self {
        self.monitors.push(Box::new(monitor));
        self
    }

    /// Evaluation against labels.
    pub fn evaluation(mut self, evaluation: Evaluation) -> Self {
        self.evaluation = evaluation;
        self
    }

    /// Counts rows the model refused to learn (learn protection), for the report.
    pub fn protected_rows(mut self, tally: fn(&D) -> Option<u64>) -> Self {
        self.tally = tally;
        self
    }

    /// Counts the times the model was replaced on drift, for the report (summed over per-key models).
    pub fn drift_resets(mut self, tally: fn(&D) -> Option<u64>) -> Self {
        self.drift_tally = tally;
        self
    }

    /// Reads checkpoint payloads through `migrate` first: older formats, or the current one with the
    /// model registry's own error messages.
    pub fn migrate(mut self, migrate: Migrate<S, D>) -> Self {
        self.migrate = Some(migrate);
        self
    }

    /// Names older builds gave this model (in checkpoints of older formats, which may then be resumed).
    pub fn older_kinds(mut self, kinds: Vec<String>) -> Self {
        self.older_kinds = kinds;
        self
    }

    /// The checkpoint kind: the model's name, prefixed `keyed:COLUMN:` in per-key runs.
    pub fn checkpoint_kind(&self) -> String {
        self.kind_of(&self.kind)
    }

    fn kind_of(&self, name: &str) -> String {
        match &self.keyed {
            Some(k) => format!("keyed:{}:{name}", k.column),
            None => name.to_owned(),
        }
    }

    /// Everything that can fail before the first row: the checkpoint lock and resume checks, the seek,
    /// building the model, opening the sinks.
    pub fn prepare(mut self) -> Result<Prepared<S, D>, JobError> {
        let source_schema = self.source.schema().clone();
        // A broker with nothing new opens with no columns: nothing is built, run, written or checkpointed.
        let empty_source = source_schema.is_empty();
        // The model's schema: the source's, without the key column in per-key runs.
        let (schema, key_column) = match &self.keyed {
            None => (source_schema.clone(), None),
            Some(_) if empty_source => (source_schema.clone(), None),
            Some(k) => {
                let (i, rest) = without_column(&source_schema, &k.column, &self.input)?;
                if k.workers == 0 {
                    return Err(JobError::Config("per-key runs need at least one worker".into()));
                }
                let inner = std::mem::replace(
                    &mut self.source,
                    Box::new(Nothing(source_schema.clone(), SkipCounts::default())),
                );
                let rule = KeyOnly { key: i };
                self.source = Box::new(onad_core::Checked::new(inner, rule, self.bad_rows, self.input.clone()));
                (rest, Some(i))
            }
        };
        let kind = self.checkpoint_kind();
        let mut lock = None;
        let mut loaded = None;
        let mut warnings = Vec::new();
        let mut dir = None;
        if let Some(policy) = &self.checkpoints {
            if policy.every_rows == Some(0) {
                return Err(JobError::Config("checkpoints every 0 rows: give at least 1".into()));
            }
            let cd = CheckpointDir::new(&policy.dir, policy.keep)?;
            lock = Some(cd.lock()?);
            let migrate = self.migrate.as_ref();
            let older: Vec<String> = self.older_kinds.iter().map(|k| self.kind_of(k)).collect();
            let found = cd.load_latest_with(&kind, &older, &|version, payload| {
                if let Some(state) = migrate.map(|m| m(version, payload)).transpose()?.flatten() {
                    return Ok(Some(state));
                }
                if version == FORMAT_VERSION {
                    return postcard::from_bytes::<JobState<S, D>>(payload).map(Some).map_err(|e| e.to_string());
                }
                Ok(None)
            })?;
            match found {
                None => {}
                Some((_, path, _)) if !policy.resume => {
                    return Err(JobError::Config(format!(
                        "{} holds checkpoints of an earlier run ({}): resume it, or remove them to start over",
                        policy.dir.display(),
                        path.display()
                    )));
                }
                Some((c, path, w)) => {
                    for damaged in &w {
                        tracing::warn!(damaged = %damaged, "skipped a damaged checkpoint generation");
                    }
                    tracing::info!(path = %path.display(), rows = c.rows_seen, position = %c.position, "resuming from checkpoint");
                    warnings = w;
                    loaded = Some((c, path));
                }
            }
            dir = Some(cd);
        }
        let shape = InputShape::of(self.source.as_ref(), &source_schema);
        let mut resumed = None;
        let mut carried = Carried::default();
        let mut keyed_models = Vec::new();
        let mut restored = None;
        let mut sink_positions: Vec<(String, SinkPosition)> = Vec::new();
        if let Some((c, path)) = loaded {
            let Checkpoint { position, rows_seen, state, .. } = c;
            carried = Carried {
                rows: state.rows,
                anomalies: state.anomalies,
                skipped: state.skipped.clone(),
                tally_evicted: state.keyed.as_ref().map_or(Tally::default(), |k| k.tally_evicted),
            };
            resumed = Some(Resumed { path: path.clone(), position: position.clone(), rows: rows_seen });
            if empty_source {
                // Nothing to resume into: the counts are reported, the checkpoint stays as it is.
                let report = Prepared::empty(self, carried, resumed, warnings, lock);
                return Ok(report);
            }
            self.check_resume(&state, &path, &shape)?;
            self.source
                .seek(&position)
                .map_err(|error| JobError::Seek { checkpoint: path.clone(), error: Box::new(error) })?;
            sink_positions = state.sinks;
            if let Some(k) = state.keyed {
                keyed_models = k.models;
            }
            self.threshold = state.threshold;
            restored = Some(state.model);
        } else if empty_source {
            return Ok(Prepared::empty(self, carried, resumed, warnings, lock));
        }
        let mut names = std::collections::HashSet::new();
        for sink in &self.sinks {
            if !names.insert(sink.describe()) {
                return Err(JobError::Config(format!(
                    "{} is given as an output twice: two outputs on one target would write over each other",
                    sink.describe()
                )));
            }
        }
        let model = match restored {
            Some(m) => m,
            None => {
                let build = std::mem::replace(&mut self.build, Box::new(|_| Err("already built".into())));
                build(&schema).map_err(|error| JobError::Build {
                    model: self.kind.clone(),
                    input: self.input.clone(),
                    error,
                })?
            }
        };
        // Open every sink, fresh or where the checkpoint left it.
        let explanations = if self.explain { model.explanation_names() } else { Vec::new() };
        if self.explain && self.keyed.is_some() && !explanations.is_empty() {
            return Err(JobError::Config(
                "explanations are written by runs of one model; per-key runs do not explain their scores".into(),
            ));
        }
        let layout = SinkLayout {
            labels: self.source.has_labels(),
            key: self.keyed.as_ref().map(|k| k.column.clone()),
            explanations,
        };
        for sink in &mut self.sinks {
            let name = sink.describe();
            let at = if resumed.is_some() {
                let found = sink_positions.iter().find(|(n, _)| *n == name).map(|(_, p)| p);
                Some(found.ok_or_else(|| {
                    let recorded: Vec<&str> = sink_positions.iter().map(|(n, _)| n.as_str()).collect();
                    JobError::Config(format!(
                        "the checkpoint has no position for the output {name} (it recorded: {}); resume with the \
                         outputs of the checkpointed run",
                        if recorded.is_empty() { "none".to_owned() } else { recorded.join(", ") }
                    ))
                })?)
            } else {
                None
            };
            sink.open(&layout, at)?;
        }
        Ok(Prepared {
            job: self,
            model: Some(model),
            key_column,
            keyed_models,
            carried,
            resumed,
            warnings,
            dir,
            shape,
            _lock: lock,
        })
    }

    fn check_resume(&self, state: &JobState<S, D>, path: &std::path::Path, shape: &InputShape) -> Result<(), JobError> {
        let at = path.display();
        if let Some(was) = &state.input
            && was != shape
        {
            let show = |s: &InputShape| {
                format!("columns {}{}", s.columns.join(", "), if s.labels { " and labels" } else { " without labels" })
            };
            return Err(JobError::Config(format!(
                "{at}: the checkpoint was made over {}, but {} has {}; resume with the same input and column options",
                show(was),
                self.input,
                show(shape)
            )));
        }
        if state.spec != self.spec {
            return Err(JobError::Config(format!(
                "{at}: the checkpoint was made with other model parameters ({:?}); resume with the same model",
                state.spec
            )));
        }
        if state.threshold.to_string() != self.threshold.to_string() {
            return Err(JobError::Config(format!(
                "{at}: the checkpoint was made with the threshold {}, not {}; resume with the same threshold",
                state.threshold, self.threshold
            )));
        }
        if state.order != self.order {
            return Err(JobError::Config(format!(
                "{at}: the checkpoint was made with the order {}, not {}; resume with the same order",
                state.order, self.order
            )));
        }
        let cap = self.keyed.as_ref().and_then(|k| k.max_keys);
        if let Some(k) = &state.keyed
            && k.max_keys != cap
        {
            let show = |c: Option<usize>| c.map_or("no cap".to_owned(), |c| c.to_string());
            return Err(JobError::Config(format!(
                "{at}: the checkpoint was made with a per-key model cap of {}, not {}; resume with the same cap",
                show(k.max_keys),
                show(cap)
            )));
        }
        Ok(())
    }
}

/// The index of `column` in `schema` and the schema without it (the models' schema in per-key runs).
pub fn without_column(schema: &SchemaRef, column: &str, input: &str) -> Result<(usize, SchemaRef), JobError> {
    let i = schema.index_of(column).ok_or_else(|| {
        JobError::Config(format!("{input}: key column '{column}' not found (columns: {})", schema.names().join(", ")))
    })?;
    if schema.len() == 1 {
        return Err(JobError::Config(format!(
            "{input}: the key column '{column}' is the only column, so the per-key models would have no feature \
             to score"
        )));
    }
    let rest = schema.names().iter().enumerate().filter(|(j, _)| *j != i).map(|(_, n)| n.clone());
    let rest = Schema::shared(rest).map_err(|e| JobError::Config(format!("{input}: {e}")))?;
    Ok((i, rest))
}

/// The empty-row rule of the sources for per-key runs: the key column is a feature to the source, so a row
/// holding only its key passes there; here a row whose features other than the key are all missing is a
/// bad row `empty_row` (skipped and counted, or an error under the fail policy), as in any other run.
/// Under the missing policy such a row stays as it is: a missing row of its key.
#[derive(Debug)]
struct KeyOnly {
    key: usize,
}

impl onad_core::RowRule for KeyOnly {
    fn check(&mut self, row: &[f64]) -> Option<onad_core::checked::Broken> {
        let empty = row.iter().enumerate().all(|(j, v)| j == self.key || v.is_nan());
        empty.then(|| onad_core::checked::Broken {
            reason: EMPTY_ROW,
            column: None,
            detail: "the row is empty: every feature but the key is missing, so there is nothing to score".into(),
        })
    }

    fn to_missing(&self, _row: &mut [f64]) {}
}

/// A placeholder source, for the moment a source is moved into a wrapper.
#[derive(Debug)]
struct Nothing(SchemaRef, SkipCounts);

impl Iterator for Nothing {
    type Item = Result<onad_core::Batch, onad_core::SourceError>;
    fn next(&mut self) -> Option<Self::Item> {
        None
    }
}

impl Source for Nothing {
    fn schema(&self) -> &SchemaRef {
        &self.0
    }
    fn has_labels(&self) -> bool {
        false
    }
    fn position(&self) -> Position {
        Position::Start
    }
    fn skipped(&self) -> &SkipCounts {
        &self.1
    }
}

/// The reason of [`KeyOnly`], the sources' `empty_row`.
const EMPTY_ROW: &str = "empty_row";

/// Counters carried over from the checkpoint a run resumed from.
#[derive(Debug, Clone, Default)]
struct Carried {
    rows: u64,
    anomalies: u64,
    skipped: SkipCounts,
    tally_evicted: Tally,
}

/// A job ready to run: see [`Job::prepare`].
pub struct Prepared<S, D> {
    job: Job<S, D>,
    model: Option<D>,
    key_column: Option<usize>,
    keyed_models: Vec<KeyedModel<D>>,
    carried: Carried,
    resumed: Option<Resumed>,
    warnings: Vec<String>,
    dir: Option<CheckpointDir>,
    shape: InputShape,
    _lock: Option<DirLock>,
}

impl<S, D> Prepared<S, D> {
    /// A job over a source with no columns: reports what a checkpoint carried, touches nothing.
    fn empty(
        job: Job<S, D>,
        carried: Carried,
        resumed: Option<Resumed>,
        warnings: Vec<String>,
        lock: Option<DirLock>,
    ) -> Self {
        let shape = InputShape { columns: Vec::new(), labels: false };
        let (keyed_models, dir) = (Vec::new(), None);
        Prepared {
            job,
            model: None,
            key_column: None,
            keyed_models,
            carried,
            resumed,
            warnings,
            dir,
            shape,
            _lock: lock,
        }
    }
}

impl<S: Debug, D> Debug for Prepared<S, D> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Prepared").field("job", &self.job).field("resumed", &self.resumed).finish()
    }
}

/// The run's mutable parts that the sink callback and the after-batch hook share.
struct Shared<'a> {
    sinks: &'a mut [Box<dyn Sink>],
    scores: Vec<f64>,
    labels: Vec<f64>,
    prequential: Option<Prequential>,
    overall: bool,
    /// The source acknowledges a batch when the next is asked for: make every batch durable in the sinks
    /// before that, or a crash could lose rows the broker was told were done.
    sync_each_batch: bool,
}

impl Shared<'_> {
    fn write(&mut self, scored: &Scored<'_>) -> Result<(), BoxError> {
        if let Some(labels) = scored.labels() {
            if self.overall {
                self.scores.extend_from_slice(scored.scores);
                self.labels.extend_from_slice(labels);
            }
            if let Some(p) = self.prequential.as_mut() {
                for (s, l) in scored.scores.iter().zip(labels) {
                    p.update(*s, *l);
                }
            }
        }
        for sink in self.sinks.iter_mut() {
            sink.write(scored)?;
        }
        if self.sync_each_batch {
            for sink in self.sinks.iter_mut() {
                sink.sync()?;
            }
        }
        Ok(())
    }

    fn sync(&mut self) -> Result<Vec<(String, SinkPosition)>, SinkError> {
        self.sinks.iter_mut().map(|s| Ok((s.describe(), s.sync()?))).collect()
    }
}

/// Monitors and checkpoint timing, shared by the plain and the per-key loops.
struct Watch<'a> {
    monitors: &'a mut [Box<dyn Monitor>],
    policy: Option<&'a CheckpointPolicy>,
    carried_rows: u64,
    start: Instant,
    last_rows: u64,
    last_at: Instant,
    stop_reason: Option<String>,
    written: u64,
}

impl Watch<'_> {
    /// After a batch: (stop now, checkpoint now).
    fn after(&mut self, progress: &Progress<'_>) -> (bool, bool) {
        if progress.at_end {
            return (false, self.policy.is_some_and(|p| p.at_end));
        }
        let status = Status {
            rows: self.carried_rows + progress.stats.rows,
            rows_this_run: progress.stats.rows,
            skipped_this_run: progress.skipped.total(),
            elapsed: self.start.elapsed(),
            position: &progress.position,
            fraction_done: progress.fraction_done,
        };
        for m in self.monitors.iter_mut() {
            if self.stop_reason.is_none() {
                self.stop_reason = m.check(&status);
            }
        }
        let stop = self.stop_reason.is_some();
        let due = self.policy.is_some_and(|p| stop || p.due(progress.stats.rows - self.last_rows, self.last_at));
        (stop, due)
    }

    fn checkpointed(&mut self, rows: u64) {
        self.last_rows = rows;
        self.last_at = Instant::now();
        self.written += 1;
    }
}

impl<S, D> Prepared<S, D>
where
    S: Serialize + DeserializeOwned + PartialEq + Debug + Send,
    D: Detector + Clone + Send + Serialize + DeserializeOwned,
{
    /// Where the run resumes, when it does.
    pub fn resumed(&self) -> Option<&Resumed> {
        self.resumed.as_ref()
    }

    /// Damaged checkpoints passed over while loading.
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }

    /// Runs the job to the end of the source or until a monitor stops it.
    pub fn run(self) -> Result<JobReport, JobError> {
        let Prepared { mut job, model, key_column, keyed_models, carried, resumed, warnings, dir, shape, _lock } = self;
        let mut report = JobReport {
            stats: RunStats::default(),
            rows: carried.rows,
            anomalies: carried.anomalies,
            skipped: carried.skipped.clone(),
            resumed,
            warnings,
            stop_reason: None,
            checkpoints_written: 0,
            roc_auc: None,
            pr_auc: None,
            prequential: None,
            keyed: None,
            protected_rows: None,
            drift_resets: None,
            empty_source: model.is_none(),
        };
        let Some(mut model) = model else {
            // Nothing new: the outputs were not opened, so they stay exactly as the last run left them.
            return Ok(report);
        };
        let has_labels = job.source.has_labels();
        let prequential = match job.evaluation.window {
            Some(w) if has_labels => {
                Some(Prequential::new(w).map_err(|e| JobError::Config(format!("evaluation window: {e}")))?)
            }
            _ => None,
        };
        let kind = job.checkpoint_kind();
        let shared = RefCell::new(Shared {
            sinks: &mut job.sinks,
            scores: Vec::new(),
            labels: Vec::new(),
            prequential,
            overall: job.evaluation.overall && has_labels,
            sync_each_batch: job.source.acknowledges_on_next(),
        });
        let mut watch = Watch {
            monitors: &mut job.monitors,
            policy: job.checkpoints.as_ref(),
            carried_rows: carried.rows,
            start: Instant::now(),
            last_rows: 0,
            last_at: Instant::now(),
            stop_reason: None,
            written: 0,
        };
        let (spec, order) = (&job.spec, job.order);
        // The state to checkpoint at `progress`, after syncing every sink so it records their positions.
        let write_checkpoint = |model: &D,
                                threshold: &AnyThreshold,
                                keyed: Option<KeyedStateRef<'_, D>>,
                                progress: &Progress<'_>|
         -> Result<(), BoxError> {
            let Some(cd) = dir.as_ref() else { return Ok(()) };
            let sinks = shared.borrow_mut().sync()?;
            let mut skipped = carried.skipped.clone();
            skipped.merge(progress.skipped);
            let rows = carried.rows + progress.stats.rows;
            let state = JobStateRef {
                spec,
                model,
                threshold,
                order,
                rows,
                anomalies: carried.anomalies + progress.stats.anomalies,
                skipped,
                sinks: &sinks,
                keyed,
                input: Some(&shape),
            };
            let started = Instant::now();
            let path = cd.write(&Checkpoint {
                model_kind: kind.clone(),
                rows_seen: rows,
                position: progress.position.clone(),
                state,
            })?;
            tracing::info!(
                path = %path.display(),
                rows,
                position = %progress.position,
                bytes = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0),
                ms = started.elapsed().as_millis() as u64,
                "checkpoint written"
            );
            Ok(())
        };
        let sink = |scored: &Scored<'_>| shared.borrow_mut().write(scored);
        let result = match (&job.keyed, key_column) {
            (Some(k), Some(key_column)) => {
                let config = KeyedConfig {
                    key_column,
                    workers: k.workers,
                    max_keys: k.max_keys,
                    max_error_rate: job.max_error_rate,
                    depth: k.depth,
                    order,
                    snapshot_at_end: dir.is_some() && job.checkpoints.as_ref().is_some_and(|p| p.at_end),
                };
                let (tally, drift_tally) = (job.tally, job.drift_tally);
                let count = move |m: &D| Tally {
                    protected_rows: tally(m).unwrap_or(0),
                    drift_resets: drift_tally(m).unwrap_or(0),
                };
                let watch = RefCell::new(&mut watch);
                let hook = |progress: &Progress<'_>| -> Result<KeyedAction, BoxError> {
                    let (stop, due) = watch.borrow_mut().after(progress);
                    Ok(match (due, stop) {
                        (true, true) => KeyedAction::SnapshotAndStop,
                        (false, true) => KeyedAction::Stop,
                        (true, false) => KeyedAction::Snapshot,
                        (false, false) => KeyedAction::Continue,
                    })
                };
                let cap = k.max_keys;
                let on_snapshot = |threshold: &AnyThreshold,
                                   snapshot: KeyedSnapshot<D>,
                                   progress: &Progress<'_>|
                 -> Result<(), BoxError> {
                    let keyed = KeyedStateRef {
                        max_keys: cap,
                        models: &snapshot.models,
                        tally_evicted: carried.tally_evicted + snapshot.tally_evicted,
                    };
                    write_checkpoint(&model, threshold, Some(keyed), progress)?;
                    watch.borrow_mut().checkpointed(progress.stats.rows);
                    Ok(())
                };
                run_keyed(
                    job.source.as_mut(),
                    &model,
                    &mut job.threshold,
                    &config,
                    keyed_models,
                    &count,
                    sink,
                    hook,
                    on_snapshot,
                )
                .map(|(stats, keyed)| {
                    let total = keyed.tally_live + keyed.tally_evicted + carried.tally_evicted;
                    report.protected_rows = tally(&model).map(|_| total.protected_rows);
                    report.drift_resets = drift_tally(&model).map(|_| total.drift_resets);
                    report.keyed = Some(keyed);
                    stats
                })
            }
            _ => {
                let config = RunConfig { order, max_error_rate: job.max_error_rate, explain: job.explain };
                run_with(
                    job.source.as_mut(),
                    &mut model,
                    &mut job.threshold,
                    &config,
                    sink,
                    |model, threshold, progress| {
                        let (stop, due) = watch.after(progress);
                        if due {
                            write_checkpoint(model, threshold, None, progress)?;
                            watch.checkpointed(progress.stats.rows);
                        }
                        Ok(if stop { Flow::Stop } else { Flow::Continue })
                    },
                )
                .inspect(|_| {
                    report.protected_rows = (job.tally)(&model);
                    report.drift_resets = (job.drift_tally)(&model);
                })
            }
        };
        let stats = result.map_err(|error| JobError::Run { input: job.input.clone(), error: Box::new(error) })?;
        let mut shared = shared.into_inner();
        for sink in shared.sinks.iter_mut() {
            // A stopped run keeps what a resume needs; without checkpoints there is no resume.
            sink.finish(!stats.stopped_early || dir.is_none())?;
        }
        if has_labels && job.evaluation.overall {
            report.roc_auc = roc_auc(&shared.scores, &shared.labels);
            report.pr_auc = pr_auc(&shared.scores, &shared.labels);
        }
        report.prequential = shared.prequential.take();
        report.rows += stats.rows;
        report.anomalies += stats.anomalies;
        report.skipped.merge(&stats.skipped);
        report.stop_reason = watch.stop_reason.take();
        report.checkpoints_written = watch.written;
        report.stats = stats;
        Ok(report)
    }
}
