//! GADGET SVM: a directed graph of linear one-class SVMs trained by SGD, where a node passes a row on to
//! its children only when its own score exceeds a threshold (Python onad's `GADGETSVM`, renamed
//! `GraphGatedOneClassSVM` by aberrant).

use std::cell::RefCell;

use onad_core::{Detector, DetectorParams, ParamDoc, ParamError, SchemaRef};
use serde::{Deserialize, Serialize};

use crate::registry::{Describe, finite_score};

/// Hyperparameters of [`GADGETSVM`], with onad 0.3.0's names and defaults.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GADGETSVMParams {
    /// Adjacency list: `graph[i]` lists the children of node `i`; nodes are numbered `0..n`. `None` is
    /// onad's default chain `{0: [1], 1: [2], 2: []}`, written `[[1], [2], []]`. A child number past the
    /// end of the list is a node without children.
    pub graph: Option<Vec<Vec<usize>>>,
    /// A node's children are visited only when its score `rho - w.x` exceeds this (default 0.0).
    pub threshold: f64,
    /// SGD step size of every node (default 0.01).
    pub learning_rate: f64,
    /// The one-class SVM's `nu` (default 0.5): the offset `rho` grows by `learning_rate * nu` on a row
    /// inside the margin and shrinks by `learning_rate * (1 - nu)` on one outside.
    pub nu: f64,
    /// L2 weight decay per step (default 0.01).
    pub lambda_reg: f64,
}

impl Default for GADGETSVMParams {
    fn default() -> Self {
        GADGETSVMParams { graph: None, threshold: 0.0, learning_rate: 0.01, nu: 0.5, lambda_reg: 0.01 }
    }
}

/// A graph of linear one-class SVMs gated by their scores: onad's heuristic (no reference; aberrant
/// says it is unrelated to the published GADGET).
///
/// Every node `n` holds a weight vector `w_n` (zeros at first) and an offset `rho_n` (0.0 at first); its
/// score is `s_n(x) = rho_n - w_n . x`. Learning a row starts at the roots (the nodes no edge points to;
/// node 0 when every node has a parent) and visits each reachable node once:
///
/// - if `rho_n - w_n . x > 0`: `w_n <- w_n + lr (x - lambda_reg w_n)`, `rho_n <- rho_n + lr (nu - 1)`;
/// - else: `w_n <- w_n - (lr lambda_reg) w_n`, `rho_n <- rho_n + lr nu`;
///
/// then the children of `n` are visited if the updated `s_n(x) > threshold`. Scoring walks the graph the
/// same way without updating and returns `max(0, max over visited nodes of s_n(x))`.
///
/// Input scale: each node separates the data from the origin with a hyperplane and no kernel, so the
/// score depends on where the data sit relative to the origin, and a feature with a wide range dominates
/// `w . x`. Raw input works (the defaults are onad's); centring or scaling changes what is found.
///
/// Cost: O(v d) per row for `v` visited nodes (at most the node count) and `d` features; memory
/// `nodes * (d + 1)` numbers plus the graph. No allocation per row (the traversal's visited marks and
/// stack live in a per-thread scratch).
///
/// Missing values: a row with a missing or infinite value is not learned (one such row would make every
/// weight it reaches NaN forever). When scoring, a missing feature is left out of `w . x`; infinite values
/// give the largest finite score of their sign (the final score is `max(0, ..)`, so never below 0).
///
/// Deviations from onad 0.3.0: node identifiers are the positions of an adjacency list instead of the keys
/// of a dict (the same graphs, numbered `0..n`); the order of the breadth-first traversal does not matter
/// (a node's update depends only on the row and on whether it is reached, both kept); an empty graph is
/// refused when the model is built (onad scores 0.0 for ever); onad learns NaN rows and then scores NaN.
///
/// ```
/// use onad_core::{Detector, DetectorParams, Schema};
/// use onad_models::GADGETSVMParams;
/// let mut m = GADGETSVMParams::default().build(&Schema::shared(["x", "y"]).unwrap()).unwrap();
/// assert_eq!(m.score_one(&[1.0, 1.0]), 0.0); // nothing learned yet
/// for i in 0..2000 {
///     let t = (i % 10) as f64 * 0.01;
///     m.learn_one(&[1.0 + t, 1.0 - t]); // points near (1, 1)
/// }
/// let near = m.score_one(&[1.0, 1.0]);
/// let far = m.score_one(&[-3.0, -3.0]);
/// assert!(far > near + 1.0, "{far} vs {near}");
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "GadgetState")]
#[allow(clippy::upper_case_acronyms)] // the Python class name, which the registry reports
pub struct GADGETSVM {
    threshold: f64,
    learning_rate: f64,
    nu: f64,
    lambda_reg: f64,
    /// Features per row.
    d: usize,
    /// `children[n]`: the children of node `n`.
    children: Vec<Vec<u32>>,
    /// Nodes the traversal starts from.
    roots: Vec<u32>,
    /// Node `n`'s weights are `w[n * d..(n + 1) * d]`.
    w: Vec<f64>,
    /// Node `n`'s offset.
    rho: Vec<f64>,
}

