//! ShingleTransformer: the last `shingle_size` rows of a series as one row, so a detector of points sees
//! each point with its recent history (pysad 0.7.0's `ShingleTransformer`).

use onad_core::{ParamDoc, ParamError, Schema, SchemaRef, Transformer, TransformerParams};
use serde::{Deserialize, Serialize};

use crate::registry::Describe;

/// The widest shingle accepted (`shingle_size` times the columns), in values.
const MAX_WIDTH: usize = 1 << 20;

/// Hyperparameters of [`ShingleTransformer`] (pysad 0.7.0's name; `keys` as onad's transformers).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ShingleTransformerParams {
    /// Rows in a shingle (required), `>= 1`; 1 passes the rows through.
    pub shingle_size: Option<usize>,
    /// The columns shingled, in order; default: every column. The others are left out of the output.
    pub keys: Option<Vec<String>>,
}

/// Shingles (Guha, Mishra, Roy & Schrijvers 2016, "Robust Random Cut Forest Based Anomaly Detection on
/// Streams", ICML, section 4; pysad 0.7.0's `ShingleTransformer`): each row becomes the last
/// `shingle_size` rows of the `keys` columns, oldest first, so any multivariate detector runs on a
/// univariate series and sees a pattern in time, not only a value: `shingle|half_space_trees` in a model
/// tree or on the command line (`--model 'shingle|half_space_trees' --set shingle.shingle_size=32`).
///
/// # Output
/// `s = shingle_size` groups of the key columns, named `column@t-lag`: `value@t-31, ..., value@t-0` for
/// one column `value` and `s = 32` (lag 0 is the row itself). Before `s - 1` rows have been learned the
/// absent lags hold copies of the oldest row learned (of the row itself before the first), as pysad does,
/// so a shingle never has an artificial jump and its values stay finite. A missing value (NaN) stays in
/// its lag until it leaves the shingle; each detector treats it as it treats a missing feature.
///
/// # Composition
/// pysad builds a point's shingle from the rows before it and then appends the point
/// (`fit_transform_partial`), so learning and scoring see the same shingle. Here too: `transform_one(x)`
/// is the shingle `x` closes as the next row (the last `s - 1` rows learned, then `x`), and
/// `learn_transform_one(x)` writes that same shingle and then learns `x`
/// ([`Transformer::transforms_next_row`] is true), so a pipeline scores and learns every row on pysad's
/// shingle, repeated rows included.
///
/// # Cost
/// O(s k) per row to write the shingle (k key columns), O(k) to learn a row (one slot of a ring of `s`
/// rows); memory `s k` values.
///
/// ```
/// use onad_core::{Schema, Transformer, TransformerParams};
/// use onad_models::ShingleTransformerParams;
/// let schema = Schema::shared(["t", "value"]).unwrap();
/// let p = ShingleTransformerParams { shingle_size: Some(3), keys: Some(vec!["value".into()]) };
/// let mut shingle = p.build(&schema).unwrap();
/// assert_eq!(shingle.output_schema().names(), ["value@t-2", "value@t-1", "value@t-0"]);
/// let mut out = [0.0; 3];
/// shingle.learn_transform_one(&[0.0, 10.0], &mut out);
/// assert_eq!(out, [10.0, 10.0, 10.0]); // absent lags: copies of the oldest row
/// for (t, v) in [(1.0, 11.0), (2.0, 12.0)] {
///     shingle.learn_transform_one(&[t, v], &mut out);
/// }
/// assert_eq!(out, [10.0, 11.0, 12.0]);
/// shingle.transform_one(&[3.0, 20.0], &mut out); // a new row: scored with the two before it
/// assert_eq!(out, [11.0, 12.0, 20.0]);
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ShingleTransformer {
    columns: Vec<usize>,
    output: SchemaRef,
    size: usize,
    /// The key columns of the last `size` rows learned, a ring of `size` slots of `columns.len()` values.
    ring: Vec<f64>,
    /// Rows in the ring (at most `size`).
    len: usize,
    /// The slot the next learned row goes to.
    next: usize,
}

