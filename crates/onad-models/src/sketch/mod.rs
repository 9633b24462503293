//! Sketch-based detectors: [`StreamingRSHash`] (randomized subspace hashing into fading count tables).

mod rs_hash;

pub use rs_hash::{StreamingRSHash, StreamingRSHashParams};