/// The serialized form, checked when decoded.
#[derive(Deserialize)]
struct GadgetState {
    threshold: f64,
    learning_rate: f64,
    nu: f64,
    lambda_reg: f64,
    d: usize,
    children: Vec<Vec<u32>>,
    roots: Vec<u32>,
    w: Vec<f64>,
    rho: Vec<f64>,
}

impl TryFrom<GadgetState> for GADGETSVM {
    type Error = String;
    fn try_from(s: GadgetState) -> Result<Self, String> {
        let n = s.children.len();
        if n == 0 || s.d == 0 {
            return Err("gadget_svm state: no node or no feature".into());
        }
        if s.rho.len() != n || Some(s.w.len()) != n.checked_mul(s.d) {
            return Err(format!("gadget_svm state: {n} nodes of {} features need as many weights and offsets", s.d));
        }
        if s.roots.is_empty() || s.roots.iter().chain(s.children.iter().flatten()).any(|&c| c as usize >= n) {
            return Err("gadget_svm state: a root or child is not a node".into());
        }
        Ok(GADGETSVM {
            threshold: s.threshold,
            learning_rate: s.learning_rate,
            nu: s.nu,
            lambda_reg: s.lambda_reg,
            d: s.d,
            children: s.children,
            roots: s.roots,
            w: s.w,
            rho: s.rho,
        })
    }
}

fn finite_param(name: &'static str, v: f64) -> Result<f64, ParamError> {
    if v.is_finite() { Ok(v) } else { Err(ParamError::invalid(name, format!("must be finite, got {v}"))) }
}

