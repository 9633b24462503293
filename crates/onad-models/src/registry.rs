//! The closed registry of model kinds: one list drives [`AnyDetector`], [`AnyTransformer`], their
//! parameter enums, the CLI names, `onad models`, the conformance suite and the benches.
//!
//! Adding a model is one line in the `registry!` invocation below plus its file.

use std::borrow::Cow;

use onad_core::{
    Batch, Detector, DetectorParams, ParamDoc, ParamError, SchemaRef, Transformer, TransformerParams, with_scratch,
};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::baseline::{
    NullModel, NullModelParams, RandomModel, RandomModelParams, ThresholdModel, ThresholdModelParams,
};
use crate::stat::{
    MovingAverage, MovingAverageAbsoluteDeviation, MovingAverageAbsoluteDeviationParams, MovingAverageParams,
    MovingCorrelationCoefficient, MovingCorrelationCoefficientParams, MovingCovariance, MovingCovarianceParams,
    MovingGeometricAverage, MovingGeometricAverageParams, MovingHarmonicAverage, MovingHarmonicAverageParams,
    MovingInterquartileRange, MovingInterquartileRangeParams, MovingKurtosis, MovingKurtosisParams,
    MovingMahalanobisDistance, MovingMahalanobisDistanceParams, MovingMedian, MovingMedianParams, MovingQuantile,
    MovingQuantileParams, MovingSkewness, MovingSkewnessParams, MovingVariance, MovingVarianceParams,
};
use crate::threshold::{Guard, Protect, QuantileThreshold, QuantileThresholdParams};
use crate::transform::{
    IncrementalPCA, IncrementalPCAParams, MinMaxScaler, MinMaxScalerParams, RandomProjection, RandomProjectionParams,
    StandardScaler, StandardScalerParams,
};

/// Self-description of a parameter struct, for `onad models`, the docs and the conformance suite.
pub trait Describe: Default + Serialize + DeserializeOwned {
    /// One line saying what the model does.
    const SUMMARY: &'static str;
    /// Every parameter, in declaration order (a test checks these match the serialized fields).
    const PARAMS: &'static [ParamDoc];
    /// Valid parameters for examples, tests and benches (fills required parameters).
    fn example() -> Self;
}

/// Whether a registered kind scores rows or transforms them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Implements `Detector`.
    Detector,
    /// Implements `Transformer`.
    Transformer,
}

/// One registered model kind.
#[derive(Debug, Clone, Copy)]
pub struct ModelInfo {
    /// The registry name (snake_case of the Python class name).
    pub name: &'static str,
    /// The Python class name it mirrors.
    pub class: &'static str,
    /// Detector or transformer.
    pub role: Role,
    /// One line.
    pub summary: &'static str,
    /// Its parameters.
    pub params: &'static [ParamDoc],
}

/// Looks a registered kind up by name.
pub fn model_info(name: &str) -> Option<&'static ModelInfo> {
    REGISTRY.iter().find(|m| m.name == name)
}

/// Makes a score finite: NaN (no evidence) becomes 0.0, infinities the largest finite value of their sign.
#[inline]
pub(crate) fn finite_score(s: f64) -> f64 {
    if s.is_finite() {
        s
    } else if s.is_nan() {
        0.0
    } else {
        f64::MAX.copysign(s)
    }
}

