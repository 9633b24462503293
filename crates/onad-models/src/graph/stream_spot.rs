//! StreamSpot-style graph-level detection: a signed count sketch of edge shingles per graph, online
//! k-means over the sketches, and least-recently-learned eviction of graphs.

use std::collections::BTreeMap;

use onad_core::{Detector, DetectorParams, ParamDoc, ParamError, SchemaRef};
use serde::{Deserialize, Serialize};

use super::{EdgeColumns, node_key, pair_key};
use crate::registry::Describe;
use crate::rng::mix64;

/// Hyperparameters of [`SignedGraphSketchDetector`] (aberrant's names and defaults).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SignedGraphSketchDetectorParams {
    /// The column naming the graph an edge belongs to.
    pub graph_key: String,
    /// The source node's column.
    pub source_key: String,
    /// The destination node's column.
    pub destination_key: String,
    /// An optional edge-type column, part of an edge's identity.
    pub edge_type_key: Option<String>,
    /// The time column (resolved, but as in aberrant it does not enter the score).
    pub time_key: Option<String>,
    /// Signed-count coordinates per graph sketch, `>= 1`.
    pub sketch_dim: usize,
    /// Consecutive edges of a graph in one shingle, `1..=64`.
    pub shingle_size: usize,
    /// Cluster centres of the online k-means, `1..=max_graphs`.
    pub num_clusters: usize,
    /// Graphs kept; the least recently learned is evicted beyond, `>= 1`.
    pub max_graphs: usize,
    /// Graphs kept before scoring starts, `1..=max_graphs`.
    pub warm_up_graphs: usize,
    /// Report `s / (1 + s)` instead of the raw score `s` in `[0, 2)`.
    pub normalize_score: bool,
    /// Seed of the shingle hash; `None` uses 0.
    pub seed: Option<u64>,
    /// Positive floor in the distance term `d / (1 + d + eps)`.
    pub eps: f64,
}

impl Default for SignedGraphSketchDetectorParams {
    fn default() -> Self {
        SignedGraphSketchDetectorParams {
            graph_key: "graph".into(),
            source_key: "src".into(),
            destination_key: "dst".into(),
            edge_type_key: None,
            time_key: Some("t".into()),
            sketch_dim: 1024,
            shingle_size: 2,
            num_clusters: 8,
            max_graphs: 4096,
            warm_up_graphs: 32,
            normalize_score: false,
            seed: None,
            eps: 1e-9,
        }
    }
}

/// The most sketch coordinates the graphs may hold together (`max_graphs * sketch_dim`).
const MAX_COORDINATES: usize = 1 << 28;

/// No slot (the ends of the recency list).
const NONE: u32 = u32::MAX;

