//! The AETHER temporal model (`docs/model.md`), built from [`ModelWeights`].
//!
//! Per layer: `x = x + attention(x·Wq, x·Wk, x·Wv)·Wo`; the logits are
//! `x[N-1]·Wc`. The model is generic over the [`AttentionBackend`], so the
//! host, the firmware and the tests run the same arithmetic with whichever
//! backend the head config selects, and streaming classification (one KV
//! cache per layer, frame by frame) gives the prefill logits because every
//! layer is causal.
//!
//! The model owns its weights as one f32 buffer in body order
//! ([`ModelWeights`]; for the default AETHER shape 41 KB): a projection
//! reads contiguous floats, and a streaming step decodes nothing. Weight
//! containers (`.rvne`, safetensors, the trainer) are adapters that convert
//! to and from [`ModelWeights`]; this crate knows none of them.
//!
//! **Invariant:** every public method validates its inputs before it
//! changes anything; a failed [`TemporalModel::push`] leaves the stream as
//! it was. Most refusals come before any cache is touched; a stage that
//! can only be checked after some layers appended (attention, residual,
//! logits, or a later layer's projections) takes those appends back with
//! [`KvCache::undo_append`], newest first.
//!
//! **Invariant:** a forward pass never returns a non-finite logit. Frames
//! and weights are checked to be finite up front, and every intermediate
//! (each projection, each attention output, each residual, the logits) is
//! checked right after it is computed, so finite inputs that outgrow f32
//! become [`ModelError::NonFinite`] naming the first [`Stage`] that
//! overflowed, instead of NaN logits whose argmax means nothing. A check
//! is one scan of a buffer that was just written: a push still allocates
//! nothing, and finite results are unchanged bit for bit.
#![no_std]

extern crate alloc;

mod layout;
mod linear;
mod matmul;
mod rng;
mod shape;
mod v2;
mod weights;

use alloc::vec;
use alloc::vec::Vec;
use core::fmt;

pub use crate::layout::{Layout, MatrixKind, MatrixSpan};
pub use crate::rng::{DEFAULT_SEED, XorShift64Star};
pub use crate::shape::{ModelOptions, ModelShape, Norm, ShapeError};
pub use crate::weights::{ModelWeights, WeightsError};
use aether_domain::{AttentionBackend, AttentionError, KvCache, TensorView};

use crate::linear::Linear;
use crate::v2::{Centring, Conv, Mlp, NormWeights, RunningMean};

/// Why the model refused a call.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ModelError {
    /// The blob's attention heads are not the head config's.
    #[error(
        "the blob's heads (q_heads {blob_q}, kv_heads {blob_kv}, head_dim {blob_dim}) differ from \
         the head config's (q_heads {config_q}, kv_heads {config_kv}, head_dim {config_dim})"
    )]
    HeadMismatch {
        /// Query heads in the blob.
        blob_q: usize,
        /// KV heads in the blob.
        blob_kv: usize,
        /// Head dim in the blob.
        blob_dim: usize,
        /// Query heads in the config.
        config_q: usize,
        /// KV heads in the config.
        config_kv: usize,
        /// Head dim in the config.
        config_dim: usize,
    },
    /// A weight is NaN or infinite: the model could only ever output NaN.
    #[error(
        "weight {index} of the blob ({matrix} row {row}, col {col}) is {value}; the model \
         refuses non-finite weights"
    )]
    NonFiniteWeight {
        /// Index in body order (`docs/model.md`, "Weights, in body order").
        index: usize,
        /// The matrix holding it.
        matrix: WeightMatrix,
        /// Its row in that matrix (the input index of `y = x·W`).
        row: usize,
        /// Its column in that matrix (the output index).
        col: usize,
        /// What it is.
        value: NonFiniteValue,
    },
    /// The frame buffer is empty or not a whole number of frames.
    #[error("frames hold {len} values; need a positive multiple of input_dim {input_dim}")]
    FrameLength {
        /// Values supplied.
        len: usize,
        /// Values per frame.
        input_dim: usize,
    },
    /// A frame value is NaN or infinite.
    #[error("value {column} of frame {frame} is {value}; frames must be finite")]
    NonFiniteFrame {
        /// The frame: its index in the frames passed to
        /// [`TemporalModel::classify`], or for [`TemporalModel::push`] its
        /// position in the stream (the frames pushed before it).
        frame: usize,
        /// Index of the value within the frame (0..D).
        column: usize,
        /// What it is.
        value: NonFiniteValue,
    },
    /// Frames and weights were finite, but a value computed from them was
    /// not: the numbers outgrew f32 (or the attention backend returned a
    /// non-finite row for finite inputs). Names the first place it
    /// happened, in forward order, so a user can tell "frames far outside
    /// the training scale" (an early stage) from "a huge weight" (the stage
    /// that multiplies by it).
    #[error("frame {frame}: {stage} is not finite although its inputs are (f32 overflow)")]
    NonFinite {
        /// Where the first non-finite value appeared.
        stage: Stage,
        /// The frame it belongs to, numbered as in
        /// [`ModelError::NonFiniteFrame`]; the classifier only ever runs on
        /// the last frame.
        frame: usize,
    },
    /// The logits buffer has the wrong length.
    #[error("logits buffer holds {actual} values; the model has {expected} classes")]
    LogitsLength {
        /// Classes of the model.
        expected: usize,
        /// Values supplied.
        actual: usize,
    },
    /// The stream was made by a model of another shape.
    #[error("the stream was made for a model with {actual} layers; this one has {expected}")]
    ForeignStream {
        /// Layers of this model.
        expected: usize,
        /// Caches in the stream.
        actual: usize,
    },
    /// The attention backend refused (e.g. a full cache, a non-causal head).
    #[error(transparent)]
    Attention(#[from] AttentionError),
}

