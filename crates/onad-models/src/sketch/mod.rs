//! Sketches: detectors that summarise the stream in fixed-size random projections, hashes or histograms.

mod loda;

pub use loda::{StreamingLODA, StreamingLODAParams};
