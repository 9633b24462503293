//! Transformers to put in front of a detector: per-feature scalers, projections and shingles.

mod incremental_pca;
mod min_max_scaler;
mod random_projection;
mod shingle;
mod standard_scaler;

pub use incremental_pca::{IncrementalPCA, IncrementalPCAParams};
pub use min_max_scaler::{MinMaxScaler, MinMaxScalerParams};
pub use random_projection::{RandomProjection, RandomProjectionParams};
pub use shingle::{ShingleTransformer, ShingleTransformerParams};
pub use standard_scaler::{StandardScaler, StandardScalerParams};