impl ModelError {
    /// The frame the error concerns, for the two variants that name one
    /// ([`NonFiniteFrame`](Self::NonFiniteFrame),
    /// [`NonFinite`](Self::NonFinite)), numbered as they document. Why: a
    /// caller that read the frames from somewhere (a CSV line, a packet)
    /// can point at the source of that very frame.
    #[must_use]
    pub const fn frame(&self) -> Option<usize> {
        match self {
            Self::NonFiniteFrame { frame, .. } | Self::NonFinite { frame, .. } => Some(*frame),
            _ => None,
        }
    }

    /// The same error with its frame (for the variants that name one)
    /// numbered as the caller numbers frames: `classify` counts within the
    /// frames it was given and a stream from its start, while a caller
    /// classifying segments of a longer input counts from the input's start.
    #[must_use]
    pub const fn with_frame(mut self, number: usize) -> Self {
        if let Self::NonFiniteFrame { frame, .. } | Self::NonFinite { frame, .. } = &mut self {
            *frame = number;
        }
        self
    }
}

impl From<aether_domain::ShapeError> for ModelError {
    fn from(e: aether_domain::ShapeError) -> Self {
        Self::Attention(e.into())
    }
}

/// A weight matrix of the model, as errors and reports name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum WeightMatrix {
    /// One of a layer's matrices (the four projections, and the
    /// version-2 norms, convolution and MLP).
    Layer {
        /// The layer (0-based).
        layer: usize,
        /// Which matrix.
        kind: MatrixKind,
    },
    /// γ of the norm before the classifier (version 2 with a norm).
    FinalNormScale,
    /// β of the norm before the classifier (version 2 with a layer norm).
    FinalNormShift,
    /// The classifier Wc.
    Classifier,
}

impl WeightMatrix {
    /// The matrix holding body weight `index` of a blob with `layout`, and
    /// the weight's row and column in it; `None` past the last weight.
    ///
    /// Why here: the model's errors and `aether inspect` must point at the
    /// same place for the same index, so the arithmetic lives once.
    #[must_use]
    pub fn locate(layout: &Layout, index: usize) -> Option<(Self, usize, usize)> {
        if index >= layout.weight_count() {
            return None;
        }
        let stride = layout.layer_stride();
        let (matrix, span) = if index < layout.n_layers() * stride {
            let layer = index / stride;
            MatrixKind::BODY_ORDER.iter().find_map(|&kind| {
                let span = layout.matrix(layer, kind)?;
                span.range()
                    .contains(&index)
                    .then_some((Self::Layer { layer, kind }, span))
            })?
        } else {
            layout.parts().find(|(matrix, span)| {
                !matches!(matrix, Self::Layer { .. }) && span.range().contains(&index)
            })?
        };
        let within = index - span.offset;
        Some((matrix, within / span.cols, within % span.cols))
    }

    /// `Wq`, `Wk`, `Wv`, `Wo`, `Wc`; `γ1`, `β1`, `Wconv`, `γ2`, `β2`, `W1`,
    /// `b1`, `W2`, `b2`, `γf`, `βf` (version 2, `docs/model.md`).
    #[must_use]
    pub const fn short_name(self) -> &'static str {
        match self {
            Self::Layer { kind, .. } => match kind {
                MatrixKind::Norm1Scale => "γ1",
                MatrixKind::Norm1Shift => "β1",
                MatrixKind::Conv => "Wconv",
                MatrixKind::Query => "Wq",
                MatrixKind::Key => "Wk",
                MatrixKind::Value => "Wv",
                MatrixKind::Output => "Wo",
                MatrixKind::Norm2Scale => "γ2",
                MatrixKind::Norm2Shift => "β2",
                MatrixKind::Up => "W1",
                MatrixKind::UpBias => "b1",
                MatrixKind::Down => "W2",
                MatrixKind::DownBias => "b2",
            },
            Self::FinalNormScale => "γf",
            Self::FinalNormShift => "βf",
            Self::Classifier => "Wc",
        }
    }
}

/// `layer 0 Wq`, `final norm γf`, `classifier Wc`.
impl fmt::Display for WeightMatrix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Layer { layer, .. } => write!(f, "layer {layer} {}", self.short_name()),
            Self::FinalNormScale | Self::FinalNormShift => {
                write!(f, "final norm {}", self.short_name())
            }
            Self::Classifier => f.write_str("classifier Wc"),
        }
    }
}

/// Which non-finite value a weight or frame holds. Kept as a tag rather
/// than the f32 so errors stay comparable (`NaN != NaN`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NonFiniteValue {
    /// Not a number.
    NaN,
    /// +∞.
    PositiveInfinity,
    /// −∞.
    NegativeInfinity,
}

