//! The small neural-network kit of the deep detectors: dense (linear, ReLU, tanh) and LSTM layers over one
//! flat parameter vector, their backward passes, the reconstruction losses and the two optimizers (Adam and plain SGD)
//! with torch's update rules.
//!
//! Everything is plain loops over contiguous `f64` slices. Every sum is taken in one fixed order (a dot
//! product keeps four partial sums over the indices modulo 4 and adds them as `(s0 + s1) + (s2 + s3)`,
//! then the tail), and no expression is contracted into a fused multiply-add, so the results are the
//! same whether or not the compiler vectorizes a loop, and on every IEEE-754 host. The LSTM's `exp` and
//! `tanh`, and the tanh layer's `tanh`, come from the platform's math library, the one exception.

use rand_pcg::Pcg64;
use serde::{Deserialize, Serialize};

use crate::rng::unit;

/// What a layer computes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// `y = W x + b`, then `max(y, 0)` when `relu`.
    Linear { relu: bool },
    /// `y = tanh(W x + b)` (the hidden layer of kitnet's autoencoders); parameters laid out as `Linear`'s.
    Tanh,
    /// One step of an LSTM cell from the zero state (a sequence of length 1): the input, cell and output
    /// gates `i = sigmoid(.)`, `g = tanh(.)`, `o = sigmoid(.)` of `W x + b_ih + b_hh`, then
    /// `h = o * tanh(i * g)`. The forget gate multiplies the zero initial cell state and the recurrent
    /// weights the zero initial hidden state, so neither changes the output nor receives a gradient;
    /// they are not stored.
    Lstm,
}

/// One layer: its shape and where its parameters and its forward-pass values live.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Layer {
    pub kind: Kind,
    pub n_in: usize,
    pub n_out: usize,
    /// Offset of its parameters in the flat parameter vector.
    param_at: usize,
    /// Offset of its forward-pass values in the cache.
    cache_at: usize,
}

impl Layer {
    /// Parameters: a linear layer's weights (input-major: `W[k * n_out + j]` joins input `k` to output
    /// `j`) then its biases; an LSTM's weights (input-major over the `3 n_out` gate rows `i`, `g`, `o`),
    /// then `b_ih`, then `b_hh` (two bias vectors, as torch keeps them: both get the same gradient).
    fn n_params(&self) -> usize {
        match self.kind {
            Kind::Linear { .. } | Kind::Tanh => self.n_in * self.n_out + self.n_out,
            Kind::Lstm => 3 * self.n_out * self.n_in + 6 * self.n_out,
        }
    }

    /// Forward-pass values kept for the backward pass: a linear layer's output; an LSTM's gates
    /// `i, g, o`, `tanh(c)` and its output `h` (`5 n_out`).
    fn n_cache(&self) -> usize {
        match self.kind {
            Kind::Linear { .. } | Kind::Tanh => self.n_out,
            Kind::Lstm => 5 * self.n_out,
        }
    }

    /// Where the output starts within the layer's cache.
    fn out_at(&self) -> usize {
        match self.kind {
            Kind::Linear { .. } | Kind::Tanh => 0,
            Kind::Lstm => 4 * self.n_out,
        }
    }

    /// torch's default initialisation bound: `1 / sqrt(fan_in)` for a linear layer, `1 / sqrt(hidden)`
    /// for an LSTM.
    fn init_bound(&self) -> f64 {
        match self.kind {
            Kind::Linear { .. } | Kind::Tanh => 1.0 / (self.n_in as f64).sqrt(),
            Kind::Lstm => 1.0 / (self.n_out as f64).sqrt(),
        }
    }

