//! The onad processing loop: pull batches from any [`onad_core::Source`], score and learn them with any
//! [`onad_core::Detector`] in an explicit [`Order`], flag anomalies with a [`Threshold`], hand every
//! scored batch to a sink, and count rows, anomalies and skipped rows. [`metrics`] evaluates scores
//! against labels (ROC-AUC, PR-AUC).
//!
//! The crate is generic over the core traits and depends on no model or connector.
//!
//! ```
//! use onad_core::{Batch, Detector, Position, Schema, SchemaRef, SkipCounts, Source, SourceError};
//! use onad_pipeline::{run, FixedThreshold, Order, RunConfig};
//!
//! // A source of five one-feature rows, one batch.
//! #[derive(Debug)]
//! struct Five { schema: SchemaRef, done: bool, skipped: SkipCounts }
//! impl Iterator for Five {
//!     type Item = Result<Batch, SourceError>;
//!     fn next(&mut self) -> Option<Self::Item> {
//!         if std::mem::replace(&mut self.done, true) { return None; }
//!         Some(Ok(Batch::from_rows(self.schema.clone(), vec![1.0, 1.0, 9.0, 1.0, 1.0], None, 0).unwrap()))
//!     }
//! }
//! impl Source for Five {
//!     fn schema(&self) -> &SchemaRef { &self.schema }
//!     fn has_labels(&self) -> bool { false }
//!     fn position(&self) -> Position { Position::Start }
//!     fn skipped(&self) -> &SkipCounts { &self.skipped }
//! }
//!
//! #[derive(Debug)]
//! struct Value;
//! impl Detector for Value {
//!     fn learn_one(&mut self, _x: &[f64]) {}
//!     fn score_one(&self, x: &[f64]) -> f64 { x[0] }
//! }
//!
//! let mut source = Five { schema: Schema::shared(["v"]).unwrap(), done: false, skipped: SkipCounts::default() };
//! let mut threshold = FixedThreshold(5.0);
//! let config = RunConfig { order: Order::ScoreThenLearn, ..Default::default() };
//! let mut flagged = Vec::new();
//! let stats = run(&mut source, &mut Value, &mut threshold, &config, |scored| {
//!     flagged.extend(scored.row_ids().iter().zip(scored.flags()).filter(|(_, f)| **f).map(|(id, _)| *id));
//!     Ok(())
//! })
//! .unwrap();
//! assert_eq!((stats.rows, stats.anomalies), (5, 1));
//! assert_eq!(flagged, vec![2]);
//! ```

pub mod checkpoint;
pub mod job;
mod keyed;
pub mod metrics;
mod run;
pub mod sinks;
mod threshold;

pub use job::{CheckpointPolicy, Evaluation, Job, JobError, JobReport, Keyed, Monitor, Prepared};
pub use keyed::{KeyedAction, KeyedConfig, KeyedModel, KeyedSnapshot, KeyedStats, Tally, run_keyed};
pub use onad_core::{Scored, Sink, SinkError, SinkLayout, SinkPosition};
pub use run::{
    BoxError, ERROR_RATE_MIN_ROWS, Flow, Order, PipelineError, Progress, RunConfig, RunStats, run, run_with,
};
pub use threshold::{
    AnyThreshold, FixedThreshold, NoThreshold, PValueThreshold, ParseThresholdError, RollingQuantileThreshold,
    Threshold, WindowedThreshold,
};
