//! Autoencoder: a small neural network trained online, one optimizer step per row, to reconstruct its
//! input; the reconstruction loss is the score (Python onad's `Autoencoder` with its two architectures).

use std::cell::RefCell;

use onad_core::{Detector, DetectorParams, ParamDoc, ParamError, SchemaRef};
use serde::{Deserialize, Serialize};

use super::nn::{AutoencoderLoss, AutoencoderOptimizer, Kind, Net, adam_step, sgd_step};
use crate::registry::Describe;
use crate::rng::unit_rng;

/// The network, as onad's two architectures in `onad.utils.deep.architecture`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AutoencoderArchitecture {
    /// onad's `VanillaAutoencoder`: dense layers `d -> 64 -> 32 -> 16 -> 32 -> 64 -> d`, a ReLU after
    /// each but the last (the 16-wide code is ReLU'd too; the output is linear).
    #[default]
    Vanilla,
    /// onad's `VanillaLSTMAutoencoder`: `LSTM(d, 64) -> Linear(64, 16) -> Linear(16, 64) -> LSTM(64, d)`,
    /// no activation between; each row is a sequence of length 1 from the zero state, as onad feeds it.
    /// The output is an LSTM's hidden state, inside (-1, 1): features outside that range cannot be
    /// reconstructed (scale them first).
    Lstm,
}

impl AutoencoderArchitecture {
    fn net(self, d: usize) -> Net {
        let relu = Kind::Linear { relu: true };
        let linear = Kind::Linear { relu: false };
        match self {
            AutoencoderArchitecture::Vanilla => Net::new(&[
                (relu, d, 64),
                (relu, 64, 32),
                (relu, 32, 16),
                (relu, 16, 32),
                (relu, 32, 64),
                (linear, 64, d),
            ]),
            AutoencoderArchitecture::Lstm => {
                Net::new(&[(Kind::Lstm, d, 64), (linear, 64, 16), (linear, 16, 64), (Kind::Lstm, 64, d)])
            }
        }
    }
}

/// Hyperparameters of [`Autoencoder`]: onad takes a torch network, optimizer and loss object; here they
/// are named.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AutoencoderParams {
    /// `vanilla` (default) or `lstm`.
    pub architecture: AutoencoderArchitecture,
    /// `adam` (default) or `sgd`.
    pub optimizer: AutoencoderOptimizer,
    /// Step size; `None` is 0.001 for Adam (torch's default, and onad's SHUTTLE test) and 0.1 for SGD
    /// (what onad's own tests give SGD).
    pub learning_rate: Option<f64>,
    /// `mse` (default), `l1`, `smooth_l1` or `huber`.
    pub loss: AutoencoderLoss,
    /// Seed of the initial weights; `None` uses the fixed seed 0, so runs are reproducible.
    pub seed: Option<u64>,
}

impl Default for AutoencoderParams {
    fn default() -> Self {
        AutoencoderParams {
            architecture: AutoencoderArchitecture::Vanilla,
            optimizer: AutoencoderOptimizer::Adam,
            learning_rate: None,
            loss: AutoencoderLoss::Mse,
            seed: None,
        }
    }
}

/// Most features a model takes (the LSTM decoder alone holds `192 d` weights and the Adam state three
/// times that).
const MAX_FEATURES: usize = 1 << 20;