    fn forward(&self, p: &[f64], x: &[f64], cache: &mut [f64]) {
        let (n_in, h) = (self.n_in, self.n_out);
        match self.kind {
            Kind::Linear { .. } | Kind::Tanh => {
                let (w, b) = p.split_at(n_in * h);
                let out = &mut cache[..h];
                out.copy_from_slice(b);
                for (&xk, wk) in x.iter().zip(w.chunks_exact(h)) {
                    axpy(out, xk, wk);
                }
                if self.kind == Kind::Tanh {
                    out.iter_mut().for_each(|v| *v = v.tanh());
                } else if self.kind == (Kind::Linear { relu: true }) {
                    // `v > 0` is false for NaN, so NaN becomes 0 as well (torch keeps it; only an
                    // overflow upstream can make one here).
                    out.iter_mut().for_each(|v| *v = if *v > 0.0 { *v } else { 0.0 });
                }
            }
            Kind::Lstm => {
                let (w, rest) = p.split_at(n_in * 3 * h);
                let (b_ih, b_hh) = rest.split_at(3 * h);
                let (gates, rest) = cache.split_at_mut(3 * h);
                let (tanh_c, out) = rest.split_at_mut(h);
                for ((g, &a), &b) in gates.iter_mut().zip(b_ih).zip(b_hh) {
                    *g = a + b;
                }
                for (&xk, wk) in x.iter().zip(w.chunks_exact(3 * h)) {
                    axpy(gates, xk, wk);
                }
                let (i, rest) = gates.split_at_mut(h);
                let (g, o) = rest.split_at_mut(h);
                for j in 0..h {
                    i[j] = sigmoid(i[j]);
                    g[j] = g[j].tanh();
                    o[j] = sigmoid(o[j]);
                    tanh_c[j] = (i[j] * g[j]).tanh();
                    out[j] = o[j] * tanh_c[j];
                }
            }
        }
    }

    /// Given `delta`, the gradient of the loss with respect to this layer's output (overwritten), writes
    /// the gradient of its parameters into `grad` and, when asked, that of its input into `d_in`.
    fn backward(
        &self,
        p: &[f64],
        x: &[f64],
        cache: &[f64],
        delta: &mut [f64],
        grad: &mut [f64],
        d_in: Option<&mut [f64]>,
    ) {
        let (n_in, h) = (self.n_in, self.n_out);
        match self.kind {
            Kind::Linear { .. } | Kind::Tanh => {
                if self.kind == (Kind::Linear { relu: true }) {
                    for (d, &y) in delta.iter_mut().zip(&cache[..h]) {
                        *d = if y > 0.0 { *d } else { 0.0 };
                    }
                } else if self.kind == Kind::Tanh {
                    for (d, &y) in delta.iter_mut().zip(&cache[..h]) {
                        *d *= 1.0 - y * y;
                    }
                }
                let (gw, gb) = grad.split_at_mut(n_in * h);
                gb.copy_from_slice(delta);
                for (&xk, gk) in x.iter().zip(gw.chunks_exact_mut(h)) {
                    scale_into(gk, xk, delta);
                }
                if let Some(d_in) = d_in {
                    let w = &p[..n_in * h];
                    for (dk, wk) in d_in.iter_mut().zip(w.chunks_exact(h)) {
                        *dk = dot(wk, delta);
                    }
                }
            }
            Kind::Lstm => {
                let (gates, rest) = cache.split_at(3 * h);
                let tanh_c = &rest[..h];
                let (i, rest) = gates.split_at(h);
                let (g, o) = rest.split_at(h);
                let (gw, rest) = grad.split_at_mut(n_in * 3 * h);
                let (g_bih, g_bhh) = rest.split_at_mut(3 * h);
                // Gradients of the gate pre-activations, written straight into b_ih's gradient.
                let (d_i, rest) = g_bih.split_at_mut(h);
                let (d_g, d_o) = rest.split_at_mut(h);
                for j in 0..h {
                    let dh = delta[j];
                    let t = tanh_c[j];
                    let dc = dh * o[j] * (1.0 - t * t);
                    d_i[j] = dc * g[j] * (i[j] * (1.0 - i[j]));
                    d_g[j] = dc * i[j] * (1.0 - g[j] * g[j]);
                    d_o[j] = dh * t * (o[j] * (1.0 - o[j]));
                }
                g_bhh.copy_from_slice(g_bih);
                let d_pre = &*g_bhh;
                for (&xk, gk) in x.iter().zip(gw.chunks_exact_mut(3 * h)) {
                    scale_into(gk, xk, d_pre);
                }
                if let Some(d_in) = d_in {
                    let w = &p[..n_in * 3 * h];
                    for (dk, wk) in d_in.iter_mut().zip(w.chunks_exact(3 * h)) {
                        *dk = dot(wk, d_pre);
                    }
                }
            }
        }
    }
}

#[inline]
fn sigmoid(v: f64) -> f64 {
    1.0 / (1.0 + (-v).exp())
}

/// `y += a x`, element by element.
#[inline]
fn axpy(y: &mut [f64], a: f64, x: &[f64]) {
    for (yj, &xj) in y.iter_mut().zip(x) {
        *yj += a * xj;
    }
}

