//! The temporal model of `docs/model.md` as candle tensors, so autograd
//! can train it.
//!
//! Per layer (version 2, "Forward"):
//!
//! ```text
//! h = norm1(x); c = conv(h)
//! x = x + attention(c·Wq, c·Wk, c·Wv)·Wo
//! x = x + relu(norm2(x)·W1 + b1)·W2 + b2      (with an MLP)
//! logits = normf(x[N-1])·Wc
//! ```
//!
//! with attention restricted to the head's candidate pattern by the masks
//! of [`crate::mask`]. With every option off this is version 1 (`x + attention(x·Wq,
//! x·Wk, x·Wv)·Wo`, `logits = x[N-1]·Wc`), computed by the same tensor
//! operations, so a version-1 model's logits and gradients are the same
//! bits as before the options existed. The logits read only the last
//! frame of the last layer, so that layer computes only the last query,
//! its residual and its MLP: every other row would be thrown away. Its
//! norm and convolution still run over every position, because the keys
//! and values of every frame read them.

use aether_domain::HeadConfig;
use candle_core::{D, DType, Device, Tensor, Var};
use serde::{Deserialize, Serialize};

use crate::TrainError;
use crate::mask::{MaskCache, MaskTensors};
use crate::rng::SplitMix64;

/// The pre-norm of version 2 (`docs/model.md`, "Norms"), applied to
/// each frame's `D` values before the attention branch, before the MLP
/// and before the classifier.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Norm {
    /// No norm: the identity, with no weights (version 1).
    #[default]
    None,
    /// `(x − mean) / √(var + ε) ⊙ γ + β`.
    Layer,
    /// `x / √(mean(x²) + ε) ⊙ γ`.
    Rms,
}

impl Norm {
    /// The `[D]` vectors one norm stores, in body order: γ and β for a
    /// layer norm, γ for an RMS norm.
    #[must_use]
    pub const fn vectors(self) -> usize {
        match self {
            Self::None => 0,
            Self::Layer => 2,
            Self::Rms => 1,
        }
    }
}

/// The model options of version 2 (`docs/model.md`, "Version 2:
/// options"). The default turns every option off, which is version 1
/// weight for weight; each field defaults on its own, so a configuration
/// written before the options existed (`{}`) still reads.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelOptions {
    /// The pre-norm (`none`, `layer`, `rms`).
    #[serde(default)]
    pub norm: Norm,
    /// Taps K of the causal depthwise convolution on the attention
    /// branch's input: 0 turns it off, otherwise at least 2 (one tap
    /// would only rescale each feature, which `Wq`, `Wk`, `Wv` already
    /// can).
    #[serde(default)]
    pub conv_taps: usize,
    /// Hidden width H of the per-layer ReLU MLP; 0 turns it off.
    #[serde(default)]
    pub mlp_hidden: usize,
    /// Input centring: each frame minus the running mean of the frames so
    /// far (weight `2^−centre_shift` on the newest); 0 turns it off,
    /// otherwise 1 to 24.
    #[serde(default)]
    pub centre_shift: usize,
    /// The centred input's gain `2^centre_gain_log2` (0 to 15; 0 without
    /// centring).
    #[serde(default)]
    pub centre_gain_log2: usize,
    /// Pooled readout: the classifier reads the running mean of every
    /// frame's final row (weight `2^−pool_shift` on the newest) instead of
    /// the last frame's row; 0 turns it off, otherwise 1 to 24.
    #[serde(default)]
    pub pool_shift: usize,
}

impl ModelOptions {
    /// True when every option is off: the model is version 1 and its
    /// weights fit the version-1 body.
    #[must_use]
    pub fn is_v1(&self) -> bool {
        aether_model::ModelOptions::from(self).is_v1()
    }

