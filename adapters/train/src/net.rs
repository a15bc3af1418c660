//! The temporal model of `docs/model.md` as candle tensors, so autograd
//! can train it.
//!
//! Per layer `x = x + attention(x·Wq, x·Wk, x·Wv)·Wo` and `logits =
//! x[N-1]·Wc`, with attention restricted to the head's candidate pattern
//! by the masks of [`crate::mask`]. The logits read only the last frame
//! of the last layer, so that layer computes only the last query: every
//! other row of its output would be thrown away.
//!
//! Why a per-layer module and [`ModelOptions`]: later model versions add
//! per-layer pieces (a pre-norm, an MLP block, position information); each
//! becomes a field of [`ModelOptions`] and a step of
//! `AttentionLayer::forward`, without touching the training loop or the
//! weight conversion's body order for v1 models.

use aether_domain::HeadConfig;
use candle_core::{D, DType, Device, Tensor, Var};
use serde::{Deserialize, Serialize};

use crate::TrainError;
use crate::mask::{MaskCache, MaskTensors};
use crate::rng::SplitMix64;

/// Model features beyond version 1 of `docs/model.md`. Version 1 has
/// none, so this is empty; it exists so a configuration can name them
/// once they arrive without changing every constructor's signature.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelOptions {}

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
    /// for zero layers or input width, [`TrainError::TooFewClasses`].
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
        Ok(())
    }

    /// `(rows, cols)` of every matrix in body order (`docs/model.md`,
    /// "Weights, in body order"): per layer Wq, Wk, Wv, Wo, then Wc.
    #[must_use]
    pub fn matrix_shapes(&self) -> Vec<(usize, usize)> {
        let (dim, q, kv) = (self.input_dim, self.q_width(), self.kv_width());
        let mut shapes = Vec::with_capacity(4 * self.n_layers + 1);
        for _ in 0..self.n_layers {
            shapes.extend([(dim, q), (dim, kv), (dim, kv), (q, dim)]);
        }
        shapes.push((dim, self.n_classes));
        shapes
    }

    /// Number of weights: `L·(2·D·Hq·d + 2·D·Hkv·d) + D·C`.
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

/// One attention layer's projections, each `[in][out]` as in
/// `docs/model.md` (applied as `x · W`).
#[derive(Debug, Clone)]
struct AttentionLayer {
    wq: Var,
    wk: Var,
    wv: Var,
    wo: Var,
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
    /// `x + attention(x·Wq, x·Wk, x·Wv)·Wo` for `x` `[B, n, D]`; with
    /// `last_only`, only for the last position (`[B, 1, D]`).
    fn forward(
        &self,
        x: &Tensor,
        heads: Heads,
        masks: &MaskTensors,
        last_only: bool,
    ) -> candle_core::Result<Tensor> {
        let n = x.dim(1)?;
        let (rows, bias) = if last_only {
            (x.narrow(1, n - 1, 1)?, &masks.last_bias)
        } else {
            (x.clone(), &masks.bias)
        };
        let q = project(&rows, &self.wq)?;
        let k = project(x, &self.wk)?;
        let v = project(x, &self.wv)?;
        let attended = attention(&q, &k, &v, heads, masks, bias)?;
        rows + project(&attended, &self.wo)?
    }
}

/// The trainable temporal model.
#[derive(Debug)]
pub struct TemporalNet {
    architecture: Architecture,
    dtype: DType,
    layers: Vec<AttentionLayer>,
    classifier: Var,
    masks: MaskCache,
}

impl TemporalNet {
    /// A model with seeded random weights: each matrix uniform in
    /// `[-1/√rows, 1/√rows)` (rows = its input width), drawn in body
    /// order from splitmix64, so the same seed gives the same bits.
    ///
    /// # Errors
    /// [`Architecture::validate`]'s errors; [`TrainError::Setting`] for a
    /// dtype other than f32 or f64.
    pub fn new(architecture: Architecture, seed: u64, dtype: DType) -> Result<Self, TrainError> {
        let mut rng = SplitMix64::fork(seed, 1);
        let mut values = Vec::with_capacity(architecture.weight_count());
        for (rows, cols) in architecture.matrix_shapes() {
            let scale = 1.0 / (rows as f64).sqrt();
            values.extend((0..rows * cols).map(|_| rng.next_symmetric(scale)));
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
        let mut vars = Vec::new();
        for (rows, cols) in architecture.matrix_shapes() {
            let (matrix, tail) = rest.split_at(rows * cols);
            rest = tail;
            let tensor = Tensor::from_slice(matrix, (rows, cols), &Device::Cpu)?.to_dtype(dtype)?;
            vars.push(Var::from_tensor(&tensor)?);
        }
        let classifier = vars.pop().ok_or(TrainError::Setting {
            name: "n_layers",
            reason: "a model has at least one layer",
        })?;
        let layers = vars
            .chunks_exact(4)
            .map(|m| AttentionLayer {
                wq: m[0].clone(),
                wk: m[1].clone(),
                wv: m[2].clone(),
                wo: m[3].clone(),
            })
            .collect();
        let masks = MaskCache::new(architecture.head.clone(), dtype)?;
        Ok(Self {
            architecture,
            dtype,
            layers,
            classifier,
            masks,
        })
    }

    /// Every weight matrix in body order (`docs/model.md`): per layer Wq,
    /// Wk, Wv, Wo, then Wc. Why public: an optimizer, a gradient check or
    /// an exporter walks the weights in the one order the kernel reads.
    #[must_use]
    pub fn vars(&self) -> Vec<Var> {
        let mut vars: Vec<Var> = self
            .layers
            .iter()
            .flat_map(|l| [&l.wq, &l.wk, &l.wv, &l.wo])
            .cloned()
            .collect();
        vars.push(self.classifier.clone());
        vars
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
        let mut x = frames.clone();
        let last = self.layers.len() - 1;
        for (l, layer) in self.layers.iter().enumerate() {
            x = layer.forward(&x, heads, &masks, l == last)?;
        }
        Ok(x.squeeze(1)?.matmul(&self.classifier)?)
    }
}
