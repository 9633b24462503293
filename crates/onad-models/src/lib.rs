//! Online anomaly detectors and transformers for onad, and the closed registry of model kinds.
//!
//! Every model follows the `onad-core` contract: hyperparameters are a plain struct whose fields carry the
//! Python onad 0.3.0 names and defaults; [`onad_core::DetectorParams::build`] validates them against the
//! input schema once; the built model learns and scores one row at a time and serializes with serde.
//!
//! ```
//! use onad_core::{Detector, DetectorParams, Schema, Transformer, TransformerParams};
//! use onad_models::{MovingAverageParams, StandardScalerParams};
//!
//! let schema = Schema::shared(["latency_ms", "bytes"]).unwrap();
//! let scaler = StandardScalerParams::default().build(&schema).unwrap();
//! let average = MovingAverageParams { window_size: Some(50), key: Some("latency_ms".into()), ..Default::default() }
//!     .build(scaler.output_schema())
//!     .unwrap();
//! let mut model = scaler.then(average);
//! for i in 0..200 {
//!     model.learn_one(&[10.0 + (i % 7) as f64, 512.0]);
//! }
//! let normal = model.score_one(&[12.0, 512.0]);
//! let spike = model.score_one(&[400.0, 512.0]);
//! assert!(spike > 10.0 * normal);
//! ```

pub mod baseline;
mod cells;
pub mod deep;
pub mod distance;
pub mod drift;
pub mod graph;
pub mod iforest;
pub mod legacy;
mod registry;
mod rng;
pub mod sketch;
pub mod stat;
pub mod svm;
pub mod synthetic;
pub mod threshold;
pub mod timeseries;
pub mod transform;
mod tree;

pub use baseline::{
    NullModel, NullModelParams, RandomModel, RandomModelParams, ThresholdBound, ThresholdModel, ThresholdModelParams,
};
pub use deep::{Autoencoder, AutoencoderArchitecture, AutoencoderLoss, AutoencoderOptimizer, AutoencoderParams};
pub use deep::{KitnetPhase, OnlineAutoencoderEnsemble, OnlineAutoencoderEnsembleParams};
pub use distance::{
    CellNeighborhoodDetector, CellNeighborhoodDetectorParams, KNN, KNNParams, KnnDistance, LOF_MAX_WINDOW,
    LocalOutlierFactor, LocalOutlierFactorParams, LofDistance, SDOStream, SDOStreamParams, SdoDistance,
    StationaryRegionNeighborDetector, StationaryRegionNeighborDetectorParams,
};
pub use drift::{
    ADWIN, ADWINParams, DriftReset, KSWIN, KSWINParams, OnDrift, PageHinkley, PageHinkleyMode, PageHinkleyParams,
};
pub use graph::{AnoEdgeL, AnoEdgeLParams};
pub use graph::{ISCONNA, ISCONNAParams, MIDAS, MIDASParams};
pub use graph::{SignedGraphSketchDetector, SignedGraphSketchDetectorParams};
pub use iforest::{ASDIsolationForest, ASDIsolationForestParams};
pub use iforest::{HalfSpaceTrees, HalfSpaceTreesParams};
pub use iforest::{HistogramRange, StreamRandomHistogramForest, StreamRandomHistogramForestParams};
pub use iforest::{MondrianForest, MondrianForestParams};
pub use iforest::{OnlineIsolationForest, OnlineIsolationForestParams, OnlineTreeType, SplitMetric};
pub use iforest::{RandomCutForest, RandomCutForestParams, RcfScoring};
pub use iforest::{StreamRHF, StreamRHFParams};
pub use iforest::{XStream, XStreamParams};
pub use registry::decode_explained;
pub use registry::{
    AnyDetector, AnyDetectorParams, AnyTransformer, AnyTransformerParams, Describe, ModelInfo, REGISTRY, Role,
    model_info,
};
pub use sketch::{MStream, MStreamParams, StreamingLODA, StreamingLODAParams, StreamingRSHash, StreamingRSHashParams};
pub use stat::{
    MovingAverage, MovingAverageAbsoluteDeviation, MovingAverageAbsoluteDeviationParams, MovingAverageParams,
    MovingCorrelationCoefficient, MovingCorrelationCoefficientParams, MovingCovariance, MovingCovarianceParams,
    MovingGeometricAverage, MovingGeometricAverageParams, MovingHarmonicAverage, MovingHarmonicAverageParams,
    MovingInterquartileRange, MovingInterquartileRangeParams, MovingKurtosis, MovingKurtosisParams,
    MovingMahalanobisDistance, MovingMahalanobisDistanceParams, MovingMedian, MovingMedianParams, MovingQuantile,
    MovingQuantileParams, MovingSkewness, MovingSkewnessParams, MovingVariance, MovingVarianceParams,
};
pub use svm::{
    GADGETSVM, GADGETSVMParams, IncrementalOneClassSVMAdaptiveKernel, IncrementalOneClassSVMAdaptiveKernelParams,
};
pub use threshold::{
    Calibrated, Calibration, Calibrator, Combine, Ensemble, MAX_MEMBERS, Protect, Protected, QuantileThreshold,
    QuantileThresholdParams,
};
pub use timeseries::{
    MultivariateRollingMatrixProfile, MultivariateRollingMatrixProfileParams, RollingMatrixProfile,
    RollingMatrixProfileParams, XLagDAMP, XLagDAMPParams,
};
pub use timeseries::{SeasonalResidualDetector, SeasonalResidualDetectorParams};
pub use transform::{
    IncrementalPCA, IncrementalPCAParams, MinMaxScaler, MinMaxScalerParams, RandomProjection, RandomProjectionParams,
    ShingleTransformer, ShingleTransformerParams, StandardScaler, StandardScalerParams,
};
pub use tree::{
    AnyPipeline, CalibrateSpec, DriftSpec, EnsembleSpec, MAX_TREE_DEPTH, NODE_KINDS, PipelineSpec, ProtectSpec, Stages,
    StagesSpec,
};
#[cfg(test)]
mod state_layout;