    /// Checks the options' ranges by the kernel's rules
    /// ([`aether_model::ModelOptions::validate`], `docs/model.md`), so the
    /// two cannot disagree on what a model is.
    ///
    /// # Errors
    /// [`TrainError::Setting`] naming `conv_taps` when it is 1, or the
    /// centring or pooling option outside its range.
    pub fn validate(&self) -> Result<(), TrainError> {
        aether_model::ModelOptions::from(self)
            .validate()
            .map_err(|e| match e {
                aether_model::ShapeError::OptionRange { field, rule, .. } => TrainError::Setting {
                    name: field,
                    reason: rule,
                },
                aether_model::ShapeError::ConvTaps => TrainError::Setting {
                    name: "conv_taps",
                    reason: "0 turns the convolution off; otherwise it needs at least 2 taps",
                },
                // The options' rules return only the two above.
                other => TrainError::Weights(other.to_string()),
            })
    }
}

/// How [`TemporalNet::new`] initialises one body tensor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Init {
    /// Uniform in `[-1/√rows, 1/√rows)` from the seeded generator.
    Uniform,
    /// Every value 1 (a norm's γ).
    Ones,
    /// Every value 0 (a norm's β, an MLP bias).
    Zeros,
    /// Tap 0 is 1, the others 0: a fresh convolution is the identity, so
    /// adding it leaves the initial model version 1's function and
    /// training starts from the same well-scaled point; the earlier taps
    /// grow only as far as the loss asks.
    ConvIdentity,
}

/// One tensor of the body: `[rows][cols]`, vectors as `[1][n]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Part {
    rows: usize,
    cols: usize,
    init: Init,
}

impl Part {
    const fn new(rows: usize, cols: usize, init: Init) -> Self {
        Self { rows, cols, init }
    }
}

/// Everything that fixes the model's tensors, apart from their values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Architecture {
    /// D: values per frame.
    pub input_dim: usize,
    /// C: classes.
    pub n_classes: usize,
    /// L: attention layers.
    pub n_layers: usize,
    /// The attention head: its backend picks the sparse or dense mask,
    /// and `q_heads`, `kv_heads`, `head_dim` are Hq, Hkv, d.
    pub head: HeadConfig,
    /// Features beyond version 1.
    pub options: ModelOptions,
}

impl Architecture {
    /// Checks what the model cannot be built without.
    ///
    /// # Errors
    /// [`TrainError::Config`] for an invalid head, [`TrainError::Setting`]
    /// for zero layers or input width or an invalid option,
    /// [`TrainError::TooFewClasses`].
    pub fn validate(&self) -> Result<(), TrainError> {
        self.head.validate()?;
        if self.n_layers == 0 {
            return Err(TrainError::Setting {
                name: "n_layers",
                reason: "a model has at least one layer",
            });
        }
        if self.input_dim == 0 {
            return Err(TrainError::Setting {
                name: "input_dim",
                reason: "frames hold at least one value",
            });
        }
        if self.n_classes < 2 {
            return Err(TrainError::TooFewClasses {
                classes: self.n_classes,
            });
        }
        self.options.validate()
    }

    /// Every body tensor in body order (`docs/model.md`, "Body order,
    /// version 2"): per layer γ1, β1 (with a norm), Wconv (with a
    /// convolution), Wq, Wk, Wv, Wo, then with an MLP γ2, β2, W1, b1, W2,
    /// b2; after the last layer γf, βf (with a norm) and Wc. With every
    /// option off this is version 1's order: per layer Wq, Wk, Wv, Wo,
    /// then Wc. The one place the order is written down: initialisation,
    /// import, export and [`TemporalNet::vars`] all follow it.
    fn parts(&self) -> Vec<Part> {
        let (dim, q, kv) = (self.input_dim, self.q_width(), self.kv_width());
        // Centring and pooling have no weights.
        let ModelOptions {
            norm,
            conv_taps,
            mlp_hidden,
            ..
        } = self.options;
        let norm_parts = |parts: &mut Vec<Part>| {
            if norm.vectors() >= 1 {
                parts.push(Part::new(1, dim, Init::Ones));
            }
            if norm.vectors() == 2 {
                parts.push(Part::new(1, dim, Init::Zeros));
            }
        };
        let mut parts = Vec::new();
        for _ in 0..self.n_layers {
            norm_parts(&mut parts);
            if conv_taps >= 2 {
                parts.push(Part::new(conv_taps, dim, Init::ConvIdentity));
            }
            parts.extend([
                Part::new(dim, q, Init::Uniform),
                Part::new(dim, kv, Init::Uniform),
                Part::new(dim, kv, Init::Uniform),
                Part::new(q, dim, Init::Uniform),
            ]);
            if mlp_hidden >= 1 {
                norm_parts(&mut parts);
                parts.extend([
                    Part::new(dim, mlp_hidden, Init::Uniform),
                    Part::new(1, mlp_hidden, Init::Zeros),
                    Part::new(mlp_hidden, dim, Init::Uniform),
                    Part::new(1, dim, Init::Zeros),
                ]);
            }
        }
        norm_parts(&mut parts);
        parts.push(Part::new(dim, self.n_classes, Init::Uniform));
        parts
    }

