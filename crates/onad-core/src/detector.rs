//! The two model traits: [`Detector`] (learn, score) and [`Transformer`] (learn, transform).
//!
//! Design notes:
//! - `score_one` takes `&self`: scoring never changes state, so a caller may score a row many times,
//!   score on a shared reference, or score without learning (the conformance suite checks this).
//!   Models whose score depends on "time" take the time from the row itself and advance it in `learn_one`.
//! - Neither trait returns `Result`: data problems are not errors. A model treats NaN as missing, never
//!   panics on NaN or infinities, and returns a finite score. Configuration problems surface once, when the
//!   model is built from its parameters against a schema (see [`crate::DetectorParams`]).
//! - The batch methods have defaults built on the one-row methods; a model may override them for speed
//!   but must give identical results (checked by the conformance suite). The same holds for
//!   [`Transformer::learn_transform_one`].
//! - Both traits require `Send + Sync`: a model moves between worker threads, and a model behind a shared
//!   reference may be scored from several threads at once (bindings to other languages rely on both).

use std::fmt::Debug;

use crate::batch::Batch;
use crate::pipeline::{Pipeline, TransformerChain};
use crate::schema::SchemaRef;

/// An online anomaly detector: learns one row at a time, scores one row at a time, higher = more anomalous.
pub trait Detector: Send + Sync + Debug {
    /// Updates the model with one row (values in the schema the model was built against).
    fn learn_one(&mut self, x: &[f64]);

    /// Scores one row without changing the model. Always finite.
    fn score_one(&self, x: &[f64]) -> f64;

    /// Scores the row, then learns it (the prequential, "test-then-train" order).
    fn score_learn_one(&mut self, x: &[f64]) -> f64 {
        let score = self.score_one(x);
        self.learn_one(x);
        score
    }

    /// Learns the row, then scores it (the in-sample order of onad's own examples). Behind a transformer of
    /// a row's place in a sequence (a shingle) this scores the window the row closed, which `learn_one`
    /// then `score_one` cannot: the second call sees the row as the one after itself.
    fn learn_score_one(&mut self, x: &[f64]) -> f64 {
        self.learn_one(x);
        self.score_one(x)
    }

    /// Learns every row of a batch in order.
    fn learn_many(&mut self, batch: &Batch) {
        for row in batch.rows() {
            self.learn_one(row);
        }
    }

    /// Scores every row of a batch against the current state, appending to `out`.
    fn score_many(&self, batch: &Batch, out: &mut Vec<f64>) {
        out.reserve(batch.num_rows());
        out.extend(batch.rows().map(|row| self.score_one(row)));
    }

    /// `score_learn_one` over every row of a batch, appending to `out`.
    fn score_learn_many(&mut self, batch: &Batch, out: &mut Vec<f64>) {
        out.reserve(batch.num_rows());
        for row in batch.rows() {
            out.push(self.score_learn_one(row));
        }
    }

    /// `learn_score_one` over every row of a batch, appending to `out`.
    fn learn_score_many(&mut self, batch: &Batch, out: &mut Vec<f64>) {
        out.reserve(batch.num_rows());
        for row in batch.rows() {
            out.push(self.learn_score_one(row));
        }
    }

    /// The names of the values [`explain_one`](Self::explain_one) writes, fixed once the model is built
    /// (a matrix profile's `match_start` and per-channel distances, a forecaster's `forecast` and
    /// `residual`). Empty, the default, when the model gives no explanation. Sinks write them as extra
    /// columns after the score.
    fn explanation_names(&self) -> Vec<String> {
        Vec::new()
    }

    /// Writes the explanation of `score_one(x)` (same state, no change to it) into `out`, whose length is
    /// `explanation_names().len()`; a value that does not exist yet (no match found during warm-up) is NaN.
    /// The default writes nothing, as its names are empty.
    fn explain_one(&self, x: &[f64], out: &mut [f64]) {
        let _ = x;
        out.fill(f64::NAN);
    }
}

/// An online feature transformer: learns statistics one row at a time and maps rows to new rows.
pub trait Transformer: Send + Sync + Debug {
    /// Updates the transformer's statistics with one row.
    fn learn_one(&mut self, x: &[f64]);

    /// Writes the transformed row into `out`, whose length is `self.output_schema().len()`.
    /// Never panics on NaN; missing inputs map to NaN or to a documented value.
    fn transform_one(&self, x: &[f64], out: &mut [f64]);

    /// Learns the row, then writes its transform by the updated state into `out` (what composition does
    /// for every learned row). The default calls [`learn_one`](Self::learn_one) then
    /// [`transform_one`](Self::transform_one); a transformer may override it to share work between the
    /// two (a shingling transformer, whose output is the window it just pushed the row into), but the
    /// result and the later state must equal the default's bit for bit (checked by the conformance suite).
    fn learn_transform_one(&mut self, x: &[f64], out: &mut [f64]) {
        self.learn_one(x);
        self.transform_one(x, out);
    }