macro_rules! registry {
    (
        detectors { $( $dname:literal => $D:ident($DP:ident) ),* $(,)? }
        transformers { $( $tname:literal => $T:ident($TP:ident) ),* $(,)? }
    ) => {
        /// Every registered detector's parameters, tagged by registry name
        /// (JSON: `{"moving_average": {"window_size": 50}}`).
        #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
        #[non_exhaustive]
        pub enum AnyDetectorParams {
            $( #[doc = concat!("`", $dname, "`")] #[serde(rename = $dname)] $D($DP), )*
        }

        /// Every registered detector, as one serializable type.
        #[derive(Debug, Clone, Serialize, Deserialize)]
        #[non_exhaustive]
        pub enum AnyDetector {
            $( #[doc = concat!("`", $dname, "`")] $D($D), )*
        }

        /// Every registered transformer's parameters, tagged by registry name.
        #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
        #[non_exhaustive]
        pub enum AnyTransformerParams {
            $( #[doc = concat!("`", $tname, "`")] #[serde(rename = $tname)] $T($TP), )*
        }

        /// Every registered transformer, as one serializable type.
        #[derive(Debug, Clone, Serialize, Deserialize)]
        #[non_exhaustive]
        pub enum AnyTransformer {
            $( #[doc = concat!("`", $tname, "`")] $T($T), )*
        }

        /// All registered kinds: detectors first, then transformers, each in registration order.
        pub static REGISTRY: &[ModelInfo] = &[
            $( ModelInfo { name: $dname, class: stringify!($D), role: Role::Detector,
                           summary: <$DP as Describe>::SUMMARY, params: <$DP as Describe>::PARAMS }, )*
            $( ModelInfo { name: $tname, class: stringify!($T), role: Role::Transformer,
                           summary: <$TP as Describe>::SUMMARY, params: <$TP as Describe>::PARAMS }, )*
        ];

        impl AnyDetectorParams {
            /// The registry name.
            pub fn name(&self) -> &'static str {
                match self { $( Self::$D(_) => $dname, )* }
            }
            /// The defaults of a registered detector (required parameters unset).
            pub fn default_for(name: &str) -> Option<Self> {
                match name { $( $dname => Some(Self::$D($DP::default())), )* _ => None }
            }
            /// Valid example parameters of a registered detector.
            pub fn example_for(name: &str) -> Option<Self> {
                match name { $( $dname => Some(Self::$D(<$DP as Describe>::example())), )* _ => None }
            }
            /// Validates against the schema and builds the detector.
            pub fn build(&self, schema: &SchemaRef) -> Result<AnyDetector, ParamError> {
                match self { $( Self::$D(p) => p.build(schema).map(AnyDetector::$D), )* }
            }
        }

        impl AnyDetector {
            /// The registry name.
            pub fn name(&self) -> &'static str {
                match self { $( Self::$D(_) => $dname, )* }
            }
        }

        impl Detector for AnyDetector {
            fn learn_one(&mut self, x: &[f64]) { match self { $( Self::$D(m) => m.learn_one(x), )* } }
            fn score_one(&self, x: &[f64]) -> f64 { match self { $( Self::$D(m) => m.score_one(x), )* } }
            fn score_learn_one(&mut self, x: &[f64]) -> f64 {
                match self { $( Self::$D(m) => m.score_learn_one(x), )* }
            }
            fn learn_score_one(&mut self, x: &[f64]) -> f64 {
                match self { $( Self::$D(m) => m.learn_score_one(x), )* }
            }
            fn learn_many(&mut self, batch: &Batch) { match self { $( Self::$D(m) => m.learn_many(batch), )* } }
            fn score_many(&self, batch: &Batch, out: &mut Vec<f64>) {
                match self { $( Self::$D(m) => m.score_many(batch, out), )* }
            }
            fn score_learn_many(&mut self, batch: &Batch, out: &mut Vec<f64>) {
                match self { $( Self::$D(m) => m.score_learn_many(batch, out), )* }
            }
            fn learn_score_many(&mut self, batch: &Batch, out: &mut Vec<f64>) {
                match self { $( Self::$D(m) => m.learn_score_many(batch, out), )* }
            }
        }

        impl AnyTransformerParams {
            /// The registry name.
            pub fn name(&self) -> &'static str {
                match self { $( Self::$T(_) => $tname, )* }
            }
            /// The defaults of a registered transformer.
            pub fn default_for(name: &str) -> Option<Self> {
                match name { $( $tname => Some(Self::$T($TP::default())), )* _ => None }
            }
            /// Valid example parameters of a registered transformer.
            pub fn example_for(name: &str) -> Option<Self> {
                match name { $( $tname => Some(Self::$T(<$TP as Describe>::example())), )* _ => None }
            }
            /// Validates against the schema and builds the transformer.
            pub fn build(&self, schema: &SchemaRef) -> Result<AnyTransformer, ParamError> {
                match self { $( Self::$T(p) => p.build(schema).map(AnyTransformer::$T), )* }
            }
        }

        impl AnyTransformer {
            /// The registry name.
            pub fn name(&self) -> &'static str {
                match self { $( Self::$T(_) => $tname, )* }
            }
        }

        impl Transformer for AnyTransformer {
            fn learn_one(&mut self, x: &[f64]) { match self { $( Self::$T(m) => m.learn_one(x), )* } }
            fn transform_one(&self, x: &[f64], out: &mut [f64]) {
                match self { $( Self::$T(m) => m.transform_one(x, out), )* }
            }
            fn learn_transform_one(&mut self, x: &[f64], out: &mut [f64]) {
                match self { $( Self::$T(m) => m.learn_transform_one(x, out), )* }
            }
            fn output_schema(&self) -> &SchemaRef { match self { $( Self::$T(m) => m.output_schema(), )* } }
        }
    };
}