    /// `(rows, cols)` of every body tensor in body order (vectors as
    /// `(1, n)`); see `docs/model.md`, "Body order, version 2". Version 1:
    /// per layer Wq, Wk, Wv, Wo, then Wc.
    #[must_use]
    pub fn matrix_shapes(&self) -> Vec<(usize, usize)> {
        self.parts().iter().map(|p| (p.rows, p.cols)).collect()
    }

    /// Number of weights. Version 1: `L·(2·D·Hq·d + 2·D·Hkv·d) + D·C`;
    /// version 2 adds per layer `v·D` for the norm (`v` = 2 for layer, 1
    /// for rms), `K·D` for the convolution, `v·D + D·H + H + H·D + D` for
    /// the MLP, and `v·D` for the final norm.
    #[must_use]
    pub fn weight_count(&self) -> usize {
        self.matrix_shapes().iter().map(|(r, c)| r * c).sum()
    }

    const fn q_width(&self) -> usize {
        self.head.q_heads * self.head.head_dim
    }

    const fn kv_width(&self) -> usize {
        self.head.kv_heads * self.head.head_dim
    }
}

/// A norm's weights: `γ` (and `β` for a layer norm), each `[1][D]`.
#[derive(Debug, Clone)]
enum NormWeights {
    /// The identity.
    None,
    /// Layer norm.
    Layer { gamma: Var, beta: Var },
    /// RMS norm.
    Rms { gamma: Var },
}

/// ε of both norms (`docs/model.md`): it keeps a constant frame (variance
/// 0) finite.
const NORM_EPS: f64 = 1e-5;

impl NormWeights {
    /// The norm of each frame of `x` (`[B, n, D]`), over its `D` values,
    /// with the population variance (divided by `D`, not `D − 1`), as the
    /// kernel computes it.
    fn apply(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        match self {
            Self::None => Ok(x.clone()),
            Self::Layer { gamma, beta } => {
                let centred = x.broadcast_sub(&x.mean_keepdim(D::Minus1)?)?;
                let variance = centred.sqr()?.mean_keepdim(D::Minus1)?;
                centred
                    .broadcast_div(&(variance + NORM_EPS)?.sqrt()?)?
                    .broadcast_mul(gamma)?
                    .broadcast_add(beta)
            }
            Self::Rms { gamma } => {
                let mean_square = x.sqr()?.mean_keepdim(D::Minus1)?;
                x.broadcast_div(&(mean_square + NORM_EPS)?.sqrt()?)?
                    .broadcast_mul(gamma)
            }
        }
    }
}

/// The per-layer MLP: `x + relu(norm(x)·W1 + b1)·W2 + b2`.
#[derive(Debug, Clone)]
struct Mlp {
    norm: NormWeights,
    w1: Var,
    b1: Var,
    w2: Var,
    b2: Var,
}

impl Mlp {
    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let h = self.norm.apply(x)?;
        let hidden = project(&h, &self.w1)?.broadcast_add(&self.b1)?.relu()?;
        x + project(&hidden, &self.w2)?.broadcast_add(&self.b2)?
    }
}