impl DetectorParams for GADGETSVMParams {
    type Model = GADGETSVM;
    fn build(&self, schema: &SchemaRef) -> Result<GADGETSVM, ParamError> {
        let threshold = finite_param("threshold", self.threshold)?;
        let learning_rate = finite_param("learning_rate", self.learning_rate)?;
        if learning_rate <= 0.0 {
            return Err(ParamError::invalid("learning_rate", format!("must be > 0, got {learning_rate}")));
        }
        let nu = finite_param("nu", self.nu)?;
        if !(0.0..=1.0).contains(&nu) {
            return Err(ParamError::invalid("nu", format!("must be in [0, 1], got {nu}")));
        }
        let lambda_reg = finite_param("lambda_reg", self.lambda_reg)?;
        if lambda_reg < 0.0 {
            return Err(ParamError::invalid("lambda_reg", format!("must be >= 0, got {lambda_reg}")));
        }
        let default = [vec![1], vec![2], vec![]];
        let graph: &[Vec<usize>] = self.graph.as_deref().unwrap_or(&default);
        const MAX_NODES: usize = 1 << 20;
        let n = graph.iter().flatten().map(|&c| c.saturating_add(1)).max().unwrap_or(0).max(graph.len());
        if n == 0 {
            return Err(ParamError::invalid("graph", "must have at least one node"));
        }
        if n > MAX_NODES {
            return Err(ParamError::invalid("graph", format!("at most {MAX_NODES} nodes, got {n}")));
        }
        if schema.is_empty() {
            return Err(ParamError::Schema("gadget_svm needs at least one feature".into()));
        }
        let mut children: Vec<Vec<u32>> = graph.iter().map(|c| c.iter().map(|&c| c as u32).collect()).collect();
        children.resize(n, Vec::new());
        let mut has_parent = vec![false; n];
        for &c in children.iter().flatten() {
            has_parent[c as usize] = true;
        }
        let mut roots: Vec<u32> = (0..n as u32).filter(|&i| !has_parent[i as usize]).collect();
        if roots.is_empty() {
            roots.push(0);
        }
        let d = schema.len();
        Ok(GADGETSVM {
            threshold,
            learning_rate,
            nu,
            lambda_reg,
            d,
            children,
            roots,
            w: vec![0.0; n * d],
            rho: vec![0.0; n],
        })
    }
}

/// Visited marks and the traversal stack, reused so that a row allocates nothing.
#[derive(Default)]
struct Scratch {
    visited: Vec<bool>,
    stack: Vec<u32>,
}

thread_local! {
    static SCRATCH: RefCell<Scratch> = RefCell::new(Scratch::default());
}

/// Visits every node reachable from `roots` through nodes for which `visit` returns true, once each.
fn traverse(children: &[Vec<u32>], roots: &[u32], scratch: &mut Scratch, mut visit: impl FnMut(usize) -> bool) {
    let Scratch { visited, stack } = scratch;
    visited.clear();
    visited.resize(children.len(), false);
    stack.clear();
    stack.extend(roots.iter().rev());
    while let Some(node) = stack.pop() {
        let node = node as usize;
        if std::mem::replace(&mut visited[node], true) {
            continue;
        }
        if visit(node) {
            stack.extend(children[node].iter().rev().filter(|&&c| !visited[c as usize]));
        }
    }
}

fn with_scratch<R>(f: impl FnOnce(&mut Scratch) -> R) -> R {
    SCRATCH.with(|cell| match cell.try_borrow_mut() {
        Ok(mut s) => f(&mut s),
        Err(_) => f(&mut Scratch::default()),
    })
}

/// `w . x` over the features of `x` that are not missing (a missing value counts as 0.0: a select, not a
/// branch, so the loop stays straight-line).
#[inline]
fn dot(w: &[f64], x: &[f64]) -> f64 {
    w.iter().zip(x).map(|(a, &b)| a * if b.is_nan() { 0.0 } else { b }).sum()
}

impl GADGETSVM {
    /// Number of nodes.
    pub fn n_nodes(&self) -> usize {
        self.rho.len()
    }

    /// Node `n`'s weights and offset.
    pub fn node(&self, n: usize) -> (&[f64], f64) {
        (&self.w[n * self.d..(n + 1) * self.d], self.rho[n])
    }
}

impl Detector for GADGETSVM {
    fn learn_one(&mut self, x: &[f64]) {
        if x.len() != self.d || x.iter().any(|v| !v.is_finite()) {
            return;
        }
        let GADGETSVM { threshold, learning_rate: lr, nu, lambda_reg, d, children, roots, w, rho } = self;
        let (threshold, lr, nu, lambda_reg, d) = (*threshold, *lr, *nu, *lambda_reg, *d);
        let decay = lr * lambda_reg;
        with_scratch(|scratch| {
            traverse(children, roots, scratch, |n| {
                let wn = &mut w[n * d..(n + 1) * d];
                let decision = dot(wn, x);
                if rho[n] - decision > 0.0 {
                    for (wj, &xj) in wn.iter_mut().zip(x) {
                        *wj += lr * (xj - lambda_reg * *wj);
                    }
                    rho[n] += lr * (nu - 1.0);
                } else {
                    for wj in wn.iter_mut() {
                        *wj -= decay * *wj;
                    }
                    rho[n] += lr * nu;
                }
                rho[n] - dot(wn, x) > threshold
            })
        });
    }

