//! Sketch-based detectors: fixed-size count tables updated in O(1) per row. [`MStream`] (multi-aspect
//! counts scored by a burst statistic) and [`StreamingRSHash`] (randomized subspace hashing into fading
//! count tables).

mod mstream;
mod rs_hash;

pub use mstream::{MStream, MStreamParams};
pub use rs_hash::{StreamingRSHash, StreamingRSHashParams};