/// `y = a x`, element by element.
#[inline]
fn scale_into(y: &mut [f64], a: f64, x: &[f64]) {
    for (yj, &xj) in y.iter_mut().zip(x) {
        *yj = a * xj;
    }
}

/// `a . b` in a fixed order: four partial sums over the indices modulo 4, `(s0 + s1) + (s2 + s3)`, then
/// the tail in order. Independent lanes, so a vectorized loop gives the same bits as a scalar one.
#[inline]
pub(crate) fn dot(a: &[f64], b: &[f64]) -> f64 {
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    let mut s = [0.0f64; 4];
    let (ca, cb) = (a.chunks_exact(4), b.chunks_exact(4));
    let (ta, tb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for l in 0..4 {
            s[l] += x[l] * y[l];
        }
    }
    let mut total = (s[0] + s[1]) + (s[2] + s[3]);
    for (x, y) in ta.iter().zip(tb) {
        total += x * y;
    }
    total
}

/// A feed-forward stack of layers over one flat parameter vector.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Net {
    layers: Vec<Layer>,
    n_params: usize,
    n_cache: usize,
    /// The widest layer input or output (the backward pass's delta buffers).
    width: usize,
}

impl Net {
    /// Chains `(kind, inputs, outputs)` layers; each layer's input count must be the previous one's
    /// output count.
    pub fn new(shape: &[(Kind, usize, usize)]) -> Net {
        let (mut layers, mut n_params, mut n_cache, mut width) = (Vec::new(), 0, 0, 0);
        for (l, &(kind, n_in, n_out)) in shape.iter().enumerate() {
            debug_assert!(l == 0 || shape[l - 1].2 == n_in);
            let layer = Layer { kind, n_in, n_out, param_at: n_params, cache_at: n_cache };
            n_params += layer.n_params();
            n_cache += layer.n_cache();
            width = width.max(n_in).max(n_out);
            layers.push(layer);
        }
        Net { layers, n_params, n_cache, width }
    }

    pub fn n_params(&self) -> usize {
        self.n_params
    }

    pub fn n_cache(&self) -> usize {
        self.n_cache
    }

    pub fn width(&self) -> usize {
        self.width
    }

    pub fn n_out(&self) -> usize {
        self.layers.last().map_or(0, |l| l.n_out)
    }

    /// torch's default initialisation: every parameter of a layer uniform in `[-bound, bound)` (see
    /// [`Layer::init_bound`]), drawn layer by layer in storage order from one generator.
    pub fn init(&self, params: &mut [f64], rng: &mut Pcg64) {
        for layer in &self.layers {
            let bound = layer.init_bound();
            for v in &mut params[layer.param_at..layer.param_at + layer.n_params()] {
                *v = bound * (2.0 * unit(rng) - 1.0);
            }
        }
    }

    /// Glorot (Xavier) uniform initialisation, as aberrant's autoencoders: every weight of every layer
    /// uniform in `[-bound, bound)` with the one `bound = sqrt(6 / (n_in + n_out))` of the first layer,
    /// biases zero, drawn layer by layer in storage order from one generator.
    pub fn init_glorot(&self, params: &mut [f64], rng: &mut Pcg64) {
        let Some(first) = self.layers.first() else { return };
        let bound = (6.0 / (first.n_in + first.n_out) as f64).sqrt();
        for layer in &self.layers {
            let p = &mut params[layer.param_at..layer.param_at + layer.n_params()];
            let (w, b) = p.split_at_mut(layer.n_in * layer.n_out);
            w.iter_mut().for_each(|v| *v = bound * (2.0 * unit(rng) - 1.0));
            b.iter_mut().for_each(|v| *v = 0.0);
        }
    }