/// An online autoencoder: a network trained to reproduce its input, one optimizer step per learned row,
/// scored by how badly it reproduces a row.
///
/// # Algorithm
/// - Learning a row `x`: forward pass `y = net(x)`, loss `L = mean_j f(y_j - x_j)` (`f` the chosen loss),
///   backward pass, one optimizer step: Adam as torch's (`betas = (0.9, 0.999)`, `eps = 1e-8`, bias
///   correction, no weight decay) or SGD without momentum.
/// - Scoring: the same loss of the reconstruction, `>= 0`, without learning.
/// - Initial weights as torch's defaults: every weight and bias of a dense layer uniform in
///   `[-1/sqrt(fan_in), 1/sqrt(fan_in))`, every LSTM parameter in `[-1/sqrt(hidden), 1/sqrt(hidden))`,
///   drawn layer by layer from one PCG64 generator seeded from `seed`.
///
/// Input scale matters: the loss is taken on raw values, so a feature with a wide range dominates the
/// score and the gradient (onad's SHUTTLE test feeds raw values; its examples put a `MinMaxScaler`
/// first). The LSTM network's output lies in (-1, 1).
///
/// # Cost
/// `O(P)` per row for `P` parameters (vanilla: `129 d + 5,328`; LSTM: `390 d + 2,512`; Adam keeps two moments
/// per parameter): a forward pass to score, a forward and a backward pass and the update to learn
/// (`score_learn_one` shares the forward pass). No allocation per row: learning works in buffers the
/// model keeps (not serialized), scoring in a per-thread scratch. All arithmetic is `f64` in a fixed
/// order, so a checkpoint scores the same on every host (see `deep::nn`; the LSTM's `exp` and `tanh`
/// are the platform's).
///
/// # Missing values
/// A row with a missing (NaN) or infinite value is not learned. Scoring leaves missing features out of
/// the mean (the network reads them as 0.0); a row with nothing present scores 0.0; an infinite value,
/// or a reconstruction that overflows, scores `f64::MAX`.
///
/// # Divergence
/// An optimizer step whose new weights or moments would not all be finite (a diverging learning rate, a
/// row large enough to overflow) is dropped whole: the model stays as it was and counts the row in
/// [`Autoencoder::dropped_steps`] (the step counter of Adam's bias correction does not advance).
///
/// # Deviations from onad 0.3.0
/// - The network, optimizer and loss are named parameters, not torch objects; only onad's two
///   architectures, Adam and SGD at torch's defaults apart from the step size, and the four
///   reconstruction losses at their default `beta`/`delta` of 1.
/// - `f64` instead of torch's `float32`. From the same initial weights the scores equal those of onad's
///   model run in float64 to about 1e-13 relative over 500 rows (`tests/fidelity_autoencoder.rs`): the
///   differences left are roundings (sums in other orders, a reciprocal multiplied instead of divided
///   by), and Adam moments that turn subnormal are set to 0 (for speed; they would move a weight by less
///   than 1e-300).
/// - A PCG64 generator instead of torch's, so the initial weights differ from onad's for the same seed
///   (each seed is another draw of the same distributions; `seed = None` means seed 0, not torch's
///   global state).
/// - Features in schema order, not sorted by name (a permutation of the inputs, the same network).
/// - Missing values and divergence as above; onad learns NaN rows (every weight becomes NaN for good)
///   and scores NaN.
///
/// ```
/// use onad_core::{Detector, DetectorParams, Schema};
/// use onad_models::AutoencoderParams;
/// let schema = Schema::shared(["x", "y"]).unwrap();
/// let mut m = AutoencoderParams { seed: Some(1), ..Default::default() }.build(&schema).unwrap();
/// for i in 0..3_000 {
///     let t = (i % 10) as f64 * 0.02;
///     m.learn_one(&[0.5 + t, 0.5 - t]); // a short segment around (0.5, 0.5)
/// }
/// let near = m.score_one(&[0.55, 0.45]);
/// let far = m.score_one(&[3.0, -2.0]);
/// assert!(far > 100.0 * near, "{far} vs {near}");
/// ```
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(try_from = "AutoencoderState")]
pub struct Autoencoder {
    architecture: AutoencoderArchitecture,
    optimizer: AutoencoderOptimizer,
    learning_rate: f64,
    loss: AutoencoderLoss,
    /// Features per row.
    d: usize,
    /// Optimizer steps taken (Adam's `t`).
    steps: u64,
    /// Steps dropped because they would have made a value non-finite.
    dropped: u64,
    /// Every weight and bias, layer after layer (layout in `deep::nn`).
    params: Vec<f64>,
    /// Adam's first and second moments, one per parameter (empty for SGD).
    m: Vec<f64>,
    v: Vec<f64>,
    /// The layer layout, a function of `architecture` and `d`.
    #[serde(skip)]
    net: Net,
    /// Buffers of learning (forward values, gradients, staged moments), sized at the first row learned.
    #[serde(skip)]
    work: Box<Work>,
}

/// The serialized form, checked when decoded.
#[derive(Deserialize)]
struct AutoencoderState {
    architecture: AutoencoderArchitecture,
    optimizer: AutoencoderOptimizer,
    learning_rate: f64,
    loss: AutoencoderLoss,
    d: usize,
    steps: u64,
    dropped: u64,
    params: Vec<f64>,
    m: Vec<f64>,
    v: Vec<f64>,
}

