//! IncrementalPCA: an online estimate of the top principal directions (of the uncentred second moment),
//! updated one row at a time, projecting rows onto them.
//!
//! The update is the candid covariance-free incremental PCA of Python onad (after R's `onlinePCA::incRpca`;
//! Brand 2002, Arora et al. 2012, Cardot & Degras 2015): with weight `f` (`1/n` or the forgetting factor),
//! `λ <- (1 - f) λ`, `x <- sqrt(f) x`, project `x̂ = Uᵀx`, residual `r = x - U x̂`; when `|r| >= tol` the basis
//! grows by `r / |r|` (with eigenvalue 0 and coefficient `|r|`); then `diag(λ) + x̂ x̂ᵀ` is diagonalised (Jacobi, in place) and
//! the top `n_components` directions kept. The first `n0` rows are buffered and start the basis with an SVD.

use onad_core::{ParamDoc, ParamError, Schema, SchemaRef, Transformer, TransformerParams};
use serde::{Deserialize, Serialize};

use crate::registry::Describe;

/// Hyperparameters of [`IncrementalPCA`] (Python onad names and defaults).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IncrementalPCAParams {
    /// Number of components kept (required), `1 <= n_components <= min(d, n0)`.
    pub n_components: Option<usize>,
    /// Rows buffered before the first estimate.
    pub n0: usize,
    /// The input features, in order; default: every feature.
    pub keys: Option<Vec<String>>,
    /// Smallest residual norm that adds a direction.
    pub tol: f64,
    /// Weight of each new row, in (0, 1); `None` weighs row `n` by `1/n` (a plain average).
    pub forgetting_factor: Option<f64>,
}

impl Default for IncrementalPCAParams {
    fn default() -> Self {
        IncrementalPCAParams { n_components: None, n0: 50, keys: None, tol: 1e-7, forgetting_factor: None }
    }
}

/// Online PCA: after warm-up, `transform_one` gives `Uᵀx` (no centring) as `component_0..`; during the
/// first `n0` rows it gives zeros, as onad does.
///
/// Deviations from onad 0.3.0 (documented, tested): the small eigenproblem is solved as symmetric, by
/// Jacobi rotations (onad calls the general `eig`, which may return complex values); each direction's sign is kept continuous
/// from one update to the next (onad's signs are whatever LAPACK returns, so a component can flip sign
/// between consecutive rows, which a downstream detector sees as a jump; compare magnitudes with onad);
/// `n0 >= n_components` is required (as in aberrant); rows with a missing value are not learned.
///
/// ```
/// use onad_core::{Schema, Transformer, TransformerParams};
/// use onad_models::IncrementalPCAParams;
/// let schema = Schema::shared(["a", "b"]).unwrap();
/// let params = IncrementalPCAParams { n_components: Some(1), n0: 10, ..Default::default() };
/// let mut pca = params.build(&schema).unwrap();
/// for i in 0..200 {
///     let t = (i as f64 * 0.7).sin();
///     pca.learn_one(&[t, 2.0 * t]); // all variance along (1, 2)
/// }
/// let mut out = [0.0];
/// pca.transform_one(&[1.0, 2.0], &mut out);
/// assert!((out[0].abs() - 5f64.sqrt()).abs() < 1e-6);
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IncrementalPCA {
    columns: Vec<usize>,
    k: usize,
    n0: usize,
    tol: f64,
    forgetting_factor: Option<f64>,
    output: SchemaRef,
    /// Warm-up rows, row-major.
    buffer: Vec<f64>,
    n_seen: u64,
    /// Eigenvalues, descending (empty during warm-up).
    values: Vec<f64>,
    /// Directions, d x m column-major (column j = direction j).
    vectors: Vec<f64>,
    /// Reused buffers of the update (not state: not serialized, ignored by equality).
    #[serde(skip)]
    scratch: Scratch,
}

/// Buffers reused across updates so that learning does not allocate.
#[derive(Debug, Clone, Default)]
struct Scratch {
    point: Vec<f64>,
    coef: Vec<f64>,
    basis: Vec<f64>,
    small: Vec<f64>,
    eigvecs: Vec<f64>,
    order: Vec<usize>,
}

impl PartialEq for Scratch {
    fn eq(&self, _other: &Self) -> bool {
        true
    }
}