    fn params_of<'p>(&self, l: usize, params: &'p [f64]) -> &'p [f64] {
        let layer = &self.layers[l];
        &params[layer.param_at..layer.param_at + layer.n_params()]
    }

    /// The output of layer `l` within the cache.
    fn output_of<'c>(&self, l: usize, cache: &'c [f64]) -> &'c [f64] {
        let layer = &self.layers[l];
        let at = layer.cache_at + layer.out_at();
        &cache[at..at + layer.n_out]
    }

    /// The net's output within a cache filled by [`forward`](Self::forward).
    pub fn output<'c>(&self, cache: &'c [f64]) -> &'c [f64] {
        self.output_of(self.layers.len() - 1, cache)
    }

    /// Runs `x` through the net, keeping every layer's values in `cache` (at least `n_cache` long);
    /// returns the output.
    pub fn forward<'c>(&self, params: &[f64], x: &[f64], cache: &'c mut [f64]) -> &'c [f64] {
        for (l, layer) in self.layers.iter().enumerate() {
            let (before, here) = cache.split_at_mut(layer.cache_at);
            let input = if l == 0 { x } else { self.output_of(l - 1, before) };
            layer.forward(self.params_of(l, params), input, &mut here[..layer.n_cache()]);
        }
        self.output_of(self.layers.len() - 1, cache)
    }

    /// Back-propagates `d_out`, the gradient of the loss with respect to the output of the forward pass
    /// that filled `cache` from `x`, into `grad` (one value per parameter, overwritten). `work` is two
    /// buffers of at least `width` values each.
    pub fn backward(
        &self,
        params: &[f64],
        x: &[f64],
        cache: &[f64],
        d_out: &[f64],
        grad: &mut [f64],
        work: (&mut [f64], &mut [f64]),
    ) {
        let (mut delta, mut next) = work;
        let last = self.layers.len() - 1;
        delta[..self.layers[last].n_out].copy_from_slice(d_out);
        for (l, layer) in self.layers.iter().enumerate().rev() {
            let input = if l == 0 { x } else { self.output_of(l - 1, cache) };
            let here = &cache[layer.cache_at..layer.cache_at + layer.n_cache()];
            let g = &mut grad[layer.param_at..layer.param_at + layer.n_params()];
            let d_in = (l > 0).then(|| &mut next[..layer.n_in]);
            layer.backward(self.params_of(l, params), input, here, &mut delta[..layer.n_out], g, d_in);
            std::mem::swap(&mut delta, &mut next);
        }
    }
}

/// A reconstruction loss: the mean over the features of `f(y - x)`, as torch's losses with their default
/// mean reduction.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AutoencoderLoss {
    /// `r^2` (torch's `MSELoss`).
    #[default]
    Mse,
    /// `|r|` (torch's `L1Loss`).
    L1,
    /// `r^2 / 2` for `|r| < 1`, else `|r| - 1/2` (torch's `SmoothL1Loss` at its default `beta = 1`).
    SmoothL1,
    /// `r^2 / 2` for `|r| < 1`, else `|r| - 1/2` (torch's `HuberLoss` at its default `delta = 1`, the same
    /// function as `smooth_l1` at `beta = 1`).
    Huber,
}

impl AutoencoderLoss {
    /// The loss of one residual `r = y - x`.
    #[inline]
    pub(crate) fn value(self, r: f64) -> f64 {
        match self {
            AutoencoderLoss::Mse => r * r,
            AutoencoderLoss::L1 => r.abs(),
            AutoencoderLoss::SmoothL1 | AutoencoderLoss::Huber => {
                if r.abs() < 1.0 {
                    0.5 * r * r
                } else {
                    r.abs() - 0.5
                }
            }
        }
    }

    /// Its derivative in `r` (torch's: `sign(0) = 0` for `l1`, `+-1` at `|r| = 1` for the other two).
    #[inline]
    pub(crate) fn derivative(self, r: f64) -> f64 {
        match self {
            AutoencoderLoss::Mse => 2.0 * r,
            AutoencoderLoss::L1 => sign(r),
            AutoencoderLoss::SmoothL1 | AutoencoderLoss::Huber => {
                if r.abs() < 1.0 {
                    r
                } else {
                    sign(r)
                }
            }
        }
    }
}

#[inline]
fn sign(r: f64) -> f64 {
    if r > 0.0 {
        1.0
    } else if r < 0.0 {
        -1.0
    } else {
        0.0
    }
}

/// How the parameters move after each row.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AutoencoderOptimizer {
    /// torch's `Adam` at its defaults: `betas = (0.9, 0.999)`, `eps = 1e-8`, bias correction, no weight
    /// decay, no AMSGrad.
    #[default]
    Adam,
    /// torch's `SGD` without momentum, dampening or weight decay: `p <- p - lr g`.
    Sgd,
}

pub(crate) const BETA1: f64 = 0.9;
pub(crate) const BETA2: f64 = 0.999;
pub(crate) const EPS: f64 = 1e-8;

