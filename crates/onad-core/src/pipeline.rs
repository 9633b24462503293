//! Composition: a transformer in front of a detector ([`Pipeline`]) or of another transformer
//! ([`TransformerChain`]), the Rust form of Python onad's `scaler | model`.
//!
//! Semantics follow onad 0.3.0: `learn_one` updates the first stage, transforms the row with the
//! *updated* first stage (one [`Transformer::learn_transform_one`] call), and feeds the result to the next
//! stage; `score_one` transforms with the current state and never learns. So `score_learn_one` scores on
//! the pre-update transform and learns on the post-update one, exactly as calling `score_one` then
//! `learn_one` in Python does.
//!
//! The batch methods keep those semantics and still reach the detector's own batch methods where they
//! can: a transformer's updates never depend on the detector behind it, so a whole batch is transformed
//! first (by the current state for `score_many`, learning row by row for `learn_many` and
//! `learn_score_many`) and handed to the detector as one batch. `score_learn_many` scores each row on the
//! pre-update transform and learns it on the post-update one, which no single detector batch call
//! expresses, so it goes row by row.

use serde::{Deserialize, Serialize};

use crate::batch::Batch;
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
        let n = self.transformer.output_schema().len();
        let (t, d) = (&mut self.transformer, &mut self.detector);
        with_scratch(n, |buf| {
            t.learn_transform_one(x, buf);
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

    fn learn_score_one(&mut self, x: &[f64]) -> f64 {
        // Learning then scoring both see the post-update transform: compute it once.
        let n = self.transformer.output_schema().len();
        let (t, d) = (&mut self.transformer, &mut self.detector);
        with_scratch(n, |buf| {
            t.learn_transform_one(x, buf);
            d.learn_score_one(buf)
        })
    }

    fn learn_many(&mut self, batch: &Batch) {
        let transformed = learn_transform_batch(&mut self.transformer, batch);
        self.detector.learn_many(&transformed);
    }

    fn score_many(&self, batch: &Batch, out: &mut Vec<f64>) {
        self.detector.score_many(&transform_batch(&self.transformer, batch), out);
    }

    fn learn_score_many(&mut self, batch: &Batch, out: &mut Vec<f64>) {
        let transformed = learn_transform_batch(&mut self.transformer, batch);
        self.detector.learn_score_many(&transformed, out);
    }

    fn explanation_names(&self) -> Vec<String> {
        self.detector.explanation_names()
    }

    fn explain_one(&self, x: &[f64], out: &mut [f64]) {
        let n = self.transformer.output_schema().len();
        with_scratch(n, |buf| {
            self.transformer.transform_one(x, buf);
            self.detector.explain_one(buf, out)
        })
    }

    // `score_learn_one` and `score_learn_many` keep the row-by-row defaults: each row is scored on the
    // pre-update transform and learned on the post-update one.
}

/// The rows of `batch` transformed by the current state of `transformer`, as a batch of its output
/// schema with the same row ids (labels are left out: detectors do not read them).
pub(crate) fn transform_batch<T: Transformer + ?Sized>(transformer: &T, batch: &Batch) -> Batch {
    map_batch(transformer.output_schema().clone(), batch, |x, out| transformer.transform_one(x, out))
}

/// Learns the rows of `batch` in order, each transformed by the state just after learning it
/// ([`Transformer::learn_transform_one`]), and returns the transformed rows as a batch.
pub(crate) fn learn_transform_batch<T: Transformer + ?Sized>(transformer: &mut T, batch: &Batch) -> Batch {
    let schema = transformer.output_schema().clone();
    map_batch(schema, batch, |x, out| transformer.learn_transform_one(x, out))
}

fn map_batch(schema: SchemaRef, batch: &Batch, mut f: impl FnMut(&[f64], &mut [f64])) -> Batch {
    let n = schema.len();
    let mut values = vec![0.0; batch.num_rows() * n];
    if n > 0 {
        for (x, out) in batch.rows().zip(values.chunks_exact_mut(n)) {
            f(x, out);
        }
    } else {
        // No output columns, but every row is still seen (learned, for the learning variant).
        batch.rows().for_each(|x| f(x, &mut []));
    }
    Batch::try_new(schema, values, None, batch.row_ids().to_vec())
        .expect("one output row of the transformer's width per input row")
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
        let n = self.first.output_schema().len();
        let (first, second) = (&mut self.first, &mut self.second);
        with_scratch(n, |buf| {
            first.learn_transform_one(x, buf);
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

    fn learn_transform_one(&mut self, x: &[f64], out: &mut [f64]) {
        // The second stage's input is the first stage's post-update transform, which is also what the
        // chain's post-update transform feeds it: one pass does both.
        let n = self.first.output_schema().len();
        let (first, second) = (&mut self.first, &mut self.second);
        with_scratch(n, |buf| {
            first.learn_transform_one(x, buf);
            second.learn_transform_one(buf, out);
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

    /// A running sum of the first value learned; scores `x[0] - sum`. Counts calls to its batch methods,
    /// whose overrides give the same results as the defaults.
    #[derive(Debug, Default)]
    struct Summer {
        sum: f64,
        batch_calls: std::sync::atomic::AtomicUsize,
    }
    impl Summer {
        fn batch_calls(&self) -> usize {
            self.batch_calls.load(std::sync::atomic::Ordering::Relaxed)
        }
        fn note_batch(&self) {
            self.batch_calls.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
    }
    impl Detector for Summer {
        fn learn_one(&mut self, x: &[f64]) {
            self.sum += x[0];
        }
        fn score_one(&self, x: &[f64]) -> f64 {
            x[0] - self.sum
        }
        fn learn_many(&mut self, batch: &Batch) {
            self.note_batch();
            batch.rows().for_each(|r| self.learn_one(r));
        }
        fn score_many(&self, batch: &Batch, out: &mut Vec<f64>) {
            self.note_batch();
            out.extend(batch.rows().map(|r| self.score_one(r)));
        }
        fn learn_score_many(&mut self, batch: &Batch, out: &mut Vec<f64>) {
            self.note_batch();
            for r in batch.rows() {
                out.push(self.learn_score_one(r));
            }
        }
    }

    fn pipeline() -> Pipeline<TransformerChain<AddCount, AddCount>, Summer> {
        let schema = Schema::shared(["a", "b"]).unwrap();
        AddCount(schema.clone(), 0.0).chain(AddCount(schema, 0.0)).then(Summer::default())
    }

    fn batch_of(rows: &[[f64; 2]], first: u64) -> Batch {
        let schema = Schema::shared(["a", "b"]).unwrap();
        Batch::from_rows(schema, rows.concat(), None, first).unwrap()
    }

    const ROWS: [[f64; 2]; 5] = [[1.0, 2.0], [0.5, -1.0], [3.0, 3.0], [-2.0, 0.0], [7.0, 1.5]];

    #[test]
    fn batch_methods_equal_row_methods_and_reach_the_detector() {
        let batch = batch_of(&ROWS, 10);

        // score_learn_many: pre-update transform for the score, post-update for learning.
        let (mut one, mut many) = (pipeline(), pipeline());
        let expected: Vec<f64> = ROWS.iter().map(|r| one.score_learn_one(r)).collect();
        let mut got = Vec::new();
        many.score_learn_many(&batch, &mut got);
        assert_eq!(got, expected);
        assert_eq!(many.detector().sum, one.detector().sum);
        // By hand: row i scores x0 + 2i (two stages that have each learned i rows) minus the sum of the
        // earlier rows as learned, x0 + 2(j + 1) for j < i.
        assert_eq!(expected, vec![1.0, 2.5 - 3.0, 7.0 - 7.5, 4.0 - 16.5, 15.0 - 22.5]);

        // learn_score_many goes through the detector's batch override, on post-update transforms.
        let (mut one, mut many) = (pipeline(), pipeline());
        let expected: Vec<f64> = ROWS.iter().map(|r| one.learn_score_one(r)).collect();
        let mut got = Vec::new();
        many.learn_score_many(&batch, &mut got);
        assert_eq!(got, expected);
        assert_eq!(many.detector().batch_calls(), 1);
        assert_eq!(many.detector().sum, one.detector().sum);
        assert_eq!(many.transformer().first.1, 5.0);

        // score_many then learn_many, both through the detector's overrides.
        let (mut one, mut many) = (pipeline(), pipeline());
        let expected: Vec<f64> = ROWS.iter().map(|r| one.score_one(r)).collect();
        ROWS.iter().for_each(|r| one.learn_one(r));
        let mut got = Vec::new();
        many.score_many(&batch, &mut got);
        many.learn_many(&batch);
        assert_eq!(got, expected);
        assert_eq!(many.detector().batch_calls(), 2);
        assert_eq!(many.detector().sum, one.detector().sum);
        assert_eq!((many.transformer().first.1, many.transformer().second.1), (5.0, 5.0));
    }

    #[test]
    fn empty_batches_and_zero_width_transforms() {
        let mut p = pipeline();
        let mut out = vec![9.0];
        p.score_learn_many(&batch_of(&[], 0), &mut out);
        p.learn_score_many(&batch_of(&[], 0), &mut out);
        p.learn_many(&batch_of(&[], 0));
        assert_eq!(out, vec![9.0]);
        assert_eq!(p.transformer().first.1, 0.0);

        // A transformer with no output columns still learns every row of a batch.
        #[derive(Debug)]
        struct Nothing(SchemaRef, f64);
        impl Transformer for Nothing {
            fn learn_one(&mut self, _x: &[f64]) {
                self.1 += 1.0;
            }
            fn transform_one(&self, _x: &[f64], _out: &mut [f64]) {}
            fn output_schema(&self) -> &SchemaRef {
                &self.0
            }
        }
        #[derive(Debug, Default)]
        struct Rows(usize);
        impl Detector for Rows {
            fn learn_one(&mut self, x: &[f64]) {
                assert!(x.is_empty());
                self.0 += 1;
            }
            fn score_one(&self, _x: &[f64]) -> f64 {
                self.0 as f64
            }
        }
        let empty = Schema::shared(Vec::<String>::new()).unwrap();
        let mut p = Nothing(empty, 0.0).then(Rows::default());
        let mut out = Vec::new();
        p.learn_score_many(&batch_of(&ROWS, 0), &mut out);
        assert_eq!(out, vec![1.0, 2.0, 3.0, 4.0, 5.0]);
        assert_eq!(p.transformer().1, 5.0);
    }

    #[test]
    fn chain_learn_transform_one_equals_learn_then_transform() {
        let schema = Schema::shared(["a", "b"]).unwrap();
        let mut fused = AddCount(schema.clone(), 0.0).chain(AddCount(schema.clone(), 0.0));
        let mut split = AddCount(schema.clone(), 0.0).chain(AddCount(schema, 0.0));
        for r in &ROWS {
            let (mut a, mut b) = ([0.0; 2], [0.0; 2]);
            fused.learn_transform_one(r, &mut a);
            split.learn_one(r);
            split.transform_one(r, &mut b);
            assert_eq!(a, b);
        }
        assert_eq!((fused.first.1, fused.second.1), (split.first.1, split.second.1));
        // After five rows both stages add 5.
        let mut out = [0.0; 2];
        fused.transform_one(&[0.0, 1.0], &mut out);
        assert_eq!(out, [10.0, 11.0]);
    }
}