impl TransformerParams for IncrementalPCAParams {
    type Model = IncrementalPCA;
    fn build(&self, schema: &SchemaRef) -> Result<IncrementalPCA, ParamError> {
        let columns = schema.resolve_all("keys", self.keys.as_deref())?;
        let d = columns.len();
        let k = self.n_components.ok_or(ParamError::Missing("n_components"))?;
        if k == 0 || k > d {
            return Err(ParamError::invalid(
                "n_components",
                format!("must be between 1 and the {d} input features, got {k}"),
            ));
        }
        if self.n0 < k {
            return Err(ParamError::invalid("n0", format!("must be at least n_components ({k}), got {}", self.n0)));
        }
        if !(self.tol >= 0.0 && self.tol.is_finite()) {
            return Err(ParamError::invalid("tol", format!("must be finite and >= 0, got {}", self.tol)));
        }
        if let Some(f) = self.forgetting_factor
            && !(f > 0.0 && f < 1.0)
        {
            return Err(ParamError::invalid("forgetting_factor", format!("must be in (0, 1), got {f}")));
        }
        Ok(IncrementalPCA {
            columns,
            k,
            n0: self.n0,
            tol: self.tol,
            forgetting_factor: self.forgetting_factor,
            output: Schema::numbered("component_", k),
            buffer: Vec::with_capacity(self.n0 * d),
            n_seen: 0,
            values: Vec::new(),
            vectors: Vec::new(),
            scratch: Scratch::default(),
        })
    }
}

impl IncrementalPCA {
    fn dim(&self) -> usize {
        self.columns.len()
    }

    /// The current eigenvalues, largest first (empty during warm-up).
    pub fn eigenvalues(&self) -> &[f64] {
        &self.values
    }

    fn start(&mut self) {
        let d = self.dim();
        let n = self.buffer.len() / d;
        let x = nalgebra::DMatrix::from_row_slice(n, d, &self.buffer);
        let svd = x.svd(false, true);
        let Some(vt) = svd.v_t else { return };
        let scale = ((n.max(2) - 1) as f64).sqrt();
        let mut order: Vec<usize> = (0..svd.singular_values.len()).collect();
        order.sort_by(|&a, &b| svd.singular_values[b].total_cmp(&svd.singular_values[a]));
        order.truncate(self.k);
        self.values = order.iter().map(|&i| (svd.singular_values[i] / scale).powi(2)).collect();
        self.vectors = order.iter().flat_map(|&i| vt.row(i).iter().copied().collect::<Vec<_>>()).collect();
        self.buffer = Vec::new();
    }

    /// One online step with the projected point in `self.scratch.point`.
    fn update(&mut self) {
        let d = self.dim();
        let m = self.values.len();
        let f = match self.forgetting_factor {
            Some(f) => f,
            None => 1.0 / self.n_seen as f64,
        };
        let sf = f.sqrt();
        let Scratch { point, coef, basis, small, eigvecs, order } = &mut self.scratch;
        // Scaled point and its coordinates in the current basis; the residual goes into the basis buffer's
        // extra column.
        basis.clear();
        basis.extend_from_slice(&self.vectors);
        basis.extend(point.iter().map(|v| sf * v));
        let (current, residual) = basis.split_at_mut(m * d);
        coef.clear();
        coef.extend(current.chunks_exact(d).map(|u| dot(u, residual)));
        for (u, c) in current.chunks_exact(d).zip(coef.iter()) {
            for (r, ui) in residual.iter_mut().zip(u) {
                *r -= c * ui;
            }
        }
        let norm = dot(residual, residual).sqrt();
        let mut p = m;
        if norm >= self.tol && norm > 0.0 {
            residual.iter_mut().for_each(|r| *r /= norm);
            coef.push(norm);
            p += 1;
        }
        // diag((1 - f) λ, 0) + x̂ x̂ᵀ, diagonalised in place.
        small.clear();
        small.resize(p * p, 0.0);
        for i in 0..p {
            for j in 0..p {
                small[i * p + j] = coef[i] * coef[j];
            }
            if i < m {
                small[i * p + i] += (1.0 - f) * self.values[i];
            }
        }
        eigvecs.clear();
        eigvecs.resize(p * p, 0.0);
        jacobi_eigen(small, eigvecs, p);
        order.clear();
        order.extend(0..p);
        order.sort_by(|&a, &b| small[b * p + b].total_cmp(&small[a * p + a]));
        let keep = self.k.min(order.len());
        let old = std::mem::take(&mut self.vectors);
        self.vectors.resize(keep * d, 0.0);
        self.values.clear();
        for (new_j, &e) in order[..keep].iter().enumerate() {
            self.values.push(small[e * p + e]);
            let col = &mut self.vectors[new_j * d..(new_j + 1) * d];
            for (i, b) in basis.chunks_exact(d).take(p).enumerate() {
                let w = eigvecs[i * p + e];
                for (c, v) in col.iter_mut().zip(b) {
                    *c += w * v;
                }
            }
            // Keep the orientation of the direction this one continues.
            if new_j < m && dot(col, &old[new_j * d..(new_j + 1) * d]) < 0.0 {
                col.iter_mut().for_each(|c| *c = -*c);
            }
        }
    }
}