registry! {
    detectors {
        "null_model" => NullModel(NullModelParams),
        "random_model" => RandomModel(RandomModelParams),
        "threshold_model" => ThresholdModel(ThresholdModelParams),
        "moving_average" => MovingAverage(MovingAverageParams),
        "moving_harmonic_average" => MovingHarmonicAverage(MovingHarmonicAverageParams),
        "moving_geometric_average" => MovingGeometricAverage(MovingGeometricAverageParams),
        "moving_median" => MovingMedian(MovingMedianParams),
        "moving_quantile" => MovingQuantile(MovingQuantileParams),
        "moving_variance" => MovingVariance(MovingVarianceParams),
        "moving_interquartile_range" => MovingInterquartileRange(MovingInterquartileRangeParams),
        "moving_average_absolute_deviation" => MovingAverageAbsoluteDeviation(MovingAverageAbsoluteDeviationParams),
        "moving_kurtosis" => MovingKurtosis(MovingKurtosisParams),
        "moving_skewness" => MovingSkewness(MovingSkewnessParams),
        "moving_covariance" => MovingCovariance(MovingCovarianceParams),
        "moving_correlation_coefficient" => MovingCorrelationCoefficient(MovingCorrelationCoefficientParams),
        "moving_mahalanobis_distance" => MovingMahalanobisDistance(MovingMahalanobisDistanceParams),
        "quantile_threshold" => QuantileThreshold(QuantileThresholdParams),
    }
    transformers {
        "min_max_scaler" => MinMaxScaler(MinMaxScalerParams),
        "standard_scaler" => StandardScaler(StandardScalerParams),
        "incremental_pca" => IncrementalPCA(IncrementalPCAParams),
        "random_projection" => RandomProjection(RandomProjectionParams),
    }
}

/// A pipeline chosen at run time: transformers in order, then a detector (the CLI's
/// `standard_scaler|moving_average`). Serializable, so a checkpoint can store how a model was built.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PipelineSpec {
    /// Transformers applied in order.
    pub transformers: Vec<AnyTransformerParams>,
    /// The final detector.
    pub detector: AnyDetectorParams,
    /// Keep the whole pipeline from learning rows it scores as anomalous. (Always serialized: binary
    /// formats such as checkpoints are positional.)
    #[serde(default)]
    pub protect: Option<Protect>,
}

impl PipelineSpec {
    /// A pipeline of just one detector.
    pub fn detector(detector: AnyDetectorParams) -> Self {
        PipelineSpec { transformers: Vec::new(), detector, protect: None }
    }

    /// The stage names joined with `|`.
    pub fn name(&self) -> String {
        let mut parts: Vec<&str> = self.transformers.iter().map(AnyTransformerParams::name).collect();
        parts.push(self.detector.name());
        parts.join("|")
    }

    /// Builds every stage against the schema its predecessor outputs.
    pub fn build(&self, schema: &SchemaRef) -> Result<AnyPipeline, ParamError> {
        let mut current = schema.clone();
        let mut transformers = Vec::with_capacity(self.transformers.len());
        for params in &self.transformers {
            let t = params.build(&current)?;
            current = t.output_schema().clone();
            transformers.push(t);
        }
        let guard = self.protect.clone().map(Guard::new).transpose()?;
        Ok(AnyPipeline { transformers, detector: self.detector.build(&current)?, guard })
    }
}

/// A built [`PipelineSpec`]: any number of transformers and a detector, itself a [`Detector`] with the
/// same semantics as nested `onad_core::Pipeline`s (learn on post-update transforms, score on current ones).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AnyPipeline {
    transformers: Vec<AnyTransformer>,
    detector: AnyDetector,
    guard: Option<Guard>,
}

impl AnyPipeline {
    /// The transformers, in order.
    pub fn transformers(&self) -> &[AnyTransformer] {
        &self.transformers
    }

    /// The final detector.
    pub fn detector(&self) -> &AnyDetector {
        &self.detector
    }

    /// The learn-protection state, when the pipeline has one.
    pub fn guard(&self) -> Option<&Guard> {
        self.guard.as_ref()
    }
}

/// Scores `x` through the current state of every stage.
fn score_through(stages: &[AnyTransformer], x: &[f64], detector: &AnyDetector) -> f64 {
    match stages.split_first() {
        None => detector.score_one(x),
        Some((first, rest)) => with_scratch(first.output_schema().len(), |buf| {
            first.transform_one(x, buf);
            score_through(rest, buf, detector)
        }),
    }
}

/// Learns `x` through every stage (each learns its input, then passes on its post-update transform) and
/// hands the last stage's output to `last`.
fn learn_through<R>(stages: &mut [AnyTransformer], x: &[f64], last: impl FnOnce(&[f64]) -> R) -> R {
    match stages.split_first_mut() {
        None => last(x),
        Some((first, rest)) => with_scratch(first.output_schema().len(), |buf| {
            first.learn_transform_one(x, buf);
            learn_through(rest, buf, last)
        }),
    }
}

