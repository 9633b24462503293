//! Core traits and data model of onad: the contract every detector, transformer and source follows.
//!
//! onad scores streams one row at a time. A row is a dense `&[f64]` whose column names live once in a
//! shared [`Schema`]; NaN means "missing". Detectors are built against a schema from plain, validated
//! hyperparameter structs, learn with [`Detector::learn_one`] and score with [`Detector::score_one`]
//! (higher = more anomalous). Transformers compose in front of a detector with [`Transformer::then`].
//! Sources yield [`Batch`]es and report a resumable [`Position`].
//!
//! This crate does no IO and knows no concrete model or connector.
//!
//! ```
//! use onad_core::{Detector, Row};
//!
//! /// Scores a row by how far its first feature is from the running mean.
//! #[derive(Debug, Default)]
//! struct MeanDistance { n: f64, mean: f64 }
//!
//! impl Detector for MeanDistance {
//!     fn learn_one(&mut self, x: &[f64]) {
//!         if x[0].is_finite() {
//!             self.n += 1.0;
//!             self.mean += (x[0] - self.mean) / self.n;
//!         }
//!     }
//!     fn score_one(&self, x: &[f64]) -> f64 {
//!         let d = (x[0] - self.mean).abs();
//!         if d.is_finite() { d } else { 0.0 }
//!     }
//! }
//!
//! let mut model = MeanDistance::default();
//! for v in [1.0, 1.2, 0.9, 1.1] {
//!     model.learn_one(Row::from_pairs([("v", v)]).values());
//! }
//! let far = Row::from_pairs([("v", 9.0)]);
//! assert!(model.score_one(far.values()) > 7.0);
//! ```

mod batch;
pub mod checked;
mod detector;
mod error;
mod id;
mod params;
mod pipeline;
pub mod rolling;
mod schema;
mod sink;
mod source;
pub mod threads;

pub use batch::{Batch, Origin, Origins, Row};
pub use checked::{Checked, NonDecreasing, RowRule};
pub use detector::{Detector, Transformer};
pub use error::{CoreError, ParamError};
pub use id::{ID_BITS, id_value, id_value_of};
pub use params::{DetectorParams, ParamDoc, TransformerParams};
pub use pipeline::{Pipeline, TransformerChain, with_scratch};
pub use schema::{Schema, SchemaRef};
pub use sink::{Scored, ScoredRow, Sink, SinkError, SinkLayout, SinkPosition};
pub use source::{BadRecord, BadRowPolicy, Position, SkipCounts, Source, SourceError};

/// A row of feature values in schema order. NaN marks a missing value.
pub type Features<'a> = &'a [f64];