impl NonFiniteValue {
    /// The tag of `value`, or `None` when it is finite.
    #[must_use]
    pub fn of(value: f32) -> Option<Self> {
        if value.is_nan() {
            Some(Self::NaN)
        } else if value == f32::INFINITY {
            Some(Self::PositiveInfinity)
        } else if value == f32::NEG_INFINITY {
            Some(Self::NegativeInfinity)
        } else {
            None
        }
    }
}

/// `NaN`, `+inf`, `-inf`.
impl fmt::Display for NonFiniteValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::NaN => "NaN",
            Self::PositiveInfinity => "+inf",
            Self::NegativeInfinity => "-inf",
        })
    }
}

/// A step of the forward pass, in the order it runs for each layer; names
/// where the first non-finite value appeared in [`ModelError::NonFinite`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Stage {
    /// The pre-norm of a layer's attention branch (version 2).
    Norm {
        /// The layer (0-based).
        layer: usize,
    },
    /// The causal convolution of a layer (version 2).
    Conv {
        /// The layer (0-based).
        layer: usize,
    },
    /// The queries `x·Wq` of a layer.
    Query {
        /// The layer (0-based).
        layer: usize,
    },
    /// The keys `x·Wk` of a layer.
    Key {
        /// The layer (0-based).
        layer: usize,
    },
    /// The values `x·Wv` of a layer.
    Value {
        /// The layer (0-based).
        layer: usize,
    },
    /// The attention backend's output of a layer (finite queries, keys and
    /// values give a finite output, so this names a backend defect or an
    /// overflow inside the backend's f32 arithmetic).
    Attention {
        /// The layer (0-based).
        layer: usize,
    },
    /// The residual stream after a layer, `x + attention·Wo`.
    Output {
        /// The layer (0-based).
        layer: usize,
    },
    /// The residual stream after a layer's MLP branch (version 2).
    Mlp {
        /// The layer (0-based).
        layer: usize,
    },
    /// The norm before the classifier (version 2).
    FinalNorm,
    /// The logits `x·Wc`.
    Classifier,
}

impl Stage {
    /// The layer of this stage; `None` for the classifier.
    #[must_use]
    pub const fn layer(self) -> Option<usize> {
        match self {
            Self::Norm { layer }
            | Self::Conv { layer }
            | Self::Query { layer }
            | Self::Key { layer }
            | Self::Value { layer }
            | Self::Attention { layer }
            | Self::Output { layer }
            | Self::Mlp { layer } => Some(layer),
            Self::FinalNorm | Self::Classifier => None,
        }
    }

    /// The weight matrix this stage multiplies by; `None` for attention,
    /// which has no weights.
    #[must_use]
    pub const fn matrix(self) -> Option<WeightMatrix> {
        let (layer, kind) = match self {
            Self::Norm { layer } => (layer, MatrixKind::Norm1Scale),
            Self::Conv { layer } => (layer, MatrixKind::Conv),
            Self::Mlp { layer } => (layer, MatrixKind::Up),
            Self::FinalNorm => return Some(WeightMatrix::FinalNormScale),
            Self::Query { layer } => (layer, MatrixKind::Query),
            Self::Key { layer } => (layer, MatrixKind::Key),
            Self::Value { layer } => (layer, MatrixKind::Value),
            Self::Output { layer } => (layer, MatrixKind::Output),
            Self::Attention { .. } => return None,
            Self::Classifier => return Some(WeightMatrix::Classifier),
        };
        Some(WeightMatrix::Layer { layer, kind })
    }
}

/// `layer 1 query projection x·Wq`, `classifier logits x·Wc`, ...
impl fmt::Display for Stage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::Norm { layer } => write!(f, "layer {layer} pre-norm"),
            Self::Conv { layer } => write!(f, "layer {layer} causal convolution"),
            Self::Mlp { layer } => write!(f, "layer {layer} MLP branch and residual"),
            Self::FinalNorm => f.write_str("final norm"),
            Self::Query { layer } => write!(f, "layer {layer} query projection x·Wq"),
            Self::Key { layer } => write!(f, "layer {layer} key projection x·Wk"),
            Self::Value { layer } => write!(f, "layer {layer} value projection x·Wv"),
            Self::Attention { layer } => write!(f, "layer {layer} attention output"),
            Self::Output { layer } => {
                write!(
                    f,
                    "layer {layer} output projection and residual x + attention·Wo"
                )
            }
            Self::Classifier => f.write_str("classifier logits x·Wc"),
        }
    }
}

/// One layer's weights, borrowed from the model's buffer.
#[derive(Debug, Clone, Copy)]
struct Layer<'w> {
    norm1: NormWeights<'w>,
    conv: Conv<'w>,
    wq: Linear<'w>,
    wk: Linear<'w>,
    wv: Linear<'w>,
    wo: Linear<'w>,
    mlp: Option<Mlp<'w>>,
}

/// The temporal model: weights plus an attention backend.
#[derive(Debug, Clone)]
pub struct TemporalModel<B> {
    backend: B,
    weights: ModelWeights,
}