/// Graph-level anomaly detection on a stream of edges, each tagged with its graph (a process, a session, a
/// time window), after StreamSpot (Manzoor, Milajerdi & Akoglu 2016, "Fast Memory-efficient Anomaly
/// Detection in Streaming Heterogeneous Graphs", KDD) in aberrant's adaptation: a graph is summarised
/// by a signed count sketch of its *shingles* (runs of `shingle_size` consecutive edges of that graph),
/// graphs are clustered online, and an edge scores by how far its graph, with the edge, lies from the
/// nearest cluster centre, plus how new its shingle is to the graph.
///
/// # Algorithm
/// - An edge's token is a 64-bit hash of `(source, destination[, edge type])`; a graph keeps its last
///   `shingle_size - 1` tokens, and an edge forms the shingle `(those tokens, its own)` once the graph has
///   them (with `shingle_size = 1` every edge is a shingle). The shingle's seeded hash picks a coordinate
///   `j` in `0..sketch_dim` and a sign `sigma`; learning adds `sigma` to coordinate `j` of the graph's
///   sketch `s` (integer counts).
/// - Clusters: the first `num_clusters` learned edges make their graph's sketch a centre (count 1); every
///   later one moves the centre nearest to its graph's sketch (Euclidean) by `(s - c) / count`, count
///   incremented — so a centre is the mean of the sketches assigned to it, and is stored as their integer
///   sum and count.
/// - Graphs: at most `max_graphs` are kept; learning an edge of a new graph when all are kept evicts the
///   least recently learned one.
/// - Score (candidate-inclusive, as learning would see it): with `s'` the graph's sketch plus the edge's
///   shingle (empty for a new graph), `d` the distance from `s'` to the nearest centre and novelty
///   `1 / (max(sigma * s_j, 0) + 1)` (1.0 for a graph not kept, 0.0 when the edge forms no shingle):
///   `d / (1 + d + eps) + novelty`, in `[0, 2)`. 0.0 until `warm_up_graphs` graphs are kept.
///
/// Distances are exact: `|s' - sum/n|^2 = (n^2 |s'|^2 - 2 n <s', sum> + |sum|^2) / n^2` with the
/// numerator in 128-bit integers (a rounded float path takes over only if it would overflow), from the
/// graph's kept `|s|^2` and dot products with the centres' sums, and one coordinate for the candidate:
/// no sketch is copied to score.
///
/// Rows whose graph, source, destination or edge type is missing or infinite are no edges: they score 0.0
/// and are not learned. Ids are read as in [`crate::graph`] (exact keys, text ids by the sources' id role).
///
/// # Cost
/// A graph keeps its dot product with every centre's sum, valid until another graph moves that centre
/// (a version per centre). An edge of the graph learned last (the usual case when a graph's edges
/// arrive together) costs `O(num_clusters)` to score and `O(num_clusters + nnz(s))` to learn (`nnz(s) <=
/// min(sketch_dim, shingles of the graph)`: the sketch is added to its centre's sum over the coordinates
/// it has touched); a dot product gone stale costs `O(nnz(s))` to recompute, so a stream interleaving
/// many graphs costs up to `O(num_clusters * nnz(s))` per edge. A graph is found in a B-tree of the kept
/// graphs (`O(log max_graphs)`); the recency list is O(1). Memory: per kept graph (at most `max_graphs`,
/// buffers reused after an eviction) `sketch_dim` counts, the touched coordinates and `num_clusters`
/// dot products; `num_clusters * sketch_dim` centre sums.
///
/// # Deviations
/// - From the paper: aberrant's adaptation, kept (signed count sketches and Euclidean online k-means
///   instead of StreamSpot's Hamming-distance sketches over typed shingles and its clustering with
///   thresholds).
/// - From aberrant 1.3.0: shingles hashed by the 64-bit mix of their tokens instead of blake2b over the ids'
///   bytes (other coordinates and signs for the same seed; `seed = None` means 0); centres as exact means
///   (sum and count) instead of floating-point `c += (s - c) / n` steps (the same values up to rounding).
///   Missing ids make a row no edge (aberrant raises), and the time column is not checked for order
///   (aberrant raises on a time going back; it never enters the score). `predict_threshold` /
///   `predict_one` are left out: onad's thresholds classify.
///
/// ```
/// use onad_core::{Detector, DetectorParams, Schema};
/// use onad_models::SignedGraphSketchDetectorParams;
/// let schema = Schema::shared(["graph", "src", "dst"]).unwrap();
/// let params = SignedGraphSketchDetectorParams { warm_up_graphs: 8, time_key: None, seed: Some(1),
///     ..Default::default() };
/// let mut model = params.build(&schema).unwrap();
/// // 40 sessions that all walk the same ring of 10 pages.
/// for g in 0..40u64 {
///     for k in 0..30u64 {
///         model.learn_one(&[g as f64, (k % 10) as f64, ((k + 1) % 10) as f64]);
///     }
/// }
/// let mut usual = 0.0;
/// let mut odd = 0.0;
/// for k in 0..30u64 {
///     usual = model.score_learn_one(&[100.0, (k % 10) as f64, ((k + 1) % 10) as f64]);
///     odd = model.score_learn_one(&[101.0, (50 + k * 7 % 13) as f64, (70 + k * 5 % 11) as f64]);
/// }
/// assert!(odd > usual + 0.5, "{odd} vs {usual}");
/// ```
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SignedGraphSketchDetector {
    graph: usize,
    source: usize,
    destination: usize,
    edge_type: Option<usize>,
    dim: usize,
    shingle: usize,
    k: usize,
    max_graphs: usize,
    warm_up: usize,
    normalize: bool,
    eps: f64,
    seed: u64,
    /// Graphs and centres (boxed: the registry's enum of models stays small).
    st: Box<State>,
}

/// What [`SignedGraphSketchDetector`] learns.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct State {
    /// Kept graphs by key.
    index: BTreeMap<u64, u32>,
    /// Graph states by slot (slots of evicted graphs are reused).
    graphs: Vec<GraphSketch>,
    free: Vec<u32>,
    /// The recency list over the slots: most recently learned first.
    newest: u32,
    oldest: u32,
    /// Centre sums, one `dim` row per cluster.
    sums: Vec<i64>,
    counts: Vec<u64>,
    /// `|sum|^2` per cluster.
    sum_norms: Vec<i128>,
    /// Changes of each cluster's sum so far (a graph's cached dot product is valid at one version).
    versions: Vec<u64>,
    clusters: usize,
    learned: u64,
}