    /// Whether the transform of a row is its place in a sequence rather than a map of the row by learned
    /// statistics: a shingle's `transform_one(x)` is the window `x` closes as the next row, which learning
    /// `x` does not change. Such a transformer's `learn_transform_one(x)` writes what `transform_one(x)`
    /// wrote just before learning (so a pipeline scores and learns a row on the same window), where every
    /// other transformer's writes the transform by the updated state (the default above). The conformance
    /// suite checks whichever holds. Default: false.
    fn transforms_next_row(&self) -> bool {
        false
    }

    /// The schema of the transformed rows.
    fn output_schema(&self) -> &SchemaRef;

    /// Puts a detector after this transformer; the result is itself a [`Detector`].
    fn then<D: Detector>(self, detector: D) -> Pipeline<Self, D>
    where
        Self: Sized,
    {
        Pipeline::new(self, detector)
    }

    /// Puts another transformer after this one; the result is itself a [`Transformer`], so chains of any
    /// length read left to right: `scaler.chain(projection).then(model)`.
    fn chain<U: Transformer>(self, next: U) -> TransformerChain<Self, U>
    where
        Self: Sized,
    {
        TransformerChain::new(self, next)
    }
}

impl<D: Detector + ?Sized> Detector for Box<D> {
    fn learn_one(&mut self, x: &[f64]) {
        (**self).learn_one(x)
    }
    fn score_one(&self, x: &[f64]) -> f64 {
        (**self).score_one(x)
    }
    fn score_learn_one(&mut self, x: &[f64]) -> f64 {
        (**self).score_learn_one(x)
    }
    fn learn_score_one(&mut self, x: &[f64]) -> f64 {
        (**self).learn_score_one(x)
    }
    fn learn_many(&mut self, batch: &Batch) {
        (**self).learn_many(batch)
    }
    fn score_many(&self, batch: &Batch, out: &mut Vec<f64>) {
        (**self).score_many(batch, out)
    }
    fn score_learn_many(&mut self, batch: &Batch, out: &mut Vec<f64>) {
        (**self).score_learn_many(batch, out)
    }
    fn learn_score_many(&mut self, batch: &Batch, out: &mut Vec<f64>) {
        (**self).learn_score_many(batch, out)
    }
    fn explanation_names(&self) -> Vec<String> {
        (**self).explanation_names()
    }
    fn explain_one(&self, x: &[f64], out: &mut [f64]) {
        (**self).explain_one(x, out)
    }
}

impl<D: Detector + ?Sized> Detector for &mut D {
    fn learn_one(&mut self, x: &[f64]) {
        (**self).learn_one(x)
    }
    fn score_one(&self, x: &[f64]) -> f64 {
        (**self).score_one(x)
    }
    fn score_learn_one(&mut self, x: &[f64]) -> f64 {
        (**self).score_learn_one(x)
    }
    fn learn_score_one(&mut self, x: &[f64]) -> f64 {
        (**self).learn_score_one(x)
    }
    fn learn_many(&mut self, batch: &Batch) {
        (**self).learn_many(batch)
    }
    fn score_many(&self, batch: &Batch, out: &mut Vec<f64>) {
        (**self).score_many(batch, out)
    }
    fn score_learn_many(&mut self, batch: &Batch, out: &mut Vec<f64>) {
        (**self).score_learn_many(batch, out)
    }
    fn learn_score_many(&mut self, batch: &Batch, out: &mut Vec<f64>) {
        (**self).learn_score_many(batch, out)
    }
    fn explanation_names(&self) -> Vec<String> {
        (**self).explanation_names()
    }
    fn explain_one(&self, x: &[f64], out: &mut [f64]) {
        (**self).explain_one(x, out)
    }
}

impl<T: Transformer + ?Sized> Transformer for Box<T> {
    fn learn_one(&mut self, x: &[f64]) {
        (**self).learn_one(x)
    }
    fn transform_one(&self, x: &[f64], out: &mut [f64]) {
        (**self).transform_one(x, out)
    }
    fn learn_transform_one(&mut self, x: &[f64], out: &mut [f64]) {
        (**self).learn_transform_one(x, out)
    }
    fn transforms_next_row(&self) -> bool {
        (**self).transforms_next_row()
    }
    fn output_schema(&self) -> &SchemaRef {
        (**self).output_schema()
    }
}

impl<T: Transformer + ?Sized> Transformer for &mut T {
    fn learn_one(&mut self, x: &[f64]) {
        (**self).learn_one(x)
    }
    fn transform_one(&self, x: &[f64], out: &mut [f64]) {
        (**self).transform_one(x, out)
    }
    fn learn_transform_one(&mut self, x: &[f64], out: &mut [f64]) {
        (**self).learn_transform_one(x, out)
    }
    fn transforms_next_row(&self) -> bool {
        (**self).transforms_next_row()
    }
    fn output_schema(&self) -> &SchemaRef {
        (**self).output_schema()
    }
}

// Both traits must stay usable as trait objects: the CLI and the registry build `Box<dyn Detector>`.
const _: fn(&dyn Detector, &dyn Transformer) = |_, _| {};

// Trait objects are `Send + Sync` through the supertraits, with no extra bounds at the use site.
const _: () = {
    const fn assert_send_sync<T: Send + Sync + ?Sized>() {}
    assert_send_sync::<dyn Detector>();
    assert_send_sync::<dyn Transformer>();
    assert_send_sync::<Box<dyn Detector>>();
};