/// Streaming state: one KV cache per layer plus scratch for one frame, so a
/// [`TemporalModel::push`] allocates nothing.
#[derive(Debug, Clone)]
pub struct Stream {
    caches: Vec<KvCache>,
    /// Per layer, the last `K − 1` normed frames of the convolution (slot
    /// `position mod (K − 1)`), `L × (K − 1) × D`; empty without one.
    rings: Vec<f32>,
    /// Per layer, this push's normed frame, moved into `rings` only once
    /// the push succeeds (a refused push leaves the rings as they were).
    pending: Vec<f32>,
    /// The normed frame and the convolution's output (the attention
    /// branch's input).
    normed: Vec<f32>,
    conv_out: Vec<f32>,
    /// The MLP's scratch: hidden units and its output.
    hidden: Vec<f32>,
    branch: Vec<f32>,
    x: Vec<f32>,
    q: Vec<f32>,
    k: Vec<f32>,
    v: Vec<f32>,
    attended: Vec<f32>,
    projected: Vec<f32>,
    /// The logits are computed here and copied out only once they are
    /// known to be finite, so a failed push leaves the caller's buffer as
    /// it was.
    logits: Vec<f32>,
    /// Input centring's running mean of the frames pushed so far (`D`;
    /// empty without centring), and this push's next value, committed
    /// only when the push succeeds.
    centre: Vec<f32>,
    centre_next: Vec<f32>,
    /// The pooled readout's running mean of the final rows (`D`; empty
    /// without pooling), and this push's next value, committed likewise.
    pool: Vec<f32>,
    pool_next: Vec<f32>,
}

impl Stream {
    /// Frames pushed so far.
    #[must_use]
    pub fn len(&self) -> usize {
        self.caches.first().map_or(0, KvCache::len)
    }

    /// No frame pushed yet.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Forgets every frame; the stream can be reused for a new sequence.
    pub fn clear(&mut self) {
        self.caches.iter_mut().for_each(KvCache::clear);
    }
}

/// Frames per block of prefill's output projection and MLP.
const PROJECTION_BLOCK: usize = 32;

/// The index of the first NaN or infinity in `values`. Why two passes: a
/// stage check runs over every intermediate of every push and prefill,
/// almost always finds nothing, and `position(!is_finite)` exits early per
/// element so it does not vectorise (it was a tenth of a push). An all-ones
/// exponent is what makes an f32 non-finite, so OR-ing a per-element flag
/// over a chunk is branch-free; only a chunk that has one is searched.
fn first_non_finite(values: &[f32]) -> Option<usize> {
    const CHUNK: usize = 64;
    const EXPONENT: u32 = 0x7F80_0000;
    values
        .chunks(CHUNK)
        .enumerate()
        .find(|(_, chunk)| {
            chunk.iter().fold(0_u32, |any, v| {
                any | u32::from(v.to_bits() & EXPONENT == EXPONENT)
            }) != 0
        })
        .and_then(|(i, chunk)| {
            chunk
                .iter()
                .position(|v| !v.is_finite())
                .map(|j| i * CHUNK + j)
        })
}

/// The length of a stream's running mean for an option of rate shift
/// `shift`: `d` when the option is on, 0 (no state) when it is off.
const fn mean_len(shift: usize, d: usize) -> usize {
    if shift > 0 { d } else { 0 }
}

/// `Err(NonFinite)` naming `stage` and the frame of the first non-finite
/// value, when `values` holds rows of `width` values for frames
/// `first_frame..`.
fn check_stage(
    values: &[f32],
    width: usize,
    stage: Stage,
    first_frame: usize,
) -> Result<(), ModelError> {
    match first_non_finite(values) {
        None => Ok(()),
        Some(index) => Err(ModelError::NonFinite {
            stage,
            frame: first_frame + index / width,
        }),
    }
}

impl<B: AttentionBackend> TemporalModel<B> {
    /// A model over `weights` computing attention with `backend`.
    ///
    /// # Errors
    /// [`ModelError::HeadMismatch`] when the weights' q/kv heads or head
    /// dim are not the backend config's; [`ModelError::NonFiniteWeight`]
    /// for a NaN or infinite weight.
    pub fn new(weights: ModelWeights, backend: B) -> Result<Self, ModelError> {
        let shape = weights.shape();
        let config = backend.config();
        let blob = (shape.n_q_heads, shape.n_kv_heads, shape.head_dim);
        if blob != (config.q_heads, config.kv_heads, config.head_dim) {
            return Err(ModelError::HeadMismatch {
                blob_q: blob.0,
                blob_kv: blob.1,
                blob_dim: blob.2,
                config_q: config.q_heads,
                config_kv: config.kv_heads,
                config_dim: config.head_dim,
            });
        }
        if let Some((index, matrix, row, col, value)) = weights.first_non_finite() {
            return Err(ModelError::NonFiniteWeight {
                index,
                matrix,
                row,
                col,
                value,
            });
        }
        Ok(Self { backend, weights })
    }