/// One kept graph.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct GraphSketch {
    key: u64,
    sketch: Vec<i64>,
    /// Coordinates that have been non-zero (each once), and a bit per coordinate for them.
    touched: Vec<u32>,
    seen: Vec<u64>,
    /// `|sketch|^2`.
    norm: i128,
    /// `<sketch, sum_k>` per cluster, valid while `versions[k]` equals the cluster's version.
    dots: Vec<i128>,
    versions: Vec<u64>,
    /// The last `shingle_size - 1` tokens, a ring from `head`.
    tail: Vec<u64>,
    tail_len: usize,
    head: usize,
    prev: u32,
    next: u32,
}

/// An edge as the model reads it.
#[derive(Clone, Copy)]
struct GraphEdge {
    graph: u64,
    token: u64,
}

impl DetectorParams for SignedGraphSketchDetectorParams {
    type Model = SignedGraphSketchDetector;
    fn build(&self, schema: &SchemaRef) -> Result<SignedGraphSketchDetector, ParamError> {
        for (name, v) in [
            ("sketch_dim", self.sketch_dim),
            ("num_clusters", self.num_clusters),
            ("max_graphs", self.max_graphs),
            ("warm_up_graphs", self.warm_up_graphs),
        ] {
            if v == 0 {
                return Err(ParamError::invalid(name, "must be at least 1, got 0"));
            }
        }
        if !(1..=64).contains(&self.shingle_size) {
            return Err(ParamError::invalid("shingle_size", format!("must be in 1..=64, got {}", self.shingle_size)));
        }
        if self.max_graphs.checked_mul(self.sketch_dim).is_none_or(|n| n > MAX_COORDINATES)
            || self.max_graphs >= NONE as usize
        {
            return Err(ParamError::invalid(
                "max_graphs",
                format!("max_graphs * sketch_dim must be at most 2^28, got {} * {}", self.max_graphs, self.sketch_dim),
            ));
        }
        if self.num_clusters > self.max_graphs {
            return Err(ParamError::invalid(
                "num_clusters",
                format!("must be at most max_graphs = {}, got {}", self.max_graphs, self.num_clusters),
            ));
        }
        if self.warm_up_graphs > self.max_graphs {
            return Err(ParamError::invalid(
                "warm_up_graphs",
                format!("must be at most max_graphs = {}, got {}", self.max_graphs, self.warm_up_graphs),
            ));
        }
        if !(self.eps > 0.0 && self.eps.is_finite()) {
            return Err(ParamError::invalid("eps", format!("must be a positive number, got {}", self.eps)));
        }
        let edges = EdgeColumns::resolve(schema, &self.source_key, &self.destination_key, self.time_key.as_deref())?;
        let _ = edges;
        let source = schema.resolve("source_key", &self.source_key)?;
        let destination = schema.resolve("destination_key", &self.destination_key)?;
        let graph = schema.resolve("graph_key", &self.graph_key)?;
        let time = self.time_key.as_deref().map(|t| schema.resolve("time_key", t)).transpose()?;
        if [Some(source), Some(destination), time].contains(&Some(graph)) {
            return Err(ParamError::invalid("graph_key", "must name another column than the edge's columns"));
        }
        let edge_type = self.edge_type_key.as_deref().map(|t| schema.resolve("edge_type_key", t)).transpose()?;
        if let Some(e) = edge_type
            && [Some(source), Some(destination), time, Some(graph)].contains(&Some(e))
        {
            return Err(ParamError::invalid("edge_type_key", "must name another column than the other keys"));
        }
        Ok(SignedGraphSketchDetector {
            graph,
            source,
            destination,
            edge_type,
            dim: self.sketch_dim,
            shingle: self.shingle_size,
            k: self.num_clusters,
            max_graphs: self.max_graphs,
            warm_up: self.warm_up_graphs,
            normalize: self.normalize_score,
            eps: self.eps,
            seed: self.seed.unwrap_or(0),
            st: Box::new(State {
                index: BTreeMap::new(),
                graphs: Vec::new(),
                free: Vec::new(),
                newest: NONE,
                oldest: NONE,
                sums: vec![0; self.num_clusters * self.sketch_dim],
                counts: vec![0; self.num_clusters],
                sum_norms: vec![0; self.num_clusters],
                versions: vec![0; self.num_clusters],
                clusters: 0,
                learned: 0,
            }),
        })
    }
}

