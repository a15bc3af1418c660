//! The backend port: what every attention implementation offers.
//!
//! Backends are interchangeable behind this trait; the conformance suite
//! runs one set of properties against every implementation. The domain is
//! generic over it (static dispatch); only the composition root turns a
//! runtime config choice into an enum (see ARCHITECTURE.md).

use crate::cache::{CacheLayout, KvCache};
use crate::config::HeadConfig;
use crate::error::AttentionError;
use crate::tensor::{Tensor, TensorView};

/// An attention implementation for one [`HeadConfig`].
pub trait AttentionBackend {
    /// The validated config this backend computes.
    fn config(&self) -> &HeadConfig;

    /// Prefill: attention of every query position over the sequence, with
    /// the candidate set the backend defines (`docs/attention.md`). Returns
    /// a tensor shaped like `q`.
    ///
    /// # Errors
    /// MUST return, before any work: [`AttentionError::HeadCount`] /
    /// [`AttentionError::HeadDim`] when q has other than `q_heads` heads or
    /// k/v other than `kv_heads`, or any has other than `head_dim` values
    /// per head; [`AttentionError::SequenceMismatch`] when q, k and v differ
    /// in length; [`AttentionError::OutOfMemory`] when scratch or output
    /// memory cannot be reserved.
    fn forward(
        &self,
        q: TensorView<'_>,
        k: TensorView<'_>,
        v: TensorView<'_>,
    ) -> Result<Tensor, AttentionError>;

    /// A cache shaped for this head, holding up to `capacity` tokens.
    ///
    /// # Errors
    /// [`AttentionError::ZeroCapacity`], [`AttentionError::Shape`] on
    /// overflow, [`AttentionError::OutOfMemory`].
    fn make_cache(&self, capacity: usize) -> Result<KvCache, AttentionError> {
        KvCache::new(capacity, CacheLayout::of(self.config()))
    }

    /// Streaming decode: appends one token's k and v to `cache` and writes
    /// the output of that position (`q_heads * head_dim` values) to `out`.
    /// The output equals the prefill output at the same position.
    ///
    /// # Errors
    /// MUST return, leaving `cache` unchanged:
    /// [`AttentionError::StepNotCausal`] for a non-causal config;
    /// [`AttentionError::StepNotOneToken`] when q, k or v has other than one
    /// token; the head/dim errors of [`forward`](Self::forward);
    /// [`AttentionError::CacheLayoutMismatch`] for a cache made for another
    /// head; [`AttentionError::OutputLength`] for a wrong-sized `out`;
    /// [`AttentionError::CacheFull`] when the cache has no room.
    fn step_into(
        &self,
        q: TensorView<'_>,
        k: TensorView<'_>,
        v: TensorView<'_>,
        cache: &mut KvCache,
        out: &mut [f32],
    ) -> Result<(), AttentionError>;

    /// [`step_into`](Self::step_into) returning a fresh `1 x q_heads x
    /// head_dim` tensor.
    ///
    /// # Errors
    /// As [`step_into`](Self::step_into).
    fn step(
        &self,
        q: TensorView<'_>,
        k: TensorView<'_>,
        v: TensorView<'_>,
        cache: &mut KvCache,
    ) -> Result<Tensor, AttentionError> {
        let config = self.config();
        let mut out = Tensor::zeros(1, config.q_heads, config.head_dim)?;
        self.step_into(q, k, v, cache, out.as_mut_slice())?;
        Ok(out)
    }
}