impl TransformerParams for ShingleTransformerParams {
    type Model = ShingleTransformer;
    fn build(&self, schema: &SchemaRef) -> Result<ShingleTransformer, ParamError> {
        let columns = schema.resolve_all("keys", self.keys.as_deref())?;
        let size = self.shingle_size.ok_or(ParamError::Missing("shingle_size"))?;
        if size == 0 || size.saturating_mul(columns.len()) > MAX_WIDTH {
            return Err(ParamError::invalid(
                "shingle_size",
                format!("must be at least 1 and give at most 2^20 values for {} columns, got {size}", columns.len()),
            ));
        }
        let names =
            (0..size).rev().flat_map(|lag| columns.iter().map(move |&c| format!("{}@t-{lag}", schema.names()[c])));
        let output = Schema::shared(names).map_err(|e| ParamError::Schema(e.to_string()))?;
        Ok(ShingleTransformer { ring: vec![0.0; size * columns.len()], columns, output, size, len: 0, next: 0 })
    }
}

impl ShingleTransformer {
    /// The ring slot of the row learned `back` rows before the last one (`back < len`).
    #[inline]
    fn slot(&self, back: usize) -> &[f64] {
        let k = self.columns.len();
        let at = (self.next + 2 * self.size - 1 - back) % self.size;
        &self.ring[at * k..(at + 1) * k]
    }

    /// Writes the last `take` rows learned (`1 <= take <= len`), oldest first, after `pad` copies of the
    /// oldest of them, into `out`.
    #[inline]
    fn write_learned(&self, pad: usize, take: usize, out: &mut [f64]) {
        let k = self.columns.len();
        let mut chunks = out.chunks_exact_mut(k);
        let oldest = self.slot(take - 1);
        for chunk in chunks.by_ref().take(pad) {
            chunk.copy_from_slice(oldest);
        }
        for (chunk, back) in chunks.zip((0..take).rev()) {
            chunk.copy_from_slice(self.slot(back));
        }
    }

    /// The shingle that ends with the row learned last (`len >= 1`).
    #[inline]
    fn write_window(&self, out: &mut [f64]) {
        let take = self.len.min(self.size);
        self.write_learned(self.size - take, take, out);
    }
}

impl Transformer for ShingleTransformer {
    fn learn_one(&mut self, x: &[f64]) {
        let k = self.columns.len();
        let at = self.next * k;
        for (slot, &c) in self.ring[at..at + k].iter_mut().zip(&self.columns) {
            *slot = x[c];
        }
        self.next = (self.next + 1) % self.size;
        self.len = (self.len + 1).min(self.size);
    }

    fn transform_one(&self, x: &[f64], out: &mut [f64]) {
        let k = self.columns.len();
        let (front, current) = out.split_at_mut((self.size - 1) * k);
        for (o, &c) in current.iter_mut().zip(&self.columns) {
            *o = x[c];
        }
        let take = self.len.min(self.size - 1);
        if take > 0 {
            self.write_learned(self.size - 1 - take, take, front);
        } else {
            for chunk in front.chunks_exact_mut(k) {
                chunk.copy_from_slice(current);
            }
        }
    }

    fn learn_transform_one(&mut self, x: &[f64], out: &mut [f64]) {
        // The shingle x closes is the window once x is in it.
        self.learn_one(x);
        self.write_window(out);
    }

    fn transforms_next_row(&self) -> bool {
        true
    }

    fn output_schema(&self) -> &SchemaRef {
        &self.output
    }
}

