//! The basic processing loop of the streaming guide, with an explicit order policy and counts.

use std::time::{Duration, Instant};

use onad_core::{Batch, Detector, Position, Scored, SkipCounts, Source, SourceError};
use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::threshold::Threshold;

/// Whether a row is scored before or after the model learns it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Order {
    /// Prequential ("test-then-train"): the score never saw the row. The honest default.
    #[default]
    ScoreThenLearn,
    /// In-sample: learn the row, then score it (the order of Python onad's examples and guide).
    LearnThenScore,
}

impl std::fmt::Display for Order {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Order::ScoreThenLearn => "score-then-learn",
            Order::LearnThenScore => "learn-then-score",
        })
    }
}

/// How [`run`] processes the stream.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RunConfig {
    /// Score-then-learn or learn-then-score.
    pub order: Order,
    /// Stop with [`PipelineError::ErrorRate`] when the share of skipped rows among all rows read passes
    /// this (the guide's `error_threshold`); checked after each batch once 100 rows have been read.
    pub max_error_rate: Option<f64>,
    /// Explain every score ([`Detector::explain_one`], by the state that gave the score) and hand the
    /// explanations to the sink ([`Scored::explanations`]). Rows then go one at a time, which gives the
    /// same scores as the batch path (a model contract) at the one-row speed. Nothing changes for a model
    /// with no explanation.
    pub explain: bool,
}

/// Rows that must be read before the error rate is judged (one bad first row is not a 100 % rate).
pub const ERROR_RATE_MIN_ROWS: u64 = 100;

/// Whether the loop goes on after a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    /// Read the next batch.
    Continue,
    /// Stop now (a signal, a memory limit); the run ends without error.
    Stop,
}

/// Where the run stands after a batch, for checkpoints and monitoring.
#[derive(Debug)]
pub struct Progress<'a> {
    /// The source position just after the batch.
    pub position: Position,
    /// Counters so far (`elapsed` is not filled in yet).
    pub stats: &'a RunStats,
    /// The source's skip counts so far.
    pub skipped: &'a SkipCounts,
    /// How much of the input is read ([`Source::fraction_done`]), when its size is known.
    pub fraction_done: Option<f64>,
    /// True for the one call after the source has ended (every row is processed): the place for a final
    /// checkpoint. Stopping then changes nothing.
    pub at_end: bool,
}

/// What a run did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RunStats {
    /// Rows scored.
    pub rows: u64,
    /// Rows flagged as anomalies.
    pub anomalies: u64,
    /// Rows the source skipped, by reason.
    pub skipped: SkipCounts,
    /// Values the source read past because their key is not a column ([`Source::ignored_keys`]).
    pub ignored_keys: u64,
    /// Wall time of the loop (reading, scoring and the sink).
    pub elapsed: Duration,
    /// True when a hook stopped the run before the source ended.
    pub stopped_early: bool,
}

impl RunStats {
    /// Rows scored per second of wall time.
    pub fn rows_per_sec(&self) -> f64 {
        let secs = self.elapsed.as_secs_f64();
        if secs > 0.0 { self.rows as f64 / secs } else { 0.0 }
    }
}

/// Why a run stopped early.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum PipelineError {
    /// The source failed (including a bad row under the fail policy).
    #[error(transparent)]
    Source(#[from] SourceError),
    /// The sink failed.
    #[error("output: {0}")]
    Sink(Box<dyn std::error::Error + Send + Sync>),
    /// The after-batch hook failed (for example a checkpoint could not be written).
    #[error("{0}")]
    Hook(Box<dyn std::error::Error + Send + Sync>),
    /// Too many bad rows.
    #[error("stopped: {bad} of {read} rows read were bad ({:.2} %, above the limit of {:.2} %): {reasons}", 100.0 * *bad as f64 / *read as f64, 100.0 * limit)]
    ErrorRate {
        /// Bad rows so far.
        bad: u64,
        /// Rows read so far (good and bad).
        read: u64,
        /// The limit.
        limit: f64,
        /// Counts per reason.
        reasons: String,
    },
}

