//! Sketches: detectors that summarise the stream in fixed-size count tables, hashes or histograms updated
//! in O(1) per row: [`MStream`] (multi-aspect counts scored by a burst statistic), [`StreamingLODA`]
//! (histograms of sparse random projections) and [`StreamingRSHash`] (randomized subspace hashing into
//! fading count tables).

mod loda;
mod mstream;
mod rs_hash;

pub use loda::{StreamingLODA, StreamingLODAParams};
pub use mstream::{MStream, MStreamParams};
pub use rs_hash::{StreamingRSHash, StreamingRSHashParams};