/// A coordinate's change: which one and its sign.
#[derive(Clone, Copy)]
struct Change {
    at: usize,
    sign: i64,
}

impl SignedGraphSketchDetector {
    /// Graphs kept now.
    pub fn active_graphs(&self) -> usize {
        self.st.index.len()
    }

    fn edge(&self, x: &[f64]) -> Option<GraphEdge> {
        let graph = node_key(x[self.graph])?;
        let src = node_key(x[self.source])?;
        let dst = node_key(x[self.destination])?;
        let mut token = pair_key(src, dst);
        if let Some(e) = self.edge_type {
            token = mix64(token ^ mix64(node_key(x[e])? ^ 0x7970_6500));
        }
        Some(GraphEdge { graph, token })
    }

    /// The coordinate and sign of the shingle `tail + token`, or `None` while the tail is short.
    fn shingle_change(&self, g: Option<&GraphSketch>, token: u64) -> Option<Change> {
        let mut h = mix64(self.seed ^ 0x0053_4849_4e47_4c45);
        if self.shingle > 1 {
            let g = g?;
            if g.tail_len < self.shingle - 1 {
                return None;
            }
            for i in 0..g.tail_len {
                h = mix64(h ^ g.tail[(g.head + i) % g.tail.len()]);
            }
        }
        h = mix64(h ^ token);
        Some(Change { at: (h % self.dim as u64) as usize, sign: if h >> 63 == 0 { 1 } else { -1 } })
    }

    /// The squared distance from `sketch` (with `change`) to each centre, the nearest first found kept.
    fn nearest(&self, g: Option<&GraphSketch>, change: Option<Change>) -> Option<(usize, f64)> {
        if self.st.clusters == 0 {
            return None;
        }
        let mut norm: i128 = g.map_or(0, |g| g.norm);
        if let Some(c) = change {
            let s = g.map_or(0, |g| g.sketch[c.at]);
            norm += 2 * i128::from(c.sign) * i128::from(s) + 1;
        }
        let mut best: Option<(usize, f64)> = None;
        for k in 0..self.st.clusters {
            let sum = &self.st.sums[k * self.dim..(k + 1) * self.dim];
            let mut dot: i128 = g
                .map_or(0, |g| if g.versions[k] == self.st.versions[k] { g.dots[k] } else { dot_over_touched(g, sum) });
            if let Some(c) = change {
                dot += i128::from(c.sign) * i128::from(sum[c.at]);
            }
            let d2 = distance2(norm, dot, self.st.sum_norms[k], self.st.counts[k]);
            if best.is_none_or(|(_, b)| d2 < b) {
                best = Some((k, d2));
            }
        }
        best
    }

    fn unlink(&mut self, slot: u32) {
        let (prev, next) = (self.st.graphs[slot as usize].prev, self.st.graphs[slot as usize].next);
        if prev == NONE {
            self.st.newest = next
        } else {
            self.st.graphs[prev as usize].next = next
        }
        if next == NONE { self.st.oldest = prev } else { self.st.graphs[next as usize].prev = prev }
    }

    fn push_newest(&mut self, slot: u32) {
        let old = self.st.newest;
        {
            let g = &mut self.st.graphs[slot as usize];
            g.prev = NONE;
            g.next = old;
        }
        if old == NONE {
            self.st.oldest = slot
        } else {
            self.st.graphs[old as usize].prev = slot
        }
        self.st.newest = slot;
    }

    /// The slot of a new graph: a free one (its buffers cleared) or a new one.
    fn new_slot(&mut self, key: u64) -> u32 {
        if let Some(slot) = self.st.free.pop() {
            let g = &mut self.st.graphs[slot as usize];
            for &i in &g.touched {
                g.sketch[i as usize] = 0;
            }
            g.seen.fill(0);
            g.touched.clear();
            g.norm = 0;
            g.dots.fill(0);
            g.versions.copy_from_slice(&self.st.versions);
            g.tail_len = 0;
            g.head = 0;
            g.key = key;
            slot
        } else {
            self.st.graphs.push(GraphSketch {
                key,
                sketch: vec![0; self.dim],
                touched: Vec::new(),
                seen: vec![0; self.dim.div_ceil(64)],
                norm: 0,
                dots: vec![0; self.k],
                versions: self.st.versions.clone(),
                tail: vec![0; self.shingle - 1],
                tail_len: 0,
                head: 0,
                prev: NONE,
                next: NONE,
            });
            (self.st.graphs.len() - 1) as u32
        }
    }
}