/// `base^n` by squaring: a fixed sequence of products, so the same bits everywhere (`powi` leaves the
/// method to the platform).
pub(crate) fn pow_n(base: f64, mut n: u64) -> f64 {
    let (mut result, mut b) = (1.0, base);
    while n > 0 {
        if n & 1 == 1 {
            result *= b;
        }
        b *= b;
        n >>= 1;
    }
    result
}

/// One Adam step number `t` (from 1), computed into the staging buffers: `g` (the gradient) becomes the
/// new parameters, `m_next` and `v_next` the new moment estimates. Returns whether every new value is
/// finite; the caller publishes them (by swapping buffers) only then.
///
/// torch's rule: `m <- m + (1 - b1)(g - m)`, `v <- b2 v + (1 - b2) g^2`,
/// `p <- p - (lr / (1 - b1^t)) m / (sqrt(v) / sqrt(1 - b2^t) + eps)`; moments that turn subnormal are
/// flushed to zero (see [`flush`]).
pub(crate) fn adam_step(
    lr: f64,
    t: u64,
    p: &[f64],
    g: &mut [f64],
    (m, v): (&[f64], &[f64]),
    (m_next, v_next): (&mut [f64], &mut [f64]),
) -> bool {
    let step_size = lr / (1.0 - pow_n(BETA1, t));
    // torch divides sqrt(v) by sqrt(1 - b2^t); multiplying by the reciprocal saves a division per
    // parameter (the rounding differs in the last bit).
    let inv_bc2_sqrt = 1.0 / (1.0 - pow_n(BETA2, t)).sqrt();
    let mut finite = true;
    for i in 0..p.len() {
        let gi = g[i];
        let mi = flush(m[i] + (1.0 - BETA1) * (gi - m[i]));
        let vi = flush(BETA2 * v[i] + (1.0 - BETA2) * (gi * gi));
        let pi = p[i] - step_size * (mi / (vi.sqrt() * inv_bc2_sqrt + EPS));
        m_next[i] = mi;
        v_next[i] = vi;
        g[i] = pi;
        finite &= mi.is_finite() & vi.is_finite() & pi.is_finite();
    }
    finite
}

/// A subnormal value (below `f64::MIN_POSITIVE`, about 2.2e-308) becomes 0.0. A weight whose gradient
/// stays zero (a unit that no row activates) has its first moment shrink by 0.9 a step into the
/// subnormal range, where arithmetic is many times slower on common CPUs; as a step it moves the weight
/// by less than 1e-300. An explicit select, not a CPU mode, so it is the same everywhere.
#[inline]
fn flush(v: f64) -> f64 {
    if v.abs() < f64::MIN_POSITIVE { 0.0 } else { v }
}

