//! The AETHER temporal model of SPEC §4, run over `.rvne` weights.
//!
//! Per layer: `x = x + attention(x·Wq, x·Wk, x·Wv)·Wo`; the logits are
//! `x[N-1]·Wc`. The model is generic over the [`AttentionBackend`], so the
//! host, the firmware and the tests run the same arithmetic with whichever
//! backend the head config selects, and streaming classification (one KV
//! cache per layer, frame by frame) gives the prefill logits because every
//! layer is causal.
//!
//! Weights are decoded from the blob view (f32 or f16) once, at
//! construction, into one f32 buffer: a projection then reads contiguous
//! floats instead of decoding bytes per multiply, and a streaming step does
//! no decoding at all. For the default AETHER shape that is 41 KB.
//!
//! **Invariant:** every public method validates its inputs before it
//! changes anything; a failed [`TemporalModel::push`] leaves the stream as
//! it was.
#![no_std]

extern crate alloc;

mod linear;

use alloc::vec;
use alloc::vec::Vec;

use aether_domain::{AttentionBackend, AttentionError, KvCache, TensorView};
use aether_rvne::{Header, RvneError, RvneView};

use crate::linear::Linear;

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
    #[error("weight {index} of the blob is not finite")]
    NonFiniteWeight {
        /// Index in SPEC §4 order.
        index: usize,
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
    #[error("frame value {index} is not finite")]
    NonFiniteFrame {
        /// Index into the supplied values.
        index: usize,
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
    /// The blob could not be read.
    #[error(transparent)]
    Weights(#[from] RvneError),
}

impl From<aether_domain::ShapeError> for ModelError {
    fn from(e: aether_domain::ShapeError) -> Self {
        Self::Attention(e.into())
    }
}

/// One layer's projections.
#[derive(Debug, Clone)]
struct Layer {
    wq: Linear,
    wk: Linear,
    wv: Linear,
    wo: Linear,
}

/// The temporal model: decoded weights plus an attention backend.
#[derive(Debug, Clone)]
pub struct TemporalModel<B> {
    backend: B,
    header: Header,
    layers: Vec<Layer>,
    classifier: Linear,
}

/// Streaming state: one KV cache per layer plus scratch for one frame, so a
/// [`TemporalModel::push`] allocates nothing.
#[derive(Debug, Clone)]
pub struct Stream {
    caches: Vec<KvCache>,
    x: Vec<f32>,
    q: Vec<f32>,
    k: Vec<f32>,
    v: Vec<f32>,
    attended: Vec<f32>,
    projected: Vec<f32>,
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

fn first_non_finite(values: &[f32]) -> Option<usize> {
    values.iter().position(|v| !v.is_finite())
}

impl<B: AttentionBackend> TemporalModel<B> {
    /// A model over `weights` computing attention with `backend`.
    ///
    /// # Errors
    /// [`ModelError::HeadMismatch`] when the blob's q/kv heads or head dim
    /// are not the backend config's; [`ModelError::NonFiniteWeight`] for a
    /// NaN or infinite weight.
    pub fn new(weights: RvneView<'_>, backend: B) -> Result<Self, ModelError> {
        let header = weights.header();
        let config = backend.config();
        let blob = (
            usize::from(header.n_q_heads),
            usize::from(header.n_kv_heads),
            usize::from(header.head_dim),
        );
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
        if let Some(index) = weights.first_non_finite() {
            return Err(ModelError::NonFiniteWeight { index });
        }
        let layers = weights
            .layers()
            .map(|l| -> Result<Layer, RvneError> {
                Ok(Layer {
                    wq: Linear::decode(l.wq())?,
                    wk: Linear::decode(l.wk())?,
                    wv: Linear::decode(l.wv())?,
                    wo: Linear::decode(l.wo())?,
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let classifier = Linear::decode(weights.classifier())?;
        Ok(Self {
            backend,
            header,
            layers,
            classifier,
        })
    }

    /// The attention backend.
    pub const fn backend(&self) -> &B {
        &self.backend
    }

    /// The blob header the weights came from.
    #[must_use]
    pub const fn header(&self) -> Header {
        self.header
    }

    /// Values per frame (D).
    #[must_use]
    pub fn input_dim(&self) -> usize {
        usize::from(self.header.input_dim)
    }

    /// Classes (C).
    #[must_use]
    pub fn n_classes(&self) -> usize {
        usize::from(self.header.n_classes)
    }

    fn check_frames(&self, frames: &[f32]) -> Result<usize, ModelError> {
        let input_dim = self.input_dim();
        if frames.is_empty() || !frames.len().is_multiple_of(input_dim) {
            return Err(ModelError::FrameLength {
                len: frames.len(),
                input_dim,
            });
        }
        if let Some(index) = first_non_finite(frames) {
            return Err(ModelError::NonFiniteFrame { index });
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
    /// # Errors
    /// [`ModelError::FrameLength`], [`ModelError::NonFiniteFrame`],
    /// [`ModelError::LogitsLength`], or the backend's error.
    pub fn classify_into(&self, frames: &[f32], logits: &mut [f32]) -> Result<(), ModelError> {
        let n = self.check_frames(frames)?;
        self.check_logits(logits)?;
        let config = self.backend.config();
        let (d, q_heads, kv_heads) = (config.head_dim, config.q_heads, config.kv_heads);
        let input_dim = self.input_dim();
        let mut x = frames.to_vec();
        let mut projected = vec![0.0; input_dim];
        for layer in &self.layers {
            let q = layer.wq.apply_rows(&x, n, q_heads, d)?;
            let k = layer.wk.apply_rows(&x, n, kv_heads, d)?;
            let v = layer.wv.apply_rows(&x, n, kv_heads, d)?;
            let attended = self.backend.forward(q.view(), k.view(), v.view())?;
            for (t, row) in x.chunks_exact_mut(input_dim).enumerate() {
                layer.wo.apply(attended.view().token(t), &mut projected);
                row.iter_mut().zip(&projected).for_each(|(x, p)| *x += p);
            }
        }
        self.classifier.apply(&x[(n - 1) * input_dim..], logits);
        Ok(())
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
        let caches = self
            .layers
            .iter()
            .map(|_| self.backend.make_cache(capacity))
            .collect::<Result<Vec<_>, _>>()?;
        let (q_len, kv_len) = (
            config.q_heads * config.head_dim,
            config.kv_heads * config.head_dim,
        );
        Ok(Stream {
            caches,
            x: vec![0.0; self.input_dim()],
            q: vec![0.0; q_len],
            k: vec![0.0; kv_len],
            v: vec![0.0; kv_len],
            attended: vec![0.0; q_len],
            projected: vec![0.0; self.input_dim()],
        })
    }

    /// Streaming: appends one frame (`D` values) and writes the logits of
    /// the sequence so far — equal to [`classify_into`](Self::classify_into)
    /// over every frame pushed.
    ///
    /// # Errors
    /// [`ModelError::FrameLength`], [`ModelError::NonFiniteFrame`],
    /// [`ModelError::LogitsLength`], [`ModelError::ForeignStream`], and
    /// [`AttentionError::CacheFull`] when the stream is full. On error the
    /// stream is unchanged.
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
        self.check_frames(frame)?;
        self.check_logits(logits)?;
        if stream.caches.len() != self.layers.len() || stream.x.len() != self.input_dim() {
            return Err(ModelError::ForeignStream {
                expected: self.layers.len(),
                actual: stream.caches.len(),
            });
        }
        // Every layer appends one token; check room in all of them first so
        // a full cache cannot leave earlier layers one token ahead.
        if let Some(full) = stream.caches.iter().find(|c| !c.has_room()) {
            return Err(AttentionError::CacheFull {
                capacity: full.capacity(),
            }
            .into());
        }
        let config = self.backend.config();
        let (d, q_heads, kv_heads) = (config.head_dim, config.q_heads, config.kv_heads);
        stream.x.copy_from_slice(frame);
        for (layer, cache) in self.layers.iter().zip(&mut stream.caches) {
            layer.wq.apply(&stream.x, &mut stream.q);
            layer.wk.apply(&stream.x, &mut stream.k);
            layer.wv.apply(&stream.x, &mut stream.v);
            self.backend.step_into(
                TensorView::new(&stream.q, 1, q_heads, d)?,
                TensorView::new(&stream.k, 1, kv_heads, d)?,
                TensorView::new(&stream.v, 1, kv_heads, d)?,
                cache,
                &mut stream.attended,
            )?;
            layer.wo.apply(&stream.attended, &mut stream.projected);
            stream
                .x
                .iter_mut()
                .zip(&stream.projected)
                .for_each(|(x, p)| *x += p);
        }
        self.classifier.apply(&stream.x, logits);
        Ok(())
    }
}

#[cfg(test)]
mod tests;