/// `<sketch, sum>` over the coordinates the graph has touched.
fn dot_over_touched(g: &GraphSketch, sum: &[i64]) -> i128 {
    g.touched.iter().map(|&i| i128::from(g.sketch[i as usize]) * i128::from(sum[i as usize])).sum()
}

/// `|s - sum/n|^2` from `|s|^2`, `<s, sum>`, `|sum|^2` and `n >= 1`: exact in 128-bit integers, rounded
/// floats only where those would overflow.
fn distance2(norm: i128, dot: i128, sum_norm: i128, n: u64) -> f64 {
    let n = i128::from(n);
    let exact = n
        .checked_mul(n)
        .and_then(|nn| nn.checked_mul(norm))
        .and_then(|a| n.checked_mul(dot).and_then(|b| b.checked_mul(2)).and_then(|b| a.checked_sub(b)))
        .and_then(|ab| ab.checked_add(sum_norm));
    let nf = n as f64;
    match exact {
        Some(num) => (num.max(0) as f64) / (nf * nf),
        None => (norm as f64 - 2.0 * dot as f64 / nf + sum_norm as f64 / (nf * nf)).max(0.0),
    }
}

impl Detector for SignedGraphSketchDetector {
    fn learn_one(&mut self, x: &[f64]) {
        self.learn_scored(x, false);
    }

    fn score_learn_one(&mut self, x: &[f64]) -> f64 {
        self.learn_scored(x, true)
    }

    fn score_one(&self, x: &[f64]) -> f64 {
        if self.st.index.len() < self.warm_up || self.st.clusters == 0 {
            return 0.0;
        }
        let Some(edge) = self.edge(x) else { return 0.0 };
        let g = self.st.index.get(&edge.graph).map(|&slot| &self.st.graphs[slot as usize]);
        let change = self.shingle_change(g, edge.token);
        let novelty = match (change, g) {
            (None, _) => 0.0,
            (Some(_), None) => 1.0,
            (Some(c), Some(g)) => novelty(g, c),
        };
        self.finish(self.nearest(g, change).map_or(0.0, |(_, d2)| d2), novelty)
    }
}

/// How new a shingle is to the graph: `1 / (max(sigma * s_j, 0) + 1)`.
fn novelty(g: &GraphSketch, c: Change) -> f64 {
    1.0 / ((g.sketch[c.at] * c.sign).max(0) as f64 + 1.0)
}

impl SignedGraphSketchDetector {
    /// The score from the squared distance and the novelty.
    fn finish(&self, d2: f64, novelty: f64) -> f64 {
        let d = d2.sqrt();
        let raw = d / (1.0 + d + self.eps) + novelty;
        let raw = if raw.is_finite() { raw } else { 0.0 };
        if self.normalize { raw / (1.0 + raw) } else { raw }
    }