/// One SGD step into the staging buffer: `g` becomes `p - lr g`. Returns whether it is finite.
pub(crate) fn sgd_step(lr: f64, p: &[f64], g: &mut [f64]) -> bool {
    let mut finite = true;
    for (gi, &pi) in g.iter_mut().zip(p) {
        *gi = pi - lr * *gi;
        finite &= gi.is_finite();
    }
    finite
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::unit_rng;

    const LOSSES: [AutoencoderLoss; 4] =
        [AutoencoderLoss::Mse, AutoencoderLoss::L1, AutoencoderLoss::SmoothL1, AutoencoderLoss::Huber];

    fn mean_loss(net: &Net, loss: AutoencoderLoss, params: &[f64], x: &[f64], target: &[f64]) -> f64 {
        let mut cache = vec![0.0; net.n_cache()];
        let y = net.forward(params, x, &mut cache);
        y.iter().zip(target).map(|(&a, &b)| loss.value(a - b)).sum::<f64>() / target.len() as f64
    }

    /// Compares the back-propagated gradient of every parameter with a central difference.
    fn check_gradients(shape: &[(Kind, usize, usize)], seed: u64) {
        let net = Net::new(shape);
        let mut rng = unit_rng(seed, 0);
        let mut params = vec![0.0; net.n_params()];
        net.init(&mut params, &mut rng);
        let n_in = shape[0].1;
        let x: Vec<f64> = (0..n_in).map(|_| 2.0 * unit(&mut rng) - 1.0).collect();
        // Residuals of both signs and on both sides of 1 (the kink of smooth_l1 and huber).
        let target: Vec<f64> = (0..net.n_out()).map(|_| 4.0 * unit(&mut rng) - 2.0).collect();
        for loss in LOSSES {
            let mut cache = vec![0.0; net.n_cache()];
            let y = net.forward(&params, &x, &mut cache).to_vec();
            let n = target.len() as f64;
            let d_out: Vec<f64> = y.iter().zip(&target).map(|(&a, &b)| loss.derivative(a - b) / n).collect();
            let mut grad = vec![f64::NAN; net.n_params()];
            let (mut a, mut b) = (vec![0.0; net.width()], vec![0.0; net.width()]);
            net.backward(&params, &x, &cache, &d_out, &mut grad, (&mut a, &mut b));
            let h = 1e-6;
            for i in 0..params.len() {
                let mut p = params.clone();
                p[i] = params[i] + h;
                let up = mean_loss(&net, loss, &p, &x, &target);
                p[i] = params[i] - h;
                let down = mean_loss(&net, loss, &p, &x, &target);
                let numeric = (up - down) / (2.0 * h);
                assert!(
                    (grad[i] - numeric).abs() <= 1e-7 * (1.0 + numeric.abs()),
                    "{shape:?} {loss:?} parameter {i}: back-propagated {} vs finite difference {numeric}",
                    grad[i]
                );
            }
        }
    }

    #[test]
    fn every_layer_and_loss_back_propagates_its_finite_difference_gradient() {
        let relu = Kind::Linear { relu: true };
        let linear = Kind::Linear { relu: false };
        // Each kind of layer first (no input gradient) and inside a stack (input gradient used).
        check_gradients(&[(relu, 3, 5), (linear, 5, 4)], 1);
        check_gradients(&[(linear, 3, 5), (relu, 5, 6), (linear, 6, 3)], 2);
        check_gradients(&[(Kind::Lstm, 3, 6), (linear, 6, 2), (Kind::Lstm, 2, 3)], 3);
        check_gradients(&[(relu, 4, 7), (Kind::Lstm, 7, 5), (relu, 5, 3)], 4);
        // The two architectures at a small width.
        check_gradients(
            &[(relu, 5, 64), (relu, 64, 32), (relu, 32, 16), (relu, 16, 32), (relu, 32, 64), (linear, 64, 5)],
            5,
        );
        check_gradients(&[(Kind::Lstm, 4, 64), (linear, 64, 16), (linear, 16, 64), (Kind::Lstm, 64, 4)], 6);
        // kitnet's autoencoder, and tanh inside a stack.
        check_gradients(&[(Kind::Tanh, 7, 6), (linear, 6, 7)], 7);
        check_gradients(&[(relu, 3, 5), (Kind::Tanh, 5, 4), (Kind::Tanh, 4, 2)], 8);
    }

    #[test]
    fn loss_values_and_derivatives() {
        for loss in LOSSES {
            for r in [-3.0, -1.2, -0.7, -0.1, 0.2, 0.9, 1.5, 4.0] {
                let h = 1e-6;
                let numeric = (loss.value(r + h) - loss.value(r - h)) / (2.0 * h);
                assert!((loss.derivative(r) - numeric).abs() < 1e-8, "{loss:?} at {r}");
                assert!(loss.value(r) > 0.0);
            }
            assert_eq!(loss.value(0.0), 0.0);
            assert_eq!(loss.derivative(0.0), 0.0);
        }
        assert_eq!(AutoencoderLoss::Mse.value(3.0), 9.0);
        assert_eq!(AutoencoderLoss::L1.value(-3.0), 3.0);
        assert_eq!(AutoencoderLoss::SmoothL1.value(3.0), 2.5);
        assert_eq!(AutoencoderLoss::Huber.value(0.5), 0.125);
        assert_eq!(AutoencoderLoss::Huber.derivative(-1.0), -1.0);
    }

    #[test]
    fn dot_keeps_its_order_and_pow_n_is_a_power() {
        let a: Vec<f64> = (0..11).map(|i| 0.1 * i as f64 + 1e-3).collect();
        let b: Vec<f64> = (0..11).map(|i| (i as f64).sin()).collect();
        let s = |k: usize| (0..11).filter(|i| i % 4 == k && *i < 8).map(|i| a[i] * b[i]).sum::<f64>();
        let mut want = (s(0) + s(1)) + (s(2) + s(3));
        for i in 8..11 {
            want += a[i] * b[i];
        }
        assert_eq!(dot(&a, &b).to_bits(), want.to_bits());
        assert_eq!(dot(&a[..3], &b[..3]), a[0] * b[0] + a[1] * b[1] + a[2] * b[2]);
        for n in [0u64, 1, 2, 7, 100, 12_345] {
            let want = BETA2.powf(n as f64);
            // Each squaring doubles the relative rounding error: about 2^14 ulps at n = 12,345.
            assert!((pow_n(BETA2, n) - want).abs() <= 1e-11 * want, "{n}");
        }
        assert_eq!(pow_n(2.0, 10), 1024.0);
    }

    /// torch's Adam for one parameter, written out step by step with its defaults.
    fn reference_adam(lr: f64, p0: f64, grad: impl Fn(f64) -> f64, steps: usize) -> Vec<f64> {
        let (mut p, mut m, mut v) = (p0, 0.0, 0.0);
        let mut out = Vec::new();
        for t in 1..=steps {
            let g = grad(p);
            m = 0.9 * m + 0.1 * g;
            v = 0.999 * v + 0.001 * g * g;
            let m_hat = m / (1.0 - 0.9f64.powi(t as i32));
            let v_hat = v / (1.0 - 0.999f64.powi(t as i32));
            p -= lr * m_hat / (v_hat.sqrt() + 1e-8);
            out.push(p);
        }
        out
    }

    #[test]
    fn adam_and_sgd_steps_match_written_out_references() {
        // Minimise (p - 3)^2 from p = 0.
        let grad = |p: f64| 2.0 * (p - 3.0);
        let want = reference_adam(0.1, 0.0, grad, 200);
        let (mut p, mut m, mut v) = (vec![0.0], vec![0.0], vec![0.0]);
        let (mut m_next, mut v_next) = (vec![0.0], vec![0.0]);
        for (t, want) in want.iter().enumerate() {
            let mut g = vec![grad(p[0])];
            assert!(adam_step(0.1, t as u64 + 1, &p, &mut g, (&m, &v), (&mut m_next, &mut v_next)));
            std::mem::swap(&mut p, &mut g);
            std::mem::swap(&mut m, &mut m_next);
            std::mem::swap(&mut v, &mut v_next);
            assert!((p[0] - want).abs() <= 1e-12 * want.abs().max(1.0), "step {}: {} vs {want}", t + 1, p[0]);
        }
        assert!((p[0] - 3.0).abs() < 0.05, "{}", p[0]);
        // The first step moves by lr against the gradient's sign, whatever its size.
        for g0 in [1e-3, -5.0, 1e6] {
            let mut g = vec![g0];
            adam_step(0.01, 1, &[1.0], &mut g, (&[0.0], &[0.0]), (&mut [0.0], &mut [0.0]));
            assert!((g[0] - (1.0 - 0.01 * g0.signum())).abs() < 1e-6, "{g0}: {}", g[0]);
        }
        // SGD: p - lr g, exactly.
        let mut g = vec![0.5, -2.0];
        assert!(sgd_step(0.1, &[1.0, 1.0], &mut g));
        assert_eq!(g, [1.0 - 0.1 * 0.5, 1.0 + 0.1 * 2.0]);
    }

    #[test]
    fn steps_that_would_not_be_finite_are_reported() {
        let mut g = vec![1.0, f64::NAN];
        assert!(!sgd_step(0.1, &[0.0, 0.0], &mut g));
        let mut g = vec![1.0, 1e300];
        assert!(!sgd_step(1e10, &[0.0, 0.0], &mut g));
        // Subnormal moments are flushed to zero.
        let (mut g, mut m_next, mut v_next) = (vec![0.0], vec![1.0], vec![1.0]);
        assert!(adam_step(1e-3, 9, &[1.0], &mut g, (&[2.3e-308], &[1e-300]), (&mut m_next, &mut v_next)));
        assert_eq!((m_next[0], v_next[0] > 0.0, g[0]), (0.0, true, 1.0));
        g[0] = 0.0;
        assert!(adam_step(1e-3, 9, &[1.0], &mut g, (&[2e-308], &[2e-308]), (&mut m_next, &mut v_next)));
        assert_eq!((m_next[0], v_next[0]), (0.0, 0.0));
        // g^2 overflows Adam's second moment even though the parameter step would stay finite.
        let mut g = vec![1.0, 1e200];
        assert!(!adam_step(1e-3, 1, &[0.0, 0.0], &mut g, (&[0.0; 2], &[0.0; 2]), (&mut [0.0; 2], &mut [0.0; 2])));
    }
}
