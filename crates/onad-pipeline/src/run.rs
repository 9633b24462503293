//! The basic processing loop of the streaming guide, with an explicit order policy and counts.

use std::time::{Duration, Instant};

use onad_core::{Batch, Detector, SkipCounts, Source, SourceError};
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

/// How [`run`] processes the stream.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunConfig {
    /// Score-then-learn or learn-then-score.
    pub order: Order,
}

/// One scored batch, handed to the sink: the input batch, a score and a flag per row.
#[derive(Debug)]
pub struct Scored<'a> {
    /// The input rows.
    pub batch: &'a Batch,
    /// One score per row.
    pub scores: &'a [f64],
    /// One anomaly flag per row.
    pub flags: &'a [bool],
    /// The threshold in force at each row.
    pub thresholds: &'a [f64],
}

impl Scored<'_> {
    /// Input row ids.
    pub fn row_ids(&self) -> &[u64] {
        self.batch.row_ids()
    }

    /// Anomaly flags.
    pub fn flags(&self) -> &[bool] {
        self.flags
    }
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
    /// Wall time of the loop (reading, scoring and the sink).
    pub elapsed: Duration,
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
}

/// Runs `detector` over every batch of `source` in the configured order, flags scores with `threshold`,
/// and passes each scored batch to `sink`.
pub fn run<S, D, T, F>(
    source: &mut S,
    detector: &mut D,
    threshold: &mut T,
    config: &RunConfig,
    mut sink: F,
) -> Result<RunStats, PipelineError>
where
    S: Source + ?Sized,
    D: Detector + ?Sized,
    T: Threshold + ?Sized,
    F: FnMut(&Scored<'_>) -> Result<(), Box<dyn std::error::Error + Send + Sync>>,
{
    let start = Instant::now();
    let mut stats = RunStats::default();
    let (mut scores, mut flags, mut thresholds) = (Vec::new(), Vec::new(), Vec::new());
    for batch in &mut *source {
        let batch = batch?;
        scores.clear();
        match config.order {
            Order::ScoreThenLearn => detector.score_learn_many(&batch, &mut scores),
            Order::LearnThenScore => detector.learn_score_many(&batch, &mut scores),
        }
        flags.clear();
        thresholds.clear();
        for &s in &scores {
            thresholds.push(threshold.current());
            let f = threshold.flag(s);
            stats.anomalies += u64::from(f);
            flags.push(f);
        }
        stats.rows += batch.num_rows() as u64;
        sink(&Scored { batch: &batch, scores: &scores, flags: &flags, thresholds: &thresholds })
            .map_err(PipelineError::Sink)?;
    }
    stats.skipped = source.skipped().clone();
    stats.elapsed = start.elapsed();
    Ok(stats)
}