/// A boxed error from a sink or hook.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Runs `detector` over every batch of `source` in the configured order, flags scores with `threshold`,
/// and passes each scored batch to `sink`.
pub fn run<S, D, T, F>(
    source: &mut S,
    detector: &mut D,
    threshold: &mut T,
    config: &RunConfig,
    sink: F,
) -> Result<RunStats, PipelineError>
where
    S: Source + ?Sized,
    D: Detector + ?Sized,
    T: Threshold + ?Sized,
    F: FnMut(&Scored<'_>) -> Result<(), BoxError>,
{
    run_with(source, detector, threshold, config, sink, |_, _, _| Ok(Flow::Continue))
}

/// Compares scores with the threshold and hands scored batches to the sink: the one place the plain and the
/// per-key run loops turn scores into flags, so both flag alike. Keeps its buffers between batches.
#[derive(Debug, Default)]
pub(crate) struct Flagger {
    flags: Vec<bool>,
    thresholds: Vec<f64>,
}

impl Flagger {
    /// Flags each score against the threshold as it stood before the score (which then joins it),
    /// counts rows and anomalies, and calls the sink with the rows' keys (per-key runs) and
    /// explanations (runs that explain), when there are any.
    pub(crate) fn emit<T, F>(
        &mut self,
        batch: &Batch,
        scores: &[f64],
        threshold: &mut T,
        (keys, explanations): (Option<&[f64]>, Option<&[f64]>),
        stats: &mut RunStats,
        sink: &mut F,
    ) -> Result<(), PipelineError>
    where
        T: Threshold + ?Sized,
        F: FnMut(&Scored<'_>) -> Result<(), BoxError>,
    {
        self.flags.clear();
        self.thresholds.clear();
        for &s in scores {
            self.thresholds.push(threshold.current());
            let f = threshold.flag(s);
            stats.anomalies += u64::from(f);
            self.flags.push(f);
        }
        stats.rows += batch.num_rows() as u64;
        sink(&Scored { batch, scores, flags: &self.flags, thresholds: &self.thresholds, keys, explanations })
            .map_err(PipelineError::Sink)
    }
}

/// The error-rate policy, shared by the plain and the per-key loops: an error once more than `limit` of
/// the rows read (scored plus skipped) were bad, judged once [`ERROR_RATE_MIN_ROWS`] rows have been read.
pub(crate) fn check_error_rate(limit: Option<f64>, scored: u64, skipped: &SkipCounts) -> Result<(), PipelineError> {
    let Some(limit) = limit else { return Ok(()) };
    let bad = skipped.total();
    let read = scored + bad;
    if read >= ERROR_RATE_MIN_ROWS && bad as f64 > limit * read as f64 {
        let reasons = skipped.iter().map(|(k, v)| format!("{k}: {v}")).collect::<Vec<_>>().join(", ");
        return Err(PipelineError::ErrorRate { bad, read, limit, reasons });
    }
    Ok(())
}

/// Scores (in `order`) and explains every row of `batch` one at a time: each explanation comes from the
/// state that gave its row's score (before learning it under score-then-learn, after under
/// learn-then-score).
pub(crate) fn explain_batch<D: Detector + ?Sized>(
    detector: &mut D,
    batch: &Batch,
    order: Order,
    width: usize,
    scores: &mut Vec<f64>,
    explanations: &mut Vec<f64>,
) {
    explanations.clear();
    explanations.resize(batch.num_rows() * width, f64::NAN);
    for (row, out) in batch.rows().zip(explanations.chunks_exact_mut(width)) {
        match order {
            Order::ScoreThenLearn => {
                detector.explain_one(row, out);
                scores.push(detector.score_learn_one(row));
            }
            Order::LearnThenScore => {
                scores.push(detector.learn_score_one(row));
                detector.explain_one(row, out);
            }
        }
    }
}

/// [`run`] with a hook called after each batch with the model, the threshold and the progress: where
/// checkpoints are written, signals and memory limits are checked. The hook may stop the run. When the
/// source ends, the hook is called once more with [`Progress::at_end`] set (before the source is
/// acknowledged with [`Source::commit`]).
pub fn run_with<S, D, T, F, H>(
    source: &mut S,
    detector: &mut D,
    threshold: &mut T,
    config: &RunConfig,
    mut sink: F,
    mut after_batch: H,
) -> Result<RunStats, PipelineError>
where
    S: Source + ?Sized,
    D: Detector + ?Sized,
    T: Threshold + ?Sized,
    F: FnMut(&Scored<'_>) -> Result<(), BoxError>,
    H: FnMut(&D, &T, &Progress<'_>) -> Result<Flow, BoxError>,
{
    let start = Instant::now();
    let mut stats = RunStats::default();
    let (mut scores, mut flagger) = (Vec::new(), Flagger::default());
    let width = if config.explain { detector.explanation_names().len() } else { 0 };
    let mut explanations = Vec::new();
    // `while let`, not `for`: the loop body also asks the source for its position and skip counts.
    #[allow(clippy::while_let_on_iterator)]
    while let Some(batch) = source.next() {
        let batch = batch?;
        scores.clear();
        if width > 0 {
            explain_batch(detector, &batch, config.order, width, &mut scores, &mut explanations);
        } else {
            match config.order {
                Order::ScoreThenLearn => detector.score_learn_many(&batch, &mut scores),
                Order::LearnThenScore => detector.learn_score_many(&batch, &mut scores),
            }
        }
        let explained = (width > 0).then_some(explanations.as_slice());
        flagger.emit(&batch, &scores, threshold, (None, explained), &mut stats, &mut sink)?;
        let skipped = source.skipped();
        check_error_rate(config.max_error_rate, stats.rows, skipped)?;
        let progress = Progress {
            position: Source::position(source),
            stats: &stats,
            skipped,
            fraction_done: source.fraction_done(),
            at_end: false,
        };
        if after_batch(detector, threshold, &progress).map_err(PipelineError::Hook)? == Flow::Stop {
            stats.stopped_early = true;
            break;
        }
    }
    if !stats.stopped_early {
        let progress = Progress {
            position: Source::position(source),
            stats: &stats,
            skipped: source.skipped(),
            fraction_done: source.fraction_done(),
            at_end: true,
        };
        after_batch(detector, threshold, &progress).map_err(PipelineError::Hook)?;
    }
    // Every batch yielded has been processed (and, when stopping, checkpointed): acknowledge them.
    source.commit()?;
    stats.skipped = source.skipped().clone();
    stats.ignored_keys = source.ignored_keys();
    stats.elapsed = start.elapsed();
    Ok(stats)
}
