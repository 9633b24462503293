//! Detectors of edge streams: each row is one edge `(source, destination, time)`.
//!
//! What every edge detector shares lives here, so they read edges one way:
//! - [`EdgeColumns`] names the source, destination and (optional) time columns by parameter and resolves
//!   them against the schema once, in `build`.
//! - Node ids arrive as numbers. Text ids (IP addresses, account names) and integers too large for `f64`
//!   are read by the sources under the id column role (`--ids`), which turns each value's text into an
//!   exact 52-bit integer ([`onad_core::id_value`]); a plain numeric column is used as it is. Either way a
//!   node's key is the value's bits ([`node_key`]), so two ids are one node exactly when their values are
//!   equal, and no id is rounded into another.
//! - Time is a non-decreasing bucket number read from the time column, or the arrival index when there is
//!   none. Rows going back in time are a data problem the sources handle under the bad-row policy
//!   (`SourceOptions::ordered_by`); a model that still sees one counts it in the current bucket
//!   ([`EdgeClock::bucket_of`]), so it never fails and never moves its clock backwards.
//! - [`SketchHash`]: the seeded hash of a key into a sketch row, `((a*key + b) mod p) mod cols` with
//!   `p = 2^61 - 1`, the universal family the papers use.

mod anoedge;
pub mod generator;
mod isconna;
mod midas;
mod stream_spot;

pub use anoedge::{AnoEdgeL, AnoEdgeLParams};
pub use isconna::{ISCONNA, ISCONNAParams};
pub use midas::{MIDAS, MIDASParams};
pub use stream_spot::{SignedGraphSketchDetector, SignedGraphSketchDetectorParams};

use onad_core::{ParamError, Schema};
use serde::{Deserialize, Serialize};

use crate::rng::mix64;

/// The resolved edge columns of a schema.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct EdgeColumns {
    source: usize,
    destination: usize,
    time: Option<usize>,
}

/// One edge as the detectors see it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Edge {
    /// The source node's key.
    pub source: u64,
    /// The destination node's key.
    pub destination: u64,
    /// The time column's value (`None` without a time column, or when it is missing or not finite).
    pub time: Option<f64>,
}

impl EdgeColumns {
    /// Resolves the columns named by a model's `source_key`, `destination_key` and `time_key` parameters;
    /// the error names the parameter, the missing column and the schema's columns. The three must be
    /// different columns.
    pub fn resolve(
        schema: &Schema,
        source_key: &str,
        destination_key: &str,
        time_key: Option<&str>,
    ) -> Result<Self, ParamError> {
        let source = schema.resolve("source_key", source_key)?;
        let destination = schema.resolve("destination_key", destination_key)?;
        let time = time_key.map(|t| schema.resolve("time_key", t)).transpose()?;
        if source == destination {
            return Err(ParamError::invalid("destination_key", "must name another column than source_key"));
        }
        if time == Some(source) || time == Some(destination) {
            return Err(ParamError::invalid(
                "time_key",
                "must name another column than source_key and destination_key",
            ));
        }
        Ok(EdgeColumns { source, destination, time })
    }

    /// The edge of a row, or `None` when its source or destination is missing (NaN) or infinite: such a
    /// row is no edge, and the detectors score it 0 and learn nothing from it.
    #[inline]
    pub fn edge(&self, x: &[f64]) -> Option<Edge> {
        let source = node_key(x[self.source])?;
        let destination = node_key(x[self.destination])?;
        let time = self.time.map(|t| x[t]).filter(|t| t.is_finite());
        Some(Edge { source, destination, time })
    }

    /// Whether a time column was named.
    pub fn has_time(&self) -> bool {
        self.time.is_some()
    }
}

/// A node's key: the bits of its value (with `-0.0` read as `0.0`), or `None` when it is missing or infinite.
#[inline]
pub fn node_key(v: f64) -> Option<u64> {
    if !v.is_finite() {
        return None;
    }
    Some(if v == 0.0 { 0 } else { v.to_bits() })
}