/// One layer: its pre-norm, convolution, projections (each `[in][out]` as
/// in `docs/model.md`, applied as `x · W`) and MLP.
#[derive(Debug, Clone)]
struct AttentionLayer {
    norm: NormWeights,
    /// `[K][D]`; `None` without a convolution.
    conv: Option<Var>,
    wq: Var,
    wk: Var,
    wv: Var,
    wo: Var,
    mlp: Option<Mlp>,
}

/// The causal depthwise convolution of `docs/model.md`: `c_t[f] =
/// Σ_j w[j][f] · h_{t−j}[f]` for `h` `[B, n, D]` and `w` `[K, D]`, with
/// zeros before the first frame, tap 0 on the current frame. Each frame
/// sees only itself and earlier frames, so a streaming kernel can compute
/// it from the last `K − 1` frames.
fn causal_conv(h: &Tensor, w: &Tensor) -> candle_core::Result<Tensor> {
    let (b, n, dim) = h.dims3()?;
    let taps = w.dim(0)?;
    let zeros = Tensor::zeros((b, taps - 1, dim), h.dtype(), h.device())?;
    // Row `taps − 1 + t` of `padded` is frame t; rows before it are the
    // zeros "before the first frame".
    let padded = Tensor::cat(&[&zeros, h], 1)?;
    let mut c = h.broadcast_mul(&w.narrow(0, 0, 1)?)?;
    for j in 1..taps {
        let shifted = padded.narrow(1, taps - 1 - j, n)?;
        c = (c + shifted.broadcast_mul(&w.narrow(0, j, 1)?)?)?;
    }
    Ok(c)
}

/// `[n, n]` (f64): row `t` holds the weights that make frame `t`'s running
/// mean (`docs/model.md`, "Centring and pooling") of frames `0..=t`, so
/// that `M · x` is every frame's mean at once: `m_0 = x_0`, `m_t = (1 −
/// a)·m_{t−1} + a·x_t` with `a = 2^−shift`. A matrix rather than a loop
/// over frames because autograd then differentiates one matmul instead
/// of `n` small steps; its values are the recurrence's, row by row.
fn running_means(n: usize, shift: usize) -> candle_core::Result<Tensor> {
    let rate = 1.0 / f64::from(1_u32 << shift);
    let mut weights = vec![0.0_f64; n * n];
    if n > 0 {
        weights[0] = 1.0;
    }
    for t in 1..n {
        let (previous, row) = weights.split_at_mut(t * n);
        let previous = &previous[(t - 1) * n..];
        for (w, &p) in row[..t].iter_mut().zip(previous) {
            *w = (1.0 - rate) * p;
        }
        row[t] = rate;
    }
    Tensor::from_vec(weights, (n, n), &Device::Cpu)
}

/// `[1, n]` (f64): row `n − 1` of [`running_means`] alone, the weights of
/// the last frame's running mean — `a·(1 − a)^(n−1−t)` for `t ≥ 1` and
/// `(1 − a)^(n−1)` for frame 0 — without building the other rows.
fn last_running_mean(n: usize, shift: usize) -> candle_core::Result<Tensor> {
    let rate = 1.0 / f64::from(1_u32 << shift);
    let mut weights = vec![0.0_f64; n];
    let mut kept = 1.0;
    for w in weights.iter_mut().skip(1).rev() {
        *w = rate * kept;
        kept *= 1.0 - rate;
    }
    if let Some(first) = weights.first_mut() {
        *first = kept;
    }
    Tensor::from_vec(weights, (1, n), &Device::Cpu)
}

/// How rows of width `Hq·d` split into heads.
#[derive(Debug, Clone, Copy)]
struct Heads {
    kv_heads: usize,
    /// Query heads per KV head; query head `h` reads KV head `h / group`.
    group: usize,
    head_dim: usize,
}

/// `x · w` for `x` `[B, n, in]` and `w` `[in, out]`: `[B, n, out]`.
fn project(x: &Tensor, w: &Tensor) -> candle_core::Result<Tensor> {
    let (b, n, width) = x.dims3()?;
    let out = w.dim(1)?;
    x.reshape((b * n, width))?.matmul(w)?.reshape((b, n, out))
}