    /// Learns the edge of a row, and when `score` is set returns `score_one`'s value for it, from the
    /// nearest centre learning finds anyway (a new graph's fresh sketch is the empty sketch `score_one`
    /// uses, and its novelty 1.0).
    fn learn_scored(&mut self, x: &[f64], score: bool) -> f64 {
        let warm = score && self.st.index.len() >= self.warm_up && self.st.clusters > 0;
        let Some(edge) = self.edge(x) else { return 0.0 };
        let slot = match self.st.index.get(&edge.graph) {
            Some(&slot) => {
                self.unlink(slot);
                slot
            }
            None => {
                let slot = self.new_slot(edge.graph);
                self.st.index.insert(edge.graph, slot);
                slot
            }
        };
        self.push_newest(slot);
        // Bring the graph's dot products up to date with the centres other graphs have moved.
        {
            let g = &mut self.st.graphs[slot as usize];
            for k in 0..self.st.clusters {
                if g.versions[k] != self.st.versions[k] {
                    g.dots[k] = dot_over_touched(g, &self.st.sums[k * self.dim..(k + 1) * self.dim]);
                    g.versions[k] = self.st.versions[k];
                }
            }
        }
        let change = self.shingle_change(Some(&self.st.graphs[slot as usize]), edge.token);
        let full = self.st.clusters == self.k;
        let near = if warm || full { self.nearest(Some(&self.st.graphs[slot as usize]), change) } else { None };
        let assign = if full { near } else { None };
        let out = if warm {
            let novelty = change.map_or(0.0, |c| novelty(&self.st.graphs[slot as usize], c));
            self.finish(near.map_or(0.0, |(_, d2)| d2), novelty)
        } else {
            0.0
        };
        let dim = self.dim;
        let g = &mut self.st.graphs[slot as usize];
        if let Some(c) = change {
            let (word, bit) = (c.at / 64, 1u64 << (c.at % 64));
            if g.seen[word] & bit == 0 {
                g.seen[word] |= bit;
                g.touched.push(c.at as u32);
            }
            let s = g.sketch[c.at];
            g.norm += 2 * i128::from(c.sign) * i128::from(s) + 1;
            g.sketch[c.at] = s.saturating_add(c.sign);
            for k in 0..self.st.clusters {
                g.dots[k] += i128::from(c.sign) * i128::from(self.st.sums[k * dim + c.at]);
            }
        }
        if !g.tail.is_empty() {
            if g.tail_len < g.tail.len() {
                let at = (g.head + g.tail_len) % g.tail.len();
                g.tail[at] = edge.token;
                g.tail_len += 1;
            } else {
                g.tail[g.head] = edge.token;
                g.head = (g.head + 1) % g.tail.len();
            }
        }
        // Clusters: a new centre from this sketch, or the sketch added to the nearest centre's sum.
        let g = &mut self.st.graphs[slot as usize];
        let k = match assign {
            None => {
                let k = self.st.clusters;
                self.st.clusters += 1;
                k
            }
            Some((k, _)) => k,
        };
        let sum = &mut self.st.sums[k * dim..(k + 1) * dim];
        // Up to date: refreshed above and moved with the change (a new centre's sum is still zero).
        let dot = g.dots[k];
        for &i in &g.touched {
            sum[i as usize] = sum[i as usize].saturating_add(g.sketch[i as usize]);
        }
        self.st.sum_norms[k] = self.st.sum_norms[k].saturating_add(dot.saturating_mul(2)).saturating_add(g.norm);
        self.st.counts[k] += 1;
        self.st.versions[k] += 1;
        g.versions[k] = self.st.versions[k];
        g.dots[k] = dot.saturating_add(g.norm);
        // Evict the least recently learned graph beyond the cap.
        if self.st.index.len() > self.max_graphs {
            let old = self.st.oldest;
            self.unlink(old);
            let key = self.st.graphs[old as usize].key;
            self.st.index.remove(&key);
            self.st.free.push(old);
        }
        self.st.learned += 1;
        out
    }
}

