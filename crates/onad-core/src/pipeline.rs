//! Composition: a transformer in front of a detector ([`Pipeline`]) or of another transformer
//! ([`TransformerChain`]), the Rust form of Python onad's `scaler | model`.
//!
//! Semantics follow onad 0.3.0: `learn_one` updates the first stage, transforms the row with the
//! *updated* first stage, and feeds the result to the next stage; `score_one` transforms with the current
//! state and never learns. So `score_learn_one` scores on the pre-update transform and learns on the
//! post-update one, exactly as calling `score_one` then `learn_one` in Python does.

use serde::{Deserialize, Serialize};

use crate::detector::{Detector, Transformer};
use crate::schema::SchemaRef;

/// Rows up to this width are transformed in a stack buffer; wider rows allocate.
const STACK_WIDTH: usize = 64;

/// Runs `f` with a zeroed scratch slice of length `n`, on the stack when `n <= 64`, so composed models
/// transform rows without allocating.
#[inline]
pub fn with_scratch<R>(n: usize, f: impl FnOnce(&mut [f64]) -> R) -> R {
    if n <= STACK_WIDTH {
        let mut buf = [0.0; STACK_WIDTH];
        f(&mut buf[..n])
    } else {
        let mut buf = vec![0.0; n];
        f(&mut buf)
    }
}

/// A transformer followed by a detector; itself a [`Detector`].
///
/// ```
/// use onad_core::{Detector, Transformer, Schema, SchemaRef};
///
/// #[derive(Debug)]
/// struct Double(SchemaRef);
/// impl Transformer for Double {
///     fn learn_one(&mut self, _x: &[f64]) {}
///     fn transform_one(&self, x: &[f64], out: &mut [f64]) {
///         for (o, v) in out.iter_mut().zip(x) { *o = 2.0 * v; }
///     }
///     fn output_schema(&self) -> &SchemaRef { &self.0 }
/// }
///
/// #[derive(Debug)]
/// struct First;
/// impl Detector for First {
///     fn learn_one(&mut self, _x: &[f64]) {}
///     fn score_one(&self, x: &[f64]) -> f64 { x[0] }
/// }
///
/// let model = Double(Schema::shared(["a"]).unwrap()).then(First);
/// assert_eq!(model.score_one(&[1.5]), 3.0);
/// ```
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Pipeline<T, D> {
    transformer: T,
    detector: D,
}

impl<T: Transformer, D: Detector> Pipeline<T, D> {
    /// Composes `transformer` in front of `detector`.
    pub fn new(transformer: T, detector: D) -> Self {
        Pipeline { transformer, detector }
    }

    /// The first stage.
    pub fn transformer(&self) -> &T {
        &self.transformer
    }

    /// The last stage.
    pub fn detector(&self) -> &D {
        &self.detector
    }

    /// Takes the stages apart.
    pub fn into_parts(self) -> (T, D) {
        (self.transformer, self.detector)
    }
}

impl<T: Transformer, D: Detector> Detector for Pipeline<T, D> {
    fn learn_one(&mut self, x: &[f64]) {
        self.transformer.learn_one(x);
        let n = self.transformer.output_schema().len();
        let (t, d) = (&self.transformer, &mut self.detector);
        with_scratch(n, |buf| {
            t.transform_one(x, buf);
            d.learn_one(buf);
        });
    }

    fn score_one(&self, x: &[f64]) -> f64 {
        let n = self.transformer.output_schema().len();
        with_scratch(n, |buf| {
            self.transformer.transform_one(x, buf);
            self.detector.score_one(buf)
        })
    }
}

/// Two transformers in sequence; itself a [`Transformer`].
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TransformerChain<T, U> {
    first: T,
    second: U,
}

impl<T: Transformer, U: Transformer> TransformerChain<T, U> {
    /// Composes `first` in front of `second`.
    pub fn new(first: T, second: U) -> Self {
        TransformerChain { first, second }
    }
}

impl<T: Transformer, U: Transformer> Transformer for TransformerChain<T, U> {
    fn learn_one(&mut self, x: &[f64]) {
        self.first.learn_one(x);
        let n = self.first.output_schema().len();
        let (first, second) = (&self.first, &mut self.second);
        with_scratch(n, |buf| {
            first.transform_one(x, buf);
            second.learn_one(buf);
        });
    }

    fn transform_one(&self, x: &[f64], out: &mut [f64]) {
        let n = self.first.output_schema().len();
        with_scratch(n, |buf| {
            self.first.transform_one(x, buf);
            self.second.transform_one(buf, out);
        });
    }

    fn output_schema(&self) -> &SchemaRef {
        self.second.output_schema()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Schema;

    /// Adds the number of rows learned so far to every value.
    #[derive(Debug)]
    struct AddCount(SchemaRef, f64);
    impl Transformer for AddCount {
        fn learn_one(&mut self, _x: &[f64]) {
            self.1 += 1.0;
        }
        fn transform_one(&self, x: &[f64], out: &mut [f64]) {
            for (o, v) in out.iter_mut().zip(x) {
                *o = v + self.1;
            }
        }
        fn output_schema(&self) -> &SchemaRef {
            &self.0
        }
    }

    /// Remembers the last row it learned; scores the first value of the row.
    #[derive(Debug, Default)]
    struct Recorder(Vec<f64>);
    impl Detector for Recorder {
        fn learn_one(&mut self, x: &[f64]) {
            self.0 = x.to_vec();
        }
        fn score_one(&self, x: &[f64]) -> f64 {
            x[0]
        }
    }

    #[test]
    fn pipeline_scores_before_and_learns_after_update() {
        let schema = Schema::shared(["a"]).unwrap();
        let mut p = AddCount(schema, 0.0).then(Recorder::default());
        // Score uses the transform before learning (count 0), learning uses the updated one (count 1).
        assert_eq!(p.score_learn_one(&[10.0]), 10.0);
        assert_eq!(p.detector().0, vec![11.0]);
        assert_eq!(p.score_one(&[10.0]), 11.0);
    }

    #[test]
    fn chains_nest_and_wide_rows_work() {
        let n = STACK_WIDTH + 3;
        let schema = Schema::numbered("f", n);
        let mut p = AddCount(schema.clone(), 0.0).chain(AddCount(schema, 0.0)).then(Recorder::default());
        let x = vec![1.0; n];
        p.learn_one(&x);
        // first stage learned (count 1) then second learned (count 1): 1 + 1 + 1.
        assert_eq!(p.detector().0, vec![3.0; n]);
        assert_eq!(p.score_one(&x), 3.0);
    }
}
