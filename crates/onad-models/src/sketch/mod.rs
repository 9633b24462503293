//! Sketch-based detectors: fixed-size count tables updated in O(1) per row.

mod mstream;

pub use mstream::{MStream, MStreamParams};
