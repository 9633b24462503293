//! A seeded edge stream with injected, labelled anomalies, for the edge detectors' tests and benchmarks.
//! Deterministic for a given seed and parameters on every platform.
//!
//! # Construction
//!
//! The stream is written bucket by bucket (the time column `t` is the bucket number, `0, 1, 2, ...`).
//!
//! - **Background.** A fixed population of [`nodes`](EdgeStreamParams::nodes) nodes, ids `0..nodes`. Node
//!   `i` has weight `1 / (i + 1)^exponent` (a Zipf law, so a few hub nodes carry most edges and most nodes
//!   are rare). Each bucket holds [`edges_per_bucket`](EdgeStreamParams::edges_per_bucket) background
//!   edges; each one draws its source and its destination independently by weight, redrawing the
//!   destination while it equals the source. Background edges are labelled 0.
//! - **Anomalies.** From bucket [`warm_up_buckets`](EdgeStreamParams::warm_up_buckets) on, each bucket
//!   holds one anomaly event with probability [`event_probability`](EdgeStreamParams::event_probability),
//!   of one of three kinds chosen uniformly (every injected edge is labelled 1):
//!   - [`EdgeKind::Burst`]: a normally rare edge `(u, v)`, both drawn uniformly from the least-weighted
//!     half of the population (`u != v`), repeated 20 to 40 times in the bucket.
//!   - [`EdgeKind::DenseSubgraph`]: 4 to 6 distinct nodes drawn uniformly from the least-weighted half;
//!     every ordered pair among them appears twice in the bucket (24 to 60 edges).
//!   - [`EdgeKind::Storm`]: one node drawn uniformly from the whole population sends one edge to each of
//!     20 to 40 nodes never seen before (fresh ids `nodes, nodes + 1, ...`, each used once in the stream).
//! - The bucket's background and injected edges are then shuffled together (Fisher-Yates), so an event
//!   is spread through its bucket. The stream stops after `rows` edges (the last bucket may be cut).
//!
//! With the defaults (1,000 nodes, 200 edges per bucket, exponent 1.0, 20 warm-up buckets, event
//! probability 0.06) about 1.5 % of the edges are injected ones.
//!
//! ```
//! use onad_models::graph::generator::{EdgeStreamParams, edge_stream};
//!
//! let s = edge_stream(50_000, 7);
//! assert_eq!(s.len(), 50_000);
//! let share = s.labels.iter().filter(|&&l| l == 1).count() as f64 / s.len() as f64;
//! assert!((0.005..0.03).contains(&share), "{share}");
//! assert!(s.t.windows(2).all(|w| w[0] <= w[1]));
//! assert_eq!(EdgeStreamParams::default().generate(1_000, 7).src, edge_stream(1_000, 7).src);
//! ```

use rand_core::{RngCore, SeedableRng};
use rand_pcg::Pcg64;

/// What produced an edge of the generated stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EdgeKind {
    /// A background edge (label 0).
    Background,
    /// One copy of a normally rare edge repeated many times in one bucket.
    Burst,
    /// An edge among a few nodes that suddenly all connect to one another.
    DenseSubgraph,
    /// An edge from one node to a node never seen before.
    Storm,
}

/// The generated stream, one entry per edge in stream order.
#[derive(Debug, Clone, Default)]
pub struct EdgeStream {
    /// Source node ids.
    pub src: Vec<u64>,
    /// Destination node ids.
    pub dst: Vec<u64>,
    /// Time bucket of each edge (non-decreasing).
    pub t: Vec<u64>,
    /// 1 for an injected edge, 0 for background.
    pub labels: Vec<u8>,
    /// What produced each edge.
    pub kinds: Vec<EdgeKind>,
}

impl EdgeStream {
    /// Number of edges.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// Whether the stream has no edge.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// Edge `i` as a row `[src, dst, t]` (the column order of the `edge_stream` example's CSV).
    pub fn row(&self, i: usize) -> [f64; 3] {
        [self.src[i] as f64, self.dst[i] as f64, self.t[i] as f64]
    }
}

/// The generator's parameters (see the [module documentation](self) for how each is used).
#[derive(Debug, Clone, PartialEq)]
pub struct EdgeStreamParams {
    /// Size of the background node population (at least 16).
    pub nodes: usize,
    /// Background edges per time bucket (at least 1).
    pub edges_per_bucket: usize,
    /// Zipf exponent of the node weights.
    pub exponent: f64,
    /// Buckets without anomalies at the start.
    pub warm_up_buckets: u64,
    /// Probability that a bucket after the warm-up holds one anomaly event.
    pub event_probability: f64,
}

impl Default for EdgeStreamParams {
    fn default() -> Self {
        EdgeStreamParams {
            nodes: 1_000,
            edges_per_bucket: 200,
            exponent: 1.0,
            warm_up_buckets: 20,
            event_probability: 0.06,
        }
    }
}