/// Cyclic Jacobi eigendecomposition of the symmetric `p x p` matrix `a` (row-major), in place: the diagonal
/// ends up holding the eigenvalues and the columns of `v` the eigenvectors. For the tiny matrices of the
/// update (n_components + 1 square) it is accurate to rounding and needs no allocation.
fn jacobi_eigen(a: &mut [f64], v: &mut [f64], p: usize) {
    v.fill(0.0);
    for i in 0..p {
        v[i * p + i] = 1.0;
    }
    for _sweep in 0..64 {
        let mut off = 0.0;
        let mut diag = 0.0;
        for i in 0..p {
            diag += a[i * p + i] * a[i * p + i];
            for j in i + 1..p {
                off += a[i * p + j] * a[i * p + j];
            }
        }
        if off <= 1e-34 * diag || off == 0.0 {
            return;
        }
        for i in 0..p {
            for j in i + 1..p {
                let aij = a[i * p + j];
                if aij == 0.0 {
                    continue;
                }
                let theta = (a[j * p + j] - a[i * p + i]) / (2.0 * aij);
                let t = theta.signum() / (theta.abs() + (theta * theta + 1.0).sqrt());
                let c = 1.0 / (t * t + 1.0).sqrt();
                let s = t * c;
                for k in 0..p {
                    let (aki, akj) = (a[k * p + i], a[k * p + j]);
                    a[k * p + i] = c * aki - s * akj;
                    a[k * p + j] = s * aki + c * akj;
                }
                for k in 0..p {
                    let (aik, ajk) = (a[i * p + k], a[j * p + k]);
                    a[i * p + k] = c * aik - s * ajk;
                    a[j * p + k] = s * aik + c * ajk;
                }
                for k in 0..p {
                    let (vki, vkj) = (v[k * p + i], v[k * p + j]);
                    v[k * p + i] = c * vki - s * vkj;
                    v[k * p + j] = s * vki + c * vkj;
                }
            }
        }
    }
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

impl Transformer for IncrementalPCA {
    fn learn_one(&mut self, x: &[f64]) {
        if self.columns.iter().any(|&c| !x[c].is_finite()) {
            return;
        }
        if self.values.is_empty() {
            self.buffer.extend(self.columns.iter().map(|&c| x[c]));
            self.n_seen += 1;
            if self.buffer.len() / self.dim() >= self.n0 {
                self.start();
            }
            return;
        }
        self.scratch.point.clear();
        self.scratch.point.extend(self.columns.iter().map(|&c| x[c]));
        self.update();
        self.n_seen += 1;
    }

    fn transform_one(&self, x: &[f64], out: &mut [f64]) {
        let d = self.dim();
        out.fill(0.0);
        for (o, u) in out.iter_mut().zip(self.vectors.chunks_exact(d)) {
            *o = u.iter().zip(&self.columns).map(|(w, &c)| w * x[c]).sum();
        }
    }

    fn output_schema(&self) -> &SchemaRef {
        &self.output
    }
}

impl Describe for IncrementalPCAParams {
    const REFERENCE: &'static str = "Arora, Cotter, Livescu & Srebro 2012, Stochastic optimization for PCA and PLS; Cardot & Degras 2018, Online Principal Component Analysis in High Dimension (R onlinePCA::incRpca)";
    const SUMMARY: &'static str = "online PCA (uncentred), projecting rows on the top n_components directions";
    const PARAMS: &'static [ParamDoc] = &[
        ParamDoc { name: "n_components", ty: "int in [1, min(d, n0)]", required: true, help: "components kept" },
        ParamDoc {
            name: "n0",
            ty: "int >= n_components",
            required: false,
            help: "rows buffered before the first estimate",
        },
        ParamDoc { name: "keys", ty: "[feature, ...]", required: false, help: "input features; default all" },
        ParamDoc {
            name: "tol",
            ty: "float >= 0",
            required: false,
            help: "smallest residual norm that adds a direction",
        },
        ParamDoc {
            name: "forgetting_factor",
            ty: "float in (0, 1)",
            required: false,
            help: "weight of each new row (default 1/n)",
        },
    ];
    fn example() -> Self {
        IncrementalPCAParams { n_components: Some(3), ..Default::default() }
    }
}