/// Softmax over the last dimension. The maximum is subtracted for range
/// only; it is detached because the softmax does not depend on it, so
/// its gradient is exactly zero and need not be computed.
/// (`candle_nn::ops::softmax_last_dim` has no backward pass in 0.11.)
fn softmax_last(x: &Tensor) -> candle_core::Result<Tensor> {
    let max = x.max_keepdim(D::Minus1)?.detach();
    let e = x.broadcast_sub(&max)?.exp()?;
    let sum = e.sum_keepdim(D::Minus1)?;
    e.broadcast_div(&sum)
}

/// Attention of `q` (`[B, nq, Hq·d]`, the last `nq` positions) over `k`,
/// `v` (`[B, n, Hkv·d]`) and their landmark means, under `bias`
/// (`[nq, n + blocks]`). Returns `[B, nq, Hq·d]`.
fn attention(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    heads: Heads,
    masks: &MaskTensors,
    bias: &Tensor,
) -> candle_core::Result<Tensor> {
    let Heads {
        kv_heads,
        group,
        head_dim,
    } = heads;
    let (b, nq, _) = q.dims3()?;
    let n = k.dim(1)?;
    // Query rows grouped by the KV head they read: [B, Hkv, G·nq, d], so
    // one matmul per KV head serves its whole group without copying K.
    let q = (q
        .reshape((b, nq, kv_heads, group, head_dim))?
        .permute((0, 2, 3, 1, 4))?
        .contiguous()?
        .reshape((b, kv_heads, group * nq, head_dim))?
        * (1.0 / (head_dim as f64).sqrt()))?;
    let split = |t: &Tensor| -> candle_core::Result<Tensor> {
        let t = t
            .reshape((b, n, kv_heads, head_dim))?
            .transpose(1, 2)?
            .contiguous()?;
        match &masks.averaging {
            // Tokens, then landmark pseudo-tokens: [B, Hkv, n + blocks, d].
            Some(avg) => Tensor::cat(&[&t, &avg.broadcast_matmul(&t)?], 2),
            None => Ok(t),
        }
    };
    let (k, v) = (split(k)?, split(v)?);
    let columns = k.dim(2)?;
    let scores = q
        .matmul(&k.t()?)?
        .reshape((b, kv_heads, group, nq, columns))?
        .broadcast_add(bias)?;
    let weights = softmax_last(&scores)?.reshape((b, kv_heads, group * nq, columns))?;
    weights
        .matmul(&v)?
        .reshape((b, kv_heads, group, nq, head_dim))?
        .permute((0, 3, 1, 2, 4))?
        .contiguous()?
        .reshape((b, nq, kv_heads * group * head_dim))
}

impl AttentionLayer {
    /// The layer for `x` `[B, n, D]`; with `last_only`, only for the last
    /// position (`[B, 1, D]`). The norm and convolution always cover every
    /// position: the keys and values of all frames read them.
    fn forward(
        &self,
        x: &Tensor,
        heads: Heads,
        masks: &MaskTensors,
        last_only: bool,
    ) -> candle_core::Result<Tensor> {
        let n = x.dim(1)?;
        let h = self.norm.apply(x)?;
        let c = match &self.conv {
            Some(w) => causal_conv(&h, w)?,
            None => h,
        };
        let (rows, queries, bias) = if last_only {
            (
                x.narrow(1, n - 1, 1)?,
                c.narrow(1, n - 1, 1)?,
                &masks.last_bias,
            )
        } else {
            (x.clone(), c.clone(), &masks.bias)
        };
        let q = project(&queries, &self.wq)?;
        let k = project(&c, &self.wk)?;
        let v = project(&c, &self.wv)?;
        let attended = attention(&q, &k, &v, heads, masks, bias)?;
        let x = (rows + project(&attended, &self.wo)?)?;
        match &self.mlp {
            Some(mlp) => mlp.forward(&x),
            None => Ok(x),
        }
    }
}