/// The key of the ordered pair `(source, destination)`: a bijective mix of the source, combined with the
/// destination and mixed again, so `(a, b)` and `(b, a)` are different keys.
#[inline]
pub fn pair_key(source: u64, destination: u64) -> u64 {
    mix64(mix64(source) ^ destination.rotate_left(32))
}

/// The time of a stream of edges: the current bucket and how many edges have been learned.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct EdgeClock {
    /// The current bucket (`None` before the first edge).
    current: Option<f64>,
    /// Edges learned so far.
    learned: u64,
}

impl EdgeClock {
    /// The bucket an edge belongs to, as it would be learned now: its time, the arrival index (edges
    /// learned before it) without a time column, and the current bucket for a time that is missing or
    /// earlier than it.
    #[inline]
    pub fn bucket_of(&self, edge: &Edge, has_time: bool) -> f64 {
        let t = if has_time { edge.time } else { Some(self.learned as f64) };
        match (t, self.current) {
            (Some(t), Some(c)) if t < c => c,
            (Some(t), _) => t,
            (None, Some(c)) => c,
            (None, None) => 0.0,
        }
    }

    /// Whether learning an edge in `bucket` opens a new bucket.
    #[inline]
    pub fn is_new_bucket(&self, bucket: f64) -> bool {
        self.current != Some(bucket)
    }

    /// Records a learned edge in `bucket` (from [`bucket_of`](Self::bucket_of)).
    #[inline]
    pub fn advance(&mut self, bucket: f64) {
        self.current = Some(bucket);
        self.learned += 1;
    }

    /// The current bucket.
    pub fn current(&self) -> Option<f64> {
        self.current
    }

    /// Edges learned so far.
    pub fn learned(&self) -> u64 {
        self.learned
    }
}

/// The checks of a count-min sketch's parameters that the sketch-based edge detectors share (names as
/// aberrant's): `count_min_rows` and `count_min_cols` at least 1, their product at most `2^max_cells_log2`
/// (memory fixed by the parameters, and bounded), `time_decay_factor` in (0, 1].
pub(crate) fn check_sketch(rows: usize, cols: usize, max_cells_log2: u32, decay: f64) -> Result<(), ParamError> {
    if rows == 0 {
        return Err(ParamError::invalid("count_min_rows", "must be at least 1, got 0"));
    }
    if cols == 0 {
        return Err(ParamError::invalid("count_min_cols", "must be at least 1, got 0"));
    }
    if rows.saturating_mul(cols) > 1 << max_cells_log2 {
        return Err(ParamError::invalid(
            "count_min_cols",
            format!("count_min_rows * count_min_cols must be at most 2^{max_cells_log2}, got {rows} * {cols}"),
        ));
    }
    if !(decay > 0.0 && decay <= 1.0) {
        return Err(ParamError::invalid("time_decay_factor", format!("must be in (0, 1], got {decay}")));
    }
    Ok(())
}

/// The Mersenne prime `2^61 - 1` of [`SketchHash`].
const P61: u64 = (1 << 61) - 1;

/// One seeded hash function into `cols` cells: `((a*key + b) mod (2^61 - 1)) mod cols`, `a` in
/// `[1, p)`, `b` in `[0, p)`. The key is first reduced mod p (keys are 64-bit, the prime 61-bit).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SketchHash {
    a: u64,
    b: u64,
}

impl SketchHash {
    /// Hash function number `index` of a model seeded by `seed` (independent across indices).
    pub fn new(seed: u64, index: u64) -> Self {
        let a = mix64(seed ^ mix64(2 * index + 1)) % (P61 - 1) + 1;
        let b = mix64(seed ^ mix64(2 * index + 2)) % P61;
        SketchHash { a, b }
    }

    /// The cell of `key` among `cols` cells.
    #[inline]
    pub fn cell(&self, key: u64, cols: usize) -> usize {
        let k = (key % P61) as u128;
        let v = (self.a as u128 * k + self.b as u128) % P61 as u128;
        (v % cols as u128) as usize
    }
}