/// The stream of `rows` edges with the default parameters.
pub fn edge_stream(rows: usize, seed: u64) -> EdgeStream {
    EdgeStreamParams::default().generate(rows, seed)
}

fn unit(rng: &mut Pcg64) -> f64 {
    (rng.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
}

/// Uniform in `lo..=hi`.
fn between(rng: &mut Pcg64, lo: u64, hi: u64) -> u64 {
    lo + ((u128::from(rng.next_u64()) * u128::from(hi - lo + 1)) >> 64) as u64
}

impl EdgeStreamParams {
    /// Generates `rows` edges from `seed`. Parameters out of range are clamped (`nodes` to at least 16,
    /// `edges_per_bucket` to at least 1, `event_probability` to `[0, 1]`).
    pub fn generate(&self, rows: usize, seed: u64) -> EdgeStream {
        let nodes = self.nodes.max(16);
        let per_bucket = self.edges_per_bucket.max(1);
        let p_event = self.event_probability.clamp(0.0, 1.0);
        let mut rng = Pcg64::seed_from_u64(seed);
        // Cumulative Zipf weights: node i has weight 1 / (i + 1)^exponent.
        let mut cumulative = Vec::with_capacity(nodes);
        let mut total = 0.0;
        for i in 0..nodes {
            total += 1.0 / ((i + 1) as f64).powf(self.exponent);
            cumulative.push(total);
        }
        let draw = |rng: &mut Pcg64| -> u64 {
            let u = unit(rng) * total;
            cumulative.partition_point(|&c| c <= u).min(nodes - 1) as u64
        };
        let tail = |rng: &mut Pcg64| -> u64 { between(rng, (nodes / 2) as u64, nodes as u64 - 1) };
        let mut fresh = nodes as u64;
        let mut out = EdgeStream::default();
        let mut bucket_edges: Vec<(u64, u64, EdgeKind)> = Vec::new();
        let mut bucket = 0u64;
        while out.len() < rows {
            bucket_edges.clear();
            for _ in 0..per_bucket {
                let s = draw(&mut rng);
                let mut d = draw(&mut rng);
                while d == s {
                    d = draw(&mut rng);
                }
                bucket_edges.push((s, d, EdgeKind::Background));
            }
            if bucket >= self.warm_up_buckets && unit(&mut rng) < p_event {
                match between(&mut rng, 0, 2) {
                    0 => {
                        let u = tail(&mut rng);
                        let mut v = tail(&mut rng);
                        while v == u {
                            v = tail(&mut rng);
                        }
                        for _ in 0..between(&mut rng, 20, 40) {
                            bucket_edges.push((u, v, EdgeKind::Burst));
                        }
                    }
                    1 => {
                        let k = between(&mut rng, 4, 6) as usize;
                        let mut group: Vec<u64> = Vec::with_capacity(k);
                        while group.len() < k {
                            let n = tail(&mut rng);
                            if !group.contains(&n) {
                                group.push(n);
                            }
                        }
                        for _ in 0..2 {
                            for &a in &group {
                                for &b in &group {
                                    if a != b {
                                        bucket_edges.push((a, b, EdgeKind::DenseSubgraph));
                                    }
                                }
                            }
                        }
                    }
                    _ => {
                        let s = between(&mut rng, 0, nodes as u64 - 1);
                        for _ in 0..between(&mut rng, 20, 40) {
                            bucket_edges.push((s, fresh, EdgeKind::Storm));
                            fresh += 1;
                        }
                    }
                }
            }
            for i in (1..bucket_edges.len()).rev() {
                let j = between(&mut rng, 0, i as u64) as usize;
                bucket_edges.swap(i, j);
            }
            for &(s, d, kind) in bucket_edges.iter().take(rows - out.len()) {
                out.src.push(s);
                out.dst.push(d);
                out.t.push(bucket);
                out.labels.push(u8::from(kind != EdgeKind::Background));
                out.kinds.push(kind);
            }
            bucket += 1;
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_appears_and_storms_use_fresh_ids() {
        let s = edge_stream(100_000, 3);
        for kind in [EdgeKind::Burst, EdgeKind::DenseSubgraph, EdgeKind::Storm] {
            assert!(s.kinds.contains(&kind), "{kind:?}");
        }
        let mut seen = std::collections::BTreeSet::new();
        for i in 0..s.len() {
            if s.kinds[i] == EdgeKind::Storm {
                assert!(s.dst[i] >= 1_000 && seen.insert(s.dst[i]));
            } else {
                assert!(s.src[i] < 1_000 && s.dst[i] < 1_000 && s.src[i] != s.dst[i]);
            }
            assert_eq!(s.labels[i] == 1, s.kinds[i] != EdgeKind::Background);
        }
        // No anomaly during the warm-up.
        assert!(s.t.iter().zip(&s.labels).all(|(&t, &l)| t >= 20 || l == 0));
        assert_ne!(edge_stream(1_000, 4).src, s.src[..1_000]);
    }
}