/// The trainable temporal model.
#[derive(Debug)]
pub struct TemporalNet {
    architecture: Architecture,
    dtype: DType,
    layers: Vec<AttentionLayer>,
    final_norm: NormWeights,
    classifier: Var,
    /// Every weight tensor in body order (the same `Var`s as above).
    body: Vec<Var>,
    masks: MaskCache,
}

impl TemporalNet {
    /// A model with seeded initial weights, in body order: every matrix
    /// applied as `x · W` (Wq, Wk, Wv, Wo, W1, W2, Wc) uniform in
    /// `[-1/√rows, 1/√rows)` (rows = its input width) from splitmix64,
    /// so the same seed gives the same bits; norms γ = 1 and β = 0; MLP
    /// biases 0; a convolution the identity (tap 0 = 1, earlier taps 0).
    /// Only the uniform matrices draw from the generator, so a version-1
    /// model gets the same bits it got before the options existed, and
    /// a fresh norm or convolution changes nothing it does not have to.
    ///
    /// # Errors
    /// [`Architecture::validate`]'s errors; [`TrainError::Setting`] for a
    /// dtype other than f32 or f64.
    pub fn new(architecture: Architecture, seed: u64, dtype: DType) -> Result<Self, TrainError> {
        architecture.validate()?;
        let mut rng = SplitMix64::fork(seed, 1);
        let mut values = Vec::with_capacity(architecture.weight_count());
        for Part { rows, cols, init } in architecture.parts() {
            match init {
                Init::Uniform => {
                    let scale = 1.0 / (rows as f64).sqrt();
                    values.extend((0..rows * cols).map(|_| rng.next_symmetric(scale)));
                }
                Init::Ones => values.extend(std::iter::repeat_n(1.0, rows * cols)),
                Init::Zeros => values.extend(std::iter::repeat_n(0.0, rows * cols)),
                Init::ConvIdentity => {
                    values.extend(std::iter::repeat_n(1.0, cols));
                    values.extend(std::iter::repeat_n(0.0, (rows - 1) * cols));
                }
            }
        }
        Self::from_body(architecture, &values, dtype)
    }

    /// A model whose weights are `values` in body order (f64 so that both
    /// f32 and f64 models round-trip exactly).
    ///
    /// # Errors
    /// As [`new`](Self::new); [`TrainError::Weights`] when `values` does
    /// not hold exactly the architecture's weight count.
    pub(crate) fn from_body(
        architecture: Architecture,
        values: &[f64],
        dtype: DType,
    ) -> Result<Self, TrainError> {
        architecture.validate()?;
        if !matches!(dtype, DType::F32 | DType::F64) {
            return Err(TrainError::Setting {
                name: "dtype",
                reason: "the trainer computes in f32 or f64",
            });
        }
        if values.len() != architecture.weight_count() {
            return Err(TrainError::Weights(format!(
                "{} weights given; the model has {}",
                values.len(),
                architecture.weight_count()
            )));
        }
        let mut rest = values;
        let mut body = Vec::new();
        for Part { rows, cols, .. } in architecture.parts() {
            let (matrix, tail) = rest.split_at(rows * cols);
            rest = tail;
            let tensor = Tensor::from_slice(matrix, (rows, cols), &Device::Cpu)?.to_dtype(dtype)?;
            body.push(Var::from_tensor(&tensor)?);
        }
        // Hand the tensors out in the order `parts` listed them.
        let mut queue = body.iter().cloned();
        let mut next = || {
            queue
                .next()
                .ok_or_else(|| TrainError::Weights("the body ended early".into()))
        };
        let norm = architecture.options.norm;
        let take_norm = |next: &mut dyn FnMut() -> Result<Var, TrainError>| {
            Ok::<_, TrainError>(match norm {
                Norm::None => NormWeights::None,
                Norm::Layer => NormWeights::Layer {
                    gamma: next()?,
                    beta: next()?,
                },
                Norm::Rms => NormWeights::Rms { gamma: next()? },
            })
        };
        let mut layers = Vec::with_capacity(architecture.n_layers);
        for _ in 0..architecture.n_layers {
            let norm = take_norm(&mut next)?;
            let conv = if architecture.options.conv_taps >= 2 {
                Some(next()?)
            } else {
                None
            };
            let (wq, wk, wv, wo) = (next()?, next()?, next()?, next()?);
            let mlp = if architecture.options.mlp_hidden >= 1 {
                Some(Mlp {
                    norm: take_norm(&mut next)?,
                    w1: next()?,
                    b1: next()?,
                    w2: next()?,
                    b2: next()?,
                })
            } else {
                None
            };
            layers.push(AttentionLayer {
                norm,
                conv,
                wq,
                wk,
                wv,
                wo,
                mlp,
            });
        }
        let final_norm = take_norm(&mut next)?;
        let classifier = next()?;
        let masks = MaskCache::new(architecture.head.clone(), dtype)?;
        Ok(Self {
            architecture,
            dtype,
            layers,
            final_norm,
            classifier,
            body,
            masks,
        })
    }