    fn score_one(&self, x: &[f64]) -> f64 {
        if x.len() != self.d {
            return 0.0;
        }
        let d = self.d;
        let mut best = 0.0f64;
        with_scratch(|scratch| {
            traverse(&self.children, &self.roots, scratch, |n| {
                let s = finite_score(self.rho[n] - dot(&self.w[n * d..(n + 1) * d], x));
                best = best.max(s);
                s > self.threshold
            })
        });
        best
    }
}

impl Describe for GADGETSVMParams {
    const SUMMARY: &'static str =
        "graph of linear SGD one-class SVMs, children visited when a node's score passes threshold";
    const PARAMS: &'static [ParamDoc] = &[
        ParamDoc {
            name: "graph",
            ty: "list of lists of node numbers",
            required: false,
            help: "children of node i at position i; default [[1], [2], []] (onad's chain)",
        },
        ParamDoc {
            name: "threshold",
            ty: "float",
            required: false,
            help: "score above which children are visited (0.0)",
        },
        ParamDoc { name: "learning_rate", ty: "float > 0", required: false, help: "SGD step size (0.01)" },
        ParamDoc { name: "nu", ty: "float in [0, 1]", required: false, help: "one-class SVM nu (0.5)" },
        ParamDoc { name: "lambda_reg", ty: "float >= 0", required: false, help: "L2 weight decay (0.01)" },
    ];
    fn example() -> Self {
        GADGETSVMParams::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use onad_core::Schema;

    fn build(p: GADGETSVMParams, d: usize) -> GADGETSVM {
        p.build(&Schema::numbered("f", d)).unwrap()
    }

    /// onad's algorithm written out for one node, for comparison.
    fn reference_node(w: &mut [f64], rho: &mut f64, x: &[f64], p: &GADGETSVMParams) -> f64 {
        let dec: f64 = w.iter().zip(x).map(|(a, b)| a * b).sum();
        if *rho - dec > 0.0 {
            for (wj, xj) in w.iter_mut().zip(x) {
                *wj += p.learning_rate * (xj - p.lambda_reg * *wj);
            }
            *rho += p.learning_rate * (p.nu - 1.0);
        } else {
            for wj in w.iter_mut() {
                *wj -= p.learning_rate * p.lambda_reg * *wj;
            }
            *rho += p.learning_rate * p.nu;
        }
        *rho - w.iter().zip(x).map(|(a, b)| a * b).sum::<f64>()
    }

    #[test]
    fn chain_matches_a_written_out_breadth_first_walk() {
        let p = GADGETSVMParams::default();
        let mut m = build(p.clone(), 3);
        let mut ws = vec![vec![0.0; 3]; 3];
        let mut rhos = [0.0; 3];
        let mut reached_last = 0;
        for i in 0..500 {
            let x = [((i * 37) % 11) as f64 - 3.0, ((i * 13) % 7) as f64, 0.5 * (i % 5) as f64 - 1.0];
            // Scoring: node 0, then 1 if node 0 passes, then 2.
            let mut want_score = f64::NEG_INFINITY;
            for n in 0..3 {
                let s = rhos[n] - ws[n].iter().zip(&x).map(|(a, b)| a * b).sum::<f64>();
                want_score = want_score.max(s);
                if s <= p.threshold {
                    break;
                }
            }
            assert_eq!(m.score_one(&x), want_score.max(0.0), "row {i}");
            m.learn_one(&x);
            for n in 0..3 {
                let s = reference_node(&mut ws[n], &mut rhos[n], &x, &p);
                if n == 2 {
                    reached_last += 1;
                }
                if s <= p.threshold {
                    break;
                }
            }
            for n in 0..3 {
                assert_eq!(m.node(n), (&ws[n][..], rhos[n]), "row {i} node {n}");
            }
        }
        assert!(reached_last > 0, "the walk never reached the last node");
    }

    #[test]
    fn roots_cycles_and_unreached_nodes() {
        // Node 3 is the only node without a parent, so the cycle 0 -> 1 -> 0 is never reached (as onad).
        let p = GADGETSVMParams { graph: Some(vec![vec![1], vec![0], vec![], vec![2]]), ..Default::default() };
        let mut m = build(p, 2);
        assert_eq!(m.roots, vec![3]);
        m.learn_one(&[-1.0, -1.0]);
        assert_eq!(m.node(0), (&[0.0, 0.0][..], 0.0));
        assert_ne!(m.node(3).1, 0.0);
        // Every node has a parent: node 0 starts.
        let p = GADGETSVMParams { graph: Some(vec![vec![1], vec![0]]), ..Default::default() };
        let mut m = build(p, 1);
        assert_eq!(m.roots, vec![0]);
        for _ in 0..10 {
            m.learn_one(&[-1.0]);
        }
        assert!(m.score_one(&[5.0]).is_finite());
        // A child past the end of the list is a node.
        let m = build(GADGETSVMParams { graph: Some(vec![vec![4]]), ..Default::default() }, 1);
        assert_eq!(m.n_nodes(), 5);
    }

    #[test]
    fn parameter_errors_name_the_parameter() {
        let schema = Schema::numbered("f", 2);
        for (p, name) in [
            (GADGETSVMParams { learning_rate: 0.0, ..Default::default() }, "learning_rate"),
            (GADGETSVMParams { nu: 1.5, ..Default::default() }, "nu"),
            (GADGETSVMParams { lambda_reg: -1.0, ..Default::default() }, "lambda_reg"),
            (GADGETSVMParams { threshold: f64::NAN, ..Default::default() }, "threshold"),
            (GADGETSVMParams { graph: Some(vec![]), ..Default::default() }, "graph"),
        ] {
            let e = p.build(&schema).unwrap_err().to_string();
            assert!(e.contains(name), "{e}");
        }
    }

    #[test]
    fn bad_rows_are_not_learned_and_scores_stay_finite() {
        let mut m = build(GADGETSVMParams::default(), 2);
        for i in 0..100 {
            m.learn_one(&[i as f64, 1.0]);
        }
        let before = m.clone();
        m.learn_one(&[f64::NAN, 1.0]);
        m.learn_one(&[f64::INFINITY, 1.0]);
        assert_eq!(m, before);
        for x in [[f64::NAN, 1.0], [f64::INFINITY, 0.0], [f64::NEG_INFINITY, f64::NAN]] {
            let s = m.score_one(&x);
            assert!(s.is_finite() && s >= 0.0, "{x:?}: {s}");
        }
    }

    #[test]
    fn damaged_state_is_refused() {
        let mut m = build(GADGETSVMParams::default(), 2);
        m.learn_one(&[1.0, 2.0]);
        let json = serde_json::to_string(&m).unwrap();
        let back: GADGETSVM = serde_json::from_str(&json).unwrap();
        assert_eq!(back, m);
        for (from, to) in [("\"d\":2", "\"d\":3"), ("\"roots\":[0]", "\"roots\":[7]"), ("[[1],[2],[]]", "[[1],[9],[]]")]
        {
            assert!(json.contains(from), "{json}");
            let bad = json.replace(from, to);
            assert!(serde_json::from_str::<GADGETSVM>(&bad).is_err(), "{bad}");
        }
    }
}