impl TryFrom<AutoencoderState> for Autoencoder {
    type Error = String;
    fn try_from(s: AutoencoderState) -> Result<Self, String> {
        if s.d == 0 || s.d > MAX_FEATURES {
            return Err(format!("autoencoder state: {} features", s.d));
        }
        if !(s.learning_rate.is_finite() && s.learning_rate > 0.0) {
            return Err(format!("autoencoder state: learning rate {}", s.learning_rate));
        }
        let net = s.architecture.net(s.d);
        let n = net.n_params();
        let moments = if s.optimizer == AutoencoderOptimizer::Adam { n } else { 0 };
        if s.params.len() != n || s.m.len() != moments || s.v.len() != moments {
            return Err(format!(
                "autoencoder state: {:?} of {} features needs {n} parameters and {moments} moments each, got {}, {} and {}",
                s.architecture,
                s.d,
                s.params.len(),
                s.m.len(),
                s.v.len()
            ));
        }
        if !s.params.iter().chain(&s.m).all(|v| v.is_finite()) || !s.v.iter().all(|v| v.is_finite() && *v >= 0.0) {
            return Err("autoencoder state: a weight or moment is not finite".into());
        }
        Ok(Autoencoder {
            architecture: s.architecture,
            optimizer: s.optimizer,
            learning_rate: s.learning_rate,
            loss: s.loss,
            d: s.d,
            steps: s.steps,
            dropped: s.dropped,
            params: s.params,
            m: s.m,
            v: s.v,
            net,
            work: Box::default(),
        })
    }
}

impl DetectorParams for AutoencoderParams {
    type Model = Autoencoder;
    fn build(&self, schema: &SchemaRef) -> Result<Autoencoder, ParamError> {
        let learning_rate = match (self.learning_rate, self.optimizer) {
            (Some(lr), _) => lr,
            (None, AutoencoderOptimizer::Adam) => 1e-3,
            (None, AutoencoderOptimizer::Sgd) => 0.1,
        };
        if !(learning_rate.is_finite() && learning_rate > 0.0) {
            return Err(ParamError::invalid("learning_rate", format!("must be finite and > 0, got {learning_rate}")));
        }
        let d = schema.len();
        if d == 0 || d > MAX_FEATURES {
            return Err(ParamError::Schema(format!("autoencoder needs 1 to {MAX_FEATURES} features, got {d}")));
        }
        let net = self.architecture.net(d);
        let mut params = vec![0.0; net.n_params()];
        net.init(&mut params, &mut unit_rng(self.seed.unwrap_or(0), 0));
        let moments = if self.optimizer == AutoencoderOptimizer::Adam { params.len() } else { 0 };
        Ok(Autoencoder {
            architecture: self.architecture,
            optimizer: self.optimizer,
            learning_rate,
            loss: self.loss,
            d,
            steps: 0,
            dropped: 0,
            params,
            m: vec![0.0; moments],
            v: vec![0.0; moments],
            net,
            work: Box::default(),
        })
    }
}

/// The buffers of a learning step.
#[derive(Debug, Clone, Default)]
struct Work {
    cache: Vec<f64>,
    /// The gradient, then the staged new parameters.
    grad: Vec<f64>,
    m_next: Vec<f64>,
    v_next: Vec<f64>,
    a: Vec<f64>,
    b: Vec<f64>,
    d_out: Vec<f64>,
}

impl Work {
    fn fit(&mut self, net: &Net, moments: usize) {
        if self.cache.len() != net.n_cache() || self.grad.len() != net.n_params() || self.m_next.len() != moments {
            *self = Work {
                cache: vec![0.0; net.n_cache()],
                grad: vec![0.0; net.n_params()],
                m_next: vec![0.0; moments],
                v_next: vec![0.0; moments],
                a: vec![0.0; net.width()],
                b: vec![0.0; net.width()],
                d_out: vec![0.0; net.n_out()],
            };
        }
    }
}

thread_local! {
    /// The forward-pass values and the cleaned row of scoring.
    static SCORE_SCRATCH: RefCell<Vec<f64>> = const { RefCell::new(Vec::new()) };
}