    /// Every weight tensor in body order (`docs/model.md`, "Body order,
    /// version 2"; version 1: per layer Wq, Wk, Wv, Wo, then Wc), vectors
    /// as `[1][n]`. Why public: an optimizer, a gradient check or an
    /// exporter walks the weights in the one order the kernel reads.
    #[must_use]
    pub fn vars(&self) -> Vec<Var> {
        self.body.clone()
    }

    /// Every weight in body order, widened to f64.
    ///
    /// # Errors
    /// A tensor error (a bug).
    pub fn body(&self) -> Result<Vec<f64>, TrainError> {
        let mut values = Vec::with_capacity(self.architecture.weight_count());
        for var in self.vars() {
            values.extend(
                var.as_tensor()
                    .flatten_all()?
                    .to_dtype(DType::F64)?
                    .to_vec1::<f64>()?,
            );
        }
        Ok(values)
    }

    /// The architecture.
    #[must_use]
    pub const fn architecture(&self) -> &Architecture {
        &self.architecture
    }

    /// The dtype the model computes in.
    #[must_use]
    pub const fn dtype(&self) -> DType {
        self.dtype
    }

    /// The logits `[B, C]` of windows `frames` (`[B, N, D]`, oldest frame
    /// first), each window classified from its last frame.
    ///
    /// # Errors
    /// [`TrainError::Tensor`] when `frames` is not `[B, N, D]` in the
    /// model's dtype.
    pub fn logits(&self, frames: &Tensor) -> Result<Tensor, TrainError> {
        let (_, n, _) = frames.dims3()?;
        if n == 0 {
            return Err(TrainError::BadWindows {
                side: "input",
                reason: "a window holds at least one frame".into(),
            });
        }
        let masks = self.masks.get(n)?;
        let head = &self.architecture.head;
        let heads = Heads {
            kv_heads: head.kv_heads,
            group: head.group_size(),
            head_dim: head.head_dim,
        };
        let options = &self.architecture.options;
        let mut x = match options.centre_shift {
            0 => frames.clone(),
            shift => {
                let means = running_means(n, shift)?.to_dtype(self.dtype)?;
                let gain = f64::from(1_u32 << options.centre_gain_log2);
                ((frames - means.broadcast_matmul(frames)?)? * gain)?
            }
        };
        // A pooled readout reads every frame's row of the last layer; the
        // last-frame readout only the last one.
        let pooled = options.pool_shift > 0;
        let last = self.layers.len() - 1;
        for (l, layer) in self.layers.iter().enumerate() {
            x = layer.forward(&x, heads, &masks, l == last && !pooled)?;
        }
        let x = self.final_norm.apply(&x)?;
        let readout = if pooled {
            let weights = last_running_mean(n, options.pool_shift)?.to_dtype(self.dtype)?;
            weights.broadcast_matmul(&x)?
        } else {
            x
        };
        Ok(readout.squeeze(1)?.matmul(&self.classifier)?)
    }
}