    /// Layer `layer`'s weights; callers pass `layer < n_layers`.
    fn layer(&self, layer: usize) -> Layer<'_> {
        let layout = self.weights.layout();
        let all = self.weights.values();
        let options = layout.options();
        let linear = |kind| Linear::new(all, layout.matrix_in_range(layer, kind));
        let vector = |kind| &all[layout.matrix_in_range(layer, kind).range()];
        let norm = |scale, shift| NormWeights {
            kind: options.norm,
            scale: vector(scale),
            shift: vector(shift),
        };
        Layer {
            norm1: norm(MatrixKind::Norm1Scale, MatrixKind::Norm1Shift),
            conv: Conv {
                taps: vector(MatrixKind::Conv),
                width: if options.conv_taps >= 2 {
                    self.input_dim()
                } else {
                    0
                },
            },
            wq: linear(MatrixKind::Query),
            wk: linear(MatrixKind::Key),
            wv: linear(MatrixKind::Value),
            wo: linear(MatrixKind::Output),
            mlp: (options.mlp_hidden > 0).then(|| Mlp {
                norm: norm(MatrixKind::Norm2Scale, MatrixKind::Norm2Shift),
                up: linear(MatrixKind::Up),
                up_bias: vector(MatrixKind::UpBias),
                down: linear(MatrixKind::Down),
                down_bias: vector(MatrixKind::DownBias),
            }),
        }
    }

    /// The norm before the classifier (the identity without norms).
    fn final_norm(&self) -> NormWeights<'_> {
        let layout = self.weights.layout();
        let all = self.weights.values();
        let vector = |shift| {
            layout
                .final_norm(shift)
                .map_or(&all[..0], |s| &all[s.range()])
        };
        NormWeights {
            kind: layout.options().norm,
            scale: vector(false),
            shift: vector(true),
        }
    }

    /// Input centring, when the options turn it on.
    fn centring(&self) -> Option<Centring> {
        let options = self.weights.shape().options;
        Centring::new(options.centre_shift, options.centre_gain_log2)
    }

    /// The pooled readout's running mean, when the options turn it on.
    fn pooling(&self) -> Option<RunningMean> {
        RunningMean::new(self.weights.shape().options.pool_shift)
    }

    /// Every layer's projections, first to last.
    fn layers(&self) -> impl Iterator<Item = Layer<'_>> {
        (0..self.n_layers()).map(|layer| self.layer(layer))
    }

    /// The classifier Wc.
    fn classifier(&self) -> Linear<'_> {
        Linear::new(self.weights.values(), self.weights.layout().classifier())
    }

    /// The attention backend.
    pub const fn backend(&self) -> &B {
        &self.backend
    }

    /// The weights.
    #[must_use]
    pub const fn weights(&self) -> &ModelWeights {
        &self.weights
    }

    /// The shape of the weights.
    #[must_use]
    pub const fn shape(&self) -> ModelShape {
        self.weights.shape()
    }

    /// Values per frame (D).
    #[must_use]
    pub const fn input_dim(&self) -> usize {
        self.weights.shape().input_dim
    }

    /// Classes (C).
    #[must_use]
    pub const fn n_classes(&self) -> usize {
        self.weights.shape().n_classes
    }

    /// Attention layers (L).
    #[must_use]
    pub const fn n_layers(&self) -> usize {
        self.weights.shape().n_layers
    }

    /// Checks the length and finiteness of `frames`, the first of which is
    /// frame `first_frame`; returns how many frames they hold.
    fn check_frames(&self, frames: &[f32], first_frame: usize) -> Result<usize, ModelError> {
        let input_dim = self.input_dim();
        if frames.is_empty() || !frames.len().is_multiple_of(input_dim) {
            return Err(ModelError::FrameLength {
                len: frames.len(),
                input_dim,
            });
        }
        if let Some(index) = first_non_finite(frames) {
            return Err(ModelError::NonFiniteFrame {
                frame: first_frame + index / input_dim,
                column: index % input_dim,
                value: NonFiniteValue::of(frames[index]).unwrap_or(NonFiniteValue::NaN),
            });
        }
        Ok(frames.len() / input_dim)
    }

    fn check_logits(&self, logits: &[f32]) -> Result<(), ModelError> {
        if logits.len() == self.n_classes() {
            Ok(())
        } else {
            Err(ModelError::LogitsLength {
                expected: self.n_classes(),
                actual: logits.len(),
            })
        }
    }

    /// Prefill: the logits of the last of `frames` (`N x D`, row-major,
    /// oldest first), written to `logits` (`C` values).
    ///
    /// Every stage is checked for every frame, the classifier for the last
    /// one, so this fails exactly when pushing the same frames one by one
    /// into a fresh stream would fail, and with the same error.
    ///
    /// # Errors
    /// [`ModelError::FrameLength`], [`ModelError::NonFiniteFrame`],
    /// [`ModelError::LogitsLength`], [`ModelError::NonFinite`], or the
    /// backend's error. On error `logits` is unchanged.
    pub fn classify_into(&self, frames: &[f32], logits: &mut [f32]) -> Result<(), ModelError> {
        let n = self.check_frames(frames, 0)?;
        self.check_logits(logits)?;
        let embedding = self.embedding(frames, n)?;
        let mut out = vec![0.0; logits.len()];
        self.classifier().apply(&embedding, &mut out);
        check_stage(&out, out.len(), Stage::Classifier, n - 1)?;
        logits.copy_from_slice(&out);
        Ok(())
    }

    /// The embedding of `frames`: the last frame's row after the last
    /// layer and (version 2) the final norm, or with a pooled readout the
    /// running mean of every frame's such row; `D` values: the vector the
    /// classifier reads. Why: comparing
    /// two models (sparse against dense attention, say) by their
    /// classifications alone hides how differently they represent the
    /// same windows; nearest neighbours in this space show it.
    ///
    /// # Errors
    /// As [`classify_into`](Self::classify_into), with
    /// [`ModelError::LogitsLength`] naming `D` when `out` is not `D`
    /// values. On error `out` is unchanged.
    pub fn embedding_into(&self, frames: &[f32], out: &mut [f32]) -> Result<(), ModelError> {
        let n = self.check_frames(frames, 0)?;
        if out.len() != self.input_dim() {
            return Err(ModelError::LogitsLength {
                expected: self.input_dim(),
                actual: out.len(),
            });
        }
        out.copy_from_slice(&self.embedding(frames, n)?);
        Ok(())
    }

    /// The classifier's input for `n` checked frames: the last frame's row
    /// after the last layer and the final norm, or with a pooled readout
    /// the running mean of every frame's such row.
    fn embedding(&self, frames: &[f32], n: usize) -> Result<Vec<f32>, ModelError> {
        let input_dim = self.input_dim();
        let x = self.layers_forward(frames, n)?;
        let mut embedding = vec![0.0; input_dim];
        let Some(pool) = self.pooling() else {
            self.final_norm()
                .apply(&x[(n - 1) * input_dim..], &mut embedding);
            check_stage(&embedding, input_dim, Stage::FinalNorm, n - 1)?;
            return Ok(embedding);
        };
        let mut row = vec![0.0; input_dim];
        let final_norm = self.final_norm();
        for (t, x_t) in x.chunks_exact(input_dim).enumerate() {
            final_norm.apply(x_t, &mut row);
            check_stage(&row, input_dim, Stage::FinalNorm, t)?;
            pool.advance(t == 0, &mut embedding, &row);
        }
        Ok(embedding)
    }

    /// Every layer over `n` checked frames: the residual stream after the
    /// last layer, `n × D`, each stage checked as it is computed.
    fn layers_forward(&self, frames: &[f32], n: usize) -> Result<Vec<f32>, ModelError> {
        let config = self.backend.config();
        let (d, q_heads, kv_heads) = (config.head_dim, config.q_heads, config.kv_heads);
        let input_dim = self.input_dim();
        let mlp_hidden = self.weights.shape().options.mlp_hidden;
        let mut x = frames.to_vec();
        if let Some(centring) = self.centring() {
            // An overflow of `x − m` shows up in layer 0's norm check.
            centring.apply_rows(&mut x, &mut vec![0.0; input_dim]);
        }
        let mut normed = vec![0.0; n * input_dim];
        let mut branch_in = vec![0.0; n * input_dim];
        // Wo and the MLP run over blocks of frames: big enough for the
        // blocked kernel, small enough that the scratch stays a few KB
        // (the firmware's heap budget) whatever `n` is.
        let block = n.min(PROJECTION_BLOCK);
        let mut projected = vec![0.0; block * input_dim];
        let mut hidden = vec![0.0; block * mlp_hidden];
        for (layer, weights) in self.layers().enumerate() {
            for (x_t, h_t) in x
                .chunks_exact(input_dim)
                .zip(normed.chunks_exact_mut(input_dim))
            {
                weights.norm1.apply(x_t, h_t);
            }
            check_stage(&normed, input_dim, Stage::Norm { layer }, 0)?;
            if weights.conv.len() == 0 {
                branch_in.copy_from_slice(&normed);
            } else {
                for (t, c_t) in branch_in.chunks_exact_mut(input_dim).enumerate() {
                    let frame = |j: usize| {
                        (j <= t).then(|| &normed[(t - j) * input_dim..(t - j + 1) * input_dim])
                    };
                    weights
                        .conv
                        .apply(&normed[t * input_dim..(t + 1) * input_dim], frame, c_t);
                }
                check_stage(&branch_in, input_dim, Stage::Conv { layer }, 0)?;
            }
            let q = weights.wq.apply_rows(&branch_in, n, q_heads, d)?;
            check_stage(q.as_slice(), q_heads * d, Stage::Query { layer }, 0)?;
            let k = weights.wk.apply_rows(&branch_in, n, kv_heads, d)?;
            check_stage(k.as_slice(), kv_heads * d, Stage::Key { layer }, 0)?;
            let v = weights.wv.apply_rows(&branch_in, n, kv_heads, d)?;
            check_stage(v.as_slice(), kv_heads * d, Stage::Value { layer }, 0)?;
            let attended = self.backend.forward(q.view(), k.view(), v.view())?;
            check_stage(
                attended.as_slice(),
                q_heads * d,
                Stage::Attention { layer },
                0,
            )?;
            let q_width = q_heads * d;
            for (x_b, a_b) in x
                .chunks_mut(block * input_dim)
                .zip(attended.as_slice().chunks(block * q_width))
            {
                let rows = a_b.len() / q_width;
                let projected = &mut projected[..rows * input_dim];
                weights.wo.apply_many(a_b, rows, projected);
                x_b.iter_mut().zip(&*projected).for_each(|(x, p)| *x += p);
            }
            check_stage(&x, input_dim, Stage::Output { layer }, 0)?;
            if let Some(mlp) = weights.mlp {
                // `normed` is free again: the attention branch has read it.
                for (x_b, n_b) in x
                    .chunks_mut(block * input_dim)
                    .zip(normed.chunks_mut(block * input_dim))
                {
                    let rows = x_b.len() / input_dim;
                    mlp.add_to_rows(
                        x_b,
                        rows,
                        n_b,
                        &mut hidden[..rows * mlp_hidden],
                        &mut projected[..rows * input_dim],
                    );
                }
                check_stage(&x, input_dim, Stage::Mlp { layer }, 0)?;
            }
        }
        Ok(x)
    }

    /// [`classify_into`](Self::classify_into) returning a new vector.
    ///
    /// # Errors
    /// As [`classify_into`](Self::classify_into).
    pub fn classify(&self, frames: &[f32]) -> Result<Vec<f32>, ModelError> {
        let mut logits = vec![0.0; self.n_classes()];
        self.classify_into(frames, &mut logits)?;
        Ok(logits)
    }

    /// A stream holding up to `capacity` frames (one cache per layer).
    ///
    /// # Errors
    /// The backend's cache errors ([`AttentionError::ZeroCapacity`], ...).
    pub fn stream(&self, capacity: usize) -> Result<Stream, ModelError> {
        let config = self.backend.config();
        if !config.causal {
            return Err(AttentionError::StepNotCausal.into());
        }
        let caches = (0..self.n_layers())
            .map(|_| self.backend.make_cache(capacity))
            .collect::<Result<Vec<_>, _>>()?;
        let (q_len, kv_len) = (
            config.q_heads * config.head_dim,
            config.kv_heads * config.head_dim,
        );
        let d = self.input_dim();
        let options = self.weights.shape().options;
        let ring = options.conv_taps.saturating_sub(1) * d;
        Ok(Stream {
            caches,
            rings: vec![0.0; self.n_layers() * ring],
            pending: vec![0.0; self.n_layers() * d],
            normed: vec![0.0; d],
            conv_out: vec![0.0; d],
            hidden: vec![0.0; options.mlp_hidden],
            branch: vec![0.0; d],
            x: vec![0.0; self.input_dim()],
            q: vec![0.0; q_len],
            k: vec![0.0; kv_len],
            v: vec![0.0; kv_len],
            attended: vec![0.0; q_len],
            projected: vec![0.0; self.input_dim()],
            logits: vec![0.0; self.n_classes()],
            centre: vec![0.0; mean_len(options.centre_shift, d)],
            centre_next: vec![0.0; mean_len(options.centre_shift, d)],
            pool: vec![0.0; mean_len(options.pool_shift, d)],
            pool_next: vec![0.0; mean_len(options.pool_shift, d)],
        })
    }

    /// Whether `stream` was made by a model of this shape (so every
    /// scratch buffer has the length this model writes).
    fn owns(&self, stream: &Stream) -> bool {
        let config = self.backend.config();
        let (q_len, kv_len) = (
            config.q_heads * config.head_dim,
            config.kv_heads * config.head_dim,
        );
        let d = self.input_dim();
        let options = self.weights.shape().options;
        stream.caches.len() == self.n_layers()
            && stream.rings.len() == self.n_layers() * options.conv_taps.saturating_sub(1) * d
            && stream.pending.len() == self.n_layers() * d
            && stream.normed.len() == d
            && stream.conv_out.len() == d
            && stream.hidden.len() == options.mlp_hidden
            && stream.branch.len() == d
            && stream.x.len() == self.input_dim()
            && stream.projected.len() == self.input_dim()
            && stream.q.len() == q_len
            && stream.attended.len() == q_len
            && stream.k.len() == kv_len
            && stream.v.len() == kv_len
            && stream.logits.len() == self.n_classes()
            && stream.centre.len() == stream.centre_next.len()
            && stream.centre.len() == mean_len(options.centre_shift, d)
            && stream.pool.len() == stream.pool_next.len()
            && stream.pool.len() == mean_len(options.pool_shift, d)
    }

    /// Streaming: appends one frame (`D` values) and writes the logits of
    /// the sequence so far — equal to [`classify_into`](Self::classify_into)
    /// over every frame pushed, and failing when it would.
    ///
    /// # Errors
    /// [`ModelError::FrameLength`], [`ModelError::NonFiniteFrame`],
    /// [`ModelError::LogitsLength`], [`ModelError::ForeignStream`],
    /// [`AttentionError::CacheFull`] when the stream is full, and
    /// [`ModelError::NonFinite`] when a value computed from the frame is not
    /// finite. On error the stream and `logits` are unchanged: the frame is
    /// not part of the sequence, and the next push continues as if it had
    /// never been offered.
    pub fn push(
        &self,
        stream: &mut Stream,
        frame: &[f32],
        logits: &mut [f32],
    ) -> Result<(), ModelError> {
        if frame.len() != self.input_dim() {
            return Err(ModelError::FrameLength {
                len: frame.len(),
                input_dim: self.input_dim(),
            });
        }
        self.check_logits(logits)?;
        if !self.owns(stream) {
            return Err(ModelError::ForeignStream {
                expected: self.n_layers(),
                actual: stream.caches.len(),
            });
        }
        self.check_frames(frame, stream.len())?;
        // Every layer appends one token; check room in all of them first so
        // a full cache cannot leave earlier layers one token ahead.
        if let Some(full) = stream.caches.iter().find(|c| !c.has_room()) {
            return Err(AttentionError::CacheFull {
                capacity: full.capacity(),
            }
            .into());
        }
        stream.x.copy_from_slice(frame);
        let mut appended = 0;
        if let Err(error) = self.push_layers(stream, &mut appended) {
            // A stage after a layer's append failed: take back this push's
            // appends, newest first, so every cache (keys, values, landmark
            // sums, attention mass) is bit-for-bit what it was. Undoing
            // cannot fail here: each of these caches took exactly one
            // append in this push; if it ever did, that error is the one
            // that matters.
            for cache in stream.caches[..appended].iter_mut().rev() {
                cache.undo_append()?;
            }
            return Err(error);
        }
        // The push stands: its normed frames join the convolution rings.
        let span = self.weights.shape().options.conv_taps.saturating_sub(1) * self.input_dim();
        if span > 0 {
            let d = self.input_dim();
            let slot = (stream.len() - 1) % (span / d);
            for (ring, frame) in stream
                .rings
                .chunks_exact_mut(span)
                .zip(stream.pending.chunks_exact(d))
            {
                ring[slot * d..(slot + 1) * d].copy_from_slice(frame);
            }
        }
        // And its running means replace the old ones (empty when off).
        stream.centre.copy_from_slice(&stream.centre_next);
        stream.pool.copy_from_slice(&stream.pool_next);
        logits.copy_from_slice(&stream.logits);
        Ok(())
    }

    /// The forward pass of one frame (already in `stream.x`) through every
    /// layer and the classifier, into `stream.logits`; counts in `appended`
    /// the layers whose cache took the frame, so the caller can undo them.
    fn push_layers(&self, stream: &mut Stream, appended: &mut usize) -> Result<(), ModelError> {
        let config = self.backend.config();
        let (d, q_heads, kv_heads) = (config.head_dim, config.q_heads, config.kv_heads);
        let input_dim = self.input_dim();
        // The frame's position: numbering as in prefill.
        let frame = stream.len();
        let ring_frames = self.weights.shape().options.conv_taps.saturating_sub(1);
        if let Some(centring) = self.centring() {
            let previous = (frame > 0).then_some(stream.centre.as_slice());
            centring
                .mean
                .next(previous, &stream.x, &mut stream.centre_next);
            centring.apply(&stream.centre_next, &mut stream.x);
        }
        for (layer, weights) in self.layers().enumerate() {
            weights.norm1.apply(&stream.x, &mut stream.normed);
            check_stage(&stream.normed, input_dim, Stage::Norm { layer }, frame)?;
            if ring_frames > 0 {
                // Only a convolution reads past frames; without one there is
                // no ring to commit to.
                stream.pending[layer * input_dim..(layer + 1) * input_dim]
                    .copy_from_slice(&stream.normed);
            }
            if weights.conv.len() == 0 {
                stream.conv_out.copy_from_slice(&stream.normed);
            } else {
                let ring = &stream.rings
                    [layer * ring_frames * input_dim..(layer + 1) * ring_frames * input_dim];
                // Tap j reads position frame − j, held in slot
                // (frame − j) mod (K − 1) until K − 1 newer frames replace it.
                let past = |j: usize| {
                    (j <= frame).then(|| {
                        let slot = (frame - j) % ring_frames;
                        &ring[slot * input_dim..(slot + 1) * input_dim]
                    })
                };
                weights
                    .conv
                    .apply(&stream.normed, past, &mut stream.conv_out);
                check_stage(&stream.conv_out, input_dim, Stage::Conv { layer }, frame)?;
            }
            // Projections are checked before the append, so a bad one needs
            // no undo in this layer.
            weights.wq.apply(&stream.conv_out, &mut stream.q);
            check_stage(&stream.q, stream.q.len(), Stage::Query { layer }, frame)?;
            weights.wk.apply(&stream.conv_out, &mut stream.k);
            check_stage(&stream.k, stream.k.len(), Stage::Key { layer }, frame)?;
            weights.wv.apply(&stream.conv_out, &mut stream.v);
            check_stage(&stream.v, stream.v.len(), Stage::Value { layer }, frame)?;
            self.backend.step_into(
                TensorView::new(&stream.q, 1, q_heads, d)?,
                TensorView::new(&stream.k, 1, kv_heads, d)?,
                TensorView::new(&stream.v, 1, kv_heads, d)?,
                &mut stream.caches[layer],
                &mut stream.attended,
            )?;
            *appended += 1;
            check_stage(
                &stream.attended,
                stream.attended.len(),
                Stage::Attention { layer },
                frame,
            )?;
            weights.wo.apply(&stream.attended, &mut stream.projected);
            stream
                .x
                .iter_mut()
                .zip(&stream.projected)
                .for_each(|(x, p)| *x += p);
            check_stage(&stream.x, stream.x.len(), Stage::Output { layer }, frame)?;
            if let Some(mlp) = weights.mlp {
                mlp.add_to(
                    &mut stream.x,
                    &mut stream.normed,
                    &mut stream.hidden,
                    &mut stream.branch,
                );
                check_stage(&stream.x, input_dim, Stage::Mlp { layer }, frame)?;
            }
        }
        self.final_norm().apply(&stream.x, &mut stream.normed);
        check_stage(&stream.normed, input_dim, Stage::FinalNorm, frame)?;
        let readout = match self.pooling() {
            Some(pool) => {
                let previous = (frame > 0).then_some(stream.pool.as_slice());
                pool.next(previous, &stream.normed, &mut stream.pool_next);
                &stream.pool_next
            }
            None => &stream.normed,
        };
        self.classifier().apply(readout, &mut stream.logits);
        check_stage(
            &stream.logits,
            stream.logits.len(),
            Stage::Classifier,
            frame,
        )
    }
}

#[cfg(test)]
mod tests;