/// The mean loss of the reconstruction `y` of `x` over the features `x` has (NaN ones left out), or
/// `f64::MAX` when it overflows; 0.0 when nothing is present.
fn reconstruction_loss(loss: AutoencoderLoss, y: &[f64], x: &[f64]) -> f64 {
    let (mut sum, mut n) = (0.0, 0usize);
    for (&yj, &xj) in y.iter().zip(x) {
        if !xj.is_nan() {
            sum += loss.value(yj - xj);
            n += 1;
        }
    }
    if n == 0 {
        return 0.0;
    }
    let mean = sum / n as f64;
    if mean.is_finite() { mean } else { f64::MAX }
}

impl Autoencoder {
    /// Optimizer steps taken.
    pub fn steps(&self) -> u64 {
        self.steps
    }

    /// Learned rows whose step was dropped because it would have made a weight or moment non-finite.
    pub fn dropped_steps(&self) -> u64 {
        self.dropped
    }

    /// Number of weights and biases.
    pub fn n_params(&self) -> usize {
        self.params.len()
    }

    fn learnable(&self, x: &[f64]) -> bool {
        x.len() == self.d && x.iter().all(|v| v.is_finite())
    }

    /// Forward pass of a learnable row into the learning buffers; returns its score.
    fn forward_learning(&mut self, x: &[f64]) -> f64 {
        self.work.fit(&self.net, self.m.len());
        let y = self.net.forward(&self.params, x, &mut self.work.cache);
        reconstruction_loss(self.loss, y, x)
    }

    /// Backward pass and optimizer step after [`forward_learning`](Self::forward_learning) on `x`.
    fn step(&mut self, x: &[f64]) {
        let Autoencoder { net, work, params, m, v, loss, learning_rate, steps, dropped, d, optimizer, .. } = self;
        let n = *d as f64;
        let y = net.output(&work.cache);
        for ((g, &yj), &xj) in work.d_out.iter_mut().zip(y).zip(x) {
            *g = loss.derivative(yj - xj) / n;
        }
        net.backward(params, x, &work.cache, &work.d_out, &mut work.grad, (&mut work.a, &mut work.b));
        let finite = match optimizer {
            AutoencoderOptimizer::Adam => {
                let next = (&mut work.m_next[..], &mut work.v_next[..]);
                adam_step(*learning_rate, *steps + 1, params, &mut work.grad, (m, v), next)
            }
            AutoencoderOptimizer::Sgd => sgd_step(*learning_rate, params, &mut work.grad),
        };
        if finite {
            std::mem::swap(params, &mut work.grad);
            std::mem::swap(m, &mut work.m_next);
            std::mem::swap(v, &mut work.v_next);
            *steps += 1;
        } else {
            *dropped += 1;
        }
    }
}

impl Detector for Autoencoder {
    fn learn_one(&mut self, x: &[f64]) {
        if self.learnable(x) {
            self.forward_learning(x);
            self.step(x);
        }
    }

    fn score_one(&self, x: &[f64]) -> f64 {
        if x.len() != self.d {
            return 0.0;
        }
        if x.iter().any(|v| v.is_infinite()) {
            return f64::MAX;
        }
        let score = |buf: &mut Vec<f64>| {
            let need = self.net.n_cache() + self.d;
            if buf.len() < need {
                buf.resize(need, 0.0);
            }
            let (cache, clean) = buf.split_at_mut(self.net.n_cache());
            let clean = &mut clean[..self.d];
            for (c, &v) in clean.iter_mut().zip(x) {
                *c = if v.is_nan() { 0.0 } else { v };
            }
            let y = self.net.forward(&self.params, clean, cache);
            reconstruction_loss(self.loss, y, x)
        };
        SCORE_SCRATCH.with(|cell| match cell.try_borrow_mut() {
            Ok(mut buf) => score(&mut buf),
            Err(_) => score(&mut Vec::new()),
        })
    }

    /// Scores then learns with one forward pass (the scoring one and the learning one are the same
    /// computation on a learnable row).
    fn score_learn_one(&mut self, x: &[f64]) -> f64 {
        if self.learnable(x) {
            let score = self.forward_learning(x);
            self.step(x);
            score
        } else {
            self.score_one(x)
        }
    }
}