/// The sketch key of a single node (its [`node_key`] mixed bijectively), for the per-node sketches of
/// MIDAS-R and Isconna: mixing spreads keys that are close as `f64` bits before [`SketchHash`] reduces
/// them mod `2^61 - 1`.
#[inline]
pub fn node_sketch_key(node: u64) -> u64 {
    mix64(node ^ 0x6e6f_6465_6b65_7921)
}

/// `factor^steps`: what `steps` multiplications by a decay factor in `(0, 1]` leave of 1, for counters
/// decayed lazily (a cell catches up on the buckets it missed when it is next read). Exact for a factor
/// of 1, and 0 once the power underflows.
#[inline]
pub fn decay_power(factor: f64, steps: u64) -> f64 {
    if steps == 0 || factor == 1.0 {
        1.0
    } else if steps <= i32::MAX as u64 {
        factor.powi(steps as i32)
    } else {
        factor.powf(steps as f64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_resolve_by_name_and_name_the_parameter_in_errors() {
        let schema = Schema::new(["t", "src", "dst", "bytes"]).unwrap();
        let c = EdgeColumns::resolve(&schema, "src", "dst", Some("t")).unwrap();
        let e = c.edge(&[5.0, 1.0, 2.0, 9.0]).unwrap();
        assert_eq!((e.source, e.destination, e.time), (1.0f64.to_bits(), 2.0f64.to_bits(), Some(5.0)));
        let err = EdgeColumns::resolve(&schema, "from", "dst", None).unwrap_err().to_string();
        assert!(err.contains("source_key") && err.contains("'from'") && err.contains("t, src, dst, bytes"), "{err}");
        assert!(EdgeColumns::resolve(&schema, "src", "src", None).is_err());
        assert!(EdgeColumns::resolve(&schema, "src", "dst", Some("dst")).is_err());
        // A missing node is no edge; a missing time is no time.
        assert!(c.edge(&[5.0, f64::NAN, 2.0, 0.0]).is_none());
        assert_eq!(c.edge(&[f64::NAN, 1.0, 2.0, 0.0]).unwrap().time, None);
        assert_eq!(node_key(-0.0), node_key(0.0));
        assert_ne!(pair_key(1, 2), pair_key(2, 1));
    }

    #[test]
    fn the_clock_never_goes_back() {
        let mut clock = EdgeClock::default();
        let at = |t: f64| Edge { source: 0, destination: 1, time: Some(t) };
        assert_eq!(clock.bucket_of(&at(3.0), true), 3.0);
        clock.advance(3.0);
        assert!(!clock.is_new_bucket(clock.bucket_of(&at(3.0), true)));
        // Back in time: counted in the current bucket.
        assert_eq!(clock.bucket_of(&at(1.0), true), 3.0);
        assert!(clock.is_new_bucket(clock.bucket_of(&at(4.0), true)));
        // Without a time column the bucket is the arrival index.
        let mut arrivals = EdgeClock::default();
        assert_eq!(arrivals.bucket_of(&at(100.0), false), 0.0);
        arrivals.advance(0.0);
        assert_eq!(arrivals.bucket_of(&at(100.0), false), 1.0);
    }

    #[test]
    fn hashes_spread_keys_over_the_cells_and_depend_on_the_index() {
        let (h0, h1) = (SketchHash::new(7, 0), SketchHash::new(7, 1));
        assert_ne!(h0, h1);
        let mut counts = [0usize; 16];
        for k in 0..16_000u64 {
            counts[h0.cell(k, 16)] += 1;
        }
        // 1,000 expected per cell; a fair hash stays well within 20 %.
        assert!(counts.iter().all(|&c| (800..1200).contains(&c)), "{counts:?}");
        assert!((0..1000).all(|k| h1.cell(k, 3000) < 3000));
    }
}