/// A batch of `schema`'s width holding `f(row)` for each row of `batch`, with the same row ids.
fn map_batch(schema: SchemaRef, batch: &Batch, mut f: impl FnMut(&[f64], &mut [f64])) -> Batch {
    let n = schema.len();
    let mut values = vec![0.0; batch.num_rows() * n];
    if n > 0 {
        for (x, out) in batch.rows().zip(values.chunks_exact_mut(n)) {
            f(x, out);
        }
    } else {
        batch.rows().for_each(|x| f(x, &mut []));
    }
    Batch::try_new(schema, values, None, batch.row_ids().to_vec())
        .expect("one output row of the stage's width per input row")
}

/// The batch transformed by the current state of every stage (the batch itself when there is none).
/// Stage by stage over the whole batch equals row by row through all stages: nothing learns.
fn transform_batch<'b>(stages: &[AnyTransformer], batch: &'b Batch) -> Cow<'b, Batch> {
    stages.iter().fold(Cow::Borrowed(batch), |current, t| {
        Cow::Owned(map_batch(t.output_schema().clone(), &current, |x, out| t.transform_one(x, out)))
    })
}

/// Learns the batch through every stage and returns the rows as the detector learns them. Stage by stage
/// equals row by row ([`learn_through`]): a stage's updates depend only on the rows it is given, in order.
fn learn_transform_batch<'b>(stages: &mut [AnyTransformer], batch: &'b Batch) -> Cow<'b, Batch> {
    stages.iter_mut().fold(Cow::Borrowed(batch), |current, t| {
        let schema = t.output_schema().clone();
        Cow::Owned(map_batch(schema, &current, |x, out| t.learn_transform_one(x, out)))
    })
}

/// Scores on the pre-update transforms and learns on the post-update ones, like nested
/// `onad_core::Pipeline`s. The batch methods reach the detector's own batch methods whenever that keeps
/// the row-by-row results: with no transformer and no guard all four go straight to it; otherwise
/// `score_many` hands it the transformed batch, and, without a guard, `learn_many` and `learn_score_many`
/// hand it the batch as learned through the transformers. A guard decides row by row from each score
/// whether the row is learned, and `score_learn_one` scores and learns different transforms of the row, so
/// those paths go row by row.
impl Detector for AnyPipeline {
    fn learn_one(&mut self, x: &[f64]) {
        if self.guard.is_some() {
            self.score_learn_one(x);
        } else {
            let detector = &mut self.detector;
            learn_through(&mut self.transformers, x, |y| detector.learn_one(y))
        }
    }

    fn score_one(&self, x: &[f64]) -> f64 {
        score_through(&self.transformers, x, &self.detector)
    }

    fn score_learn_one(&mut self, x: &[f64]) -> f64 {
        if self.transformers.is_empty() && self.guard.is_none() {
            return self.detector.score_learn_one(x);
        }
        let s = score_through(&self.transformers, x, &self.detector);
        if self.guard.as_mut().is_none_or(|g| g.admit(s)) {
            let detector = &mut self.detector;
            learn_through(&mut self.transformers, x, |y| detector.learn_one(y));
        }
        s
    }

    fn learn_score_one(&mut self, x: &[f64]) -> f64 {
        if self.guard.is_some() {
            self.learn_one(x);
            return self.score_one(x);
        }
        // Learning and the score after it both see the post-update transform.
        let detector = &mut self.detector;
        learn_through(&mut self.transformers, x, |y| detector.learn_score_one(y))
    }

    fn learn_many(&mut self, batch: &Batch) {
        if self.guard.is_some() {
            batch.rows().for_each(|x| self.learn_one(x));
        } else {
            let learned = learn_transform_batch(&mut self.transformers, batch);
            self.detector.learn_many(&learned);
        }
    }

    fn score_many(&self, batch: &Batch, out: &mut Vec<f64>) {
        self.detector.score_many(&transform_batch(&self.transformers, batch), out);
    }

    fn score_learn_many(&mut self, batch: &Batch, out: &mut Vec<f64>) {
        if self.transformers.is_empty() && self.guard.is_none() {
            self.detector.score_learn_many(batch, out);
        } else {
            out.reserve(batch.num_rows());
            out.extend(batch.rows().map(|x| self.score_learn_one(x)));
        }
    }

    fn learn_score_many(&mut self, batch: &Batch, out: &mut Vec<f64>) {
        if self.guard.is_some() {
            out.reserve(batch.num_rows());
            out.extend(batch.rows().map(|x| self.learn_score_one(x)));
        } else {
            let learned = learn_transform_batch(&mut self.transformers, batch);
            self.detector.learn_score_many(&learned, out);
        }
    }
}