impl Describe for SignedGraphSketchDetectorParams {
    const REFERENCE: &'static str = "Manzoor, Milajerdi & Akoglu 2016, Fast Memory-efficient Anomaly Detection in Streaming Heterogeneous Graphs (KDD), as aberrant adapts it";
    fn ordered_column(&self) -> Option<&str> {
        self.time_key.as_deref()
    }
    const SUMMARY: &'static str =
        "StreamSpot-style: signed sketch of edge shingles per graph, online k-means, distance + novelty";
    const PARAMS: &'static [ParamDoc] = &[
        ParamDoc { name: "graph_key", ty: "string", required: false, help: "graph id column (default graph)" },
        ParamDoc { name: "source_key", ty: "string", required: false, help: "source node column (default src)" },
        ParamDoc {
            name: "destination_key",
            ty: "string",
            required: false,
            help: "destination node column (default dst)",
        },
        ParamDoc {
            name: "edge_type_key",
            ty: "string or none",
            required: false,
            help: "edge type column, part of an edge's identity (default none)",
        },
        ParamDoc {
            name: "time_key",
            ty: "string or none",
            required: false,
            help: "time column; resolved, not scored (default t)",
        },
        ParamDoc { name: "sketch_dim", ty: "int >= 1", required: false, help: "sketch coordinates (default 1024)" },
        ParamDoc {
            name: "shingle_size",
            ty: "int in 1..=64",
            required: false,
            help: "consecutive edges of a graph per shingle (default 2)",
        },
        ParamDoc {
            name: "num_clusters",
            ty: "int in 1..=max_graphs",
            required: false,
            help: "online k-means centres (default 8)",
        },
        ParamDoc {
            name: "max_graphs",
            ty: "int >= 1",
            required: false,
            help: "graphs kept, least recently learned evicted (default 4096)",
        },
        ParamDoc {
            name: "warm_up_graphs",
            ty: "int in 1..=max_graphs",
            required: false,
            help: "graphs kept before scoring; 0.0 before (default 32)",
        },
        ParamDoc { name: "normalize_score", ty: "bool", required: false, help: "report s / (1 + s) (default false)" },
        ParamDoc { name: "seed", ty: "int >= 0", required: false, help: "seed of the shingle hash (default 0)" },
        ParamDoc { name: "eps", ty: "float > 0", required: false, help: "floor in d / (1 + d + eps) (default 1e-9)" },
    ];
    fn example() -> Self {
        SignedGraphSketchDetectorParams {
            graph_key: "f4".into(),
            source_key: "f2".into(),
            destination_key: "f3".into(),
            edge_type_key: Some("f5".into()),
            time_key: Some("f1".into()),
            sketch_dim: 64,
            num_clusters: 4,
            max_graphs: 16,
            warm_up_graphs: 4,
            seed: Some(3),
            ..Default::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use onad_core::Schema;

    fn schema() -> SchemaRef {
        Schema::shared(["graph", "src", "dst", "t"]).unwrap()
    }

    fn build(p: SignedGraphSketchDetectorParams) -> SignedGraphSketchDetector {
        p.build(&schema()).unwrap()
    }

    #[test]
    fn parameter_errors_name_the_parameter() {
        type P = SignedGraphSketchDetectorParams;
        for (name, p) in [
            ("sketch_dim", P { sketch_dim: 0, ..Default::default() }),
            ("shingle_size", P { shingle_size: 0, ..Default::default() }),
            ("shingle_size", P { shingle_size: 65, ..Default::default() }),
            ("num_clusters", P { num_clusters: 0, ..Default::default() }),
            ("num_clusters", P { num_clusters: 9, max_graphs: 8, warm_up_graphs: 8, ..Default::default() }),
            ("max_graphs", P { max_graphs: 0, ..Default::default() }),
            ("max_graphs", P { max_graphs: 1 << 20, sketch_dim: 1 << 10, ..Default::default() }),
            ("warm_up_graphs", P { warm_up_graphs: 0, ..Default::default() }),
            ("warm_up_graphs", P { warm_up_graphs: 33, max_graphs: 32, ..Default::default() }),
            ("eps", P { eps: 0.0, ..Default::default() }),
            ("eps", P { eps: f64::NAN, ..Default::default() }),
            ("graph_key", P { graph_key: "g".into(), ..Default::default() }),
            ("graph_key", P { graph_key: "src".into(), ..Default::default() }),
            ("edge_type_key", P { edge_type_key: Some("dst".into()), ..Default::default() }),
            ("time_key", P { time_key: Some("time".into()), ..Default::default() }),
        ] {
            let e = p.build(&schema()).unwrap_err().to_string();
            assert!(e.contains(&format!("'{name}'")), "{name}: {e}");
        }
    }

    #[test]
    fn one_coordinate_scores_by_hand() {
        // One coordinate, one cluster, single-edge shingles: every edge adds sigma to the same coordinate.
        let mut m = build(SignedGraphSketchDetectorParams {
            sketch_dim: 1,
            shingle_size: 1,
            num_clusters: 1,
            warm_up_graphs: 1,
            seed: Some(0),
            ..Default::default()
        });
        let e = m.edge(&[0.0, 1.0, 2.0, 0.0]).unwrap();
        let sigma = m.shingle_change(None, e.token).unwrap().sign;
        assert_eq!(m.score_one(&[0.0, 1.0, 2.0, 0.0]), 0.0, "warm-up: no graph yet");
        // Graph 0 learns the edge twice: centre = mean of (sigma) and (2 sigma) = 1.5 sigma.
        m.learn_one(&[0.0, 1.0, 2.0, 0.0]);
        m.learn_one(&[0.0, 1.0, 2.0, 0.0]);
        // Candidate of graph 0: 3 sigma, distance 1.5; novelty 1 / (2 + 1).
        let want = 1.5 / (1.0 + 1.5 + 1e-9) + 1.0 / 3.0;
        assert_eq!(m.score_one(&[0.0, 1.0, 2.0, 0.0]), want);
        // A new graph: candidate sigma, distance 0.5, novelty 1.
        let want = 0.5 / (1.0 + 0.5 + 1e-9) + 1.0;
        assert_eq!(m.score_one(&[7.0, 1.0, 2.0, 0.0]), want);
        assert_eq!(sigma.abs(), 1);
    }

    #[test]
    fn warm_up_eviction_and_rows_that_are_no_edges() {
        let mut m = build(SignedGraphSketchDetectorParams {
            max_graphs: 3,
            warm_up_graphs: 2,
            num_clusters: 2,
            ..Default::default()
        });
        m.learn_one(&[0.0, 1.0, 2.0, 0.0]);
        assert_eq!(m.score_one(&[0.0, 2.0, 3.0, 0.0]), 0.0, "one graph kept, two needed");
        m.learn_one(&[1.0, 1.0, 2.0, 0.0]);
        assert!(m.score_one(&[0.0, 2.0, 3.0, 0.0]) > 0.0);
        m.learn_one(&[2.0, 1.0, 2.0, 0.0]);
        m.learn_one(&[0.0, 2.0, 3.0, 0.0]); // graph 0 is now the most recent
        m.learn_one(&[3.0, 1.0, 2.0, 0.0]); // evicts graph 1, the least recently learned
        assert_eq!(m.active_graphs(), 3);
        assert!(m.st.index.contains_key(&node_key(0.0).unwrap()) && !m.st.index.contains_key(&node_key(1.0).unwrap()));
        let learned = m.st.learned;
        m.learn_one(&[f64::NAN, 1.0, 2.0, 0.0]);
        m.learn_one(&[0.0, f64::INFINITY, 2.0, 0.0]);
        assert_eq!(m.st.learned, learned);
        assert_eq!(m.score_one(&[0.0, 1.0, f64::NAN, 0.0]), 0.0);
    }

    #[test]
    fn exact_distances_match_the_dense_computation() {
        let mut m = build(SignedGraphSketchDetectorParams {
            sketch_dim: 32,
            num_clusters: 3,
            max_graphs: 6,
            warm_up_graphs: 2,
            ..Default::default()
        });
        for i in 0..2_000u64 {
            let g = (mix64(i) % 9) as f64;
            let x = [g, (mix64(3 * i) % 7) as f64, (mix64(3 * i + 1) % 5) as f64, 0.0];
            m.learn_one(&x);
            if let Some(&slot) = m.st.index.get(&node_key(g).unwrap()) {
                let gs = &m.st.graphs[slot as usize];
                let (k, d2) = m.nearest(Some(gs), None).unwrap();
                let dense = |k: usize| -> f64 {
                    let n = m.st.counts[k] as f64;
                    (0..32).map(|j| (gs.sketch[j] as f64 - m.st.sums[k * 32 + j] as f64 / n).powi(2)).sum()
                };
                assert!((d2 - dense(k)).abs() <= 1e-9 * dense(k).max(1.0), "row {i}");
                assert!((0..m.st.clusters).all(|j| dense(j) >= dense(k) - 1e-9));
                assert_eq!(gs.norm, gs.sketch.iter().map(|&v| i128::from(v) * i128::from(v)).sum::<i128>());
            }
        }
        for k in 0..m.st.clusters {
            let s = &m.st.sums[k * 32..(k + 1) * 32];
            assert_eq!(m.st.sum_norms[k], s.iter().map(|&v| i128::from(v) * i128::from(v)).sum::<i128>());
        }
    }

    #[test]
    fn the_fused_score_is_score_one_before_learning() {
        // Interleaved graphs, evictions, warm-up and stale dot products: the score learning computes on
        // the way equals score_one's, to the bit.
        let p = SignedGraphSketchDetectorParams {
            sketch_dim: 16,
            num_clusters: 3,
            max_graphs: 5,
            warm_up_graphs: 3,
            shingle_size: 2,
            ..Default::default()
        };
        let (mut fused, mut split) = (build(p.clone()), build(p));
        for i in 0..3_000u64 {
            let x = [(mix64(i) % 8) as f64, (mix64(5 * i) % 6) as f64, (mix64(5 * i + 1) % 4) as f64, 0.0];
            let a = fused.score_learn_one(&x);
            let b = split.score_one(&x);
            split.learn_one(&x);
            assert_eq!(a.to_bits(), b.to_bits(), "row {i}");
        }
    }

    #[test]
    fn an_odd_graph_scores_above_the_usual_ones() {
        let mut m = build(SignedGraphSketchDetectorParams { warm_up_graphs: 8, seed: Some(4), ..Default::default() });
        // Usual graphs: walks over one ring of 20 nodes, from different starts.
        let walk = |g: u64, k: u64| [g as f64, ((g + k) % 20) as f64, ((g + k + 1) % 20) as f64, 0.0];
        let mut usual = Vec::new();
        for g in 0..60u64 {
            for k in 0..40u64 {
                let s = m.score_learn_one(&walk(g, k));
                if g >= 30 && k >= 5 {
                    usual.push(s);
                }
            }
        }
        usual.sort_by(f64::total_cmp);
        let p99 = usual[usual.len() * 99 / 100];
        // An odd graph: a star from one node to fresh ones.
        let mut odd = Vec::new();
        for k in 0..40u64 {
            odd.push(m.score_learn_one(&[500.0, 7.0, (100 + k) as f64, 0.0]));
        }
        assert!(odd[5..].iter().all(|&s| s > p99), "{odd:?} vs p99 {p99}");
    }
}