impl Describe for ShingleTransformerParams {
    const SUMMARY: &'static str = "the last shingle_size rows of the key columns as one row, oldest first (pysad)";
    const PARAMS: &'static [ParamDoc] = &[
        ParamDoc { name: "shingle_size", ty: "int >= 1", required: true, help: "rows in a shingle" },
        ParamDoc { name: "keys", ty: "[feature, ...]", required: false, help: "columns shingled; default all" },
    ];
    const SERIES: bool = true;
    fn example() -> Self {
        ShingleTransformerParams { shingle_size: Some(3), keys: None }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shingle(size: usize, names: &[&str], keys: Option<&[&str]>) -> ShingleTransformer {
        let schema = Schema::shared(names.iter().copied()).unwrap();
        let keys = keys.map(|k| k.iter().map(|s| s.to_string()).collect());
        ShingleTransformerParams { shingle_size: Some(size), keys }.build(&schema).unwrap()
    }

    /// pysad's `fit_transform_partial`: the shingle of the rows before, padded with the oldest, then x.
    fn pysad(history: &[Vec<f64>], x: &[f64], size: usize) -> Vec<f64> {
        let earlier = &history[history.len().saturating_sub(size - 1)..];
        let pad = earlier.first().map_or(x, |r| r.as_slice());
        let mut out = Vec::new();
        for _ in earlier.len()..size - 1 {
            out.extend_from_slice(pad);
        }
        earlier.iter().for_each(|r| out.extend_from_slice(r));
        out.extend_from_slice(x);
        out
    }

    #[test]
    fn names_state_column_and_lag_and_keys_select_columns() {
        let t = shingle(2, &["a", "b", "c"], Some(&["c", "a"]));
        assert_eq!(t.output_schema().names(), ["c@t-1", "a@t-1", "c@t-0", "a@t-0"]);
        let t = shingle(1, &["a", "b"], None);
        assert_eq!(t.output_schema().names(), ["a@t-0", "b@t-0"]);
    }

    #[test]
    fn learning_and_scoring_see_pysads_shingles() {
        for size in [1, 2, 3, 5] {
            let mut t = shingle(size, &["x", "y"], None);
            let mut history: Vec<Vec<f64>> = Vec::new();
            let width = 2 * size;
            for i in 0..20 {
                let x = vec![i as f64, (i * i) as f64 * 0.5];
                let want = pysad(&history, &x, size);
                let mut before = vec![0.0; width];
                t.transform_one(&x, &mut before);
                assert_eq!(before, want, "size {size}, row {i}: scored shingle");
                let mut after = vec![0.0; width];
                t.learn_transform_one(&x, &mut after);
                assert_eq!(after, want, "size {size}, row {i}: learned shingle");
                history.push(x);
            }
        }
    }

    #[test]
    fn a_repeated_row_is_scored_and_learned_on_its_own_shingle() {
        let mut t = shingle(3, &["v"], None);
        let mut out = [0.0; 3];
        for v in [1.0, 2.0, 3.0] {
            t.learn_one(&[v]);
        }
        t.transform_one(&[3.0], &mut out);
        assert_eq!(out, [2.0, 3.0, 3.0]); // pysad's shingle of a repeated 3
        t.learn_transform_one(&[3.0], &mut out);
        assert_eq!(out, [2.0, 3.0, 3.0], "learned on the shingle it was scored on");
        // A missing value stays in its lag.
        t.learn_one(&[f64::NAN]);
        t.transform_one(&[4.0], &mut out);
        assert!(out[0] == 3.0 && out[1].is_nan() && out[2] == 4.0, "{out:?}");
        t.transform_one(&[f64::NAN], &mut out);
        assert!(out[0] == 3.0 && out[1].is_nan() && out[2].is_nan(), "{out:?}");
    }

    #[test]
    fn a_shingled_detector_sees_a_pattern_a_point_detector_cannot() {
        // A slow sine whose 3000th to 3060th rows oscillate five times faster, in the same range of values:
        // no single value is unusual, its neighbourhood in time is.
        let value = |t: usize| {
            let period = if (3000..3060).contains(&t) { 10.0 } else { 50.0 };
            (t as f64 * std::f64::consts::TAU / period).sin()
        };
        let schema = Schema::shared(["value"]).unwrap();
        let lift = |transformers: &str| {
            let spec: crate::PipelineSpec = serde_json::from_str(&format!(
                r#"{{"transformers": [{transformers}], "detector": {{"half_space_trees": {{"seed": 3}}}}}}"#
            ))
            .unwrap();
            let mut model = spec.build(&schema).unwrap();
            let scores: Vec<f64> =
                (0..3500).map(|t| onad_core::Detector::score_learn_one(&mut model, &[value(t)])).collect();
            let mean = |r: std::ops::Range<usize>| scores[r.clone()].iter().sum::<f64>() / r.len() as f64;
            mean(3010..3060) - mean(2000..3000)
        };
        let (shingled, plain) = (lift(r#"{"shingle": {"shingle_size": 16}}"#), lift(""));
        assert!(shingled > 0.05 && shingled > 2.0 * plain, "shingled {shingled}, plain {plain}");
    }

    #[test]
    fn parameters_are_checked() {
        let schema = Schema::shared(["v"]).unwrap();
        let err = |p: ShingleTransformerParams| p.build(&schema).unwrap_err().to_string();
        assert!(err(ShingleTransformerParams::default()).contains("shingle_size"));
        assert!(err(ShingleTransformerParams { shingle_size: Some(0), keys: None }).contains("shingle_size"));
        assert!(err(ShingleTransformerParams { shingle_size: Some(2), keys: Some(vec!["w".into()]) }).contains("keys"));
        assert!(
            err(ShingleTransformerParams { shingle_size: Some(MAX_WIDTH + 1), keys: None }).contains("shingle_size")
        );
    }
}
