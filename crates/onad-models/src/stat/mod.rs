//! Moving-window statistics over one or two features: each scores how much a new value would move a
//! statistic of the recent window.

mod bivariate;
mod mahalanobis;
mod means;
mod moments;
mod moving_average;
mod order_stats;
pub mod window;

pub use bivariate::{
    MovingCorrelationCoefficient, MovingCorrelationCoefficientParams, MovingCovariance, MovingCovarianceParams,
};
pub use mahalanobis::{MovingMahalanobisDistance, MovingMahalanobisDistanceParams};
pub use means::{
    GeometricStat, HarmonicStat, MovingGeometricAverage, MovingGeometricAverageParams, MovingHarmonicAverage,
    MovingHarmonicAverageParams,
};
pub use moments::{
    KurtosisStat, MovingKurtosis, MovingKurtosisParams, MovingSkewness, MovingSkewnessParams, MovingVariance,
    MovingVarianceParams, PowerSums, SkewnessStat, VarianceStat,
};
pub use moving_average::{MovingAverage, MovingAverageParams};
pub use order_stats::{
    AbsoluteDeviationStat, InterquartileStat, MedianStat, MovingAverageAbsoluteDeviation,
    MovingAverageAbsoluteDeviationParams, MovingInterquartileRange, MovingInterquartileRangeParams, MovingMedian,
    MovingMedianParams, MovingQuantile, MovingQuantileParams, QuantileStat,
};

use onad_core::{ParamError, SchemaRef};

/// Resolves the one feature a univariate model reads: `key` by name, or the only column.
pub(crate) fn univariate_column(key: Option<&str>, schema: &SchemaRef) -> Result<usize, ParamError> {
    match key {
        Some(name) => schema.resolve("key", name),
        None if schema.len() == 1 => Ok(0),
        None => Err(ParamError::Schema(format!(
            "a univariate model needs exactly one feature or a 'key' naming one; the input has {} ({})",
            schema.len(),
            schema.names().join(", ")
        ))),
    }
}

/// Validates a required window size.
pub(crate) fn window_size(value: Option<usize>) -> Result<usize, ParamError> {
    match value {
        None => Err(ParamError::Missing("window_size")),
        Some(0) => Err(ParamError::invalid("window_size", "must be at least 1, got 0")),
        Some(w) => Ok(w),
    }
}