impl Describe for AutoencoderParams {
    const SUMMARY: &'static str =
        "neural autoencoder trained one optimizer step per row, scored by its reconstruction loss";
    const PARAMS: &'static [ParamDoc] = &[
        ParamDoc {
            name: "architecture",
            ty: "vanilla | lstm",
            required: false,
            help: "vanilla: dense d-64-32-16-32-64-d with ReLU (default); lstm: LSTM(d,64)-16-64-LSTM(64,d)",
        },
        ParamDoc {
            name: "optimizer",
            ty: "adam | sgd",
            required: false,
            help: "adam (torch's defaults) or sgd (no momentum), one step per row (default adam)",
        },
        ParamDoc {
            name: "learning_rate",
            ty: "float > 0",
            required: false,
            help: "step size (default 0.001 for adam, 0.1 for sgd)",
        },
        ParamDoc {
            name: "loss",
            ty: "string",
            required: false,
            help: "mse, l1, smooth_l1 or huber (torch's, mean over features); also the score (default mse)",
        },
        ParamDoc { name: "seed", ty: "int >= 0", required: false, help: "seed of the initial weights (default 0)" },
    ];
    fn example() -> Self {
        AutoencoderParams { seed: Some(42), ..Default::default() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use onad_core::Schema;

    fn build(p: AutoencoderParams, d: usize) -> Autoencoder {
        p.build(&Schema::numbered("f", d)).unwrap()
    }

    fn seeded(seed: u64) -> AutoencoderParams {
        AutoencoderParams { seed: Some(seed), ..Default::default() }
    }

    /// Rows near a point of [0, 1]^3, deterministic.
    fn cluster(i: usize) -> [f64; 3] {
        let a = (i as f64 * 0.618_033_988_749_895).fract();
        let b = (i as f64 * 0.754_877_666_246_693).fract();
        [0.4 + 0.1 * a, 0.6 - 0.1 * b, 0.5 + 0.05 * (a - b)]
    }

    fn every_variant() -> Vec<AutoencoderParams> {
        let mut out = Vec::new();
        for architecture in [AutoencoderArchitecture::Vanilla, AutoencoderArchitecture::Lstm] {
            for optimizer in [AutoencoderOptimizer::Adam, AutoencoderOptimizer::Sgd] {
                for loss in
                    [AutoencoderLoss::Mse, AutoencoderLoss::L1, AutoencoderLoss::SmoothL1, AutoencoderLoss::Huber]
                {
                    out.push(AutoencoderParams { architecture, optimizer, loss, learning_rate: None, seed: Some(3) });
                }
            }
        }
        out
    }

    fn bits(v: &[f64]) -> Vec<u64> {
        v.iter().map(|x| x.to_bits()).collect()
    }

    #[test]
    fn shapes_and_defaults() {
        let m = build(AutoencoderParams::default(), 9);
        assert_eq!(m.n_params(), 129 * 9 + 5_328);
        assert_eq!((m.m.len(), m.v.len(), m.learning_rate), (m.n_params(), m.n_params(), 1e-3));
        let lstm = AutoencoderParams { architecture: AutoencoderArchitecture::Lstm, ..Default::default() };
        assert_eq!(build(lstm, 9).n_params(), 390 * 9 + 2_512);
        let sgd = build(AutoencoderParams { optimizer: AutoencoderOptimizer::Sgd, ..Default::default() }, 2);
        assert_eq!((sgd.m.len(), sgd.learning_rate), (0, 0.1));
        // torch's bounds: the first layer's weights within 1/sqrt(9), the second's within 1/8.
        let w1 = &m.params[..9 * 64 + 64];
        assert!(w1.iter().all(|w| w.abs() < 1.0 / 3.0) && w1.iter().any(|w| w.abs() > 0.3));
        let w2 = &m.params[9 * 64 + 64..9 * 64 + 64 + 64 * 32 + 32];
        assert!(w2.iter().all(|w| w.abs() < 0.125) && w2.iter().any(|w| w.abs() > 0.12));
        let params: AutoencoderParams =
            serde_json::from_str(r#"{"architecture": "lstm", "optimizer": "sgd", "loss": "smooth_l1"}"#).unwrap();
        assert_eq!(params.loss, AutoencoderLoss::SmoothL1);
        let e = serde_json::from_str::<AutoencoderParams>(r#"{"architecture": "gru"}"#).unwrap_err().to_string();
        assert!(e.contains("vanilla") && e.contains("lstm"), "{e}");
    }

    #[test]
    fn parameter_errors_name_the_parameter() {
        let schema = Schema::numbered("f", 2);
        for lr in [0.0, -1.0, f64::NAN, f64::INFINITY] {
            let e = AutoencoderParams { learning_rate: Some(lr), ..Default::default() }.build(&schema).unwrap_err();
            assert!(e.to_string().contains("learning_rate"), "{e}");
        }
        let e = AutoencoderParams::default().build(&Schema::numbered("f", 0)).unwrap_err();
        assert!(matches!(e, ParamError::Schema(_)), "{e}");
    }

    #[test]
    fn seeded_runs_repeat_and_seeds_differ() {
        let run = |seed| {
            let mut m = build(seeded(seed), 3);
            (0..300).map(|i| m.score_learn_one(&cluster(i))).collect::<Vec<f64>>()
        };
        assert_eq!(bits(&run(7)), bits(&run(7)));
        assert_ne!(run(7), run(8));
        assert_eq!(
            bits(&run(0)),
            bits(&{
                let mut m = build(AutoencoderParams::default(), 3);
                (0..300).map(|i| m.score_learn_one(&cluster(i))).collect::<Vec<f64>>()
            })
        );
    }

    #[test]
    fn it_learns_a_cluster() {
        for p in every_variant() {
            let mut m = build(p.clone(), 3);
            let before = m.score_one(&cluster(0));
            for i in 0..4_000 {
                m.learn_one(&cluster(i));
            }
            let near = m.score_one(&cluster(4_001));
            let far = m.score_one(&[-0.8, 0.9, -0.9]);
            assert!(near < before, "{p:?}: {near} after vs {before} before");
            assert!(far > 5.0 * near, "{p:?}: far {far}, near {near}");
            assert_eq!(m.steps(), 4_000);
            assert_eq!(m.dropped_steps(), 0);
        }
    }

    #[test]
    fn checkpoints_continue_identically() {
        for p in every_variant() {
            let mut a = build(p.clone(), 3);
            (0..150).for_each(|i| a.learn_one(&cluster(i)));
            let json: Autoencoder = serde_json::from_str(&serde_json::to_string(&a).unwrap()).unwrap();
            let bytes: Autoencoder = postcard::from_bytes(&postcard::to_stdvec(&a).unwrap()).unwrap();
            for mut b in [json, bytes] {
                let mut a = a.clone();
                for i in 150..300 {
                    let x = cluster(i * 3);
                    assert_eq!(a.score_learn_one(&x).to_bits(), b.score_learn_one(&x).to_bits(), "{p:?} row {i}");
                }
                assert_eq!(postcard::to_stdvec(&a).unwrap(), postcard::to_stdvec(&b).unwrap(), "{p:?}");
            }
        }
    }

    #[test]
    fn score_learn_one_is_score_one_then_learn_one() {
        for p in every_variant() {
            let (mut fused, mut split) = (build(p.clone(), 3), build(p.clone(), 3));
            for i in 0..100 {
                let mut x = cluster(i);
                if i % 9 == 0 {
                    x[1] = f64::NAN;
                }
                let a = fused.score_learn_one(&x);
                let b = split.score_one(&x);
                split.learn_one(&x);
                assert_eq!(a.to_bits(), b.to_bits(), "{p:?} row {i}");
            }
            assert_eq!(postcard::to_stdvec(&fused).unwrap(), postcard::to_stdvec(&split).unwrap());
        }
    }

    #[test]
    fn missing_and_infinite_values() {
        let mut m = build(seeded(1), 3);
        (0..200).for_each(|i| m.learn_one(&cluster(i)));
        let before = postcard::to_stdvec(&m).unwrap();
        for x in [[f64::NAN, 0.5, 0.5], [0.5, f64::INFINITY, 0.5], [f64::NEG_INFINITY; 3], [f64::NAN; 3]] {
            m.learn_one(&x);
        }
        m.learn_one(&[0.5, 0.5]);
        assert_eq!(postcard::to_stdvec(&m).unwrap(), before, "a row with missing values was learned");
        // A missing feature is read as 0.0 and left out of the mean.
        let y = {
            let mut cache = vec![0.0; m.net.n_cache()];
            m.net.forward(&m.params, &[0.0, 0.5, 0.6], &mut cache).to_vec()
        };
        let want = ((y[1] - 0.5).powi(2) + (y[2] - 0.6).powi(2)) / 2.0;
        assert_eq!(m.score_one(&[f64::NAN, 0.5, 0.6]), want);
        assert_eq!(m.score_one(&[f64::NAN; 3]), 0.0);
        assert_eq!(m.score_one(&[0.5, f64::INFINITY, f64::NAN]), f64::MAX);
        assert_eq!(m.score_one(&[0.5, 0.5]), 0.0, "wrong width");
        // An overflowing reconstruction scores the largest finite value.
        assert_eq!(m.score_one(&[1e300, -1e300, 1e300]), f64::MAX);
    }

    #[test]
    fn diverging_steps_are_dropped() {
        // A row so large that the gradient overflows: the step is dropped, nothing changes.
        let mut m = build(seeded(2), 3);
        (0..50).for_each(|i| m.learn_one(&cluster(i)));
        let before = postcard::to_stdvec(&m).unwrap();
        m.learn_one(&[1e200, -1e200, 1e200]);
        assert_eq!(m.dropped_steps(), 1);
        assert_eq!(m.steps(), 50);
        let mut after = m.clone();
        after.dropped = 0;
        assert_eq!(postcard::to_stdvec(&after).unwrap(), before);
        // SGD at an absurd step size: weights blow up as far as they stay finite, then steps stop.
        let mut m = build(
            AutoencoderParams { optimizer: AutoencoderOptimizer::Sgd, learning_rate: Some(1e150), ..seeded(2) },
            3,
        );
        for i in 0..200 {
            let s = m.score_learn_one(&cluster(i));
            assert!(s.is_finite() && s >= 0.0, "row {i}: {s}");
        }
        assert!(m.dropped_steps() > 0, "no step was dropped");
        assert!(m.params.iter().all(|w| w.is_finite()));
        // The state stays loadable.
        let back: Autoencoder = serde_json::from_str(&serde_json::to_string(&m).unwrap()).unwrap();
        assert_eq!(back.dropped_steps(), m.dropped_steps());
    }

    #[test]
    fn damaged_state_is_refused() {
        let mut m = build(AutoencoderParams { architecture: AutoencoderArchitecture::Lstm, ..seeded(4) }, 2);
        (0..10).for_each(|i| m.learn_one(&cluster(i)[..2]));
        let json = serde_json::to_string(&m).unwrap();
        assert!(serde_json::from_str::<Autoencoder>(&json).is_ok());
        let value: serde_json::Value = serde_json::from_str(&json).unwrap();
        let damage = |f: &dyn Fn(&mut serde_json::Value)| {
            let mut v = value.clone();
            f(&mut v);
            serde_json::from_value::<Autoencoder>(v).map(drop).unwrap_err().to_string()
        };
        let e = damage(&|v| v["d"] = 3.into());
        assert!(e.contains("parameters"), "{e}");
        let e = damage(&|v| v["architecture"] = "vanilla".into());
        assert!(e.contains("parameters"), "{e}");
        assert!(damage(&|v| v["d"] = 0.into()).contains("features"));
        assert!(damage(&|v| v["optimizer"] = "sgd".into()).contains("moments"));
        assert!(damage(&|v| v["learning_rate"] = 0.0.into()).contains("learning rate"));
        assert!(damage(&|v| v["params"].as_array_mut().unwrap().truncate(5)).contains("parameters"));
        assert!(damage(&|v| v["v"][3] = (-1.0).into()).contains("not finite"));
        assert!(damage(&|v| v["params"][7] = serde_json::Value::Null).contains("null"));
        let e = damage(&|v| v["loss"] = "hinge".into());
        assert!(e.contains("unknown variant"), "{e}");
        // postcard: a cut payload fails.
        let bytes = postcard::to_stdvec(&m).unwrap();
        assert!(postcard::from_bytes::<Autoencoder>(&bytes[..bytes.len() - 3]).is_err());
    }
}
